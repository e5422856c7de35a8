//! Script templates escrowd builds and recognises: P2PKH, `OP_FALSE
//! OP_RETURN` data carriers and the escrow output of `DESIGN.md` §3.1, plus
//! push helpers and input signing.
//!
//! The escrow locking script (both legs use it):
//!
//! ```text
//! OP_IF
//!   OP_SIZE 32 OP_EQUALVERIFY OP_SHA256 <H> OP_EQUALVERIFY <beneficiary_pubkey> OP_CHECKSIG
//! OP_ELSE
//!   OP_2 <funder_pubkey> <beneficiary_pubkey> OP_2 OP_CHECKMULTISIG
//! OP_ENDIF
//! ```
//!
//! byte for byte (148 bytes; `32` is the minimal number push `01 20`, keys
//! are 33-byte compressed SEC):
//!
//! ```text
//! 63 82 01 20 88 a8 20 <H:32> 88 21 <beneficiary:33> ac
//! 67 52 21 <funder:33> 21 <beneficiary:33> 52 ae 68
//! ```
//!
//! - claim: `<sig_beneficiary> <s> OP_1`, `s` exactly 32 bytes, `SHA256(s) = H`;
//! - refund / cancel: `OP_0 <sig_funder> <sig_beneficiary> OP_0` (the first
//!   `OP_0` is CHECKMULTISIG's dummy, the last selects `OP_ELSE`).
//!
//! Every template satisfies the strict (version 1) rules of
//! `bsv-formats.md` §9.3: minimal pushes, push-only unlocking scripts,
//! `MINIMALIF` selectors (`OP_1` / `OP_0`), empty multisig dummy.
//!
//! # Layout
//! - [`TemplateError`].
//! - Pushes: [`push_data`], [`push_data_minimal`].
//! - P2PKH: [`p2pkh_lock`], [`p2pkh_unlock`], [`p2pkh_hash`].
//! - Data: [`op_return_data`].
//! - Escrow: [`escrow_lock`], [`escrow_claim_unlock`], [`escrow_refund_unlock`], [`EscrowScript`].
//! - Signing: [`sign_input`].

use super::opcodes::*;
use super::Script;
use crate::keys::{is_compressed_pubkey, PrivateKey, PublicKey};
use crate::sighash::{
    signature_hash, SIGHASH_ALL, SIGHASH_BASE_MASK, SIGHASH_CHRONICLE, SIGHASH_FORKID,
    SIGHASH_SINGLE,
};
use crate::tx::Transaction;

/// Longest signature (DER plus sighash-type byte) an unlocking template
/// accepts: 73 bytes, the most the node's strict DER check (BIP66) allows.
pub const MAX_SIGNATURE_LEN: usize = 73;

/// Length of the escrow locking script in bytes.
pub const ESCROW_SCRIPT_LEN: usize = 148;

/// A fault building or recognising a template, or signing an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TemplateError {
    /// Data longer than `u32::MAX` bytes cannot be pushed (PUSHDATA4 limit).
    #[error("push of {len} bytes exceeds the PUSHDATA4 limit")]
    PushTooLarge {
        /// Length of the data.
        len: usize,
    },
    /// A signature longer than [`MAX_SIGNATURE_LEN`] can never pass the node's
    /// DER check.
    #[error("signature of {len} bytes is longer than the {MAX_SIGNATURE_LEN}-byte DER maximum")]
    SignatureTooLong {
        /// Length of the signature given.
        len: usize,
    },
    /// The script does not follow the template; `offset` is the byte where
    /// it first deviates (the script length if it ends early).
    #[error("script does not match the template at byte offset {offset}")]
    Mismatch {
        /// Byte offset into the script.
        offset: usize,
    },
    /// A public key in the template is not a valid compressed key.
    #[error("invalid public key at byte offset {offset}")]
    InvalidPublicKey {
        /// Byte offset of the key's push opcode.
        offset: usize,
    },
    /// The input index is not an input of the transaction.
    #[error("input {index} out of range ({inputs} inputs)")]
    InputIndexOutOfRange {
        /// The index given.
        index: usize,
        /// Number of inputs in the transaction.
        inputs: usize,
    },
    /// [`sign_input`] only makes signatures the node accepts on BSV: FORKID
    /// set, CHRONICLE clear, base type ALL/NONE/SINGLE, one byte.
    #[error("sighash type {sighash_type:#x} is not one escrowd signs with (FORKID, no CHRONICLE, base 1..3)")]
    UnsupportedSighashType {
        /// The type given.
        sighash_type: u32,
    },
}

// ---------------------------------------------------------------------------
// Pushes
// ---------------------------------------------------------------------------

/// [`crate::script::push_data`] with a length check: data over `u32::MAX`
/// bytes cannot be pushed by any script.
///
/// # Errors
/// [`TemplateError::PushTooLarge`] (nothing is appended).
pub fn push_data(out: &mut Vec<u8>, data: &[u8]) -> Result<(), TemplateError> {
    check_push_len(data.len())?;
    crate::script::push_data(out, data);
    Ok(())
}

/// [`crate::script::push_data_minimal`] (the node's MINIMALDATA form) with a
/// length check. Use it for anything the interpreter executes.
///
/// # Errors
/// As [`push_data`].
pub fn push_data_minimal(out: &mut Vec<u8>, data: &[u8]) -> Result<(), TemplateError> {
    check_push_len(data.len())?;
    crate::script::push_data_minimal(out, data);
    Ok(())
}

fn check_push_len(len: usize) -> Result<(), TemplateError> {
    match u32::try_from(len) {
        Ok(_) => Ok(()),
        Err(_) => Err(TemplateError::PushTooLarge { len }),
    }
}

/// Pushes a signature (at most [`MAX_SIGNATURE_LEN`] bytes) minimally.
fn push_signature(out: &mut Vec<u8>, sig: &[u8]) -> Result<(), TemplateError> {
    if sig.len() > MAX_SIGNATURE_LEN {
        return Err(TemplateError::SignatureTooLong { len: sig.len() });
    }
    push_data_minimal(out, sig)
}

/// Pushes 1–75 bytes directly (fixed-size template fields: hashes, keys).
fn push_direct(out: &mut Vec<u8>, data: &[u8]) {
    debug_assert!((1..=0x4b).contains(&data.len()));
    out.push(data.len() as u8);
    out.extend_from_slice(data);
}

// ---------------------------------------------------------------------------
// P2PKH
// ---------------------------------------------------------------------------

/// P2PKH locking script: `OP_DUP OP_HASH160 <pubkey_hash:20> OP_EQUALVERIFY
/// OP_CHECKSIG` (25 bytes, `76 a9 14 … 88 ac`).
pub fn p2pkh_lock(pubkey_hash: &[u8; 20]) -> Script {
    let mut s = Vec::with_capacity(25);
    s.extend_from_slice(&[OP_DUP, OP_HASH160]);
    push_direct(&mut s, pubkey_hash);
    s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
    Script::from_bytes(s)
}

/// The 20-byte public-key hash of a P2PKH locking script, or `None` if the
/// script is not exactly that template.
pub fn p2pkh_hash(script: &Script) -> Option<[u8; 20]> {
    match script.as_bytes() {
        [OP_DUP, OP_HASH160, 0x14, hash @ .., OP_EQUALVERIFY, OP_CHECKSIG] => {
            <[u8; 20]>::try_from(hash).ok()
        }
        _ => None,
    }
}

/// P2PKH unlocking script: `<sig_with_hashtype> <pubkey:33>` (compressed key).
///
/// # Errors
/// [`TemplateError::SignatureTooLong`] if the signature exceeds
/// [`MAX_SIGNATURE_LEN`].
pub fn p2pkh_unlock(sig_with_hashtype: &[u8], pubkey: &PublicKey) -> Result<Script, TemplateError> {
    let mut s = Vec::with_capacity(1 + sig_with_hashtype.len() + 34);
    push_signature(&mut s, sig_with_hashtype)?;
    push_direct(&mut s, &pubkey.to_compressed());
    Ok(Script::from_bytes(s))
}

// ---------------------------------------------------------------------------
// OP_RETURN data
// ---------------------------------------------------------------------------

/// A provably unspendable data output script: `OP_FALSE OP_RETURN` followed
/// by one push per item, each with [`push_data`] (shortest push opcode, bytes
/// kept as data: nothing after `OP_RETURN` executes, so `MINIMALDATA` does
/// not apply, and data readers expect pushes, not `OP_1..OP_16`).
///
/// # Errors
/// [`TemplateError::PushTooLarge`] for an item over `u32::MAX` bytes.
pub fn op_return_data(items: &[&[u8]]) -> Result<Script, TemplateError> {
    let mut s = Vec::with_capacity(2 + items.iter().map(|d| d.len() + 5).sum::<usize>());
    s.extend_from_slice(&[OP_FALSE, OP_RETURN]);
    for item in items {
        push_data(&mut s, item)?;
    }
    Ok(Script::from_bytes(s))
}

// ---------------------------------------------------------------------------
// Escrow
// ---------------------------------------------------------------------------

/// The escrow locking script of `DESIGN.md` §3.1 for hashlock `H`
/// (`hash_lock = SHA256(s)`), with compressed keys ([`ESCROW_SCRIPT_LEN`] bytes).
pub fn escrow_lock(hash_lock: &[u8; 32], beneficiary: &PublicKey, funder: &PublicKey) -> Script {
    let beneficiary = beneficiary.to_compressed();
    let mut s = Vec::with_capacity(ESCROW_SCRIPT_LEN);
    s.extend_from_slice(&[OP_IF, OP_SIZE, 0x01, 0x20, OP_EQUALVERIFY, OP_SHA256]);
    push_direct(&mut s, hash_lock);
    s.push(OP_EQUALVERIFY);
    push_direct(&mut s, &beneficiary);
    s.extend_from_slice(&[OP_CHECKSIG, OP_ELSE, OP_2]);
    push_direct(&mut s, &funder.to_compressed());
    push_direct(&mut s, &beneficiary);
    s.extend_from_slice(&[OP_2, OP_CHECKMULTISIG, OP_ENDIF]);
    Script::from_bytes(s)
}

/// The claim (execution) unlocking script: `<sig_beneficiary> <s:32> OP_1`.
///
/// # Errors
/// [`TemplateError::SignatureTooLong`].
pub fn escrow_claim_unlock(
    sig_beneficiary: &[u8],
    preimage: &[u8; 32],
) -> Result<Script, TemplateError> {
    let mut s = Vec::with_capacity(sig_beneficiary.len() + 36);
    push_signature(&mut s, sig_beneficiary)?;
    push_direct(&mut s, preimage);
    s.push(OP_1);
    Ok(Script::from_bytes(s))
}

/// The refund / cooperative-cancel unlocking script:
/// `OP_0 <sig_funder> <sig_beneficiary> OP_0` (multisig dummy, the two
/// signatures in key order, `OP_ELSE` selector).
///
/// # Errors
/// [`TemplateError::SignatureTooLong`].
pub fn escrow_refund_unlock(
    sig_funder: &[u8],
    sig_beneficiary: &[u8],
) -> Result<Script, TemplateError> {
    let mut s = Vec::with_capacity(sig_funder.len() + sig_beneficiary.len() + 4);
    s.push(OP_0);
    push_signature(&mut s, sig_funder)?;
    push_signature(&mut s, sig_beneficiary)?;
    s.push(OP_0);
    Ok(Script::from_bytes(s))
}

/// The parameters of an escrow locking script, recognised exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowScript {
    /// `H = SHA256(s)`.
    pub hash_lock: [u8; 32],
    /// The key that may claim with `s`, and co-signs the refund.
    pub beneficiary: PublicKey,
    /// The key that funded the escrow and gets the refund.
    pub funder: PublicKey,
}

/// One element of the escrow template.
#[derive(Clone, Copy)]
enum Part {
    Op(u8),
    /// A direct push of exactly this many bytes.
    Push(usize),
}

const ESCROW_TEMPLATE: [Part; 16] = [
    Part::Op(OP_IF),
    Part::Op(OP_SIZE),
    Part::Push(1), // the number 32, checked below
    Part::Op(OP_EQUALVERIFY),
    Part::Op(OP_SHA256),
    Part::Push(32), // H
    Part::Op(OP_EQUALVERIFY),
    Part::Push(33), // beneficiary
    Part::Op(OP_CHECKSIG),
    Part::Op(OP_ELSE),
    Part::Op(OP_2),
    Part::Push(33), // funder
    Part::Push(33), // beneficiary again
    Part::Op(OP_2),
    Part::Op(OP_CHECKMULTISIG),
    Part::Op(OP_ENDIF),
];

impl EscrowScript {
    /// Recognises the escrow template of `DESIGN.md` §3.1 exactly: the same
    /// opcodes, minimal direct pushes, the number `32` as `01 20`, 33-byte
    /// compressed keys that are valid points, the same beneficiary key in
    /// both branches, nothing before or after.
    ///
    /// # Errors
    /// [`TemplateError::Mismatch`] at the first deviating byte,
    /// [`TemplateError::InvalidPublicKey`] at a key that does not parse.
    pub fn parse(script: &Script) -> Result<EscrowScript, TemplateError> {
        let bytes = script.as_bytes();
        let mut pos = 0usize;
        let mut pushes: [(&[u8], usize); 5] = [(&[], 0); 5];
        let mut n_push = 0;
        for part in &ESCROW_TEMPLATE {
            let Some(&op) = bytes.get(pos) else {
                return Err(TemplateError::Mismatch { offset: pos });
            };
            match *part {
                Part::Op(want) => {
                    if op != want {
                        return Err(TemplateError::Mismatch { offset: pos });
                    }
                    pos += 1;
                }
                Part::Push(len) => {
                    if usize::from(op) != len {
                        return Err(TemplateError::Mismatch { offset: pos });
                    }
                    let data =
                        bytes
                            .get(pos + 1..pos + 1 + len)
                            .ok_or(TemplateError::Mismatch {
                                offset: bytes.len(),
                            })?;
                    if let Some(slot) = pushes.get_mut(n_push) {
                        *slot = (data, pos);
                    }
                    n_push += 1;
                    pos += 1 + len;
                }
            }
        }
        if pos != bytes.len() {
            return Err(TemplateError::Mismatch { offset: pos });
        }
        let [(number, number_at), (hash, hash_at), (beneficiary, b_at), (funder, f_at), (beneficiary2, b2_at)] =
            pushes;
        if number != [0x20] {
            return Err(TemplateError::Mismatch {
                offset: number_at + 1,
            });
        }
        if beneficiary2 != beneficiary {
            return Err(TemplateError::Mismatch { offset: b2_at });
        }
        let key = |data: &[u8], at: usize| {
            if !is_compressed_pubkey(data) {
                return Err(TemplateError::InvalidPublicKey { offset: at });
            }
            PublicKey::from_sec(data).map_err(|_| TemplateError::InvalidPublicKey { offset: at })
        };
        let beneficiary = key(beneficiary, b_at)?;
        let funder = key(funder, f_at)?;
        let hash_lock =
            <[u8; 32]>::try_from(hash).map_err(|_| TemplateError::Mismatch { offset: hash_at })?;
        Ok(EscrowScript {
            hash_lock,
            beneficiary,
            funder,
        })
    }

    /// The locking script for these parameters ([`escrow_lock`]).
    pub fn to_script(&self) -> Script {
        escrow_lock(&self.hash_lock, &self.beneficiary, &self.funder)
    }
}

// ---------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------

/// Signs input `input_index` of `tx`, which spends an output locked by
/// `locking_script` holding `satoshis`, with the FORKID digest
/// (`bsv-formats.md` §8.2; the whole locking script is the script code, as
/// our templates have no `OP_CODESEPARATOR`). Returns the DER signature
/// (low-S, RFC 6979) followed by the sighash-type byte, ready to push.
///
/// `sighash_type` must have `SIGHASH_FORKID`, not `SIGHASH_CHRONICLE`, a base
/// type of ALL, NONE or SINGLE, and fit in one byte — e.g. `0x41`
/// (ALL|FORKID) or `0xC3` (SINGLE|ANYONECANPAY|FORKID, the refund).
///
/// # Errors
/// [`TemplateError::InputIndexOutOfRange`], [`TemplateError::UnsupportedSighashType`].
pub fn sign_input(
    tx: &Transaction,
    input_index: usize,
    locking_script: &Script,
    satoshis: u64,
    sighash_type: u32,
    key: &PrivateKey,
) -> Result<Vec<u8>, TemplateError> {
    if input_index >= tx.inputs.len() {
        return Err(TemplateError::InputIndexOutOfRange {
            index: input_index,
            inputs: tx.inputs.len(),
        });
    }
    let base = sighash_type & SIGHASH_BASE_MASK;
    let type_byte = u8::try_from(sighash_type).ok();
    let supported = sighash_type & SIGHASH_FORKID != 0
        && sighash_type & SIGHASH_CHRONICLE == 0
        && (SIGHASH_ALL..=SIGHASH_SINGLE).contains(&base);
    let Some(type_byte) = type_byte.filter(|_| supported) else {
        return Err(TemplateError::UnsupportedSighashType { sighash_type });
    };
    let digest = signature_hash(
        tx,
        input_index,
        locking_script.as_bytes(),
        satoshis,
        sighash_type,
        true,
    );
    let mut sig = key.sign_digest(&digest);
    sig.push(type_byte);
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_data_uses_the_shortest_opcode() {
        let cases: &[(usize, &str)] = &[
            (0, "00"),
            (1, "01"),
            (75, "4b"),
            (76, "4c4c"),
            (255, "4cff"),
            (256, "4d0001"),
            (65535, "4dffff"),
            (65536, "4e00000100"),
        ];
        for &(len, prefix) in cases {
            let data = vec![0x07u8; len];
            let mut out = Vec::new();
            push_data(&mut out, &data).unwrap();
            let p = hex::decode(prefix).unwrap();
            assert_eq!(&out[..p.len()], &p[..], "len {len}");
            assert_eq!(out.len(), p.len() + len);
            // The chunk parser reads it back as one push of the same bytes.
            let script = Script::from_bytes(out);
            let chunks: Vec<_> = script.chunks().collect::<Result<_, _>>().unwrap();
            assert_eq!(chunks.len(), 1);
            assert_eq!(chunks[0].data, Some(&data[..]));
        }
    }

    #[test]
    fn pushes_beyond_pushdata4_are_refused() {
        assert_eq!(check_push_len(u32::MAX as usize), Ok(()));
        if let Some(len) = (u32::MAX as usize).checked_add(1) {
            assert_eq!(
                check_push_len(len),
                Err(TemplateError::PushTooLarge { len })
            );
        }
        let mut out = vec![0xaa];
        push_data(&mut out, &[0x05]).unwrap();
        push_data_minimal(&mut out, &[0x05]).unwrap();
        assert_eq!(out, [0xaa, 0x01, 0x05, OP_5]);
    }

    #[test]
    fn push_data_minimal_follows_minimaldata() {
        let enc = |d: &[u8]| {
            let mut out = Vec::new();
            push_data_minimal(&mut out, d).unwrap();
            hex::encode(out)
        };
        assert_eq!(enc(&[]), "00");
        assert_eq!(enc(&[1]), "51");
        assert_eq!(enc(&[16]), "60");
        assert_eq!(enc(&[0x81]), "4f");
        assert_eq!(enc(&[0]), "0100");
        assert_eq!(enc(&[17]), "0111");
        assert_eq!(enc(&[0x80]), "0180");
        assert_eq!(enc(&[1, 2]), "020102");
    }
}
