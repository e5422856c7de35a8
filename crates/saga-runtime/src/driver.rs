//! The driver turn of DESIGN.md §2, coded once:
//! input → [`Saga::handle`] (pure) → append the decision in one log step
//! (durable when `append` returns) → [`Saga::apply`] → run the effects →
//! reply.
//!
//! # Turns
//! Turns of one saga are serialised by a per-saga lock. A turn first reads
//! every chain's tip (the trackers cache them; see below) and the log's head:
//! if the log moved under us (another writer, or a turn whose append
//! committed but whose caller vanished), the saga is replayed from the log
//! before anything is decided, so a decision is never taken on a stale state.
//! A turn runs on its own task: a caller that stops waiting (a peer hanging
//! up) cannot cut it between its append and its apply.
//!
//! # Effects
//! Effects are not queued: after every turn the driver takes the decision's
//! effects (the saga's pending effects) and starts a runner for each one
//! whose key has none, one runner per `(saga, effect key)`. A runner loops:
//! it re-reads the effect from the current state (so it always acts on the
//! latest version, and stops as soon as the effect is no longer pending),
//! makes one attempt, and feeds the result back as an input through a turn.
//! The check "still pending?" and the runner's exit happen under the saga's
//! lock, so an effect that becomes pending again is never left without a
//! runner. Attempts that fail without a definite answer are fed as
//! [`Input::EffectFailed`] (the saga counts them against the policy's retry
//! budget) and retried after the policy's backoff; an effect result the saga
//! refuses while the effect is still pending counts the same way. Watches
//! and wake-ups poll their chain every `poll_interval` until what they wait
//! for happens; a spend is reported once per spending transaction. A
//! terminal saga (`Completed`, `Refunded`, ...) runs no effects, even if
//! the saga still lists some (a courtesy message never acknowledged): its
//! projection says nothing more will be appended on its own.
//!
//! Before a broadcast, the runner reads that chain's tip again and re-derives
//! the effect, so C1 (the buyer's claim) and C2 (the seller's reservation)
//! are judged on the tip as it is then. A watched transaction of ours that
//! the broadcaster no longer knows (dropped) is broadcast again, under the
//! same rules.
//!
//! # Restart and shutdown
//! [`Driver::shutdown`] stops a driver as a crash would: every runner is
//! aborted wherever it is, and later turns are refused. After a restart,
//! [`Driver::recover`] replays every in-flight saga from the log and starts
//! its pending effects, re-derived from the persisted state and the current
//! tips — never replayed blindly.
//!
//! # Tips
//! The driver keeps the last tip each tracker reported and gives it to every
//! saga before it decides. Trackers should cache tips for well under a block
//! interval (the policy's `view_lag_blocks` bounds how stale the buyer's view
//! of chain D may be): every turn and every broadcast asks them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::Duration;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::ef::EfTransaction;
use bsv_format::{Transaction, TxOut, Txid};
use saga_core::saga::{
    BroadcastOutcome, Decision, Effect, EffectKey, Event, Input, PeerReply, Reject, Saga, Status,
    TxPurpose,
};
use saga_core::terms::{Leg, Role, SagaId, Terms};
use saga_core::wallet::Basket;
use saga_core::Height;
use tokio::task::JoinSet;

use crate::chain::{BroadcastError, BroadcastOutcome as ArcOutcome, TxState};
use crate::log::{AppendError, Deadline, EventLog, Projection, ReadError, Step};
use crate::ports::{
    ChainPorts, Clock, ContextError, ContextSource, Notary, NotaryRequest, PeerTransport,
};
use crate::wallet::Wallet;

/// Why a turn did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The saga refused the input; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Reject),
    /// The append failed; nothing was written (a conflicting token, hashlock
    /// or output, or storage).
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Reading the log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The saga's keys or policy are unavailable.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// No saga with this id, and the input does not start one.
    #[error("no saga {0}")]
    UnknownSaga(SagaId),
    /// The driver was shut down ([`Driver::shutdown`]); nothing was written.
    #[error("the driver is shut down")]
    Stopped,
    /// The turn's task ended abnormally (a panic: a bug); whether its step
    /// was appended is unknown, and the next turn re-reads the log.
    #[error("saga {saga_id}: the turn was interrupted: {detail}")]
    Interrupted {
        /// The saga.
        saga_id: SagaId,
        /// What the runtime said.
        detail: String,
    },
}

/// The outcome of one turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The answer to a peer message, if the input was one.
    pub reply: Option<PeerReply>,
    /// The saga's status after the turn.
    pub status: Status,
    /// How many events were appended.
    pub appended: usize,
}

/// Everything the driver talks to.
#[derive(Clone)]
pub struct DriverPorts {
    /// The event log (sled in the gateway, `MemLog` in tests).
    pub log: Arc<dyn EventLog<Event>>,
    /// Per chain id.
    pub chains: BTreeMap<String, ChainPorts>,
    /// The counterparty's gateway.
    pub peer: Arc<dyn PeerTransport>,
    /// The notary, if sagas may name one.
    pub notary: Option<Arc<dyn Notary>>,
    /// Funds and signs reservations.
    pub wallet: Arc<dyn Wallet>,
    /// Keys and policy per saga.
    pub contexts: Arc<dyn ContextSource>,
    /// The UTC clock.
    pub clock: Arc<dyn Clock>,
    /// How often watches and wake-ups poll their chain (and how long a
    /// runner waits before looking at an effect again).
    pub poll_interval: Duration,
}

struct Entry {
    saga: Saga,
    head: u64,
}

type EntryLock = Arc<tokio::sync::Mutex<Entry>>;

struct Inner {
    ports: DriverPorts,
    sagas: StdMutex<HashMap<SagaId, EntryLock>>,
    running: StdMutex<HashSet<(SagaId, EffectKey)>>,
    tips: StdMutex<BTreeMap<String, Height>>,
    tasks: StdMutex<JoinSet<()>>,
    stopped: AtomicBool,
}

/// A std mutex's data even if a holder panicked: every mutex here guards
/// plain maps whose entries are each written whole.
fn locked<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs sagas: one per id, turns serialised per saga.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

/// What one attempt of an effect came to.
enum Attempt {
    /// A result: feed it to the saga.
    Input(Box<Input>),
    /// No definite answer: report [`Input::EffectFailed`] and back off.
    Failed(String),
    /// Nothing yet (a watch, a wake-up, a peer's "not yet"): look again
    /// after this long.
    Wait(Duration),
}

impl Attempt {
    fn input(input: Input) -> Attempt {
        Attempt::Input(Box::new(input))
    }
}

impl Driver {
    /// A driver over `ports`, with no saga loaded and nothing running.
    pub fn new(ports: DriverPorts) -> Driver {
        Driver {
            inner: Arc::new(Inner {
                ports,
                sagas: StdMutex::new(HashMap::new()),
                running: StdMutex::new(HashSet::new()),
                tips: StdMutex::new(BTreeMap::new()),
                tasks: StdMutex::new(JoinSet::new()),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Stops the driver as a crash would: every effect runner is aborted
    /// wherever it is (an attempt in flight may or may not have reached its
    /// service; effects are idempotent), and every later turn fails with
    /// [`DriverError::Stopped`]. A turn already past its start finishes (its
    /// step is appended or not, as a whole). The log is untouched: a new
    /// driver over it resumes with [`Driver::recover`].
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        locked(&self.inner.tasks).abort_all();
    }

    fn check_running(&self) -> Result<(), DriverError> {
        if self.inner.stopped.load(Ordering::SeqCst) {
            Err(DriverError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Asks every chain's tracker for its tip; a chain that does not answer
    /// keeps its last known tip.
    pub async fn refresh_tips(&self) {
        for chain_id in self.inner.ports.chains.keys() {
            self.refresh_tip(chain_id).await;
        }
    }

    /// Asks `chain_id`'s tracker for its tip (kept unless it answers).
    async fn refresh_tip(&self, chain_id: &str) -> Option<Height> {
        let ports = self.inner.ports.chains.get(chain_id)?;
        match ports.tracker.current_height().await {
            Ok(h) => {
                self.set_tip(chain_id, Height(h));
                Some(Height(h))
            }
            Err(e) => {
                tracing::debug!(chain = chain_id, error = %e, "tip unavailable; keeping the last one");
                None
            }
        }
    }

    fn set_tip(&self, chain_id: &str, height: Height) {
        locked(&self.inner.tips).insert(chain_id.to_string(), height);
    }

    fn tips(&self) -> BTreeMap<String, Height> {
        locked(&self.inner.tips).clone()
    }

    fn observe(&self, saga: &mut Saga) {
        for (chain, tip) in self.tips() {
            saga.observe_tip(&chain, tip);
        }
    }

    /// Loads every in-flight saga from the log and starts its pending
    /// effects. Returns how many were resumed.
    ///
    /// # Errors
    /// [`DriverError::Stopped`], [`DriverError::Read`], [`DriverError::Context`].
    pub async fn recover(&self) -> Result<usize, DriverError> {
        self.check_running()?;
        self.refresh_tips().await;
        let ids = self.inner.ports.log.in_flight_sagas().await?;
        for id in &ids {
            let entry = self.entry(*id, None).await?;
            let effects = {
                let e = self.lock_fresh(*id, &entry).await?;
                e.saga.pending_effects(self.inner.ports.clock.now())
            };
            self.schedule(*id, effects);
        }
        Ok(ids.len())
    }

    /// The saga's status and, if it needs an operator, why; loads the saga
    /// from the log if needed.
    ///
    /// # Errors
    /// [`DriverError::UnknownSaga`], [`DriverError::Read`], [`DriverError::Context`].
    pub async fn status(&self, saga_id: SagaId) -> Result<(Status, Option<String>), DriverError> {
        let entry = self.entry(saga_id, None).await?;
        let e = self.lock_fresh(saga_id, &entry).await?;
        Ok((e.saga.status(), e.saga.attention().map(str::to_string)))
    }

    /// The saga's lock, loading it from the log on first use. `new` (our
    /// role and the terms of the input that starts the saga) creates an
    /// empty saga if the log has none. The context is asked for with the
    /// saga's terms, since our keys on a leg are our keys on its chain.
    async fn entry(
        &self,
        saga_id: SagaId,
        new: Option<(Role, &Terms)>,
    ) -> Result<EntryLock, DriverError> {
        if let Some(e) = locked(&self.inner.sagas).get(&saga_id).cloned() {
            return Ok(e);
        }
        let stored = self.inner.ports.log.load(&saga_id).await?;
        let events: Vec<Event> = stored.iter().map(|(_, e)| e.clone()).collect();
        let head = stored.last().map_or(0, |(seq, _)| seq + 1);
        let recorded = events.iter().find_map(|e| match e {
            Event::TermsProposed { role, terms, .. } => Some((*role, terms.as_ref())),
            _ => None,
        });
        let (role, terms) = match (recorded, new) {
            (Some(found), _) => found,
            (None, Some(new)) if events.is_empty() => new,
            (None, _) => return Err(DriverError::UnknownSaga(saga_id)),
        };
        let ctx = self
            .inner
            .ports
            .contexts
            .context(saga_id, role, terms)
            .await?;
        let entry = Arc::new(tokio::sync::Mutex::new(Entry {
            saga: Saga::replay(ctx, &events),
            head,
        }));
        Ok(locked(&self.inner.sagas)
            .entry(saga_id)
            .or_insert(entry)
            .clone())
    }

    /// Locks the saga, replays it from the log if the log's head is not
    /// ours (a step appended by a turn whose end we never saw, or by another
    /// writer), and gives it the current tips.
    async fn lock_fresh<'a>(
        &self,
        saga_id: SagaId,
        entry: &'a EntryLock,
    ) -> Result<tokio::sync::MutexGuard<'a, Entry>, DriverError> {
        let mut e = entry.lock().await;
        let head = self.inner.ports.log.head(&saga_id).await?;
        if head != e.head {
            tracing::warn!(saga = %saga_id, ours = e.head, stored = head, "the log moved; replaying the saga");
            let stored = self.inner.ports.log.load(&saga_id).await?;
            e.head = stored.last().map_or(0, |(seq, _)| seq + 1);
            let events: Vec<Event> = stored.into_iter().map(|(_, e)| e).collect();
            e.saga = Saga::replay(e.saga.context().clone(), &events);
        }
        self.observe(&mut e.saga);
        Ok(e)
    }

    /// Runs `f` on the saga's current state, if the saga can be loaded.
    async fn with_saga<T>(&self, saga_id: SagaId, f: impl FnOnce(&Saga) -> T) -> Option<T> {
        let entry = self.entry(saga_id, None).await.ok()?;
        let e = self.lock_fresh(saga_id, &entry).await.ok()?;
        Some(f(&e.saga))
    }

    /// One driver turn for `saga_id`. `new_role` creates the saga if the log
    /// has none (a buyer's start, a seller's first proposal). The turn runs
    /// to its end on its own task even if the caller stops waiting.
    ///
    /// # Errors
    /// [`DriverError`]: nothing was written (for
    /// [`DriverError::Interrupted`]: unknown; the next turn re-reads the log).
    pub async fn submit(
        &self,
        saga_id: SagaId,
        new_role: Option<Role>,
        input: Input,
        idempotency_key: Option<String>,
    ) -> Result<Turn, DriverError> {
        self.check_running()?;
        let driver = self.clone();
        tokio::spawn(async move { driver.turn(saga_id, new_role, input, idempotency_key).await })
            .await
            .map_err(|e| DriverError::Interrupted {
                saga_id,
                detail: e.to_string(),
            })?
    }

    async fn turn(
        &self,
        saga_id: SagaId,
        new_role: Option<Role>,
        input: Input,
        idempotency_key: Option<String>,
    ) -> Result<Turn, DriverError> {
        self.refresh_tips().await;
        let starting = match (&input, new_role) {
            (Input::Start { terms, .. } | Input::Proposal { terms, .. }, Some(role)) => {
                Some((role, terms.as_ref().clone()))
            }
            _ => None,
        };
        let entry = self
            .entry(saga_id, starting.as_ref().map(|(r, t)| (*r, t)))
            .await?;
        let (decision, status) = {
            let mut e = self.lock_fresh(saga_id, &entry).await?;
            self.check_running()?;
            let decision = e.saga.handle(input, self.inner.ports.clock.now())?;
            if !decision.events.is_empty() {
                let mut next = e.saga.clone();
                next.apply(&decision.events);
                let head = e.head + decision.events.len() as u64;
                let step = Step {
                    saga_id,
                    expected_seq: e.head,
                    events: decision.events.clone(),
                    consumed_tokens: decision.consumed_tokens.clone(),
                    new_hashlocks: decision.new_hashlocks.clone(),
                    utxo_changes: decision.utxo_changes.clone(),
                    idempotency_key,
                    reply: None,
                    projection: projection(saga_id, &next, head, &decision),
                };
                // On a conflict the next turn's head check replays the saga.
                self.inner.ports.log.append(step).await?;
                e.head = head;
                e.saga = next;
            }
            (decision, e.saga.status())
        };
        let turn = Turn {
            reply: decision.reply,
            status,
            appended: decision.events.len(),
        };
        self.schedule(saga_id, decision.effects);
        Ok(turn)
    }

    /// Starts a runner for each effect whose key has none.
    fn schedule(&self, saga_id: SagaId, effects: Vec<Effect>) {
        if self.check_running().is_err() {
            return;
        }
        let mut running = locked(&self.inner.running);
        let mut tasks = locked(&self.inner.tasks);
        // Reap finished runners (their results are `()`).
        while tasks.try_join_next().is_some() {}
        for effect in effects {
            let key = effect.key();
            if running.insert((saga_id, key.clone())) {
                let driver = self.clone();
                tasks.spawn(async move { driver.drive(saga_id, key).await });
            }
        }
    }

    /// The effect `key` of the saga as pending now, or `None` — and then the
    /// runner is released, under the saga's lock, so a turn that makes the
    /// effect pending again (it holds the same lock) starts a new runner.
    async fn claim_pending(&self, saga_id: SagaId, key: &EffectKey) -> Option<Effect> {
        let release = || {
            locked(&self.inner.running).remove(&(saga_id, key.clone()));
        };
        let Ok(entry) = self.entry(saga_id, None).await else {
            release();
            return None;
        };
        let e = match self.lock_fresh(saga_id, &entry).await {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(saga = %saga_id, error = %err, "cannot read the saga; effect runner stops");
                release();
                return None;
            }
        };
        // A terminal saga acts no more (its projection promises that nothing
        // more is appended on its own), whatever messages are undelivered.
        let found = if self.check_running().is_ok() && !e.saga.status().is_terminal() {
            e.saga
                .pending_effects(self.inner.ports.clock.now())
                .into_iter()
                .find(|p| p.key() == *key)
        } else {
            None
        };
        if found.is_none() {
            release();
        }
        found
    }

    /// One effect's runner: attempt, feed the result, until the effect is no
    /// longer pending.
    async fn drive(&self, saga_id: SagaId, key: EffectKey) {
        let poll = self.inner.ports.poll_interval;
        let mut delay = Duration::ZERO;
        let mut failures = 0u32;
        let mut reported: Option<Txid> = None;
        loop {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let Some(mut effect) = self.claim_pending(saga_id, &key).await else {
                if matches!(key, EffectKey::WakeAtHeight(_) | EffectKey::WakeAt) {
                    self.tick(saga_id).await;
                }
                return;
            };
            if let Effect::Broadcast { chain_id, .. } = &effect {
                // C1 and C2 are judged on the tip as it is now.
                self.refresh_tip(chain_id).await;
                match self.claim_pending(saga_id, &key).await {
                    Some(fresh) => effect = fresh,
                    None => return,
                }
            }
            delay = match self.attempt(saga_id, effect, reported).await {
                Attempt::Wait(d) => d,
                Attempt::Input(input) => {
                    let spend = match input.as_ref() {
                        Input::SpendSeen { tx, .. } => Some(tx.txid()),
                        _ => None,
                    };
                    match self.submit(saga_id, None, *input, None).await {
                        Ok(_) => {
                            failures = 0;
                            reported = spend.or(reported);
                            poll
                        }
                        Err(DriverError::Stopped) => return,
                        // Another saga's step took an output this one's
                        // reservation picked: a race, not a failure. The
                        // wallet selects again from what is left, now.
                        Err(DriverError::Append(AppendError::UtxoUnavailable { .. })) => {
                            tracing::debug!(saga = %saga_id, effect = key.to_text(), "an output went to another saga; selecting again");
                            poll
                        }
                        Err(e) => {
                            tracing::warn!(saga = %saga_id, effect = key.to_text(), error = %e, "effect result not recorded");
                            if let DriverError::Rejected(reject) = &e {
                                self.report_failure(
                                    saga_id,
                                    &key,
                                    format!("result refused: {reject}"),
                                )
                                .await;
                            }
                            failures = failures.saturating_add(1);
                            self.backoff(saga_id, failures - 1).await
                        }
                    }
                }
                Attempt::Failed(detail) => {
                    tracing::info!(saga = %saga_id, effect = key.to_text(), %detail, "effect failed");
                    self.report_failure(saga_id, &key, detail).await;
                    failures = failures.saturating_add(1);
                    self.backoff(saga_id, failures - 1).await
                }
            };
        }
    }

    /// Feeds [`Input::Tick`] to a saga whose wake-up is no longer pending.
    /// A wake-up stops being pending when the saga's view of the tips (or
    /// the clock) reaches it — and any turn, of any saga, refreshes the
    /// tips the driver shares between sagas, so the height is often seen
    /// reached before this runner's own attempt could report it. Then the
    /// saga has not yet decided what the height (or time) means: the Tick
    /// makes it decide. Harmless when the wake-up went for another reason
    /// (a Tick appends only what the state and tips call for).
    async fn tick(&self, saga_id: SagaId) {
        if self.check_running().is_err() {
            return;
        }
        let live = self
            .with_saga(saga_id, |s| !s.status().is_terminal())
            .await
            .unwrap_or(false);
        if !live {
            return;
        }
        if let Err(e) = self.submit(saga_id, None, Input::Tick, None).await {
            tracing::debug!(saga = %saga_id, error = %e, "tick after a wake-up not recorded");
        }
    }

    /// Feeds [`Input::EffectFailed`] for `key` if the effect is still
    /// pending (a failure of an effect the saga moved past is no failure).
    async fn report_failure(&self, saga_id: SagaId, key: &EffectKey, detail: String) {
        let now = self.inner.ports.clock.now();
        let pending = self
            .with_saga(saga_id, |s| {
                s.pending_effects(now).iter().any(|p| p.key() == *key)
            })
            .await
            .unwrap_or(false);
        if !pending {
            return;
        }
        let input = Input::EffectFailed {
            effect: key.clone(),
            detail,
        };
        if let Err(e) = self.submit(saga_id, None, input, None).await {
            tracing::warn!(saga = %saga_id, effect = key.to_text(), error = %e, "cannot record the failure");
        }
    }

    /// The policy's pause before retry number `retry` (0-based).
    async fn backoff(&self, saga_id: SagaId, retry: u32) -> Duration {
        self.with_saga(saga_id, |s| s.context().policy.retry.backoff(retry))
            .await
            .unwrap_or(self.inner.ports.poll_interval)
    }

    fn chain(&self, chain_id: &str) -> Option<ChainPorts> {
        self.inner.ports.chains.get(chain_id).cloned()
    }

    /// One attempt of `effect`. `reported` is the spend this runner last
    /// reported (a watch reports each spending transaction once).
    async fn attempt(&self, saga_id: SagaId, effect: Effect, reported: Option<Txid>) -> Attempt {
        let poll = self.inner.ports.poll_interval;
        let Some(Some((terms, role))) = self
            .with_saga(saga_id, |s| s.terms().cloned().map(|t| (t, s.role())))
            .await
        else {
            return Attempt::Wait(poll);
        };
        let no_chain = |chain_id: &str| Attempt::Failed(format!("no chain {chain_id} configured"));
        match effect {
            Effect::SendToPeer(request) => {
                let kind = request.kind();
                let peer = terms.party(role.other()).spiffe_id.clone();
                match self.inner.ports.peer.send(&peer, saga_id, request).await {
                    Ok(PeerReply::NotYet { reason }) => {
                        tracing::debug!(saga = %saga_id, kind = kind.name(), %reason, "peer: not yet");
                        Attempt::Wait(poll.saturating_mul(4))
                    }
                    Ok(reply) => Attempt::input(Input::PeerAnswered {
                        request: kind,
                        reply,
                    }),
                    Err(e) => Attempt::Failed(e.to_string()),
                }
            }
            Effect::BuildReservation { leg } => {
                let chain_id = &terms.leg(leg).chain_id;
                let rate = self
                    .with_saga(saga_id, |s| {
                        s.context()
                            .policy
                            .chain(chain_id)
                            .map_or(0, |c| c.fee_rate_sats_per_kb)
                    })
                    .await
                    .unwrap_or(0);
                match self
                    .inner
                    .ports
                    .wallet
                    .fund_reservation(&terms, leg, rate)
                    .await
                {
                    Ok(funded) => Attempt::input(Input::ReservationFunded {
                        tx: funded.tx,
                        fee: funded.fee,
                        utxo_changes: funded.changes,
                    }),
                    Err(e) => Attempt::Failed(e.to_string()),
                }
            }
            Effect::Broadcast {
                chain_id,
                tx,
                purpose,
            } => {
                let Some(ports) = self.chain(&chain_id) else {
                    return no_chain(&chain_id);
                };
                let txid = tx.txid();
                let ef = match self.ef(&terms, role, &chain_id, tx, purpose).await {
                    Ok(ef) => ef,
                    Err(detail) => return Attempt::Failed(detail),
                };
                match ports.broadcaster.broadcast(&ef).await {
                    Ok(outcome) => Attempt::input(Input::Broadcasted {
                        txid,
                        outcome: map_outcome(outcome),
                    }),
                    Err(BroadcastError::Rejected { code, detail, .. }) => {
                        Attempt::input(Input::Broadcasted {
                            txid,
                            outcome: BroadcastOutcome::Rejected {
                                reason: format!("{code}: {detail}"),
                            },
                        })
                    }
                    // Whether the broadcaster took it is unknown.
                    Err(
                        e @ (BroadcastError::Orphaned { .. }
                        | BroadcastError::Unavailable { .. }
                        | BroadcastError::MalformedResponse { .. }),
                    ) => Attempt::Failed(e.to_string()),
                }
            }
            Effect::WatchConfirmations {
                chain_id,
                txid,
                depth,
                purpose,
            } => {
                let Some(ports) = self.chain(&chain_id) else {
                    return no_chain(&chain_id);
                };
                let inclusion = match ports.broadcaster.status(&txid).await {
                    Ok(Some(status)) => match status.state {
                        TxState::Mined(inclusion) => inclusion,
                        _ => return Attempt::Wait(poll),
                    },
                    Ok(None) => {
                        self.broadcast_again(saga_id, &terms, role, &chain_id, txid, purpose)
                            .await;
                        return Attempt::Wait(poll);
                    }
                    Err(e) => {
                        tracing::debug!(saga = %saga_id, %txid, error = %e, "status unavailable");
                        return Attempt::Wait(poll);
                    }
                };
                let Some(tip) = self.refresh_tip(&chain_id).await else {
                    return Attempt::Wait(poll);
                };
                // A tracker behind the broadcaster has not seen the block yet.
                if tip.0 < inclusion.height || tip.0 - inclusion.height + 1 < depth {
                    return Attempt::Wait(poll);
                }
                let beef = match purpose {
                    TxPurpose::Reservation => {
                        match self.reservation_beef(saga_id, inclusion.merkle_path).await {
                            Some(beef) => Some(beef),
                            None => {
                                return Attempt::Failed(
                                    "cannot build the reservation's Atomic BEEF".into(),
                                )
                            }
                        }
                    }
                    TxPurpose::Refund
                    | TxPurpose::Cancel
                    | TxPurpose::Claim
                    | TxPurpose::CounterClaim => None,
                };
                Attempt::input(Input::TxConfirmed {
                    chain_id,
                    txid,
                    block_height: Height(inclusion.height),
                    tip,
                    beef,
                })
            }
            Effect::WatchSpend {
                chain_id,
                outpoint,
                leg: _,
            } => {
                let Some(ports) = self.chain(&chain_id) else {
                    return no_chain(&chain_id);
                };
                let spender = match ports.spends.spent_by(&outpoint).await {
                    Ok(Some(s)) if Some(s.txid) != reported => s,
                    Ok(_) => return Attempt::Wait(poll),
                    Err(e) => {
                        tracing::debug!(saga = %saga_id, %outpoint, error = %e, "spend watcher unavailable");
                        return Attempt::Wait(poll);
                    }
                };
                match ports.transactions.transaction(&spender.txid).await {
                    Ok(Some(tx))
                        if tx.txid() == spender.txid
                            && usize::try_from(spender.vin)
                                .ok()
                                .and_then(|i| tx.inputs.get(i))
                                .is_some_and(|i| i.prev_out == outpoint) =>
                    {
                        Attempt::input(Input::SpendSeen {
                            chain_id,
                            outpoint,
                            tx,
                        })
                    }
                    Ok(Some(tx)) => {
                        tracing::warn!(saga = %saga_id, %outpoint, spender = %spender.txid, got = %tx.txid(),
                            "the reported spender does not spend the outpoint; ignored");
                        Attempt::Wait(poll)
                    }
                    Ok(None) => Attempt::Wait(poll),
                    Err(e) => {
                        tracing::debug!(saga = %saga_id, spender = %spender.txid, error = %e, "transaction source unavailable");
                        Attempt::Wait(poll)
                    }
                }
            }
            Effect::AskNotary {
                notary,
                terms,
                signatures,
                payment_beef,
                delivery_beef,
            } => {
                let Some(client) = self.inner.ports.notary.clone() else {
                    return Attempt::Failed("no notary configured".into());
                };
                let request = NotaryRequest {
                    notary,
                    terms: *terms,
                    signatures,
                    payment_beef,
                    delivery_beef,
                };
                match client.approve(request).await {
                    Ok(answer) => Attempt::input(Input::Notary(answer)),
                    Err(e) => Attempt::Failed(e.to_string()),
                }
            }
            Effect::WakeAtHeight { chain_id, height } => {
                if !self.inner.ports.chains.contains_key(&chain_id) {
                    return no_chain(&chain_id);
                }
                match self.refresh_tip(&chain_id).await {
                    Some(tip) if tip >= height => Attempt::input(Input::Tick),
                    Some(_) | None => Attempt::Wait(poll),
                }
            }
            Effect::WakeAt { at } => {
                if self.inner.ports.clock.now() >= at {
                    Attempt::input(Input::Tick)
                } else {
                    Attempt::Wait(poll)
                }
            }
        }
    }

    /// Our transaction `tx` as EF: the wallet's outputs for a reservation,
    /// the escrow output for the spends of one.
    async fn ef(
        &self,
        terms: &Terms,
        role: Role,
        chain_id: &str,
        tx: Transaction,
        purpose: TxPurpose,
    ) -> Result<EfTransaction, String> {
        let sources = match purpose {
            TxPurpose::Reservation => self
                .funding_sources(chain_id, &tx)
                .await
                .ok_or("the reservation's inputs are not in the wallet")?,
            TxPurpose::Refund | TxPurpose::Cancel | TxPurpose::CounterClaim => {
                escrow_sources(terms, role.funds(), &tx)
            }
            TxPurpose::Claim => escrow_sources(terms, role.other().funds(), &tx),
        };
        EfTransaction::new(tx, sources).map_err(|e| format!("EF: {e}"))
    }

    /// A watched transaction of ours that the broadcaster does not know (it
    /// dropped it, or lost it): broadcast it again — a claim only while C1
    /// allows it, the seller's reservation only while C2 does. The saga is
    /// not told; the watch sees the result.
    ///
    /// Only a transaction the log records as broadcast (accepted once) is
    /// sent again: one not yet out is the `Broadcast` effect's to send, under
    /// the saga's rules of the moment (a halted saga — attention, a cancel —
    /// or a passed reservation deadline never sends its reservation). A watch
    /// that starts with the broadcast sees "unknown" until it lands; that is
    /// no loss.
    async fn broadcast_again(
        &self,
        saga_id: SagaId,
        terms: &Terms,
        role: Role,
        chain_id: &str,
        txid: Txid,
        purpose: TxPurpose,
    ) {
        let Some(ports) = self.chain(chain_id) else {
            return;
        };
        if purpose == TxPurpose::CounterClaim {
            // Not ours: the saga keeps only its txid.
            return;
        }
        let Some(tip) = self.refresh_tip(chain_id).await else {
            return;
        };
        let Some(policy) = self
            .with_saga(saga_id, |s| s.context().policy.clone())
            .await
        else {
            return;
        };
        let Some(chain) = policy.chain(chain_id) else {
            return;
        };
        let allowed = match purpose {
            // C1: D's tip below T − m (the saga's `claim_deadline`).
            TxPurpose::Claim => {
                let t = terms.leg(role.other().funds()).refund_height.0;
                tip.0 < t.saturating_sub(chain.claim_margin_blocks)
            }
            // C2: the seller's tip at most T_D − m_D − K_D (the saga's `reserve_limit`).
            TxPurpose::Reservation => match role {
                Role::Buyer => true,
                Role::Seller => {
                    let t = terms.leg(Leg::Delivery).refund_height.0;
                    tip.0
                        <= t.saturating_sub(chain.claim_margin_blocks)
                            .saturating_sub(chain.max_confirm_blocks)
                }
            },
            TxPurpose::Refund | TxPurpose::Cancel => true,
            TxPurpose::CounterClaim => false,
        };
        if !allowed {
            return;
        }
        let Ok(events) = self.inner.ports.log.load(&saga_id).await else {
            return;
        };
        if !events.iter().any(|(_, e)| broadcast_txid(e) == Some(txid)) {
            return;
        }
        let Some(tx) = events
            .iter()
            .find_map(|(_, e)| built_tx(e).filter(|t| t.txid() == txid))
            .cloned()
        else {
            return;
        };
        match self.ef(terms, role, chain_id, tx, purpose).await {
            Ok(ef) => {
                tracing::warn!(saga = %saga_id, %txid, purpose = purpose.name(), "the broadcaster lost our transaction; broadcasting it again");
                if let Err(e) = ports.broadcaster.broadcast(&ef).await {
                    tracing::warn!(saga = %saga_id, %txid, error = %e, "broadcasting again failed");
                }
            }
            Err(e) => tracing::warn!(saga = %saga_id, %txid, error = %e, "cannot rebuild the EF"),
        }
    }

    /// Our reservation with its BUMP as Atomic BEEF (BRC-95), the form the
    /// counterparty verifies.
    async fn reservation_beef(&self, saga_id: SagaId, path: MerklePath) -> Option<Vec<u8>> {
        let tx = self
            .with_saga(saga_id, |s| s.own_reservation().cloned())
            .await??;
        let mut beef = Beef::new(BeefVersion::V1);
        beef.add_bump(path);
        let txid = beef.add_transaction(tx);
        beef.to_atomic(&txid).ok().map(|b| b.to_bytes())
    }

    /// The wallet outputs `tx` spends (funding or inventory), in input order.
    async fn funding_sources(&self, chain_id: &str, tx: &Transaction) -> Option<Vec<TxOut>> {
        let mut known = BTreeMap::new();
        for basket in [Basket::Funding, Basket::Inventory] {
            for (u, _) in self.inner.ports.log.utxos(chain_id, basket).await.ok()? {
                known.insert(
                    u.outpoint,
                    TxOut {
                        satoshis: u.satoshis.0,
                        locking_script: u.locking_script,
                    },
                );
            }
        }
        tx.inputs
            .iter()
            .map(|i| known.get(&i.prev_out).cloned())
            .collect()
    }
}

/// The transaction an event records as ours, if it records one.
/// The txid an event records as broadcast (accepted) by us.
fn broadcast_txid(e: &Event) -> Option<Txid> {
    match e {
        Event::ReservationBroadcast { txid }
        | Event::ClaimBroadcast { txid }
        | Event::RefundBroadcast { txid } => Some(*txid),
        _ => None,
    }
}

fn built_tx(e: &Event) -> Option<&Transaction> {
    if let Event::ReservationBuilt { tx, .. }
    | Event::ClaimBuilt { tx }
    | Event::CancelBuilt { tx } = e
    {
        return Some(tx);
    }
    if let Event::RefundCountersigned { refund } = e {
        return Some(refund);
    }
    None
}

/// The escrow output of `leg` as the EF source of every input: our leg
/// spends (refund, cancel, claim) have the escrow output as their only input.
fn escrow_sources(terms: &Terms, leg: Leg, tx: &Transaction) -> Vec<TxOut> {
    tx.inputs
        .iter()
        .map(|_| TxOut {
            satoshis: terms.leg(leg).amount.0,
            locking_script: terms.escrow_script(leg),
        })
        .collect()
}

fn map_outcome(outcome: ArcOutcome) -> BroadcastOutcome {
    if outcome.is_success() {
        return BroadcastOutcome::Accepted;
    }
    let competing = outcome.competing_txs().to_vec();
    if !competing.is_empty() {
        return BroadcastOutcome::DoubleSpend { competing };
    }
    BroadcastOutcome::Rejected {
        reason: format!("{outcome:?}"),
    }
}

/// The projection stored with a step: status, attention, and the saga's
/// next deadlines (its wake-ups).
fn projection(saga_id: SagaId, saga: &Saga, head: u64, decision: &Decision) -> Projection {
    let deadlines = decision
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::WakeAtHeight { chain_id, height } => Some(Deadline::Height {
                chain_id: chain_id.clone(),
                height: *height,
            }),
            Effect::WakeAt { at } => Some(Deadline::Time(*at)),
            _ => None,
        })
        .collect();
    Projection {
        saga_id,
        role: saga.role().to_string(),
        state: saga.status().name().to_string(),
        terminal: saga.status().is_terminal(),
        attention: saga.attention().map(str::to_string),
        head,
        deadlines,
    }
}
