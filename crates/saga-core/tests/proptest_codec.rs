//! Property tests of everything saga-core parses: terms and token encodings
//! round-trip and their decoders never panic on any bytes; policy text of any
//! shape gives a policy or a positioned error, never a panic.

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::{Outpoint, Txid};
use proptest::prelude::*;
use saga_core::policy::{Policy, PolicyId};
use saga_core::terms::{LegTerms, PartyTerms, SagaId, Terms};
use saga_core::token::{Token, TokenId};
use saga_core::{Height, Satoshis, UnixTime};

const DEFAULT: &str = include_str!("../../../policies/default.toml");

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

prop_compose! {
    fn arb_terms()(
        millis in 0u64..(1 << 48),
        random in any::<[u8; 10]>(),
        names in ("[a-z0-9]{1,12}", "[a-z0-9]{1,12}"),
        notary in proptest::option::of("[a-z]{1,8}"),
        amounts in (1u64..=u64::MAX, 1u64..=u64::MAX),
        heights in (1u32..500_000_000, 1u32..500_000_000),
        confs in (1u32..=u32::MAX, 1u32..=u32::MAX),
        s in any::<[u8; 32]>(),
        quote in 0u64..u64::MAX - 1,
        gap in 1u64..1_000_000,
        chains in ("[a-z0-9._-]{1,64}", "[a-z0-9._-]{1,64}"),
        keys in proptest::sample::subsequence((1u8..=20).collect::<Vec<_>>(), 6),
    ) -> Terms {
        let party = |name: &str, k: &[u8]| PartyTerms {
            spiffe_id: format!("spiffe://{name}.example/gateway/{name}"),
            saga_key: key(k[0]).public_key(),
            payment_escrow_key: key(k[1]).public_key(),
            delivery_escrow_key: key(k[2]).public_key(),
        };
        Terms {
            saga_id: SagaId::new_v7(millis, &random),
            buyer: party(&format!("a{}", names.0), &keys[..3]),
            seller: party(&format!("b{}", names.1), &keys[3..]),
            notary: notary.map(|n| format!("spiffe://{n}.example/notary/{n}")),
            payment: LegTerms { chain_id: chains.0, amount: Satoshis(amounts.0), refund_height: Height(heights.0), confirmations: confs.0 },
            delivery: LegTerms { chain_id: chains.1, amount: Satoshis(amounts.1), refund_height: Height(heights.1), confirmations: confs.1 },
            hash_lock: sha256(&s),
            quote_expiry: UnixTime(quote),
            reservation_deadline: UnixTime(quote.saturating_add(gap)),
            policy_id: PolicyId::of("p.toml", &s),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn terms_round_trip(t in arb_terms()) {
        let enc = t.encode();
        prop_assert_eq!(Terms::decode(&enc), Ok(t.clone()));
        prop_assert_eq!(Terms::decode(&t.encode()).map(|d| d.hash()), Ok(t.hash()));
    }

    #[test]
    fn terms_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = Terms::decode(&bytes);
    }

    #[test]
    fn terms_decoder_survives_mutations(t in arb_terms(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut enc = t.encode();
        let i = at.index(enc.len());
        enc[i] = byte;
        if let Ok(d) = Terms::decode(&enc) {
            // Whatever decodes re-encodes to exactly the bytes it came from.
            prop_assert_eq!(d.encode(), enc);
        }
    }

    #[test]
    fn tokens_round_trip_and_survive_mutations(
        id in any::<[u8; 16]>(), txid in any::<[u8; 32]>(), vout in any::<u32>(), not_after in any::<u64>(),
        at in any::<prop::sample::Index>(), byte in any::<u8>(),
    ) {
        let t = Token::issue(
            TokenId(id), SagaId::new_v7(1, &[0; 10]), Outpoint::new(Txid(txid), vout),
            "spiffe://b.example/gateway/b", "spiffe://a.example/gateway/a", UnixTime(not_after), &key(4),
        ).unwrap();
        let mut enc = t.encode();
        prop_assert_eq!(Token::decode(&enc), Ok(t.clone()));
        let i = at.index(enc.len());
        enc[i] = byte;
        if let Ok(d) = Token::decode(&enc) {
            prop_assert_eq!(d.encode(), enc);
        }
    }

    #[test]
    fn token_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Token::decode(&bytes);
    }

    #[test]
    fn policy_parser_never_panics_on_edits_of_a_valid_file(at in any::<prop::sample::Index>(), cut in 0usize..40, insert in "[ -~\n]{0,12}") {
        let i = at.index(DEFAULT.len());
        let mut text: String = DEFAULT.chars().take(i).collect();
        text.push_str(&insert);
        text.extend(DEFAULT.chars().skip(i + cut));
        match Policy::parse(&text, "p.toml") {
            Ok(p) => prop_assert!(!p.timelines().is_empty()),
            Err(e) => {
                prop_assert!(e.line >= 1 && e.column >= 1);
                prop_assert!(e.to_string().starts_with("p.toml:"));
            }
        }
    }
}
