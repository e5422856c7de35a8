//! One function per input: what it means in the current state.

use bsv_format::hash::sha256;
use bsv_format::script::interpreter::VerifyFlags;
use bsv_format::{Outpoint, Transaction, Txid};

use super::event::{CancelOrigin, Event, Resolution};
use super::io::{BroadcastOutcome, Decision, EffectKey, Input, NotaryAnswer, PeerReply, Reject};
use super::peer::{answered, cancel_refusal, peer};
use super::Saga;
use crate::legs::{self, fee_for_size, MAX_LEG_SPEND_BYTES};
use crate::terms::{CheckContext, Leg, PartyTerms, Role, Terms, TermsError, TermsSignature};
use crate::units::{Height, Satoshis, UnixTime};
use crate::wallet::UtxoChange;

/// The flags our own leg transactions are checked with before we rely on a
/// signature: the node's standard post-Chronicle rules plus MINIMALIF (our
/// transactions satisfy every strict rule).
pub(crate) fn leg_flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle() | VerifyFlags::MINIMALIF
}

/// How far above our own fee for a one-input leg spend we accept the
/// counterparty's fee on a refund or cancel it asks us to sign: policies of
/// two organisations may set different fee rates; ten times ours bounds what
/// a lying funder can burn of its own output, nothing of ours.
const COUNTER_FEE_FACTOR: u64 = 10;

impl Saga {
    pub(crate) fn own_leg(&self) -> Leg {
        self.ctx.role.funds()
    }

    pub(crate) fn counter_leg(&self) -> Leg {
        self.ctx.role.other().funds()
    }

    pub(crate) fn counterparty<'a>(&self, terms: &'a Terms) -> &'a PartyTerms {
        terms.party(self.ctx.role.other())
    }

    /// Our fee for a one-input spend of an escrow output on `leg`'s chain.
    pub(crate) fn spend_fee(&self, terms: &Terms, leg: Leg) -> Satoshis {
        let rate = self
            .ctx
            .policy
            .chain(&terms.leg(leg).chain_id)
            .map_or(0, |c| c.fee_rate_sats_per_kb);
        fee_for_size(MAX_LEG_SPEND_BYTES, rate)
    }

    pub(super) fn counter_max_fee(&self, terms: &Terms, leg: Leg) -> Satoshis {
        let rate = self
            .ctx
            .policy
            .chain(&terms.leg(leg).chain_id)
            .map_or(0, |c| c.fee_rate_sats_per_kb);
        let ours = fee_for_size(MAX_LEG_SPEND_BYTES, rate.saturating_mul(COUNTER_FEE_FACTOR));
        Satoshis(ours.0.max(1_000))
    }

    pub(crate) fn escrow_key(&self, leg: Leg) -> &bsv_format::keys::PrivateKey {
        match leg {
            Leg::Payment => &self.ctx.keys.payment_escrow_key,
            Leg::Delivery => &self.ctx.keys.delivery_escrow_key,
        }
    }

    /// The unsigned refund of our reservation.
    pub(crate) fn unsigned_refund(&self, terms: &Terms) -> Option<Transaction> {
        let escrow = self.facts.own.escrow()?;
        legs::build_refund(
            terms,
            self.own_leg(),
            escrow,
            self.spend_fee(terms, self.own_leg()),
        )
        .ok()
    }

    /// The unsigned cancel of our reservation.
    pub(crate) fn unsigned_cancel(&self, terms: &Terms) -> Option<Transaction> {
        let escrow = self.facts.own.escrow()?;
        legs::build_cancel(
            terms,
            self.own_leg(),
            escrow,
            self.spend_fee(terms, self.own_leg()),
        )
        .ok()
    }

    pub(crate) fn status_name(&self) -> &'static str {
        self.status().name()
    }

    pub(super) fn wrong_state(&self, input: &'static str) -> Reject {
        Reject::WrongState {
            state: self.status_name(),
            input,
        }
    }

    pub(super) fn agreed_terms(&self, input: &'static str) -> Result<&Terms, Reject> {
        match self.facts.terms.as_deref() {
            Some(t) if self.facts.agreed() => Ok(t),
            _ => Err(self.wrong_state(input)),
        }
    }

    fn check_context<'a>(
        &'a self,
        peer: &'a str,
        now: UnixTime,
        terms: &Terms,
        exposure: Satoshis,
    ) -> Result<CheckContext<'a>, Reject> {
        let tip = |chain: &str| {
            self.tip(chain).ok_or_else(|| Reject::Build {
                what: "terms check",
                detail: format!("tip of chain {chain} unknown"),
            })
        };
        Ok(CheckContext {
            now,
            payment_tip: tip(&terms.payment.chain_id)?,
            delivery_tip: tip(&terms.delivery.chain_id)?,
            own_spiffe_id: &self.ctx.own_spiffe_id,
            peer_spiffe_id: peer,
            own_saga_key: &self.own_public.saga_key,
            own_payment_escrow_key: &self.own_public.payment_escrow_key,
            own_delivery_escrow_key: &self.own_public.delivery_escrow_key,
            exposure,
        })
    }
}

fn terms_reject(e: TermsError) -> Reject {
    match e {
        TermsError::Denied(d) => Reject::PolicyDenied(d),
        other => Reject::Terms(other),
    }
}

pub(super) fn build_err(what: &'static str, e: impl std::fmt::Display) -> Reject {
    Reject::Build {
        what,
        detail: e.to_string(),
    }
}

/// The events `input` causes (before the progress rules run). Fills the
/// decision's side channels (tokens, hashlocks, wallet changes, reply).
pub(super) fn decide(
    saga: &Saga,
    input: Input,
    now: UnixTime,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    if saga.facts.abandoned.is_some() {
        return match input {
            Input::Tick => Ok(Vec::new()),
            _ => Err(saga.wrong_state("any input")),
        };
    }
    match input {
        Input::Start { terms, exposure } => start(saga, *terms, exposure, now, d),
        Input::Proposal {
            caller,
            terms,
            buyer_signature,
            exposure,
        } => proposal(saga, &caller, *terms, buyer_signature, exposure, now, d),
        Input::Peer { caller, message } => peer(saga, &caller, message, now, d),
        Input::PeerAnswered { request, reply } => answered(saga, request, reply),
        Input::ReservationFunded {
            tx,
            fee,
            utxo_changes,
        } => funded(saga, tx, fee, utxo_changes, d),
        Input::Broadcasted { txid, outcome } => broadcasted(saga, txid, outcome, d),
        Input::TxConfirmed {
            chain_id: _,
            txid,
            block_height,
            tip,
            beef,
        } => confirmed(saga, txid, block_height, tip, beef, d),
        Input::SpendSeen { outpoint, tx, .. } => spend_seen(saga, outpoint, &tx),
        Input::Notary(answer) => notary(saga, answer),
        Input::Tick => Ok(Vec::new()),
        Input::CancelRequested { reason: _ } => operator_cancel(saga),
        Input::Resolve(resolution) => resolve(saga, resolution),
        Input::EffectFailed { effect, detail } => effect_failed(saga, effect, detail),
        Input::PeerStatus { known, detail } => peer_status(saga, known, &detail),
    }
}

// ---------------------------------------------------------------------------
// Step 0
// ---------------------------------------------------------------------------

fn start(
    saga: &Saga,
    terms: Terms,
    exposure: Satoshis,
    now: UnixTime,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    if saga.ctx.role != Role::Buyer {
        return Err(saga.wrong_state("start (only the buyer starts a swap)"));
    }
    if let Some(existing) = saga.facts.terms.as_deref() {
        // A retried start with the same terms is the same request.
        return if existing == &terms {
            Ok(Vec::new())
        } else {
            Err(saga.wrong_state("start with other terms"))
        };
    }
    let preimage = saga.ctx.keys.preimage.ok_or_else(|| Reject::Build {
        what: "terms",
        detail: "the buyer's saga has no preimage".into(),
    })?;
    if !crate::constant_time_eq(&sha256(&preimage), &terms.hash_lock) {
        return Err(Reject::Build {
            what: "terms",
            detail: "the hashlock is not SHA256 of the saga's preimage".into(),
        });
    }
    let ctx = saga.check_context(&terms.seller.spiffe_id, now, &terms, exposure)?;
    terms
        .check_against(&saga.ctx.policy, Role::Buyer, &ctx)
        .map_err(terms_reject)?;
    let buyer_signature = terms
        .sign(Role::Buyer, &saga.ctx.keys.saga_key)
        .map_err(terms_reject)?;
    d.new_hashlocks.push(terms.hash_lock);
    Ok(vec![Event::TermsProposed {
        role: Role::Buyer,
        terms: Box::new(terms),
        buyer_signature,
    }])
}

#[allow(clippy::too_many_arguments)]
fn proposal(
    saga: &Saga,
    caller: &str,
    terms: Terms,
    buyer_signature: TermsSignature,
    exposure: Satoshis,
    now: UnixTime,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    if saga.ctx.role != Role::Seller {
        return Err(saga.wrong_state("proposal (only a seller receives one)"));
    }
    // Who calls comes first: a replayed proposal (terms and signature are
    // no secret) from another gateway gets neither our signature nor the
    // saga's state.
    let buyer = saga
        .facts
        .terms
        .as_deref()
        .map_or(terms.buyer.spiffe_id.as_str(), |t| {
            t.buyer.spiffe_id.as_str()
        });
    if caller != buyer {
        return Err(Reject::NotAParty {
            caller: caller.to_string(),
        });
    }
    if let Some(existing) = saga.facts.terms.as_deref() {
        // The same proposal again (a retried call): the same answer.
        if existing != &terms || saga.facts.buyer_signature.as_ref() != Some(&buyer_signature) {
            return Err(saga.wrong_state("a second, different proposal"));
        }
        d.reply = Some(match (&saga.facts.seller_signature, &saga.facts.rejected) {
            (_, Some(reason)) => PeerReply::Refused {
                reason: reason.clone(),
            },
            (Some(sig), None) => PeerReply::Accepted {
                seller_signature: sig.clone(),
            },
            (None, None) => return Err(saga.wrong_state("proposal")),
        });
        return Ok(Vec::new());
    }
    terms.validate().map_err(terms_reject)?;
    terms
        .verify_signature(Role::Buyer, &buyer_signature)
        .map_err(terms_reject)?;
    let proposed = Event::TermsProposed {
        role: Role::Seller,
        terms: Box::new(terms.clone()),
        buyer_signature,
    };
    let ctx = saga.check_context(caller, now, &terms, exposure)?;
    match terms.check_against(&saga.ctx.policy, Role::Seller, &ctx) {
        Ok(()) => {
            let seller_signature = terms
                .sign(Role::Seller, &saga.ctx.keys.saga_key)
                .map_err(terms_reject)?;
            d.new_hashlocks.push(terms.hash_lock);
            d.reply = Some(PeerReply::Accepted {
                seller_signature: seller_signature.clone(),
            });
            Ok(vec![proposed, Event::TermsAgreed { seller_signature }])
        }
        Err(TermsError::Denied(denial)) => {
            let reason = format!("policy denies: {denial}");
            d.reply = Some(PeerReply::Refused {
                reason: reason.clone(),
            });
            Ok(vec![proposed, Event::TermsRejected { reason }])
        }
        Err(other) => Err(Reject::Terms(other)),
    }
}

// ---------------------------------------------------------------------------
// Wallet, broadcaster, chain
// ---------------------------------------------------------------------------

/// Releases the inputs of our reservation (it will never be broadcast).
pub(crate) fn release_inputs(saga: &Saga, terms: &Terms, d: &mut Decision) {
    release_into(saga, terms, &mut d.utxo_changes);
}

pub(crate) fn release_into(saga: &Saga, terms: &Terms, changes: &mut Vec<UtxoChange>) {
    if let Some(tx) = &saga.facts.own.reservation {
        changes.extend(crate::wallet::changes_when_abandoned(
            &terms.leg(saga.own_leg()).chain_id,
            terms.saga_id,
            tx,
        ));
    }
}

/// Output 0 of `tx` (a claim or refund paying us) into the `received`
/// basket of `leg`'s chain.
fn receive(terms: &Terms, leg: Leg, tx: &Transaction, changes: &mut Vec<UtxoChange>) {
    if let Some(out) = tx.outputs.first() {
        changes.push(UtxoChange::Add(crate::wallet::Utxo {
            chain_id: terms.leg(leg).chain_id.clone(),
            basket: crate::wallet::Basket::Received,
            outpoint: Outpoint::new(tx.txid(), 0),
            satoshis: Satoshis(out.satoshis),
            locking_script: out.locking_script.clone(),
        }));
    }
}

/// Our escrow output is spent by `txid` (a refund, a cancel or the
/// counterparty's claim).
fn escrow_spent(saga: &Saga, terms: &Terms, txid: Txid, changes: &mut Vec<UtxoChange>) {
    if let Some(escrow) = saga.facts.own.escrow() {
        changes.push(UtxoChange::Spend {
            chain_id: terms.leg(saga.own_leg()).chain_id.clone(),
            outpoint: escrow,
            spent_by: txid,
            saga_id: Some(terms.saga_id),
        });
    }
}

fn funded(
    saga: &Saga,
    tx: Transaction,
    fee: Satoshis,
    utxo_changes: Vec<UtxoChange>,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let terms = saga.agreed_terms("reservation_funded")?;
    if saga.facts.own.reservation.is_some() {
        return Err(saga.wrong_state("reservation_funded (already built)"));
    }
    // A funding that arrives once the reservation is given up (here: by
    // the deadline rule `handle` applied just before) is not needed: taken
    // as a no-op, its wallet changes dropped. Refusing it threw away the
    // give-up with it, so a saga whose wake-up passed while it was down
    // funded, was refused and funded again, never recording the deadline.
    if saga.facts.own.abandoned.is_some() {
        return Ok(Vec::new());
    }
    legs::check_reservation_output(&tx, 0, terms, saga.own_leg())
        .map_err(|e| build_err("reservation", e))?;
    d.utxo_changes.extend(utxo_changes);
    Ok(vec![Event::ReservationBuilt { tx, fee }])
}

fn broadcasted(
    saga: &Saga,
    txid: Txid,
    outcome: BroadcastOutcome,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let terms = saga.agreed_terms("broadcasted")?;
    let own = &saga.facts.own;
    let counter = &saga.facts.counter;
    let is = |tx: &Option<Transaction>| tx.as_ref().is_some_and(|t| t.txid() == txid);
    if is(&own.reservation) {
        return Ok(match outcome {
            BroadcastOutcome::Accepted if own.broadcast.is_none() => {
                mark_broadcast(saga, terms, &mut d.utxo_changes);
                vec![Event::ReservationBroadcast { txid }]
            }
            BroadcastOutcome::Accepted => Vec::new(),
            // A refusal is no proof that the reservation is not on chain:
            // an earlier attempt whose answer was lost may have been mined,
            // and a node then answers "missing inputs" (it spent them
            // itself). Giving it up here released its inputs, stopped the
            // watches and let the seller sign the buyer's cancel as if its
            // leg never left, while the escrow sat on chain for the holder
            // of `s`. It counts against the retry budget instead; only the
            // refund height passing unseen gives a countersigned
            // reservation up (`progress`).
            BroadcastOutcome::Rejected { reason }
                if own.broadcast.is_none() && own.abandoned.is_none() =>
            {
                failure(
                    saga,
                    EffectKey::Broadcast(super::io::TxPurpose::Reservation),
                    format!("the chain rejected our reservation: {reason}"),
                )
            }
            BroadcastOutcome::Rejected { .. } => Vec::new(),
            BroadcastOutcome::DoubleSpend { competing } => attention(
                saga,
                format!("our reservation {txid} is double-spent by {competing:?}"),
            ),
        });
    }
    if is(&own.refund) || is(&own.cancel_tx) {
        return Ok(match outcome {
            BroadcastOutcome::Accepted if own.refund_broadcast.is_none() => {
                vec![Event::RefundBroadcast { txid }]
            }
            BroadcastOutcome::Accepted => Vec::new(),
            // The escrow is spent by something else (a claim: the spend
            // watcher will say), or the refund is not final yet.
            BroadcastOutcome::Rejected { reason } => failure(
                saga,
                EffectKey::Broadcast(purpose_of_refund(saga, txid)),
                reason,
            ),
            BroadcastOutcome::DoubleSpend { competing } => failure(
                saga,
                EffectKey::Broadcast(purpose_of_refund(saga, txid)),
                format!("our escrow is spent by {competing:?}"),
            ),
        });
    }
    if is(&counter.claim) {
        return Ok(match outcome {
            BroadcastOutcome::Accepted if counter.claim_broadcast.is_none() => {
                vec![Event::ClaimBroadcast { txid }]
            }
            BroadcastOutcome::Accepted => Vec::new(),
            BroadcastOutcome::Rejected { reason } => attention(
                saga,
                format!("the chain rejected our claim {txid}: {reason}"),
            ),
            BroadcastOutcome::DoubleSpend { competing } => attention(
                saga,
                format!("our claim {txid} lost to {competing:?}: the reservation was refunded"),
            ),
        });
    }
    Err(Reject::Unrelated {
        what: "broadcast result",
        detail: format!("{txid} is none of this saga's transactions"),
    })
}

fn purpose_of_refund(saga: &Saga, txid: Txid) -> super::io::TxPurpose {
    if saga
        .facts
        .own
        .cancel_tx
        .as_ref()
        .is_some_and(|c| c.txid() == txid)
    {
        super::io::TxPurpose::Cancel
    } else {
        super::io::TxPurpose::Refund
    }
}

/// The wallet changes once our reservation is out: inputs spent, change
/// back to `funding`, the escrow output in `escrow` held by the saga.
fn mark_broadcast(saga: &Saga, terms: &Terms, changes: &mut Vec<UtxoChange>) {
    if let Some(tx) = &saga.facts.own.reservation {
        changes.extend(crate::wallet::changes_when_broadcast(
            &terms.leg(saga.own_leg()).chain_id,
            terms.saga_id,
            tx,
        ));
    }
}

fn confirmed(
    saga: &Saga,
    txid: Txid,
    block_height: Height,
    tip: Height,
    beef: Option<Vec<u8>>,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let terms = saga.agreed_terms("tx_confirmed")?;
    let depth = tip.0.saturating_sub(block_height.0).saturating_add(1);
    let own = &saga.facts.own;
    let counter = &saga.facts.counter;
    let own_depth = terms.leg(saga.own_leg()).confirmations.max(1);
    let counter_depth = terms.leg(saga.counter_leg()).confirmations.max(1);
    let mut events = Vec::new();
    if own.reservation.as_ref().is_some_and(|t| t.txid() == txid) {
        if own.broadcast.is_none() {
            mark_broadcast(saga, terms, &mut d.utxo_changes);
            events.push(Event::ReservationBroadcast { txid });
        }
        if own.confirmed.is_none() && depth >= own_depth {
            let beef = beef.ok_or_else(|| Reject::Build {
                what: "reservation confirmation",
                detail: "no BEEF came with it".into(),
            })?;
            events.push(Event::ReservationConfirmed { block_height, beef });
        }
    } else if counter.claim.as_ref().is_some_and(|t| t.txid() == txid) {
        if counter.claim_broadcast.is_none() {
            events.push(Event::ClaimBroadcast { txid });
        }
        if counter.claim_confirmed.is_none() && depth >= counter_depth {
            if let Some(claim) = &counter.claim {
                receive(terms, saga.counter_leg(), claim, &mut d.utxo_changes);
            }
            events.push(Event::ClaimConfirmed { block_height });
        }
    } else if own.counter_claim.as_ref().is_some_and(|c| c.0 == txid) {
        if own.counter_claim_confirmed.is_none() && depth >= own_depth {
            escrow_spent(saga, terms, txid, &mut d.utxo_changes);
            events.push(Event::CounterClaimConfirmed { block_height });
        }
    } else if own.refund_broadcast == Some(txid)
        || own.refund.as_ref().is_some_and(|t| t.txid() == txid)
        || own.cancel_tx.as_ref().is_some_and(|t| t.txid() == txid)
    {
        if own.refund_broadcast.is_none() {
            events.push(Event::RefundBroadcast { txid });
        }
        if own.refund_confirmed.is_none() && depth >= own_depth {
            escrow_spent(saga, terms, txid, &mut d.utxo_changes);
            let paid = [&own.refund, &own.cancel_tx]
                .into_iter()
                .flatten()
                .find(|t| t.txid() == txid);
            if let Some(tx) = paid {
                receive(terms, saga.own_leg(), tx, &mut d.utxo_changes);
            }
            events.push(Event::RefundConfirmed { block_height });
        }
    } else {
        return Err(Reject::Unrelated {
            what: "confirmation",
            detail: format!("{txid} is none of this saga's transactions"),
        });
    }
    Ok(events)
}

fn spend_seen(saga: &Saga, outpoint: Outpoint, tx: &Transaction) -> Result<Vec<Event>, Reject> {
    let terms = saga.agreed_terms("spend_seen")?;
    let txid = tx.txid();
    let own = &saga.facts.own;
    let counter = &saga.facts.counter;
    let mut events = Vec::new();
    if own.escrow() == Some(outpoint) {
        let ours = own.refund.as_ref().is_some_and(|t| t.txid() == txid)
            || own.cancel_tx.as_ref().is_some_and(|t| t.txid() == txid);
        if ours {
            if own.refund_broadcast.is_none() {
                events.push(Event::RefundBroadcast { txid });
            }
        } else if let Some(preimage) = legs::extract_preimage(tx, &outpoint, &terms.hash_lock) {
            if own.counter_claim.as_ref().map(|c| c.0) != Some(txid) {
                events.push(Event::CounterClaimSeen {
                    txid,
                    token_id: None,
                });
            }
            if saga.ctx.role == Role::Seller && saga.facts.preimage_learned.is_none() {
                events.push(Event::PreimageLearned {
                    preimage,
                    claim_txid: txid,
                });
            }
        } else if own.refund_broadcast != Some(txid) && saga.facts.attention.is_none() {
            events.push(Event::AttentionRaised {
                reason: format!("our escrow {outpoint} was spent by {txid}, which is no claim or refund of ours"),
            });
        }
        return Ok(events);
    }
    if counter.escrow() == Some(outpoint) {
        let ours = counter.claim.as_ref().is_some_and(|t| t.txid() == txid);
        if ours {
            if counter.claim_broadcast.is_none() {
                events.push(Event::ClaimBroadcast { txid });
            }
        } else if counter.claim_broadcast.is_some() {
            events.extend(attention(
                saga,
                format!("the counterparty's escrow {outpoint} was spent by {txid} although our claim was broadcast"),
            ));
        } else if counter.claim_abandoned.is_none() {
            events.push(Event::ClaimAbandoned {
                reason: format!(
                    "the counterparty's reservation was spent by {txid} (refund or cancel)"
                ),
            });
        }
        return Ok(events);
    }
    Err(Reject::Unrelated {
        what: "spend",
        detail: format!("{outpoint} is neither escrow of this saga"),
    })
}

fn notary(saga: &Saga, answer: NotaryAnswer) -> Result<Vec<Event>, Reject> {
    saga.agreed_terms("notary answer")?;
    if saga.facts.notary_approval.is_some() || saga.facts.notary_rejection.is_some() {
        return Ok(Vec::new());
    }
    Ok(match answer {
        NotaryAnswer::Approved { signature } => vec![Event::NotaryApproved { signature }],
        NotaryAnswer::Rejected { reason } => vec![
            Event::NotaryRejected { reason },
            Event::CancelRequested {
                origin: CancelOrigin::NotaryRejected,
            },
        ],
    })
}

// ---------------------------------------------------------------------------
// Operators and failures
// ---------------------------------------------------------------------------

fn operator_cancel(saga: &Saga) -> Result<Vec<Event>, Reject> {
    saga.agreed_terms("cancel")?;
    if let Some(reason) = cancel_refusal(saga) {
        return Err(Reject::NotAllowed {
            what: "cancel",
            reason,
        });
    }
    if saga.facts.cancel.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Event::CancelRequested {
        origin: CancelOrigin::Operator,
    }])
}

fn resolve(saga: &Saga, resolution: Resolution) -> Result<Vec<Event>, Reject> {
    if saga.facts.attention.is_none() {
        return Err(saga.wrong_state("resolve (the saga does not need attention)"));
    }
    if resolution == Resolution::Refund {
        if let Some(reason) = cancel_refusal(saga) {
            return Err(Reject::NotAllowed {
                what: "refund resolution",
                reason,
            });
        }
    }
    // An abandoned saga runs nothing more, its refund included: abandoning
    // while our reservation is out and not back would leave it locked for
    // good. The operator chooses `refund` (it goes out at the refund
    // height) or `retry` instead.
    if matches!(resolution, Resolution::Abandon { .. }) {
        let own = &saga.facts.own;
        if let (Some(txid), false) = (own.broadcast, own.settled()) {
            return Err(Reject::NotAllowed {
                what: "abandon",
                reason: format!(
                    "our reservation {txid} is on chain and not back: abandoning would stop its refund; resolve with refund (it goes out at the refund height) or retry"
                ),
            });
        }
    }
    Ok(vec![Event::OperatorResolved { resolution }])
}

/// The counterparty's view after our restart. A saga whose terms it agreed
/// to (it countersigned them, or proposed them) but which it no longer
/// knows means its store was lost, or another gateway answers for its
/// identity: nothing more it says or sends can be relied on, so progress
/// stops for an operator. Refunds, claims with a known `s` and watches
/// still run. Any other answer changes nothing: what we missed reaches us
/// again (messages are resent until answered) or is on the chains.
fn peer_status(saga: &Saga, known: bool, detail: &str) -> Result<Vec<Event>, Reject> {
    if known || !saga.facts.agreed() || saga.status().is_terminal() {
        return Ok(Vec::new());
    }
    Ok(attention(
        saga,
        format!(
            "the counterparty does not know this saga although it agreed to its terms ({detail}): its store may be lost; our refunds still run"
        ),
    ))
}

fn effect_failed(saga: &Saga, effect: EffectKey, detail: String) -> Result<Vec<Event>, Reject> {
    Ok(failure(saga, effect, detail))
}

/// An effect failed once more: count it, and raise attention when the
/// policy's retry budget is spent.
fn failure(saga: &Saga, effect: EffectKey, detail: String) -> Vec<Event> {
    let attempt = saga
        .facts
        .failures
        .get(&effect)
        .copied()
        .unwrap_or(0)
        .saturating_add(1);
    if attempt > saga.ctx.policy.retry.budget && saga.facts.attention.is_some() {
        // The operator has been asked; the runtime keeps retrying the
        // effects that protect our funds at its longest backoff, without
        // growing the log by one event per attempt.
        return Vec::new();
    }
    let mut events = vec![Event::EffectFailed {
        effect: effect.clone(),
        attempt,
        detail: detail.clone(),
    }];
    if attempt >= saga.ctx.policy.retry.budget && saga.facts.attention.is_none() {
        events.push(Event::AttentionRaised {
            reason: format!("{effect:?} failed {attempt} times; last: {detail}"),
        });
    }
    events
}

fn attention(saga: &Saga, reason: String) -> Vec<Event> {
    if saga.facts.attention.is_some() {
        Vec::new()
    } else {
        vec![Event::AttentionRaised { reason }]
    }
}
