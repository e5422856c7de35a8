//! The server side of mutual TLS: an accept loop that completes each TLS
//! handshake with the current [`IdentitySnapshot`]'s config (tokio-rustls)
//! and hands tonic only connections whose client certificate the federation
//! verified.
//!
//! ```ignore
//! let incoming = server::incoming(listener, identity.clone());
//! server::builder(ConnectionAge::default())
//!     .layer(AuthLayer::new(identity, rules, parties))
//!     .add_service(service)
//!     .serve_with_incoming_shutdown(incoming, shutdown)
//! ```
//!
//! Each handshake runs in its own task inside a `mtls_accept{remote=…}`
//! span, so the verifier's refusal lines carry the peer's address, and
//! takes at most [`HANDSHAKE_TIMEOUT_SECS`].
//!
//! [`IdentitySnapshot`]: super::tls::IdentitySnapshot

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use tracing::Instrument;

use super::tls::{
    IdentityHandle, DEFAULT_MAX_CONNECTION_AGE_GRACE_SECS, DEFAULT_MAX_CONNECTION_AGE_SECS,
};
use super::trust::{AuthError, PeerIdentity};

/// How long a served HTTP/2 connection may live (DESIGN.md §4: revocation
/// reaches live connections): after `max` the server sends GOAWAY and the
/// client reconnects with a fresh handshake; after `max + grace` a
/// connection still busy is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionAge {
    /// Maximum age.
    pub max: Duration,
    /// Grace period after it.
    pub grace: Duration,
}

impl Default for ConnectionAge {
    /// [`DEFAULT_MAX_CONNECTION_AGE_SECS`] and [`DEFAULT_MAX_CONNECTION_AGE_GRACE_SECS`].
    fn default() -> Self {
        ConnectionAge {
            max: Duration::from_secs(DEFAULT_MAX_CONNECTION_AGE_SECS),
            grace: Duration::from_secs(DEFAULT_MAX_CONNECTION_AGE_GRACE_SECS),
        }
    }
}

/// A tonic server builder with the connection age limits set; add the
/// [`super::authz::AuthLayer`] and the services, then serve [`incoming`].
pub fn builder(age: ConnectionAge) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_connection_age(age.max)
        .max_connection_age_grace(age.grace)
}

/// The longest a TLS handshake may take, seconds.
pub const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Connections handed over but not yet taken by the server, at most.
const BACKLOG: usize = 64;

/// Facts about one mutually authenticated connection, attached by tonic to
/// every request on it. The raw chain stays private to the identity module;
/// handlers get a [`PeerIdentity`] from the authorization layer.
#[derive(Debug, Clone)]
pub struct MtlsConnectInfo {
    remote: SocketAddr,
    peer: PeerIdentity,
    chain: Arc<[CertificateDer<'static>]>,
}

impl MtlsConnectInfo {
    /// The client's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    /// Who the client was at handshake time (re-checked on every RPC by the
    /// authorization layer).
    pub fn peer_at_handshake(&self) -> &PeerIdentity {
        &self.peer
    }

    pub(super) fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// A server-side TLS connection whose client the federation verified.
#[derive(Debug)]
pub struct MtlsStream {
    inner: TlsStream<TcpStream>,
    info: MtlsConnectInfo,
}

impl Connected for MtlsStream {
    type ConnectInfo = MtlsConnectInfo;

    fn connect_info(&self) -> MtlsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for MtlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for MtlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The stream of verified connections for `serve_with_incoming`. Dropping it
/// stops the accept loop.
pub type MtlsIncoming = ReceiverStream<Result<MtlsStream, io::Error>>;

/// Starts accepting on `listener`; each connection is handshaken with the
/// identity's current server config. Refused handshakes are logged (warn)
/// and never reach tonic.
pub fn incoming(listener: TcpListener, identity: IdentityHandle) -> MtlsIncoming {
    let (tx, rx) = mpsc::channel(BACKLOG);
    tokio::spawn(accept_loop(listener, identity, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    identity: IdentityHandle,
    tx: mpsc::Sender<Result<MtlsStream, io::Error>>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off briefly, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let identity = identity.clone();
        let tx = tx.clone();
        let span = tracing::warn_span!("mtls_accept", %remote);
        tokio::spawn(
            async move {
                if let Some(stream) = handshake(tcp, remote, &identity).await {
                    let _ = tx.send(Ok(stream)).await;
                }
            }
            .instrument(span),
        );
    }
}

async fn handshake(
    tcp: TcpStream,
    remote: SocketAddr,
    identity: &IdentityHandle,
) -> Option<MtlsStream> {
    let snapshot = identity.current();
    let acceptor = TlsAcceptor::from(snapshot.server_config());
    let timeout = Duration::from_secs(HANDSHAKE_TIMEOUT_SECS);
    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Err(_) => {
            tracing::warn!("TLS handshake refused: no handshake within {HANDSHAKE_TIMEOUT_SECS} s");
            return None;
        }
        Ok(Err(e)) => {
            log_handshake_error(&e);
            return None;
        }
        Ok(Ok(tls)) => tls,
    };
    let chain: Arc<[CertificateDer<'static>]> = match tls.get_ref().1.peer_certificates() {
        Some(c) if !c.is_empty() => c.iter().map(|c| c.clone().into_owned()).collect(),
        _ => {
            tracing::warn!(reason = %AuthError::NoCertificate, "TLS handshake refused");
            return None;
        }
    };
    // The verifier accepted this chain moments ago; run it again to obtain the
    // PeerIdentity (only the trust store makes one).
    match snapshot.trust().authenticate_client(&chain, identity.now()) {
        Ok(peer) => {
            tracing::debug!(peer = %peer, "mutual TLS connection accepted");
            Some(MtlsStream {
                inner: tls,
                info: MtlsConnectInfo {
                    remote,
                    peer,
                    chain,
                },
            })
        }
        Err(e) => {
            tracing::warn!(reason = %e, "client certificate refused");
            None
        }
    }
}

fn log_handshake_error(e: &io::Error) {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::NoCertificatesPresented) => {
            tracing::warn!(reason = %AuthError::NoCertificate, "TLS handshake refused");
        }
        // The verifier already logged the specific reason.
        Some(rustls::Error::InvalidCertificate(_)) => tracing::debug!("TLS handshake refused: {e}"),
        Some(other) => tracing::warn!(reason = %other, "TLS handshake refused"),
        None => tracing::warn!(reason = %e, "TLS handshake failed"),
    }
}
