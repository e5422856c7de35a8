//! Saga ids and the agreed terms of a swap (DESIGN.md §3.3 step 0): their
//! canonical encoding, hash and both parties' signatures, and the check of a
//! counterparty's proposal against our policy.
//!
//! The buyer A pays on chain P and holds the secret `s`; the seller B delivers
//! on chain D. Each party has a *saga key* (signs terms and tokens) and one
//! escrow key per leg: on P the buyer funds and the seller is the
//! beneficiary, on D the other way round, so the escrow script of each leg
//! (DESIGN.md §3.1) is fixed by the terms ([`Terms::escrow_script`]).
//!
//! # Canonical encoding (version 1)
//!
//! [`crate::canonical`] fields, in this order (23 fields):
//!
//! | # | field | bytes |
//! | --- | --- | --- |
//! | 1 | saga id | 16 (UUIDv7) |
//! | 2–5 | buyer: SPIFFE ID, saga key, payment escrow key, delivery escrow key | UTF-8 ≤ 2048, 33, 33, 33 |
//! | 6–9 | seller: the same | |
//! | 10 | notary SPIFFE ID, empty if none | UTF-8 ≤ 2048 |
//! | 11–14 | payment leg: chain id, amount (sat), refund height `T_P`, confirmations | UTF-8 ≤ 64, u64, u32, u32 |
//! | 15–18 | delivery leg: the same (`T_D`) | |
//! | 19 | hashlock `H = SHA256(s)` | 32 |
//! | 20 | quote expiry, UTC seconds | u64 |
//! | 21 | reservation deadline, UTC seconds | u64 |
//! | 22 | policy id: file name (the proposer's policy) | UTF-8 ≤ 255 |
//! | 23 | policy id: SHA-256 of the file | 32 |
//!
//! The terms hash is `SHA256("escrowd/terms/v1" ‖ encoding)`; each party signs
//! that digest with its saga key (ECDSA, RFC 6979, low-S, DER without a
//! sighash byte). The notary's approval signs the same hash.
//!
//! # Layout
//! - [`saga_id`]: the [`SagaId`] type.
//! - [`check`]: [`Terms::check_against`], [`Denial`], [`HashlockRegistry`].
//! - [`Role`], [`Leg`], [`PartyTerms`], [`LegTerms`], [`Terms`].
//! - [`TermsHash`], [`TermsSignature`], [`AgreedTerms`], [`TermsError`].

pub mod check;
pub mod saga_id;

use std::fmt;

use bsv_format::hash::sha256;
use bsv_format::keys::{is_low_s, is_strict_der, PrivateKey, PublicKey};
use bsv_format::script::templates::escrow_lock;
use bsv_format::Script;

use crate::canonical::{DecodeError, Reader, Writer};
use crate::policy::{PolicyId, MAX_CHAIN_ID_LEN};
use crate::spiffe::{self, Role as SpiffeRole, SpiffeError, MAX_SPIFFE_ID_LEN};
use crate::units::{Height, Satoshis, UnixTime};

pub use check::{CheckContext, Denial, HashlockRegistry};
pub use saga_id::{SagaId, SagaIdError};

/// Version byte of the terms encoding.
pub const TERMS_VERSION: u8 = 1;
/// Domain tag hashed before the encoding (16 bytes).
pub const TERMS_TAG: &[u8; 16] = b"escrowd/terms/v1";
/// Longest terms encoding accepted, bytes (two 2048-byte identities, a
/// notary, and the fixed fields fit well within it).
pub const MAX_TERMS_LEN: usize = 8 * 1024;
/// Longest policy file name in the terms, bytes.
pub const MAX_POLICY_NAME_LEN: usize = 255;
/// Longest DER signature accepted (without a sighash byte), bytes.
pub const MAX_DER_SIGNATURE_LEN: usize = 72;

/// A party's role in the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A: holds `s`, funds the payment leg on P, claims the delivery leg on D.
    Buyer,
    /// B: funds the delivery leg on D, claims the payment leg on P.
    Seller,
}

impl Role {
    /// The other party's role.
    pub fn other(self) -> Role {
        match self {
            Role::Buyer => Role::Seller,
            Role::Seller => Role::Buyer,
        }
    }

    /// The leg this role funds (its own leg).
    pub fn funds(self) -> Leg {
        match self {
            Role::Buyer => Leg::Payment,
            Role::Seller => Leg::Delivery,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
        })
    }
}

/// One side of the swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leg {
    /// The buyer pays on chain P.
    Payment,
    /// The seller delivers on chain D.
    Delivery,
}

impl Leg {
    /// The party that locks this leg's value.
    pub fn funder(self) -> Role {
        match self {
            Leg::Payment => Role::Buyer,
            Leg::Delivery => Role::Seller,
        }
    }

    /// The party the leg is meant for.
    pub fn beneficiary(self) -> Role {
        self.funder().other()
    }
}

impl fmt::Display for Leg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Leg::Payment => "payment",
            Leg::Delivery => "delivery",
        })
    }
}

/// One party's identity and keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyTerms {
    /// The gateway's SPIFFE ID (`spiffe://org-a.example/gateway/ga`).
    pub spiffe_id: String,
    /// Signs the terms and the tokens this party issues.
    pub saga_key: PublicKey,
    /// This party's key in the payment leg's escrow script.
    pub payment_escrow_key: PublicKey,
    /// This party's key in the delivery leg's escrow script.
    pub delivery_escrow_key: PublicKey,
}

impl PartyTerms {
    /// This party's escrow key on `leg`.
    pub fn escrow_key(&self, leg: Leg) -> &PublicKey {
        match leg {
            Leg::Payment => &self.payment_escrow_key,
            Leg::Delivery => &self.delivery_escrow_key,
        }
    }
}

/// One leg's chain, amount and heights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegTerms {
    /// The chain id (as in the policy's `[chains.<id>]`).
    pub chain_id: String,
    /// Value locked in the escrow output.
    pub amount: Satoshis,
    /// `T`: the refund's nLockTime; the refund can be mined from `T + 1`.
    pub refund_height: Height,
    /// Confirmations the reservation needs before the other side relies on it.
    pub confirmations: u32,
}

/// The agreed terms of one saga (DESIGN.md §3.3 step 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The saga.
    pub saga_id: SagaId,
    /// Party A.
    pub buyer: PartyTerms,
    /// Party B.
    pub seller: PartyTerms,
    /// The notary that must approve, if any (SPIFFE ID of role `notary`).
    pub notary: Option<String>,
    /// The leg A pays on chain P.
    pub payment: LegTerms,
    /// The leg B delivers on chain D.
    pub delivery: LegTerms,
    /// `H = SHA256(s)`.
    pub hash_lock: [u8; 32],
    /// The proposal is acceptable until this UTC time.
    pub quote_expiry: UnixTime,
    /// Both reservations must be made by this UTC time.
    pub reservation_deadline: UnixTime,
    /// The proposer's policy.
    pub policy_id: PolicyId,
}

/// `SHA256("escrowd/terms/v1" ‖ encoding)`: what both parties (and the
/// notary) sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TermsHash(pub [u8; 32]);

impl fmt::Display for TermsHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex_lower(&self.0))
    }
}

/// A DER ECDSA signature (no sighash byte), strict DER and low-S.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TermsSignature(Vec<u8>);

impl TermsSignature {
    /// Takes signature bytes from outside, checking the encoding only
    /// (whether it verifies is [`Terms::verify_signature`]'s job).
    ///
    /// # Errors
    /// [`TermsError::SignatureEncoding`] if longer than 72 bytes, not strict
    /// DER (BIP66) or high-S.
    pub fn from_der(bytes: &[u8]) -> Result<TermsSignature, TermsError> {
        if bytes.len() > MAX_DER_SIGNATURE_LEN || !der_low_s(bytes) {
            return Err(TermsError::SignatureEncoding);
        }
        Ok(TermsSignature(bytes.to_vec()))
    }

    /// The DER bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Strict DER and low-S: the node's checks take the sighash byte, so one is
/// appended for the check.
pub(crate) fn der_low_s(der: &[u8]) -> bool {
    let mut with_type = Vec::with_capacity(der.len() + 1);
    with_type.extend_from_slice(der);
    with_type.push(0x01);
    is_strict_der(&with_type) && is_low_s(&with_type)
}

/// A fault in terms: decoding, structure, signatures, policy, hashlock reuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    /// The canonical encoding does not decode.
    #[error("terms encoding: {0}")]
    Decode(#[from] DecodeError),
    /// A SPIFFE ID in the terms is malformed or names the wrong role.
    #[error("terms {field}: {reason}")]
    BadIdentity {
        /// The field (`buyer.spiffe_id`, `seller.spiffe_id`, `notary`).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A field has a value the terms may not have.
    #[error("terms {field}: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The signing key is not the role's saga key in the terms.
    #[error("the key given is not the {role}'s saga key in the terms")]
    KeyMismatch {
        /// The role whose key was expected.
        role: Role,
    },
    /// A signature that is not strict DER, low-S, at most 72 bytes.
    #[error("signature is not strict low-S DER of at most 72 bytes")]
    SignatureEncoding,
    /// The signature does not verify under the role's saga key.
    #[error("the {role}'s signature does not verify over the terms hash")]
    BadSignature {
        /// Whose signature.
        role: Role,
    },
    /// The proposal fails our policy.
    #[error("policy denied: {0}")]
    Denied(Box<Denial>),
    /// `H` was seen before (DESIGN.md §3.1: a hashlock is never reused).
    #[error("hashlock {} was seen before", crate::hex_lower(.hash_lock))]
    HashlockReused {
        /// The reused `H`.
        hash_lock: [u8; 32],
    },
}

impl Terms {
    /// The party playing `role`.
    pub fn party(&self, role: Role) -> &PartyTerms {
        match role {
            Role::Buyer => &self.buyer,
            Role::Seller => &self.seller,
        }
    }

    /// The terms of `leg`.
    pub fn leg(&self, leg: Leg) -> &LegTerms {
        match leg {
            Leg::Payment => &self.payment,
            Leg::Delivery => &self.delivery,
        }
    }

    /// The escrow locking script of `leg` (DESIGN.md §3.1): `H`, the
    /// beneficiary's and the funder's escrow keys on that leg.
    pub fn escrow_script(&self, leg: Leg) -> Script {
        let beneficiary = self.party(leg.beneficiary()).escrow_key(leg);
        let funder = self.party(leg.funder()).escrow_key(leg);
        escrow_lock(&self.hash_lock, beneficiary, funder)
    }

    /// The canonical encoding (module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(TERMS_VERSION);
        w.bytes(self.saga_id.as_bytes());
        for p in [&self.buyer, &self.seller] {
            w.text(&p.spiffe_id)
                .key(&p.saga_key)
                .key(&p.payment_escrow_key)
                .key(&p.delivery_escrow_key);
        }
        w.text(self.notary.as_deref().unwrap_or(""));
        for l in [&self.payment, &self.delivery] {
            w.text(&l.chain_id)
                .u64(l.amount.0)
                .u32(l.refund_height.0)
                .u32(l.confirmations);
        }
        w.bytes(&self.hash_lock)
            .u64(self.quote_expiry.0)
            .u64(self.reservation_deadline.0)
            .text(&self.policy_id.file_name)
            .bytes(&self.policy_id.sha256);
        w.finish()
    }

    /// Decodes and structurally validates ([`Terms::validate`]) a canonical encoding.
    ///
    /// # Errors
    /// [`TermsError::Decode`] with the byte offset and field; the errors of
    /// [`Terms::validate`].
    pub fn decode(bytes: &[u8]) -> Result<Terms, TermsError> {
        let mut r = Reader::new(bytes, MAX_TERMS_LEN, TERMS_VERSION)?;
        let (id, at) = r.array::<16>("saga_id")?;
        let saga_id = SagaId::from_bytes(id).map_err(|_| r.invalid(at, "saga_id"))?;
        let mut party = |names: [&'static str; 4]| -> Result<PartyTerms, DecodeError> {
            Ok(PartyTerms {
                spiffe_id: r.text(names[0], MAX_SPIFFE_ID_LEN)?.0,
                saga_key: r.key(names[1])?,
                payment_escrow_key: r.key(names[2])?,
                delivery_escrow_key: r.key(names[3])?,
            })
        };
        let buyer = party([
            "buyer.spiffe_id",
            "buyer.saga_key",
            "buyer.payment_escrow_key",
            "buyer.delivery_escrow_key",
        ])?;
        let seller = party([
            "seller.spiffe_id",
            "seller.saga_key",
            "seller.payment_escrow_key",
            "seller.delivery_escrow_key",
        ])?;
        let (notary, _) = r.text("notary", MAX_SPIFFE_ID_LEN)?;
        let mut leg = |names: [&'static str; 4]| -> Result<LegTerms, DecodeError> {
            Ok(LegTerms {
                chain_id: r.text(names[0], MAX_CHAIN_ID_LEN)?.0,
                amount: Satoshis(r.u64(names[1])?),
                refund_height: Height(r.u32(names[2])?),
                confirmations: r.u32(names[3])?,
            })
        };
        let payment = leg([
            "payment.chain_id",
            "payment.amount",
            "payment.refund_height",
            "payment.confirmations",
        ])?;
        let delivery = leg([
            "delivery.chain_id",
            "delivery.amount",
            "delivery.refund_height",
            "delivery.confirmations",
        ])?;
        let (hash_lock, _) = r.array::<32>("hash_lock")?;
        let quote_expiry = UnixTime(r.u64("quote_expiry")?);
        let reservation_deadline = UnixTime(r.u64("reservation_deadline")?);
        let (file_name, _) = r.text("policy_id.file_name", MAX_POLICY_NAME_LEN)?;
        let (sha, _) = r.array::<32>("policy_id.sha256")?;
        r.finish()?;
        let terms = Terms {
            saga_id,
            buyer,
            seller,
            notary: if notary.is_empty() {
                None
            } else {
                Some(notary)
            },
            payment,
            delivery,
            hash_lock,
            quote_expiry,
            reservation_deadline,
            policy_id: PolicyId {
                file_name,
                sha256: sha,
            },
        };
        terms.validate()?;
        Ok(terms)
    }

    /// Structural rules every terms value must satisfy, whatever the policy:
    /// SPIFFE IDs well formed (gateways for the parties, role `notary` for
    /// the notary) and the two parties distinct; chain ids well formed;
    /// amounts and confirmations at least 1; refund heights block heights
    /// (below 500,000,000, the nLockTime threshold); each leg's funder and
    /// beneficiary keys distinct; a non-empty policy file name; the quote
    /// expiring before the reservation deadline.
    ///
    /// # Errors
    /// [`TermsError::BadIdentity`], [`TermsError::BadField`].
    pub fn validate(&self) -> Result<(), TermsError> {
        let id = |field: &'static str, text: &str, role: SpiffeRole| -> Result<(), TermsError> {
            let parts = spiffe::parse_spiffe_id(text).map_err(|e: SpiffeError| {
                TermsError::BadIdentity {
                    field,
                    reason: e.to_string(),
                }
            })?;
            if parts.role != role {
                return Err(TermsError::BadIdentity {
                    field,
                    reason: format!("must have the role {}", role.as_str()),
                });
            }
            Ok(())
        };
        id(
            "buyer.spiffe_id",
            &self.buyer.spiffe_id,
            SpiffeRole::Gateway,
        )?;
        id(
            "seller.spiffe_id",
            &self.seller.spiffe_id,
            SpiffeRole::Gateway,
        )?;
        if let Some(n) = &self.notary {
            id("notary", n, SpiffeRole::Notary)?;
        }
        let bad = |field, reason| Err(TermsError::BadField { field, reason });
        if self.buyer.spiffe_id == self.seller.spiffe_id {
            return bad("seller.spiffe_id", "buyer and seller are the same gateway");
        }
        for (leg, names) in [
            (
                Leg::Payment,
                [
                    "payment.chain_id",
                    "payment.amount",
                    "payment.refund_height",
                    "payment.confirmations",
                ],
            ),
            (
                Leg::Delivery,
                [
                    "delivery.chain_id",
                    "delivery.amount",
                    "delivery.refund_height",
                    "delivery.confirmations",
                ],
            ),
        ] {
            let l = self.leg(leg);
            let chain_ok = !l.chain_id.is_empty()
                && l.chain_id.len() <= MAX_CHAIN_ID_LEN
                && l.chain_id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
                });
            if !chain_ok {
                return bad(names[0], "not a chain id ([a-z0-9._-], 1 to 64 bytes)");
            }
            if l.amount.0 == 0 {
                return bad(names[1], "zero");
            }
            if l.refund_height.0 == 0 || l.refund_height.0 >= bsv_format::tx::LOCKTIME_THRESHOLD {
                return bad(names[2], "not a block height in 1..500000000");
            }
            if l.confirmations == 0 {
                return bad(names[3], "zero");
            }
            if self.party(leg.funder()).escrow_key(leg)
                == self.party(leg.beneficiary()).escrow_key(leg)
            {
                return bad(
                    match leg {
                        Leg::Payment => "seller.payment_escrow_key",
                        Leg::Delivery => "buyer.delivery_escrow_key",
                    },
                    "the funder's and the beneficiary's escrow keys are the same",
                );
            }
        }
        if self.policy_id.file_name.is_empty() {
            return bad("policy_id.file_name", "empty");
        }
        if self.quote_expiry >= self.reservation_deadline {
            return bad("reservation_deadline", "not after the quote expiry");
        }
        Ok(())
    }

    /// `SHA256("escrowd/terms/v1" ‖ encoding)`.
    pub fn hash(&self) -> TermsHash {
        let enc = self.encode();
        let mut msg = Vec::with_capacity(TERMS_TAG.len() + enc.len());
        msg.extend_from_slice(TERMS_TAG);
        msg.extend_from_slice(&enc);
        TermsHash(sha256(&msg))
    }

    /// Signs the terms hash as `role`, with `key`, which must be that role's
    /// saga key in the terms.
    ///
    /// # Errors
    /// [`TermsError::KeyMismatch`].
    pub fn sign(&self, role: Role, key: &PrivateKey) -> Result<TermsSignature, TermsError> {
        if key.public_key() != self.party(role).saga_key {
            return Err(TermsError::KeyMismatch { role });
        }
        Ok(TermsSignature(key.sign_digest(&self.hash().0)))
    }

    /// Verifies `role`'s signature over the terms hash under that role's
    /// saga key in the terms.
    ///
    /// # Errors
    /// [`TermsError::BadSignature`].
    pub fn verify_signature(
        &self,
        role: Role,
        signature: &TermsSignature,
    ) -> Result<(), TermsError> {
        if self
            .party(role)
            .saga_key
            .verify_digest(&self.hash().0, signature.as_bytes())
        {
            Ok(())
        } else {
            Err(TermsError::BadSignature { role })
        }
    }
}

/// Terms signed by both parties, each signature verified. Only
/// [`AgreedTerms::new`] builds one, so holding it means both verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreedTerms {
    terms: Terms,
    buyer_signature: TermsSignature,
    seller_signature: TermsSignature,
}

impl AgreedTerms {
    /// Verifies both signatures over `terms`.
    ///
    /// # Errors
    /// [`TermsError::BadSignature`] naming the first role whose signature fails.
    pub fn new(
        terms: Terms,
        buyer_signature: TermsSignature,
        seller_signature: TermsSignature,
    ) -> Result<AgreedTerms, TermsError> {
        terms.verify_signature(Role::Buyer, &buyer_signature)?;
        terms.verify_signature(Role::Seller, &seller_signature)?;
        Ok(AgreedTerms {
            terms,
            buyer_signature,
            seller_signature,
        })
    }

    /// The terms.
    pub fn terms(&self) -> &Terms {
        &self.terms
    }

    /// `role`'s signature.
    pub fn signature(&self, role: Role) -> &TermsSignature {
        match role {
            Role::Buyer => &self.buyer_signature,
            Role::Seller => &self.seller_signature,
        }
    }
}
