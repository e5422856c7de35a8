//! The gateway's durable event log in sled (DESIGN.md §5; the full story is
//! `docs/persistence.md`): [`SledLog`] implements
//! [`saga_runtime::log::EventLog`] and [`saga_runtime::wallet::UtxoStore`]
//! and passes the same conformance suite as the in-memory log.
//!
//! One sled directory per gateway, twelve trees: `meta`, `events`, `heads`,
//! `feed`, `sagas`, `deadlines`, `tokens`, `hashlocks`, `idempotency`,
//! `replies`, `utxos`, `secrets` (key layouts in [`keys`]). Every value is a
//! version byte and a protobuf message of `proto/escrow/v1/store.proto`
//! ([`records`]); the event itself is stored in the form its type chooses
//! ([`StoredEvent`]), wrapped in the store's envelope.
//!
//! An append is ONE sled transaction over the eleven trees it touches, then
//! a flush (fsync) before it returns: the step is all there or not there
//! after any crash. Opening refuses a directory that is not an escrowd
//! gateway store (foreign files, another store's trees, another kind) or was
//! written by a newer schema, without writing to it, and rebuilds missing
//! projections and the deadline index from the log ([`Projector`]).
//!
//! The directory is made mode 0700 and the files in it 0600 on open; sled
//! creates later files (snapshots, blobs) with the process umask, but only
//! the owner can enter the directory. Secret bytes are never logged: they
//! travel as [`saga_runtime::log::SecretBytes`], whose `Debug` shows their length only.
//!
//! # Layout
//! - [`StoredEvent`], [`StoredEventError`]: the event type's stored form.
//! - [`SledLog`], [`OpenError`], [`AppendProbe`], [`AppendPoint`]; opening and
//!   repair in `open`, the append transaction in `append`, reads in `read`,
//!   the port implementations in `port`.
//! - [`keys`]: key layouts; [`records`]: record envelopes and conversions.

pub mod events;
pub mod keys;
pub mod records;

mod append;
mod open;
mod port;
mod read;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use saga_core::terms::SagaId;
use saga_runtime::log::conformance::TestEvent;
use saga_runtime::log::Projector;

/// The layout version of the trees this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The `kind` in `meta`: a store of another kind is refused.
pub const STORE_KIND: &str = "escrowd-gateway";

/// How an event type is stored: its own bytes (for the saga's events, a
/// protobuf message of `proto/`), which the store wraps in its versioned
/// envelope. `from_stored` reads bytes from disk: it must not panic on any
/// input.
pub trait StoredEvent: Sized + Send + Sync + 'static {
    /// The stored bytes.
    fn to_stored(&self) -> Vec<u8>;

    /// The event from [`StoredEvent::to_stored`]'s bytes.
    ///
    /// # Errors
    /// [`StoredEventError`].
    fn from_stored(bytes: &[u8]) -> Result<Self, StoredEventError>;
}

/// Why stored event bytes are not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoredEventError {
    /// The bytes do not decode as the stored form.
    #[error("stored event does not decode: {0}")]
    Decode(String),
    /// They decode, but not to a valid event (a missing field, an unknown
    /// variant).
    #[error("stored event is invalid: {0}")]
    Invalid(String),
}

/// The conformance suite's events are stored in their fixed encoding.
impl StoredEvent for TestEvent {
    fn to_stored(&self) -> Vec<u8> {
        self.to_bytes()
    }

    fn from_stored(bytes: &[u8]) -> Result<TestEvent, StoredEventError> {
        TestEvent::from_bytes(bytes).map_err(|e| StoredEventError::Decode(e.to_string()))
    }
}

/// Why a store could not be opened. Nothing is written to the directory in
/// any of these cases, except sled's own recovery of its files.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created, listed or given its mode.
    #[error("store directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory holds something other than an escrowd gateway store:
    /// files sled does not write, trees of another program, a store of
    /// another kind, data without a schema record.
    #[error("{path} is not an escrowd gateway store: {detail}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// sled refused to open it (locked by another process, unreadable or
    /// corrupt files).
    #[error("cannot open store {path}: {detail}")]
    Sled {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        detail: String,
    },
    /// Written by a newer schema than this build reads.
    #[error(
        "store {path} has schema version {found}; this build reads up to {SCHEMA_VERSION}: \
         upgrade escrowd"
    )]
    NewerSchema {
        /// The directory.
        path: PathBuf,
        /// The stored schema version.
        found: u32,
    },
    /// A record does not decode or contradicts another.
    #[error("store {path}: {detail}")]
    Corrupt {
        /// The directory.
        path: PathBuf,
        /// Which record and what is wrong.
        detail: String,
    },
    /// The projector returned a projection that does not fit the log.
    #[error("rebuilding the projection of saga {saga_id}: {detail}")]
    Projector {
        /// The saga.
        saga_id: SagaId,
        /// What is wrong.
        detail: String,
    },
}

/// Where an append has got to, for [`AppendProbe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendPoint {
    /// The transaction committed; the flush has not started.
    Committed,
    /// The flush returned: the step is durable; `append` returns next.
    Flushed,
}

/// Told when each append reaches each [`AppendPoint`], on the thread doing
/// the append (crash tests stop the process there; metrics may count).
pub trait AppendProbe: Send + Sync {
    /// `saga_id`'s step starting at `first_seq` reached `point`.
    fn reached(&self, point: AppendPoint, saga_id: &SagaId, first_seq: u64);
}

/// The sled event log for events of type `E`. Cheap to clone (one shared
/// handle); one per gateway directory (sled locks it).
pub struct SledLog<E> {
    inner: Arc<Inner>,
    _event: PhantomData<fn() -> E>,
}

impl<E> Clone for SledLog<E> {
    fn clone(&self) -> Self {
        SledLog {
            inner: self.inner.clone(),
            _event: PhantomData,
        }
    }
}

/// The open database and its trees.
pub(crate) struct Inner {
    db: sled::Db,
    path: PathBuf,
    trees: Trees,
    probe: Option<Arc<dyn AppendProbe>>,
}

/// The trees, by name (DESIGN.md §5).
pub(crate) struct Trees {
    meta: sled::Tree,
    events: sled::Tree,
    heads: sled::Tree,
    feed: sled::Tree,
    sagas: sled::Tree,
    deadlines: sled::Tree,
    tokens: sled::Tree,
    hashlocks: sled::Tree,
    idempotency: sled::Tree,
    replies: sled::Tree,
    utxos: sled::Tree,
    secrets: sled::Tree,
}

/// Every tree name (DESIGN.md §5), in the order `docs/persistence.md` lists them.
pub const TREE_NAMES: [&str; 12] = [
    "meta",
    "events",
    "heads",
    "feed",
    "sagas",
    "deadlines",
    "tokens",
    "hashlocks",
    "idempotency",
    "replies",
    "utxos",
    "secrets",
];

impl<E: StoredEvent> SledLog<E> {
    /// Opens (creating if missing) the store in `dir`: checks that it is an
    /// escrowd gateway store of a schema this build reads, makes the
    /// directory 0700 and its files 0600, and rebuilds with `projector` the
    /// projection of every saga whose stored one is missing or behind its
    /// log (then the deadline index). Blocking (file I/O, fsync).
    ///
    /// # Errors
    /// [`OpenError`]; then nothing was written.
    pub fn open(dir: &Path, projector: Projector<E>) -> Result<SledLog<E>, OpenError> {
        SledLog::open_inner(dir, projector, None)
    }

    /// [`SledLog::open`] with a probe told about every append's progress.
    ///
    /// # Errors
    /// As [`SledLog::open`].
    pub fn open_with_probe(
        dir: &Path,
        projector: Projector<E>,
        probe: Arc<dyn AppendProbe>,
    ) -> Result<SledLog<E>, OpenError> {
        SledLog::open_inner(dir, projector, Some(probe))
    }

    fn open_inner(
        dir: &Path,
        projector: Projector<E>,
        probe: Option<Arc<dyn AppendProbe>>,
    ) -> Result<SledLog<E>, OpenError> {
        let (db, trees) = open::open_checked(dir, projector)?;
        Ok(SledLog {
            inner: Arc::new(Inner {
                db,
                path: dir.to_path_buf(),
                trees,
                probe,
            }),
            _event: PhantomData,
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}
