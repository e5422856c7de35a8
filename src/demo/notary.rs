//! The demo's notary (DESIGN.md §3.3 step 2), in process: it answers a
//! gateway's `Approve(terms, both reservation BEEFs)` after checking, on
//! its own, that
//! 1. the request is addressed to it and the terms name it;
//! 2. both parties' signatures over the terms hash verify;
//! 3. each reservation BEEF passes SPV against the notary's own tracker of
//!    that leg's chain, its subject is mined with the leg's confirmations,
//!    and its output 0 is exactly the leg's escrow output in the terms
//!    (`saga_core::legs::check_reservation_output`);
//! 4. its own rule allows the swap: no leg above [`LocalNotary::max_amount`].
//!
//! Approval is a signature with the notary key over
//! `SHA256("escrowd/notary/v1" ‖ terms hash ‖ payment reservation txid ‖
//! delivery reservation txid)` (txids in internal byte order), DER, low-S:
//! what DESIGN.md §3.3 says it signs. A tracker that cannot answer is not a
//! refusal: the gateway asks again ([`NotaryError`]). A notary can veto
//! progress; it never blocks a refund (the saga does not ask it for one).
//!
//! The gRPC notary service (`escrowd notary`) serves the same checks over
//! mutual TLS.
//!
//! # Layout
//! - [`LocalNotary`], [`approval_digest`], [`NOTARY_TAG`].

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::beef::Beef;
use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::spv::VerifyOptions;
use bsv_format::Txid;
use saga_core::legs::check_reservation_output;
use saga_core::saga::NotaryAnswer;
use saga_core::terms::{Leg, Role, Terms, TermsHash};
use saga_core::Satoshis;
use saga_runtime::ports::{Notary, NotaryError, NotaryRequest};
use saga_runtime::{verify_beef, ChainTracker, VerifyBeefError};

/// Domain tag of the approval digest (17 bytes).
pub const NOTARY_TAG: &[u8] = b"escrowd/notary/v1";

/// `SHA256(NOTARY_TAG ‖ terms hash ‖ payment txid ‖ delivery txid)`: what an
/// approval signs.
pub fn approval_digest(terms: &TermsHash, payment: &Txid, delivery: &Txid) -> [u8; 32] {
    let mut msg = Vec::with_capacity(NOTARY_TAG.len() + 96);
    msg.extend_from_slice(NOTARY_TAG);
    msg.extend_from_slice(&terms.0);
    msg.extend_from_slice(payment.as_bytes());
    msg.extend_from_slice(delivery.as_bytes());
    sha256(&msg)
}

/// A notary that decides in process.
pub struct LocalNotary {
    spiffe_id: String,
    key: PrivateKey,
    trackers: BTreeMap<String, Arc<dyn ChainTracker>>,
    verify: VerifyOptions,
    max_amount: Satoshis,
}

impl LocalNotary {
    /// A notary named `spiffe_id` (role `notary`) signing with `key`, with
    /// its own tracker per chain id, verifying BEEF under `verify`, and
    /// refusing any swap with a leg above `max_amount`.
    pub fn new(
        spiffe_id: impl Into<String>,
        key: PrivateKey,
        trackers: BTreeMap<String, Arc<dyn ChainTracker>>,
        verify: VerifyOptions,
        max_amount: Satoshis,
    ) -> LocalNotary {
        LocalNotary {
            spiffe_id: spiffe_id.into(),
            key,
            trackers,
            verify,
            max_amount,
        }
    }

    /// The largest leg amount this notary approves.
    pub fn max_amount(&self) -> Satoshis {
        self.max_amount
    }

    /// Checks one leg's reservation BEEF: `Ok(Ok(txid))` when it holds,
    /// `Ok(Err(reason))` for a refusal, `Err` when the tracker cannot answer.
    async fn reservation(
        &self,
        terms: &Terms,
        leg: Leg,
        beef: &[u8],
    ) -> Result<Result<Txid, String>, NotaryError> {
        let chain_id = &terms.leg(leg).chain_id;
        let Some(tracker) = self.trackers.get(chain_id) else {
            return Ok(Err(format!(
                "{leg}: the notary does not follow chain {chain_id}"
            )));
        };
        let parsed = match Beef::from_bytes(beef) {
            Ok(b) => b,
            Err(e) => return Ok(Err(format!("{leg} reservation BEEF: {e}"))),
        };
        let verified = match verify_beef(tracker.as_ref(), parsed, &self.verify).await {
            Ok(v) => v,
            Err(VerifyBeefError::Invalid(e)) => {
                return Ok(Err(format!("{leg} reservation fails SPV: {e}")))
            }
            Err(e) => {
                return Err(NotaryError {
                    detail: format!("{leg} reservation on {chain_id}: {e}"),
                })
            }
        };
        let txid = verified.subject();
        let mined = verified
            .beef()
            .find(&txid)
            .and_then(|t| t.bump_index())
            .and_then(|i| verified.beef().bumps().get(i))
            .map(|b| b.block_height());
        let Some(block_height) = mined else {
            return Ok(Err(format!("{leg} reservation {txid} is not mined")));
        };
        let depth = verified
            .tip_height()
            .saturating_sub(block_height)
            .saturating_add(1);
        let wanted = terms.leg(leg).confirmations;
        if depth < wanted {
            return Ok(Err(format!(
                "{leg} reservation {txid} has {depth} of {wanted} confirmations"
            )));
        }
        if let Err(e) = check_reservation_output(verified.subject_transaction(), 0, terms, leg) {
            return Ok(Err(format!("{leg} reservation {txid}: {e}")));
        }
        Ok(Ok(txid))
    }

    async fn decide(
        &self,
        request: &NotaryRequest,
    ) -> Result<Result<Vec<u8>, String>, NotaryError> {
        let terms = &request.terms;
        if request.notary != self.spiffe_id || terms.notary.as_deref() != Some(&self.spiffe_id) {
            return Ok(Err(format!(
                "the terms do not name this notary ({})",
                self.spiffe_id
            )));
        }
        for (role, signature) in [Role::Buyer, Role::Seller].iter().zip(&request.signatures) {
            if let Err(e) = terms.verify_signature(*role, signature) {
                return Ok(Err(e.to_string()));
            }
        }
        let payment = match self
            .reservation(terms, Leg::Payment, &request.payment_beef)
            .await?
        {
            Ok(txid) => txid,
            Err(reason) => return Ok(Err(reason)),
        };
        let delivery = match self
            .reservation(terms, Leg::Delivery, &request.delivery_beef)
            .await?
        {
            Ok(txid) => txid,
            Err(reason) => return Ok(Err(reason)),
        };
        for leg in [Leg::Payment, Leg::Delivery] {
            let amount = terms.leg(leg).amount;
            if amount > self.max_amount {
                return Ok(Err(format!(
                    "{leg} of {} sat exceeds this notary's limit of {} sat",
                    amount.0, self.max_amount.0
                )));
            }
        }
        let digest = approval_digest(&terms.hash(), &payment, &delivery);
        Ok(Ok(self.key.sign_digest(&digest)))
    }
}

#[async_trait]
impl Notary for LocalNotary {
    async fn approve(&self, request: NotaryRequest) -> Result<NotaryAnswer, NotaryError> {
        Ok(match self.decide(&request).await? {
            Ok(signature) => NotaryAnswer::Approved { signature },
            Err(reason) => NotaryAnswer::Rejected { reason },
        })
    }
}
