//! Saga events through the sled store: every event of real simulated swaps
//! (happy path with a notary, a notary's veto and cooperative cancel, a
//! seller that never reserves, an operator's resolutions) survives its
//! stored form byte for byte, and a store reopened without its projections
//! rebuilds each saga's role and status from the log alone.

use saga_core::saga::{EffectKey, Event, MessageKind, Resolution, Status, TxPurpose};
use saga_core::terms::{Role, SagaId};
use saga_runtime::log::{EventLog, Projection, Step};
use saga_testkit::net::NotaryMode;
use saga_testkit::{Sim, SimConfig};

use escrowd::store::events::{decode_event, encode_event, project};
use escrowd::store::SledLog;

fn finished(cfg: SimConfig, notary: NotaryMode) -> Sim {
    let mut sim = Sim::new(&cfg);
    sim.notary = notary;
    sim.start().expect("the buyer starts");
    sim.run_until(
        |s| {
            [Role::Buyer, Role::Seller]
                .iter()
                .all(|r| s.status(*r).is_some_and(Status::is_terminal))
        },
        600,
    )
    .expect("both parties finish");
    sim
}

fn logs() -> Vec<(Role, Status, Vec<Event>)> {
    let mut out = Vec::new();
    let sims = [
        finished(
            SimConfig {
                notary: true,
                ..SimConfig::default()
            },
            NotaryMode::Approve,
        ),
        finished(
            SimConfig {
                notary: true,
                ..SimConfig::default()
            },
            NotaryMode::Reject,
        ),
    ];
    for sim in &sims {
        for role in [Role::Buyer, Role::Seller] {
            out.push((
                role,
                sim.status(role).expect("status"),
                sim.events(role).to_vec(),
            ));
        }
    }
    out
}

/// Events no simulated swap above produced.
fn others() -> Vec<Event> {
    vec![
        Event::EffectFailed {
            effect: EffectKey::Broadcast(TxPurpose::Claim),
            attempt: 2,
            detail: "ARC 503".into(),
        },
        Event::EffectFailed {
            effect: EffectKey::WakeAtHeight("chain-p".into()),
            attempt: 1,
            detail: "headers service down".into(),
        },
        Event::EffectFailed {
            effect: EffectKey::Send(MessageKind::SignCancel),
            attempt: 3,
            detail: "peer unreachable".into(),
        },
        Event::AttentionRaised {
            reason: "budget spent".into(),
        },
        Event::OperatorResolved {
            resolution: Resolution::Retry,
        },
        Event::OperatorResolved {
            resolution: Resolution::Refund,
        },
        Event::OperatorResolved {
            resolution: Resolution::Abandon {
                reason: "settled by phone".into(),
            },
        },
    ]
}

#[test]
fn every_event_round_trips_through_its_stored_form() {
    let mut seen = std::collections::BTreeSet::new();
    for (_, _, events) in logs() {
        for e in events.into_iter().chain(others()) {
            let bytes = encode_event(&e);
            assert_eq!(decode_event(&bytes).as_ref(), Ok(&e), "{}", e.name());
            seen.insert(e.name());
        }
    }
    // The swaps above exercise the whole protocol but the timed refund.
    for name in [
        "terms_proposed",
        "terms_agreed",
        "reservation_built",
        "refund_countersigned",
        "reservation_broadcast",
        "reservation_confirmed",
        "counter_refund_signed",
        "counter_reservation_verified",
        "notary_approved",
        "notary_rejected",
        "token_granted",
        "token_received",
        "preimage_learned",
        "claim_built",
        "claim_broadcast",
        "claim_confirmed",
        "counter_claim_seen",
        "counter_claim_confirmed",
        "message_delivered",
        "cancel_requested",
        "cancel_signed",
        "cancel_built",
        "refund_broadcast",
        "refund_confirmed",
        "effect_failed",
        "attention_raised",
        "operator_resolved",
    ] {
        assert!(seen.contains(name), "no {name} event was exercised");
    }
}

fn saga_id(n: u8) -> SagaId {
    SagaId::new_v7(1_700_000_000_000 + u64::from(n), &[n; 10])
}

#[tokio::test]
async fn a_reopened_store_rebuilds_role_and_status_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = logs();
    {
        let log: SledLog<Event> = SledLog::open(dir.path(), project).expect("open");
        for (n, (_, _, events)) in logs.iter().enumerate() {
            let id = saga_id(n as u8);
            let mut stored = Vec::new();
            for (seq, e) in events.iter().enumerate() {
                stored.push((seq as u64, e.clone()));
                let step = Step {
                    saga_id: id,
                    expected_seq: seq as u64,
                    events: vec![e.clone()],
                    consumed_tokens: Vec::new(),
                    new_hashlocks: Vec::new(),
                    utxo_changes: Vec::new(),
                    idempotency_key: None,
                    reply: None,
                    projection: Projection {
                        deadlines: Vec::new(),
                        ..project(&id, &stored)
                    },
                };
                log.append(step).await.expect("append");
            }
        }
    }
    // Drop the projections as a crash between releases might, then reopen.
    {
        let db = sled::open(dir.path()).expect("raw open");
        db.drop_tree("sagas").expect("drop sagas");
        db.flush().expect("flush");
    }
    let log: SledLog<Event> = SledLog::open(dir.path(), project).expect("reopen");
    for (n, (role, status, events)) in logs.iter().enumerate() {
        let id = saga_id(n as u8);
        let loaded: Vec<Event> = log
            .load(&id)
            .await
            .expect("load")
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(&loaded, events);
        let p = log.projection(&id).await.expect("read").expect("rebuilt");
        assert_eq!(p.role, role.to_string());
        assert_eq!(p.state, status.name());
        assert!(p.terminal);
        assert_eq!(p.head, events.len() as u64);
    }
    assert!(log.in_flight_sagas().await.expect("in flight").is_empty());
}
