//! One gateway's follower: subscribe from the stored cursor plus one, judge
//! and store each item, and subscribe again after a backoff whenever the
//! subscription cannot be opened, ends or breaks, or an item cannot be
//! stored (module docs of [`super`]). It stops only when told to, and
//! then only between items: an item being stored is stored.
//!
//! # Layout
//! - [`FeedState`]: what the follower shares with [`super::RunningObserver`].
//! - [`Follower::run`], one subscription, one item; parsing an item.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::{broadcast, watch};
use tokio_stream::StreamExt;

use super::feed::FeedSource;
use super::store::{AuditStore, Recorded};
use super::{Backoff, Counters, FeedStatus, Observed};
use crate::proto::escrow_v1 as pb;
use crate::rpc::convert;
use crate::store::events::decode_event;

/// A follower's state, shared with the observer's accessors.
#[derive(Debug)]
pub(super) struct FeedState {
    pub(super) gateway: String,
    cursor: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    conflicts: AtomicU64,
    gaps: AtomicU64,
    subscriptions: AtomicU64,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl FeedState {
    pub(super) fn new(gateway: String, cursor: u64) -> FeedState {
        FeedState {
            gateway,
            cursor: AtomicU64::new(cursor),
            stored: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub(super) fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::SeqCst)
    }

    pub(super) fn counters(&self) -> Counters {
        Counters {
            stored: self.stored.load(Ordering::SeqCst),
            duplicates: self.duplicates.load(Ordering::SeqCst),
            conflicts: self.conflicts.load(Ordering::SeqCst),
            gaps: self.gaps.load(Ordering::SeqCst),
        }
    }

    pub(super) fn status(&self) -> FeedStatus {
        FeedStatus {
            gateway: self.gateway.clone(),
            cursor: self.cursor(),
            counters: self.counters(),
            subscriptions: self.subscriptions.load(Ordering::SeqCst),
            connected: self.connected.load(Ordering::SeqCst),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Notes a fault: logged as a warning when it differs from the last
    /// one (a gateway down for an hour is one line, not thousands).
    fn fault(&self, message: String) {
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.as_deref() == Some(message.as_str()) {
            tracing::debug!(gateway = %self.gateway, "observer: {message}");
        } else {
            tracing::warn!(gateway = %self.gateway, "observer: {message}");
        }
        *last = Some(message);
    }
}

/// Told to stop.
struct Stopped;

/// What became of one item.
enum Taken {
    /// Stored.
    Stored,
    /// Skipped (a duplicate).
    Skipped,
    /// Subscribe again (a gap, an unreadable item, a storage fault: logged).
    Resubscribe,
}

/// One gateway's follower.
pub(super) struct Follower {
    pub(super) source: Arc<dyn FeedSource>,
    pub(super) store: Arc<AuditStore>,
    pub(super) state: Arc<FeedState>,
    pub(super) backoff: Backoff,
    pub(super) events: broadcast::Sender<Observed>,
    pub(super) stop: watch::Receiver<bool>,
}

impl Follower {
    /// Follows until told to stop.
    pub(super) async fn run(mut self) {
        let mut delay = self.backoff.initial;
        let mut last_received = 0u64;
        loop {
            let progressed = match self.subscription(&mut last_received).await {
                Ok(p) => p,
                Err(Stopped) => return,
            };
            if progressed {
                delay = self.backoff.initial;
            }
            let mut stop = self.stop.clone();
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(delay) => {}
            }
            if !progressed {
                delay = delay.saturating_mul(2).min(self.backoff.max);
            }
        }
    }

    /// One subscription from the stored cursor plus one, until it ends or
    /// an item asks for a new one. Returns whether anything was stored.
    async fn subscription(&mut self, last_received: &mut u64) -> Result<bool, Stopped> {
        let from = self.state.cursor() + 1;
        let mut stop = self.stop.clone();
        if *stop.borrow_and_update() {
            return Err(Stopped);
        }
        let opened = tokio::select! {
            _ = stop.wait_for(|s| *s) => return Err(Stopped),
            opened = self.source.subscribe(from) => opened,
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                self.state
                    .fault(format!("subscribing from cursor {from}: {e}"));
                return Ok(false);
            }
        };
        self.state.subscriptions.fetch_add(1, Ordering::SeqCst);
        self.state.connected.store(true, Ordering::SeqCst);
        tracing::info!(gateway = %self.state.gateway, "observer: subscribed from cursor {from}");
        let mut progressed = false;
        loop {
            let next = tokio::select! {
                _ = stop.wait_for(|s| *s) => {
                    self.state.connected.store(false, Ordering::SeqCst);
                    return Err(Stopped);
                }
                next = stream.next() => next,
            };
            let item = match next {
                None => {
                    tracing::info!(
                        gateway = %self.state.gateway,
                        "observer: the gateway ended the feed (shutting down?); subscribing again"
                    );
                    break;
                }
                Some(Err(e)) => {
                    self.state.fault(format!("feed broke off: {e}"));
                    break;
                }
                Some(Ok(item)) => item,
            };
            match self.take(item, last_received).await {
                Taken::Stored => progressed = true,
                Taken::Skipped => {}
                Taken::Resubscribe => break,
            }
        }
        self.state.connected.store(false, Ordering::SeqCst);
        Ok(progressed)
    }

    /// Judges and stores one item.
    async fn take(&mut self, item: pb::FeedItem, last_received: &mut u64) -> Taken {
        let gateway = self.state.gateway.clone();
        let stored = self.state.cursor();
        if item.cursor == 0 {
            self.state
                .fault("unreadable item: field cursor: 0 (cursors start at 1)".into());
            return Taken::Resubscribe;
        }
        if item.cursor > stored + 1 {
            self.state.gaps.fetch_add(1, Ordering::SeqCst);
            let message = format!(
                "gap in the feed: expected cursor {}, got {}; subscribing again from {}",
                stored + 1,
                item.cursor,
                stored + 1
            );
            tracing::error!(%gateway, "observer: {message}");
            self.state.fault(message);
            return Taken::Resubscribe;
        }
        // Parse even a duplicate: its saga and seq are checked against the
        // store's index.
        let received_at = now_ms().max(*last_received);
        let (observed, bytes) = match parse_item(&gateway, item, received_at) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.state.fault(format!(
                    "unreadable item at cursor {}: {e} (not stored; retrying — an upgrade of \
                     escrowd may be needed)",
                    stored + 1
                ));
                return Taken::Resubscribe;
            }
        };
        let store = self.store.clone();
        let to_store = observed.clone();
        let outcome =
            match tokio::task::spawn_blocking(move || store.record(&to_store, &bytes)).await {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    self.state
                        .fault(format!("storing cursor {}: {e}", observed.cursor));
                    return Taken::Resubscribe;
                }
                Err(e) => {
                    self.state.fault(format!(
                        "storing cursor {}: task failed: {e}",
                        observed.cursor
                    ));
                    return Taken::Resubscribe;
                }
            };
        match outcome {
            Recorded::Stored => {
                *last_received = received_at;
                self.state.cursor.store(observed.cursor, Ordering::SeqCst);
                self.state.stored.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(
                    %gateway,
                    cursor = observed.cursor,
                    saga_id = %observed.saga_id,
                    seq = observed.seq,
                    name = %observed.name,
                    "observer: stored"
                );
                let _ = self.events.send(observed);
                Taken::Stored
            }
            Recorded::Duplicate { conflict } => {
                self.state.duplicates.fetch_add(1, Ordering::SeqCst);
                if let Some(c) = conflict {
                    self.state.conflicts.fetch_add(1, Ordering::SeqCst);
                    let message = format!("re-delivered item contradicts the audit store: {c}");
                    tracing::error!(%gateway, "observer: {message}");
                    self.state.fault(message);
                }
                Taken::Skipped
            }
            Recorded::Gap { expected } => {
                // Only this follower writes this gateway's cursor, so the
                // store and our copy agree; if not, trust the store.
                self.state.cursor.store(expected - 1, Ordering::SeqCst);
                self.state.gaps.fetch_add(1, Ordering::SeqCst);
                self.state.fault(format!(
                    "gap in the feed: expected cursor {expected}, got {}",
                    observed.cursor
                ));
                Taken::Resubscribe
            }
        }
    }
}

/// Now, UNIX milliseconds (0 before 1970, which no clock we run on says).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The item as an [`Observed`] and its event's stored bytes. The event
/// must decode and carry the name the item gives it.
fn parse_item(
    gateway: &str,
    item: pb::FeedItem,
    received_at: u64,
) -> Result<(Observed, Vec<u8>), String> {
    let saga_id = convert::saga_id("saga_id", &item.saga_id).map_err(|e| e.to_string())?;
    let stored = item.event.ok_or("field event: missing")?;
    let bytes = stored.encode_to_vec();
    let event = decode_event(&bytes).map_err(|e| format!("field event: {e}"))?;
    if event.name() != item.name {
        return Err(format!(
            "field name: {:?}, but the event is {}",
            item.name,
            event.name()
        ));
    }
    Ok((
        Observed {
            gateway: gateway.to_owned(),
            cursor: item.cursor,
            saga_id,
            seq: item.seq,
            name: item.name,
            text: item.text,
            event,
            sent_at: item.sent_at,
            received_at,
        },
        bytes,
    ))
}
