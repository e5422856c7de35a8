//! The work budget's cost model: what each step of the interpreter charges,
//! in abstract **work units**, before it does the work.
//!
//! The node bounds script execution with a validation timeout; a sans-io
//! verifier must be deterministic, so it counts work instead. One unit is
//! about the cost of copying one byte (allocation included); every other
//! step is weighted by its measured cost relative to a copy on the
//! calibration machine (`docs/formats.md`, "Known limits"; re-measure with
//! `cargo run --release -p bsv-format --example script_work`):
//!
//! | step | charge |
//! | --- | --- |
//! | every opcode read, executed or not (dispatch, a small push and its free) | [`OP`] |
//! | a new high-water mark of items on the two stacks | [`ITEM`] |
//! | a byte pushed, copied, moved, compared, allocated or spliced | [`COPY`] per byte |
//! | a byte scanned one at a time (`CastToBool`, minimal re-encoding) | [`SCAN`] per byte |
//! | a byte of a bitwise op (AND/OR/XOR/INVERT) | [`BITWISE`] per byte |
//! | a byte of a bit shift (LSHIFT/RSHIFT) | [`SHIFT`] per byte |
//! | a byte of a number decoded, encoded, added, subtracted, compared or shifted | [`NUM`] per byte |
//! | MUL, DIV, MOD on numbers of `a` and `b` bytes | [`LIMB_PRODUCT`] × ⌈a/8⌉ × ⌈b/8⌉ (schoolbook bound) |
//! | a byte hashed by SHA-256 / SHA-1 / RIPEMD-160, plus one 64-byte block of padding per hash | [`SHA256`] / [`SHA1`] / [`RIPEMD160`] per byte ([`hash`]) |
//! | a stack item shifted by OP_ROLL or an insertion (a 24-byte `Vec` header) | [`ITEM_MOVE`] per item |
//! | a script-code byte scanned by `FindAndDelete` | [`FIND_AND_DELETE`] per byte |
//! | a non-empty signature checked | [`SIG_CHECK`] + [`SHA256`] × the digest preimage's bytes |
//!
//! The digest preimage is bounded per algorithm ([`forkid_preimage`],
//! [`original_tx_bound`]): the FORKID digest hashes the script code plus a
//! fixed 188 bytes (plus the output at the input's index for
//! `SIGHASH_SINGLE`); the original digest hashes the whole transaction
//! without its unlocking scripts, plus the script code, which it also scans
//! twice for `OP_CODESEPARATOR`s ([`ORIGINAL_CODE`] per byte).
//!
//! Not charged, because it is proportional to bytes the caller already
//! parsed and happens a bounded number of times per input or per
//! transaction: the push-only pre-scan of the unlocking script, the
//! per-transaction `hashPrevouts`/`hashSequence`/`hashOutputs` (computed once
//! per transaction by the shared [`SighashCache`](crate::sighash::SighashCache)),
//! and the one-time size of the transaction for the original digest.

/// Every opcode read, executed or not.
pub(crate) const OP: u64 = 64;
/// Each time the two stacks together hold more items than ever before in
/// this input: growing the stack, the item's allocation and its eventual free.
pub(crate) const ITEM: u64 = 600;
/// Per byte copied, moved, compared, allocated or spliced (fresh memory's
/// page faults included).
pub(crate) const COPY: u64 = 4;
/// Per byte scanned one byte at a time (`CastToBool`, `MinimallyEncode`).
pub(crate) const SCAN: u64 = 3;
/// Per byte of OP_AND, OP_OR, OP_XOR, OP_INVERT.
pub(crate) const BITWISE: u64 = 2;
/// Per byte of OP_LSHIFT / OP_RSHIFT.
pub(crate) const SHIFT: u64 = 8;
/// Per byte of a number decoded, encoded, added, subtracted, compared or shifted.
pub(crate) const NUM: u64 = 6;
/// Per pair of 64-bit limbs in a multiplication, division or remainder.
pub(crate) const LIMB_PRODUCT: u64 = 2;
/// Per byte hashed with SHA-256 (also HASH160's and HASH256's first pass).
pub(crate) const SHA256: u64 = 10;
/// Per byte hashed with SHA-1.
pub(crate) const SHA1: u64 = 9;
/// Per byte hashed with RIPEMD-160.
pub(crate) const RIPEMD160: u64 = 28;
/// Per stack item shifted by a removal or insertion below the top.
pub(crate) const ITEM_MOVE: u64 = 24;
/// Per script-code byte scanned by `FindAndDelete` (pre-FORKID signatures).
pub(crate) const FIND_AND_DELETE: u64 = 5;
/// Per script-code byte of an original digest, on top of hashing it: the
/// two scans for `OP_CODESEPARATOR`s.
pub(crate) const ORIGINAL_CODE: u64 = 10;
/// One ECDSA verification (key and signature parsing included).
pub(crate) const SIG_CHECK: u64 = 250_000;

/// Fixed part of the FORKID digest preimage: version 4, hashPrevouts 32,
/// hashSequence 32, outpoint 36, script length up to 9, amount 8, sequence 4,
/// hashOutputs 32, lock time 4, type 4, rounded up for the second SHA-256.
const FORKID_FIXED: u64 = 156 + 32;

/// `n` bytes at `per_byte` units each, saturating.
pub(crate) fn bytes(n: usize, per_byte: u64) -> u64 {
    (n as u64).saturating_mul(per_byte)
}

/// One hash of `len` bytes at `per_byte`, counting the final padding block.
pub(crate) fn hash(len: usize, per_byte: u64) -> u64 {
    bytes(len.saturating_add(64), per_byte)
}

/// Multiplication, division or remainder of numbers of `a` and `b` bytes:
/// the schoolbook bound on 64-bit limb products. num-bigint multiplies large
/// operands with Karatsuba/Toom-3 and divides with schoolbook long division,
/// so this bounds both.
pub(crate) fn limb_product(a: usize, b: usize) -> u64 {
    let limbs = |n: usize| (n as u64).div_ceil(8).max(1);
    limbs(a)
        .saturating_mul(limbs(b))
        .saturating_mul(LIMB_PRODUCT)
}

/// Bytes hashed by one FORKID digest with a script code of `code_len` bytes,
/// plus `single_output` bytes for the output hashed under `SIGHASH_SINGLE`.
pub(crate) fn forkid_preimage(code_len: usize, single_output: usize) -> u64 {
    FORKID_FIXED
        .saturating_add(code_len as u64)
        .saturating_add(single_output as u64)
}

/// Upper bound of the original digest's preimage without the script code:
/// version, input count, each input's outpoint, empty script and sequence,
/// output count, each output, lock time and type.
pub(crate) fn original_tx_bound(tx: &crate::tx::Transaction) -> u64 {
    let outputs: u64 = tx
        .outputs
        .iter()
        .map(|o| 8 + 9 + o.locking_script.len() as u64)
        .sum();
    (4 + 9 + 9 + 4 + 4_u64)
        .saturating_add((tx.inputs.len() as u64).saturating_mul(36 + 9 + 4))
        .saturating_add(outputs)
}

/// A serialized output's size bound (satoshis, length prefix, script).
pub(crate) fn output_size(o: &crate::tx::TxOut) -> usize {
    8 + 9 + o.locking_script.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_saturate_instead_of_overflowing() {
        assert_eq!(bytes(usize::MAX, SHA256), u64::MAX);
        assert_eq!(limb_product(usize::MAX, usize::MAX), u64::MAX);
        assert_eq!(limb_product(0, 0), LIMB_PRODUCT);
        assert_eq!(limb_product(9, 16), 2 * 2 * LIMB_PRODUCT);
        assert_eq!(forkid_preimage(25, 0), FORKID_FIXED + 25);
    }
}
