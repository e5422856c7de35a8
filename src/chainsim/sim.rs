//! Test and demo endpoints under `/sim/` (DESIGN.md §6). Request bodies are
//! JSON objects; unknown fields, missing fields and out-of-range values are
//! 400 with an ARC-style error naming the field.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::ef::EfTransaction;
use bsv_format::keys::decode_p2pkh_address;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ledger::TxStatus;
use super::mining::SimError;
use super::server::{ApiError, Fault, Shared};

/// Longest delay a `delay` fault may ask for, milliseconds.
pub const MAX_FAULT_DELAY_MS: u64 = 60_000;
/// Most broadcasts one `/sim/faults` call may affect.
pub const MAX_FAULT_COUNT: u32 = 1_000_000;

fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|r| ApiError::body(&r))?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))
}

fn sim_error(e: SimError) -> ApiError {
    match e {
        SimError::FaucetDry { .. } => ApiError::new(409, e.to_string()),
        SimError::FaucetBuild(_) => ApiError::new(500, e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    }
}

fn reply(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MineRequest {
    blocks: u32,
}

/// `POST /sim/mine` `{"blocks": N}` (1..=10,000) → `{"tip": height}`. Each block
/// takes every final mempool transaction.
pub async fn mine(State(s): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    reply(mine_inner(&s, body).await)
}

async fn mine_inner(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let req: MineRequest = parse(body)?;
    let tip = s.write(|l| l.mine(req.blocks, true))?.map_err(sim_error)?;
    s.persist().await?;
    Ok(json!({ "tip": tip }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaucetRequest {
    address: String,
    satoshis: u64,
}

/// `POST /sim/faucet` `{"address", "satoshis"}` → `{"txid", "vout", "beef"}`:
/// pays `satoshis` to the P2PKH address (mainnet or testnet prefix) from a
/// matured coinbase (or faucet change), submits the payment through the same
/// validation as `/v1/tx`, then mines one block (holding the whole mempool) so
/// the payment is proven; `beef` is BEEF V1 hex with that block's BUMP and the
/// payment, `vout` the paid output (0).
pub async fn faucet(State(s): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    reply(faucet_inner(&s, body).await)
}

async fn faucet_inner(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let req: FaucetRequest = parse(body)?;
    let (hash, _network) = decode_p2pkh_address(&req.address).map_err(|e| {
        sim_error(SimError::BadAddress {
            address: req.address.clone(),
            reason: e.to_string(),
        })
    })?;
    let _guard = s.faucet_guard().await;
    let (tx, source) = s
        .read(|l| l.faucet_payment(&hash, req.satoshis))?
        .map_err(sim_error)?;
    let ef = EfTransaction::new(tx, vec![source])
        .map_err(|e| ApiError::new(500, format!("faucet EF: {e}")))?;
    let txid = ef.txid();
    let payment = ef.tx.clone();
    s.submit(ef, txid).await?;
    s.write(|l| l.mine(1, true))?.map_err(sim_error)?;
    s.persist().await?;
    let view = s
        .read(|l| l.status(&txid))?
        .ok_or_else(|| ApiError::new(500, format!("faucet payment {txid} vanished")))?;
    let mined = match (view.status, view.mined) {
        (TxStatus::Mined, Some(m)) => m,
        _ => {
            return Err(ApiError::new(
                500,
                format!(
                    "faucet payment {txid} was not mined ({})",
                    view.status.arc_name()
                ),
            ))
        }
    };
    let bump = mined
        .merkle_path()
        .map_err(|e| ApiError::new(500, format!("faucet BUMP: {e}")))?;
    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(bump);
    beef.add_transaction(payment);
    Ok(json!({ "txid": txid.to_string(), "vout": 0, "beef": beef.to_hex() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockRequest {
    advance_secs: Option<u64>,
    set_unix: Option<u64>,
}

/// `POST /sim/clock` `{"advance_secs": N}` or `{"set_unix": T}` → `{"now": T}`.
/// Exactly one field; the clock never goes back and never mines.
pub async fn clock(State(s): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    reply(clock_inner(&s, body).await)
}

async fn clock_inner(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let req: ClockRequest = parse(body)?;
    let now = match (req.advance_secs, req.set_unix) {
        (Some(secs), None) => s.write(|l| l.advance_clock(secs))?,
        (None, Some(t)) => s.write(|l| l.set_clock(t))?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of advance_secs and set_unix",
            ))
        }
    }
    .map_err(sim_error)?;
    s.persist().await?;
    Ok(json!({ "now": now }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    kind: String,
    count: u32,
    ms: Option<u64>,
}

/// `POST /sim/faults` `{"kind": "delay"|"drop"|"reject"|"error5xx", "count": N,
/// "ms"?: M}` → `{}`. The next `N` broadcast requests (`POST /v1/tx` or
/// `/v1/txs`) are delayed by `M` ms (`ms` required for `delay` only, at most
/// 60,000), answered `SEEN_ON_NETWORK` but forgotten (`drop`), answered
/// `REJECTED` without being stored (`reject`), or answered 503 (`error5xx`).
/// Faults queue in the order given.
pub async fn faults(State(s): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    reply(faults_inner(&s, body))
}

fn faults_inner(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let req: FaultRequest = parse(body)?;
    if req.count == 0 || req.count > MAX_FAULT_COUNT {
        return Err(ApiError::bad_request(format!(
            "count must be between 1 and {MAX_FAULT_COUNT}, got {}",
            req.count
        )));
    }
    let fault = match (req.kind.as_str(), req.ms) {
        ("delay", Some(ms)) if ms <= MAX_FAULT_DELAY_MS => Fault::Delay(Duration::from_millis(ms)),
        ("delay", Some(ms)) => {
            return Err(ApiError::bad_request(format!(
                "ms must be at most {MAX_FAULT_DELAY_MS}, got {ms}"
            )))
        }
        ("delay", None) => return Err(ApiError::bad_request("kind delay needs ms")),
        ("drop" | "reject" | "error5xx", Some(_)) => {
            return Err(ApiError::bad_request(format!(
                "ms applies to kind delay only, not {}",
                req.kind
            )))
        }
        ("drop", None) => Fault::Drop,
        ("reject", None) => Fault::Reject,
        ("error5xx", None) => Fault::Error5xx,
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "kind {other:?} is not one of delay, drop, reject, error5xx"
            )))
        }
    };
    s.add_faults(fault, req.count)?;
    Ok(json!({}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReorgRequest {
    depth: u32,
}

/// `POST /sim/reorg` `{"depth": N}` → `{}`: the last `N` blocks are replaced by
/// as many empty blocks (same height, new hashes); their transactions go back
/// to the mempool (`SEEN_ON_NETWORK`) and are mined again by the next block.
pub async fn reorg(State(s): State<Arc<Shared>>, body: Result<Bytes, BytesRejection>) -> Response {
    reply(reorg_inner(&s, body).await)
}

async fn reorg_inner(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let req: ReorgRequest = parse(body)?;
    s.write(|l| l.reorg(req.depth))?.map_err(sim_error)?;
    s.persist().await?;
    Ok(json!({}))
}
