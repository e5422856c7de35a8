//! `escrow.v1.PeerService`: the counterparty's messages, turned into saga
//! inputs for our [`Driver`](saga_runtime::driver::Driver) (DESIGN.md §3.3).
//!
//! Each handler: takes the caller the authorization layer verified (mTLS;
//! the `peer-rpc` rule already required a gateway of another domain that is
//! a party to the saga), requires the body's saga id to equal the
//! `escrow-saga-id` metadata the call was authorized for, converts every
//! field ([`super::convert`]), runs one driver turn — whose reply is sent
//! only once the turn's facts are durable — and returns the saga's
//! [`PeerReply`](saga_core::saga::PeerReply). `NotYet` is an answer (the
//! `not_yet` case), never an error status.
//!
//! - `Propose` becomes [`Input::Proposal`] creating the saga as the seller,
//!   with our current exposure to the caller on the delivery chain; the
//!   terms' parties are then recorded for the authorization layer.
//! - `ReservationReady` SPV-verifies the BEEF with [`verify_beef`] against
//!   OUR tracker of the chain of the caller's leg before it becomes
//!   [`PeerMessage::ReservationReady`]: the saga accepts nothing unverified.
//! - Every other message becomes [`Input::Peer`].
//! - `GetSagaStatus` answers our status (reconciliation).
//!
//! # Layout
//! - [`PeerService`] and its constructor; the gRPC trait implementation.

use saga_core::saga::{Input, PeerMessage};
use saga_core::terms::{Leg, Role, SagaId, Terms};
use saga_runtime::verify_beef;
use tonic::{Request, Response, Status};

use super::admin::PeerKeys;
use super::convert;
use super::lookup::{exposure, saga_terms};
use super::status::{respond, RpcError};
use super::Shared;
use crate::identity::authz::{authorized_saga, caller};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::peer_service_server::{self, PeerServiceServer};

/// The gateway's PeerService.
#[derive(Debug, Clone)]
pub struct PeerService {
    gw: Shared,
}

impl PeerService {
    /// A service over `shared`: its driver runs the turns, its log gives
    /// terms, its chains' trackers verify reservations (with its SPV
    /// options), its parties learn about new sagas.
    pub fn new(shared: Shared) -> PeerService {
        PeerService { gw: shared }
    }

    /// The tonic service to add to a server (behind the `AuthLayer`).
    pub fn into_server(self) -> PeerServiceServer<PeerService> {
        PeerServiceServer::new(self)
    }

    /// One driver turn for a peer message; the saga's reply.
    async fn turn(
        &self,
        saga_id: SagaId,
        new_role: Option<Role>,
        input: Input,
        what: &'static str,
    ) -> Result<pb::PeerReply, RpcError> {
        let turn = self
            .gw
            .driver
            .submit(saga_id, new_role, input, None)
            .await?;
        let reply = turn.reply.ok_or(RpcError::NoReply(what))?;
        Ok(convert::peer_reply_to_proto(&reply))
    }

    async fn propose(
        &self,
        caller: String,
        saga_id: SagaId,
        body: pb::ProposeRequest,
    ) -> Result<pb::PeerReply, RpcError> {
        let terms = convert::terms("terms", &body.terms)?;
        if terms.saga_id != saga_id {
            return Err(convert::ConvertError::Invalid {
                field: "terms".into(),
                reason: format!("the terms are for saga {}, not {saga_id}", terms.saga_id),
            }
            .into());
        }
        let buyer_signature = convert::terms_signature("buyer_signature", &body.buyer_signature)?;
        pinned_keys(self.gw.counterparties.get(&caller), &caller, &terms)?;
        let exposure = exposure(self.gw.log.as_ref(), &caller, &terms.delivery.chain_id).await?;
        let input = Input::Proposal {
            caller,
            terms: Box::new(terms.clone()),
            buyer_signature,
            exposure,
        };
        let reply = self
            .turn(saga_id, Some(Role::Seller), input, "propose")
            .await?;
        self.gw.parties.record(&terms);
        Ok(reply)
    }

    async fn reservation_ready(
        &self,
        caller: String,
        saga_id: SagaId,
        body: pb::ReservationReadyRequest,
    ) -> Result<pb::PeerReply, RpcError> {
        let beef = convert::atomic_beef("beef", &body.beef)?;
        let saga = saga_terms(self.gw.log.as_ref(), &saga_id)
            .await?
            .ok_or(RpcError::UnknownSaga(saga_id))?;
        // The caller's reservation is the leg it funds: the other role's.
        let chain_id = saga.terms.leg(saga.role.other().funds()).chain_id.clone();
        let tracker = self
            .gw
            .chains
            .get(&chain_id)
            .map(|c| c.tracker.clone())
            .ok_or_else(|| RpcError::NotConfigured {
                field: "beef",
                detail: format!("no chain tracker for chain {chain_id}"),
            })?;
        let verified = verify_beef(tracker.as_ref(), beef, &self.gw.verify)
            .await
            .map_err(|source| RpcError::Spv {
                field: "beef",
                chain_id,
                source: Box::new(source),
            })?;
        let message = PeerMessage::ReservationReady {
            beef: Box::new(verified),
            beef_bytes: body.beef,
        };
        self.turn(
            saga_id,
            None,
            Input::Peer { caller, message },
            "reservation_ready",
        )
        .await
    }

    async fn message(
        &self,
        caller: String,
        saga_id: SagaId,
        message: PeerMessage,
    ) -> Result<pb::PeerReply, RpcError> {
        let what = message.kind().name();
        self.turn(saga_id, None, Input::Peer { caller, message }, what)
            .await
    }

    async fn status(&self, saga_id: SagaId) -> Result<pb::SagaStatus, RpcError> {
        let (status, attention) = self.gw.driver.status(saga_id).await?;
        let role = saga_terms(self.gw.log.as_ref(), &saga_id)
            .await?
            .map(|t| t.role);
        Ok(convert::saga_status(
            &saga_id,
            status,
            attention.as_deref(),
            role,
        ))
    }
}

/// The buyer's keys in proposed terms must be the ones our configuration
/// pins for the caller (`[peers."<domain>"]`: saga key, escrow key on each
/// leg's chain) — as its certificate is pinned. Anyone else's keys would
/// let a holder of the caller's certificate sign terms and claim with keys
/// we never agreed to trust. Nothing is stored for a refused proposal.
fn pinned_keys(pinned: Option<&PeerKeys>, caller: &str, terms: &Terms) -> Result<(), RpcError> {
    let refuse = |detail: String| RpcError::NotConfigured {
        field: "terms",
        detail,
    };
    let Some(pinned) = pinned else {
        return Err(refuse(format!("no keys are configured for {caller}")));
    };
    let hex = |k: &bsv_format::keys::PublicKey| hex::encode(k.to_compressed());
    if terms.buyer.saga_key != pinned.saga_key {
        return Err(refuse(format!(
            "the buyer's saga key {} is not the one configured for {caller} ({})",
            hex(&terms.buyer.saga_key),
            hex(&pinned.saga_key)
        )));
    }
    for leg in [Leg::Payment, Leg::Delivery] {
        let chain_id = &terms.leg(leg).chain_id;
        let proposed = terms.buyer.escrow_key(leg);
        match pinned.escrow_keys.get(chain_id) {
            Some(k) if k == proposed => {}
            Some(k) => {
                return Err(refuse(format!(
                    "the buyer's escrow key {} on {chain_id} is not the one configured for {caller} ({})",
                    hex(proposed),
                    hex(k)
                )))
            }
            None => {
                return Err(refuse(format!(
                    "no escrow key of {caller} is configured for chain {chain_id}"
                )))
            }
        }
    }
    Ok(())
}

/// The caller's SPIFFE ID and the saga the body names, which must be the
/// one the call was authorized for.
fn authorized<T>(request: &Request<T>, body_saga_id: &str) -> Result<(String, SagaId), Status> {
    let peer = caller(request)?.id().to_string();
    let saga_id = convert::saga_id("saga_id", body_saga_id).map_err(RpcError::from)?;
    let metadata = authorized_saga(request);
    if metadata != Some(body_saga_id) {
        return Err(RpcError::SagaIdMismatch {
            body: body_saga_id.to_owned(),
            metadata: metadata.unwrap_or("none").to_owned(),
        }
        .into());
    }
    Ok((peer, saga_id))
}

type Reply = Result<Response<pb::PeerReply>, Status>;

#[tonic::async_trait]
impl peer_service_server::PeerService for PeerService {
    async fn propose(&self, request: Request<pb::ProposeRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        respond(PeerService::propose(self, caller, saga_id, request.into_inner()).await)
    }

    async fn sign_refund(&self, request: Request<pb::SignRefundRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        let refund =
            convert::transaction("refund", &request.get_ref().refund).map_err(RpcError::from)?;
        respond(
            self.message(caller, saga_id, PeerMessage::SignRefund { refund })
                .await,
        )
    }

    async fn reservation_ready(&self, request: Request<pb::ReservationReadyRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        respond(PeerService::reservation_ready(self, caller, saga_id, request.into_inner()).await)
    }

    async fn grant_token(&self, request: Request<pb::GrantTokenRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        let token = convert::token("token", &request.get_ref().token).map_err(RpcError::from)?;
        respond(
            self.message(caller, saga_id, PeerMessage::GrantToken { token })
                .await,
        )
    }

    async fn execute(&self, request: Request<pb::ExecuteRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        let body = request.get_ref();
        let token = convert::token("token", &body.token).map_err(RpcError::from)?;
        let claim = convert::transaction("claim", &body.claim).map_err(RpcError::from)?;
        respond(
            self.message(caller, saga_id, PeerMessage::Execute { token, claim })
                .await,
        )
    }

    async fn sign_cancel(&self, request: Request<pb::SignCancelRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        let cancel =
            convert::transaction("cancel", &request.get_ref().cancel).map_err(RpcError::from)?;
        respond(
            self.message(caller, saga_id, PeerMessage::SignCancel { cancel })
                .await,
        )
    }

    async fn cancel(&self, request: Request<pb::CancelRequest>) -> Reply {
        let (caller, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        let reason =
            convert::reason("reason", &request.get_ref().reason).map_err(RpcError::from)?;
        respond(
            self.message(caller, saga_id, PeerMessage::Cancel { reason })
                .await,
        )
    }

    async fn get_saga_status(
        &self,
        request: Request<pb::GetSagaStatusRequest>,
    ) -> Result<Response<pb::SagaStatus>, Status> {
        let (_, saga_id) = authorized(&request, &request.get_ref().saga_id)?;
        respond(self.status(saga_id).await)
    }
}
