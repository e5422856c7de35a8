//! Block Headers Service endpoints (`bsv-formats.md` §11; field names as the
//! service's `BlockHeaderResponse` / `BlockHeaderStateResponse` and go-sdk's
//! `headers_client`).
//!
//! A header is `{"hash", "version", "prevBlockHash", "merkleRoot",
//! "creationTimestamp", "difficultyTarget", "nonce", "work"}` (hashes in
//! display hex, times in UNIX seconds, `work` the block's own work); a state
//! adds `{"header", "state", "chainWork", "height"}` with `state`
//! `LONGEST_CHAIN` or `STALE` (a block removed by `/sim/reorg`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bsv_format::Hash256;
use serde::Deserialize;
use serde_json::{json, Value};

use super::block::{BlockHeader, WORK_PER_BLOCK};
use super::ledger::RootConfirmation;
use super::server::{ApiError, Shared};

/// Most headers one `byHeight` call returns (`count` is capped to this).
pub const MAX_HEADERS_PER_CALL: u32 = 2_000;
/// Most roots one `merkleroot/verify` call may ask about.
pub const MAX_ROOTS_PER_CALL: usize = 10_000;

fn header_json(header: &BlockHeader) -> Value {
    json!({
        "hash": header.hash().to_string(),
        "version": header.version,
        "prevBlockHash": header.prev_hash.to_string(),
        "merkleRoot": header.merkle_root.to_string(),
        "creationTimestamp": header.time,
        "difficultyTarget": header.bits,
        "nonce": header.nonce,
        "work": WORK_PER_BLOCK,
    })
}

fn state_json(height: u32, header: &BlockHeader, longest: bool) -> Value {
    json!({
        "header": header_json(header),
        "state": if longest { "LONGEST_CHAIN" } else { "STALE" },
        "chainWork": (u64::from(height) + 1) * WORK_PER_BLOCK,
        "height": height,
    })
}

fn reply(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/chain/tip/longest` → the tip's state object.
pub async fn tip_longest(State(s): State<Arc<Shared>>) -> Response {
    reply(
        s.read(|l| l.tip_block().map(|b| state_json(l.tip(), &b.header, true)))
            .and_then(|v| v.ok_or_else(|| ApiError::new(500, "chain has no blocks"))),
    )
}

/// `GET /api/v1/chain/header/byHeight?height=N[&count=C]` → an array of up to
/// `C` (default 1, at most [`MAX_HEADERS_PER_CALL`]) headers from height `N`;
/// 404 if `N` is above the tip, 400 if `height` is missing or not a number.
pub async fn header_by_height(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    reply(header_by_height_inner(&s, query.as_deref().unwrap_or("")))
}

fn header_by_height_inner(s: &Shared, query: &str) -> Result<Value, ApiError> {
    let mut height = None;
    let mut count = 1u32;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            v.parse::<u32>().map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter {k}={v:?} is not a number (0..=4294967295)"
                ))
            })
        };
        match k {
            "height" => height = Some(number()?),
            "count" => count = number()?.clamp(1, MAX_HEADERS_PER_CALL),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {k:?} (expected height, count)"
                )))
            }
        }
    }
    let height =
        height.ok_or_else(|| ApiError::bad_request("query parameter height is required"))?;
    let headers = s.read(|l| {
        (height..height.saturating_add(count))
            .map_while(|h| l.block_at(h).map(|b| header_json(&b.header)))
            .collect::<Vec<_>>()
    })?;
    if headers.is_empty() {
        return Err(ApiError::not_found(format!(
            "no block at height {height} (tip {})",
            s.tip()
        )));
    }
    Ok(Value::Array(headers))
}

fn parse_hash(path: Result<Path<String>, PathRejection>) -> Result<Hash256, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Hash256::from_display_hex(&text).map_err(|e| {
        ApiError::bad_request(format!("block hash {text:?} is not 64 hex characters: {e}"))
    })
}

/// `GET /api/v1/chain/header/state/{hash}` → the block's state object (also
/// for stale blocks), 404 if unknown.
pub async fn header_state(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    reply(parse_hash(path).and_then(|hash| {
        s.read(|l| l.header_by_hash(&hash))?
            .map(|(h, header, longest)| state_json(h, &header, longest))
            .ok_or_else(|| ApiError::not_found(format!("block {hash} is unknown")))
    }))
}

/// `GET /api/v1/chain/header/{hash}` → the header, 404 if unknown.
pub async fn header_by_hash(
    State(s): State<Arc<Shared>>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    reply(parse_hash(path).and_then(|hash| {
        s.read(|l| l.header_by_hash(&hash))?
            .map(|(_, header, _)| header_json(&header))
            .ok_or_else(|| ApiError::not_found(format!("block {hash} is unknown")))
    }))
}

/// One item of a verify request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RootQuestion {
    merkle_root: String,
    block_height: u32,
}

/// `POST /api/v1/chain/merkleroot/verify` with `[{"merkleRoot", "blockHeight"}, …]`
/// → `{"confirmationState", "confirmations": [{"blockHash", "blockHeight",
/// "merkleRoot", "confirmation"}]}`. Each confirmation is `CONFIRMED` (the
/// block at that height has that root), `INVALID` (it has another) or
/// `UNABLE_TO_VERIFY` (the height is above the tip); `confirmationState` is
/// the worst of them, as the Block Headers Service reports it. Clients accept
/// only `CONFIRMED`. An empty or malformed list is 400.
pub async fn verify_roots(
    State(s): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    reply(verify_roots_inner(&s, body))
}

fn verify_roots_inner(s: &Shared, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(|r| ApiError::body(&r))?;
    let questions: Vec<RootQuestion> = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("JSON body: {e}")))?;
    if questions.is_empty() {
        return Err(ApiError::bad_request(
            "at least one merkle root is required",
        ));
    }
    if questions.len() > MAX_ROOTS_PER_CALL {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ROOTS_PER_CALL} merkle roots per call, got {}",
            questions.len()
        )));
    }
    let mut parsed = Vec::with_capacity(questions.len());
    for (i, q) in questions.iter().enumerate() {
        let root = Hash256::from_display_hex(&q.merkle_root).map_err(|e| {
            ApiError::bad_request(format!(
                "item {i}: merkleRoot {:?} is not 64 hex characters: {e}",
                q.merkle_root
            ))
        })?;
        parsed.push((root, q.block_height));
    }
    let answers = s.read(|l| {
        parsed
            .iter()
            .map(|(root, height)| l.confirm_root(root, *height))
            .collect::<Vec<_>>()
    })?;
    let rank = |c: &RootConfirmation| match c {
        RootConfirmation::Confirmed(_) => 0,
        RootConfirmation::UnableToVerify => 1,
        RootConfirmation::Invalid => 2,
    };
    let worst = answers
        .iter()
        .max_by_key(|c| rank(c))
        .copied()
        .unwrap_or(RootConfirmation::Invalid);
    let name = |c: &RootConfirmation| match c {
        RootConfirmation::Confirmed(_) => "CONFIRMED",
        RootConfirmation::UnableToVerify => "UNABLE_TO_VERIFY",
        RootConfirmation::Invalid => "INVALID",
    };
    let confirmations: Vec<Value> = parsed
        .iter()
        .zip(&answers)
        .map(|((root, height), c)| {
            let hash = match c {
                RootConfirmation::Confirmed(h) => h.to_string(),
                _ => String::new(),
            };
            json!({ "blockHash": hash, "blockHeight": height, "merkleRoot": root.to_string(), "confirmation": name(c) })
        })
        .collect();
    Ok(json!({ "confirmationState": name(&worst), "confirmations": confirmations }))
}
