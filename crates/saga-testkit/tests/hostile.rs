//! A lying counterparty: reservations that contradict the terms, and
//! tokens that are forged, held by someone else, expired or replayed
//! (DESIGN.md §3.3 step 1, §3.4).

use bsv_format::Outpoint;
use saga_core::legs;
use saga_core::saga::{Event, Input, PeerMessage, PeerReply, PeerRequest, Reject, Status};
use saga_core::terms::{Leg, Role};
use saga_core::token::{Token, TokenError};
use saga_core::units::{Satoshis, UnixTime};
use saga_testkit::fixtures::{key, BUYER, CHAIN_D, CHAIN_P, SELLER};
use saga_testkit::{FeedError, Sim, SimConfig};

const RESERVATION_FEE: u64 = 36;
const SPEND_FEE: u64 = 24;

fn logged(sim: &Sim, role: Role, name: &str) -> bool {
    sim.events(role).iter().any(|e| e.name() == name)
}

/// How the seller's reservation contradicts the terms.
#[derive(Debug, Clone, Copy)]
enum Lie {
    Amount,
    HashLock,
    BeneficiaryKey,
}

/// The seller verifies the buyer's reservation, then — no longer running
/// the honest saga — reserves on D against terms altered by `lie`, gets the
/// buyer to sign a refund of it, and announces it.
fn seller_reserves_a_lie(lie: Lie) {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.crash_on(Role::Seller, "counter_reservation_verified", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    let terms = sim.terms().clone();
    let mut forged = terms.clone();
    match lie {
        Lie::Amount => forged.delivery.amount = Satoshis(terms.delivery.amount.0 - 1),
        Lie::HashLock => forged.hash_lock = [0x11; 32],
        Lie::BeneficiaryKey => forged.buyer.delivery_escrow_key = key(99).public_key(),
    }
    let Input::ReservationFunded { tx, .. } = sim
        .wallet(Role::Seller)
        .fund(sim.store(Role::Seller), &forged, Leg::Delivery, 100)
        .unwrap()
    else {
        unreachable!("fund returns ReservationFunded")
    };
    assert_eq!(
        sim.chain_mut(CHAIN_D).broadcast(&tx),
        saga_core::saga::BroadcastOutcome::Accepted
    );
    let escrow = Outpoint::new(tx.txid(), 0);
    // The refund itself is well formed for the real terms: the buyer signs it.
    let refund = legs::build_refund(&terms, Leg::Delivery, escrow, Satoshis(SPEND_FEE)).unwrap();
    let reply = sim
        .call(Role::Seller, PeerRequest::SignRefund { refund })
        .unwrap();
    assert!(matches!(reply, PeerReply::Signature { .. }), "{reply:?}");
    sim.mine(CHAIN_D, 1);
    let beef = sim.chain(CHAIN_D).atomic_beef(&tx.txid()).unwrap();
    let reply = sim
        .call(Role::Seller, PeerRequest::ReservationReady { beef })
        .unwrap();
    let PeerReply::Refused { reason } = reply else {
        panic!("{lie:?}: expected a refusal, got {reply:?}")
    };
    let expected = match lie {
        Lie::Amount => "output 0 holds 19999 sat, the terms fix 20000 sat",
        Lie::HashLock => "output 0 locks to hash lock ",
        Lie::BeneficiaryKey => "as the buyer's escrow key (beneficiary), the terms' is ",
    };
    assert!(reason.contains(expected), "{lie:?}: {reason}");
    assert!(logged(&sim, Role::Buyer, "counterparty_misbehaved"));
    assert_eq!(sim.status(Role::Buyer), Some(Status::Compensating));
    // The buyer never claims the lie, never grants a token, and takes its
    // own leg back at T_P (the seller is not there to cancel).
    sim.run_until(|s| s.status(Role::Buyer) == Some(Status::Refunded), 300)
        .unwrap();
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
    assert!(sim.claim(Role::Buyer).is_none());
    assert!(!logged(&sim, Role::Buyer, "token_granted"));
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
}

#[test]
fn a_seller_reservation_with_the_wrong_amount_is_refused_and_the_buyer_refunds() {
    seller_reserves_a_lie(Lie::Amount);
}

#[test]
fn a_seller_reservation_with_the_wrong_hashlock_is_refused_and_the_buyer_refunds() {
    seller_reserves_a_lie(Lie::HashLock);
}

#[test]
fn a_seller_reservation_with_the_wrong_key_is_refused_and_the_buyer_refunds() {
    seller_reserves_a_lie(Lie::BeneficiaryKey);
}

/// A swap stopped with the buyer's claim on chain and its `Execute` not yet
/// sent: the buyer is down. Returns the sim, the buyer's token and claim.
fn buyer_claimed_but_did_not_execute() -> (Sim, Token, bsv_format::Transaction) {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.crash_on(Role::Buyer, "claim_broadcast", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
        .unwrap();
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

fn execute(
    sim: &mut Sim,
    token: &Token,
    claim: &bsv_format::Transaction,
) -> Result<saga_core::saga::Decision, FeedError> {
    sim.deliver(
        Role::Seller,
        BUYER,
        PeerMessage::Execute {
            token: token.clone(),
            claim: claim.clone(),
        },
    )
}

/// `feed` refused with `expected` and the seller's status and effects did
/// not move.
fn refused_without_change(
    sim: &mut Sim,
    token: &Token,
    claim: &bsv_format::Transaction,
    expected: Reject,
) {
    let now = sim.now();
    let before = (
        sim.status(Role::Seller),
        sim.saga(Role::Seller).unwrap().pending_effects(now),
        sim.events(Role::Seller).len(),
    );
    assert_eq!(
        execute(sim, token, claim).unwrap_err(),
        FeedError::Rejected(expected)
    );
    let after = (
        sim.status(Role::Seller),
        sim.saga(Role::Seller).unwrap().pending_effects(now),
        sim.events(Role::Seller).len(),
    );
    assert_eq!(before, after);
}

#[test]
fn a_token_with_a_forged_signature_is_refused() {
    let (mut sim, mut token, claim) = buyer_claimed_but_did_not_execute();
    token.not_after = UnixTime(token.not_after.0 + 3600);
    refused_without_change(
        &mut sim,
        &token,
        &claim,
        Reject::Token(TokenError::BadSignature),
    );
}

#[test]
fn a_token_held_by_another_gateway_is_refused() {
    let (mut sim, token, claim) = buyer_claimed_but_did_not_execute();
    // Signed by the seller's real saga key, but for another holder.
    let other = Token::issue(
        token.token_id,
        token.saga_id,
        token.reservation,
        SELLER,
        "spiffe://org-c.example/gateway/gc",
        token.not_after,
        &key(4),
    )
    .unwrap();
    refused_without_change(
        &mut sim,
        &other,
        &claim,
        Reject::Token(TokenError::WrongHolder {
            holder: "spiffe://org-c.example/gateway/gc".into(),
            caller: BUYER.into(),
        }),
    );
}

#[test]
fn an_expired_token_is_refused() {
    let (mut sim, token, claim) = buyer_claimed_but_did_not_execute();
    let skew = 2; // fast-test.toml clock_skew_tolerance
    sim.advance(token.not_after.0 - sim.now().0 + skew + 1);
    let now = sim.now();
    refused_without_change(
        &mut sim,
        &token,
        &claim,
        Reject::Token(TokenError::Expired {
            not_after: token.not_after,
            now,
            skew_secs: skew,
        }),
    );
}

#[test]
fn the_same_execute_twice_is_acknowledged_once() {
    let (mut sim, token, claim) = buyer_claimed_but_did_not_execute();
    let first = execute(&mut sim, &token, &claim).unwrap();
    assert_eq!(first.reply, Some(PeerReply::Ack));
    assert_eq!(first.consumed_tokens, vec![token.token_id]);
    // The seller had seen the claim on chain already (and learned s); the
    // call records the token against that claim.
    assert!(sim
        .store(Role::Seller)
        .events()
        .iter()
        .any(|e| e.name() == "preimage_learned"));
    assert_eq!(
        first.events,
        [Event::CounterClaimSeen {
            txid: claim.txid(),
            token_id: Some(token.token_id)
        }]
    );
    let second = execute(&mut sim, &token, &claim).unwrap();
    assert_eq!(second.reply, Some(PeerReply::Ack));
    assert!(second.events.is_empty() && second.consumed_tokens.is_empty());
    assert_eq!(sim.store(Role::Seller).consumed_tokens().len(), 1);
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

#[test]
fn a_token_replayed_with_another_claim_is_refused_as_reused() {
    let (mut sim, token, claim) = buyer_claimed_but_did_not_execute();
    execute(&mut sim, &token, &claim).unwrap();
    let terms = sim.terms().clone();
    let escrow = claim.inputs[0].prev_out;
    let other = legs::build_claim(
        &terms,
        Leg::Delivery,
        escrow,
        Satoshis(SPEND_FEE + 1),
        legs::beneficiary_payout_script(&terms, Leg::Delivery),
        &saga_testkit::fixtures::PREIMAGE,
        &key(3),
    )
    .unwrap();
    assert_ne!(other.txid(), claim.txid());
    refused_without_change(
        &mut sim,
        &token,
        &other,
        Reject::TokenReused(token.token_id),
    );
}

#[test]
fn two_concurrent_uses_of_one_token_one_append_wins() {
    // The buyer's claim is built, not yet on chain: neither claim the
    // seller is shown contradicts one it has seen spending its escrow.
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.crash_on(Role::Buyer, "claim_built", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
        .unwrap();
    let token = sim
        .events(Role::Buyer)
        .iter()
        .find_map(|e| match e {
            Event::TokenReceived { token } => Some(token.clone()),
            _ => None,
        })
        .unwrap();
    let claim = sim.claim(Role::Buyer).unwrap().clone();
    let terms = sim.terms().clone();
    let other = legs::build_claim(
        &terms,
        Leg::Delivery,
        claim.inputs[0].prev_out,
        Satoshis(SPEND_FEE + 1),
        legs::beneficiary_payout_script(&terms, Leg::Delivery),
        &saga_testkit::fixtures::PREIMAGE,
        &key(3),
    )
    .unwrap();
    // Both decided from the same state, as two concurrent calls would be.
    let saga = sim.saga(Role::Seller).unwrap();
    let decide = |claim: &bsv_format::Transaction| {
        saga.handle(
            Input::Peer {
                caller: BUYER.into(),
                message: PeerMessage::Execute {
                    token: token.clone(),
                    claim: claim.clone(),
                },
            },
            sim.now(),
        )
        .unwrap()
    };
    let (a, b) = (decide(&claim), decide(&other));
    assert_eq!(a.consumed_tokens, b.consumed_tokens);
    let mut store = sim.store(Role::Seller).clone();
    let seq = store.events().len();
    store.append(&a).unwrap();
    assert_eq!(
        store.append(&b),
        Err(saga_testkit::store::AppendError::TokenConsumed {
            token: token.token_id,
            by_seq: seq
        })
    );
    assert_eq!(store.events().len(), seq + a.events.len());
}

/// Regression: a refused reservation announced again appended another
/// `CounterpartyMisbehaved` each time (a hostile peer could grow the log
/// without bound, and a duplicate was not a no-op).
#[test]
fn a_lying_reservation_announced_twice_is_refused_alike_and_recorded_once() {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.crash_on(Role::Seller, "counter_reservation_verified", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    let terms = sim.terms().clone();
    let mut forged = terms.clone();
    forged.delivery.amount = Satoshis(terms.delivery.amount.0 + 1);
    let Input::ReservationFunded { tx, .. } = sim
        .wallet(Role::Seller)
        .fund(sim.store(Role::Seller), &forged, Leg::Delivery, 100)
        .unwrap()
    else {
        unreachable!("fund returns ReservationFunded")
    };
    sim.chain_mut(CHAIN_D).broadcast(&tx);
    let refund = legs::build_refund(
        &terms,
        Leg::Delivery,
        Outpoint::new(tx.txid(), 0),
        Satoshis(SPEND_FEE),
    )
    .unwrap();
    sim.call(Role::Seller, PeerRequest::SignRefund { refund })
        .unwrap();
    sim.mine(CHAIN_D, 1);
    let beef = sim.chain(CHAIN_D).atomic_beef(&tx.txid()).unwrap();
    let first = sim
        .call(
            Role::Seller,
            PeerRequest::ReservationReady { beef: beef.clone() },
        )
        .unwrap();
    let logged_after_first = sim.events(Role::Buyer).len();
    let second = sim
        .call(Role::Seller, PeerRequest::ReservationReady { beef })
        .unwrap();
    assert_eq!(first, second);
    assert!(matches!(first, PeerReply::Refused { .. }));
    assert_eq!(sim.events(Role::Buyer).len(), logged_after_first);
    assert_eq!(
        sim.events(Role::Buyer)
            .iter()
            .filter(|e| e.name() == "counterparty_misbehaved")
            .count(),
        1
    );
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}
