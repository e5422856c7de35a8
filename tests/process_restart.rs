//! Gateways as operators run them — `escrowd serve` processes on the system
//! clock — killed with SIGKILL in the middle of swaps and started again over
//! their stores: each resumes by itself, every swap completes, nothing is
//! done twice (one reservation and one claim per party and saga, exact
//! balances on both chains). Chains are chainsims mined whenever their
//! mempool holds something.
//!
//! `ESCROWD_KILL_ROUNDS=N` kills a gateway N times (alternating, each at
//! the next step either party logs) instead of the CI's two kills; see
//! docs/persistence.md.

#[path = "rpc/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::p2pkh_lock;
use escrowd::proto::escrow_v1 as pb;
use escrowd::proto::escrow_v1::admin_service_client::AdminServiceClient;
use support::*;
use tonic::transport::Channel;

/// One `escrowd serve` process and what it needs to start again.
struct Process {
    name: &'static str,
    spiffe_id: &'static str,
    config: PathBuf,
    stderr: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
    wallet_keys: BTreeMap<String, PrivateKey>,
    operator: &'static str,
    starts: u32,
    _dir: tempfile::TempDir,
}

impl Process {
    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_escrowd"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn admin(&self, pki: &Pki) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(channel(
            &pki.identity(self.operator),
            self.spiffe_id,
            self.addr,
        ))
    }

    /// Waits until its AdminService answers.
    async fn until_serving(&self, pki: &Pki) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut admin = self.admin(pki);
            if admin
                .wallet_balances(pb::WalletBalancesRequest {})
                .await
                .is_ok()
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{} never served:\n{}", self.name, self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The saga as this gateway's GetSaga shows it (None while it is down).
    async fn saga(&self, pki: &Pki, saga_id: &str) -> Option<pb::GetSagaResponse> {
        self.admin(pki)
            .get_saga(pb::GetSagaRequest {
                saga_id: saga_id.into(),
                include_events: true,
            })
            .await
            .ok()
            .map(tonic::Response::into_inner)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Mines one block on a chain whenever its mempool holds something.
async fn mine_mempools(chains: Arc<Chains>) {
    let http = reqwest::Client::new();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for sim in chains.sims.values() {
            if sim.mempool_len().unwrap_or(0) > 0 {
                let _ = http
                    .post(format!("{}/sim/mine", sim.url()))
                    .json(&serde_json::json!({ "blocks": 1 }))
                    .send()
                    .await;
            }
        }
    }
}

fn process(
    pki: &Pki,
    chains: &Chains,
    name: &'static str,
    (spiffe_id, leaf, operator): (&'static str, &str, &'static str),
    addr: SocketAddr,
    (peer_id, peer_addr, peer_keys): (&'static str, SocketAddr, &escrowd::rpc::admin::PeerKeys),
) -> Process {
    let (saga_key, wallet_keys) = keys_of(name);
    let (dir, _) = write_gateway_toml(
        pki,
        chains,
        &addr.to_string(),
        (spiffe_id, leaf, &saga_key, &wallet_keys),
        (peer_id, peer_addr, peer_keys),
        None,
    );
    Process {
        name,
        spiffe_id,
        config: dir.path().join("gateway.toml"),
        stderr: dir.path().join("stderr.log"),
        addr,
        child: None,
        wallet_keys,
        operator,
        starts: 0,
        _dir: dir,
    }
}

fn names(response: &Option<pb::GetSagaResponse>) -> Vec<String> {
    response
        .as_ref()
        .map(|r| r.events.iter().map(|e| e.name.clone()).collect())
        .unwrap_or_default()
}

fn count(names: &[String], name: &str) -> usize {
    names.iter().filter(|n| *n == name).count()
}

fn balance(chains: &Chains, chain_id: &str, key: &PrivateKey) -> u64 {
    chains.sims[chain_id]
        .balance(&p2pkh_lock(&key.public_key().hash160()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_killed_mid_swap_resume_and_complete_every_swap_exactly_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kills: usize = std::env::var("ESCROWD_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let swaps = 2;
    let pki = Pki::new();
    let chains = Arc::new(Chains::start_at(wall_now()).await);
    let miner = tokio::spawn(mine_mempools(chains.clone()));

    let (addr_a, addr_b) = (free_port(), free_port());
    let (saga_a, wallet_a) = keys_of("ga");
    let (saga_b, wallet_b) = keys_of("gb");
    let mut ga = process(
        &pki,
        &chains,
        "ga",
        (
            GA,
            "org-a.example/gateway-org-a",
            "org-a.example/operator-admin",
        ),
        addr_a,
        (GB, addr_b, &public(&saga_b, &wallet_b)),
    );
    let mut gb = process(
        &pki,
        &chains,
        "gb",
        (
            GB,
            "org-b.example/gateway-org-b",
            "org-b.example/operator-admin",
        ),
        addr_b,
        (GA, addr_a, &public(&saga_a, &wallet_a)),
    );
    ga.spawn();
    gb.spawn();
    ga.until_serving(&pki).await;
    gb.until_serving(&pki).await;

    // One funding output per swap on each side.
    for (gw, chain_id, sats) in [(&ga, P, PAYMENT + 10_000), (&gb, D, DELIVERY + 10_000)] {
        for _ in 0..swaps {
            let beef = chains
                .faucet(chain_id, &gw.wallet_keys[chain_id], sats)
                .await;
            gw.admin(&pki)
                .import_funding(pb::ImportFundingRequest {
                    chain_id: chain_id.into(),
                    beef,
                    basket: pb::Basket::Funding as i32,
                    vouts: vec![],
                })
                .await
                .unwrap();
        }
    }
    let before = [
        balance(&chains, P, &ga.wallet_keys[P]),
        balance(&chains, D, &ga.wallet_keys[D]),
        balance(&chains, P, &gb.wallet_keys[P]),
        balance(&chains, D, &gb.wallet_keys[D]),
    ];

    let mut ids = Vec::new();
    for i in 0..swaps {
        let started = ga
            .admin(&pki)
            .start_swap(pb::StartSwapRequest {
                idempotency_key: format!("kill-{i}"),
                counterparty: GB.into(),
                payment_chain: P.into(),
                payment_sats: PAYMENT,
                delivery_chain: D.into(),
                delivery_sats: DELIVERY,
                notary: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        ids.push(started.status.unwrap().saga_id);
    }

    // Kill at the next step the victim logs for the first saga: the seller
    // first (at its reservation), then the buyer (at its claim), then
    // alternating at whatever step comes next.
    let first = ids[0].clone();
    let mut steps = ["reservation_broadcast", "claim_built"].iter();
    for round in 0..kills {
        let victim_is_seller = round % 2 == 0;
        let victim = if victim_is_seller { &gb } else { &ga };
        let wanted = steps.next().map(|s| s.to_string());
        let seen = names(&victim.saga(&pki, &first).await).len();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = names(&victim.saga(&pki, &first).await);
            let reached = match &wanted {
                Some(step) => now.iter().any(|n| n == step),
                None => now.len() > seen,
            };
            let ended = victim
                .saga(&pki, &first)
                .await
                .and_then(|r| r.status)
                .is_some_and(|s| s.terminal);
            if reached || ended {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: {wanted:?} never came: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let victim = if victim_is_seller { &mut gb } else { &mut ga };
        victim.kill();
        victim.spawn();
        victim.until_serving(&pki).await;
    }

    // Every swap completes at both gateways.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    for id in &ids {
        loop {
            let (a, b) = (ga.saga(&pki, id).await, gb.saga(&pki, id).await);
            let done = |r: &Option<pb::GetSagaResponse>| {
                r.as_ref()
                    .and_then(|r| r.status.as_ref())
                    .is_some_and(|s| s.state == pb::SagaState::Completed as i32)
            };
            if done(&a) && done(&b) {
                // Each step that moves money happened once at each party.
                for (who, events) in [("buyer", names(&a)), ("seller", names(&b))] {
                    for step in ["reservation_built", "claim_built", "claim_confirmed"] {
                        assert_eq!(count(&events, step), 1, "{who} {step}: {events:?}");
                    }
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "saga {id} did not complete:\n  buyer {:?}\n  seller {:?}\n--- ga stderr\n{}\n--- gb stderr\n{}",
                names(&a),
                names(&b),
                ga.log(),
                gb.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    assert_eq!(
        (ga.starts, gb.starts),
        (1 + kills as u32 / 2, 1 + (kills as u32).div_ceil(2))
    );

    // Exact balances: per swap, the buyer pays PAYMENT + its reservation
    // fee (36 sat) on P and receives DELIVERY − its claim fee (24 sat) on
    // D; the seller the mirror image. A second reservation or claim would
    // show here.
    let n = swaps as u64;
    let after = [
        balance(&chains, P, &ga.wallet_keys[P]),
        balance(&chains, D, &ga.wallet_keys[D]),
        balance(&chains, P, &gb.wallet_keys[P]),
        balance(&chains, D, &gb.wallet_keys[D]),
    ];
    assert_eq!(
        after,
        [
            before[0] - n * (PAYMENT + 36),
            before[1] + n * (DELIVERY - 24),
            before[2] + n * (PAYMENT - 24),
            before[3] - n * (DELIVERY + 36),
        ]
    );
    ga.kill();
    gb.kill();
    miner.abort();
    let _ = miner.await;
    if let Ok(chains) = Arc::try_unwrap(chains) {
        chains.stop().await;
    }
}
