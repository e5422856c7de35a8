//! [`PeerClient`]: the driver's [`PeerTransport`] over gRPC and mutual TLS.
//!
//! One lazily connected tonic channel per configured counterparty, dialled
//! through [`MtlsConnector::for_peer`] so only the server presenting the
//! SPIFFE ID configured for that peer is accepted. Every call carries the
//! saga id in the `escrow-saga-id` metadata (what the callee's
//! authorization layer judges) and in its body, and is bounded by the
//! configured connect and request timeouts.
//!
//! Errors are the port's "unknown outcome" ([`PeerError`]; the driver
//! retries): no connection, a time-out, a transport fault or a callee that
//! is unavailable is [`PeerError::Unreachable`]; any other status (the
//! callee refused the call: permission, a malformed field, wrong state) or
//! an answer that does not parse is [`PeerError::Failed`], with the gRPC
//! code and message.
//!
//! # Layout
//! - [`PeerEndpoint`], [`Timeouts`], [`PeerClientError`], [`PeerClient`].
//! - [`mtls_channel`]: the channel builder the notary client shares.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use saga_core::saga::{PeerReply, PeerRequest};
use saga_core::terms::SagaId;
use saga_runtime::ports::{PeerError, PeerTransport};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::convert;
use crate::config::PeerConfig;
use crate::identity::authz::SAGA_ID_METADATA;
use crate::identity::{IdentityHandle, MtlsConnector, SpiffeId};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::peer_service_client::PeerServiceClient;

/// Where a counterparty's gateway listens and who it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEndpoint {
    /// The SPIFFE ID its certificate must carry (and the name the terms use).
    pub spiffe_id: SpiffeId,
    /// `https://host:port` or `http://host:port` — the same: TLS is the
    /// connector's either way. The host is also the TLS server name checked
    /// against the certificate's DNS/IP SANs.
    pub url: String,
}

/// How long a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// One whole call, answer included.
    pub request: Duration,
}

impl Default for Timeouts {
    /// 5 s to connect, 30 s per call (a callee's turn flushes to disk and
    /// may SPV-verify a BEEF against its headers service).
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// Why a client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum PeerClientError {
    /// The URL is not a valid endpoint URI.
    #[error("peer {peer}: endpoint {url:?} is not a valid URI: {detail}")]
    BadUrl {
        /// The peer.
        peer: SpiffeId,
        /// The URL.
        url: String,
        /// tonic's reason.
        detail: String,
    },
    /// The same peer is configured twice.
    #[error("peer {0} is configured twice")]
    Duplicate(SpiffeId),
}

impl PeerEndpoint {
    /// The endpoint a peer's configuration names.
    pub fn from_config(peer: &PeerConfig) -> PeerEndpoint {
        PeerEndpoint {
            spiffe_id: peer.spiffe_id.clone(),
            url: peer.url.to_string(),
        }
    }
}

/// A lazily connected mTLS channel to `url`, accepting only `expected`.
/// An `https://` URL is dialled as `http://`: the TLS is the connector's
/// (mutual, pinned to `expected`), never tonic's.
///
/// # Errors
/// [`PeerClientError::BadUrl`].
pub fn mtls_channel(
    identity: &IdentityHandle,
    expected: &SpiffeId,
    url: &str,
    timeouts: Timeouts,
) -> Result<Channel, PeerClientError> {
    let plain = match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_owned(),
    };
    let endpoint = Endpoint::from_shared(plain).map_err(|e| PeerClientError::BadUrl {
        peer: expected.clone(),
        url: url.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .connect_with_connector_lazy(MtlsConnector::for_peer(identity.clone(), expected.clone())))
}

/// The driver's peer transport over gRPC (module docs).
#[derive(Clone)]
pub struct PeerClient {
    channels: BTreeMap<String, Channel>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("peers", &self.channels.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PeerClient {
    /// A client for `peers`, connecting as `identity`. Nothing is dialled
    /// until the first call to a peer.
    ///
    /// # Errors
    /// [`PeerClientError`].
    pub fn new(
        identity: &IdentityHandle,
        peers: &[PeerEndpoint],
        timeouts: Timeouts,
    ) -> Result<PeerClient, PeerClientError> {
        let mut channels = BTreeMap::new();
        for p in peers {
            let channel = mtls_channel(identity, &p.spiffe_id, &p.url, timeouts)?;
            if channels.insert(p.spiffe_id.to_string(), channel).is_some() {
                return Err(PeerClientError::Duplicate(p.spiffe_id.clone()));
            }
        }
        Ok(PeerClient { channels })
    }

    fn client(&self, peer: &str) -> Result<PeerServiceClient<Channel>, PeerError> {
        self.channels
            .get(peer)
            .map(|c| PeerServiceClient::new(c.clone()))
            .ok_or_else(|| PeerError::Unreachable {
                peer: peer.to_owned(),
                detail: "no endpoint is configured for this peer".into(),
            })
    }

    /// The peer's view of saga `saga_id` (reconciliation after a restart):
    /// `None` when it answers NOT_FOUND (it has no such saga).
    ///
    /// # Errors
    /// [`PeerError`] for any other failure.
    pub async fn saga_status(
        &self,
        peer: &str,
        saga_id: SagaId,
    ) -> Result<Option<pb::SagaStatus>, PeerError> {
        let mut client = self.client(peer)?;
        let request = with_saga(
            peer,
            saga_id,
            pb::GetSagaStatusRequest {
                saga_id: saga_id.to_string(),
            },
        )?;
        match client.get_saga_status(request).await {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(peer_error(peer, &s)),
        }
    }
}

/// `body` with the `escrow-saga-id` metadata.
fn with_saga<T>(peer: &str, saga_id: SagaId, body: T) -> Result<Request<T>, PeerError> {
    let mut request = Request::new(body);
    let value = MetadataValue::try_from(saga_id.to_string()).map_err(|e| PeerError::Failed {
        peer: peer.to_owned(),
        detail: format!("saga id as metadata: {e}"),
    })?;
    request.metadata_mut().insert(SAGA_ID_METADATA, value);
    Ok(request)
}

/// The port's error for a failed call: transport and availability faults
/// are [`PeerError::Unreachable`], the callee's refusals [`PeerError::Failed`].
pub(crate) fn peer_error(peer: &str, status: &Status) -> PeerError {
    let detail = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            PeerError::Unreachable {
                peer: peer.to_owned(),
                detail,
            }
        }
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated => PeerError::Failed {
            peer: peer.to_owned(),
            detail,
        },
    }
}

#[async_trait]
impl PeerTransport for PeerClient {
    async fn send(
        &self,
        peer: &str,
        saga_id: SagaId,
        request: PeerRequest,
    ) -> Result<PeerReply, PeerError> {
        let mut client = self.client(peer)?;
        let id = saga_id.to_string();
        let answer = match request {
            PeerRequest::Propose {
                terms,
                buyer_signature,
            } => {
                let body = pb::ProposeRequest {
                    saga_id: id,
                    terms: terms.encode(),
                    buyer_signature: buyer_signature.as_bytes().to_vec(),
                };
                client.propose(with_saga(peer, saga_id, body)?).await
            }
            PeerRequest::SignRefund { refund } => {
                let body = pb::SignRefundRequest {
                    saga_id: id,
                    refund: refund.to_bytes(),
                };
                client.sign_refund(with_saga(peer, saga_id, body)?).await
            }
            PeerRequest::ReservationReady { beef } => {
                let body = pb::ReservationReadyRequest { saga_id: id, beef };
                client
                    .reservation_ready(with_saga(peer, saga_id, body)?)
                    .await
            }
            PeerRequest::GrantToken { token } => {
                let body = pb::GrantTokenRequest {
                    saga_id: id,
                    token: token.encode(),
                };
                client.grant_token(with_saga(peer, saga_id, body)?).await
            }
            PeerRequest::Execute { token, claim } => {
                let body = pb::ExecuteRequest {
                    saga_id: id,
                    token: token.encode(),
                    claim: claim.to_bytes(),
                };
                client.execute(with_saga(peer, saga_id, body)?).await
            }
            PeerRequest::SignCancel { cancel } => {
                let body = pb::SignCancelRequest {
                    saga_id: id,
                    cancel: cancel.to_bytes(),
                };
                client.sign_cancel(with_saga(peer, saga_id, body)?).await
            }
            PeerRequest::Cancel { reason } => {
                let body = pb::CancelRequest {
                    saga_id: id,
                    reason,
                };
                client.cancel(with_saga(peer, saga_id, body)?).await
            }
        };
        let reply = answer.map_err(|s| peer_error(peer, &s))?.into_inner();
        convert::peer_reply_from_proto(reply).map_err(|e| PeerError::Failed {
            peer: peer.to_owned(),
            detail: format!("malformed reply: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_faults_are_unreachable_refusals_failed() {
        let p = "spiffe://org-b.example/gateway/gb";
        assert_eq!(
            peer_error(p, &Status::unavailable("connection refused")),
            PeerError::Unreachable {
                peer: p.into(),
                detail: "Unavailable: connection refused".into()
            }
        );
        assert!(matches!(
            peer_error(p, &Status::deadline_exceeded("slow")),
            PeerError::Unreachable { .. }
        ));
        assert_eq!(
            peer_error(p, &Status::permission_denied("not a party")),
            PeerError::Failed {
                peer: p.into(),
                detail: "PermissionDenied: not a party".into()
            }
        );
    }
}
