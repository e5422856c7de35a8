//! Where a follower reads a gateway's event feed: [`FeedSource`], one
//! `Subscribe` per call. [`GrpcFeed`] dials the gateway's
//! `escrow.v1.EventService` over mutual TLS, accepting only the SPIFFE ID
//! configured for it; an in-process `rpc::events::EventService` is a source
//! too (the demo's gateways serve no gRPC).
//!
//! # Layout
//! - [`FeedSource`], [`FeedStream`], [`FeedError`].
//! - [`GrpcFeed`], [`FeedTimeouts`]; the `EventService` implementation.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::config::GatewayEndpoint;
use crate::cli::client::code_name;
use crate::identity::{IdentityHandle, MtlsConnector, SpiffeId};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::event_service_client::EventServiceClient;
use crate::proto::escrow_v1::event_service_server;

/// One subscription's items, in feed order; ends when the gateway ends it
/// (its shutdown) or with an error.
pub type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::FeedItem, FeedError>> + Send>>;

/// Why a subscription could not be opened or broke off. The follower
/// retries either way; the text is what it logs and reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// No answer: connection refused, TLS handshake refused (either side's
    /// certificate), time-out, the gateway unavailable. The detail carries
    /// the whole cause chain.
    #[error("cannot reach the gateway: {0}")]
    Unreachable(String),
    /// The gateway answered with an error status (e.g. PERMISSION_DENIED
    /// when our identity may not subscribe).
    #[error("the gateway refused the subscription: {code}: {message}")]
    Refused {
        /// The gRPC code as the spec spells it (`PERMISSION_DENIED`).
        code: &'static str,
        /// The gateway's message.
        message: String,
    },
}

impl From<Status> for FeedError {
    fn from(status: Status) -> FeedError {
        let mut message = status.message().to_owned();
        // Transport faults carry their cause in the source chain.
        let mut source = std::error::Error::source(&status);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
            source = s.source();
        }
        match status.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => {
                if let Some(hint) = refusal_hint(&message) {
                    message.push_str(hint);
                }
                FeedError::Unreachable(message)
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
            | Code::Unauthenticated => FeedError::Refused {
                code: code_name(status.code()),
                message,
            },
        }
    }
}

/// What a transport fault's cause chain (`message`) says about a refusal
/// of our certificate. In TLS 1.3 the server judges our certificate after
/// we have finished our side of the handshake, so its refusal reaches us
/// as an alert on the established connection or, when the alert is lost,
/// as the connection closing before any answer. A fault while connecting
/// (`cannot connect to`, `TLS handshake with … failed`, from
/// `identity::client::ConnectError`) is not one.
fn refusal_hint(message: &str) -> Option<&'static str> {
    if message.contains("cannot connect to") || message.contains("TLS handshake with") {
        return None;
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("received fatal alert") {
        return Some(
            " (the gateway refused our certificate: its log names the reason, e.g. a trust \
             domain outside its federation or a revoked certificate)",
        );
    }
    let closed = [
        "connection closed",
        "connection reset",
        "broken pipe",
        "unexpected eof",
    ]
    .iter()
    .any(|m| lower.contains(m));
    closed.then_some(
        " (the gateway closed the connection before answering: if this persists, it refused \
         our certificate — its log names the reason, e.g. a trust domain outside its federation)",
    )
}

/// A gateway's event feed.
#[async_trait]
pub trait FeedSource: Send + Sync {
    /// Opens a subscription delivering every item from `from_cursor` on
    /// (cursors from 1), at least once, in order.
    ///
    /// # Errors
    /// [`FeedError`] when no subscription could be opened.
    async fn subscribe(&self, from_cursor: u64) -> Result<FeedStream, FeedError>;
}

/// How long dialling and opening a subscription may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedTimeouts {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// From the `Subscribe` call to the stream's response headers (not the
    /// stream, which stays open).
    pub open: Duration,
    /// HTTP/2 keep-alive ping interval on an open subscription; a gateway
    /// that does not answer a ping within `connect` is taken as gone.
    pub keep_alive: Duration,
}

impl Default for FeedTimeouts {
    /// 5 s to connect, 10 s to open, a ping every 30 s.
    fn default() -> Self {
        FeedTimeouts {
            connect: Duration::from_secs(5),
            open: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
        }
    }
}

/// A gateway's `EventService` over mutual TLS. The channel is lazy:
/// nothing is dialled until the first subscription, and a broken
/// connection is redialled on the next one.
#[derive(Debug, Clone)]
pub struct GrpcFeed {
    gateway: SpiffeId,
    client: EventServiceClient<Channel>,
}

impl GrpcFeed {
    /// A feed from `endpoint`, connecting as `identity` and accepting only
    /// a server whose certificate carries `endpoint.spiffe_id`. An
    /// `https://` URL is dialled as `http://`: the TLS is the connector's.
    ///
    /// # Errors
    /// [`FeedError::Unreachable`] when the URL is not a valid endpoint.
    pub fn new(
        identity: &IdentityHandle,
        endpoint: &GatewayEndpoint,
        timeouts: FeedTimeouts,
    ) -> Result<GrpcFeed, FeedError> {
        let url = endpoint.url.as_str().trim_end_matches('/');
        let plain = match url.strip_prefix("https://") {
            Some(rest) => format!("http://{rest}"),
            None => url.to_owned(),
        };
        let channel = Endpoint::from_shared(plain)
            .map_err(|e| FeedError::Unreachable(format!("endpoint {url:?}: {e}")))?
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.open)
            .http2_keep_alive_interval(timeouts.keep_alive)
            .keep_alive_timeout(timeouts.connect)
            .keep_alive_while_idle(true)
            .connect_with_connector_lazy(MtlsConnector::for_peer(
                identity.clone(),
                endpoint.spiffe_id.clone(),
            ));
        Ok(GrpcFeed {
            gateway: endpoint.spiffe_id.clone(),
            client: EventServiceClient::new(channel),
        })
    }

    /// The gateway this feed accepts.
    pub fn gateway(&self) -> &SpiffeId {
        &self.gateway
    }
}

#[async_trait]
impl FeedSource for GrpcFeed {
    async fn subscribe(&self, from_cursor: u64) -> Result<FeedStream, FeedError> {
        let stream = self
            .client
            .clone()
            .subscribe(pb::SubscribeRequest { from_cursor })
            .await?
            .into_inner();
        Ok(Box::pin(stream.map(|r| r.map_err(FeedError::from))))
    }
}

/// A gateway's event service in this process: no network, no
/// authorization layer.
#[async_trait]
impl FeedSource for crate::rpc::events::EventService {
    async fn subscribe(&self, from_cursor: u64) -> Result<FeedStream, FeedError> {
        let stream = <Self as event_service_server::EventService>::subscribe(
            self,
            Request::new(pb::SubscribeRequest { from_cursor }),
        )
        .await?
        .into_inner();
        Ok(Box::pin(stream.map(|r| r.map_err(FeedError::from))))
    }
}
