//! The gRPC services over real mutual TLS on loopback (issue 6): two
//! gateways — GA (org-a, the buyer) and GB (org-b, the seller) — each a
//! real driver over a sled store in a temp dir, serving PeerService,
//! AdminService, EventService, health and reflection behind the
//! authorization layer, and calling each other through `PeerClient`; two
//! chainsims (`chain-p`, `chain-d`) reached through the real HTTP clients.
//! Certificates come from the library's dev issuer (`certs init`); every
//! client — operators, observers, an intruding gateway — connects with its
//! own certificate through `MtlsConnector`.
//!
//! Only chain heights decide: the UTC clock never moves, and a test miner
//! mines one block on a chain after each broadcast to it (as
//! tests/driver.rs does), so no deadline in blocks is used up while the
//! machine is slow. Every wait is bounded and fails with both gateways'
//! view.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bsv_format::ef::EfTransaction;
use bsv_format::hash::sha256;
use bsv_format::keys::{Network, PrivateKey};
use bsv_format::spv::{ScriptEras, VerifyOptions};
use bsv_format::Txid;
use escrowd::chain::{
    ArcClient, ArcConfig, HeadersClient, HeadersConfig, RetryPolicy, SpendClient, SpendConfig,
    TxClient, TxConfig,
};
use escrowd::chainsim::{Chainsim, ChainsimConfig, ChainsimHandle};
use escrowd::gateway::context::GatewayContexts;
use escrowd::identity::authz::SAGA_ID_METADATA;
use escrowd::identity::issue::{self, Ca, CaPaths, DomainPlan, LeafRequest, Validity};
use escrowd::identity::server::{self, ConnectionAge};
use escrowd::identity::{AuthLayer, IdentityHandle, MtlsConnector, SpiffeId, TlsSettings};
use escrowd::proto::escrow_v1 as pb;
use escrowd::proto::escrow_v1::admin_service_client::AdminServiceClient;
use escrowd::proto::escrow_v1::event_service_client::EventServiceClient;
use escrowd::proto::escrow_v1::peer_service_client::PeerServiceClient;
use escrowd::rpc::admin::{AdminService, PeerKeys};
use escrowd::rpc::authz::{gateway_rules, notary_rules, LogParties};
use escrowd::rpc::events::{EventService, NotifyingLog};
use escrowd::rpc::notary::{
    approval_digest, NotaryClient, NotaryEndpoint, NotaryPolicy, NotaryService,
};
use escrowd::rpc::peer::PeerService;
use escrowd::rpc::peer_client::{PeerClient, PeerEndpoint, Timeouts};
use escrowd::rpc::{standard, Shared};
use escrowd::store::events::project;
use escrowd::store::SledLog;
use saga_core::policy::Policy;
use saga_core::saga::Event;
use saga_core::UnixTime;
use saga_runtime::driver::{Driver, DriverPorts};
use saga_runtime::ports::{ChainPorts, Clock};
use saga_runtime::wallet::{KeyWallet, UtxoStore, Wallet};
use saga_runtime::{BroadcastError, BroadcastOutcome, Broadcaster, EventLog, TxStatus};
use serde_json::json;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const GA: &str = "spiffe://org-a.example/gateway/org-a";
const GB: &str = "spiffe://org-b.example/gateway/org-b";
const NOTARY: &str = "spiffe://notary.example/notary/notary";
const FAST_TEST: &str = include_str!("../policies/fast-test.toml");
const NOW: u64 = 1_700_000_000;
const P: &str = "chain-p";
const D: &str = "chain-d";
const PAYMENT: u64 = 50_000;
const DELIVERY: u64 = 20_000;
/// The longest any test waits for one condition.
const PATIENCE: Duration = Duration::from_secs(40);

const FAST: RetryPolicy = RetryPolicy {
    attempts: 4,
    base: Duration::from_millis(5),
    cap: Duration::from_millis(20),
};

fn key(tag: &str) -> PrivateKey {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).unwrap()
}

fn sid(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

fn wall_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------
// Certificates

/// `certs init` output in a temp dir, and leaves issued on demand.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        issue::init(dir.path(), &DomainPlan::defaults(), wall_clock(), 2, false).unwrap();
        Pki { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The identity of a leaf `certs init` wrote, e.g. `org-a.example/gateway-org-a`.
    fn identity(&self, leaf: &str) -> IdentityHandle {
        IdentityHandle::load(TlsSettings {
            federation: self.path().join("federation.toml"),
            cert: self.path().join(format!("{leaf}.pem")),
            key: self.path().join(format!("{leaf}.key")),
        })
        .unwrap()
    }

    /// A fresh leaf for `id` from the CA of `domain`, as an identity.
    fn issued(&self, domain: &str, id: &str, file: &str) -> IdentityHandle {
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
fn channel(identity: &IdentityHandle, expected: &str, addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector_lazy(MtlsConnector::for_peer(identity.clone(), sid(expected)))
}

// ---------------------------------------------------------------------------
// Chains

/// A UTC clock that stays where it is put.
struct FixedClock(u64);

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0)
    }
}

/// The ARC client, counting broadcasts per chain for the miner.
struct Counted {
    arc: ArcClient,
    broadcasts: Arc<AtomicU64>,
}

#[async_trait]
impl Broadcaster for Counted {
    async fn broadcast(&self, ef: &EfTransaction) -> Result<BroadcastOutcome, BroadcastError> {
        let outcome = self.arc.broadcast(ef).await;
        self.broadcasts.fetch_add(1, Ordering::SeqCst);
        outcome
    }

    async fn status(&self, txid: &Txid) -> Result<Option<TxStatus>, BroadcastError> {
        self.arc.status(txid).await
    }
}

struct Chains {
    sims: BTreeMap<&'static str, ChainsimHandle>,
    broadcasts: BTreeMap<&'static str, Arc<AtomicU64>>,
    miner: tokio::task::JoinHandle<()>,
}

impl Chains {
    async fn start() -> Chains {
        let mut sims = BTreeMap::new();
        let mut broadcasts = BTreeMap::new();
        for chain_id in [P, D] {
            let sim = Chainsim::start(ChainsimConfig {
                chain_id: chain_id.into(),
                start_unix: NOW,
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

    /// One gateway's clients of both chains.
    fn ports(&self) -> BTreeMap<String, ChainPorts> {
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
    async fn faucet(&self, chain_id: &str, key: &PrivateKey, satoshis: u64) -> Vec<u8> {
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

    async fn stop(self) {
        self.miner.abort();
        for (_, sim) in self.sims {
            sim.shutdown().await.unwrap();
        }
    }
}

/// Every 20 ms, one block on each chain that had a broadcast since its last block.
async fn mine(
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

/// One gateway: its store, driver, server and the keys others pin.
struct Node {
    addr: SocketAddr,
    log: Arc<dyn EventLog<Event>>,
    driver: Driver,
    wallet_keys: BTreeMap<String, PrivateKey>,
    public: PeerKeys,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    _store: tempfile::TempDir,
}

struct World {
    pki: Pki,
    chains: Chains,
    ga: Node,
    gb: Node,
    notary: Option<NotaryNode>,
}

/// The notary's server.
struct NotaryNode {
    addr: SocketAddr,
    key: PrivateKey,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

impl NotaryNode {
    async fn start(pki: &Pki, chains: &Chains, policy: NotaryPolicy) -> NotaryNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let identity = pki.identity("notary.example/notary-notary");
        let key = key("rpc test notary key");
        let trackers = chains
            .ports()
            .into_iter()
            .map(|(c, p)| (c, p.tracker))
            .collect();
        let service = NotaryService::new(NOTARY.into(), key, trackers, regtest(), policy);
        let (shutdown, mut stop) = watch::channel(false);
        let router = server::builder(ConnectionAge::default())
            .layer(AuthLayer::new(
                identity.clone(),
                notary_rules(),
                Arc::new(LogParties::new(Vec::new())),
            ))
            .add_service(service.into_server());
        let incoming = server::incoming(listener, identity);
        let server = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        NotaryNode {
            addr,
            key,
            shutdown,
            server,
        }
    }

    fn endpoint(&self) -> NotaryEndpoint {
        NotaryEndpoint {
            spiffe_id: sid(NOTARY),
            url: format!("https://{}", self.addr),
            public_key: self.key.public_key(),
        }
    }
}

fn regtest() -> VerifyOptions {
    VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    }
}

/// The keys of gateway `name`: a saga key and one wallet (= escrow) key per chain.
fn keys_of(name: &str) -> (PrivateKey, BTreeMap<String, PrivateKey>) {
    let wallet = [P, D]
        .into_iter()
        .map(|c| (c.to_string(), key(&format!("rpc test {name} wallet {c}"))))
        .collect();
    (key(&format!("rpc test {name} saga key")), wallet)
}

fn public(saga_key: &PrivateKey, wallet: &BTreeMap<String, PrivateKey>) -> PeerKeys {
    PeerKeys {
        saga_key: saga_key.public_key(),
        escrow_keys: wallet
            .iter()
            .map(|(c, k)| (c.clone(), k.public_key()))
            .collect(),
    }
}

impl World {
    async fn new() -> World {
        World::build(None).await
    }

    /// Two gateways that ask a notary applying `policy`.
    async fn with_notary(policy: NotaryPolicy) -> World {
        World::build(Some(policy)).await
    }

    async fn build(notary_policy: Option<NotaryPolicy>) -> World {
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
    fn admin_a(&self) -> AdminServiceClient<Channel> {
        let op = self.pki.identity("org-a.example/operator-admin");
        AdminServiceClient::new(channel(&op, GA, self.ga.addr))
    }

    /// GB's operator's admin client.
    fn admin_b(&self) -> AdminServiceClient<Channel> {
        let op = self.pki.identity("org-b.example/operator-admin");
        AdminServiceClient::new(channel(&op, GB, self.gb.addr))
    }

    /// Funds `node` on `chain_id` through its AdminService.ImportFunding.
    async fn fund(
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
    async fn start(
        &self,
        admin: &mut AdminServiceClient<Channel>,
        key: &str,
    ) -> pb::StartSwapResponse {
        self.start_with(admin, key, "").await
    }

    /// Starts a swap at GA naming `notary` (empty: none).
    async fn start_with(
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

    async fn state(&self, node: &Node, saga_id: &str) -> String {
        let id = saga_id.parse().unwrap();
        match node.log.projection(&id).await.unwrap() {
            Some(p) => format!("{} (attention {:?})", p.state, p.attention),
            None => "none".into(),
        }
    }

    async fn report(&self, saga_id: &str) -> String {
        let mut out = String::new();
        for (name, node) in [("GA", &self.ga), ("GB", &self.gb)] {
            let id = saga_id.parse().unwrap();
            let events: Vec<String> = node
                .log
                .load(&id)
                .await
                .unwrap()
                .iter()
                .map(|(_, e)| e.name().to_string())
                .collect();
            out.push_str(&format!(
                "\n  {name}: {}\n    {events:?}",
                self.state(node, saga_id).await
            ));
        }
        out
    }

    async fn events(&self, node: &Node, saga_id: &str) -> Vec<Event> {
        node.log
            .load(&saga_id.parse().unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    /// Waits until both gateways' GetSaga say `state`.
    async fn until_both(&self, saga_id: &str, state: pb::SagaState) {
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

    async fn stop(self) {
        for node in [self.ga, self.gb] {
            node.driver.shutdown();
            let _ = node.shutdown.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), node.server).await;
        }
        if let Some(n) = self.notary {
            let _ = n.shutdown.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), n.server).await;
        }
        self.chains.stop().await;
    }
}

impl Node {
    /// Opens a sled store, builds the driver and the services, and serves
    /// them on `listener` behind mTLS and the authorization layer.
    async fn start(
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
        let addr = listener.local_addr().unwrap();
        let identity = pki.identity(leaf);
        let store = tempfile::tempdir().unwrap();
        let sled = Arc::new(SledLog::<Event>::open(&store.path().join("store"), project).unwrap());
        let notifying = Arc::new(NotifyingLog::new(sled as Arc<dyn EventLog<Event>>));
        let signal = notifying.signal();
        let log: Arc<dyn EventLog<Event>> = notifying;
        let policy = Arc::new(Policy::parse(FAST_TEST, "policies/fast-test.toml").unwrap());
        let wallet: Arc<dyn Wallet> = Arc::new(KeyWallet::new(
            log.clone() as Arc<dyn UtxoStore>,
            wallet_keys.clone(),
        ));
        let ports = chains.ports();
        let peers = PeerClient::new(
            &identity,
            &[PeerEndpoint {
                spiffe_id: sid(peer_id),
                url: format!("https://{peer_addr}"),
            }],
            Timeouts::default(),
        )
        .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
        let driver = Driver::new(DriverPorts {
            log: log.clone(),
            chains: ports.clone(),
            peer: Arc::new(peers),
            notary: notary.map(|n| {
                Arc::new(NotaryClient::new(&identity, &[n], Timeouts::default()).unwrap())
                    as Arc<dyn saga_runtime::ports::Notary>
            }),
            wallet: wallet.clone(),
            contexts: Arc::new(GatewayContexts::new(
                spiffe_id.into(),
                saga_key,
                wallet_keys.clone(),
                policy.clone(),
                log.clone(),
            )),
            clock: clock.clone(),
            poll_interval: Duration::from_millis(50),
        });
        let parties = Arc::new(
            LogParties::load(log.as_ref(), vec![sid(peer_id)])
                .await
                .unwrap(),
        );
        let own = public(&saga_key, &wallet_keys);
        let shared = Shared {
            driver: driver.clone(),
            log: log.clone(),
            wallet,
            chains: ports,
            own_spiffe_id: spiffe_id.into(),
            own_keys: own.clone(),
            policy,
            verify: regtest(),
            clock: clock.clone(),
            parties: parties.clone(),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let events = EventService::new(
            log.clone(),
            Some(signal),
            Duration::from_millis(200),
            shutdown_rx.clone(),
            clock,
        );
        let (_health_reporter, health) = standard::health(&standard::GATEWAY_SERVICES).await;
        let router = server::builder(ConnectionAge::default())
            .layer(AuthLayer::new(identity.clone(), gateway_rules(), parties))
            .add_service(PeerService::new(shared.clone()).into_server())
            .add_service(
                AdminService::new(shared, BTreeMap::from([(peer_id.to_string(), peer_keys)]))
                    .into_server(),
            )
            .add_service(events.into_server())
            .add_service(health)
            .add_service(standard::reflection_v1(&standard::GATEWAY_SERVICES).unwrap())
            .add_service(standard::reflection_v1alpha(&standard::GATEWAY_SERVICES).unwrap());
        let incoming = server::incoming(listener, identity);
        let mut stop = shutdown_rx;
        let server = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
        Node {
            addr,
            log,
            driver,
            wallet_keys,
            public: own,
            shutdown,
            server,
            _store: store,
        }
    }
}

/// `body` with the `escrow-saga-id` metadata.
fn with_saga<T>(saga_id: &str, body: T) -> Request<T> {
    let mut r = Request::new(body);
    r.metadata_mut()
        .insert(SAGA_ID_METADATA, saga_id.parse().unwrap());
    r
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_started_through_the_admin_api_completes_on_both_gateways() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;

    // An observer follows GA's feed from the start, drops its stream after
    // three events and resumes from the cursor after the last it saw.
    let observer = w.pki.identity("observer.example/observer-observer");
    let mut events = EventServiceClient::new(channel(&observer, GA, w.ga.addr));
    let mut first = events
        .subscribe(pb::SubscribeRequest { from_cursor: 0 })
        .await
        .unwrap()
        .into_inner();

    let started = w.start(&mut admin_a, "swap-1").await;
    assert!(started.created);
    let status = started.status.unwrap();
    let saga_id = status.saga_id.clone();
    assert_eq!(status.role, pb::SagaRole::Buyer as i32);
    let terms = saga_core::terms::Terms::decode(&started.terms).unwrap();
    assert_eq!(terms.saga_id.to_string(), saga_id);
    assert_eq!(terms.buyer.spiffe_id, GA);
    assert_eq!(terms.seller.spiffe_id, GB);
    assert_eq!(terms.payment.amount.0, PAYMENT);
    assert_eq!(terms.delivery.amount.0, DELIVERY);
    assert_eq!(terms.seller.saga_key, w.gb.public.saga_key);
    assert_eq!(terms.buyer.payment_escrow_key, w.ga.public.escrow_keys[P]);
    // The preimage was stored before the start turn, and H is its hash.
    let s =
        w.ga.log
            .secret(&terms.saga_id, "preimage")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(sha256(s.as_bytes()), terms.hash_lock);

    // The same idempotency key answers with the same saga, starting nothing.
    let again = w.start(&mut admin_a, "swap-1").await;
    assert!(!again.created);
    assert_eq!(again.status.unwrap().saga_id, saga_id);
    assert_eq!(again.terms, started.terms);

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let item = tokio::time::timeout(PATIENCE, first.message())
            .await
            .expect("the feed delivers")
            .unwrap()
            .expect("the stream is open");
        seen.push(item);
    }
    drop(first);

    w.until_both(&saga_id, pb::SagaState::Completed).await;

    // Both gateways' GetSaga agree on the terms and list the events.
    for admin in [&mut admin_a, &mut admin_b] {
        let got = admin
            .get_saga(pb::GetSagaRequest {
                saga_id: saga_id.clone(),
                include_events: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.terms, started.terms);
        let view = got.terms_view.unwrap();
        assert_eq!(view.terms_hash, terms.hash().to_string());
        assert_eq!(got.head as usize, got.events.len());
        assert_eq!(got.events[0].name, "terms_proposed");
        assert!(got.events.iter().any(|e| e.name == "claim_confirmed"));
        assert!(got.status.unwrap().terminal);
    }
    let listed = admin_b
        .list_sagas(pb::ListSagasRequest {
            page_size: 10,
            page_token: String::new(),
            state: pb::SagaState::Completed as i32,
            terminal: pb::TerminalFilter::Terminal as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sagas.len(), 1);
    assert_eq!(listed.sagas[0].saga_id, saga_id);
    assert_eq!(listed.sagas[0].role, pb::SagaRole::Seller as i32);
    assert_eq!(listed.next_page_token, "");

    // The seller's wallet received the payment on P; the buyer's the delivery on D.
    let received = |r: &pb::WalletBalancesResponse, chain: &str| {
        r.balances
            .iter()
            .find(|b| b.chain_id == chain && b.basket == pb::Basket::Received as i32)
            .map(|b| b.available_sats)
    };
    let balances_b = admin_b
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap()
        .into_inner();
    let balances_a = admin_a
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        received(&balances_b, P).is_some_and(|s| s > 0 && s < PAYMENT),
        "{balances_b:?}"
    );
    assert!(
        received(&balances_a, D).is_some_and(|s| s > 0 && s < DELIVERY),
        "{balances_a:?}"
    );

    // The observer resumes after the last cursor it saw: every later event
    // arrives, in order, without a gap, up to the feed's end.
    let feed = w.ga.log.feed(1, 10_000).await.unwrap();
    let last = seen.last().unwrap().cursor;
    let mut resumed = events
        .subscribe(pb::SubscribeRequest {
            from_cursor: last + 1,
        })
        .await
        .unwrap()
        .into_inner();
    while seen.last().unwrap().cursor < feed.last().unwrap().cursor {
        let item = tokio::time::timeout(PATIENCE, resumed.message())
            .await
            .expect("the resumed feed delivers")
            .unwrap()
            .expect("the stream is open");
        seen.push(item);
    }
    let cursors: Vec<u64> = seen.iter().map(|i| i.cursor).collect();
    let expected: Vec<u64> = feed.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, expected);
    assert_eq!(expected, (1..=expected.len() as u64).collect::<Vec<_>>());
    for (item, entry) in seen.iter().zip(&feed) {
        assert_eq!(item.saga_id, entry.saga_id.to_string());
        assert_eq!(item.seq, entry.seq);
        assert_eq!(item.name, entry.event.name());
        assert!(item.event.is_some());
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_are_not_the_party_a_rule_names_are_permission_denied() {
    let w = World::new().await;
    let mut admin_a = w.admin_a();
    // No funds: the saga stays in reservation, known to both gateways.
    let saga_id = w
        .start(&mut admin_a, "swap-denied")
        .await
        .status
        .unwrap()
        .saga_id;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while w.state(&w.gb, &saga_id).await == "none" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GB never got the proposal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refund = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    // A gateway of org-a that is not the saga's buyer.
    let intruder = w.pki.issued(
        "org-a.example",
        "spiffe://org-a.example/gateway/intruder",
        "intruder",
    );
    let mut peer = PeerServiceClient::new(channel(&intruder, GB, w.gb.addr));
    let e = peer
        .sign_refund(with_saga(
            &saga_id,
            pb::SignRefundRequest {
                saga_id: saga_id.clone(),
                refund: refund.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "permission denied by rule peer-rpc: caller spiffe://org-a.example/gateway/intruder \
             is not a party to saga {saga_id}"
        )
    );

    // An observer calling a peer RPC.
    let observer = w.pki.identity("observer.example/observer-observer");
    let e = PeerServiceClient::new(channel(&observer, GB, w.gb.addr))
        .get_saga_status(with_saga(
            &saga_id,
            pb::GetSagaStatusRequest {
                saga_id: saga_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("peer RPCs are for a gateway"), "{e:?}");

    // GB's operator calling GA's admin API.
    let op_b = w.pki.identity("org-b.example/operator-admin");
    let e = AdminServiceClient::new(channel(&op_b, GA, w.ga.addr))
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .contains("admin RPCs are for an operator of our own trust domain"),
        "{e:?}"
    );

    // The buyer itself is a party: it gets its answer (GB's status).
    let ga_identity = w.pki.identity("org-a.example/gateway-org-a");
    let status = PeerServiceClient::new(channel(&ga_identity, GB, w.gb.addr))
        .get_saga_status(with_saga(
            &saga_id,
            pb::GetSagaStatusRequest {
                saga_id: saga_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.saga_id, saga_id);
    assert_eq!(status.role, pb::SagaRole::Seller as i32);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_invalid_argument_naming_the_field() {
    let w = World::new().await;
    let gb_identity = w.pki.identity("org-b.example/gateway-org-b");
    let mut peer = PeerServiceClient::new(channel(&gb_identity, GA, w.ga.addr));
    let saga_id = "0190b2a4-7c3e-7a01-8000-0123456789ab";

    let e = peer
        .propose(with_saga(
            saga_id,
            pb::ProposeRequest {
                saga_id: saga_id.into(),
                terms: vec![1, 2, 3],
                buyer_signature: vec![0x30],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field terms: "), "{e:?}");

    let e = peer
        .cancel(with_saga(
            saga_id,
            pb::CancelRequest {
                saga_id: "0190b2a4-7c3e-7a01-8000-0123456789ac".into(),
                reason: "because".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "field saga_id: 0190b2a4-7c3e-7a01-8000-0123456789ac differs from the \
             escrow-saga-id metadata {saga_id}"
        )
    );

    let e = peer
        .execute(with_saga(
            saga_id,
            pb::ExecuteRequest {
                saga_id: saga_id.into(),
                token: vec![1; 10],
                claim: vec![],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field token: "), "{e:?}");

    let mut admin = w.admin_a();
    let e = admin
        .start_swap(pb::StartSwapRequest {
            idempotency_key: "k".into(),
            counterparty: GB.into(),
            payment_chain: P.into(),
            payment_sats: 0,
            delivery_chain: D.into(),
            delivery_sats: DELIVERY,
            notary: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(e.message(), "field payment_sats: zero satoshis");

    let e = admin
        .get_saga(pb::GetSagaRequest {
            saga_id: "not-a-saga".into(),
            include_events: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field saga_id: "), "{e:?}");

    // Well formed but unknown: NOT_FOUND, not INVALID_ARGUMENT.
    let e = admin
        .get_saga(pb::GetSagaRequest {
            saga_id: saga_id.into(),
            include_events: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_health_answers_serving() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha;

    let w = World::new().await;
    let op = w.pki.identity("org-a.example/operator-admin");

    let mut reflection = ServerReflectionClient::new(channel(&op, GA, w.ga.addr));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "escrow.v1.AdminService",
            "escrow.v1.EventService",
            "escrow.v1.PeerService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&op, GA, w.ga.addr));
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "escrow.v1.PeerService".into(),
            ),
        ),
    };
    let answer = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        answer.message_response
    else {
        panic!("not a descriptor: {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Health: an observer may watch the gateway.
    let observer = w.pki.identity("observer.example/observer-observer");
    let mut health = HealthClient::new(channel(&observer, GA, w.ga.addr));
    for service in ["", "escrow.v1.PeerService", "escrow.v1.AdminService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "escrow.v1.NotaryService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    w.stop().await;
}

/// The approval request a gateway sends, rebuilt from its log.
fn approval_request(events: &[Event]) -> pb::ApproveRequest {
    let mut r = pb::ApproveRequest::default();
    for e in events {
        match e {
            Event::TermsProposed {
                terms,
                buyer_signature,
                ..
            } => {
                r.terms = terms.encode();
                r.buyer_signature = buyer_signature.as_bytes().to_vec();
            }
            Event::TermsAgreed { seller_signature } => {
                r.seller_signature = seller_signature.as_bytes().to_vec();
            }
            Event::ReservationConfirmed { beef, .. } => r.payment_beef = beef.clone(),
            Event::CounterReservationVerified { beef, .. } => r.delivery_beef = beef.clone(),
            _ => {}
        }
    }
    r
}

fn reservation_txid(events: &[Event]) -> Txid {
    events
        .iter()
        .find_map(|e| match e {
            Event::ReservationBuilt { tx, .. } => Some(tx.txid()),
            _ => None,
        })
        .expect("a reservation was built")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_approves_a_swap_it_verified_and_answers_only_its_parties() {
    use escrowd::proto::escrow_v1::notary_service_client::NotaryServiceClient;

    let w = World::with_notary(NotaryPolicy::default()).await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    let started = w.start_with(&mut admin_a, "swap-notary", NOTARY).await;
    let saga_id = started.status.unwrap().saga_id;
    w.until_both(&saga_id, pb::SagaState::Completed).await;

    let (events_a, events_b) = (
        w.events(&w.ga, &saga_id).await,
        w.events(&w.gb, &saga_id).await,
    );
    let approval = |events: &[Event]| {
        events
            .iter()
            .find_map(|e| match e {
                Event::NotaryApproved { signature } => Some(signature.clone()),
                _ => None,
            })
            .expect("the notary approved")
    };
    let terms = saga_core::terms::Terms::decode(&started.terms).unwrap();
    assert_eq!(terms.notary.as_deref(), Some(NOTARY));
    let digest = approval_digest(
        &terms.hash(),
        &reservation_txid(&events_a),
        &reservation_txid(&events_b),
    );
    let notary = w.notary.as_ref().unwrap();
    let signature = approval(&events_a);
    assert!(notary.key.public_key().verify_digest(&digest, &signature));
    // RFC 6979: the seller's identical request got the identical signature.
    assert_eq!(approval(&events_b), signature);

    let request = approval_request(&events_a);
    let ga_identity = w.pki.identity("org-a.example/gateway-org-a");
    let mut as_buyer = NotaryServiceClient::new(channel(&ga_identity, NOTARY, notary.addr));
    let again = as_buyer
        .approve(request.clone())
        .await
        .unwrap()
        .into_inner();
    let Some(pb::approve_response::Answer::Approved(a)) = again.answer else {
        panic!("not approved: {again:?}");
    };
    assert_eq!(a.signature, signature);
    assert_eq!(
        a.notary_key,
        notary.key.public_key().to_compressed().to_vec()
    );

    // The reservations swapped: the payment BEEF fails SPV on chain P's tracker.
    let swapped = pb::ApproveRequest {
        payment_beef: request.delivery_beef.clone(),
        delivery_beef: request.payment_beef.clone(),
        ..request.clone()
    };
    let e = as_buyer.approve(swapped).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field payment_beef: "), "{e:?}");

    // A gateway that is not a party to the terms.
    let intruder = w.pki.issued(
        "org-a.example",
        "spiffe://org-a.example/gateway/intruder",
        "intruder",
    );
    let e = NotaryServiceClient::new(channel(&intruder, NOTARY, notary.addr))
        .approve(request.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        format!("caller spiffe://org-a.example/gateway/intruder is not a party to saga {saga_id}")
    );

    // An observer may not call a notary at all.
    let observer = w.pki.identity("observer.example/observer-observer");
    let e = NotaryServiceClient::new(channel(&observer, NOTARY, notary.addr))
        .approve(request)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("notary RPCs are for a gateway"),
        "{e:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_refusal_stops_the_swap_before_anything_is_claimed() {
    let w = World::with_notary(NotaryPolicy {
        max_amount: BTreeMap::from([(P.to_string(), saga_core::Satoshis(PAYMENT - 1))]),
        ..NotaryPolicy::default()
    })
    .await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    let saga_id = w
        .start_with(&mut admin_a, "swap-vetoed", NOTARY)
        .await
        .status
        .unwrap()
        .saga_id;
    w.until_both(&saga_id, pb::SagaState::Cancelled).await;
    // Each gateway asks the notary; whichever hears the refusal first
    // cancels, and the other may be cancelled by its peer before its own
    // answer arrives. At least one records the refusal, word for word.
    let mut refusals = Vec::new();
    for node in [&w.ga, &w.gb] {
        let events = w.events(node, &saga_id).await;
        refusals.extend(events.iter().filter_map(|e| match e {
            Event::NotaryRejected { reason } => Some(reason.clone()),
            _ => None,
        }));
        assert!(
            !events.iter().any(|e| matches!(e, Event::ClaimBuilt { .. })),
            "nothing is claimed after a veto: {events:?}"
        );
    }
    assert!(!refusals.is_empty(), "{}", w.report(&saga_id).await);
    for reason in refusals {
        assert_eq!(
            reason,
            format!(
                "payment leg of {PAYMENT} sat on chain-p is above this notary's ceiling of {} sat",
                PAYMENT - 1
            )
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_cleanly_when_the_gateway_shuts_down() {
    let w = World::new().await;
    let operator = w.pki.identity("org-a.example/operator-admin");
    let mut stream = EventServiceClient::new(channel(&operator, GA, w.ga.addr))
        .subscribe(pb::SubscribeRequest { from_cursor: 1 })
        .await
        .unwrap()
        .into_inner();
    // A swap's first events arrive live on the open stream.
    let mut admin = w.admin_a();
    let saga_id = w
        .start(&mut admin, "swap-live")
        .await
        .status
        .unwrap()
        .saga_id;
    let first = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the feed delivers")
        .unwrap()
        .expect("the stream is open");
    assert_eq!((first.cursor, first.seq), (1, 0));
    assert_eq!(first.saga_id, saga_id);
    assert_eq!(first.name, "terms_proposed");
    // Shutting down ends the stream with OK, after whatever was pending.
    w.ga.shutdown.send(true).unwrap();
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
    w.stop().await;
}
