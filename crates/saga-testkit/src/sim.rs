//! The simulator: two parties, each running the real [`Saga`] through the
//! driver turn of DESIGN.md §2, over fake chains, a fake wallet, a notary
//! and an in-memory network with faults.
//!
//! One driver turn: observe both tips → `handle(input, now)` → append the
//! decision to the party's [`PartyStore`] (all or nothing) → `apply` its
//! events → run the pending effects, each producing the next input. After
//! every successful turn the simulator checks what DESIGN.md promises of
//! `handle`: the decision's effects equal `pending_effects(now)` of the
//! applied state, and a saga replayed from the log has the same status,
//! attention and pending effects. Breaches are collected in
//! [`Sim::violations`]; tests assert there are none.
//!
//! How each effect runs:
//! - `SendToPeer`: the request goes to the other party's `handle`
//!   (`Input::Proposal` for `Propose`, else `Input::Peer`; a
//!   `ReservationReady` BEEF is parsed and SPV-verified against the fake
//!   chain first, a failure answered `Refused` without reaching the saga);
//!   its reply comes back as `Input::PeerAnswered`. A lost or delayed
//!   request or reply, or an unreachable peer, is `Input::EffectFailed`. A
//!   peer's `Reject::WrongState` is an error status (`EffectFailed`), any
//!   other `Reject` is answered `Refused` with its text.
//! - `BuildReservation`: [`FakeWallet::fund`] → `ReservationFunded`.
//! - `Broadcast`: [`FakeChain::broadcast`] → `Broadcasted`.
//! - `WatchConfirmations` / `WatchSpend`: `TxConfirmed` (with the Atomic
//!   BEEF for our reservation) once deep enough / `SpendSeen` once spent.
//!   The same observation is not fed twice while the log has not grown.
//! - `AskNotary`: [`NotaryMode`] → `Notary`.
//! - `WakeAtHeight` / `WakeAt`: armed (the runtime's timers; not durable)
//!   and fed as `Tick` once reached. A restarted party gets one `Tick`.
//!
//! A round gives each party one turn: due delayed messages are delivered,
//! reached wakes fire, then every pending effect runs once (re-derived
//! after each, so an effect made obsolete is skipped).
//!
//! # Layout
//! - [`SimConfig`], [`Sim`] (construction, knobs, driver, queries).
//! - [`FeedError`], [`Undelivered`], [`RejectRecord`], [`Stuck`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bsv_format::beef::Beef;
use bsv_format::hash::sha256;
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::spv::{self, ScriptEras, VerifiedBeef, VerifyOptions};
use bsv_format::Script;
use saga_core::saga::{
    Decision, Effect, EffectKey, Event, Input, NotaryAnswer, PeerMessage, PeerReply, PeerRequest,
    Reject, Saga, SagaContext, Status, TxPurpose,
};
use saga_core::terms::{Leg, Role, Terms};
use saga_core::units::{Height, Satoshis, UnixTime};
use saga_core::wallet::{Basket, Utxo};

use crate::chain::FakeChain;
use crate::fixtures;
use crate::net::{NetFaults, NotaryMode, Rng};
use crate::store::{AppendError, PartyStore};
use crate::wallet::FakeWallet;

/// How a simulation starts.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random fault.
    pub seed: u64,
    /// The clock at the start, UNIX seconds.
    pub now: UnixTime,
    /// Tip of chain P at the start (a faucet block is mined on top).
    pub tip_p: Height,
    /// Tip of chain D at the start (likewise).
    pub tip_d: Height,
    /// Whether the terms name the notary.
    pub notary: bool,
    /// Satoshis the faucet gives each party on the chain of its leg.
    pub funds: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            now: UnixTime(1_700_000_000),
            tip_p: Height(100),
            tip_d: Height(200),
            notary: false,
            funds: 100_000,
        }
    }
}

/// Why an input was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The party is crashed.
    #[error("the party is down")]
    Down,
    /// The saga rejected the input.
    #[error("rejected: {0}")]
    Rejected(Reject),
    /// The store refused the append.
    #[error("append failed: {0}")]
    Append(AppendError),
}

/// Why a peer call got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undelivered {
    /// The peer is down or partitioned away.
    #[error("peer unreachable")]
    Unreachable,
    /// The peer answered with an error status.
    #[error("peer error: {0}")]
    PeerError(String),
}

/// A rejected input, for the test to inspect.
#[derive(Debug, Clone)]
pub struct RejectRecord {
    /// Whose saga rejected it.
    pub role: Role,
    /// What the input was.
    pub input: String,
    /// The rejection.
    pub reject: Reject,
}

/// `run_until` gave up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("not reached after {rounds} rounds: buyer {buyer:?}, seller {seller:?}; last log lines:\n{tail}")]
pub struct Stuck {
    /// Rounds run.
    pub rounds: usize,
    /// The buyer's status.
    pub buyer: Option<Status>,
    /// The seller's status.
    pub seller: Option<Status>,
    /// The end of the log.
    pub tail: String,
}

#[derive(Debug, Clone)]
struct Party {
    role: Role,
    spiffe_id: &'static str,
    ctx: SagaContext,
    saga: Option<Saga>,
    store: PartyStore,
    wallet: FakeWallet,
    partitioned: bool,
    armed: BTreeMap<EffectKey, Effect>,
    memo: BTreeMap<EffectKey, (String, usize)>,
}

#[derive(Debug, Clone)]
struct Delayed {
    from: usize,
    request: PeerRequest,
    due: u64,
}

/// Two simulated parties and their world (see the module docs).
#[derive(Debug, Clone)]
pub struct Sim {
    now: UnixTime,
    chains: BTreeMap<String, FakeChain>,
    parties: [Party; 2],
    /// Network faults, applied to every peer call.
    pub faults: NetFaults,
    /// The notary's answer.
    pub notary: NotaryMode,
    /// When set, every broadcast fails without an answer.
    pub broadcaster_down: bool,
    /// When set, a round in which nothing happened mines one block on each
    /// chain and moves the clock one second (1-second blocks, as in
    /// `policies/fast-test.toml`).
    pub auto_advance: bool,
    /// When set, each turn runs the pending effects in a random order.
    pub shuffle: bool,
    rng: Rng,
    round: u64,
    activity: u64,
    delayed: Vec<Delayed>,
    log: Vec<String>,
    violations: Vec<String>,
    rejects: Vec<RejectRecord>,
    terms: Option<Terms>,
    crash_on: Vec<(Role, &'static str, Role)>,
}

fn index(role: Role) -> usize {
    match role {
        Role::Buyer => 0,
        Role::Seller => 1,
    }
}

impl Sim {
    /// Two parties with funded wallets (the faucet block mined), nothing
    /// started.
    pub fn new(cfg: &SimConfig) -> Sim {
        let policy = fixtures::policy();
        let make = |role: Role, spiffe_id: &'static str| {
            let (keys, wallet_key) = fixtures::keys_of(role);
            let ctx = SagaContext {
                role,
                own_spiffe_id: spiffe_id.to_string(),
                keys,
                policy: Arc::clone(&policy),
            };
            Party {
                role,
                spiffe_id,
                saga: Some(Saga::new(ctx.clone())),
                ctx,
                store: PartyStore::default(),
                wallet: FakeWallet::new(wallet_key),
                partitioned: false,
                armed: BTreeMap::new(),
                memo: BTreeMap::new(),
            }
        };
        let mut sim = Sim {
            now: cfg.now,
            chains: BTreeMap::new(),
            parties: [
                make(Role::Buyer, fixtures::BUYER),
                make(Role::Seller, fixtures::SELLER),
            ],
            faults: NetFaults::NONE,
            notary: NotaryMode::Approve,
            broadcaster_down: false,
            auto_advance: true,
            shuffle: false,
            rng: Rng::new(cfg.seed),
            round: 0,
            activity: 0,
            delayed: Vec::new(),
            log: Vec::new(),
            violations: Vec::new(),
            rejects: Vec::new(),
            terms: None,
            crash_on: Vec::new(),
        };
        sim.chains.insert(
            fixtures::CHAIN_P.into(),
            FakeChain::new(fixtures::CHAIN_P, cfg.tip_p),
        );
        sim.chains.insert(
            fixtures::CHAIN_D.into(),
            FakeChain::new(fixtures::CHAIN_D, cfg.tip_d),
        );
        for (i, chain_id) in [(0, fixtures::CHAIN_P), (1, fixtures::CHAIN_D)] {
            let script = sim.parties[i].wallet.script();
            let chain = sim.chain_mut(chain_id);
            let outpoint = chain.faucet(script.clone(), cfg.funds);
            chain.mine(1);
            sim.parties[i].store.import(Utxo {
                chain_id: chain_id.to_string(),
                basket: Basket::Funding,
                outpoint,
                satoshis: Satoshis(cfg.funds),
                locking_script: script,
            });
        }
        sim.notary = NotaryMode::Approve;
        sim.terms_template(cfg.notary);
        sim
    }

    fn terms_template(&mut self, notary: bool) {
        let terms = fixtures::terms(
            self.now,
            self.chain(fixtures::CHAIN_P).tip(),
            self.chain(fixtures::CHAIN_D).tip(),
            notary,
        );
        self.terms = Some(terms);
    }

    /// The terms [`Sim::start`] proposes (made from the tips and clock at
    /// construction).
    pub fn terms(&self) -> &Terms {
        // Invariant: set in `new`.
        self.terms.as_ref().expect("terms are made in Sim::new")
    }

    /// Replaces the terms [`Sim::start`] will propose.
    pub fn set_terms(&mut self, terms: Terms) {
        self.terms = Some(terms);
    }

    /// Starts the swap: `Input::Start` to the buyer with [`Sim::terms`].
    ///
    /// # Errors
    /// [`FeedError`] from the buyer.
    pub fn start(&mut self) -> Result<Decision, FeedError> {
        let terms = self.terms().clone();
        self.feed(
            Role::Buyer,
            Input::Start {
                terms: Box::new(terms),
                exposure: Satoshis(0),
            },
        )
    }

    // -- world ---------------------------------------------------------------

    /// The clock.
    pub fn now(&self) -> UnixTime {
        self.now
    }

    /// Moves the clock `secs` seconds on.
    pub fn advance(&mut self, secs: u64) {
        self.now = UnixTime(self.now.0.saturating_add(secs));
        self.note(format!("clock +{secs}s → {}", self.now.0));
    }

    /// The chain `id`.
    ///
    /// # Panics
    /// For an id that is neither chain (a test bug).
    pub fn chain(&self, id: &str) -> &FakeChain {
        match self.chains.get(id) {
            Some(c) => c,
            None => panic!("no chain {id}"),
        }
    }

    /// The chain `id`, mutable (to broadcast or mine by hand).
    ///
    /// # Panics
    /// For an unknown id.
    pub fn chain_mut(&mut self, id: &str) -> &mut FakeChain {
        match self.chains.get_mut(id) {
            Some(c) => c,
            None => panic!("no chain {id}"),
        }
    }

    /// Mines `n` blocks on `chain`.
    pub fn mine(&mut self, chain: &str, n: u32) -> Height {
        let tip = self.chain_mut(chain).mine(n);
        self.note(format!("{chain} mined {n} → {}", tip.0));
        tip
    }

    /// Mines until `chain`'s tip is `height` (nothing if it is already there).
    pub fn mine_to(&mut self, chain: &str, height: Height) {
        let tip = self.chain(chain).tip();
        if height > tip {
            self.mine(chain, height.0 - tip.0);
        }
    }

    /// The party's value on `chain`: unspent outputs paying its wallet key
    /// or either of its escrow keys (its refund and claim payouts).
    pub fn balance(&self, role: Role, chain: &str) -> u64 {
        let p = &self.parties[index(role)];
        let scripts: Vec<Script> = vec![
            p.wallet.script(),
            p2pkh_lock(&p.ctx.keys.payment_escrow_key.public_key().hash160()),
            p2pkh_lock(&p.ctx.keys.delivery_escrow_key.public_key().hash160()),
        ];
        self.chain(chain).balance(&scripts)
    }

    /// The party's wallet.
    pub fn wallet(&self, role: Role) -> &FakeWallet {
        &self.parties[index(role)].wallet
    }

    /// SPV-verifies `beef` against `chain` as a party's runtime would.
    ///
    /// # Errors
    /// The parse or verification failure, as text.
    pub fn verify_beef(&self, chain: &str, beef: &[u8]) -> Result<VerifiedBeef, String> {
        let parsed = Beef::from_bytes(beef).map_err(|e| format!("BEEF: {e}"))?;
        let opts = VerifyOptions {
            eras: ScriptEras::ALWAYS_ACTIVE,
            ..VerifyOptions::default()
        };
        spv::verify(parsed, self.chain(chain), &opts).map_err(|e| format!("SPV: {e}"))
    }

    // -- parties -------------------------------------------------------------

    /// The party's live saga (`None` while crashed).
    pub fn saga(&self, role: Role) -> Option<&Saga> {
        self.parties[index(role)].saga.as_ref()
    }

    /// The party's status (`None` while crashed).
    pub fn status(&self, role: Role) -> Option<Status> {
        self.saga(role).map(Saga::status)
    }

    /// The party's store.
    pub fn store(&self, role: Role) -> &PartyStore {
        &self.parties[index(role)].store
    }

    /// The party's event log.
    pub fn events(&self, role: Role) -> &[Event] {
        self.store(role).events()
    }

    /// The party's SPIFFE ID.
    pub fn spiffe_id(&self, role: Role) -> &'static str {
        self.parties[index(role)].spiffe_id
    }

    /// The party's saga context (keys, policy).
    pub fn context(&self, role: Role) -> &SagaContext {
        &self.parties[index(role)].ctx
    }

    /// Crashes the party: its live saga and timers are gone; its store stays.
    pub fn crash(&mut self, role: Role) {
        let p = &mut self.parties[index(role)];
        p.saga = None;
        p.armed.clear();
        p.memo.clear();
        self.note(format!("{role:?} crashed"));
    }

    /// Restarts a crashed party: `Saga::replay` of its log, tips observed,
    /// one `Tick`. Nothing if it is up.
    pub fn restart(&mut self, role: Role) {
        let i = index(role);
        if self.parties[i].saga.is_some() {
            return;
        }
        let p = &mut self.parties[i];
        p.saga = Some(Saga::replay(p.ctx.clone(), p.store.events()));
        self.note(format!("{role:?} restarted"));
        let _ = self.feed(role, Input::Tick);
    }

    /// Cuts the party off the network (`true`) or reconnects it. A
    /// partitioned party neither runs effects nor receives calls.
    pub fn partition(&mut self, role: Role, away: bool) {
        self.parties[index(role)].partitioned = away;
        self.note(format!("{role:?} partitioned: {away}"));
    }

    /// Crashes `victim` right after `watched` appends an event named
    /// `event` ([`Event::name`]), before anything else happens (once).
    pub fn crash_on(&mut self, watched: Role, event: &'static str, victim: Role) {
        self.crash_on.push((watched, event, victim));
    }

    /// Whether the party is up and connected.
    pub fn reachable(&self, role: Role) -> bool {
        let p = &self.parties[index(role)];
        p.saga.is_some() && !p.partitioned
    }

    // -- the driver turn -------------------------------------------------------

    /// One driver turn for `role`: observe tips, `handle`, append, apply,
    /// check. Returns the decision.
    ///
    /// # Errors
    /// [`FeedError`]; the state is unchanged.
    pub fn feed(&mut self, role: Role, input: Input) -> Result<Decision, FeedError> {
        let i = index(role);
        let now = self.now;
        let tips: Vec<(String, Height)> = self
            .chains
            .iter()
            .map(|(id, c)| (id.clone(), c.tip()))
            .collect();
        let name = input_name(&input);
        let p = &mut self.parties[i];
        let Some(saga) = p.saga.as_mut() else {
            return Err(FeedError::Down);
        };
        for (id, tip) in &tips {
            saga.observe_tip(id, *tip);
        }
        let input_copy = input.clone();
        let decision = match saga.handle(input, now) {
            Ok(d) => d,
            Err(reject) => {
                self.note(format!("{role:?} rejected {name}: {reject}"));
                self.rejects.push(RejectRecord {
                    role,
                    input: name,
                    reject: reject.clone(),
                });
                return Err(FeedError::Rejected(reject));
            }
        };
        if let Err(e) = p.store.append(&decision) {
            self.note(format!("{role:?} append of {name} failed: {e}"));
            return Err(FeedError::Append(e));
        }
        saga.apply(&decision.events);
        let live_effects = saga.pending_effects(now);
        let status = saga.status();
        let attention = saga.attention().map(str::to_string);
        let replayed = {
            let mut r = Saga::replay(p.ctx.clone(), p.store.events());
            for (id, tip) in &tips {
                r.observe_tip(id, *tip);
            }
            r
        };
        let mut breaches = Vec::new();
        if decision.effects != live_effects {
            breaches.push(format!(
                "{role:?} after {name}: decision effects {:?} ≠ pending_effects {:?}",
                keys(&decision.effects),
                keys(&live_effects)
            ));
        }
        if replayed.status() != status
            || replayed.attention().map(str::to_string) != attention
            || replayed.pending_effects(now) != live_effects
        {
            breaches.push(format!(
                "{role:?} after {name}: replay differs (status {:?} vs {:?}, effects {:?} vs {:?})",
                replayed.status(),
                status,
                keys(&replayed.pending_effects(now)),
                keys(&live_effects)
            ));
        }
        // A duplicate of an input that changed something is a no-op with
        // the same reply (STYLE.md 3): handled again at once, nothing follows.
        // Failure accounting is exempt: each failed attempt (an
        // `EffectFailed`, or a broadcaster's refusal counted as one) is one
        // more attempt, not a fact already recorded.
        let only_failures = decision.events.iter().all(|e| {
            matches!(
                e,
                Event::EffectFailed { .. } | Event::AttentionRaised { .. }
            )
        });
        let duplicate = (!decision.events.is_empty()
            && !only_failures
            && !matches!(input_copy, Input::EffectFailed { .. }))
        .then(|| saga.handle(input_copy.clone(), now));
        match duplicate {
            Some(Ok(d)) if !d.events.is_empty() => breaches.push(format!(
                "{role:?}: {name} again at once appended {:?}",
                d.events.iter().map(Event::name).collect::<Vec<_>>()
            )),
            Some(Ok(d)) if decision.reply.is_some() && d.reply != decision.reply => {
                breaches.push(format!(
                    "{role:?}: {name} again at once answered {:?}, first {:?}",
                    d.reply, decision.reply
                ))
            }
            _ => {}
        }
        if !decision.events.is_empty() {
            // Failures alone are not progress: a round of time-outs lets
            // time pass (the runtime's back-off).
            if decision.events.iter().any(|e| {
                !matches!(
                    e,
                    Event::EffectFailed { .. } | Event::AttentionRaised { .. }
                )
            }) {
                self.activity += 1;
            }
            let names: Vec<&str> = decision.events.iter().map(Event::name).collect();
            self.note(format!("{role:?} {name} → {names:?} [{}]", status.name()));
        }
        for b in breaches {
            self.note(format!("VIOLATION {b}"));
            self.violations.push(b);
        }
        let names: Vec<&str> = decision.events.iter().map(Event::name).collect();
        let fired: Vec<Role> = self
            .crash_on
            .iter()
            .filter(|(w, e, _)| *w == role && names.contains(e))
            .map(|(_, _, v)| *v)
            .collect();
        self.crash_on
            .retain(|(w, e, _)| !(*w == role && names.contains(e)));
        for victim in fired {
            self.crash(victim);
        }
        Ok(decision)
    }

    /// Delivers `message` from `caller` to `to` as `Input::Peer` (a
    /// scripted or hostile counterparty).
    ///
    /// # Errors
    /// As [`Sim::feed`].
    pub fn deliver(
        &mut self,
        to: Role,
        caller: &str,
        message: PeerMessage,
    ) -> Result<Decision, FeedError> {
        self.feed(
            to,
            Input::Peer {
                caller: caller.to_string(),
                message,
            },
        )
    }

    /// Sends `request` from `from` to the other party, with no fault, and
    /// returns the reply (what the runtime's peer client would return).
    ///
    /// # Errors
    /// [`Undelivered`].
    pub fn call(&mut self, from: Role, request: PeerRequest) -> Result<PeerReply, Undelivered> {
        self.deliver_request(index(from), request)
    }

    fn deliver_request(
        &mut self,
        from: usize,
        request: PeerRequest,
    ) -> Result<PeerReply, Undelivered> {
        let to = 1 - from;
        if self.parties[to].saga.is_none() || self.parties[to].partitioned {
            return Err(Undelivered::Unreachable);
        }
        let caller = self.parties[from].spiffe_id.to_string();
        let to_role = self.parties[to].role;
        let sender_chain = self.own_chain(self.parties[from].role);
        let message = match request {
            PeerRequest::Propose {
                terms,
                buyer_signature,
            } => {
                return self.answer(
                    to_role,
                    Input::Proposal {
                        caller,
                        terms,
                        buyer_signature,
                        exposure: Satoshis(0),
                    },
                )
            }
            PeerRequest::SignRefund { refund } => PeerMessage::SignRefund { refund },
            PeerRequest::ReservationReady { beef } => match self.verify_beef(sender_chain, &beef) {
                Ok(v) => PeerMessage::ReservationReady {
                    beef: Box::new(v),
                    beef_bytes: beef,
                },
                Err(reason) => {
                    self.note(format!("{to_role:?} refused a BEEF: {reason}"));
                    return Ok(PeerReply::Refused { reason });
                }
            },
            PeerRequest::GrantToken { token } => PeerMessage::GrantToken { token },
            PeerRequest::Execute { token, claim } => PeerMessage::Execute { token, claim },
            PeerRequest::SignCancel { cancel } => PeerMessage::SignCancel { cancel },
            PeerRequest::Cancel { reason } => PeerMessage::Cancel { reason },
        };
        self.answer(to_role, Input::Peer { caller, message })
    }

    fn answer(&mut self, to: Role, input: Input) -> Result<PeerReply, Undelivered> {
        match self.feed(to, input) {
            Ok(d) => Ok(match d.reply {
                Some(r) => r,
                None => {
                    let v = format!("{to:?} answered a peer call without a reply");
                    self.violations.push(v);
                    PeerReply::Ack
                }
            }),
            Err(FeedError::Down) => Err(Undelivered::Unreachable),
            Err(FeedError::Rejected(r @ Reject::WrongState { .. })) => {
                Err(Undelivered::PeerError(r.to_string()))
            }
            Err(FeedError::Rejected(r)) => Ok(PeerReply::Refused {
                reason: r.to_string(),
            }),
            Err(FeedError::Append(e)) => Err(Undelivered::PeerError(e.to_string())),
        }
    }

    /// Runs one round (see the module docs). Returns whether anything
    /// happened (an event other than a failure appended, a delayed message
    /// delivered).
    pub fn round(&mut self) -> bool {
        self.round += 1;
        let before = self.activity;
        let due: Vec<Delayed> = {
            let round = self.round;
            let (due, later) = self.delayed.drain(..).partition(|d| d.due <= round);
            self.delayed = later;
            due
        };
        for d in due {
            self.activity += 1;
            let kind = d.request.kind();
            let from_role = self.parties[d.from].role;
            self.note(format!(
                "delayed {} from {from_role:?} delivered",
                kind.name()
            ));
            if let Ok(reply) = self.deliver_request(d.from, d.request) {
                let _ = self.feed(
                    from_role,
                    Input::PeerAnswered {
                        request: kind,
                        reply,
                    },
                );
            }
        }
        let order = if self.shuffle && self.rng.chance(500) {
            [1, 0]
        } else {
            [0, 1]
        };
        for i in order {
            self.turn(i);
        }
        self.activity != before
    }

    /// Runs rounds until `done(self)` holds, at most `max_rounds`. With
    /// [`Sim::auto_advance`], a quiet round mines a block on each chain and
    /// moves the clock one second.
    ///
    /// # Errors
    /// [`Stuck`] with the statuses and the end of the log.
    pub fn run_until(
        &mut self,
        done: impl Fn(&Sim) -> bool,
        max_rounds: usize,
    ) -> Result<usize, Stuck> {
        for n in 0..max_rounds {
            if done(self) {
                return Ok(n);
            }
            let busy = self.round();
            if !busy && self.auto_advance {
                self.mine(fixtures::CHAIN_P, 1);
                self.mine(fixtures::CHAIN_D, 1);
                self.advance(1);
            }
        }
        if done(self) {
            return Ok(max_rounds);
        }
        Err(Stuck {
            rounds: max_rounds,
            buyer: self.status(Role::Buyer),
            seller: self.status(Role::Seller),
            tail: self.log_tail(40),
        })
    }

    fn turn(&mut self, i: usize) {
        if self.parties[i].saga.is_none() || self.parties[i].partitioned {
            return;
        }
        let role = self.parties[i].role;
        // Timers that went off.
        let reached: Vec<EffectKey> = self.parties[i]
            .armed
            .iter()
            .filter(|(_, e)| self.wake_reached(e))
            .map(|(k, _)| k.clone())
            .collect();
        if !reached.is_empty() {
            for k in &reached {
                self.parties[i].armed.remove(k);
            }
            let _ = self.feed(role, Input::Tick);
        }
        let mut ran: BTreeSet<EffectKey> = BTreeSet::new();
        for _ in 0..64 {
            let Some(effects) = self.pending(i) else {
                return;
            };
            for e in &effects {
                if matches!(e, Effect::WakeAt { .. } | Effect::WakeAtHeight { .. }) {
                    self.parties[i].armed.insert(e.key(), e.clone());
                }
            }
            let mut candidates: Vec<Effect> = effects
                .into_iter()
                .filter(|e| {
                    !matches!(e, Effect::WakeAt { .. } | Effect::WakeAtHeight { .. })
                        && !ran.contains(&e.key())
                })
                .collect();
            if candidates.is_empty() {
                return;
            }
            let pick = if self.shuffle {
                usize::try_from(self.rng.below(candidates.len() as u64)).unwrap_or(0)
            } else {
                0
            };
            let effect = candidates.swap_remove(pick);
            ran.insert(effect.key());
            self.run_effect(i, effect);
            if self.parties[i].saga.is_none() || self.parties[i].partitioned {
                return;
            }
        }
    }

    fn pending(&mut self, i: usize) -> Option<Vec<Effect>> {
        let now = self.now;
        let tips: Vec<(String, Height)> = self
            .chains
            .iter()
            .map(|(id, c)| (id.clone(), c.tip()))
            .collect();
        let saga = self.parties[i].saga.as_mut()?;
        for (id, tip) in &tips {
            saga.observe_tip(id, *tip);
        }
        Some(saga.pending_effects(now))
    }

    fn wake_reached(&self, e: &Effect) -> bool {
        match e {
            Effect::WakeAt { at } => self.now >= *at,
            Effect::WakeAtHeight { chain_id, height } => self
                .chains
                .get(chain_id)
                .is_some_and(|c| c.tip() >= *height),
            _ => false,
        }
    }

    /// Runs one effect of party `i` and feeds what it led to.
    fn run_effect(&mut self, i: usize, effect: Effect) {
        let role = self.parties[i].role;
        let key = effect.key();
        let inputs: Vec<Input> = match effect {
            Effect::SendToPeer(request) => self.send(i, request),
            Effect::BuildReservation { leg } => {
                let Some(terms) = self.parties[i]
                    .saga
                    .as_ref()
                    .and_then(|s| s.terms())
                    .cloned()
                else {
                    return;
                };
                let rate = self.parties[i]
                    .ctx
                    .policy
                    .chain(&terms.leg(leg).chain_id)
                    .map_or(0, |c| c.fee_rate_sats_per_kb);
                let p = &self.parties[i];
                match p.wallet.fund(&p.store, &terms, leg, rate) {
                    Ok(input) => vec![input],
                    Err(e) => vec![failed(key.clone(), e.to_string())],
                }
            }
            Effect::Broadcast {
                chain_id,
                tx,
                purpose,
            } => {
                if self.broadcaster_down {
                    vec![failed(key.clone(), "broadcaster unavailable".into())]
                } else {
                    let outcome = self.chain_mut(&chain_id).broadcast(&tx);
                    let txid = tx.txid();
                    self.note(format!(
                        "{role:?} broadcast {purpose:?} {txid} on {chain_id}: {outcome:?}"
                    ));
                    let fingerprint = format!("{txid}:{outcome:?}");
                    if self.seen(i, &key, fingerprint) {
                        return;
                    }
                    vec![Input::Broadcasted { txid, outcome }]
                }
            }
            Effect::WatchConfirmations {
                chain_id,
                txid,
                depth,
                purpose,
            } => {
                let chain = self.chain(&chain_id);
                let (Some(block_height), true) =
                    (chain.block_of(&txid), chain.confirmations(&txid) >= depth)
                else {
                    return;
                };
                let tip = chain.tip();
                let beef = (purpose == TxPurpose::Reservation)
                    .then(|| chain.atomic_beef(&txid))
                    .flatten();
                if self.seen(i, &key, format!("{txid}@{}:{}", block_height.0, tip.0)) {
                    return;
                }
                vec![Input::TxConfirmed {
                    chain_id,
                    txid,
                    block_height,
                    tip,
                    beef,
                }]
            }
            Effect::WatchSpend {
                chain_id,
                outpoint,
                leg: _,
            } => {
                let Some(tx) = self.chain(&chain_id).spender(&outpoint).cloned() else {
                    return;
                };
                if self.seen(i, &key, format!("{outpoint}:{}", tx.txid())) {
                    return;
                }
                vec![Input::SpendSeen {
                    chain_id,
                    outpoint,
                    tx,
                }]
            }
            Effect::AskNotary { terms, .. } => match self.notary {
                NotaryMode::Approve => {
                    let mut msg = terms.hash().0.to_vec();
                    msg.extend_from_slice(b"approved");
                    vec![Input::Notary(NotaryAnswer::Approved {
                        signature: sha256(&msg).to_vec(),
                    })]
                }
                NotaryMode::Reject => vec![Input::Notary(NotaryAnswer::Rejected {
                    reason: "the notary refuses".into(),
                })],
                NotaryMode::Offline => vec![failed(key.clone(), "notary unreachable".into())],
            },
            Effect::WakeAt { .. } | Effect::WakeAtHeight { .. } => Vec::new(),
        };
        if self.rng.chance(self.faults.crash_after_effect) {
            self.crash(role);
            return;
        }
        for input in inputs {
            let _ = self.feed(role, input);
        }
    }

    /// Whether party `i` was already fed `fingerprint` for `key` with its log
    /// as long as now; records it otherwise.
    fn seen(&mut self, i: usize, key: &EffectKey, fingerprint: String) -> bool {
        let p = &mut self.parties[i];
        let len = p.store.events().len();
        let entry = (fingerprint, len);
        if p.memo.get(key) == Some(&entry) {
            return true;
        }
        p.memo.insert(key.clone(), entry);
        false
    }

    /// A peer call from party `i` through the faulty network; the inputs
    /// its outcome feeds back to `i`.
    fn send(&mut self, i: usize, request: PeerRequest) -> Vec<Input> {
        let kind = request.kind();
        let key = EffectKey::Send(kind);
        let role = self.parties[i].role;
        if self.rng.chance(self.faults.delay) {
            let due = self.round + 1 + self.rng.below(3);
            self.note(format!("{role:?} {} delayed to round {due}", kind.name()));
            self.delayed.push(Delayed {
                from: i,
                request,
                due,
            });
            return vec![failed(key, "timed out (delayed)".into())];
        }
        if self.rng.chance(self.faults.drop_request) {
            self.note(format!("{role:?} {} lost", kind.name()));
            return vec![failed(key, "timed out (request lost)".into())];
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        let mut inputs = Vec::new();
        for _ in 0..copies {
            match self.deliver_request(i, request.clone()) {
                Ok(reply) => {
                    if self.rng.chance(self.faults.drop_reply) {
                        self.note(format!("{role:?} {} reply lost", kind.name()));
                        inputs.push(failed(key.clone(), "timed out (reply lost)".into()));
                    } else {
                        inputs.push(Input::PeerAnswered {
                            request: kind,
                            reply,
                        });
                    }
                }
                Err(e) => inputs.push(failed(key.clone(), e.to_string())),
            }
        }
        inputs
    }

    // -- what happened ---------------------------------------------------------

    /// Breaches of the driver contract seen so far (must stay empty).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Inputs a saga rejected.
    pub fn rejects(&self) -> &[RejectRecord] {
        &self.rejects
    }

    /// The whole log.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// The last `n` log lines, one per line.
    pub fn log_tail(&self, n: usize) -> String {
        let start = self.log.len().saturating_sub(n);
        self.log[start..].join("\n")
    }

    fn note(&mut self, line: String) {
        self.log.push(format!(
            "[r{} t{} P{} D{}] {line}",
            self.round,
            self.now.0,
            self.chains.get(fixtures::CHAIN_P).map_or(0, |c| c.tip().0),
            self.chains.get(fixtures::CHAIN_D).map_or(0, |c| c.tip().0)
        ));
    }

    /// The signed reservation the party's log holds, if built.
    pub fn reservation(&self, role: Role) -> Option<&bsv_format::Transaction> {
        self.events(role).iter().find_map(|e| match e {
            Event::ReservationBuilt { tx, .. } => Some(tx),
            _ => None,
        })
    }

    /// The claim the party's log holds, if built.
    pub fn claim(&self, role: Role) -> Option<&bsv_format::Transaction> {
        self.events(role).iter().find_map(|e| match e {
            Event::ClaimBuilt { tx } => Some(tx),
            _ => None,
        })
    }

    /// The countersigned refund the party's log holds.
    pub fn refund(&self, role: Role) -> Option<&bsv_format::Transaction> {
        self.events(role).iter().find_map(|e| match e {
            Event::RefundCountersigned { refund } => Some(refund),
            _ => None,
        })
    }

    /// The chain of `role`'s own leg.
    pub fn own_chain(&self, role: Role) -> &'static str {
        match role.funds() {
            Leg::Payment => fixtures::CHAIN_P,
            Leg::Delivery => fixtures::CHAIN_D,
        }
    }
}

fn failed(effect: EffectKey, detail: String) -> Input {
    Input::EffectFailed { effect, detail }
}

fn keys(effects: &[Effect]) -> Vec<EffectKey> {
    effects.iter().map(Effect::key).collect()
}

/// A short name of an input for the log.
pub fn input_name(input: &Input) -> String {
    match input {
        Input::Start { .. } => "start".into(),
        Input::Proposal { .. } => "proposal".into(),
        Input::Peer { message, .. } => format!("peer {}", message.kind().name()),
        Input::PeerAnswered { request, reply } => {
            let r = match reply {
                PeerReply::Accepted { .. } => "accepted".to_string(),
                PeerReply::Signature { .. } => "signature".to_string(),
                PeerReply::Ack => "ack".to_string(),
                PeerReply::Refused { reason } => format!("refused ({reason})"),
                PeerReply::NotYet { reason } => format!("not yet ({reason})"),
            };
            format!("answer to {}: {r}", request.name())
        }
        Input::ReservationFunded { .. } => "reservation funded".into(),
        Input::Broadcasted { outcome, .. } => format!("broadcasted {outcome:?}"),
        Input::TxConfirmed { txid, .. } => format!("tx confirmed {txid}"),
        Input::SpendSeen { outpoint, .. } => format!("spend seen of {outpoint}"),
        Input::Notary(a) => format!("notary {a:?}"),
        Input::Tick => "tick".into(),
        Input::CancelRequested { .. } => "cancel requested".into(),
        Input::Resolve(r) => format!("resolve {r:?}"),
        Input::EffectFailed { effect, detail } => format!("effect failed {effect:?}: {detail}"),
        Input::PeerStatus { known, detail } => format!("peer status (known: {known}): {detail}"),
    }
}
