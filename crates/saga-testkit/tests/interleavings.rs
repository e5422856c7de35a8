//! Random interleavings of both parties' effects under faults: lost,
//! duplicated and delayed messages and replies, random mining on both
//! chains, clock jumps, crashes (also between an effect and the recording
//! of its result), restarts, partitions, operator cancels, a broadcaster
//! and a notary that stop answering. Then the
//! faults stop, everyone is back, and the chains run past both refund
//! heights. What must hold (DESIGN.md §3.3, STYLE.md 3):
//! - no honest party has its own leg claimed on chain while it holds no
//!   claim of the other leg;
//! - every saga ends terminal, or in attention with a reason;
//! - no wallet output is reserved by two sagas;
//! - at every step the live saga and one replayed from its log agree on
//!   status, attention and pending effects, a decision's effects are the
//!   pending effects, and an input handled twice appends once (checked by
//!   the simulator on every turn).
//!
//! Cases: 24 by default (well under a minute in debug); set
//! `SAGA_SIM_CASES=N` for a longer run, e.g. `SAGA_SIM_CASES=2000 cargo test
//! -p saga-testkit --test interleavings`.

use bsv_format::Outpoint;
use proptest::prelude::*;
use saga_core::legs;
use saga_core::saga::{Input, Status};
use saga_core::terms::Role;
use saga_core::units::Height;
use saga_testkit::fixtures::{CHAIN_D, CHAIN_P};
use saga_testkit::net::{NetFaults, NotaryMode};
use saga_testkit::{Sim, SimConfig};

#[derive(Debug, Clone)]
enum Op {
    Rounds(u8),
    Mine { payment: bool, blocks: u8 },
    Advance(u16),
    Crash(Role),
    Restart(Role),
    Partition(Role),
    Heal(Role),
    Cancel(Role),
    Broadcaster { down: bool },
    Notary { offline: bool },
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Buyer), Just(Role::Seller)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..4).prop_map(Op::Rounds),
        4 => (any::<bool>(), 1u8..5).prop_map(|(payment, blocks)| Op::Mine { payment, blocks }),
        2 => prop_oneof![4 => 1u16..30, 1 => 30u16..400].prop_map(Op::Advance),
        1 => role().prop_map(Op::Crash),
        2 => role().prop_map(Op::Restart),
        1 => role().prop_map(Op::Partition),
        2 => role().prop_map(Op::Heal),
        1 => role().prop_map(Op::Cancel),
        1 => any::<bool>().prop_map(|down| Op::Broadcaster { down }),
        1 => any::<bool>().prop_map(|offline| Op::Notary { offline }),
    ]
}

fn faults() -> impl Strategy<Value = NetFaults> {
    (0u32..200, 0u32..200, 0u32..300, 0u32..200, 0u32..60).prop_map(
        |(drop_request, drop_reply, duplicate, delay, crash_after_effect)| NetFaults {
            drop_request,
            drop_reply,
            duplicate,
            delay,
            crash_after_effect,
        },
    )
}

/// Blocks chain P may gain while faults last: far below `T_P − m_P`, so a
/// seller that learns `s` late still has time (an honest party is online
/// before its deadlines).
const P_FAULT_BLOCKS: u32 = 40;

fn cases() -> u32 {
    std::env::var("SAGA_SIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

/// The honest-party invariant on the fake chains, for `role`.
fn own_leg_safe(sim: &Sim, role: Role) -> Result<(), String> {
    let Some(own) = sim.reservation(role) else {
        return Ok(());
    };
    let own_escrow = Outpoint::new(own.txid(), 0);
    let own_chain = sim.own_chain(role);
    let other_chain = sim.own_chain(role.other());
    let h = sim.terms().hash_lock;
    let Some(spender) = sim.chain(own_chain).spender(&own_escrow) else {
        return Ok(());
    };
    if legs::extract_preimage(spender, &own_escrow, &h).is_none() {
        return Ok(()); // our refund or cancel
    }
    let other = sim
        .reservation(role.other())
        .ok_or_else(|| format!("{role:?}'s leg claimed, but the other leg was never built"))?;
    let other_escrow = Outpoint::new(other.txid(), 0);
    let ours = sim
        .claim(role)
        .ok_or_else(|| format!("{role:?}'s leg claimed, and it never built its claim"))?;
    match sim.chain(other_chain).spender(&other_escrow) {
        Some(tx) if tx.txid() == ours.txid() => Ok(()),
        Some(tx) => Err(format!(
            "{role:?}'s leg claimed, and the other leg went to {} instead of its claim",
            tx.txid()
        )),
        None => Err(format!(
            "{role:?}'s leg claimed, and its claim is not on chain"
        )),
    }
}

fn settled(sim: &Sim, t_p: Height, t_d: Height) -> bool {
    let past = sim.chain(CHAIN_P).tip().0 > t_p.0 + 5 && sim.chain(CHAIN_D).tip().0 > t_d.0 + 5;
    past && [Role::Buyer, Role::Seller].iter().all(|&r| {
        // A seller the proposal never reached has no saga to finish.
        sim.saga(r).is_some_and(|s| {
            s.status().is_terminal() || s.attention().is_some() || s.status() == Status::New
        })
    })
}

fn run(
    seed: u64,
    notary: Option<bool>,
    faults: NetFaults,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(&SimConfig {
        seed,
        notary: notary.is_some(),
        ..SimConfig::default()
    });
    let answer = match notary {
        Some(false) => NotaryMode::Reject,
        _ => NotaryMode::Approve,
    };
    sim.notary = answer;
    sim.faults = faults;
    sim.shuffle = true;
    sim.auto_advance = false;
    sim.start()
        .map_err(|e| TestCaseError::fail(format!("start: {e}")))?;
    let p_cap = sim.chain(CHAIN_P).tip().0 + P_FAULT_BLOCKS;
    for op in ops {
        match *op {
            Op::Rounds(n) => {
                for _ in 0..n {
                    sim.round();
                }
            }
            Op::Mine { payment, blocks } => {
                let chain = if payment { CHAIN_P } else { CHAIN_D };
                let room = if payment {
                    p_cap.saturating_sub(sim.chain(CHAIN_P).tip().0)
                } else {
                    u32::from(blocks)
                };
                let n = u32::from(blocks).min(room);
                if n > 0 {
                    sim.mine(chain, n);
                }
            }
            Op::Advance(secs) => sim.advance(u64::from(secs)),
            Op::Crash(r) => sim.crash(r),
            Op::Restart(r) => sim.restart(r),
            Op::Partition(r) => sim.partition(r, true),
            Op::Heal(r) => sim.partition(r, false),
            Op::Cancel(r) => {
                let _ = sim.feed(
                    r,
                    Input::CancelRequested {
                        reason: "operator".into(),
                    },
                );
            }
            Op::Broadcaster { down } => sim.broadcaster_down = down,
            Op::Notary { offline } => {
                sim.notary = if offline { NotaryMode::Offline } else { answer };
            }
        }
    }
    // Faults stop; everyone is back; time and chains move on.
    sim.faults = NetFaults::NONE;
    sim.broadcaster_down = false;
    sim.notary = answer;
    sim.shuffle = false;
    sim.auto_advance = true;
    for r in [Role::Buyer, Role::Seller] {
        sim.partition(r, false);
        sim.restart(r);
    }
    let t_p = sim.terms().payment.refund_height;
    let t_d = sim.terms().delivery.refund_height;
    let outcome = sim.run_until(|s| settled(s, t_p, t_d), 600);
    // SAGA_SIM_LOG=1 prints the whole log of a failing case.
    let tail = || {
        let n = if std::env::var_os("SAGA_SIM_LOG").is_some() {
            usize::MAX / 2
        } else {
            80
        };
        sim.log_tail(n)
    };
    if std::env::var_os("SAGA_SIM_STATS").is_some() {
        eprintln!(
            "outcome: buyer {:?}/{} seller {:?}/{}",
            sim.status(Role::Buyer),
            sim.saga(Role::Buyer).and_then(|s| s.attention()).is_some(),
            sim.status(Role::Seller),
            sim.saga(Role::Seller).and_then(|s| s.attention()).is_some(),
        );
    }
    if let Err(stuck) = &outcome {
        let n = if std::env::var_os("SAGA_SIM_LOG").is_some() {
            usize::MAX / 2
        } else {
            80
        };
        prop_assert!(false, "not settled: {stuck}\nlog:\n{}", sim.log_tail(n));
    }
    prop_assert!(
        sim.violations().is_empty(),
        "{:#?}\n{}",
        sim.violations(),
        tail()
    );
    for r in [Role::Buyer, Role::Seller] {
        let safe = own_leg_safe(&sim, r);
        prop_assert!(safe.is_ok(), "{}\n{}", safe.unwrap_err(), tail());
        prop_assert!(sim.store(r).reserved_twice().is_empty());
        let saga = sim.saga(r).unwrap();
        let status = saga.status();
        prop_assert!(
            status.is_terminal()
                || saga.attention().is_some_and(|a| !a.is_empty())
                || (status == Status::New && sim.events(r).is_empty()),
            "{r:?} ends {status:?} without attention\n{}",
            tail()
        );
        // A terminal status says what the chain shows.
        if status == Status::Completed {
            let other = sim
                .reservation(r.other())
                .map(|t| Outpoint::new(t.txid(), 0));
            let claimed = other.and_then(|op| sim.chain(sim.own_chain(r.other())).spender(&op));
            prop_assert_eq!(
                claimed.map(|t| t.txid()),
                sim.claim(r).map(|t| t.txid()),
                "{:?} is Completed without its claim on chain\n{}",
                r,
                tail()
            );
        }
        if let Some(own) = sim.reservation(r) {
            let escrow = Outpoint::new(own.txid(), 0);
            let spent = sim.chain(sim.own_chain(r)).spender(&escrow).is_some();
            let broadcast = sim.chain(sim.own_chain(r)).knows(&own.txid());
            if matches!(status, Status::Completed | Status::Refunded)
                || (status == Status::Cancelled && broadcast)
            {
                prop_assert!(
                    spent,
                    "{r:?} is {status:?} but its escrow is unspent\n{}",
                    tail()
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    })]

    #[test]
    fn honest_parties_never_lose_under_faults_crashes_and_reordering(
        seed in any::<u64>(),
        notary in proptest::option::of(any::<bool>()),
        faults in faults(),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        run(seed, notary, faults, &ops)?;
    }
}

#[test]
fn a_fault_free_run_with_no_ops_completes() {
    run(7, None, NetFaults::NONE, &[]).unwrap();
}
