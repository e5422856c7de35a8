//! The observer (`escrowd observer`, DESIGN.md §3.3 step 4): it subscribes
//! to each configured gateway's event feed and keeps an audit trail of
//! every event, once, in its own sled store — what each gateway said and
//! when we heard it — from which it prints a saga's timeline across both
//! gateways. docs/observer.md is the user's page.
//!
//! One follower per gateway subscribes from the gateway's cursor in the
//! store plus one. Each item is judged against that cursor: at or below it
//! is a duplicate (delivery is at least once), counted and skipped; exactly
//! the next one is stored — record, index and cursor in one sled
//! transaction, then a flush — before the next item is looked at; past it is
//! a gap, logged as an error, and the follower subscribes again from the
//! cursor plus one. An unreachable gateway, a refused subscription, a
//! stream that ends (the gateway shut down) or an item this build cannot
//! read: the follower tries again after a bounded exponential backoff and
//! never gives up on its own; [`RunningObserver::status`] says what it last
//! saw.
//!
//! # Layout
//! - [`config`]: `observer.toml`. [`store`]: the audit store.
//!   [`feed`]: where the feeds come from (gRPC over mTLS, or in process).
//! - [`Observed`], [`Counters`], [`FeedStatus`], [`Backoff`],
//!   [`ObserverOptions`], [`ObserverError`], [`event_txids`].
//! - [`RunningObserver`]: `start`, `start_with_feeds`, accessors, `stop`.
//! - The follower loop in `follow`.

pub mod config;
pub mod feed;
pub mod store;

mod follow;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bsv_format::Txid;
use saga_core::saga::Event;
use saga_core::terms::SagaId;
use tokio::sync::{broadcast, watch};

use self::config::ObserverConfig;
use self::feed::{FeedError, FeedSource, FeedTimeouts, GrpcFeed};
use self::follow::{FeedState, Follower};
use self::store::{AuditStore, AuditStoreError};
use crate::identity::tls::{IdentityError, IdentityHandle};
use crate::identity::SpiffeId;

/// One event as the observer recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The gateway that sent it (SPIFFE ID).
    pub gateway: String,
    /// Its position in that gateway's feed (from 1).
    pub cursor: u64,
    /// The saga.
    pub saga_id: SagaId,
    /// Its seq in the saga's log on that gateway (from 0).
    pub seq: u64,
    /// The stable event name (`claim_broadcast`).
    pub name: String,
    /// The gateway's one-line text (never a secret the log does not make public).
    pub text: String,
    /// The event.
    pub event: Event,
    /// When the gateway sent it, UNIX seconds UTC (the gateway's clock).
    pub sent_at: u64,
    /// When the observer received it, UNIX milliseconds UTC (our clock;
    /// never earlier than the gateway's previous item).
    pub received_at: u64,
}

/// What the followers did since the observer started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Items stored.
    pub stored: u64,
    /// Items at or below the stored cursor, skipped.
    pub duplicates: u64,
    /// Duplicates that name another saga or seq than the store holds at
    /// their cursor (logged as errors; the store keeps the first).
    pub conflicts: u64,
    /// Items past the next cursor expected (each followed by a new subscription).
    pub gaps: u64,
}

impl Counters {
    fn add(self, o: Counters) -> Counters {
        Counters {
            stored: self.stored + o.stored,
            duplicates: self.duplicates + o.duplicates,
            conflicts: self.conflicts + o.conflicts,
            gaps: self.gaps + o.gaps,
        }
    }
}

/// One follower's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStatus {
    /// The gateway (SPIFFE ID).
    pub gateway: String,
    /// The last cursor stored (0: none).
    pub cursor: u64,
    /// Its counters.
    pub counters: Counters,
    /// Subscriptions opened since start.
    pub subscriptions: u64,
    /// Whether a subscription is open now.
    pub connected: bool,
    /// The last fault (unreachable, refused, a gap, an unreadable item, a
    /// storage error), kept after recovery; `None` if there was none.
    pub last_error: Option<String>,
}

/// Waits between attempts: `initial`, doubled after each attempt that
/// stored nothing, at most `max`; back to `initial` once an item is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    /// 200 ms, at most 5 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

/// What [`RunningObserver::start`] may be given instead of the defaults.
#[derive(Debug, Clone, Default)]
pub struct ObserverOptions {
    /// Our identity, instead of loading the config's `[identity]` files.
    pub identity: Option<IdentityHandle>,
    /// Reconnection waits.
    pub backoff: Backoff,
    /// Dialling limits of the gRPC feeds.
    pub timeouts: FeedTimeouts,
}

/// One gateway's feed, for [`RunningObserver::start_with_feeds`].
#[derive(Clone)]
pub struct Feed {
    /// The gateway's SPIFFE ID: the name its events are recorded under.
    pub gateway: SpiffeId,
    /// Where its items come from.
    pub source: Arc<dyn FeedSource>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("gateway", &self.gateway.to_string())
            .finish_non_exhaustive()
    }
}

/// Why the observer did not start.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    /// Our identity (federation, certificate, key) is unusable.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// Our certificate carries another SPIFFE ID than `observer.spiffe_id`.
    #[error("observer.spiffe_id is {configured} but our certificate carries {certificate}")]
    IdentityMismatch {
        /// The configured ID.
        configured: String,
        /// The certificate's.
        certificate: String,
    },
    /// A gateway's endpoint cannot be dialled.
    #[error("gateway {gateway}: {source}")]
    Endpoint {
        /// The gateway.
        gateway: String,
        /// Why.
        source: FeedError,
    },
    /// The same gateway is followed twice.
    #[error("gateway {0} is followed twice")]
    DuplicateFeed(String),
    /// No gateway to follow.
    #[error("no gateway to follow")]
    NoFeeds,
    /// The audit store cannot be opened or read.
    #[error(transparent)]
    Store(#[from] AuditStoreError),
    /// A blocking task failed (panicked or was cancelled).
    #[error("observer task failed: {0}")]
    Task(String),
}

/// Capacity of [`RunningObserver::subscribe`]'s channel; a slower reader
/// misses the oldest items (the store has them all).
const EVENTS_CAPACITY: usize = 1024;

/// A running observer: one follower task per gateway over one audit store.
pub struct RunningObserver {
    store: Arc<AuditStore>,
    feeds: Vec<Arc<FeedState>>,
    events: broadcast::Sender<Observed>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningObserver")
            .field("store", &self.store.path())
            .field("feeds", &self.feeds.len())
            .finish_non_exhaustive()
    }
}

impl RunningObserver {
    /// Starts following every gateway of `config` over gRPC and mutual TLS
    /// as our identity (the config's files, or `options.identity`), storing
    /// into `config.store`. Gateways need not be reachable: their followers
    /// keep trying.
    ///
    /// # Errors
    /// [`ObserverError`] when the identity or the store is unusable;
    /// nothing is left running.
    pub async fn start(
        config: &ObserverConfig,
        options: ObserverOptions,
    ) -> Result<RunningObserver, ObserverError> {
        let identity = match &options.identity {
            Some(i) => i.clone(),
            None => IdentityHandle::load(config.identity.clone())?,
        };
        if identity.own_id() != config.spiffe_id {
            return Err(ObserverError::IdentityMismatch {
                configured: config.spiffe_id.to_string(),
                certificate: identity.own_id().to_string(),
            });
        }
        let mut feeds = Vec::new();
        for endpoint in config.gateways.values() {
            let source =
                GrpcFeed::new(&identity, endpoint, options.timeouts).map_err(|source| {
                    ObserverError::Endpoint {
                        gateway: endpoint.spiffe_id.to_string(),
                        source,
                    }
                })?;
            feeds.push(Feed {
                gateway: endpoint.spiffe_id.clone(),
                source: Arc::new(source),
            });
        }
        RunningObserver::start_with_feeds(&config.store, feeds, options).await
    }

    /// Starts following `feeds`, storing into the audit store at `store`
    /// (created if missing). `options.identity` and `options.timeouts` are
    /// not used: the sources are given.
    ///
    /// # Errors
    /// [`ObserverError`] (the store, no or duplicate feeds).
    pub async fn start_with_feeds(
        store: &Path,
        feeds: Vec<Feed>,
        options: ObserverOptions,
    ) -> Result<RunningObserver, ObserverError> {
        if feeds.is_empty() {
            return Err(ObserverError::NoFeeds);
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &feeds {
            if !names.insert(f.gateway.to_string()) {
                return Err(ObserverError::DuplicateFeed(f.gateway.to_string()));
            }
        }
        let path = store.to_path_buf();
        let store = tokio::task::spawn_blocking(move || AuditStore::open(&path))
            .await
            .map_err(|e| ObserverError::Task(e.to_string()))??;
        let store = Arc::new(store);
        let (events, _) = broadcast::channel(EVENTS_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let mut states = Vec::new();
        let mut tasks = Vec::new();
        for f in feeds {
            let gateway = f.gateway.to_string();
            let cursor = store.cursor(&gateway)?;
            let state = Arc::new(FeedState::new(gateway.clone(), cursor));
            tracing::info!(%gateway, cursor, "observer: following from cursor {}", cursor + 1);
            let follower = Follower {
                source: f.source,
                store: store.clone(),
                state: state.clone(),
                backoff: options.backoff,
                events: events.clone(),
                stop: stop_rx.clone(),
            };
            states.push(state);
            tasks.push(tokio::spawn(follower.run()));
        }
        Ok(RunningObserver {
            store,
            feeds: states,
            events,
            stop,
            tasks,
        })
    }

    /// The last cursor stored for `gateway` (SPIFFE ID); 0 for a gateway
    /// not followed or with nothing stored yet.
    pub fn cursor(&self, gateway: &str) -> u64 {
        self.feeds
            .iter()
            .find(|f| f.gateway == gateway)
            .map_or(0, |f| f.cursor())
    }

    /// Every record of `saga_id` from every gateway, in the order the
    /// observer received them (by `received_at`, then gateway, then seq).
    ///
    /// # Errors
    /// [`AuditStoreError`] (storage, a corrupt record).
    pub fn timeline(&self, saga_id: &SagaId) -> Result<Vec<Observed>, AuditStoreError> {
        self.store.timeline(saga_id)
    }

    /// Every saga observed, in saga id (creation) order.
    ///
    /// # Errors
    /// [`AuditStoreError`].
    pub fn sagas(&self) -> Result<Vec<SagaId>, AuditStoreError> {
        self.store.sagas()
    }

    /// The followers' counters, summed over the gateways.
    pub fn counters(&self) -> Counters {
        self.feeds
            .iter()
            .fold(Counters::default(), |sum, f| sum.add(f.counters()))
    }

    /// Each follower's state, in the order the feeds were given.
    pub fn status(&self) -> Vec<FeedStatus> {
        self.feeds.iter().map(|f| f.status()).collect()
    }

    /// Every item stored from now on, as it is stored (after its flush).
    pub fn subscribe(&self) -> broadcast::Receiver<Observed> {
        self.events.subscribe()
    }

    /// The audit store (for reads the accessors above do not cover).
    pub fn store(&self) -> &AuditStore {
        &self.store
    }

    /// Stops the followers — each finishes the item it is storing, if any —
    /// and closes the store.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!("observer: a follower failed: {e}");
            }
        }
    }
}

/// The transactions `event` names (display hex order): the transaction it
/// records or was about, the escrow outpoint's transaction it signed for,
/// the reservation a token is for. Empty for events naming none.
pub fn event_txids(event: &Event) -> Vec<Txid> {
    match event {
        Event::ReservationBuilt { tx, .. }
        | Event::ClaimBuilt { tx }
        | Event::CancelBuilt { tx } => {
            vec![tx.txid()]
        }
        Event::RefundCountersigned { refund } => vec![refund.txid()],
        Event::ReservationBroadcast { txid }
        | Event::ClaimBroadcast { txid }
        | Event::RefundBroadcast { txid }
        | Event::CounterClaimSeen { txid, .. } => vec![*txid],
        Event::PreimageLearned { claim_txid, .. } => vec![*claim_txid],
        Event::CounterRefundSigned { escrow }
        | Event::CounterReservationVerified { escrow, .. }
        | Event::CancelSigned { escrow } => vec![escrow.txid],
        Event::TokenGranted { token } | Event::TokenReceived { token } => {
            vec![token.reservation.txid]
        }
        Event::TermsProposed { .. }
        | Event::TermsAgreed { .. }
        | Event::TermsRejected { .. }
        | Event::ReservationConfirmed { .. }
        | Event::ReservationAbandoned { .. }
        | Event::CounterpartyMisbehaved { .. }
        | Event::NotaryApproved { .. }
        | Event::NotaryRejected { .. }
        | Event::ClaimConfirmed { .. }
        | Event::ClaimAbandoned { .. }
        | Event::CounterClaimConfirmed { .. }
        | Event::MessageDelivered { .. }
        | Event::CancelRequested { .. }
        | Event::RefundConfirmed { .. }
        | Event::EffectFailed { .. }
        | Event::AttentionRaised { .. }
        | Event::OperatorResolved { .. } => Vec::new(),
    }
}
