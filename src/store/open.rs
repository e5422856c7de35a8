//! Opening a store: refuse what is not ours (before writing anything), make
//! a new one, tighten permissions, and repair derived data.
//!
//! The order matters for "nothing is written to a directory we refuse":
//! 1. the directory: created 0700 if missing; otherwise it must hold only
//!    what sled writes (`conf`, `db`, `blobs/`, `snap.*`);
//! 2. sled opens it (sled may rewrite its own files while recovering; a
//!    panic inside sled on garbage files is caught and reported); if the
//!    directory held sled's files but sled recovered no database from them,
//!    the store is refused as corrupt — never started afresh over them;
//! 3. its trees: only ours (names are listed without creating any); the
//!    `meta` schema record must say kind [`STORE_KIND`] and a schema version
//!    this build reads; only a directory that held nothing may lack it (a
//!    new store);
//! 4. then, and only then, missing trees are created, a new store gets its
//!    schema record, modes are set, and the repair runs.
//!
//! Repair: every saga in `heads` whose projection is missing or has another
//! head is re-projected from its events with the caller's projector; then
//! the `deadlines` index is made to list exactly the deadlines of the stored
//! projections. Both are derived data, so the repair is idempotent and a
//! crash during it is repaired by the next open.
//!
//! # Layout
//! - `open_checked` (the steps above), `repair`, helpers.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use saga_core::terms::SagaId;
use saga_runtime::log::Projector;

use super::keys::{self, META_FEED_NEXT, META_SCHEMA};
use super::read::load_events;
use super::records::{self, RecordError};
use super::{OpenError, StoredEvent, Trees, SCHEMA_VERSION, STORE_KIND, TREE_NAMES};
use crate::proto::escrow_v1::{StoredFeedNext, StoredHead, StoredMeta, StoredProjection};

/// Mode of the store directory and its subdirectories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the files in it.
pub const FILE_MODE: u32 = 0o600;

/// sled's default tree, which we never use and which must stay empty.
const DEFAULT_TREE: &[u8] = b"__sled__default";

/// Steps 1–4 of the module docs.
pub(super) fn open_checked<E: StoredEvent>(
    dir: &Path,
    projector: Projector<E>,
) -> Result<(sled::Db, Trees), OpenError> {
    let found = prepare_dir(dir)?;
    let db = open_sled(dir)?;
    if found == Found::SledFiles && !db.was_recovered() {
        // sled treats files it cannot read as a new database; a gateway that
        // came up empty would forget its sagas.
        return Err(corrupt(
            dir,
            "sled found no database in its existing files (corrupt or truncated, or the \
             store's first start was cut short): move the directory away to start afresh",
        ));
    }
    let is_new = check_ours(&db, dir, found)?;
    let trees = open_trees(&db, dir)?;
    if is_new {
        initialise(&trees, dir)?;
    }
    check_feed_next(&trees, dir)?;
    tighten_modes(dir)?;
    let rebuilt = repair(&trees, dir, projector)?;
    db.flush().map_err(|e| sled_fault(dir, e))?;
    tracing::info!(
        path = %dir.display(),
        created = found == Found::Nothing,
        rebuilt_projections = rebuilt,
        "event log store open"
    );
    Ok((db, trees))
}

fn dir_error(dir: &Path, source: std::io::Error) -> OpenError {
    OpenError::Directory {
        path: dir.to_path_buf(),
        source,
    }
}

fn not_a_store(dir: &Path, detail: impl Into<String>) -> OpenError {
    OpenError::NotAStore {
        path: dir.to_path_buf(),
        detail: detail.into(),
    }
}

fn corrupt(dir: &Path, detail: impl std::fmt::Display) -> OpenError {
    OpenError::Corrupt {
        path: dir.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn sled_fault(dir: &Path, e: sled::Error) -> OpenError {
    OpenError::Sled {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    }
}

/// What the directory held before sled opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing: it was missing (now created) or empty.
    Nothing,
    /// sled's files (`conf`, `db`, ...).
    SledFiles,
}

/// Creates the directory (0700) if missing; otherwise checks that it is
/// empty or holds only sled's files.
fn prepare_dir(dir: &Path) -> Result<Found, OpenError> {
    match fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(not_a_store(dir, "not a directory")),
        Ok(_) => {
            let mut names = Vec::new();
            for entry in fs::read_dir(dir).map_err(|e| dir_error(dir, e))? {
                let entry = entry.map_err(|e| dir_error(dir, e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            if names.is_empty() {
                return Ok(Found::Nothing);
            }
            let foreign: Vec<&String> = names
                .iter()
                .filter(|n| {
                    !matches!(n.as_str(), "conf" | "db" | "blobs") && !n.starts_with("snap.")
                })
                .collect();
            if !foreign.is_empty() {
                let shown: Vec<&str> = foreign.iter().take(5).map(|s| s.as_str()).collect();
                return Err(not_a_store(
                    dir,
                    format!("it holds files sled does not write: {}", shown.join(", ")),
                ));
            }
            if !names.iter().any(|n| n == "conf") || !names.iter().any(|n| n == "db") {
                return Err(not_a_store(dir, "sled's `conf` or `db` file is missing"));
            }
            Ok(Found::SledFiles)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|e| dir_error(dir, e))?;
            Ok(Found::Nothing)
        }
        Err(e) => Err(dir_error(dir, e)),
    }
}

/// How long an open waits for a lock released by a handle just dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(25);

/// `sled::open`, with a panic inside sled (it asserts on some malformed
/// files) reported as an error rather than taking the process down.
fn open_sled(dir: &Path) -> Result<sled::Db, OpenError> {
    // sled releases its file lock from background threads after the last
    // handle is dropped, so a store closed a moment ago (a gateway stopped
    // and started again, a test reopening) can still be locked for a short
    // while. A lock held that long is another process: refused below.
    let mut waited = std::time::Duration::ZERO;
    let opened = loop {
        let attempt = std::panic::catch_unwind(|| sled::Config::new().path(dir).open());
        // sled reports it as ErrorKind::Other with this text (config.rs).
        let locked = matches!(&attempt, Ok(Err(sled::Error::Io(e)))
            if e.to_string().starts_with("could not acquire lock on"));
        if !locked || waited >= LOCK_WAIT {
            break attempt;
        }
        std::thread::sleep(LOCK_RETRY);
        waited += LOCK_RETRY;
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(sled_fault(dir, e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "sled panicked".into());
            Err(OpenError::Sled {
                path: dir.to_path_buf(),
                detail: format!("sled could not read its files: {what}"),
            })
        }
    }
}

/// Step 3: only our trees; a schema record of our kind and a version we
/// read — or, for a directory that held nothing before sled opened it, no
/// data at all. Returns whether the store is new. Creates nothing: existing
/// trees are opened, missing ones are not.
fn check_ours(db: &sled::Db, dir: &Path, found: Found) -> Result<bool, OpenError> {
    let names = db.tree_names();
    for name in &names {
        let known = name.as_ref() == DEFAULT_TREE
            || TREE_NAMES.iter().any(|t| t.as_bytes() == name.as_ref());
        if !known {
            return Err(not_a_store(
                dir,
                format!(
                    "it has a tree {:?} that an escrowd gateway store does not have",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
    }
    if !db.is_empty() {
        return Err(not_a_store(dir, "sled's default tree holds data"));
    }
    let has_meta = names.iter().any(|n| n.as_ref() == b"meta");
    let schema = if has_meta {
        let meta = db.open_tree("meta").map_err(|e| sled_fault(dir, e))?;
        meta.get(META_SCHEMA).map_err(|e| sled_fault(dir, e))?
    } else {
        None
    };
    let Some(schema) = schema else {
        // No schema record. Only a directory that held nothing becomes a new
        // store: sled's files without our record are damaged (sled makes an
        // empty database of a `db` it cannot read) or from a first start cut
        // short — never silently started afresh.
        if found == Found::SledFiles {
            return Err(corrupt(
                dir,
                "sled's files hold no escrowd schema record (corrupt or truncated, or the \
                 store's first start was cut short): move the directory away to start afresh",
            ));
        }
        for name in names.iter().filter(|n| n.as_ref() != DEFAULT_TREE) {
            let tree = db.open_tree(name).map_err(|e| sled_fault(dir, e))?;
            if !tree.is_empty() {
                return Err(not_a_store(
                    dir,
                    format!(
                        "tree {:?} holds data but there is no schema record",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        }
        return Ok(true);
    };
    let meta: StoredMeta = match records::decode("meta", META_SCHEMA, &schema) {
        Ok(m) => m,
        Err(RecordError::UnknownVersion { found, .. }) => {
            return Err(not_a_store(
                dir,
                format!("its schema record has version byte {found}, unknown to this build"),
            ))
        }
        Err(e) => return Err(corrupt(dir, e)),
    };
    if meta.kind != STORE_KIND {
        return Err(not_a_store(
            dir,
            format!("it is a store of kind {:?}", meta.kind),
        ));
    }
    if meta.schema_version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            path: dir.to_path_buf(),
            found: meta.schema_version,
        });
    }
    if meta.schema_version == 0 {
        return Err(corrupt(dir, "schema version 0"));
    }
    Ok(false)
}

fn open_trees(db: &sled::Db, dir: &Path) -> Result<Trees, OpenError> {
    let open = |name: &str| db.open_tree(name).map_err(|e| sled_fault(dir, e));
    Ok(Trees {
        meta: open("meta")?,
        events: open("events")?,
        heads: open("heads")?,
        feed: open("feed")?,
        sagas: open("sagas")?,
        deadlines: open("deadlines")?,
        tokens: open("tokens")?,
        hashlocks: open("hashlocks")?,
        idempotency: open("idempotency")?,
        replies: open("replies")?,
        utxos: open("utxos")?,
        secrets: open("secrets")?,
    })
}

/// A new store's `meta`: schema record and the first feed cursor (1), in
/// one batch.
fn initialise(trees: &Trees, dir: &Path) -> Result<(), OpenError> {
    let mut batch = sled::Batch::default();
    batch.insert(
        META_FEED_NEXT,
        records::encode(&StoredFeedNext { next_cursor: 1 }),
    );
    batch.insert(
        META_SCHEMA,
        records::encode(&StoredMeta {
            kind: STORE_KIND.into(),
            schema_version: SCHEMA_VERSION,
        }),
    );
    trees
        .meta
        .apply_batch(batch)
        .map_err(|e| sled_fault(dir, e))
}

/// The next feed cursor must lie past the last feed entry.
fn check_feed_next(trees: &Trees, dir: &Path) -> Result<(), OpenError> {
    let Some(bytes) = trees
        .meta
        .get(META_FEED_NEXT)
        .map_err(|e| sled_fault(dir, e))?
    else {
        return Err(corrupt(dir, "meta/feed_next is missing"));
    };
    let next = records::decode::<StoredFeedNext>("meta", META_FEED_NEXT, &bytes)
        .map_err(|e| corrupt(dir, e))?
        .next_cursor;
    let last = match trees.feed.last().map_err(|e| sled_fault(dir, e))? {
        Some((k, _)) => keys::feed_cursor(&k)
            .ok_or_else(|| corrupt(dir, format!("feed key {} is not a cursor", keys::show(&k))))?,
        None => 0,
    };
    if next == 0 || next <= last {
        return Err(corrupt(
            dir,
            format!("meta/feed_next is {next} but the feed reaches {last}"),
        ));
    }
    Ok(())
}

/// The directory 0700, the files in it (and in `blobs/`) 0600.
fn tighten_modes(dir: &Path) -> Result<(), OpenError> {
    fn walk(dir: &Path) -> std::io::Result<()> {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                walk(&entry.path())?;
            } else if kind.is_file() {
                fs::set_permissions(entry.path(), fs::Permissions::from_mode(FILE_MODE))?;
            }
        }
        Ok(())
    }
    walk(dir).map_err(|e| dir_error(dir, e))
}

/// Re-projects sagas whose projection is missing or stale, then makes the
/// deadline index match the projections. Returns how many were re-projected.
fn repair<E: StoredEvent>(
    trees: &Trees,
    dir: &Path,
    projector: Projector<E>,
) -> Result<usize, OpenError> {
    let mut rebuilt = 0;
    let mut with_head = BTreeSet::new();
    for item in trees.heads.iter() {
        let (key, value) = item.map_err(|e| sled_fault(dir, e))?;
        let saga_id = records::saga_field("heads", &key, &key).map_err(|e| corrupt(dir, e))?;
        with_head.insert(key.to_vec());
        let head = records::decode::<StoredHead>("heads", &key, &value)
            .map_err(|e| corrupt(dir, e))?
            .next_seq;
        let stored_head = match trees.sagas.get(&key).map_err(|e| sled_fault(dir, e))? {
            Some(bytes) => Some(
                records::decode::<StoredProjection>("sagas", &key, &bytes)
                    .map_err(|e| corrupt(dir, e))?
                    .head,
            ),
            None => None,
        };
        if stored_head == Some(head) {
            continue;
        }
        let events = load_events::<E>(trees, &saga_id).map_err(|e| corrupt(dir, e))?;
        if events.len() as u64 != head {
            return Err(corrupt(
                dir,
                format!("saga {saga_id} has head {head} but {} events", events.len()),
            ));
        }
        let projection = projector(&saga_id, &events);
        check_projection(&saga_id, head, &projection.saga_id, projection.head)?;
        trees
            .sagas
            .insert(&key, records::encode(&records::projection(&projection)))
            .map_err(|e| sled_fault(dir, e))?;
        rebuilt += 1;
    }
    let mut wanted = BTreeSet::new();
    for item in trees.sagas.iter() {
        let (key, value) = item.map_err(|e| sled_fault(dir, e))?;
        if !with_head.contains(key.as_ref()) {
            return Err(corrupt(
                dir,
                format!("projection sagas/{} has no log", keys::show(&key)),
            ));
        }
        let stored = records::decode::<StoredProjection>("sagas", &key, &value)
            .map_err(|e| corrupt(dir, e))?;
        let p = records::projection_from(&key, stored).map_err(|e| corrupt(dir, e))?;
        for d in &p.deadlines {
            wanted.insert(keys::deadline(d, &p.saga_id));
        }
    }
    let mut batch = sled::Batch::default();
    let mut changed = false;
    for item in trees.deadlines.iter() {
        let (key, _) = item.map_err(|e| sled_fault(dir, e))?;
        if !wanted.remove(key.as_ref()) {
            batch.remove(key);
            changed = true;
        }
    }
    for key in wanted {
        batch.insert(key, vec![records::RECORD_VERSION]);
        changed = true;
    }
    if changed {
        tracing::info!(path = %dir.display(), "deadline index rebuilt from the projections");
        trees
            .deadlines
            .apply_batch(batch)
            .map_err(|e| sled_fault(dir, e))?;
    }
    Ok(rebuilt)
}

fn check_projection(
    saga_id: &SagaId,
    head: u64,
    projected_saga: &SagaId,
    projected_head: u64,
) -> Result<(), OpenError> {
    if projected_saga != saga_id || projected_head != head {
        return Err(OpenError::Projector {
            saga_id: *saga_id,
            detail: format!(
                "returned saga {projected_saga} head {projected_head}, the log has head {head}"
            ),
        });
    }
    Ok(())
}
