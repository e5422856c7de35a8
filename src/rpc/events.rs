//! `escrow.v1.EventService`: the gateway-wide event feed for observers,
//! notaries and our operators (DESIGN.md §3.3 step 4).
//!
//! A subscription reads [`EventLog::feed`] from its cursor in batches and
//! sends each event as a `FeedItem`; when it has caught up it waits for the
//! next append — signalled by [`NotifyingLog`] when the driver's log is
//! wrapped in it — or, at the latest, one poll interval (so a log written by
//! something else is still followed). Delivery is at least once and in
//! cursor order: a subscriber that resumes from its last cursor plus one
//! misses nothing. The stream ends cleanly (status OK) when the shutdown
//! signal fires, so a server's graceful shutdown is never held up by an
//! open subscription; a storage fault ends it with UNAVAILABLE.
//!
//! # Layout
//! - [`NotifyingLog`]: an [`EventLog`] wrapper announcing appends; [`FeedSignal`].
//! - [`EventService`] and its gRPC trait implementation.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use saga_core::saga::Event;
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};
use saga_runtime::log::{
    AppendError, Appended, Deadline, DeadlineQuery, EventLog, FeedEntry, Projection, ReadError,
    ReplyKey, SagaFilter, SecretBytes, SecretError, Step, TokenConsumption,
};
use saga_runtime::ports::Clock;
use saga_runtime::wallet::{UtxoStore, UtxoStoreError};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert;
use super::status::RpcError;
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::event_service_server::{self, EventServiceServer};

/// Tells subscribers the feed grew: holds the cursor of the last event
/// appended through the [`NotifyingLog`] (0 before any).
pub type FeedSignal = watch::Receiver<u64>;

/// An [`EventLog`] that forwards everything to `inner` and, after each
/// successful append, publishes the step's last feed cursor.
pub struct NotifyingLog<E> {
    inner: Arc<dyn EventLog<E>>,
    appended: watch::Sender<u64>,
}

impl<E> std::fmt::Debug for NotifyingLog<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyingLog")
            .field("last_cursor", &*self.appended.borrow())
            .finish_non_exhaustive()
    }
}

impl<E: Send + 'static> NotifyingLog<E> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn EventLog<E>>) -> NotifyingLog<E> {
        NotifyingLog {
            inner,
            appended: watch::channel(0).0,
        }
    }

    /// A receiver of the append signal (one per subscriber is fine).
    pub fn signal(&self) -> FeedSignal {
        self.appended.subscribe()
    }
}

#[async_trait]
impl<E: Send + 'static> UtxoStore for NotifyingLog<E> {
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError> {
        self.inner.utxos(chain_id, basket).await
    }

    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError> {
        self.inner.commit_utxos(changes).await
    }
}

#[async_trait]
impl<E: Send + 'static> EventLog<E> for NotifyingLog<E> {
    async fn append(&self, step: Step<E>) -> Result<Appended, AppendError> {
        let appended = self.inner.append(step).await?;
        if let Some(last) = appended.feed_seqs.last() {
            let last = *last;
            self.appended.send_if_modified(|c| {
                let newer = last > *c;
                if newer {
                    *c = last;
                }
                newer
            });
        }
        Ok(appended)
    }

    async fn load(&self, saga_id: &SagaId) -> Result<Vec<(u64, E)>, ReadError> {
        self.inner.load(saga_id).await
    }

    async fn head(&self, saga_id: &SagaId) -> Result<u64, ReadError> {
        self.inner.head(saga_id).await
    }

    async fn in_flight_sagas(&self) -> Result<Vec<SagaId>, ReadError> {
        self.inner.in_flight_sagas().await
    }

    async fn feed(&self, from_cursor: u64, limit: usize) -> Result<Vec<FeedEntry<E>>, ReadError> {
        self.inner.feed(from_cursor, limit).await
    }

    async fn token_consumption(
        &self,
        token_id: &TokenId,
    ) -> Result<Option<TokenConsumption>, ReadError> {
        self.inner.token_consumption(token_id).await
    }

    async fn hashlock_seen(&self, hashlock: &[u8; 32]) -> Result<Option<SagaId>, ReadError> {
        self.inner.hashlock_seen(hashlock).await
    }

    async fn idempotency(&self, key: &str) -> Result<Option<SagaId>, ReadError> {
        self.inner.idempotency(key).await
    }

    async fn reply(&self, key: &ReplyKey) -> Result<Option<Vec<u8>>, ReadError> {
        self.inner.reply(key).await
    }

    async fn projection(&self, saga_id: &SagaId) -> Result<Option<Projection>, ReadError> {
        self.inner.projection(saga_id).await
    }

    async fn list_sagas(
        &self,
        filter: &SagaFilter,
        page_after: Option<SagaId>,
        limit: usize,
    ) -> Result<Vec<Projection>, ReadError> {
        self.inner.list_sagas(filter, page_after, limit).await
    }

    async fn due_deadlines(
        &self,
        query: &DeadlineQuery,
    ) -> Result<Vec<(Deadline, SagaId)>, ReadError> {
        self.inner.due_deadlines(query).await
    }

    async fn put_secret(
        &self,
        saga_id: &SagaId,
        name: &str,
        secret: SecretBytes,
    ) -> Result<(), SecretError> {
        self.inner.put_secret(saga_id, name, secret).await
    }

    async fn secret(&self, saga_id: &SagaId, name: &str) -> Result<Option<SecretBytes>, ReadError> {
        self.inner.secret(saga_id, name).await
    }
}

/// Events read from the log per batch.
const BATCH: usize = 256;
/// Items buffered per subscriber before the reader waits for it.
const BUFFER: usize = 64;

/// The gateway's EventService.
#[derive(Clone)]
pub struct EventService {
    log: Arc<dyn EventLog<Event>>,
    signal: Option<FeedSignal>,
    poll: Duration,
    shutdown: watch::Receiver<bool>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EventService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventService")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl EventService {
    /// A feed over `log`, woken by `signal` (if the log is a
    /// [`NotifyingLog`]) or every `poll`, ending its streams when
    /// `shutdown` becomes `true` (or its sender is dropped); `clock` stamps
    /// each item's `sent_at`.
    pub fn new(
        log: Arc<dyn EventLog<Event>>,
        signal: Option<FeedSignal>,
        poll: Duration,
        shutdown: watch::Receiver<bool>,
        clock: Arc<dyn Clock>,
    ) -> EventService {
        EventService {
            log,
            signal,
            poll,
            shutdown,
            clock,
        }
    }

    /// The tonic service to add to a server (behind the `AuthLayer`).
    pub fn into_server(self) -> EventServiceServer<EventService> {
        EventServiceServer::new(self)
    }

    fn item(&self, entry: &FeedEntry<Event>) -> pb::FeedItem {
        pb::FeedItem {
            cursor: entry.cursor,
            saga_id: entry.saga_id.to_string(),
            seq: entry.seq,
            name: entry.event.name().to_owned(),
            sent_at: self.clock.now().0,
            text: convert::event_text(&entry.event),
            event: convert::stored_event(&entry.event),
        }
    }

    /// Feeds `tx` from `cursor` until the subscriber leaves, shutdown, or a
    /// storage fault (sent as the stream's last item).
    async fn pump(self, mut cursor: u64, tx: mpsc::Sender<Result<pb::FeedItem, Status>>) {
        let mut shutdown = self.shutdown.clone();
        let mut signal = self.signal.clone();
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            if let Some(s) = signal.as_mut() {
                // Everything appended so far is read below.
                s.borrow_and_update();
            }
            let batch = match self.log.feed(cursor, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.send(Err(RpcError::from(e).into())).await;
                    return;
                }
            };
            for entry in &batch {
                if tx.send(Ok(self.item(entry))).await.is_err() {
                    return;
                }
                cursor = entry.cursor.saturating_add(1);
            }
            if batch.len() == BATCH {
                continue;
            }
            let appended = async {
                match signal.as_mut() {
                    Some(s) => {
                        if s.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = appended => {}
                () = tokio::time::sleep(self.poll) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = tx.closed() => return,
            }
        }
    }
}

/// The stream of one subscription.
pub type FeedStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::FeedItem, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl event_service_server::EventService for EventService {
    type SubscribeStream = FeedStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<FeedStream>, Status> {
        let from = request.into_inner().from_cursor.max(1);
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(self.clone().pump(from, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
