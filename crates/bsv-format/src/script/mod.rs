//! Scripts: raw bytes, parsing into chunks, and (in submodules) ASM text,
//! templates and the interpreter.
//!
//! A [`Script`] owns its bytes exactly as they appear in a transaction; it is
//! never normalised, so a script that does not parse (a truncated push) still
//! round-trips and hashes correctly. [`Script::chunks`] parses lazily.
//!
//! # Layout
//! - [`opcodes`]: opcode constants.
//! - [`Script`], [`Chunk`], [`Chunks`]: bytes and push/opcode parsing.
//! - [`push_data`], [`push_data_minimal`]: appending pushes.
//! - [`asm`]: ASM text (ours and the node's test format), opcode names,
//!   [`Chunk::is_minimal_push`].
//! - [`templates`]: the scripts escrowd builds.
//! - [`interpreter`]: script verification under the node's flags.

pub mod asm;
pub mod interpreter;
pub mod opcodes;
pub mod templates;

use crate::codec::{ParseError, ParseErrorKind};
use opcodes::*;

/// A script as raw bytes (locking or unlocking).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Script(Vec<u8>);

impl Script {
    /// Wraps raw script bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Script {
        Script(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the script, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the script has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the chunks (opcodes and pushes) of the script.
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks::new(&self.0)
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Script({})", hex::encode(&self.0))
    }
}

impl From<Vec<u8>> for Script {
    fn from(v: Vec<u8>) -> Script {
        Script(v)
    }
}

/// One parsed element of a script.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Chunk<'a> {
    /// The opcode byte. For pushes: `0x00`, `0x01..=0x4b` (direct push of that
    /// many bytes), `OP_PUSHDATA1/2/4`.
    pub opcode: u8,
    /// The pushed bytes, for push opcodes (`0x00..=OP_PUSHDATA4`); `None` otherwise.
    /// `OP_0` pushes `Some(&[])`.
    pub data: Option<&'a [u8]>,
    /// Byte offset of the opcode within the script.
    pub offset: usize,
    /// Byte offset just after this chunk.
    pub end: usize,
}

impl Chunk<'_> {
    /// Whether this chunk pushes data with an opcode `<= OP_PUSHDATA4`
    /// (`OP_1NEGATE` and `OP_1..OP_16` are not counted; see [`is_push_only_op`]).
    pub fn is_push_data(&self) -> bool {
        self.opcode <= OP_PUSHDATA4
    }
}

/// Whether `opcode` counts as a push for SIGPUSHONLY (`<= OP_16`, including `OP_RESERVED`,
/// as the node's `IsPushOnly`).
pub fn is_push_only_op(opcode: u8) -> bool {
    opcode <= OP_16
}

/// Appends a push of `data` using the shortest push-data opcode for its
/// length: a direct push (`0x00..=0x4b`) below 76 bytes, then `OP_PUSHDATA1`,
/// `OP_PUSHDATA2`, `OP_PUSHDATA4`. Never substitutes `OP_1..OP_16` or
/// `OP_1NEGATE` (this is the node's `CScript << std::vector<uint8_t>`, which
/// `FindAndDelete` and the test-script parser rely on); see
/// [`push_data_minimal`] for the MINIMALDATA-conforming form.
///
/// Data longer than `u32::MAX` bytes cannot be pushed by any script; its
/// length is written modulo 2^32 (callers never build such scripts).
pub fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    if n < usize::from(OP_PUSHDATA1) {
        out.push(n as u8);
    } else if n <= 0xff {
        out.push(OP_PUSHDATA1);
        out.push(n as u8);
    } else if n <= 0xffff {
        out.push(OP_PUSHDATA2);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        out.push(OP_PUSHDATA4);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    out.extend_from_slice(data);
}

/// Appends the minimal push of `data` as the node's MINIMALDATA rule
/// (`CheckMinimalPush`, BIP62 rule 3) requires: `OP_0` for empty data,
/// `OP_1..OP_16` for a single byte 1..16, `OP_1NEGATE` for `0x81`, otherwise
/// as [`push_data`]. Every signature and key push in escrowd's scripts goes
/// through here, so version-1 transactions pass MINIMALDATA.
pub fn push_data_minimal(out: &mut Vec<u8>, data: &[u8]) {
    match data {
        [] => out.push(OP_0),
        [b @ 1..=16] => out.push(OP_1 + b - 1),
        [0x81] => out.push(OP_1NEGATE),
        _ => push_data(out, data),
    }
}

/// Iterator over the chunks of a script. Yields `Err` once (for a push that
/// runs past the end) and then stops.
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Chunks<'a> {
    /// Chunks of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Chunks {
            bytes,
            pos: 0,
            failed: false,
        }
    }

    /// Byte offset of the next chunk.
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let offset = self.pos;
        let opcode = self.bytes[offset];
        let mut at = offset + 1;
        let len = match opcode {
            0x00..=0x4b => Some(opcode as usize),
            OP_PUSHDATA1 | OP_PUSHDATA2 | OP_PUSHDATA4 => {
                let width = match opcode {
                    OP_PUSHDATA1 => 1,
                    OP_PUSHDATA2 => 2,
                    _ => 4,
                };
                if self.bytes.len() - at < width {
                    self.failed = true;
                    return Some(Err(ParseError::new(
                        offset,
                        ParseErrorKind::TruncatedPush,
                        "script push length",
                    )));
                }
                let mut n = 0usize;
                for i in 0..width {
                    n |= (self.bytes[at + i] as usize) << (8 * i);
                }
                at += width;
                Some(n)
            }
            _ => None,
        };
        let data = match len {
            Some(n) => {
                if self.bytes.len() - at < n {
                    self.failed = true;
                    return Some(Err(ParseError::new(
                        offset,
                        ParseErrorKind::TruncatedPush,
                        "script push data",
                    )));
                }
                let d = &self.bytes[at..at + n];
                at += n;
                Some(d)
            }
            None => None,
        };
        self.pos = at;
        Some(Ok(Chunk {
            opcode,
            data,
            offset,
            end: at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_push_form() {
        let s = Script::from_bytes(
            hex::decode("00025152_4c0161_4d0200aabb_4e01000000cc_76a9".replace('_', "")).unwrap(),
        );
        let c: Vec<_> = s.chunks().map(|c| c.unwrap()).collect();
        assert_eq!(c.len(), 7);
        assert_eq!(c[0].data, Some(&[][..]));
        assert_eq!(c[1].data, Some(&[0x51, 0x52][..]));
        assert_eq!((c[2].opcode, c[2].data), (OP_PUSHDATA1, Some(&[0x61][..])));
        assert_eq!(
            (c[3].opcode, c[3].data),
            (OP_PUSHDATA2, Some(&[0xaa, 0xbb][..]))
        );
        assert_eq!((c[4].opcode, c[4].data), (OP_PUSHDATA4, Some(&[0xcc][..])));
        assert_eq!((c[5].opcode, c[5].data, c[5].offset), (OP_DUP, None, 18));
        assert_eq!(c[6].end, 20);
    }

    #[test]
    fn truncated_pushes_are_errors_with_offsets() {
        for (h, off) in [
            ("4c", 0),
            ("51 03aabb", 1),
            ("4d01", 0),
            ("4e02000000aa", 0),
        ] {
            let s = Script::from_bytes(hex::decode(h.replace(' ', "")).unwrap());
            let errs: Vec<_> = s.chunks().filter_map(|c| c.err()).collect();
            assert_eq!(errs.len(), 1, "{h}");
            assert_eq!(
                (errs[0].kind, errs[0].offset),
                (ParseErrorKind::TruncatedPush, off)
            );
        }
    }
}
