//! Whole swaps between two simulated parties running the real saga:
//! the happy path and each way a swap ends otherwise (DESIGN.md §3.3).

use bsv_format::{Outpoint, Transaction};
use saga_core::legs;
use saga_core::saga::{Event, Status};
use saga_core::terms::Role;
use saga_testkit::fixtures::{AMOUNT_D, AMOUNT_P, CHAIN_D, CHAIN_P, PREIMAGE};
use saga_testkit::net::NotaryMode;
use saga_testkit::{Sim, SimConfig};

/// Reservation fee: one P2PKH input, escrow and change outputs, 352 bytes
/// at 100 sat/kB.
const RESERVATION_FEE: u64 = 36;
/// Claim / refund / cancel fee: 235 bytes at 100 sat/kB.
const SPEND_FEE: u64 = 24;

fn both(s: Status) -> impl Fn(&Sim) -> bool {
    move |sim: &Sim| sim.status(Role::Buyer) == Some(s) && sim.status(Role::Seller) == Some(s)
}

fn escrow(sim: &Sim, role: Role) -> Outpoint {
    Outpoint::new(sim.reservation(role).expect("reservation built").txid(), 0)
}

fn spender(sim: &Sim, chain: &str, op: &Outpoint) -> Transaction {
    sim.chain(chain)
        .spender(op)
        .cloned()
        .unwrap_or_else(|| panic!("{op} unspent on {chain}"))
}

fn assert_clean(sim: &Sim) {
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

fn started(cfg: &SimConfig) -> Sim {
    let mut sim = Sim::new(cfg);
    sim.start().expect("the buyer starts");
    sim
}

#[test]
fn happy_path_both_parties_complete_with_exact_balances() {
    let mut sim = started(&SimConfig::default());
    let before = [
        sim.balance(Role::Buyer, CHAIN_P),
        sim.balance(Role::Buyer, CHAIN_D),
        sim.balance(Role::Seller, CHAIN_P),
        sim.balance(Role::Seller, CHAIN_D),
    ];
    assert_eq!(before, [100_000, 0, 0, 100_000]);
    sim.run_until(both(Status::Completed), 200).unwrap();
    assert_clean(&sim);

    // The buyer's claim spends the seller's escrow and reveals s; the
    // seller's claim spends the buyer's.
    let seller_escrow = escrow(&sim, Role::Seller);
    let buyer_claim = spender(&sim, CHAIN_D, &seller_escrow);
    assert_eq!(Some(&buyer_claim), sim.claim(Role::Buyer));
    let terms = sim.terms().clone();
    assert_eq!(
        legs::extract_preimage(&buyer_claim, &seller_escrow, &terms.hash_lock),
        Some(PREIMAGE)
    );
    let buyer_escrow = escrow(&sim, Role::Buyer);
    let seller_claim = spender(&sim, CHAIN_P, &buyer_escrow);
    assert_eq!(Some(&seller_claim), sim.claim(Role::Seller));
    assert!(sim.chain(CHAIN_D).block_of(&buyer_claim.txid()).is_some());
    assert!(sim.chain(CHAIN_P).block_of(&seller_claim.txid()).is_some());

    let after = [
        sim.balance(Role::Buyer, CHAIN_P),
        sim.balance(Role::Buyer, CHAIN_D),
        sim.balance(Role::Seller, CHAIN_P),
        sim.balance(Role::Seller, CHAIN_D),
    ];
    assert_eq!(
        after,
        [
            100_000 - AMOUNT_P - RESERVATION_FEE,
            AMOUNT_D - SPEND_FEE,
            AMOUNT_P - SPEND_FEE,
            100_000 - AMOUNT_D - RESERVATION_FEE,
        ]
    );
    // The seller learned s from the buyer's Execute (token consumed) or
    // from the chain; either way exactly once.
    let learned: Vec<_> = sim
        .events(Role::Seller)
        .iter()
        .filter(|e| matches!(e, Event::PreimageLearned { .. }))
        .collect();
    assert_eq!(learned.len(), 1);
    assert!(sim.rejects().is_empty(), "{:#?}", sim.rejects());
}

#[test]
fn happy_path_with_a_notary_that_approves() {
    let mut sim = started(&SimConfig {
        notary: true,
        ..SimConfig::default()
    });
    sim.run_until(both(Status::Completed), 200).unwrap();
    assert_clean(&sim);
    for role in [Role::Buyer, Role::Seller] {
        assert!(sim
            .events(role)
            .iter()
            .any(|e| matches!(e, Event::NotaryApproved { .. })));
    }
}

#[test]
fn notary_rejects_and_both_cancel_with_their_own_legs_back() {
    let mut sim = Sim::new(&SimConfig {
        notary: true,
        ..SimConfig::default()
    });
    sim.notary = NotaryMode::Reject;
    sim.start().unwrap();
    sim.run_until(both(Status::Cancelled), 300).unwrap();
    assert_clean(&sim);
    // Each own leg is back less the reservation and cancel fees; nobody claimed.
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert_eq!(
        sim.balance(Role::Seller, CHAIN_D),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert_eq!(sim.balance(Role::Buyer, CHAIN_D), 0);
    assert_eq!(sim.balance(Role::Seller, CHAIN_P), 0);
    assert!(sim.claim(Role::Buyer).is_none());
}

fn logged(sim: &Sim, role: Role, name: &str) -> bool {
    sim.events(role).iter().any(|e| e.name() == name)
}

fn status_is(role: Role, s: Status) -> impl Fn(&Sim) -> bool {
    move |sim: &Sim| sim.status(role) == Some(s)
}

#[test]
fn seller_never_reserves_and_the_buyer_refunds_once_p_reaches_t_p() {
    let mut sim = started(&SimConfig::default());
    // The seller verifies the buyer's reservation, then is never heard of again.
    sim.crash_on(Role::Seller, "counter_reservation_verified", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    assert!(sim.reservation(Role::Seller).is_none());
    let t_p = sim.terms().payment.refund_height;
    sim.run_until(status_is(Role::Buyer, Status::Refunded), 300)
        .unwrap();
    assert_clean(&sim);
    let refund = sim
        .refund(Role::Buyer)
        .expect("countersigned refund")
        .clone();
    let buyer_escrow = escrow(&sim, Role::Buyer);
    assert_eq!(spender(&sim, CHAIN_P, &buyer_escrow).txid(), refund.txid());
    assert_eq!(refund.lock_time, t_p.0);
    // Final from block T_P + 1, not before.
    let mined = sim.chain(CHAIN_P).block_of(&refund.txid()).unwrap();
    assert_eq!(mined.0, t_p.0 + 1);
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert!(sim.claim(Role::Buyer).is_none());
    // Refunded is terminal: nothing is left to watch or wake for (the
    // seller's escrow never existed).
    let now = sim.now();
    assert_eq!(
        sim.saga(Role::Buyer).unwrap().pending_effects(now),
        Vec::new()
    );
}

#[test]
fn buyer_vanishes_after_both_reservations_seller_refunds_at_t_d_buyer_later_at_t_p() {
    let mut sim = started(&SimConfig::default());
    // The buyer goes down as soon as the seller's reservation is out.
    sim.crash_on(Role::Seller, "reservation_broadcast", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
        .unwrap();
    let t_d = sim.terms().delivery.refund_height;
    let t_p = sim.terms().payment.refund_height;
    sim.run_until(status_is(Role::Seller, Status::Refunded), 200)
        .unwrap();
    let seller_refund = sim.refund(Role::Seller).unwrap().clone();
    assert_eq!(
        sim.chain(CHAIN_D).block_of(&seller_refund.txid()),
        Some(saga_core::Height(t_d.0 + 1)),
        "C4: the seller broadcasts as soon as D reaches T_D"
    );
    assert_eq!(
        sim.balance(Role::Seller, CHAIN_D),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    // The buyer comes back later, still before T_P.
    assert!(sim.chain(CHAIN_P).tip() < t_p);
    sim.restart(Role::Buyer);
    sim.run_until(status_is(Role::Buyer, Status::Refunded), 200)
        .unwrap();
    assert_clean(&sim);
    let buyer_refund = sim.refund(Role::Buyer).unwrap().clone();
    assert_eq!(
        sim.chain(CHAIN_P).block_of(&buyer_refund.txid()),
        Some(saga_core::Height(t_p.0 + 1))
    );
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert!(sim.claim(Role::Buyer).is_none() && sim.claim(Role::Seller).is_none());
}

#[test]
fn cooperative_cancel_after_both_reserved_refunds_both_at_once() {
    let mut sim = started(&SimConfig::default());
    sim.run_until(|s| logged(s, Role::Seller, "reservation_broadcast"), 50)
        .unwrap();
    let tip_p = sim.chain(CHAIN_P).tip();
    sim.feed(
        Role::Buyer,
        saga_core::saga::Input::CancelRequested {
            reason: "operator".into(),
        },
    )
    .unwrap();
    sim.run_until(both(Status::Cancelled), 50).unwrap();
    assert_clean(&sim);
    // Immediate: a few blocks, far below either refund height.
    assert!(sim.chain(CHAIN_P).tip().0 < tip_p.0 + 10);
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert_eq!(
        sim.balance(Role::Seller, CHAIN_D),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert!(sim.claim(Role::Buyer).is_none() && sim.claim(Role::Seller).is_none());
    // The seller's D came back before it signed the buyer's cancel (§3.1 order).
    let seller_back = sim
        .events(Role::Seller)
        .iter()
        .position(|e| e.name() == "refund_confirmed")
        .unwrap();
    let seller_signed = sim
        .events(Role::Seller)
        .iter()
        .position(|e| e.name() == "cancel_signed")
        .unwrap();
    assert!(seller_back < seller_signed);
}

#[test]
fn seller_restarted_mid_execution_learns_s_from_the_chain_and_still_claims() {
    let mut sim = started(&SimConfig::default());
    // The seller goes down the moment the buyer's claim is out (so it never
    // gets the Execute call).
    sim.crash_on(Role::Buyer, "claim_broadcast", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    sim.mine(CHAIN_P, 20);
    sim.mine(CHAIN_D, 20);
    // The buyer's Execute cannot reach it either: only the chain can tell.
    sim.partition(Role::Buyer, true);
    sim.restart(Role::Seller);
    sim.run_until(status_is(Role::Seller, Status::Completed), 100)
        .unwrap();
    // The token was never consumed: s came from the chain.
    assert!(sim.store(Role::Seller).consumed_tokens().is_empty());
    sim.partition(Role::Buyer, false);
    sim.run_until(both(Status::Completed), 100).unwrap();
    assert_clean(&sim);
    let learned = sim.events(Role::Seller).iter().find_map(|e| match e {
        Event::PreimageLearned {
            preimage,
            claim_txid,
        } => Some((*preimage, *claim_txid)),
        _ => None,
    });
    let buyer_claim = sim.claim(Role::Buyer).unwrap().txid();
    assert_eq!(learned, Some((PREIMAGE, buyer_claim)));
    let seller_claim = sim.claim(Role::Seller).unwrap().txid();
    let t_p = sim.terms().payment.refund_height;
    assert!(sim.chain(CHAIN_P).block_of(&seller_claim).unwrap() < t_p);
}

/// Regression: a reservation broadcast whose answer was never recorded (a
/// crash between the broadcast and the append) was declared abandoned once
/// the reservation deadline passed — the buyer ended `Cancelled` with its
/// inputs released while its 50,000 sat sat in the escrow on chain, watched
/// by nobody.
#[test]
fn buyer_crashing_between_broadcast_and_record_still_gets_its_leg_back() {
    let mut sim = started(&SimConfig::default());
    sim.crash_on(Role::Buyer, "refund_countersigned", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 20)
        .unwrap();
    // The broadcast ran; its answer died with the process.
    let reservation = sim.reservation(Role::Buyer).unwrap().clone();
    assert_eq!(
        sim.chain_mut(CHAIN_P).broadcast(&reservation),
        saga_core::saga::BroadcastOutcome::Accepted
    );
    sim.advance(303); // past the reservation deadline (300 s) and the skew
    sim.restart(Role::Buyer);
    assert!(!logged(&sim, Role::Buyer, "reservation_abandoned"));
    sim.run_until(
        |s| {
            s.status(Role::Buyer).is_some_and(Status::is_terminal)
                && s.status(Role::Seller).is_some_and(Status::is_terminal)
        },
        300,
    )
    .unwrap();
    assert_clean(&sim);
    assert_eq!(sim.status(Role::Buyer), Some(Status::Cancelled));
    let buyer_escrow = escrow(&sim, Role::Buyer);
    let back = spender(&sim, CHAIN_P, &buyer_escrow);
    assert_eq!(back.outputs[0].satoshis, AMOUNT_P - SPEND_FEE);
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
}

/// The other half: a countersigned reservation that never reached the chain
/// is given up only once P reaches T_P (before that it might still appear).
#[test]
fn buyer_whose_countersigned_reservation_never_went_out_gives_it_up_at_t_p() {
    let mut sim = started(&SimConfig::default());
    sim.crash_on(Role::Buyer, "refund_countersigned", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 20)
        .unwrap();
    sim.advance(303);
    sim.restart(Role::Buyer);
    let t_p = sim.terms().payment.refund_height;
    sim.run_until(status_is(Role::Buyer, Status::Cancelled), 300)
        .unwrap();
    assert_clean(&sim);
    assert_eq!(sim.chain(CHAIN_P).tip(), t_p);
    let reservation = sim.reservation(Role::Buyer).unwrap().txid();
    assert!(!sim.chain(CHAIN_P).knows(&reservation));
    assert_eq!(sim.balance(Role::Buyer, CHAIN_P), 100_000);
}

/// Regression: a claim broadcast whose answer was lost (a crash between the
/// broadcast and the append), found past its deadline after the restart,
/// was abandoned and never watched again: the buyer stayed `Compensating`
/// forever although its claim was confirmed on chain and the swap complete.
#[test]
fn buyer_crashing_between_claim_broadcast_and_record_completes_after_its_deadline() {
    let mut sim = started(&SimConfig::default());
    sim.crash_on(Role::Buyer, "claim_built", Role::Buyer);
    sim.run_until(|s| s.status(Role::Buyer).is_none(), 50)
        .unwrap();
    let claim = sim.claim(Role::Buyer).unwrap().clone();
    assert_eq!(
        sim.chain_mut(CHAIN_D).broadcast(&claim),
        saga_core::saga::BroadcastOutcome::Accepted
    );
    // D passes T_D − m_D (C1) before the buyer is back.
    let t_d = sim.terms().delivery.refund_height;
    sim.mine_to(CHAIN_D, saga_core::Height(t_d.0 - 2));
    sim.restart(Role::Buyer);
    assert!(logged(&sim, Role::Buyer, "claim_abandoned"));
    sim.run_until(both(Status::Completed), 100).unwrap();
    assert_clean(&sim);
    assert_eq!(
        spender(&sim, CHAIN_D, &escrow(&sim, Role::Seller)).txid(),
        claim.txid()
    );
}

/// Regression: an input was judged against the state before the deadlines
/// that time and tips had passed were applied; those were applied after,
/// in the same decision. The seller answered `SignCancel` "not yet" while
/// the same decision gave its (never broadcast) reservation up, and the
/// same call repeated at once was signed: a duplicate was not a no-op.
#[test]
fn a_cancel_asked_as_t_d_passes_is_answered_from_the_state_at_t_d() {
    let mut sim = started(&SimConfig::default());
    // The seller's reservation is countersigned, never broadcast.
    sim.crash_on(Role::Seller, "refund_countersigned", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    sim.auto_advance = false;
    sim.advance(303);
    sim.restart(Role::Seller);
    for _ in 0..3 {
        sim.round();
    }
    assert!(logged(&sim, Role::Buyer, "cancel_requested"));
    assert!(!logged(&sim, Role::Seller, "reservation_abandoned"));
    // D reaches T_D: from now on the seller's reservation is given up.
    let t_d = sim.terms().delivery.refund_height;
    sim.mine_to(CHAIN_D, t_d);
    let terms = sim.terms().clone();
    let cancel = legs::build_cancel(
        &terms,
        saga_core::terms::Leg::Payment,
        escrow(&sim, Role::Buyer),
        saga_core::Satoshis(SPEND_FEE),
    )
    .unwrap();
    let reply = sim
        .call(
            Role::Buyer,
            saga_core::saga::PeerRequest::SignCancel { cancel },
        )
        .unwrap();
    assert!(
        matches!(reply, saga_core::saga::PeerReply::Signature { .. }),
        "{reply:?}"
    );
    let tail: Vec<&str> = sim
        .events(Role::Seller)
        .iter()
        .rev()
        .take(2)
        .map(Event::name)
        .collect();
    assert_eq!(tail, ["cancel_signed", "reservation_abandoned"]);
    assert_clean(&sim);
}

/// A seller that learns `s` only after chain P passed its claim margin
/// (`T_P − m_P`) still claims — it has nothing left to lose, and the claim
/// may beat the buyer's refund — and asks an operator to look.
#[test]
fn seller_learning_s_past_its_margin_still_claims_and_raises_attention() {
    let mut sim = started(&SimConfig::default());
    sim.crash_on(Role::Buyer, "claim_broadcast", Role::Seller);
    sim.run_until(|s| s.status(Role::Seller).is_none(), 50)
        .unwrap();
    sim.mine(CHAIN_D, 5);
    let t_p = sim.terms().payment.refund_height;
    // m_P = 3 in fast-test.toml: the tip is one block past the margin.
    sim.mine_to(CHAIN_P, saga_core::Height(t_p.0 - 2));
    sim.partition(Role::Buyer, true);
    sim.restart(Role::Seller);
    sim.run_until(|s| logged(s, Role::Seller, "claim_broadcast"), 100)
        .unwrap();
    let attention = sim
        .saga(Role::Seller)
        .unwrap()
        .attention()
        .map(str::to_string);
    assert!(
        attention
            .as_deref()
            .is_some_and(|a| a.contains("the buyer's refund may win the race")),
        "{attention:?}"
    );
    let seller_claim = sim.claim(Role::Seller).unwrap().clone();
    assert_eq!(
        seller_claim.inputs[0].prev_out,
        escrow(&sim, Role::Buyer),
        "the claim spends the buyer's escrow"
    );
}

/// Reconciliation after a restart: the buyer asks the seller for its view
/// (`GetSagaStatus`). "Unknown" before agreement changes nothing (the
/// proposal is simply resent); "known" never changes anything; "unknown"
/// after the seller countersigned means its store was lost — progress stops
/// for an operator: the buyer tells the seller nothing more (so the seller,
/// never told of the buyer's reservation, gives up at its C2 limit without
/// locking anything) and never claims, and its refund still runs at T_P.
#[test]
fn a_counterparty_that_forgets_an_agreed_saga_stops_progress_and_refunds_still_run() {
    let peer_status = |known: bool, detail: &str| saga_core::saga::Input::PeerStatus {
        known,
        detail: detail.into(),
    };
    let mut sim = started(&SimConfig::default());
    let d = sim
        .feed(Role::Buyer, peer_status(false, "NotFound: unknown saga"))
        .unwrap();
    assert!(d.events.is_empty(), "not agreed yet: {:?}", d.events);
    sim.run_until(|s| logged(s, Role::Buyer, "reservation_broadcast"), 50)
        .unwrap();
    let d = sim
        .feed(Role::Buyer, peer_status(true, "reserving"))
        .unwrap();
    assert!(d.events.is_empty(), "{:?}", d.events);
    let d = sim
        .feed(Role::Buyer, peer_status(false, "NotFound: unknown saga"))
        .unwrap();
    let names: Vec<&str> = d.events.iter().map(Event::name).collect();
    assert_eq!(names, ["attention_raised"]);
    let attention = sim
        .saga(Role::Buyer)
        .unwrap()
        .attention()
        .unwrap()
        .to_string();
    assert!(
        attention.starts_with("the counterparty does not know this saga although it agreed to its terms (NotFound: unknown saga)"),
        "{attention}"
    );
    // Abandoning now would stop the refund of a reservation that is out.
    let refused = sim
        .feed(
            Role::Buyer,
            saga_core::saga::Input::Resolve(saga_core::saga::Resolution::Abandon {
                reason: "give up".into(),
            }),
        )
        .unwrap_err();
    let txid = sim.reservation(Role::Buyer).unwrap().txid();
    assert!(
        format!("{refused:?}").contains(&format!(
            "our reservation {txid} is on chain and not back: abandoning would stop its refund"
        )),
        "{refused:?}"
    );
    // Asked again (another restart): one attention is enough.
    let d = sim
        .feed(Role::Buyer, peer_status(false, "NotFound: unknown saga"))
        .unwrap();
    assert!(d.events.is_empty(), "{:?}", d.events);

    sim.run_until(
        |s| {
            s.status(Role::Buyer) == Some(Status::Refunded)
                && s.status(Role::Seller) == Some(Status::Cancelled)
        },
        400,
    )
    .unwrap();
    assert_clean(&sim);
    assert!(sim.reservation(Role::Seller).is_none());
    assert!(sim.claim(Role::Buyer).is_none() && sim.claim(Role::Seller).is_none());
    assert_eq!(
        sim.balance(Role::Buyer, CHAIN_P),
        100_000 - RESERVATION_FEE - SPEND_FEE
    );
    assert_eq!(sim.balance(Role::Seller, CHAIN_D), 100_000);
}
