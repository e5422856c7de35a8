//! chainsim throughput benchmark (docs/chainsim.md, "Performance").
//!
//! ```sh
//! cargo run --release --example chainsim_bench                 # in memory
//! cargo run --release --example chainsim_bench -- --data       # sled store, flushed per request
//! cargo run --release --example chainsim_bench -- --txs 20000 --concurrency 32 --body json
//! ```
//!
//! Starts a chainsim in-process on 127.0.0.1:0, funds one key from the faucet,
//! fans the funds out to `--txs` P2PKH outputs in one transaction, mines it,
//! signs `--txs` independent 1-input 1-output spends with the format core,
//! then submits them over loopback HTTP with `--concurrency` requests in
//! flight (`POST /v1/tx`, EF as `application/octet-stream`, or `{"rawTx"}`
//! JSON with `--body json`) and reports accepted transactions per second
//! (every script verified). Finally it mines them all in one block with
//! `POST /sim/mine` and reports how long that took. Client and server share
//! the machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bsv_format::ef::EfTransaction;
use bsv_format::hash::sha256;
use bsv_format::keys::{Network, PrivateKey};
use bsv_format::script::templates::{p2pkh_lock, p2pkh_unlock, sign_input};
use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_FORKID};
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut};
use escrowd::chainsim::{Chainsim, ChainsimConfig};
use serde_json::{json, Value};

const PER_OUTPUT: u64 = 10_000;
const FEE: u64 = 500;

struct Args {
    txs: usize,
    concurrency: usize,
    data: bool,
    json_body: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        txs: 10_000,
        concurrency: 64,
        data: false,
        json_body: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--txs" => {
                a.txs = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--txs N"))?
                    .parse()?
            }
            "--concurrency" => {
                a.concurrency = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--concurrency N"))?
                    .parse()?
            }
            "--data" => a.data = true,
            "--body" => a.json_body = it.next().as_deref() == Some("json"),
            other => anyhow::bail!(
                "unknown argument {other:?} (--txs N, --concurrency N, --data, --body binary|json)"
            ),
        }
    }
    anyhow::ensure!(
        a.txs > 0 && a.concurrency > 0,
        "--txs and --concurrency must be positive"
    );
    Ok(a)
}

fn sign_p2pkh(tx: &mut Transaction, source: &TxOut, key: &PrivateKey) -> anyhow::Result<()> {
    let sig = sign_input(
        tx,
        0,
        &source.locking_script,
        source.satoshis,
        SIGHASH_ALL | SIGHASH_FORKID,
        key,
    )?;
    tx.inputs[0].unlocking_script = p2pkh_unlock(&sig, &key.public_key())?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data_dir =
        std::env::temp_dir().join(format!("escrowd-chainsim-bench-{}", std::process::id()));
    let config = ChainsimConfig {
        data_dir: args.data.then(|| data_dir.clone()),
        ..ChainsimConfig::default()
    };
    let sim = Chainsim::start(config).await?;
    let url = sim.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;
    let key = PrivateKey::from_bytes(&sha256(b"escrowd chainsim bench"))?;
    let lock = p2pkh_lock(&key.public_key().hash160());

    // Fund one output, then fan it out to `txs` outputs in one transaction.
    let total = PER_OUTPUT * args.txs as u64;
    let fan_fee = 10 + (args.txs as u64 * 34 + 300) / 1000;
    let faucet: Value = http
        .post(format!("{url}/sim/faucet"))
        .json(&json!({ "address": key.public_key().address(Network::Testnet), "satoshis": total + fan_fee }))
        .send()
        .await?
        .json()
        .await?;
    let funding_txid = faucet["txid"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("faucet: {faucet}"))?;
    let funding_out = TxOut {
        satoshis: total + fan_fee,
        locking_script: lock.clone(),
    };
    let mut fan = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(funding_txid.parse()?, 0),
            unlocking_script: Script::default(),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![
            TxOut {
                satoshis: PER_OUTPUT,
                locking_script: lock.clone()
            };
            args.txs
        ],
        lock_time: 0,
    };
    sign_p2pkh(&mut fan, &funding_out, &key)?;
    let fan_ef = EfTransaction::new(fan.clone(), vec![funding_out])?;
    let answer: Value = http
        .post(format!("{url}/v1/tx"))
        .header("Content-Type", "application/octet-stream")
        .body(fan_ef.to_bytes())
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(answer["txStatus"] == "SEEN_ON_NETWORK", "fan-out: {answer}");
    http.post(format!("{url}/sim/mine"))
        .json(&json!({ "blocks": 1 }))
        .send()
        .await?
        .error_for_status()?;

    // Sign the spends (not timed as throughput).
    let signing = Instant::now();
    let fan_txid = fan.txid();
    let source = TxOut {
        satoshis: PER_OUTPUT,
        locking_script: lock.clone(),
    };
    let mut bodies = Vec::with_capacity(args.txs);
    for vout in 0..args.txs {
        let mut tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(fan_txid, vout as u32),
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![TxOut {
                satoshis: PER_OUTPUT - FEE,
                locking_script: lock.clone(),
            }],
            lock_time: 0,
        };
        sign_p2pkh(&mut tx, &source, &key)?;
        let ef = EfTransaction::new(tx, vec![source.clone()])?;
        bodies.push(if args.json_body {
            json!({ "rawTx": ef.to_hex() }).to_string().into_bytes()
        } else {
            ef.to_bytes()
        });
    }
    let signing = signing.elapsed();

    // Submit with `concurrency` requests in flight.
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let content_type = if args.json_body {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (bodies, next, http, url) = (
            Arc::clone(&bodies),
            Arc::clone(&next),
            http.clone(),
            url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut accepted = 0usize;
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let result = async {
                    let v: Value = http
                        .post(format!("{url}/v1/tx"))
                        .header("Content-Type", content_type)
                        .body(body.clone())
                        .send()
                        .await?
                        .json()
                        .await?;
                    anyhow::Ok(v)
                }
                .await;
                match result {
                    Ok(v) if v["txStatus"] == "SEEN_ON_NETWORK" => accepted += 1,
                    Ok(v) => failures.push(v.to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (accepted, failures)
        }));
    }
    let mut accepted = 0;
    let mut failures = Vec::new();
    for w in workers {
        let (a, f) = w.await?;
        accepted += a;
        failures.extend(f);
    }
    let submit = started.elapsed();

    // Mine them all in one block.
    let mining = Instant::now();
    let mined: Value = http
        .post(format!("{url}/sim/mine"))
        .json(&json!({ "blocks": 1 }))
        .send()
        .await?
        .json()
        .await?;
    let mining = mining.elapsed();
    let tip = mined["tip"].as_u64().unwrap_or(0);
    let last: Value = http
        .get(format!("{url}/v1/tx/{}", fan_txid))
        .send()
        .await?
        .json()
        .await?;

    println!(
        "chainsim bench: {} EF transactions (1 P2PKH input, 1 output), {} in flight, body {}, ledger {}",
        args.txs,
        args.concurrency,
        if args.json_body { "JSON {rawTx: hex}" } else { "binary EF" },
        if args.data { "in sled (flushed per request)" } else { "in memory" }
    );
    println!(
        "  signing (client, not counted):   {:.2} s",
        signing.as_secs_f64()
    );
    println!(
        "  broadcast:                       {:.2} s, {:.0} tx/s accepted ({accepted} SEEN_ON_NETWORK, {} failed)",
        submit.as_secs_f64(),
        accepted as f64 / submit.as_secs_f64(),
        failures.len()
    );
    println!(
        "  mine one block of {} txs:      {:.0} ms (POST /sim/mine round trip; tip {tip})",
        accepted + 1,
        mining.as_secs_f64() * 1000.0
    );
    if let Some(first) = failures.first() {
        println!("  first failure: {first}");
    }
    anyhow::ensure!(last["txStatus"] == "MINED", "fan-out not mined: {last}");
    sim.shutdown().await?;
    if args.data {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(())
}
