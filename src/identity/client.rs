//! The client side of mutual TLS: a connector for tonic's `Endpoint` that
//! dials TCP, runs the TLS handshake with tokio-rustls and accepts only the
//! server whose SPIFFE ID it was told to expect.
//!
//! ```ignore
//! let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
//!     .connect_with_connector(MtlsConnector::for_peer(identity, peer_id))
//!     .await?;
//! ```
//!
//! The endpoint URI uses `http://`: TLS is this connector's job, not
//! tonic's. The URI's host is also the TLS server name, checked against the
//! certificate's DNS/IP SANs in addition to the SPIFFE ID.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tonic::codegen::http::Uri;

use super::spiffe::SpiffeId;
use super::tls::{IdentityError, IdentityHandle};
use super::trust::describe_tls_error;

/// Connecting to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI has no host or port.
    #[error("endpoint {0} has no host and port")]
    NoAddress(String),
    /// The host is not a valid TLS server name.
    #[error("endpoint host {0:?} is not a valid TLS server name")]
    BadServerName(String),
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Tcp {
        /// host:port.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Handshake {
        /// host:port.
        addr: String,
        /// Why: our verifier's refusal of the server's certificate, or rustls's error.
        reason: String,
    },
    /// Our identity could not produce a client config.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

#[derive(Clone)]
enum Source {
    Identity {
        identity: IdentityHandle,
        expected: SpiffeId,
    },
    Fixed(Arc<ClientConfig>),
}

/// A `tower::Service<Uri>` making verified TLS connections for tonic.
#[derive(Clone)]
pub struct MtlsConnector {
    source: Source,
}

impl std::fmt::Debug for MtlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::Identity { expected, .. } => write!(f, "MtlsConnector({expected})"),
            Source::Fixed(_) => f.write_str("MtlsConnector(fixed config)"),
        }
    }
}

impl MtlsConnector {
    /// Connects as our identity to the peer `expected`; each connection uses
    /// the identity's current configuration, so reloads apply on reconnect.
    pub fn for_peer(identity: IdentityHandle, expected: SpiffeId) -> Self {
        MtlsConnector {
            source: Source::Identity { identity, expected },
        }
    }

    /// Connects with a fixed rustls config (see [`super::tls::client_config`]).
    pub fn with_config(config: Arc<ClientConfig>) -> Self {
        MtlsConnector {
            source: Source::Fixed(config),
        }
    }

    /// Dials `uri` and completes the handshake.
    ///
    /// # Errors
    /// [`ConnectError`] naming the address and the stage that failed.
    pub async fn connect(&self, uri: &Uri) -> Result<TlsStream<TcpStream>, ConnectError> {
        let host = uri
            .host()
            .ok_or_else(|| ConnectError::NoAddress(uri.to_string()))?;
        let port = uri
            .port_u16()
            .ok_or_else(|| ConnectError::NoAddress(uri.to_string()))?;
        // IPv6 literals come bracketed in URIs.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addr = format!("{host}:{port}");
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| ConnectError::BadServerName(host.clone()))?;
        let config = match &self.source {
            Source::Identity { identity, expected } => Arc::new(identity.client_config(expected)?),
            Source::Fixed(config) => config.clone(),
        };
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|source| ConnectError::Tcp {
                addr: addr.clone(),
                source,
            })?;
        TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| ConnectError::Handshake {
                addr,
                reason: describe_tls_error(&e),
            })
    }
}

impl tower::Service<Uri> for MtlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(&uri).await.map(TokioIo::new) })
    }
}
