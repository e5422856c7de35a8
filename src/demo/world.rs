//! The demo's world, set up in a temporary directory: development
//! certificates (as `escrowd certs init` writes them), the fast-test policy,
//! key files, a `gateway.toml` per party and a `notary.toml`, two
//! chainsims, both gateways and the notary as `escrowd serve` and
//! `escrowd notary` run them (gRPC over mutual TLS on loopback ports), the
//! funding from the faucets (imported through each party's
//! `AdminService`) and the miner. Tearing it down stops everything and
//! removes the directory.
//!
//! Each gateway's server applies a [`FaultPlan`]: the scenarios that need
//! a message lost (the seller's token never reaching the buyer, the
//! buyer's notice never reaching the seller) have the receiving server
//! refuse it as unavailable.
//!
//! # Mining
//! Chainsims mine only on demand here. The miner mines a block on a chain
//! as soon as its mempool holds something (so no deadline in blocks is
//! used up while the machine is slow), one block per policy block interval
//! when a chain is idle, and one every [`MINER_TICK`] on every chain while
//! [`World::set_steady`] is on — what a scenario waiting for a refund
//! height turns on. While swaps are being agreed it mines nothing
//! ([`World::set_paused`]): with blocks on demand, the other swaps'
//! reservations would otherwise move chain D by several blocks between the
//! moment a proposal's refund heights are computed and the moment each
//! party checks them against C2 — seconds that are minutes of real blocks.
//!
//! # Layout
//! - [`Party`], [`World`], [`World::new`], [`World::stop`].
//! - Gateways: [`World::stop_gateway`], [`World::restart_gateway`].
//! - Chains: [`World::balance`], [`World::mined`], funding.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bsv_format::beef::Beef;
use bsv_format::keys::{Network, PrivateKey};
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::{Transaction, Txid};
use saga_core::saga::Event;
use saga_core::terms::SagaId;
use saga_core::Satoshis;
use saga_runtime::ports::{Clock, SystemClock};
use saga_runtime::TxState;
use serde_json::json;
use tonic::transport::Channel;

use super::DemoError;
use crate::chainsim::{Chainsim, ChainsimConfig, ChainsimHandle};
use crate::config::GatewayConfig;
use crate::gateway::assemble::{Gateway, GatewayError};
use crate::gateway::serve::{RunningGateway, ServeError, StartOptions};
use crate::identity::client::MtlsConnector;
use crate::identity::issue::{self, DomainPlan};
use crate::identity::spiffe::{Role as SpiffeRole, SpiffeId};
use crate::identity::tls::{IdentityHandle, TlsSettings};
use crate::keys::random_key;
use crate::notary::config::NotaryFileConfig;
use crate::notary::serve::{NotaryStartOptions, RunningNotary};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::admin_service_client::AdminServiceClient;
use crate::rpc::faults::FaultPlan;

/// The policy both gateways use: compiled in, so the demo needs nothing
/// outside the binary.
pub const POLICY_TEXT: &str = include_str!("../../policies/fast-test.toml");
/// The policy's file name (part of its id in the terms).
pub const POLICY_FILE: &str = "fast-test.toml";
/// Chain P (the buyer pays there).
pub const CHAIN_P: &str = "chain-p";
/// Chain D (the seller delivers there).
pub const CHAIN_D: &str = "chain-d";
/// How often the miner looks at the chains.
pub const MINER_TICK: Duration = Duration::from_millis(20);
/// Chain polling interval of both gateways.
pub const POLL_INTERVAL: &str = "50ms";
/// How long a stopped gateway's store may stay locked before a restart gives up.
const REOPEN_PATIENCE: Duration = Duration::from_secs(15);

/// One organisation: its configuration, its gateway while it runs, the
/// fault plan its gRPC server applies, its operator's identity and the
/// observer's view of its log.
pub struct Party {
    /// `buyer` or `seller`.
    pub name: &'static str,
    /// Its validated `gateway.toml`.
    pub config: GatewayConfig,
    /// What its gRPC server refuses (the scenario's part in the transport).
    pub faults: Arc<FaultPlan>,
    /// Its operator's identity (`operator/admin` of its trust domain).
    pub operator: TlsSettings,
    /// Its gateway, while up.
    pub running: Option<RunningGateway>,
    /// Its listener, bound before the first start (so the other party's
    /// configuration could name the port); consumed by that start.
    listener: Option<tokio::net::TcpListener>,
}

impl Party {
    /// The running gateway's saga side.
    ///
    /// # Errors
    /// [`DemoError::Down`] while it is stopped.
    pub fn gateway(&self) -> Result<&Gateway, DemoError> {
        self.running
            .as_ref()
            .map(|r| &r.gateway)
            .ok_or(DemoError::Down(self.name))
    }

    /// An `AdminService` client as this party's operator: mutual TLS with
    /// the operator's certificate, accepting only this party's gateway.
    ///
    /// # Errors
    /// [`DemoError::Down`] while the gateway is stopped;
    /// [`DemoError::Setup`] if the operator's identity cannot be loaded.
    pub fn admin(&self) -> Result<AdminServiceClient<Channel>, DemoError> {
        let running = self.running.as_ref().ok_or(DemoError::Down(self.name))?;
        let identity = IdentityHandle::load(self.operator.clone())
            .map_err(setup("the operator's identity"))?;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", running.addr))
            .map_err(setup("the gateway's address"))?
            .connect_with_connector_lazy(MtlsConnector::for_peer(
                identity,
                self.config.spiffe_id.clone(),
            ));
        Ok(AdminServiceClient::new(channel))
    }

    /// The saga's events in this party's log (empty while its gateway is
    /// down, or the saga unknown or unreadable: the waits look again).
    pub async fn events(&self, saga_id: &SagaId) -> Vec<Event> {
        let Ok(g) = self.gateway() else {
            return Vec::new();
        };
        g.log
            .load(saga_id)
            .await
            .map(|v| v.into_iter().map(|(_, e)| e).collect())
            .unwrap_or_default()
    }

    /// The P2PKH script of this party's wallet key on `chain_id`.
    pub fn wallet_script(&self, chain_id: &str) -> Option<bsv_format::Script> {
        self.config
            .chains
            .get(chain_id)
            .map(|c| p2pkh_lock(&c.wallet_key.public_key().hash160()))
    }
}

/// Everything the demo runs.
pub struct World {
    /// The temporary directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The chainsims, per chain id (shared with the miner).
    pub sims: Arc<BTreeMap<String, ChainsimHandle>>,
    /// The buyer's organisation (org-a).
    pub buyer: Party,
    /// The seller's organisation (org-b).
    pub seller: Party,
    /// The notary's SPIFFE ID.
    pub notary_id: String,
    /// The observer's SPIFFE ID and identity files (`observer.example`).
    pub observer_id: String,
    /// The observer's certificate, key and federation file.
    pub observer_identity: TlsSettings,
    /// The notary both gateways ask, over gRPC.
    pub notary: Option<RunningNotary>,
    /// The faucets' funding transactions (for reading fees).
    pub funding: Vec<Transaction>,
    http: reqwest::Client,
    steady: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    miner: tokio::task::JoinHandle<()>,
    clock: Arc<dyn Clock>,
}

/// A listener on a free loopback port.
async fn loopback() -> Result<(tokio::net::TcpListener, SocketAddr), DemoError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(setup("binding a loopback port"))?;
    let addr = listener
        .local_addr()
        .map_err(setup("binding a loopback port"))?;
    Ok((listener, addr))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn setup<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> DemoError + '_ {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

fn hex_key(k: &PrivateKey) -> String {
    hex::encode(k.public_key().to_compressed())
}

/// What one party's `gateway.toml` needs besides its own keys.
struct ConfigPlan<'a> {
    name: &'static str,
    id: &'a SpiffeId,
    cert: &'a Path,
    key: &'a Path,
    listen: SocketAddr,
    peer_id: &'a SpiffeId,
    peer_listen: SocketAddr,
    peer_saga_key: &'a PrivateKey,
    peer_wallet_keys: &'a BTreeMap<String, PrivateKey>,
    notary_id: &'a SpiffeId,
    notary_listen: SocketAddr,
    notary_key: &'a PrivateKey,
}

/// Writes `dir/<name>/keys/*.wif` and `dir/<name>/gateway.toml`, then loads
/// it as `escrowd serve` would.
fn write_config(
    dir: &Path,
    plan: &ConfigPlan<'_>,
    saga_key: &PrivateKey,
    wallet_keys: &BTreeMap<String, PrivateKey>,
    sims: &BTreeMap<String, ChainsimHandle>,
) -> Result<GatewayConfig, DemoError> {
    let home = dir.join(plan.name);
    std::fs::create_dir_all(home.join("keys")).map_err(setup("creating the gateway directory"))?;
    crate::keys::write_key_file(&home.join("keys/saga.wif"), saga_key, Network::Testnet)
        .map_err(setup("writing a key file"))?;
    let mut chains = String::new();
    let mut escrow_keys = Vec::new();
    for (chain_id, key) in wallet_keys {
        let file = format!("keys/{chain_id}.wif");
        crate::keys::write_key_file(&home.join(&file), key, Network::Testnet)
            .map_err(setup("writing a key file"))?;
        let url = sims
            .get(chain_id)
            .map(ChainsimHandle::url)
            .ok_or_else(|| DemoError::Setup(format!("no chainsim for {chain_id}")))?;
        chains.push_str(&format!(
            "\n[chains.{chain_id}]\narc_url = \"{url}\"\nheaders_url = \"{url}\"\nspend_url = \"{url}/v1\"\ntx_url = \"{url}/v1\"\nwallet_key = \"{file}\"\n"
        ));
    }
    for (chain_id, key) in plan.peer_wallet_keys {
        escrow_keys.push(format!("{chain_id} = \"{}\"", hex_key(key)));
    }
    let text = format!(
        r#"# escrowd demo: the {name}'s gateway (written by `escrowd demo`)
[gateway]
spiffe_id = "{id}"
listen = "{listen}"
store = "store"
policy = "../policies/{POLICY_FILE}"
saga_key = "keys/saga.wif"
poll_interval = "{POLL_INTERVAL}"
network = "regtest"

[identity]
federation = "../certs/federation.toml"
cert = "{cert}"
key = "{key}"
{chains}
[peers."{peer_domain}"]
url = "https://{peer_listen}"
spiffe_id = "{peer_id}"
saga_key = "{peer_saga_key}"
escrow_keys = {{ {escrow_keys} }}

[notary]
url = "https://{notary_listen}"
spiffe_id = "{notary_id}"
public_key = "{notary_key}"
"#,
        name = plan.name,
        id = plan.id,
        listen = plan.listen,
        cert = plan.cert.display(),
        key = plan.key.display(),
        peer_domain = plan.peer_id.domain(),
        peer_listen = plan.peer_listen,
        peer_id = plan.peer_id,
        peer_saga_key = hex_key(plan.peer_saga_key),
        escrow_keys = escrow_keys.join(", "),
        notary_listen = plan.notary_listen,
        notary_id = plan.notary_id,
        notary_key = hex_key(plan.notary_key),
    );
    let path = home.join("gateway.toml");
    std::fs::write(&path, &text).map_err(setup("writing gateway.toml"))?;
    GatewayConfig::load(&path).map_err(|e| DemoError::Setup(e.to_string()))
}

/// What the notary's `notary.toml` needs.
struct NotaryPlan<'a> {
    id: &'a SpiffeId,
    cert: &'a Path,
    key: &'a Path,
    approval_key: &'a PrivateKey,
    listen: SocketAddr,
    limit: Satoshis,
}

/// Writes `dir/notary/notary.toml` (and its approval key) and loads it as
/// `escrowd notary` would: both organisations' domains, one confirmation
/// at least, no leg above `plan.limit` on either chain.
fn write_notary_config(
    dir: &Path,
    plan: &NotaryPlan<'_>,
    sims: &BTreeMap<String, ChainsimHandle>,
) -> Result<NotaryFileConfig, DemoError> {
    let home = dir.join("notary");
    std::fs::create_dir_all(&home).map_err(setup("creating the notary directory"))?;
    crate::keys::write_key_file(
        &home.join("approval.wif"),
        plan.approval_key,
        Network::Testnet,
    )
    .map_err(setup("writing the notary's key file"))?;
    let mut chains = String::new();
    let mut limits = Vec::new();
    for (chain_id, sim) in sims {
        // As fresh as the gateways' tips (half their poll interval).
        chains.push_str(&format!(
            "\n[chains.{chain_id}]\nheaders_url = \"{}\"\n",
            sim.url()
        ));
        limits.push(format!("{chain_id} = {}", plan.limit.0));
    }
    let text = format!(
        r#"# escrowd demo: the notary (written by `escrowd demo`)
[notary]
spiffe_id = "{id}"
listen = "{listen}"
approval_key = "approval.wif"
network = "regtest"
tip_ttl = "25ms"

[identity]
federation = "../certs/federation.toml"
cert = "{cert}"
key = "{key}"
{chains}
[policy]
trust_domains = ["org-a.example", "org-b.example"]
min_confirmations = 1
max_amount = {{ {limits} }}
"#,
        id = plan.id,
        listen = plan.listen,
        cert = plan.cert.display(),
        key = plan.key.display(),
        limits = limits.join(", "),
    );
    let path = home.join("notary.toml");
    std::fs::write(&path, &text).map_err(setup("writing notary.toml"))?;
    NotaryFileConfig::load(&path).map_err(|e| DemoError::Setup(e.to_string()))
}

impl World {
    /// Sets everything up and funds each party with `fundings` outputs of
    /// `(satoshis)` on its chain (the buyer on P, the seller on D). The
    /// notary refuses legs above `notary_limit`.
    ///
    /// # Errors
    /// [`DemoError::Setup`] naming what failed.
    pub async fn new(
        buyer_fundings: &[u64],
        seller_fundings: &[u64],
        notary_limit: Satoshis,
    ) -> Result<World, DemoError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("escrowd-demo-")
            .tempdir()
            .map_err(setup("creating the temporary directory"))?;
        let now = now_unix();

        // Identities, as `escrowd certs init` writes them.
        let certs = dir.path().join("certs");
        let report = issue::init(&certs, &DomainPlan::defaults(), now, 1, false)
            .map_err(setup("writing development certificates"))?;
        let leaf = |domain: &str, role: SpiffeRole| {
            report
                .leaves
                .iter()
                .find(|(id, _, _)| id.domain().as_str() == domain && id.role() == role)
                .cloned()
                .ok_or_else(|| DemoError::Setup(format!("certs init issued no {role} of {domain}")))
        };
        let (buyer_id, buyer_cert, buyer_key) = leaf("org-a.example", SpiffeRole::Gateway)?;
        let (seller_id, seller_cert, seller_key) = leaf("org-b.example", SpiffeRole::Gateway)?;
        let (notary_id, notary_cert, notary_key) = leaf("notary.example", SpiffeRole::Notary)?;
        let (observer_id, observer_cert, observer_key) =
            leaf("observer.example", SpiffeRole::Observer)?;
        let observer_identity = TlsSettings {
            federation: report.federation.clone(),
            cert: observer_cert,
            key: observer_key,
        };
        let operator = |domain: &str| {
            leaf(domain, SpiffeRole::Operator).map(|(_, cert, key)| TlsSettings {
                federation: report.federation.clone(),
                cert,
                key,
            })
        };
        let (buyer_operator, seller_operator) =
            (operator("org-a.example")?, operator("org-b.example")?);

        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).map_err(setup("creating policies/"))?;
        std::fs::write(policies.join(POLICY_FILE), POLICY_TEXT)
            .map_err(setup("writing the policy"))?;

        let mut sims = BTreeMap::new();
        for chain_id in [CHAIN_P, CHAIN_D] {
            let sim = Chainsim::start(ChainsimConfig {
                chain_id: chain_id.into(),
                start_unix: now,
                ..ChainsimConfig::default()
            })
            .await
            .map_err(setup("starting a chainsim"))?;
            sims.insert(chain_id.to_string(), sim);
        }

        let mut keys = Vec::new();
        for _ in 0..2 {
            let saga = random_key().map_err(|_| DemoError::Random)?;
            let mut wallet = BTreeMap::new();
            for chain_id in [CHAIN_P, CHAIN_D] {
                wallet.insert(
                    chain_id.to_string(),
                    random_key().map_err(|_| DemoError::Random)?,
                );
            }
            keys.push((saga, wallet));
        }
        let (buyer_keys, seller_keys) = (&keys[0], &keys[1]);
        let approval_key = random_key().map_err(|_| DemoError::Random)?;

        // Every server's port is bound first, so each configuration can
        // name the others'.
        let (buyer_listener, buyer_addr) = loopback().await?;
        let (seller_listener, seller_addr) = loopback().await?;
        let (notary_listener, notary_addr) = loopback().await?;

        let notary_config = write_notary_config(
            dir.path(),
            &NotaryPlan {
                id: &notary_id,
                cert: &notary_cert,
                key: &notary_key,
                approval_key: &approval_key,
                listen: notary_addr,
                limit: notary_limit,
            },
            &sims,
        )?;
        let notary = RunningNotary::start(
            &notary_config,
            NotaryStartOptions {
                listener: Some(notary_listener),
                trackers: None,
            },
        )
        .await
        .map_err(setup("the notary"))?;

        let buyer_config = write_config(
            dir.path(),
            &ConfigPlan {
                name: "buyer",
                id: &buyer_id,
                cert: &buyer_cert,
                key: &buyer_key,
                listen: buyer_addr,
                peer_id: &seller_id,
                peer_listen: seller_addr,
                peer_saga_key: &seller_keys.0,
                peer_wallet_keys: &seller_keys.1,
                notary_id: &notary_id,
                notary_listen: notary_addr,
                notary_key: &approval_key,
            },
            &buyer_keys.0,
            &buyer_keys.1,
            &sims,
        )?;
        let seller_config = write_config(
            dir.path(),
            &ConfigPlan {
                name: "seller",
                id: &seller_id,
                cert: &seller_cert,
                key: &seller_key,
                listen: seller_addr,
                peer_id: &buyer_id,
                peer_listen: buyer_addr,
                peer_saga_key: &buyer_keys.0,
                peer_wallet_keys: &buyer_keys.1,
                notary_id: &notary_id,
                notary_listen: notary_addr,
                notary_key: &approval_key,
            },
            &seller_keys.0,
            &seller_keys.1,
            &sims,
        )?;

        let party = |name, config, operator, listener| Party {
            name,
            config,
            faults: Arc::new(FaultPlan::new()),
            operator,
            running: None,
            listener: Some(listener),
        };
        let buyer = party("buyer", buyer_config, buyer_operator, buyer_listener);
        let seller = party("seller", seller_config, seller_operator, seller_listener);

        let http = reqwest::Client::new();
        let steady = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let sims = Arc::new(sims);
        let miner = tokio::spawn(mine(
            sims.clone(),
            steady.clone(),
            paused.clone(),
            http.clone(),
        ));
        let mut world = World {
            dir,
            sims,
            buyer,
            seller,
            notary_id: notary_id.to_string(),
            observer_id: observer_id.to_string(),
            observer_identity,
            notary: Some(notary),
            funding: Vec::new(),
            http,
            steady,
            paused,
            miner,
            clock: Arc::new(SystemClock),
        };
        world.start_gateway(Side::Buyer).await?;
        world.start_gateway(Side::Seller).await?;
        for &satoshis in buyer_fundings {
            world.fund(Side::Buyer, CHAIN_P, satoshis).await?;
        }
        for &satoshis in seller_fundings {
            world.fund(Side::Seller, CHAIN_D, satoshis).await?;
        }
        Ok(world)
    }

    /// The party on `side`.
    pub fn party(&self, side: Side) -> &Party {
        match side {
            Side::Buyer => &self.buyer,
            Side::Seller => &self.seller,
        }
    }

    fn party_mut(&mut self, side: Side) -> &mut Party {
        match side {
            Side::Buyer => &mut self.buyer,
            Side::Seller => &mut self.seller,
        }
    }

    /// The temporary directory.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The UTC clock both gateways use.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Mine every chain steadily (a scenario waits for refund heights).
    pub fn set_steady(&self, on: bool) {
        self.steady.store(on, Ordering::SeqCst);
    }

    /// Mine nothing at all while on (swaps are being agreed: their terms'
    /// refund heights are judged against the tips they were built from).
    pub fn set_paused(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }

    /// Starts a party's gateway as `escrowd serve` would, on its
    /// configuration (the listener bound at setup the first time, its
    /// `listen` address after a stop), with its fault plan.
    async fn start_gateway(&mut self, side: Side) -> Result<(), DemoError> {
        let clock = self.clock.clone();
        let party = self.party_mut(side);
        let started = Instant::now();
        let mut listener = party.listener.take();
        let running = loop {
            let options = StartOptions {
                listener: listener.take(),
                clock: Some(clock.clone()),
                chains: None,
                faults: Some(party.faults.clone()),
            };
            match RunningGateway::start(&party.config, options).await {
                Ok(r) => break r,
                // A stopped gateway's store is released once its last
                // task is gone, and its port once its last connection is;
                // wait for that, boundedly.
                Err(
                    ServeError::Gateway(GatewayError::Store { .. }) | ServeError::Listen { .. },
                ) if started.elapsed() < REOPEN_PATIENCE => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(DemoError::Setup(format!("{}'s gateway: {e}", party.name))),
            }
        };
        party.running = Some(running);
        Ok(())
    }

    /// Stops a party's gateway: its server stops answering (calls to it
    /// fail as "unavailable"), its driver stops wherever it is, as a crash
    /// would, and its store is closed.
    pub async fn stop_gateway(&mut self, side: Side) {
        let party = self.party_mut(side);
        if let Some(running) = party.running.take() {
            running.stop().await;
        }
    }

    /// Waits (at most until `deadline`) until every running gateway's
    /// headers client reports each chain's real tip. Trackers cache a tip
    /// for half the poll interval, and funding mines a block per faucet
    /// payment within milliseconds: a proposal made right after could be
    /// judged on a tip several blocks old. Returns whether they agree.
    pub async fn settle(&self, deadline: Instant) -> bool {
        loop {
            let mut agree = true;
            for party in [&self.buyer, &self.seller] {
                let Ok(g) = party.gateway() else { continue };
                for (chain_id, sim) in self.sims.iter() {
                    let Some(ports) = g.chains.get(chain_id) else {
                        continue;
                    };
                    agree &= ports.tracker.current_height().await.ok() == Some(sim.tip());
                }
            }
            if agree {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts a stopped party's gateway again over the same store: it
    /// resumes its in-flight sagas. Returns how many.
    ///
    /// # Errors
    /// [`DemoError::Setup`] if the gateway does not start.
    pub async fn restart_gateway(&mut self, side: Side) -> Result<usize, DemoError> {
        self.start_gateway(side).await?;
        Ok(self.party(side).gateway()?.resumed)
    }

    /// Pays `satoshis` from `chain_id`'s faucet to the party's wallet key
    /// there and imports the output through the party's
    /// `AdminService.ImportFunding` (which SPV-verifies the BEEF).
    async fn fund(&mut self, side: Side, chain_id: &str, satoshis: u64) -> Result<(), DemoError> {
        let party = self.party(side);
        let key = &party
            .config
            .chains
            .get(chain_id)
            .ok_or_else(|| DemoError::Setup(format!("no chain {chain_id}")))?
            .wallet_key;
        let address = key.public_key().address(Network::Testnet);
        let url = self
            .sims
            .get(chain_id)
            .map(ChainsimHandle::url)
            .ok_or_else(|| DemoError::Setup(format!("no chainsim for {chain_id}")))?;
        let body: serde_json::Value = self
            .http
            .post(format!("{url}/sim/faucet"))
            .json(&json!({ "address": address, "satoshis": satoshis }))
            .send()
            .await
            .map_err(setup("faucet"))?
            .json()
            .await
            .map_err(setup("faucet answer"))?;
        let hex = body["beef"]
            .as_str()
            .ok_or_else(|| DemoError::Setup(format!("faucet answered {body}")))?;
        let beef = Beef::from_hex(hex).map_err(setup("faucet BEEF"))?;
        // The faucet's payment is the BEEF's last transaction (BRC-62
        // orders parents first).
        let funding = beef
            .txs()
            .last()
            .and_then(|tx| tx.transaction())
            .cloned()
            .ok_or_else(|| DemoError::Setup("the faucet's BEEF has no subject".into()))?;
        let report = party
            .admin()?
            .import_funding(pb::ImportFundingRequest {
                chain_id: chain_id.into(),
                beef: beef.to_bytes(),
                basket: pb::Basket::Funding as i32,
                vouts: vec![],
            })
            .await
            .map_err(|s| DemoError::Setup(format!("importing the funding: {}", s.message())))?
            .into_inner();
        if report.imported.iter().map(|u| u.sats).sum::<u64>() != satoshis {
            return Err(DemoError::Setup(format!(
                "the faucet's {satoshis} sat were not imported: {report:?}"
            )));
        }
        self.funding.push(funding);
        Ok(())
    }

    /// The party's balance on `chain_id` as the chain sees it: its wallet
    /// key's unspent P2PKH outputs, mempool included.
    ///
    /// # Errors
    /// [`DemoError::Chain`] if chainsim cannot answer.
    pub fn balance(&self, side: Side, chain_id: &str) -> Result<u64, DemoError> {
        let script = self
            .party(side)
            .wallet_script(chain_id)
            .ok_or_else(|| DemoError::Chain(format!("no wallet key on {chain_id}")))?;
        self.sims
            .get(chain_id)
            .ok_or_else(|| DemoError::Chain(format!("no chainsim for {chain_id}")))?
            .balance(&script)
            .map_err(|e| DemoError::Chain(e.to_string()))
    }

    /// Whether `txid` is mined on `chain_id` (asked through a gateway's ARC
    /// client, as the gateways see it).
    pub async fn mined(&self, chain_id: &str, txid: &Txid) -> bool {
        let ports = [&self.buyer, &self.seller]
            .into_iter()
            .filter_map(|p| p.gateway().ok())
            .find_map(|g| g.chains.get(chain_id));
        let Some(ports) = ports else { return false };
        matches!(
            ports.broadcaster.status(txid).await,
            Ok(Some(s)) if matches!(s.state, TxState::Mined(_))
        )
    }

    /// Stops the gateways, the notary, the miner and the chainsims; the
    /// temporary directory goes with the world.
    pub async fn stop(mut self) {
        self.stop_gateway(Side::Buyer).await;
        self.stop_gateway(Side::Seller).await;
        if let Some(notary) = self.notary.take() {
            notary.stop().await;
        }
        self.miner.abort();
        // The aborted miner drops its handle on the chainsims.
        let _ = (&mut self.miner).await;
        if let Ok(sims) = Arc::try_unwrap(std::mem::take(&mut self.sims)) {
            for (_, sim) in sims {
                let _ = sim.shutdown().await;
            }
        }
    }
}

/// Which party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Org A, the buyer.
    Buyer,
    /// Org B, the seller.
    Seller,
}

/// The miner (see the module docs).
async fn mine(
    sims: Arc<BTreeMap<String, ChainsimHandle>>,
    steady: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    http: reqwest::Client,
) {
    // The policy's block interval: an idle chain still moves.
    let idle_block = Duration::from_secs(1);
    let mut last: BTreeMap<String, Instant> =
        sims.keys().map(|id| (id.clone(), Instant::now())).collect();
    loop {
        tokio::time::sleep(MINER_TICK).await;
        if paused.load(Ordering::SeqCst) {
            continue;
        }
        for (chain_id, sim) in sims.iter() {
            let url = sim.url();
            let busy = sim.mempool_len().is_ok_and(|n| n > 0);
            let idle = last
                .get(chain_id)
                .is_some_and(|t| t.elapsed() >= idle_block);
            if !(busy || idle || steady.load(Ordering::SeqCst)) {
                continue;
            }
            last.insert(chain_id.clone(), Instant::now());
            let _ = http
                .post(format!("{url}/sim/mine"))
                .json(&json!({ "blocks": 1 }))
                .send()
                .await;
        }
    }
}
