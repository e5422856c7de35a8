//! The demo's observer: it follows each gateway's event feed (the order
//! subscribers see, DESIGN.md §5 `feed`) and notes when it first saw each
//! event — the time column of the demo's timelines. A gateway that is down
//! has no log to read; the observer resumes from its cursor when the
//! gateway is back (the feed is persistent, so nothing is missed).
//!
//! It holds a gateway's log only while reading it, so a stopped gateway's
//! store can be reopened by its restart.
//!
//! # Layout
//! - [`Seen`], [`LogSlot`], [`Observer`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use saga_core::saga::Event;
use saga_core::terms::SagaId;
use saga_runtime::log::EventLog;

/// How often the observer reads the feeds.
pub const POLL: Duration = Duration::from_millis(20);
/// Feed entries read per request.
const PAGE: usize = 500;

/// One event as the observer saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The party whose log it is (`buyer`, `seller`).
    pub party: &'static str,
    /// The event's seq in its saga.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// When the observer first read it (at most [`POLL`] after it was appended).
    pub at: SystemTime,
}

/// Where the observer finds a party's log: empty while its gateway is down.
pub type LogSlot = Arc<Mutex<Option<Arc<dyn EventLog<Event>>>>>;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running observer.
pub struct Observer {
    seen: Arc<Mutex<BTreeMap<SagaId, Vec<Seen>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Follows the logs in `slots` (party name, slot) from the start of
    /// their feeds.
    pub fn start(slots: Vec<(&'static str, LogSlot)>) -> Observer {
        let seen: Arc<Mutex<BTreeMap<SagaId, Vec<Seen>>>> = Arc::default();
        let out = seen.clone();
        let task = tokio::spawn(async move {
            let mut cursors = vec![0u64; slots.len()];
            loop {
                for ((party, slot), cursor) in slots.iter().zip(cursors.iter_mut()) {
                    let log = locked(slot).clone();
                    if let Some(log) = log {
                        read(party, log.as_ref(), cursor, &out).await;
                    }
                }
                tokio::time::sleep(POLL).await;
            }
        });
        Observer { seen, task }
    }

    /// Reads every slot once more, now (so the last events are in), then
    /// returns what was seen per saga, in the order seen.
    pub async fn catch_up(&self, slots: &[(&'static str, LogSlot)]) -> BTreeMap<SagaId, Vec<Seen>> {
        // The background task keeps its own cursors; a final pass with
        // cursors from what was seen adds only what it had not read yet.
        for (party, slot) in slots {
            let log = locked(slot).clone();
            let Some(log) = log else { continue };
            let mut cursor = 0;
            let mut fresh = Vec::new();
            loop {
                let Ok(page) = log.feed(cursor + 1, PAGE).await else {
                    break;
                };
                let Some(last) = page.last() else { break };
                cursor = last.cursor;
                fresh.extend(page);
            }
            let mut seen = locked(&self.seen);
            for entry in fresh {
                let list = seen.entry(entry.saga_id).or_default();
                let known = list.iter().any(|s| s.party == *party && s.seq == entry.seq);
                if !known {
                    list.push(Seen {
                        party,
                        seq: entry.seq,
                        event: entry.event,
                        at: SystemTime::now(),
                    });
                }
            }
        }
        locked(&self.seen).clone()
    }

    /// Stops following.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Reads `log`'s feed after `cursor` and notes each entry as seen now.
async fn read(
    party: &'static str,
    log: &dyn EventLog<Event>,
    cursor: &mut u64,
    out: &Mutex<BTreeMap<SagaId, Vec<Seen>>>,
) {
    loop {
        let page = match log.feed(*cursor + 1, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!(party, error = %e, "observer: feed unreadable; trying later");
                return;
            }
        };
        let Some(last) = page.last() else { return };
        *cursor = last.cursor;
        let at = SystemTime::now();
        let mut seen = locked(out);
        for entry in page {
            seen.entry(entry.saga_id).or_default().push(Seen {
                party,
                seq: entry.seq,
                event: entry.event,
                at,
            });
        }
    }
}
