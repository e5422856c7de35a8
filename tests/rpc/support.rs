//! The harness of `tests/rpc.rs`: dev certificates, two chainsims and
//! their miner, gateways (sled store, driver, services, mTLS server) and a
//! notary, and bounded waits that fail with both gateways' view.
//! Shared by several test binaries, each using part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bsv_format::hash::sha256;
use bsv_format::keys::{Network, PrivateKey, PublicKey};
use escrowd::chain::{
    ArcClient, ArcConfig, HeadersClient, HeadersConfig, RetryPolicy, SpendClient, SpendConfig,
    TxClient, TxConfig,
};
use escrowd::chainsim::{Chainsim, ChainsimConfig, ChainsimHandle};
use escrowd::config::GatewayConfig;
use escrowd::gateway::serve::{RunningGateway, StartOptions};
use escrowd::identity::authz::SAGA_ID_METADATA;
use escrowd::identity::issue::{self, Ca, CaPaths, DomainPlan, LeafRequest, Validity};
use escrowd::identity::{IdentityHandle, MtlsConnector, SpiffeId, TlsSettings};
use escrowd::notary::config::NotaryFileConfig;
use escrowd::notary::serve::{NotaryStartOptions, RunningNotary};
use escrowd::proto::escrow_v1 as pb;
use escrowd::proto::escrow_v1::admin_service_client::AdminServiceClient;
use escrowd::rpc::admin::PeerKeys;
use escrowd::rpc::faults::FaultPlan;
use escrowd::rpc::notary::{NotaryEndpoint, NotaryPolicy};
use saga_core::saga::Event;
use saga_core::UnixTime;
use saga_runtime::ports::{ChainPorts, Clock};
use saga_runtime::EventLog;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

pub const GA: &str = "spiffe://org-a.example/gateway/org-a";
pub const GB: &str = "spiffe://org-b.example/gateway/org-b";
pub const NOTARY: &str = "spiffe://notary.example/notary/notary";
pub const NOW: u64 = 1_700_000_000;
pub const P: &str = "chain-p";
pub const D: &str = "chain-d";
pub const PAYMENT: u64 = 50_000;
pub const DELIVERY: u64 = 20_000;
/// The longest any test waits for one condition.
pub const PATIENCE: Duration = Duration::from_secs(40);

pub const FAST: RetryPolicy = RetryPolicy {
    attempts: 4,
    base: Duration::from_millis(5),
    cap: Duration::from_millis(20),
};

pub fn key(tag: &str) -> PrivateKey {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).unwrap()
}

pub fn sid(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

pub fn wall_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------
// Certificates

/// `certs init` output in a temp dir, and leaves issued on demand.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        issue::init(dir.path(), &DomainPlan::defaults(), wall_clock(), 2, false).unwrap();
        Pki { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The identity of a leaf `certs init` wrote, e.g. `org-a.example/gateway-org-a`.
    pub fn identity(&self, leaf: &str) -> IdentityHandle {
        IdentityHandle::load(TlsSettings {
            federation: self.path().join("federation.toml"),
            cert: self.path().join(format!("{leaf}.pem")),
            key: self.path().join(format!("{leaf}.key")),
        })
        .unwrap()
    }

    /// A fresh leaf for `id` from the CA of `domain`, as an identity.
    pub fn issued(&self, domain: &str, id: &str, file: &str) -> IdentityHandle {
        let d = domain.parse().unwrap();
        let p = CaPaths::new(self.path(), &d);
        let ca = Ca::load(&d, &p.cert, &p.key).unwrap();
        let leaf = ca
            .issue(&LeafRequest {
                id: sid(id),
                validity: Validity::days_from(wall_clock(), 1),
                dns: vec![],
                ips: vec![],
            })
            .unwrap();
        let cert: PathBuf = self.path().join(format!("{file}.pem"));
        let key: PathBuf = self.path().join(format!("{file}.key"));
        issue::write_file(&cert, &leaf.cert_pem, false, false).unwrap();
        issue::write_file(&key, &leaf.key_pem, true, false).unwrap();
        IdentityHandle::load(TlsSettings {
            federation: self.path().join("federation.toml"),
            cert,
            key,
        })
        .unwrap()
    }
}

/// A channel to `addr` as `identity`, accepting only the server `expected`.
pub fn channel(identity: &IdentityHandle, expected: &str, addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector_lazy(MtlsConnector::for_peer(identity.clone(), sid(expected)))
}

// ---------------------------------------------------------------------------
// Chains

/// A UTC clock that stays where it is put.
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0)
    }
}

#[path = "../common/counted.rs"]
mod counted;
pub use counted::Counted;

pub struct Chains {
    pub sims: BTreeMap<&'static str, ChainsimHandle>,
    pub broadcasts: BTreeMap<&'static str, Arc<AtomicU64>>,
    pub miner: tokio::task::JoinHandle<()>,
}

impl Chains {
    pub async fn start() -> Chains {
        Chains::start_at(NOW).await
    }

    /// Chainsims whose genesis is at `start_unix` (the wall clock, for
    /// gateways that run on the system clock).
    pub async fn start_at(start_unix: u64) -> Chains {
        let mut sims = BTreeMap::new();
        let mut broadcasts = BTreeMap::new();
        for chain_id in [P, D] {
            let sim = Chainsim::start(ChainsimConfig {
                chain_id: chain_id.into(),
                start_unix,
                ..ChainsimConfig::default()
            })
            .await
            .unwrap();
            sims.insert(chain_id, sim);
            broadcasts.insert(chain_id, Arc::new(AtomicU64::new(0)));
        }
        let miner = tokio::spawn(mine(
            sims.iter().map(|(c, s)| (*c, s.url())).collect(),
            broadcasts.clone(),
        ));
        Chains {
            sims,
            broadcasts,
            miner,
        }
    }

    /// One gateway's clients of both chains; its ARC client of a chain is
    /// unreachable while that chain's switch in `arc_down` is set.
    pub fn ports(
        &self,
        arc_down: &BTreeMap<String, Arc<AtomicBool>>,
    ) -> BTreeMap<String, ChainPorts> {
        self.sims
            .iter()
            .map(|(chain_id, sim)| {
                let url = sim.url();
                let mut arc = ArcConfig::new(&url);
                arc.retry = FAST;
                let mut headers = HeadersConfig::new(&url);
                headers.retry = FAST;
                headers.tip_ttl = Duration::from_millis(10);
                let mut spends = SpendConfig::new(format!("{url}/v1"));
                spends.retry = FAST;
                let mut txs = TxConfig::new(format!("{url}/v1"));
                txs.retry = FAST;
                let ports = ChainPorts {
                    broadcaster: Arc::new(Counted {
                        arc: ArcClient::new(arc).unwrap(),
                        broadcasts: self.broadcasts[chain_id].clone(),
                        down: arc_down.get(*chain_id).cloned().unwrap_or_default(),
                    }),
                    tracker: Arc::new(HeadersClient::new(headers).unwrap()),
                    spends: Arc::new(SpendClient::new(spends).unwrap()),
                    transactions: Arc::new(TxClient::new(txs).unwrap()),
                };
                (chain_id.to_string(), ports)
            })
            .collect()
    }

    /// The faucet's BEEF paying `satoshis` to `key`'s address on `chain_id`.
    pub async fn faucet(&self, chain_id: &str, key: &PrivateKey, satoshis: u64) -> Vec<u8> {
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/sim/faucet", self.sims[chain_id].url()))
            .json(&json!({
                "address": key.public_key().address(Network::Testnet),
                "satoshis": satoshis,
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        hex::decode(body["beef"].as_str().unwrap()).unwrap()
    }

    pub async fn stop(self) {
        self.miner.abort();
        for (_, sim) in self.sims {
            sim.shutdown().await.unwrap();
        }
    }
}

/// Every 20 ms, one block on each chain that had a broadcast since its last block.
pub async fn mine(
    urls: BTreeMap<&'static str, String>,
    broadcasts: BTreeMap<&'static str, Arc<AtomicU64>>,
) {
    let http = reqwest::Client::new();
    let mut seen: BTreeMap<&str, u64> = urls.keys().map(|c| (*c, 0)).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (chain_id, url) in &urls {
            let now = broadcasts[chain_id].load(Ordering::SeqCst);
            if now == seen[chain_id] {
                continue;
            }
            seen.insert(chain_id, now);
            let _ = http
                .post(format!("{url}/sim/mine"))
                .json(&json!({ "blocks": 1 }))
                .send()
                .await;
        }
    }
}

// ---------------------------------------------------------------------------
// Gateways

/// One gateway: a `RunningGateway` started from a gateway.toml written for
/// it (the path `escrowd serve` takes), and the keys others pin. Its server
/// applies `faults`; its ARC client of a chain is down while that chain's
/// `arc_down` switch is set.
pub struct Node {
    pub addr: SocketAddr,
    pub wallet_keys: BTreeMap<String, PrivateKey>,
    pub public: PeerKeys,
    pub running: Option<RunningGateway>,
    pub config: GatewayConfig,
    pub faults: Arc<FaultPlan>,
    pub arc_down: BTreeMap<String, Arc<AtomicBool>>,
    pub _dir: tempfile::TempDir,
}

pub struct World {
    pub pki: Pki,
    pub chains: Chains,
    pub ga: Node,
    pub gb: Node,
    pub notary: Option<NotaryNode>,
}

/// The notary: `RunningNotary` started from a notary.toml written for it
/// (the path `escrowd notary` takes), tracking the chainsims itself.
pub struct NotaryNode {
    pub addr: SocketAddr,
    pub key: PrivateKey,
    pub running: RunningNotary,
    pub _dir: tempfile::TempDir,
}

impl NotaryNode {
    pub async fn start(pki: &Pki, chains: &Chains, policy: NotaryPolicy) -> NotaryNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = key("rpc test notary key");
        escrowd::keys::write_key_file(&dir.path().join("notary.wif"), &key, Network::Testnet)
            .unwrap();
        let leaf = pki.path().join("notary.example/notary-notary");
        let mut text = format!(
            "[notary]\nspiffe_id = \"{NOTARY}\"\nlisten = \"127.0.0.1:0\"\napproval_key = \"notary.wif\"\n\
             network = \"regtest\"\ntip_ttl = \"10ms\"\n\n[identity]\nfederation = \"{fed}\"\ncert = \"{leaf}.pem\"\nkey = \"{leaf}.key\"\n",
            fed = pki.path().join("federation.toml").display(),
            leaf = leaf.display(),
        );
        for (chain_id, sim) in &chains.sims {
            text.push_str(&format!(
                "\n[chains.{chain_id}]\nheaders_url = \"{}\"\n",
                sim.url()
            ));
        }
        text.push_str(&format!(
            "\n[policy]\ntrust_domains = [{}]\nmin_confirmations = {}\nmax_amount = {{ {} }}\n",
            policy
                .domains
                .iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", "),
            policy.min_confirmations,
            policy
                .max_amount
                .iter()
                .map(|(c, s)| format!("{c} = {}", s.0))
                .collect::<Vec<_>>()
                .join(", "),
        ));
        let config = NotaryFileConfig::parse(&text, "notary.toml", dir.path())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.policy, policy, "notary.toml renders the policy");
        let running = RunningNotary::start(
            &config,
            NotaryStartOptions {
                listener: Some(listener),
                trackers: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("the notary did not start: {e}"));
        NotaryNode {
            addr: running.addr,
            key,
            running,
            _dir: dir,
        }
    }

    pub fn endpoint(&self) -> NotaryEndpoint {
        NotaryEndpoint {
            spiffe_id: sid(NOTARY),
            url: format!("https://{}", self.addr),
            public_key: self.key.public_key(),
        }
    }
}

/// The keys of gateway `name`: a saga key and one wallet (= escrow) key per chain.
pub fn keys_of(name: &str) -> (PrivateKey, BTreeMap<String, PrivateKey>) {
    let wallet = [P, D]
        .into_iter()
        .map(|c| (c.to_string(), key(&format!("rpc test {name} wallet {c}"))))
        .collect();
    (key(&format!("rpc test {name} saga key")), wallet)
}

pub fn public(saga_key: &PrivateKey, wallet: &BTreeMap<String, PrivateKey>) -> PeerKeys {
    PeerKeys {
        saga_key: saga_key.public_key(),
        escrow_keys: wallet
            .iter()
            .map(|(c, k)| (c.clone(), k.public_key()))
            .collect(),
    }
}

impl World {
    pub async fn new() -> World {
        World::build(None).await
    }

    /// Two gateways that ask a notary applying `policy`.
    pub async fn with_notary(policy: NotaryPolicy) -> World {
        World::build(Some(policy)).await
    }

    pub async fn build(notary_policy: Option<NotaryPolicy>) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pki = Pki::new();
        let chains = Chains::start().await;
        let notary = match notary_policy {
            Some(policy) => Some(NotaryNode::start(&pki, &chains, policy).await),
            None => None,
        };
        let endpoint = notary.as_ref().map(NotaryNode::endpoint);
        let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr_a, addr_b) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let (saga_a, wallet_a) = keys_of("ga");
        let (saga_b, wallet_b) = keys_of("gb");
        let pub_a = public(&saga_a, &wallet_a);
        let pub_b = public(&saga_b, &wallet_b);
        let ga = Node::start(
            &pki,
            &chains,
            la,
            (GA, "org-a.example/gateway-org-a", saga_a, wallet_a),
            (GB, addr_b, pub_b.clone()),
            endpoint.clone(),
        )
        .await;
        let gb = Node::start(
            &pki,
            &chains,
            lb,
            (GB, "org-b.example/gateway-org-b", saga_b, wallet_b),
            (GA, addr_a, pub_a),
            endpoint,
        )
        .await;
        World {
            pki,
            chains,
            ga,
            gb,
            notary,
        }
    }

    /// GA's operator's admin client.
    pub fn admin_a(&self) -> AdminServiceClient<Channel> {
        let op = self.pki.identity("org-a.example/operator-admin");
        AdminServiceClient::new(channel(&op, GA, self.ga.addr))
    }

    /// GB's operator's admin client.
    pub fn admin_b(&self) -> AdminServiceClient<Channel> {
        let op = self.pki.identity("org-b.example/operator-admin");
        AdminServiceClient::new(channel(&op, GB, self.gb.addr))
    }

    /// Funds `node` on `chain_id` through its AdminService.ImportFunding.
    pub async fn fund(
        &self,
        admin: &mut AdminServiceClient<Channel>,
        node: &Node,
        chain_id: &str,
        sats: u64,
    ) {
        let beef = self
            .chains
            .faucet(chain_id, &node.wallet_keys[chain_id], sats)
            .await;
        let report = admin
            .import_funding(pb::ImportFundingRequest {
                chain_id: chain_id.into(),
                beef,
                basket: pb::Basket::Funding as i32,
                vouts: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(report.imported.len(), 1, "{report:?}");
        assert_eq!(report.imported[0].sats, sats);
    }

    /// Starts a swap at GA (as its operator) with `key`.
    pub async fn start(
        &self,
        admin: &mut AdminServiceClient<Channel>,
        key: &str,
    ) -> pb::StartSwapResponse {
        self.start_with(admin, key, "").await
    }

    /// Starts a swap at GA naming `notary` (empty: none).
    pub async fn start_with(
        &self,
        admin: &mut AdminServiceClient<Channel>,
        key: &str,
        notary: &str,
    ) -> pb::StartSwapResponse {
        admin
            .start_swap(pb::StartSwapRequest {
                idempotency_key: key.into(),
                counterparty: GB.into(),
                payment_chain: P.into(),
                payment_sats: PAYMENT,
                delivery_chain: D.into(),
                delivery_sats: DELIVERY,
                notary: notary.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn state(&self, node: &Node, saga_id: &str) -> String {
        if node.running.is_none() {
            return "down".into();
        }
        let id = saga_id.parse().unwrap();
        match node.log().projection(&id).await.unwrap() {
            Some(p) => format!("{} (attention {:?})", p.state, p.attention),
            None => "none".into(),
        }
    }

    pub async fn report(&self, saga_id: &str) -> String {
        let mut out = String::new();
        for (name, node) in [("GA", &self.ga), ("GB", &self.gb)] {
            let events: Vec<&str> = self
                .events(node, saga_id)
                .await
                .iter()
                .map(|e| e.name())
                .collect();
            out.push_str(&format!(
                "\n  {name}: {}\n    {events:?}",
                self.state(node, saga_id).await
            ));
        }
        out
    }

    /// The saga's events in `node`'s log (none while it is stopped).
    pub async fn events(&self, node: &Node, saga_id: &str) -> Vec<Event> {
        if node.running.is_none() {
            return Vec::new();
        }
        node.log()
            .load(&saga_id.parse().unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// Waits until `node`'s log holds an event named `name` for the saga.
    pub async fn until_event(&self, node: &Node, saga_id: &str, name: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self
            .events(node, saga_id)
            .await
            .iter()
            .any(|e| e.name() == name)
        {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {name}:{}",
                    self.report(saga_id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until both gateways' GetSaga say `state`.
    pub async fn until_both(&self, saga_id: &str, state: pb::SagaState) {
        let (mut a, mut b) = (self.admin_a(), self.admin_b());
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let get = pb::GetSagaRequest {
                saga_id: saga_id.into(),
                include_events: false,
            };
            let sa = a
                .get_saga(get.clone())
                .await
                .ok()
                .and_then(|r| r.into_inner().status);
            let sb = b
                .get_saga(get)
                .await
                .ok()
                .and_then(|r| r.into_inner().status);
            if [&sa, &sb]
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| s.state == state as i32))
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {state:?}:{}",
                    self.report(saga_id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stop(self) {
        for mut node in [self.ga, self.gb] {
            node.stop_gateway().await;
        }
        if let Some(n) = self.notary {
            n.running.stop().await;
        }
        self.chains.stop().await;
    }
}

/// Writes key files and `gateway.toml` (listening on `listen`) into a new
/// directory: what `escrowd serve --config DIR/gateway.toml` reads. Returns
/// the directory and the file's text.
pub fn write_gateway_toml(
    pki: &Pki,
    chains: &Chains,
    listen: &str,
    (spiffe_id, leaf, saga_key, wallet_keys): (
        &str,
        &str,
        &PrivateKey,
        &BTreeMap<String, PrivateKey>,
    ),
    (peer_id, peer_addr, peer_keys): (&str, SocketAddr, &PeerKeys),
    notary: Option<&NotaryEndpoint>,
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let key_file = |name: &str, key: &PrivateKey| {
        let path = dir.path().join(name);
        escrowd::keys::write_key_file(&path, key, Network::Testnet).unwrap();
        path.display().to_string()
    };
    let hex_key = |k: &PublicKey| hex::encode(k.to_compressed());
    let mut text = format!(
        "[gateway]\nspiffe_id = \"{spiffe_id}\"\nlisten = \"{listen}\"\nstore = \"store\"\n\
         policy = \"{policy}\"\nsaga_key = \"{saga}\"\npoll_interval = \"50ms\"\nnetwork = \"regtest\"\n\n\
         [identity]\nfederation = \"{fed}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
        policy = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("policies/fast-test.toml")
            .display(),
        saga = key_file("saga.wif", saga_key),
        fed = pki.path().join("federation.toml").display(),
        cert = pki.path().join(format!("{leaf}.pem")).display(),
        key = pki.path().join(format!("{leaf}.key")).display(),
    );
    for (chain_id, sim) in &chains.sims {
        let url = sim.url();
        text.push_str(&format!(
            "\n[chains.{chain_id}]\narc_url = \"{url}\"\nheaders_url = \"{url}\"\nspend_url = \"{url}/v1\"\ntx_url = \"{url}/v1\"\nwallet_key = \"{}\"\n",
            key_file(&format!("{chain_id}.wif"), &wallet_keys[*chain_id])
        ));
    }
    let peer = sid(peer_id);
    text.push_str(&format!(
        "\n[peers.\"{domain}\"]\nurl = \"https://{peer_addr}\"\nspiffe_id = \"{peer_id}\"\nsaga_key = \"{saga}\"\nescrow_keys = {{ {keys} }}\n",
        domain = peer.domain(),
        saga = hex_key(&peer_keys.saga_key),
        keys = peer_keys
            .escrow_keys
            .iter()
            .map(|(c, k)| format!("{c} = \"{}\"", hex_key(k)))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    if let Some(n) = notary {
        text.push_str(&format!(
            "\n[notary]\nurl = \"{}\"\nspiffe_id = \"{}\"\npublic_key = \"{}\"\n",
            n.url,
            n.spiffe_id,
            hex_key(&n.public_key)
        ));
    }
    std::fs::write(dir.path().join("gateway.toml"), &text).unwrap();
    (dir, text)
}

impl Node {
    /// Writes key files and a gateway.toml for this gateway, then starts it
    /// on `listener` exactly as `escrowd serve` would (with the fixed clock
    /// and the broadcast-counting chain clients the miner watches).
    pub async fn start(
        pki: &Pki,
        chains: &Chains,
        listener: tokio::net::TcpListener,
        (spiffe_id, leaf, saga_key, wallet_keys): (
            &'static str,
            &str,
            PrivateKey,
            BTreeMap<String, PrivateKey>,
        ),
        (peer_id, peer_addr, peer_keys): (&'static str, SocketAddr, PeerKeys),
        notary: Option<NotaryEndpoint>,
    ) -> Node {
        let (dir, text) = write_gateway_toml(
            pki,
            chains,
            "127.0.0.1:0",
            (spiffe_id, leaf, &saga_key, &wallet_keys),
            (peer_id, peer_addr, &peer_keys),
            notary.as_ref(),
        );
        let mut config = GatewayConfig::parse(&text, "gateway.toml", dir.path())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let faults = Arc::new(FaultPlan::new());
        let arc_down: BTreeMap<String, Arc<AtomicBool>> = [P, D]
            .into_iter()
            .map(|c| (c.to_string(), Arc::default()))
            .collect();
        let running = RunningGateway::start(
            &config,
            StartOptions {
                listener: Some(listener),
                clock: Some(Arc::new(FixedClock(NOW))),
                chains: Some(chains.ports(&arc_down)),
                faults: Some(faults.clone()),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{spiffe_id} did not start: {e}"));
        // A restart binds the address the first start was given.
        config.listen = running.addr;
        Node {
            addr: running.addr,
            wallet_keys: wallet_keys.clone(),
            public: public(&saga_key, &wallet_keys),
            running: Some(running),
            config,
            faults,
            arc_down,
            _dir: dir,
        }
    }

    /// The running gateway's event log (panics while it is stopped: a
    /// stopped gateway's store must be closed for its restart to open it).
    pub fn log(&self) -> Arc<dyn EventLog<Event>> {
        self.running().gateway.log.clone()
    }

    /// The running gateway (panics while it is stopped).
    pub fn running(&self) -> &RunningGateway {
        self.running.as_ref().expect("the gateway is running")
    }

    /// Stops the gateway (server, then driver, as `escrowd serve` on SIGTERM).
    pub async fn stop_gateway(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    /// Starts the stopped gateway again over the same store and address,
    /// as `escrowd serve` would after a restart; returns how many in-flight
    /// sagas it resumed.
    pub async fn restart(&mut self, chains: &Chains) -> usize {
        assert!(self.running.is_none(), "stop the gateway first");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let running = loop {
            let options = StartOptions {
                listener: None,
                clock: Some(Arc::new(FixedClock(NOW))),
                chains: Some(chains.ports(&self.arc_down)),
                faults: Some(self.faults.clone()),
            };
            match RunningGateway::start(&self.config, options).await {
                Ok(r) => break r,
                // The old store lock and port are released moments after the stop.
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("restart of {}: {e}; trying again", self.config.spiffe_id);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{} did not restart: {e}", self.config.spiffe_id),
            }
        };
        let resumed = running.gateway.resumed;
        self.running = Some(running);
        resumed
    }
}

/// `body` with the `escrow-saga-id` metadata.
pub fn with_saga<T>(saga_id: &str, body: T) -> Request<T> {
    let mut r = Request::new(body);
    r.metadata_mut()
        .insert(SAGA_ID_METADATA, saga_id.parse().unwrap());
    r
}

// ---------------------------------------------------------------------------
// The command line

/// What one run of the `escrowd` binary did.
#[derive(Debug)]
pub struct CliRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Stdout as one JSON document (fails the test with the whole run if not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }

    /// Asserts exit 0 and returns stdout's JSON.
    pub fn ok_json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "{self:?}");
        self.json()
    }
}

/// Runs the escrowd binary with `args`, on the blocking pool (the async
/// workers keep serving the gateways it calls).
pub async fn escrowd(args: Vec<String>) -> CliRun {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
            .args(&args)
            .env_remove("ESCROWD_GATEWAY")
            .env_remove("ESCROWD_EXPECT_ID")
            .env_remove("ESCROWD_IDENTITY")
            .env_remove("ESCROWD_CERT")
            .env_remove("ESCROWD_KEY")
            .env_remove("ESCROWD_FEDERATION")
            .output()
            .unwrap();
        CliRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

impl World {
    /// `escrowd ARGS --gateway https://<node> --identity <pki>/<leaf>`: a
    /// command as the operator `leaf` (e.g. `org-a.example/operator-admin`),
    /// the gateway's SPIFFE ID derived from the operator's domain unless
    /// ARGS names one.
    pub async fn cli(&self, leaf: &str, node: &Node, args: &[&str]) -> CliRun {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend([
            "--gateway".into(),
            format!("https://{}", node.addr),
            "--identity".into(),
            self.pki.path().join(leaf).display().to_string(),
        ]);
        escrowd(all).await
    }
}
