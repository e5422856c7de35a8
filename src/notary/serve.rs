//! Running a notary: its identity, one Block Headers client per chain (its
//! own trackers: it trusts neither gateway's view of a chain), and a gRPC
//! server with `NotaryService`, health and reflection behind mutual TLS and
//! the `notary_rules()` table. The notary keeps no state: every approval is
//! recomputed from the request and the chains, and the same request always
//! gets the same signature, so a stop loses nothing.
//!
//! Shutdown (SIGTERM, SIGINT, or [`RunningNotary::stop`]): the server stops
//! accepting and drains calls in flight for at most
//! [`crate::gateway::serve::DRAIN`].
//!
//! # Layout
//! - [`NotaryServeError`], [`NotaryStartOptions`].
//! - [`RunningNotary`]: `start`, `begin_shutdown`, `stop`.
//! - [`serve_until_signalled`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bsv_format::keys::PublicKey;
use bsv_format::spv::VerifyOptions;
use saga_runtime::ChainTracker;
use tokio::sync::watch;

use super::config::NotaryFileConfig;
use crate::chain::{ChainConfigError, HeadersClient, HeadersConfig};
use crate::gateway::serve::{wait_for_signal, DRAIN};
use crate::identity::server::{self, ConnectionAge};
use crate::identity::tls::{IdentityError, IdentityHandle};
use crate::identity::AuthLayer;
use crate::rpc::authz::{notary_rules, LogParties};
use crate::rpc::notary::NotaryService;
use crate::rpc::standard::{self, NOTARY_SERVICE};

/// Why `escrowd notary` did not start.
#[derive(Debug, thiserror::Error)]
pub enum NotaryServeError {
    /// Its identity (federation, certificate, key) is unusable.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// A chain's headers client cannot be built.
    #[error("chains.{chain_id}.headers_url: {source}")]
    Chain {
        /// The chain.
        chain_id: String,
        /// Why.
        source: ChainConfigError,
    },
    /// The listen address cannot be bound.
    #[error("listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The identity reload watcher (SIGHUP, file polling) cannot start.
    #[error("identity reload watcher: {0}")]
    Watcher(std::io::Error),
    /// `notary.spiffe_id` is not the SPIFFE ID of our certificate.
    #[error("notary.spiffe_id is {config}, but the certificate {cert} is {certificate}")]
    IdentityMismatch {
        /// What the configuration says.
        config: String,
        /// The certificate file.
        cert: String,
        /// The SPIFFE ID in it.
        certificate: String,
    },
}

/// What [`RunningNotary::start`] may be given instead of what the config
/// says (tests and the demo).
#[derive(Default)]
pub struct NotaryStartOptions {
    /// A bound listener (e.g. an ephemeral port) instead of `notary.listen`.
    pub listener: Option<tokio::net::TcpListener>,
    /// Chain trackers instead of Block Headers clients of the config's URLs.
    pub trackers: Option<BTreeMap<String, Arc<dyn ChainTracker>>>,
}

/// A notary that is serving.
pub struct RunningNotary {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its approval public key (what gateways pin).
    pub public_key: PublicKey,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
}

/// The Block Headers clients of `config`'s chains.
fn trackers(
    config: &NotaryFileConfig,
) -> Result<BTreeMap<String, Arc<dyn ChainTracker>>, NotaryServeError> {
    let api_key = std::env::var("ESCROWD_HEADERS_API_KEY").ok();
    let mut out = BTreeMap::new();
    for (chain_id, url) in &config.headers {
        let client = HeadersClient::new(HeadersConfig {
            api_key: api_key.clone(),
            tip_ttl: config.tip_ttl,
            ..HeadersConfig::new(url.as_str().trim_end_matches('/'))
        })
        .map_err(|source| NotaryServeError::Chain {
            chain_id: chain_id.clone(),
            source,
        })?;
        out.insert(chain_id.clone(), Arc::new(client) as Arc<dyn ChainTracker>);
    }
    Ok(out)
}

impl RunningNotary {
    /// Starts the notary of `config`.
    ///
    /// # Errors
    /// [`NotaryServeError`]; nothing is left running.
    pub async fn start(
        config: &NotaryFileConfig,
        options: NotaryStartOptions,
    ) -> Result<RunningNotary, NotaryServeError> {
        let identity = IdentityHandle::load(config.identity.clone())?;
        let own = identity.own_id();
        if own != config.spiffe_id {
            return Err(NotaryServeError::IdentityMismatch {
                config: config.spiffe_id.to_string(),
                cert: config.identity.cert.display().to_string(),
                certificate: own.to_string(),
            });
        }
        let trackers = match options.trackers {
            Some(t) => t,
            None => trackers(config)?,
        };
        let listener = match options.listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|source| NotaryServeError::Listen {
                    addr: config.listen,
                    source,
                })?,
        };
        let addr = listener
            .local_addr()
            .map_err(|source| NotaryServeError::Listen {
                addr: config.listen,
                source,
            })?;
        let service = NotaryService::new(
            config.spiffe_id.to_string(),
            config.approval_key,
            trackers,
            VerifyOptions {
                eras: config.script_eras,
                ..VerifyOptions::default()
            },
            config.policy.clone(),
        );
        let public_key = service.public_key();
        let (_reporter, health) = standard::health(&[NOTARY_SERVICE]).await;
        let reflection_v1 = standard::reflection_v1(&[NOTARY_SERVICE])
            .map_err(|e| NotaryServeError::Reflection(e.to_string()))?;
        let reflection_v1alpha = standard::reflection_v1alpha(&[NOTARY_SERVICE])
            .map_err(|e| NotaryServeError::Reflection(e.to_string()))?;
        // A notary serves no saga-scoped method: the parties table stays empty.
        let router = server::builder(ConnectionAge::default())
            .layer(AuthLayer::new(
                identity.clone(),
                notary_rules(),
                Arc::new(LogParties::new(Vec::new())),
            ))
            .add_service(service.into_server())
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let (shutdown, mut stop) = watch::channel(false);
        let watcher = identity
            .spawn_watcher(crate::gateway::serve::IDENTITY_POLL)
            .map_err(NotaryServeError::Watcher)?;
        let incoming = server::incoming(listener, identity);
        let server = tokio::spawn(async move {
            let result = router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!("gRPC server: {e}");
            }
        });
        tracing::info!(%addr, "notary serving");
        Ok(RunningNotary {
            addr,
            public_key,
            shutdown,
            server,
            watcher,
        })
    }

    /// Tells the server to stop accepting, without waiting.
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops serving; calls in flight get at most [`DRAIN`].
    pub async fn stop(self) {
        self.watcher.abort();
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(DRAIN, self.server).await;
    }
}

/// Serves `config` until SIGTERM or SIGINT, then stops gracefully.
///
/// # Errors
/// [`NotaryServeError`] when the notary does not start.
pub async fn serve_until_signalled(config: &NotaryFileConfig) -> Result<(), NotaryServeError> {
    let running = RunningNotary::start(config, NotaryStartOptions::default()).await?;
    eprintln!(
        "escrowd notary {} serving on {} (approval key {})",
        config.spiffe_id,
        running.addr,
        hex::encode(running.public_key.to_compressed())
    );
    wait_for_signal().await;
    eprintln!("escrowd notary: stopping");
    running.stop().await;
    Ok(())
}
