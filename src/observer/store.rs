//! The observer's audit store: one sled directory holding every feed item
//! the observer received, once, per gateway and cursor (docs/observer.md).
//!
//! | tree | key | value (after the version byte) |
//! | --- | --- | --- |
//! | `meta` | `schema` | `StoredMeta` {kind `escrowd-observer`, schema version} |
//! | `cursors` | gateway SPIFFE ID | `StoredObserverCursor` {last cursor stored} |
//! | `records` | saga id (16) ‖ len (u16) ‖ gateway ‖ cursor (u64) | `StoredObservation` |
//! | `feeds` | len (u16) ‖ gateway ‖ cursor (u64) | `StoredFeedEntry` {saga id, seq} |
//!
//! Numbers in keys are big-endian, so a saga's records come back grouped by
//! gateway in cursor order, and a gateway's index in cursor order. Values
//! are [`crate::store::records`] envelopes (a version byte, then protobuf of
//! `proto/escrow/v1/observer.proto` or `store.proto`).
//!
//! [`AuditStore::record`] writes one item — its record, its index entry and
//! the gateway's cursor — in one sled transaction, then flushes: after any
//! crash the cursor says exactly which items are in the store. The
//! transaction reads the cursor first: an item at or below it is a
//! duplicate (compared with the index: the same place in the feed must hold
//! the same saga and seq), one past `cursor + 1` is a gap; neither is
//! written.
//!
//! Opening refuses, without writing to it, a directory that is not an
//! observer store (foreign files, a gateway store's trees, another kind)
//! or was written by a newer schema, as the gateway store does
//! (`src/store/open.rs`). Writes and flushes block: async callers run them
//! on the blocking pool.
//!
//! # Layout
//! - [`STORE_KIND`], [`SCHEMA_VERSION`], [`AuditStoreError`], [`Recorded`].
//! - [`AuditStore`]: `open`, `open_existing`, `record`, reads.
//! - Opening helpers, key layouts.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use saga_core::terms::SagaId;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use super::Observed;
use crate::proto::escrow_v1::{
    StoredFeedEntry, StoredMeta, StoredObservation, StoredObserverCursor,
};
use crate::store::events::decode_event;
use crate::store::records::{self, RecordError};

/// The `kind` in `meta`: a store of another kind is refused.
pub const STORE_KIND: &str = "escrowd-observer";
/// The layout version of the trees this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const META_SCHEMA: &[u8] = b"schema";
const TREE_NAMES: [&str; 4] = ["meta", "cursors", "records", "feeds"];
/// sled's default tree, which we never use and which must stay empty.
const DEFAULT_TREE: &[u8] = b"__sled__default";
/// Mode of the store directory and its subdirectories.
const DIR_MODE: u32 = 0o700;
/// Mode of the files in it.
const FILE_MODE: u32 = 0o600;
/// How long an open waits for a lock released by a handle just dropped.
const LOCK_WAIT: Duration = Duration::from_secs(3);
const LOCK_RETRY: Duration = Duration::from_millis(25);

/// Why the audit store cannot be opened, read or written. Opening writes
/// nothing to a directory it refuses (sled may recover its own files).
#[derive(Debug, thiserror::Error)]
pub enum AuditStoreError {
    /// The directory could not be created, listed or given its mode.
    #[error("audit store directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// There is no store at the path (reading commands never create one).
    #[error("no audit store at {path}: has `escrowd observer run` run with this configuration?")]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// The directory holds something other than an observer audit store.
    #[error("{path} is not an escrowd observer audit store: {detail}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Another process holds the store (sled locks its directory): a
    /// running `escrowd observer run` over the same store.
    #[error(
        "audit store {path} is in use by another process (a running `escrowd observer run`?): \
         stop it first"
    )]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// sled failed (unreadable files, I/O).
    #[error("audit store {path}: {detail}")]
    Sled {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        detail: String,
    },
    /// Written by a newer schema than this build reads.
    #[error(
        "audit store {path} has schema version {found}; this build reads up to {SCHEMA_VERSION}: \
         upgrade escrowd"
    )]
    NewerSchema {
        /// The directory.
        path: PathBuf,
        /// The stored schema version.
        found: u32,
    },
    /// A record does not decode or contradicts its key.
    #[error("audit store {path}: {detail}")]
    Corrupt {
        /// The directory.
        path: PathBuf,
        /// Which record and what is wrong.
        detail: String,
    },
    /// A gateway SPIFFE ID too long for a key (more than 65,535 bytes).
    #[error("gateway name of {0} bytes is too long for the audit store")]
    NameTooLong(usize),
}

/// What [`AuditStore::record`] did with one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Written (record, index and cursor), and flushed.
    Stored,
    /// Its cursor is at or below the gateway's stored cursor: not written.
    /// `conflict` says how it differs from what the store holds at that
    /// cursor (another saga or seq), if it does.
    Duplicate {
        /// The contradiction, if any.
        conflict: Option<String>,
    },
    /// Its cursor is past the next one expected: not written.
    Gap {
        /// The cursor expected (stored + 1).
        expected: u64,
    },
}

/// The open audit store. One per directory (sled locks it); share it
/// behind an `Arc`.
pub struct AuditStore {
    db: sled::Db,
    path: PathBuf,
    cursors: sled::Tree,
    records: sled::Tree,
    feeds: sled::Tree,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuditStore {
    /// Opens the store in `dir`, creating it (mode 0700) when the directory
    /// is missing or empty. Blocks (up to a few seconds while a handle
    /// dropped a moment ago still holds sled's lock).
    ///
    /// # Errors
    /// [`AuditStoreError`]; nothing is written to a refused directory.
    pub fn open(dir: &Path) -> Result<AuditStore, AuditStoreError> {
        open_checked(dir, true)
    }

    /// Opens an existing store in `dir` without ever creating one (the
    /// reading commands).
    ///
    /// # Errors
    /// [`AuditStoreError::Missing`] when there is none; else as [`AuditStore::open`].
    pub fn open_existing(dir: &Path) -> Result<AuditStore, AuditStoreError> {
        open_checked(dir, false)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `observed` (received from its gateway) with the event's
    /// stored bytes (`SagaEvent` protobuf): record, index entry and cursor
    /// in one transaction, then a flush (module docs). Blocks.
    ///
    /// # Errors
    /// [`AuditStoreError`] (storage, a corrupt cursor or index record).
    pub fn record(
        &self,
        observed: &Observed,
        event_bytes: &[u8],
    ) -> Result<Recorded, AuditStoreError> {
        let gateway = observed.gateway.as_str();
        let cursor_key = gateway.as_bytes().to_vec();
        let feed_key = feed_key(gateway, observed.cursor)?;
        let record_key = record_key(&observed.saga_id, gateway, observed.cursor)?;
        let record = records::encode(&StoredObservation {
            cursor: observed.cursor,
            seq: observed.seq,
            name: observed.name.clone(),
            sent_at: observed.sent_at,
            received_at_ms: observed.received_at,
            text: observed.text.clone(),
            event: event_bytes.to_vec(),
        });
        let entry = records::encode(&StoredFeedEntry {
            saga_id: observed.saga_id.as_bytes().to_vec(),
            seq: observed.seq,
        });
        let outcome = (&self.cursors, &self.records, &self.feeds).transaction(
            |(cursors, records_tree, feeds)| {
                let abort = |e: RecordError| ConflictableTransactionError::Abort(e);
                let stored = match cursors.get(&cursor_key)? {
                    Some(bytes) => {
                        records::decode::<StoredObserverCursor>("cursors", &cursor_key, &bytes)
                            .map_err(abort)?
                            .cursor
                    }
                    None => 0,
                };
                if observed.cursor <= stored {
                    let conflict = match feeds.get(&feed_key)? {
                        None => None,
                        Some(bytes) => {
                            let held =
                                records::decode::<StoredFeedEntry>("feeds", &feed_key, &bytes)
                                    .map_err(abort)?;
                            let same = held.saga_id.as_slice() == observed.saga_id.as_bytes()
                                && held.seq == observed.seq;
                            (!same).then(|| {
                                format!(
                                    "cursor {} was saga {} seq {} when stored, now saga {} seq {}",
                                    observed.cursor,
                                    crate::store::keys::saga_id(&held.saga_id).map_or_else(
                                        || hex::encode(&held.saga_id),
                                        |s| s.to_string()
                                    ),
                                    held.seq,
                                    observed.saga_id,
                                    observed.seq
                                )
                            })
                        }
                    };
                    return Ok(Recorded::Duplicate { conflict });
                }
                if observed.cursor != stored + 1 {
                    return Ok(Recorded::Gap {
                        expected: stored + 1,
                    });
                }
                records_tree.insert(record_key.as_slice(), record.as_slice())?;
                feeds.insert(feed_key.as_slice(), entry.as_slice())?;
                cursors.insert(
                    cursor_key.as_slice(),
                    records::encode(&StoredObserverCursor {
                        cursor: observed.cursor,
                    }),
                )?;
                Ok(Recorded::Stored)
            },
        );
        let outcome = match outcome {
            Ok(o) => o,
            Err(TransactionError::Abort(e)) => return Err(self.corrupt(e)),
            Err(TransactionError::Storage(e)) => return Err(self.sled(e)),
        };
        if outcome == Recorded::Stored {
            self.db.flush().map_err(|e| self.sled(e))?;
        }
        Ok(outcome)
    }

    /// The last cursor of `gateway` (SPIFFE ID) in the store; 0 when none.
    ///
    /// # Errors
    /// [`AuditStoreError`].
    pub fn cursor(&self, gateway: &str) -> Result<u64, AuditStoreError> {
        match self
            .cursors
            .get(gateway.as_bytes())
            .map_err(|e| self.sled(e))?
        {
            Some(bytes) => {
                Ok(
                    records::decode::<StoredObserverCursor>("cursors", gateway.as_bytes(), &bytes)
                        .map_err(|e| self.corrupt(e))?
                        .cursor,
                )
            }
            None => Ok(0),
        }
    }

    /// Every gateway's last cursor, by SPIFFE ID.
    ///
    /// # Errors
    /// [`AuditStoreError`].
    pub fn cursors(&self) -> Result<BTreeMap<String, u64>, AuditStoreError> {
        let mut out = BTreeMap::new();
        for item in self.cursors.iter() {
            let (key, bytes) = item.map_err(|e| self.sled(e))?;
            let gateway = String::from_utf8(key.to_vec())
                .map_err(|_| self.corrupt_at("cursors", &key, "the gateway name is not UTF-8"))?;
            let cursor = records::decode::<StoredObserverCursor>("cursors", &key, &bytes)
                .map_err(|e| self.corrupt(e))?
                .cursor;
            out.insert(gateway, cursor);
        }
        Ok(out)
    }

    /// What the store holds of `gateway`'s feed: `(cursor, saga id, seq)`
    /// in cursor order — one entry per cursor stored.
    ///
    /// # Errors
    /// [`AuditStoreError`].
    pub fn feed(&self, gateway: &str) -> Result<Vec<(u64, SagaId, u64)>, AuditStoreError> {
        let prefix = with_len(gateway)?;
        let mut out = Vec::new();
        for item in self.feeds.scan_prefix(&prefix) {
            let (key, bytes) = item.map_err(|e| self.sled(e))?;
            let cursor = key
                .get(prefix.len()..)
                .and_then(|c| <[u8; 8]>::try_from(c).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| self.corrupt_at("feeds", &key, "key is not gateway ‖ cursor"))?;
            let entry = records::decode::<StoredFeedEntry>("feeds", &key, &bytes)
                .map_err(|e| self.corrupt(e))?;
            let saga_id =
                records::saga_field("feeds", &key, &entry.saga_id).map_err(|e| self.corrupt(e))?;
            out.push((cursor, saga_id, entry.seq));
        }
        Ok(out)
    }

    /// Every saga with at least one record, in saga id (creation) order.
    ///
    /// # Errors
    /// [`AuditStoreError`].
    pub fn sagas(&self) -> Result<Vec<SagaId>, AuditStoreError> {
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        // One seek per saga: after a saga's first key, jump past its prefix.
        while let Some(item) = self.records.range(from.clone()..).next() {
            let (key, _) = item.map_err(|e| self.sled(e))?;
            let saga_id = key
                .get(..16)
                .and_then(crate::store::keys::saga_id)
                .ok_or_else(|| self.corrupt_at("records", &key, "key has no saga id"))?;
            out.push(saga_id);
            match next_prefix(saga_id.as_bytes()) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// Every record of `saga_id`, from every gateway, ordered by
    /// `received_at`, then gateway, then seq (the order the observer learned
    /// of them). Empty when the saga was never observed.
    ///
    /// # Errors
    /// [`AuditStoreError`], including a stored event this build cannot decode.
    pub fn timeline(&self, saga_id: &SagaId) -> Result<Vec<Observed>, AuditStoreError> {
        let mut out = Vec::new();
        for item in self.records.scan_prefix(saga_id.as_bytes()) {
            let (key, bytes) = item.map_err(|e| self.sled(e))?;
            let (gateway, cursor) = parse_record_key(&key).ok_or_else(|| {
                self.corrupt_at("records", &key, "key is not saga ‖ gateway ‖ cursor")
            })?;
            let r = records::decode::<StoredObservation>("records", &key, &bytes)
                .map_err(|e| self.corrupt(e))?;
            if r.cursor != cursor {
                return Err(self.corrupt_at(
                    "records",
                    &key,
                    &format!("holds cursor {} under key cursor {cursor}", r.cursor),
                ));
            }
            let event = decode_event(&r.event)
                .map_err(|e| self.corrupt_at("records", &key, &e.to_string()))?;
            out.push(Observed {
                gateway,
                cursor,
                saga_id: *saga_id,
                seq: r.seq,
                name: r.name,
                text: r.text,
                event,
                sent_at: r.sent_at,
                received_at: r.received_at_ms,
            });
        }
        out.sort_by(|a, b| {
            (a.received_at, &a.gateway, a.seq).cmp(&(b.received_at, &b.gateway, b.seq))
        });
        Ok(out)
    }

    fn sled(&self, e: sled::Error) -> AuditStoreError {
        AuditStoreError::Sled {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn corrupt(&self, e: RecordError) -> AuditStoreError {
        AuditStoreError::Corrupt {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn corrupt_at(&self, tree: &str, key: &[u8], detail: &str) -> AuditStoreError {
        self.corrupt(RecordError::corrupt(tree, key, detail))
    }
}

// ---------------------------------------------------------------------------
// Keys

fn with_len(gateway: &str) -> Result<Vec<u8>, AuditStoreError> {
    let len =
        u16::try_from(gateway.len()).map_err(|_| AuditStoreError::NameTooLong(gateway.len()))?;
    let mut out = Vec::with_capacity(2 + gateway.len() + 8);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(gateway.as_bytes());
    Ok(out)
}

/// `feeds`: len ‖ gateway ‖ cursor.
fn feed_key(gateway: &str, cursor: u64) -> Result<Vec<u8>, AuditStoreError> {
    let mut k = with_len(gateway)?;
    k.extend_from_slice(&cursor.to_be_bytes());
    Ok(k)
}

/// `records`: saga id ‖ len ‖ gateway ‖ cursor.
fn record_key(saga_id: &SagaId, gateway: &str, cursor: u64) -> Result<Vec<u8>, AuditStoreError> {
    let mut k = saga_id.as_bytes().to_vec();
    k.extend_from_slice(&with_len(gateway)?);
    k.extend_from_slice(&cursor.to_be_bytes());
    Ok(k)
}

/// The gateway and cursor of a `records` key.
fn parse_record_key(key: &[u8]) -> Option<(String, u64)> {
    let len = usize::from(u16::from_be_bytes(key.get(16..18)?.try_into().ok()?));
    let gateway = std::str::from_utf8(key.get(18..18 + len)?).ok()?.to_owned();
    let cursor: [u8; 8] = key.get(18 + len..)?.try_into().ok()?;
    Some((gateway, u64::from_be_bytes(cursor)))
}

/// The smallest key greater than every key starting with `prefix`; `None`
/// when the prefix is all `0xFF`.
fn next_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Opening

/// What the directory held before sled opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing: missing (now created) or empty.
    Nothing,
    /// sled's files.
    SledFiles,
}

fn open_checked(dir: &Path, create: bool) -> Result<AuditStore, AuditStoreError> {
    let path = dir.to_path_buf();
    let not_a_store = |detail: String| AuditStoreError::NotAStore {
        path: path.clone(),
        detail,
    };
    let corrupt = |detail: &str| AuditStoreError::Corrupt {
        path: path.clone(),
        detail: detail.to_owned(),
    };
    let sled_fault = |e: sled::Error| AuditStoreError::Sled {
        path: path.clone(),
        detail: e.to_string(),
    };
    let found = prepare_dir(dir, create)?;
    let db = open_sled(dir)?;
    if found == Found::SledFiles && !db.was_recovered() {
        return Err(corrupt(
            "sled found no database in its existing files (corrupt or truncated): \
             move the directory away to start afresh",
        ));
    }
    let names = db.tree_names();
    for name in &names {
        let known = name.as_ref() == DEFAULT_TREE
            || TREE_NAMES.iter().any(|t| t.as_bytes() == name.as_ref());
        if !known {
            return Err(not_a_store(format!(
                "it has a tree {:?} that an observer audit store does not have",
                String::from_utf8_lossy(name)
            )));
        }
    }
    if !db.is_empty() {
        return Err(not_a_store("sled's default tree holds data".into()));
    }
    let schema = if names.iter().any(|n| n.as_ref() == b"meta") {
        db.open_tree("meta")
            .and_then(|m| m.get(META_SCHEMA))
            .map_err(sled_fault)?
    } else {
        None
    };
    let is_new = match schema {
        None if found == Found::SledFiles => {
            return Err(corrupt(
                "sled's files hold no observer schema record (corrupt, or its first start was \
                 cut short): move the directory away to start afresh",
            ))
        }
        None => {
            for name in names.iter().filter(|n| n.as_ref() != DEFAULT_TREE) {
                let tree = db.open_tree(name).map_err(sled_fault)?;
                if !tree.is_empty() {
                    return Err(not_a_store(format!(
                        "tree {:?} holds data but there is no schema record",
                        String::from_utf8_lossy(name)
                    )));
                }
            }
            true
        }
        Some(bytes) => {
            let meta: StoredMeta = match records::decode("meta", META_SCHEMA, &bytes) {
                Ok(m) => m,
                Err(RecordError::UnknownVersion { found, .. }) => {
                    return Err(not_a_store(format!(
                        "its schema record has version byte {found}, unknown to this build"
                    )))
                }
                Err(e) => return Err(corrupt(&e.to_string())),
            };
            if meta.kind != STORE_KIND {
                return Err(not_a_store(format!(
                    "it is a store of kind {:?}",
                    meta.kind
                )));
            }
            if meta.schema_version > SCHEMA_VERSION {
                return Err(AuditStoreError::NewerSchema {
                    path: path.clone(),
                    found: meta.schema_version,
                });
            }
            if meta.schema_version == 0 {
                return Err(corrupt("schema version 0"));
            }
            false
        }
    };
    if is_new && !create {
        return Err(AuditStoreError::Missing { path });
    }
    let open = |name: &str| db.open_tree(name).map_err(sled_fault);
    let meta = open("meta")?;
    let store = AuditStore {
        cursors: open("cursors")?,
        records: open("records")?,
        feeds: open("feeds")?,
        path: path.clone(),
        db: db.clone(),
    };
    if is_new {
        meta.insert(
            META_SCHEMA,
            records::encode(&StoredMeta {
                kind: STORE_KIND.into(),
                schema_version: SCHEMA_VERSION,
            }),
        )
        .map_err(sled_fault)?;
        db.flush().map_err(sled_fault)?;
    }
    tighten_modes(dir).map_err(|source| AuditStoreError::Directory {
        path: path.clone(),
        source,
    })?;
    tracing::info!(path = %dir.display(), created = is_new, "observer audit store open");
    Ok(store)
}

/// Creates the directory (0700) if missing and `create`; otherwise checks
/// that it is empty or holds only sled's files.
fn prepare_dir(dir: &Path, create: bool) -> Result<Found, AuditStoreError> {
    let dir_error = |source| AuditStoreError::Directory {
        path: dir.to_path_buf(),
        source,
    };
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(AuditStoreError::NotAStore {
            path: dir.to_path_buf(),
            detail: "not a directory".into(),
        }),
        Ok(_) => {
            let mut names = Vec::new();
            for entry in fs::read_dir(dir).map_err(dir_error)? {
                names.push(
                    entry
                        .map_err(dir_error)?
                        .file_name()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            names.sort();
            if names.is_empty() {
                return if create {
                    Ok(Found::Nothing)
                } else {
                    Err(AuditStoreError::Missing {
                        path: dir.to_path_buf(),
                    })
                };
            }
            let foreign: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| !matches!(*n, "conf" | "db" | "blobs") && !n.starts_with("snap."))
                .take(5)
                .collect();
            if !foreign.is_empty() {
                return Err(AuditStoreError::NotAStore {
                    path: dir.to_path_buf(),
                    detail: format!("it holds files sled does not write: {}", foreign.join(", ")),
                });
            }
            if !names.iter().any(|n| n == "conf") || !names.iter().any(|n| n == "db") {
                return Err(AuditStoreError::NotAStore {
                    path: dir.to_path_buf(),
                    detail: "sled's `conf` or `db` file is missing".into(),
                });
            }
            Ok(Found::SledFiles)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
            Err(AuditStoreError::Missing {
                path: dir.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(dir_error)?;
            Ok(Found::Nothing)
        }
        Err(e) => Err(dir_error(e)),
    }
}

/// `sled::open`, waiting a little for a lock a just-dropped handle's
/// background threads still hold (as `src/store/open.rs` does), and with a
/// panic inside sled on malformed files reported as an error.
fn open_sled(dir: &Path) -> Result<sled::Db, AuditStoreError> {
    let mut waited = Duration::ZERO;
    loop {
        let attempt = std::panic::catch_unwind(|| sled::Config::new().path(dir).open());
        // sled reports a held lock as ErrorKind::Other with this text (config.rs).
        let locked = matches!(&attempt, Ok(Err(sled::Error::Io(e)))
            if e.to_string().starts_with("could not acquire lock on"));
        if locked && waited >= LOCK_WAIT {
            return Err(AuditStoreError::Locked {
                path: dir.to_path_buf(),
            });
        }
        if !locked {
            return match attempt {
                Ok(Ok(db)) => Ok(db),
                Ok(Err(e)) => Err(AuditStoreError::Sled {
                    path: dir.to_path_buf(),
                    detail: e.to_string(),
                }),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "sled panicked".into());
                    Err(AuditStoreError::Sled {
                        path: dir.to_path_buf(),
                        detail: format!("sled could not read its files: {what}"),
                    })
                }
            };
        }
        std::thread::sleep(LOCK_RETRY);
        waited += LOCK_RETRY;
    }
}

/// The directory 0700, the files in it (and in `blobs/`) 0600.
fn tighten_modes(dir: &Path) -> std::io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tighten_modes(&entry.path())?;
        } else if kind.is_file() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::saga::Event;

    fn observed(gateway: &str, cursor: u64, saga: u8, seq: u64, at: u64) -> Observed {
        Observed {
            gateway: gateway.into(),
            cursor,
            saga_id: SagaId::new_v7(u64::from(saga), &[saga; 10]),
            seq,
            name: "terms_rejected".into(),
            text: format!("terms rejected: r{cursor}"),
            event: Event::TermsRejected {
                reason: format!("r{cursor}"),
            },
            sent_at: 1_700_000_000,
            received_at: at,
        }
    }

    fn put(store: &AuditStore, o: &Observed) -> Recorded {
        let bytes = crate::store::events::encode_event(&o.event);
        store.record(o, &bytes).unwrap()
    }

    const GA: &str = "spiffe://org-a.example/gateway/org-a";
    const GB: &str = "spiffe://org-b.example/gateway/org-b";

    #[test]
    fn items_are_stored_once_in_cursor_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit");
        let store = AuditStore::open(&path).unwrap();
        assert_eq!(put(&store, &observed(GA, 1, 1, 0, 10)), Recorded::Stored);
        assert_eq!(put(&store, &observed(GA, 2, 1, 1, 12)), Recorded::Stored);
        assert_eq!(put(&store, &observed(GB, 1, 1, 0, 11)), Recorded::Stored);
        assert_eq!(put(&store, &observed(GA, 3, 2, 0, 13)), Recorded::Stored);
        // Again: a duplicate, agreeing with the index.
        assert_eq!(
            put(&store, &observed(GA, 2, 1, 1, 20)),
            Recorded::Duplicate { conflict: None }
        );
        // The same cursor naming another event: a conflict, not written.
        assert_eq!(
            put(&store, &observed(GA, 2, 1, 5, 20)),
            Recorded::Duplicate {
                conflict: Some(format!(
                    "cursor 2 was saga {} seq 1 when stored, now saga {} seq 5",
                    observed(GA, 2, 1, 1, 0).saga_id,
                    observed(GA, 2, 1, 1, 0).saga_id
                ))
            }
        );
        assert_eq!(
            put(&store, &observed(GA, 5, 2, 2, 21)),
            Recorded::Gap { expected: 4 }
        );
        drop(store);

        let store = AuditStore::open_existing(&path).unwrap();
        assert_eq!(store.cursor(GA).unwrap(), 3);
        assert_eq!(store.cursor(GB).unwrap(), 1);
        assert_eq!(store.cursor("spiffe://x.example/gateway/x").unwrap(), 0);
        let s1 = observed(GA, 1, 1, 0, 0).saga_id;
        let s2 = observed(GA, 3, 2, 0, 0).saga_id;
        assert_eq!(store.sagas().unwrap(), vec![s1, s2]);
        let t: Vec<(String, u64, u64, u64)> = store
            .timeline(&s1)
            .unwrap()
            .into_iter()
            .map(|o| (o.gateway, o.cursor, o.seq, o.received_at))
            .collect();
        assert_eq!(
            t,
            vec![
                (GA.to_string(), 1, 0, 10),
                (GB.to_string(), 1, 0, 11),
                (GA.to_string(), 2, 1, 12)
            ]
        );
        let feed: Vec<u64> = store.feed(GA).unwrap().iter().map(|e| e.0).collect();
        assert_eq!(feed, vec![1, 2, 3]);
        assert_eq!(
            store.cursors().unwrap(),
            [(GA.to_string(), 3), (GB.to_string(), 1)]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn foreign_missing_and_newer_stores_are_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        // Missing: the reading open creates nothing.
        let missing = dir.path().join("none");
        assert!(matches!(
            AuditStore::open_existing(&missing),
            Err(AuditStoreError::Missing { .. })
        ));
        assert!(!missing.exists());
        // Foreign files.
        let foreign = dir.path().join("foreign");
        fs::create_dir_all(&foreign).unwrap();
        fs::write(foreign.join("notes.txt"), "x").unwrap();
        let e = AuditStore::open(&foreign).unwrap_err().to_string();
        assert!(
            e.contains("holds files sled does not write: notes.txt"),
            "{e}"
        );
        // A gateway store.
        let gateway = dir.path().join("gateway");
        drop(
            crate::store::SledLog::<saga_core::saga::Event>::open(
                &gateway,
                crate::store::events::project,
            )
            .unwrap(),
        );
        let e = AuditStore::open(&gateway).unwrap_err().to_string();
        assert!(e.contains("is not an escrowd observer audit store"), "{e}");
        // A newer schema.
        let newer = dir.path().join("newer");
        drop(AuditStore::open(&newer).unwrap());
        {
            let db = open_sled(&newer).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(
                    META_SCHEMA,
                    records::encode(&StoredMeta {
                        kind: STORE_KIND.into(),
                        schema_version: SCHEMA_VERSION + 1,
                    }),
                )
                .unwrap();
            db.flush().unwrap();
        }
        let e = AuditStore::open(&newer).unwrap_err();
        assert!(
            matches!(e, AuditStoreError::NewerSchema { found: 2, .. }),
            "{e}"
        );
    }
}
