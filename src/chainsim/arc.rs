//! ARC endpoints (`bsv-formats.md` §10): submit, status, policy, health, and
//! the WhatsOnChain-style raw-transaction and spent-output lookups.
//!
//! Bodies, as ARC takes them (Content-Type decides): `text/plain` hex (one
//! transaction; one per line for `/v1/txs`), `application/json`
//! `{"rawTx": hex}` (an array of those for `/v1/txs`), or
//! `application/octet-stream` bytes (concatenated for `/v1/txs`). Any other
//! Content-Type is 400. The transaction must be EF: raw is 460, BEEF 460.
//!
//! Headers: `X-WaitFor` must name an ARC status and `X-MaxTimeout` be 0..=30
//! (else 400), but chainsim answers at once: an accepted transaction is
//! `SEEN_ON_NETWORK` immediately. `X-Skip*Validation` headers are ignored:
//! chainsim always validates, as the node behind ARC would.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bsv_format::codec::{decode_hex, Reader};
use bsv_format::ef::EfTransaction;
use bsv_format::{Outpoint, Txid};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ledger::{StatusView, TxStatus};
use super::server::{ApiError, Fault, Shared};
use super::validate::{self, MAX_SCRIPT_SIZE, MAX_TX_SIZE};

/// ARC statuses a client may wait for (`X-WaitFor`, `bsv-formats.md` §10.3).
const WAIT_FOR: [&str; 8] = [
    "QUEUED",
    "RECEIVED",
    "STORED",
    "ANNOUNCED_TO_NETWORK",
    "REQUESTED_BY_NETWORK",
    "SENT_TO_NETWORK",
    "ACCEPTED_BY_NETWORK",
    "SEEN_ON_NETWORK",
];

/// ARC `TransactionResponse` (POST answers: with `status` and `title`) and
/// `TransactionStatus` (GET answers: without).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TxResponse {
    timestamp: String,
    txid: String,
    tx_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    block_height: Option<u32>,
    merkle_path: Option<String>,
    extra_info: Option<String>,
    competing_txs: Option<Vec<String>>,
}

/// `{"rawTx": hex}` (ARC `TransactionRequest`).
#[derive(Debug, Deserialize)]
struct RawTxRequest {
    #[serde(rename = "rawTx")]
    raw_tx: String,
}

/// How a request body encodes transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Hex,
    Json,
    Binary,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let text = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/plain" => Ok(BodyKind::Hex),
        "application/json" => Ok(BodyKind::Json),
        "application/octet-stream" => Ok(BodyKind::Binary),
        _ => Err(ApiError::bad_request(format!(
            "Content-Type {text:?} is not text/plain (hex), application/json ({{\"rawTx\": hex}}) or application/octet-stream"
        ))),
    }
}

fn check_arc_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(v) = headers.get("X-WaitFor") {
        let name = v.to_str().unwrap_or("");
        if !WAIT_FOR.contains(&name) {
            return Err(ApiError::bad_request(format!(
                "X-WaitFor {name:?} is not one of {}",
                WAIT_FOR.join(", ")
            )));
        }
    }
    if let Some(v) = headers.get("X-MaxTimeout") {
        let ok = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .is_some_and(|t| t <= 30);
        if !ok {
            return Err(ApiError::bad_request(
                "X-MaxTimeout must be a whole number of seconds from 0 to 30",
            ));
        }
    }
    Ok(())
}

fn hex_bytes(text: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    decode_hex(text).map_err(|e| ApiError::bad_request(format!("{what} is not hex: {e}")))
}

fn utf8(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("text/plain body is not UTF-8: {e}")))
}

/// The transaction bytes of a `/v1/tx` body.
fn single_body(kind: BodyKind, body: &Bytes) -> Result<Vec<u8>, ApiError> {
    match kind {
        BodyKind::Hex => hex_bytes(utf8(body)?, "body"),
        BodyKind::Json => {
            let req: RawTxRequest = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))?;
            hex_bytes(&req.raw_tx, "rawTx")
        }
        BodyKind::Binary => Ok(body.to_vec()),
    }
}

type Decoded = Result<(EfTransaction, Txid), ApiError>;

/// The decoded transactions of a `/v1/txs` body, in order. A binary stream
/// that stops decoding yields its error as the last item.
fn many_body(kind: BodyKind, body: &Bytes) -> Result<Vec<Decoded>, ApiError> {
    let decode = |bytes: Vec<u8>| {
        validate::decode_submission(&bytes).map_err(|r| ApiError::rejected(None, &r))
    };
    match kind {
        BodyKind::Hex => {
            let lines = utf8(body)?.lines().map(str::trim).filter(|l| !l.is_empty());
            Ok(lines
                .enumerate()
                .map(|(i, l)| hex_bytes(l, &format!("line {}", i + 1)).and_then(decode))
                .collect())
        }
        BodyKind::Json => {
            let reqs: Vec<RawTxRequest> = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))?;
            Ok(reqs
                .iter()
                .enumerate()
                .map(|(i, r)| hex_bytes(&r.raw_tx, &format!("item {i} rawTx")).and_then(decode))
                .collect())
        }
        BodyKind::Binary => {
            let mut r = Reader::new(body);
            let mut out = Vec::new();
            while !r.is_empty() {
                match validate::decode_next(&mut r) {
                    Ok(d) => out.push(Ok(d)),
                    Err(e) => {
                        out.push(Err(ApiError::rejected(None, &e)));
                        break;
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Applies a queued fault's waiting or failing part; returns the fault if it
/// decides the answer for each transaction (drop, reject).
async fn take_fault(s: &Shared) -> Result<Option<Fault>, ApiError> {
    match s.next_fault()? {
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(None)
        }
        Some(Fault::Error5xx) => Err(ApiError::new(
            503,
            "injected fault: error5xx (POST /sim/faults)",
        )),
        other => Ok(other),
    }
}

/// The answer for one decoded transaction under `fault`.
async fn submit_one(
    s: &Shared,
    ef: EfTransaction,
    txid: Txid,
    fault: Option<Fault>,
) -> Result<Value, ApiError> {
    match fault {
        Some(Fault::Drop) => Ok(fabricated(s, txid, TxStatus::SeenOnNetwork, None)),
        Some(Fault::Reject) => Ok(fabricated(
            s,
            txid,
            TxStatus::Rejected,
            Some("rejected by an injected fault (POST /sim/faults); not stored".into()),
        )),
        _ => {
            let view = s.submit(ef, txid).await?;
            response(s, view, true)
        }
    }
}

fn fabricated(s: &Shared, txid: Txid, status: TxStatus, extra_info: Option<String>) -> Value {
    let body = TxResponse {
        timestamp: s.timestamp(),
        txid: txid.to_string(),
        tx_status: status.arc_name(),
        status: Some(200),
        title: Some("OK"),
        block_hash: None,
        block_height: None,
        merkle_path: None,
        extra_info,
        competing_txs: None,
    };
    serde_json::to_value(body).unwrap_or(Value::Null)
}

/// The ARC body for a status: `TransactionResponse` when `submitted`, else
/// `TransactionStatus`. The BUMP of a mined transaction is built here, outside
/// the ledger lock.
fn response(s: &Shared, view: StatusView, submitted: bool) -> Result<Value, ApiError> {
    let merkle_path = match &view.mined {
        Some(m) => Some(
            m.merkle_path()
                .map_err(|e| ApiError::new(500, format!("BUMP for {}: {e}", view.txid)))?
                .to_hex(),
        ),
        None => None,
    };
    let body = TxResponse {
        timestamp: s.timestamp(),
        txid: view.txid.to_string(),
        tx_status: view.status.arc_name(),
        status: submitted.then_some(200),
        title: submitted.then_some("OK"),
        block_hash: view.mined.as_ref().map(|m| m.block_hash.to_string()),
        block_height: view.mined.as_ref().map(|m| m.height),
        merkle_path,
        extra_info: view.extra_info,
        competing_txs: (!view.competing.is_empty())
            .then(|| view.competing.iter().map(Txid::to_string).collect()),
    };
    serde_json::to_value(body)
        .map_err(|e| ApiError::new(500, format!("encoding the response: {e}")))
}

fn reply(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/tx`: one EF transaction → 200 `TransactionResponse`
/// (`SEEN_ON_NETWORK`, or the current status of a known txid, or
/// `DOUBLE_SPEND_ATTEMPTED` with `competingTxs`), or an ARC error.
pub async fn post_tx(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    reply(post_tx_inner(&s, &headers, body).await)
}

async fn post_tx_inner(
    s: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let body = body.map_err(|r| ApiError::body(&r))?;
    check_arc_headers(headers)?;
    let bytes = single_body(body_kind(headers)?, &body)?;
    let fault = take_fault(s).await?;
    let (ef, txid) =
        validate::decode_submission(&bytes).map_err(|r| ApiError::rejected(None, &r))?;
    submit_one(s, ef, txid, fault).await
}

/// `POST /v1/txs`: several transactions, applied in order → 200 with an array
/// holding, per transaction, a `TransactionResponse` or an error object.
pub async fn post_txs(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    reply(post_txs_inner(&s, &headers, body).await)
}

async fn post_txs_inner(
    s: &Shared,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let body = body.map_err(|r| ApiError::body(&r))?;
    check_arc_headers(headers)?;
    let items = many_body(body_kind(headers)?, &body)?;
    if items.is_empty() {
        return Err(ApiError::bad_request("the body holds no transactions"));
    }
    let fault = take_fault(s).await?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let answer = match item {
            Ok((ef, txid)) => submit_one(s, ef, txid, fault).await,
            Err(e) => Err(e),
        };
        out.push(answer.unwrap_or_else(|e| e.to_json()));
    }
    Ok(Value::Array(out))
}

fn parse_txid(path: &str) -> Result<Txid, ApiError> {
    Txid::from_display_hex(path)
        .map_err(|e| ApiError::bad_request(format!("txid {path:?} is not 64 hex characters: {e}")))
}

/// `GET /v1/tx/{txid}` → 200 `TransactionStatus` (with `merklePath`, the
/// BUMP hex, once `MINED`), 404 if unknown.
pub async fn get_tx(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    reply(get_tx_inner(&s, path))
}

fn get_tx_inner(s: &Shared, path: Result<Path<String>, PathRejection>) -> Result<Value, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let txid = parse_txid(&text)?;
    let view = s.read(|l| l.status(&txid))?.ok_or_else(|| ApiError {
        txid: Some(txid),
        ..ApiError::not_found(format!("transaction {txid} is unknown"))
    })?;
    response(s, view, false)
}

/// `GET /v1/tx/{txid}/hex` → 200 `text/plain`: the raw transaction as hex
/// (lowercase, no EF fields), for a transaction in the mempool or a block of
/// the best chain, as WhatsOnChain serves it; 404 for one chainsim never
/// accepted, and for a double-spend attempt or a transaction a reorganisation
/// dropped (neither is on the network).
pub async fn get_tx_hex(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    match get_tx_hex_inner(&s, path) {
        Ok(hex) => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], hex).into_response(),
        Err(e) => e.into_response(),
    }
}

fn get_tx_hex_inner(
    s: &Shared,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let txid = parse_txid(&text)?;
    let (tx, status) = s.read(|l| {
        (
            l.transaction(&txid).cloned(),
            l.status(&txid).map(|v| v.status),
        )
    })?;
    let not_found = |why: String| ApiError {
        txid: Some(txid),
        ..ApiError::not_found(why)
    };
    match (tx, status) {
        (Some(tx), Some(TxStatus::SeenOnNetwork | TxStatus::Mined)) => Ok(tx.to_hex()),
        (Some(_), Some(other @ (TxStatus::DoubleSpendAttempted | TxStatus::Rejected))) => {
            Err(not_found(format!(
                "transaction {txid} is {}: in neither the mempool nor a block",
                other.arc_name()
            )))
        }
        (None, _) | (Some(_), None) => Err(not_found(format!("transaction {txid} is unknown"))),
    }
}

/// `GET /v1/tx/{txid}/{vout}/spent` → 200 `{"txid", "vin"}` of the input that
/// spent the output (in the mempool or mined), 404 if it is unspent or unknown.
pub async fn get_spent(
    State(s): State<Arc<Shared>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    reply(get_spent_inner(&s, path))
}

fn get_spent_inner(
    s: &Shared,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Value, ApiError> {
    let Path((txid, vout)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let txid = parse_txid(&txid)?;
    let vout: u32 = vout.parse().map_err(|_| {
        ApiError::bad_request(format!("vout {vout:?} is not a number (0..=4294967295)"))
    })?;
    let outpoint = Outpoint::new(txid, vout);
    let (spender, exists) = s.read(|l| (l.spender(&outpoint), l.output(&outpoint).is_some()))?;
    match spender {
        Some(sp) => Ok(json!({ "txid": sp.txid.to_string(), "vin": sp.vin })),
        None if exists => Err(ApiError::not_found(format!("output {outpoint} is unspent"))),
        None => Err(ApiError::not_found(format!("output {outpoint} is unknown"))),
    }
}

/// `GET /v1/policy` → `{"policy": {maxscriptsizepolicy, maxtxsigopscountspolicy,
/// maxtxsizepolicy, miningFee: {satoshis, bytes}}, "timestamp"}`.
pub async fn get_policy(State(s): State<Arc<Shared>>) -> Response {
    reply(s.read(|l| l.params().fee_rate).map(|rate| {
        json!({
            "policy": {
                "maxscriptsizepolicy": MAX_SCRIPT_SIZE,
                "maxtxsigopscountspolicy": u32::MAX,
                "maxtxsizepolicy": MAX_TX_SIZE,
                "miningFee": { "satoshis": rate, "bytes": 1000 },
            },
            "timestamp": s.timestamp(),
        })
    }))
}

/// `GET /v1/health` → `{"healthy", "version", "reason"}`.
pub async fn get_health(State(s): State<Arc<Shared>>) -> Response {
    let version = format!("escrowd-chainsim {}", env!("CARGO_PKG_VERSION"));
    let body = match s.read(|l| l.tip()) {
        Ok(_) => json!({ "healthy": true, "version": version, "reason": null }),
        Err(e) => json!({ "healthy": false, "version": version, "reason": e.extra_info }),
    };
    Json(body).into_response()
}
