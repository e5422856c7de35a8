//! chainsim over real HTTP on 127.0.0.1:0: the ARC, headers and /sim/ APIs
//! with literal JSON field names, every rejection code, the fault knobs,
//! reorganisations, persistence and interval mining.

#[path = "chainsim/support.rs"]
mod support;

use std::time::{Duration, Instant};

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::keys::Network;
use bsv_format::spv::{self, ScriptEras, VerifyOptions};
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Hash256, Outpoint, TxOut, Txid};
use escrowd::chainsim::block::{coinbase, BLOCK_SUBSIDY};
use escrowd::chainsim::ledger::chainsim_key;
use escrowd::chainsim::store::{SledStore, StoreError};
use escrowd::chainsim::{ChainsimConfig, ChainsimError};
use serde_json::{json, Value};
use support::*;

const START: u64 = 1_700_000_000;

fn regtest_opts() -> VerifyOptions {
    VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    }
}

fn txid_of(v: &Value) -> Txid {
    Txid::from_display_hex(v["txid"].as_str().unwrap()).unwrap()
}

/// Asserts an ARC RFC 7807 error: status, type link, txid and extraInfo text.
fn assert_arc_error(status: u16, body: &Value, code: u16, txid: Option<&Txid>, extra: &str) {
    assert_eq!(status, code, "{body}");
    assert_eq!(body["status"], code);
    assert_eq!(
        body["type"],
        format!("https://bitcoin-sv.github.io/arc/#/errors?id=_{code}")
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    match txid {
        Some(t) => assert_eq!(body["txid"], t.to_string()),
        None => assert!(body["txid"].is_null(), "{body}"),
    }
    let info = body["extraInfo"].as_str().unwrap();
    assert!(info.contains(extra), "extraInfo {info:?} lacks {extra:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_faucet_spend_mine_bump_beef_spv() {
    let sim = start().await;
    assert_eq!(sim.tip().await, 101, "genesis plus 101 initial blocks");
    let alice = key("alice");
    let bob = key("bob");

    // Faucet: a BEEF proving the funding transaction, already mined.
    let (funding, vout, funding_beef) = sim.faucet(&alice, 100_000).await;
    assert_eq!(vout, 0);
    assert_eq!(
        funding.outputs[0],
        TxOut {
            satoshis: 100_000,
            locking_script: p2pkh(&alice)
        }
    );
    assert_eq!(sim.tip().await, 102, "the faucet mined one block");
    let tracker = HttpTracker {
        url: sim.url.clone(),
        http: sim.http.clone(),
        rt: tokio::runtime::Handle::current(),
    };
    let verified =
        tokio::task::spawn_blocking(move || spv::verify(funding_beef, &tracker, &regtest_opts()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(verified.subject(), funding.txid());
    assert_eq!(verified.roots()[0].height, 102);

    // Spend with the core, broadcast as EF.
    let coin = Coin::of(&funding, 0, &alice);
    let ef = spend(&coin, &bob, 500);
    let txid = ef.txid();
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["txid"], txid.to_string());
    assert_eq!(body["txStatus"], "SEEN_ON_NETWORK");
    assert_eq!(body["status"], 200);
    assert_eq!(body["title"], "OK");
    assert!(body["merklePath"].is_null() && body["competingTxs"].is_null());
    assert_eq!(body["timestamp"], "2023-11-14T22:13:20Z");

    let (status, body) = sim.status(&txid).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK"))
    );
    assert!(body.get("status").is_none() && body.get("blockHeight").is_none());
    let (status, body) = sim.get(&format!("/v1/tx/{}/0/spent", funding.txid())).await;
    assert_eq!(
        (status, body),
        (200, json!({ "txid": txid.to_string(), "vin": 0 }))
    );

    // Unmined, the spend verifies by SPV with its scripts (sans-io, roots batched).
    let mut beef = spv_funding_beef(&sim, &funding).await;
    beef.add_transaction(ef.tx.clone());
    let request = beef.spv_request(&regtest_opts()).unwrap();
    let questions: Vec<Value> = request
        .claims()
        .iter()
        .map(|c| json!({ "merkleRoot": c.root.to_string(), "blockHeight": c.height }))
        .collect();
    let (status, answer) = sim
        .post_json("/api/v1/chain/merkleroot/verify", Value::Array(questions))
        .await;
    assert_eq!(
        (status, answer["confirmationState"].as_str()),
        (200, Some("CONFIRMED"))
    );
    let confirmed: Vec<bool> = answer["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["confirmation"] == "CONFIRMED")
        .collect();
    let verified = request.finish(&confirmed, sim.tip().await).unwrap();
    assert_eq!(verified.subject(), txid);

    // Mine: MINED with a BUMP whose root is the block header's.
    let height = sim.mine(1).await;
    assert_eq!(height, 103);
    let (status, body) = sim.status(&txid).await;
    assert_eq!(status, 200);
    assert_eq!(body["txStatus"], "MINED");
    assert_eq!(body["blockHeight"], height);
    let header = sim.header(height).await;
    assert_eq!(body["blockHash"], header["hash"]);
    let bump = MerklePath::from_hex_strict(body["merklePath"].as_str().unwrap()).unwrap();
    assert_eq!(bump.block_height(), height);
    assert_eq!(
        bump.compute_root(&txid).unwrap().to_string(),
        header["merkleRoot"].as_str().unwrap()
    );

    // Resubmitting is idempotent and reports the current status (JSON body this time).
    let (status, again) = sim
        .post_json("/v1/tx", json!({ "rawTx": ef.to_hex() }))
        .await;
    assert_eq!((status, again["txStatus"].as_str()), (200, Some("MINED")));
    assert_eq!(again["merklePath"], body["merklePath"]);

    // Funding BEEF + spend + its BUMP verifies against this chainsim's headers.
    let mut beef = spv_funding_beef(&sim, &funding).await;
    beef.add_bump(bump.clone());
    beef.add_transaction(ef.tx.clone());
    let tracker = HttpTracker {
        url: sim.url.clone(),
        http: sim.http.clone(),
        rt: tokio::runtime::Handle::current(),
    };
    let beef_hex = beef.to_hex();
    let verified =
        tokio::task::spawn_blocking(move || spv::verify(beef, &tracker, &regtest_opts()))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(verified.subject(), txid);
    assert_eq!(verified.tip_height(), 103);

    // `escrowd beef verify` accepts it against a headers file of this chain.
    let mut roots = serde_json::Map::new();
    for h in [102u32, height] {
        roots.insert(h.to_string(), sim.header(h).await["merkleRoot"].clone());
    }
    let dir = scratch_dir("beef-verify");
    std::fs::create_dir_all(&dir).unwrap();
    let (beef_file, headers_file) = (dir.join("spend.beef.hex"), dir.join("headers.json"));
    std::fs::write(&beef_file, &beef_hex).unwrap();
    std::fs::write(
        &headers_file,
        json!({ "tip": height, "roots": roots }).to_string(),
    )
    .unwrap();
    // Against the headers file, then against chainsim's headers API itself.
    let (beef_arg, headers_arg, url) = (
        beef_file.to_str().unwrap().to_string(),
        headers_file.to_str().unwrap().to_string(),
        sim.url.clone(),
    );
    let outputs = tokio::task::spawn_blocking(move || {
        [headers_arg, url].map(|headers| {
            std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
                .args([
                    "beef",
                    "verify",
                    &beef_arg,
                    "--headers",
                    &headers,
                    "--chain",
                    "regtest",
                ])
                .output()
                .unwrap()
        })
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    for out in outputs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    sim.handle.shutdown().await.unwrap();
}

/// The faucet's funding transaction as a BEEF with its BUMP, from the status API.
async fn spv_funding_beef(sim: &Sim, funding: &bsv_format::Transaction) -> Beef {
    let (_, body) = sim.status(&funding.txid()).await;
    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(MerklePath::from_hex_strict(body["merklePath"].as_str().unwrap()).unwrap());
    beef.add_transaction(funding.clone());
    beef
}

/// A chainsim with a 50,000-satoshi coin of alice's, mined.
async fn funded() -> (Sim, Coin) {
    let sim = start().await;
    let alice = key("alice");
    let (funding, vout, _) = sim.faucet(&alice, 50_000).await;
    let coin = Coin::of(&funding, vout, &alice);
    (sim, coin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_transactions_and_beef_are_460() {
    let (sim, coin) = funded().await;
    let ef = spend(&coin, &key("bob"), 300);
    let (status, body) = sim
        .post_raw("/v1/tx", "application/octet-stream", ef.tx.to_bytes())
        .await;
    assert_arc_error(status, &body, 460, None, "not extended format");
    let (_, _, beef) = sim.faucet(&key("alice"), 1_000).await;
    let (status, body) = sim
        .post_raw("/v1/tx", "text/plain", beef.to_hex().into_bytes())
        .await;
    assert_arc_error(
        status,
        &body,
        460,
        None,
        "BEEF submissions are not supported",
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_is_461() {
    let (sim, coin) = funded().await;
    let bob = key("bob");
    let ef = spend(&Coin { key: bob, ..coin }, &bob, 300);
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        461,
        Some(&ef.txid()),
        "input 0: script failed: script failed an OP_EQUALVERIFY operation (EQUALVERIFY)",
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_is_462() {
    let (sim, coin) = funded().await;
    let bob = key("bob");
    let ghost = Coin {
        outpoint: Outpoint::new(Txid([7; 32]), 0),
        ..coin.clone()
    };
    let ef = spend(&ghost, &bob, 300);
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        462,
        Some(&ef.txid()),
        &format!("input 0 spends {}, which does not exist", ghost.outpoint),
    );
    let past_end = spend(
        &Coin {
            outpoint: Outpoint::new(coin.outpoint.txid, 9),
            ..coin
        },
        &bob,
        300,
    );
    let (status, body) = sim.broadcast(&past_end).await;
    assert_arc_error(
        status,
        &body,
        462,
        Some(&past_end.txid()),
        "which does not exist",
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_spent_deeper_than_the_window_is_462() {
    let (sim, coin) = funded().await;
    let first = spend(&coin, &key("bob"), 400);
    assert_eq!(sim.broadcast(&first).await.0, 200);
    let height = sim.mine(1).await;
    sim.mine(6).await; // 7 confirmations: beyond the default 6-block double-spend window
    let late = spend(&coin, &key("carol"), 600);
    let (status, body) = sim.broadcast(&late).await;
    let expected = format!(
        "input 0 spends {}, already spent by {} mined at height {height}",
        coin.outpoint,
        first.txid()
    );
    assert_arc_error(status, &body, 462, Some(&late.txid()), &expected);
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_lying_ef_is_463() {
    let (sim, coin) = funded().await;
    let bob = key("bob");
    let mut bytes = spend(&coin, &bob, 300).to_bytes();
    bytes.truncate(bytes.len() - 3);
    let (status, body) = sim
        .post_raw("/v1/tx", "application/octet-stream", bytes)
        .await;
    assert_arc_error(
        status,
        &body,
        463,
        None,
        "malformed transaction: unexpected end of input",
    );
    // The EF claims another amount than the real output.
    let liar = Coin {
        out: TxOut {
            satoshis: 60_000,
            ..coin.out.clone()
        },
        ..coin.clone()
    };
    let ef = spend(&liar, &bob, 300);
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        463,
        Some(&ef.txid()),
        &format!(
            "input 0: EF source output (60000 sat) does not match {} (50000 sat",
            coin.outpoint
        ),
    );
    // Two inputs spending the same outpoint.
    let twice = spend_with(
        &[coin.clone(), coin.clone()],
        vec![TxOut {
            satoshis: 1_000,
            locking_script: p2pkh(&bob),
        }],
        0,
        SEQUENCE_FINAL,
    );
    let (status, body) = sim.broadcast(&twice).await;
    assert_arc_error(
        status,
        &body,
        463,
        Some(&twice.txid()),
        &format!("inputs 0 and 1 both spend {}", coin.outpoint),
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fee_below_the_rate_is_465() {
    let (sim, coin) = funded().await;
    let ef = spend(&coin, &key("bob"), 0);
    let (status, body) = sim.broadcast(&ef).await;
    let expected = format!(
        "fee 0 sat is below the required 1 sat (1 sat/kB for {} bytes)",
        ef.tx.size()
    );
    assert_arc_error(status, &body, 465, Some(&ef.txid()), &expected);
    let greedy = spend_with(
        std::slice::from_ref(&coin),
        vec![TxOut {
            satoshis: 50_001,
            locking_script: p2pkh(&key("bob")),
        }],
        0,
        SEQUENCE_FINAL,
    );
    let (status, body) = sim.broadcast(&greedy).await;
    assert_arc_error(
        status,
        &body,
        465,
        Some(&greedy.txid()),
        "outputs (50001 sat) exceed inputs (50000 sat)",
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_height_lock_not_reached_is_409_non_final() {
    let (sim, coin) = funded().await;
    let (funding2, vout2, _) = sim.faucet(&key("alice"), 50_000).await;
    let coin2 = Coin::of(&funding2, vout2, &key("alice"));
    let tip = sim.tip().await;
    let out = vec![TxOut {
        satoshis: 49_000,
        locking_script: p2pkh(&key("bob")),
    }];
    // nLockTime = tip + 1 with one sequence below 0xFFFFFFFF: not final for block tip + 1.
    let ef = spend_with(
        std::slice::from_ref(&coin),
        out.clone(),
        tip + 1,
        0xffff_fffe,
    );
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        409,
        Some(&ef.txid()),
        &format!("non-final until height {}", tip + 2),
    );
    assert_eq!(body["title"], "Generic error");
    assert_eq!(sim.status(&ef.txid()).await.0, 404, "not stored");
    // With every sequence final the same lock time is not enforced.
    let unlocked = spend_with(std::slice::from_ref(&coin2), out, tip + 1, SEQUENCE_FINAL);
    assert_eq!(
        sim.broadcast(&unlocked).await.1["txStatus"],
        "SEEN_ON_NETWORK"
    );
    // One block later the locked one is final.
    sim.mine(1).await;
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK")),
        "{body}"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_lock_not_passed_by_median_time_is_409_non_final() {
    let (sim, coin) = funded().await;
    let out = vec![TxOut {
        satoshis: 49_000,
        locking_script: p2pkh(&key("bob")),
    }];
    let lock_at = (START + 10_000) as u32;
    let ef = spend_with(std::slice::from_ref(&coin), out, lock_at, 0);
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        409,
        Some(&ef.txid()),
        &format!("non-final until time {}", lock_at + 1),
    );
    // The clock alone is not enough: median time past must pass the lock.
    let (status, body) = sim
        .post_json("/sim/clock", json!({ "set_unix": START + 20_000 }))
        .await;
    assert_eq!((status, body), (200, json!({ "now": START + 20_000 })));
    assert_eq!(sim.broadcast(&ef).await.0, 409);
    sim.mine(5).await;
    assert_eq!(
        sim.broadcast(&ef).await.0,
        409,
        "5 of the last 11 blocks past the lock: median still before it"
    );
    sim.mine(1).await;
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK")),
        "{body}"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coinbase_spends_wait_for_maturity() {
    let sim = start().await;
    let chain_key = chainsim_key("regtest").unwrap();
    let bob = key("bob");
    // The tip's coinbase (an empty block: subsidy only) is rebuilt here, as chainsim builds it.
    let tip = sim.mine(1).await;
    let cb = coinbase(tip, "regtest", 0, BLOCK_SUBSIDY, &p2pkh(&chain_key));
    let (status, body) = sim.status(&cb.txid()).await;
    assert_eq!(
        (
            status,
            body["txStatus"].as_str(),
            body["blockHeight"].as_u64()
        ),
        (200, Some("MINED"), Some(u64::from(tip)))
    );
    let coin = Coin::of(&cb, 0, &chain_key);
    let ef = spend(&coin, &bob, 1_000);
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        462,
        Some(&ef.txid()),
        &format!("of height {tip}: immature until height {}", tip + 100),
    );
    sim.mine(98).await;
    let (status, _) = sim.broadcast(&ef).await;
    assert_eq!(
        status,
        462,
        "tip + 1 = {} is still one block short",
        tip + 99
    );
    sim.mine(1).await;
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK")),
        "{body}"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_of_a_mempool_transaction_is_200_double_spend_attempted() {
    let (sim, coin) = funded().await;
    let first = spend(&coin, &key("bob"), 400);
    let second = spend(&coin, &key("carol"), 400);
    assert_eq!(sim.broadcast(&first).await.0, 200);
    let (status, body) = sim.broadcast(&second).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["txStatus"], "DOUBLE_SPEND_ATTEMPTED");
    assert_eq!(body["competingTxs"], json!([first.txid().to_string()]));
    let (_, again) = sim.broadcast(&second).await;
    assert_eq!(again["txStatus"], "DOUBLE_SPEND_ATTEMPTED", "idempotent");
    let (_, status_body) = sim.status(&second.txid()).await;
    assert_eq!(
        (
            status_body["txStatus"].as_str(),
            &status_body["competingTxs"]
        ),
        (
            Some("DOUBLE_SPEND_ATTEMPTED"),
            &json!([first.txid().to_string()])
        )
    );
    // The attempt is never mined; the first spend is.
    let height = sim.mine(1).await;
    assert_eq!(sim.status(&first.txid()).await.1["blockHeight"], height);
    assert_eq!(
        sim.status(&second.txid()).await.1["txStatus"],
        "DOUBLE_SPEND_ATTEMPTED"
    );
    assert_eq!(
        sim.get(&format!(
            "/v1/tx/{}/{}/spent",
            coin.outpoint.txid, coin.outpoint.vout
        ))
        .await
        .1["txid"],
        first.txid().to_string()
    );
    sim.handle.shutdown().await.unwrap();
}

/// `GET /v1/tx/{txid}/hex`: status, Content-Type and body.
async fn tx_hex(sim: &Sim, txid: &Txid) -> (u16, String, String) {
    let resp = sim
        .http
        .get(format!("{}/v1/tx/{txid}/hex", sim.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_hex_is_served_for_mempool_and_mined_transactions_only() {
    let (sim, coin) = funded().await;
    let first = spend(&coin, &key("bob"), 400);
    let rival = spend(&coin, &key("carol"), 500);
    let txid = first.txid();
    let (status, _, body) = tx_hex(&sim, &txid).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_arc_error(status, &body, 404, Some(&txid), "is unknown");

    // In the mempool: the raw form (not EF), as text/plain.
    assert_eq!(sim.broadcast(&first).await.0, 200);
    let raw = first.tx.to_hex();
    assert_eq!(
        tx_hex(&sim, &txid).await,
        (200, "text/plain; charset=utf-8".to_string(), raw.clone())
    );
    assert_ne!(raw, first.to_hex(), "EF differs from the raw form");
    // The funding transaction, mined by the faucet.
    let (status, _, funding) = tx_hex(&sim, &coin.outpoint.txid).await;
    assert_eq!(status, 200);
    assert_eq!(
        bsv_format::Transaction::from_hex(&funding).unwrap().txid(),
        coin.outpoint.txid
    );

    // A double-spend attempt is known to chainsim but on no network: 404.
    let (status, body) = sim.broadcast(&rival).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("DOUBLE_SPEND_ATTEMPTED"))
    );
    let (status, _, body) = tx_hex(&sim, &rival.txid()).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_arc_error(
        status,
        &body,
        404,
        Some(&rival.txid()),
        "is DOUBLE_SPEND_ATTEMPTED: in neither the mempool nor a block",
    );

    // Mined: the same bytes.
    sim.mine(1).await;
    assert_eq!(tx_hex(&sim, &txid).await.2, raw);
    let (status, body) = sim.get("/v1/tx/xyz/hex").await;
    assert_arc_error(status, &body, 400, None, "is not 64 hex characters");
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_spend_of_a_mined_transaction_is_200_double_spend_attempted() {
    let (sim, coin) = funded().await;
    let first = spend(&coin, &key("bob"), 400);
    assert_eq!(sim.broadcast(&first).await.0, 200);
    sim.mine(6).await; // 6 confirmations: inside the window
    let late = spend(&coin, &key("carol"), 500);
    let (status, body) = sim.broadcast(&late).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("DOUBLE_SPEND_ATTEMPTED")),
        "{body}"
    );
    assert_eq!(body["competingTxs"], json!([first.txid().to_string()]));
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_of_several_inputs_are_all_checked() {
    let sim = start().await;
    let (alice, bob) = (key("alice"), key("bob"));
    let (f1, _, _) = sim.faucet(&alice, 10_000).await;
    let (f2, _, _) = sim.faucet(&alice, 20_000).await;
    let good = [Coin::of(&f1, 0, &alice), Coin::of(&f2, 0, &alice)];
    let out = vec![TxOut {
        satoshis: 29_000,
        locking_script: p2pkh(&bob),
    }];
    let bad = [
        good[0].clone(),
        Coin {
            key: bob,
            ..good[1].clone()
        },
    ];
    let ef = spend_with(&bad, out.clone(), 0, SEQUENCE_FINAL);
    let (status, body) = sim.broadcast(&ef).await;
    assert_arc_error(
        status,
        &body,
        461,
        Some(&ef.txid()),
        "input 1: script failed",
    );
    let ef = spend_with(&good, out, 0, SEQUENCE_FINAL);
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK")),
        "{body}"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_take_text_json_and_binary_bodies() {
    let sim = start().await;
    let (alice, bob) = (key("alice"), key("bob"));
    let (funding, _, _) = sim.faucet(&alice, 30_000).await;
    let parent = spend(&Coin::of(&funding, 0, &alice), &bob, 300);
    let child = spend(&Coin::of(&parent.tx, 0, &bob), &alice, 300);
    let body =
        json!([{ "rawTx": parent.to_hex() }, { "rawTx": child.to_hex() }, { "rawTx": "00" }]);
    let (status, answer) = sim.post_json("/v1/txs", body).await;
    assert_eq!(status, 200, "{answer}");
    let items = answer.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        (items[0]["txid"].as_str(), items[0]["txStatus"].as_str()),
        (
            Some(parent.txid().to_string().as_str()),
            Some("SEEN_ON_NETWORK")
        )
    );
    assert_eq!(
        items[1]["txStatus"], "SEEN_ON_NETWORK",
        "a child of a mempool transaction is accepted"
    );
    assert_eq!(items[2]["status"], 463);
    // Text lines and concatenated binary repeat known transactions: idempotent.
    let text = format!("{}\n\n{}\n", parent.to_hex(), child.to_hex());
    let (status, answer) = sim
        .post_raw("/v1/txs", "text/plain", text.into_bytes())
        .await;
    assert_eq!(
        (
            status,
            answer[0]["txStatus"].as_str(),
            answer[1]["txStatus"].as_str()
        ),
        (200, Some("SEEN_ON_NETWORK"), Some("SEEN_ON_NETWORK"))
    );
    let mut bytes = parent.to_bytes();
    bytes.extend(child.to_bytes());
    let (status, answer) = sim
        .post_raw("/v1/txs", "application/octet-stream", bytes)
        .await;
    assert_eq!((status, answer.as_array().map(Vec::len)), (200, Some(2)));
    // Mined together, parent before child.
    let height = sim.mine(1).await;
    let (_, p) = sim.status(&parent.txid()).await;
    let (_, c) = sim.status(&child.txid()).await;
    assert_eq!(
        (p["blockHeight"].as_u64(), c["blockHeight"].as_u64()),
        (Some(u64::from(height)), Some(u64::from(height)))
    );
    let (pi, ci) = (leaf(&p), leaf(&c));
    assert!(pi < ci, "parent at {pi}, child at {ci}");
    sim.handle.shutdown().await.unwrap();
}

fn leaf(status: &Value) -> u64 {
    let bump = MerklePath::from_hex_strict(status["merklePath"].as_str().unwrap()).unwrap();
    bump.leaf_offset(&txid_of(status)).unwrap()
}

async fn add_fault(sim: &Sim, fault: Value) {
    assert_eq!(sim.post_json("/sim/faults", fault).await, (200, json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_error5xx_fails_the_next_broadcasts() {
    let (sim, coin) = funded().await;
    let ef = spend(&coin, &key("bob"), 300);
    add_fault(&sim, json!({ "kind": "error5xx", "count": 2 })).await;
    for _ in 0..2 {
        let (status, body) = sim.broadcast(&ef).await;
        assert_arc_error(status, &body, 503, None, "injected fault: error5xx");
    }
    assert_eq!(sim.status(&ef.txid()).await.0, 404, "nothing was stored");
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK")),
        "the third is served"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_drop_answers_seen_but_forgets() {
    let (sim, coin) = funded().await;
    let ef = spend(&coin, &key("bob"), 300);
    let txid = ef.txid();
    add_fault(&sim, json!({ "kind": "drop", "count": 1 })).await;
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str(), body["txid"].as_str()),
        (
            200,
            Some("SEEN_ON_NETWORK"),
            Some(txid.to_string().as_str())
        )
    );
    let (status, body) = sim.status(&txid).await;
    assert_arc_error(
        status,
        &body,
        404,
        Some(&txid),
        &format!("transaction {txid} is unknown"),
    );
    sim.mine(1).await;
    assert_eq!(
        sim.status(&txid).await.0,
        404,
        "a dropped transaction is never mined"
    );
    let (status, body) = sim.broadcast(&ef).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK"))
    );
    assert_eq!(
        sim.status(&txid).await.1["txStatus"],
        "SEEN_ON_NETWORK",
        "a rebroadcast sticks"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_reject_answers_rejected_and_stores_nothing() {
    let (sim, coin) = funded().await;
    let ef = spend(&coin, &key("bob"), 300);
    add_fault(&sim, json!({ "kind": "reject", "count": 1 })).await;
    let (status, body) = sim
        .post_json("/v1/txs", json!([{ "rawTx": ef.to_hex() }]))
        .await;
    assert_eq!(
        (status, body[0]["txStatus"].as_str()),
        (200, Some("REJECTED")),
        "{body}"
    );
    assert_eq!(
        body[0]["extraInfo"],
        "rejected by an injected fault (POST /sim/faults); not stored"
    );
    assert_eq!(sim.status(&ef.txid()).await.0, 404);
    assert_eq!(sim.broadcast(&ef).await.1["txStatus"], "SEEN_ON_NETWORK");
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_delay_answers_normally_but_no_sooner() {
    let (sim, coin) = funded().await;
    let ef = spend(&coin, &key("bob"), 300);
    add_fault(&sim, json!({ "kind": "delay", "count": 1, "ms": 40 })).await;
    let started = Instant::now();
    let (status, body) = sim.broadcast(&ef).await;
    assert!(started.elapsed() >= Duration::from_millis(40));
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK"))
    );
    assert_eq!(
        sim.status(&ef.txid()).await.1["txStatus"],
        "SEEN_ON_NETWORK"
    );
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_requests_are_validated() {
    let sim = start().await;
    let (status, body) = sim
        .post_json("/sim/faults", json!({ "kind": "delay", "count": 1 }))
        .await;
    assert_arc_error(status, &body, 400, None, "kind delay needs ms");
    let (status, body) = sim
        .post_json(
            "/sim/faults",
            json!({ "kind": "drop", "count": 1, "ms": 5 }),
        )
        .await;
    assert_arc_error(
        status,
        &body,
        400,
        None,
        "ms applies to kind delay only, not drop",
    );
    let (status, body) = sim
        .post_json("/sim/faults", json!({ "kind": "explode", "count": 1 }))
        .await;
    assert_arc_error(
        status,
        &body,
        400,
        None,
        "kind \"explode\" is not one of delay, drop, reject, error5xx",
    );
    let (status, body) = sim
        .post_json("/sim/faults", json!({ "kind": "drop", "count": 0 }))
        .await;
    assert_arc_error(status, &body, 400, None, "count must be between 1");
    let (status, body) = sim
        .post_json(
            "/sim/faults",
            json!({ "kind": "drop", "count": 1, "when": "now" }),
        )
        .await;
    assert_arc_error(status, &body, 400, None, "unknown field `when`");
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_unmines_then_remines_a_transaction() {
    let sim = start().await;
    let (alice, bob) = (key("alice"), key("bob"));
    let (funding, _, _) = sim.faucet(&alice, 60_000).await;
    let ef = spend(&Coin::of(&funding, 0, &alice), &bob, 300);
    let txid = ef.txid();
    sim.broadcast(&ef).await;
    let height = sim.mine(1).await;
    let (_, mined) = sim.status(&txid).await;
    let old_header = sim.header(height).await;
    assert_eq!(mined["blockHash"], old_header["hash"]);

    assert_eq!(
        sim.post_json("/sim/reorg", json!({ "depth": 2 })).await,
        (200, json!({}))
    );
    assert_eq!(
        sim.tip().await,
        height,
        "replacement blocks keep the height"
    );
    let (status, body) = sim.status(&txid).await;
    assert_eq!(
        (status, body["txStatus"].as_str()),
        (200, Some("SEEN_ON_NETWORK"))
    );
    assert!(body["merklePath"].is_null() && body.get("blockHash").is_none());
    let (_, funding_status) = sim.status(&funding.txid()).await;
    assert_eq!(
        funding_status["txStatus"], "SEEN_ON_NETWORK",
        "the faucet block was un-mined too"
    );
    assert_eq!(
        sim.get(&format!("/v1/tx/{}/0/spent", funding.txid())).await,
        (200, json!({ "txid": txid.to_string(), "vin": 0 }))
    );
    let new_header = sim.header(height).await;
    assert_ne!(new_header["hash"], old_header["hash"]);
    let (status, state) = sim
        .get(&format!(
            "/api/v1/chain/header/state/{}",
            old_header["hash"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (status, state["state"].as_str(), state["height"].as_u64()),
        (200, Some("STALE"), Some(u64::from(height)))
    );
    let (_, answer) = sim
        .post_json(
            "/api/v1/chain/merkleroot/verify",
            json!([{ "merkleRoot": old_header["merkleRoot"], "blockHeight": height }]),
        )
        .await;
    assert_eq!(answer["confirmationState"], "INVALID");

    let new_height = sim.mine(1).await;
    let (_, body) = sim.status(&txid).await;
    assert_eq!(
        (body["txStatus"].as_str(), body["blockHeight"].as_u64()),
        (Some("MINED"), Some(u64::from(new_height)))
    );
    let (_, f) = sim.status(&funding.txid()).await;
    assert_eq!(
        f["blockHeight"], body["blockHeight"],
        "parent and child re-mined in one block"
    );
    let bump = MerklePath::from_hex_strict(body["merklePath"].as_str().unwrap()).unwrap();
    assert_eq!(
        bump.compute_root(&txid).unwrap().to_string(),
        sim.header(new_height).await["merkleRoot"].as_str().unwrap()
    );

    let (status, body) = sim.post_json("/sim/reorg", json!({ "depth": 0 })).await;
    assert_arc_error(status, &body, 400, None, "reorg depth must be between 1");
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_data_keeps_the_ledger() {
    let dir = scratch_dir("restart");
    let config = ChainsimConfig {
        data_dir: Some(dir.clone()),
        ..ChainsimConfig::default()
    };
    let (alice, bob) = (key("alice"), key("bob"));
    let sim = start_with(config.clone()).await;
    let (funding, _, _) = sim.faucet(&alice, 70_000).await;
    let pending = spend(&Coin::of(&funding, 0, &alice), &bob, 300);
    assert_eq!(sim.broadcast(&pending).await.0, 200);
    sim.post_json("/sim/clock", json!({ "advance_secs": 3_600 }))
        .await;
    let tip = sim.tip().await;
    let (_, funding_before) = sim.status(&funding.txid()).await;
    let tip_header = sim.header(tip).await;
    sim.handle.shutdown().await.unwrap();

    let sim = start_with(config.clone()).await;
    assert_eq!(sim.tip().await, tip);
    assert_eq!(sim.header(tip).await, tip_header);
    assert_eq!(
        sim.status(&funding.txid()).await.1["merklePath"],
        funding_before["merklePath"]
    );
    assert_eq!(
        sim.status(&pending.txid()).await.1["txStatus"],
        "SEEN_ON_NETWORK"
    );
    assert_eq!(
        sim.get(&format!("/v1/tx/{}/0/spent", funding.txid()))
            .await
            .1["txid"],
        pending.txid().to_string()
    );
    assert_eq!(
        sim.post_json("/sim/clock", json!({ "advance_secs": 0 }))
            .await
            .1,
        json!({ "now": START + 3_600 })
    );
    let height = sim.mine(1).await;
    assert_eq!(sim.status(&pending.txid()).await.1["blockHeight"], height);
    assert_eq!(sim.header(height).await["creationTimestamp"], START + 3_600);
    sim.handle.shutdown().await.unwrap();

    // Another chain id, or a newer schema, is refused.
    let other = ChainsimConfig {
        chain_id: "other".into(),
        ..config.clone()
    };
    match escrowd::chainsim::Chainsim::start(other).await {
        Err(ChainsimError::Store(StoreError::ChainMismatch { stored, .. })) => {
            assert_eq!(stored, "regtest")
        }
        other => panic!("expected ChainMismatch, got {other:?}"),
    }
    {
        let (store, _) = SledStore::open(&dir, "regtest").unwrap();
        store
            .db()
            .open_tree("chainsim")
            .unwrap()
            .insert(b"m:schema", &[99u8])
            .unwrap();
        store.db().flush().unwrap();
    }
    match escrowd::chainsim::Chainsim::start(config).await {
        Err(ChainsimError::Store(StoreError::NewerSchema { found: 99, .. })) => {}
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mining_and_the_manual_clock() {
    // The clock alone never mines.
    let sim = start().await;
    let tip = sim.tip().await;
    assert_eq!(
        sim.post_json("/sim/clock", json!({ "advance_secs": 86_400 }))
            .await,
        (200, json!({ "now": START + 86_400 }))
    );
    assert_eq!(sim.tip().await, tip);
    let (status, body) = sim
        .post_json("/sim/clock", json!({ "set_unix": START }))
        .await;
    assert_arc_error(status, &body, 400, None, "the clock cannot go back");
    let (status, body) = sim
        .post_json(
            "/sim/clock",
            json!({ "advance_secs": 1, "set_unix": START }),
        )
        .await;
    assert_arc_error(
        status,
        &body,
        400,
        None,
        "exactly one of advance_secs and set_unix",
    );
    // Block times come from the clock.
    let h = sim.mine(1).await;
    assert_eq!(sim.header(h).await["creationTimestamp"], START + 86_400);
    sim.handle.shutdown().await.unwrap();

    // A 5 ms interval: wait (no fixed sleep) for three blocks; their times
    // stay above the median time past although the clock stands still.
    let config = ChainsimConfig {
        block_interval: Some(Duration::from_millis(5)),
        ..ChainsimConfig::default()
    };
    let sim = start_with(config).await;
    let mut tips = sim.handle.subscribe_tip();
    tokio::time::timeout(Duration::from_secs(20), tips.wait_for(|t| *t >= 104))
        .await
        .unwrap()
        .unwrap();
    let (_, headers) = sim
        .get("/api/v1/chain/header/byHeight?height=91&count=14")
        .await;
    let times: Vec<u64> = headers
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["creationTimestamp"].as_u64().unwrap())
        .collect();
    assert_eq!(times.len(), 14);
    assert_eq!(
        times[10], START,
        "the last initial block (101) is at the start time"
    );
    for i in 11..times.len() {
        let mut window = times[i - 11..i].to_vec();
        window.sort_unstable();
        assert!(
            times[i] > window[5],
            "block {} time {} not above MTP {}",
            91 + i,
            times[i],
            window[5]
        );
    }
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_arc_style_errors() {
    let config = ChainsimConfig {
        max_body_bytes: 4_096,
        ..ChainsimConfig::default()
    };
    let sim = start_with(config).await;
    let (status, body) = sim
        .post_raw("/v1/tx", "text/plain", vec![b'a'; 10_000])
        .await;
    assert_arc_error(status, &body, 413, None, "request body");
    let (status, body) = sim.post_raw("/v1/tx", "text/plain", b"zz".to_vec()).await;
    assert_arc_error(status, &body, 400, None, "body is not hex");
    let (status, body) = sim
        .post_raw("/v1/tx", "application/xml", b"<tx/>".to_vec())
        .await;
    assert_arc_error(
        status,
        &body,
        400,
        None,
        "Content-Type \"application/xml\" is not",
    );
    let (status, body) = sim
        .post_raw("/v1/tx", "application/json", b"{\"raw\": 1}".to_vec())
        .await;
    assert_arc_error(status, &body, 400, None, "missing field `rawTx`");
    let (status, body) = sim
        .post_raw(
            "/sim/mine",
            "application/json",
            b"{\"blocks\": 1, \"extra\": 2}".to_vec(),
        )
        .await;
    assert_arc_error(status, &body, 400, None, "unknown field `extra`");
    let (status, body) = sim
        .post_raw(
            "/sim/mine",
            "application/json",
            b"{\"blocks\": -1}".to_vec(),
        )
        .await;
    assert_arc_error(status, &body, 400, None, "JSON body");
    let (status, body) = sim.post_json("/sim/mine", json!({ "blocks": 0 })).await;
    assert_arc_error(
        status,
        &body,
        400,
        None,
        "blocks must be between 1 and 10000, got 0",
    );
    let (status, body) = sim
        .post_json(
            "/sim/faucet",
            json!({ "address": "not-an-address", "satoshis": 5 }),
        )
        .await;
    assert_arc_error(status, &body, 400, None, "is not a P2PKH address");
    let (status, body) = sim.post_json("/sim/faucet", json!({ "address": key("a").public_key().address(Network::Testnet), "satoshis": 10_000_000_000u64 })).await;
    assert_arc_error(
        status,
        &body,
        409,
        None,
        "the faucet has no spendable output",
    );
    let (status, body) = sim.get("/v1/tx/1234").await;
    assert_arc_error(status, &body, 400, None, "is not 64 hex characters");
    let (status, body) = sim.get(&format!("/v1/tx/{}/x/spent", Txid([1; 32]))).await;
    assert_arc_error(status, &body, 400, None, "vout \"x\" is not a number");
    let (status, body) = sim.get(&format!("/v1/tx/{}/0/spent", Txid([1; 32]))).await;
    assert_arc_error(status, &body, 404, None, "is unknown");
    let resp = sim
        .http
        .post(format!("{}/v1/tx", sim.url))
        .header("Content-Type", "text/plain")
        .header("X-WaitFor", "NOPE")
        .body("00")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    assert_arc_error(
        status,
        &resp.json().await.unwrap(),
        400,
        None,
        "X-WaitFor \"NOPE\"",
    );
    let (status, body) = sim.get("/no/such/path").await;
    assert_arc_error(status, &body, 404, None, "no endpoint GET /no/such/path");
    let (status, body) = sim.get("/sim/mine").await;
    assert_arc_error(status, &body, 405, None, "/sim/mine does not accept GET");
    let (status, body) = sim.get("/api/v1/chain/header/byHeight?height=abc").await;
    assert_arc_error(status, &body, 400, None, "height=\"abc\" is not a number");
    let (status, body) = sim.get("/api/v1/chain/header/byHeight?height=5000").await;
    assert_arc_error(
        status,
        &body,
        404,
        None,
        "no block at height 5000 (tip 101)",
    );
    let (status, body) = sim
        .post_json("/api/v1/chain/merkleroot/verify", json!([]))
        .await;
    assert_arc_error(status, &body, 400, None, "at least one merkle root");
    sim.handle.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_policy_and_health_shapes() {
    let sim = start().await;
    let (status, tip) = sim.get("/api/v1/chain/tip/longest").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            tip["state"].as_str(),
            tip["height"].as_u64(),
            tip["chainWork"].as_u64()
        ),
        (Some("LONGEST_CHAIN"), Some(101), Some(204))
    );
    let header = &tip["header"];
    for field in ["hash", "prevBlockHash", "merkleRoot"] {
        assert_eq!(header[field].as_str().map(str::len), Some(64), "{field}");
    }
    assert_eq!(
        (
            header["version"].as_u64(),
            header["difficultyTarget"].as_u64(),
            header["nonce"].as_u64(),
            header["work"].as_u64()
        ),
        (Some(0x2000_0000), Some(0x207f_ffff), Some(0), Some(2))
    );
    assert_eq!(header["creationTimestamp"], START);
    let prev = sim.header(100).await;
    assert_eq!(header["prevBlockHash"], prev["hash"]);
    let (_, two) = sim
        .get("/api/v1/chain/header/byHeight?height=100&count=2")
        .await;
    assert_eq!(two, json!([prev, header.clone()]));
    let (status, by_hash) = sim
        .get(&format!(
            "/api/v1/chain/header/{}",
            header["hash"].as_str().unwrap()
        ))
        .await;
    assert_eq!((status, &by_hash), (200, header));
    // Genesis links to the zero hash.
    assert_eq!(
        sim.header(0).await["prevBlockHash"],
        Hash256::default().to_string()
    );

    let wrong_root = Hash256([9; 32]).to_string();
    let (_, answer) = sim
        .post_json(
            "/api/v1/chain/merkleroot/verify",
            json!([{ "merkleRoot": header["merkleRoot"], "blockHeight": 101 }, { "merkleRoot": header["merkleRoot"], "blockHeight": 500 }]),
        )
        .await;
    assert_eq!(answer["confirmationState"], "UNABLE_TO_VERIFY");
    assert_eq!(
        answer["confirmations"],
        json!([
            { "blockHash": header["hash"], "blockHeight": 101, "merkleRoot": header["merkleRoot"], "confirmation": "CONFIRMED" },
            { "blockHash": "", "blockHeight": 500, "merkleRoot": header["merkleRoot"], "confirmation": "UNABLE_TO_VERIFY" },
        ])
    );
    let (_, answer) = sim
        .post_json(
            "/api/v1/chain/merkleroot/verify",
            json!([{ "merkleRoot": wrong_root, "blockHeight": 101 }]),
        )
        .await;
    assert_eq!(answer["confirmationState"], "INVALID");

    let (status, policy) = sim.get("/v1/policy").await;
    assert_eq!(status, 200);
    assert_eq!(
        policy["policy"]["miningFee"],
        json!({ "satoshis": 1, "bytes": 1000 })
    );
    assert_eq!(policy["policy"]["maxtxsizepolicy"], 10_000_000);
    assert_eq!(policy["timestamp"], "2023-11-14T22:13:20Z");
    let (status, health) = sim.get("/v1/health").await;
    assert_eq!(
        (
            status,
            health["healthy"].as_bool(),
            health["reason"].is_null()
        ),
        (200, Some(true), true)
    );
    sim.handle.shutdown().await.unwrap();
}

/// Starts `escrowd chainsim` as a process; returns it and the URL it printed.
fn spawn_cli(args: Vec<String>) -> (std::process::Child, Value) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .arg("chainsim")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, serde_json::from_str(&line).unwrap())
}

fn terminate(mut child: std::process::Child) -> Option<i32> {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    child.wait().unwrap().code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serves_until_sigterm_and_keeps_its_data() {
    let dir = scratch_dir("cli");
    let data = dir.to_str().unwrap().to_string();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data",
        &data,
        "--fee-rate",
        "2",
        "--chain-id",
        "chain-p",
    ]
    .map(String::from)
    .to_vec();
    let (child, hello) = tokio::task::spawn_blocking(move || spawn_cli(args))
        .await
        .unwrap();
    assert_eq!(
        (hello["chain_id"].as_str(), hello["tip"].as_u64()),
        (Some("chain-p"), Some(101))
    );
    let http = client();
    let url = hello["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let policy: Value = http
        .get(format!("{url}/v1/policy"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        policy["policy"]["miningFee"],
        json!({ "satoshis": 2, "bytes": 1000 })
    );
    let mined: Value = http
        .post(format!("{url}/sim/mine"))
        .json(&json!({ "blocks": 2 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mined, json!({ "tip": 103 }));
    assert_eq!(
        tokio::task::spawn_blocking(move || terminate(child))
            .await
            .unwrap(),
        Some(0)
    );

    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data",
        &data,
        "--chain-id",
        "chain-p",
    ]
    .map(String::from)
    .to_vec();
    let (child, hello) = tokio::task::spawn_blocking(move || spawn_cli(args))
        .await
        .unwrap();
    assert_eq!(hello["tip"], 103, "the ledger survived the restart");
    assert_eq!(
        tokio::task::spawn_blocking(move || terminate(child))
            .await
            .unwrap(),
        Some(0)
    );

    // Usage errors exit 2: another chain id for the same store.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args([
            "chainsim",
            "--listen",
            "127.0.0.1:0",
            "--data",
            &data,
            "--chain-id",
            "chain-d",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("holds chain \"chain-p\", not \"chain-d\"")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Branch f's ARC client against chainsim's fault knobs and rejections: what
/// a gateway sees when the broadcaster misbehaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arc_client_meets_faults_and_rejections() {
    use escrowd::chain::{ArcClient, ArcConfig, RetryPolicy};
    use saga_runtime::{
        ArcErrorCode, BroadcastError, BroadcastOutcome, Broadcaster, RejectCode, TxState,
    };

    let (sim, coin) = funded().await;
    let mut cfg = ArcConfig::new(sim.url.clone());
    cfg.retry = RetryPolicy {
        attempts: 3,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };
    let arc = ArcClient::new(cfg).unwrap();
    let bob = key("bob");
    let ef = spend(&coin, &bob, 300);
    let txid = ef.txid();

    // Two 503s are retried through; three exhaust the three attempts.
    add_fault(&sim, json!({ "kind": "error5xx", "count": 2 })).await;
    let outcome = arc.broadcast(&ef).await.unwrap();
    assert!(
        matches!(&outcome, BroadcastOutcome::Accepted(s) if s.txid == txid && s.state == TxState::SeenOnNetwork),
        "{outcome:?}"
    );
    add_fault(&sim, json!({ "kind": "error5xx", "count": 3 })).await;
    assert!(matches!(
        arc.broadcast(&ef).await,
        Err(BroadcastError::Unavailable { attempts: 3, .. })
    ));

    // A rejecting broadcaster is a permanent refusal; a dropping one looks
    // fine until the status is asked for.
    let other = spend(&Coin::of(&ef.tx, 0, &bob), &key("carol"), 300);
    add_fault(&sim, json!({ "kind": "reject", "count": 1 })).await;
    let err = arc.broadcast(&other).await.unwrap_err();
    assert!(
        matches!(
            err,
            BroadcastError::Rejected {
                code: RejectCode::StatusRejected,
                ..
            }
        ),
        "{err:?}"
    );
    add_fault(&sim, json!({ "kind": "drop", "count": 1 })).await;
    assert!(matches!(
        arc.broadcast(&other).await,
        Ok(BroadcastOutcome::Accepted(_))
    ));
    assert_eq!(arc.status(&other.txid()).await.unwrap(), None, "dropped");
    assert!(matches!(
        arc.broadcast(&other).await,
        Ok(BroadcastOutcome::Accepted(_))
    ));
    assert_eq!(
        arc.status(&other.txid()).await.unwrap().map(|s| s.state),
        Some(TxState::SeenOnNetwork)
    );

    // Non-final (chainsim's 409) and a failing script: rejected, with the reason.
    let (funding, vout, _) = sim.faucet(&key("alice"), 20_000).await;
    let fresh = Coin::of(&funding, vout, &key("alice"));
    let tip = sim.tip().await;
    let locked = spend_with(
        std::slice::from_ref(&fresh),
        vec![TxOut {
            satoshis: 19_000,
            locking_script: p2pkh(&bob),
        }],
        tip + 5,
        0,
    );
    match arc.broadcast(&locked).await {
        Err(BroadcastError::Rejected {
            code:
                RejectCode::Http {
                    code: ArcErrorCode::Generic,
                    status: 409,
                },
            detail,
            ..
        }) => {
            assert!(
                detail.contains(&format!("non-final until height {}", tip + 6)),
                "{detail}"
            );
        }
        other => panic!("expected 409, got {other:?}"),
    }
    let forged = spend(&Coin { key: bob, ..fresh }, &bob, 300);
    assert!(matches!(
        arc.broadcast(&forged).await,
        Err(BroadcastError::Rejected {
            code: RejectCode::Http {
                code: ArcErrorCode::UnlockingScripts,
                status: 461
            },
            ..
        })
    ));
    sim.handle.shutdown().await.unwrap();
}
