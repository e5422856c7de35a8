//! The saga driver end to end: the buyer's gateway GA and the seller's GB,
//! each a `saga_runtime::driver::Driver` over its own `MemLog` (which is also
//! its wallet's UTXO store, under a `KeyWallet`), talking through an
//! in-memory `PeerTransport`, on two chainsims (`chain-p`, `chain-d`)
//! reached through the real HTTP clients of `src/chain`, with
//! `policies/fast-test.toml` as both parties' policy.
//!
//! Only chain heights decide these scenarios: the UTC clock is a manual one
//! that never moves (quote expiry and reservation deadline never pass), and
//! blocks are mined by a test miner — one block on a chain after each
//! broadcast to it (so no deadline in blocks is used up while the machine is
//! slow), and steadily once a scenario waits for a refund height. Every wait
//! is bounded and fails with both parties' statuses and events.
//!
//! The peer transport is the callee's gateway as the caller reaches it: it
//! turns a request into the callee's input (a proposal creates the seller's
//! saga; a `ReservationReady` BEEF is SPV-verified against the callee's own
//! tracker first), and per message kind it can answer, drop (unreachable) or
//! hold the call until released — which is how a scenario silences a party
//! or stops a driver at an exact step.

#[path = "driver/support.rs"]
mod support;

use std::sync::atomic::Ordering;

use bsv_format::Transaction;
use saga_core::legs::{fee_for_size, MAX_LEG_SPEND_BYTES};
use saga_core::saga::{Effect, EffectKey, Event, MessageKind, Saga, Status};
use saga_core::terms::{Role, SagaId, Terms};
use saga_core::wallet::{Basket, BasketBalance};
use saga_core::{Height, Satoshis, UnixTime};
use saga_runtime::TxState;
use serde_json::json;
use support::*;

// ---------------------------------------------------------------------------
// What the logs say

fn reservation(events: &[Event]) -> (Transaction, Satoshis) {
    events
        .iter()
        .find_map(|e| match e {
            Event::ReservationBuilt { tx, fee } => Some((tx.clone(), *fee)),
            _ => None,
        })
        .expect("a reservation was built")
}

fn claim(events: &[Event]) -> Transaction {
    events
        .iter()
        .find_map(|e| match e {
            Event::ClaimBuilt { tx } => Some(tx.clone()),
            _ => None,
        })
        .expect("a claim was built")
}

fn refund(events: &[Event]) -> Transaction {
    events
        .iter()
        .find_map(|e| match e {
            Event::RefundCountersigned { refund } => Some(refund.clone()),
            _ => None,
        })
        .expect("a refund was countersigned")
}

/// The fee our policy pays for a one-input escrow spend (claim, refund).
fn spend_fee() -> u64 {
    fee_for_size(MAX_LEG_SPEND_BYTES, 100).0
}

fn available(satoshis: u64, outputs: u64) -> BasketBalance {
    BasketBalance {
        available: Satoshis(satoshis),
        available_outputs: outputs,
        ..BasketBalance::default()
    }
}

/// The reservation spent the party's one funding output of `funds`: escrow
/// of `amount`, change, and `fee` exactly what the inputs leave over.
fn check_reservation(tx: &Transaction, fee: Satoshis, funds: u64, amount: u64) {
    assert_eq!(tx.inputs.len(), 1);
    assert_eq!(tx.outputs[0].satoshis, amount);
    let out: u64 = tx.outputs.iter().map(|o| o.satoshis).sum();
    assert_eq!(funds - out, fee.0);
    assert!(fee.0 > 0);
}

/// Each step that acts on a chain or spends happened once, however the
/// effects were retried.
fn check_once(events: &[Event], names: &[&str]) {
    for name in names {
        assert_eq!(
            count(events, name),
            1,
            "{name} in {:?}",
            events.iter().map(event_name).collect::<Vec<_>>()
        );
    }
}

/// Both parties completed: each side's balance on each chain moved by
/// exactly the amount and the fees of the transactions it paid for, both
/// claims are mined, and every escrow is spent.
async fn check_completed(world: &World, saga_id: &SagaId) {
    let b = world.buyer.events(saga_id).await;
    let s = world.seller.events(saga_id).await;
    let steps = [
        "ReservationBuilt",
        "RefundCountersigned",
        "ReservationBroadcast",
        "ReservationConfirmed",
        "ClaimBuilt",
        "ClaimBroadcast",
        "ClaimConfirmed",
        "CounterClaimConfirmed",
    ];
    check_once(&b, &steps);
    check_once(&s, &steps);
    let (res_b, fee_b) = reservation(&b);
    let (res_s, fee_s) = reservation(&s);
    check_reservation(&res_b, fee_b, BUYER_FUNDS, PAYMENT);
    check_reservation(&res_s, fee_s, SELLER_FUNDS, DELIVERY);
    let (claim_b, claim_s) = (claim(&b), claim(&s));
    // The buyer claimed D's escrow, the seller P's.
    assert_eq!(claim_b.inputs[0].prev_out.txid, res_s.txid());
    assert_eq!(claim_s.inputs[0].prev_out.txid, res_b.txid());
    assert_eq!(claim_b.outputs[0].satoshis, DELIVERY - spend_fee());
    assert_eq!(claim_s.outputs[0].satoshis, PAYMENT - spend_fee());
    for (chain_id, txid) in [(D, claim_b.txid()), (P, claim_s.txid())] {
        let state = world.status_on_chain(chain_id, &txid).await;
        assert!(matches!(state, TxState::Mined(_)), "{state:?}");
    }

    // Buyer: paid the amount and its reservation fee on P; received the
    // delivery less its claim fee on D.
    let buyer = &world.buyer;
    assert_eq!(
        buyer.balance(P, Basket::Funding).await,
        available(BUYER_FUNDS - PAYMENT - fee_b.0, 1)
    );
    assert_eq!(
        buyer.balance(P, Basket::Escrow).await,
        BasketBalance::default()
    );
    assert_eq!(
        buyer.balance(P, Basket::Received).await,
        BasketBalance::default()
    );
    assert_eq!(
        buyer.balance(D, Basket::Received).await,
        available(DELIVERY - spend_fee(), 1)
    );
    assert_eq!(
        buyer.balance(D, Basket::Funding).await,
        BasketBalance::default()
    );
    // Seller: the mirror image.
    let seller = &world.seller;
    assert_eq!(
        seller.balance(D, Basket::Funding).await,
        available(SELLER_FUNDS - DELIVERY - fee_s.0, 1)
    );
    assert_eq!(
        seller.balance(D, Basket::Escrow).await,
        BasketBalance::default()
    );
    assert_eq!(
        seller.balance(P, Basket::Received).await,
        available(PAYMENT - spend_fee(), 1)
    );
    assert_eq!(
        seller.balance(D, Basket::Received).await,
        BasketBalance::default()
    );
}

// ---------------------------------------------------------------------------
// Scenarios

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_parties_complete_and_balances_move_by_the_amounts_less_fees() {
    let world = World::new("happy").await;
    let (saga_id, _) = world.start(1).await;
    world.until_states(&saga_id, "completed", "completed").await;
    check_completed(&world, &saga_id).await;
    // Nothing else for the buyer to do: the seller learned `s` from its claim.
    let s = world.seller.events(&saga_id).await;
    assert_eq!(count(&s, "PreimageLearned"), 1);
    assert_eq!(
        world.buyer.driver().status(saga_id).await.unwrap().1,
        None,
        "no attention"
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_is_answered_alike_and_acted_on_once() {
    let world = World::new("twice").await;
    world.buyer.gateway.set_all(Mode::Twice);
    world.seller.gateway.set_all(Mode::Twice);
    let (saga_id, _) = world.start(7).await;
    world.until_states(&saga_id, "completed", "completed").await;
    check_completed(&world, &saga_id).await;
    for gateway in [&world.buyer.gateway, &world.seller.gateway] {
        assert_eq!(gateway.mismatches(), Vec::<String>::new());
    }
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_the_broadcaster_dropped_is_broadcast_again() {
    let world = World::new("dropped").await;
    // The next broadcast on P (the buyer's reservation) is answered
    // SEEN_ON_NETWORK and forgotten.
    let status = world
        .http
        .post(format!("{}/sim/faults", world.sims[P].url()))
        .json(&json!({ "kind": "drop", "count": 1 }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let (saga_id, _) = world.start(2).await;
    world.until_states(&saga_id, "completed", "completed").await;
    check_completed(&world, &saga_id).await;
    world.stop().await;
}

/// The seller agrees and countersigns the buyer's refund, then hears
/// nothing more (its gateway drops every other message); blocks come
/// steadily once the buyer's reservation is confirmed. Returns when the
/// buyer is refunded.
async fn seller_never_reserves(world: &World, n: u8) -> (SagaId, Terms) {
    world
        .seller
        .gateway
        .drop_all_but(&[MessageKind::Propose, MessageKind::SignRefund]);
    let (saga_id, terms) = world.start(n).await;
    world
        .until(&saga_id, "the buyer's reservation to confirm", |b, _| {
            count(b, "ReservationConfirmed") == 1
        })
        .await;
    world.steady.store(true, Ordering::SeqCst);
    // Chain D passed the seller's C2 limit meanwhile: it gave up reserving.
    world.until_states(&saga_id, "refunded", "cancelled").await;
    (saga_id, terms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyer_is_refunded_after_t_p_when_the_seller_never_reserves() {
    let world = World::new("never").await;
    let (saga_id, terms) = seller_never_reserves(&world, 3).await;
    let b = world.buyer.events(&saga_id).await;
    let s = world.seller.events(&saga_id).await;
    check_once(
        &b,
        &[
            "ReservationBuilt",
            "ReservationBroadcast",
            "RefundBroadcast",
            "RefundConfirmed",
        ],
    );
    assert_eq!(count(&b, "ClaimBuilt"), 0);
    assert_eq!(
        count(&s, "ReservationBuilt"),
        0,
        "the seller never reserved"
    );
    // The refund is the one the seller countersigned: final from T_P + 1.
    let refund_tx = refund(&b);
    assert_eq!(refund_tx.lock_time, terms.payment.refund_height.0);
    let TxState::Mined(inclusion) = world.status_on_chain(P, &refund_tx.txid()).await else {
        panic!("the refund is not mined");
    };
    assert!(inclusion.height > terms.payment.refund_height.0);
    // Back on P: everything but the reservation's and the refund's fees.
    let (res, fee) = reservation(&b);
    check_reservation(&res, fee, BUYER_FUNDS, PAYMENT);
    assert_eq!(
        world.buyer.balance(P, Basket::Funding).await,
        available(BUYER_FUNDS - PAYMENT - fee.0, 1)
    );
    assert_eq!(
        world.buyer.balance(P, Basket::Escrow).await,
        BasketBalance::default()
    );
    assert_eq!(
        world.buyer.balance(P, Basket::Received).await,
        available(PAYMENT - spend_fee(), 1)
    );
    assert_eq!(
        world.seller.balance(D, Basket::Funding).await,
        available(SELLER_FUNDS, 1),
        "the seller's funds never moved"
    );
    world.stop().await;
}

/// `Status::is_terminal` says nothing more will happen, and the driver's
/// projection promises nothing more is appended: a refunded buyer whose
/// `ReservationReady` was never acknowledged lists no effect (it once kept
/// `SendToPeer(ReservationReady)` and a `WakeAt` of the reservation deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refunded_saga_has_no_pending_effects() {
    let world = World::new("terminal").await;
    let (saga_id, _) = seller_never_reserves(&world, 6).await;
    let events = world.buyer.events(&saga_id).await;
    let terms = events
        .iter()
        .find_map(|e| match e {
            Event::TermsProposed { terms, .. } => Some(terms.as_ref().clone()),
            _ => None,
        })
        .expect("the log starts with the terms");
    let ctx = world
        .buyer
        .ports
        .contexts
        .context(saga_id, Role::Buyer, &terms)
        .await
        .unwrap();
    let mut saga = Saga::replay(ctx, &events);
    for chain_id in [P, D] {
        saga.observe_tip(chain_id, Height(world.tip(chain_id).await));
    }
    assert_eq!(saga.status(), Status::Refunded);
    let pending: Vec<EffectKey> = saga
        .pending_effects(UnixTime(NOW))
        .iter()
        .map(Effect::key)
        .collect();
    // Today: [Send(ReservationReady), WakeAt].
    assert_eq!(pending, []);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seller_is_refunded_at_t_d_when_the_buyer_vanishes_after_both_reservations() {
    let world = World::new("vanish").await;
    // The buyer never receives the seller's token, so it never claims.
    world.buyer.gateway.set(MessageKind::GrantToken, Mode::Drop);
    let (saga_id, terms) = world.start(4).await;
    world
        .until(&saga_id, "both reservations verified", |b, s| {
            count(b, "CounterReservationVerified") == 1
                && count(s, "CounterReservationVerified") == 1
                && count(s, "ReservationConfirmed") == 1
        })
        .await;
    world.buyer.crash();
    world.steady.store(true, Ordering::SeqCst);
    world.until_states(&saga_id, "executing", "refunded").await;

    let b = world.buyer.events(&saga_id).await;
    let s = world.seller.events(&saga_id).await;
    assert_eq!(count(&b, "ClaimBuilt"), 0, "the buyer never claimed");
    assert_eq!(count(&s, "PreimageLearned"), 0);
    check_once(
        &s,
        &[
            "ReservationBuilt",
            "ReservationBroadcast",
            "RefundBroadcast",
            "RefundConfirmed",
        ],
    );
    let refund_tx = refund(&s);
    assert_eq!(refund_tx.lock_time, terms.delivery.refund_height.0);
    let TxState::Mined(inclusion) = world.status_on_chain(D, &refund_tx.txid()).await else {
        panic!("the refund is not mined");
    };
    assert!(inclusion.height > terms.delivery.refund_height.0);
    let (res, fee) = reservation(&s);
    check_reservation(&res, fee, SELLER_FUNDS, DELIVERY);
    assert_eq!(
        world.seller.balance(D, Basket::Funding).await,
        available(SELLER_FUNDS - DELIVERY - fee.0, 1)
    );
    assert_eq!(
        world.seller.balance(D, Basket::Escrow).await,
        BasketBalance::default()
    );
    assert_eq!(
        world.seller.balance(D, Basket::Received).await,
        available(DELIVERY - spend_fee(), 1)
    );
    assert_eq!(
        world.seller.balance(P, Basket::Received).await,
        BasketBalance::default()
    );
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seller_and_buyer_restart_mid_saga_and_both_still_complete() {
    let world = World::new("restart").await;
    // Hold the seller's SignRefund (at the buyer) and the buyer's Execute (at
    // the seller): each party is then stopped at an exact step.
    world.buyer.gateway.set(MessageKind::SignRefund, Mode::Hold);
    world.seller.gateway.set(MessageKind::Execute, Mode::Hold);
    let (saga_id, _) = world.start(5).await;

    // The seller dies with its reservation built and signed, its inputs
    // reserved, but not yet broadcast.
    world
        .until(&saga_id, "the seller's reservation to be built", |_, s| {
            count(s, "ReservationBuilt") == 1
        })
        .await;
    world
        .until_held(&world.buyer.gateway, &saga_id, "the seller's SignRefund")
        .await;
    world.seller.crash();
    assert_eq!(
        world.seller.state(&saga_id).await.0,
        "reserving",
        "crashed in the middle"
    );
    let seller = world.seller.start_driver();
    assert_eq!(seller.recover().await.unwrap(), 1);
    world
        .buyer
        .gateway
        .set(MessageKind::SignRefund, Mode::Answer);

    // The buyer dies right after broadcasting its claim, before telling.
    world
        .until(&saga_id, "the buyer's claim to be broadcast", |b, _| {
            count(b, "ClaimBroadcast") == 1
        })
        .await;
    world
        .until_held(&world.seller.gateway, &saga_id, "the buyer's Execute")
        .await;
    world.buyer.crash();
    let buyer = world.buyer.start_driver();
    assert_eq!(buyer.recover().await.unwrap(), 1);
    world.seller.gateway.set(MessageKind::Execute, Mode::Answer);

    world.until_states(&saga_id, "completed", "completed").await;
    check_completed(&world, &saga_id).await;
    world.stop().await;
}

/// Two sellers on one driver wait for the same height of chain D (their C2
/// limit). A turn of one of them reads the tip first and reaches it; the
/// other's wake-up then is no longer pending when its runner next looks —
/// and must still make that saga decide (it once vanished silently, and
/// the second seller stayed `reserving` for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sagas_waiting_for_one_height_both_decide_when_another_turn_sees_it_first() {
    let world = World::new("one-height").await;
    world.fund(&world.buyer, P, BUYER_FUNDS).await;
    world
        .seller
        .gateway
        .drop_all_but(&[MessageKind::Propose, MessageKind::SignRefund]);
    let (a, terms) = world.start(8).await;
    let (b, _) = world.start_another(9).await;
    for id in [&a, &b] {
        world
            .until(
                id,
                "the seller to countersign the buyer's refund",
                |_, s| count(s, "CounterRefundSigned") == 1,
            )
            .await;
    }
    // Both sellers give up once D passes T_D − m_D − K_D; both sagas were
    // agreed on the same tips, so one height wakes both. Jump there at once,
    // then let a turn of saga a read the new tip before b's runner does.
    let limit = terms.delivery.refund_height.0 - 3 - 2;
    let blocks = limit + 1 - world.tip(D).await;
    let body: serde_json::Value = world
        .http
        .post(format!("{}/sim/mine", world.sims[D].url()))
        .json(&json!({ "blocks": blocks }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tip"], limit + 1);
    let seller = world.seller.driver();
    seller
        .submit(a, None, saga_core::saga::Input::Tick, None)
        .await
        .unwrap();
    for id in [&a, &b] {
        world
            .until(id, "the seller to abandon its reservation (C2)", |_, s| {
                count(s, "ReservationAbandoned") == 1
            })
            .await;
        assert_eq!(world.seller.state(id).await.0, "cancelled");
    }
    world.stop().await;
}
