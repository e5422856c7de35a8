//! The sled store: the event log conformance suite, then what only a durable
//! store has — reopening, refusing foreign or newer stores without writing
//! to them, rebuilding projections, file modes, corrupt records.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use escrowd::proto::escrow_v1::StoredMeta;
use escrowd::store::records;
use escrowd::store::{OpenError, SledLog, SCHEMA_VERSION, STORE_KIND};
use saga_core::terms::SagaId;
use saga_core::units::Height;
use saga_runtime::log::conformance::{self, progressed, saga, step, TestEvent, TestLog};
use saga_runtime::log::{Deadline, DeadlineQuery, EventLog, Projection, ReadError, SecretBytes};

/// The suite's projection rule, as a driver would compute it: state is the
/// last event's kind, terminal after `Finished`, one height deadline.
fn project(saga_id: &SagaId, events: &[(u64, TestEvent)]) -> Projection {
    let last = events.last().map(|(_, e)| e);
    Projection {
        saga_id: *saga_id,
        role: "buyer".into(),
        state: match last {
            Some(TestEvent::Started { .. }) => "Started",
            Some(TestEvent::Progressed { .. }) => "Progressed",
            Some(TestEvent::Finished) => "Finished",
            None => "New",
        }
        .into(),
        terminal: matches!(last, Some(TestEvent::Finished)),
        attention: None,
        head: events.len() as u64,
        deadlines: vec![Deadline::Height {
            chain_id: "P".into(),
            height: Height(100 + events.len() as u32),
        }],
    }
}

fn open(dir: &Path) -> SledLog<TestEvent> {
    match SledLog::open(dir, project) {
        Ok(log) => log,
        Err(e) => panic!("open {}: {e}", dir.display()),
    }
}

/// Appends `events` to `saga_id` with the projection `project` computes.
async fn append_projected(log: &SledLog<TestEvent>, saga_id: SagaId, events: Vec<TestEvent>) {
    let mut all = log.load(&saga_id).await.expect("load");
    let head = all.len() as u64;
    let mut s = step(saga_id, head, events.clone());
    for (i, e) in events.into_iter().enumerate() {
        all.push((head + i as u64, e));
    }
    s.projection = project(&saga_id, &all);
    log.append(s).await.expect("append");
}

/// Every file under `dir` with the SHA-256 of its bytes (for directories
/// that are not sled's: sled rewrites its own files on every open).
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let bytes = std::fs::read(&path).expect("read");
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            out.insert(path.display().to_string(), hex::encode(digest.as_ref()));
        }
    }
    out
}

/// Everything a sled directory holds, tree by tree: what "nothing was
/// written" means for a store sled has opened.
fn contents(dir: &Path) -> BTreeMap<(String, Vec<u8>), Vec<u8>> {
    let db = sled::open(dir).expect("raw open");
    let mut out = BTreeMap::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).expect("tree");
        let name = String::from_utf8_lossy(&name).into_owned();
        for item in tree.iter() {
            let (k, v) = item.expect("item");
            out.insert((name.clone(), k.to_vec()), v.to_vec());
        }
        // An empty tree still counts as present.
        out.insert((name, Vec::new()), Vec::new());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_log_passes_the_conformance_suite() {
    let root = tempfile::tempdir().expect("tempdir");
    let n = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = root.path().join(format!("case{i}"));
        async move { Arc::new(open(&dir)) as TestLog }
    })
    .await;
    // Each case ran on its own directory.
    assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 14);
}

#[tokio::test]
async fn a_reopened_store_has_everything_and_continues_the_feed() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("gw");
    let (a, b) = (saga(1), saga(2));
    {
        let log = open(&dir);
        append_projected(&log, a, vec![progressed(1), progressed(2)]).await;
        append_projected(&log, b, vec![TestEvent::Started { note: "b".into() }]).await;
        log.put_secret(&a, "preimage", SecretBytes::new(vec![7; 32]))
            .await
            .expect("secret");
    }
    let log = open(&dir);
    assert_eq!(
        log.load(&a).await.expect("load"),
        vec![(0, progressed(1)), (1, progressed(2))]
    );
    assert_eq!(log.head(&b).await.expect("head"), 1);
    assert_eq!(
        log.secret(&a, "preimage").await.expect("secret"),
        Some(SecretBytes::new(vec![7; 32]))
    );
    append_projected(&log, a, vec![TestEvent::Finished]).await;
    let feed = log.feed(0, 10).await.expect("feed");
    assert_eq!(
        feed.iter()
            .map(|e| (e.cursor, e.saga_id, e.seq))
            .collect::<Vec<_>>(),
        vec![(1, a, 0), (2, a, 1), (3, b, 0), (4, a, 2)]
    );
    assert_eq!(log.in_flight_sagas().await.expect("in flight"), vec![b]);
}

#[tokio::test]
async fn a_second_open_of_the_same_directory_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let _log = open(root.path());
    match SledLog::<TestEvent>::open(root.path(), project) {
        Err(OpenError::Sled { detail, .. }) => assert!(detail.contains("lock"), "{detail}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened twice"),
    }
}

#[tokio::test]
async fn a_store_of_a_newer_schema_is_refused_and_left_alone() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let log = open(root.path());
        append_projected(&log, saga(1), vec![progressed(1)]).await;
    }
    {
        let db = sled::open(root.path()).expect("raw open");
        let meta = db.open_tree("meta").expect("meta");
        let newer = StoredMeta {
            kind: STORE_KIND.into(),
            schema_version: SCHEMA_VERSION + 1,
        };
        meta.insert("schema", records::encode(&newer))
            .expect("insert");
        db.flush().expect("flush");
    }
    let before = contents(root.path());
    match SledLog::<TestEvent>::open(root.path(), project) {
        Err(OpenError::NewerSchema { found, path }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(path, root.path());
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer store was opened"),
    }
    assert!(
        contents(root.path()) == before,
        "the refused store was written to"
    );
    let shown = SledLog::<TestEvent>::open(root.path(), project)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        shown.as_deref(),
        Some(
            format!(
                "store {} has schema version 2; this build reads up to 1: upgrade escrowd",
                root.path().display()
            )
            .as_str()
        )
    );
}

#[test]
fn a_directory_of_other_files_is_refused_untouched() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("notes.txt"), b"not a database").expect("write");
    std::fs::write(root.path().join("db"), b"garbage").expect("write");
    let before = files(root.path());
    match SledLog::<TestEvent>::open(root.path(), project) {
        Err(OpenError::NotAStore { detail, .. }) => {
            assert_eq!(detail, "it holds files sled does not write: notes.txt")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a foreign directory"),
    }
    assert_eq!(files(root.path()), before);
    // A file where the directory should be.
    let file = root.path().join("notes.txt");
    assert!(matches!(
        SledLog::<TestEvent>::open(&file, project),
        Err(OpenError::NotAStore { .. })
    ));
}

#[test]
fn garbage_sled_files_are_an_error_not_a_panic_nor_an_empty_store() {
    // Garbage in sled's `conf`: sled refuses it.
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("conf"), b"\xff\x00 garbage conf").expect("write");
    std::fs::write(root.path().join("db"), vec![0xab; 4096]).expect("write");
    let before = files(root.path());
    match SledLog::<TestEvent>::open(root.path(), project) {
        Err(OpenError::Sled { detail, .. }) => assert!(detail.contains("sled version"), "{detail}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened garbage"),
    }
    assert_eq!(files(root.path()), before);
    // A real store whose log file was overwritten with garbage: sled sees
    // no database in it (and, recovering, rewrites parts of its own file);
    // the store is refused rather than started empty.
    let other = tempfile::tempdir().expect("tempdir");
    drop(open(other.path()));
    std::fs::write(other.path().join("db"), vec![0xab; 64 * 1024]).expect("write");
    match SledLog::<TestEvent>::open(other.path(), project) {
        Err(OpenError::Corrupt { detail, .. }) => assert!(
            detail.starts_with("sled found no database in its existing files"),
            "{detail}"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a corrupt store came up empty"),
    }
    // sled's files now hold an empty database of its own: still refused.
    match SledLog::<TestEvent>::open(other.path(), project) {
        Err(OpenError::Corrupt { detail, .. }) => assert!(
            detail.starts_with("sled's files hold no escrowd schema record"),
            "{detail}"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a corrupt store came up empty on the second try"),
    }
}

#[test]
fn another_programs_sled_store_is_refused_untouched() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        // What `escrowd chainsim --data DIR` writes: its own tree.
        let db = sled::open(root.path()).expect("raw open");
        db.open_tree("chainsim")
            .expect("tree")
            .insert("m:schema", &[1u8][..])
            .expect("insert");
        db.flush().expect("flush");
    }
    let before = contents(root.path());
    match SledLog::<TestEvent>::open(root.path(), project) {
        Err(OpenError::NotAStore { detail, .. }) => assert_eq!(
            detail,
            "it has a tree \"chainsim\" that an escrowd gateway store does not have"
        ),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a chainsim store"),
    }
    assert!(
        contents(root.path()) == before,
        "the chainsim store was written to"
    );
    // A store of our trees but another kind.
    let other = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(other.path()).expect("raw open");
        let meta = StoredMeta {
            kind: "escrowd-notary".into(),
            schema_version: 1,
        };
        db.open_tree("meta")
            .expect("tree")
            .insert("schema", records::encode(&meta))
            .expect("insert");
        db.flush().expect("flush");
    }
    let before = contents(other.path());
    match SledLog::<TestEvent>::open(other.path(), project) {
        Err(OpenError::NotAStore { detail, .. }) => {
            assert_eq!(detail, "it is a store of kind \"escrowd-notary\"")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a notary store"),
    }
    assert!(
        contents(other.path()) == before,
        "the notary store was written to"
    );
}

#[tokio::test]
async fn missing_projections_and_deadlines_are_rebuilt_on_open() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (saga(1), saga(2), saga(3));
    let originals;
    {
        let log = open(root.path());
        append_projected(&log, a, vec![progressed(1)]).await;
        append_projected(&log, a, vec![progressed(2), TestEvent::Finished]).await;
        append_projected(&log, b, vec![TestEvent::Started { note: "b".into() }]).await;
        append_projected(&log, c, vec![progressed(5)]).await;
        originals = vec![
            log.projection(&a).await.expect("p"),
            log.projection(&b).await.expect("p"),
            log.projection(&c).await.expect("p"),
        ];
    }
    {
        // Lose the read models: all of `sagas`, plus a stale deadline entry
        // and a missing one.
        let db = sled::open(root.path()).expect("raw open");
        db.open_tree("sagas").expect("tree").clear().expect("clear");
        let deadlines = db.open_tree("deadlines").expect("tree");
        let first = deadlines.first().expect("read").expect("an entry").0;
        deadlines.remove(first).expect("remove");
        deadlines
            .insert(
                escrowd::store::keys::deadline(&Deadline::Time(saga_core::units::UnixTime(1)), &b),
                vec![1u8],
            )
            .expect("insert");
        db.flush().expect("flush");
    }
    let log = open(root.path());
    let rebuilt = vec![
        log.projection(&a).await.expect("p"),
        log.projection(&b).await.expect("p"),
        log.projection(&c).await.expect("p"),
    ];
    assert_eq!(rebuilt, originals);
    assert_eq!(
        rebuilt[0].as_ref().map(|p| p.state.as_str()),
        Some("Finished")
    );
    assert_eq!(log.in_flight_sagas().await.expect("in flight"), vec![b, c]);
    let due = log
        .due_deadlines(&DeadlineQuery::Height {
            chain_id: "P".into(),
            tip: Height(1_000),
        })
        .await
        .expect("due");
    let p = |h| Deadline::Height {
        chain_id: "P".into(),
        height: Height(h),
    };
    assert_eq!(due, vec![(p(101), b), (p(101), c), (p(103), a)]);
    assert!(log
        .due_deadlines(&DeadlineQuery::Time(saga_core::units::UnixTime(u64::MAX)))
        .await
        .expect("due")
        .is_empty());
}

#[tokio::test]
async fn the_directory_is_0700_and_its_files_0600() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("a").join("gw");
    {
        let log = open(&dir);
        log.put_secret(&saga(1), "preimage", SecretBytes::new(vec![1; 32]))
            .await
            .expect("secret");
    }
    // Loosen, then reopen: open tightens again.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let _log = open(&dir);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            seen += 1;
        } else {
            assert_eq!(mode(&path), 0o700, "{}", path.display());
        }
    }
    assert!(seen >= 2, "sled's conf and db");
}

#[tokio::test]
async fn a_corrupt_record_is_a_read_error() {
    let root = tempfile::tempdir().expect("tempdir");
    let a = saga(1);
    {
        let log = open(root.path());
        append_projected(&log, a, vec![progressed(1), progressed(2)]).await;
    }
    {
        let db = sled::open(root.path()).expect("raw open");
        let events = db.open_tree("events").expect("tree");
        let key = escrowd::store::keys::event(&a, 1);
        events
            .insert(key, &[1u8, 0x0a, 0x05, 0xff][..])
            .expect("insert");
        db.flush().expect("flush");
    }
    let log = open(root.path());
    match log.load(&a).await {
        Err(ReadError::Corrupt { what, .. }) => assert!(what.starts_with("events/"), "{what}"),
        other => panic!("wrong result: {other:?}"),
    }
    assert!(log.feed(0, 10).await.is_err());
    // The head is intact, so appends still check against it.
    assert_eq!(log.head(&a).await.expect("head"), 2);
}
