//! The saga driver's ports besides the chain ones ([`crate::chain`]) and the
//! event log ([`crate::log`]): the counterparty, the notary, the clock, where
//! spending transactions are fetched from, and where a saga's keys and
//! policy come from.

use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::{Transaction, Txid};
use saga_core::saga::{NotaryAnswer, PeerReply, PeerRequest, SagaContext};
use saga_core::terms::{Role, SagaId, Terms, TermsSignature};
use saga_core::UnixTime;

use crate::chain::{Broadcaster, ChainTracker, ServiceFault, SpendWatcher};

/// Why a peer call has no answer. Every variant is "unknown outcome": the
/// driver counts it against the retry budget and tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// No connection, a time-out, or a transport error.
    #[error("peer {peer} unreachable: {detail}")]
    Unreachable {
        /// The peer's SPIFFE ID.
        peer: String,
        /// What failed.
        detail: String,
    },
    /// The peer answered with an error that is not a protocol reply
    /// (e.g. an internal error, or it does not know the saga yet).
    #[error("peer {peer} failed the call: {detail}")]
    Failed {
        /// The peer's SPIFFE ID.
        peer: String,
        /// Its message.
        detail: String,
    },
}

/// The counterparty's gateway (gRPC over mTLS in `src/`; in memory in tests).
#[async_trait]
pub trait PeerTransport: Send + Sync {
    /// Sends `request` for `saga_id` to the gateway `peer` (SPIFFE ID) and
    /// returns its reply. Calls carry `(saga id, message kind)`, so a retried
    /// call gets the original answer.
    ///
    /// # Errors
    /// [`PeerError`]: the outcome is unknown.
    async fn send(
        &self,
        peer: &str,
        saga_id: SagaId,
        request: PeerRequest,
    ) -> Result<PeerReply, PeerError>;
}

/// What a notary is asked to approve (DESIGN.md §3.3 step 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotaryRequest {
    /// The notary's SPIFFE ID.
    pub notary: String,
    /// The agreed terms.
    pub terms: Terms,
    /// Buyer's then seller's signature.
    pub signatures: [TermsSignature; 2],
    /// The payment reservation's BEEF bytes.
    pub payment_beef: Vec<u8>,
    /// The delivery reservation's BEEF bytes.
    pub delivery_beef: Vec<u8>,
}

/// Why the notary has no answer (unknown outcome; retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("notary unreachable: {detail}")]
pub struct NotaryError {
    /// What failed.
    pub detail: String,
}

/// A notary.
#[async_trait]
pub trait Notary: Send + Sync {
    /// Asks for approval.
    ///
    /// # Errors
    /// [`NotaryError`] when no answer was obtained.
    async fn approve(&self, request: NotaryRequest) -> Result<NotaryAnswer, NotaryError>;
}

/// Why a transaction source could not answer. Never read it as "unknown
/// transaction": the caller asks again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionSourceError {
    /// Transient faults lasted through every attempt.
    #[error("transaction source unavailable after {attempts} attempts: {last}")]
    Unavailable {
        /// Requests made.
        attempts: u32,
        /// The last fault.
        last: ServiceFault,
    },
    /// The service refused the request (4xx other than 404, 408, 429).
    #[error("transaction source refused the request: HTTP {status}: {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What it said.
        detail: String,
    },
    /// The answer is not a transaction (not hex, does not decode, trailing
    /// bytes, too large).
    #[error("malformed transaction source response: {detail}")]
    MalformedResponse {
        /// What was wrong, and where.
        detail: String,
    },
    /// The service answered with a transaction whose txid is not the one
    /// asked for (a broken or lying service).
    #[error("asked for transaction {asked}, got {got}")]
    WrongTransaction {
        /// The txid asked for.
        asked: Txid,
        /// The txid of what came back.
        got: Txid,
    },
}

/// Fetches a transaction by txid (mempool or chain), to read `s` out of a
/// claim the [`SpendWatcher`] reported.
///
/// # Contract
/// `Ok(Some(tx))` only with `tx.txid()` equal to the txid asked for
/// (implementations check it: [`TransactionSourceError::WrongTransaction`]);
/// `Ok(None)` when the service does not know the transaction (not in its
/// mempool or chain, or not yet): like the spend watcher's `None`, never
/// proof that it does not exist. Errors mean "no answer".
#[async_trait]
pub trait TransactionSource: Send + Sync {
    /// The transaction with `txid`, or `None` if the service does not know it.
    ///
    /// # Errors
    /// [`TransactionSourceError`] when the service cannot answer.
    async fn transaction(&self, txid: &Txid)
        -> Result<Option<Transaction>, TransactionSourceError>;
}

/// The UTC clock (manual in tests).
pub trait Clock: Send + Sync {
    /// Now, whole seconds since the UNIX epoch.
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UnixTime(secs)
    }
}

/// Why a saga's context is unavailable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saga {saga_id}: context unavailable: {detail}")]
pub struct ContextError {
    /// The saga.
    pub saga_id: SagaId,
    /// Why (missing keys, unknown policy).
    pub detail: String,
}

/// Where a saga's keys and policy come from (the gateway's config and the
/// store's `secrets` tree).
#[async_trait]
pub trait ContextSource: Send + Sync {
    /// The context of saga `saga_id` in `role` on `terms` (our escrow key
    /// on a leg is our key on that leg's chain; the buyer's preimage is
    /// the saga's secret).
    ///
    /// # Errors
    /// [`ContextError`].
    async fn context(
        &self,
        saga_id: SagaId,
        role: Role,
        terms: &Terms,
    ) -> Result<SagaContext, ContextError>;
}

/// One chain's ports.
#[derive(Clone)]
pub struct ChainPorts {
    /// Submits our transactions.
    pub broadcaster: Arc<dyn Broadcaster>,
    /// Tips and Merkle roots.
    pub tracker: Arc<dyn ChainTracker>,
    /// Who spent an outpoint.
    pub spends: Arc<dyn SpendWatcher>,
    /// Spending transactions by txid.
    pub transactions: Arc<dyn TransactionSource>,
}
