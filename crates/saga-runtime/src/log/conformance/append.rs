//! The suite's cases about appends: round trip, shape, compare-and-set,
//! single use of tokens and hashlocks (also under concurrency), idempotency
//! keys, replies, and failures that must leave nothing behind.
//!
//! # Layout
//! - One `pub async fn` per contract, in [`super::run_all`]'s order.

use bsv_format::{Outpoint, Txid};
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::units::{Height, UnixTime};
use saga_core::wallet::{Basket, UtxoChange, UtxoState};

use super::{
    ok, progressed, projection, refused, saga, step, token, utxo, Snapshot, TestEvent, TestLog,
};
use crate::log::{AppendError, Deadline, ReplyKey, Step, TokenConsumption};
use crate::wallet::UtxoStoreError;

/// Events come back with their seqs; heads count them; feed cursors are
/// assigned per event; other sagas are untouched.
pub async fn append_and_load_round_trip(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    let first = vec![
        TestEvent::Started {
            note: "hello".into(),
        },
        progressed(7),
    ];
    let appended = ok(&log, step(a, 0, first.clone())).await;
    assert_eq!(appended.first_seq, 0);
    assert_eq!(appended.feed_seqs, vec![1, 2]);
    let appended = ok(&log, step(a, 2, vec![TestEvent::Finished])).await;
    assert_eq!(appended.first_seq, 2);
    assert_eq!(appended.feed_seqs, vec![3]);
    assert_eq!(
        log.load(&a).await.expect("load"),
        vec![
            (0, first[0].clone()),
            (1, first[1].clone()),
            (2, TestEvent::Finished)
        ]
    );
    assert_eq!(log.head(&a).await.expect("head"), 3);
    assert_eq!(log.head(&b).await.expect("head"), 0);
    assert!(log.load(&b).await.expect("load").is_empty());
    assert_eq!(log.projection(&b).await.expect("projection"), None);
    assert_eq!(
        log.projection(&a).await.expect("projection"),
        Some(projection(a, 3))
    );
}

/// Steps that break the shape rules are refused before anything else.
pub async fn malformed_steps_are_refused(log: TestLog) {
    let a = saga(1);
    let is_malformed =
        |e: &AppendError| matches!(e, AppendError::MalformedStep { saga_id, .. } if *saga_id == a);
    let e = refused(&log, step(a, 0, vec![])).await;
    assert!(is_malformed(&e), "{e:?}");
    let mut s = step(a, 0, vec![progressed(1)]);
    s.projection.head = 2;
    let e = refused(&log, s).await;
    assert!(is_malformed(&e), "{e:?}");
    let mut s = step(a, 0, vec![progressed(1)]);
    s.projection.saga_id = saga(2);
    let e = refused(&log, s).await;
    assert!(is_malformed(&e), "{e:?}");
    let mut s = step(a, 0, vec![progressed(1)]);
    s.consumed_tokens = vec![token(1), token(1)];
    let e = refused(&log, s).await;
    assert!(is_malformed(&e), "{e:?}");
    let mut s = step(a, 0, vec![progressed(1)]);
    s.new_hashlocks = vec![[5; 32], [5; 32]];
    let e = refused(&log, s).await;
    assert!(is_malformed(&e), "{e:?}");
    assert_eq!(log.head(&a).await.expect("head"), 0);
    assert!(log.feed(0, 10).await.expect("feed").is_empty());
    assert_eq!(log.token_consumption(&token(1)).await.expect("token"), None);
}

/// `expected_seq` must equal the stored head, before and after appends.
pub async fn append_is_compare_and_set(log: TestLog) {
    let a = saga(1);
    let e = refused(&log, step(a, 1, vec![progressed(1)])).await;
    assert_eq!(
        e,
        AppendError::SeqConflict {
            saga_id: a,
            expected: 1,
            actual: 0
        }
    );
    ok(&log, step(a, 0, vec![progressed(1), progressed(2)])).await;
    for expected in [0, 1, 3] {
        let e = refused(&log, step(a, expected, vec![progressed(9)])).await;
        assert_eq!(
            e,
            AppendError::SeqConflict {
                saga_id: a,
                expected,
                actual: 2
            }
        );
    }
    assert_eq!(
        log.load(&a).await.expect("load"),
        vec![(0, progressed(1)), (1, progressed(2))]
    );
    assert_eq!(log.feed(0, 10).await.expect("feed").len(), 2);
}

/// Eight tasks append seq 0 of one saga at once: one wins, seven conflict.
pub async fn concurrent_appends_to_one_saga_have_one_winner(log: TestLog) {
    let a = saga(1);
    let mut tasks = Vec::new();
    for n in 0..8u32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            (n, log.append(step(a, 0, vec![progressed(n)])).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            (n, Ok(_)) => winners.push(n),
            (_, Err(e)) => assert_eq!(
                e,
                AppendError::SeqConflict {
                    saga_id: a,
                    expected: 0,
                    actual: 1
                }
            ),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        log.load(&a).await.expect("load"),
        vec![(0, progressed(winners[0]))]
    );
}

/// A token is consumed once ever, by any saga; the consumer is the step's
/// first event.
pub async fn tokens_are_consumed_once(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    ok(&log, step(a, 0, vec![progressed(0)])).await;
    let mut s = step(a, 1, vec![progressed(1), progressed(2)]);
    s.consumed_tokens = vec![token(1), token(2)];
    ok(&log, s).await;
    let by_a = TokenConsumption { saga_id: a, seq: 1 };
    assert_eq!(
        log.token_consumption(&token(1)).await.expect("token"),
        Some(by_a)
    );
    assert_eq!(
        log.token_consumption(&token(2)).await.expect("token"),
        Some(by_a)
    );
    assert_eq!(log.token_consumption(&token(3)).await.expect("token"), None);
    let mut s = step(b, 0, vec![progressed(1)]);
    s.consumed_tokens = vec![token(3), token(2)];
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::TokenConsumed {
            token_id: token(2),
            by: (a, 1)
        }
    );
    // The same saga cannot use it twice either.
    let mut s = step(a, 3, vec![progressed(3)]);
    s.consumed_tokens = vec![token(1)];
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::TokenConsumed {
            token_id: token(1),
            by: (a, 1)
        }
    );
    assert_eq!(log.token_consumption(&token(3)).await.expect("token"), None);
    assert_eq!(log.head(&b).await.expect("head"), 0);
    assert_eq!(log.head(&a).await.expect("head"), 3);
}

/// Eight sagas race to consume one token, five times over: exactly one
/// append wins each race, the others see the winner.
pub async fn concurrent_token_use_has_one_winner(log: TestLog) {
    for round in 0..5u8 {
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let log = log.clone();
            let id = saga(round * 10 + i + 1);
            tasks.push(tokio::spawn(async move {
                let mut s = step(id, 0, vec![progressed(u32::from(i))]);
                s.consumed_tokens = vec![token(100 + round)];
                (id, log.append(s).await)
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("task"));
        }
        let winners: Vec<SagaId> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let winner = winners[0];
        for (id, r) in &results {
            match r {
                Ok(_) => assert_eq!(log.head(id).await.expect("head"), 1),
                Err(e) => {
                    assert_eq!(
                        *e,
                        AppendError::TokenConsumed {
                            token_id: token(100 + round),
                            by: (winner, 0)
                        }
                    );
                    assert_eq!(log.head(id).await.expect("head"), 0);
                }
            }
        }
        assert_eq!(
            log.token_consumption(&token(100 + round))
                .await
                .expect("token"),
            Some(TokenConsumption {
                saga_id: winner,
                seq: 0
            })
        );
    }
    assert_eq!(log.feed(0, 100).await.expect("feed").len(), 5);
}

/// A hashlock is recorded once ever.
pub async fn hashlocks_are_never_reused(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    let (h1, h2) = ([0x11; 32], [0x22; 32]);
    assert_eq!(log.hashlock_seen(&h1).await.expect("hashlock"), None);
    let mut s = step(a, 0, vec![progressed(0)]);
    s.new_hashlocks = vec![h1];
    ok(&log, s).await;
    assert_eq!(log.hashlock_seen(&h1).await.expect("hashlock"), Some(a));
    let mut s = step(b, 0, vec![progressed(0)]);
    s.new_hashlocks = vec![h2, h1];
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::HashlockReused {
            hashlock: h1,
            by: a
        }
    );
    assert_eq!(log.hashlock_seen(&h2).await.expect("hashlock"), None);
    let mut s = step(a, 1, vec![progressed(1)]);
    s.new_hashlocks = vec![h1];
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::HashlockReused {
            hashlock: h1,
            by: a
        }
    );
    assert_eq!(log.head(&a).await.expect("head"), 1);
}

/// An idempotency key maps to the first saga that used it, for ever.
pub async fn idempotency_keys_map_to_one_saga(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    assert_eq!(log.idempotency("k1").await.expect("key"), None);
    let mut s = step(a, 0, vec![progressed(0)]);
    s.idempotency_key = Some("k1".into());
    ok(&log, s).await;
    assert_eq!(log.idempotency("k1").await.expect("key"), Some(a));
    let mut s = step(a, 1, vec![progressed(1)]);
    s.idempotency_key = Some("k1".into());
    ok(&log, s).await;
    let mut s = step(b, 0, vec![progressed(0)]);
    s.idempotency_key = Some("k1".into());
    let e = refused(&log, s).await;
    assert_eq!(
        e,
        AppendError::IdempotencyConflict {
            key: "k1".into(),
            saga_id: a
        }
    );
    assert_eq!(log.idempotency("k1").await.expect("key"), Some(a));
    assert_eq!(log.idempotency("k2").await.expect("key"), None);
    assert_eq!(log.head(&b).await.expect("head"), 0);
}

/// The first reply to a peer message is kept; an equal one is a no-op, a
/// different one is refused.
pub async fn replies_are_kept_and_never_replaced(log: TestLog) {
    let a = saga(1);
    let key = |message_seq| ReplyKey {
        peer: "spiffe://org-b.example/gateway/gb".into(),
        saga_id: a,
        message_seq,
    };
    let mut s = step(a, 0, vec![progressed(0)]);
    s.reply = Some((key(1), b"first".to_vec()));
    ok(&log, s).await;
    assert_eq!(
        log.reply(&key(1)).await.expect("reply"),
        Some(b"first".to_vec())
    );
    assert_eq!(log.reply(&key(2)).await.expect("reply"), None);
    let other_peer = ReplyKey {
        peer: "spiffe://org-c.example/gateway/gc".into(),
        ..key(1)
    };
    assert_eq!(log.reply(&other_peer).await.expect("reply"), None);
    let mut s = step(a, 1, vec![progressed(1)]);
    s.reply = Some((key(1), b"first".to_vec()));
    ok(&log, s).await;
    let mut s = step(a, 2, vec![progressed(2)]);
    s.reply = Some((key(1), b"second".to_vec()));
    let e = refused(&log, s).await;
    assert_eq!(e, AppendError::ReplyConflict { key: key(1) });
    assert_eq!(
        log.reply(&key(1)).await.expect("reply"),
        Some(b"first".to_vec())
    );
    assert_eq!(log.head(&a).await.expect("head"), 2);
}

/// Every failure kind leaves every tree as it was, for a step that would
/// have written to all of them.
pub async fn failures_leave_nothing_behind(log: TestLog) {
    let (a, b) = (saga(1), saga(2));
    let peer = "spiffe://org-b.example/gateway/gb";
    let reply_key = |saga_id, message_seq| ReplyKey {
        peer: peer.into(),
        saga_id,
        message_seq,
    };
    let f1 = utxo("P", Basket::Funding, 1, 0);
    // A's history: token 1, hashlock 1, key "ka", reply, f1 reserved.
    let mut s = step(a, 0, vec![progressed(0)]);
    s.consumed_tokens = vec![token(1)];
    s.new_hashlocks = vec![[1; 32]];
    s.idempotency_key = Some("ka".into());
    s.reply = Some((reply_key(a, 1), b"ra".to_vec()));
    s.utxo_changes = vec![
        UtxoChange::Add(f1.clone()),
        UtxoChange::Reserve {
            chain_id: "P".into(),
            outpoint: f1.outpoint,
            saga_id: a,
        },
    ];
    s.projection.deadlines = vec![Deadline::Time(UnixTime(5))];
    ok(&log, s).await;

    // B's step touches every tree; each variant below breaks one thing.
    let f2 = utxo("P", Basket::Funding, 2, 0);
    let full = || {
        let mut s = step(b, 0, vec![progressed(10), progressed(11)]);
        s.consumed_tokens = vec![token(2)];
        s.new_hashlocks = vec![[2; 32]];
        s.idempotency_key = Some("kb".into());
        s.reply = Some((reply_key(b, 1), b"rb".to_vec()));
        s.utxo_changes = vec![
            UtxoChange::Add(f2.clone()),
            UtxoChange::Reserve {
                chain_id: "P".into(),
                outpoint: f2.outpoint,
                saga_id: b,
            },
        ];
        s.projection.deadlines = vec![
            Deadline::Time(UnixTime(6)),
            Deadline::Height {
                chain_id: "P".into(),
                height: Height(7),
            },
        ];
        s
    };
    let (sagas, tokens, hashlocks) = ([a, b], [token(1), token(2)], [[1; 32], [2; 32]]);
    let replies = [reply_key(a, 1), reply_key(b, 1)];
    let snapshot = || {
        Snapshot::take(
            &log,
            &sagas,
            &tokens,
            &hashlocks,
            &["ka", "kb"],
            &replies,
            &["P"],
        )
    };
    let before = snapshot().await;
    type Breaker = fn(&mut Step<TestEvent>);
    let breakers: [(&str, Breaker); 8] = [
        ("malformed", |s| s.projection.head = 9),
        ("seq conflict", |s| {
            s.expected_seq = 1;
            s.projection.head = 3;
        }),
        ("token consumed", |s| {
            s.consumed_tokens.push(TokenId([1; 16]))
        }),
        ("hashlock reused", |s| s.new_hashlocks.push([1; 32])),
        ("idempotency conflict", |s| {
            s.idempotency_key = Some("ka".into())
        }),
        ("reply conflict", |s| {
            if let Some((key, _)) = &mut s.reply {
                key.peer = "x".into();
            }
        }),
        ("utxo unavailable", |s| {
            s.utxo_changes.push(UtxoChange::Reserve {
                chain_id: "P".into(),
                outpoint: Outpoint::new(Txid([1; 32]), 0),
                saga_id: saga(2),
            })
        }),
        ("utxo missing", |s| {
            s.utxo_changes.push(UtxoChange::Spend {
                chain_id: "P".into(),
                outpoint: Outpoint::new(Txid([0xee; 32]), 0),
                spent_by: Txid([0xef; 32]),
                saga_id: None,
            })
        }),
    ];
    // The reply conflict needs a stored reply under B's key's peer "x".
    let mut s = step(saga(3), 0, vec![progressed(0)]);
    s.reply = Some((
        ReplyKey {
            peer: "x".into(),
            saga_id: b,
            message_seq: 1,
        },
        b"other".to_vec(),
    ));
    ok(&log, s).await;
    let before_with_x = snapshot().await;
    assert_ne!(before, before_with_x, "the snapshot must see the feed grow");
    for (name, breaker) in breakers {
        let mut s = full();
        breaker(&mut s);
        let e = refused(&log, s).await;
        let expected_kind = match name {
            "malformed" => matches!(e, AppendError::MalformedStep { .. }),
            "seq conflict" => matches!(e, AppendError::SeqConflict { .. }),
            "token consumed" => matches!(e, AppendError::TokenConsumed { .. }),
            "hashlock reused" => matches!(e, AppendError::HashlockReused { .. }),
            "idempotency conflict" => matches!(e, AppendError::IdempotencyConflict { .. }),
            "reply conflict" => matches!(e, AppendError::ReplyConflict { .. }),
            _ => matches!(e, AppendError::UtxoUnavailable { .. }),
        };
        assert!(expected_kind, "{name}: {e:?}");
        assert_eq!(snapshot().await, before_with_x, "{name} left a trace");
    }
    // And the unbroken step goes through, touching every tree.
    ok(&log, full()).await;
    let after = snapshot().await;
    assert_ne!(after, before_with_x);
    assert_eq!(
        log.token_consumption(&token(2)).await.expect("token"),
        Some(TokenConsumption { saga_id: b, seq: 0 })
    );
    assert_eq!(
        log.hashlock_seen(&[2; 32]).await.expect("hashlock"),
        Some(b)
    );
    assert_eq!(log.idempotency("kb").await.expect("key"), Some(b));
    assert_eq!(
        log.reply(&reply_key(b, 1)).await.expect("reply"),
        Some(b"rb".to_vec())
    );
    assert_eq!(
        log.utxos("P", Basket::Funding).await.expect("utxos")[1],
        (f2, UtxoState::Reserved { saga_id: b })
    );
    // The failed commit_utxos leaves nothing either.
    let before = snapshot().await;
    let e = log
        .commit_utxos(vec![
            UtxoChange::Add(utxo("P", Basket::Funding, 5, 0)),
            UtxoChange::Reserve {
                chain_id: "P".into(),
                outpoint: f1.outpoint,
                saga_id: b,
            },
        ])
        .await
        .expect_err("reserved by a");
    assert!(matches!(e, UtxoStoreError::UtxoUnavailable { .. }), "{e:?}");
    assert_eq!(snapshot().await, before);
}
