//! `escrowd demo`: the whole system in one process, on loopback, in a
//! temporary directory — development certificates, two chainsims
//! (`chain-p`, `chain-d`), both organisations' gateways (the buyer org-a,
//! the seller org-b), a notary and an observer — then N swaps run
//! concurrently through a scenario, and the report: each saga's timeline,
//! both parties' balances on both chains, and the conservation check.
//!
//! The gateways and the notary are the real servers (`escrowd serve` and
//! `escrowd notary`: sled stores, chain clients over HTTP, the fast-test
//! policy), calling each other over gRPC with mutual TLS on loopback
//! ports; the demo acts as each organisation's operator through its
//! `AdminService` (funding, starting swaps, cancelling). Scenarios that
//! need a message lost have the receiving gateway's server refuse it
//! ([`crate::rpc::faults::FaultPlan`]), as a gateway that is down would.
//!
//! # Scenarios
//! | scenario | what happens | buyer | seller |
//! | --- | --- | --- | --- |
//! | `happy` | both claim | completed | completed |
//! | `buyer-vanishes` | the buyer's gateway stops after both reservations (before the seller's token reaches it); the seller is refunded at `T_D`; the buyer's gateway restarts over its store and is refunded at `T_P` | refunded | refunded |
//! | `seller-never-reserves` | the seller's gateway hears nothing after agreeing and countersigning the buyer's refund; it gives up at its C2 limit | refunded | cancelled |
//! | `notary-rejects` | the notary refuses (its limit is below the amounts); both cancel | cancelled | cancelled |
//! | `cancel` | the buyer's operator cancels after both reservations (before the seller's token reaches the buyer) | cancelled | cancelled |
//!
//! # Layout
//! - this file: [`Scenario`], [`DemoOptions`], [`Progress`], [`DemoError`],
//!   [`run`] (the scenarios' steps and the waits).
//! - [`world`]: setting up and tearing down; the miner.
//! - [`observer`]: `escrowd observer` following both gateways over mTLS.
//! - [`report`]: timelines, balances, conservation, rendering.

pub mod observer;
pub mod report;
pub mod world;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use saga_core::saga::Event;
use saga_core::terms::{SagaId, Terms};
use saga_core::Satoshis;
use tokio::task::JoinSet;

use self::observer::Observer;
use self::report::{PartyOutcome, Report, SagaLogs};
use self::world::{Side, World, CHAIN_D, CHAIN_P};
use crate::proto::escrow_v1 as pb;
use crate::rpc::authz::PEER_METHODS;

/// What the buyer pays on chain P in every demo swap, satoshis.
pub const PAYMENT: u64 = 50_000;
/// What the seller delivers on chain D in every demo swap, satoshis.
pub const DELIVERY: u64 = 20_000;
/// Each funding output carries the leg's amount plus this, for fees.
pub const FEE_MARGIN: u64 = 10_000;
/// The notary's leg limit (above every demo amount)...
pub const NOTARY_LIMIT: u64 = 100_000_000;
/// ...and in `notary-rejects` (below them).
pub const REJECTING_NOTARY_LIMIT: u64 = 10_000;
/// The default bound on the whole run after setup.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the waits look at the sagas.
const WAIT_POLL: Duration = Duration::from_millis(25);

/// One of the demo's scenarios (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Both complete.
    Happy,
    /// The buyer's gateway vanishes after both reservations, then returns.
    BuyerVanishes,
    /// The seller never reserves.
    SellerNeverReserves,
    /// The notary refuses.
    NotaryRejects,
    /// The buyer's operator cancels after both reservations.
    Cancel,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 5] = [
        Scenario::Happy,
        Scenario::BuyerVanishes,
        Scenario::SellerNeverReserves,
        Scenario::NotaryRejects,
        Scenario::Cancel,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Happy => "happy",
            Scenario::BuyerVanishes => "buyer-vanishes",
            Scenario::SellerNeverReserves => "seller-never-reserves",
            Scenario::NotaryRejects => "notary-rejects",
            Scenario::Cancel => "cancel",
        }
    }

    /// The states the buyer and the seller must end in.
    pub fn expected(self) -> [&'static str; 2] {
        match self {
            Scenario::Happy => ["completed", "completed"],
            Scenario::BuyerVanishes => ["refunded", "refunded"],
            Scenario::SellerNeverReserves => ["refunded", "cancelled"],
            Scenario::NotaryRejects | Scenario::Cancel => ["cancelled", "cancelled"],
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|x| x.name()).collect();
                format!("unknown scenario {s:?}: one of {}", names.join(", "))
            })
    }
}

/// How to run the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Swaps run concurrently (at least 1).
    pub swaps: usize,
    /// The scenario every swap goes through.
    pub scenario: Scenario,
    /// Overrides the state both parties must end in (a test hook: see
    /// `escrowd demo --expect`).
    pub expect: Option<String>,
    /// Bound on the run after setup; on expiry the report says where each
    /// saga stands, and the demo fails.
    pub timeout: Duration,
}

/// What the demo tells its caller while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A step of the run (setup, a scenario's move).
    Phase(String),
    /// `done` of `total` sagas have ended at both parties.
    Sagas {
        /// Sagas ended.
        done: usize,
        /// Sagas started.
        total: usize,
    },
}

/// Why the demo could not run (as opposed to a swap ending wrongly, which
/// the [`Report`] says).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setting up failed (directory, certificates, chainsims, gateways,
    /// funding); the message names what.
    #[error("setting up: {0}")]
    Setup(String),
    /// The system's random source failed.
    #[error("the random source failed")]
    Random,
    /// A party's gateway is stopped when it is needed.
    #[error("the {0}'s gateway is down")]
    Down(&'static str),
    /// A chainsim could not answer.
    #[error("chain: {0}")]
    Chain(String),
    /// A swap could not be started.
    #[error("starting swap {n}: {detail}")]
    Start {
        /// Which (from 1).
        n: usize,
        /// Why.
        detail: String,
    },
    /// The operator's cancel was refused.
    #[error("cancelling saga {saga_id}: {detail}")]
    Cancel {
        /// The saga.
        saga_id: SagaId,
        /// Why.
        detail: String,
    },
    /// A task of the demo ended abnormally (a panic: a bug).
    #[error("a demo task was interrupted: {0}")]
    Interrupted(String),
}

/// One saga as the waits see it.
struct View {
    buyer: Vec<Event>,
    seller: Vec<Event>,
    ended: [bool; 2],
}

fn has(events: &[Event], name: &str) -> bool {
    events.iter().any(|e| e.name() == name)
}

async fn outcome(world: &World, side: Side, saga_id: &SagaId) -> PartyOutcome {
    let party = world.party(side);
    let Ok(g) = party.gateway() else {
        return PartyOutcome {
            status: "down".into(),
            terminal: false,
            attention: None,
            reason: None,
        };
    };
    let reason = report::reason(&party.events(saga_id).await);
    let (status, terminal, attention) = match g.log.projection(saga_id).await {
        Ok(Some(p)) => (p.state, p.terminal, p.attention),
        Ok(None) => ("none".into(), false, None),
        Err(e) => (format!("unreadable ({e})"), false, None),
    };
    PartyOutcome {
        status,
        terminal,
        attention,
        reason,
    }
}

async fn ended(world: &World, side: Side, saga_id: &SagaId) -> bool {
    let Ok(g) = world.party(side).gateway() else {
        return false;
    };
    matches!(g.log.projection(saga_id).await, Ok(Some(p)) if p.terminal)
}

async fn view(world: &World, saga_id: &SagaId) -> View {
    View {
        buyer: world.buyer.events(saga_id).await,
        seller: world.seller.events(saga_id).await,
        ended: [
            ended(world, Side::Buyer, saga_id).await,
            ended(world, Side::Seller, saga_id).await,
        ],
    }
}

/// Waits, at most until `deadline`, until `done` holds for every saga that
/// has not ended at both parties (one that has cannot move on; the report
/// says how it ended) and `extra(world, those sagas' count)` holds; reports
/// progress. Returns whether it happened.
async fn wait_for(
    world: &World,
    ids: &[SagaId],
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Send + Sync),
    done: impl Fn(&View) -> bool,
    extra: impl Fn(&World, usize) -> bool,
) -> bool {
    let mut last = None;
    loop {
        let mut all = true;
        let mut ended = 0;
        for id in ids {
            let v = view(world, id).await;
            if v.ended == [true, true] {
                ended += 1;
            } else {
                all &= done(&v);
            }
        }
        all &= extra(world, ids.len() - ended);
        if last != Some(ended) {
            last = Some(ended);
            progress(Progress::Sagas {
                done: ended,
                total: ids.len(),
            });
        }
        if all {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The full path of a `PeerService` method, e.g. `GrantToken`.
fn peer_method(name: &str) -> &'static str {
    PEER_METHODS
        .into_iter()
        .find(|m| m.rsplit('/').next() == Some(name))
        .unwrap_or("/escrow.v1.PeerService/unknown")
}

/// Starts `n` swaps at the buyer's gateway, concurrently, as its operator
/// would (`AdminService.StartSwap`, one idempotency key per swap).
async fn start_swaps(world: &World, n: usize) -> Result<Vec<(SagaId, Terms)>, DemoError> {
    let admin = world.buyer.admin()?;
    let counterparty = world.seller.config.spiffe_id.to_string();
    let mut tasks = JoinSet::new();
    for i in 1..=n {
        let mut admin = admin.clone();
        let request = pb::StartSwapRequest {
            idempotency_key: format!("demo-swap-{i}"),
            counterparty: counterparty.clone(),
            payment_chain: CHAIN_P.into(),
            payment_sats: PAYMENT,
            delivery_chain: CHAIN_D.into(),
            delivery_sats: DELIVERY,
            notary: world.notary_id.clone(),
        };
        tasks.spawn(async move { (i, admin.start_swap(request).await) });
    }
    let mut started = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.map_err(|e| DemoError::Interrupted(e.to_string()))?;
        let failed = |detail: String| DemoError::Start { n: i, detail };
        let status = result
            .map_err(|s| failed(format!("{:?}: {}", s.code(), s.message())))?
            .into_inner()
            .status
            .ok_or_else(|| failed("the answer has no status".into()))?;
        let saga_id: SagaId = status
            .saga_id
            .parse()
            .map_err(|e| failed(format!("saga id {:?}: {e}", status.saga_id)))?;
        let log = &world.buyer.gateway()?.log;
        let terms = crate::rpc::saga_terms(log.as_ref(), &saga_id)
            .await
            .map_err(|e| failed(format!("reading its terms: {e}")))?
            .ok_or_else(|| failed("its terms are not in the buyer's log".into()))?;
        started.insert(i, (saga_id, terms.terms));
    }
    Ok(started.into_values().collect())
}

/// Runs the demo and returns its report. Progress goes to `progress`.
///
/// # Errors
/// [`DemoError`] when the demo could not run at all; a swap that ends
/// otherwise than expected, a time-out or a conservation failure is in the
/// report ([`Report::ok`]).
pub async fn run(
    options: &DemoOptions,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Report, DemoError> {
    let n = options.swaps.max(1);
    let scenario = options.scenario;
    let notary_limit = match scenario {
        Scenario::NotaryRejects => REJECTING_NOTARY_LIMIT,
        _ => NOTARY_LIMIT,
    };
    progress(Progress::Phase(format!(
        "scenario {scenario}: {n} swap(s) of {PAYMENT} sat on {CHAIN_P} for {DELIVERY} sat on {CHAIN_D}"
    )));
    let mut world = World::new(
        &vec![PAYMENT + FEE_MARGIN; n],
        &vec![DELIVERY + FEE_MARGIN; n],
        Satoshis(notary_limit),
    )
    .await?;
    progress(Progress::Phase(format!(
        "chainsims, gateways, notary and observer up in {}; wallets funded",
        world.path().display()
    )));
    let result = drive(&mut world, options, n, progress).await;
    world.stop().await;
    result
}

async fn drive(
    world: &mut World,
    options: &DemoOptions,
    n: usize,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Report, DemoError> {
    let scenario = options.scenario;
    let mut before: BTreeMap<&'static str, BTreeMap<String, u64>> = BTreeMap::new();
    for (name, side) in [("buyer", Side::Buyer), ("seller", Side::Seller)] {
        for chain_id in [CHAIN_P, CHAIN_D] {
            before
                .entry(name)
                .or_default()
                .insert(chain_id.to_string(), world.balance(side, chain_id)?);
        }
    }
    let observer = Observer::start(world).await?;

    // The transport's part in the scenario, before anything is sent.
    match scenario {
        Scenario::SellerNeverReserves => world.seller.faults.refuse_all_but(
            "/escrow.v1.PeerService/",
            &[peer_method("Propose"), peer_method("SignRefund")],
        ),
        // The seller's token never reaches the buyer: it cannot claim.
        Scenario::BuyerVanishes | Scenario::Cancel => {
            world.buyer.faults.refuse(peer_method("GrantToken"));
        }
        Scenario::Happy | Scenario::NotaryRejects => {}
    }

    let started = SystemTime::now();
    let deadline = Instant::now() + options.timeout;
    world.set_paused(true);
    if !world.settle(deadline).await {
        world.set_paused(false);
        return Err(DemoError::Chain(
            "the gateways' headers clients never reported the chains' tips".into(),
        ));
    }
    let sagas = start_swaps(world, n).await;
    let sagas = match sagas {
        Ok(s) => s,
        Err(e) => {
            world.set_paused(false);
            return Err(e);
        }
    };
    let ids: Vec<SagaId> = sagas.iter().map(|(id, _)| *id).collect();
    let agreed = wait_for(
        world,
        &ids,
        deadline,
        progress,
        |v| has(&v.buyer, "terms_agreed") || v.ended[0],
        |_, _| true,
    )
    .await;
    world.set_paused(false);
    let stalled = if agreed {
        progress(Progress::Phase(format!("{n} swap(s) proposed and agreed")));
        steps(world, scenario, &ids, deadline, progress).await
    } else {
        Ok(Some("the proposals to be agreed".to_string()))
    };
    let stalled = match stalled {
        Ok(s) => s,
        Err(e) => {
            observer.stop().await;
            return Err(e);
        }
    };

    let mut logs = Vec::new();
    for (saga_id, terms) in sagas {
        logs.push(SagaLogs {
            saga_id,
            terms,
            buyer: world.buyer.events(&saga_id).await,
            seller: world.seller.events(&saga_id).await,
            parties: [
                outcome(world, Side::Buyer, &saga_id).await,
                outcome(world, Side::Seller, &saga_id).await,
            ],
        });
    }
    let seen = observer.catch_up(world).await;
    observer.stop().await;
    let expected = match &options.expect {
        Some(state) => [state.clone(), state.clone()],
        None => scenario.expected().map(str::to_string),
    };
    Ok(report::collect(
        world,
        report::Run {
            scenario,
            before,
            expected,
            started,
            stalled,
        },
        logs,
        seen,
    )
    .await)
}

/// The scenario's moves after the swaps started, each wait bounded by
/// `deadline`. Returns the wait that timed out, if one did.
async fn steps(
    world: &mut World,
    scenario: Scenario,
    ids: &[SagaId],
    deadline: Instant,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Option<String>, DemoError> {
    let ended = |v: &View| v.ended == [true, true];
    let all = |_: &World, _: usize| true;
    let both_reserved = |v: &View| {
        has(&v.buyer, "counter_reservation_verified")
            && has(&v.seller, "counter_reservation_verified")
    };
    // The seller's grants are held at the buyer: one per saga under way.
    let grants_held =
        |w: &World, live: usize| w.buyer.faults.refused_sagas(peer_method("GrantToken")) >= live;
    macro_rules! wait {
        ($what:expr, $done:expr, $extra:expr) => {
            if !wait_for(world, ids, deadline, progress, $done, $extra).await {
                return Ok(Some($what.to_string()));
            }
        };
    }
    match scenario {
        Scenario::Happy | Scenario::NotaryRejects => {}
        Scenario::SellerNeverReserves => {
            wait!(
                "the buyer's reservations to confirm",
                |v: &View| has(&v.buyer, "reservation_confirmed"),
                all
            );
            progress(Progress::Phase(
                "buyer reserved; the seller hears nothing more: mining on to T_P".into(),
            ));
            world.set_steady(true);
        }
        Scenario::BuyerVanishes => {
            wait!(
                "both reservations and the buyer's token grant",
                |v: &View| both_reserved(v) && has(&v.seller, "token_received"),
                grants_held
            );
            world.stop_gateway(Side::Buyer).await;
            progress(Progress::Phase(
                "both reserved; the buyer's gateway is gone: mining on to T_D".into(),
            ));
            world.set_steady(true);
            wait!("the seller's refunds", |v: &View| v.ended[1], all);
            let resumed = world.restart_gateway(Side::Buyer).await?;
            progress(Progress::Phase(format!(
                "seller refunded; the buyer's gateway restarted over its store ({resumed} saga(s) resumed): mining on to T_P"
            )));
        }
        Scenario::Cancel => {
            wait!("both reservations", both_reserved, grants_held);
            let mut admin = world.buyer.admin()?;
            for id in ids {
                admin
                    .cancel_saga(pb::CancelSagaRequest {
                        saga_id: id.to_string(),
                        reason: "the buyer's operator cancels (escrowd demo)".into(),
                    })
                    .await
                    .map_err(|s| DemoError::Cancel {
                        saga_id: *id,
                        detail: format!("{:?}: {}", s.code(), s.message()),
                    })?;
            }
            progress(Progress::Phase(
                "both reserved; the buyer's operator cancelled".into(),
            ));
        }
    }
    wait!("every saga to end at both parties", ended, all);
    Ok(None)
}
