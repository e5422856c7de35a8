//! Script templates: exact bytes, exact recognition of the escrow script,
//! and signatures made by `sign_input` that verify against `signature_hash`.
//!
//! Expected script hex was assembled independently (Python, from the
//! template in DESIGN.md §3.1 and public keys computed there).

use bsv_format::hash::sha256;
use bsv_format::keys::{is_low_s, is_strict_der, verify_ecdsa, PrivateKey, PublicKey};
use bsv_format::script::is_push_only_op;
use bsv_format::script::templates::{
    escrow_claim_unlock, escrow_lock, escrow_refund_unlock, op_return_data, p2pkh_hash, p2pkh_lock,
    p2pkh_unlock, sign_input, EscrowScript, TemplateError, ESCROW_SCRIPT_LEN, MAX_SIGNATURE_LEN,
};
use bsv_format::sighash::signature_hash;
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut};
use bsv_format::{Script, Txid};

fn key(byte: u8) -> PrivateKey {
    let mut k = [0u8; 32];
    if byte == 1 {
        k[31] = 1;
    } else {
        k = [byte; 32];
    }
    PrivateKey::from_bytes(&k).unwrap()
}

/// Beneficiary = private key 1, funder = private key 0x11…11, s = 0x22…22.
const ESCROW_HEX: &str = "6382012088a8209f72ea0cf49536e3c66c787f705186df9a4378083753ae9536d65b3ad7fcddc488210279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798ac675221034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa210279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f8179852ae68";
const PREIMAGE: [u8; 32] = [0x22; 32];

fn escrow() -> (Script, PrivateKey, PrivateKey) {
    let beneficiary = key(1);
    let funder = key(0x11);
    let h = sha256(&PREIMAGE);
    (
        escrow_lock(&h, &beneficiary.public_key(), &funder.public_key()),
        beneficiary,
        funder,
    )
}

#[test]
fn escrow_lock_has_the_exact_bytes() {
    let (script, beneficiary, funder) = escrow();
    assert_eq!(
        hex::encode(sha256(&PREIMAGE)),
        "9f72ea0cf49536e3c66c787f705186df9a4378083753ae9536d65b3ad7fcddc4"
    );
    assert_eq!(hex::encode(script.as_bytes()), ESCROW_HEX);
    assert_eq!(script.len(), ESCROW_SCRIPT_LEN);
    let parsed = EscrowScript::parse(&script).unwrap();
    assert_eq!(parsed.hash_lock, sha256(&PREIMAGE));
    assert_eq!(parsed.beneficiary, beneficiary.public_key());
    assert_eq!(parsed.funder, funder.public_key());
    assert_eq!(parsed.to_script(), script);
}

#[test]
fn p2pkh_and_op_return_have_the_exact_bytes() {
    let pk = key(1).public_key();
    let lock = p2pkh_lock(&pk.hash160());
    assert_eq!(
        hex::encode(lock.as_bytes()),
        "76a914751e76e8199196d454941c45d1b3a323f1433bd688ac"
    );
    assert_eq!(p2pkh_hash(&lock), Some(pk.hash160()));
    assert_eq!(
        p2pkh_hash(&Script::from_bytes(lock.as_bytes()[..24].to_vec())),
        None
    );
    assert_eq!(p2pkh_hash(&escrow().0), None);

    let data = op_return_data(&[b"escrowd", &[5], &[], &[0xab; 80]]).unwrap();
    let want = format!(
        "006a07{}0105004c50{}",
        hex::encode(b"escrowd"),
        "ab".repeat(80)
    );
    assert_eq!(hex::encode(data.as_bytes()), want);
    assert_eq!(hex::encode(op_return_data(&[]).unwrap().as_bytes()), "006a");
}

#[test]
fn escrow_parse_refuses_every_deviation_at_its_offset() {
    let good = hex::decode(ESCROW_HEX).unwrap();
    let parse = |bytes: Vec<u8>| EscrowScript::parse(&Script::from_bytes(bytes));
    let with = |at: usize, byte: u8| {
        let mut b = good.clone();
        b[at] = byte;
        parse(b)
    };
    // Each fixed opcode position, changed.
    for at in [0usize, 1, 4, 5, 39, 74, 75, 76, 145, 146, 147] {
        assert_eq!(
            with(at, 0x61),
            Err(TemplateError::Mismatch { offset: at }),
            "opcode at {at}"
        );
    }
    // Push lengths: 1-byte number, H, keys.
    for at in [2usize, 6, 40, 77, 111] {
        assert_eq!(
            with(at, good[at] - 1),
            Err(TemplateError::Mismatch { offset: at }),
            "push at {at}"
        );
    }
    // The number must be 32.
    assert_eq!(with(3, 0x21), Err(TemplateError::Mismatch { offset: 3 }));
    // The beneficiary key must be the same in both branches.
    assert_eq!(
        with(120, good[120] ^ 1),
        Err(TemplateError::Mismatch { offset: 111 })
    );
    // Keys must be valid compressed points (x = …05 is not on the curve).
    let mut off_curve = good.clone();
    off_curve[41..74].copy_from_slice(&{
        let mut k = [0u8; 33];
        k[0] = 2;
        k[32] = 5;
        k
    });
    let bad_key = off_curve[41..74].to_vec();
    off_curve[112..145].copy_from_slice(&bad_key);
    assert_eq!(
        parse(off_curve),
        Err(TemplateError::InvalidPublicKey { offset: 40 })
    );
    let mut bad_prefix = good.clone();
    bad_prefix[78] = 0x04;
    assert_eq!(
        parse(bad_prefix),
        Err(TemplateError::InvalidPublicKey { offset: 77 })
    );
    // Trailing and missing bytes.
    let mut long = good.clone();
    long.push(0x61);
    assert_eq!(parse(long), Err(TemplateError::Mismatch { offset: 148 }));
    for len in 0..good.len() {
        assert!(
            matches!(
                parse(good[..len].to_vec()),
                Err(TemplateError::Mismatch { .. })
            ),
            "truncated to {len}"
        );
    }
    // A non-minimal push of H (PUSHDATA1) is not the template.
    let mut pd1 = good[..6].to_vec();
    pd1.extend_from_slice(&[0x4c, 0x20]);
    pd1.extend_from_slice(&good[7..]);
    assert_eq!(parse(pd1), Err(TemplateError::Mismatch { offset: 6 }));
    // A P2PKH script is not an escrow.
    assert_eq!(
        parse(p2pkh_lock(&[0; 20]).into_bytes()),
        Err(TemplateError::Mismatch { offset: 0 })
    );
    // Funder and beneficiary swapped: parses, with the roles swapped (the
    // caller compares against the terms).
    let (_, b, f) = escrow();
    let swapped = escrow_lock(&sha256(&PREIMAGE), &f.public_key(), &b.public_key());
    let p = EscrowScript::parse(&swapped).unwrap();
    assert_eq!((p.beneficiary, p.funder), (f.public_key(), b.public_key()));
}

fn funding_outpoint(n: u8) -> Outpoint {
    Outpoint::new(Txid([n; 32]), u32::from(n))
}

fn assert_verifies(
    tx: &Transaction,
    index: usize,
    lock: &Script,
    sats: u64,
    sig: &[u8],
    pubkey: &PublicKey,
) {
    let (type_byte, der) = sig.split_last().unwrap();
    let digest = signature_hash(
        tx,
        index,
        lock.as_bytes(),
        sats,
        u32::from(*type_byte),
        true,
    );
    assert!(
        is_strict_der(sig) && is_low_s(sig),
        "input {index}: strict low-S DER"
    );
    assert!(
        verify_ecdsa(&digest, der, &pubkey.to_compressed()),
        "input {index}: signature verifies"
    );
    // ...and not with another amount (the FORKID digest commits to it).
    let other = signature_hash(
        tx,
        index,
        lock.as_bytes(),
        sats + 1,
        u32::from(*type_byte),
        true,
    );
    assert!(!verify_ecdsa(&other, der, &pubkey.to_compressed()));
}

fn push_only(script: &Script) -> bool {
    script
        .chunks()
        .all(|c| c.is_ok_and(|c| is_push_only_op(c.opcode)))
}

#[test]
fn claim_spending_p2pkh_and_escrow_verifies() {
    let (escrow_script, beneficiary, _) = escrow();
    let payer = key(0x33);
    let payer_lock = p2pkh_lock(&payer.public_key().hash160());
    let mut tx = Transaction {
        version: 1,
        inputs: vec![
            TxIn {
                prev_out: funding_outpoint(1),
                unlocking_script: Script::default(),
                sequence: 0xffff_ffff,
            },
            TxIn {
                prev_out: funding_outpoint(2),
                unlocking_script: Script::default(),
                sequence: 0xffff_ffff,
            },
        ],
        outputs: vec![TxOut {
            satoshis: 149_000,
            locking_script: p2pkh_lock(&beneficiary.public_key().hash160()),
        }],
        lock_time: 0,
    };
    let sig0 = sign_input(&tx, 0, &payer_lock, 50_000, 0x41, &payer).unwrap();
    let sig1 = sign_input(&tx, 1, &escrow_script, 100_000, 0x41, &beneficiary).unwrap();
    assert_eq!(*sig0.last().unwrap(), 0x41);
    tx.inputs[0].unlocking_script = p2pkh_unlock(&sig0, &payer.public_key()).unwrap();
    tx.inputs[1].unlocking_script = escrow_claim_unlock(&sig1, &PREIMAGE).unwrap();
    // Unlocking scripts do not take part in the FORKID digest: the
    // signatures still verify on the finished transaction.
    assert_verifies(&tx, 0, &payer_lock, 50_000, &sig0, &payer.public_key());
    assert_verifies(
        &tx,
        1,
        &escrow_script,
        100_000,
        &sig1,
        &beneficiary.public_key(),
    );

    // Exact unlocking bytes.
    let u0 = tx.inputs[0].unlocking_script.as_bytes();
    assert_eq!(u0[0] as usize, sig0.len());
    assert_eq!(&u0[1..1 + sig0.len()], &sig0[..]);
    assert_eq!(
        hex::encode(&u0[1 + sig0.len()..]),
        format!("21{}", key(0x33).public_key())
    );
    let u1 = tx.inputs[1].unlocking_script.as_bytes();
    let mut want = vec![sig1.len() as u8];
    want.extend_from_slice(&sig1);
    want.push(0x20);
    want.extend_from_slice(&PREIMAGE);
    want.push(0x51);
    assert_eq!(u1, &want[..]);
    assert!(push_only(&tx.inputs[0].unlocking_script) && push_only(&tx.inputs[1].unlocking_script));
    // Deterministic signing: the same transaction signs to the same bytes.
    assert_eq!(
        sign_input(&tx, 1, &escrow_script, 100_000, 0x41, &beneficiary).unwrap(),
        sig1
    );
}

#[test]
fn refund_signed_single_anyonecanpay_survives_an_added_fee_input() {
    let (escrow_script, beneficiary, funder) = escrow();
    let refund_height = 850_000;
    let mut refund = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: funding_outpoint(7),
            unlocking_script: Script::default(),
            sequence: 0xffff_fffe,
        }],
        outputs: vec![TxOut {
            satoshis: 99_800,
            locking_script: p2pkh_lock(&funder.public_key().hash160()),
        }],
        lock_time: refund_height,
    };
    // The beneficiary pre-signs with SINGLE|ANYONECANPAY|FORKID.
    let sig_b = sign_input(&refund, 0, &escrow_script, 100_000, 0xc3, &beneficiary).unwrap();
    // Later the funder adds a fee input and change, and signs with ALL|FORKID.
    refund.inputs.push(TxIn {
        prev_out: funding_outpoint(8),
        unlocking_script: Script::default(),
        sequence: 0xffff_ffff,
    });
    refund.outputs.push(TxOut {
        satoshis: 4_000,
        locking_script: p2pkh_lock(&funder.public_key().hash160()),
    });
    let sig_f = sign_input(&refund, 0, &escrow_script, 100_000, 0x41, &funder).unwrap();
    refund.inputs[0].unlocking_script = escrow_refund_unlock(&sig_f, &sig_b).unwrap();
    assert_verifies(
        &refund,
        0,
        &escrow_script,
        100_000,
        &sig_b,
        &beneficiary.public_key(),
    );
    assert_verifies(
        &refund,
        0,
        &escrow_script,
        100_000,
        &sig_f,
        &funder.public_key(),
    );
    let u = refund.inputs[0].unlocking_script.as_bytes();
    assert_eq!(u[0], 0x00);
    assert_eq!(*u.last().unwrap(), 0x00);
    assert_eq!(u.len(), 1 + 1 + sig_f.len() + 1 + sig_b.len() + 1);
    assert_eq!(&u[2..2 + sig_f.len()], &sig_f[..]);
    assert!(push_only(&refund.inputs[0].unlocking_script));
    // Changing the refund's own output invalidates the beneficiary's signature.
    refund.outputs[0].satoshis += 1;
    let digest = signature_hash(&refund, 0, escrow_script.as_bytes(), 100_000, 0xc3, true);
    assert!(!verify_ecdsa(
        &digest,
        &sig_b[..sig_b.len() - 1],
        &beneficiary.public_key().to_compressed()
    ));
}

#[test]
fn sign_input_refuses_bad_indices_and_types() {
    let (escrow_script, beneficiary, _) = escrow();
    let tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: funding_outpoint(1),
            unlocking_script: Script::default(),
            sequence: 0,
        }],
        outputs: vec![],
        lock_time: 0,
    };
    assert_eq!(
        sign_input(&tx, 1, &escrow_script, 1, 0x41, &beneficiary),
        Err(TemplateError::InputIndexOutOfRange {
            index: 1,
            inputs: 1
        })
    );
    for t in [0x01u32, 0x03, 0x61, 0xe3, 0x44, 0x40, 0x141, 0x8000_0041] {
        assert_eq!(
            sign_input(&tx, 0, &escrow_script, 1, t, &beneficiary),
            Err(TemplateError::UnsupportedSighashType { sighash_type: t }),
            "type {t:#x}"
        );
    }
    for t in [0x41u32, 0x42, 0x43, 0xc1, 0xc2, 0xc3] {
        let sig = sign_input(&tx, 0, &escrow_script, 1, t, &beneficiary).unwrap();
        assert_eq!(u32::from(*sig.last().unwrap()), t);
    }
}

#[test]
fn unlocking_templates_refuse_oversized_signatures() {
    let pk = key(1).public_key();
    let long = vec![0x30; MAX_SIGNATURE_LEN + 1];
    let ok = vec![0x30; MAX_SIGNATURE_LEN];
    let too_long = Err(TemplateError::SignatureTooLong {
        len: MAX_SIGNATURE_LEN + 1,
    });
    assert_eq!(p2pkh_unlock(&long, &pk), too_long);
    assert_eq!(escrow_claim_unlock(&long, &PREIMAGE), too_long);
    assert_eq!(escrow_refund_unlock(&ok, &long), too_long);
    assert_eq!(escrow_refund_unlock(&long, &ok), too_long);
    assert!(p2pkh_unlock(&ok, &pk).is_ok());
    // Empty signatures (a deliberate "no" in CHECKMULTISIG) push as OP_0.
    assert_eq!(
        hex::encode(escrow_refund_unlock(&[], &[]).unwrap().as_bytes()),
        "00000000"
    );
}
