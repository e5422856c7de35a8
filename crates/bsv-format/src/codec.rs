//! The one codec every BRC structure reads and writes through.
//!
//! Decoding goes through a bounded [`Reader`] over a borrowed byte slice: every
//! read checks the remaining length first, and every count read from the input
//! is checked against the bytes left before anything is allocated
//! ([`Reader::read_count`]), so a hostile `2^60` count in a 20-byte buffer is a
//! [`ParseError`] and not an allocation. Encoding appends to a `Vec<u8>`.
//!
//! Integers are little-endian. Counts and lengths are Bitcoin CompactSize
//! integers ("varints", `bsv-formats.md` §1.1); non-canonical encodings (a value
//! that fits a shorter form) are rejected, as the node does.
//!
//! # Layout
//! - [`ParseError`], [`ParseErrorKind`]: small `Copy` errors with a byte offset.
//! - [`Reader`]: bounded reads, CompactSize, counts.
//! - [`write_varint`], [`varint_len`]: CompactSize encoding.

use std::fmt;

/// What went wrong while decoding, without the position (see [`ParseError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The input ended before the structure did.
    UnexpectedEnd,
    /// Bytes were left over after a complete structure.
    TrailingBytes,
    /// A CompactSize integer used a longer form than its value needs.
    NonCanonicalVarInt,
    /// A count or length is larger than the remaining input could hold, or
    /// larger than the format allows.
    CountTooLarge,
    /// A magic number / version prefix is not one this decoder knows.
    UnknownVersion,
    /// A flag or format byte has a value the format does not define.
    InvalidFlag,
    /// A field has a value the format forbids (the context says which).
    InvalidValue,
    /// A BUMP level lists the same offset twice.
    DuplicateOffset,
    /// A BUMP node sits at an offset that no client txid needs (strict mode).
    IllegalOffset,
    /// An index refers past the end of the list it indexes.
    IndexOutOfRange,
    /// Raw transaction bytes were given where Extended Format (BRC-30) is required.
    NotExtendedFormat,
    /// Extended Format (BRC-30) bytes were given where a raw transaction is required.
    UnexpectedExtendedFormat,
    /// A script push ran past the end of the script.
    TruncatedPush,
    /// Text (hex, ASM) could not be parsed.
    BadText,
}

impl ParseErrorKind {
    /// A short human-readable description.
    pub fn describe(self) -> &'static str {
        match self {
            ParseErrorKind::UnexpectedEnd => "unexpected end of input",
            ParseErrorKind::TrailingBytes => "trailing bytes after the end of the structure",
            ParseErrorKind::NonCanonicalVarInt => "non-canonical CompactSize integer",
            ParseErrorKind::CountTooLarge => "count or length larger than the input allows",
            ParseErrorKind::UnknownVersion => "unknown version or magic prefix",
            ParseErrorKind::InvalidFlag => "undefined flag or format byte",
            ParseErrorKind::InvalidValue => "invalid field value",
            ParseErrorKind::DuplicateOffset => "duplicate offset in a BUMP level",
            ParseErrorKind::IllegalOffset => "BUMP node at an offset no client txid needs",
            ParseErrorKind::IndexOutOfRange => "index out of range",
            ParseErrorKind::NotExtendedFormat => {
                "raw transaction given where Extended Format (BRC-30) is required"
            }
            ParseErrorKind::UnexpectedExtendedFormat => {
                "Extended Format (BRC-30) given where a raw transaction is required"
            }
            ParseErrorKind::TruncatedPush => "script push runs past the end of the script",
            ParseErrorKind::BadText => "malformed text",
        }
    }
}

/// A decoding failure: what, at which byte offset of the input, and in which
/// field (`context`, a static string such as `"tx input count"`).
///
/// Small and `Copy` so that rejecting hostile input allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub struct ParseError {
    /// Byte offset into the decoder's input where the fault was detected.
    pub offset: usize,
    /// The kind of fault.
    pub kind: ParseErrorKind,
    /// The field or structure being read.
    pub context: &'static str,
}

impl ParseError {
    /// Builds an error at `offset`.
    pub const fn new(offset: usize, kind: ParseErrorKind, context: &'static str) -> Self {
        ParseError {
            offset,
            kind,
            context,
        }
    }

    /// The same error with its offset shifted by `base` bytes, for errors from a
    /// nested decoder whose input started at `base` in the outer input.
    pub const fn shifted(self, base: usize) -> Self {
        ParseError {
            offset: self.offset + base,
            ..self
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte offset {} ({})",
            self.kind.describe(),
            self.offset,
            self.context
        )
    }
}

/// A bounded cursor over a byte slice. All reads are checked; none panics.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current byte offset from the start of the input.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The whole input this reader was built on.
    pub fn input(&self) -> &'a [u8] {
        self.buf
    }

    /// The unread rest of the input, without consuming it.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// The input bytes between `start` (an earlier [`position`](Self::position)) and now.
    pub fn span_from(&self, start: usize) -> &'a [u8] {
        &self.buf[start.min(self.pos)..self.pos]
    }

    /// An error of `kind` at the current position.
    pub fn error(&self, kind: ParseErrorKind, context: &'static str) -> ParseError {
        ParseError::new(self.pos, kind, context)
    }

    /// Fails with [`ParseErrorKind::TrailingBytes`] unless the input is used up.
    pub fn finish(&self, context: &'static str) -> Result<(), ParseError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error(ParseErrorKind::TrailingBytes, context))
        }
    }

    /// Reads `n` bytes.
    pub fn read_bytes(&mut self, n: usize, context: &'static str) -> Result<&'a [u8], ParseError> {
        if n > self.remaining() {
            return Err(self.error(ParseErrorKind::UnexpectedEnd, context));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Reads exactly `N` bytes into an array.
    pub fn read_array<const N: usize>(
        &mut self,
        context: &'static str,
    ) -> Result<[u8; N], ParseError> {
        let bytes = self.read_bytes(N, context)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Reads one byte.
    pub fn read_u8(&mut self, context: &'static str) -> Result<u8, ParseError> {
        Ok(self.read_array::<1>(context)?[0])
    }

    /// Reads a little-endian `u16`.
    pub fn read_u16_le(&mut self, context: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_le_bytes(self.read_array(context)?))
    }

    /// Reads a little-endian `u32`.
    pub fn read_u32_le(&mut self, context: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.read_array(context)?))
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64_le(&mut self, context: &'static str) -> Result<u64, ParseError> {
        Ok(u64::from_le_bytes(self.read_array(context)?))
    }

    /// Reads a CompactSize integer (`bsv-formats.md` §1.1), rejecting
    /// non-canonical forms. The error offset is that of the first byte.
    pub fn read_varint(&mut self, context: &'static str) -> Result<u64, ParseError> {
        let start = self.pos;
        let first = self.read_u8(context)?;
        let (value, min) = match first {
            0xfd => (u64::from(self.read_u16_le(context)?), 0xfd),
            0xfe => (u64::from(self.read_u32_le(context)?), 0x1_0000),
            0xff => (self.read_u64_le(context)?, 0x1_0000_0000),
            b => return Ok(u64::from(b)),
        };
        if value < min {
            return Err(ParseError::new(
                start,
                ParseErrorKind::NonCanonicalVarInt,
                context,
            ));
        }
        Ok(value)
    }

    /// Reads a CompactSize count of items that each take at least
    /// `min_item_bytes` bytes of the remaining input, and fails with
    /// [`ParseErrorKind::CountTooLarge`] (at the count's offset) if the input
    /// cannot hold that many. Use it before allocating for the items.
    pub fn read_count(
        &mut self,
        min_item_bytes: usize,
        context: &'static str,
    ) -> Result<usize, ParseError> {
        let start = self.pos;
        let n = self.read_varint(context)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_item_bytes.max(1)))
            .is_some_and(|need| need <= self.remaining());
        // A zero-size item (min_item_bytes == 0) is treated as one byte, so the
        // count is still bounded by the input length.
        if !fits {
            return Err(ParseError::new(
                start,
                ParseErrorKind::CountTooLarge,
                context,
            ));
        }
        Ok(n as usize)
    }

    /// Reads a CompactSize length followed by that many bytes.
    pub fn read_var_bytes(&mut self, context: &'static str) -> Result<&'a [u8], ParseError> {
        let start = self.pos;
        let n = self.read_varint(context)?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => self.read_bytes(n, context),
            _ => Err(ParseError::new(
                start,
                ParseErrorKind::CountTooLarge,
                context,
            )),
        }
    }
}

/// Appends `value` as a canonical (shortest) CompactSize integer.
pub fn write_varint(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=0xfc => out.push(value as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(value as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Appends a CompactSize length and then `bytes`.
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Number of bytes [`write_varint`] emits for `value` (1, 3, 5 or 9).
pub fn varint_len(value: u64) -> usize {
    match value {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Decodes lowercase or uppercase hex, ignoring surrounding ASCII whitespace.
///
/// # Errors
/// [`ParseErrorKind::BadText`] at the offending character's offset.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, ParseError> {
    let trimmed = text.trim();
    let lead = text.len() - text.trim_start().len();
    hex::decode(trimmed).map_err(|e| {
        let at = match e {
            hex::FromHexError::InvalidHexCharacter { index, .. } => index,
            _ => trimmed.len(),
        };
        ParseError::new(lead + at, ParseErrorKind::BadText, "hex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_at_every_boundary() {
        for v in [
            0u64,
            1,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v));
            let mut r = Reader::new(&out);
            assert_eq!(r.read_varint("v").unwrap(), v);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn non_canonical_varints_are_rejected_at_their_offset() {
        for bytes in [
            &[0xfd, 0x05, 0x00][..],
            &[0xfe, 0xff, 0xff, 0, 0],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ] {
            let mut buf = vec![0xaa];
            buf.extend_from_slice(bytes);
            let mut r = Reader::new(&buf);
            r.read_u8("pad").unwrap();
            let err = r.read_varint("n").unwrap_err();
            assert_eq!(
                err,
                ParseError::new(1, ParseErrorKind::NonCanonicalVarInt, "n")
            );
        }
    }

    #[test]
    fn huge_count_in_small_buffer_is_an_error_not_an_allocation() {
        let buf = [
            0xff, 0, 0, 0, 0, 0, 0, 0, 0x10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
        ];
        let mut r = Reader::new(&buf);
        let err = r.read_count(1, "items").unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::CountTooLarge);
        assert_eq!(err.offset, 0);
        let mut r = Reader::new(&[0x03, 1, 2]);
        assert_eq!(
            r.read_var_bytes("b").unwrap_err().kind,
            ParseErrorKind::CountTooLarge
        );
    }

    #[test]
    fn truncated_reads_report_unexpected_end() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.read_u32_le("x").unwrap_err(),
            ParseError::new(0, ParseErrorKind::UnexpectedEnd, "x")
        );
        assert_eq!(r.read_u16_le("y").unwrap(), 0x0201);
        assert_eq!(
            r.finish("z").unwrap_err(),
            ParseError::new(2, ParseErrorKind::TrailingBytes, "z")
        );
    }

    #[test]
    fn hex_errors_name_the_character() {
        assert_eq!(decode_hex(" 00ff\n").unwrap(), vec![0, 0xff]);
        assert_eq!(decode_hex("00zz").unwrap_err().offset, 2);
    }
}
