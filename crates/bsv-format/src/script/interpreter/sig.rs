//! Signature and lock-time checks used by the CHECKSIG family and
//! CHECKLOCKTIMEVERIFY / CHECKSEQUENCEVERIFY (node `interpreter.cpp`:
//! `CheckSignatureEncoding`, `CheckPubKeyEncoding`, `CleanupScriptCode`,
//! `TransactionSignatureChecker::{CheckSig, CheckLockTime, CheckSequence}`),
//! OP_CHECKMULTISIG itself, and the work each of them charges.

use std::borrow::Cow;

use super::eval::Env;
use super::num::ScriptNum;
use super::stack::Stacks;
use super::work::{self, COPY, FIND_AND_DELETE, OP, ORIGINAL_CODE, SHA256, SIG_CHECK};
use super::{ScriptError, VerifyFlags};
use crate::keys;
use crate::script::push_data;
use crate::sighash::{
    uses_forkid_digest, SIGHASH_ANYONECANPAY, SIGHASH_BASE_MASK, SIGHASH_CHRONICLE, SIGHASH_FORKID,
    SIGHASH_SINGLE,
};
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
pub(crate) fn check_signature_encoding(
    sig: &[u8],
    flags: VerifyFlags,
    enforce_strict: bool,
) -> Result<(), ScriptError> {
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
    if flags.contains(VerifyFlags::STRICTENC) && !keys::is_compressed_or_uncompressed_pubkey(pubkey)
    {
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
        while code
            .get(pc..)
            .is_some_and(|rest| rest.starts_with(&pattern))
        {
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
pub(crate) fn script_code<'s>(
    code: &'s [u8],
    checksig_data: Option<&[u8]>,
    flags: VerifyFlags,
) -> Cow<'s, [u8]> {
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

/// Whether `CleanupScriptCode` runs `FindAndDelete` for a signature of this type.
fn needs_cleanup(sig_hash_type: u32, flags: VerifyFlags) -> bool {
    !flags.contains(VerifyFlags::SIGHASH_FORKID) || sig_hash_type & SIGHASH_FORKID == 0
}

/// Applies `FindAndDelete` for `sig` to `code` unless the signature uses
/// FORKID with FORKID enabled (node `CleanupScriptCode`).
pub(crate) fn cleanup_script_code(code: &mut Cow<'_, [u8]>, sig: &[u8], flags: VerifyFlags) {
    if needs_cleanup(hash_type(sig), flags) {
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
    let digest = env
        .sighash
        .signature_hash(env.input_index, code, env.satoshis, t, forkid);
    keys::verify_ecdsa(&digest, der, pubkey)
}

/// CHECKMULTISIG counts are always read as 4-byte numbers.
const MULTISIG_COUNT_LEN: usize = 4;

/// OP_CHECKMULTISIG: `dummy sig_1..sig_m m key_1..key_n n -- ok`, following
/// the node's order of reads, encoding checks and NULLFAIL/NULLDUMMY rules.
/// Leaves the stack with the arguments (and the dummy) removed.
pub(crate) fn check_multisig(
    env: &Env<'_>,
    stacks: &mut Stacks,
    code: &[u8],
    checksig_data: Option<&[u8]>,
    op_count: &mut u64,
) -> Result<bool, ScriptError> {
    let flags = env.flags;
    let mut i: usize = 1;
    stacks.need(i)?;
    let keys = ScriptNum::decode(stacks.top(i)?, env.require_minimal, MULTISIG_COUNT_LEN)?
        .to_i64_saturating();
    let n_keys = u64::try_from(keys).map_err(|_| ScriptError::PubkeyCount)?;
    if n_keys > env.max_pubkeys {
        return Err(ScriptError::PubkeyCount);
    }
    *op_count += n_keys;
    if *op_count > env.max_ops {
        return Err(ScriptError::OpCount);
    }
    let mut n_keys = n_keys as usize; // at most 2^32 - 1, and the stack holds that many
    i += 1;
    let mut ikey = i;
    // Depth of the last non-signature item; used for NULLFAIL on cleanup.
    let mut ikey2 = n_keys + 2;
    i += n_keys;
    stacks.need(i)?;
    let sigs = ScriptNum::decode(stacks.top(i)?, env.require_minimal, MULTISIG_COUNT_LEN)?
        .to_i64_saturating();
    let n_sigs = usize::try_from(sigs).map_err(|_| ScriptError::SigCount)?;
    if n_sigs > n_keys {
        return Err(ScriptError::SigCount);
    }
    let mut n_sigs = n_sigs;
    i += 1;
    let mut isig = i;
    i += n_sigs;
    stacks.need(i)?;
    // Every argument is read, checked and popped at most once.
    stacks.charge_work(work::bytes(i, OP))?;

    stacks.charge_work(script_code_work(code.len(), checksig_data, flags))?;
    let mut script_code = script_code(code, checksig_data, flags);
    for k in 0..n_sigs {
        let signature = SigShape::of(stacks.top(isig + k)?);
        stacks.charge_work(cleanup_work(signature, script_code.len(), flags))?;
        cleanup_script_code(&mut script_code, stacks.top(isig + k)?, flags);
    }
    let script_code: Cow<'_, [u8]> = script_code;

    let mut ok = true;
    while ok && n_sigs > 0 {
        check_signature_encoding(stacks.top(isig)?, flags, env.enforce_strict)?;
        check_pubkey_encoding(stacks.top(ikey)?, flags)?;
        stacks.charge_work(check_work(
            env,
            SigShape::of(stacks.top(isig)?),
            script_code.len(),
        ))?;
        if check_sig(env, stacks.top(isig)?, stacks.top(ikey)?, &script_code) {
            isig += 1;
            n_sigs -= 1;
        }
        ikey += 1;
        n_keys -= 1;
        // More signatures left than keys: too many failed.
        if n_sigs > n_keys {
            ok = false;
        }
    }

    // Pop the arguments; with NULLFAIL every signature of a failed check must be empty.
    while i > 1 {
        i -= 1;
        if !ok
            && flags.contains(VerifyFlags::NULLFAIL)
            && ikey2 == 0
            && !stacks.top(1)?.is_empty()
            && env.enforce_strict
        {
            return Err(ScriptError::SigNullFail);
        }
        ikey2 = ikey2.saturating_sub(1);
        stacks.pop()?;
    }
    // The extra (dummy) element consumed by the historical off-by-one.
    stacks.need(1)?;
    if flags.contains(VerifyFlags::NULLDUMMY) && !stacks.top(1)?.is_empty() && env.enforce_strict {
        return Err(ScriptError::SigNullDummy);
    }
    stacks.pop()?;
    Ok(ok)
}

/// What the work charged for a signature depends on: its length and type
/// byte (copied out so the stack can be charged while the signature is not
/// borrowed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigShape {
    len: usize,
    hash_type: u32,
}

impl SigShape {
    pub(crate) fn of(sig: &[u8]) -> SigShape {
        SigShape {
            len: sig.len(),
            hash_type: hash_type(sig),
        }
    }
}

/// Work of [`script_code`]: the post-Chronicle concatenation copies both parts.
pub(crate) fn script_code_work(
    code_len: usize,
    checksig_data: Option<&[u8]>,
    flags: VerifyFlags,
) -> u64 {
    match checksig_data {
        Some(extra) if flags.contains(VerifyFlags::CHRONICLE) => {
            work::bytes(code_len.saturating_add(extra.len()), COPY)
        }
        _ => 0,
    }
}

/// Work of [`cleanup_script_code`]: when `FindAndDelete` runs, a scan of the
/// code, a copy of the signature (the pattern) and at most one copy of the code.
pub(crate) fn cleanup_work(sig: SigShape, code_len: usize, flags: VerifyFlags) -> u64 {
    if needs_cleanup(sig.hash_type, flags) {
        work::bytes(code_len, FIND_AND_DELETE + COPY)
            .saturating_add(work::bytes(sig.len.saturating_add(5), COPY))
    } else {
        0
    }
}

/// Work of [`check_sig`]: nothing for an empty signature (it is simply
/// false); otherwise one ECDSA verification, the signature's parse and the
/// digest's preimage — for the FORKID digest the script code, the fixed
/// fields and, under `SIGHASH_SINGLE`, this input's output; for the
/// original digest the whole transaction and the script code (scanned
/// twice more for `OP_CODESEPARATOR`s).
pub(crate) fn check_work(env: &Env<'_>, sig: SigShape, code_len: usize) -> u64 {
    if sig.len == 0 {
        return 0;
    }
    let hashed = if uses_forkid_digest(
        sig.hash_type,
        env.flags.contains(VerifyFlags::SIGHASH_FORKID),
    ) {
        let single = sig.hash_type & SIGHASH_BASE_MASK == SIGHASH_SINGLE;
        let output = if single {
            env.tx()
                .outputs
                .get(env.input_index)
                .map_or(0, work::output_size)
        } else {
            0
        };
        work::forkid_preimage(code_len, output).saturating_mul(SHA256)
    } else {
        env.original_tx_bound()
            .saturating_mul(SHA256)
            .saturating_add(work::bytes(code_len, SHA256 + ORIGINAL_CODE))
    };
    SIG_CHECK
        .saturating_add(work::bytes(sig.len, COPY))
        .saturating_add(hashed)
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
    env.tx()
        .inputs
        .get(env.input_index)
        .is_some_and(|i| i.sequence != SEQUENCE_FINAL)
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
        assert_eq!(
            find_and_delete(&code, &sig).unwrap(),
            hex::decode("5152").unwrap()
        );
        // inside another push: not an opcode boundary, kept
        let code = hex::decode("0402aabb00").unwrap();
        assert_eq!(find_and_delete(&code, &sig), None);
        // a truncated push ends the scan; the tail is kept verbatim
        let code = hex::decode("02aabb4c05aa").unwrap();
        assert_eq!(
            find_and_delete(&code, &sig).unwrap(),
            hex::decode("4c05aa").unwrap()
        );
        // an empty signature deletes OP_0s
        assert_eq!(
            find_and_delete(&hex::decode("0051005100").unwrap(), &[]).unwrap(),
            vec![0x51, 0x51]
        );
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
