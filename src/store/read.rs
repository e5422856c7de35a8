//! Reads of the store, blocking (sled answers most of them from its page
//! cache). Every stored byte is decoded defensively: a bad record is a
//! [`Fault`] naming tree and key, never a panic.
//!
//! # Layout
//! - [`Fault`] and its mapping to the port's errors.
//! - One function per read of the port, over [`Trees`].

use std::ops::Bound;

use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::wallet::{Basket, Utxo, UtxoState};
use saga_runtime::log::{
    Deadline, DeadlineQuery, FeedEntry, Projection, ReadError, ReplyKey, SagaFilter, SecretBytes,
    TokenConsumption,
};
use saga_runtime::wallet::UtxoStoreError;

use super::keys;
use super::records::{self, RecordError};
use super::{StoredEvent, StoredEventError, Trees};
use crate::proto::escrow_v1::{
    StoredEventRecord, StoredFeedEntry, StoredHead, StoredProjection, StoredReply, StoredSagaRef,
    StoredSecret, StoredTokenConsumption, StoredUtxo,
};

/// A read or write of the store that failed.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// sled failed (I/O).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A record does not decode.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// An event's own stored form does not decode.
    #[error("event {what}: {source}")]
    Event {
        /// Tree and key.
        what: String,
        /// The event type's error.
        source: StoredEventError,
    },
}

impl From<Fault> for ReadError {
    fn from(f: Fault) -> ReadError {
        match f {
            Fault::Sled(e) => ReadError::Storage(e.to_string()),
            Fault::Record(RecordError::Corrupt { what, detail }) => {
                ReadError::Corrupt { what, detail }
            }
            Fault::Record(RecordError::UnknownVersion { what, found }) => ReadError::Corrupt {
                what,
                detail: format!("version byte {found} is unknown to this build"),
            },
            Fault::Event { what, source } => ReadError::Corrupt {
                what,
                detail: source.to_string(),
            },
        }
    }
}

impl From<Fault> for UtxoStoreError {
    fn from(f: Fault) -> UtxoStoreError {
        UtxoStoreError::Storage(f.to_string())
    }
}

fn event_from<E: StoredEvent>(key: &[u8], bytes: &[u8]) -> Result<(StoredEventRecord, E), Fault> {
    let record: StoredEventRecord = records::decode("events", key, bytes)?;
    let event = E::from_stored(&record.event).map_err(|source| Fault::Event {
        what: format!("events/{}", keys::show(key)),
        source,
    })?;
    Ok((record, event))
}

/// The saga's events from seq 0; the seqs must run 0, 1, 2, ... .
pub fn load_events<E: StoredEvent>(
    trees: &Trees,
    saga_id: &SagaId,
) -> Result<Vec<(u64, E)>, Fault> {
    let mut out = Vec::new();
    for item in trees.events.scan_prefix(saga_id.as_bytes()) {
        let (key, value) = item?;
        let seq = keys::event_seq(&key)
            .ok_or_else(|| RecordError::corrupt("events", &key, "key is not saga id ‖ seq"))?;
        if seq != out.len() as u64 {
            return Err(RecordError::corrupt(
                "events",
                &key,
                format!("seq {seq} follows {} events", out.len()),
            )
            .into());
        }
        let (_, event) = event_from::<E>(&key, &value)?;
        out.push((seq, event));
    }
    Ok(out)
}

/// The saga's head (0 if unknown).
pub fn head(trees: &Trees, saga_id: &SagaId) -> Result<u64, Fault> {
    match trees.heads.get(saga_id.as_bytes())? {
        Some(v) => Ok(records::decode::<StoredHead>("heads", saga_id.as_bytes(), &v)?.next_seq),
        None => Ok(0),
    }
}

fn projection_at(key: &[u8], value: &[u8]) -> Result<Projection, Fault> {
    let stored: StoredProjection = records::decode("sagas", key, value)?;
    Ok(records::projection_from(key, stored)?)
}

/// The stored projection of a saga.
pub fn projection(trees: &Trees, saga_id: &SagaId) -> Result<Option<Projection>, Fault> {
    let key = saga_id.as_bytes();
    match trees.sagas.get(key)? {
        Some(v) => Ok(Some(projection_at(key, &v)?)),
        None => Ok(None),
    }
}

/// Non-terminal sagas, in id order.
pub fn in_flight(trees: &Trees) -> Result<Vec<SagaId>, Fault> {
    let mut out = Vec::new();
    for item in trees.sagas.iter() {
        let (key, value) = item?;
        let p = projection_at(&key, &value)?;
        if !p.terminal {
            out.push(p.saga_id);
        }
    }
    Ok(out)
}

/// Feed entries from `from_cursor`.
pub fn feed<E: StoredEvent>(
    trees: &Trees,
    from_cursor: u64,
    limit: usize,
) -> Result<Vec<FeedEntry<E>>, Fault> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for item in trees.feed.range(keys::feed(from_cursor.max(1))..) {
        let (key, value) = item?;
        let cursor = keys::feed_cursor(&key)
            .ok_or_else(|| RecordError::corrupt("feed", &key, "key is not a cursor"))?;
        let entry: StoredFeedEntry = records::decode("feed", &key, &value)?;
        let saga_id = records::saga_field("feed", &key, &entry.saga_id)?;
        let event_key = keys::event(&saga_id, entry.seq);
        let bytes = trees.events.get(event_key)?.ok_or_else(|| {
            RecordError::corrupt(
                "feed",
                &key,
                format!("names missing event {saga_id}#{}", entry.seq),
            )
        })?;
        let (record, event) = event_from::<E>(&event_key, &bytes)?;
        if record.feed_cursor != cursor {
            return Err(RecordError::corrupt(
                "events",
                &event_key,
                format!(
                    "has feed cursor {}, the feed says {cursor}",
                    record.feed_cursor
                ),
            )
            .into());
        }
        out.push(FeedEntry {
            cursor,
            saga_id,
            seq: entry.seq,
            event,
        });
        if out.len() == limit {
            break;
        }
    }
    Ok(out)
}

/// Who consumed a token.
pub fn token_consumption(
    trees: &Trees,
    token_id: &TokenId,
) -> Result<Option<TokenConsumption>, Fault> {
    match trees.tokens.get(token_id.0)? {
        Some(v) => {
            let stored: StoredTokenConsumption = records::decode("tokens", &token_id.0, &v)?;
            Ok(Some(records::token_consumption_from(&token_id.0, stored)?))
        }
        None => Ok(None),
    }
}

/// The saga a `hashlocks` or `idempotency` key maps to.
pub fn saga_ref(tree: &sled::Tree, name: &str, key: &[u8]) -> Result<Option<SagaId>, Fault> {
    match tree.get(key)? {
        Some(v) => {
            let stored: StoredSagaRef = records::decode(name, key, &v)?;
            Ok(Some(records::saga_field(name, key, &stored.saga_id)?))
        }
        None => Ok(None),
    }
}

/// The stored reply to a peer message.
pub fn reply(trees: &Trees, key: &ReplyKey) -> Result<Option<Vec<u8>>, Fault> {
    let k = keys::reply(key);
    match trees.replies.get(&k)? {
        Some(v) => Ok(Some(
            records::decode::<StoredReply>("replies", &k, &v)?.reply,
        )),
        None => Ok(None),
    }
}

/// A page of projections.
pub fn list_sagas(
    trees: &Trees,
    filter: &SagaFilter,
    page_after: Option<SagaId>,
    limit: usize,
) -> Result<Vec<Projection>, Fault> {
    let start = match page_after {
        Some(id) => Bound::Excluded(id.as_bytes().to_vec()),
        None => Bound::Unbounded,
    };
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for item in trees.sagas.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
        let (key, value) = item?;
        let p = projection_at(&key, &value)?;
        if filter.matches(&p) {
            out.push(p);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Due deadlines: a range scan of the `deadlines` index up to the tip or
/// time.
pub fn due_deadlines(
    trees: &Trees,
    query: &DeadlineQuery,
) -> Result<Vec<(Deadline, SagaId)>, Fault> {
    let (prefix, until) = match query {
        DeadlineQuery::Height { chain_id, tip } => {
            (keys::deadline_height_prefix(chain_id), u64::from(tip.0))
        }
        DeadlineQuery::Time(now) => (keys::deadline_time_prefix(), now.0),
    };
    let mut end = prefix.clone();
    end.extend_from_slice(&until.to_be_bytes());
    end.extend_from_slice(&[0xff; 16]);
    let mut out = Vec::new();
    for item in trees.deadlines.range(prefix..=end) {
        let (key, _) = item?;
        let parsed = keys::parse_deadline(&key)
            .ok_or_else(|| RecordError::corrupt("deadlines", &key, "not a deadline key"))?;
        out.push(parsed);
    }
    Ok(out)
}

/// A stored secret.
pub fn secret(trees: &Trees, saga_id: &SagaId, name: &str) -> Result<Option<SecretBytes>, Fault> {
    let key = keys::secret(saga_id, name);
    match trees.secrets.get(&key)? {
        Some(v) => {
            // The key is shown in errors; the value never is.
            let stored: StoredSecret = records::decode("secrets", &key, &v)?;
            Ok(Some(SecretBytes::new(stored.secret)))
        }
        None => Ok(None),
    }
}

/// The outputs of one basket on one chain, in outpoint order.
pub fn utxos(
    trees: &Trees,
    chain_id: &str,
    basket: Basket,
) -> Result<Vec<(Utxo, UtxoState)>, Fault> {
    let prefix = keys::utxo_prefix(chain_id, basket);
    let mut out = Vec::new();
    for item in trees.utxos.scan_prefix(&prefix) {
        let (key, value) = item?;
        if key.len() != prefix.len() + 36 {
            return Err(RecordError::corrupt(
                "utxos",
                &key,
                "key is not chain ‖ basket ‖ outpoint",
            )
            .into());
        }
        let stored: StoredUtxo = records::decode("utxos", &key, &value)?;
        out.push(records::utxo_from(&key, chain_id, basket, stored)?);
    }
    Ok(out)
}
