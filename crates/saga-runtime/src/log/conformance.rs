//! The suite every [`EventLog`] implementation must pass (STYLE.md 13).
//!
//! Each case is a `pub async fn` taking a fresh, empty log; [`run_all`]
//! runs them all, each on a new log from the caller's factory, and names the
//! case on stderr before it runs so a failure points at its contract. The
//! cases panic (assert) on a broken contract: this is test support, linked
//! into the library so the gateway's store tests can run it too.
//!
//! The events are [`TestEvent`]s, a small enum with a fixed byte encoding
//! ([`TestEvent::to_bytes`]) that any store can carry as its stored form.
//!
//! # Layout
//! - [`TestEvent`], [`TestEventError`].
//! - [`run_all`]; the cases, one `pub async fn` per contract, re-exported
//!   here: `append` (round trip, shape, CAS, tokens incl. concurrent use,
//!   hashlocks, idempotency, replies, failures leave nothing) and `state`
//!   (UTXO rules, feed, projections and deadlines, secrets).
//! - Helpers for the gateway's store tests: [`saga`], [`step`],
//!   [`projection`], [`utxo`], [`Snapshot`].

use std::future::Future;
use std::sync::Arc;

use bsv_format::{Outpoint, Script, Txid};
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::units::{Height, Satoshis, UnixTime};
use saga_core::wallet::{Basket, Utxo, UtxoState};

use super::{
    AppendError, Deadline, DeadlineQuery, EventLog, FeedEntry, Projection, ReplyKey, SagaFilter,
    Step, TokenConsumption,
};

mod append;
mod state;

pub use append::*;
pub use state::*;

/// The suite's event: enough shape (a unit variant, text, bytes) to catch a
/// store that loses or mixes up fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestEvent {
    /// A saga began.
    Started {
        /// Free text.
        note: String,
    },
    /// A step happened.
    Progressed {
        /// A counter.
        n: u32,
        /// Opaque bytes.
        payload: Vec<u8>,
    },
    /// The saga ended.
    Finished,
}

/// Why bytes are not a [`TestEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TestEventError {
    /// The bytes end early.
    #[error("test event truncated at byte {0}")]
    Truncated(usize),
    /// Unknown variant tag.
    #[error("unknown test event tag {0}")]
    UnknownTag(u8),
    /// The note is not UTF-8.
    #[error("test event note is not UTF-8")]
    NotUtf8,
    /// Bytes after the event.
    #[error("{0} trailing bytes after the test event")]
    TrailingBytes(usize),
}

impl TestEvent {
    /// The fixed encoding: tag u8 (1 `Started`, 2 `Progressed`, 3
    /// `Finished`), then for `Started` the note (u32 BE length ‖ UTF-8),
    /// for `Progressed` `n` (u32 BE) and the payload (u32 BE length ‖ bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let push_bytes = |out: &mut Vec<u8>, b: &[u8]| {
            // Test events are small: a length over u32 is a test bug.
            let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(b);
        };
        match self {
            TestEvent::Started { note } => {
                out.push(1);
                push_bytes(&mut out, note.as_bytes());
            }
            TestEvent::Progressed { n, payload } => {
                out.push(2);
                out.extend_from_slice(&n.to_be_bytes());
                push_bytes(&mut out, payload);
            }
            TestEvent::Finished => out.push(3),
        }
        out
    }

    /// Parses [`TestEvent::to_bytes`]; trailing bytes are an error.
    ///
    /// # Errors
    /// [`TestEventError`].
    pub fn from_bytes(bytes: &[u8]) -> Result<TestEvent, TestEventError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], TestEventError> {
            let end = at.checked_add(n).filter(|&e| e <= bytes.len());
            let end = end.ok_or(TestEventError::Truncated(at))?;
            let s = &bytes[at..end];
            at = end;
            Ok(s)
        };
        let u32_of = |b: &[u8]| b.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x));
        let event = match take(1)?[0] {
            1 => {
                let len = u32_of(take(4)?) as usize;
                let note =
                    String::from_utf8(take(len)?.to_vec()).map_err(|_| TestEventError::NotUtf8)?;
                TestEvent::Started { note }
            }
            2 => {
                let n = u32_of(take(4)?);
                let len = u32_of(take(4)?) as usize;
                TestEvent::Progressed {
                    n,
                    payload: take(len)?.to_vec(),
                }
            }
            3 => TestEvent::Finished,
            tag => return Err(TestEventError::UnknownTag(tag)),
        };
        if at != bytes.len() {
            return Err(TestEventError::TrailingBytes(bytes.len() - at));
        }
        Ok(event)
    }
}

/// The log type the suite runs on.
pub type TestLog = Arc<dyn EventLog<TestEvent>>;

/// Runs every case, each on a fresh empty log from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = TestLog>,
{
    macro_rules! case {
        ($name:ident) => {
            eprintln!("conformance: {}", stringify!($name));
            $name(make().await).await;
        };
    }
    case!(append_and_load_round_trip);
    case!(malformed_steps_are_refused);
    case!(append_is_compare_and_set);
    case!(concurrent_appends_to_one_saga_have_one_winner);
    case!(tokens_are_consumed_once);
    case!(concurrent_token_use_has_one_winner);
    case!(hashlocks_are_never_reused);
    case!(utxo_rules_hold);
    case!(idempotency_keys_map_to_one_saga);
    case!(replies_are_kept_and_never_replaced);
    case!(feed_orders_events_and_resumes);
    case!(projections_deadlines_and_paging);
    case!(failures_leave_nothing_behind);
    case!(secrets_are_written_once);
}

// ---------------------------------------------------------------------------
// Helpers (also for the store's own tests)

/// The saga id with creation time `i` ms and random bytes `[i; 10]`: ids
/// sort by `i`.
pub fn saga(i: u8) -> SagaId {
    SagaId::new_v7(u64::from(i), &[i; 10])
}

/// A non-terminal projection in state `s<head>` with no deadlines.
pub fn projection(saga_id: SagaId, head: u64) -> Projection {
    Projection {
        saga_id,
        role: "buyer".into(),
        state: format!("s{head}"),
        terminal: false,
        attention: None,
        head,
        deadlines: Vec::new(),
    }
}

/// A step of `events` at `expected_seq` with nothing else and
/// [`projection`] for its new head.
pub fn step(saga_id: SagaId, expected_seq: u64, events: Vec<TestEvent>) -> Step<TestEvent> {
    let head = expected_seq + events.len() as u64;
    Step {
        saga_id,
        expected_seq,
        events,
        consumed_tokens: Vec::new(),
        new_hashlocks: Vec::new(),
        utxo_changes: Vec::new(),
        idempotency_key: None,
        reply: None,
        projection: projection(saga_id, head),
    }
}

/// `Progressed { n, payload: [n as u8; 3] }`.
pub fn progressed(n: u32) -> TestEvent {
    TestEvent::Progressed {
        n,
        payload: vec![n as u8; 3],
    }
}

/// A funding output `txid [i; 32]:vout` of 1,000 × `i` satoshis on `chain_id`.
pub fn utxo(chain_id: &str, basket: Basket, i: u8, vout: u32) -> Utxo {
    Utxo {
        chain_id: chain_id.into(),
        basket,
        outpoint: Outpoint::new(Txid([i; 32]), vout),
        satoshis: Satoshis(1_000 * u64::from(i)),
        locking_script: Script::from_bytes(vec![0x76, 0xa9, i]),
    }
}

/// Everything a failed append could have touched, read through the port.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    logs: Vec<Vec<(u64, TestEvent)>>,
    heads: Vec<u64>,
    projections: Vec<Option<Projection>>,
    feed: Vec<FeedEntry<TestEvent>>,
    listed: Vec<Projection>,
    in_flight: Vec<SagaId>,
    due: Vec<Vec<(Deadline, SagaId)>>,
    tokens: Vec<Option<TokenConsumption>>,
    hashlocks: Vec<Option<SagaId>>,
    idempotency: Vec<Option<SagaId>>,
    replies: Vec<Option<Vec<u8>>>,
    utxos: Vec<Vec<(Utxo, UtxoState)>>,
}

impl Snapshot {
    /// Reads the state of `sagas`, `tokens`, `hashlocks`, idempotency `keys`,
    /// `replies` and the UTXOs of `chains`, plus the whole feed, the saga
    /// list, in-flight sagas and every deadline up to the maximum.
    ///
    /// # Panics
    /// If a read fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn take(
        log: &TestLog,
        sagas: &[SagaId],
        tokens: &[TokenId],
        hashlocks: &[[u8; 32]],
        keys: &[&str],
        replies: &[ReplyKey],
        chains: &[&str],
    ) -> Snapshot {
        let mut s = Snapshot {
            logs: Vec::new(),
            heads: Vec::new(),
            projections: Vec::new(),
            feed: log.feed(0, usize::MAX).await.expect("feed"),
            listed: log
                .list_sagas(&SagaFilter::default(), None, usize::MAX)
                .await
                .expect("list"),
            in_flight: log.in_flight_sagas().await.expect("in flight"),
            due: Vec::new(),
            tokens: Vec::new(),
            hashlocks: Vec::new(),
            idempotency: Vec::new(),
            replies: Vec::new(),
            utxos: Vec::new(),
        };
        for id in sagas {
            s.logs.push(log.load(id).await.expect("load"));
            s.heads.push(log.head(id).await.expect("head"));
            s.projections
                .push(log.projection(id).await.expect("projection"));
        }
        for t in tokens {
            s.tokens
                .push(log.token_consumption(t).await.expect("token"));
        }
        for h in hashlocks {
            s.hashlocks
                .push(log.hashlock_seen(h).await.expect("hashlock"));
        }
        for k in keys {
            s.idempotency
                .push(log.idempotency(k).await.expect("idempotency"));
        }
        for r in replies {
            s.replies.push(log.reply(r).await.expect("reply"));
        }
        s.due.push(
            log.due_deadlines(&DeadlineQuery::Time(UnixTime(u64::MAX)))
                .await
                .expect("due"),
        );
        for c in chains {
            s.due.push(
                log.due_deadlines(&DeadlineQuery::Height {
                    chain_id: (*c).into(),
                    tip: Height(u32::MAX),
                })
                .await
                .expect("due"),
            );
            for b in Basket::ALL {
                s.utxos.push(log.utxos(c, b).await.expect("utxos"));
            }
        }
        s
    }
}

pub(crate) fn token(i: u8) -> TokenId {
    TokenId([i; 16])
}

pub(crate) async fn ok(log: &TestLog, step: Step<TestEvent>) -> super::Appended {
    let saga_id = step.saga_id;
    match log.append(step).await {
        Ok(a) => a,
        Err(e) => panic!("append to {saga_id} failed: {e}"),
    }
}

pub(crate) async fn refused(log: &TestLog, step: Step<TestEvent>) -> AppendError {
    match log.append(step).await {
        Ok(a) => panic!("append succeeded ({a:?}) but must fail"),
        Err(e) => e,
    }
}
