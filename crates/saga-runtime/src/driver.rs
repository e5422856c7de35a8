//! The driver turn of DESIGN.md §2, coded once:
//! input → [`Saga::handle`] (pure) → append the decision in one log step
//! (durable when `append` returns) → [`Saga::apply`] → run the effects →
//! reply.
//!
//! Effects are not queued: after every turn the driver takes the decision's
//! effects (the saga's pending effects) and starts each one that is not
//! already running, one task per `(saga, effect key)`. An effect's task
//! ends by feeding its result back as an input ([`Driver::submit`]), which
//! recomputes what is pending; a failure without a definite answer is fed
//! as [`Input::EffectFailed`] (counted against the policy's retry budget)
//! and the effect is retried after the policy's backoff. Watches and
//! wake-ups poll their chain every `poll_interval` until what they wait for
//! happens or the effect is no longer pending.
//!
//! After a restart, [`Driver::recover`] replays every in-flight saga from
//! the log and starts its pending effects, re-derived from the persisted
//! state and the current tips — never replayed blindly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::ef::EfTransaction;
use bsv_format::{Transaction, TxOut};
use saga_core::saga::{
    BroadcastOutcome, Decision, Effect, EffectKey, Event, Input, PeerReply, Reject, Saga, Status,
    TxPurpose,
};
use saga_core::terms::{Leg, Role, SagaId, Terms};
use saga_core::wallet::Basket;
use saga_core::Height;

use crate::chain::{BroadcastOutcome as ArcOutcome, TxState};
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
    /// How often watches and wake-ups poll their chain.
    pub poll_interval: Duration,
}

struct Entry {
    saga: Saga,
    head: u64,
}

struct Inner {
    ports: DriverPorts,
    sagas: StdMutex<HashMap<SagaId, Arc<tokio::sync::Mutex<Entry>>>>,
    running: StdMutex<HashSet<(SagaId, EffectKey)>>,
    tips: StdMutex<BTreeMap<String, Height>>,
}

/// Runs sagas: one per id, turns serialized per saga.
#[derive(Clone)]
pub struct Driver {
    inner: Arc<Inner>,
}

impl Driver {
    /// A driver over `ports`, with no saga loaded.
    pub fn new(ports: DriverPorts) -> Driver {
        Driver {
            inner: Arc::new(Inner {
                ports,
                sagas: StdMutex::new(HashMap::new()),
                running: StdMutex::new(HashSet::new()),
                tips: StdMutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Asks every chain's tracker for its tip; a chain that does not answer
    /// keeps its last known tip.
    pub async fn refresh_tips(&self) {
        for (chain_id, ports) in &self.inner.ports.chains {
            if let Ok(h) = ports.tracker.current_height().await {
                self.set_tip(chain_id, Height(h));
            }
        }
    }

    fn set_tip(&self, chain_id: &str, height: Height) {
        if let Ok(mut tips) = self.inner.tips.lock() {
            tips.insert(chain_id.to_string(), height);
        }
    }

    fn tips(&self) -> BTreeMap<String, Height> {
        self.inner
            .tips
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Loads every in-flight saga from the log and starts its pending
    /// effects. Returns how many were resumed.
    ///
    /// # Errors
    /// [`DriverError::Read`], [`DriverError::Context`].
    pub async fn recover(&self) -> Result<usize, DriverError> {
        self.refresh_tips().await;
        let ids = self.inner.ports.log.in_flight_sagas().await?;
        for id in &ids {
            let entry = self.entry(*id, None).await?;
            let effects = {
                let mut e = entry.lock().await;
                self.observe(&mut e.saga);
                e.saga.pending_effects(self.inner.ports.clock.now())
            };
            self.schedule(*id, effects);
        }
        Ok(ids.len())
    }

    /// The saga's status, loading it from the log if needed.
    ///
    /// # Errors
    /// [`DriverError::UnknownSaga`], [`DriverError::Read`], [`DriverError::Context`].
    pub async fn status(&self, saga_id: SagaId) -> Result<(Status, Option<String>), DriverError> {
        let entry = self.entry(saga_id, None).await?;
        let e = entry.lock().await;
        Ok((e.saga.status(), e.saga.attention().map(str::to_string)))
    }

    async fn entry(
        &self,
        saga_id: SagaId,
        new_role: Option<Role>,
    ) -> Result<Arc<tokio::sync::Mutex<Entry>>, DriverError> {
        if let Some(e) = self
            .inner
            .sagas
            .lock()
            .ok()
            .and_then(|m| m.get(&saga_id).cloned())
        {
            return Ok(e);
        }
        let stored = self.inner.ports.log.load(&saga_id).await?;
        let role = match (stored.is_empty(), new_role) {
            (false, _) => {
                let projection = self.inner.ports.log.projection(&saga_id).await?;
                match projection.as_ref().map(|p| p.role.as_str()) {
                    Some("buyer") => Role::Buyer,
                    Some("seller") => Role::Seller,
                    _ => return Err(DriverError::UnknownSaga(saga_id)),
                }
            }
            (true, Some(role)) => role,
            (true, None) => return Err(DriverError::UnknownSaga(saga_id)),
        };
        let ctx = self.inner.ports.contexts.context(saga_id, role).await?;
        let events: Vec<Event> = stored.iter().map(|(_, e)| e.clone()).collect();
        let head = stored.last().map_or(0, |(seq, _)| seq + 1);
        let entry = Arc::new(tokio::sync::Mutex::new(Entry {
            saga: Saga::replay(ctx, &events),
            head,
        }));
        let mut map = self
            .inner
            .sagas
            .lock()
            .map_err(|_| DriverError::UnknownSaga(saga_id))?;
        Ok(map.entry(saga_id).or_insert(entry).clone())
    }

    fn observe(&self, saga: &mut Saga) {
        for (chain, tip) in self.tips() {
            saga.observe_tip(&chain, tip);
        }
    }

    /// One driver turn for `saga_id`. `new_role` creates the saga if the log
    /// has none (a buyer's start, a seller's first proposal).
    ///
    /// # Errors
    /// [`DriverError`]: nothing was written.
    pub async fn submit(
        &self,
        saga_id: SagaId,
        new_role: Option<Role>,
        input: Input,
        idempotency_key: Option<String>,
    ) -> Result<Turn, DriverError> {
        let entry = self.entry(saga_id, new_role).await?;
        let (decision, status) = {
            let mut e = entry.lock().await;
            if e.head == 0 && self.tips().is_empty() {
                self.refresh_tips().await;
            }
            self.observe(&mut e.saga);
            let now = self.inner.ports.clock.now();
            let decision = e.saga.handle(input, now)?;
            if !decision.events.is_empty() {
                let mut next = e.saga.clone();
                next.apply(&decision.events);
                let step = Step {
                    saga_id,
                    expected_seq: e.head,
                    events: decision.events.clone(),
                    consumed_tokens: decision.consumed_tokens.clone(),
                    new_hashlocks: decision.new_hashlocks.clone(),
                    utxo_changes: decision.utxo_changes.clone(),
                    idempotency_key,
                    reply: None,
                    projection: projection(
                        saga_id,
                        &next,
                        e.head + decision.events.len() as u64,
                        &decision,
                    ),
                };
                self.inner.ports.log.append(step).await?;
                e.head += decision.events.len() as u64;
                e.saga = next;
            }
            (decision, e.saga.status())
        };
        let turn = Turn {
            reply: decision.reply.clone(),
            status,
            appended: decision.events.len(),
        };
        self.schedule(saga_id, decision.effects);
        Ok(turn)
    }

    fn schedule(&self, saga_id: SagaId, effects: Vec<Effect>) {
        for effect in effects {
            let key = (saga_id, effect.key());
            let fresh = self
                .inner
                .running
                .lock()
                .map(|mut r| r.insert(key.clone()))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let driver = self.clone();
            tokio::spawn(async move {
                let next = driver.run(saga_id, effect).await;
                if let Ok(mut r) = driver.inner.running.lock() {
                    r.remove(&key);
                }
                match next {
                    Next::Input(input) => {
                        if let Err(e) = driver.submit(saga_id, None, *input, None).await {
                            tracing_warn(saga_id, &format!("effect result refused: {e}"));
                            driver.retry_later(saga_id, 0).await;
                        }
                    }
                    Next::RetryAfter(attempt) => driver.retry_later(saga_id, attempt).await,
                    Next::Done => {}
                }
            });
        }
    }

    /// Waits the policy's backoff, then starts whatever is pending again.
    async fn retry_later(&self, saga_id: SagaId, attempt: u32) {
        let Ok(entry) = self.entry(saga_id, None).await else {
            return;
        };
        let delay = self.backoff(attempt);
        tokio::time::sleep(delay).await;
        let effects = {
            let mut e = entry.lock().await;
            self.observe(&mut e.saga);
            e.saga.pending_effects(self.inner.ports.clock.now())
        };
        self.schedule(saga_id, effects);
    }

    /// `poll_interval · 2^attempt`, at most 64 poll intervals.
    fn backoff(&self, attempt: u32) -> Duration {
        self.inner
            .ports
            .poll_interval
            .saturating_mul(1u32.checked_shl(attempt.min(6)).unwrap_or(64))
    }

    async fn still_pending(&self, saga_id: SagaId, key: &EffectKey) -> bool {
        let Ok(entry) = self.entry(saga_id, None).await else {
            return false;
        };
        let mut e = entry.lock().await;
        self.observe(&mut e.saga);
        e.saga
            .pending_effects(self.inner.ports.clock.now())
            .iter()
            .any(|p| &p.key() == key)
    }

    /// Our policy's fee rate on `chain_id`, satoshis per 1000 bytes.
    async fn fee_rate(&self, saga_id: SagaId, chain_id: &str) -> u64 {
        let Ok(entry) = self.entry(saga_id, None).await else {
            return 0;
        };
        let e = entry.lock().await;
        e.saga
            .context()
            .policy
            .chain(chain_id)
            .map_or(0, |c| c.fee_rate_sats_per_kb)
    }

    async fn terms(&self, saga_id: SagaId) -> Option<(Terms, Role)> {
        let entry = self.entry(saga_id, None).await.ok()?;
        let e = entry.lock().await;
        e.saga.terms().cloned().map(|t| (t, e.saga.role()))
    }

    async fn run(&self, saga_id: SagaId, effect: Effect) -> Next {
        let key = effect.key();
        let Some((terms, role)) = self.terms(saga_id).await else {
            return Next::Done;
        };
        let failed = |detail: String| {
            Next::input(Input::EffectFailed {
                effect: key.clone(),
                detail,
            })
        };
        match effect {
            Effect::SendToPeer(request) => {
                let kind = request.kind();
                let peer = terms.party(role.other()).spiffe_id.clone();
                match self.inner.ports.peer.send(&peer, saga_id, request).await {
                    Ok(PeerReply::NotYet { .. }) => Next::RetryAfter(2),
                    Ok(reply) => Next::input(Input::PeerAnswered {
                        request: kind,
                        reply,
                    }),
                    Err(e) => failed(e.to_string()),
                }
            }
            Effect::BuildReservation { leg } => {
                let rate = self.fee_rate(saga_id, &terms.leg(leg).chain_id).await;
                match self
                    .inner
                    .ports
                    .wallet
                    .fund_reservation(&terms, leg, rate)
                    .await
                {
                    Ok(funded) => Next::input(Input::ReservationFunded {
                        tx: funded.tx,
                        fee: funded.fee,
                        utxo_changes: funded.changes,
                    }),
                    Err(e) => failed(e.to_string()),
                }
            }
            Effect::Broadcast {
                chain_id,
                tx,
                purpose,
            } => {
                self.broadcast(&terms, role, &chain_id, tx, purpose, failed)
                    .await
            }
            Effect::WatchConfirmations {
                chain_id,
                txid,
                depth,
                purpose,
            } => {
                let Some(ports) = self.inner.ports.chains.get(&chain_id).cloned() else {
                    return failed(format!("no chain {chain_id} configured"));
                };
                loop {
                    if let Ok(Some(status)) = ports.broadcaster.status(&txid).await {
                        if let TxState::Mined(inclusion) = status.state {
                            if let Ok(tip) = ports.tracker.current_height().await {
                                self.set_tip(&chain_id, Height(tip));
                                let got = tip.saturating_sub(inclusion.height).saturating_add(1);
                                if got >= depth {
                                    let beef = if purpose == TxPurpose::Reservation {
                                        self.reservation_beef(saga_id, inclusion.merkle_path).await
                                    } else {
                                        None
                                    };
                                    return Next::input(Input::TxConfirmed {
                                        chain_id,
                                        txid,
                                        block_height: Height(inclusion.height),
                                        tip: Height(tip),
                                        beef,
                                    });
                                }
                            }
                        }
                    }
                    if !self.wait_still_pending(saga_id, &key).await {
                        return Next::Done;
                    }
                }
            }
            Effect::WatchSpend {
                chain_id,
                outpoint,
                leg: _,
            } => {
                let Some(ports) = self.inner.ports.chains.get(&chain_id).cloned() else {
                    return failed(format!("no chain {chain_id} configured"));
                };
                loop {
                    if let Ok(Some(spender)) = ports.spends.spent_by(&outpoint).await {
                        match ports.transactions.transaction(&spender.txid).await {
                            Ok(Some(tx)) if tx.txid() == spender.txid => {
                                return Next::input(Input::SpendSeen {
                                    chain_id,
                                    outpoint,
                                    tx,
                                })
                            }
                            _ => {}
                        }
                    }
                    if !self.wait_still_pending(saga_id, &key).await {
                        return Next::Done;
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
                    return failed("no notary configured".into());
                };
                let request = NotaryRequest {
                    notary,
                    terms: *terms,
                    signatures,
                    payment_beef,
                    delivery_beef,
                };
                match client.approve(request).await {
                    Ok(answer) => Next::input(Input::Notary(answer)),
                    Err(e) => failed(e.to_string()),
                }
            }
            Effect::WakeAtHeight { chain_id, height } => {
                let Some(ports) = self.inner.ports.chains.get(&chain_id).cloned() else {
                    return failed(format!("no chain {chain_id} configured"));
                };
                loop {
                    if let Ok(tip) = ports.tracker.current_height().await {
                        self.set_tip(&chain_id, Height(tip));
                        if Height(tip) >= height {
                            return Next::input(Input::Tick);
                        }
                    }
                    if !self.wait_still_pending(saga_id, &key).await {
                        return Next::Done;
                    }
                }
            }
            Effect::WakeAt { at } => loop {
                if self.inner.ports.clock.now() >= at {
                    return Next::input(Input::Tick);
                }
                if !self.wait_still_pending(saga_id, &key).await {
                    return Next::Done;
                }
            },
        }
    }

    async fn wait_still_pending(&self, saga_id: SagaId, key: &EffectKey) -> bool {
        tokio::time::sleep(self.inner.ports.poll_interval).await;
        self.still_pending(saga_id, key).await
    }

    async fn reservation_beef(
        &self,
        saga_id: SagaId,
        path: bsv_format::bump::MerklePath,
    ) -> Option<Vec<u8>> {
        let entry = self.entry(saga_id, None).await.ok()?;
        let tx = entry.lock().await.saga.own_reservation()?.clone();
        let mut beef = Beef::new(BeefVersion::V1);
        beef.add_bump(path);
        let txid = beef.add_transaction(tx);
        beef.to_atomic(&txid).ok().map(|b| b.to_bytes())
    }

    #[allow(clippy::too_many_arguments)]
    async fn broadcast(
        &self,
        terms: &Terms,
        role: Role,
        chain_id: &str,
        tx: Transaction,
        purpose: TxPurpose,
        failed: impl Fn(String) -> Next,
    ) -> Next {
        let Some(ports) = self.inner.ports.chains.get(chain_id).cloned() else {
            return failed(format!("no chain {chain_id} configured"));
        };
        let sources = match purpose {
            TxPurpose::Reservation => match self.funding_sources(chain_id, &tx).await {
                Some(s) => s,
                None => return failed("the reservation's inputs are not in the wallet".into()),
            },
            TxPurpose::Refund | TxPurpose::Cancel | TxPurpose::Claim | TxPurpose::CounterClaim => {
                let leg = match purpose {
                    TxPurpose::Claim => role.other().funds(),
                    _ => role.funds(),
                };
                escrow_sources(terms, leg, &tx)
            }
        };
        let ef = match EfTransaction::new(tx.clone(), sources) {
            Ok(ef) => ef,
            Err(e) => return failed(format!("EF: {e}")),
        };
        let txid = tx.txid();
        match ports.broadcaster.broadcast(&ef).await {
            Ok(outcome) => Next::input(Input::Broadcasted {
                txid,
                outcome: map_outcome(outcome),
            }),
            Err(e) if e.is_transient() => failed(e.to_string()),
            Err(e) => Next::input(Input::Broadcasted {
                txid,
                outcome: BroadcastOutcome::Rejected {
                    reason: e.to_string(),
                },
            }),
        }
    }

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

/// The escrow output of `leg` as the EF source of input 0; other inputs
/// (none in our own leg spends) have none.
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

impl Next {
    fn input(input: Input) -> Next {
        Next::Input(Box::new(input))
    }
}

enum Next {
    Input(Box<Input>),
    RetryAfter(u32),
    Done,
}

fn tracing_warn(saga_id: SagaId, msg: &str) {
    tracing::warn!(saga = %saga_id, "{msg}");
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
