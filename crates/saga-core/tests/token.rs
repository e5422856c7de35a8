//! Single-use tokens: exact encoding, the acceptance rules (issuer key,
//! signature, holder, expiry with skew), forgeries, and bounded decoding.
//! Consumption exactly once is the store's contract (token id → consuming
//! event, in the event's transaction) and is tested with the store.

use std::time::Duration;

use bsv_format::keys::PrivateKey;
use bsv_format::{Outpoint, Txid};
use saga_core::canonical::{DecodeError, DecodeErrorKind};
use saga_core::terms::SagaId;
use saga_core::token::{Token, TokenError, TokenId, MAX_TOKEN_LEN};
use saga_core::UnixTime;

const ISSUER: &str = "spiffe://org-b.example/gateway/gb";
const HOLDER: &str = "spiffe://org-a.example/gateway/ga";
const NOT_AFTER: u64 = 1_700_000_060;
const SKEW: Duration = Duration::from_secs(2);

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

fn reservation() -> Outpoint {
    Outpoint::new(Txid([0x11; 32]), 1)
}

fn saga() -> SagaId {
    SagaId::new_v7(1_700_000_000_000, &[7; 10])
}

fn token() -> Token {
    Token::issue(
        TokenId([0xab; 16]),
        saga(),
        reservation(),
        ISSUER,
        HOLDER,
        UnixTime(NOT_AFTER),
        &key(4),
    )
    .unwrap()
}

#[test]
fn encoding_is_fixed_and_round_trips() {
    let t = token();
    let enc = t.encode();
    let body_len = 1 + 7 * 4 + 16 + 16 + 36 + ISSUER.len() + HOLDER.len() + 8 + 33;
    assert_eq!(enc.len(), body_len + 4 + t.signature().len());
    let head = concat!(
        "01",
        "00000010abababababababababababababababab",
        "00000010018bcfe5680077078707070707070707",
        "000000241111111111111111111111111111111111111111111111111111111111111111",
        "01000000",
        "00000021",
    );
    assert!(hex::encode(&enc).starts_with(head), "{}", hex::encode(&enc));
    let mut signed = b"escrowd/token/v1".to_vec();
    signed.extend_from_slice(&enc[..body_len]);
    assert_eq!(t.digest(), bsv_format::hash::sha256(&signed));
    assert_eq!(hex::encode(t.digest()), PINNED_TOKEN_DIGEST);
    assert_eq!(Token::decode(&enc), Ok(t.clone()));
    assert_eq!(t.token_id.to_string(), "abababababababababababababababab");
}

/// SHA256("escrowd/token/v1" ‖ body) of [`token`].
const PINNED_TOKEN_DIGEST: &str =
    "4823254d8f188cbb3d45538542bbceb1a742e9e71b32223a491df34bd08bd35c";

#[test]
fn a_valid_token_is_accepted_until_not_after_plus_skew() {
    let t = token();
    let pk = key(4).public_key();
    let v = t
        .verify(&pk, HOLDER, UnixTime(NOT_AFTER + 2), SKEW)
        .unwrap();
    assert_eq!(v.token_id(), TokenId([0xab; 16]));
    assert_eq!(v.token(), &t);
    v.check_grants(&saga(), &reservation()).unwrap();
    assert_eq!(
        v.check_grants(&saga(), &Outpoint::new(Txid([0x11; 32]), 0)),
        Err(TokenError::WrongGrant)
    );
    assert_eq!(
        v.check_grants(&SagaId::new_v7(1_700_000_000_001, &[7; 10]), &reservation()),
        Err(TokenError::WrongGrant)
    );

    assert_eq!(
        t.verify(&pk, HOLDER, UnixTime(NOT_AFTER + 3), SKEW),
        Err(TokenError::Expired {
            not_after: UnixTime(NOT_AFTER),
            now: UnixTime(NOT_AFTER + 3),
            skew_secs: 2
        })
    );
}

#[test]
fn wrong_holder_is_refused() {
    let t = token();
    assert_eq!(
        t.verify(
            &key(4).public_key(),
            "spiffe://org-c.example/gateway/gc",
            UnixTime(NOT_AFTER),
            SKEW
        ),
        Err(TokenError::WrongHolder {
            holder: HOLDER.into(),
            caller: "spiffe://org-c.example/gateway/gc".into()
        })
    );
}

#[test]
fn forged_tokens_are_refused() {
    let pk = key(4).public_key();
    let now = UnixTime(NOT_AFTER);
    // Signed by another key, which it names as issuer: not the key of the terms.
    let other = Token::issue(
        TokenId([0xab; 16]),
        saga(),
        reservation(),
        ISSUER,
        HOLDER,
        UnixTime(NOT_AFTER),
        &key(9),
    )
    .unwrap();
    assert_eq!(
        other.verify(&pk, HOLDER, now, SKEW),
        Err(TokenError::WrongIssuerKey)
    );

    // The right issuer key with another key's signature spliced in.
    let enc = token().encode();
    let forged_sig = key(9).sign_digest(&token().digest());
    let body_len = enc.len() - 4 - token().signature().len();
    let mut spliced = enc[..body_len].to_vec();
    spliced.extend_from_slice(&(forged_sig.len() as u32).to_be_bytes());
    spliced.extend_from_slice(&forged_sig);
    let t = Token::decode(&spliced).unwrap();
    assert_eq!(
        t.verify(&pk, HOLDER, now, SKEW),
        Err(TokenError::BadSignature)
    );

    // A tampered body: not_after pushed a day later.
    let mut later = enc.clone();
    let na_at = body_len - 33 - 4 - 8;
    later[na_at..na_at + 8].copy_from_slice(&(NOT_AFTER + 86_400).to_be_bytes());
    let t = Token::decode(&later).unwrap();
    assert_eq!(t.not_after, UnixTime(NOT_AFTER + 86_400));
    assert_eq!(
        t.verify(&pk, HOLDER, now, SKEW),
        Err(TokenError::BadSignature)
    );

    // The holder rewritten to the attacker.
    let mut stolen = token();
    stolen.holder = "spiffe://org-c.example/gateway/gc".into();
    let t = Token::decode(&stolen.encode()).unwrap();
    assert_eq!(
        t.verify(&pk, "spiffe://org-c.example/gateway/gc", now, SKEW),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn decoding_is_bounded_and_typed() {
    let enc = token().encode();
    let e = |offset, kind, field| {
        Err(TokenError::Decode(DecodeError {
            offset,
            kind,
            field,
        }))
    };
    assert_eq!(
        Token::decode(&enc[..enc.len() - 1]),
        e(
            enc.len() - 4 - token().signature().len(),
            DecodeErrorKind::UnexpectedEnd,
            "signature"
        )
    );
    let mut trailing = enc.clone();
    trailing.push(0);
    assert_eq!(
        Token::decode(&trailing),
        e(enc.len(), DecodeErrorKind::TrailingBytes, "end")
    );
    assert_eq!(
        Token::decode(&vec![1; MAX_TOKEN_LEN + 1]),
        e(MAX_TOKEN_LEN, DecodeErrorKind::TooLong, "encoding")
    );
    assert_eq!(
        Token::decode(&[]),
        e(0, DecodeErrorKind::UnexpectedEnd, "version")
    );
    let mut v2 = enc.clone();
    v2[0] = 2;
    assert_eq!(
        Token::decode(&v2),
        e(0, DecodeErrorKind::UnknownVersion, "version")
    );
    // A 4 GiB length claimed for the token id is refused without reading on.
    let mut huge = enc.clone();
    huge[1..5].copy_from_slice(&[0xff; 4]);
    assert_eq!(
        Token::decode(&huge),
        e(1, DecodeErrorKind::BadLength, "token_id")
    );

    let mut bad_issuer = token();
    bad_issuer.issuer = "spiffe://org-b.example/observer/gb".into();
    assert_eq!(
        Token::decode(&bad_issuer.encode()),
        Err(TokenError::BadIdentity {
            field: "issuer",
            reason: "must have the role gateway".into()
        })
    );
    assert!(matches!(
        Token::issue(
            TokenId([0; 16]),
            saga(),
            reservation(),
            ISSUER,
            "ga",
            UnixTime(0),
            &key(4)
        ),
        Err(TokenError::BadIdentity {
            field: "holder",
            ..
        })
    ));

    // Every truncation and every single-byte change decodes or fails cleanly.
    for n in 0..enc.len() {
        let _ = Token::decode(&enc[..n]);
    }
    for i in 0..enc.len() {
        for bit in 0..8 {
            let mut m = enc.clone();
            m[i] ^= 1 << bit;
            if let Ok(t) = Token::decode(&m) {
                // A changed byte never yields a token that still verifies.
                assert!(
                    t.verify(&key(4).public_key(), HOLDER, UnixTime(0), SKEW)
                        .is_err()
                        || m == enc
                );
            }
        }
    }
}
