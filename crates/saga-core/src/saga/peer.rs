//! Peer messages (the counterparty's requests) and the answers to ours.

use bsv_format::script::interpreter::verify_input;
use bsv_format::{Outpoint, Transaction};

use super::decide::{build_err, leg_flags, release_inputs};
use super::event::{CancelOrigin, Event, MessageKind};
use super::io::{Decision, PeerMessage, PeerReply, Reject};
use super::Saga;
use crate::legs;
use crate::terms::{Role, Terms};
use crate::token::Token;
use crate::units::{Height, UnixTime};

// ---------------------------------------------------------------------------
// Peer messages
// ---------------------------------------------------------------------------

pub(super) fn peer(
    saga: &Saga,
    caller: &str,
    message: PeerMessage,
    now: UnixTime,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    // Who calls comes first (before the state, which a non-party must not
    // learn).
    if let Some(terms) = saga.facts.terms.as_deref() {
        if caller != saga.counterparty(terms).spiffe_id {
            return Err(Reject::NotAParty {
                caller: caller.to_string(),
            });
        }
    }
    let terms = saga.agreed_terms(message.kind().name())?;
    match message {
        PeerMessage::SignRefund { refund } => sign_refund(saga, terms, &refund, d),
        PeerMessage::ReservationReady { beef, beef_bytes } => {
            reservation_ready(saga, terms, &beef, beef_bytes, d)
        }
        PeerMessage::GrantToken { token } => grant_token(saga, terms, caller, token, now, d),
        PeerMessage::Execute { token, claim } => {
            execute(saga, terms, caller, &token, &claim, now, d)
        }
        PeerMessage::SignCancel { cancel } => sign_cancel(saga, terms, &cancel, d),
        PeerMessage::Cancel { reason: _ } => peer_cancel(saga, d),
    }
}

pub(super) fn sign_refund(
    saga: &Saga,
    terms: &Terms,
    refund: &Transaction,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let leg = saga.counter_leg();
    let escrow = refund
        .inputs
        .first()
        .map(|i| i.prev_out)
        .ok_or_else(|| Reject::PeerMisbehaved("refund has no inputs".into()))?;
    if let Some((verified, _, _)) = &saga.facts.counter.verified {
        if *verified != escrow {
            return Err(Reject::PeerMisbehaved(format!(
                "refund spends {escrow}, but the verified reservation is {verified}"
            )));
        }
    }
    let signature = legs::sign_refund_as_beneficiary(
        refund,
        terms,
        leg,
        escrow,
        saga.counter_max_fee(terms, leg),
        saga.escrow_key(leg),
    )
    .map_err(|e| Reject::PeerMisbehaved(format!("refund refused: {e}")))?;
    d.reply = Some(PeerReply::Signature { signature });
    if saga.facts.counter.refund_signed_for == Some(escrow) {
        return Ok(Vec::new());
    }
    Ok(vec![Event::CounterRefundSigned { escrow }])
}

pub(super) fn reservation_ready(
    saga: &Saga,
    terms: &Terms,
    beef: &bsv_format::spv::VerifiedBeef,
    beef_bytes: Vec<u8>,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let leg = saga.counter_leg();
    let Some(signed) = saga.facts.counter.refund_signed_for else {
        d.reply = Some(PeerReply::NotYet {
            reason: "no refund of this reservation was signed by us yet".into(),
        });
        return Ok(Vec::new());
    };
    if let Some((escrow, _, _)) = &saga.facts.counter.verified {
        if *escrow == signed && beef.subject() == escrow.txid {
            d.reply = Some(PeerReply::Ack);
            return Ok(Vec::new());
        }
    }
    let tx = beef.subject_transaction();
    if beef.subject() != signed.txid {
        return misbehaved(
            saga,
            d,
            format!(
                "reservation {} is not the one whose refund we signed ({})",
                beef.subject(),
                signed.txid
            ),
        );
    }
    if let Err(e) = legs::check_reservation_output(tx, signed.vout, terms, leg) {
        return misbehaved(saga, d, format!("reservation {}: {e}", beef.subject()));
    }
    let block_height = beef
        .beef()
        .find(&beef.subject())
        .and_then(|t| t.bump_index())
        .and_then(|i| beef.beef().bumps().get(i))
        .map(|b| Height(b.block_height()));
    let Some(block_height) = block_height else {
        d.reply = Some(PeerReply::NotYet {
            reason: "the reservation has no BUMP (not yet mined)".into(),
        });
        return Ok(Vec::new());
    };
    let depth = beef
        .tip_height()
        .saturating_sub(block_height.0)
        .saturating_add(1);
    let wanted = terms.leg(leg).confirmations;
    if depth < wanted {
        d.reply = Some(PeerReply::NotYet {
            reason: format!("the reservation has {depth} of {wanted} confirmations"),
        });
        return Ok(Vec::new());
    }
    d.reply = Some(PeerReply::Ack);
    Ok(vec![Event::CounterReservationVerified {
        escrow: signed,
        block_height,
        beef: beef_bytes,
    }])
}

/// Refuses the message; records the misbehaviour only the first time, so a
/// repeated (or duplicated) lie is answered alike and appends nothing.
pub(super) fn misbehaved(
    saga: &Saga,
    d: &mut Decision,
    reason: String,
) -> Result<Vec<Event>, Reject> {
    d.reply = Some(PeerReply::Refused {
        reason: reason.clone(),
    });
    Ok(misbehaviour(saga, reason))
}

/// `CounterpartyMisbehaved` unless one is recorded already.
pub(super) fn misbehaviour(saga: &Saga, reason: String) -> Vec<Event> {
    if saga.facts.misbehaved.is_some() {
        Vec::new()
    } else {
        vec![Event::CounterpartyMisbehaved { reason }]
    }
}

pub(super) fn grant_token(
    saga: &Saga,
    terms: &Terms,
    caller: &str,
    token: Token,
    now: UnixTime,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let Some((escrow, _, _)) = &saga.facts.counter.verified else {
        d.reply = Some(PeerReply::NotYet {
            reason: "the reservation this token grants is not verified yet".into(),
        });
        return Ok(Vec::new());
    };
    if saga.facts.counter.token.as_ref() == Some(&token) {
        d.reply = Some(PeerReply::Ack);
        return Ok(Vec::new());
    }
    if token.issuer != caller {
        return Err(Reject::PeerMisbehaved(format!(
            "token issued by {}, sent by {caller}",
            token.issuer
        )));
    }
    // The holder must be us: we are the one who will present it. (Checked
    // here, not by `verify`'s holder-is-caller rule: the caller of a grant
    // is its issuer, never its holder.)
    if token.holder != saga.ctx.own_spiffe_id {
        return Err(Reject::PeerMisbehaved(format!(
            "the granted token names holder {}, not the receiver {}",
            token.holder, saga.ctx.own_spiffe_id
        )));
    }
    let verified = token
        .verify(
            &saga.counterparty(terms).saga_key,
            &saga.ctx.own_spiffe_id,
            now,
            saga.ctx.policy.times.clock_skew_tolerance,
        )
        .map_err(Reject::Token)?;
    verified
        .check_grants(&terms.saga_id, escrow)
        .map_err(Reject::Token)?;
    d.reply = Some(PeerReply::Ack);
    Ok(vec![Event::TokenReceived { token }])
}

#[allow(clippy::too_many_arguments)]
pub(super) fn execute(
    saga: &Saga,
    terms: &Terms,
    caller: &str,
    token: &Token,
    claim: &Transaction,
    now: UnixTime,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let Some(escrow) = saga.facts.own.escrow() else {
        return Err(saga.wrong_state("execute"));
    };
    let Some(granted) = &saga.facts.own.token else {
        return Err(saga.wrong_state("execute (no token was granted)"));
    };
    let verified = token
        .verify(
            &terms.party(saga.ctx.role).saga_key,
            caller,
            now,
            saga.ctx.policy.times.clock_skew_tolerance,
        )
        .map_err(Reject::Token)?;
    verified
        .check_grants(&terms.saga_id, &escrow)
        .map_err(Reject::Token)?;
    if verified.token_id() != granted.token_id {
        return Err(Reject::PeerMisbehaved(
            "token is not the one we granted".into(),
        ));
    }
    let claim_txid = claim.txid();
    if let Some((seen, used)) = &saga.facts.own.counter_claim {
        if *used == Some(verified.token_id()) {
            return if *seen == claim_txid {
                d.reply = Some(PeerReply::Ack);
                Ok(Vec::new())
            } else {
                Err(Reject::TokenReused(verified.token_id()))
            };
        }
    }
    // The chain overrides what a peer says: a claim seen spending our
    // escrow stands, another one is not recorded in its place.
    if let Some((seen, None)) = &saga.facts.own.counter_claim {
        if *seen != claim_txid {
            return Err(Reject::PeerMisbehaved(format!(
                "claim {claim_txid} is not the claim {seen} seen on chain"
            )));
        }
    }
    let Some(preimage) = legs::extract_preimage(claim, &escrow, &terms.hash_lock) else {
        return Err(Reject::PeerMisbehaved(format!(
            "claim {claim_txid} does not spend {escrow} with the preimage of H"
        )));
    };
    // A claim whose script does not verify can never be mined: recording it
    // stopped our refund and had us watch for a transaction that cannot
    // exist. `s` in it is genuine all the same (SHA256(s) = H): the seller
    // keeps it and claims the other leg.
    if let Err(reason) = claim_verifies(saga, terms, claim, &escrow) {
        let reason = format!("claim {claim_txid} does not verify: {reason}");
        let mut events = Vec::new();
        if saga.ctx.role == Role::Seller && saga.facts.preimage_learned.is_none() {
            events.push(Event::PreimageLearned {
                preimage,
                claim_txid,
            });
        }
        events.extend(misbehaved(saga, d, reason)?);
        return Ok(events);
    }
    d.consumed_tokens.push(verified.token_id());
    d.reply = Some(PeerReply::Ack);
    // Also when the claim was seen on chain first: the token is consumed
    // now all the same, and recorded with the claim.
    let mut events = vec![Event::CounterClaimSeen {
        txid: claim_txid,
        token_id: Some(verified.token_id()),
    }];
    if saga.ctx.role == Role::Seller && saga.facts.preimage_learned.is_none() {
        events.push(Event::PreimageLearned {
            preimage,
            claim_txid,
        });
    }
    Ok(events)
}

/// Checks that `claim` spends our escrow output at `escrow` exactly once,
/// with an unlocking script that verifies against the escrow script and
/// amount under our leg flags. Returns why not.
pub(super) fn claim_verifies(
    saga: &Saga,
    terms: &Terms,
    claim: &Transaction,
    escrow: &Outpoint,
) -> Result<(), String> {
    let spends: Vec<usize> = claim
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| &i.prev_out == escrow)
        .map(|(n, _)| n)
        .collect();
    let [input] = spends.as_slice() else {
        return Err(format!("it spends {escrow} {} times", spends.len()));
    };
    let leg = saga.own_leg();
    verify_input(
        claim,
        *input,
        &terms.escrow_script(leg),
        terms.leg(leg).amount.0,
        leg_flags(),
    )
    .map_err(|e| format!("input {input}: {e}"))
}

pub(super) fn sign_cancel(
    saga: &Saga,
    terms: &Terms,
    cancel: &Transaction,
    d: &mut Decision,
) -> Result<Vec<Event>, Reject> {
    let leg = saga.counter_leg();
    let Some(escrow) = saga.facts.counter.escrow() else {
        return Err(saga.wrong_state("sign_cancel (no reservation of yours is known)"));
    };
    let mut events = Vec::new();
    match saga.ctx.role {
        Role::Buyer => {
            // We sign the seller's cancel only while our claim is not out;
            // from then on we never claim (DESIGN.md §3.1).
            if saga.facts.counter.claim_broadcast.is_some() {
                d.reply = Some(PeerReply::Refused {
                    reason: "our claim of your reservation is already broadcast".into(),
                });
                return Ok(Vec::new());
            }
            // Nor once it is built: its broadcast may be in flight, or out
            // with the answer lost (a crash). A cancel signed now would race
            // a claim that reveals `s` — the very race C1 keeps away — and a
            // late "accepted" would have us tell the seller `s` (Execute)
            // after promising never to claim.
            if saga.facts.counter.claim.is_some() {
                d.reply = Some(PeerReply::Refused {
                    reason: "our claim of your reservation is built and may already be on its way"
                        .into(),
                });
                return Ok(Vec::new());
            }
        }
        Role::Seller => {
            if saga.facts.preimage_learned.is_some() {
                d.reply = Some(PeerReply::Refused {
                    reason: "your claim of our reservation revealed s: no cancel".into(),
                });
                return Ok(Vec::new());
            }
            let own = &saga.facts.own;
            let never_broadcast =
                own.broadcast.is_none() && (own.abandoned.is_some() || own.refund.is_none());
            if !(never_broadcast || own.refund_confirmed.is_some()) {
                d.reply = Some(PeerReply::NotYet {
                    reason: "our own reservation is not back yet".into(),
                });
                return Ok(Vec::new());
            }
            if own.broadcast.is_none() && own.abandoned.is_none() {
                events.push(Event::ReservationAbandoned {
                    reason: "cooperative cancel before our reservation was broadcast".into(),
                });
                release_inputs(saga, terms, d);
            }
        }
    }
    let signature = legs::sign_cancel(
        cancel,
        terms,
        leg,
        escrow,
        saga.counter_max_fee(terms, leg),
        saga.escrow_key(leg),
    )
    .map_err(|e| Reject::PeerMisbehaved(format!("cancel refused: {e}")))?;
    d.reply = Some(PeerReply::Signature { signature });
    if saga.facts.cancel.is_none() {
        events.insert(
            0,
            Event::CancelRequested {
                origin: CancelOrigin::Peer,
            },
        );
    }
    if saga.facts.counter.cancel_signed != Some(escrow) {
        events.push(Event::CancelSigned { escrow });
    }
    Ok(events)
}

pub(super) fn peer_cancel(saga: &Saga, d: &mut Decision) -> Result<Vec<Event>, Reject> {
    if let Some(reason) = cancel_refusal(saga) {
        d.reply = Some(PeerReply::Refused { reason });
        return Ok(Vec::new());
    }
    d.reply = Some(PeerReply::Ack);
    if saga.facts.cancel.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Event::CancelRequested {
        origin: CancelOrigin::Peer,
    }])
}

/// Why a cancel cannot be accepted now, if it cannot.
///
/// Once our claim is built it may be out — its broadcast in flight, or sent
/// with the answer lost to a crash or a network fault — and it reveals `s`.
/// Accepting a cancel then would have us give the claim up (we never claim
/// after agreeing to cancel) while the counterparty, who may have seen `s`,
/// claims our reservation: we would pay and receive nothing. The claim is
/// finished instead (C1 still bounds it); `sign_cancel` refuses the same
/// case.
pub(super) fn cancel_refusal(saga: &Saga) -> Option<String> {
    if saga.facts.counter.claim_broadcast.is_some() {
        return Some("our claim is already broadcast: the swap is executing".into());
    }
    if saga.facts.counter.claim.is_some() {
        return Some(
            "our claim is built and may already be on its way: the swap is executing".into(),
        );
    }
    if saga.ctx.role == Role::Seller && saga.facts.preimage_learned.is_some() {
        return Some("s is revealed: the swap is executing".into());
    }
    None
}

// ---------------------------------------------------------------------------
// Answers to our requests
// ---------------------------------------------------------------------------

pub(super) fn answered(
    saga: &Saga,
    request: MessageKind,
    reply: PeerReply,
) -> Result<Vec<Event>, Reject> {
    let Some(terms) = saga.facts.terms.as_deref() else {
        return Err(saga.wrong_state("an answer"));
    };
    match (request, reply) {
        (_, PeerReply::NotYet { .. }) => Ok(Vec::new()),
        (MessageKind::Propose, PeerReply::Accepted { seller_signature }) => {
            if saga.facts.seller_signature.is_some() || saga.facts.rejected.is_some() {
                return Ok(Vec::new());
            }
            if terms
                .verify_signature(Role::Seller, &seller_signature)
                .is_err()
            {
                return Ok(vec![Event::TermsRejected {
                    reason: "the seller's signature does not verify".into(),
                }]);
            }
            Ok(vec![Event::TermsAgreed { seller_signature }])
        }
        (MessageKind::Propose, PeerReply::Refused { reason }) => {
            if saga.facts.seller_signature.is_some() || saga.facts.rejected.is_some() {
                return Ok(Vec::new());
            }
            Ok(vec![Event::TermsRejected {
                reason: peer_text(&reason),
            }])
        }
        (MessageKind::SignRefund, PeerReply::Signature { signature }) => {
            refund_signature(saga, terms, &signature)
        }
        (MessageKind::SignCancel, PeerReply::Signature { signature }) => {
            cancel_signature(saga, terms, &signature)
        }
        (
            kind @ (MessageKind::ReservationReady
            | MessageKind::GrantToken
            | MessageKind::Execute
            | MessageKind::Cancel),
            PeerReply::Ack,
        ) => {
            if saga.facts.delivered.contains(&kind) {
                Ok(Vec::new())
            } else {
                Ok(vec![Event::MessageDelivered { kind }])
            }
        }
        (kind, PeerReply::Refused { reason }) => {
            if saga.facts.attention.is_some() {
                return Ok(Vec::new());
            }
            Ok(vec![Event::AttentionRaised {
                reason: format!(
                    "the counterparty refused our {}: {}",
                    kind.name(),
                    peer_text(&reason)
                ),
            }])
        }
        (kind, _) => Err(Reject::PeerMisbehaved(format!(
            "unexpected answer to {}",
            kind.name()
        ))),
    }
}

/// Most characters of a counterparty's free text we keep in an event.
pub(crate) const MAX_PEER_TEXT_CHARS: usize = 256;

/// A counterparty's free text (a refusal's reason) as we store it: control
/// characters (newlines, terminal escapes) replaced by U+FFFD and at most
/// [`MAX_PEER_TEXT_CHARS`] characters, `…` marking a cut. The peer writes
/// it; our durable log and our operators' screens are not its to fill.
pub(crate) fn peer_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_PEER_TEXT_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if text.chars().nth(MAX_PEER_TEXT_CHARS).is_some() {
        out.push('…');
    }
    out
}

pub(super) fn refund_signature(
    saga: &Saga,
    terms: &Terms,
    signature: &[u8],
) -> Result<Vec<Event>, Reject> {
    if saga.facts.own.refund.is_some() {
        return Ok(Vec::new());
    }
    let leg = saga.own_leg();
    let Some(mut refund) = saga.unsigned_refund(terms) else {
        return Err(saga.wrong_state("a refund signature"));
    };
    let ours = legs::sign_refund_as_funder(&refund, terms, leg, saga.escrow_key(leg))
        .map_err(|e| build_err("refund", e))?;
    legs::set_refund_unlock(&mut refund, &ours, signature).map_err(|e| build_err("refund", e))?;
    if let Err(e) = verify_input(
        &refund,
        0,
        &terms.escrow_script(leg),
        terms.leg(leg).amount.0,
        leg_flags(),
    ) {
        return Ok(misbehaviour(
            saga,
            format!("its signature on our refund does not verify: {e}"),
        ));
    }
    Ok(vec![Event::RefundCountersigned { refund }])
}

pub(super) fn cancel_signature(
    saga: &Saga,
    terms: &Terms,
    signature: &[u8],
) -> Result<Vec<Event>, Reject> {
    if saga.facts.own.cancel_tx.is_some() {
        return Ok(Vec::new());
    }
    let leg = saga.own_leg();
    let (Some(escrow), Some(mut cancel)) = (saga.facts.own.escrow(), saga.unsigned_cancel(terms))
    else {
        return Err(saga.wrong_state("a cancel signature"));
    };
    let ours = legs::sign_cancel(
        &cancel,
        terms,
        leg,
        escrow,
        saga.spend_fee(terms, leg),
        saga.escrow_key(leg),
    )
    .map_err(|e| build_err("cancel", e))?;
    legs::set_refund_unlock(&mut cancel, &ours, signature).map_err(|e| build_err("cancel", e))?;
    if let Err(e) = verify_input(
        &cancel,
        0,
        &terms.escrow_script(leg),
        terms.leg(leg).amount.0,
        leg_flags(),
    ) {
        return Ok(vec![Event::AttentionRaised {
            reason: format!("the counterparty's signature on our cancel does not verify: {e}"),
        }]);
    }
    Ok(vec![Event::CancelBuilt { tx: cancel }])
}
