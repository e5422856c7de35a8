//! Terms: canonical encoding (exact bytes and hash), decoding faults with
//! offsets, both parties' signatures, the check against our policy (every
//! denial), and the reused-hashlock refusal.

use std::collections::BTreeSet;

use bsv_format::hash::sha256;
use bsv_format::keys::{PrivateKey, PublicKey};
use bsv_format::script::templates::EscrowScript;
use saga_core::canonical::{DecodeError, DecodeErrorKind};
use saga_core::policy::timeline::Rule;
use saga_core::policy::{Policy, PolicyId};
use saga_core::terms::{
    AgreedTerms, CheckContext, Denial, Leg, LegTerms, PartyTerms, Role, SagaId, Terms, TermsError,
    TermsSignature,
};
use saga_core::{Height, Satoshis, UnixTime};

const FAST_TEST: &str = include_str!("../../../policies/fast-test.toml");
const NOW: u64 = 1_700_000_000;
const TIP_P: u32 = 100;
const TIP_D: u32 = 200;
const BUYER: &str = "spiffe://org-a.example/gateway/ga";
const SELLER: &str = "spiffe://org-b.example/gateway/gb";

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

fn policy() -> Policy {
    Policy::parse(FAST_TEST, "policies/fast-test.toml").unwrap()
}

/// Buyer keys 1 (saga), 2 (P escrow), 3 (D escrow); seller 4, 5, 6.
fn terms() -> Terms {
    Terms {
        saga_id: SagaId::new_v7(1_700_000_000_000, &[7; 10]),
        buyer: PartyTerms {
            spiffe_id: BUYER.into(),
            saga_key: key(1).public_key(),
            payment_escrow_key: key(2).public_key(),
            delivery_escrow_key: key(3).public_key(),
        },
        seller: PartyTerms {
            spiffe_id: SELLER.into(),
            saga_key: key(4).public_key(),
            payment_escrow_key: key(5).public_key(),
            delivery_escrow_key: key(6).public_key(),
        },
        notary: None,
        payment: LegTerms {
            chain_id: "chain-p".into(),
            amount: Satoshis(50_000),
            refund_height: Height(TIP_P + 90),
            confirmations: 1,
        },
        delivery: LegTerms {
            chain_id: "chain-d".into(),
            amount: Satoshis(20_000),
            refund_height: Height(TIP_D + 30),
            confirmations: 1,
        },
        hash_lock: sha256(&[0x5a; 32]),
        quote_expiry: UnixTime(NOW + 30),
        reservation_deadline: UnixTime(NOW + 300),
        // A fixed id, so the pinned hash does not move when fast-test.toml is edited.
        policy_id: PolicyId::of("fast-test.toml", b"fixture policy bytes"),
    }
}

struct Keys {
    saga: PublicKey,
    p: PublicKey,
    d: PublicKey,
}

fn seller_keys() -> Keys {
    Keys {
        saga: key(4).public_key(),
        p: key(5).public_key(),
        d: key(6).public_key(),
    }
}

fn ctx<'a>(k: &'a Keys, own: &'a str, peer: &'a str) -> CheckContext<'a> {
    CheckContext {
        now: UnixTime(NOW),
        payment_tip: Height(TIP_P),
        delivery_tip: Height(TIP_D),
        own_spiffe_id: own,
        peer_spiffe_id: peer,
        own_saga_key: &k.saga,
        own_payment_escrow_key: &k.p,
        own_delivery_escrow_key: &k.d,
        exposure: Satoshis(0),
    }
}

fn denial(r: Result<(), TermsError>) -> Denial {
    match r {
        Err(TermsError::Denied(d)) => *d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn encoding_is_fixed_and_its_hash_pinned() {
    let t = terms();
    let enc = t.encode();
    // version, then the saga id field: 00000010 ‖ 16 bytes (UUIDv7).
    assert_eq!(enc[0], 1);
    assert_eq!(&enc[1..5], &[0, 0, 0, 16]);
    assert_eq!(&enc[5..21], t.saga_id.as_bytes());
    assert_eq!(
        t.saga_id.to_string(),
        "018bcfe5-6800-7707-8707-070707070707"
    );
    // 1 + 23 length prefixes + 16 + 2*(id + 3*33) + 0 + 2*(7 + 8 + 4 + 4) + 32 + 8 + 8 + 14 + 32.
    let fixed = 1 + 23 * 4 + 16 + 2 * 33 * 3 + 32 + 8 + 8 + 32 + 2 * (8 + 4 + 4);
    assert_eq!(
        enc.len(),
        fixed + BUYER.len() + SELLER.len() + 7 + 7 + "fast-test.toml".len()
    );
    assert_eq!(enc.len(), 513);
    // Fields 10-14: an empty notary, then the payment leg: "chain-p", 50,000 sat,
    // T_P = 190, 1 confirmation, each length-prefixed, integers big-endian.
    let payment = "00000000\
                   00000007636861696e2d70\
                   00000008000000000000c350\
                   00000004000000be\
                   0000000400000001";
    assert!(hex::encode(&enc).contains(payment));
    let mut msg = b"escrowd/terms/v1".to_vec();
    msg.extend_from_slice(&enc);
    assert_eq!(t.hash().0, sha256(&msg));
    assert_eq!(t.hash().to_string(), PINNED_TERMS_HASH);
    assert_eq!(Terms::decode(&enc), Ok(t.clone()));

    // A notary changes field 10 and the hash.
    let mut n = t.clone();
    n.notary = Some("spiffe://notary.example/notary/notary".into());
    assert_eq!(Terms::decode(&n.encode()), Ok(n.clone()));
    assert_ne!(n.hash(), t.hash());
}

/// SHA256("escrowd/terms/v1" ‖ encoding) of [`terms`]: any change to the
/// encoding changes this (and breaks every stored signature).
const PINNED_TERMS_HASH: &str = "06ec86d9e25c387ba63e6a13e3da0beae62d48f4bd5604318187bb1e6dc5af0e";

#[test]
fn decoding_faults_name_the_field_and_offset() {
    let enc = terms().encode();
    let d = |bytes: &[u8]| Terms::decode(bytes).unwrap_err();
    let e = |offset, kind, field| {
        TermsError::Decode(DecodeError {
            offset,
            kind,
            field,
        })
    };

    assert_eq!(
        d(&enc[..enc.len() - 1]),
        e(
            enc.len() - 36,
            DecodeErrorKind::UnexpectedEnd,
            "policy_id.sha256"
        )
    );
    let mut long = enc.clone();
    long.push(0);
    assert_eq!(
        d(&long),
        e(enc.len(), DecodeErrorKind::TrailingBytes, "end")
    );
    let mut v2 = enc.clone();
    v2[0] = 2;
    assert_eq!(d(&v2), e(0, DecodeErrorKind::UnknownVersion, "version"));
    assert_eq!(
        d(&vec![1; 9000]),
        e(8192, DecodeErrorKind::TooLong, "encoding")
    );

    // The buyer's saga key starts after the saga id (21) and the buyer's id.
    let key_at = 21 + 4 + BUYER.len();
    let mut bad_key = enc.clone();
    bad_key[key_at + 4] = 0x04;
    assert_eq!(
        d(&bad_key),
        e(key_at, DecodeErrorKind::InvalidValue, "buyer.saga_key")
    );

    // A v4 UUID is not a saga id.
    let mut v4 = enc.clone();
    v4[5 + 6] = (v4[5 + 6] & 0x0f) | 0x40;
    assert_eq!(d(&v4), e(1, DecodeErrorKind::InvalidValue, "saga_id"));

    // Structure is validated on decode: a zero amount.
    let mut t = terms();
    t.delivery.amount = Satoshis(0);
    assert_eq!(
        d(&t.encode()),
        TermsError::BadField {
            field: "delivery.amount",
            reason: "zero"
        }
    );
}

#[test]
fn structure_is_validated() {
    let bad = |f: fn(&mut Terms)| {
        let mut t = terms();
        f(&mut t);
        t.validate().unwrap_err()
    };
    assert!(matches!(
        bad(|t| t.buyer.spiffe_id = "spiffe://org-a.example/notary/ga".into()),
        TermsError::BadIdentity {
            field: "buyer.spiffe_id",
            ..
        }
    ));
    assert!(matches!(
        bad(|t| t.notary = Some("spiffe://n.example/gateway/n".into())),
        TermsError::BadIdentity {
            field: "notary",
            ..
        }
    ));
    assert_eq!(
        bad(|t| t.seller.spiffe_id = BUYER.into()),
        TermsError::BadField {
            field: "seller.spiffe_id",
            reason: "buyer and seller are the same gateway"
        }
    );
    assert_eq!(
        bad(|t| t.payment.chain_id = "P".into()),
        TermsError::BadField {
            field: "payment.chain_id",
            reason: "not a chain id ([a-z0-9._-], 1 to 64 bytes)"
        }
    );
    assert_eq!(
        bad(|t| t.payment.refund_height = Height(500_000_000)),
        TermsError::BadField {
            field: "payment.refund_height",
            reason: "not a block height in 1..500000000"
        }
    );
    assert_eq!(
        bad(|t| t.delivery.confirmations = 0),
        TermsError::BadField {
            field: "delivery.confirmations",
            reason: "zero"
        }
    );
    assert_eq!(
        bad(|t| t.seller.payment_escrow_key = t.buyer.payment_escrow_key),
        TermsError::BadField {
            field: "seller.payment_escrow_key",
            reason: "the funder's and the beneficiary's escrow keys are the same"
        }
    );
    assert_eq!(
        bad(|t| t.reservation_deadline = t.quote_expiry),
        TermsError::BadField {
            field: "reservation_deadline",
            reason: "not after the quote expiry"
        }
    );
}

#[test]
fn escrow_scripts_follow_the_roles() {
    let t = terms();
    let p = EscrowScript::parse(&t.escrow_script(Leg::Payment)).unwrap();
    assert_eq!(
        (p.funder, p.beneficiary, p.hash_lock),
        (key(2).public_key(), key(5).public_key(), t.hash_lock)
    );
    let d = EscrowScript::parse(&t.escrow_script(Leg::Delivery)).unwrap();
    assert_eq!(
        (d.funder, d.beneficiary),
        (key(6).public_key(), key(3).public_key())
    );
}

#[test]
fn both_parties_sign_and_forgeries_fail() {
    let t = terms();
    let a = t.sign(Role::Buyer, &key(1)).unwrap();
    let b = t.sign(Role::Seller, &key(4)).unwrap();
    t.verify_signature(Role::Buyer, &a).unwrap();
    t.verify_signature(Role::Seller, &b).unwrap();
    let agreed = AgreedTerms::new(t.clone(), a.clone(), b.clone()).unwrap();
    assert_eq!(agreed.signature(Role::Seller), &b);
    assert_eq!(agreed.terms(), &t);
    // The round trip through bytes keeps them valid.
    assert_eq!(TermsSignature::from_der(a.as_bytes()), Ok(a.clone()));

    assert_eq!(
        t.sign(Role::Buyer, &key(4)),
        Err(TermsError::KeyMismatch { role: Role::Buyer })
    );
    // Swapped signatures, or a signature over other terms, do not verify.
    assert_eq!(
        AgreedTerms::new(t.clone(), b.clone(), a.clone()),
        Err(TermsError::BadSignature { role: Role::Buyer })
    );
    let mut other = t.clone();
    other.payment.amount = Satoshis(50_001);
    assert_eq!(
        other.verify_signature(Role::Buyer, &a),
        Err(TermsError::BadSignature { role: Role::Buyer })
    );
    // A forged key's signature.
    let forged = TermsSignature::from_der(&key(9).sign_digest(&t.hash().0)).unwrap();
    assert_eq!(
        t.verify_signature(Role::Seller, &forged),
        Err(TermsError::BadSignature { role: Role::Seller })
    );

    // Encoding checks: high-S (the same signature with s' = n - s) and non-DER.
    assert_eq!(
        TermsSignature::from_der(&high_s(a.as_bytes())),
        Err(TermsError::SignatureEncoding)
    );
    assert_eq!(
        TermsSignature::from_der(&[0x30, 0x00]),
        Err(TermsError::SignatureEncoding)
    );
    assert_eq!(
        TermsSignature::from_der(&[0x30; 80]),
        Err(TermsError::SignatureEncoding)
    );
}

/// The high-S twin of a low-S DER signature: `s' = n − s` (secp256k1 order `n`).
pub fn high_s(der: &[u8]) -> Vec<u8> {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let len_r = usize::from(der[3]);
    let r = &der[4..4 + len_r];
    let s = &der[6 + len_r..];
    let mut s32 = [0u8; 32];
    s32[32 - s.len().min(32)..].copy_from_slice(&s[s.len().saturating_sub(32)..]);
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let v = i16::from(N[i]) - i16::from(s32[i]) - borrow;
        borrow = i16::from(v < 0);
        out[i] = (v + 256 * borrow) as u8;
    }
    let mut s_enc = out.to_vec();
    if s_enc[0] & 0x80 != 0 {
        s_enc.insert(0, 0);
    }
    let mut sig = vec![0x30, 0, 0x02, r.len() as u8];
    sig.extend_from_slice(r);
    sig.extend_from_slice(&[0x02, s_enc.len() as u8]);
    sig.extend_from_slice(&s_enc);
    sig[1] = (sig.len() - 2) as u8;
    sig
}

#[test]
fn the_seller_accepts_the_terms_its_policy_allows() {
    let k = seller_keys();
    terms()
        .check_against(&policy(), Role::Seller, &ctx(&k, SELLER, BUYER))
        .unwrap();
    // The buyer checks its own proposal the same way.
    let bk = Keys {
        saga: key(1).public_key(),
        p: key(2).public_key(),
        d: key(3).public_key(),
    };
    terms()
        .check_against(&policy(), Role::Buyer, &ctx(&bk, BUYER, SELLER))
        .unwrap();
}

#[test]
fn every_denial() {
    let p = policy();
    let k = seller_keys();
    let check = |t: &Terms, c: &CheckContext<'_>| denial(t.check_against(&p, Role::Seller, c));
    let base = ctx(&k, SELLER, BUYER);
    let t = terms();

    assert_eq!(
        check(&t, &ctx(&k, "spiffe://org-b.example/gateway/other", BUYER)),
        Denial::NotUs {
            found: SELLER.into()
        }
    );
    assert_eq!(
        check(&t, &ctx(&k, SELLER, "spiffe://org-a.example/gateway/x")),
        Denial::NotTheCaller {
            in_terms: BUYER.into()
        }
    );

    let mut x = t.clone();
    x.buyer.spiffe_id = "spiffe://org-z.example/gateway/gz".into();
    assert_eq!(
        check(&x, &ctx(&k, SELLER, "spiffe://org-z.example/gateway/gz")),
        Denial::CounterpartyNotAllowed {
            spiffe_id: "spiffe://org-z.example/gateway/gz".into()
        }
    );

    let mut x = t.clone();
    x.seller.delivery_escrow_key = key(9).public_key();
    assert_eq!(
        check(&x, &base),
        Denial::NotOurKey {
            field: "seller.delivery_escrow_key"
        }
    );

    let mut x = t.clone();
    x.delivery.chain_id = "chain-x".into();
    assert_eq!(
        check(&x, &base),
        Denial::UnknownChain {
            leg: Leg::Delivery,
            chain_id: "chain-x".into()
        }
    );

    let mut x = t.clone();
    x.payment.amount = Satoshis(999);
    assert_eq!(
        check(&x, &base),
        Denial::AmountOutOfLimits {
            leg: Leg::Payment,
            amount: Satoshis(999),
            min: Satoshis(1_000),
            max: Satoshis(100_000_000)
        }
    );

    let mut c = base;
    c.exposure = Satoshis(999_990_000);
    assert_eq!(
        check(&t, &c),
        Denial::ExposureExceeded {
            would_be: 1_000_010_000,
            limit: Satoshis(1_000_000_000)
        }
    );
    c.exposure = Satoshis(999_980_000);
    t.check_against(&p, Role::Seller, &c).unwrap();

    // Quote expiry 30 s ahead, skew 2 s: accepted up to NOW + 32.
    let mut c = base;
    c.now = UnixTime(NOW + 32);
    t.check_against(&p, Role::Seller, &c).unwrap();
    c.now = UnixTime(NOW + 33);
    assert_eq!(
        check(&t, &c),
        Denial::QuoteExpired {
            quote_expiry: UnixTime(NOW + 30),
            now: UnixTime(NOW + 33)
        }
    );

    let mut x = t.clone();
    x.reservation_deadline = UnixTime(NOW + 303);
    assert_eq!(
        check(&x, &base),
        Denial::DeadlineTooFar {
            field: "reservation_deadline",
            proposed: UnixTime(NOW + 303),
            latest: UnixTime(NOW + 302)
        }
    );
    let mut x = t.clone();
    x.quote_expiry = UnixTime(NOW + 33);
    assert_eq!(
        check(&x, &base),
        Denial::DeadlineTooFar {
            field: "quote_expiry",
            proposed: UnixTime(NOW + 33),
            latest: UnixTime(NOW + 32)
        }
    );

    let mut x = t.clone();
    x.notary = Some("spiffe://notary.example/notary/other".into());
    assert_eq!(
        check(&x, &base),
        Denial::NotaryNotAllowed {
            spiffe_id: "spiffe://notary.example/notary/other".into()
        }
    );
    x.notary = Some("spiffe://notary.example/notary/notary".into());
    x.check_against(&p, Role::Seller, &base).unwrap();

    let mut c = base;
    c.delivery_tip = Height(TIP_D + 30);
    assert_eq!(
        check(&t, &c),
        Denial::RefundHeightPassed {
            leg: Leg::Delivery,
            refund_height: Height(230),
            tip: Height(230)
        }
    );

    // The seller's own (delivery) refund: at most n_D 30 + view lag 1 blocks away.
    let mut x = t.clone();
    x.delivery.refund_height = Height(TIP_D + 32);
    x.payment.refund_height = Height(TIP_P + 200);
    assert_eq!(
        check(&x, &base),
        Denial::OwnRefundTooLate {
            leg: Leg::Delivery,
            blocks: 32,
            max: 31
        }
    );
}

#[test]
fn the_timeline_is_recomputed_from_the_terms_and_the_current_tips() {
    let p = policy();
    let k = seller_keys();
    let base = ctx(&k, SELLER, BUYER);
    // n_P = 81 is the smallest safe delay for n_D = 30 (fast-test.toml): 80 fails C3.
    let mut t = terms();
    t.payment.refund_height = Height(TIP_P + 81);
    t.check_against(&p, Role::Seller, &base).unwrap();
    t.payment.refund_height = Height(TIP_P + 80);
    match denial(t.check_against(&p, Role::Seller, &base)) {
        Denial::Unsafe { rule, timeline } => {
            assert_eq!(rule, Rule::C3Poisson);
            assert_eq!((timeline.c3_left_secs, timeline.c3_right_secs), (50, 51));
            assert_eq!(timeline.min_payment_refund_blocks, Some(81));
        }
        other => panic!("{other:?}"),
    }
    // The same terms seen one block later on P: n_P = 89 instead of 90 still passes;
    // ten blocks later on D the seller's reservation window is gone (C2).
    let mut c = base;
    c.payment_tip = Height(TIP_P + 1);
    terms().check_against(&p, Role::Seller, &c).unwrap();
    let mut c = base;
    c.delivery_tip = Height(TIP_D + 10);
    match denial(terms().check_against(&p, Role::Seller, &c)) {
        Denial::Unsafe { rule, timeline } => {
            assert_eq!(rule, Rule::C2);
            assert_eq!(timeline.last_reservation_offset, 15);
        }
        other => panic!("{other:?}"),
    }
    let shown = TermsError::Denied(Box::new(denial(terms().check_against(
        &p,
        Role::Seller,
        &c,
    ))))
    .to_string();
    assert!(
        shown.starts_with(
            "policy denied: C2 fails\ntimeline: payment on chain-p (P), delivery on chain-d (D)"
        ),
        "{shown}"
    );
}

#[test]
fn a_reused_hashlock_is_refused() {
    let t = terms();
    let mut seen = BTreeSet::new();
    t.check_hashlock_fresh(&seen).unwrap();
    seen.insert(t.hash_lock);
    assert_eq!(
        t.check_hashlock_fresh(&seen),
        Err(TermsError::HashlockReused {
            hash_lock: t.hash_lock
        })
    );
    let mut other = t.clone();
    other.hash_lock = sha256(&[0x5b; 32]);
    other.check_hashlock_fresh(&seen).unwrap();
}
