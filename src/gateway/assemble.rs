//! Assembling a gateway from its configuration: the store, one set of chain
//! clients per chain, the wallet, the saga contexts and the driver; then
//! recovery of every in-flight saga. The transports (the counterparty's
//! gRPC client, the notary's) are given by the caller, so tests and
//! `escrowd demo` can wire gateways in process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use saga_core::saga::Event;
use saga_runtime::driver::{Driver, DriverError, DriverPorts};
use saga_runtime::log::EventLog;
use saga_runtime::ports::{ChainPorts, Clock, Notary, PeerTransport};
use saga_runtime::wallet::{KeyWallet, UtxoStore, Wallet};

use super::context::GatewayContexts;
use crate::chain::{
    ArcClient, ArcConfig, ChainConfigError, HeadersClient, HeadersConfig, SpendClient, SpendConfig,
    TxClient, TxConfig,
};
use crate::config::GatewayConfig;
use crate::rpc::events::{FeedSignal, NotifyingLog};
use crate::store::{events::project, OpenError, SledLog};

/// Why a gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store cannot be opened (foreign, newer, corrupt, locked).
    #[error("store {path}: {source}")]
    Store {
        /// The store directory.
        path: String,
        /// Why.
        source: OpenError,
    },
    /// A chain client's configuration is refused.
    #[error("chains.{chain_id}: {source}")]
    Chain {
        /// The chain.
        chain_id: String,
        /// Why.
        source: ChainConfigError,
    },
    /// The task opening the store did not finish (it panicked).
    #[error("opening the store was interrupted: {0}")]
    Interrupted(String),
    /// Resuming the in-flight sagas failed.
    #[error("recovering in-flight sagas: {0}")]
    Recover(DriverError),
}

/// A running gateway's saga side.
pub struct Gateway {
    /// The driver (turns and effects).
    pub driver: Driver,
    /// The store, as the driver and services see it: every append wakes
    /// event subscribers ([`crate::rpc::events::NotifyingLog`]).
    pub log: Arc<dyn EventLog<Event>>,
    /// The wake-up signal of `log`, for the event service.
    pub signal: FeedSignal,
    /// The wallet.
    pub wallet: Arc<KeyWallet>,
    /// The chain clients, per chain id.
    pub chains: BTreeMap<String, ChainPorts>,
    /// How many in-flight sagas were resumed at start.
    pub resumed: usize,
}

/// The chain clients of every configured chain. Tips are cached for at
/// most half the poll interval, so deadlines in blocks are judged on fresh
/// tips.
///
/// # Errors
/// [`GatewayError::Chain`].
pub fn chain_ports(config: &GatewayConfig) -> Result<BTreeMap<String, ChainPorts>, GatewayError> {
    let api_key = std::env::var("ESCROWD_HEADERS_API_KEY").ok();
    let mut out = BTreeMap::new();
    for (chain_id, c) in &config.chains {
        let err = |source| GatewayError::Chain {
            chain_id: chain_id.clone(),
            source,
        };
        let headers = HeadersConfig {
            api_key: api_key.clone(),
            tip_ttl: (config.poll_interval / 2).max(Duration::from_millis(10)),
            ..HeadersConfig::new(c.headers_url.as_str().trim_end_matches('/'))
        };
        out.insert(
            chain_id.clone(),
            ChainPorts {
                broadcaster: Arc::new(
                    ArcClient::new(ArcConfig::new(c.arc_url.as_str().trim_end_matches('/')))
                        .map_err(err)?,
                ),
                tracker: Arc::new(HeadersClient::new(headers).map_err(err)?),
                spends: Arc::new(
                    SpendClient::new(SpendConfig::new(c.spend_url.as_str().trim_end_matches('/')))
                        .map_err(err)?,
                ),
                transactions: Arc::new(
                    TxClient::new(TxConfig::new(c.tx_url.as_str().trim_end_matches('/')))
                        .map_err(err)?,
                ),
            },
        );
    }
    Ok(out)
}

impl Gateway {
    /// Opens the store, builds the clients, wallet and driver, and resumes
    /// every in-flight saga.
    ///
    /// # Errors
    /// [`GatewayError`]; nothing was started.
    pub async fn start(
        config: &GatewayConfig,
        peer: Arc<dyn PeerTransport>,
        notary: Option<Arc<dyn Notary>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Gateway, GatewayError> {
        let chains = chain_ports(config)?;
        Gateway::start_with_chains(config, peer, notary, clock, chains).await
    }

    /// [`Gateway::start`] with chain clients given by the caller (tests and
    /// the demo wrap them, e.g. to mine a block after each broadcast).
    ///
    /// # Errors
    /// As [`Gateway::start`].
    pub async fn start_with_chains(
        config: &GatewayConfig,
        peer: Arc<dyn PeerTransport>,
        notary: Option<Arc<dyn Notary>>,
        clock: Arc<dyn Clock>,
        chains: BTreeMap<String, ChainPorts>,
    ) -> Result<Gateway, GatewayError> {
        let dir = config.store.clone();
        let log = tokio::task::spawn_blocking(move || SledLog::open(&dir, project))
            .await
            .map_err(|e| GatewayError::Interrupted(e.to_string()))?
            .map_err(|source| GatewayError::Store {
                path: config.store.display().to_string(),
                source,
            })?;
        let notifying = Arc::new(NotifyingLog::new(Arc::new(log) as Arc<dyn EventLog<Event>>));
        let signal = notifying.signal();
        let log: Arc<dyn EventLog<Event>> = notifying;
        let wallet_keys: BTreeMap<_, _> = config
            .chains
            .iter()
            .map(|(id, c)| (id.clone(), c.wallet_key))
            .collect();
        let wallet = Arc::new(KeyWallet::new(
            log.clone() as Arc<dyn UtxoStore>,
            wallet_keys.clone(),
        ));
        let contexts = Arc::new(GatewayContexts::new(
            config.spiffe_id.to_string(),
            config.saga_key,
            wallet_keys,
            Arc::new(config.policy.clone()),
            log.clone(),
        ));
        let driver = Driver::new(DriverPorts {
            log: log.clone(),
            chains: chains.clone(),
            peer,
            notary,
            wallet: wallet.clone() as Arc<dyn Wallet>,
            contexts,
            clock,
            poll_interval: config.poll_interval,
        });
        let resumed = driver.recover().await.map_err(GatewayError::Recover)?;
        Ok(Gateway {
            driver,
            log,
            signal,
            wallet,
            chains,
            resumed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use saga_core::saga::{PeerReply, PeerRequest};
    use saga_core::terms::SagaId;
    use saga_runtime::ports::{PeerError, SystemClock};

    struct NoPeer;

    #[async_trait]
    impl PeerTransport for NoPeer {
        async fn send(
            &self,
            peer: &str,
            _saga_id: SagaId,
            _request: PeerRequest,
        ) -> Result<PeerReply, PeerError> {
            Err(PeerError::Unreachable {
                peer: peer.into(),
                detail: "no network in this test".into(),
            })
        }
    }

    fn config(name: &str) -> GatewayConfig {
        let dir = crate::config::tests::fixture(name);
        GatewayConfig::parse(&crate::config::tests::text(), "gateway.toml", &dir).unwrap()
    }

    async fn start(c: &GatewayConfig) -> Result<Gateway, GatewayError> {
        Gateway::start(c, Arc::new(NoPeer), None, Arc::new(SystemClock)).await
    }

    #[tokio::test]
    async fn a_fresh_store_starts_with_nothing_to_resume_and_is_held_exclusively() {
        let c = config("assemble-fresh");
        let g = start(&c).await.unwrap();
        assert_eq!(g.resumed, 0);
        assert_eq!(g.chains.keys().collect::<Vec<_>>(), ["chain-d", "chain-p"]);
        // A second gateway on the same store is refused while the first runs.
        match start(&c).await {
            Err(GatewayError::Store { .. }) => {}
            Err(other) => panic!("expected a store error, got {other}"),
            Ok(_) => panic!("two gateways opened one store"),
        }
    }

    #[tokio::test]
    async fn a_directory_that_is_not_a_store_stops_the_gateway_untouched() {
        let c = config("assemble-foreign");
        std::fs::create_dir_all(&c.store).unwrap();
        std::fs::write(c.store.join("notes.txt"), b"not a store").unwrap();
        let e = start(&c).await.err().expect("refused");
        assert!(matches!(e, GatewayError::Store { .. }), "{e}");
        assert_eq!(
            std::fs::read(c.store.join("notes.txt")).unwrap(),
            b"not a store"
        );
    }
}
