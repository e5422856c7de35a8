//! [`ArcClient`]: a `Broadcaster` over the ARC HTTP API (`bsv-formats.md`
//! §10, ARC `doc/arc.json`, `pkg/api/status.go`, `internal/api/handler`).
//!
//! | call | request | answer |
//! | --- | --- | --- |
//! | `broadcast` | `POST /v1/tx`, EF bytes | 200 `TransactionResponse`, or an RFC 7807 error with its code |
//! | `broadcast_batch` | `POST /v1/txs`, EF bytes concatenated | 200 and an array mixing responses and errors, or one error for the whole request |
//! | `status` | `GET /v1/tx/{txid}` | 200 `TransactionStatus`, 404 unknown |
//!
//! **Body encoding (a decision).** Transactions are sent as
//! `application/octet-stream`: the EF bytes as they are (concatenated for a
//! batch, which ARC parses one after the other). ARC accepts this alongside
//! hex text and `{"rawTx": hex}` JSON (§10.2); raw bytes are half the size of
//! hex, need no escaping, and are exactly what the EF codec writes.
//!
//! **Mapping** (every `txStatus` of §10.5, every code of §10.6):
//! - 200 with `QUEUED` … `ACCEPTED_BY_NETWORK`, `SEEN_ON_NETWORK`, `MINED`,
//!   `MINED_IN_STALE_BLOCK` → [`BroadcastOutcome::Accepted`]; ARC answers a
//!   resubmission with the transaction's current state, so this is also the
//!   idempotent "already known" path;
//! - 200 with `DOUBLE_SPEND_ATTEMPTED` → [`BroadcastOutcome::DoubleSpendAttempted`]
//!   with `competingTxs`;
//! - 200 with `REJECTED` → [`BroadcastError::Rejected`] (`StatusRejected`);
//!   `SEEN_IN_ORPHAN_MEMPOOL` → [`BroadcastError::Orphaned`]; `UNKNOWN` is
//!   inconclusive and retried;
//! - an error whose `title`, `detail` or `extraInfo` says the transaction is
//!   already known (`ALREADY_KNOWN` phrases: the node's `txn-already-known`,
//!   `txn-already-in-mempool`, …) → [`BroadcastOutcome::AlreadyKnown`];
//! - 469, 408, 429, 5xx, timeouts and connection faults → retried, then
//!   [`BroadcastError::Unavailable`];
//! - every other status (400, 401, 404, 409, 422, 460–468, 470–475, …) →
//!   [`BroadcastError::Rejected`] with the code, never retried;
//! - a body that is not the documented JSON, names another txid, or reports
//!   `MINED` without a Merkle path that proves the transaction at
//!   `blockHeight` → [`BroadcastError::MalformedResponse`].
//!
//! Empty strings stand for "absent" in ARC answers (`"blockHash": ""` before
//! a transaction is mined), and are read that way.
//!
//! # Layout
//! - [`WaitFor`], [`ArcConfig`], [`ArcClient`] and its `Broadcaster` impl.
//! - Reading answers: `Wire`, `tx_status`, `classify_response`,
//!   `classify_error`, batch matching (private).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bsv_format::bump::MerklePath;
use bsv_format::ef::EfTransaction;
use bsv_format::{Hash256, Txid};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use saga_runtime::{
    ArcErrorCode, BlockInclusion, BroadcastError, BroadcastOutcome, Broadcaster, RejectCode,
    ServiceFault, TxState, TxStatus,
};
use serde::Deserialize;

use super::{
    base_url, bearer, excerpt, http_client, send, with_retries, ChainConfigError, RetryPolicy,
    SendError, Step,
};

/// Largest response body read, bytes (a batch answer of thousands of
/// transactions fits many times over).
const MAX_BODY_BYTES: usize = 16 << 20;

/// Phrases (lower case) by which a broadcaster or its node says it already
/// has a transaction: ARC's own, SV Node's reject reasons
/// (`txn-already-known`, `txn-already-in-mempool`) and common variants.
pub const ALREADY_KNOWN: &[&str] = &[
    "already known",
    "txn-already-known",
    "txn-already-in-mempool",
    "already in the mempool",
    "transaction already in block chain",
];

/// The statuses ARC accepts in `X-WaitFor` (§10.3): the request returns
/// when the transaction reaches it, or after `X-MaxTimeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// `QUEUED`.
    Queued,
    /// `RECEIVED`.
    Received,
    /// `STORED`.
    Stored,
    /// `ANNOUNCED_TO_NETWORK`.
    AnnouncedToNetwork,
    /// `REQUESTED_BY_NETWORK`.
    RequestedByNetwork,
    /// `SENT_TO_NETWORK`.
    SentToNetwork,
    /// `ACCEPTED_BY_NETWORK`.
    AcceptedByNetwork,
    /// `SEEN_ON_NETWORK`.
    SeenOnNetwork,
}

impl WaitFor {
    /// The header value, e.g. `"SEEN_ON_NETWORK"`.
    pub fn name(&self) -> &'static str {
        match self {
            WaitFor::Queued => "QUEUED",
            WaitFor::Received => "RECEIVED",
            WaitFor::Stored => "STORED",
            WaitFor::AnnouncedToNetwork => "ANNOUNCED_TO_NETWORK",
            WaitFor::RequestedByNetwork => "REQUESTED_BY_NETWORK",
            WaitFor::SentToNetwork => "SENT_TO_NETWORK",
            WaitFor::AcceptedByNetwork => "ACCEPTED_BY_NETWORK",
            WaitFor::SeenOnNetwork => "SEEN_ON_NETWORK",
        }
    }
}

/// Where and how to reach an ARC instance. `Debug` shows no API key.
#[derive(Clone)]
pub struct ArcConfig {
    /// Base URL, e.g. `https://arc.taal.com` or chainsim's
    /// `http://127.0.0.1:PORT`; `/v1/tx`, `/v1/txs`, `/v1/tx/{txid}` are appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// `X-WaitFor`: the status to wait for before ARC answers.
    pub wait_for: Option<WaitFor>,
    /// `X-MaxTimeout`, seconds (1..=30): how long ARC waits for `wait_for`.
    pub max_timeout_secs: Option<u32>,
    /// Timeout of one request, from connecting to the last body byte; must
    /// exceed `max_timeout_secs`.
    pub request_timeout: Duration,
    /// Retries of transient faults.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for ArcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArcConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("wait_for", &self.wait_for)
            .field("max_timeout_secs", &self.max_timeout_secs)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl ArcConfig {
    /// Defaults: no key, no `X-WaitFor` (ARC's default wait), 30 s request
    /// timeout, [`RetryPolicy::default`].
    pub fn new(base_url: impl Into<String>) -> Self {
        ArcConfig {
            base_url: base_url.into(),
            api_key: None,
            wait_for: None,
            max_timeout_secs: None,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// A [`Broadcaster`] over ARC. Cheap to share (`Arc<ArcClient>`); requests
/// run concurrently over one connection pool.
#[derive(Debug, Clone)]
pub struct ArcClient {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
    config: ArcConfig,
}

impl ArcClient {
    /// Checks `config` and builds the client (no request is made).
    ///
    /// # Errors
    /// [`ChainConfigError`]: bad URL or API key, retry policy, `X-MaxTimeout`
    /// outside 1..=30 or not below the request timeout, TLS set-up.
    pub fn new(config: ArcConfig) -> Result<ArcClient, ChainConfigError> {
        config.retry.check()?;
        if let Some(secs) = config.max_timeout_secs {
            if !(1..=30).contains(&secs) {
                return Err(ChainConfigError::MaxTimeoutOutOfRange { secs });
            }
            if config.request_timeout <= Duration::from_secs(secs.into()) {
                return Err(ChainConfigError::TimeoutBelowMaxTimeout {
                    timeout: config.request_timeout,
                    max_timeout_secs: secs,
                });
            }
        }
        Ok(ArcClient {
            http: http_client()?,
            base: base_url(&config.base_url)?,
            auth: bearer(config.api_key.as_deref())?,
            config,
        })
    }

    /// A request with the headers every call carries.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.config.request_timeout);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req
    }

    /// A submission: EF bytes plus the wait options.
    fn post(&self, path: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
        let mut req = self
            .request(reqwest::Method::POST, path)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(w) = self.config.wait_for {
            req = req.header("X-WaitFor", w.name());
        }
        if let Some(secs) = self.config.max_timeout_secs {
            req = req.header("X-MaxTimeout", secs.to_string());
        }
        req
    }

    /// One round of `POST /v1/txs` for the transactions at `pending`:
    /// per-transaction verdicts, or one verdict for the whole request.
    async fn batch_round(
        &self,
        efs: &[EfTransaction],
        pending: &[usize],
    ) -> Step<Vec<ItemStep>, BroadcastError> {
        let mut body = Vec::new();
        for &i in pending {
            efs[i].write(&mut body);
        }
        let reply = match send(self.post("/v1/txs", body), MAX_BODY_BYTES).await {
            Ok(reply) => reply,
            Err(SendError::Fault(fault)) => return Step::Retry(fault),
            Err(SendError::Oversized { limit }) => return Step::Done(Err(oversized(limit))),
        };
        let txids: Vec<Txid> = pending.iter().map(|&i| efs[i].txid()).collect();
        if !(200..300).contains(&reply.status) {
            // One error for the whole request; with a single transaction it
            // is that transaction's.
            let only = if txids.len() == 1 {
                txids.first().copied()
            } else {
                None
            };
            return match (classify_error(reply.status, &reply.body, only), only) {
                (Step::Retry(fault), _) => Step::Retry(fault),
                (Step::Done(Err(e)), None) => Step::Done(Err(e)),
                (Step::Done(result), _) => {
                    Step::Done(Ok(vec![ItemStep::Done(result); txids.len()]))
                }
            };
        }
        match serde_json::from_slice::<Vec<Wire>>(&reply.body) {
            Ok(items) => Step::Done(Ok(match_batch(&txids, items))),
            Err(e) => Step::Done(Err(malformed(format!(
                "POST /v1/txs: not a JSON array of results: {e}"
            )))),
        }
    }
}

/// A per-transaction verdict in a batch (a [`Step`] that can be cloned).
#[derive(Debug, Clone)]
enum ItemStep {
    Done(Result<BroadcastOutcome, BroadcastError>),
    Retry(ServiceFault),
}

impl From<Step<BroadcastOutcome, BroadcastError>> for ItemStep {
    fn from(step: Step<BroadcastOutcome, BroadcastError>) -> Self {
        match step {
            Step::Done(r) => ItemStep::Done(r),
            Step::Retry(f) => ItemStep::Retry(f),
        }
    }
}

#[async_trait]
impl Broadcaster for ArcClient {
    async fn broadcast(&self, ef: &EfTransaction) -> Result<BroadcastOutcome, BroadcastError> {
        let txid = ef.txid();
        let body = &ef.to_bytes();
        with_retries(
            &self.config.retry,
            || async move {
                match send(self.post("/v1/tx", body.clone()), MAX_BODY_BYTES).await {
                    Ok(reply) => classify_response(reply.status, &reply.body, txid),
                    Err(SendError::Fault(fault)) => Step::Retry(fault),
                    Err(SendError::Oversized { limit }) => Step::Done(Err(oversized(limit))),
                }
            },
            |attempts, last| BroadcastError::Unavailable { attempts, last },
        )
        .await
    }

    /// One `POST /v1/txs` for all; transactions whose answer is transient are
    /// sent again (alone with the other transient ones) under the retry
    /// policy. The outer error is returned only while no transaction has an
    /// answer of its own; after that, a failing round ends each remaining
    /// transaction with that error.
    async fn broadcast_batch(
        &self,
        efs: &[EfTransaction],
    ) -> Result<Vec<Result<BroadcastOutcome, BroadcastError>>, BroadcastError> {
        let mut results: Vec<Option<Result<BroadcastOutcome, BroadcastError>>> =
            vec![None; efs.len()];
        let mut pending: Vec<usize> = (0..efs.len()).collect();
        let mut round = 0u32;
        while !pending.is_empty() {
            round += 1;
            let last_round = round >= self.config.retry.attempts;
            let answered = results.iter().any(Option::is_some);
            let mut still = Vec::new();
            match self.batch_round(efs, &pending).await {
                Step::Done(Ok(steps)) => {
                    for (&i, step) in pending.iter().zip(steps) {
                        match step {
                            ItemStep::Done(r) => results[i] = Some(r),
                            ItemStep::Retry(fault) if last_round => {
                                results[i] = Some(Err(BroadcastError::Unavailable {
                                    attempts: round,
                                    last: fault,
                                }))
                            }
                            ItemStep::Retry(_) => still.push(i),
                        }
                    }
                }
                Step::Done(Err(e)) if !answered => return Err(e),
                Step::Done(Err(e)) => pending
                    .iter()
                    .for_each(|&i| results[i] = Some(Err(e.clone()))),
                Step::Retry(fault) if last_round => {
                    let e = BroadcastError::Unavailable {
                        attempts: round,
                        last: fault,
                    };
                    if !answered {
                        return Err(e);
                    }
                    pending
                        .iter()
                        .for_each(|&i| results[i] = Some(Err(e.clone())));
                }
                Step::Retry(_) => still = pending.clone(),
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(self.config.retry.delay(round - 1)).await;
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(malformed("no answer recorded for a transaction".into())))
            })
            .collect())
    }

    async fn status(&self, txid: &Txid) -> Result<Option<TxStatus>, BroadcastError> {
        let txid = *txid;
        let path = &format!("/v1/tx/{txid}");
        with_retries(
            &self.config.retry,
            || async move {
                let reply =
                    match send(self.request(reqwest::Method::GET, path), MAX_BODY_BYTES).await {
                        Ok(reply) => reply,
                        Err(SendError::Fault(fault)) => return Step::Retry(fault),
                        Err(SendError::Oversized { limit }) => {
                            return Step::Done(Err(oversized(limit)))
                        }
                    };
                match reply.status {
                    200..=299 => Step::Done(
                        serde_json::from_slice::<Wire>(&reply.body)
                            .map_err(|e| format!("GET {path}: not a TransactionStatus object: {e}"))
                            .and_then(|wire| {
                                tx_status(&wire, Some(txid)).map_err(|e| format!("GET {path}: {e}"))
                            })
                            .map(Some)
                            .map_err(malformed),
                    ),
                    404 => Step::Done(Ok(None)),
                    status => match classify_error(status, &reply.body, Some(txid)) {
                        Step::Retry(fault) => Step::Retry(fault),
                        // "Already known" is no answer to a status query.
                        Step::Done(Ok(outcome)) => Step::Done(Err(BroadcastError::Rejected {
                            txid: Some(outcome.txid()),
                            code: RejectCode::Http {
                                code: ArcErrorCode::from_http(status),
                                status,
                            },
                            detail: error_detail(&reply.body),
                        })),
                        Step::Done(Err(e)) => Step::Done(Err(e)),
                    },
                }
            },
            |attempts, last| BroadcastError::Unavailable { attempts, last },
        )
        .await
    }
}

// ---------------------------------------------------------------------------
// Reading answers

/// Every field of ARC's `TransactionResponse`, `TransactionStatus` and RFC
/// 7807 `ErrorFields` (§10.4, §10.6); all optional, unknown fields ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    txid: Option<String>,
    tx_status: Option<String>,
    block_hash: Option<String>,
    block_height: Option<u64>,
    merkle_path: Option<String>,
    extra_info: Option<String>,
    competing_txs: Option<Vec<String>>,
    timestamp: Option<String>,
    status: Option<i64>,
    title: Option<String>,
    detail: Option<String>,
}

/// `Some(s)` unless absent or empty (ARC sends `""` for "none").
fn present(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|s| !s.is_empty())
}

fn malformed(detail: String) -> BroadcastError {
    BroadcastError::MalformedResponse { detail }
}

fn oversized(limit: usize) -> BroadcastError {
    malformed(format!("response body exceeds {limit} bytes"))
}

/// Decodes a `TransactionResponse` / `TransactionStatus` into a [`TxStatus`];
/// `expected` is the txid the answer must be about.
fn tx_status(wire: &Wire, expected: Option<Txid>) -> Result<TxStatus, String> {
    let txid_text = present(&wire.txid).ok_or("no txid")?;
    let txid = Txid::from_display_hex(txid_text).map_err(|e| format!("txid {txid_text:?}: {e}"))?;
    if let Some(expected) = expected {
        if txid != expected {
            return Err(format!("answer is about {txid}, not {expected}"));
        }
    }
    let name = present(&wire.tx_status).ok_or("no txStatus")?;
    let state = match name {
        "UNKNOWN" => TxState::Unknown,
        "QUEUED" => TxState::Queued,
        "RECEIVED" => TxState::Received,
        "STORED" => TxState::Stored,
        "ANNOUNCED_TO_NETWORK" => TxState::AnnouncedToNetwork,
        "REQUESTED_BY_NETWORK" => TxState::RequestedByNetwork,
        "SENT_TO_NETWORK" => TxState::SentToNetwork,
        "ACCEPTED_BY_NETWORK" => TxState::AcceptedByNetwork,
        "SEEN_IN_ORPHAN_MEMPOOL" => TxState::SeenInOrphanMempool,
        "SEEN_ON_NETWORK" => TxState::SeenOnNetwork,
        "DOUBLE_SPEND_ATTEMPTED" => TxState::DoubleSpendAttempted {
            competing_txs: competing_txs(wire)?,
        },
        "REJECTED" => TxState::Rejected,
        "MINED_IN_STALE_BLOCK" => TxState::MinedInStaleBlock,
        "MINED" => TxState::Mined(inclusion(wire, &txid)?),
        other => return Err(format!("unknown txStatus {other:?}")),
    };
    Ok(TxStatus {
        txid,
        state,
        extra_info: present(&wire.extra_info).map(str::to_string),
        timestamp: present(&wire.timestamp).map(str::to_string),
    })
}

fn competing_txs(wire: &Wire) -> Result<Vec<Txid>, String> {
    wire.competing_txs
        .iter()
        .flatten()
        .map(|t| Txid::from_display_hex(t).map_err(|e| format!("competingTxs entry {t:?}: {e}")))
        .collect()
}

/// `blockHeight`, `blockHash` and `merklePath` of a `MINED` answer; the path
/// must be for that height and prove `txid`.
fn inclusion(wire: &Wire, txid: &Txid) -> Result<BlockInclusion, String> {
    let height = wire
        .block_height
        .filter(|h| *h > 0)
        .ok_or("MINED without blockHeight")?;
    let height =
        u32::try_from(height).map_err(|_| format!("blockHeight {height} above u32::MAX"))?;
    let hash_text = present(&wire.block_hash).ok_or("MINED without blockHash")?;
    let hash = Hash256::from_display_hex(hash_text)
        .map_err(|e| format!("blockHash {hash_text:?}: {e}"))?;
    let path_hex = present(&wire.merkle_path).ok_or("MINED without merklePath")?;
    let bytes = hex::decode(path_hex).map_err(|e| format!("merklePath is not hex: {e}"))?;
    // Lenient offsets: real BUMPs carry extra nodes (`bsv-formats.md` §12.16);
    // the root is what SPV checks.
    let merkle_path =
        MerklePath::from_bytes_lenient(&bytes).map_err(|e| format!("merklePath: {e}"))?;
    if merkle_path.block_height() != height {
        return Err(format!(
            "merklePath is for height {}, blockHeight is {height}",
            merkle_path.block_height()
        ));
    }
    if !merkle_path.contains(txid) {
        return Err(format!("merklePath does not prove {txid}"));
    }
    Ok(BlockInclusion {
        height,
        hash,
        merkle_path,
    })
}

/// The verdict on one `TransactionResponse` (HTTP 200) about `expected`.
fn classify_tx_response(
    wire: &Wire,
    expected: Option<Txid>,
) -> Step<BroadcastOutcome, BroadcastError> {
    let status = match tx_status(wire, expected) {
        Ok(status) => status,
        Err(e) => return Step::Done(Err(malformed(e))),
    };
    match status.state {
        TxState::Unknown => Step::Retry(ServiceFault::Inconclusive {
            detail: format!("txStatus UNKNOWN for {}", status.txid),
        }),
        TxState::Queued
        | TxState::Received
        | TxState::Stored
        | TxState::AnnouncedToNetwork
        | TxState::RequestedByNetwork
        | TxState::SentToNetwork
        | TxState::AcceptedByNetwork
        | TxState::SeenOnNetwork
        | TxState::MinedInStaleBlock
        | TxState::Mined(_) => Step::Done(Ok(BroadcastOutcome::Accepted(status))),
        TxState::DoubleSpendAttempted { .. } => {
            Step::Done(Ok(BroadcastOutcome::DoubleSpendAttempted(status)))
        }
        TxState::SeenInOrphanMempool => Step::Done(Err(BroadcastError::Orphaned {
            txid: status.txid,
            detail: status.extra_info.unwrap_or_default(),
        })),
        TxState::Rejected => Step::Done(Err(BroadcastError::Rejected {
            txid: Some(status.txid),
            code: RejectCode::StatusRejected,
            detail: status.extra_info.unwrap_or_default(),
        })),
    }
}

/// The verdict on a `POST /v1/tx` answer about `txid`.
fn classify_response(
    status: u16,
    body: &[u8],
    txid: Txid,
) -> Step<BroadcastOutcome, BroadcastError> {
    match status {
        200..=299 => match serde_json::from_slice::<Wire>(body) {
            Ok(wire) => classify_tx_response(&wire, Some(txid)),
            Err(e) => Step::Done(Err(malformed(format!(
                "POST /v1/tx: not a TransactionResponse object: {e}"
            )))),
        },
        status if status >= 400 => classify_error(status, body, Some(txid)),
        status => Step::Done(Err(malformed(format!(
            "POST /v1/tx: unexpected HTTP {status}"
        )))),
    }
}

/// `title: detail (extraInfo)` of an RFC 7807 body, or the start of a body
/// that is not JSON (a proxy's error page).
fn error_detail(body: &[u8]) -> String {
    match serde_json::from_slice::<Wire>(body) {
        Ok(wire) => wire_error_detail(&wire),
        Err(_) => excerpt(body),
    }
}

fn wire_error_detail(wire: &Wire) -> String {
    let mut text = [present(&wire.title), present(&wire.detail)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    if let Some(extra) = present(&wire.extra_info) {
        if text.is_empty() {
            text = extra.to_string();
        } else {
            text = format!("{text} ({extra})");
        }
    }
    text
}

/// The verdict on an error answer (`status >= 400`), for `txid` when known.
fn classify_error(
    status: u16,
    body: &[u8],
    txid: Option<Txid>,
) -> Step<BroadcastOutcome, BroadcastError> {
    let detail = error_detail(body);
    let code = ArcErrorCode::from_http(status);
    if code.is_transient() {
        return Step::Retry(ServiceFault::Http { status, detail });
    }
    let lower = detail.to_lowercase();
    if let Some(txid) = txid {
        if ALREADY_KNOWN.iter().any(|p| lower.contains(p)) {
            return Step::Done(Ok(BroadcastOutcome::AlreadyKnown { txid, detail }));
        }
    }
    Step::Done(Err(BroadcastError::Rejected {
        txid,
        code: RejectCode::Http { code, status },
        detail,
    }))
}

/// The verdict on one element of a `/v1/txs` array about `txid`: a
/// `TransactionResponse` (has `txStatus`) or an error object (`status` ≥ 400).
fn classify_batch_item(wire: &Wire, txid: Txid) -> ItemStep {
    if present(&wire.tx_status).is_some() {
        return classify_tx_response(wire, Some(txid)).into();
    }
    match wire
        .status
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| *s >= 400)
    {
        Some(status) => {
            let detail = wire_error_detail(wire);
            let code = ArcErrorCode::from_http(status);
            if code.is_transient() {
                return ItemStep::Retry(ServiceFault::Http { status, detail });
            }
            if ALREADY_KNOWN
                .iter()
                .any(|p| detail.to_lowercase().contains(p))
            {
                return ItemStep::Done(Ok(BroadcastOutcome::AlreadyKnown { txid, detail }));
            }
            ItemStep::Done(Err(BroadcastError::Rejected {
                txid: Some(txid),
                code: RejectCode::Http { code, status },
                detail,
            }))
        }
        None => ItemStep::Done(Err(malformed(format!(
            "POST /v1/txs: an element about {txid} has neither txStatus nor an error status"
        )))),
    }
}

/// Matches the elements of a `/v1/txs` answer to the submitted `txids`. ARC
/// lists successes first and failures after (`mergeSuccessAndFailResults`),
/// so elements are matched by their `txid`; elements without one (errors
/// about a transaction ARC could not decode) go, in order, to transactions
/// still unmatched. A transaction left without an element gets a
/// `MalformedResponse`; elements about other txids are ignored.
fn match_batch(txids: &[Txid], items: Vec<Wire>) -> Vec<ItemStep> {
    let mut by_txid: HashMap<Txid, Wire> = HashMap::new();
    let mut anonymous = Vec::new();
    for item in items {
        match present(&item.txid).map(Txid::from_display_hex) {
            Some(Ok(txid)) if txids.contains(&txid) => {
                by_txid.entry(txid).or_insert(item);
            }
            Some(Ok(txid)) => {
                tracing::warn!(%txid, "ARC batch answer about a transaction not in the batch; ignored")
            }
            Some(Err(_)) | None => anonymous.push(item),
        }
    }
    let mut anonymous = anonymous.into_iter();
    txids
        .iter()
        .map(|txid| match by_txid.get(txid) {
            Some(item) => classify_batch_item(item, *txid),
            None => match anonymous.next() {
                Some(item) => classify_batch_item(&Wire { txid: None, ..item }, *txid),
                None => ItemStep::Done(Err(malformed(format!(
                    "POST /v1/txs: no result for {txid}"
                )))),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_join_title_detail_and_extra_info() {
        let body = br#"{"type":"https://bitcoin-sv.github.io/arc/#/errors?id=_465","title":"Fee too low","status":465,"detail":"Fees are too low","extraInfo":"fee 1 < 50"}"#;
        assert_eq!(
            error_detail(body),
            "Fee too low: Fees are too low (fee 1 < 50)"
        );
        assert_eq!(error_detail(b"<html>502</html>"), "<html>502</html>");
        assert_eq!(error_detail(br#"{"extraInfo":"x"}"#), "x");
    }

    #[test]
    fn config_limits() {
        let mut cfg = ArcConfig::new("http://127.0.0.1:1");
        cfg.max_timeout_secs = Some(31);
        assert_eq!(
            ArcClient::new(cfg.clone()).err(),
            Some(ChainConfigError::MaxTimeoutOutOfRange { secs: 31 })
        );
        cfg.max_timeout_secs = Some(30);
        assert!(matches!(
            ArcClient::new(cfg.clone()),
            Err(ChainConfigError::TimeoutBelowMaxTimeout { .. })
        ));
        cfg.request_timeout = Duration::from_secs(31);
        cfg.api_key = Some("secret".into());
        let client = ArcClient::new(cfg).unwrap();
        assert!(!format!("{client:?}").contains("secret"), "{client:?}");
    }
}
