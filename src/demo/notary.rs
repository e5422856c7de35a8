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

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::units::{Height, UnixTime};
    use saga_testkit::fixtures::{self, key};

    fn notary() -> LocalNotary {
        LocalNotary::new(
            fixtures::NOTARY,
            key(9),
            BTreeMap::new(),
            VerifyOptions::default(),
            Satoshis(100_000_000),
        )
    }

    fn request(terms: Terms) -> NotaryRequest {
        let signatures = [
            terms.sign(Role::Buyer, &key(1)).unwrap(),
            terms.sign(Role::Seller, &key(4)).unwrap(),
        ];
        NotaryRequest {
            notary: fixtures::NOTARY.into(),
            terms,
            signatures,
            payment_beef: vec![0xde, 0xad],
            delivery_beef: vec![],
        }
    }

    async fn refusal(request: NotaryRequest) -> String {
        match notary().approve(request).await {
            Ok(NotaryAnswer::Rejected { reason }) => reason,
            other => panic!("not a refusal: {other:?}"),
        }
    }

    fn terms(notary: bool) -> Terms {
        fixtures::terms(UnixTime(1_700_000_000), Height(100), Height(200), notary)
    }

    #[tokio::test]
    async fn terms_that_do_not_name_it_or_carry_a_wrong_signature_are_refused() {
        assert_eq!(
            refusal(request(terms(false))).await,
            "the terms do not name this notary (spiffe://notary.example/notary/notary)"
        );
        let mut swapped = request(terms(true));
        swapped.signatures.swap(0, 1);
        assert!(
            refusal(swapped).await.contains("signature"),
            "a seller signature in the buyer's place"
        );
    }

    /// A tracker the notary never gets to ask (every request below is
    /// refused before SPV needs a root).
    struct Unasked;

    #[async_trait]
    impl ChainTracker for Unasked {
        async fn is_valid_root_for_height(
            &self,
            _root: &bsv_format::Hash256,
            _height: u32,
        ) -> Result<bool, saga_runtime::TrackerError> {
            panic!("asked for a root")
        }

        async fn current_height(&self) -> Result<u32, saga_runtime::TrackerError> {
            panic!("asked for the tip")
        }
    }

    #[tokio::test]
    async fn a_reservation_on_a_chain_it_does_not_follow_or_a_malformed_beef_is_refused() {
        // No trackers at all: it cannot judge chain-p.
        assert_eq!(
            refusal(request(terms(true))).await,
            "payment: the notary does not follow chain chain-p"
        );
        let mut following = notary();
        following
            .trackers
            .insert(fixtures::CHAIN_P.into(), Arc::new(Unasked));
        match following.approve(request(terms(true))).await {
            Ok(NotaryAnswer::Rejected { reason }) => {
                assert!(reason.starts_with("payment reservation BEEF: "), "{reason}")
            }
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn the_approval_digest_binds_the_terms_and_both_reservations() {
        let terms = TermsHash([1; 32]);
        let (p, d) = (Txid([2; 32]), Txid([3; 32]));
        let mut msg = b"escrowd/notary/v1".to_vec();
        msg.extend([1; 32]);
        msg.extend([2; 32]);
        msg.extend([3; 32]);
        assert_eq!(approval_digest(&terms, &p, &d), sha256(&msg));
        // Swapping the legs or changing the terms gives another digest.
        assert_ne!(approval_digest(&terms, &d, &p), sha256(&msg));
        assert_ne!(approval_digest(&TermsHash([0; 32]), &p, &d), sha256(&msg));
    }
}
