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
