//! Crash consistency of the sled store (docs/persistence.md, "Crash
//! matrix"): a child process appends a fixed workload and is killed with
//! SIGKILL — at arbitrary moments, right after a transaction committed but
//! before its flush, and right after a flush before the caller heard of it.
//! After each kill the parent reopens the store and checks that nothing is
//! half applied:
//! - each saga's log is a prefix of its workload, cut at a step boundary,
//!   and holds every step the child acknowledged (printed after `append`
//!   returned);
//! - the projection is what the projector computes from that log, and the
//!   deadline index and in-flight list agree;
//! - tokens, hashlocks, idempotency keys, replies and UTXO records exist
//!   exactly for the steps present;
//! - the feed lists exactly the events present, cursors 1..=N.
//!
//! The child is this test binary itself, re-run with `ESCROWD_CRASH_DIR`
//! set (see `crash_writer_child`). Every round continues the same store,
//! so the child also exercises reopening after a kill.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bsv_format::{Outpoint, Txid};
use escrowd::store::{AppendPoint, AppendProbe, SledLog};
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::units::Height;
use saga_core::wallet::{Basket, UtxoChange, UtxoState};
use saga_runtime::log::conformance::{saga, utxo, TestEvent};
use saga_runtime::log::{
    Deadline, DeadlineQuery, EventLog, Projection, ReplyKey, Step, TokenConsumption,
};
use saga_runtime::wallet::UtxoStore;

/// Sagas written concurrently by the child.
const SAGAS: u8 = 4;
/// Steps per saga; the last one finishes the saga.
const STEPS: u32 = 48;
const PEER: &str = "spiffe://org-b.example/gateway/gb";

// ---------------------------------------------------------------------------
// The workload, a pure function of (saga index, step index)

fn saga_of(i: u8) -> SagaId {
    saga(i + 1)
}

/// Steps have one or two events.
fn step_len(i: u8, j: u32) -> u64 {
    1 + u64::from((u32::from(i) + j) % 2)
}

/// The seq of step `j`'s first event.
fn step_start(i: u8, j: u32) -> u64 {
    (0..j).map(|k| step_len(i, k)).sum()
}

fn step_events(i: u8, j: u32) -> Vec<TestEvent> {
    let mut events: Vec<TestEvent> = (0..step_len(i, j))
        .map(|k| TestEvent::Progressed {
            n: j * 10 + k as u32,
            payload: vec![i, j as u8, k as u8],
        })
        .collect();
    if j == STEPS - 1 {
        if let Some(last) = events.last_mut() {
            *last = TestEvent::Finished;
        }
    }
    events
}

fn token(i: u8, j: u32) -> TokenId {
    let mut t = [0u8; 16];
    t[0] = i;
    t[1..5].copy_from_slice(&j.to_be_bytes());
    TokenId(t)
}

fn hashlock(i: u8) -> [u8; 32] {
    [0x40 + i; 32]
}

fn reply_key(i: u8, j: u32) -> ReplyKey {
    ReplyKey {
        peer: PEER.into(),
        saga_id: saga_of(i),
        message_seq: u64::from(j),
    }
}

/// The output saga `i` reserves in step 0 and spends in step 1.
fn funding_outpoint(i: u8) -> Outpoint {
    utxo("P", Basket::Funding, 100 + i, 0).outpoint
}

/// The change output step `j >= 2` of saga `i` adds.
fn change_outpoint(i: u8, j: u32) -> Outpoint {
    let mut txid = [0u8; 32];
    txid[0] = 0xc0 + i;
    txid[1..5].copy_from_slice(&j.to_be_bytes());
    Outpoint::new(Txid(txid), 0)
}

fn spending_txid(i: u8) -> Txid {
    Txid([0x20 + i; 32])
}

fn project(saga_id: &SagaId, events: &[(u64, TestEvent)]) -> Projection {
    let finished = matches!(events.last(), Some((_, TestEvent::Finished)));
    Projection {
        saga_id: *saga_id,
        role: "buyer".into(),
        state: if finished { "Finished" } else { "Running" }.into(),
        terminal: finished,
        attention: None,
        head: events.len() as u64,
        deadlines: vec![Deadline::Height {
            chain_id: "P".into(),
            height: Height(100 + events.len() as u32),
        }],
    }
}

/// The whole log of saga `i` after its first `steps` steps.
fn expected_log(i: u8, steps: u32) -> Vec<(u64, TestEvent)> {
    (0..steps)
        .flat_map(|j| step_events(i, j))
        .enumerate()
        .map(|(s, e)| (s as u64, e))
        .collect()
}

fn build_step(i: u8, j: u32) -> Step<TestEvent> {
    let saga_id = saga_of(i);
    let mut utxo_changes = Vec::new();
    match j {
        0 => {
            let funding = utxo("P", Basket::Funding, 100 + i, 0);
            utxo_changes.push(UtxoChange::Add(funding));
            utxo_changes.push(UtxoChange::Reserve {
                chain_id: "P".into(),
                outpoint: funding_outpoint(i),
                saga_id,
            });
        }
        1 => utxo_changes.push(UtxoChange::Spend {
            chain_id: "P".into(),
            outpoint: funding_outpoint(i),
            spent_by: spending_txid(i),
            saga_id: Some(saga_id),
        }),
        _ => {
            let mut change = utxo("P", Basket::Received, 1, 0);
            change.outpoint = change_outpoint(i, j);
            utxo_changes.push(UtxoChange::Add(change));
        }
    }
    Step {
        saga_id,
        expected_seq: step_start(i, j),
        events: step_events(i, j),
        consumed_tokens: vec![token(i, j)],
        new_hashlocks: if j == 0 { vec![hashlock(i)] } else { vec![] },
        utxo_changes,
        idempotency_key: (j == 0).then(|| format!("client-{i}")),
        reply: Some((reply_key(i, j), vec![i, j as u8])),
        projection: project(&saga_id, &expected_log(i, j + 1)),
    }
}

/// Which step the head `head` of saga `i` ends; `None` if it is not at a
/// step boundary (a half-applied step).
fn steps_done(i: u8, head: u64) -> Option<u32> {
    (0..=STEPS).find(|&j| step_start(i, j) == head)
}

// ---------------------------------------------------------------------------
// The child

/// Parks the appending thread at the `n`th time an append reaches `point`,
/// after telling the parent on stdout, so the parent kills the process
/// exactly there.
struct HoldAt {
    point: AppendPoint,
    n: usize,
    seen: AtomicUsize,
}

impl AppendProbe for HoldAt {
    fn reached(&self, point: AppendPoint, saga_id: &SagaId, first_seq: u64) {
        if point == self.point && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            say(&format!("hold {saga_id} {first_seq}"));
            loop {
                std::thread::park();
            }
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent reads lines; a failed write means it is gone. The leading
    // newline keeps each message on a line of its own: the test harness
    // prints "test crash_writer_child ... " without a newline before the
    // test runs, and a first message glued to it (a hold reached before any
    // ack) went unrecognised, leaving parent and child waiting on each other.
    let _ = writeln!(out, "\n{line}");
    let _ = out.flush();
}

/// Not a test: the child process's entry point. Without
/// `ESCROWD_CRASH_DIR` it returns at once.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var("ESCROWD_CRASH_DIR") else {
        return;
    };
    let mode = std::env::var("ESCROWD_CRASH_MODE").unwrap_or_default();
    let hold = |point| {
        let n = mode
            .split(':')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        Arc::new(HoldAt {
            point,
            n,
            seen: AtomicUsize::new(0),
        }) as Arc<dyn AppendProbe>
    };
    let path = Path::new(&dir);
    let log = match mode.split(':').next() {
        Some("committed") => SledLog::open_with_probe(path, project, hold(AppendPoint::Committed)),
        Some("flushed") => SledLog::open_with_probe(path, project, hold(AppendPoint::Flushed)),
        _ => SledLog::open(path, project),
    }
    .expect("child opens the store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..SAGAS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let head = log.head(&saga_of(i)).await.expect("head");
                let from = steps_done(i, head).expect("a step boundary");
                for j in from..STEPS {
                    log.append(build_step(i, j)).await.expect("append");
                    say(&format!("ack {i} {j}"));
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
    });
    say("done");
}

// ---------------------------------------------------------------------------
// The parent

/// What one round saw: acknowledged steps per saga (count of steps known
/// durable) and whether the child was killed.
struct Round {
    acked: [u32; SAGAS as usize],
    killed: bool,
}

/// Runs the child in `mode` and kills it (SIGKILL) once it has acknowledged
/// `kill_after` steps in this round (if given), or when it says it holds.
fn run_child(
    dir: &Path,
    mode: &str,
    kill_after: Option<usize>,
    mut acked: [u32; SAGAS as usize],
) -> Round {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ESCROWD_CRASH_DIR", dir)
        .env("ESCROWD_CRASH_MODE", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    // A watchdog, so a hung child fails the test instead of hanging it (it
    // is a guard against hangs, not a time limit on the workload).
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(300)).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let mut killed = false;
    let mut this_round = 0;
    let mut finished = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("child output");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ack", i, j] => {
                let (i, j): (usize, u32) = (i.parse().expect("i"), j.parse().expect("j"));
                acked[i] = acked[i].max(j + 1);
                this_round += 1;
                if kill_after.is_some_and(|k| this_round >= k) {
                    child.kill().expect("SIGKILL");
                    killed = true;
                    break;
                }
            }
            ["hold", ..] => {
                child.kill().expect("SIGKILL");
                killed = true;
                break;
            }
            ["done"] => finished = true,
            _ => {}
        }
    }
    let status = child.wait().expect("wait");
    let _ = done_tx.send(());
    watchdog.join().expect("watchdog");
    assert!(
        killed || (finished && status.success()),
        "child failed: {status}"
    );
    Round { acked, killed }
}

/// The invariants of the module docs; returns how many steps each saga has.
async fn check_store(dir: &Path, acked: &[u32; SAGAS as usize]) -> [u32; SAGAS as usize] {
    let log = SledLog::<TestEvent>::open(dir, project).expect("reopen after the kill");
    let mut done = [0u32; SAGAS as usize];
    let mut present = BTreeSet::new();
    for i in 0..SAGAS {
        let saga_id = saga_of(i);
        let events = log.load(&saga_id).await.expect("load");
        let head = log.head(&saga_id).await.expect("head");
        assert_eq!(events.len() as u64, head, "saga {i}: head and log disagree");
        let j =
            steps_done(i, head).unwrap_or_else(|| panic!("saga {i}: head {head} splits a step"));
        assert!(
            j >= acked[usize::from(i)],
            "saga {i}: acknowledged step lost ({j} < {})",
            acked[usize::from(i)]
        );
        assert_eq!(
            events,
            expected_log(i, j),
            "saga {i}: not a prefix of what was written"
        );
        done[usize::from(i)] = j;
        present.extend(events.iter().map(|(s, _)| (saga_id, *s)));

        let projection = log.projection(&saga_id).await.expect("projection");
        assert_eq!(
            projection,
            (j > 0).then(|| project(&saga_id, &events)),
            "saga {i}: projection"
        );
        for k in 0..STEPS {
            let consumed = log.token_consumption(&token(i, k)).await.expect("token");
            let want = (k < j).then(|| TokenConsumption {
                saga_id,
                seq: step_start(i, k),
            });
            assert_eq!(consumed, want, "saga {i} step {k}: token");
            let reply = log.reply(&reply_key(i, k)).await.expect("reply");
            assert_eq!(
                reply,
                (k < j).then(|| vec![i, k as u8]),
                "saga {i} step {k}: reply"
            );
        }
        assert_eq!(
            log.hashlock_seen(&hashlock(i)).await.expect("hashlock"),
            (j > 0).then_some(saga_id),
            "saga {i}: hashlock"
        );
        assert_eq!(
            log.idempotency(&format!("client-{i}")).await.expect("key"),
            (j > 0).then_some(saga_id),
            "saga {i}: idempotency key"
        );
        let funding = log.utxos("P", Basket::Funding).await.expect("utxos");
        let state = funding
            .iter()
            .find(|(u, _)| u.outpoint == funding_outpoint(i))
            .map(|(_, s)| s.clone());
        let want = match j {
            0 => None,
            1 => Some(UtxoState::Reserved { saga_id }),
            _ => Some(UtxoState::Spent {
                spent_by: spending_txid(i),
            }),
        };
        assert_eq!(state, want, "saga {i}: funding output");
        let received = log.utxos("P", Basket::Received).await.expect("utxos");
        let changes: Vec<u32> = (2..STEPS)
            .filter(|&k| {
                received
                    .iter()
                    .any(|(u, _)| u.outpoint == change_outpoint(i, k))
            })
            .collect();
        assert_eq!(
            changes,
            (2..j.max(2)).collect::<Vec<_>>(),
            "saga {i}: change outputs"
        );
    }
    // The feed lists exactly the events present, cursors 1..=N, each saga in
    // seq order.
    let feed = log.feed(0, usize::MAX).await.expect("feed");
    let cursors: Vec<u64> = feed.iter().map(|e| e.cursor).collect();
    assert_eq!(
        cursors,
        (1..=feed.len() as u64).collect::<Vec<_>>(),
        "feed cursors"
    );
    let listed: BTreeSet<(SagaId, u64)> = feed.iter().map(|e| (e.saga_id, e.seq)).collect();
    assert_eq!(listed.len(), feed.len(), "an event listed twice");
    assert!(listed == present, "feed and logs disagree");
    for i in 0..SAGAS {
        let seqs: Vec<u64> = feed
            .iter()
            .filter(|e| e.saga_id == saga_of(i))
            .map(|e| e.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "saga {i}: feed order");
    }
    // Deadline index and in-flight list follow the projections.
    let due = log
        .due_deadlines(&DeadlineQuery::Height {
            chain_id: "P".into(),
            tip: Height(u32::MAX),
        })
        .await
        .expect("due");
    let mut want: Vec<(Deadline, SagaId)> = (0..SAGAS)
        .filter(|&i| done[usize::from(i)] > 0)
        .map(|i| {
            let head = step_start(i, done[usize::from(i)]);
            (
                Deadline::Height {
                    chain_id: "P".into(),
                    height: Height(100 + head as u32),
                },
                saga_of(i),
            )
        })
        .collect();
    want.sort_by_key(|(d, s)| (d.clone(), *s));
    assert_eq!(due, want, "deadline index");
    let in_flight: Vec<SagaId> = (0..SAGAS)
        .filter(|&i| (1..STEPS).contains(&done[usize::from(i)]))
        .map(saga_of)
        .collect();
    assert_eq!(log.in_flight_sagas().await.expect("in flight"), in_flight);
    done
}

/// xorshift: the kill points, varied but the same on every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::test]
async fn killed_writers_leave_whole_steps_and_keep_acknowledged_ones() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("gw");
    drop(SledLog::<TestEvent>::open(&dir, project).expect("create the store"));
    let mut acked = [0u32; SAGAS as usize];
    let mut rng = 0x5eed_u64;
    let mut kills = 0;
    // Holds first (one each way, then again later in the workload), then
    // kills at arbitrary points, then a last run to the end.
    let mut modes: Vec<(String, Option<usize>)> =
        vec![("committed:3".into(), None), ("flushed:2".into(), None)];
    for _ in 0..12 {
        modes.push(("random".into(), Some(1 + (next(&mut rng) % 8) as usize)));
    }
    modes.push(("committed:5".into(), None));
    modes.push(("flushed:4".into(), None));
    modes.push(("to the end".into(), None));
    for (mode, kill_after) in &modes {
        let round = run_child(&dir, mode, *kill_after, acked);
        kills += usize::from(round.killed);
        let done = check_store(&dir, &round.acked).await;
        eprintln!(
            "round {mode} (kill after {kill_after:?} acks): killed {}, acknowledged {:?}, present {done:?}",
            round.killed, round.acked
        );
        acked = round.acked;
        // What survived is at least what was acknowledged; it becomes the
        // floor for the next round.
        for (a, d) in acked.iter_mut().zip(done) {
            *a = (*a).max(d);
        }
    }
    assert_eq!(
        kills,
        modes.len() - 1,
        "every round but the last was killed"
    );
    assert_eq!(
        acked, [STEPS; SAGAS as usize],
        "the last run finished every saga"
    );
}
