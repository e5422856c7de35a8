//! Writes: the append of one saga step as ONE sled transaction over the
//! eleven trees it touches, then a flush; the same for a secret and for the
//! wallet's own UTXO changes. Blocking: the port's async methods run these
//! on tokio's blocking pool.
//!
//! The transaction reads what it checks (head, tokens, hashlocks,
//! idempotency key, reply, outputs, feed counter) through sled's
//! transactional view, so two appends that touch a common key are
//! serialised: of two concurrent uses of one token exactly one commits, the
//! other re-runs and finds it consumed (DESIGN.md §3.4, STYLE.md 10).
//!
//! # Layout
//! - `append` (checks in the port's documented order, then writes).
//! - `put_secret`, `commit_utxos`.
//! - `TxUtxos`: the UTXO rules' view of the transactional `utxos` tree.

use std::collections::BTreeSet;

use bsv_format::Outpoint;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};
use saga_runtime::log::utxos::{apply_changes, ChangeError, UtxoTable};
use saga_runtime::log::{
    check_step, AppendError, Appended, SecretBytes, SecretError, Step, TokenConsumption,
};
use saga_runtime::wallet::UtxoStoreError;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;

use super::keys::{self, META_FEED_NEXT};
use super::records::{self, RecordError};
use super::{AppendPoint, Inner, StoredEvent};
use crate::proto::escrow_v1::{
    StoredEventRecord, StoredFeedEntry, StoredFeedNext, StoredHead, StoredProjection, StoredReply,
    StoredSagaRef, StoredSecret, StoredTokenConsumption, StoredUtxo,
};

type TxResult<T, E> = Result<T, ConflictableTransactionError<E>>;

fn abort<T>(e: AppendError) -> TxResult<T, AppendError> {
    Err(ConflictableTransactionError::Abort(e))
}

fn corrupt<T>(e: RecordError) -> TxResult<T, AppendError> {
    abort(AppendError::Storage(e.to_string()))
}

/// Appends `step` (see [`saga_runtime::log::EventLog::append`]).
pub(super) fn append<E: StoredEvent>(
    inner: &Inner,
    step: Step<E>,
) -> Result<Appended, AppendError> {
    check_step(&step)?;
    let saga_key = *step.saga_id.as_bytes();
    let stored_events: Vec<Vec<u8>> = step.events.iter().map(E::to_stored).collect();
    let count = stored_events.len() as u64;
    let new_head = step.projection.head;
    let projection_record = records::encode(&records::projection(&step.projection));
    let new_deadlines: BTreeSet<Vec<u8>> = step
        .projection
        .deadlines
        .iter()
        .map(|d| keys::deadline(d, &step.saga_id))
        .collect();
    let consumption = records::encode(&records::token_consumption(&TokenConsumption {
        saga_id: step.saga_id,
        seq: step.expected_seq,
    }));
    let saga_ref = records::encode(&records::saga_ref(&step.saga_id));
    let reply = step
        .reply
        .as_ref()
        .map(|(k, bytes)| (keys::reply(k), k, bytes));

    let t = &inner.trees;
    let outcome = (
        &t.meta,
        &t.events,
        &t.heads,
        &t.feed,
        &t.sagas,
        &t.deadlines,
        &t.tokens,
        &t.hashlocks,
        &t.idempotency,
        &t.replies,
        &t.utxos,
    )
        .transaction(
            |(
                meta,
                events,
                heads,
                feed,
                sagas,
                deadlines,
                tokens,
                hashlocks,
                idempotency,
                replies,
                utxos,
            )| {
                // Compare-and-set on the head.
                let actual = match heads.get(saga_key)? {
                    Some(v) => match records::decode::<StoredHead>("heads", &saga_key, &v) {
                        Ok(h) => h.next_seq,
                        Err(e) => return corrupt(e),
                    },
                    None => 0,
                };
                if actual != step.expected_seq {
                    return abort(AppendError::SeqConflict {
                        saga_id: step.saga_id,
                        expected: step.expected_seq,
                        actual,
                    });
                }
                for token_id in &step.consumed_tokens {
                    if let Some(v) = tokens.get(token_id.0)? {
                        let by =
                            records::decode::<StoredTokenConsumption>("tokens", &token_id.0, &v)
                                .and_then(|s| records::token_consumption_from(&token_id.0, s));
                        return match by {
                            Ok(c) => abort(AppendError::TokenConsumed {
                                token_id: *token_id,
                                by: (c.saga_id, c.seq),
                            }),
                            Err(e) => corrupt(e),
                        };
                    }
                }
                for h in &step.new_hashlocks {
                    if let Some(v) = hashlocks.get(h)? {
                        return match stored_saga_ref("hashlocks", h, &v) {
                            Ok(by) => abort(AppendError::HashlockReused { hashlock: *h, by }),
                            Err(e) => corrupt(e),
                        };
                    }
                }
                if let Some(key) = &step.idempotency_key {
                    if let Some(v) = idempotency.get(key.as_bytes())? {
                        match stored_saga_ref("idempotency", key.as_bytes(), &v) {
                            Ok(owner) if owner != step.saga_id => {
                                return abort(AppendError::IdempotencyConflict {
                                    key: key.clone(),
                                    saga_id: owner,
                                })
                            }
                            Ok(_) => {}
                            Err(e) => return corrupt(e),
                        }
                    }
                }
                if let Some((k, reply_key, bytes)) = &reply {
                    if let Some(v) = replies.get(k.as_slice())? {
                        match records::decode::<StoredReply>("replies", k, &v) {
                            Ok(stored) if stored.reply != **bytes => {
                                return abort(AppendError::ReplyConflict {
                                    key: (*reply_key).clone(),
                                })
                            }
                            Ok(_) => {}
                            Err(e) => return corrupt(e),
                        }
                    }
                }
                match apply_changes(&mut TxUtxos { tree: utxos }, &step.utxo_changes) {
                    Ok(()) => {}
                    Err(ChangeError::Unavailable {
                        chain_id,
                        outpoint,
                        reason,
                    }) => {
                        return abort(AppendError::UtxoUnavailable {
                            chain_id,
                            outpoint,
                            reason,
                        })
                    }
                    Err(ChangeError::Table(TxFault::Sled(e))) => return Err(e.into()),
                    Err(ChangeError::Table(TxFault::Record(e))) => return corrupt(e),
                }

                // Every check passed: write.
                let first_cursor = match meta.get(META_FEED_NEXT)? {
                    Some(v) => {
                        match records::decode::<StoredFeedNext>("meta", META_FEED_NEXT, &v) {
                            Ok(n) => n.next_cursor,
                            Err(e) => return corrupt(e),
                        }
                    }
                    None => return abort(AppendError::Storage("meta/feed_next is missing".into())),
                };
                let mut feed_seqs = Vec::with_capacity(stored_events.len());
                for (i, event) in stored_events.iter().enumerate() {
                    let seq = step.expected_seq + i as u64;
                    let cursor = first_cursor + i as u64;
                    events.insert(
                        &keys::event(&step.saga_id, seq)[..],
                        records::encode(&StoredEventRecord {
                            event: event.clone(),
                            feed_cursor: cursor,
                        }),
                    )?;
                    feed.insert(
                        &keys::feed(cursor)[..],
                        records::encode(&StoredFeedEntry {
                            saga_id: saga_key.to_vec(),
                            seq,
                        }),
                    )?;
                    feed_seqs.push(cursor);
                }
                meta.insert(
                    META_FEED_NEXT,
                    records::encode(&StoredFeedNext {
                        next_cursor: first_cursor + count,
                    }),
                )?;
                heads.insert(
                    &saga_key[..],
                    records::encode(&StoredHead { next_seq: new_head }),
                )?;
                for token_id in &step.consumed_tokens {
                    tokens.insert(&token_id.0[..], consumption.clone())?;
                }
                for h in &step.new_hashlocks {
                    hashlocks.insert(&h[..], saga_ref.clone())?;
                }
                if let Some(key) = &step.idempotency_key {
                    idempotency.insert(key.as_bytes(), saga_ref.clone())?;
                }
                if let Some((k, _, bytes)) = &reply {
                    replies.insert(
                        k.as_slice(),
                        records::encode(&StoredReply {
                            reply: (*bytes).clone(),
                        }),
                    )?;
                }
                // Replace the saga's deadlines: remove the old projection's.
                if let Some(old) = sagas.get(saga_key)? {
                    let old = records::decode::<StoredProjection>("sagas", &saga_key, &old)
                        .and_then(|s| records::projection_from(&saga_key, s));
                    match old {
                        Ok(old) => {
                            for d in &old.deadlines {
                                deadlines.remove(keys::deadline(d, &step.saga_id))?;
                            }
                        }
                        Err(e) => return corrupt(e),
                    }
                }
                for key in &new_deadlines {
                    deadlines.insert(key.as_slice(), vec![records::RECORD_VERSION])?;
                }
                sagas.insert(&saga_key[..], projection_record.clone())?;
                Ok(Appended {
                    first_seq: step.expected_seq,
                    feed_seqs,
                })
            },
        );
    let appended = match outcome {
        Ok(a) => a,
        Err(TransactionError::Abort(e)) => return Err(e),
        Err(TransactionError::Storage(e)) => return Err(AppendError::Storage(e.to_string())),
    };
    if let Some(p) = &inner.probe {
        p.reached(AppendPoint::Committed, &step.saga_id, step.expected_seq);
    }
    inner
        .db
        .flush()
        .map_err(|e| AppendError::Storage(format!("flush after commit: {e}")))?;
    if let Some(p) = &inner.probe {
        p.reached(AppendPoint::Flushed, &step.saga_id, step.expected_seq);
    }
    Ok(appended)
}

fn stored_saga_ref(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<saga_core::terms::SagaId, RecordError> {
    let stored: StoredSagaRef = records::decode(tree, key, bytes)?;
    records::saga_field(tree, key, &stored.saga_id)
}

/// Stores a secret once (equal bytes again: no-op), then flushes.
pub(super) fn put_secret(
    inner: &Inner,
    saga_id: &saga_core::terms::SagaId,
    name: &str,
    secret: &SecretBytes,
) -> Result<(), SecretError> {
    let key = keys::secret(saga_id, name);
    let record = records::encode(&StoredSecret {
        secret: secret.as_bytes().to_vec(),
    });
    let outcome = inner.trees.secrets.transaction(|tx| {
        if let Some(v) = tx.get(&key)? {
            return match records::decode::<StoredSecret>("secrets", &key, &v) {
                Ok(stored) if secret.ct_eq(&stored.secret) => Ok(()),
                Ok(_) => Err(ConflictableTransactionError::Abort(SecretError::Exists {
                    saga_id: *saga_id,
                    name: name.to_string(),
                })),
                Err(e) => Err(ConflictableTransactionError::Abort(SecretError::Storage(
                    e.to_string(),
                ))),
            };
        }
        tx.insert(key.as_slice(), record.as_slice())?;
        Ok(())
    });
    match outcome {
        Ok(()) => {}
        Err(TransactionError::Abort(e)) => return Err(e),
        Err(TransactionError::Storage(e)) => return Err(SecretError::Storage(e.to_string())),
    }
    inner
        .db
        .flush()
        .map(|_| ())
        .map_err(|e| SecretError::Storage(format!("flush: {e}")))
}

/// Applies the wallet's own changes in one transaction, then flushes.
pub(super) fn commit_utxos(inner: &Inner, changes: &[UtxoChange]) -> Result<(), UtxoStoreError> {
    let outcome =
        inner
            .trees
            .utxos
            .transaction(|tree| match apply_changes(&mut TxUtxos { tree }, changes) {
                Ok(()) => Ok(()),
                Err(ChangeError::Unavailable {
                    chain_id,
                    outpoint,
                    reason,
                }) => Err(ConflictableTransactionError::Abort(
                    UtxoStoreError::UtxoUnavailable {
                        chain_id,
                        outpoint,
                        reason,
                    },
                )),
                Err(ChangeError::Table(TxFault::Sled(e))) => Err(e.into()),
                Err(ChangeError::Table(TxFault::Record(e))) => Err(
                    ConflictableTransactionError::Abort(UtxoStoreError::Storage(e.to_string())),
                ),
            });
    match outcome {
        Ok(()) => {}
        Err(TransactionError::Abort(e)) => return Err(e),
        Err(TransactionError::Storage(e)) => return Err(UtxoStoreError::Storage(e.to_string())),
    }
    inner
        .db
        .flush()
        .map(|_| ())
        .map_err(|e| UtxoStoreError::Storage(format!("flush: {e}")))
}

/// Why the transactional UTXO view failed.
enum TxFault {
    /// sled's (a conflict makes the transaction re-run).
    Sled(UnabortableTransactionError),
    /// A stored output does not decode.
    Record(RecordError),
}

/// The UTXO rules' view of the `utxos` tree inside a transaction: reads see
/// the transaction's own earlier writes.
struct TxUtxos<'a> {
    tree: &'a TransactionalTree,
}

impl UtxoTable for TxUtxos<'_> {
    type Error = TxFault;

    fn find(
        &mut self,
        chain_id: &str,
        outpoint: &Outpoint,
    ) -> Result<Option<(Utxo, UtxoState)>, TxFault> {
        for basket in Basket::ALL {
            let key = keys::utxo(chain_id, basket, outpoint);
            if let Some(v) = self.tree.get(&key).map_err(TxFault::Sled)? {
                let stored: StoredUtxo =
                    records::decode("utxos", &key, &v).map_err(TxFault::Record)?;
                return records::utxo_from(&key, chain_id, basket, stored)
                    .map(Some)
                    .map_err(TxFault::Record);
            }
        }
        Ok(None)
    }

    fn put(&mut self, utxo: &Utxo, state: &UtxoState) -> Result<(), TxFault> {
        let key = keys::utxo(&utxo.chain_id, utxo.basket, &utxo.outpoint);
        self.tree
            .insert(key, records::encode(&records::utxo(utxo, state)))
            .map(|_| ())
            .map_err(TxFault::Sled)
    }
}
