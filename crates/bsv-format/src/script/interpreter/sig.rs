//! Signature and lock-time checks used by the CHECKSIG family and
//! CHECKLOCKTIMEVERIFY / CHECKSEQUENCEVERIFY (node `interpreter.cpp`:
//! `CheckSignatureEncoding`, `CheckPubKeyEncoding`, `CleanupScriptCode`,
//! `TransactionSignatureChecker::{CheckSig, CheckLockTime, CheckSequence}`).

use std::borrow::Cow;

use super::eval::Env;
use super::num::ScriptNum;
use super::{ScriptError, VerifyFlags};
use crate::keys;
use crate::script::push_data;
use crate::sighash::{uses_forkid_digest, SIGHASH_ANYONECANPAY, SIGHASH_CHRONICLE, SIGHASH_FORKID};
use crate::tx::{LOCKTIME_THRESHOLD, SEQUENCE_FINAL};

/// BIP68: sequence bit 31 disables the relative lock.
const SEQUENCE_LOCKTIME_DISABLE_FLAG: i64 = 1 << 31;
/// BIP68: sequence bit 22 selects time (512 s units) over blocks.
const SEQUENCE_LOCKTIME_TYPE_FLAG: i64 = 1 << 22;
/// BIP68: the low 16 bits hold the relative lock value.
const SEQUENCE_LOCKTIME_MASK: i64 = 0x0000_ffff;

/// The sighash byte of a signature (its last byte; 0 for an empty signature).
pub(crate) fn hash_type(sig: &[u8]) -> u32 {
    sig.last().map_or(0, |&b| u32::from(b))
}

/// Whether the base type (ignoring CHRONICLE, FORKID, ANYONECANPAY) is
/// ALL, NONE or SINGLE (node `SigHashType::isDefined`).
fn is_defined_hash_type(t: u32) -> bool {
    let base = t & !(SIGHASH_CHRONICLE | SIGHASH_FORKID | SIGHASH_ANYONECANPAY);
    (1..=3).contains(&base)
}

/// Signature encoding rules (node `CheckSignatureEncoding`). An empty
/// signature always passes (it is the compact way to fail a CHECKSIG).
///
/// # Errors
/// `SigDer` (DERSIG, LOW_S or STRICTENC and not strict DER), `SigHighS`
/// (LOW_S, high S, non-malleable tx), `SigHashType`, `IllegalForkId`,
/// `IllegalChronicle`, `MustUseForkId` (STRICTENC).
pub(crate) fn check_signature_encoding(sig: &[u8], flags: VerifyFlags, enforce_strict: bool) -> Result<(), ScriptError> {
    if sig.is_empty() {
        return Ok(());
    }
    let der_flags = VerifyFlags::DERSIG | VerifyFlags::LOW_S | VerifyFlags::STRICTENC;
    if flags.intersects(der_flags) && !keys::is_strict_der(sig) {
        return Err(ScriptError::SigDer);
    }
    if flags.contains(VerifyFlags::LOW_S) && !keys::is_low_s(sig) && enforce_strict {
        return Err(ScriptError::SigHighS);
    }
    if flags.contains(VerifyFlags::STRICTENC) {
        let t = hash_type(sig);
        if !is_defined_hash_type(t) {
            return Err(ScriptError::SigHashType);
        }
        let uses_chronicle = t & SIGHASH_CHRONICLE != 0;
        let uses_forkid = t & SIGHASH_FORKID != 0;
        let forkid_enabled = flags.contains(VerifyFlags::SIGHASH_FORKID);
        if !forkid_enabled && uses_forkid {
            return Err(ScriptError::IllegalForkId);
        }
        if !flags.contains(VerifyFlags::CHRONICLE) && uses_chronicle {
            return Err(ScriptError::IllegalChronicle);
        }
        if forkid_enabled && !uses_forkid {
            return Err(ScriptError::MustUseForkId);
        }
    }
    Ok(())
}

/// Public key encoding rules (node `CheckPubKeyEncoding`).
///
/// # Errors
/// `PubkeyType` (STRICTENC and neither 33-byte compressed nor 65-byte
/// uncompressed), `NonCompressedPubkey` (COMPRESSED_PUBKEYTYPE and not compressed).
pub(crate) fn check_pubkey_encoding(pubkey: &[u8], flags: VerifyFlags) -> Result<(), ScriptError> {
    if flags.contains(VerifyFlags::STRICTENC) && !keys::is_compressed_or_uncompressed_pubkey(pubkey) {
        return Err(ScriptError::PubkeyType);
    }
    if flags.contains(VerifyFlags::COMPRESSED_PUBKEYTYPE) && !keys::is_compressed_pubkey(pubkey) {
        return Err(ScriptError::NonCompressedPubkey);
    }
    Ok(())
}

/// Removes every occurrence of the push of `sig` that starts on an opcode
/// boundary of `code` (node `CScript::FindAndDelete(CScript() << sig)`), as
/// the pre-fork digest requires for signatures without FORKID. Returns `None`
/// when nothing matched (the common case: no copy is made). A push that runs
/// past the end stops the scan; the rest is kept verbatim, as in the node.
pub(crate) fn find_and_delete(code: &[u8], sig: &[u8]) -> Option<Vec<u8>> {
    let mut pattern = Vec::with_capacity(sig.len() + 5);
    push_data(&mut pattern, sig);
    let mut out: Option<Vec<u8>> = None;
    let mut copied_to = 0usize; // `code[..copied_to]` is already accounted for in `out`
    let mut pc = 0usize;
    loop {
        // Skip every copy of the pattern that starts at this opcode boundary.
        let run_start = pc;
        while code.get(pc..).is_some_and(|rest| rest.starts_with(&pattern)) {
            pc += pattern.len();
        }
        if pc != run_start {
            let buf = out.get_or_insert_with(|| Vec::with_capacity(code.len()));
            buf.extend_from_slice(code.get(copied_to..run_start).unwrap_or(&[]));
            copied_to = pc;
        }
        match next_op_end(code, pc) {
            Some(end) => pc = end,
            None => break,
        }
    }
    let mut buf = out?;
    buf.extend_from_slice(code.get(copied_to..).unwrap_or(&[]));
    Some(buf)
}

/// The offset just past the opcode at `pc`, or `None` at the end of `code` or
/// for a push that runs past it (node `GetOp` failing).
fn next_op_end(code: &[u8], pc: usize) -> Option<usize> {
    let &op = code.get(pc)?;
    let mut at = pc + 1;
    let len = match op {
        0x00..=0x4b => usize::from(op),
        0x4c => {
            let n = usize::from(*code.get(at)?);
            at += 1;
            n
        }
        0x4d => {
            let b = code.get(at..at + 2)?;
            at += 2;
            usize::from(u16::from_le_bytes([b[0], b[1]]))
        }
        0x4e => {
            let b = code.get(at..at + 4)?;
            at += 4;
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        }
        _ => 0,
    };
    let end = at.checked_add(len)?;
    (end <= code.len()).then_some(end)
}

/// The script code a CHECKSIG signs: `code` (from the last executed
/// OP_CODESEPARATOR to the end of the running script), followed — for a
/// CHECKSIG in the unlocking script under CHRONICLE — by the whole locking
/// script (`checksig_data`).
pub(crate) fn script_code<'s>(code: &'s [u8], checksig_data: Option<&[u8]>, flags: VerifyFlags) -> Cow<'s, [u8]> {
    match checksig_data {
        Some(extra) if flags.contains(VerifyFlags::CHRONICLE) => {
            let mut v = Vec::with_capacity(code.len() + extra.len());
            v.extend_from_slice(code);
            v.extend_from_slice(extra);
            Cow::Owned(v)
        }
        _ => Cow::Borrowed(code),
    }
}

/// Applies `FindAndDelete` for `sig` to `code` unless the signature uses
/// FORKID with FORKID enabled (node `CleanupScriptCode`).
pub(crate) fn cleanup_script_code(code: &mut Cow<'_, [u8]>, sig: &[u8], flags: VerifyFlags) {
    if !flags.contains(VerifyFlags::SIGHASH_FORKID) || hash_type(sig) & SIGHASH_FORKID == 0 {
        if let Some(cleaned) = find_and_delete(code, sig) {
            *code = Cow::Owned(cleaned);
        }
    }
}

/// Verifies `sig` (DER ‖ sighash byte) by `pubkey` over the digest of the
/// spending transaction with `code` as script code. An empty signature is
/// simply false.
pub(crate) fn check_sig(env: &Env<'_>, sig: &[u8], pubkey: &[u8], code: &[u8]) -> bool {
    let Some((&t, der)) = sig.split_last() else {
        return false;
    };
    let t = u32::from(t);
    // FORKID digest only with FORKID enabled, the FORKID bit set and the
    // CHRONICLE bit clear (node `SignatureHash`).
    let forkid = uses_forkid_digest(t, env.flags.contains(VerifyFlags::SIGHASH_FORKID));
    let digest = env.sighash.signature_hash(env.input_index, code, env.satoshis, t, forkid);
    keys::verify_ecdsa(&digest, der, pubkey)
}

/// BIP65 comparison of a CHECKLOCKTIMEVERIFY operand with the transaction
/// (node `CheckLockTime`).
pub(crate) fn check_lock_time(env: &Env<'_>, lock_time: &ScriptNum) -> bool {
    let tx_lock = i64::from(env.tx().lock_time);
    let n = lock_time.to_i64_saturating();
    let threshold = i64::from(LOCKTIME_THRESHOLD);
    if (tx_lock < threshold) != (n < threshold) {
        return false;
    }
    if n > tx_lock {
        return false;
    }
    env.tx().inputs.get(env.input_index).is_some_and(|i| i.sequence != SEQUENCE_FINAL)
}

/// BIP112 comparison of a CHECKSEQUENCEVERIFY operand with this input's
/// sequence (node `CheckSequence`).
pub(crate) fn check_sequence(env: &Env<'_>, sequence: &ScriptNum) -> bool {
    let Some(input) = env.tx().inputs.get(env.input_index) else {
        return false;
    };
    let tx_sequence = i64::from(input.sequence);
    if env.tx().version < 2 {
        return false;
    }
    if tx_sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
        return false;
    }
    let mask = SEQUENCE_LOCKTIME_TYPE_FLAG | SEQUENCE_LOCKTIME_MASK;
    let tx_masked = tx_sequence & mask;
    let n_masked = sequence.to_i64_saturating() & mask;
    if (tx_masked < SEQUENCE_LOCKTIME_TYPE_FLAG) != (n_masked < SEQUENCE_LOCKTIME_TYPE_FLAG) {
        return false;
    }
    n_masked <= tx_masked
}

/// Whether the CHECKSEQUENCEVERIFY operand has the disable bit set (then the
/// opcode is a NOP).
pub(crate) fn sequence_disabled(sequence: &ScriptNum) -> bool {
    sequence.to_i64_saturating() & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_delete_removes_pushes_on_opcode_boundaries_only() {
        let sig = [0xaa, 0xbb];
        // OP_1 <aabb> OP_2 <aabb><aabb> : three matches, all removed
        let code = hex::decode("5102aabb5202aabb02aabb").unwrap();
        assert_eq!(find_and_delete(&code, &sig).unwrap(), hex::decode("5152").unwrap());
        // inside another push: not an opcode boundary, kept
        let code = hex::decode("0402aabb00").unwrap();
        assert_eq!(find_and_delete(&code, &sig), None);
        // a truncated push ends the scan; the tail is kept verbatim
        let code = hex::decode("02aabb4c05aa").unwrap();
        assert_eq!(find_and_delete(&code, &sig).unwrap(), hex::decode("4c05aa").unwrap());
        // an empty signature deletes OP_0s
        assert_eq!(find_and_delete(&hex::decode("0051005100").unwrap(), &[]).unwrap(), vec![0x51, 0x51]);
    }

    #[test]
    fn hash_type_definition_ignores_the_flag_bits() {
        for t in [0x01, 0x02, 0x03, 0x41, 0x61, 0xc3, 0xe1, 0x21] {
            assert!(is_defined_hash_type(t), "{t:#x}");
        }
        for t in [0x00, 0x04, 0x40, 0x80, 0x05, 0x11] {
            assert!(!is_defined_hash_type(t), "{t:#x}");
        }
        assert_eq!(hash_type(&[]), 0);
        assert_eq!(hash_type(&[0x30, 0x41]), 0x41);
    }
}
