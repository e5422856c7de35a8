//! What the state decides by itself as time and chains move (deadlines,
//! grants, claims), and the effects pending in a state.

use std::collections::BTreeMap;

use bsv_format::hash::sha256;
use bsv_format::Outpoint;

use super::decide::release_into;
use super::event::{CancelOrigin, Event, MessageKind};
use super::io::{Effect, EffectKey, PeerRequest, TxPurpose};
use super::Saga;
use crate::legs;
use crate::terms::{Leg, Role, Terms};
use crate::token::{Token, TokenId};
use crate::units::{Height, UnixTime};
use crate::wallet::UtxoChange;

impl Saga {
    /// `T − m` on `leg`'s chain with our policy's claim margin: the first
    /// tip height at which a claim of `leg` may no longer be broadcast (C1).
    pub(crate) fn claim_deadline(&self, terms: &Terms, leg: Leg) -> Height {
        let l = terms.leg(leg);
        let margin = self
            .ctx
            .policy
            .chain(&l.chain_id)
            .map_or(0, |c| c.claim_margin_blocks);
        Height(l.refund_height.0.saturating_sub(margin))
    }

    /// `T_D − m_D − K_D`: the highest tip of chain D at which the seller may
    /// still broadcast its reservation (C2).
    pub(crate) fn reserve_limit(&self, terms: &Terms) -> Height {
        let l = terms.leg(Leg::Delivery);
        let (m, k) = self
            .ctx
            .policy
            .chain(&l.chain_id)
            .map_or((0, 0), |c| (c.claim_margin_blocks, c.max_confirm_blocks));
        Height(l.refund_height.0.saturating_sub(m).saturating_sub(k))
    }

    /// Whether C2 allows the seller to broadcast its reservation now
    /// (always true for the buyer). Unknown tip: no.
    pub(crate) fn may_reserve(&self, terms: &Terms) -> bool {
        match self.ctx.role {
            Role::Buyer => true,
            Role::Seller => self
                .tip(&terms.delivery.chain_id)
                .is_some_and(|tip| tip <= self.reserve_limit(terms)),
        }
    }

    fn notary_ok(&self, terms: &Terms) -> bool {
        terms.notary.is_none() || self.facts.notary_approval.is_some()
    }

    fn preimage(&self) -> Option<[u8; 32]> {
        match self.ctx.role {
            Role::Buyer => self.ctx.keys.preimage,
            Role::Seller => self.facts.preimage_learned,
        }
    }

    fn reservation_deadline_passed(&self, terms: &Terms, now: UnixTime) -> bool {
        now.0 > terms.reservation_deadline.0.saturating_add(self.skew())
    }

    fn skew(&self) -> u64 {
        self.ctx.policy.times.clock_skew_tolerance.as_secs()
    }

    /// The token id we give the token for our reservation at `escrow`:
    /// `SHA256("escrowd/token-id" ‖ saga key ‖ saga id ‖ txid ‖ vout LE)`,
    /// first 16 bytes. Keyed by our saga key, so no one else can predict it,
    /// and fixed per reservation, so one reservation has one token.
    fn token_id(&self, terms: &Terms, escrow: &Outpoint) -> TokenId {
        let mut pre = Vec::with_capacity(16 + 32 + 16 + 32 + 4);
        pre.extend_from_slice(b"escrowd/token-id");
        pre.extend_from_slice(&self.ctx.keys.saga_key.to_bytes());
        pre.extend_from_slice(terms.saga_id.as_bytes());
        pre.extend_from_slice(&escrow.txid.0);
        pre.extend_from_slice(&escrow.vout.to_le_bytes());
        let h = sha256(&pre);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        TokenId(id)
    }
}

/// One decision the state makes by itself, or none. Called until it
/// returns nothing; each rule fires at most once per saga.
pub(super) fn progress(saga: &Saga, now: UnixTime, changes: &mut Vec<UtxoChange>) -> Vec<Event> {
    let f = &saga.facts;
    let Some(terms) = f.terms.as_deref() else {
        return Vec::new();
    };
    if f.abandoned.is_some() || f.rejected.is_some() {
        return Vec::new();
    }
    if !f.agreed() {
        if saga.ctx.role == Role::Buyer && now.0 > terms.quote_expiry.0.saturating_add(saga.skew())
        {
            return vec![Event::TermsRejected {
                reason: format!(
                    "no answer before the quote expired at {}",
                    terms.quote_expiry
                ),
            }];
        }
        return Vec::new();
    }
    let own = &f.own;
    let counter = &f.counter;
    let counter_leg = saga.counter_leg();

    // Our reservation, not broadcast, will never be.
    if own.broadcast.is_none() && own.abandoned.is_none() && f.attention.is_none() {
        let reason = if f.halted() {
            Some("the saga stopped before our reservation was broadcast".to_string())
        } else if saga.reservation_deadline_passed(terms, now) {
            Some(format!(
                "the reservation deadline {} passed",
                terms.reservation_deadline
            ))
        } else if saga.ctx.role == Role::Seller
            && saga
                .tip(&terms.delivery.chain_id)
                .is_some_and(|tip| tip > saga.reserve_limit(terms))
        {
            Some(format!(
                "chain {}'s tip passed {} = T_D − m_D − K_D (C2)",
                terms.delivery.chain_id,
                saga.reserve_limit(terms)
            ))
        } else {
            None
        };
        // Once the refund is countersigned the broadcast may have run with
        // its answer lost (a crash, a time-out): the reservation may be on
        // chain. Then only our refund height ends the wait: the reservation
        // watch reports it if it shows up, and from T our refund is final.
        let maybe_out = own.refund.is_some();
        let own_chain = &terms.leg(saga.own_leg()).chain_id;
        let own_t = terms.leg(saga.own_leg()).refund_height;
        let unseen_by_t = saga.tip(own_chain).is_some_and(|tip| tip >= own_t);
        if let Some(reason) = reason {
            if !maybe_out || unseen_by_t {
                let reason = if maybe_out {
                    format!("{reason}; not seen on chain {own_chain} by {own_t}")
                } else {
                    reason
                };
                release_into(saga, terms, changes);
                return vec![Event::ReservationAbandoned { reason }];
            }
        }
    }

    // Both reservations were not made in time: ask to cancel cooperatively.
    if own.broadcast.is_some()
        && counter.verified.is_none()
        && f.cancel.is_none()
        && saga.reservation_deadline_passed(terms, now)
    {
        return vec![Event::CancelRequested {
            origin: CancelOrigin::ReservationDeadline,
        }];
    }
    if f.misbehaved.is_some() && f.cancel.is_none() && counter.claim_broadcast.is_none() {
        return vec![Event::CancelRequested {
            origin: CancelOrigin::CounterpartyMisbehaved,
        }];
    }

    // Grant the counterparty a token for our reservation.
    if !f.halted()
        && own.token.is_none()
        && own.confirmed.is_some()
        && counter.verified.is_some()
        && saga.notary_ok(terms)
    {
        if let Some(escrow) = own.escrow() {
            let not_after = UnixTime(
                now.0
                    .saturating_add(saga.ctx.policy.times.token_lifetime.as_secs()),
            );
            let issued = Token::issue(
                saga.token_id(terms, &escrow),
                terms.saga_id,
                escrow,
                &saga.ctx.own_spiffe_id,
                &saga.counterparty(terms).spiffe_id,
                not_after,
                &saga.ctx.keys.saga_key,
            );
            if let Ok(token) = issued {
                return vec![Event::TokenGranted { token }];
            }
        }
    }

    // Claim the counterparty's reservation.
    let counter_tip = saga.tip(&terms.leg(counter_leg).chain_id);
    let deadline = saga.claim_deadline(terms, counter_leg);
    if counter.claim.is_none()
        && counter.claim_abandoned.is_none()
        && counter.cancel_signed.is_none()
    {
        let allowed = match saga.ctx.role {
            // The buyer reveals `s`: only with the seller's consent (its
            // token), the notary's approval, and nothing stopping us.
            Role::Buyer => !f.halted() && counter.token.is_some() && saga.notary_ok(terms),
            // The seller who knows `s` claims whatever else is going on.
            Role::Seller => true,
        };
        if let (true, Some((escrow, _, _)), Some(s), Some(tip)) =
            (allowed, &counter.verified, saga.preimage(), counter_tip)
        {
            // C1 binds the buyer, who reveals `s`. The seller has nothing
            // left to lose once `s` is out: it claims even past its margin,
            // racing the buyer's refund (and asks an operator to look).
            if tip < deadline || saga.ctx.role == Role::Seller {
                let built = legs::build_claim(
                    terms,
                    counter_leg,
                    *escrow,
                    saga.spend_fee(terms, counter_leg),
                    legs::beneficiary_payout_script(terms, counter_leg),
                    &s,
                    saga.escrow_key(counter_leg),
                );
                if let Ok(tx) = built {
                    return vec![Event::ClaimBuilt { tx }];
                }
            }
        }
    }
    if saga.ctx.role == Role::Seller
        && f.preimage_learned.is_some()
        && counter.claim_confirmed.is_none()
        && counter.claim_abandoned.is_none()
        && f.attention.is_none()
        && counter_tip.is_some_and(|tip| tip >= deadline)
    {
        return vec![Event::AttentionRaised {
            reason: format!(
                "s was learned but our claim is not confirmed and chain {}'s tip passed {deadline} = T_P − m_P: the buyer's refund may win the race",
                terms.leg(counter_leg).chain_id
            ),
        }];
    }
    // A claim not out before its deadline, or after we promised not to claim,
    // is abandoned for good (C1 applies to every broadcast).
    if counter.claim.is_some()
        && counter.claim_broadcast.is_none()
        && counter.claim_abandoned.is_none()
    {
        let late = saga.ctx.role == Role::Buyer && counter_tip.is_some_and(|tip| tip >= deadline);
        let promised =
            counter.cancel_signed.is_some() || (saga.ctx.role == Role::Buyer && f.cancel.is_some());
        if late || promised {
            return vec![Event::ClaimAbandoned {
                reason: if late {
                    format!(
                        "chain {}'s tip reached {deadline} = T − m before our claim was broadcast (C1)",
                        terms.leg(counter_leg).chain_id
                    )
                } else {
                    "we agreed to cancel: our claim will never be broadcast".into()
                },
            }];
        }
    }
    Vec::new()
}

/// Effects that move the swap forward; an operator's attention stops them.
/// The others protect our funds and always run.
fn is_progress(key: &EffectKey) -> bool {
    match key {
        EffectKey::Send(kind) => match kind {
            MessageKind::Propose
            | MessageKind::SignRefund
            | MessageKind::ReservationReady
            | MessageKind::GrantToken
            | MessageKind::Execute => true,
            MessageKind::SignCancel | MessageKind::Cancel => false,
        },
        EffectKey::BuildReservation | EffectKey::AskNotary => true,
        EffectKey::Broadcast(p) => *p == TxPurpose::Reservation,
        EffectKey::WatchConfirmations(_)
        | EffectKey::WatchSpend(_)
        | EffectKey::WakeAtHeight(_)
        | EffectKey::WakeAt => false,
    }
}

pub(super) fn pending_effects(saga: &Saga, now: UnixTime) -> Vec<Effect> {
    // A terminal saga waits for nothing: its legs are settled. (It still
    // answers peer requests, e.g. a cancel signature, as inputs.)
    if saga.status().is_terminal() {
        return Vec::new();
    }
    let mut out = collect(saga, now);
    if saga.facts.attention.is_some() {
        out.retain(|e| !is_progress(&e.key()));
    }
    out
}

fn collect(saga: &Saga, now: UnixTime) -> Vec<Effect> {
    let f = &saga.facts;
    let Some(terms) = f.terms.as_deref() else {
        return Vec::new();
    };
    if f.abandoned.is_some() || f.rejected.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut wake_heights: BTreeMap<String, Height> = BTreeMap::new();
    let mut wake_time: Option<UnixTime> = None;
    let skew = saga.skew();
    if !f.agreed() {
        if saga.ctx.role == Role::Buyer {
            if let Some(sig) = &f.buyer_signature {
                out.push(Effect::SendToPeer(PeerRequest::Propose {
                    terms: Box::new(terms.clone()),
                    buyer_signature: sig.clone(),
                }));
            }
            out.push(Effect::WakeAt {
                at: UnixTime(terms.quote_expiry.0.saturating_add(skew).saturating_add(1)),
            });
        }
        return out;
    }
    let own = &f.own;
    let counter = &f.counter;
    let own_leg = saga.own_leg();
    let counter_leg = saga.counter_leg();
    let own_chain = terms.leg(own_leg).chain_id.clone();
    let counter_chain = terms.leg(counter_leg).chain_id.clone();
    let halted = f.halted();
    let open = own.abandoned.is_none() && own.broadcast.is_none();

    // -- our reservation
    if own.reservation.is_none() && open && !halted {
        let ready = match saga.ctx.role {
            Role::Buyer => true,
            Role::Seller => counter.verified.is_some() && saga.may_reserve(terms),
        };
        if ready {
            out.push(Effect::BuildReservation { leg: own_leg });
        }
    }
    if own.reservation.is_some() && own.refund.is_none() && open && !halted {
        if let Some(refund) = saga.unsigned_refund(terms) {
            out.push(Effect::SendToPeer(PeerRequest::SignRefund { refund }));
        }
    }
    if let (Some(tx), Some(_)) = (&own.reservation, &own.refund) {
        let late = saga.reservation_deadline_passed(terms, now);
        if open && !halted && !late && saga.may_reserve(terms) {
            out.push(Effect::Broadcast {
                chain_id: own_chain.clone(),
                tx: tx.clone(),
                purpose: TxPurpose::Reservation,
            });
        }
        // Countersigned and not known broadcast: it may be out (the
        // broadcast's answer lost). Watch for it until it is seen or given up.
        if open {
            out.push(Effect::WatchConfirmations {
                chain_id: own_chain.clone(),
                txid: tx.txid(),
                depth: terms.leg(own_leg).confirmations.max(1),
                purpose: TxPurpose::Reservation,
            });
            if halted || late || !saga.may_reserve(terms) {
                add_wake(
                    &mut wake_heights,
                    &own_chain,
                    terms.leg(own_leg).refund_height,
                );
            }
        }
    }
    if open && (own.reservation.is_none() || own.refund.is_none() || own.broadcast.is_none()) {
        wake_time = Some(UnixTime(
            terms
                .reservation_deadline
                .0
                .saturating_add(skew)
                .saturating_add(1),
        ));
        if saga.ctx.role == Role::Seller {
            add_wake(
                &mut wake_heights,
                &terms.delivery.chain_id,
                Height(saga.reserve_limit(terms).0.saturating_add(1)),
            );
        }
    }
    if let (Some(tx), Some(_)) = (&own.reservation, own.broadcast) {
        // "Accepted" is not "mined" (see our claim below): while the
        // reservation is unconfirmed and broadcasting it is still allowed
        // (deadline, C2), broadcast it again; "already known" is success.
        let allowed = own.abandoned.is_none()
            && !halted
            && !saga.reservation_deadline_passed(terms, now)
            && saga.may_reserve(terms);
        if own.confirmed.is_none() && allowed {
            out.push(Effect::Broadcast {
                chain_id: own_chain.clone(),
                tx: tx.clone(),
                purpose: TxPurpose::Reservation,
            });
        }
    }
    if let Some(txid) = own.broadcast {
        if own.confirmed.is_none() {
            out.push(Effect::WatchConfirmations {
                chain_id: own_chain.clone(),
                txid,
                depth: terms.leg(own_leg).confirmations.max(1),
                purpose: TxPurpose::Reservation,
            });
        }
        if counter.verified.is_none() && f.cancel.is_none() {
            wake_time = Some(UnixTime(
                terms
                    .reservation_deadline
                    .0
                    .saturating_add(skew)
                    .saturating_add(1),
            ));
        }
    }
    if let Some((_, beef)) = &own.confirmed {
        if !f.delivered.contains(&MessageKind::ReservationReady) && !halted {
            out.push(Effect::SendToPeer(PeerRequest::ReservationReady {
                beef: beef.clone(),
            }));
        }
    }
    if let (Some(_), Some(escrow)) = (own.broadcast, own.escrow()) {
        if !own.settled() {
            out.push(Effect::WatchSpend {
                chain_id: own_chain.clone(),
                outpoint: escrow,
                leg: own_leg,
            });
        }
    }

    // -- approval and grants
    if let (Some(notary), Some((_, own_beef)), Some((_, _, counter_beef))) =
        (&terms.notary, &own.confirmed, &counter.verified)
    {
        if f.notary_approval.is_none() && f.notary_rejection.is_none() && !halted {
            if let (Some(b), Some(s)) = (&f.buyer_signature, &f.seller_signature) {
                let (payment_beef, delivery_beef) = match own_leg {
                    Leg::Payment => (own_beef.clone(), counter_beef.clone()),
                    Leg::Delivery => (counter_beef.clone(), own_beef.clone()),
                };
                out.push(Effect::AskNotary {
                    notary: notary.clone(),
                    terms: Box::new(terms.clone()),
                    signatures: [b.clone(), s.clone()],
                    payment_beef,
                    delivery_beef,
                });
            }
        }
    }
    if let Some(token) = &own.token {
        if !f.delivered.contains(&MessageKind::GrantToken) && !halted {
            out.push(Effect::SendToPeer(PeerRequest::GrantToken {
                token: token.clone(),
            }));
        }
    }

    // -- the counterparty's leg and our claim
    if let Some((escrow, _, _)) = &counter.verified {
        // A claim given up at its deadline (C1) may have gone out before,
        // its answer lost: the chain tells, so keep watching until we end.
        let maybe_out = counter.claim.is_some()
            && counter.claim_broadcast.is_none()
            && !saga.status().is_terminal();
        if counter.claim_confirmed.is_none() && (counter.claim_abandoned.is_none() || maybe_out) {
            out.push(Effect::WatchSpend {
                chain_id: counter_chain.clone(),
                outpoint: *escrow,
                leg: counter_leg,
            });
        }
    }
    let deadline = saga.claim_deadline(terms, counter_leg);
    let counter_tip = saga.tip(&counter_chain);
    if let Some(claim) = &counter.claim {
        if counter.claim_broadcast.is_none() && counter.claim_abandoned.is_none() {
            if saga.ctx.role == Role::Seller || counter_tip.is_some_and(|tip| tip < deadline) {
                out.push(Effect::Broadcast {
                    chain_id: counter_chain.clone(),
                    tx: claim.clone(),
                    purpose: TxPurpose::Claim,
                });
            }
            add_wake(&mut wake_heights, &counter_chain, deadline);
        }
        if let Some(txid) = counter.claim_broadcast {
            if counter.claim_confirmed.is_none() {
                out.push(Effect::WatchConfirmations {
                    chain_id: counter_chain.clone(),
                    txid,
                    depth: terms.leg(counter_leg).confirmations.max(1),
                    purpose: TxPurpose::Claim,
                });
                // "Accepted" is not "mined": a broadcaster that answered
                // RECEIVED may drop the claim, and `s` is out either way.
                // Broadcast it again ("already known" is success) until it
                // is confirmed — within C1 for the buyer, whose claim must
                // be in before the seller's refund can be; always for the
                // seller, racing the buyer's refund.
                let in_time =
                    saga.ctx.role == Role::Seller || counter_tip.is_some_and(|tip| tip < deadline);
                if in_time && counter.cancel_signed.is_none() {
                    out.push(Effect::Broadcast {
                        chain_id: counter_chain.clone(),
                        tx: claim.clone(),
                        purpose: TxPurpose::Claim,
                    });
                }
            }
            if let Some(token) = &counter.token {
                if !f.delivered.contains(&MessageKind::Execute) {
                    out.push(Effect::SendToPeer(PeerRequest::Execute {
                        token: token.clone(),
                        claim: claim.clone(),
                    }));
                }
            }
        }
    } else if counter.verified.is_some() && counter.claim_abandoned.is_none() && !halted {
        add_wake(&mut wake_heights, &counter_chain, deadline);
    }

    // -- our leg claimed by the counterparty
    if let Some((txid, _)) = &own.counter_claim {
        if own.counter_claim_confirmed.is_none() {
            out.push(Effect::WatchConfirmations {
                chain_id: own_chain.clone(),
                txid: *txid,
                depth: terms.leg(own_leg).confirmations.max(1),
                purpose: TxPurpose::CounterClaim,
            });
        }
    }

    // -- compensation: cancel, then the timed refund
    let escrow_free = own.broadcast.is_some()
        && own.counter_claim.is_none()
        && own.refund_broadcast.is_none()
        && !own.settled();
    if escrow_free && f.cancel.is_some() && own.cancel_tx.is_none() {
        if let Some(cancel) = saga.unsigned_cancel(terms) {
            out.push(Effect::SendToPeer(PeerRequest::SignCancel { cancel }));
        }
    }
    if let (true, Some(cancel)) = (escrow_free, &own.cancel_tx) {
        out.push(Effect::Broadcast {
            chain_id: own_chain.clone(),
            tx: cancel.clone(),
            purpose: TxPurpose::Cancel,
        });
    }
    let t_own = terms.leg(own_leg).refund_height;
    if let (true, Some(refund)) = (escrow_free, &own.refund) {
        if own.cancel_tx.is_none() {
            // Final from block T + 1, i.e. once the tip is at T (C4).
            if saga.tip(&own_chain).is_some_and(|tip| tip >= t_own) {
                out.push(Effect::Broadcast {
                    chain_id: own_chain.clone(),
                    tx: refund.clone(),
                    purpose: TxPurpose::Refund,
                });
            } else {
                add_wake(&mut wake_heights, &own_chain, t_own);
            }
        }
    }
    if let Some(txid) = own.refund_broadcast {
        if own.refund_confirmed.is_none() {
            let purpose = if own.refunded_by_cancel() {
                TxPurpose::Cancel
            } else {
                TxPurpose::Refund
            };
            out.push(Effect::WatchConfirmations {
                chain_id: own_chain.clone(),
                txid,
                depth: terms.leg(own_leg).confirmations.max(1),
                purpose,
            });
            // Likewise our refund or cancel, until it is confirmed: one the
            // network dropped would leave the escrow to the holder of `s`
            // (the buyer may claim D once its own refund of P is in). Not
            // while a claim of the escrow is seen (C4's exception).
            let sent = [&own.refund, &own.cancel_tx]
                .into_iter()
                .flatten()
                .find(|t| t.txid() == txid);
            if let (Some(tx), None) = (sent, &own.counter_claim) {
                out.push(Effect::Broadcast {
                    chain_id: own_chain.clone(),
                    tx: tx.clone(),
                    purpose,
                });
            }
        }
    }
    if let Some(origin) = f.cancel {
        let tell = origin != CancelOrigin::Peer
            && !f.delivered.contains(&MessageKind::Cancel)
            && !saga.status().is_terminal();
        if tell {
            out.push(Effect::SendToPeer(PeerRequest::Cancel {
                reason: format!("{origin:?}"),
            }));
        }
    }

    // -- wake-ups
    for (chain_id, height) in wake_heights {
        if saga.tip(&chain_id).is_none_or(|tip| tip < height) {
            out.push(Effect::WakeAtHeight { chain_id, height });
        }
    }
    if let Some(at) = wake_time {
        if now < at {
            out.push(Effect::WakeAt { at });
        }
    }
    out
}

fn add_wake(wakes: &mut BTreeMap<String, Height>, chain_id: &str, height: Height) {
    let e = wakes.entry(chain_id.to_string()).or_insert(height);
    if height < *e {
        *e = height;
    }
}
