//! The chain clients of `src/chain` against a mock server on 127.0.0.1:0.
//!
//! Every response body below is a literal JSON string written from the field
//! names, status strings and codes of `bsv-formats.md` §10 (ARC) and §11
//! (Block Headers Service) and ARC's `pkg/api/status.go` — never produced by
//! our own serde types, so client and server cannot agree on a wrong shape.
//! Retries use a 1 ms backoff; the only real wait is one 300 ms request
//! timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bsv_format::bump::MerklePath;
use bsv_format::ef::EfTransaction;
use bsv_format::spv::{RootClaim, VerifyError, VerifyOptions};
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use escrowd::chain::{
    ArcClient, ArcConfig, HeadersClient, HeadersConfig, ManualClock, RetryPolicy, SpendClient,
    SpendConfig, TxClient, TxConfig, WaitFor,
};
use saga_runtime::ports::{TransactionSource, TransactionSourceError};
use saga_runtime::{
    verify_beef, ArcErrorCode, BroadcastError, BroadcastOutcome, Broadcaster, ChainTracker,
    RejectCode, ServiceFault, SpendWatchError, SpendWatcher, SpendingInput, TrackerError, TxState,
    VerifyBeefError,
};

// ---------------------------------------------------------------------------
// Mock server

/// A canned answer: status and body, or no answer at all.
#[derive(Clone)]
enum Canned {
    Reply(u16, String),
    Hang,
}

fn reply(status: u16, body: impl Into<String>) -> Canned {
    Canned::Reply(status, body.into())
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    route: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Routes ("METHOD /path?query") to queues of answers; the last answer of a
/// queue repeats.
#[derive(Default)]
struct Mock {
    routes: Mutex<HashMap<String, VecDeque<Canned>>>,
    seen: Mutex<Vec<Seen>>,
}

impl Mock {
    fn on(&self, route: &str, answers: Vec<Canned>) {
        self.routes
            .lock()
            .unwrap()
            .insert(route.to_string(), answers.into());
    }

    fn seen(&self, route: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.route == route)
            .cloned()
            .collect()
    }

    fn count(&self, route: &str) -> usize {
        self.seen(route).len()
    }

    fn reset(&self) {
        self.routes.lock().unwrap().clear();
        self.seen.lock().unwrap().clear();
    }
}

async fn handle(
    State(mock): State<Arc<Mock>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!(
        "{method} {}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    mock.seen.lock().unwrap().push(Seen {
        route: route.clone(),
        headers,
        body: body.to_vec(),
    });
    let answer = {
        let mut routes = mock.routes.lock().unwrap();
        match routes.get_mut(&route) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    match answer {
        Some(Canned::Reply(status, body)) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
        Some(Canned::Hang) => std::future::pending::<Response>().await,
        None => (
            StatusCode::IM_A_TEAPOT,
            format!("no canned answer for {route}"),
        )
            .into_response(),
    }
}

async fn serve() -> (Arc<Mock>, String) {
    let mock = Arc::new(Mock::default());
    let app = Router::new().fallback(handle).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (mock, url)
}

// ---------------------------------------------------------------------------
// Fixtures

const FAST: RetryPolicy = RetryPolicy {
    attempts: 4,
    base: Duration::from_millis(1),
    cap: Duration::from_millis(4),
};
const BLOCK_HASH: &str = "0000000000000000025e1a1f8a6b6e8b7b6d4c1e2f3a4b5c6d7e8f9a0b1c2d3e";
const OTHER_TXID: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
const THIRD_TXID: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

/// A distinct, well-formed EF transaction per `n`.
fn ef(n: u32) -> EfTransaction {
    let script = Script::from_bytes(vec![0x51]);
    let tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([n as u8 + 1; 32]), n),
            unlocking_script: script.clone(),
            sequence: 0xffff_ffff,
        }],
        outputs: vec![TxOut {
            satoshis: 1_000,
            locking_script: script.clone(),
        }],
        lock_time: n,
    };
    EfTransaction::new(
        tx,
        vec![TxOut {
            satoshis: 2_000,
            locking_script: script,
        }],
    )
    .unwrap()
}

/// A BUMP proving `txid` as the second transaction of a block at `height`.
fn bump(height: u32, txid: Txid) -> MerklePath {
    MerklePath::from_block(height, &[Txid([9; 32]), txid], &[1]).unwrap()
}

fn arc(url: &str) -> ArcClient {
    let mut cfg = ArcConfig::new(url);
    cfg.retry = FAST;
    cfg.request_timeout = Duration::from_secs(5);
    ArcClient::new(cfg).unwrap()
}

/// `TransactionResponse` of `POST /v1/tx` (§10.4), not mined.
fn tx_response(txid: &Txid, status: &str, extra: &str) -> String {
    format!(
        r#"{{"blockHash":"","blockHeight":0,"competingTxs":null,"extraInfo":"{extra}","merklePath":"","status":200,"timestamp":"2025-01-01T00:00:00Z","title":"OK","txStatus":"{status}","txid":"{txid}"}}"#
    )
}

/// `TransactionResponse` with `MINED` and its BUMP at height 900.
fn mined_response(txid: &Txid) -> String {
    format!(
        r#"{{"blockHash":"{BLOCK_HASH}","blockHeight":900,"extraInfo":"","merklePath":"{}","status":200,"timestamp":"2025-01-01T00:10:00Z","title":"OK","txStatus":"MINED","txid":"{txid}"}}"#,
        bump(900, *txid).to_hex()
    )
}

/// An RFC 7807 error body as ARC's `NewErrorFields` writes it (§10.6).
fn arc_error(status: u16, title: &str, detail: &str, extra: &str, txid: Option<&Txid>) -> String {
    let txid = txid
        .map(|t| format!(r#","txid":"{t}""#))
        .unwrap_or_default();
    format!(
        r#"{{"type":"https://bitcoin-sv.github.io/arc/#/errors?id=_{status}","title":"{title}","status":{status},"detail":"{detail}","instance":null,"extraInfo":"{extra}"{txid}}}"#
    )
}

// ---------------------------------------------------------------------------
// ARC: statuses

#[tokio::test]
async fn every_tx_status_of_a_submission_maps_to_a_typed_result() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let tx = ef(1);
    let txid = tx.txid();
    for name in [
        "QUEUED",
        "RECEIVED",
        "STORED",
        "ANNOUNCED_TO_NETWORK",
        "REQUESTED_BY_NETWORK",
        "SENT_TO_NETWORK",
        "ACCEPTED_BY_NETWORK",
        "SEEN_ON_NETWORK",
        "MINED_IN_STALE_BLOCK",
    ] {
        mock.reset();
        mock.on(
            "POST /v1/tx",
            vec![reply(200, tx_response(&txid, name, ""))],
        );
        match client.broadcast(&tx).await {
            Ok(BroadcastOutcome::Accepted(s)) => {
                assert_eq!((s.txid, s.state.name()), (txid, name));
                assert_eq!(s.timestamp.as_deref(), Some("2025-01-01T00:00:00Z"));
                assert_eq!(s.extra_info, None);
            }
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(mock.count("POST /v1/tx"), 1, "{name}");
    }

    mock.reset();
    mock.on("POST /v1/tx", vec![reply(200, mined_response(&txid))]);
    let Ok(BroadcastOutcome::Accepted(s)) = client.broadcast(&tx).await else {
        panic!("MINED")
    };
    let TxState::Mined(inclusion) = s.state else {
        panic!("{:?}", s.state)
    };
    assert_eq!(
        (inclusion.height, inclusion.hash.to_string()),
        (900, BLOCK_HASH.to_string())
    );
    assert_eq!(inclusion.merkle_path, bump(900, txid));

    mock.reset();
    let body = format!(
        r#"{{"blockHash":"","blockHeight":0,"competingTxs":["{OTHER_TXID}","{THIRD_TXID}"],"extraInfo":"double spend attempted","merklePath":"","status":200,"timestamp":"2025-01-01T00:00:00Z","title":"OK","txStatus":"DOUBLE_SPEND_ATTEMPTED","txid":"{txid}"}}"#
    );
    mock.on("POST /v1/tx", vec![reply(200, body)]);
    let outcome = client.broadcast(&tx).await.unwrap();
    assert!(matches!(outcome, BroadcastOutcome::DoubleSpendAttempted(_)));
    assert!(!outcome.is_success());
    let competing: Vec<String> = outcome
        .competing_txs()
        .iter()
        .map(Txid::to_string)
        .collect();
    assert_eq!(competing, [OTHER_TXID, THIRD_TXID]);

    mock.reset();
    mock.on(
        "POST /v1/tx",
        vec![reply(
            200,
            tx_response(&txid, "REJECTED", "mandatory-script-verify-flag-failed"),
        )],
    );
    let err = client.broadcast(&tx).await.unwrap_err();
    assert_eq!(
        err,
        BroadcastError::Rejected {
            txid: Some(txid),
            code: RejectCode::StatusRejected,
            detail: "mandatory-script-verify-flag-failed".into()
        }
    );
    assert!(!err.is_transient());
    assert_eq!(mock.count("POST /v1/tx"), 1);

    mock.reset();
    mock.on(
        "POST /v1/tx",
        vec![reply(
            200,
            tx_response(&txid, "SEEN_IN_ORPHAN_MEMPOOL", "missing parent"),
        )],
    );
    let err = client.broadcast(&tx).await.unwrap_err();
    assert_eq!(
        err,
        BroadcastError::Orphaned {
            txid,
            detail: "missing parent".into()
        }
    );
    assert!(err.is_transient());
    assert_eq!(mock.count("POST /v1/tx"), 1);

    // UNKNOWN says nothing: asked again under the retry policy.
    mock.reset();
    mock.on(
        "POST /v1/tx",
        vec![reply(200, tx_response(&txid, "UNKNOWN", ""))],
    );
    let err = client.broadcast(&tx).await.unwrap_err();
    assert!(
        matches!(
            err,
            BroadcastError::Unavailable {
                attempts: 4,
                last: ServiceFault::Inconclusive { .. }
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.count("POST /v1/tx"), 4);
}

#[tokio::test]
async fn status_queries_report_every_state_and_404_is_unknown() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let txid = ef(2).txid();
    let route = format!("GET /v1/tx/{txid}");
    let names = [
        ("UNKNOWN", 0),
        ("QUEUED", 10),
        ("RECEIVED", 20),
        ("STORED", 30),
        ("ANNOUNCED_TO_NETWORK", 40),
        ("REQUESTED_BY_NETWORK", 50),
        ("SENT_TO_NETWORK", 60),
        ("ACCEPTED_BY_NETWORK", 70),
        ("SEEN_IN_ORPHAN_MEMPOOL", 80),
        ("SEEN_ON_NETWORK", 90),
        ("DOUBLE_SPEND_ATTEMPTED", 100),
        ("REJECTED", 110),
        ("MINED_IN_STALE_BLOCK", 115),
    ];
    for (name, code) in names {
        // `GET /v1/tx/{txid}`: `TransactionStatus`, without status/title (§10.4).
        let body = format!(
            r#"{{"blockHash":"","blockHeight":0,"competingTxs":["{OTHER_TXID}"],"extraInfo":"x","merklePath":"","timestamp":"2025-01-01T00:00:00Z","txStatus":"{name}","txid":"{txid}"}}"#
        );
        mock.on(&route, vec![reply(200, body)]);
        let status = client.status(&txid).await.unwrap().unwrap();
        assert_eq!((status.state.name(), status.state.code()), (name, code));
        assert_eq!(status.extra_info.as_deref(), Some("x"));
        if name == "DOUBLE_SPEND_ATTEMPTED" {
            assert_eq!(
                status.state,
                TxState::DoubleSpendAttempted {
                    competing_txs: vec![OTHER_TXID.parse().unwrap()]
                }
            );
        }
    }
    let body = format!(
        r#"{{"blockHash":"{BLOCK_HASH}","blockHeight":900,"competingTxs":null,"extraInfo":"","merklePath":"{}","timestamp":"2025-01-01T00:00:00Z","txStatus":"MINED","txid":"{txid}"}}"#,
        bump(900, txid).to_hex()
    );
    mock.on(&route, vec![reply(200, body)]);
    let status = client.status(&txid).await.unwrap().unwrap();
    assert_eq!(status.state.code(), 120);
    let TxState::Mined(inclusion) = status.state else {
        panic!()
    };
    assert_eq!(
        inclusion.merkle_path.compute_root(&txid).unwrap(),
        bump(900, txid).root()
    );

    mock.on(
        &route,
        vec![reply(
            404,
            arc_error(
                404,
                "Not found",
                "The requested resource could not be found",
                "transaction not found",
                None,
            ),
        )],
    );
    assert_eq!(client.status(&txid).await.unwrap(), None);

    mock.on(
        &route,
        vec![reply(
            401,
            r#"{"title":"Unauthorized","status":401,"detail":"bad key"}"#,
        )],
    );
    let err = client.status(&txid).await.unwrap_err();
    assert!(
        matches!(
            err,
            BroadcastError::Rejected {
                code: RejectCode::Http {
                    code: ArcErrorCode::Unauthorized,
                    status: 401
                },
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// ARC: errors and retries

#[tokio::test]
async fn every_error_code_is_a_typed_rejection_and_is_never_retried() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let tx = ef(3);
    let txid = tx.txid();
    let cases = [
        (400, ArcErrorCode::BadRequest, "Bad request"),
        (401, ArcErrorCode::Unauthorized, "Unauthorized"),
        (404, ArcErrorCode::NotFound, "Not found"),
        (409, ArcErrorCode::Generic, "Generic error"),
        (422, ArcErrorCode::Unprocessable, "Unprocessable entity"),
        (460, ArcErrorCode::TxFormat, "Not extended format"),
        (461, ArcErrorCode::UnlockingScripts, "Malformed transaction"),
        (462, ArcErrorCode::Inputs, "Invalid inputs"),
        (463, ArcErrorCode::Malformed, "Malformed transaction"),
        (464, ArcErrorCode::Outputs, "Invalid outputs"),
        (465, ArcErrorCode::Fees, "Fee too low"),
        (466, ArcErrorCode::Conflict, "Conflicting tx found"),
        (
            467,
            ArcErrorCode::MinedAncestorsNotFound,
            "Mined ancestors not found",
        ),
        (468, ArcErrorCode::InvalidBumps, "Invalid BUMPs"),
        (470, ArcErrorCode::Other(470), "Unassigned"),
        (471, ArcErrorCode::FrozenPolicy, "Input Frozen"),
        (472, ArcErrorCode::FrozenConsensus, "Input Frozen"),
        (
            473,
            ArcErrorCode::CumulativeFees,
            "Cumulative fee validation failed",
        ),
        (
            474,
            ArcErrorCode::TxSize,
            "Transaction size validation failed",
        ),
        (
            475,
            ArcErrorCode::MinedAncestorsNotFound,
            "Mined ancestors not found",
        ),
    ];
    for (status, code, title) in cases {
        mock.reset();
        let extra = format!("reason for {status}");
        mock.on(
            "POST /v1/tx",
            vec![reply(
                status,
                arc_error(status, title, "see extraInfo", &extra, Some(&txid)),
            )],
        );
        let err = client.broadcast(&tx).await.unwrap_err();
        assert_eq!(
            err,
            BroadcastError::Rejected {
                txid: Some(txid),
                code: RejectCode::Http { code, status },
                detail: format!("{title}: see extraInfo ({extra})"),
            },
            "{status}"
        );
        assert!(!err.is_transient());
        assert_eq!(
            mock.count("POST /v1/tx"),
            1,
            "HTTP {status} must not be retried"
        );
    }
}

#[tokio::test]
async fn transient_faults_are_retried_with_backoff_then_succeed_or_give_up() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let tx = ef(4);
    let txid = tx.txid();
    mock.on(
        "POST /v1/tx",
        vec![
            reply(
                469,
                arc_error(
                    469,
                    "Merkle Roots validation failed",
                    "Error validating BEEF: could not validate Merkle Roots",
                    "",
                    None,
                ),
            ),
            reply(
                503,
                r#"{"title":"Service Unavailable","status":503,"detail":"try later"}"#,
            ),
            reply(502, "<html><body>Bad Gateway</body></html>"),
            reply(200, tx_response(&txid, "SEEN_ON_NETWORK", "")),
        ],
    );
    let outcome = client.broadcast(&tx).await.unwrap();
    assert!(matches!(&outcome, BroadcastOutcome::Accepted(s) if s.state == TxState::SeenOnNetwork));
    let seen = mock.seen("POST /v1/tx");
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter().all(|s| s.body == tx.to_bytes()),
        "every retry sends the same EF bytes"
    );

    mock.reset();
    mock.on("POST /v1/tx", vec![reply(500, "internal error")]);
    let err = client.broadcast(&tx).await.unwrap_err();
    assert_eq!(
        err,
        BroadcastError::Unavailable {
            attempts: 4,
            last: ServiceFault::Http {
                status: 500,
                detail: "internal error".into()
            }
        }
    );
    assert!(err.is_transient());
    assert_eq!(mock.count("POST /v1/tx"), 4);

    // A connection that cannot be made: nothing listens on the port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = arc(&format!("http://{closed}"))
        .broadcast(&tx)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BroadcastError::Unavailable {
                attempts: 4,
                last: ServiceFault::Connection { .. }
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_request_that_times_out_is_retried() {
    let (mock, url) = serve().await;
    let mut cfg = ArcConfig::new(&url);
    cfg.retry = FAST;
    cfg.request_timeout = Duration::from_millis(300);
    let client = ArcClient::new(cfg).unwrap();
    let tx = ef(5);
    mock.on(
        "POST /v1/tx",
        vec![
            Canned::Hang,
            reply(200, tx_response(&tx.txid(), "STORED", "")),
        ],
    );
    let outcome = client.broadcast(&tx).await.unwrap();
    assert!(matches!(&outcome, BroadcastOutcome::Accepted(s) if s.state == TxState::Stored));
    assert_eq!(mock.count("POST /v1/tx"), 2);
}

#[tokio::test]
async fn already_known_seen_and_mined_are_success() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let tx = ef(6);
    let txid = tx.txid();
    mock.on(
        "POST /v1/tx",
        vec![
            reply(200, tx_response(&txid, "SEEN_ON_NETWORK", "")),
            reply(200, tx_response(&txid, "SEEN_ON_NETWORK", "")),
            reply(200, mined_response(&txid)),
            reply(
                409,
                arc_error(
                    409,
                    "Generic error",
                    "Transaction could not be processed",
                    "257: txn-already-known",
                    Some(&txid),
                ),
            ),
            reply(
                465,
                arc_error(
                    465,
                    "Fee too low",
                    "Fees are too low",
                    "Transaction already in the mempool",
                    None,
                ),
            ),
        ],
    );
    for expected in ["SEEN_ON_NETWORK", "SEEN_ON_NETWORK", "MINED"] {
        let outcome = client.broadcast(&tx).await.unwrap();
        assert!(outcome.is_success());
        assert!(
            matches!(&outcome, BroadcastOutcome::Accepted(s) if s.state.name() == expected && s.txid == txid)
        );
    }
    for detail in [
        "Generic error: Transaction could not be processed (257: txn-already-known)",
        "Fee too low: Fees are too low (Transaction already in the mempool)",
    ] {
        let outcome = client.broadcast(&tx).await.unwrap();
        assert_eq!(
            outcome,
            BroadcastOutcome::AlreadyKnown {
                txid,
                detail: detail.into()
            }
        );
        assert!(outcome.is_success());
    }
    assert_eq!(mock.count("POST /v1/tx"), 5);
}

#[tokio::test]
async fn options_and_the_api_key_are_sent() {
    let (mock, url) = serve().await;
    let mut cfg = ArcConfig::new(format!("{url}/"));
    cfg.retry = FAST;
    cfg.api_key = Some("secret-key".into());
    cfg.wait_for = Some(WaitFor::SeenOnNetwork);
    cfg.max_timeout_secs = Some(12);
    cfg.request_timeout = Duration::from_secs(20);
    let client = ArcClient::new(cfg).unwrap();
    let tx = ef(7);
    mock.on(
        "POST /v1/tx",
        vec![reply(200, tx_response(&tx.txid(), "SEEN_ON_NETWORK", ""))],
    );
    client.broadcast(&tx).await.unwrap();
    let seen = &mock.seen("POST /v1/tx")[0];
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(header("authorization"), "Bearer secret-key");
    assert_eq!(header("content-type"), "application/octet-stream");
    assert_eq!(header("x-waitfor"), "SEEN_ON_NETWORK");
    assert_eq!(header("x-maxtimeout"), "12");
    assert_eq!(seen.body, tx.to_bytes());

    let route = format!("GET /v1/tx/{}", tx.txid());
    mock.on(&route, vec![reply(404, "")]);
    assert_eq!(client.status(&tx.txid()).await.unwrap(), None);
    assert_eq!(
        mock.seen(&route)[0].headers.get("authorization").unwrap(),
        "Bearer secret-key"
    );
}

#[tokio::test]
async fn malformed_answers_are_typed_errors_and_not_retried() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let tx = ef(8);
    let txid = tx.txid();
    let mut no_path = mined_response(&txid);
    no_path = no_path.replace(
        &format!(r#""merklePath":"{}""#, bump(900, txid).to_hex()),
        r#""merklePath":"""#,
    );
    let wrong_height =
        mined_response(&txid).replace(r#""blockHeight":900"#, r#""blockHeight":901"#);
    let cases = [
        ("not JSON".to_string(), "not a TransactionResponse"),
        (
            r#"{"txid":5,"txStatus":"SEEN_ON_NETWORK"}"#.to_string(),
            "not a TransactionResponse",
        ),
        (
            format!(r#"[{}]"#, tx_response(&txid, "SEEN_ON_NETWORK", "")),
            "not a TransactionResponse",
        ),
        (
            tx_response(&txid, "BOGUS_STATUS", ""),
            "unknown txStatus \"BOGUS_STATUS\"",
        ),
        (
            tx_response(&OTHER_TXID.parse().unwrap(), "SEEN_ON_NETWORK", ""),
            "answer is about",
        ),
        (r#"{"status":200,"title":"OK"}"#.to_string(), "no txid"),
        (no_path, "MINED without merklePath"),
        (
            wrong_height,
            "merklePath is for height 900, blockHeight is 901",
        ),
        (mined_response(&txid).replace(BLOCK_HASH, "zz"), "blockHash"),
        (
            tx_response(&txid, "DOUBLE_SPEND_ATTEMPTED", "")
                .replace(r#""competingTxs":null"#, r#""competingTxs":["nope"]"#),
            "competingTxs entry",
        ),
    ];
    for (body, expected) in cases {
        mock.reset();
        mock.on("POST /v1/tx", vec![reply(200, body.clone())]);
        match client.broadcast(&tx).await {
            Err(BroadcastError::MalformedResponse { detail }) => {
                assert!(detail.contains(expected), "{detail} / {body}")
            }
            other => panic!("{body}: {other:?}"),
        }
        assert_eq!(mock.count("POST /v1/tx"), 1);
    }
    // A MINED path that proves another transaction.
    mock.reset();
    let other = OTHER_TXID.parse().unwrap();
    let body = mined_response(&txid).replace(&bump(900, txid).to_hex(), &bump(900, other).to_hex());
    mock.on("POST /v1/tx", vec![reply(200, body)]);
    let err = client.broadcast(&tx).await.unwrap_err();
    assert!(
        matches!(&err, BroadcastError::MalformedResponse { detail } if detail.contains("does not prove")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------
// ARC: batches

#[tokio::test]
async fn batch_answers_mixing_results_and_errors_are_matched_by_txid() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let txs: Vec<EfTransaction> = (10..15).map(ef).collect();
    let id: Vec<Txid> = txs.iter().map(EfTransaction::txid).collect();
    // ARC lists successes first, then failures (mergeSuccessAndFailResults);
    // tx 3 gets 469 and is sent again alone; tx 4 gets an error without txid.
    let first = format!(
        "[{},{},{},{},{}]",
        tx_response(&id[2], "SEEN_ON_NETWORK", ""),
        mined_response(&id[0]),
        arc_error(
            461,
            "Malformed transaction",
            "Transaction is malformed and cannot be processed",
            "script failed",
            Some(&id[1])
        ),
        arc_error(
            469,
            "Merkle Roots validation failed",
            "could not validate Merkle Roots",
            "",
            Some(&id[3])
        ),
        arc_error(
            463,
            "Malformed transaction",
            "Transaction is malformed and cannot be processed",
            "undecodable",
            None
        ),
    );
    let second = format!("[{}]", tx_response(&id[3], "ACCEPTED_BY_NETWORK", ""));
    mock.on("POST /v1/txs", vec![reply(200, first), reply(200, second)]);
    let results = client.broadcast_batch(&txs).await.unwrap();
    assert_eq!(results.len(), 5);
    assert!(
        matches!(&results[0], Ok(BroadcastOutcome::Accepted(s)) if s.txid == id[0] && s.state.code() == 120)
    );
    assert!(matches!(
        &results[1],
        Err(BroadcastError::Rejected { txid: Some(t), code: RejectCode::Http { code: ArcErrorCode::UnlockingScripts, status: 461 }, .. }) if *t == id[1]
    ));
    assert!(
        matches!(&results[2], Ok(BroadcastOutcome::Accepted(s)) if s.txid == id[2] && s.state == TxState::SeenOnNetwork)
    );
    assert!(
        matches!(&results[3], Ok(BroadcastOutcome::Accepted(s)) if s.txid == id[3] && s.state == TxState::AcceptedByNetwork)
    );
    assert!(matches!(
        &results[4],
        Err(BroadcastError::Rejected { txid: Some(t), code: RejectCode::Http { code: ArcErrorCode::Malformed, status: 463 }, .. }) if *t == id[4]
    ));
    let seen = mock.seen("POST /v1/txs");
    assert_eq!(seen.len(), 2);
    let all: Vec<u8> = txs.iter().flat_map(EfTransaction::to_bytes).collect();
    assert_eq!(seen[0].body, all);
    assert_eq!(
        seen[1].body,
        txs[3].to_bytes(),
        "only the transient one is sent again"
    );
    assert_eq!(
        seen[0].headers.get("content-type").unwrap(),
        "application/octet-stream"
    );
}

#[tokio::test]
async fn batch_failures_as_a_whole() {
    let (mock, url) = serve().await;
    let client = arc(&url);
    let txs: Vec<EfTransaction> = (20..22).map(ef).collect();
    let id: Vec<Txid> = txs.iter().map(EfTransaction::txid).collect();

    mock.on(
        "POST /v1/txs",
        vec![reply(
            400,
            arc_error(
                400,
                "Bad request",
                "The request seems to be malformed and cannot be processed",
                "",
                None,
            ),
        )],
    );
    let err = client.broadcast_batch(&txs).await.unwrap_err();
    assert!(
        matches!(
            err,
            BroadcastError::Rejected {
                txid: None,
                code: RejectCode::Http {
                    code: ArcErrorCode::BadRequest,
                    status: 400
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.count("POST /v1/txs"), 1);

    mock.reset();
    mock.on("POST /v1/txs", vec![reply(503, "down")]);
    let err = client.broadcast_batch(&txs).await.unwrap_err();
    assert!(
        matches!(err, BroadcastError::Unavailable { attempts: 4, .. }),
        "{err:?}"
    );
    assert_eq!(mock.count("POST /v1/txs"), 4);

    mock.reset();
    mock.on("POST /v1/txs", vec![reply(200, r#"{"not":"an array"}"#)]);
    assert!(matches!(
        client.broadcast_batch(&txs).await,
        Err(BroadcastError::MalformedResponse { .. })
    ));

    // One answer missing: that transaction gets a typed error of its own.
    mock.reset();
    mock.on(
        "POST /v1/txs",
        vec![reply(
            200,
            format!("[{}]", tx_response(&id[1], "STORED", "")),
        )],
    );
    let results = client.broadcast_batch(&txs).await.unwrap();
    assert!(
        matches!(&results[0], Err(BroadcastError::MalformedResponse { detail }) if detail.contains(&id[0].to_string()))
    );
    assert!(matches!(&results[1], Ok(BroadcastOutcome::Accepted(s)) if s.state == TxState::Stored));

    // A transaction still transient after every attempt.
    mock.reset();
    let answer = format!(
        "[{},{}]",
        tx_response(&id[0], "SEEN_ON_NETWORK", ""),
        arc_error(469, "Merkle Roots validation failed", "x", "", Some(&id[1]))
    );
    mock.on(
        "POST /v1/txs",
        vec![
            reply(200, answer),
            reply(
                200,
                format!(
                    "[{}]",
                    arc_error(469, "Merkle Roots validation failed", "x", "", Some(&id[1]))
                ),
            ),
        ],
    );
    let results = client.broadcast_batch(&txs).await.unwrap();
    assert!(results[0].is_ok());
    assert!(matches!(
        &results[1],
        Err(BroadcastError::Unavailable {
            attempts: 4,
            last: ServiceFault::Http { status: 469, .. }
        })
    ));
    assert_eq!(mock.count("POST /v1/txs"), 4);
}

// ---------------------------------------------------------------------------
// Block Headers Service

const ROOT_1000: &str = "105a44810a039138ad0cd7c3f254c0290f8081b609ef39d6b7ed7261c3f86457";
const ROOT_1008: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const VERIFY: &str = "POST /api/v1/chain/merkleroot/verify";
const TIP: &str = "GET /api/v1/chain/tip/longest";

fn verify_answer(state: &str, entries: &[(u32, &str, &str)]) -> String {
    let entries: Vec<String> = entries
        .iter()
        .map(|(h, root, c)| format!(r#"{{"blockHash":"{BLOCK_HASH}","blockHeight":{h},"merkleRoot":"{root}","confirmation":"{c}"}}"#))
        .collect();
    format!(
        r#"{{"confirmationState":"{state}","confirmations":[{}]}}"#,
        entries.join(",")
    )
}

fn tip_answer(height: u32) -> String {
    format!(
        r#"{{"header":{{"hash":"{BLOCK_HASH}","version":536870912,"merkleRoot":"{ROOT_1000}","creationTimestamp":1700000000,"difficultyTarget":545259519,"nonce":7,"prevBlockHash":"{BLOCK_HASH}","work":"2"}},"state":"LONGEST_CHAIN","chainWork":"100","height":{height}}}"#
    )
}

fn headers_client(url: &str, clock: Arc<ManualClock>) -> HeadersClient {
    let mut cfg = HeadersConfig::new(url);
    cfg.retry = FAST;
    cfg.tip_ttl = Duration::from_secs(5);
    cfg.min_cache_depth = 6;
    HeadersClient::with_clock(cfg, clock).unwrap()
}

fn root(hex: &str) -> Hash256 {
    Hash256::from_display_hex(hex).unwrap()
}

#[tokio::test]
async fn only_confirmed_roots_are_valid() {
    let (mock, url) = serve().await;
    let client = headers_client(&url, Arc::new(ManualClock::new()));
    mock.on(
        VERIFY,
        vec![
            reply(
                200,
                verify_answer("CONFIRMED", &[(1000, ROOT_1000, "CONFIRMED")]),
            ),
            reply(
                200,
                verify_answer("UNCONFIRMED", &[(1000, ROOT_1000, "UNCONFIRMED")]),
            ),
            reply(
                200,
                r#"[{"confirmationState":"CONFIRMED","confirmations":[]}]"#,
            ),
            reply(200, r#"{"confirmationState":"INVALID"}"#),
        ],
    );
    let answers = [true, false, true, false];
    for expected in answers {
        assert_eq!(
            client
                .is_valid_root_for_height(&root(ROOT_1000), 1000)
                .await
                .unwrap(),
            expected
        );
    }
    let seen = mock.seen(VERIFY);
    assert_eq!(seen.len(), 4, "without a tip nothing is cached");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!([{ "merkleRoot": ROOT_1000, "blockHeight": 1000 }])
    );
    assert_eq!(
        seen[0].headers.get("content-type").unwrap(),
        "application/json"
    );
}

#[tokio::test]
async fn deep_confirmed_roots_are_cached_shallow_and_negative_ones_are_not() {
    let (mock, url) = serve().await;
    let client = headers_client(&url, Arc::new(ManualClock::new()));
    mock.on(TIP, vec![reply(200, tip_answer(1010))]);
    assert_eq!(client.current_height().await.unwrap(), 1010);
    mock.on(
        VERIFY,
        vec![reply(
            200,
            verify_answer(
                "UNCONFIRMED",
                &[
                    (1000, ROOT_1000, "CONFIRMED"),
                    (1008, ROOT_1008, "CONFIRMED"),
                    (1009, ROOT_1008, "UNCONFIRMED"),
                ],
            ),
        )],
    );
    let claims = [
        RootClaim {
            height: 1000,
            root: root(ROOT_1000),
        },
        RootClaim {
            height: 1008,
            root: root(ROOT_1008),
        },
        RootClaim {
            height: 1009,
            root: root(ROOT_1008),
        },
        RootClaim {
            height: 1000,
            root: root(ROOT_1000),
        },
    ];
    assert_eq!(
        client.confirm_roots(&claims).await.unwrap(),
        [true, true, false, true]
    );
    let seen = mock.seen(VERIFY);
    assert_eq!(seen.len(), 1, "one request for the batch");
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body.as_array().unwrap().len(), 3, "duplicates asked once");

    // 1000 is 11 deep: cached. 1008 is 3 deep and 1009 unconfirmed: asked again.
    assert!(client
        .is_valid_root_for_height(&root(ROOT_1000), 1000)
        .await
        .unwrap());
    assert_eq!(mock.count(VERIFY), 1);
    assert_eq!(
        client.confirm_roots(&claims).await.unwrap(),
        [true, true, false, true]
    );
    let seen = mock.seen(VERIFY);
    assert_eq!(seen.len(), 2);
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!([{ "merkleRoot": ROOT_1008, "blockHeight": 1008 }, { "merkleRoot": ROOT_1008, "blockHeight": 1009 }])
    );
}

#[tokio::test]
async fn the_tip_is_reused_for_its_time_to_live() {
    let (mock, url) = serve().await;
    let clock = Arc::new(ManualClock::new());
    let client = headers_client(&url, clock.clone());
    mock.on(
        TIP,
        vec![reply(200, tip_answer(1010)), reply(200, tip_answer(1011))],
    );
    assert_eq!(client.current_height().await.unwrap(), 1010);
    clock.advance(Duration::from_millis(4999));
    assert_eq!(client.current_height().await.unwrap(), 1010);
    assert_eq!(mock.count(TIP), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(client.current_height().await.unwrap(), 1011);
    assert_eq!(mock.count(TIP), 2);
}

#[tokio::test]
async fn headers_by_height_and_tracker_errors() {
    let (mock, url) = serve().await;
    let client = headers_client(&url, Arc::new(ManualClock::new()));
    let header = format!(
        r#"{{"height":1000,"hash":"{BLOCK_HASH}","version":1,"merkleRoot":"{ROOT_1000}","creationTimestamp":1700000000,"difficultyTarget":545259519,"nonce":42,"prevBlockHash":"{ROOT_1008}","work":"2","cumulatedWork":"2000"}}"#
    );
    let route = "GET /api/v1/chain/header/byHeight?height=1000";
    mock.on(
        route,
        vec![
            reply(200, header.clone()),
            reply(200, format!("[{header}]")),
            reply(200, "[]"),
            reply(404, ""),
        ],
    );
    for _ in 0..2 {
        let h = client.header_by_height(1000).await.unwrap().unwrap();
        assert_eq!(
            (h.height, h.version, h.timestamp, h.bits, h.nonce),
            (1000, 1, 1_700_000_000, 545_259_519, 42)
        );
        assert_eq!(
            (h.merkle_root, h.hash, h.prev_block_hash),
            (root(ROOT_1000), root(BLOCK_HASH), root(ROOT_1008))
        );
    }
    assert_eq!(client.header_by_height(1000).await.unwrap(), None);
    assert_eq!(client.header_by_height(1000).await.unwrap(), None);
    mock.on(
        route,
        vec![reply(
            200,
            header.replace(r#""height":1000"#, r#""height":999"#),
        )],
    );
    assert!(
        matches!(client.header_by_height(1000).await, Err(TrackerError::MalformedResponse { detail }) if detail.contains("height 999"))
    );

    mock.on(TIP, vec![reply(200, r#"{"state":"LONGEST_CHAIN"}"#)]);
    assert!(matches!(
        client.current_height().await,
        Err(TrackerError::MalformedResponse { .. })
    ));
    mock.on(VERIFY, vec![reply(401, "unauthorized")]);
    assert_eq!(
        client
            .is_valid_root_for_height(&root(ROOT_1000), 1000)
            .await,
        Err(TrackerError::Refused {
            status: 401,
            detail: "unauthorized".into()
        })
    );
    mock.reset();
    mock.on(VERIFY, vec![reply(503, "busy")]);
    assert_eq!(
        client
            .is_valid_root_for_height(&root(ROOT_1000), 1000)
            .await,
        Err(TrackerError::Unavailable {
            attempts: 4,
            last: ServiceFault::Http {
                status: 503,
                detail: "busy".into()
            }
        })
    );
    assert_eq!(mock.count(VERIFY), 4);
    mock.on(
        VERIFY,
        vec![reply(
            200,
            verify_answer("CONFIRMED", &[(1000, "xyz", "CONFIRMED")]),
        )],
    );
    assert!(matches!(
        client
            .is_valid_root_for_height(&root(ROOT_1000), 1000)
            .await,
        Err(TrackerError::MalformedResponse { .. })
    ));
}

#[tokio::test]
async fn verify_beef_resolves_the_sample_through_the_headers_service() {
    let (mock, url) = serve().await;
    let client = headers_client(&url, Arc::new(ManualClock::new()));
    let sample = escrowd::sample::build().unwrap();
    let opts = VerifyOptions {
        eras: bsv_format::spv::ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    mock.on(TIP, vec![reply(200, tip_answer(1010))]);
    mock.on(
        VERIFY,
        vec![reply(
            200,
            verify_answer("CONFIRMED", &[(1000, ROOT_1000, "CONFIRMED")]),
        )],
    );
    let verified = verify_beef(&client, sample.beef.clone(), &opts)
        .await
        .unwrap();
    assert_eq!(
        verified.subject().to_string(),
        "2a7305dd3a5a68ab3ec5161125733cbaab0fb7cd1c9ce11cff4664f97392ba22"
    );
    assert_eq!(verified.tip_height(), 1010);
    assert_eq!(
        verified.roots(),
        [RootClaim {
            height: 1000,
            root: root(ROOT_1000)
        }]
    );

    let client = headers_client(&url, Arc::new(ManualClock::new()));
    mock.on(
        VERIFY,
        vec![reply(
            200,
            verify_answer("UNCONFIRMED", &[(1000, ROOT_1000, "UNCONFIRMED")]),
        )],
    );
    assert_eq!(
        verify_beef(&client, sample.beef.clone(), &opts)
            .await
            .unwrap_err(),
        VerifyBeefError::Invalid(VerifyError::RootNotConfirmed {
            height: 1000,
            root: root(ROOT_1000)
        })
    );
    mock.on(VERIFY, vec![reply(500, "down")]);
    assert!(matches!(
        verify_beef(&client, sample.beef, &opts).await,
        Err(VerifyBeefError::Tracker(TrackerError::Unavailable {
            attempts: 4,
            ..
        }))
    ));
}

// ---------------------------------------------------------------------------
// Spend watcher

#[tokio::test]
async fn spend_watcher_found_unspent_malformed_and_retried() {
    let (mock, url) = serve().await;
    let mut cfg = SpendConfig::new(format!("{url}/v1"));
    cfg.retry = FAST;
    let client = SpendClient::new(cfg).unwrap();
    let outpoint = Outpoint::new(ef(30).txid(), 3);
    let route = format!("GET /v1/tx/{}/3/spent", outpoint.txid);
    mock.on(
        &route,
        vec![
            reply(200, format!(r#"{{"txid":"{OTHER_TXID}","vin":2}}"#)),
            reply(
                200,
                format!(r#"{{"txid":"{OTHER_TXID}","vin":0,"status":"confirmed"}}"#),
            ),
            reply(404, ""),
            reply(200, r#"{"txid":"zz","vin":0}"#),
            reply(200, r#"{"vin":0}"#),
            reply(503, "busy"),
            reply(200, format!(r#"{{"txid":"{THIRD_TXID}","vin":1}}"#)),
            reply(403, "forbidden"),
        ],
    );
    let other: Txid = OTHER_TXID.parse().unwrap();
    assert_eq!(
        client.spent_by(&outpoint).await.unwrap(),
        Some(SpendingInput {
            txid: other,
            vin: 2
        })
    );
    assert_eq!(
        client.spent_by(&outpoint).await.unwrap(),
        Some(SpendingInput {
            txid: other,
            vin: 0
        })
    );
    assert_eq!(client.spent_by(&outpoint).await.unwrap(), None);
    for _ in 0..2 {
        assert!(matches!(
            client.spent_by(&outpoint).await,
            Err(SpendWatchError::MalformedResponse { .. })
        ));
    }
    let third: Txid = THIRD_TXID.parse().unwrap();
    assert_eq!(
        client.spent_by(&outpoint).await.unwrap(),
        Some(SpendingInput {
            txid: third,
            vin: 1
        })
    );
    assert_eq!(mock.count(&route), 7, "the 503 was retried once");
    assert_eq!(
        client.spent_by(&outpoint).await,
        Err(SpendWatchError::Refused {
            status: 403,
            detail: "forbidden".into()
        })
    );
}

// ---------------------------------------------------------------------------
// Transaction source

#[tokio::test]
async fn tx_source_found_unknown_malformed_wrong_and_retried() {
    let (mock, url) = serve().await;
    let mut cfg = TxConfig::new(format!("{url}/v1"));
    cfg.retry = FAST;
    let client = TxClient::new(cfg.clone()).unwrap();
    let tx = ef(50).tx;
    let txid = tx.txid();
    let other = ef(51).tx;
    let route = format!("GET /v1/tx/{txid}/hex");
    mock.on(
        &route,
        vec![
            reply(200, format!("  {}\n", tx.to_hex())),
            reply(404, ""),
            reply(200, "zz"),
            reply(200, other.to_hex()),
            reply(200, format!("{}00", tx.to_hex())),
            reply(503, "busy"),
            reply(200, tx.to_hex()),
            reply(403, "forbidden"),
        ],
    );
    assert_eq!(client.transaction(&txid).await, Ok(Some(tx.clone())));
    assert_eq!(client.transaction(&txid).await, Ok(None));
    assert!(matches!(
        client.transaction(&txid).await,
        Err(TransactionSourceError::MalformedResponse { detail })
            if detail.starts_with(&format!("GET /tx/{txid}/hex: body is not a raw transaction in hex"))
    ));
    assert_eq!(
        client.transaction(&txid).await,
        Err(TransactionSourceError::WrongTransaction {
            asked: txid,
            got: other.txid()
        })
    );
    assert!(matches!(
        client.transaction(&txid).await,
        Err(TransactionSourceError::MalformedResponse { detail }) if detail.contains("trailing")
    ));
    assert_eq!(client.transaction(&txid).await, Ok(Some(tx.clone())));
    assert_eq!(mock.count(&route), 7, "the 503 was retried once");
    assert_eq!(
        client.transaction(&txid).await,
        Err(TransactionSourceError::Refused {
            status: 403,
            detail: "forbidden".into()
        })
    );

    // Transient faults through every attempt.
    mock.on(&route, vec![reply(502, "bad gateway")]);
    assert!(matches!(
        client.transaction(&txid).await,
        Err(TransactionSourceError::Unavailable {
            attempts: 4,
            last: ServiceFault::Http { status: 502, .. }
        })
    ));

    // A body above the cap is refused unread.
    cfg.max_tx_bytes = 10;
    let small = TxClient::new(cfg).unwrap();
    mock.on(&route, vec![reply(200, tx.to_hex())]);
    assert!(matches!(
        small.transaction(&txid).await,
        Err(TransactionSourceError::MalformedResponse { detail }) if detail.contains("exceeds 84 bytes")
    ));
}

// ---------------------------------------------------------------------------
// The command line with --headers URL

fn run_cli(args: Vec<String>) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beef_verify_asks_a_headers_service_given_a_url() {
    let (mock, url) = serve().await;
    let beef = format!("{}/examples/sample.beef.hex", env!("CARGO_MANIFEST_DIR"));
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "beef",
            "verify",
            beef.as_str(),
            "--chain",
            "regtest",
            "--headers",
            url.as_str(),
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    mock.on(TIP, vec![reply(200, tip_answer(1010))]);
    mock.on(
        VERIFY,
        vec![reply(
            200,
            verify_answer("CONFIRMED", &[(1000, ROOT_1000, "CONFIRMED")]),
        )],
    );
    let a = args(&["--json"]);
    let out = tokio::task::spawn_blocking(move || run_cli(a))
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["tip_height"], 1010);
    assert_eq!(
        doc["roots"],
        serde_json::json!([{ "height": 1000, "root": ROOT_1000 }])
    );
    assert_eq!(mock.count(VERIFY), 1);

    mock.on(VERIFY, vec![reply(200, verify_answer("UNCONFIRMED", &[]))]);
    let a = args(&["--json"]);
    let out = tokio::task::spawn_blocking(move || run_cli(a))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["rule"], "root_not_confirmed");

    mock.on(VERIFY, vec![reply(401, "no key")]);
    let a = args(&[]);
    let out = tokio::task::spawn_blocking(move || run_cli(a))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("headers service") && stderr.contains("HTTP 401"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------
// Round trip against the real chainsim

#[tokio::test]
async fn round_trip_against_chainsim() {
    use bsv_format::beef::Beef;
    use bsv_format::hash::sha256;
    use bsv_format::keys::{Network, PrivateKey};
    use bsv_format::script::templates::{p2pkh_lock, p2pkh_unlock, sign_input};
    use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_FORKID};
    use escrowd::chainsim::{Chainsim, ChainsimConfig};

    let sim = Chainsim::start(ChainsimConfig::default()).await.unwrap();
    let url = sim.url();
    let arc = arc(&url);
    let mut cfg = HeadersConfig::new(&url);
    cfg.retry = FAST;
    cfg.tip_ttl = Duration::ZERO;
    let headers = HeadersClient::new(cfg).unwrap();
    let mut cfg = SpendConfig::new(format!("{url}/v1"));
    cfg.retry = FAST;
    let spends = SpendClient::new(cfg).unwrap();
    let mut cfg = TxConfig::new(format!("{url}/v1"));
    cfg.retry = FAST;
    let txs = TxClient::new(cfg).unwrap();
    let http = reqwest::Client::new();
    let sim_post = |path: &str, body: serde_json::Value| {
        let req = http.post(format!("{url}{path}")).json(&body);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };

    // Fund a key with the faucet (its BEEF proves the funding transaction).
    let alice = PrivateKey::from_bytes(&sha256(b"chain_clients alice")).unwrap();
    let bob = PrivateKey::from_bytes(&sha256(b"chain_clients bob")).unwrap();
    let address = alice.public_key().address(Network::Testnet);
    let paid = sim_post(
        "/sim/faucet",
        serde_json::json!({ "address": address, "satoshis": 100_000 }),
    )
    .await;
    let mut beef = Beef::from_hex(paid["beef"].as_str().unwrap()).unwrap();
    let funding_txid: Txid = paid["txid"].as_str().unwrap().parse().unwrap();
    let vout = paid["vout"].as_u64().unwrap() as u32;
    let funding = beef
        .find(&funding_txid)
        .unwrap()
        .transaction()
        .unwrap()
        .clone();
    let coin = Outpoint::new(funding_txid, vout);
    let source = funding.outputs[vout as usize].clone();

    // Alice pays Bob; a second version with another fee double-spends it.
    let pay = |fee: u64| {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: coin,
                unlocking_script: Script::default(),
                sequence: 0xffff_ffff,
            }],
            outputs: vec![TxOut {
                satoshis: source.satoshis - fee,
                locking_script: p2pkh_lock(&bob.public_key().hash160()),
            }],
            lock_time: 0,
        };
        let sig = sign_input(
            &tx,
            0,
            &source.locking_script,
            source.satoshis,
            SIGHASH_ALL | SIGHASH_FORKID,
            &alice,
        )
        .unwrap();
        tx.inputs[0].unlocking_script = p2pkh_unlock(&sig, &alice.public_key()).unwrap();
        EfTransaction::new(tx, vec![source.clone()]).unwrap()
    };
    let payment = pay(500);
    let txid = payment.txid();

    assert_eq!(spends.spent_by(&coin).await.unwrap(), None);
    assert_eq!(arc.status(&txid).await.unwrap(), None);
    for _ in 0..2 {
        let outcome = arc.broadcast(&payment).await.unwrap();
        assert!(
            matches!(&outcome, BroadcastOutcome::Accepted(s) if s.txid == txid && s.state == TxState::SeenOnNetwork),
            "{outcome:?}"
        );
    }
    assert_eq!(
        spends.spent_by(&coin).await.unwrap(),
        Some(SpendingInput { txid, vin: 0 })
    );
    assert_eq!(txs.transaction(&txid).await, Ok(Some(payment.tx.clone())));
    assert_eq!(txs.transaction(&ef(41).txid()).await, Ok(None));

    // Mined: the status carries a BUMP that SPV accepts against the headers API.
    let tip = sim_post("/sim/mine", serde_json::json!({ "blocks": 1 })).await["tip"]
        .as_u64()
        .unwrap() as u32;
    assert_eq!(headers.current_height().await.unwrap(), tip);
    let status = arc.status(&txid).await.unwrap().unwrap();
    let TxState::Mined(inclusion) = status.state else {
        panic!("{status:?}")
    };
    assert_eq!(inclusion.height, tip);
    let header = headers.header_by_height(tip).await.unwrap().unwrap();
    assert_eq!(
        (header.hash, header.merkle_root),
        (inclusion.hash, inclusion.merkle_path.root())
    );
    assert!(
        matches!(arc.broadcast(&payment).await, Ok(BroadcastOutcome::Accepted(s)) if s.state.code() == 120)
    );

    beef.add_bump(inclusion.merkle_path.clone());
    beef.add_transaction(payment.tx.clone());
    let opts = VerifyOptions {
        eras: bsv_format::spv::ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    let verified = verify_beef(&headers, beef, &opts).await.unwrap();
    assert_eq!(verified.subject(), txid);
    assert!(verified.roots().contains(&RootClaim {
        height: tip,
        root: inclusion.merkle_path.root()
    }));
    assert!(!headers
        .is_valid_root_for_height(&Hash256([1; 32]), tip)
        .await
        .unwrap());

    // A competing spend of the mined coin, within chainsim's double-spend window.
    let rival = pay(600);
    let outcome = arc.broadcast(&rival).await.unwrap();
    assert!(
        matches!(outcome, BroadcastOutcome::DoubleSpendAttempted(_)),
        "{outcome:?}"
    );
    assert_eq!(outcome.competing_txs(), [txid]);

    // Spending an output that does not exist is a permanent 462.
    let err = arc.broadcast(&ef(40)).await.unwrap_err();
    assert!(
        matches!(
            err,
            BroadcastError::Rejected {
                code: RejectCode::Http {
                    code: ArcErrorCode::Inputs,
                    status: 462
                },
                ..
            }
        ),
        "{err:?}"
    );
    sim.shutdown().await.unwrap();
}
