//! Signature hashing: the digest an ECDSA signature in a BSV input signs.
//!
//! Two algorithms, as in the SV node (`src/script/interpreter.cpp`,
//! `SignatureHash`, `SignatureHashBIP143`, `SignatureHashOriginal`;
//! `bsv-formats.md` §8):
//!
//! - the **FORKID digest** (BIP143-style, §8.2), used when the type has
//!   `SIGHASH_FORKID` and not `SIGHASH_CHRONICLE` and FORKID is enabled
//!   (always, on BSV since 2017): it commits to the spent output's satoshis;
//! - the **original digest** (§8.3), used otherwise (pre-fork, or an explicit
//!   opt-in with `SIGHASH_CHRONICLE` after Chronicle): the node's
//!   `CTransactionSignatureSerializer`, with `OP_CODESEPARATOR`s removed from
//!   the script code and the "SIGHASH_SINGLE bug".
//!
//! [`uses_forkid_digest`] is the node's choice between them; callers that
//! need the node's exact behaviour pass its result to [`signature_hash`].
//!
//! Digests are returned in internal byte order: the 32 bytes are the ECDSA
//! message as given to libsecp256k1 (`uint256` memory order). Test vectors
//! print them byte-reversed (`uint256::GetHex`).
//!
//! Both algorithms stream the preimage into SHA-256 without building it. The
//! FORKID digest's `hashPrevouts`, `hashSequence` and `hashOutputs` depend
//! only on the transaction; [`SighashCache`] computes each once (the node's
//! `PrecomputedTransactionData`) so signing or verifying all `n` inputs is
//! `O(n)` rather than `O(n²)`.
//!
//! # Layout
//! - Type constants (`SIGHASH_*`) and [`uses_forkid_digest`].
//! - [`signature_hash`]: one digest, no cache.
//! - [`SighashCache`]: the same, with the per-transaction hashes cached.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::script::opcodes::{OP_CODESEPARATOR, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4};
use crate::tx::{Transaction, TxOut};

/// Base type: sign all inputs and all outputs.
pub const SIGHASH_ALL: u32 = 1;
/// Base type: sign all inputs, no outputs.
pub const SIGHASH_NONE: u32 = 2;
/// Base type: sign all inputs and the output at this input's index.
pub const SIGHASH_SINGLE: u32 = 3;
/// Chronicle flag: select the original digest even with FORKID (post-Chronicle).
pub const SIGHASH_CHRONICLE: u32 = 0x20;
/// FORKID flag: select the BIP143-style digest (mandatory on BSV since 2017).
pub const SIGHASH_FORKID: u32 = 0x40;
/// Sign only this input; others may be added.
pub const SIGHASH_ANYONECANPAY: u32 = 0x80;
/// Mask of the base type bits (the node's `BASE_SIGHASH_MASK`, low 5 bits).
pub const SIGHASH_BASE_MASK: u32 = 0x1f;

/// The digest returned where the node returns `uint256(1)`: the original
/// digest with `input_index` out of range or `SIGHASH_SINGLE` without a
/// matching output. Internal byte order: `0x01` then 31 zero bytes.
pub const SIGHASH_ONE: [u8; 32] = {
    let mut one = [0u8; 32];
    one[0] = 1;
    one
};

/// Whether the node hashes a signature of type `sighash_type` with the FORKID
/// digest: FORKID enabled (`SCRIPT_ENABLE_SIGHASH_FORKID`), the FORKID bit set
/// and the CHRONICLE bit clear (`SignatureHash`, `interpreter.cpp`).
pub fn uses_forkid_digest(sighash_type: u32, forkid_enabled: bool) -> bool {
    forkid_enabled && sighash_type & SIGHASH_FORKID != 0 && sighash_type & SIGHASH_CHRONICLE == 0
}

/// The signature hash of input `input_index` of `tx`, in internal byte order.
///
/// - `script_code`: for the FORKID digest, the locking script from just after
///   the last executed `OP_CODESEPARATOR`, hashed as given; for the original
///   digest, the script whose `OP_CODESEPARATOR`s this function removes (the
///   node's `SerializeScriptCode`).
/// - `satoshis`: value of the output being spent (FORKID digest only).
/// - `sighash_type`: the full 32-bit type (the signature's last byte, as the
///   interpreter passes it); hashed as `u32le`. Base type = `type & 0x1f`;
///   base types other than NONE/SINGLE are treated as ALL.
/// - `use_forkid_digest`: `true` → FORKID digest (`bsv-formats.md` §8.2),
///   `false` → original digest (§8.3); see [`uses_forkid_digest`].
///
/// Never panics. With `input_index >= tx.inputs.len()` it returns
/// [`SIGHASH_ONE`], as the node's original digest does (the node's FORKID
/// digest has no such check; the interpreter never asks for it). The original
/// digest with base `SIGHASH_SINGLE` and `input_index >= tx.outputs.len()`
/// also returns [`SIGHASH_ONE`] (the "SIGHASH_SINGLE bug").
///
/// For many inputs of one transaction, use [`SighashCache`].
pub fn signature_hash(
    tx: &Transaction,
    input_index: usize,
    script_code: &[u8],
    satoshis: u64,
    sighash_type: u32,
    use_forkid_digest: bool,
) -> [u8; 32] {
    SighashCache::new(tx).signature_hash(
        input_index,
        script_code,
        satoshis,
        sighash_type,
        use_forkid_digest,
    )
}

/// Signature hashing for one transaction with `hashPrevouts`, `hashSequence`
/// and `hashOutputs` computed at most once each, on first use (the node's
/// `PrecomputedTransactionData`). `Sync`: inputs may be hashed from several
/// threads.
#[derive(Debug)]
pub struct SighashCache<'a> {
    tx: &'a Transaction,
    hash_prevouts: OnceLock<[u8; 32]>,
    hash_sequence: OnceLock<[u8; 32]>,
    hash_outputs: OnceLock<[u8; 32]>,
}

impl<'a> SighashCache<'a> {
    /// An empty cache over `tx`.
    pub fn new(tx: &'a Transaction) -> Self {
        SighashCache {
            tx,
            hash_prevouts: OnceLock::new(),
            hash_sequence: OnceLock::new(),
            hash_outputs: OnceLock::new(),
        }
    }

    /// The transaction this cache hashes.
    pub fn tx(&self) -> &'a Transaction {
        self.tx
    }

    /// As [`signature_hash`], reusing this cache.
    pub fn signature_hash(
        &self,
        input_index: usize,
        script_code: &[u8],
        satoshis: u64,
        sighash_type: u32,
        use_forkid_digest: bool,
    ) -> [u8; 32] {
        if use_forkid_digest {
            self.forkid_digest(input_index, script_code, satoshis, sighash_type)
        } else {
            original_digest(self.tx, input_index, script_code, sighash_type)
        }
    }

    /// `sha256d` of every input's outpoint (txid ‖ vout u32le).
    fn hash_prevouts(&self) -> [u8; 32] {
        *self.hash_prevouts.get_or_init(|| {
            let mut h = HashWriter::new();
            for input in &self.tx.inputs {
                h.bytes(&input.prev_out.to_bytes());
            }
            h.finish()
        })
    }

    /// `sha256d` of every input's sequence (u32le).
    fn hash_sequence(&self) -> [u8; 32] {
        *self.hash_sequence.get_or_init(|| {
            let mut h = HashWriter::new();
            for input in &self.tx.inputs {
                h.u32(input.sequence);
            }
            h.finish()
        })
    }

    /// `sha256d` of every serialized output.
    fn hash_outputs(&self) -> [u8; 32] {
        *self.hash_outputs.get_or_init(|| {
            let mut h = HashWriter::new();
            for output in &self.tx.outputs {
                h.output(output);
            }
            h.finish()
        })
    }

    /// `SignatureHashBIP143` (`bsv-formats.md` §8.2).
    fn forkid_digest(
        &self,
        input_index: usize,
        script_code: &[u8],
        satoshis: u64,
        sighash_type: u32,
    ) -> [u8; 32] {
        let tx = self.tx;
        let Some(input) = tx.inputs.get(input_index) else {
            return SIGHASH_ONE;
        };
        let base = sighash_type & SIGHASH_BASE_MASK;
        let anyone_can_pay = sighash_type & SIGHASH_ANYONECANPAY != 0;
        let single_or_none = base == SIGHASH_SINGLE || base == SIGHASH_NONE;

        let hash_prevouts = if anyone_can_pay {
            [0u8; 32]
        } else {
            self.hash_prevouts()
        };
        let hash_sequence = if anyone_can_pay || single_or_none {
            [0u8; 32]
        } else {
            self.hash_sequence()
        };
        let hash_outputs = if !single_or_none {
            self.hash_outputs()
        } else if base == SIGHASH_SINGLE {
            match tx.outputs.get(input_index) {
                Some(output) => {
                    let mut h = HashWriter::new();
                    h.output(output);
                    h.finish()
                }
                None => [0u8; 32],
            }
        } else {
            [0u8; 32]
        };

        let mut h = HashWriter::new();
        h.u32(tx.version);
        h.bytes(&hash_prevouts);
        h.bytes(&hash_sequence);
        h.bytes(&input.prev_out.to_bytes());
        h.var_bytes(script_code);
        h.u64(satoshis);
        h.u32(input.sequence);
        h.bytes(&hash_outputs);
        h.u32(tx.lock_time);
        h.u32(sighash_type);
        h.finish()
    }
}

/// `SignatureHashOriginal` with `CTransactionSignatureSerializer`
/// (`bsv-formats.md` §8.3), streamed into the hasher.
fn original_digest(
    tx: &Transaction,
    input_index: usize,
    script_code: &[u8],
    sighash_type: u32,
) -> [u8; 32] {
    if input_index >= tx.inputs.len() {
        return SIGHASH_ONE;
    }
    let base = sighash_type & SIGHASH_BASE_MASK;
    if base == SIGHASH_SINGLE && input_index >= tx.outputs.len() {
        return SIGHASH_ONE;
    }
    let anyone_can_pay = sighash_type & SIGHASH_ANYONECANPAY != 0;
    let single_or_none = base == SIGHASH_SINGLE || base == SIGHASH_NONE;

    let mut h = HashWriter::new();
    h.u32(tx.version);
    let (first, count) = if anyone_can_pay {
        (input_index, 1)
    } else {
        (0, tx.inputs.len())
    };
    h.varint(count as u64);
    for (n, input) in tx.inputs.iter().enumerate().skip(first).take(count) {
        h.bytes(&input.prev_out.to_bytes());
        if n == input_index {
            write_script_code_without_separators(&mut h, script_code);
            h.u32(input.sequence);
        } else {
            h.varint(0);
            h.u32(if single_or_none { 0 } else { input.sequence });
        }
    }
    let n_outputs = match base {
        SIGHASH_NONE => 0,
        SIGHASH_SINGLE => input_index + 1,
        _ => tx.outputs.len(),
    };
    h.varint(n_outputs as u64);
    for (n, output) in tx.outputs.iter().enumerate().take(n_outputs) {
        if base == SIGHASH_SINGLE && n != input_index {
            // CTxOut(): value -1, empty script.
            h.u64(u64::MAX);
            h.varint(0);
        } else {
            h.output(output);
        }
    }
    h.u32(tx.lock_time);
    h.u32(sighash_type);
    h.finish()
}

/// One step of the node's `CScript::GetOp2`.
enum ScriptStep {
    /// A complete opcode (with its push data); `next` is the following offset.
    Op { opcode: u8, next: usize },
    /// A push running past the end; `at` is where the node's iterator was
    /// left (after the opcode byte, and after the length bytes if present).
    Truncated { at: usize },
    /// No bytes left.
    End,
}

fn script_step(script: &[u8], pc: usize) -> ScriptStep {
    let Some(&opcode) = script.get(pc) else {
        return ScriptStep::End;
    };
    let mut at = pc + 1;
    let left = |at: usize| script.len().saturating_sub(at);
    let size = match opcode {
        0..=0x4b => usize::from(opcode),
        OP_PUSHDATA1 | OP_PUSHDATA2 | OP_PUSHDATA4 => {
            let width = match opcode {
                OP_PUSHDATA1 => 1,
                OP_PUSHDATA2 => 2,
                _ => 4,
            };
            if left(at) < width {
                return ScriptStep::Truncated { at };
            }
            let size = script.get(at..at + width).map_or(0, |b| {
                b.iter()
                    .rev()
                    .fold(0usize, |acc, &x| (acc << 8) | usize::from(x))
            });
            at += width;
            size
        }
        _ => return ScriptStep::Op { opcode, next: at },
    };
    if left(at) < size {
        return ScriptStep::Truncated { at };
    }
    ScriptStep::Op {
        opcode,
        next: at + size,
    }
}

/// The node's `SerializeScriptCode`: the length (script size minus the
/// number of `OP_CODESEPARATOR`s found before any parse failure), then the
/// script bytes without those separators. On a truncated push the node
/// stops writing where its iterator stopped, so fewer bytes than the length
/// claims are hashed; this reproduces that exactly.
fn write_script_code_without_separators(h: &mut HashWriter, script: &[u8]) {
    let mut separators = 0usize;
    let mut pc = 0;
    while let ScriptStep::Op { opcode, next } = script_step(script, pc) {
        separators += usize::from(opcode == OP_CODESEPARATOR);
        pc = next;
    }
    h.varint((script.len() - separators) as u64);

    let mut begin = 0;
    let mut pc = 0;
    let stop = loop {
        match script_step(script, pc) {
            ScriptStep::Op { opcode, next } => {
                if opcode == OP_CODESEPARATOR {
                    h.bytes(script.get(begin..next - 1).unwrap_or_default());
                    begin = next;
                }
                pc = next;
            }
            ScriptStep::Truncated { at } => break at,
            ScriptStep::End => break pc,
        }
    };
    if begin != script.len() {
        h.bytes(script.get(begin..stop).unwrap_or_default());
    }
}

/// Streams a preimage into SHA-256; [`HashWriter::finish`] applies the
/// second SHA-256 (the node's `CHashWriter::GetHash`).
struct HashWriter(Sha256);

impl HashWriter {
    fn new() -> Self {
        HashWriter(Sha256::new())
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update(b);
    }

    fn u32(&mut self, v: u32) {
        self.0.update(v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.update(v.to_le_bytes());
    }

    fn varint(&mut self, v: u64) {
        let mut buf = [0u8; 9];
        let n = match v {
            0..=0xfc => {
                buf[0] = v as u8;
                1
            }
            0xfd..=0xffff => {
                buf[0] = 0xfd;
                buf[1..3].copy_from_slice(&(v as u16).to_le_bytes());
                3
            }
            0x1_0000..=0xffff_ffff => {
                buf[0] = 0xfe;
                buf[1..5].copy_from_slice(&(v as u32).to_le_bytes());
                5
            }
            _ => {
                buf[0] = 0xff;
                buf[1..9].copy_from_slice(&v.to_le_bytes());
                9
            }
        };
        self.0.update(&buf[..n]);
    }

    fn var_bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.bytes(b);
    }

    fn output(&mut self, o: &TxOut) {
        self.u64(o.satoshis);
        self.var_bytes(o.locking_script.as_bytes());
    }

    fn finish(self) -> [u8; 32] {
        Sha256::digest(self.0.finalize()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: hash the node's serializer output for a script with a
    /// truncated push the long way.
    #[test]
    fn script_code_serialization_matches_the_node_on_odd_scripts() {
        let cases: &[(&str, &str)] = &[
            // (script, bytes the node writes: varint(len - seps) ‖ written bytes)
            ("", "00"),
            ("ab", "00"),
            ("51ab52", "025152"),
            ("ababab", "00"),
            ("51ab", "0151"),
            ("ab51", "0151"),
            // push of 0xab is data, not a separator
            ("01ab", "0201ab"),
            // truncated direct push after a separator: length claims 3 bytes,
            // the node writes up to the opcode byte of the failed push only.
            ("51ab03aabb", "045103"),
            // truncated PUSHDATA1 with its length byte: written through the length byte.
            ("ab4c05aa", "034c05"),
            // PUSHDATA2 missing a length byte: only the opcode.
            ("4d01", "024d"),
        ];
        for (script, expect) in cases {
            let script = hex::decode(script).unwrap();
            let mut got = HashWriter::new();
            write_script_code_without_separators(&mut got, &script);
            let mut want = HashWriter::new();
            want.bytes(&hex::decode(expect).unwrap());
            assert_eq!(
                got.finish(),
                want.finish(),
                "script {}",
                hex::encode(&script)
            );
        }
    }

    #[test]
    fn varint_matches_the_codec() {
        for v in [
            0u64,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
        ] {
            let mut a = HashWriter::new();
            a.varint(v);
            let mut enc = Vec::new();
            crate::codec::write_varint(&mut enc, v);
            let mut b = HashWriter::new();
            b.bytes(&enc);
            assert_eq!(a.finish(), b.finish());
        }
    }
}
