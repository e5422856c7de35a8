//! A hostile counterparty's review: what the honest party's saga must
//! withstand from a lying counterparty, a third gateway, and a chain or
//! broadcaster that answers wrongly or late (DESIGN.md §3.1, §3.3, §3.4).
//!
//! Each scenario drives one honest party through the simulator and plays
//! the other side (or the broadcaster) by hand: [`Sim::feed`] injects what
//! a lying broadcaster would answer, [`Sim::deliver`] / [`Sim::call`] what
//! the counterparty's gateway sends, and the fake chains take the
//! transactions the counterparty broadcasts on its own.
//!
//! # Layout
//! - Helpers.
//! - Findings, each fixed in `saga-core` (the test names the rule):
//!   1. a broadcaster's refusal taken as proof a reservation is not on chain;
//!   2. "accepted" taken as "will be mined" (claims, refunds never re-sent);
//!   3. the buyer signing the seller's cancel with its claim built;
//!   4. an Execute's claim not verified, or replacing the one on chain;
//!   5. a non-party answered before the caller check;
//!   6. a counterparty's refusal reason stored verbatim;
//!   7. `s` read only from a claim shaped exactly like ours (7b, `s`
//!      computed by a version-2 unlocking script, is open: ignored test);
//!   8. a late funding refused together with the deadline that made it late.
//! - What held (`held_*`: attacks the saga already refuses).

use bsv_format::beef::Beef;
use bsv_format::script::opcodes::{OP_1, OP_2, OP_CAT, OP_PUSHDATA1};
use bsv_format::script::templates::{p2pkh_lock, sign_input};
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use saga_core::legs::{self, LegError, RefundRefused};
use saga_core::saga::{
    BroadcastOutcome, Event, Input, PeerMessage, PeerReply, PeerRequest, Reject, Status,
};
use saga_core::terms::{Leg, Role};
use saga_core::token::{Token, TokenError, TokenId};
use saga_core::units::{Height, Satoshis, UnixTime};
use saga_testkit::fixtures::{key, AMOUNT_D, AMOUNT_P, BUYER, CHAIN_D, CHAIN_P, PREIMAGE, SELLER};
use saga_testkit::{FeedError, Sim, SimConfig};

/// Reservation fee (one P2PKH input, escrow and change outputs) at 100 sat/kB.
const RESERVATION_FEE: u64 = 36;
/// Claim / refund / cancel fee: 235 bytes at 100 sat/kB.
const SPEND_FEE: u64 = 24;
/// Each party's faucet money on its own leg's chain.
const FUNDS: u64 = 100_000;
/// A gateway of the federation that is no party to the saga.
const STRANGER: &str = "spiffe://org-c.example/gateway/gc";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn logged(sim: &Sim, role: Role, name: &str) -> bool {
    sim.events(role).iter().any(|e| e.name() == name)
}

fn count(sim: &Sim, role: Role, name: &str) -> usize {
    sim.events(role).iter().filter(|e| e.name() == name).count()
}

fn status_is(role: Role, s: Status) -> impl Fn(&Sim) -> bool {
    move |sim: &Sim| sim.status(role) == Some(s)
}

fn both(s: Status) -> impl Fn(&Sim) -> bool {
    move |sim: &Sim| sim.status(Role::Buyer) == Some(s) && sim.status(Role::Seller) == Some(s)
}

fn escrow(sim: &Sim, role: Role) -> Outpoint {
    Outpoint::new(sim.reservation(role).expect("reservation built").txid(), 0)
}

fn assert_clean(sim: &Sim) {
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

fn started() -> Sim {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().expect("the buyer starts");
    sim
}

/// Runs until `role` appended `event`, then crashes it right there (before
/// any effect of that step ran).
fn crashed_after(event: &'static str, role: Role) -> Sim {
    let mut sim = started();
    sim.crash_on(role, event, role);
    sim.run_until(move |s| s.status(role).is_none(), 100)
        .unwrap();
    sim
}

/// What the buyer, ignoring its own saga, can always do with `s`: claim the
/// seller's escrow on D to its own key.
fn buyer_claim_by_hand(sim: &Sim, fee: u64) -> Transaction {
    let terms = sim.terms().clone();
    legs::build_claim(
        &terms,
        Leg::Delivery,
        escrow(sim, Role::Seller),
        Satoshis(fee),
        legs::beneficiary_payout_script(&terms, Leg::Delivery),
        &PREIMAGE,
        &key(3),
    )
    .unwrap()
}

/// The snapshot a refused input must leave unchanged.
fn snapshot(sim: &Sim, role: Role) -> (Option<Status>, Vec<saga_core::saga::Effect>, usize) {
    let now = sim.now();
    (
        sim.status(role),
        sim.saga(role).expect("party is up").pending_effects(now),
        sim.events(role).len(),
    )
}

/// `message` from `caller` to `to` is refused with exactly `expected`, and
/// nothing moved.
fn refused_exactly(sim: &mut Sim, to: Role, caller: &str, message: PeerMessage, expected: Reject) {
    let before = snapshot(sim, to);
    assert_eq!(
        sim.deliver(to, caller, message).unwrap_err(),
        FeedError::Rejected(expected)
    );
    assert_eq!(snapshot(sim, to), before);
}

// ---------------------------------------------------------------------------
// Finding 1: a broadcaster's "rejected" is taken as proof that a reservation
// is not on chain.
// ---------------------------------------------------------------------------

/// The seller's first broadcast of its reservation reached the chain, its
/// answer was lost (a crash); the retry meets a node that has mined it and
/// answers "missing inputs" — what a node says of a transaction whose inputs
/// it already spent. The seller must not take that for "never broadcast":
/// before the fix it released its inputs, ended `Cancelled`, stopped
/// watching an escrow holding 20,000 sat, signed the buyer's cancel as if
/// its own leg never left — and the buyer, holding `s`, took D for nothing.
#[test]
fn a_reservation_rejected_as_missing_inputs_after_it_was_mined_is_kept_and_the_seller_is_paid() {
    let mut sim = crashed_after("refund_countersigned", Role::Seller);
    let reservation = sim.reservation(Role::Seller).unwrap().clone();
    assert_eq!(
        sim.chain_mut(CHAIN_D).broadcast(&reservation),
        BroadcastOutcome::Accepted
    );
    sim.mine(CHAIN_D, 1);
    sim.restart(Role::Seller);
    let answer = sim
        .feed(
            Role::Seller,
            Input::Broadcasted {
                txid: reservation.txid(),
                outcome: BroadcastOutcome::Rejected {
                    reason: "bad-txns-inputs-missingorspent".into(),
                },
            },
        )
        .unwrap();
    let abandoned_on_rejection = answer
        .events
        .iter()
        .any(|e| matches!(e, Event::ReservationAbandoned { .. }));
    // The buyer plays along until it is done with its own saga ...
    sim.run_until(
        |s| s.status(Role::Buyer).is_some_and(Status::is_terminal),
        600,
    )
    .unwrap();
    // ... then takes whatever of the seller's D escrow is still there.
    let theft = buyer_claim_by_hand(&sim, SPEND_FEE);
    let _ = sim.chain_mut(CHAIN_D).broadcast(&theft);
    sim.mine(CHAIN_D, 1);
    sim.run_until(
        |s| s.status(Role::Seller).is_some_and(Status::is_terminal),
        300,
    )
    .unwrap();
    assert_clean(&sim);
    // The seller delivered D and was paid P.
    assert_eq!(sim.status(Role::Seller), Some(Status::Completed));
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), AMOUNT_P - SPEND_FEE);
    assert_eq!(
        sim.balance(Role::Seller, CHAIN_D),
        FUNDS - AMOUNT_D - RESERVATION_FEE
    );
    assert!(!abandoned_on_rejection);
    assert!(!logged(&sim, Role::Seller, "reservation_abandoned"));
}

// ---------------------------------------------------------------------------
// Finding 2: "accepted" is taken as "will be mined": nothing is broadcast
// again, so a claim or refund the network dropped is lost.
// ---------------------------------------------------------------------------

/// ARC answered RECEIVED (accepted) for the buyer's claim of D, then the
/// network dropped it. The buyer told the seller (Execute, revealing `s`),
/// the seller claimed P — and the seller's gateway, hostile, refunds D at
/// T_D. The buyer must broadcast its claim again while C1 allows (D's tip
/// below T_D − m_D); before the fix it never did and lost both legs.
#[test]
fn a_claim_accepted_then_dropped_is_broadcast_again_before_its_deadline() {
    let mut sim = crashed_after("claim_built", Role::Buyer);
    sim.restart(Role::Buyer);
    let claim = sim.claim(Role::Buyer).unwrap().clone();
    sim.feed(
        Role::Buyer,
        Input::Broadcasted {
            txid: claim.txid(),
            outcome: BroadcastOutcome::Accepted,
        },
    )
    .unwrap();
    // The seller learns s from the Execute and claims P.
    sim.run_until(|s| logged(s, Role::Seller, "claim_broadcast"), 50)
        .unwrap();
    // From here the seller's gateway is hostile: it refunds D at T_D.
    sim.crash(Role::Seller);
    let seller_refund = sim.refund(Role::Seller).unwrap().clone();
    let t_d = sim.terms().delivery.refund_height;
    sim.auto_advance = false;
    while sim.chain(CHAIN_D).tip() < t_d {
        sim.round();
        sim.mine(CHAIN_D, 1);
    }
    let _ = sim.chain_mut(CHAIN_D).broadcast(&seller_refund);
    sim.auto_advance = true;
    sim.run_until(status_is(Role::Buyer, Status::Completed), 200)
        .unwrap();
    assert_clean(&sim);
    let d_escrow = escrow(&sim, Role::Seller);
    assert_eq!(
        sim.chain(CHAIN_D).spender(&d_escrow).map(Transaction::txid),
        Some(claim.txid())
    );
    assert_eq!(sim.balance(Role::Buyer, CHAIN_D), AMOUNT_D - SPEND_FEE);
}

/// The seller's claim of P was answered accepted and then dropped; the
/// buyer, hostile once its own claim of D is confirmed, broadcasts its
/// timed refund of P at T_P. The seller must broadcast its claim again
/// until it is confirmed; before the fix it lost D (claimed) and P
/// (refunded to the buyer).
#[test]
fn a_seller_claim_accepted_then_dropped_is_broadcast_again_until_confirmed() {
    let mut sim = crashed_after("claim_built", Role::Seller);
    sim.restart(Role::Seller);
    let claim = sim.claim(Role::Seller).unwrap().clone();
    sim.feed(
        Role::Seller,
        Input::Broadcasted {
            txid: claim.txid(),
            outcome: BroadcastOutcome::Accepted,
        },
    )
    .unwrap();
    sim.run_until(|s| logged(s, Role::Buyer, "claim_confirmed"), 50)
        .unwrap();
    sim.crash(Role::Buyer);
    let buyer_refund = sim.refund(Role::Buyer).unwrap().clone();
    let t_p = sim.terms().payment.refund_height;
    sim.auto_advance = false;
    while sim.chain(CHAIN_P).tip() < t_p {
        sim.round();
        sim.mine(CHAIN_P, 1);
    }
    let _ = sim.chain_mut(CHAIN_P).broadcast(&buyer_refund);
    sim.auto_advance = true;
    sim.run_until(status_is(Role::Seller, Status::Completed), 200)
        .unwrap();
    assert_clean(&sim);
    let p_escrow = escrow(&sim, Role::Buyer);
    assert_eq!(
        sim.chain(CHAIN_P).spender(&p_escrow).map(Transaction::txid),
        Some(claim.txid())
    );
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), AMOUNT_P - SPEND_FEE);
}

/// The seller's timed refund of D was answered accepted and then dropped.
/// The buyer (hostile, holding `s`, vanished after both reservations)
/// waits until its own refund of P is confirmed, then claims D. The seller
/// must broadcast its refund again until it is confirmed; before the fix it
/// sat watching a refund that was nowhere and lost D.
#[test]
fn a_refund_accepted_then_dropped_is_broadcast_again_until_confirmed() {
    let mut sim = started();
    sim.crash_on(Role::Seller, "reservation_confirmed", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
        .unwrap();
    let t_d = sim.terms().delivery.refund_height;
    let t_p = sim.terms().payment.refund_height;
    sim.auto_advance = false;
    while sim.chain(CHAIN_D).tip() < Height(t_d.0 - 1) {
        sim.round();
        sim.mine(CHAIN_D, 1);
    }
    // D reaches T_D while the seller is down for a moment; when it is back
    // its broadcaster says "accepted" and the network drops the refund.
    sim.crash(Role::Seller);
    sim.mine(CHAIN_D, 1);
    sim.restart(Role::Seller);
    let refund = sim.refund(Role::Seller).unwrap().clone();
    sim.feed(
        Role::Seller,
        Input::Broadcasted {
            txid: refund.txid(),
            outcome: BroadcastOutcome::Accepted,
        },
    )
    .unwrap();
    assert!(logged(&sim, Role::Seller, "refund_broadcast"));
    // The buyer's refund of P at T_P, then its claim of D.
    while sim.chain(CHAIN_P).tip() < t_p {
        sim.round();
        sim.mine(CHAIN_P, 1);
        sim.mine(CHAIN_D, 1);
    }
    let buyer_refund = sim.refund(Role::Buyer).unwrap().clone();
    assert_eq!(
        sim.chain_mut(CHAIN_P).broadcast(&buyer_refund),
        BroadcastOutcome::Accepted
    );
    sim.mine(CHAIN_P, 1);
    let theft = buyer_claim_by_hand(&sim, SPEND_FEE);
    let _ = sim.chain_mut(CHAIN_D).broadcast(&theft);
    sim.auto_advance = true;
    sim.run_until(
        |s| s.status(Role::Seller).is_some_and(Status::is_terminal),
        200,
    )
    .unwrap();
    assert_clean(&sim);
    assert_eq!(sim.status(Role::Seller), Some(Status::Refunded));
    assert_eq!(
        sim.balance(Role::Seller, CHAIN_D),
        FUNDS - RESERVATION_FEE - SPEND_FEE
    );
    let d_escrow = escrow(&sim, Role::Seller);
    assert_eq!(
        sim.chain(CHAIN_D).spender(&d_escrow).map(Transaction::txid),
        Some(refund.txid())
    );
}

/// The seller's reservation was answered accepted, then dropped. Before
/// the fix it was never broadcast again: the seller waited for
/// confirmations of a transaction that was nowhere, its inputs booked as
/// spent, refused the buyer's cancel ("not back yet") and, from T_D, failed
/// to refund an escrow that did not exist — stuck until an operator came.
/// It is broadcast again while C2 and the reservation deadline allow.
#[test]
fn a_reservation_accepted_then_dropped_is_broadcast_again_while_c2_allows() {
    let mut sim = crashed_after("refund_countersigned", Role::Seller);
    sim.restart(Role::Seller);
    let reservation = sim.reservation(Role::Seller).unwrap().clone();
    sim.feed(
        Role::Seller,
        Input::Broadcasted {
            txid: reservation.txid(),
            outcome: BroadcastOutcome::Accepted,
        },
    )
    .unwrap();
    assert!(!sim.chain(CHAIN_D).knows(&reservation.txid()));
    sim.run_until(both(Status::Completed), 200).unwrap();
    assert_clean(&sim);
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), AMOUNT_P - SPEND_FEE);
    assert_eq!(sim.balance(Role::Buyer, CHAIN_D), AMOUNT_D - SPEND_FEE);
}

// ---------------------------------------------------------------------------
// Finding 3: the buyer promises never to claim while its claim may already
// be on its way.
// ---------------------------------------------------------------------------

/// The buyer built (persisted) its claim; its broadcast is in flight when
/// the seller asks it to sign the seller's immediate cancel of D. Signing
/// now would hand the seller a cancel that races a claim revealing `s` —
/// exactly what C1 keeps away (a claim must confirm before any competing
/// spend of D can be mined). The buyer refuses; before the fix it signed,
/// then recorded the late "accepted" of its claim and sent Execute (`s`)
/// to a seller holding a cancel of D.
#[test]
fn the_buyer_refuses_to_sign_a_cancel_once_its_claim_is_built() {
    let mut sim = crashed_after("claim_built", Role::Buyer);
    sim.restart(Role::Buyer);
    let terms = sim.terms().clone();
    let cancel = legs::build_cancel(
        &terms,
        Leg::Delivery,
        escrow(&sim, Role::Seller),
        Satoshis(SPEND_FEE),
    )
    .unwrap();
    let reply = sim
        .call(Role::Seller, PeerRequest::SignCancel { cancel })
        .unwrap();
    assert_eq!(
        reply,
        PeerReply::Refused {
            reason: "our claim of your reservation is built and may already be on its way".into()
        }
    );
    assert!(!logged(&sim, Role::Buyer, "cancel_signed"));
    assert!(!logged(&sim, Role::Buyer, "cancel_requested"));
    sim.run_until(both(Status::Completed), 200).unwrap();
    assert_clean(&sim);
    assert_eq!(sim.balance(Role::Buyer, CHAIN_D), AMOUNT_D - SPEND_FEE);
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), AMOUNT_P - SPEND_FEE);
}

/// The same moment, with the seller's `Cancel` message or the buyer's own
/// operator instead of a cancel to sign: accepting either would make the
/// buyer give up a claim that may be out (and reveals `s`) while the
/// seller, who may have seen `s`, claims P — the buyer would pay and
/// receive nothing. Both are refused, and the claim is finished. (Found
/// over gRPC by tests/hostile_peer.rs; before the fix the buyer answered
/// Ack, logged `cancel_requested` and then `claim_abandoned`.)
#[test]
fn the_buyer_refuses_a_cancel_request_once_its_claim_is_built() {
    let mut sim = crashed_after("claim_built", Role::Buyer);
    sim.restart(Role::Buyer);
    let reply = sim
        .call(
            Role::Seller,
            PeerRequest::Cancel {
                reason: "let us cancel".into(),
            },
        )
        .unwrap();
    assert_eq!(
        reply,
        PeerReply::Refused {
            reason: "our claim is built and may already be on its way: the swap is executing"
                .into()
        }
    );
    let refused = sim
        .feed(
            Role::Buyer,
            saga_core::saga::Input::CancelRequested {
                reason: "operator".into(),
            },
        )
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("our claim is built and may already be on its way"),
        "{refused:?}"
    );
    assert!(!logged(&sim, Role::Buyer, "cancel_requested"));
    sim.run_until(both(Status::Completed), 200).unwrap();
    assert_clean(&sim);
    assert!(!logged(&sim, Role::Buyer, "claim_abandoned"));
    assert_eq!(sim.balance(Role::Buyer, CHAIN_D), AMOUNT_D - SPEND_FEE);
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), AMOUNT_P - SPEND_FEE);
}

// ---------------------------------------------------------------------------
// Finding 4: Execute's claim is not checked beyond the preimage.
// ---------------------------------------------------------------------------

/// The buyer's Execute carries a "claim" that reveals `s` but whose
/// signature does not verify (here: one satoshi moved after signing). It
/// can never be mined. The seller learns `s` from it (and claims P), but
/// must not record it as the claim of its reservation: that stopped its
/// refund of D and set it watching a transaction that cannot exist.
#[test]
fn an_execute_whose_claim_does_not_verify_teaches_s_but_is_not_recorded_as_the_claim() {
    let mut sim = crashed_after("claim_built", Role::Buyer);
    let mut bogus = sim.claim(Role::Buyer).unwrap().clone();
    bogus.outputs[0].satoshis -= 1;
    let token = sim
        .events(Role::Buyer)
        .iter()
        .find_map(|e| match e {
            Event::TokenReceived { token } => Some(token.clone()),
            _ => None,
        })
        .unwrap();
    let d = sim
        .deliver(
            Role::Seller,
            BUYER,
            PeerMessage::Execute {
                token,
                claim: bogus.clone(),
            },
        )
        .unwrap();
    let PeerReply::Refused { reason } = d.reply.clone().unwrap() else {
        panic!("{:?}", d.reply)
    };
    assert!(
        reason.starts_with(&format!("claim {} does not verify: ", bogus.txid())),
        "{reason}"
    );
    assert!(d.consumed_tokens.is_empty());
    let names: Vec<&str> = d.events.iter().map(Event::name).collect();
    assert!(names.contains(&"preimage_learned"), "{names:?}");
    assert!(!names.contains(&"counter_claim_seen"), "{names:?}");
    assert!(logged(&sim, Role::Seller, "claim_built"));
    assert_clean(&sim);
}

/// The seller already saw the buyer's claim on chain; an Execute carrying
/// another (validly signed) claim of the same escrow must not replace it.
#[test]
fn an_execute_with_another_claim_than_the_one_on_chain_is_refused() {
    let mut sim = crashed_after("claim_broadcast", Role::Buyer);
    let claim = sim.claim(Role::Buyer).unwrap().clone();
    assert!(logged(&sim, Role::Seller, "counter_claim_seen"));
    let token = sim
        .events(Role::Buyer)
        .iter()
        .find_map(|e| match e {
            Event::TokenReceived { token } => Some(token.clone()),
            _ => None,
        })
        .unwrap();
    let other = buyer_claim_by_hand(&sim, SPEND_FEE + 1);
    refused_exactly(
        &mut sim,
        Role::Seller,
        BUYER,
        PeerMessage::Execute {
            token,
            claim: other.clone(),
        },
        Reject::PeerMisbehaved(format!(
            "claim {} is not the claim {} seen on chain",
            other.txid(),
            claim.txid()
        )),
    );
}

// ---------------------------------------------------------------------------
// Finding 5: a gateway that is no party is answered as if it were one.
// ---------------------------------------------------------------------------

/// A third gateway of the federation replays the buyer's proposal (terms
/// and signature are no secret to whoever saw them): the seller answered
/// the duplicate before asking who calls, handing a non-party its
/// signature and the saga's state. And a peer message from a non-party
/// reached the state check first, telling it the saga's status.
#[test]
fn a_stranger_replaying_the_proposal_or_writing_early_is_refused_as_no_party() {
    let mut sim = started();
    // The buyer awaits the seller's answer (the proposal not yet sent).
    assert_eq!(sim.status(Role::Buyer), Some(Status::Proposed));
    let before = snapshot(&sim, Role::Buyer);
    assert_eq!(
        sim.deliver(
            Role::Buyer,
            STRANGER,
            PeerMessage::Cancel { reason: "x".into() }
        )
        .unwrap_err(),
        FeedError::Rejected(Reject::NotAParty {
            caller: STRANGER.into()
        })
    );
    assert_eq!(snapshot(&sim, Role::Buyer), before);
    sim.run_until(|s| logged(s, Role::Seller, "terms_agreed"), 10)
        .unwrap();
    let (terms, buyer_signature) = sim
        .events(Role::Seller)
        .iter()
        .find_map(|e| match e {
            Event::TermsProposed {
                terms,
                buyer_signature,
                ..
            } => Some((terms.clone(), buyer_signature.clone())),
            _ => None,
        })
        .unwrap();
    let before = snapshot(&sim, Role::Seller);
    assert_eq!(
        sim.feed(
            Role::Seller,
            Input::Proposal {
                caller: STRANGER.into(),
                terms,
                buyer_signature,
                exposure: Satoshis(0),
            },
        )
        .unwrap_err(),
        FeedError::Rejected(Reject::NotAParty {
            caller: STRANGER.into()
        })
    );
    assert_eq!(snapshot(&sim, Role::Seller), before);
}

// ---------------------------------------------------------------------------
// Finding 6: a counterparty's free text goes into our log as it is.
// ---------------------------------------------------------------------------

/// A refusal's reason is the counterparty's to write: a megabyte of it, or
/// newlines and terminal escapes, went verbatim into our durable log (and
/// from there to operators' screens). It is kept to 256 characters, control
/// characters replaced.
#[test]
fn a_counterparty_refusal_reason_is_stored_bounded_and_without_control_characters() {
    let hostile = format!("no\nway\u{1b}[2J{}", "x".repeat(1 << 20));
    let stored = format!("no\u{FFFD}way\u{FFFD}[2J{}…", "x".repeat(256 - 10));
    // The answer to the proposal.
    let mut sim = started();
    let d = sim
        .feed(
            Role::Buyer,
            Input::PeerAnswered {
                request: saga_core::saga::MessageKind::Propose,
                reply: PeerReply::Refused {
                    reason: hostile.clone(),
                },
            },
        )
        .unwrap();
    assert_eq!(
        d.events,
        [Event::TermsRejected {
            reason: stored.clone()
        }]
    );
    // The answer to a later request: attention, with the reason bounded.
    let mut sim = started();
    sim.run_until(|s| logged(s, Role::Buyer, "reservation_built"), 20)
        .unwrap();
    let d = sim
        .feed(
            Role::Buyer,
            Input::PeerAnswered {
                request: saga_core::saga::MessageKind::SignRefund,
                reply: PeerReply::Refused { reason: hostile },
            },
        )
        .unwrap();
    assert_eq!(
        d.events,
        [Event::AttentionRaised {
            reason: format!("the counterparty refused our sign_refund: {stored}")
        }]
    );
}

// ---------------------------------------------------------------------------
// Finding 7: `s` is read only from a claim shaped exactly like ours.
// ---------------------------------------------------------------------------

/// The buyer's claim of D with its own unlocking script (version 2: after
/// Chronicle the node waives MINIMALIF, MINIMALDATA, CLEANSTACK and
/// SIGPUSHONLY for it), signed by the buyer's delivery escrow key.
fn claim_of_d_unlocked_by(sim: &Sim, unlock: &dyn Fn(&[u8]) -> Vec<u8>) -> Transaction {
    let terms = sim.terms().clone();
    let mut tx = Transaction {
        version: 2,
        inputs: vec![TxIn {
            prev_out: escrow(sim, Role::Seller),
            unlocking_script: Script::default(),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut {
            satoshis: AMOUNT_D - SPEND_FEE,
            locking_script: legs::beneficiary_payout_script(&terms, Leg::Delivery),
        }],
        lock_time: 0,
    };
    let sig = sign_input(
        &tx,
        0,
        &terms.escrow_script(Leg::Delivery),
        AMOUNT_D,
        legs::SIGHASH_ALL_FORKID,
        &key(3),
    )
    .unwrap();
    tx.inputs[0].unlocking_script = Script::from_bytes(unlock(&sig));
    tx
}

fn push(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(bytes.len()).unwrap()];
    out.extend_from_slice(bytes);
    out
}

/// The buyer, hostile once the seller's reservation is confirmed, claims D
/// with a valid, standard claim shaped otherwise than ours; the seller must
/// still learn `s` from it and claim P. Before the fix `extract_preimage`
/// wanted exactly `<sig> <s> OP_1`: the seller raised attention ("no claim
/// or refund of ours"), never claimed P, and the buyer took P back at T_P.
fn seller_learns_s_from_a_claim_unlocked_by(unlock: &dyn Fn(&[u8]) -> Vec<u8>) {
    let mut sim = started();
    sim.crash_on(Role::Seller, "reservation_confirmed", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
        .unwrap();
    let claim = claim_of_d_unlocked_by(&sim, unlock);
    assert_eq!(
        sim.chain_mut(CHAIN_D).broadcast(&claim),
        BroadcastOutcome::Accepted
    );
    sim.mine(CHAIN_D, 1);
    sim.run_until(status_is(Role::Seller, Status::Completed), 100)
        .unwrap();
    assert_clean(&sim);
    assert!(sim.events(Role::Seller).contains(&Event::PreimageLearned {
        preimage: PREIMAGE,
        claim_txid: claim.txid()
    }));
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), AMOUNT_P - SPEND_FEE);
}

#[test]
fn the_seller_learns_s_from_a_claim_whose_branch_selector_is_op_2() {
    seller_learns_s_from_a_claim_unlocked_by(&|sig| {
        [push(sig), push(&PREIMAGE), vec![OP_2]].concat()
    });
}

#[test]
fn the_seller_learns_s_from_a_claim_with_an_extra_item_below_its_signature() {
    seller_learns_s_from_a_claim_unlocked_by(&|sig| {
        [push(&[7]), push(sig), push(&PREIMAGE), vec![OP_1]].concat()
    });
}

/// (Held before the fix: the old reader took any push for `s`.)
#[test]
fn held_the_seller_learns_s_from_a_claim_pushing_s_with_pushdata1() {
    seller_learns_s_from_a_claim_unlocked_by(&|sig| {
        [
            push(sig),
            vec![OP_PUSHDATA1, 32],
            PREIMAGE.to_vec(),
            vec![OP_1],
        ]
        .concat()
    });
}

/// Not fixed: a version-2 claim may compute `s` in its (then non-push-only)
/// unlocking script, e.g. `<sig> <s[..16]> <s[16..]> OP_CAT OP_1`; `s` then
/// appears in no push. Reading it needs the unlocking script evaluated and
/// the stack read (`s` is the item under the branch selector), which the
/// format core's interpreter does not offer yet (a `bsv-format` change:
/// an `eval_unlocking(tx, input, flags) -> stack` beside `verify_input`).
/// Until then the seller raises attention and an operator must read `s`
/// from the transaction by hand before `T_P − m_P`.
#[test]
#[ignore = "finding 7b: s computed in a non-push unlocking script (version 2) is not read; needs an interpreter API in bsv-format"]
fn the_seller_learns_s_from_a_claim_that_computes_s_with_op_cat() {
    seller_learns_s_from_a_claim_unlocked_by(&|sig| {
        [
            push(sig),
            push(&PREIMAGE[..16]),
            push(&PREIMAGE[16..]),
            vec![OP_CAT, OP_1],
        ]
        .concat()
    });
}

// ---------------------------------------------------------------------------
// Finding 8 (found by a longer interleavings run; seed in its regressions):
// a late funding refused together with the deadline that made it late.
// ---------------------------------------------------------------------------

/// The buyer restarts just before its reservation deadline passes, so no
/// wake-up is armed for it; its pending BuildReservation then runs after
/// the deadline. `handle` applied the deadline (ReservationAbandoned) and
/// refused the funding in the same decision — throwing the deadline away
/// with it. The buyer funded, was refused, funded again, forever, in
/// `Reserving`. The late funding is now a no-op and the deadline sticks.
#[test]
fn a_funding_that_arrives_after_the_reservation_deadline_lets_the_deadline_stick() {
    let mut sim = started();
    sim.crash_on(Role::Buyer, "terms_agreed", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 10)
        .unwrap();
    sim.restart(Role::Buyer);
    sim.advance(303); // past the reservation deadline (300 s) and the skew
    sim.auto_advance = false;
    sim.run_until(status_is(Role::Buyer, Status::Cancelled), 5)
        .unwrap();
    assert_clean(&sim);
    assert!(sim.reservation(Role::Buyer).is_none());
    assert_eq!(count(&sim, Role::Buyer, "reservation_abandoned"), 1);
    assert_eq!(sim.balance(Role::Buyer, CHAIN_P), FUNDS);
    assert!(sim
        .store(Role::Buyer)
        .utxos(CHAIN_P)
        .all(|(_, state)| *state == saga_core::wallet::UtxoState::Available));
}

// ---------------------------------------------------------------------------
// What held
// ---------------------------------------------------------------------------

/// A refund is refused — nothing signed, nothing appended — whichever rule
/// it bends: an early, later or UNIX lock time, a final sequence, a second
/// input or output, another payee, a fee that eats the amount, more than
/// the amount, another version; and once the reservation is verified,
/// another escrow outpoint.
#[test]
fn held_a_refund_to_sign_that_bends_any_rule_is_refused_and_nothing_is_signed() {
    let mut sim = started();
    sim.run_until(|s| logged(s, Role::Buyer, "terms_agreed"), 10)
        .unwrap();
    sim.auto_advance = false;
    let terms = sim.terms().clone();
    let t_d = terms.delivery.refund_height;
    let x = Outpoint::new(Txid([7; 32]), 0);
    let good = legs::build_refund(&terms, Leg::Delivery, x, Satoshis(SPEND_FEE)).unwrap();
    let max_fee = 1_000; // max(10 × our fee for 235 bytes, 1,000)
    type Bend = fn(&mut Transaction);
    let cases: [(Bend, RefundRefused); 10] = [
        (
            |tx| tx.lock_time -= 1,
            RefundRefused::EarlyLockTime {
                expected: t_d,
                found: t_d.0 - 1,
            },
        ),
        (
            |tx| tx.lock_time += 1,
            RefundRefused::WrongLockTime {
                expected: t_d,
                found: t_d.0 + 1,
            },
        ),
        (
            |tx| tx.lock_time = 1_700_000_000,
            RefundRefused::WrongLockTime {
                expected: t_d,
                found: 1_700_000_000,
            },
        ),
        (
            |tx| tx.inputs[0].sequence = u32::MAX,
            RefundRefused::SequenceFinal,
        ),
        (
            |tx| {
                let extra = tx.outputs[0].clone();
                tx.outputs.push(extra)
            },
            RefundRefused::OutputCount { found: 2 },
        ),
        (
            |tx| {
                tx.inputs.push(TxIn {
                    prev_out: Outpoint::new(Txid([8; 32]), 1),
                    unlocking_script: Default::default(),
                    sequence: 0,
                })
            },
            RefundRefused::InputCount { found: 2 },
        ),
        (
            |tx| tx.outputs[0].locking_script = p2pkh_lock(&key(99).public_key().hash160()),
            RefundRefused::WrongPayee,
        ),
        (
            |tx| tx.outputs[0].satoshis = 0,
            RefundRefused::WrongAmount {
                min: AMOUNT_D - 1_000,
                max: AMOUNT_D,
                found: 0,
            },
        ),
        (
            |tx| tx.outputs[0].satoshis = AMOUNT_D + 1,
            RefundRefused::WrongAmount {
                min: AMOUNT_D - 1_000,
                max: AMOUNT_D,
                found: AMOUNT_D + 1,
            },
        ),
        (|tx| tx.version = 2, RefundRefused::Version { found: 2 }),
    ];
    assert_eq!(AMOUNT_D - max_fee, 19_000);
    for (bend, why) in cases {
        let mut refund = good.clone();
        bend(&mut refund);
        refused_exactly(
            &mut sim,
            Role::Buyer,
            SELLER,
            PeerMessage::SignRefund { refund },
            Reject::PeerMisbehaved(format!("refund refused: {}", LegError::Refused(why))),
        );
    }
    // Once the seller's reservation is verified, only its escrow.
    sim.auto_advance = true;
    sim.run_until(
        |s| logged(s, Role::Buyer, "counter_reservation_verified"),
        50,
    )
    .unwrap();
    sim.auto_advance = false;
    let verified = escrow(&sim, Role::Seller);
    refused_exactly(
        &mut sim,
        Role::Buyer,
        SELLER,
        PeerMessage::SignRefund { refund: good },
        Reject::PeerMisbehaved(format!(
            "refund spends {x}, but the verified reservation is {verified}"
        )),
    );
}

/// The seller verified the buyer's reservation and is gone; from here on
/// the test plays the seller's gateway. Returns the sim and a reservation
/// of D funded by the seller's wallet on the real terms at `fee_rate`
/// (not broadcast).
fn seller_gone_with_a_reservation(fee_rate: u64) -> (Sim, Transaction) {
    let sim = crashed_after("counter_reservation_verified", Role::Seller);
    let terms = sim.terms().clone();
    let Input::ReservationFunded { tx, .. } = sim
        .wallet(Role::Seller)
        .fund(sim.store(Role::Seller), &terms, Leg::Delivery, fee_rate)
        .unwrap()
    else {
        unreachable!("fund returns ReservationFunded")
    };
    (sim, tx)
}

fn sign_refund_of(sim: &mut Sim, escrow: Outpoint) -> PeerReply {
    let terms = sim.terms().clone();
    let refund = legs::build_refund(&terms, Leg::Delivery, escrow, Satoshis(SPEND_FEE)).unwrap();
    sim.call(Role::Seller, PeerRequest::SignRefund { refund })
        .unwrap()
}

/// Announced reservations that are not the one whose refund the buyer
/// signed, or whose signed output is not the escrow output (here: the
/// change), are refused and recorded as misbehaviour; the buyer never
/// claims and takes its leg back.
#[test]
fn held_a_reservation_other_than_the_refund_signed_or_its_change_output_is_refused() {
    // Refund signed for X; Y (same inputs, another fee) announced.
    let (mut sim, x) = seller_gone_with_a_reservation(100);
    let (_, y) = seller_gone_with_a_reservation(200);
    assert_ne!(x.txid(), y.txid());
    assert!(matches!(
        sign_refund_of(&mut sim, Outpoint::new(x.txid(), 0)),
        PeerReply::Signature { .. }
    ));
    assert_eq!(
        sim.chain_mut(CHAIN_D).broadcast(&y),
        BroadcastOutcome::Accepted
    );
    sim.mine(CHAIN_D, 1);
    let beef = sim.chain(CHAIN_D).atomic_beef(&y.txid()).unwrap();
    assert_eq!(
        sim.call(Role::Seller, PeerRequest::ReservationReady { beef })
            .unwrap(),
        PeerReply::Refused {
            reason: format!(
                "reservation {} is not the one whose refund we signed ({})",
                y.txid(),
                x.txid()
            )
        }
    );
    assert!(logged(&sim, Role::Buyer, "counterparty_misbehaved"));

    // Refund signed for the change output of the real reservation.
    let (mut sim, x) = seller_gone_with_a_reservation(100);
    assert_eq!(x.outputs.len(), 2);
    assert!(matches!(
        sign_refund_of(&mut sim, Outpoint::new(x.txid(), 1)),
        PeerReply::Signature { .. }
    ));
    sim.chain_mut(CHAIN_D).broadcast(&x);
    sim.mine(CHAIN_D, 1);
    let beef = sim.chain(CHAIN_D).atomic_beef(&x.txid()).unwrap();
    assert_eq!(
        sim.call(Role::Seller, PeerRequest::ReservationReady { beef })
            .unwrap(),
        PeerReply::Refused {
            reason: format!(
                "reservation {}: output 1 is not an escrow script: script does not match the template at byte offset 0",
                x.txid()
            )
        }
    );
    sim.run_until(status_is(Role::Buyer, Status::Refunded), 300)
        .unwrap();
    assert_clean(&sim);
    assert!(sim.claim(Role::Buyer).is_none());
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        FUNDS - RESERVATION_FEE - SPEND_FEE
    );
}

/// A reservation announced with a BEEF that SPV accepts (its parent is
/// proven) but that is itself unmined is not verified: "not yet".
#[test]
fn held_an_unmined_reservation_is_answered_not_yet() {
    let (mut sim, x) = seller_gone_with_a_reservation(100);
    sign_refund_of(&mut sim, Outpoint::new(x.txid(), 0));
    assert_eq!(
        sim.chain_mut(CHAIN_D).broadcast(&x),
        BroadcastOutcome::Accepted
    );
    let parent = x.inputs[0].prev_out.txid;
    let mut beef = Beef::from_bytes(&sim.chain(CHAIN_D).atomic_beef(&parent).unwrap()).unwrap();
    beef.add_transaction(x.clone());
    let beef = beef.to_atomic(&x.txid()).unwrap().to_bytes();
    let before = sim.events(Role::Buyer).len();
    assert_eq!(
        sim.call(Role::Seller, PeerRequest::ReservationReady { beef })
            .unwrap(),
        PeerReply::NotYet {
            reason: "the reservation has no BUMP (not yet mined)".into()
        }
    );
    assert_eq!(sim.events(Role::Buyer).len(), before);
}

/// The buyer's claim is built, not broadcast, its Execute not sent: the
/// seller is shown tokens and claims by the buyer. Returns the sim, the
/// token the seller granted and the buyer's claim.
fn seller_awaiting_execute() -> (Sim, Token, Transaction) {
    let sim = crashed_after("claim_built", Role::Buyer);
    let token = sim
        .events(Role::Buyer)
        .iter()
        .find_map(|e| match e {
            Event::TokenReceived { token } => Some(token.clone()),
            _ => None,
        })
        .unwrap();
    let claim = sim.claim(Role::Buyer).unwrap().clone();
    (sim, token, claim)
}

/// Tokens: another saga's token for the right reservation, a token signed
/// by another gateway's key, a claim of another outpoint (the seller's
/// change) — refused; a token used at exactly `not_after + skew` — accepted.
#[test]
fn held_tokens_of_another_saga_or_issuer_and_claims_of_another_outpoint_are_refused() {
    let (mut sim, token, claim) = seller_awaiting_execute();
    let mut other_saga = sim.terms().saga_id.as_bytes().to_owned();
    other_saga[15] ^= 1;
    let other_saga = saga_core::terms::SagaId::from_bytes(other_saga).unwrap();
    let reissue = |saga_id, key_n: u8| {
        Token::issue(
            token.token_id,
            saga_id,
            token.reservation,
            SELLER,
            BUYER,
            token.not_after,
            &key(key_n),
        )
        .unwrap()
    };
    let execute = |token: Token, claim: Transaction| PeerMessage::Execute { token, claim };
    refused_exactly(
        &mut sim,
        Role::Seller,
        BUYER,
        execute(reissue(other_saga, 4), claim.clone()),
        Reject::Token(TokenError::WrongGrant),
    );
    refused_exactly(
        &mut sim,
        Role::Seller,
        BUYER,
        execute(reissue(token.saga_id, 77), claim.clone()),
        Reject::Token(TokenError::WrongIssuerKey),
    );
    // A claim of another outpoint (the seller's change output).
    let seller_escrow = escrow(&sim, Role::Seller);
    let mut elsewhere = claim.clone();
    elsewhere.inputs[0].prev_out = Outpoint::new(seller_escrow.txid, 1);
    refused_exactly(
        &mut sim,
        Role::Seller,
        BUYER,
        execute(token.clone(), elsewhere.clone()),
        Reject::PeerMisbehaved(format!(
            "claim {} does not spend {seller_escrow} with the preimage of H",
            elsewhere.txid(),
        )),
    );
    // At the edge of the skew tolerance (2 s in fast-test.toml): accepted.
    sim.advance(token.not_after.0 + 2 - sim.now().0);
    let d = sim
        .deliver(Role::Seller, BUYER, execute(token.clone(), claim))
        .unwrap();
    assert_eq!(d.reply, Some(PeerReply::Ack));
    assert_eq!(d.consumed_tokens, [token.token_id]);
    assert_clean(&sim);
}

/// A token whose issuer field names another gateway than the caller is
/// refused by the buyer, whatever its signature.
#[test]
fn held_a_granted_token_naming_another_issuer_is_refused() {
    let mut sim = started();
    sim.crash_on(Role::Buyer, "counter_reservation_verified", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    assert!(logged(&sim, Role::Buyer, "counter_reservation_verified"));
    let token = Token::issue(
        TokenId([3; 16]),
        sim.terms().saga_id,
        escrow(&sim, Role::Seller),
        STRANGER,
        BUYER,
        UnixTime(sim.now().0 + 60),
        &key(4),
    )
    .unwrap();
    refused_exactly(
        &mut sim,
        Role::Buyer,
        SELLER,
        PeerMessage::GrantToken { token },
        Reject::PeerMisbehaved(format!("token issued by {STRANGER}, sent by {SELLER}")),
    );
}

/// Every peer message from a gateway that is no party is refused as such,
/// in the middle of a swap.
#[test]
fn held_every_message_from_a_non_party_is_refused() {
    let (mut sim, token, claim) = seller_awaiting_execute();
    let tx = claim.clone();
    let messages = [
        PeerMessage::SignRefund { refund: tx.clone() },
        PeerMessage::GrantToken {
            token: token.clone(),
        },
        PeerMessage::Execute { token, claim },
        PeerMessage::SignCancel { cancel: tx },
        PeerMessage::Cancel { reason: "x".into() },
    ];
    for message in messages {
        refused_exactly(
            &mut sim,
            Role::Seller,
            STRANGER,
            message,
            Reject::NotAParty {
                caller: STRANGER.into(),
            },
        );
    }
}

/// A second proposal reusing a hashlock the seller agreed to before is
/// refused by the store in the same append (DESIGN.md §3.1).
#[test]
fn held_a_proposal_reusing_h_is_refused_by_the_store() {
    let mut sim = started();
    sim.run_until(|s| logged(s, Role::Seller, "terms_agreed"), 10)
        .unwrap();
    let mut second = sim.terms().clone();
    second.saga_id = saga_core::terms::SagaId::new_v7(sim.now().0 * 1000 + 1, &[8; 10]);
    let signature = second.sign(Role::Buyer, &key(1)).unwrap();
    let mut fresh = saga_core::saga::Saga::new(sim.context(Role::Seller).clone());
    fresh.observe_tip(CHAIN_P, sim.chain(CHAIN_P).tip());
    fresh.observe_tip(CHAIN_D, sim.chain(CHAIN_D).tip());
    let decision = fresh
        .handle(
            Input::Proposal {
                caller: BUYER.into(),
                terms: Box::new(second.clone()),
                buyer_signature: signature,
                exposure: Satoshis(0),
            },
            sim.now(),
        )
        .unwrap();
    assert_eq!(decision.new_hashlocks, [second.hash_lock]);
    let mut store = sim.store(Role::Seller).clone();
    assert_eq!(
        store.append(&decision),
        Err(saga_testkit::store::AppendError::HashlockSeen(
            second.hash_lock
        ))
    );
}

/// C2 at its edge: the seller reserves with D's tip exactly at
/// `T_D − m_D − K_D`, and gives its reservation up one block later.
#[test]
fn held_the_seller_reserves_at_the_c2_limit_and_not_one_block_later() {
    for (past, expect_broadcast) in [(0, true), (1, false)] {
        let mut sim = crashed_after("refund_countersigned", Role::Seller);
        let t_d = sim.terms().delivery.refund_height;
        let limit = Height(t_d.0 - 3 - 2); // m_D = 3, K_D = 2
        sim.mine_to(CHAIN_D, Height(limit.0 + past));
        sim.restart(Role::Seller);
        let now = sim.now();
        let effects = sim.saga(Role::Seller).unwrap().pending_effects(now);
        let broadcast = effects.iter().any(|e| {
            matches!(
                e,
                saga_core::saga::Effect::Broadcast {
                    purpose: saga_core::saga::TxPurpose::Reservation,
                    ..
                }
            )
        });
        assert_eq!(broadcast, expect_broadcast, "tip at limit + {past}");
    }
}

/// C1 at its edge: with the token in hand, the buyer claims while D's tip
/// is `T_D − m_D − 1`, and not once it is `T_D − m_D`.
#[test]
fn held_the_buyer_claims_below_t_d_minus_m_and_not_at_it() {
    for (tip_below, expect_claim) in [(4, true), (3, false)] {
        let mut sim = started();
        sim.crash_on(Role::Seller, "token_granted", Role::Buyer);
        sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
            .unwrap();
        let t_d = sim.terms().delivery.refund_height;
        sim.mine_to(CHAIN_D, Height(t_d.0 - tip_below));
        sim.restart(Role::Buyer);
        sim.auto_advance = false;
        sim.run_until(|s| logged(s, Role::Buyer, "token_received"), 10)
            .unwrap();
        for _ in 0..3 {
            sim.round();
        }
        assert_eq!(
            logged(&sim, Role::Buyer, "claim_broadcast"),
            expect_claim,
            "tip at T_D − {tip_below}"
        );
        assert!(!logged(&sim, Role::Buyer, "claim_built") || expect_claim);
    }
}

/// The cancel order (DESIGN.md §3.1): the seller does not sign the buyer's
/// cancel while its own D is out; the buyer does not sign the seller's once
/// its claim is broadcast.
#[test]
fn held_cancels_are_signed_only_in_the_safe_order() {
    let mut sim = started();
    sim.run_until(|s| logged(s, Role::Seller, "reservation_broadcast"), 50)
        .unwrap();
    let terms = sim.terms().clone();
    let buyer_cancel = legs::build_cancel(
        &terms,
        Leg::Payment,
        escrow(&sim, Role::Buyer),
        Satoshis(SPEND_FEE),
    )
    .unwrap();
    assert_eq!(
        sim.call(
            Role::Buyer,
            PeerRequest::SignCancel {
                cancel: buyer_cancel
            }
        )
        .unwrap(),
        PeerReply::NotYet {
            reason: "our own reservation is not back yet".into()
        }
    );
    assert!(!logged(&sim, Role::Seller, "cancel_signed"));

    let mut sim = crashed_after("claim_broadcast", Role::Buyer);
    sim.restart(Role::Buyer);
    let seller_cancel = legs::build_cancel(
        &terms,
        Leg::Delivery,
        escrow(&sim, Role::Seller),
        Satoshis(SPEND_FEE),
    )
    .unwrap();
    assert_eq!(
        sim.call(
            Role::Seller,
            PeerRequest::SignCancel {
                cancel: seller_cancel
            }
        )
        .unwrap(),
        PeerReply::Refused {
            reason: "our claim of your reservation is already broadcast".into()
        }
    );
    assert!(!logged(&sim, Role::Buyer, "cancel_signed"));
}
