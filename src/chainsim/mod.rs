//! chainsim: a regtest ledger that speaks the ARC and Block Headers Service
//! HTTP APIs (DESIGN.md §6), strict in the ways a node is, for tests, the demo
//! and local runs. API reference, extensions to ARC and semantics:
//! `docs/chainsim.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), escrowd::chainsim::ChainsimError> {
//! use escrowd::chainsim::{Chainsim, ChainsimConfig};
//! let sim = Chainsim::start(ChainsimConfig::default()).await?; // 127.0.0.1:0, in memory
//! println!("ARC and headers API at {}", sim.url());
//! sim.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - this file: [`ChainsimConfig`], [`Chainsim::start`], [`ChainsimHandle`],
//!   [`ChainsimError`], the interval miner.
//! - [`block`]: headers, Merkle roots, coinbases, median time past.
//! - [`validate`]: decoding submissions, context-free checks, finality, fee,
//!   scripts; [`validate::TxRejection`] and its ARC codes.
//! - [`ledger`]: state and the accept path; [`mining`]: mining, reorgs,
//!   clock, faucet payments.
//! - [`store`]: sled persistence (versioned records).
//! - `server`: shared state, router, errors; `arc`, `headers_api`, `sim`:
//!   the endpoints.

pub mod block;
pub mod ledger;
pub mod mining;
pub mod store;
pub mod validate;

mod arc;
mod headers_api;
mod server;
mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::ledger::{chainsim_key, Ledger, LedgerParams};
use self::store::{SledStore, Store, StoreError, StoreOp};

pub use self::server::ApiError;

/// Default cap on request bodies, bytes (ARC's default tx size policy is
/// 10 MB; EF hex is twice its bytes, so 10 MB of hex is a 5 MB transaction).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Longest chain id, characters.
pub const MAX_CHAIN_ID_LEN: usize = 64;
/// How long [`ChainsimHandle::shutdown`] lets open connections finish, seconds.
pub const SHUTDOWN_GRACE_SECS: u64 = 5;

/// How to run a chainsim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainsimConfig {
    /// Address to listen on (default `127.0.0.1:0`, an ephemeral port).
    pub listen: SocketAddr,
    /// Chain name: ASCII letters, digits, `.`, `_`, `-`, 1..=64 characters
    /// (default `regtest`). Tags coinbases and derives the chainsim key, so
    /// two chains with different ids never share txids.
    pub chain_id: String,
    /// Keep the ledger in sled in this directory (default: in memory only).
    pub data_dir: Option<PathBuf>,
    /// Mine a block (with the whole final mempool) every interval (default: only on demand).
    pub block_interval: Option<Duration>,
    /// Minimum fee rate, satoshis per 1,000 bytes (default 1, ARC's default).
    pub fee_rate: u64,
    /// Clock of a new ledger, UNIX seconds; the initial blocks end at this
    /// time (default 1,700,000,000; the CLI passes the wall clock). Ignored
    /// when a stored ledger is opened (its clock is restored).
    pub start_unix: u64,
    /// Blocks mined at creation after the genesis block (default and minimum
    /// 101, so the first coinbase is spendable).
    pub initial_blocks: u32,
    /// Conflicts with transactions mined at most this many blocks deep are
    /// double spends (200 `DOUBLE_SPEND_ATTEMPTED`); deeper ones are spent
    /// inputs (462). Default 6.
    pub double_spend_window: u32,
    /// Cap on request bodies, bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl Default for ChainsimConfig {
    fn default() -> Self {
        ChainsimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            chain_id: "regtest".into(),
            data_dir: None,
            block_interval: None,
            fee_rate: 1,
            start_unix: 1_700_000_000,
            initial_blocks: mining::MIN_INITIAL_BLOCKS,
            double_spend_window: 6,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Why a chainsim could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ChainsimError {
    /// A configuration value is out of range; the message names it.
    #[error("chainsim configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("chainsim cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The sled store could not be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chainsim key could not be derived from the chain id.
    #[error("chainsim key for chain {chain_id:?}: {source}")]
    Key {
        /// The chain id.
        chain_id: String,
        /// The key error.
        source: bsv_format::keys::KeyError,
    },
    /// A background task (store open, server) failed to run.
    #[error("chainsim task: {0}")]
    Task(String),
}

/// The chainsim entry point.
#[derive(Debug)]
pub struct Chainsim;

impl Chainsim {
    /// Opens or creates the ledger, binds `config.listen` and serves the API
    /// in the background on the current tokio runtime, plus the interval
    /// miner if `config.block_interval` is set.
    ///
    /// # Errors
    /// [`ChainsimError::Config`] for a bad chain id, fee rate or interval;
    /// [`ChainsimError::Store`] if `data_dir` cannot be opened (e.g. a newer
    /// schema, another chain id); [`ChainsimError::Bind`].
    pub async fn start(config: ChainsimConfig) -> Result<ChainsimHandle, ChainsimError> {
        check_config(&config)?;
        let key = chainsim_key(&config.chain_id).map_err(|source| ChainsimError::Key {
            chain_id: config.chain_id.clone(),
            source,
        })?;
        let params = LedgerParams {
            chain_id: config.chain_id.clone(),
            fee_rate: config.fee_rate,
            double_spend_window: config.double_spend_window,
        };
        let (ledger, store) = match &config.data_dir {
            None => (
                Ledger::create(params, key, config.start_unix, config.initial_blocks, false),
                Store::Memory,
            ),
            Some(dir) => {
                let (dir, chain) = (dir.clone(), config.chain_id.clone());
                let (sled, parts) =
                    tokio::task::spawn_blocking(move || SledStore::open(&dir, &chain))
                        .await
                        .map_err(|e| ChainsimError::Task(format!("opening the store: {e}")))??;
                let store = Store::Sled(sled);
                match parts {
                    Some(parts) => (Ledger::restore(params, key, parts), store),
                    None => {
                        let mut ledger = Ledger::create(
                            params,
                            key,
                            config.start_unix,
                            config.initial_blocks,
                            true,
                        );
                        let mut ops = vec![StoreOp::Created {
                            chain_id: config.chain_id.clone(),
                        }];
                        ops.extend(ledger.take_journal());
                        store.apply(ops)?;
                        store.flush().await?;
                        (ledger, store)
                    }
                }
            }
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ChainsimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ChainsimError::Bind {
                addr: config.listen,
                source,
            })?;
        let shared = Arc::new(server::Shared::new(ledger, store));
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = server::router(Arc::clone(&shared), config.max_body_bytes);
        let mut stop_server = stop_rx.clone();
        let server = tokio::spawn(async move {
            let stop = async move {
                let _ = stop_server.wait_for(|stop| *stop).await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
        let miner = config
            .block_interval
            .map(|interval| tokio::spawn(run_miner(Arc::clone(&shared), interval, stop_rx)));
        tracing::info!(%addr, chain = %config.chain_id, tip = shared.tip(), "chainsim listening");
        Ok(ChainsimHandle {
            addr,
            shared,
            stop: stop_tx,
            server,
            miner,
        })
    }
}

fn check_config(config: &ChainsimConfig) -> Result<(), ChainsimError> {
    let id = &config.chain_id;
    let ok = !id.is_empty()
        && id.len() <= MAX_CHAIN_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(ChainsimError::Config(format!(
            "chain id {id:?} must be 1..={MAX_CHAIN_ID_LEN} ASCII letters, digits, '.', '_' or '-'"
        )));
    }
    if config
        .block_interval
        .is_some_and(|d| d < Duration::from_millis(1))
    {
        return Err(ChainsimError::Config(
            "block interval must be at least 1 ms".into(),
        ));
    }
    if config.initial_blocks > mining::MAX_BLOCKS_PER_CALL {
        return Err(ChainsimError::Config(format!(
            "initial blocks must be at most {}",
            mining::MAX_BLOCKS_PER_CALL
        )));
    }
    if config.max_body_bytes == 0 {
        return Err(ChainsimError::Config(
            "max body bytes must be positive".into(),
        ));
    }
    Ok(())
}

/// Mines one block (with the whole final mempool) every `interval` of real
/// time until `stop` turns true. Block timestamps still come from the ledger
/// clock.
async fn run_miner(
    shared: Arc<server::Shared>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let mined = shared.write(|l| l.mine(1, true));
                let result = match mined {
                    Ok(Ok(_)) => shared.persist().await,
                    Ok(Err(e)) => Err(ApiError::new(500, e.to_string())),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::error!(error = %e.extra_info, "interval miner stopped");
                    return;
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// A running chainsim. Dropping it leaves the server running until the
/// runtime ends; call [`shutdown`](Self::shutdown) to stop it and release
/// its store.
#[derive(Debug)]
pub struct ChainsimHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    miner: Option<JoinHandle<()>>,
}

impl ChainsimHandle {
    /// The bound address (the real port when listening on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of both APIs, `http://ADDR` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Current tip height.
    pub fn tip(&self) -> u32 {
        self.shared.tip()
    }

    /// How many transactions wait in the mempool (a miner that mines only
    /// when there is something to mine reads it).
    ///
    /// # Errors
    /// [`ChainsimError::Task`] if the ledger is unusable (a poisoned lock, a
    /// failed store).
    pub fn mempool_len(&self) -> Result<usize, ChainsimError> {
        self.shared
            .read(|l| l.mempool().count())
            .map_err(|e| ChainsimError::Task(e.extra_info))
    }

    /// Satoshis in unspent outputs locked by exactly `script`, mempool
    /// included ([`Ledger::balance`]).
    ///
    /// # Errors
    /// As [`mempool_len`](Self::mempool_len).
    pub fn balance(&self, script: &bsv_format::Script) -> Result<u64, ChainsimError> {
        self.shared
            .read(|l| l.balance(script))
            .map_err(|e| ChainsimError::Task(e.extra_info))
    }

    /// A receiver that sees every new tip height (mining, reorgs).
    pub fn subscribe_tip(&self) -> watch::Receiver<u32> {
        self.shared.subscribe_tip()
    }

    /// Stops the interval miner and the server (open connections get
    /// [`SHUTDOWN_GRACE_SECS`] to finish), flushes and closes the store: once
    /// it returns, the data directory can be opened again.
    ///
    /// # Errors
    /// [`ChainsimError::Task`] if the server failed; [`ChainsimError::Store`]
    /// if the final flush failed.
    pub async fn shutdown(self) -> Result<(), ChainsimError> {
        let ChainsimHandle {
            shared,
            stop,
            mut server,
            miner,
            ..
        } = self;
        let _ = stop.send(true);
        if let Some(miner) = miner {
            let _ = miner.await;
        }
        let served =
            match tokio::time::timeout(Duration::from_secs(SHUTDOWN_GRACE_SECS), &mut server).await
            {
                Ok(Ok(result)) => result.map_err(|e| ChainsimError::Task(format!("server: {e}"))),
                Ok(Err(e)) => Err(ChainsimError::Task(format!("server task: {e}"))),
                Err(_) => {
                    server.abort();
                    let _ = server.await;
                    Ok(())
                }
            };
        let flushed = shared
            .persist()
            .await
            .map_err(|e| ChainsimError::Task(e.extra_info));
        // Connection tasks may still hold the state for a moment after the
        // server returns; wait (bounded) until this is the last reference, so
        // the store is closed, and its directory unlocked, when we return.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(SHUTDOWN_GRACE_SECS);
        while Arc::strong_count(&shared) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(shared);
        served.and(flushed)
    }
}
