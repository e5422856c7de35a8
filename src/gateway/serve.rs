//! `escrowd serve`: one gateway on its configuration — identity and mTLS,
//! the counterparties' and the notary's gRPC clients, the saga side
//! ([`super::assemble::Gateway::start`]: store, chain clients, wallet,
//! driver, recovery), and the gRPC server (peer, admin and event services,
//! health, reflection v1 and v1alpha) behind the authorization layer.
//!
//! A start that resumes in-flight sagas then reconciles them with their
//! counterparties in the background ([`super::reconcile`]).
//!
//! Shutdown (SIGTERM, SIGINT, or [`RunningGateway::stop`]): the server
//! stops accepting and event streams end, the driver stops its effect
//! runners (as a crash would: every decision already in the store is
//! re-derived at the next start), and the server's drain is bounded by
//! [`DRAIN`]. Every append was flushed when it returned, so nothing is
//! left to flush.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bsv_format::spv::VerifyOptions;
use saga_core::terms::SagaId;
use saga_runtime::ports::{ChainPorts, Clock, Notary, PeerTransport, SystemClock};
use tokio::sync::watch;

use super::assemble::{Gateway, GatewayError};
use super::reconcile::{reconcile, Reconciled};
use crate::config::GatewayConfig;
use crate::identity::server::{self, ConnectionAge};
use crate::identity::tls::{IdentityError, IdentityHandle};
use crate::identity::AuthLayer;
use crate::rpc::admin::{AdminService, PeerKeys};
use crate::rpc::authz::{gateway_rules, LogParties};
use crate::rpc::events::EventService;
use crate::rpc::faults::{FaultLayer, FaultPlan};
use crate::rpc::notary::{NotaryClient, NotaryEndpoint};
use crate::rpc::peer::PeerService;
use crate::rpc::peer_client::{PeerClient, PeerEndpoint, Timeouts};
use crate::rpc::{standard, Shared};

/// The longest a stopping server waits for calls in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// How often the identity files (certificate, key, federation, CRLs) are
/// checked for changes; SIGHUP reloads at once (docs/identity.md).
pub const IDENTITY_POLL: Duration = Duration::from_secs(10);

/// How often an event subscription looks at the log when no append woke it.
const FEED_POLL: Duration = Duration::from_millis(500);

/// Why `escrowd serve` did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Our identity (federation, certificate, key) is unusable.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// A peer or notary client cannot be built.
    #[error("{what}: {detail}")]
    Client {
        /// Which client.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The saga side did not start.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The listen address cannot be bound.
    #[error("listen {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the store at start failed.
    #[error("reading the store: {0}")]
    Store(String),
    /// The reflection service could not be built.
    #[error("reflection: {0}")]
    Reflection(String),
    /// `gateway.spiffe_id` is not the SPIFFE ID of our certificate: every
    /// saga would name one identity and every call present the other.
    #[error("gateway.spiffe_id is {config}, but the certificate {cert} is {certificate}")]
    IdentityMismatch {
        /// What the configuration says.
        config: String,
        /// The certificate file.
        cert: String,
        /// The SPIFFE ID in it.
        certificate: String,
    },
    /// The identity reload watcher (SIGHUP, file polling) cannot start.
    #[error("identity reload watcher: {0}")]
    Watcher(std::io::Error),
}

/// What [`RunningGateway::start`] may be given instead of what the config
/// says (tests and the demo).
#[derive(Default)]
pub struct StartOptions {
    /// A bound listener (e.g. an ephemeral port) instead of `gateway.listen`.
    pub listener: Option<tokio::net::TcpListener>,
    /// A clock instead of the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Chain clients instead of those the config's URLs make.
    pub chains: Option<BTreeMap<String, ChainPorts>>,
    /// Calls the server refuses ([`FaultPlan`]); none without one.
    pub faults: Option<Arc<FaultPlan>>,
}

/// A gateway that is serving.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its saga side.
    pub gateway: Gateway,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    reconciliation: Option<tokio::task::JoinHandle<Vec<(SagaId, Reconciled)>>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// Waits for the reconciliation with the counterparties that a start
    /// with in-flight sagas runs ([`super::reconcile`]) and returns what it
    /// found; empty when there was nothing to reconcile, or when asked again.
    pub async fn reconciliation(&mut self) -> Vec<(SagaId, Reconciled)> {
        match self.reconciliation.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Starts the gateway of `config`, listening on `config.listen` unless
    /// `options` gives a listener (and a clock or chain clients).
    ///
    /// # Errors
    /// [`ServeError`]; nothing is left running.
    pub async fn start(
        config: &GatewayConfig,
        options: StartOptions,
    ) -> Result<RunningGateway, ServeError> {
        let StartOptions {
            listener,
            clock,
            chains,
            faults,
        } = options;
        let identity = IdentityHandle::load(config.identity.clone())?;
        let own = identity.own_id();
        if own != config.spiffe_id {
            return Err(ServeError::IdentityMismatch {
                config: config.spiffe_id.to_string(),
                cert: config.identity.cert.display().to_string(),
                certificate: own.to_string(),
            });
        }
        let endpoints: Vec<PeerEndpoint> = config
            .peers
            .values()
            .map(PeerEndpoint::from_config)
            .collect();
        let peers = PeerClient::new(&identity, &endpoints, Timeouts::default()).map_err(|e| {
            ServeError::Client {
                what: "peers",
                detail: e.to_string(),
            }
        })?;
        let notary = match &config.notary {
            None => None,
            Some(n) => {
                let endpoint = NotaryEndpoint {
                    spiffe_id: n.spiffe_id.clone(),
                    url: n.url.to_string(),
                    public_key: n.public_key,
                };
                let client = NotaryClient::new(&identity, &[endpoint], Timeouts::default())
                    .map_err(|e| ServeError::Client {
                        what: "notary",
                        detail: e.to_string(),
                    })?;
                Some(Arc::new(client) as Arc<dyn Notary>)
            }
        };
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let listener = match listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: config.listen,
                    source,
                })?,
        };
        let addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
        let chains = match chains {
            Some(c) => c,
            None => super::assemble::chain_ports(config)?,
        };
        let peers = Arc::new(peers);
        let gateway = Gateway::start_with_chains(
            config,
            peers.clone() as Arc<dyn PeerTransport>,
            notary,
            clock.clone(),
            chains,
        )
        .await?;

        let proposers = config.peers.values().map(|p| p.spiffe_id.clone()).collect();
        let parties = Arc::new(
            LogParties::load(gateway.log.as_ref(), proposers)
                .await
                .map_err(|e| ServeError::Store(e.to_string()))?,
        );
        let own_keys = PeerKeys {
            saga_key: config.saga_key.public_key(),
            escrow_keys: config
                .chains
                .iter()
                .map(|(id, c)| (id.clone(), c.wallet_key.public_key()))
                .collect(),
        };
        let peer_keys: BTreeMap<String, PeerKeys> = config
            .peers
            .values()
            .map(|p| (p.spiffe_id.to_string(), PeerKeys::from_config(p)))
            .collect();
        let shared = Shared {
            driver: gateway.driver.clone(),
            log: gateway.log.clone(),
            wallet: gateway.wallet.clone(),
            chains: gateway.chains.clone(),
            own_spiffe_id: config.spiffe_id.to_string(),
            own_keys,
            policy: Arc::new(config.policy.clone()),
            verify: VerifyOptions {
                eras: config.script_eras,
                ..VerifyOptions::default()
            },
            clock: clock.clone(),
            parties: parties.clone(),
            counterparties: Arc::new(peer_keys.clone()),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let events = EventService::new(
            gateway.log.clone(),
            Some(gateway.signal.clone()),
            FEED_POLL,
            shutdown_rx.clone(),
            clock,
        );
        let (_reporter, health) = standard::health(&standard::GATEWAY_SERVICES).await;
        let reflection_v1 = standard::reflection_v1(&standard::GATEWAY_SERVICES)
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let reflection_v1alpha = standard::reflection_v1alpha(&standard::GATEWAY_SERVICES)
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let router = server::builder(ConnectionAge::default())
            .layer(AuthLayer::new(identity.clone(), gateway_rules(), parties))
            .layer(FaultLayer::new(faults.unwrap_or_default()))
            .add_service(PeerService::new(shared.clone()).into_server())
            .add_service(AdminService::new(shared, peer_keys).into_server())
            .add_service(events.into_server())
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let watcher = identity
            .spawn_watcher(IDENTITY_POLL)
            .map_err(ServeError::Watcher)?;
        let incoming = server::incoming(listener, identity);
        let mut stop = shutdown_rx;
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
        tracing::info!(%addr, resumed = gateway.resumed, "gateway serving");
        let reconciliation = (gateway.resumed > 0).then(|| {
            let (log, driver) = (gateway.log.clone(), gateway.driver.clone());
            tokio::spawn(async move { reconcile(log.as_ref(), &driver, &peers).await })
        });
        Ok(RunningGateway {
            addr,
            gateway,
            shutdown,
            server,
            reconciliation,
            watcher,
        })
    }

    /// Tells the server to stop accepting and event streams to end, without
    /// waiting ([`RunningGateway::stop`] waits).
    pub fn begin_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops serving (streams ended, calls drained for at most [`DRAIN`])
    /// and stops the driver's effect runners.
    pub async fn stop(self) {
        if let Some(task) = &self.reconciliation {
            task.abort();
        }
        self.watcher.abort();
        self.gateway.driver.shutdown();
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(DRAIN, self.server).await;
    }
}

/// Serves `config` until SIGTERM or SIGINT, then stops gracefully.
///
/// # Errors
/// [`ServeError`] when the gateway does not start.
pub async fn serve_until_signalled(config: &GatewayConfig) -> Result<(), ServeError> {
    let running = RunningGateway::start(config, StartOptions::default()).await?;
    eprintln!(
        "escrowd gateway {} serving on {} ({} in-flight sagas resumed)",
        config.spiffe_id, running.addr, running.gateway.resumed
    );
    wait_for_signal().await;
    eprintln!("escrowd gateway: stopping");
    running.stop().await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); shared with `escrowd notary`.
#[cfg(unix)]
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Waits for Ctrl-C.
#[cfg(not(unix))]
pub(crate) async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
