//! Leg transactions through the format core's interpreter (standard
//! post-Chronicle flags plus MINIMALIF): reservation, refund (with and
//! without the funder's fee input), claim, cooperative cancel, for both legs;
//! and the beneficiary's refusals of tampered refunds.

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::interpreter::{verify_input, ScriptError, VerifyFlags};
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use saga_core::legs::{self, FundingInput, LegError, RefundRefused, ReservationMismatch};
use saga_core::policy::PolicyId;
use saga_core::terms::{Leg, LegTerms, PartyTerms, Role, SagaId, Terms};
use saga_core::{Height, Satoshis, UnixTime};

const S: [u8; 32] = [0x5a; 32];
const T_P: u32 = 190;
const T_D: u32 = 230;
const REFUND_FEE: Satoshis = Satoshis(24); // 235 bytes at 100 sat/kB

fn flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle() | VerifyFlags::MINIMALIF
}

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

/// Buyer: saga 1, P escrow 2, D escrow 3, wallet 10. Seller: 4, 5, 6, wallet 11.
fn terms() -> Terms {
    Terms {
        saga_id: SagaId::new_v7(1_700_000_000_000, &[7; 10]),
        buyer: PartyTerms {
            spiffe_id: "spiffe://org-a.example/gateway/ga".into(),
            saga_key: key(1).public_key(),
            payment_escrow_key: key(2).public_key(),
            delivery_escrow_key: key(3).public_key(),
        },
        seller: PartyTerms {
            spiffe_id: "spiffe://org-b.example/gateway/gb".into(),
            saga_key: key(4).public_key(),
            payment_escrow_key: key(5).public_key(),
            delivery_escrow_key: key(6).public_key(),
        },
        notary: None,
        payment: LegTerms {
            chain_id: "chain-p".into(),
            amount: Satoshis(50_000),
            refund_height: Height(T_P),
            confirmations: 1,
        },
        delivery: LegTerms {
            chain_id: "chain-d".into(),
            amount: Satoshis(20_000),
            refund_height: Height(T_D),
            confirmations: 1,
        },
        hash_lock: sha256(&S),
        quote_expiry: UnixTime(1_700_000_030),
        reservation_deadline: UnixTime(1_700_000_300),
        policy_id: PolicyId::of("fast-test.toml", b"fixture policy bytes"),
    }
}

/// A wallet output of `sats` to P2PKH(`wallet`), in a made-up funding transaction.
fn funding(wallet: u8, sats: u64, tag: u8) -> FundingInput {
    let lock = p2pkh_lock(&key(wallet).public_key().hash160());
    let prev = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([tag; 32]), 0),
            unlocking_script: Script::default(),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut {
            satoshis: sats,
            locking_script: lock.clone(),
        }],
        lock_time: 0,
    };
    FundingInput {
        outpoint: Outpoint::new(prev.txid(), 0),
        satoshis: Satoshis(sats),
        locking_script: lock,
    }
}

/// The signed reservation of `leg` and its escrow outpoint.
fn reserve(t: &Terms, leg: Leg) -> (Transaction, Outpoint) {
    let wallet = match leg {
        Leg::Payment => 10,
        Leg::Delivery => 11,
    };
    let input = funding(wallet, 100_000, wallet);
    let change = p2pkh_lock(&key(wallet).public_key().hash160());
    let mut r =
        legs::build_reservation(t, leg, std::slice::from_ref(&input), &change, 100).unwrap();
    legs::sign_p2pkh_inputs(&mut r.tx, 0, std::slice::from_ref(&input), &key(wallet)).unwrap();
    verify_input(&r.tx, 0, &input.locking_script, 100_000, flags()).unwrap();
    let escrow = legs::check_reservation_output(&r.tx, 0, t, leg).unwrap();
    assert_eq!(escrow, r.escrow_outpoint());
    (r.tx, escrow)
}

fn escrow_keys(leg: Leg) -> (PrivateKey, PrivateKey) {
    match leg {
        Leg::Payment => (key(2), key(5)),  // (funder, beneficiary)
        Leg::Delivery => (key(6), key(3)), // seller funds D, buyer claims it
    }
}

#[test]
fn reservation_pays_the_escrow_and_the_change() {
    let t = terms();
    let input = funding(10, 100_000, 10);
    let change = p2pkh_lock(&key(10).public_key().hash160());
    let r = legs::build_reservation(&t, Leg::Payment, std::slice::from_ref(&input), &change, 100)
        .unwrap();
    // 4 + 3 + 149 + 1 + 157 + 34 + 4 = 352 bytes at 100 sat/kB = 36 sat.
    assert_eq!((r.fee, r.change), (Satoshis(36), Satoshis(49_964)));
    assert_eq!(r.tx.outputs[0].satoshis, 50_000);
    assert_eq!(
        r.tx.outputs[0].locking_script,
        t.escrow_script(Leg::Payment)
    );
    assert_eq!(r.tx.outputs[1].satoshis, 49_964);
    let (tx, escrow) = reserve(&t, Leg::Payment);
    assert!(tx.size() <= 352, "{}", tx.size());
    assert_eq!(escrow.txid.to_string(), PINNED_RESERVATION_TXID);

    assert_eq!(
        legs::build_reservation(&t, Leg::Payment, &[], &change, 100),
        Err(LegError::NoInputs)
    );
    let small = funding(10, 50_035, 10);
    assert_eq!(
        legs::build_reservation(&t, Leg::Payment, &[small], &change, 100),
        Err(LegError::InsufficientFunds {
            needed: 50_036,
            available: 50_035
        })
    );
    // Exactly enough: no change output.
    let exact = funding(10, 50_036, 10);
    let r = legs::build_reservation(&t, Leg::Payment, &[exact], &change, 100).unwrap();
    assert_eq!((r.tx.outputs.len(), r.change), (1, Satoshis(0)));
}

/// txid of the signed payment reservation of [`terms`] (RFC 6979 signatures
/// make it deterministic).
const PINNED_RESERVATION_TXID: &str =
    "eb5f682d26e900eacf3dc5a2e4bfc78483fedc6d3b7bb4d0efc35426ec940c22";

#[test]
fn the_other_side_checks_the_reservation_output_exactly() {
    let t = terms();
    let (tx, _) = reserve(&t, Leg::Payment);
    let hex = |b: &[u8]| hex::encode(b);
    let mut other = t.clone();
    other.payment.amount = Satoshis(50_001);
    let e = legs::check_reservation_output(&tx, 0, &other, Leg::Payment).unwrap_err();
    assert_eq!(
        e,
        ReservationMismatch::Amount {
            vout: 0,
            expected: 50_001,
            found: 50_000
        }
    );
    assert_eq!(
        e.to_string(),
        "output 0 holds 50000 sat, the terms fix 50001 sat"
    );
    other = t.clone();
    other.hash_lock = sha256(&[1; 32]);
    let e = legs::check_reservation_output(&tx, 0, &other, Leg::Payment).unwrap_err();
    assert_eq!(
        e,
        ReservationMismatch::HashLock {
            vout: 0,
            expected: hex(&other.hash_lock),
            found: hex(&t.hash_lock),
        }
    );
    // Another key of either party is named with both values.
    for role in [Role::Buyer, Role::Seller] {
        let mut other = t.clone();
        let stranger = PrivateKey::from_bytes(&[7; 32]).unwrap().public_key();
        match role {
            Role::Buyer => other.buyer.payment_escrow_key = stranger,
            Role::Seller => other.seller.payment_escrow_key = stranger,
        }
        let e = legs::check_reservation_output(&tx, 0, &other, Leg::Payment).unwrap_err();
        let (part, found) = match role {
            Role::Buyer => ("funder", t.buyer.payment_escrow_key),
            Role::Seller => ("beneficiary", t.seller.payment_escrow_key),
        };
        assert_eq!(
            e,
            ReservationMismatch::Key {
                vout: 0,
                role,
                part,
                expected: hex(&stranger.to_compressed()),
                found: hex(&found.to_compressed()),
            }
        );
        assert!(e
            .to_string()
            .contains(&format!("as the {role}'s escrow key ({part})")));
    }
    // Output 1 is the change (P2PKH): no escrow script.
    assert!(matches!(
        legs::check_reservation_output(&tx, 1, &t, Leg::Payment),
        Err(ReservationMismatch::NotEscrow { vout: 1, .. })
    ));
    assert_eq!(
        legs::check_reservation_output(&tx, 5, &t, Leg::Payment),
        Err(ReservationMismatch::NoOutput { vout: 5 })
    );
}

fn refund_cycle(leg: Leg) {
    let t = terms();
    let (_, escrow) = reserve(&t, leg);
    let (funder, beneficiary) = escrow_keys(leg);
    let amount = t.leg(leg).amount.0;
    let height = t.leg(leg).refund_height.0;
    let script = t.escrow_script(leg);

    let mut refund = legs::build_refund(&t, leg, escrow, REFUND_FEE).unwrap();
    assert_eq!(
        (refund.lock_time, refund.inputs[0].sequence),
        (height, 0xFFFF_FFFE)
    );
    assert_eq!(refund.outputs[0].satoshis, amount - 24);
    // The beneficiary signs before the reservation is broadcast (SINGLE|ANYONECANPAY|FORKID).
    let b_sig =
        legs::sign_refund_as_beneficiary(&refund, &t, leg, escrow, REFUND_FEE, &beneficiary)
            .unwrap();
    assert_eq!(b_sig.last(), Some(&0xC3));
    let f_sig = legs::sign_refund_as_funder(&refund, &t, leg, &funder).unwrap();
    assert_eq!(f_sig.last(), Some(&0x41));
    legs::set_refund_unlock(&mut refund, &f_sig, &b_sig).unwrap();
    verify_input(&refund, 0, &script, amount, flags()).unwrap();
    assert!(refund.size() <= legs::MAX_LEG_SPEND_BYTES);
    assert!(!legs::is_final(&refund, Height(height)));
    assert!(legs::is_final(&refund, Height(height + 1)));

    // Later the funder adds a fee input and change: the beneficiary's signature still holds.
    let fee_input = funding(10, 1_000, 0x77);
    let mut bumped = legs::build_refund(&t, leg, escrow, REFUND_FEE).unwrap();
    bumped.inputs.push(TxIn {
        prev_out: fee_input.outpoint,
        unlocking_script: Script::default(),
        sequence: u32::MAX,
    });
    bumped.outputs.push(TxOut {
        satoshis: 900,
        locking_script: fee_input.locking_script.clone(),
    });
    let f_sig = legs::sign_refund_as_funder(&bumped, &t, leg, &funder).unwrap();
    legs::set_refund_unlock(&mut bumped, &f_sig, &b_sig).unwrap();
    legs::sign_p2pkh_inputs(&mut bumped, 1, std::slice::from_ref(&fee_input), &key(10)).unwrap();
    verify_input(&bumped, 0, &script, amount, flags()).unwrap();
    verify_input(&bumped, 1, &fee_input.locking_script, 1_000, flags()).unwrap();

    // Moving the lock time earlier after signing breaks both signatures.
    let mut early = refund.clone();
    early.lock_time = height - 1;
    assert_eq!(
        verify_input(&early, 0, &script, amount, flags()),
        Err(ScriptError::SigNullFail)
    );
    // The funder alone (its signature twice) cannot spend the 2-of-2 branch.
    let mut alone = legs::build_refund(&t, leg, escrow, REFUND_FEE).unwrap();
    let f_sig = legs::sign_refund_as_funder(&alone, &t, leg, &funder).unwrap();
    legs::set_refund_unlock(&mut alone, &f_sig, &f_sig).unwrap();
    assert!(verify_input(&alone, 0, &script, amount, flags()).is_err());
}

#[test]
fn payment_refund_verifies_with_and_without_a_fee_input() {
    refund_cycle(Leg::Payment);
}

#[test]
fn delivery_refund_verifies_with_and_without_a_fee_input() {
    refund_cycle(Leg::Delivery);
}

fn claim_cycle(leg: Leg) -> Transaction {
    let t = terms();
    let (_, escrow) = reserve(&t, leg);
    let (_, beneficiary) = escrow_keys(leg);
    let amount = t.leg(leg).amount.0;
    let payout = legs::beneficiary_payout_script(&t, leg);
    let claim = legs::build_claim(
        &t,
        leg,
        escrow,
        Satoshis(20),
        payout.clone(),
        &S,
        &beneficiary,
    )
    .unwrap();
    verify_input(&claim, 0, &t.escrow_script(leg), amount, flags()).unwrap();
    assert_eq!((claim.lock_time, claim.inputs[0].sequence), (0, u32::MAX));
    assert_eq!(claim.outputs[0].satoshis, amount - 20);
    assert!(claim.size() <= 193);
    // The funder reads s from the claim it sees spending its reservation.
    assert_eq!(
        legs::extract_preimage(&claim, &escrow, &t.hash_lock),
        Some(S)
    );
    assert_eq!(
        legs::extract_preimage(&claim, &Outpoint::new(escrow.txid, 9), &t.hash_lock),
        None
    );
    assert_eq!(
        legs::extract_preimage(&claim, &escrow, &sha256(&[1; 32])),
        None
    );

    assert_eq!(
        legs::build_claim(
            &t,
            leg,
            escrow,
            Satoshis(20),
            payout.clone(),
            &[0x5b; 32],
            &beneficiary
        ),
        Err(LegError::WrongPreimage)
    );
    assert_eq!(
        legs::build_claim(&t, leg, escrow, Satoshis(amount), payout, &S, &beneficiary),
        Err(LegError::FeeExceedsAmount {
            fee: amount,
            amount
        })
    );
    // The funder's key cannot claim.
    let (funder, _) = escrow_keys(leg);
    let stolen = legs::build_claim(
        &t,
        leg,
        escrow,
        Satoshis(20),
        legs::funder_payout_script(&t, leg),
        &S,
        &funder,
    )
    .unwrap();
    assert!(verify_input(&stolen, 0, &t.escrow_script(leg), amount, flags()).is_err());
    claim
}

#[test]
fn claims_reveal_s_and_verify() {
    let p = claim_cycle(Leg::Payment);
    let d = claim_cycle(Leg::Delivery);
    assert_eq!(p.txid().to_string(), PINNED_PAYMENT_CLAIM_TXID);
    assert_ne!(p.txid(), d.txid());
}

/// txid of the seller's claim of the payment leg.
const PINNED_PAYMENT_CLAIM_TXID: &str =
    "1aef602eb1b169fb44301f2074b54b17921f0821a26db76b1380bb71f8399ae8";

#[test]
fn a_refund_does_not_reveal_s() {
    let t = terms();
    let (_, escrow) = reserve(&t, Leg::Payment);
    let refund = legs::build_refund(&t, Leg::Payment, escrow, REFUND_FEE).unwrap();
    assert_eq!(legs::extract_preimage(&refund, &escrow, &t.hash_lock), None);
}

#[test]
fn cooperative_cancel_needs_both_signatures_and_no_lock_time() {
    let t = terms();
    for leg in [Leg::Payment, Leg::Delivery] {
        let (_, escrow) = reserve(&t, leg);
        let (funder, beneficiary) = escrow_keys(leg);
        let mut cancel = legs::build_cancel(&t, leg, escrow, REFUND_FEE).unwrap();
        assert_eq!((cancel.lock_time, cancel.inputs[0].sequence), (0, u32::MAX));
        assert!(legs::is_final(&cancel, Height(1)));
        let b = legs::sign_cancel(&cancel, &t, leg, escrow, REFUND_FEE, &beneficiary).unwrap();
        let f = legs::sign_cancel(&cancel, &t, leg, escrow, REFUND_FEE, &funder).unwrap();
        legs::set_refund_unlock(&mut cancel, &f, &b).unwrap();
        verify_input(
            &cancel,
            0,
            &t.escrow_script(leg),
            t.leg(leg).amount.0,
            flags(),
        )
        .unwrap();
        // A refund is not a cancel, and a cancel is not a refund.
        let refund = legs::build_refund(&t, leg, escrow, REFUND_FEE).unwrap();
        assert_eq!(
            legs::check_cancel(&refund, &t, leg, escrow, REFUND_FEE),
            Err(RefundRefused::NotImmediate)
        );
        assert_eq!(
            legs::check_refund(&cancel, &t, leg, escrow, REFUND_FEE),
            Err(RefundRefused::SequenceFinal)
        );
    }
}

#[test]
fn the_beneficiary_refuses_every_tampered_refund() {
    let t = terms();
    let leg = Leg::Payment;
    let (_, escrow) = reserve(&t, leg);
    let (_, beneficiary) = escrow_keys(leg);
    let good = legs::build_refund(&t, leg, escrow, REFUND_FEE).unwrap();
    legs::check_refund(&good, &t, leg, escrow, REFUND_FEE).unwrap();
    let refused = |f: &dyn Fn(&mut Transaction)| {
        let mut tx = good.clone();
        f(&mut tx);
        let e = legs::check_refund(&tx, &t, leg, escrow, REFUND_FEE).unwrap_err();
        // Nothing is signed when the check fails.
        assert_eq!(
            legs::sign_refund_as_beneficiary(&tx, &t, leg, escrow, REFUND_FEE, &beneficiary),
            Err(LegError::Refused(e))
        );
        e
    };

    // Early nLockTime: the attack of the protocol model's counterexample 5.
    assert_eq!(
        refused(&|tx| tx.lock_time = T_P - 1),
        RefundRefused::EarlyLockTime {
            expected: Height(T_P),
            found: T_P - 1
        }
    );
    assert_eq!(
        refused(&|tx| tx.lock_time = 0),
        RefundRefused::EarlyLockTime {
            expected: Height(T_P),
            found: 0
        }
    );
    assert_eq!(
        refused(&|tx| tx.lock_time = T_P + 1),
        RefundRefused::WrongLockTime {
            expected: Height(T_P),
            found: T_P + 1
        }
    );
    assert_eq!(
        refused(&|tx| tx.lock_time = 1_700_000_000),
        RefundRefused::WrongLockTime {
            expected: Height(T_P),
            found: 1_700_000_000
        }
    );
    assert_eq!(
        refused(&|tx| tx.inputs[0].sequence = u32::MAX),
        RefundRefused::SequenceFinal
    );
    // Wrong amounts: a fee above the allowed one, or more than was reserved.
    assert_eq!(
        refused(&|tx| tx.outputs[0].satoshis = 50_000 - 25),
        RefundRefused::WrongAmount {
            min: 49_976,
            max: 50_000,
            found: 49_975
        }
    );
    assert_eq!(
        refused(&|tx| tx.outputs[0].satoshis = 50_001),
        RefundRefused::WrongAmount {
            min: 49_976,
            max: 50_000,
            found: 50_001
        }
    );
    // Wrong outpoint: another output of the reservation, or another transaction.
    let other = Outpoint::new(escrow.txid, 1);
    assert_eq!(
        refused(&|tx| tx.inputs[0].prev_out = other),
        RefundRefused::WrongOutpoint {
            expected: escrow,
            found: other
        }
    );
    assert_eq!(
        refused(&|tx| tx.inputs.push(TxIn {
            prev_out: other,
            unlocking_script: Script::default(),
            sequence: 0
        })),
        RefundRefused::InputCount { found: 2 }
    );
    assert_eq!(
        refused(&|tx| tx.outputs[0].locking_script = p2pkh_lock(&key(5).public_key().hash160())),
        RefundRefused::WrongPayee
    );
    assert_eq!(
        refused(&|tx| tx.outputs.push(TxOut {
            satoshis: 1,
            locking_script: Script::default()
        })),
        RefundRefused::OutputCount { found: 2 }
    );
    assert_eq!(
        refused(&|tx| tx.version = 2),
        RefundRefused::Version { found: 2 }
    );
}
