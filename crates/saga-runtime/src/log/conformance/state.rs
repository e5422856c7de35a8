//! The suite's cases about the state a log keeps beside the events: the
//! UTXO rules, the feed, projections with their deadlines and paging, and
//! secrets.
//!
//! # Layout
//! - One `pub async fn` per contract, in [`super::run_all`]'s order.

use bsv_format::{Outpoint, Txid};
use saga_core::terms::SagaId;
use saga_core::units::{Height, Satoshis, UnixTime};
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};

use super::{ok, progressed, refused, saga, step, utxo, TestEvent, TestLog};
use crate::log::{
    AppendError, Deadline, DeadlineQuery, Projection, SagaFilter, SecretBytes, SecretError,
};
use crate::wallet::UtxoStoreError;

/// The [`UtxoChange`] rules, through appends and through `commit_utxos`.
pub async fn utxo_rules_hold(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    let (f1, f2, inv) = (
        utxo("P", Basket::Funding, 1, 0),
        utxo("P", Basket::Funding, 1, 1),
        utxo("D", Basket::Inventory, 3, 0),
    );
    let on_d_f1 = Utxo {
        chain_id: "D".into(),
        ..f1.clone()
    };
    log.commit_utxos(vec![
        UtxoChange::Add(f2.clone()),
        UtxoChange::Add(f1.clone()),
        UtxoChange::Add(inv.clone()),
        UtxoChange::Add(on_d_f1.clone()),
    ])
    .await
    .expect("import");
    // Outpoint order within (chain, basket); chains are apart.
    assert_eq!(
        log.utxos("P", Basket::Funding).await.expect("utxos"),
        vec![
            (f1.clone(), UtxoState::Available),
            (f2.clone(), UtxoState::Available)
        ]
    );
    assert_eq!(
        log.utxos("D", Basket::Inventory).await.expect("utxos"),
        vec![(inv.clone(), UtxoState::Available)]
    );
    assert_eq!(
        log.utxos("D", Basket::Funding).await.expect("utxos"),
        vec![(on_d_f1.clone(), UtxoState::Available)]
    );
    assert!(log
        .utxos("P", Basket::Escrow)
        .await
        .expect("utxos")
        .is_empty());
    // Adding again (even into another basket) is a no-op.
    log.commit_utxos(vec![UtxoChange::Add(Utxo {
        basket: Basket::Received,
        satoshis: Satoshis(1),
        ..f1.clone()
    })])
    .await
    .expect("re-add");
    assert!(log
        .utxos("P", Basket::Received)
        .await
        .expect("utxos")
        .is_empty());

    let reserve = |outpoint: Outpoint, saga_id| UtxoChange::Reserve {
        chain_id: "P".into(),
        outpoint,
        saga_id,
    };
    let spend = |outpoint: Outpoint, by: u8, saga_id| UtxoChange::Spend {
        chain_id: "P".into(),
        outpoint,
        spent_by: Txid([by; 32]),
        saga_id,
    };
    // A reserves f1 with its first step; a duplicate in a later step is a no-op.
    let mut s = step(a, 0, vec![progressed(0)]);
    s.utxo_changes = vec![reserve(f1.outpoint, a)];
    ok(&log, s).await;
    let mut s = step(a, 1, vec![progressed(1)]);
    s.utxo_changes = vec![reserve(f1.outpoint, a)];
    ok(&log, s).await;
    // B cannot reserve it, nor a missing output.
    let mut s = step(b, 0, vec![progressed(0)]);
    s.utxo_changes = vec![reserve(f2.outpoint, b), reserve(f1.outpoint, b)];
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::UtxoUnavailable {
            chain_id: "P".into(),
            outpoint: f1.outpoint,
            reason: format!("reserved by saga {a}")
        }
    );
    let missing = Outpoint::new(Txid([9; 32]), 0);
    let mut s = step(b, 0, vec![progressed(0)]);
    s.utxo_changes = vec![reserve(missing, b)];
    let e = refused(&log, s).await;
    assert!(
        matches!(&e, AppendError::UtxoUnavailable { outpoint, reason, .. } if *outpoint == missing && reason == "missing"),
        "{e:?}"
    );
    // f2 stayed available: the failed step reserved nothing.
    assert_eq!(
        log.utxos("P", Basket::Funding).await.expect("utxos"),
        vec![
            (f1.clone(), UtxoState::Reserved { saga_id: a }),
            (f2.clone(), UtxoState::Available)
        ]
    );
    // Release by another saga is a no-op; by the holder frees it.
    log.commit_utxos(vec![UtxoChange::Release {
        chain_id: "P".into(),
        outpoint: f1.outpoint,
        saga_id: b,
    }])
    .await
    .expect("release no-op");
    assert_eq!(
        log.utxos("P", Basket::Funding).await.expect("utxos")[0].1,
        UtxoState::Reserved { saga_id: a }
    );
    // A withdrawal (no saga) cannot spend a reserved output.
    let e = log
        .commit_utxos(vec![
            spend(f2.outpoint, 7, None),
            spend(f1.outpoint, 7, None),
        ])
        .await
        .expect_err("spend of a reserved output");
    assert_eq!(
        e,
        UtxoStoreError::UtxoUnavailable {
            chain_id: "P".into(),
            outpoint: f1.outpoint,
            reason: format!("reserved by saga {a}")
        }
    );
    assert_eq!(
        log.utxos("P", Basket::Funding).await.expect("utxos")[1].1,
        UtxoState::Available
    );
    // The holder spends it; again by the same tx is a no-op, by another fails.
    let mut s = step(a, 2, vec![progressed(2)]);
    s.utxo_changes = vec![
        spend(f1.outpoint, 8, Some(a)),
        spend(f1.outpoint, 8, Some(a)),
    ];
    ok(&log, s).await;
    let mut s = step(a, 3, vec![progressed(3)]);
    s.utxo_changes = vec![spend(f1.outpoint, 9, Some(a))];
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::UtxoUnavailable {
            chain_id: "P".into(),
            outpoint: f1.outpoint,
            reason: format!("spent by {}", Txid([8; 32]))
        }
    );
    // Spent outputs cannot be reserved; releasing them is a no-op.
    let mut s = step(b, 0, vec![progressed(0)]);
    s.utxo_changes = vec![
        UtxoChange::Release {
            chain_id: "P".into(),
            outpoint: f1.outpoint,
            saga_id: a,
        },
        reserve(f1.outpoint, b),
    ];
    let e = refused(&log, s).await;
    assert!(matches!(e, AppendError::UtxoUnavailable { .. }), "{e:?}");
    // Reserve then release in one step; add-then-reserve in one step.
    let change = utxo("P", Basket::Funding, 4, 0);
    let mut s = step(b, 0, vec![progressed(0)]);
    s.utxo_changes = vec![
        reserve(f2.outpoint, b),
        UtxoChange::Release {
            chain_id: "P".into(),
            outpoint: f2.outpoint,
            saga_id: b,
        },
        UtxoChange::Add(change.clone()),
        reserve(change.outpoint, b),
    ];
    ok(&log, s).await;
    // A withdrawal spends an available output.
    log.commit_utxos(vec![spend(f2.outpoint, 6, None)])
        .await
        .expect("withdraw");
    assert_eq!(
        log.utxos("P", Basket::Funding).await.expect("utxos"),
        vec![
            (
                f1.clone(),
                UtxoState::Spent {
                    spent_by: Txid([8; 32])
                }
            ),
            (
                f2.clone(),
                UtxoState::Spent {
                    spent_by: Txid([6; 32])
                }
            ),
            (change, UtxoState::Reserved { saga_id: b }),
        ]
    );
    // Other chains never moved.
    assert_eq!(
        log.utxos("D", Basket::Funding).await.expect("utxos"),
        vec![(on_d_f1, UtxoState::Available)]
    );
}

/// The feed lists every event in append order with cursors from 1, and
/// resumes from any cursor.
pub async fn feed_orders_events_and_resumes(log: TestLog) {
    let (a, b, c) = (saga(3), saga(1), saga(2));
    ok(&log, step(a, 0, vec![progressed(1), progressed(2)])).await;
    ok(&log, step(b, 0, vec![progressed(3)])).await;
    ok(&log, step(c, 0, vec![progressed(4)])).await;
    let last = ok(&log, step(a, 2, vec![progressed(5), TestEvent::Finished])).await;
    assert_eq!(last.feed_seqs, vec![5, 6]);
    let all = log.feed(0, 100).await.expect("feed");
    let shape: Vec<(u64, SagaId, u64)> = all.iter().map(|e| (e.cursor, e.saga_id, e.seq)).collect();
    assert_eq!(
        shape,
        vec![
            (1, a, 0),
            (2, a, 1),
            (3, b, 0),
            (4, c, 0),
            (5, a, 2),
            (6, a, 3)
        ]
    );
    assert_eq!(all[3].event, progressed(4));
    assert_eq!(all[5].event, TestEvent::Finished);
    assert_eq!(log.feed(1, 100).await.expect("feed"), all);
    let page = log.feed(4, 2).await.expect("feed");
    assert_eq!(page, all[3..5].to_vec());
    let rest = log.feed(page[1].cursor + 1, 100).await.expect("feed");
    assert_eq!(rest, all[5..].to_vec());
    assert!(log.feed(7, 100).await.expect("feed").is_empty());
    assert!(log.feed(1, 0).await.expect("feed").is_empty());
    assert!(log.feed(u64::MAX, 10).await.expect("feed").is_empty());
}

/// Projections are stored per step; a step replaces the saga's deadlines;
/// due deadlines, in-flight sagas and list paging read them.
pub async fn projections_deadlines_and_paging(log: TestLog) {
    let ids: Vec<SagaId> = (1..=5).map(saga).collect();
    let height = |chain: &str, h| Deadline::Height {
        chain_id: chain.into(),
        height: Height(h),
    };
    for (i, id) in ids.iter().enumerate() {
        let mut s = step(*id, 0, vec![progressed(i as u32)]);
        s.projection.state = if i % 2 == 0 { "Reserved" } else { "Proposed" }.into();
        s.projection.deadlines = vec![
            height("D", 100 + i as u32),
            Deadline::Time(UnixTime(1_000 - i as u64)),
            height("P", 50),
        ];
        ok(&log, s).await;
    }
    // Saga 0 moves on: terminal, needs attention, new deadlines only.
    let mut s = step(ids[0], 1, vec![TestEvent::Finished]);
    s.projection = Projection {
        saga_id: ids[0],
        role: "seller".into(),
        state: "Completed".into(),
        terminal: true,
        attention: Some("claim confirmed late".into()),
        head: 2,
        deadlines: vec![height("D", 90), height("D", 90)],
    };
    ok(&log, s.clone()).await;
    assert_eq!(
        log.projection(&ids[0]).await.expect("projection"),
        Some(s.projection.clone())
    );
    assert_eq!(
        log.in_flight_sagas().await.expect("in flight"),
        ids[1..].to_vec()
    );
    let due = log
        .due_deadlines(&DeadlineQuery::Height {
            chain_id: "D".into(),
            tip: Height(102),
        })
        .await
        .expect("due");
    assert_eq!(
        due,
        vec![
            (height("D", 90), ids[0]),
            (height("D", 101), ids[1]),
            (height("D", 102), ids[2]),
        ]
    );
    let due = log
        .due_deadlines(&DeadlineQuery::Height {
            chain_id: "P".into(),
            tip: Height(49),
        })
        .await
        .expect("due");
    assert!(due.is_empty(), "{due:?}");
    let due = log
        .due_deadlines(&DeadlineQuery::Height {
            chain_id: "P".into(),
            tip: Height(50),
        })
        .await
        .expect("due");
    assert_eq!(
        due,
        ids[1..]
            .iter()
            .map(|id| (height("P", 50), *id))
            .collect::<Vec<_>>()
    );
    let due = log
        .due_deadlines(&DeadlineQuery::Time(UnixTime(997)))
        .await
        .expect("due");
    assert_eq!(
        due,
        vec![
            (Deadline::Time(UnixTime(996)), ids[4]),
            (Deadline::Time(UnixTime(997)), ids[3]),
        ]
    );
    // Paging over everything, two at a time.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = log
            .list_sagas(&SagaFilter::default(), after, 2)
            .await
            .expect("list");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|p| p.saga_id);
        pages.push(page.iter().map(|p| p.saga_id).collect::<Vec<_>>());
    }
    assert_eq!(
        pages,
        vec![vec![ids[0], ids[1]], vec![ids[2], ids[3]], vec![ids[4]]]
    );
    let filter = SagaFilter {
        terminal: Some(false),
        state: Some("Reserved".into()),
    };
    let listed = log.list_sagas(&filter, None, 10).await.expect("list");
    assert_eq!(
        listed.iter().map(|p| p.saga_id).collect::<Vec<_>>(),
        vec![ids[2], ids[4]]
    );
    let listed = log
        .list_sagas(&filter, Some(ids[2]), 10)
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|p| p.saga_id).collect::<Vec<_>>(),
        vec![ids[4]]
    );
    let terminal = SagaFilter {
        terminal: Some(true),
        state: None,
    };
    assert_eq!(
        log.list_sagas(&terminal, None, 10).await.expect("list"),
        vec![s.projection]
    );
}

/// Secrets are written once, read back, and never shown by `Debug`.
pub async fn secrets_are_written_once(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    let s = SecretBytes::new(vec![0x5a; 32]);
    assert_eq!(log.secret(&a, "preimage").await.expect("secret"), None);
    log.put_secret(&a, "preimage", s.clone())
        .await
        .expect("put");
    log.put_secret(&a, "preimage", s.clone())
        .await
        .expect("put again");
    assert_eq!(
        log.secret(&a, "preimage").await.expect("secret"),
        Some(s.clone())
    );
    let e = log
        .put_secret(&a, "preimage", SecretBytes::new(vec![0x5b; 32]))
        .await
        .expect_err("replace");
    assert_eq!(
        e,
        SecretError::Exists {
            saga_id: a,
            name: "preimage".into()
        }
    );
    assert_eq!(log.secret(&a, "preimage").await.expect("secret"), Some(s));
    assert_eq!(log.secret(&b, "preimage").await.expect("secret"), None);
    assert_eq!(log.secret(&a, "key").await.expect("secret"), None);
    let shown = format!("{:?}", log.secret(&a, "preimage").await.expect("secret"));
    assert_eq!(shown, "Some(SecretBytes(<32 bytes>))");
}
