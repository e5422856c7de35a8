//! The crash-restart matrix (STYLE.md 12): each party crashes right after
//! each durable step of a happy swap — every event kind its log holds —
//! stays down while both chains move on (the other side waits: its retry
//! budget is not what this tests), restarts from its log, and
//! the swap still completes for both, with the replay checks clean.

use saga_core::saga::{Event, Status};
use saga_core::terms::Role;
use saga_testkit::fixtures::{CHAIN_D, CHAIN_P};
use saga_testkit::{Sim, SimConfig};

fn both_completed(sim: &Sim) -> bool {
    sim.status(Role::Buyer) == Some(Status::Completed)
        && sim.status(Role::Seller) == Some(Status::Completed)
}

/// The event names of `role`'s log in a fault-free swap, in order, once each.
fn steps(role: Role) -> Vec<&'static str> {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.run_until(both_completed, 100).unwrap();
    let mut names: Vec<&'static str> = Vec::new();
    for e in sim.events(role) {
        if !names.contains(&e.name()) {
            names.push(e.name());
        }
    }
    names
}

fn crash_after(role: Role, step: &'static str, down_blocks: u32) {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.crash_on(role, step, role);
    sim.run_until(|s| s.status(role).is_none() || both_completed(s), 100)
        .unwrap();
    sim.mine(CHAIN_P, down_blocks);
    sim.mine(CHAIN_D, down_blocks);
    sim.restart(role);
    let done = sim.run_until(both_completed, 200);
    assert!(
        done.is_ok(),
        "{role:?} crashed after {step}, down {down_blocks} blocks: {}",
        done.unwrap_err()
    );
    assert!(
        sim.violations().is_empty(),
        "{role:?} after {step}: {:#?}",
        sim.violations()
    );
    let learned = sim
        .events(Role::Seller)
        .iter()
        .filter(|e| matches!(e, Event::PreimageLearned { .. }))
        .count();
    assert_eq!(learned, 1, "{role:?} after {step}");
}

#[test]
fn each_party_crashing_after_each_step_of_a_swap_still_completes() {
    for role in [Role::Buyer, Role::Seller] {
        let steps = steps(role);
        assert!(steps.len() >= 10, "{role:?}: {steps:?}");
        for step in steps {
            for down_blocks in [0, 2] {
                crash_after(role, step, down_blocks);
            }
        }
    }
}
