//! [`MemLog`]: the event log in memory, for tests and the simulated parties.
//!
//! One mutex around ordered maps, one per tree of the durable store
//! (DESIGN.md §5). An append checks everything first, with the UTXO rules
//! applied to an overlay, and changes the maps only when every check passed,
//! all under the lock — so appends are serialisable and nothing is ever half
//! applied. "Durable" means "in this process": a dropped `MemLog` forgets.
//!
//! # Layout
//! - [`MemLog`] and its [`EventLog`] and [`UtxoStore`] implementations.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use bsv_format::Outpoint;
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};

use super::utxos::{apply_changes, ChangeError, UtxoTable};
use super::{
    check_step, AppendError, Appended, Deadline, DeadlineQuery, EventLog, FeedEntry, Projection,
    ReadError, ReplyKey, SagaFilter, SecretBytes, SecretError, Step, TokenConsumption,
};
use crate::wallet::{UtxoStore, UtxoStoreError};

type UtxoMap = BTreeMap<(String, Outpoint), (Utxo, UtxoState)>;

/// The in-memory event log: `E` is the event type (cloned out on reads).
pub struct MemLog<E> {
    tables: Mutex<Tables<E>>,
}

struct Tables<E> {
    /// `events` and `heads`: a saga's events, its head is the length.
    events: BTreeMap<SagaId, Vec<E>>,
    /// `feed`: cursor `i + 1` → (saga, seq).
    feed: Vec<(SagaId, u64)>,
    /// `sagas` (and, through each projection's deadlines, `deadlines`).
    sagas: BTreeMap<SagaId, Projection>,
    /// `tokens`: token id bytes → consumer.
    tokens: BTreeMap<[u8; 16], TokenConsumption>,
    /// `hashlocks`: H → the saga that recorded it.
    hashlocks: BTreeMap<[u8; 32], SagaId>,
    idempotency: BTreeMap<String, SagaId>,
    replies: BTreeMap<ReplyKey, Vec<u8>>,
    utxos: UtxoMap,
    secrets: BTreeMap<(SagaId, String), SecretBytes>,
}

impl<E> Default for MemLog<E> {
    fn default() -> Self {
        MemLog {
            tables: Mutex::new(Tables {
                events: BTreeMap::new(),
                feed: Vec::new(),
                sagas: BTreeMap::new(),
                tokens: BTreeMap::new(),
                hashlocks: BTreeMap::new(),
                idempotency: BTreeMap::new(),
                replies: BTreeMap::new(),
                utxos: BTreeMap::new(),
                secrets: BTreeMap::new(),
            }),
        }
    }
}

impl<E> MemLog<E> {
    /// An empty log.
    pub fn new() -> MemLog<E> {
        MemLog::default()
    }

    /// The tables; a poisoned lock (a panic while holding it) is a storage
    /// fault, as a real store's I/O error would be.
    fn lock(&self) -> Result<MutexGuard<'_, Tables<E>>, String> {
        self.tables
            .lock()
            .map_err(|_| "memory log lock poisoned by a panic".to_string())
    }
}

/// The UTXO rules' view of the map: reads see earlier writes of the same
/// apply; the writes are copied into the map only if every change passed.
struct Overlay<'a> {
    base: &'a UtxoMap,
    writes: UtxoMap,
}

impl UtxoTable for Overlay<'_> {
    type Error = Infallible;

    fn find(
        &mut self,
        chain_id: &str,
        outpoint: &Outpoint,
    ) -> Result<Option<(Utxo, UtxoState)>, Infallible> {
        let key = (chain_id.to_string(), *outpoint);
        Ok(self
            .writes
            .get(&key)
            .or_else(|| self.base.get(&key))
            .cloned())
    }

    fn put(&mut self, utxo: &Utxo, state: &UtxoState) -> Result<(), Infallible> {
        self.writes.insert(
            (utxo.chain_id.clone(), utxo.outpoint),
            (utxo.clone(), state.clone()),
        );
        Ok(())
    }
}

/// Runs the UTXO rules on an overlay of `utxos`: the writes to copy in.
fn staged_utxos(
    utxos: &UtxoMap,
    changes: &[UtxoChange],
) -> Result<UtxoMap, (String, Outpoint, String)> {
    let mut overlay = Overlay {
        base: utxos,
        writes: BTreeMap::new(),
    };
    match apply_changes(&mut overlay, changes) {
        Ok(()) => Ok(overlay.writes),
        Err(ChangeError::Unavailable {
            chain_id,
            outpoint,
            reason,
        }) => Err((chain_id, outpoint, reason)),
        Err(ChangeError::Table(never)) => match never {},
    }
}

impl<E> Tables<E> {
    /// Every check of an append, in the documented order; the staged UTXO
    /// writes if all pass. Changes nothing.
    fn check(&self, step: &Step<E>) -> Result<UtxoMap, AppendError> {
        check_step(step)?;
        let actual = self.events.get(&step.saga_id).map_or(0, |e| e.len() as u64);
        if actual != step.expected_seq {
            return Err(AppendError::SeqConflict {
                saga_id: step.saga_id,
                expected: step.expected_seq,
                actual,
            });
        }
        for token_id in &step.consumed_tokens {
            if let Some(c) = self.tokens.get(&token_id.0) {
                return Err(AppendError::TokenConsumed {
                    token_id: *token_id,
                    by: (c.saga_id, c.seq),
                });
            }
        }
        for h in &step.new_hashlocks {
            if let Some(by) = self.hashlocks.get(h) {
                return Err(AppendError::HashlockReused {
                    hashlock: *h,
                    by: *by,
                });
            }
        }
        if let Some(key) = &step.idempotency_key {
            match self.idempotency.get(key) {
                Some(owner) if *owner != step.saga_id => {
                    return Err(AppendError::IdempotencyConflict {
                        key: key.clone(),
                        saga_id: *owner,
                    })
                }
                Some(_) | None => {}
            }
        }
        if let Some((key, bytes)) = &step.reply {
            match self.replies.get(key) {
                Some(stored) if stored != bytes => {
                    return Err(AppendError::ReplyConflict { key: key.clone() })
                }
                Some(_) | None => {}
            }
        }
        staged_utxos(&self.utxos, &step.utxo_changes).map_err(|(chain_id, outpoint, reason)| {
            AppendError::UtxoUnavailable {
                chain_id,
                outpoint,
                reason,
            }
        })
    }
}

#[async_trait]
impl<E: Clone + Send + Sync + 'static> EventLog<E> for MemLog<E> {
    async fn append(&self, step: Step<E>) -> Result<Appended, AppendError> {
        let mut t = self.lock().map_err(AppendError::Storage)?;
        let utxo_writes = t.check(&step)?;
        // Every check passed: from here on nothing fails.
        let Step {
            saga_id,
            expected_seq,
            events,
            consumed_tokens,
            new_hashlocks,
            utxo_changes: _,
            idempotency_key,
            reply,
            projection,
        } = step;
        let first_cursor = t.feed.len() as u64 + 1;
        let mut feed_seqs = Vec::with_capacity(events.len());
        for (i, _) in events.iter().enumerate() {
            t.feed.push((saga_id, expected_seq + i as u64));
            feed_seqs.push(first_cursor + i as u64);
        }
        t.events.entry(saga_id).or_default().extend(events);
        for token_id in consumed_tokens {
            t.tokens.insert(
                token_id.0,
                TokenConsumption {
                    saga_id,
                    seq: expected_seq,
                },
            );
        }
        for h in new_hashlocks {
            t.hashlocks.insert(h, saga_id);
        }
        if let Some(key) = idempotency_key {
            t.idempotency.insert(key, saga_id);
        }
        if let Some((key, bytes)) = reply {
            t.replies.insert(key, bytes);
        }
        t.utxos.extend(utxo_writes);
        t.sagas.insert(saga_id, projection);
        Ok(Appended {
            first_seq: expected_seq,
            feed_seqs,
        })
    }

    async fn load(&self, saga_id: &SagaId) -> Result<Vec<(u64, E)>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.events.get(saga_id).map_or_else(Vec::new, |events| {
            events
                .iter()
                .enumerate()
                .map(|(i, e)| (i as u64, e.clone()))
                .collect()
        }))
    }

    async fn head(&self, saga_id: &SagaId) -> Result<u64, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.events.get(saga_id).map_or(0, |e| e.len() as u64))
    }

    async fn in_flight_sagas(&self) -> Result<Vec<SagaId>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.sagas
            .values()
            .filter(|p| !p.terminal)
            .map(|p| p.saga_id)
            .collect())
    }

    async fn feed(&self, from_cursor: u64, limit: usize) -> Result<Vec<FeedEntry<E>>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        let start = usize::try_from(from_cursor.max(1) - 1).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for (i, (saga_id, seq)) in t.feed.iter().enumerate().skip(start).take(limit) {
            let event = usize::try_from(*seq)
                .ok()
                .and_then(|s| t.events.get(saga_id)?.get(s))
                .ok_or_else(|| ReadError::Corrupt {
                    what: format!("feed {}", i + 1),
                    detail: format!("names missing event {saga_id}#{seq}"),
                })?;
            out.push(FeedEntry {
                cursor: i as u64 + 1,
                saga_id: *saga_id,
                seq: *seq,
                event: event.clone(),
            });
        }
        Ok(out)
    }

    async fn token_consumption(
        &self,
        token_id: &TokenId,
    ) -> Result<Option<TokenConsumption>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.tokens.get(&token_id.0).copied())
    }

    async fn hashlock_seen(&self, hashlock: &[u8; 32]) -> Result<Option<SagaId>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.hashlocks.get(hashlock).copied())
    }

    async fn idempotency(&self, key: &str) -> Result<Option<SagaId>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.idempotency.get(key).copied())
    }

    async fn reply(&self, key: &ReplyKey) -> Result<Option<Vec<u8>>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.replies.get(key).cloned())
    }

    async fn projection(&self, saga_id: &SagaId) -> Result<Option<Projection>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.sagas.get(saga_id).cloned())
    }

    async fn list_sagas(
        &self,
        filter: &SagaFilter,
        page_after: Option<SagaId>,
        limit: usize,
    ) -> Result<Vec<Projection>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        let range = match page_after {
            Some(after) => t
                .sagas
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => t.sagas.range(..),
        };
        Ok(range
            .map(|(_, p)| p)
            .filter(|p| filter.matches(p))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn due_deadlines(
        &self,
        query: &DeadlineQuery,
    ) -> Result<Vec<(Deadline, SagaId)>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        // (when, saga) orders as the durable store's keys do.
        let mut due = BTreeSet::new();
        for p in t.sagas.values() {
            for d in &p.deadlines {
                let when = match (query, d) {
                    (
                        DeadlineQuery::Height { chain_id, tip },
                        Deadline::Height {
                            chain_id: c,
                            height,
                        },
                    ) if c == chain_id && height <= tip => u64::from(height.0),
                    (DeadlineQuery::Time(now), Deadline::Time(at)) if at <= now => at.0,
                    _ => continue,
                };
                due.insert((when, p.saga_id, d.clone()));
            }
        }
        Ok(due.into_iter().map(|(_, s, d)| (d, s)).collect())
    }

    async fn put_secret(
        &self,
        saga_id: &SagaId,
        name: &str,
        secret: SecretBytes,
    ) -> Result<(), SecretError> {
        let mut t = self.lock().map_err(SecretError::Storage)?;
        let key = (*saga_id, name.to_string());
        match t.secrets.get(&key) {
            Some(stored) if stored.ct_eq(secret.as_bytes()) => Ok(()),
            Some(_) => Err(SecretError::Exists {
                saga_id: *saga_id,
                name: name.to_string(),
            }),
            None => {
                t.secrets.insert(key, secret);
                Ok(())
            }
        }
    }

    async fn secret(&self, saga_id: &SagaId, name: &str) -> Result<Option<SecretBytes>, ReadError> {
        let t = self.lock().map_err(ReadError::Storage)?;
        Ok(t.secrets.get(&(*saga_id, name.to_string())).cloned())
    }
}

#[async_trait]
impl<E: Send + Sync> UtxoStore for MemLog<E> {
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError> {
        let t = self.lock().map_err(UtxoStoreError::Storage)?;
        Ok(t.utxos
            .iter()
            .filter(|((c, _), (u, _))| c == chain_id && u.basket == basket)
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError> {
        let mut t = self.lock().map_err(UtxoStoreError::Storage)?;
        let writes = staged_utxos(&t.utxos, &changes).map_err(|(chain_id, outpoint, reason)| {
            UtxoStoreError::UtxoUnavailable {
                chain_id,
                outpoint,
                reason,
            }
        })?;
        t.utxos.extend(writes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::conformance::{self, TestEvent};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memlog_passes_the_conformance_suite() {
        conformance::run_all(|| async {
            Arc::new(MemLog::<TestEvent>::new()) as Arc<dyn EventLog<TestEvent>>
        })
        .await;
    }
}
