//! The observer (issue 6) against two real gateways over mutual TLS on
//! loopback — the harness of tests/rpc.rs: chainsims, GA (org-a, the
//! buyer) and GB (org-b, the seller), dev certificates — following their
//! event feeds into its sled audit store, as a library
//! (`RunningObserver`) and as the `escrowd observer` binary.
//!
//! Every check compares the audit store with each gateway's own log: the
//! same cursors, once each, naming the same saga, seq and event. Waits are
//! bounded polls; nothing depends on timing.

#[path = "rpc/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use escrowd::observer::config::ObserverConfig;
use escrowd::observer::feed::{FeedError, FeedSource, FeedStream, FeedTimeouts, GrpcFeed};
use escrowd::observer::store::AuditStore;
use escrowd::observer::{
    Backoff, Counters, Feed, Observed, ObserverError, ObserverOptions, RunningObserver,
};
use escrowd::proto::escrow_v1 as pb;
use saga_core::terms::SagaId;
use tokio_stream::StreamExt;

use support::*;

const OBSERVER: &str = "spiffe://observer.example/observer/observer";
const OBSERVER_LEAF: &str = "observer.example/observer-observer";

// ---------------------------------------------------------------------------
// Helpers

/// Fast reconnection, so a test does not wait seconds for a gateway.
fn fast() -> ObserverOptions {
    ObserverOptions {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..ObserverOptions::default()
    }
}

/// Writes `observer.toml` into `dir`: our identity `leaf` of `pki` (or the
/// given federation file), the store `dir/audit`, and `gateways` as
/// (trust domain, url, SPIFFE ID).
fn write_config(
    dir: &Path,
    federation: &Path,
    cert: &Path,
    id: &str,
    gateways: &[(&str, String, &str)],
) -> PathBuf {
    let mut text = format!(
        "[observer]\nspiffe_id = \"{id}\"\nstore = \"audit\"\n\n[identity]\nfederation = \"{}\"\n\
         cert = \"{}.pem\"\nkey = \"{}.key\"\n",
        federation.display(),
        cert.display(),
        cert.display()
    );
    for (domain, url, spiffe_id) in gateways {
        text.push_str(&format!(
            "\n[gateways.\"{domain}\"]\nurl = \"{url}\"\nspiffe_id = \"{spiffe_id}\"\n"
        ));
    }
    let path = dir.join("observer.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The standard observer of `w`: observer.example's leaf, both gateways.
fn both_gateways(w: &World, dir: &Path) -> PathBuf {
    write_config(
        dir,
        &w.pki.path().join("federation.toml"),
        &w.pki.path().join(OBSERVER_LEAF),
        OBSERVER,
        &[
            ("org-a.example", format!("https://{}", w.ga.addr), GA),
            ("org-b.example", format!("https://{}", w.gb.addr), GB),
        ],
    )
}

/// Polls `check` every 20 ms until it holds; panics with `what()` after
/// [`PATIENCE`].
async fn until(what: impl Fn() -> String, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {}",
            what()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `node`'s feed as the gateway holds it: (cursor, saga id, seq).
async fn gateway_feed(node: &Node) -> Vec<(u64, SagaId, u64)> {
    node.log()
        .feed(1, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.cursor, e.saga_id, e.seq))
        .collect()
}

/// Waits until the observer's cursor of each gateway is its feed's last.
async fn caught_up(w: &World, obs: &RunningObserver) {
    for (id, node) in [(GA, &w.ga), (GB, &w.gb)] {
        let last = gateway_feed(node).await.last().map_or(0, |e| e.0);
        until(
            || {
                format!(
                    "{id}: observer at {} of {last}: {:?}",
                    obs.cursor(id),
                    obs.status()
                )
            },
            || obs.cursor(id) == last,
        )
        .await;
    }
}

/// Asserts that the audit store holds each gateway's feed exactly: every
/// cursor once, the same saga and seq, and for `saga_id` the same events
/// in seq order as the gateway's log.
async fn assert_same_as_gateways(w: &World, store: &AuditStore, saga_ids: &[String]) {
    for (id, node) in [(GA, &w.ga), (GB, &w.gb)] {
        let feed = gateway_feed(node).await;
        assert!(!feed.is_empty());
        assert_eq!(store.feed(id).unwrap(), feed, "{id}");
        assert_eq!(store.cursor(id).unwrap(), feed.len() as u64, "{id}");
    }
    for saga_id in saga_ids {
        let timeline = store.timeline(&saga_id.parse().unwrap()).unwrap();
        for (id, node) in [(GA, &w.ga), (GB, &w.gb)] {
            let observed: Vec<&Observed> = timeline.iter().filter(|o| o.gateway == id).collect();
            let logged = w.events(node, saga_id).await;
            assert_eq!(
                observed.iter().map(|o| o.seq).collect::<Vec<_>>(),
                (0..logged.len() as u64).collect::<Vec<_>>(),
                "{id}: one record per seq, in seq order"
            );
            assert_eq!(
                observed.iter().map(|o| o.event.clone()).collect::<Vec<_>>(),
                logged,
                "{id}"
            );
            for o in &observed {
                assert_eq!(o.name, o.event.name());
                assert_eq!(o.sent_at, NOW, "the gateways' clock is fixed");
            }
        }
        let received: Vec<u64> = timeline.iter().map(|o| o.received_at).collect();
        assert!(received.windows(2).all(|p| p[0] <= p[1]), "{received:?}");
    }
}

fn names(timeline: &[Observed], gateway: &str) -> Vec<String> {
    timeline
        .iter()
        .filter(|o| o.gateway == gateway)
        .map(|o| o.name.clone())
        .collect()
}

/// Funds both gateways for `swaps` swaps.
async fn funded(swaps: u64) -> World {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000 * swaps).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000 * swaps).await;
    w
}

/// Runs one swap to completion on both gateways; returns its saga id.
async fn swap(w: &World, key: &str) -> String {
    let saga_id = w.start(&mut w.admin_a(), key).await.status.unwrap().saga_id;
    w.until_both(&saga_id, pb::SagaState::Completed).await;
    saga_id
}

/// How a completed swap begins in each gateway's log (the protocol fixes
/// this order: the buyer broadcasts its claim before telling the seller,
/// the seller builds its claim once it learns `s`); what follows —
/// broadcasts racing confirmations, the counterparty's claim seen through
/// `Execute` and on chain, the last acknowledgement — interleaves as the
/// chains and the peer answer.
const BUYER_BEGINS: [&str; 14] = [
    "terms_proposed",
    "terms_agreed",
    "reservation_built",
    "refund_countersigned",
    "reservation_broadcast",
    "reservation_confirmed",
    "message_delivered",
    "counter_refund_signed",
    "counter_reservation_verified",
    "token_granted",
    "message_delivered",
    "token_received",
    "claim_built",
    "claim_broadcast",
];
const SELLER_BEGINS: [&str; 15] = [
    "terms_proposed",
    "terms_agreed",
    "counter_refund_signed",
    "counter_reservation_verified",
    "reservation_built",
    "refund_countersigned",
    "reservation_broadcast",
    "reservation_confirmed",
    "token_granted",
    "message_delivered",
    "token_received",
    "message_delivered",
    "counter_claim_seen",
    "preimage_learned",
    "claim_built",
];

/// What each gateway's log holds, once each, after [`BUYER_BEGINS`] and
/// [`SELLER_BEGINS`].
const BUYER_ENDS: [&str; 2] = ["claim_confirmed", "counter_claim_confirmed"];
const SELLER_ENDS: [&str; 3] = [
    "claim_broadcast",
    "claim_confirmed",
    "counter_claim_confirmed",
];

/// Asserts `names` (less retried effects) begin with the first four of
/// `begins` in that order (the agreement, causally ordered), hold the rest
/// of `begins` at least as often as listed (their order depends on which
/// party's message lands first), and each of `ends` once.
fn completed_swap(names: &[String], begins: &[&str], ends: &[&str]) {
    let names: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "effect_failed")
        .collect();
    assert_eq!(names[..4], begins[..4], "{names:?}");
    for name in &begins[4..] {
        let wanted = begins.iter().filter(|b| *b == name).count();
        let got = names.iter().filter(|n| *n == name).count();
        assert!(got >= wanted, "{name}: {got} of {wanted}: {names:?}");
    }
    for end in ends {
        assert_eq!(
            names.iter().filter(|n| *n == end).count(),
            1,
            "{end}: {names:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A swap, observed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_between_two_gateways_is_observed_completely_on_both_gateways() {
    let w = funded(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = ObserverConfig::load(&both_gateways(&w, dir.path())).unwrap();
    let obs = RunningObserver::start(&config, fast()).await.unwrap();
    let mut stored = obs.subscribe();

    let saga_id = swap(&w, "observed").await;
    caught_up(&w, &obs).await;

    assert_same_as_gateways(&w, obs.store(), std::slice::from_ref(&saga_id)).await;
    let id: SagaId = saga_id.parse().unwrap();
    assert_eq!(obs.sagas().unwrap(), vec![id]);
    let timeline = obs.timeline(&id).unwrap();
    let (a, b) = (
        w.events(&w.ga, &saga_id).await.len() as u64,
        w.events(&w.gb, &saga_id).await.len() as u64,
    );
    assert_eq!(timeline.len() as u64, a + b);
    completed_swap(&names(&timeline, GA), &BUYER_BEGINS, &BUYER_ENDS);
    completed_swap(&names(&timeline, GB), &SELLER_BEGINS, &SELLER_ENDS);
    assert_eq!(
        obs.counters(),
        Counters {
            stored: a + b,
            duplicates: 0,
            conflicts: 0,
            gaps: 0
        }
    );
    let status = obs.status();
    assert_eq!(
        status
            .iter()
            .map(|s| (s.gateway.as_str(), s.cursor))
            .collect::<Vec<_>>(),
        vec![(GA, a), (GB, b)]
    );
    assert!(
        status.iter().all(|s| s.connected && s.subscriptions == 1),
        "{status:?}"
    );

    // The subscribers' channel saw every item, as stored.
    let mut seen = BTreeMap::<String, Vec<u64>>::new();
    while let Ok(o) = stored.try_recv() {
        seen.entry(o.gateway.clone()).or_default().push(o.cursor);
    }
    assert_eq!(seen[GA], (1..=a).collect::<Vec<_>>());
    assert_eq!(seen[GB], (1..=b).collect::<Vec<_>>());

    obs.stop().await;
    w.stop().await;
}

// ---------------------------------------------------------------------------
// Stopping and resuming

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_stopped_mid_swap_resumes_from_its_cursor_and_sees_every_event_once() {
    let w = funded(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = ObserverConfig::load(&both_gateways(&w, dir.path())).unwrap();
    let first = RunningObserver::start(&config, fast()).await.unwrap();
    let saga_id = w
        .start(&mut w.admin_a(), "resumed")
        .await
        .status
        .unwrap()
        .saga_id;
    // Stop as soon as the first event is stored: the swap goes on.
    until(|| format!("{:?}", first.status()), || first.cursor(GA) >= 1).await;
    first.stop().await;
    // What the first run stored, read from its store once it has stopped.
    let at_stop = AuditStore::open_existing(&config.store)
        .unwrap()
        .cursors()
        .unwrap();
    let stored_first: u64 = at_stop.values().sum();
    assert!(stored_first >= 1);

    w.until_both(&saga_id, pb::SagaState::Completed).await;
    // Restarted over the same store: it resumes after the cursors it had.
    let second = RunningObserver::start(&config, fast()).await.unwrap();
    for id in [GA, GB] {
        assert_eq!(second.cursor(id), at_stop.get(id).copied().unwrap_or(0));
    }
    caught_up(&w, &second).await;
    let after = second.counters();
    let total = (gateway_feed(&w.ga).await.len() + gateway_feed(&w.gb).await.len()) as u64;
    assert_eq!(stored_first + after.stored, total, "{at_stop:?} {after:?}");
    assert!(
        after.stored > 0,
        "the swap went on while the observer was down"
    );
    assert_eq!(after.duplicates, 0, "resumed after the last cursor stored");
    assert_eq!(after.gaps, 0);
    assert_same_as_gateways(&w, second.store(), &[saga_id]).await;
    second.stop().await;
    w.stop().await;
}

/// A feed wrapper that re-delivers: its first subscription ends after
/// `first` items; every later one starts `rewind` cursors before the one
/// asked for (at-least-once delivery, exaggerated).
struct Rewinding {
    inner: GrpcFeed,
    first: usize,
    rewind: u64,
    calls: AtomicUsize,
}

#[async_trait]
impl FeedSource for Rewinding {
    async fn subscribe(&self, from: u64) -> Result<FeedStream, FeedError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let s = self.inner.subscribe(from).await?;
            return Ok(Box::pin(s.take(self.first)));
        }
        self.inner
            .subscribe(from.saturating_sub(self.rewind).max(1))
            .await
    }
}

/// A feed wrapper whose first subscription leaves out one cursor.
struct Skipping {
    inner: GrpcFeed,
    skip: u64,
    calls: AtomicUsize,
}

#[async_trait]
impl FeedSource for Skipping {
    async fn subscribe(&self, from: u64) -> Result<FeedStream, FeedError> {
        let s = self.inner.subscribe(from).await?;
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            let skip = self.skip;
            return Ok(Box::pin(
                s.filter(move |i| i.as_ref().map_or(true, |i| i.cursor != skip)),
            ));
        }
        Ok(s)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_delivered_items_are_counted_as_duplicates_and_a_gap_is_refilled() {
    let w = funded(1).await;
    let saga_id = swap(&w, "redelivered").await;
    let feed = gateway_feed(&w.ga).await;
    let n = feed.len() as u64;
    assert!(n > 8, "{feed:?}");
    let identity = w.pki.identity(OBSERVER_LEAF);
    let endpoint = escrowd::observer::config::GatewayEndpoint {
        url: format!("https://{}", w.ga.addr).parse().unwrap(),
        spiffe_id: sid(GA),
    };
    let grpc = GrpcFeed::new(&identity, &endpoint, FeedTimeouts::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Re-delivery: 5 items, then the stream ends; the next subscription
    // (from 6) starts at 3, so 3, 4 and 5 come twice.
    let store = dir.path().join("rewound");
    let feeds = vec![Feed {
        gateway: sid(GA),
        source: Arc::new(Rewinding {
            inner: grpc.clone(),
            first: 5,
            rewind: 3,
            calls: AtomicUsize::new(0),
        }),
    }];
    let obs = RunningObserver::start_with_feeds(&store, feeds, fast())
        .await
        .unwrap();
    until(|| format!("{:?}", obs.status()), || obs.cursor(GA) == n).await;
    assert_eq!(
        obs.counters(),
        Counters {
            stored: n,
            duplicates: 3,
            conflicts: 0,
            gaps: 0
        }
    );
    assert_eq!(obs.status()[0].subscriptions, 2);
    assert_eq!(
        obs.store().feed(GA).unwrap(),
        feed,
        "each cursor stored once"
    );
    assert_eq!(
        obs.timeline(&saga_id.parse().unwrap()).unwrap().len() as u64,
        n
    );
    obs.stop().await;

    // The same store again, fed from cursor 1 on: every item is a duplicate.
    let replay = vec![Feed {
        gateway: sid(GA),
        source: Arc::new(Rewinding {
            inner: grpc.clone(),
            first: usize::MAX,
            rewind: u64::MAX,
            calls: AtomicUsize::new(1),
        }),
    }];
    let obs = RunningObserver::start_with_feeds(&store, replay, fast())
        .await
        .unwrap();
    until(
        || format!("{:?}", obs.status()),
        || obs.counters().duplicates == n,
    )
    .await;
    assert_eq!(obs.counters().stored, 0);
    assert_eq!(obs.counters().conflicts, 0);
    assert_eq!(obs.store().feed(GA).unwrap(), feed);
    obs.stop().await;

    // A gap: cursor 4 left out, so 5 arrives after 3; the follower logs it
    // and subscribes again from 4.
    let feeds = vec![Feed {
        gateway: sid(GA),
        source: Arc::new(Skipping {
            inner: grpc,
            skip: 4,
            calls: AtomicUsize::new(0),
        }),
    }];
    let obs = RunningObserver::start_with_feeds(&dir.path().join("gap"), feeds, fast())
        .await
        .unwrap();
    until(|| format!("{:?}", obs.status()), || obs.cursor(GA) == n).await;
    assert_eq!(
        obs.counters(),
        Counters {
            stored: n,
            duplicates: 0,
            conflicts: 0,
            gaps: 1
        }
    );
    let status = &obs.status()[0];
    assert_eq!(status.subscriptions, 2);
    assert_eq!(
        status.last_error.as_deref(),
        Some("gap in the feed: expected cursor 4, got 5; subscribing again from 4")
    );
    assert_eq!(obs.store().feed(GA).unwrap(), feed);
    obs.stop().await;

    // The same feed in process (how the demo's gateways, which serve no
    // gRPC, are followed): GA's own EventService over its log.
    let (_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let in_process = escrowd::rpc::events::EventService::new(
        w.ga.log(),
        None,
        Duration::from_millis(20),
        shutdown_rx,
        Arc::new(FixedClock(NOW)),
    );
    let feeds = vec![Feed {
        gateway: sid(GA),
        source: Arc::new(in_process),
    }];
    let obs = RunningObserver::start_with_feeds(&dir.path().join("in-process"), feeds, fast())
        .await
        .unwrap();
    until(|| format!("{:?}", obs.status()), || obs.cursor(GA) == n).await;
    assert_eq!(obs.counters().stored, n);
    assert_eq!(obs.store().feed(GA).unwrap(), feed);
    assert_eq!(
        obs.timeline(&saga_id.parse().unwrap())
            .unwrap()
            .into_iter()
            .map(|o| o.event)
            .collect::<Vec<_>>(),
        w.events(&w.ga, &saga_id).await
    );
    obs.stop().await;
    w.stop().await;
}

// ---------------------------------------------------------------------------
// A gateway that goes away and comes back

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restarted_while_the_observer_runs_is_followed_again_by_itself() {
    let mut w = funded(2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = ObserverConfig::load(&both_gateways(&w, dir.path())).unwrap();
    let obs = RunningObserver::start(&config, fast()).await.unwrap();
    let first = swap(&w, "before-restart").await;
    caught_up(&w, &obs).await;
    let gb_before = obs.cursor(GB);

    // GB goes away: its stream ends, and subscribing again fails (nobody
    // listens) until it is back; the follower keeps trying by itself.
    let down = format!(
        "subscribing from cursor {}: cannot reach the gateway: cannot connect to {}: ",
        gb_before + 1,
        w.gb.addr
    );
    w.gb.stop_gateway().await;
    until(
        || format!("{:?}", obs.status()),
        || {
            let gb = &obs.status()[1];
            !gb.connected
                && gb
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(&down))
        },
    )
    .await;
    w.gb.restart(&w.chains).await;
    until(
        || format!("{:?}", obs.status()),
        || obs.status()[1].subscriptions >= 2 && obs.status()[1].connected,
    )
    .await;
    assert_eq!(obs.cursor(GB), gb_before);

    let second = swap(&w, "after-restart").await;
    caught_up(&w, &obs).await;
    assert!(obs.cursor(GB) > gb_before);
    assert_same_as_gateways(&w, obs.store(), &[first.clone(), second.clone()]).await;
    let total = (gateway_feed(&w.ga).await.len() + gateway_feed(&w.gb).await.len()) as u64;
    let c = obs.counters();
    assert_eq!((c.stored, c.duplicates, c.gaps), (total, 0, 0), "{c:?}");
    let ids: Vec<SagaId> = [&first, &second]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(obs.sagas().unwrap(), ids);
    obs.stop().await;
    w.stop().await;
}

// ---------------------------------------------------------------------------
// Refusals

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_refused_by_the_gateway_or_expecting_another_gets_a_clear_error_and_no_records()
{
    let w = World::new().await;
    // Unfunded: the saga waits in reservation, but GA's feed has events.
    w.start(&mut w.admin_a(), "unobserved").await;
    let feed_len = {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let n = gateway_feed(&w.ga).await.len();
            if n > 0 {
                break n;
            }
            assert!(tokio::time::Instant::now() < deadline, "GA's feed is empty");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(feed_len > 0);
    let ga_url = format!("https://{}", w.ga.addr);
    let federation = w.pki.path().join("federation.toml");
    let no_records = |obs: &RunningObserver| {
        assert_eq!(obs.counters(), Counters::default());
        assert_eq!(obs.cursor(GA), 0);
        assert!(obs.sagas().unwrap().is_empty());
        assert!(obs.store().feed(GA).unwrap().is_empty());
    };
    let first_error = |obs: &RunningObserver| obs.status()[0].last_error.clone();

    // 1. The config expects another gateway at GA's address: our side
    //    refuses GA's certificate.
    let dir = tempfile::tempdir().unwrap();
    let impostor = "spiffe://org-a.example/gateway/impostor";
    let path = write_config(
        dir.path(),
        &federation,
        &w.pki.path().join(OBSERVER_LEAF),
        OBSERVER,
        &[("org-a.example", ga_url.clone(), impostor)],
    );
    let obs = RunningObserver::start(&ObserverConfig::load(&path).unwrap(), fast())
        .await
        .unwrap();
    until(
        || format!("{:?}", obs.status()),
        || first_error(&obs).is_some(),
    )
    .await;
    let e = first_error(&obs).unwrap();
    assert!(
        e.starts_with("subscribing from cursor 1: cannot reach the gateway: ")
            && e.contains(&format!("server presented {GA}, expected {impostor}")),
        "{e}"
    );
    assert!(!obs.status()[0].connected);
    no_records(&obs);
    obs.stop().await;

    // 2. Our certificate is of a trust domain the gateway does not
    //    federate: GA refuses it in the handshake.
    let rogue = tempfile::tempdir().unwrap();
    escrowd::identity::issue::init(
        rogue.path(),
        &[escrowd::identity::issue::DomainPlan::parse("rogue.example=observer").unwrap()],
        wall_clock(),
        1,
        false,
    )
    .unwrap();
    // Our own federation trusts GA's CA and ours.
    let our_federation = rogue.path().join("ours.toml");
    std::fs::write(
        &our_federation,
        format!(
            "[[domain]]\nname = \"org-a.example\"\nca = \"{}\"\nroles = [\"gateway\"]\n\n\
             [[domain]]\nname = \"rogue.example\"\nca = \"rogue.example/ca.pem\"\nroles = [\"observer\"]\n",
            w.pki.path().join("org-a.example/ca.pem").display()
        ),
    )
    .unwrap();
    let path = write_config(
        rogue.path(),
        &our_federation,
        &rogue.path().join("rogue.example/observer-rogue"),
        "spiffe://rogue.example/observer/rogue",
        &[("org-a.example", ga_url.clone(), GA)],
    );
    let obs = RunningObserver::start(&ObserverConfig::load(&path).unwrap(), fast())
        .await
        .unwrap();
    until(
        || format!("{:?}", obs.status()),
        || first_error(&obs).is_some(),
    )
    .await;
    let e = first_error(&obs).unwrap();
    assert!(
        e.starts_with("subscribing from cursor 1: cannot reach the gateway: "),
        "{e}"
    );
    // The gateway's refusal arrives as its alert or, when that is lost, as
    // the connection closing before an answer: either way it is named.
    assert!(
        e.contains("refused our certificate") && e.contains("its log names the reason"),
        "{e}"
    );
    no_records(&obs);
    obs.stop().await;

    // 3. A config whose observer.spiffe_id is not our certificate's.
    let other = tempfile::tempdir().unwrap();
    let path = write_config(
        other.path(),
        &federation,
        &w.pki.path().join(OBSERVER_LEAF),
        "spiffe://observer.example/observer/other",
        &[("org-a.example", ga_url, GA)],
    );
    let e = RunningObserver::start(&ObserverConfig::load(&path).unwrap(), fast())
        .await
        .unwrap_err();
    assert!(matches!(e, ObserverError::IdentityMismatch { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "observer.spiffe_id is spiffe://observer.example/observer/other but our \
             certificate carries {OBSERVER}"
        )
    );
    assert!(!other.path().join("audit").exists(), "no store made");
    w.stop().await;
}

// ---------------------------------------------------------------------------
// The command line

/// Kills the child (ours) if the test ends early.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_command_follows_until_sigterm_and_prints_the_trail() {
    let w = funded(1).await;
    let saga_id = swap(&w, "by-the-binary").await;
    let dir = tempfile::tempdir().unwrap();
    let config = both_gateways(&w, dir.path());
    let cfg = config.display().to_string();
    let logged_a: Vec<String> = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    let logged_b: Vec<String> = w
        .events(&w.gb, &saga_id)
        .await
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    let (a, b) = (logged_a.len(), logged_b.len());

    // `observer run`: one stderr line per event stored, until SIGTERM.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(["observer", "run", "--config", &cfg])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let (rx, mut lines) = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        while lines
            .iter()
            .filter(|l: &&String| l.contains(" seq "))
            .count()
            < a + b
        {
            match rx.recv_timeout(PATIENCE) {
                Ok(l) => lines.push(l),
                Err(e) => panic!("observer run: {e}; so far: {lines:#?}"),
            }
        }
        (rx, lines)
    })
    .await
    .unwrap();
    let pid = guard.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut guard = guard;
    let status = tokio::task::spawn_blocking(move || {
        let status = guard.0.wait().unwrap();
        lines.extend(rx.iter());
        (status, lines)
    })
    .await
    .unwrap();
    let (status, lines) = status;
    assert_eq!(status.code(), Some(0), "{lines:#?}");
    assert!(
        lines[0].starts_with(&format!(
            "escrowd observer {OBSERVER} following 2 gateway(s) into "
        )),
        "{lines:#?}"
    );
    assert_eq!(lines.last().unwrap(), "escrowd observer: stopping");
    let events: Vec<&String> = lines.iter().filter(|l| l.contains(" seq ")).collect();
    assert_eq!(events.len(), a + b, "{lines:#?}");
    assert!(
        events.iter().any(|l| l.contains(&format!(
            " {GA} #1 saga {saga_id} seq 0 terms_proposed: terms proposed (buyer): "
        ))),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|l| l.contains(&format!(
            " {GB} #1 saga {saga_id} seq 0 terms_proposed: terms proposed (seller): "
        ))),
        "{events:#?}"
    );

    // `observer timeline --json`: every step of both gateways, with txids.
    let run = escrowd(args(&[
        "observer", "timeline", "--config", &cfg, &saga_id, "--json",
    ]))
    .await;
    let json = run.ok_json();
    assert_eq!(json["saga_id"], saga_id.as_str());
    let steps = json["timeline"].as_array().unwrap();
    assert_eq!(steps.len(), a + b);
    let steps_of = |gateway: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s["gateway"] == gateway)
            .map(|s| s["step"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(steps_of(GA), logged_a);
    assert_eq!(steps_of(GB), logged_b);
    let claim_txid = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .find_map(|e| match e {
            saga_core::saga::Event::ClaimBroadcast { txid } => Some(txid.to_string()),
            _ => None,
        })
        .unwrap();
    let claim = steps
        .iter()
        .find(|s| s["gateway"] == GA && s["step"] == "claim_broadcast")
        .unwrap();
    assert_eq!(claim["txids"], serde_json::json!([claim_txid]));
    assert_eq!(claim["sent_at"], NOW);
    assert!(claim["at"].as_str().unwrap().ends_with('Z'));
    let first = &steps[0];
    assert_eq!(first["step"], "terms_proposed");
    assert_eq!(first["cursor"], 1);
    assert_eq!(first["seq"], 0);
    assert_eq!(first["txids"], serde_json::json!([]));

    // The plain timeline: a heading, then one line per step.
    let run = escrowd(args(&["observer", "timeline", "--config", &cfg, &saga_id])).await;
    assert_eq!(run.code, 0, "{run:?}");
    let out: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        out[0],
        format!("saga {saga_id}: {} events from 2 gateway(s)", a + b)
    );
    assert_eq!(out.len(), 1 + a + b);
    assert!(
        out.iter()
            .any(|l| l.contains(GA) && l.contains("claim_broadcast") && l.ends_with(&claim_txid)),
        "{out:#?}"
    );

    // `observer list`: the saga, events per gateway, the last step, cursors.
    let json = escrowd(args(&["observer", "list", "--config", &cfg, "--json"]))
        .await
        .ok_json();
    let sagas = json["sagas"].as_array().unwrap();
    assert_eq!(sagas.len(), 1);
    assert_eq!(sagas[0]["saga_id"], saga_id.as_str());
    assert_eq!(sagas[0]["events"], serde_json::json!({GA: a, GB: b}));
    let last = steps.last().unwrap();
    assert_eq!(sagas[0]["last"]["step"], last["step"]);
    assert_eq!(sagas[0]["last"]["gateway"], last["gateway"]);
    assert_eq!(json["cursors"], serde_json::json!({GA: a, GB: b}));
    let run = escrowd(args(&["observer", "list", "--config", &cfg])).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with(&format!("{saga_id}  {GA}: {a}, {GB}: {b}  last: ")),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&format!("cursor {GA}: {a}\n")),
        "{run:?}"
    );

    // A saga never observed, a malformed id: exit 1.
    let unknown = SagaId::new_v7(1, &[7; 10]).to_string();
    let run = escrowd(args(&["observer", "timeline", "--config", &cfg, &unknown])).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("saga {unknown} was not observed")),
        "{run:?}"
    );
    let run = escrowd(args(&[
        "observer",
        "timeline",
        "--config",
        &cfg,
        "not-a-saga",
    ]))
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("field SAGA_ID"), "{run:?}");

    // A typo in the config: refused naming the field, nothing started.
    let typo_dir = tempfile::tempdir().unwrap();
    let typo = typo_dir.path().join("observer.toml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&config).unwrap().replace(
            "spiffe_id = \"spiffe://org-b",
            "spife_id = \"spiffe://org-b",
        ),
    )
    .unwrap();
    let typo_cfg = typo.display().to_string();
    let run = escrowd(args(&["observer", "run", "--config", &typo_cfg])).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("escrowd: invalid: {typo_cfg}: "))
            && run.stderr.contains("unknown field `spife_id`"),
        "{run:?}"
    );
    assert!(!typo_dir.path().join("audit").exists());
    // A config whose store was never written: nothing to read (exit 2), and
    // reading creates nothing.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = fresh_dir.path().join("observer.toml");
    std::fs::copy(&config, &fresh).unwrap();
    let run = escrowd(args(&[
        "observer",
        "list",
        "--config",
        &fresh.display().to_string(),
    ]))
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no audit store at "), "{run:?}");
    assert!(!fresh_dir.path().join("audit").exists());
    let run = escrowd(args(&[
        "observer",
        "run",
        "--config",
        "/nonexistent/observer.toml",
    ]))
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    w.stop().await;
}
