//! The saga state machine of one party (DESIGN.md §3.3), pure.
//!
//! [`Saga::handle`] takes one [`Input`] and the current UTC time and returns
//! a [`Decision`] — the events to append, the tokens they consume, the new
//! hashlocks and wallet changes to commit with them, the effects pending
//! afterwards, and the reply to a peer — or a [`Reject`] that leaves the
//! state unchanged. Nothing here reads a clock or a chain: chain tips are
//! set with [`Saga::observe_tip`] (they are not events: they are re-read
//! after a restart), the time is an argument, and the only secrets are the
//! saga's keys and the buyer's preimage, given at construction.
//!
//! The driver's turn (DESIGN.md §2): `handle` → append the decision in one
//! store transaction → flush → [`Saga::apply`] its events → run the effects →
//! reply. Effects are not a queue: [`Saga::pending_effects`] derives them
//! from the state, the tips and the time, so the list the live path returns
//! in a decision is exactly what a restarted gateway computes from the
//! replayed log ([`Saga::replay`]). Each effect runs until the input it leads
//! to changes the state so that it is no longer pending.
//!
//! # Rules that keep an honest party safe
//! - Reservations: the buyer (who holds `s`) first; the seller only after it
//!   verified the buyer's reservation, and only while chain D's tip is at
//!   most `T_D − m_D − K_D` (C2). Nobody broadcasts a reservation before its
//!   refund carries both signatures.
//! - The buyer broadcasts its claim only while D's tip is below
//!   `T_D − m_D` (C1), on every attempt; a claim not broadcast in time is
//!   abandoned for good ([`Event::ClaimAbandoned`]).
//! - The seller claims P as soon as it knows `s` (from `Execute` or from the
//!   chain) while P's tip is below `T_P − m_P`, whatever else is going on
//!   (cancel, attention, a notary's veto).
//! - A refund is broadcast once final (tip ≥ `T`), never while a claim of
//!   that reservation has been seen; the saga is `Refunded` only when the
//!   refund is confirmed.
//! - Cooperative cancel in the order of DESIGN.md §3.1: the buyer signs the
//!   seller's cancel only while it has not built its claim (a built claim
//!   may be on its way), and never claims afterwards; the seller signs the buyer's cancel only once its
//!   own reservation was never broadcast or is back.
//! - An effect failing without a definite answer counts against the
//!   policy's retry budget; when spent the saga raises `attention`, which
//!   stops progress (new messages, reservations, approvals) but never the
//!   effects that protect our funds (refunds, claims with a known `s`,
//!   cancels, watches). which keep being retried.
//!
//! # Layout
//! - [`event`]: [`Event`] and the small enums it carries.
//! - [`io`]: [`Input`], [`PeerMessage`], [`PeerRequest`], [`PeerReply`],
//!   [`Effect`], [`EffectKey`], [`Decision`], [`Reject`].
//! - `facts`: the fold of events ([`Saga::apply`]) and [`Status`].
//! - `decide`: one function per input; `peer`: the counterparty's messages
//!   and the answers to ours.
//! - `progress`: decisions the state and the tips make by themselves
//!   (deadlines, grants, claims) and [`Saga::pending_effects`].

mod decide;
pub mod event;
mod facts;
pub mod io;
mod peer;
mod progress;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bsv_format::keys::{PrivateKey, PublicKey};

pub use event::{CancelOrigin, Event, MessageKind, Resolution};
pub use facts::Status;
pub use io::{
    BroadcastOutcome, Decision, Effect, EffectKey, Input, NotaryAnswer, PeerMessage, PeerReply,
    PeerRequest, Reject, TxPurpose,
};

use crate::policy::Policy;
use crate::terms::{Role, Terms};
use crate::units::{Height, UnixTime};

/// The saga's private keys and, for the buyer, the preimage `s`. Kept in
/// the store's `secrets` tree, never in events, never printed.
#[derive(Clone)]
pub struct SagaKeys {
    /// Signs the terms and the tokens we issue.
    pub saga_key: PrivateKey,
    /// Our key in the payment leg's escrow script.
    pub payment_escrow_key: PrivateKey,
    /// Our key in the delivery leg's escrow script.
    pub delivery_escrow_key: PrivateKey,
    /// `s`, 32 bytes (buyer only; the seller learns it from a claim).
    pub preimage: Option<[u8; 32]>,
}

impl fmt::Debug for SagaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SagaKeys { .. }")
    }
}

/// What a saga needs besides its events: who we are, our keys and our policy.
#[derive(Debug, Clone)]
pub struct SagaContext {
    /// Our role in this saga.
    pub role: Role,
    /// Our gateway's SPIFFE ID.
    pub own_spiffe_id: String,
    /// Our keys (and `s` for the buyer).
    pub keys: SagaKeys,
    /// Our policy (the file the terms' policy id names, for the buyer).
    pub policy: Arc<Policy>,
}

/// What a saga's log says without its keys or tips: our role, the status
/// and the attention reason (for projections rebuilt by a store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Our role.
    pub role: Role,
    /// The status the events establish.
    pub status: Status,
    /// Why the saga needs an operator, if it does.
    pub attention: Option<String>,
}

/// Summarizes a saga's log; `None` when it has no `TermsProposed` (not a
/// saga log, or an empty one).
pub fn summarize(events: &[Event]) -> Option<Summary> {
    let role = events.iter().find_map(|e| match e {
        Event::TermsProposed { role, .. } => Some(*role),
        _ => None,
    })?;
    let mut facts = facts::Facts::default();
    for e in events {
        facts.apply(e);
    }
    Some(Summary {
        role,
        status: facts.status(role),
        attention: facts.attention.clone(),
    })
}

/// One party's saga: its context, the fold of its events, and the chain tips
/// it last observed.
#[derive(Debug, Clone)]
pub struct Saga {
    ctx: SagaContext,
    own_public: OwnPublicKeys,
    facts: facts::Facts,
    tips: BTreeMap<String, Height>,
}

/// The public halves of our keys (what the terms must name).
#[derive(Debug, Clone)]
struct OwnPublicKeys {
    saga_key: PublicKey,
    payment_escrow_key: PublicKey,
    delivery_escrow_key: PublicKey,
}

impl Saga {
    /// A saga with no events yet.
    pub fn new(ctx: SagaContext) -> Saga {
        let own_public = OwnPublicKeys {
            saga_key: ctx.keys.saga_key.public_key(),
            payment_escrow_key: ctx.keys.payment_escrow_key.public_key(),
            delivery_escrow_key: ctx.keys.delivery_escrow_key.public_key(),
        };
        Saga {
            ctx,
            own_public,
            facts: facts::Facts::default(),
            tips: BTreeMap::new(),
        }
    }

    /// The saga whose log is `events` (in sequence order).
    pub fn replay(ctx: SagaContext, events: &[Event]) -> Saga {
        let mut saga = Saga::new(ctx);
        saga.apply(events);
        saga
    }

    /// Folds appended events into the state. Applying an event that a
    /// decision returned is the only way the state changes.
    pub fn apply(&mut self, events: &[Event]) {
        for e in events {
            self.facts.apply(e);
        }
    }

    /// Records the tip of `chain_id` as our headers service reports it.
    /// Tips are not events: after a restart the runtime observes them again.
    pub fn observe_tip(&mut self, chain_id: &str, height: Height) {
        self.tips.insert(chain_id.to_string(), height);
    }

    /// The last observed tip of `chain_id`.
    pub fn tip(&self, chain_id: &str) -> Option<Height> {
        self.tips.get(chain_id).copied()
    }

    /// Who we are, our keys and our policy.
    pub fn context(&self) -> &SagaContext {
        &self.ctx
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.ctx.role
    }

    /// The terms, once proposed.
    pub fn terms(&self) -> Option<&Terms> {
        self.facts.terms.as_deref()
    }

    /// Where the saga stands.
    pub fn status(&self) -> Status {
        self.facts.status(self.ctx.role)
    }

    /// Our reservation, once built (signed).
    pub fn own_reservation(&self) -> Option<&bsv_format::Transaction> {
        self.facts.own.reservation.as_ref()
    }

    /// Why the saga needs an operator, if it does.
    pub fn attention(&self) -> Option<&str> {
        self.facts.attention.as_deref()
    }

    /// Decides what `input` means now. The state is not changed: append the
    /// decision, then [`Saga::apply`] its events.
    ///
    /// # Errors
    /// A [`Reject`] naming why the input is not accepted now; nothing is to
    /// be written.
    pub fn handle(&self, input: Input, now: UnixTime) -> Result<Decision, Reject> {
        let mut decision = Decision::default();
        let mut next = self.clone();
        // What the time and tips decided since the last input comes first,
        // so the input (and its reply) is judged against the state as it
        // stands now; a duplicate of it then meets the same state.
        decision.events = next.catch_up(now, &mut decision.utxo_changes);
        let events = decide::decide(&next, input, now, &mut decision)?;
        next.apply(&events);
        decision.events.extend(events);
        let more = next.catch_up(now, &mut decision.utxo_changes);
        decision.events.extend(more);
        decision.effects = next.pending_effects(now);
        Ok(decision)
    }

    /// Applies the decisions the state makes by itself (grants, claims,
    /// deadlines) until nothing more follows, and returns their events.
    /// Each rule fires at most once per saga, so the loop ends; the bound is
    /// a guard against a rule that would not.
    fn catch_up(
        &mut self,
        now: UnixTime,
        changes: &mut Vec<crate::wallet::UtxoChange>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..32 {
            let more = progress::progress(self, now, changes);
            if more.is_empty() {
                break;
            }
            self.apply(&more);
            events.extend(more);
        }
        events
    }

    /// The effects pending in the current state at `now` with the observed
    /// tips: what the live path returned in its last decision, and what a
    /// restarted gateway must run.
    pub fn pending_effects(&self, now: UnixTime) -> Vec<Effect> {
        progress::pending_effects(self, now)
    }
}
