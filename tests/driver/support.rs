//! The harness of `tests/driver.rs`: two chainsims and their miner, both
//! parties (log, wallet, ports, gateway), the in-process peer transport with
//! its per-message modes (`escrowd::gateway::inproc`, shared with `escrowd
//! demo`), and waits that fail with both parties' view.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bsv_format::beef::Beef;
use bsv_format::hash::sha256;
use bsv_format::keys::{Network, PrivateKey};
use bsv_format::spv::{ScriptEras, VerifyOptions};
use bsv_format::Txid;
use escrowd::chain::{
    ArcClient, ArcConfig, HeadersClient, HeadersConfig, RetryPolicy, SpendClient, SpendConfig,
    TxClient, TxConfig,
};
use escrowd::chainsim::{Chainsim, ChainsimConfig, ChainsimHandle};
use saga_core::policy::Policy;
use saga_core::saga::{Event, Input, SagaContext, SagaKeys};
use saga_core::terms::{LegTerms, PartyTerms, Role, SagaId, Terms};
use saga_core::wallet::{Basket, BasketBalance};
use saga_core::{Height, Satoshis, UnixTime};
use saga_runtime::driver::{Driver, DriverPorts};
use saga_runtime::ports::{ChainPorts, Clock, ContextError, ContextSource};
use saga_runtime::wallet::{KeyWallet, Wallet};
use saga_runtime::{verify_beef, EventLog, MemLog, TxState};
use serde_json::json;

pub const BUYER: &str = "spiffe://org-a.example/gateway/ga";
pub const SELLER: &str = "spiffe://org-b.example/gateway/gb";
pub const FAST_TEST: &str = include_str!("../../policies/fast-test.toml");
pub const NOW: u64 = 1_700_000_000;
pub const P: &str = "chain-p";
pub const D: &str = "chain-d";
pub const PAYMENT: u64 = 50_000;
pub const DELIVERY: u64 = 20_000;
pub const BUYER_FUNDS: u64 = 200_000;
pub const SELLER_FUNDS: u64 = 100_000;
/// The longest any scenario waits for one condition.
pub const PATIENCE: Duration = Duration::from_secs(45);

pub const FAST: RetryPolicy = RetryPolicy {
    attempts: 4,
    base: Duration::from_millis(5),
    cap: Duration::from_millis(20),
};

pub fn key(tag: &str) -> PrivateKey {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).unwrap()
}

pub fn regtest() -> VerifyOptions {
    VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    }
}

// ---------------------------------------------------------------------------
// Clock, contexts, a counting broadcaster

/// A UTC clock that stays where it is put.
pub struct FixedClock(AtomicU64);

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

/// The buyer's preimage `s` of a saga in the world tagged `tag` (one per
/// saga: a gateway refuses an `H` it has seen before).
pub fn preimage(tag: &str, saga_id: &SagaId) -> [u8; 32] {
    sha256(format!("driver test preimage {tag} {saga_id}").as_bytes())
}

/// One party's keys (its escrow keys are its wallet keys: claims and
/// refunds pay outputs the wallet holds) and policy; the buyer's preimage
/// per saga ([`preimage`] with the world's tag).
pub struct Contexts {
    pub spiffe_id: &'static str,
    pub keys: SagaKeys,
    pub preimage_tag: Option<String>,
    pub policy: Arc<Policy>,
}

#[async_trait]
impl ContextSource for Contexts {
    async fn context(
        &self,
        saga_id: SagaId,
        role: Role,
        _terms: &Terms,
    ) -> Result<SagaContext, ContextError> {
        let mut keys = self.keys.clone();
        keys.preimage = self.preimage_tag.as_deref().map(|t| preimage(t, &saga_id));
        Ok(SagaContext {
            role,
            own_spiffe_id: self.spiffe_id.into(),
            keys,
            policy: self.policy.clone(),
        })
    }
}

#[path = "../common/counted.rs"]
mod counted;
pub use counted::Counted;

// ---------------------------------------------------------------------------
// The peer transport: `escrowd::gateway::inproc` (shared with `escrowd demo`)

pub use escrowd::gateway::inproc::{Endpoint as Gateway, Link, Mode};

// ---------------------------------------------------------------------------
// The world: two chainsims, a miner, two parties

pub struct Side {
    pub log: Arc<MemLog<Event>>,
    pub wallet: Arc<KeyWallet>,
    pub ports: DriverPorts,
    pub gateway: Arc<Gateway>,
    /// Wallet (and escrow) keys by chain.
    pub keys: BTreeMap<String, PrivateKey>,
    pub saga_key: PrivateKey,
}

impl Side {
    /// Starts a driver over this side's log and puts it behind its gateway.
    pub fn start_driver(&self) -> Driver {
        let driver = Driver::new(self.ports.clone());
        self.gateway.attach(driver.clone());
        driver
    }

    pub fn driver(&self) -> Driver {
        self.gateway.driver().expect("the driver is running")
    }

    /// Stops the driver as a crash would; the gateway is down until restarted.
    pub fn crash(&self) {
        if let Some(driver) = self.gateway.detach() {
            driver.shutdown();
        }
    }

    pub async fn events(&self, saga_id: &SagaId) -> Vec<Event> {
        self.log
            .load(saga_id)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    pub async fn state(&self, saga_id: &SagaId) -> (String, Option<String>) {
        match self.log.projection(saga_id).await.unwrap() {
            Some(p) => (p.state, p.attention),
            None => ("none".into(), None),
        }
    }

    pub async fn balance(&self, chain_id: &str, basket: Basket) -> BasketBalance {
        self.wallet
            .balances()
            .await
            .unwrap()
            .basket(chain_id, basket)
    }
}

pub struct World {
    pub sims: BTreeMap<&'static str, ChainsimHandle>,
    pub http: reqwest::Client,
    /// Mine every chain steadily, not only after broadcasts.
    pub steady: Arc<AtomicBool>,
    pub miner: tokio::task::JoinHandle<()>,
    pub policy: Arc<Policy>,
    pub buyer: Side,
    pub seller: Side,
    /// Names this world's keys and preimages.
    pub tag: String,
}

pub fn event_name(e: &Event) -> String {
    format!("{e:?}")
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect()
}

pub fn count(events: &[Event], name: &str) -> usize {
    events.iter().filter(|e| event_name(e) == name).count()
}

impl World {
    /// Two chainsims, both parties funded (buyer on P, seller on D) through
    /// the faucets' BEEFs, SPV-verified and imported; the miner running.
    pub async fn new(tag: &str) -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
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
        let policy = Arc::new(Policy::parse(FAST_TEST, "policies/fast-test.toml").unwrap());

        let gateway = |ports: &BTreeMap<String, ChainPorts>, counter_chain: &str| {
            Arc::new(Gateway::new(
                ports
                    .iter()
                    .map(|(c, p)| (c.clone(), p.tracker.clone()))
                    .collect(),
                counter_chain,
                regtest(),
            ))
        };
        let buyer_chains = chain_ports(&sims, &broadcasts);
        let seller_chains = chain_ports(&sims, &broadcasts);
        let buyer_gw = gateway(&buyer_chains, D);
        let seller_gw = gateway(&seller_chains, P);
        let clock: Arc<dyn Clock> = Arc::new(FixedClock(AtomicU64::new(NOW)));
        let side = |role: Role, name: &str, chains, gw: Arc<Gateway>, peer: Arc<Gateway>| {
            let keys: BTreeMap<String, PrivateKey> = [P, D]
                .into_iter()
                .map(|c| (c.to_string(), key(&format!("{tag} {name} wallet {c}"))))
                .collect();
            let saga_key = key(&format!("{tag} {name} saga key"));
            let log = Arc::new(MemLog::<Event>::new());
            let wallet = Arc::new(KeyWallet::new(log.clone(), keys.clone()));
            let contexts = Contexts {
                spiffe_id: if role == Role::Buyer { BUYER } else { SELLER },
                keys: SagaKeys {
                    saga_key,
                    payment_escrow_key: keys[P],
                    delivery_escrow_key: keys[D],
                    preimage: None,
                },
                preimage_tag: (role == Role::Buyer).then(|| tag.to_string()),
                policy: policy.clone(),
            };
            let ports = DriverPorts {
                log: log.clone(),
                chains,
                peer: Arc::new(Link::new(
                    if role == Role::Buyer { BUYER } else { SELLER },
                    peer,
                )),
                notary: None,
                wallet: wallet.clone(),
                contexts: Arc::new(contexts),
                clock: clock.clone(),
                poll_interval: Duration::from_millis(50),
            };
            Side {
                log,
                wallet,
                ports,
                gateway: gw,
                keys,
                saga_key,
            }
        };
        let buyer = side(
            Role::Buyer,
            "buyer",
            buyer_chains,
            buyer_gw.clone(),
            seller_gw.clone(),
        );
        let seller = side(Role::Seller, "seller", seller_chains, seller_gw, buyer_gw);

        let steady = Arc::new(AtomicBool::new(false));
        let miner = tokio::spawn(mine(
            sims.iter().map(|(c, s)| (*c, s.url())).collect(),
            broadcasts,
            steady.clone(),
            http.clone(),
        ));
        let world = World {
            sims,
            http,
            steady,
            miner,
            policy,
            buyer,
            seller,
            tag: tag.to_string(),
        };
        world.fund(&world.buyer, P, BUYER_FUNDS).await;
        world.fund(&world.seller, D, SELLER_FUNDS).await;
        world
    }

    /// Pays `satoshis` from `chain_id`'s faucet to `side`'s wallet key there
    /// and imports the output from the faucet's BEEF, SPV-verified.
    pub async fn fund(&self, side: &Side, chain_id: &str, satoshis: u64) {
        let address = side.keys[chain_id].public_key().address(Network::Testnet);
        let body: serde_json::Value = self
            .http
            .post(format!("{}/sim/faucet", self.sims[chain_id].url()))
            .json(&json!({ "address": address, "satoshis": satoshis }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let beef = Beef::from_hex(body["beef"].as_str().unwrap()).unwrap();
        let tracker = side.ports.chains[chain_id].tracker.clone();
        let verified = verify_beef(tracker.as_ref(), beef, &regtest())
            .await
            .unwrap();
        let report = side
            .wallet
            .import_funding(chain_id, &verified, None, Basket::Funding)
            .await
            .unwrap();
        assert_eq!(report.imported.len(), 1);
        assert_eq!(report.imported[0].satoshis, Satoshis(satoshis));
    }

    pub async fn tip(&self, chain_id: &str) -> u32 {
        self.buyer.ports.chains[chain_id]
            .tracker
            .current_height()
            .await
            .unwrap()
    }

    /// Terms like `crates/saga-core/tests/terms.rs` builds, with refund
    /// heights from the chains' tips and the policy's delays.
    pub async fn terms(&self, saga_id: SagaId) -> Terms {
        let n_p = self.policy.chain(P).unwrap().payment_refund_blocks;
        let n_d = self.policy.chain(D).unwrap().delivery_refund_blocks;
        let party = |spiffe_id: &str, side: &Side| PartyTerms {
            spiffe_id: spiffe_id.into(),
            saga_key: side.saga_key.public_key(),
            payment_escrow_key: side.keys[P].public_key(),
            delivery_escrow_key: side.keys[D].public_key(),
        };
        Terms {
            saga_id,
            buyer: party(BUYER, &self.buyer),
            seller: party(SELLER, &self.seller),
            notary: None,
            payment: LegTerms {
                chain_id: P.into(),
                amount: Satoshis(PAYMENT),
                refund_height: Height(self.tip(P).await + n_p),
                confirmations: 1,
            },
            delivery: LegTerms {
                chain_id: D.into(),
                amount: Satoshis(DELIVERY),
                refund_height: Height(self.tip(D).await + n_d),
                confirmations: 1,
            },
            hash_lock: sha256(&preimage(&self.tag, &saga_id)),
            quote_expiry: UnixTime(NOW + 30),
            reservation_deadline: UnixTime(NOW + 300),
            policy_id: self.policy.id.clone(),
        }
    }

    /// Starts both drivers and the saga at the buyer's.
    pub async fn start(&self, n: u8) -> (SagaId, Terms) {
        self.buyer.start_driver();
        self.seller.start_driver();
        self.start_another(n).await
    }

    /// Starts one more saga at the buyer's running driver.
    pub async fn start_another(&self, n: u8) -> (SagaId, Terms) {
        let buyer = self.buyer.driver();
        let saga_id = SagaId::new_v7(NOW * 1000, &[n; 10]);
        let terms = self.terms(saga_id).await;
        let turn = buyer
            .submit(
                saga_id,
                Some(Role::Buyer),
                Input::Start {
                    terms: Box::new(terms.clone()),
                    exposure: Satoshis(0),
                },
                Some(format!("start-{n}")),
            )
            .await
            .unwrap();
        assert_eq!(turn.appended, 1, "TermsProposed");
        (saga_id, terms)
    }

    /// Both parties' statuses, attention and events, one line each.
    pub async fn report(&self, saga_id: &SagaId) -> String {
        let mut out = String::new();
        for (name, side) in [("buyer", &self.buyer), ("seller", &self.seller)] {
            let (state, attention) = side.state(saga_id).await;
            let events: Vec<String> = side.events(saga_id).await.iter().map(event_name).collect();
            out.push_str(&format!(
                "\n  {name}: {state}, attention {attention:?}\n    events {events:?}"
            ));
        }
        out
    }

    /// Waits until `done` holds for (buyer events, seller events), at most
    /// [`PATIENCE`]; then fails with both parties' view.
    pub async fn until(
        &self,
        saga_id: &SagaId,
        what: &str,
        done: impl Fn(&[Event], &[Event]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (b, s) = (
                self.buyer.events(saga_id).await,
                self.seller.events(saga_id).await,
            );
            if done(&b, &s) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}:{}",
                    self.report(saga_id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until each party's projection is in `buyer` / `seller` state.
    pub async fn until_states(&self, saga_id: &SagaId, buyer: &str, seller: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let b = self.buyer.state(saga_id).await.0;
            let s = self.seller.state(saga_id).await.0;
            if b == buyer && s == seller {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for buyer {buyer}, seller {seller}:{}",
                    self.report(saga_id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn until_held(&self, gateway: &Gateway, saga_id: &SagaId, what: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while gateway.held() == 0 {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}:{}",
                    self.report(saga_id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn status_on_chain(&self, chain_id: &str, txid: &Txid) -> TxState {
        self.buyer.ports.chains[chain_id]
            .broadcaster
            .status(txid)
            .await
            .unwrap()
            .unwrap()
            .state
    }

    pub async fn stop(self) {
        for side in [&self.buyer, &self.seller] {
            side.crash();
        }
        self.miner.abort();
        for (_, sim) in self.sims {
            sim.shutdown().await.unwrap();
        }
    }
}

pub fn chain_ports(
    sims: &BTreeMap<&'static str, ChainsimHandle>,
    broadcasts: &BTreeMap<&'static str, Arc<AtomicU64>>,
) -> BTreeMap<String, ChainPorts> {
    sims.iter()
        .map(|(chain_id, sim)| {
            let url = sim.url();
            let mut arc = ArcConfig::new(&url);
            arc.retry = FAST;
            let mut headers = HeadersConfig::new(&url);
            headers.retry = FAST;
            // Well under a block interval of the miner.
            headers.tip_ttl = Duration::from_millis(10);
            let mut spends = SpendConfig::new(format!("{url}/v1"));
            spends.retry = FAST;
            let mut txs = TxConfig::new(format!("{url}/v1"));
            txs.retry = FAST;
            let ports = ChainPorts {
                broadcaster: Arc::new(Counted {
                    arc: ArcClient::new(arc).unwrap(),
                    broadcasts: broadcasts[chain_id].clone(),
                    down: Arc::default(),
                }),
                tracker: Arc::new(HeadersClient::new(headers).unwrap()),
                spends: Arc::new(SpendClient::new(spends).unwrap()),
                transactions: Arc::new(TxClient::new(txs).unwrap()),
            };
            (chain_id.to_string(), ports)
        })
        .collect()
}

/// The miner: every 20 ms, one block on each chain that had a broadcast
/// since its last block, or on every chain while `steady`.
pub async fn mine(
    urls: BTreeMap<&'static str, String>,
    broadcasts: BTreeMap<&'static str, Arc<AtomicU64>>,
    steady: Arc<AtomicBool>,
    http: reqwest::Client,
) {
    let mut seen: BTreeMap<&str, u64> = urls.keys().map(|c| (*c, 0)).collect();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (chain_id, url) in &urls {
            let now = broadcasts[chain_id].load(Ordering::SeqCst);
            if now == seen[chain_id] && !steady.load(Ordering::SeqCst) {
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
