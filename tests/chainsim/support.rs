//! Helpers for the chainsim tests: a chainsim on 127.0.0.1:0, a plain HTTP
//! client, keys, and transactions built and signed with the format core.

#![allow(dead_code)]

use std::time::Duration;

use bsv_format::beef::Beef;
use bsv_format::ef::EfTransaction;
use bsv_format::hash::sha256;
use bsv_format::keys::{Network, PrivateKey};
use bsv_format::script::templates::{p2pkh_lock, p2pkh_unlock, sign_input};
use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_FORKID};
use bsv_format::spv::ChainTracker;
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use escrowd::chainsim::{Chainsim, ChainsimConfig, ChainsimHandle};
use serde_json::{json, Value};

/// A running chainsim and a client for it.
pub struct Sim {
    pub handle: ChainsimHandle,
    pub url: String,
    pub http: reqwest::Client,
}

pub fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider (ring only, DESIGN.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn start_with(config: ChainsimConfig) -> Sim {
    let handle = Chainsim::start(config).await.unwrap();
    let url = handle.url();
    Sim {
        handle,
        url,
        http: client(),
    }
}

pub async fn start() -> Sim {
    start_with(ChainsimConfig::default()).await
}

impl Sim {
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// `POST /v1/tx` with EF hex as text/plain.
    pub async fn broadcast(&self, ef: &EfTransaction) -> (u16, Value) {
        self.post_raw("/v1/tx", "text/plain", ef.to_hex().into_bytes())
            .await
    }

    pub async fn mine(&self, blocks: u32) -> u32 {
        let (status, body) = self
            .post_json("/sim/mine", json!({ "blocks": blocks }))
            .await;
        assert_eq!(status, 200, "{body}");
        body["tip"].as_u64().unwrap() as u32
    }

    pub async fn tip(&self) -> u32 {
        let (status, body) = self.get("/api/v1/chain/tip/longest").await;
        assert_eq!(status, 200, "{body}");
        body["height"].as_u64().unwrap() as u32
    }

    /// The header JSON at `height`.
    pub async fn header(&self, height: u32) -> Value {
        let (status, body) = self
            .get(&format!("/api/v1/chain/header/byHeight?height={height}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body[0].clone()
    }

    /// Pays `satoshis` to `key`'s testnet address; returns the funding
    /// transaction, its paid output index and the faucet's BEEF.
    pub async fn faucet(&self, key: &PrivateKey, satoshis: u64) -> (Transaction, u32, Beef) {
        let address = key.public_key().address(Network::Testnet);
        let (status, body) = self
            .post_json(
                "/sim/faucet",
                json!({ "address": address, "satoshis": satoshis }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let beef = Beef::from_hex(body["beef"].as_str().unwrap()).unwrap();
        let txid = Txid::from_display_hex(body["txid"].as_str().unwrap()).unwrap();
        let tx = beef.find(&txid).unwrap().transaction().unwrap().clone();
        (tx, body["vout"].as_u64().unwrap() as u32, beef)
    }

    pub async fn status(&self, txid: &Txid) -> (u16, Value) {
        self.get(&format!("/v1/tx/{txid}")).await
    }
}

pub fn key(tag: &str) -> PrivateKey {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).unwrap()
}

pub fn p2pkh(key: &PrivateKey) -> Script {
    p2pkh_lock(&key.public_key().hash160())
}

/// A coin: an outpoint, the output it names, and the key that unlocks it.
#[derive(Clone)]
pub struct Coin {
    pub outpoint: Outpoint,
    pub out: TxOut,
    pub key: PrivateKey,
}

impl Coin {
    pub fn of(tx: &Transaction, vout: u32, key: &PrivateKey) -> Coin {
        Coin {
            outpoint: Outpoint::new(tx.txid(), vout),
            out: tx.outputs[vout as usize].clone(),
            key: *key,
        }
    }
}

/// Spends `coins` (P2PKH, SIGHASH_ALL|FORKID) to `outputs`, with `lock_time`
/// and every input's `sequence`; returns the EF form.
pub fn spend_with(
    coins: &[Coin],
    outputs: Vec<TxOut>,
    lock_time: u32,
    sequence: u32,
) -> EfTransaction {
    let mut tx = Transaction {
        version: 1,
        inputs: coins
            .iter()
            .map(|c| TxIn {
                prev_out: c.outpoint,
                unlocking_script: Script::default(),
                sequence,
            })
            .collect(),
        outputs,
        lock_time,
    };
    for (i, c) in coins.iter().enumerate() {
        let sig = sign_input(
            &tx,
            i,
            &c.out.locking_script,
            c.out.satoshis,
            SIGHASH_ALL | SIGHASH_FORKID,
            &c.key,
        )
        .unwrap();
        tx.inputs[i].unlocking_script = p2pkh_unlock(&sig, &c.key.public_key()).unwrap();
    }
    EfTransaction::new(tx, coins.iter().map(|c| c.out.clone()).collect()).unwrap()
}

/// Spends one coin to `to`, paying `fee` satoshis.
pub fn spend(coin: &Coin, to: &PrivateKey, fee: u64) -> EfTransaction {
    spend_with(
        std::slice::from_ref(coin),
        vec![TxOut {
            satoshis: coin.out.satoshis - fee,
            locking_script: p2pkh(to),
        }],
        0,
        SEQUENCE_FINAL,
    )
}

/// A chain tracker over this chainsim's headers API, for the synchronous
/// `bsv_format::spv::verify` (run it on a blocking thread).
pub struct HttpTracker {
    pub url: String,
    pub http: reqwest::Client,
    pub rt: tokio::runtime::Handle,
}

impl ChainTracker for HttpTracker {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        let body = json!([{ "merkleRoot": root.to_string(), "blockHeight": height }]);
        self.rt
            .block_on(async {
                let resp = self
                    .http
                    .post(format!("{}/api/v1/chain/merkleroot/verify", self.url))
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                let v: Value = resp.json().await.ok()?;
                Some(v["confirmationState"] == "CONFIRMED")
            })
            .unwrap_or(false)
    }

    fn current_height(&self) -> u32 {
        self.rt
            .block_on(async {
                let resp = self
                    .http
                    .get(format!("{}/api/v1/chain/tip/longest", self.url))
                    .send()
                    .await
                    .ok()?;
                let v: Value = resp.json().await.ok()?;
                v["height"].as_u64()
            })
            .unwrap_or(0) as u32
    }
}

/// A fresh directory under the system temp dir (removed by the caller).
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("escrowd-chainsim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
