//! The event log port (DESIGN.md §2 driver turn, §5): where a saga's facts
//! are appended, one append per saga step, and read back.
//!
//! A driver turn is `input → handle → append → flush → apply → effects →
//! reply` (STYLE.md 2). [`EventLog::append`] is the "append and flush" part:
//! a [`Step`] carries everything one turn decided — the saga's new events,
//! the single-use tokens they consume, the hashlocks first seen, the wallet
//! output changes, the client's idempotency key, the reply sent to a peer and
//! the saga's new [`Projection`] with its [`Deadline`]s — and all of it
//! commits together or none of it does (STYLE.md 9, 10). When `append`
//! returns `Ok`, the step is durable: the driver may then act on it.
//!
//! The log is generic over the event type `E`: the saga's domain event enum
//! lives in `saga-core`; stores persist it through their own stored form
//! (STYLE.md 8), which this crate does not know.
//!
//! Every implementation passes the same suite, [`conformance`] (STYLE.md
//! 13); [`MemLog`] is the in-memory one, the gateway's sled store the
//! durable one. Every log is also the wallet's [`UtxoStore`] over the same
//! `utxos` data that [`Step::utxo_changes`] writes.
//!
//! # Layout
//! - The step and its parts: [`Step`], [`ReplyKey`], [`Projection`],
//!   [`Deadline`], [`Appended`].
//! - Reads: [`FeedEntry`], [`SagaFilter`], [`DeadlineQuery`],
//!   [`TokenConsumption`], [`SecretBytes`].
//! - Errors: [`AppendError`], [`ReadError`], [`SecretError`].
//! - The port: [`EventLog`]; the projection rebuilder's shape: [`Projector`].
//! - [`check_step`]: the shape rules every implementation applies first.
//! - [`utxos`]: the [`saga_core::wallet::UtxoChange`] rules, shared by all logs.
//! - [`mem`]: [`MemLog`]. [`conformance`]: the suite and its `TestEvent`.

pub mod conformance;
pub mod mem;
pub mod utxos;

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use bsv_format::Outpoint;
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::units::{Height, UnixTime};
use saga_core::wallet::UtxoChange;

pub use mem::MemLog;

use crate::wallet::UtxoStore;

/// Longest chain id a [`Deadline`] or [`saga_core::wallet::Utxo`] may carry,
/// in bytes: stores length-prefix it with a `u16` in keys.
pub const MAX_CHAIN_ID_LEN: usize = u16::MAX as usize;

/// Longest peer name (SPIFFE ID) a [`ReplyKey`] may carry, in bytes (keys
/// length-prefix it with a `u16`).
pub const MAX_PEER_LEN: usize = u16::MAX as usize;

/// Everything one driver turn decided for one saga, appended atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<E> {
    /// The saga.
    pub saga_id: SagaId,
    /// The saga's current head as the caller last read it: the seq the first
    /// of `events` gets (0 for a new saga). Compare-and-set: the append fails
    /// with [`AppendError::SeqConflict`] if the stored head differs.
    pub expected_seq: u64,
    /// The new events, at least one; they get seqs `expected_seq ..
    /// expected_seq + events.len()`.
    pub events: Vec<E>,
    /// Single-use tokens this step consumes (DESIGN.md §3.4): each may be
    /// consumed once ever, by any saga. Recorded as consumed by the step's
    /// first event (`(saga_id, expected_seq)`).
    pub consumed_tokens: Vec<TokenId>,
    /// Hashlocks `H` (32 bytes, SHA-256 of the preimage) seen for the first
    /// time; each may be recorded once ever (DESIGN.md §3.1 "H is never
    /// reused").
    pub new_hashlocks: Vec<[u8; 32]>,
    /// Changes to the wallet's outputs, applied in order with the rules of
    /// [`UtxoChange`].
    pub utxo_changes: Vec<UtxoChange>,
    /// A client's idempotency key for the request that created or drove this
    /// saga; it maps to one saga for ever.
    pub idempotency_key: Option<String>,
    /// The reply to a peer's message, stored so a retried call gets the same
    /// answer (STYLE.md 3). Recorded once: an equal reply again is a no-op.
    pub reply: Option<(ReplyKey, Vec<u8>)>,
    /// The saga's projection after this step, computed by the caller;
    /// `projection.saga_id` must be `saga_id` and `projection.head` must be
    /// `expected_seq + events.len()`.
    pub projection: Projection,
}

/// Which peer message a stored reply answers: `peer ‖ saga id ‖ message seq`
/// in the `replies` tree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyKey {
    /// The calling peer's identity (its SPIFFE ID, at most
    /// [`MAX_PEER_LEN`] bytes).
    pub peer: String,
    /// The saga the message is about.
    pub saga_id: SagaId,
    /// The peer's sequence number of the message within the saga.
    pub message_seq: u64,
}

impl fmt::Display for ReplyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.peer, self.saga_id, self.message_seq)
    }
}

/// A saga's read model: what operators list and the driver re-arms on start.
/// Computed by the caller (the driver) from the saga's state; stored by the
/// log with the step that produced it (the `sagas` tree) and indexed by its
/// deadlines (the `deadlines` tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// The saga.
    pub saga_id: SagaId,
    /// This gateway's role in the saga (`buyer`, `seller`, ...).
    pub role: String,
    /// The state's name (`Reserved`, `Completed`, ...).
    pub state: String,
    /// Whether the saga has ended (nothing more will be appended by the
    /// driver on its own); in-flight sagas are the non-terminal ones.
    pub terminal: bool,
    /// Why an operator must look at it, if they must.
    pub attention: Option<String>,
    /// The saga's head after the step: the number of events, i.e. the seq
    /// the next event gets.
    pub head: u64,
    /// When the driver must wake the saga up, in any order; duplicates are
    /// stored once.
    pub deadlines: Vec<Deadline>,
}

/// A moment at which a saga must be looked at again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Deadline {
    /// When chain `chain_id`'s tip reaches `height` (heights decide the
    /// protocol's deadlines, DESIGN.md §3.2).
    Height {
        /// The chain (at most [`MAX_CHAIN_ID_LEN`] bytes).
        chain_id: String,
        /// The height.
        height: Height,
    },
    /// When the gateway's clock reaches this UTC time (quote expiry,
    /// reservation deadline, token `not_after`).
    Time(UnixTime),
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Deadline::Height { chain_id, height } => write!(f, "{chain_id} height {height}"),
            Deadline::Time(t) => write!(f, "time {t}"),
        }
    }
}

/// Which deadlines [`EventLog::due_deadlines`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineQuery {
    /// Height deadlines of `chain_id` at or below `tip`.
    Height {
        /// The chain.
        chain_id: String,
        /// Its current tip height.
        tip: Height,
    },
    /// Time deadlines at or before this UTC time.
    Time(UnixTime),
}

/// What a successful append assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The seq of the step's first event (= [`Step::expected_seq`]).
    pub first_seq: u64,
    /// The feed cursor of each event, in order (consecutive, gateway-wide).
    pub feed_seqs: Vec<u64>,
}

/// One event in the gateway-wide feed, the order subscribers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry<E> {
    /// The gateway-wide position, from 1; a subscriber resumes with
    /// `feed(cursor + 1, ..)`.
    pub cursor: u64,
    /// The saga.
    pub saga_id: SagaId,
    /// The event's seq within its saga.
    pub seq: u64,
    /// The event.
    pub event: E,
}

/// Which projections [`EventLog::list_sagas`] returns; `None` fields match
/// anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SagaFilter {
    /// Only terminal (`Some(true)`) or only in-flight (`Some(false)`) sagas.
    pub terminal: Option<bool>,
    /// Only sagas in this state (exact name).
    pub state: Option<String>,
}

impl SagaFilter {
    /// Whether `p` passes the filter.
    pub fn matches(&self, p: &Projection) -> bool {
        self.terminal.is_none_or(|t| t == p.terminal)
            && self.state.as_deref().is_none_or(|s| s == p.state)
    }
}

/// Who consumed a token: the saga and the seq of the first event of the
/// consuming step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenConsumption {
    /// The saga.
    pub saga_id: SagaId,
    /// The seq of the consuming step's first event.
    pub seq: u64,
}

/// Secret bytes (a preimage, a key) kept by the log's `secrets` API. Its
/// `Debug` shows only the length, so a secret never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps `bytes`.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Equality in time independent of where the bytes differ.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        saga_core::constant_time_eq(&self.0, other)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes>)", self.0.len())
    }
}

/// Why an append was refused. Every variant but [`AppendError::Storage`]
/// means nothing of the step was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The step is not well formed (no events, a projection of another saga
    /// or with the wrong head, a token or hashlock listed twice, a chain id
    /// or peer name too long). A caller bug, never a race.
    #[error("malformed step for saga {saga_id}: {reason}")]
    MalformedStep {
        /// The saga.
        saga_id: SagaId,
        /// What is wrong.
        reason: String,
    },
    /// The saga's head moved: another step was appended since the caller
    /// read it. Reload and decide again.
    #[error("saga {saga_id}: expected head {expected}, stored head is {actual}")]
    SeqConflict {
        /// The saga.
        saga_id: SagaId,
        /// The step's `expected_seq`.
        expected: u64,
        /// The stored head.
        actual: u64,
    },
    /// A token of the step was consumed before (by this or another saga).
    #[error("token {token_id} was consumed by saga {} at seq {}", .by.0, .by.1)]
    TokenConsumed {
        /// The token.
        token_id: TokenId,
        /// The saga and seq that consumed it.
        by: (SagaId, u64),
    },
    /// A hashlock of the step was recorded before.
    #[error("hashlock {} was seen before (saga {by})", hex32(.hashlock))]
    HashlockReused {
        /// The hashlock `H`.
        hashlock: [u8; 32],
        /// The saga that recorded it.
        by: SagaId,
    },
    /// A `Reserve` or `Spend` change named an output that is missing,
    /// reserved by another saga or spent by another transaction.
    #[error("output {outpoint} on chain {chain_id} is not available ({reason})")]
    UtxoUnavailable {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// `missing`, `reserved by saga <id>` or `spent by <txid>`.
        reason: String,
    },
    /// The idempotency key already belongs to another saga.
    #[error("idempotency key {key:?} belongs to saga {saga_id}")]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// The saga it maps to.
        saga_id: SagaId,
    },
    /// A different reply is already stored for this peer message (the first
    /// reply is the one a retried call must get).
    #[error("a different reply to {key} is already stored")]
    ReplyConflict {
        /// The message.
        key: ReplyKey,
    },
    /// The storage failed (I/O, corruption). If it failed before the commit
    /// nothing was written; if the flush after the commit failed, the step
    /// may or may not be durable: the caller must not act on it, and should
    /// stop and reload the saga from the log before deciding again.
    #[error("event log storage: {0}")]
    Storage(String),
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The storage failed (I/O).
    #[error("event log storage: {0}")]
    Storage(String),
    /// A stored record does not decode or contradicts another.
    #[error("event log record {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record (tree and key, printable).
        what: String,
        /// What is wrong.
        detail: String,
    },
}

/// Why a secret could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// A different secret is stored under this name: secrets are written
    /// once (a preimage must never be replaced). Writing equal bytes again is
    /// a no-op.
    #[error("saga {saga_id} already has a different secret {name:?}")]
    Exists {
        /// The saga.
        saga_id: SagaId,
        /// The secret's name.
        name: String,
    },
    /// The storage failed; nothing is known to be written.
    #[error("secret storage: {0}")]
    Storage(String),
}

/// Rebuilds a saga's projection from its whole log (`(seq, event)` from seq
/// 0), as the driver computes it. A durable store calls it on open for every
/// saga whose stored projection is missing or behind its log.
pub type Projector<E> = fn(&SagaId, &[(u64, E)]) -> Projection;

/// The event log port. Implementations are safe to share (`Arc<dyn
/// EventLog<E>>`) between tasks; appends of different sagas may run
/// concurrently and are serialisable. Every log is also the wallet's
/// [`UtxoStore`].
#[async_trait]
pub trait EventLog<E: Send + 'static>: UtxoStore + Send + Sync {
    /// Appends `step` atomically and durably: the events, token
    /// consumptions, hashlocks, UTXO changes, idempotency key, reply,
    /// projection and its deadlines (the saga's previous deadlines are
    /// replaced) — all or nothing, flushed when it returns.
    ///
    /// # Errors
    /// [`AppendError::MalformedStep`], [`AppendError::SeqConflict`],
    /// [`AppendError::TokenConsumed`], [`AppendError::HashlockReused`],
    /// [`AppendError::IdempotencyConflict`], [`AppendError::ReplyConflict`],
    /// [`AppendError::UtxoUnavailable`] (checked in this order), each with
    /// nothing written; or [`AppendError::Storage`] (see there).
    async fn append(&self, step: Step<E>) -> Result<Appended, AppendError>;

    /// The saga's events `(seq, event)` from seq 0, in seq order; empty for
    /// an unknown saga.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn load(&self, saga_id: &SagaId) -> Result<Vec<(u64, E)>, ReadError>;

    /// The saga's head: its number of events (0 for an unknown saga).
    ///
    /// # Errors
    /// [`ReadError`].
    async fn head(&self, saga_id: &SagaId) -> Result<u64, ReadError>;

    /// The sagas whose projection is not terminal, in saga id order.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn in_flight_sagas(&self) -> Result<Vec<SagaId>, ReadError>;

    /// At most `limit` feed entries with `cursor >= from_cursor`, in cursor
    /// order (cursors start at 1, so `from_cursor` 0 or 1 reads from the
    /// start).
    ///
    /// # Errors
    /// [`ReadError`].
    async fn feed(&self, from_cursor: u64, limit: usize) -> Result<Vec<FeedEntry<E>>, ReadError>;

    /// Who consumed `token_id`, if anyone.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn token_consumption(
        &self,
        token_id: &TokenId,
    ) -> Result<Option<TokenConsumption>, ReadError>;

    /// The saga that recorded hashlock `hashlock`, if it was ever seen.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn hashlock_seen(&self, hashlock: &[u8; 32]) -> Result<Option<SagaId>, ReadError>;

    /// The saga an idempotency key maps to.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn idempotency(&self, key: &str) -> Result<Option<SagaId>, ReadError>;

    /// The reply stored for a peer message.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn reply(&self, key: &ReplyKey) -> Result<Option<Vec<u8>>, ReadError>;

    /// The saga's stored projection.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn projection(&self, saga_id: &SagaId) -> Result<Option<Projection>, ReadError>;

    /// At most `limit` projections matching `filter` with saga id strictly
    /// after `page_after` (all from the start for `None`), in saga id order.
    /// The next page starts after the last id returned.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn list_sagas(
        &self,
        filter: &SagaFilter,
        page_after: Option<SagaId>,
        limit: usize,
    ) -> Result<Vec<Projection>, ReadError>;

    /// The deadlines that are due: for [`DeadlineQuery::Height`], that
    /// chain's height deadlines at or below the tip; for
    /// [`DeadlineQuery::Time`], time deadlines at or before it. Ordered by
    /// height (or time), then saga id.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn due_deadlines(
        &self,
        query: &DeadlineQuery,
    ) -> Result<Vec<(Deadline, SagaId)>, ReadError>;

    /// Stores a secret of a saga (a preimage, a key) under `name`, durably
    /// when it returns. Written once: equal bytes again are a no-op.
    ///
    /// # Errors
    /// [`SecretError::Exists`] (different bytes stored), [`SecretError::Storage`].
    async fn put_secret(
        &self,
        saga_id: &SagaId,
        name: &str,
        secret: SecretBytes,
    ) -> Result<(), SecretError>;

    /// The secret stored under `name` for the saga.
    ///
    /// # Errors
    /// [`ReadError`].
    async fn secret(&self, saga_id: &SagaId, name: &str) -> Result<Option<SecretBytes>, ReadError>;
}

/// The shape rules every [`EventLog`] applies before looking at stored
/// data: at least one event, a projection of this saga whose head is
/// `expected_seq + events.len()`, no token or hashlock listed twice, chain
/// ids and the reply's peer within their key length limits.
///
/// # Errors
/// [`AppendError::MalformedStep`].
pub fn check_step<E>(step: &Step<E>) -> Result<(), AppendError> {
    let malformed = |reason: String| AppendError::MalformedStep {
        saga_id: step.saga_id,
        reason,
    };
    if step.events.is_empty() {
        return Err(malformed("no events".into()));
    }
    if step.projection.saga_id != step.saga_id {
        return Err(malformed(format!(
            "projection is of saga {}",
            step.projection.saga_id
        )));
    }
    let new_head = (step.events.len() as u64)
        .checked_add(step.expected_seq)
        .ok_or_else(|| malformed("seq overflows u64".into()))?;
    if step.projection.head != new_head {
        return Err(malformed(format!(
            "projection head {} is not {new_head}",
            step.projection.head
        )));
    }
    let mut tokens = BTreeSet::new();
    for t in &step.consumed_tokens {
        if !tokens.insert(t.0) {
            return Err(malformed(format!("token {t} listed twice")));
        }
    }
    let mut hashlocks = BTreeSet::new();
    for h in &step.new_hashlocks {
        if !hashlocks.insert(*h) {
            return Err(malformed(format!("hashlock {} listed twice", hex32(h))));
        }
    }
    for d in &step.projection.deadlines {
        if let Deadline::Height { chain_id, .. } = d {
            if chain_id.len() > MAX_CHAIN_ID_LEN {
                return Err(malformed("deadline chain id too long".into()));
            }
        }
    }
    for c in &step.utxo_changes {
        if c.chain_id().len() > MAX_CHAIN_ID_LEN {
            return Err(malformed("utxo chain id too long".into()));
        }
    }
    if let Some((key, _)) = &step.reply {
        if key.peer.len() > MAX_PEER_LEN {
            return Err(malformed("reply peer name too long".into()));
        }
    }
    Ok(())
}

/// Lowercase hex of 32 bytes (hashlocks in messages).
pub(crate) fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
