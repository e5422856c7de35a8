//! The HTTP side: shared state, the router, ARC-style errors, and the path
//! every submitted transaction takes (decode → checks → scripts → commit →
//! flush).
//!
//! Locking: one `std::sync::Mutex` around the [`Ledger`], held only for
//! synchronous, short sections (never across an `.await`). Script
//! verification runs between two such sections; store flushes after the lock
//! is released (a flush covers every batch applied before it), and a request
//! is answered only after its flush.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bsv_format::ef::EfTransaction;
use bsv_format::Txid;
use serde_json::json;
use tokio::sync::watch;

use super::ledger::{Ledger, Precheck, StatusView};
use super::store::Store;
use super::validate::{self, TxRejection};
use super::{arc, headers_api, sim};

/// Where ARC's error `type` links point (ARC `pkg/api/status.go`).
const ARC_ERRORS_URL: &str = "https://bitcoin-sv.github.io/arc/#/errors?id=_";

/// An error answer: an RFC 7807 body in ARC's shape
/// `{type, title, status, detail, instance, txid, extraInfo}` (`bsv-formats.md` §10.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The transaction concerned, if any.
    pub txid: Option<Txid>,
    /// What exactly went wrong (ARC puts the miner's reason here).
    pub extra_info: String,
}

impl ApiError {
    /// An error with `status` and `extra_info`.
    pub fn new(status: u16, extra_info: impl Into<String>) -> ApiError {
        ApiError {
            status,
            txid: None,
            extra_info: extra_info.into(),
        }
    }

    /// 400 Bad request.
    pub fn bad_request(extra_info: impl Into<String>) -> ApiError {
        ApiError::new(400, extra_info)
    }

    /// 404 Not found.
    pub fn not_found(extra_info: impl Into<String>) -> ApiError {
        ApiError::new(404, extra_info)
    }

    /// A rejected transaction: its ARC code, txid and reason.
    pub fn rejected(txid: Option<Txid>, rejection: &TxRejection) -> ApiError {
        ApiError {
            status: rejection.code(),
            txid,
            extra_info: rejection.to_string(),
        }
    }

    /// The body refused by axum (too large: 413; unreadable: 400).
    pub fn body(rejection: &BytesRejection) -> ApiError {
        ApiError::new(
            rejection.status().as_u16(),
            format!("request body: {}", rejection.body_text()),
        )
    }

    /// ARC's title and generic detail for the status code.
    fn title_detail(&self) -> (&'static str, &'static str) {
        match self.status {
            400 => (
                "Bad request",
                "The request seems to be malformed and cannot be processed",
            ),
            404 => ("Not found", "The requested resource could not be found"),
            405 => (
                "Method not allowed",
                "The endpoint does not accept this method",
            ),
            413 => (
                "Payload too large",
                "The request body is larger than chainsim accepts",
            ),
            460 => (
                "Not extended format",
                "Transaction is not in extended format, missing input scripts",
            ),
            461 => (
                "Malformed transaction",
                "Transaction is malformed and cannot be processed",
            ),
            462 => (
                "Invalid inputs",
                "Transaction is invalid because the inputs are non-existent or spent",
            ),
            463 => (
                "Malformed transaction",
                "Transaction is malformed and cannot be processed",
            ),
            464 => (
                "Invalid outputs",
                "Transaction is invalid because the outputs are non-existent or invalid",
            ),
            465 => ("Fee too low", "Fees are too low"),
            500 => ("Internal server error", "chainsim failed; see extraInfo"),
            503 => (
                "Service unavailable",
                "chainsim is not able to handle the request now",
            ),
            _ => ("Generic error", "Transaction could not be processed"),
        }
    }

    /// The JSON body.
    pub fn to_json(&self) -> serde_json::Value {
        let (title, detail) = self.title_detail();
        json!({
            "type": format!("{ARC_ERRORS_URL}{}", self.status),
            "title": title,
            "status": self.status,
            "detail": detail,
            "instance": null,
            "txid": self.txid.map(|t| t.to_string()),
            "extraInfo": self.extra_info,
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.to_json())).into_response()
    }
}

/// A fault injected by `/sim/faults`, applied to the next broadcasts
/// (`POST /v1/tx` or `/v1/txs`, one request each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long before handling the request normally.
    Delay(Duration),
    /// Answer as if accepted (`SEEN_ON_NETWORK`) but forget the transaction.
    Drop,
    /// Answer 200 with `txStatus: REJECTED` without storing the transaction.
    Reject,
    /// Answer 503 without looking at the request.
    Error5xx,
}

/// State shared by every handler and the interval miner.
#[derive(Debug)]
pub struct Shared {
    ledger: Mutex<Ledger>,
    store: Store,
    faults: Mutex<VecDeque<Fault>>,
    /// Serialises faucet payments (each picks a chainsim-owned output).
    faucet: tokio::sync::Mutex<()>,
    tip: watch::Sender<u32>,
    clock: AtomicU64,
    failed: Mutex<Option<String>>,
}

impl Shared {
    /// Shared state over a ledger and its store.
    pub fn new(ledger: Ledger, store: Store) -> Shared {
        let (tip, _) = watch::channel(ledger.tip());
        let clock = AtomicU64::new(ledger.now());
        Shared {
            ledger: Mutex::new(ledger),
            store,
            faults: Mutex::new(VecDeque::new()),
            faucet: tokio::sync::Mutex::new(()),
            tip,
            clock,
            failed: Mutex::new(None),
        }
    }

    /// A receiver of tip-height changes.
    pub fn subscribe_tip(&self) -> watch::Receiver<u32> {
        self.tip.subscribe()
    }

    /// The current tip height.
    pub fn tip(&self) -> u32 {
        *self.tip.borrow()
    }

    /// The clock, UNIX seconds (as of the last ledger change).
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }

    /// The clock as an RFC 3339 time (ARC's `timestamp`).
    pub fn timestamp(&self) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(self.now());
        humantime::format_rfc3339_seconds(t).to_string()
    }

    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|_| Some("state lock poisoned".into()))
    }

    fn fail(&self, why: String) -> ApiError {
        tracing::error!("chainsim: {why}; refusing further requests");
        if let Ok(mut f) = self.failed.lock() {
            *f = Some(why.clone());
        }
        ApiError::new(500, why)
    }

    /// Runs `f` on the ledger without changing it.
    ///
    /// # Errors
    /// 500 if the ledger lock is poisoned or the store failed earlier.
    pub fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> Result<T, ApiError> {
        if let Some(why) = self.failure() {
            return Err(ApiError::new(500, why));
        }
        let ledger = self
            .ledger
            .lock()
            .map_err(|_| ApiError::new(500, "ledger lock poisoned"))?;
        Ok(f(&ledger))
    }

    /// Runs `f` on the ledger and writes what it changed to the store (one
    /// batch, not yet flushed: call [`persist`](Self::persist) before answering).
    ///
    /// # Errors
    /// 500 if the lock is poisoned or the store fails (chainsim then refuses
    /// every further request: memory and disk may differ).
    pub fn write<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> Result<T, ApiError> {
        if let Some(why) = self.failure() {
            return Err(ApiError::new(500, why));
        }
        let mut ledger = self
            .ledger
            .lock()
            .map_err(|_| ApiError::new(500, "ledger lock poisoned"))?;
        let out = f(&mut ledger);
        let ops = ledger.take_journal();
        if let Err(e) = self.store.apply(ops) {
            return Err(self.fail(e.to_string()));
        }
        self.clock.store(ledger.now(), Ordering::Relaxed);
        let tip = ledger.tip();
        self.tip
            .send_if_modified(|t| std::mem::replace(t, tip) != tip);
        Ok(out)
    }

    /// Makes every change so far durable.
    ///
    /// # Errors
    /// 500 if the flush fails (chainsim then refuses further requests).
    pub async fn persist(&self) -> Result<(), ApiError> {
        match self.store.flush().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e.to_string())),
        }
    }

    /// Queues `count` copies of `fault`.
    pub fn add_faults(&self, fault: Fault, count: u32) -> Result<(), ApiError> {
        let mut faults = self
            .faults
            .lock()
            .map_err(|_| ApiError::new(500, "fault lock poisoned"))?;
        faults.extend(std::iter::repeat_n(fault, count as usize));
        Ok(())
    }

    /// Takes the fault for the next broadcast, if any.
    pub fn next_fault(&self) -> Result<Option<Fault>, ApiError> {
        let mut faults = self
            .faults
            .lock()
            .map_err(|_| ApiError::new(500, "fault lock poisoned"))?;
        Ok(faults.pop_front())
    }

    /// Holds the faucet for one payment.
    pub async fn faucet_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.faucet.lock().await
    }

    /// Validates and applies one decoded EF transaction: context-free checks,
    /// ledger checks, scripts (outside the lock; on a blocking thread, inputs
    /// in parallel, when there are several), commit, flush.
    ///
    /// # Errors
    /// The [`TxRejection`] as an [`ApiError`] with the txid; 500 for internal faults.
    pub async fn submit(&self, ef: EfTransaction, txid: Txid) -> Result<StatusView, ApiError> {
        validate::check_context_free(&ef).map_err(|r| ApiError::rejected(Some(txid), &r))?;
        let (tx, claimed) = ef.into_parts();
        let tx = Arc::new(tx);
        let pending = match self.read(|l| l.precheck(&tx, txid, &claimed))? {
            Err(r) => return Err(ApiError::rejected(Some(txid), &r)),
            Ok(Precheck::Known(view)) => return Ok(view),
            Ok(Precheck::Verify(pending)) => pending,
        };
        let verified = if pending.spent.len() > 1 {
            tokio::task::spawn_blocking(move || {
                validate::verify_scripts(&pending.tx, &pending.spent).map(|()| pending)
            })
            .await
            .map_err(|e| ApiError::new(500, format!("script verification task: {e}")))?
        } else {
            validate::verify_scripts(&pending.tx, &pending.spent).map(|()| pending)
        };
        let pending = verified.map_err(|r| ApiError::rejected(Some(txid), &r))?;
        let view = self
            .write(|l| l.commit(pending))?
            .map_err(|r| ApiError::rejected(Some(txid), &r))?;
        self.persist().await?;
        Ok(view)
    }
}

/// The router: ARC, headers and `/sim/` endpoints, bodies capped at
/// `max_body_bytes`, JSON errors for unknown paths and methods.
pub fn router(shared: Arc<Shared>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/tx", post(arc::post_tx))
        .route("/v1/txs", post(arc::post_txs))
        .route("/v1/tx/{txid}", get(arc::get_tx))
        .route("/v1/tx/{txid}/hex", get(arc::get_tx_hex))
        .route("/v1/tx/{txid}/{vout}/spent", get(arc::get_spent))
        .route("/v1/policy", get(arc::get_policy))
        .route("/v1/health", get(arc::get_health))
        .route("/api/v1/chain/tip/longest", get(headers_api::tip_longest))
        .route(
            "/api/v1/chain/header/byHeight",
            get(headers_api::header_by_height),
        )
        .route(
            "/api/v1/chain/header/state/{hash}",
            get(headers_api::header_state),
        )
        .route(
            "/api/v1/chain/header/{hash}",
            get(headers_api::header_by_hash),
        )
        .route(
            "/api/v1/chain/merkleroot/verify",
            post(headers_api::verify_roots),
        )
        .route("/sim/mine", post(sim::mine))
        .route("/sim/faucet", post(sim::faucet))
        .route("/sim/clock", post(sim::clock))
        .route("/sim/faults", post(sim::faults))
        .route("/sim/reorg", post(sim::reorg))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(shared)
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(405, format!("{} does not accept {method}", uri.path()))
}
