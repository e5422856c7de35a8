//! Fixed identities, keys, policy and terms for simulated swaps.
//!
//! Keys are `[n; 32]`: buyer saga 1, payment escrow 2, delivery escrow 3,
//! wallet 10; seller saga 4, payment escrow 5, delivery escrow 6, wallet 11
//! (the numbering of `crates/saga-core/tests/legs.rs`). The policy is
//! `policies/fast-test.toml`; terms put `T_P` 90 blocks above the payment
//! tip and `T_D` 30 above the delivery tip, the delays that policy allows.
//!
//! # Layout
//! - [`BUYER`], [`SELLER`], [`NOTARY`], [`CHAIN_P`], [`CHAIN_D`], [`PREIMAGE`].
//! - [`key`], [`policy`], [`keys_of`], [`terms`].

use std::sync::Arc;

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use saga_core::policy::{Policy, PolicyId};
use saga_core::saga::SagaKeys;
use saga_core::terms::{LegTerms, PartyTerms, Role, SagaId, Terms};
use saga_core::units::{Height, Satoshis, UnixTime};

/// The buyer's gateway.
pub const BUYER: &str = "spiffe://org-a.example/gateway/ga";
/// The seller's gateway.
pub const SELLER: &str = "spiffe://org-b.example/gateway/gb";
/// The notary the fast-test policy allows.
pub const NOTARY: &str = "spiffe://notary.example/notary/notary";
/// The payment chain.
pub const CHAIN_P: &str = "chain-p";
/// The delivery chain.
pub const CHAIN_D: &str = "chain-d";
/// The buyer's preimage `s` (32 bytes).
pub const PREIMAGE: [u8; 32] = [0x5a; 32];
/// Payment amount, satoshis.
pub const AMOUNT_P: u64 = 50_000;
/// Delivery amount, satoshis.
pub const AMOUNT_D: u64 = 20_000;
/// Blocks from the payment tip to `T_P`.
pub const DELAY_P: u32 = 90;
/// Blocks from the delivery tip to `T_D`.
pub const DELAY_D: u32 = 30;

const FAST_TEST: &str = include_str!("../../../policies/fast-test.toml");

/// The key `[n; 32]`.
pub fn key(n: u8) -> PrivateKey {
    // Invariant: every n in 1..=255 repeated 32 times is below the curve order.
    PrivateKey::from_bytes(&[n; 32]).expect("[n; 32] is a valid secp256k1 scalar for n ≥ 1")
}

/// `policies/fast-test.toml`, parsed.
pub fn policy() -> Arc<Policy> {
    // Invariant: the file is in the repository and its own tests parse it.
    Arc::new(
        Policy::parse(FAST_TEST, "policies/fast-test.toml")
            .expect("policies/fast-test.toml parses"),
    )
}

/// The saga keys of `role` (the buyer's with [`PREIMAGE`]), and its wallet key.
pub fn keys_of(role: Role) -> (SagaKeys, PrivateKey) {
    match role {
        Role::Buyer => (
            SagaKeys {
                saga_key: key(1),
                payment_escrow_key: key(2),
                delivery_escrow_key: key(3),
                preimage: Some(PREIMAGE),
            },
            key(10),
        ),
        Role::Seller => (
            SagaKeys {
                saga_key: key(4),
                payment_escrow_key: key(5),
                delivery_escrow_key: key(6),
                preimage: None,
            },
            key(11),
        ),
    }
}

/// Terms for a swap agreed at `now` with the chains at `tip_p` / `tip_d`:
/// [`AMOUNT_P`] on [`CHAIN_P`] refundable at `tip_p + 90`, [`AMOUNT_D`] on
/// [`CHAIN_D`] at `tip_d + 30`, one confirmation each, `H = SHA256(PREIMAGE)`,
/// quote expiry `now + 30 s`, reservation deadline `now + 300 s`.
pub fn terms(now: UnixTime, tip_p: Height, tip_d: Height, notary: bool) -> Terms {
    Terms {
        saga_id: SagaId::new_v7(now.0.saturating_mul(1000), &[7; 10]),
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
        notary: notary.then(|| NOTARY.to_string()),
        payment: LegTerms {
            chain_id: CHAIN_P.into(),
            amount: Satoshis(AMOUNT_P),
            refund_height: Height(tip_p.0 + DELAY_P),
            confirmations: 1,
        },
        delivery: LegTerms {
            chain_id: CHAIN_D.into(),
            amount: Satoshis(AMOUNT_D),
            refund_height: Height(tip_d.0 + DELAY_D),
            confirmations: 1,
        },
        hash_lock: sha256(&PREIMAGE),
        quote_expiry: UnixTime(now.0 + 30),
        reservation_deadline: UnixTime(now.0 + 300),
        policy_id: PolicyId::of("fast-test.toml", FAST_TEST.as_bytes()),
    }
}
