//! The notary (DESIGN.md §3.3 step 2): `escrow.v1.NotaryService`, served by
//! `escrowd notary`, and [`NotaryClient`], the driver's [`Notary`] port over
//! gRPC.
//!
//! The notary trusts neither gateway. For `Approve` it:
//! 1. decodes the terms and verifies both parties' signatures over them;
//! 2. requires the terms to name it as their notary and the caller (its
//!    mTLS identity) to be one of their two gateways (PERMISSION_DENIED);
//! 3. applies its [`NotaryPolicy`] (trust domains it serves, chains it
//!    tracks, an amount ceiling per chain) — a refusal is final;
//! 4. SPV-verifies each reservation's Atomic BEEF against ITS OWN tracker of
//!    that leg's chain and finds the leg's escrow output in it exactly as
//!    the terms fix it (`legs::check_reservation_output`) — a mismatch is a
//!    refusal; a reservation with fewer confirmations than the terms (or the
//!    policy) want is FAILED_PRECONDITION, to be asked again;
//! 5. signs [`approval_digest`]: `SHA256("escrowd/notary/v1" ‖ terms hash ‖
//!    payment txid ‖ delivery txid)` (txids in internal byte order) with its
//!    key (DER, low-S, RFC 6979, so the same request always gets the same
//!    signature).
//!
//! A notary can veto progress; it can never block a refund (the saga's
//! refunds do not ask it).
//!
//! # Layout
//! - [`NOTARY_TAG`], [`approval_digest`].
//! - [`NotaryPolicy`], [`NotaryService`] and its gRPC trait implementation.
//! - [`NotaryEndpoint`], [`NotaryClient`] and its [`Notary`] implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::beef::Beef;
use bsv_format::hash::sha256;
use bsv_format::keys::{PrivateKey, PublicKey};
use bsv_format::spv::{VerifiedBeef, VerifyOptions};
use bsv_format::{Outpoint, Txid};
use saga_core::legs::check_reservation_output;
use saga_core::saga::NotaryAnswer;
use saga_core::terms::{AgreedTerms, Leg, Role, Terms, TermsError, TermsHash};
use saga_core::Satoshis;
use saga_runtime::ports::{Notary, NotaryError, NotaryRequest};
use saga_runtime::{verify_beef, ChainTracker};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::convert::{self, ConvertError};
use super::peer_client::{mtls_channel, PeerClientError, Timeouts};
use super::status::RpcError;
use crate::identity::authz::caller;
use crate::identity::{IdentityHandle, SpiffeId};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::notary_service_client::NotaryServiceClient;
use crate::proto::escrow_v1::notary_service_server::{self, NotaryServiceServer};

/// Domain tag of the approval digest (17 bytes).
pub const NOTARY_TAG: &[u8; 17] = b"escrowd/notary/v1";

/// `SHA256("escrowd/notary/v1" ‖ terms hash ‖ payment txid ‖ delivery
/// txid)`, txids in internal byte order: what a notary signs.
pub fn approval_digest(terms: &TermsHash, payment: &Txid, delivery: &Txid) -> [u8; 32] {
    let mut msg = Vec::with_capacity(NOTARY_TAG.len() + 96);
    msg.extend_from_slice(NOTARY_TAG);
    msg.extend_from_slice(&terms.0);
    msg.extend_from_slice(&payment.0);
    msg.extend_from_slice(&delivery.0);
    sha256(&msg)
}

/// What a notary approves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotaryPolicy {
    /// Trust domains whose gateways it serves (both parties must be of
    /// one); empty: any federated domain.
    pub domains: BTreeSet<String>,
    /// Largest leg amount per chain; a chain not listed has no ceiling.
    /// Chains it has no tracker for are refused whatever this says.
    pub max_amount: BTreeMap<String, Satoshis>,
    /// Confirmations a reservation needs at least, even if the terms ask
    /// for fewer.
    pub min_confirmations: u32,
}

/// The notary's service.
#[derive(Clone)]
pub struct NotaryService {
    own_id: String,
    key: PrivateKey,
    trackers: BTreeMap<String, Arc<dyn ChainTracker>>,
    verify: VerifyOptions,
    policy: NotaryPolicy,
}

impl std::fmt::Debug for NotaryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotaryService")
            .field("own_id", &self.own_id)
            .field("chains", &self.trackers.keys().collect::<Vec<_>>())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A refusal (final) or an error (status) of one approval.
enum Verdict {
    Refused(String),
    Error(RpcError),
}

impl From<RpcError> for Verdict {
    fn from(e: RpcError) -> Verdict {
        Verdict::Error(e)
    }
}

impl From<ConvertError> for Verdict {
    fn from(e: ConvertError) -> Verdict {
        Verdict::Error(e.into())
    }
}

impl NotaryService {
    /// Notary `own_id` (its SPIFFE ID, as terms name it) signing with `key`,
    /// verifying with `trackers` (chain id → its own tracker) under
    /// `verify`, approving what `policy` allows.
    pub fn new(
        own_id: String,
        key: PrivateKey,
        trackers: BTreeMap<String, Arc<dyn ChainTracker>>,
        verify: VerifyOptions,
        policy: NotaryPolicy,
    ) -> NotaryService {
        NotaryService {
            own_id,
            key,
            trackers,
            verify,
            policy,
        }
    }

    /// The notary's public key (what gateways configure to check approvals).
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The tonic service to add to a server (behind the `AuthLayer`).
    pub fn into_server(self) -> NotaryServiceServer<NotaryService> {
        NotaryServiceServer::new(self)
    }

    /// Judges one request from `caller` (steps 1–5 of the module docs).
    pub async fn approve(
        &self,
        caller: &str,
        r: &pb::ApproveRequest,
    ) -> Result<pb::ApproveResponse, RpcError> {
        use pb::approve_response::{Answer, Approval, Refusal};
        let answer = match self.judge(caller, r).await {
            Ok(signature) => Answer::Approved(Approval {
                signature,
                notary_key: self.key.public_key().to_compressed().to_vec(),
            }),
            Err(Verdict::Refused(reason)) => {
                tracing::info!(%caller, %reason, "notary refused");
                Answer::Refused(Refusal { reason })
            }
            Err(Verdict::Error(e)) => return Err(e),
        };
        Ok(pb::ApproveResponse {
            answer: Some(answer),
        })
    }

    async fn judge(&self, caller: &str, r: &pb::ApproveRequest) -> Result<Vec<u8>, Verdict> {
        let terms = convert::terms("terms", &r.terms)?;
        let buyer_signature = convert::terms_signature("buyer_signature", &r.buyer_signature)?;
        let seller_signature = convert::terms_signature("seller_signature", &r.seller_signature)?;
        let payment_beef = convert::atomic_beef("payment_beef", &r.payment_beef)?;
        let delivery_beef = convert::atomic_beef("delivery_beef", &r.delivery_beef)?;
        let agreed = AgreedTerms::new(terms, buyer_signature, seller_signature).map_err(|e| {
            let field = match e {
                TermsError::BadSignature { role: Role::Seller } => "seller_signature",
                _ => "buyer_signature",
            };
            ConvertError::Invalid {
                field: field.into(),
                reason: e.to_string(),
            }
        })?;
        let terms = agreed.terms();
        if terms.buyer.spiffe_id != caller && terms.seller.spiffe_id != caller {
            return Err(RpcError::NotAParty {
                caller: caller.to_owned(),
                saga_id: terms.saga_id,
            }
            .into());
        }
        if terms.notary.as_deref() != Some(self.own_id.as_str()) {
            return Err(Verdict::Refused(format!(
                "the terms name notary {}, not {}",
                terms.notary.as_deref().unwrap_or("none"),
                self.own_id
            )));
        }
        self.check_policy(terms)?;
        let payment = self
            .reservation(terms, Leg::Payment, "payment_beef", payment_beef)
            .await?;
        let delivery = self
            .reservation(terms, Leg::Delivery, "delivery_beef", delivery_beef)
            .await?;
        let digest = approval_digest(&terms.hash(), &payment.txid, &delivery.txid);
        tracing::info!(saga = %terms.saga_id, %caller, "notary approved");
        Ok(self.key.sign_digest(&digest))
    }

    fn check_policy(&self, terms: &Terms) -> Result<(), Verdict> {
        for party in [&terms.buyer, &terms.seller] {
            let domain = party
                .spiffe_id
                .parse::<SpiffeId>()
                .map(|id| id.domain().to_string())
                .unwrap_or_default();
            if !self.policy.domains.is_empty() && !self.policy.domains.contains(&domain) {
                return Err(Verdict::Refused(format!(
                    "this notary does not serve trust domain {domain:?} ({})",
                    party.spiffe_id
                )));
            }
        }
        for leg in [Leg::Payment, Leg::Delivery] {
            let l = terms.leg(leg);
            if !self.trackers.contains_key(&l.chain_id) {
                return Err(Verdict::Refused(format!(
                    "this notary does not track chain {} ({leg} leg)",
                    l.chain_id
                )));
            }
            if let Some(max) = self.policy.max_amount.get(&l.chain_id) {
                if l.amount > *max {
                    return Err(Verdict::Refused(format!(
                        "{leg} leg of {} on {} is above this notary's ceiling of {max}",
                        l.amount, l.chain_id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The escrow outpoint of `leg`'s reservation in `beef`, verified.
    async fn reservation(
        &self,
        terms: &Terms,
        leg: Leg,
        field: &'static str,
        beef: Beef,
    ) -> Result<Outpoint, Verdict> {
        let chain_id = terms.leg(leg).chain_id.clone();
        let tracker = self.trackers.get(&chain_id).ok_or_else(|| {
            Verdict::Refused(format!("this notary does not track chain {chain_id}"))
        })?;
        let verified = verify_beef(tracker.as_ref(), beef, &self.verify)
            .await
            .map_err(|source| RpcError::Spv {
                field,
                chain_id: chain_id.clone(),
                source: Box::new(source),
            })?;
        let tx = verified.subject_transaction();
        let escrow = (0..tx.outputs.len())
            .filter_map(|v| u32::try_from(v).ok())
            .find_map(|v| check_reservation_output(tx, v, terms, leg).ok())
            .ok_or_else(|| {
                Verdict::Refused(format!(
                    "the {leg} reservation {} has no output that is the leg's escrow output \
                     (script and amount as the terms fix them)",
                    verified.subject()
                ))
            })?;
        let wanted = terms
            .leg(leg)
            .confirmations
            .max(self.policy.min_confirmations);
        let depth = confirmations(&verified);
        if depth < wanted {
            return Err(RpcError::Precondition(format!(
                "the {leg} reservation {} has {depth} of {wanted} confirmations; ask again later",
                verified.subject()
            ))
            .into());
        }
        Ok(escrow)
    }
}

/// How deep the subject of a verified BEEF is (0 without a BUMP).
fn confirmations(verified: &VerifiedBeef) -> u32 {
    let height = verified
        .beef()
        .find(&verified.subject())
        .and_then(|t| t.bump_index())
        .and_then(|i| verified.beef().bumps().get(i))
        .map(|b| b.block_height());
    height.map_or(0, |h| {
        verified.tip_height().saturating_sub(h).saturating_add(1)
    })
}

#[tonic::async_trait]
impl notary_service_server::NotaryService for NotaryService {
    async fn approve(
        &self,
        request: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::ApproveResponse>, Status> {
        let caller = caller(&request)?.id().to_string();
        NotaryService::approve(self, &caller, request.get_ref())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }
}

// ---------------------------------------------------------------------------
// The driver's port

/// Where a notary listens, who it must be, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotaryEndpoint {
    /// Its SPIFFE ID (as terms name it; its certificate must carry it).
    pub spiffe_id: SpiffeId,
    /// `http://host:port` (TLS is the connector's).
    pub url: String,
    /// Its approval key: an approval whose signature does not verify under
    /// it is not an answer.
    pub public_key: PublicKey,
}

/// The driver's [`Notary`] port over gRPC and mutual TLS.
#[derive(Clone)]
pub struct NotaryClient {
    notaries: BTreeMap<String, (Channel, PublicKey)>,
}

impl std::fmt::Debug for NotaryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotaryClient")
            .field("notaries", &self.notaries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl NotaryClient {
    /// A client for `notaries`, connecting as `identity` (lazily).
    ///
    /// # Errors
    /// [`PeerClientError`].
    pub fn new(
        identity: &IdentityHandle,
        notaries: &[NotaryEndpoint],
        timeouts: Timeouts,
    ) -> Result<NotaryClient, PeerClientError> {
        let mut map = BTreeMap::new();
        for n in notaries {
            let channel = mtls_channel(identity, &n.spiffe_id, &n.url, timeouts)?;
            if map
                .insert(n.spiffe_id.to_string(), (channel, n.public_key))
                .is_some()
            {
                return Err(PeerClientError::Duplicate(n.spiffe_id.clone()));
            }
        }
        Ok(NotaryClient { notaries: map })
    }
}

fn subject_of(field: &str, bytes: &[u8]) -> Result<Txid, NotaryError> {
    Beef::from_bytes(bytes)
        .ok()
        .and_then(|b| b.subject())
        .ok_or_else(|| NotaryError {
            detail: format!("our {field} is not an Atomic BEEF"),
        })
}

#[async_trait]
impl Notary for NotaryClient {
    async fn approve(&self, request: NotaryRequest) -> Result<NotaryAnswer, NotaryError> {
        use pb::approve_response::Answer;
        let (channel, key) = self
            .notaries
            .get(&request.notary)
            .ok_or_else(|| NotaryError {
                detail: format!("no endpoint is configured for notary {}", request.notary),
            })?;
        let payment = subject_of("payment BEEF", &request.payment_beef)?;
        let delivery = subject_of("delivery BEEF", &request.delivery_beef)?;
        let [buyer_signature, seller_signature] = &request.signatures;
        let body = pb::ApproveRequest {
            terms: request.terms.encode(),
            buyer_signature: buyer_signature.as_bytes().to_vec(),
            seller_signature: seller_signature.as_bytes().to_vec(),
            payment_beef: request.payment_beef.clone(),
            delivery_beef: request.delivery_beef.clone(),
        };
        let response = NotaryServiceClient::new(channel.clone())
            .approve(body)
            .await
            .map_err(|s| NotaryError {
                detail: format!("{}: {:?}: {}", request.notary, s.code(), s.message()),
            })?
            .into_inner();
        match response.answer {
            Some(Answer::Approved(a)) => {
                let digest = approval_digest(&request.terms.hash(), &payment, &delivery);
                if a.notary_key != key.to_compressed() || !key.verify_digest(&digest, &a.signature)
                {
                    return Err(NotaryError {
                        detail: format!(
                            "{}: the approval does not verify under its configured key",
                            request.notary
                        ),
                    });
                }
                Ok(NotaryAnswer::Approved {
                    signature: a.signature,
                })
            }
            Some(Answer::Refused(r)) => Ok(NotaryAnswer::Rejected { reason: r.reason }),
            None => Err(NotaryError {
                detail: format!("{}: the answer is empty", request.notary),
            }),
        }
    }
}
