//! The escrow legs of DESIGN.md §3.1 run through the interpreter under every
//! strict rule (standard post-Chronicle flags plus MINIMALIF), as version-1
//! transactions: claim, refund with a fee input added after the beneficiary
//! signed, cooperative cancel — and the ways each must fail.

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::interpreter::{verify_input, ScriptError, VerifyFlags};
use bsv_format::script::templates::{
    escrow_claim_unlock, escrow_lock, escrow_refund_unlock, p2pkh_lock, p2pkh_unlock, sign_input,
};
use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_ANYONECANPAY, SIGHASH_FORKID, SIGHASH_SINGLE};
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut};
use bsv_format::{Script, Txid};

const ALL: u32 = SIGHASH_ALL | SIGHASH_FORKID;
const SINGLE_ACP: u32 = SIGHASH_SINGLE | SIGHASH_ANYONECANPAY | SIGHASH_FORKID;
const ESCROW_SATS: u64 = 50_000;
const REFUND_HEIGHT: u32 = 1_000;

fn key(tag: &str) -> PrivateKey {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).unwrap()
}

fn strict() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle() | VerifyFlags::MINIMALIF
}

struct Escrow {
    funder: PrivateKey,
    beneficiary: PrivateKey,
    preimage: [u8; 32],
    lock: Script,
    outpoint: Outpoint,
}

fn escrow() -> Escrow {
    let funder = key("funder");
    let beneficiary = key("beneficiary");
    let preimage = sha256(b"saga secret");
    let lock = escrow_lock(
        &sha256(&preimage),
        &beneficiary.public_key(),
        &funder.public_key(),
    );
    let outpoint = Outpoint::new(Txid(sha256(b"reservation")), 0);
    Escrow {
        funder,
        beneficiary,
        preimage,
        lock,
        outpoint,
    }
}

fn spend(
    outpoint: Outpoint,
    sequence: u32,
    lock_time: u32,
    to: &PrivateKey,
    satoshis: u64,
) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: outpoint,
            unlocking_script: Script::default(),
            sequence,
        }],
        outputs: vec![TxOut {
            satoshis,
            locking_script: p2pkh_lock(&to.public_key().hash160()),
        }],
        lock_time,
    }
}

#[test]
fn claim_with_the_preimage_passes_every_strict_rule() {
    let e = escrow();
    let mut tx = spend(
        e.outpoint,
        0xffff_ffff,
        0,
        &e.beneficiary,
        ESCROW_SATS - 200,
    );
    let sig = sign_input(&tx, 0, &e.lock, ESCROW_SATS, ALL, &e.beneficiary).unwrap();
    tx.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &e.preimage).unwrap();
    assert_eq!(verify_input(&tx, 0, &e.lock, ESCROW_SATS, strict()), Ok(()));
}

#[test]
fn claim_with_a_wrong_preimage_or_key_fails() {
    let e = escrow();
    let mut tx = spend(
        e.outpoint,
        0xffff_ffff,
        0,
        &e.beneficiary,
        ESCROW_SATS - 200,
    );
    let sig = sign_input(&tx, 0, &e.lock, ESCROW_SATS, ALL, &e.beneficiary).unwrap();
    tx.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &[0x55; 32]).unwrap();
    assert_eq!(
        verify_input(&tx, 0, &e.lock, ESCROW_SATS, strict()),
        Err(ScriptError::EqualVerify)
    );

    // The funder cannot take the claim branch even with the preimage.
    let sig = sign_input(&tx, 0, &e.lock, ESCROW_SATS, ALL, &e.funder).unwrap();
    tx.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &e.preimage).unwrap();
    assert_eq!(
        verify_input(&tx, 0, &e.lock, ESCROW_SATS, strict()),
        Err(ScriptError::SigNullFail)
    );

    // A signature over another amount does not verify either.
    let sig = sign_input(&tx, 0, &e.lock, ESCROW_SATS + 1, ALL, &e.beneficiary).unwrap();
    tx.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &e.preimage).unwrap();
    assert_eq!(
        verify_input(&tx, 0, &e.lock, ESCROW_SATS, strict()),
        Err(ScriptError::SigNullFail)
    );
}

#[test]
fn claim_with_a_preimage_of_the_wrong_size_fails_the_size_check() {
    let e = escrow();
    let mut tx = spend(
        e.outpoint,
        0xffff_ffff,
        0,
        &e.beneficiary,
        ESCROW_SATS - 200,
    );
    let sig = sign_input(&tx, 0, &e.lock, ESCROW_SATS, ALL, &e.beneficiary).unwrap();
    let mut unlock = Vec::new();
    bsv_format::script::push_data_minimal(&mut unlock, &sig);
    bsv_format::script::push_data_minimal(&mut unlock, &[0x22; 33]);
    unlock.push(bsv_format::script::opcodes::OP_1);
    tx.inputs[0].unlocking_script = Script::from_bytes(unlock);
    assert_eq!(
        verify_input(&tx, 0, &e.lock, ESCROW_SATS, strict()),
        Err(ScriptError::EqualVerify)
    );
}

/// The beneficiary signs the refund with SINGLE|ANYONECANPAY before the
/// reservation is broadcast; the funder later adds a fee input and change and
/// signs only its own inputs. The beneficiary's signature still holds.
#[test]
fn refund_survives_an_added_fee_input_and_change() {
    let e = escrow();
    let mut refund = spend(
        e.outpoint,
        0xffff_fffe,
        REFUND_HEIGHT,
        &e.funder,
        ESCROW_SATS,
    );
    let sig_beneficiary =
        sign_input(&refund, 0, &e.lock, ESCROW_SATS, SINGLE_ACP, &e.beneficiary).unwrap();

    // Later: a fee input (P2PKH of the funder) and its change at index 1.
    let fee_lock = p2pkh_lock(&e.funder.public_key().hash160());
    let fee_outpoint = Outpoint::new(Txid(sha256(b"fee coin")), 3);
    refund.inputs.push(TxIn {
        prev_out: fee_outpoint,
        unlocking_script: Script::default(),
        sequence: 0xffff_ffff,
    });
    refund.outputs.push(TxOut {
        satoshis: 9_700,
        locking_script: fee_lock.clone(),
    });
    let sig_funder = sign_input(&refund, 0, &e.lock, ESCROW_SATS, ALL, &e.funder).unwrap();
    refund.inputs[0].unlocking_script =
        escrow_refund_unlock(&sig_funder, &sig_beneficiary).unwrap();
    let sig_fee = sign_input(&refund, 1, &fee_lock, 10_000, ALL, &e.funder).unwrap();
    refund.inputs[1].unlocking_script = p2pkh_unlock(&sig_fee, &e.funder.public_key()).unwrap();

    assert_eq!(
        verify_input(&refund, 0, &e.lock, ESCROW_SATS, strict()),
        Ok(())
    );
    assert_eq!(
        verify_input(&refund, 1, &fee_lock, 10_000, strict()),
        Ok(())
    );

    // Changing the refund output (index 0) breaks the beneficiary's SINGLE signature.
    let mut stolen = refund.clone();
    stolen.outputs[0].locking_script = p2pkh_lock(&key("thief").public_key().hash160());
    let sig_funder = sign_input(&stolen, 0, &e.lock, ESCROW_SATS, ALL, &e.funder).unwrap();
    stolen.inputs[0].unlocking_script =
        escrow_refund_unlock(&sig_funder, &sig_beneficiary).unwrap();
    assert_eq!(
        verify_input(&stolen, 0, &e.lock, ESCROW_SATS, strict()),
        Err(ScriptError::SigNullFail)
    );
}

#[test]
fn refund_signatures_in_the_wrong_order_fail() {
    let e = escrow();
    let mut refund = spend(
        e.outpoint,
        0xffff_fffe,
        REFUND_HEIGHT,
        &e.funder,
        ESCROW_SATS - 300,
    );
    let sig_b = sign_input(&refund, 0, &e.lock, ESCROW_SATS, SINGLE_ACP, &e.beneficiary).unwrap();
    let sig_f = sign_input(&refund, 0, &e.lock, ESCROW_SATS, ALL, &e.funder).unwrap();
    refund.inputs[0].unlocking_script = escrow_refund_unlock(&sig_b, &sig_f).unwrap();
    assert!(verify_input(&refund, 0, &e.lock, ESCROW_SATS, strict()).is_err());
    refund.inputs[0].unlocking_script = escrow_refund_unlock(&sig_f, &sig_b).unwrap();
    assert_eq!(
        verify_input(&refund, 0, &e.lock, ESCROW_SATS, strict()),
        Ok(())
    );
}

#[test]
fn cooperative_cancel_is_the_two_of_two_branch_without_lock_time() {
    let e = escrow();
    let mut cancel = spend(e.outpoint, 0xffff_ffff, 0, &e.funder, ESCROW_SATS - 200);
    let sig_f = sign_input(&cancel, 0, &e.lock, ESCROW_SATS, ALL, &e.funder).unwrap();
    let sig_b = sign_input(&cancel, 0, &e.lock, ESCROW_SATS, ALL, &e.beneficiary).unwrap();
    cancel.inputs[0].unlocking_script = escrow_refund_unlock(&sig_f, &sig_b).unwrap();
    assert_eq!(
        verify_input(&cancel, 0, &e.lock, ESCROW_SATS, strict()),
        Ok(())
    );
    // One party alone cannot.
    cancel.inputs[0].unlocking_script = escrow_refund_unlock(&sig_f, &sig_f).unwrap();
    assert_eq!(
        verify_input(&cancel, 0, &e.lock, ESCROW_SATS, strict()),
        Err(ScriptError::SigNullFail)
    );
}
