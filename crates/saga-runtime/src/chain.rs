//! The chain ports (DESIGN.md §6): how the saga submits transactions, checks
//! Merkle roots and learns who spent an output, on any chain.
//!
//! - [`Broadcaster`] submits EF transactions (BRC-30) and reports their
//!   status, with every ARC `txStatus` (`bsv-formats.md` §10.5) and error code
//!   (§10.6) as a type: [`BroadcastOutcome`], [`TxStatus`], [`TxState`],
//!   [`BroadcastError`], [`ArcErrorCode`].
//! - [`ChainTracker`] answers "is this the Merkle root of the block at height
//!   h on the best chain?" and "what is the tip height?" (§11);
//!   [`verify_beef`] runs SPV with it.
//! - [`SpendWatcher`] answers "which transaction spent this outpoint, if any?".
//!
//! Every method is `async` and every trait is dyn-compatible (`Arc<dyn …>`),
//! via `async-trait` (see the crate docs). Implementations retry transient
//! faults themselves; what reaches the caller is either an answer or an error
//! that says whether trying again later can help.
//!
//! # Layout
//! - Faults shared by the ports: [`ServiceFault`].
//! - Broadcasting: [`TxState`], [`BlockInclusion`], [`TxStatus`],
//!   [`BroadcastOutcome`], [`ArcErrorCode`], [`RejectCode`],
//!   [`BroadcastError`], [`Broadcaster`].
//! - Chain tracking: [`TrackerError`], [`ChainTracker`], [`VerifyBeefError`],
//!   [`verify_beef`].
//! - Spends: [`SpendingInput`], [`SpendWatchError`], [`SpendWatcher`].

use std::fmt;

use async_trait::async_trait;
use bsv_format::beef::Beef;
use bsv_format::bump::MerklePath;
use bsv_format::ef::EfTransaction;
use bsv_format::spv::{RootClaim, VerifiedBeef, VerifyError, VerifyOptions};
use bsv_format::{Hash256, Outpoint, Txid};

// ---------------------------------------------------------------------------
// Faults shared by the ports

/// Why a chain service gave no usable answer this time; trying again later
/// may help. Implementations retry these (with backoff) before reporting one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceFault {
    /// No complete answer within the configured request timeout.
    #[error("no answer within the request timeout")]
    Timeout,
    /// The connection could not be made or broke (refused, reset, DNS, TLS).
    #[error("connection failed: {detail}")]
    Connection {
        /// The transport's description.
        detail: String,
    },
    /// An HTTP status that means "later": 5xx, 408, 429, and ARC 469 (Merkle
    /// roots could not be verified, `bsv-formats.md` §10.6).
    #[error("HTTP {status}: {detail}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The body's `detail` / `extraInfo`, or the start of a non-JSON body.
        detail: String,
    },
    /// The service answered but could not say (ARC `txStatus` `UNKNOWN` on a
    /// submission).
    #[error("inconclusive answer: {detail}")]
    Inconclusive {
        /// What the service said.
        detail: String,
    },
}

// ---------------------------------------------------------------------------
// Broadcasting

/// Where a mined transaction is: the block and the BRC-74 Merkle path that
/// proves it (ARC `blockHeight`, `blockHash`, `merklePath`, §10.4).
///
/// Implementations check that `merkle_path` is for `height` and has the
/// transaction as a level-0 leaf before building one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInclusion {
    /// Height of the block.
    pub height: u32,
    /// Hash of the block (internal byte order; `to_string` gives display hex).
    pub hash: Hash256,
    /// The transaction's Merkle path in that block (its root is the block's
    /// Merkle root; confirm it with a [`ChainTracker`] before trusting it).
    pub merkle_path: MerklePath,
}

/// An ARC `txStatus` (metamorph enum, `bsv-formats.md` §10.5), carrying the
/// data that comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxState {
    /// `UNKNOWN` (0): the broadcaster does not know the status.
    Unknown,
    /// `QUEUED` (10).
    Queued,
    /// `RECEIVED` (20).
    Received,
    /// `STORED` (30).
    Stored,
    /// `ANNOUNCED_TO_NETWORK` (40).
    AnnouncedToNetwork,
    /// `REQUESTED_BY_NETWORK` (50).
    RequestedByNetwork,
    /// `SENT_TO_NETWORK` (60).
    SentToNetwork,
    /// `ACCEPTED_BY_NETWORK` (70).
    AcceptedByNetwork,
    /// `SEEN_IN_ORPHAN_MEMPOOL` (80): a node holds it but lacks a parent.
    SeenInOrphanMempool,
    /// `SEEN_ON_NETWORK` (90): propagated; in the mempool.
    SeenOnNetwork,
    /// `DOUBLE_SPEND_ATTEMPTED` (100): transactions spending the same outputs
    /// were seen; either may be mined.
    DoubleSpendAttempted {
        /// The competing txids (ARC `competingTxs`).
        competing_txs: Vec<Txid>,
    },
    /// `REJECTED` (110): refused by the network; the reason is in
    /// [`TxStatus::extra_info`].
    Rejected,
    /// `MINED_IN_STALE_BLOCK` (115): mined in a block that is no longer on the
    /// best chain; the broadcaster re-broadcasts it. Check again.
    MinedInStaleBlock,
    /// `MINED` (120), with the block and the Merkle path.
    Mined(BlockInclusion),
}

impl TxState {
    /// The ARC status name, e.g. `"SEEN_ON_NETWORK"`.
    pub fn name(&self) -> &'static str {
        match self {
            TxState::Unknown => "UNKNOWN",
            TxState::Queued => "QUEUED",
            TxState::Received => "RECEIVED",
            TxState::Stored => "STORED",
            TxState::AnnouncedToNetwork => "ANNOUNCED_TO_NETWORK",
            TxState::RequestedByNetwork => "REQUESTED_BY_NETWORK",
            TxState::SentToNetwork => "SENT_TO_NETWORK",
            TxState::AcceptedByNetwork => "ACCEPTED_BY_NETWORK",
            TxState::SeenInOrphanMempool => "SEEN_IN_ORPHAN_MEMPOOL",
            TxState::SeenOnNetwork => "SEEN_ON_NETWORK",
            TxState::DoubleSpendAttempted { .. } => "DOUBLE_SPEND_ATTEMPTED",
            TxState::Rejected => "REJECTED",
            TxState::MinedInStaleBlock => "MINED_IN_STALE_BLOCK",
            TxState::Mined(_) => "MINED",
        }
    }

    /// The metamorph enum value (0 … 120), which orders the states.
    pub fn code(&self) -> u8 {
        match self {
            TxState::Unknown => 0,
            TxState::Queued => 10,
            TxState::Received => 20,
            TxState::Stored => 30,
            TxState::AnnouncedToNetwork => 40,
            TxState::RequestedByNetwork => 50,
            TxState::SentToNetwork => 60,
            TxState::AcceptedByNetwork => 70,
            TxState::SeenInOrphanMempool => 80,
            TxState::SeenOnNetwork => 90,
            TxState::DoubleSpendAttempted { .. } => 100,
            TxState::Rejected => 110,
            TxState::MinedInStaleBlock => 115,
            TxState::Mined(_) => 120,
        }
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a broadcaster reports about one transaction (ARC
/// `TransactionResponse` / `TransactionStatus`, §10.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxStatus {
    /// The transaction.
    pub txid: Txid,
    /// Its state, with the data that state carries.
    pub state: TxState,
    /// ARC `extraInfo` (the reason for `REJECTED`, node messages), if not empty.
    pub extra_info: Option<String>,
    /// ARC `timestamp` (RFC 3339, the broadcaster's clock), if given.
    pub timestamp: Option<String>,
}

/// A broadcast the caller can build on: the broadcaster has the transaction.
///
/// Broadcasting is idempotent: submitting a transaction the broadcaster
/// already has (in any accepted state, `SEEN_ON_NETWORK` or `MINED`) is
/// [`Accepted`](Self::Accepted) or [`AlreadyKnown`](Self::AlreadyKnown), never
/// an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// The broadcaster holds the transaction: its state is one of `QUEUED` …
    /// `ACCEPTED_BY_NETWORK`, `SEEN_ON_NETWORK`, `MINED`, or
    /// `MINED_IN_STALE_BLOCK` (mined before, being re-broadcast after a reorg).
    Accepted(TxStatus),
    /// The broadcaster or its node refused the submission only because it
    /// already has the transaction ("already known", `txn-already-known`,
    /// `txn-already-in-mempool`), without saying in which state: query
    /// [`Broadcaster::status`] for it.
    AlreadyKnown {
        /// The transaction.
        txid: Txid,
        /// The broadcaster's words.
        detail: String,
    },
    /// HTTP 200 with `DOUBLE_SPEND_ATTEMPTED`: the transaction is valid but
    /// conflicts with others (`state` carries `competing_txs`); whichever is
    /// mined wins. The saga inspects the competitors (a counterparty's claim
    /// or refund).
    DoubleSpendAttempted(TxStatus),
}

impl BroadcastOutcome {
    /// The transaction the outcome is about.
    pub fn txid(&self) -> Txid {
        match self {
            BroadcastOutcome::Accepted(s) | BroadcastOutcome::DoubleSpendAttempted(s) => s.txid,
            BroadcastOutcome::AlreadyKnown { txid, .. } => *txid,
        }
    }

    /// True for [`Accepted`](Self::Accepted) and [`AlreadyKnown`](Self::AlreadyKnown).
    pub fn is_success(&self) -> bool {
        !matches!(self, BroadcastOutcome::DoubleSpendAttempted(_))
    }

    /// The competing txids of a double spend; empty otherwise.
    pub fn competing_txs(&self) -> &[Txid] {
        match self {
            BroadcastOutcome::DoubleSpendAttempted(TxStatus {
                state: TxState::DoubleSpendAttempted { competing_txs },
                ..
            }) => competing_txs,
            _ => &[],
        }
    }
}

/// An ARC error status code (RFC 7807 `status`, `bsv-formats.md` §10.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArcErrorCode {
    /// 400: malformed request or body, bad header value, unknown `X-WaitFor`,
    /// `X-MaxTimeout` above 30.
    BadRequest,
    /// 401: authentication failed (API key).
    Unauthorized,
    /// 404: unknown transaction or path.
    NotFound,
    /// 409: unclassified failure (ARC "Generic error"; chainsim also uses it
    /// for a non-final transaction, with `extraInfo` naming the height).
    Generic,
    /// 422: unprocessable entity (RFC 7807; in ARC's OpenAPI only).
    Unprocessable,
    /// 460: not extended format and the parents could not be found.
    TxFormat,
    /// 461: script validation failed.
    UnlockingScripts,
    /// 462: inputs missing or spent, no inputs, coinbase input, input sum too high.
    Inputs,
    /// 463: malformed transaction (too small, sigops, non-push unlocking script,
    /// undecodable BEEF).
    Malformed,
    /// 464: outputs invalid (none, non-zero OP_RETURN value, above max).
    Outputs,
    /// 465: fee too low.
    Fees,
    /// 466: a conflicting transaction is already in the block template.
    Conflict,
    /// 467 (ARC OpenAPI) and 475 (ARC code): a mined ancestor is missing from
    /// the BEEF's BUMPs. ARC documents one and sends the other (§10.6).
    MinedAncestorsNotFound,
    /// 468: BEEF structurally invalid ("Invalid BUMPs").
    InvalidBumps,
    /// 469: Merkle roots could not be verified (tracker error or timeout):
    /// the only transient ARC code.
    MerkleRootsNotVerified,
    /// 471: an input is frozen by policy.
    FrozenPolicy,
    /// 472: an input is frozen by consensus.
    FrozenConsensus,
    /// 473: cumulative fee validation failed.
    CumulativeFees,
    /// 474: transaction size validation failed.
    TxSize,
    /// Any other HTTP error status (5xx, 408, 429 and unlisted 4xx).
    Other(u16),
}

impl ArcErrorCode {
    /// The code for an HTTP status (`status >= 400`).
    pub fn from_http(status: u16) -> ArcErrorCode {
        match status {
            400 => ArcErrorCode::BadRequest,
            401 => ArcErrorCode::Unauthorized,
            404 => ArcErrorCode::NotFound,
            409 => ArcErrorCode::Generic,
            422 => ArcErrorCode::Unprocessable,
            460 => ArcErrorCode::TxFormat,
            461 => ArcErrorCode::UnlockingScripts,
            462 => ArcErrorCode::Inputs,
            463 => ArcErrorCode::Malformed,
            464 => ArcErrorCode::Outputs,
            465 => ArcErrorCode::Fees,
            466 => ArcErrorCode::Conflict,
            467 | 475 => ArcErrorCode::MinedAncestorsNotFound,
            468 => ArcErrorCode::InvalidBumps,
            469 => ArcErrorCode::MerkleRootsNotVerified,
            471 => ArcErrorCode::FrozenPolicy,
            472 => ArcErrorCode::FrozenConsensus,
            473 => ArcErrorCode::CumulativeFees,
            474 => ArcErrorCode::TxSize,
            other => ArcErrorCode::Other(other),
        }
    }

    /// Whether the same request may succeed later: 469, 408, 429 and 5xx.
    /// Everything else is permanent and never retried.
    pub fn is_transient(&self) -> bool {
        match self {
            ArcErrorCode::MerkleRootsNotVerified => true,
            ArcErrorCode::Other(s) => *s == 408 || *s == 429 || (500..600).contains(s),
            _ => false,
        }
    }
}

/// What refused a transaction permanently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    /// HTTP 200 with `txStatus` `REJECTED` (§10.5).
    StatusRejected,
    /// An RFC 7807 error response (§10.6).
    Http {
        /// The code as a type (467 and 475 are one variant).
        code: ArcErrorCode,
        /// The exact HTTP status.
        status: u16,
    },
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectCode::StatusRejected => f.write_str("txStatus REJECTED"),
            RejectCode::Http { code, status } => write!(f, "HTTP {status} ({code:?})"),
        }
    }
}

/// Why a broadcast or status query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// Permanent: the broadcaster refused, for the transaction's sake (460–475
    /// but 469, `REJECTED`) or the request's (400, 401, 404, 409, 422). Never
    /// retried; sending the same bytes again gets the same answer.
    #[error("rejected{}: {code}: {detail}", txid.map(|t| format!(" {t}")).unwrap_or_default())]
    Rejected {
        /// The transaction, when known (`None` for a refused batch as a whole).
        txid: Option<Txid>,
        /// Which rule refused it.
        code: RejectCode,
        /// RFC 7807 `title`/`detail` and `extraInfo` (or the REJECTED status's
        /// `extraInfo`), joined.
        detail: String,
    },
    /// HTTP 200 with `SEEN_IN_ORPHAN_MEMPOOL`: a node holds the transaction
    /// but lacks a parent. Broadcast the parents, then this again.
    #[error("{txid} is in the orphan mempool (a parent is missing): {detail}")]
    Orphaned {
        /// The transaction.
        txid: Txid,
        /// ARC `extraInfo`.
        detail: String,
    },
    /// Transient faults (469, 5xx, timeouts, connection errors) lasted through
    /// every attempt the retry policy allows. Try again later.
    #[error("broadcaster unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Requests made.
        attempts: u32,
        /// The last fault.
        last: ServiceFault,
    },
    /// The answer could not be understood (bad JSON, a field of the wrong
    /// shape, another txid, a MINED status without a valid Merkle path, an
    /// oversized body). Whether the broadcaster took the transaction is
    /// unknown: query its status.
    #[error("malformed broadcaster response: {detail}")]
    MalformedResponse {
        /// What was wrong, and where.
        detail: String,
    },
}

impl BroadcastError {
    /// Whether trying again later may succeed ([`Unavailable`](Self::Unavailable),
    /// [`Orphaned`](Self::Orphaned)).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BroadcastError::Unavailable { .. } | BroadcastError::Orphaned { .. }
        )
    }
}

/// Submits transactions to one chain and reports their status (ARC API,
/// `bsv-formats.md` §10; DESIGN.md §6).
///
/// Contract:
/// - idempotent: submitting a transaction again is success
///   ([`BroadcastOutcome::Accepted`] with its current state, or
///   [`BroadcastOutcome::AlreadyKnown`]), so a driver re-running a persisted
///   broadcast after a restart is harmless;
/// - transient faults are retried inside the implementation (capped
///   exponential backoff); rejections never are;
/// - a double spend is an outcome, not an error: the caller must look at the
///   competitors.
#[async_trait]
pub trait Broadcaster: Send + Sync {
    /// Submits one transaction in Extended Format (BRC-30).
    ///
    /// # Errors
    /// [`BroadcastError`]: `Rejected` (permanent), `Orphaned`, `Unavailable`
    /// (transient, after retries), `MalformedResponse`.
    async fn broadcast(&self, ef: &EfTransaction) -> Result<BroadcastOutcome, BroadcastError>;

    /// Submits several transactions (parents before children) in one request
    /// where the service allows it. The result has one entry per input, in
    /// input order.
    ///
    /// # Errors
    /// The outer error is for the request as a whole (the batch was refused
    /// or never answered); per-transaction errors are in the entries. The
    /// default implementation broadcasts one by one and stops at nothing.
    async fn broadcast_batch(
        &self,
        efs: &[EfTransaction],
    ) -> Result<Vec<Result<BroadcastOutcome, BroadcastError>>, BroadcastError> {
        let mut out = Vec::with_capacity(efs.len());
        for ef in efs {
            out.push(self.broadcast(ef).await);
        }
        Ok(out)
    }

    /// The current status of a transaction; `Ok(None)` when the broadcaster
    /// does not know it (ARC 404).
    ///
    /// # Errors
    /// [`BroadcastError::Unavailable`], [`BroadcastError::Rejected`] (401 and
    /// other refusals of the query), [`BroadcastError::MalformedResponse`].
    async fn status(&self, txid: &Txid) -> Result<Option<TxStatus>, BroadcastError>;
}

// ---------------------------------------------------------------------------
// Chain tracking

/// Why a chain tracker could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    /// Transient faults lasted through every attempt. Try again later.
    #[error("chain tracker unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Requests made.
        attempts: u32,
        /// The last fault.
        last: ServiceFault,
    },
    /// The service refused the request (4xx other than 408/429: bad API key,
    /// wrong path).
    #[error("chain tracker refused the request: HTTP {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What it said.
        detail: String,
    },
    /// The answer could not be understood.
    #[error("malformed chain tracker response: {detail}")]
    MalformedResponse {
        /// What was wrong, and where.
        detail: String,
    },
}

/// Answers the two questions SPV asks about a chain (`bsv-formats.md` §11),
/// asynchronously and with errors — the async counterpart of
/// `bsv_format::spv::ChainTracker`, whose infallible answers suit files and
/// in-memory maps but would turn an unreachable service into "not confirmed".
///
/// A root is *valid for a height* only when the block at that height on the
/// current best chain has it; an implementation must not answer `true` for a
/// root it cannot confirm (a side chain, a header it has not seen). Negative
/// answers may change as headers arrive; positive ones may be cached.
#[async_trait]
pub trait ChainTracker: Send + Sync {
    /// Whether `root` (internal byte order) is the Merkle root of the block at
    /// `height` on the best chain.
    ///
    /// # Errors
    /// [`TrackerError`] when the service cannot answer.
    async fn is_valid_root_for_height(
        &self,
        root: &Hash256,
        height: u32,
    ) -> Result<bool, TrackerError>;

    /// Height of the best chain's tip.
    ///
    /// # Errors
    /// [`TrackerError`] when the service cannot answer.
    async fn current_height(&self) -> Result<u32, TrackerError>;

    /// Answers several claims at once (BRC-62 step 3: batch the roots of one
    /// BEEF); `result[i]` answers `claims[i]`. The default asks one by one;
    /// HTTP implementations send one request.
    ///
    /// # Errors
    /// [`TrackerError`] when the service cannot answer.
    async fn confirm_roots(&self, claims: &[RootClaim]) -> Result<Vec<bool>, TrackerError> {
        let mut out = Vec::with_capacity(claims.len());
        for claim in claims {
            out.push(
                self.is_valid_root_for_height(&claim.root, claim.height)
                    .await?,
            );
        }
        Ok(out)
    }
}

/// Why [`verify_beef`] produced no [`VerifiedBeef`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyBeefError {
    /// The BEEF breaks an SPV rule (the rule, transaction and input are named).
    #[error(transparent)]
    Invalid(#[from] VerifyError),
    /// The chain tracker could not answer; the BEEF may be valid.
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    /// The verification task on the blocking pool did not finish (it panicked,
    /// or the runtime is shutting down).
    #[error("SPV verification task did not finish: {detail}")]
    Interrupted {
        /// The join error.
        detail: String,
    },
}

/// SPV-verifies `beef` against an async chain tracker, with the sans-io
/// split of `bsv_format::spv`: structure and amounts
/// (`Beef::spv_request`), then all root claims in one
/// [`ChainTracker::confirm_roots`] call alongside
/// [`ChainTracker::current_height`], then `SpvRequest::finish` (roots,
/// coinbase maturity, scripts). The two CPU-bound steps run on tokio's
/// blocking pool so they never stall the runtime's workers.
///
/// # Errors
/// [`VerifyBeefError::Invalid`] for any SPV rule (`VerifyError`),
/// [`VerifyBeefError::Tracker`] when the tracker cannot answer,
/// [`VerifyBeefError::Interrupted`] if a blocking task did not finish.
pub async fn verify_beef(
    tracker: &dyn ChainTracker,
    beef: Beef,
    opts: &VerifyOptions,
) -> Result<VerifiedBeef, VerifyBeefError> {
    let opts = *opts;
    let request = tokio::task::spawn_blocking(move || beef.spv_request(&opts))
        .await
        .map_err(|e| VerifyBeefError::Interrupted {
            detail: e.to_string(),
        })??;
    let (answers, tip) = if request.claims().is_empty() {
        // Nothing to confirm; the tip still judges coinbase maturity.
        (Vec::new(), tracker.current_height().await?)
    } else {
        let (answers, tip) = tokio::join!(
            tracker.confirm_roots(request.claims()),
            tracker.current_height()
        );
        (answers?, tip?)
    };
    tokio::task::spawn_blocking(move || request.finish(&answers, tip))
        .await
        .map_err(|e| VerifyBeefError::Interrupted {
            detail: e.to_string(),
        })?
        .map_err(VerifyBeefError::Invalid)
}

// ---------------------------------------------------------------------------
// Spends

/// The input that spends an outpoint: transaction `txid`, input index `vin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpendingInput {
    /// The spending transaction.
    pub txid: Txid,
    /// Index of the spending input in it (0-based).
    pub vin: u32,
}

/// Why a spend watcher could not answer. Never read it as "unspent".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpendWatchError {
    /// Transient faults lasted through every attempt. Try again later.
    #[error("spend watcher unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Requests made.
        attempts: u32,
        /// The last fault.
        last: ServiceFault,
    },
    /// The service refused the request (4xx other than 404, 408, 429).
    #[error("spend watcher refused the request: HTTP {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What it said.
        detail: String,
    },
    /// The answer could not be understood.
    #[error("malformed spend watcher response: {detail}")]
    MalformedResponse {
        /// What was wrong, and where.
        detail: String,
    },
}

/// Answers "which transaction spent outpoint X, if any?" on one chain.
///
/// The saga's safety rests on it: a gateway learns the preimage `s` from the
/// counterparty's claim of *its own* reservation by watching that outpoint
/// (DESIGN.md §3.3 step 3), and before refunding it must know whether the
/// reservation was already claimed (step 5). A gateway therefore **refuses to
/// start** unless every chain it trades on has a `SpendWatcher` configured;
/// there is no "no watcher" mode.
///
/// # Contract
/// - **What "spent" means.** `Some(SpendingInput { txid, vin })` when a
///   transaction whose input `vin` spends `outpoint` is known to the chain's
///   network: accepted into a node's mempool *or* mined in a block of the best
///   chain. Waiting for a block would give the counterparty the confirmation
///   delay for free; the caller decides how deep a spend must be before it
///   acts on finality.
/// - **`None` means "no spend seen"**: the output is unspent, or does not
///   exist, or its spend has not reached this service yet. It is never proof
///   that no spend exists; existence of the output is checked elsewhere (the
///   SPV-verified reservation).
/// - **Consistency.** Answers may lag the network by the service's
///   propagation delay; the lag must be bounded and small against `w`, the
///   time the protocol allows to notice a spend (DESIGN.md §3.2, C3). Once a
///   spend is reported, later answers report it (or, after a double spend or
///   a reorganisation, the spend that replaced it) — a reported spend only
///   disappears if it left both mempool and chain. Callers re-query until the
///   spend has the confirmation depth they need.
/// - **Errors are not answers.** [`SpendWatchError`] means "unknown"; the
///   saga retries and never treats it as unspent.
/// - The spending transaction itself (to read `s` from input `vin`'s
///   unlocking script) is fetched separately, by txid.
///
/// # An overlay-based implementation
/// An overlay service (a topic manager admitting every transaction that
/// spends an output of the escrow template, with a lookup service over them)
/// satisfies the contract if it: admits transactions from the mempool, not
/// only from blocks (or documents the extra lag against `w`); indexes each
/// admitted transaction by every outpoint it spends, answering with
/// `(txid, vin)`; keeps the index across its own restarts, so a spend that
/// arrived while a gateway was down is still reported; follows
/// reorganisations and double spends by replacing the recorded spender rather
/// than forgetting it; and serves one chain per instance (the gateway holds
/// one watcher per chain).
#[async_trait]
pub trait SpendWatcher: Send + Sync {
    /// The input that spends `outpoint`, if the network has seen one.
    ///
    /// # Errors
    /// [`SpendWatchError`] when the service cannot answer.
    async fn spent_by(&self, outpoint: &Outpoint)
        -> Result<Option<SpendingInput>, SpendWatchError>;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bsv_format::beef::BeefVersion;
    use bsv_format::{Script, Transaction, TxIn, TxOut};

    use super::*;

    #[test]
    fn error_codes_classify_as_the_arc_docs_say() {
        let transient: Vec<u16> = (400..600)
            .filter(|s| ArcErrorCode::from_http(*s).is_transient())
            .collect();
        let mut expected = vec![408, 429, 469];
        expected.extend(500..600);
        assert_eq!(transient, expected);
        assert_eq!(ArcErrorCode::from_http(467), ArcErrorCode::from_http(475));
        assert_eq!(ArcErrorCode::from_http(470), ArcErrorCode::Other(470));
    }

    #[test]
    fn states_are_ordered_by_their_metamorph_codes() {
        let states = [
            TxState::Unknown,
            TxState::Queued,
            TxState::Received,
            TxState::Stored,
            TxState::AnnouncedToNetwork,
            TxState::RequestedByNetwork,
            TxState::SentToNetwork,
            TxState::AcceptedByNetwork,
            TxState::SeenInOrphanMempool,
            TxState::SeenOnNetwork,
            TxState::DoubleSpendAttempted {
                competing_txs: vec![],
            },
            TxState::Rejected,
            TxState::MinedInStaleBlock,
        ];
        let codes: Vec<u8> = states.iter().map(TxState::code).collect();
        assert_eq!(
            codes,
            [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 115]
        );
        assert_eq!(states[9].to_string(), "SEEN_ON_NETWORK");
    }

    /// Answers `answer` for every root at tip 500, counting calls.
    struct Fixed {
        answer: bool,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl ChainTracker for Fixed {
        async fn is_valid_root_for_height(
            &self,
            _: &Hash256,
            _: u32,
        ) -> Result<bool, TrackerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(self.answer)
        }
        async fn current_height(&self) -> Result<u32, TrackerError> {
            Ok(500)
        }
    }

    /// A BEEF with one transaction proven in a two-transaction block at 400.
    fn proven_beef() -> (Beef, Txid) {
        let tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(Txid([3; 32]), 0),
                unlocking_script: Script::from_bytes(vec![0x51]),
                sequence: 0xffff_ffff,
            }],
            outputs: vec![TxOut {
                satoshis: 1,
                locking_script: Script::from_bytes(vec![0x51]),
            }],
            lock_time: 0,
        };
        let txid = tx.txid();
        let mut beef = Beef::new(BeefVersion::V1);
        beef.add_bump(MerklePath::from_block(400, &[Txid([1; 32]), txid], &[1]).unwrap());
        beef.add_transaction(tx);
        (beef, txid)
    }

    #[tokio::test]
    async fn verify_beef_asks_the_tracker_and_reports_its_verdict() {
        let (beef, txid) = proven_beef();
        let yes = Fixed {
            answer: true,
            calls: AtomicUsize::new(0),
        };
        let verified = verify_beef(&yes, beef.clone(), &VerifyOptions::default())
            .await
            .unwrap();
        assert_eq!((verified.subject(), verified.tip_height()), (txid, 500));
        assert_eq!(yes.calls.load(Ordering::SeqCst), 1);
        let no = Fixed {
            answer: false,
            calls: AtomicUsize::new(0),
        };
        let root = beef.bumps()[0].root();
        assert_eq!(
            verify_beef(&no, beef, &VerifyOptions::default())
                .await
                .unwrap_err(),
            VerifyBeefError::Invalid(VerifyError::RootNotConfirmed { height: 400, root })
        );
    }
}
