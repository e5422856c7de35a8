//! The demo's observer: `escrowd observer` itself ([`crate::observer`]),
//! with its own certificate (`observer.example`), following both gateways'
//! `EventService` over mutual TLS into a sled audit store in the demo's
//! directory. Its receive times are the time column of the demo's
//! timelines. A gateway that is down is followed again when it is back
//! (the feed is persistent and the observer resumes from its cursor, each
//! event stored once).
//!
//! # Layout
//! - [`Seen`], [`Observer`]: `start`, `catch_up`, `stop`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use saga_core::saga::Event;
use saga_core::terms::SagaId;

use super::world::{Side, World};
use super::DemoError;
use crate::observer::config::ObserverConfig;
use crate::observer::{ObserverOptions, RunningObserver};

/// How long [`Observer::catch_up`] waits for the followers to reach the
/// gateways' feed heads.
const CATCH_UP: Duration = Duration::from_secs(10);

/// One event as the observer saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The party whose gateway sent it (`buyer`, `seller`).
    pub party: &'static str,
    /// The event's seq in its saga.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// When the observer received it.
    pub at: SystemTime,
}

/// The running observer.
pub struct Observer {
    running: RunningObserver,
    /// (party name, gateway SPIFFE ID).
    parties: Vec<(&'static str, String)>,
}

impl Observer {
    /// Writes `observer.toml` into the demo's directory (both gateways,
    /// the observer's certificate, a store beside it) and starts following.
    ///
    /// # Errors
    /// [`DemoError::Setup`] naming what failed.
    pub async fn start(world: &World) -> Result<Observer, DemoError> {
        let home = world.path().join("observer");
        std::fs::create_dir_all(&home)
            .map_err(|e| DemoError::Setup(format!("creating the observer directory: {e}")))?;
        let identity = &world.observer_identity;
        let mut text = format!(
            "# escrowd demo: the observer (written by `escrowd demo`)\n[observer]\nspiffe_id = \"{}\"\nstore = \"store\"\n\n[identity]\nfederation = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            world.observer_id,
            identity.federation.display(),
            identity.cert.display(),
            identity.key.display(),
        );
        let mut parties = Vec::new();
        for side in [Side::Buyer, Side::Seller] {
            let party = world.party(side);
            let id = &party.config.spiffe_id;
            text.push_str(&format!(
                "\n[gateways.\"{}\"]\nurl = \"https://{}\"\nspiffe_id = \"{id}\"\n",
                id.domain(),
                party.config.listen,
            ));
            parties.push((party.name, id.to_string()));
        }
        let path = home.join("observer.toml");
        std::fs::write(&path, &text)
            .map_err(|e| DemoError::Setup(format!("writing observer.toml: {e}")))?;
        let config = ObserverConfig::load(&path).map_err(|e| DemoError::Setup(e.to_string()))?;
        let running = RunningObserver::start(&config, ObserverOptions::default())
            .await
            .map_err(|e| DemoError::Setup(format!("the observer: {e}")))?;
        Ok(Observer { running, parties })
    }

    /// Waits (boundedly) until the observer has every event each running
    /// gateway's feed holds, then returns what it saw per saga, in the
    /// order received.
    pub async fn catch_up(&self, world: &World) -> BTreeMap<SagaId, Vec<Seen>> {
        let deadline = Instant::now() + CATCH_UP;
        loop {
            let mut behind = false;
            for side in [Side::Buyer, Side::Seller] {
                let party = world.party(side);
                let Ok(g) = party.gateway() else { continue };
                let have = self.running.cursor(&party.config.spiffe_id.to_string());
                behind |= g.log.feed(have + 1, 1).await.is_ok_and(|p| !p.is_empty());
            }
            if !behind || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut out = BTreeMap::new();
        for saga_id in self.running.sagas().unwrap_or_default() {
            let timeline = self.running.timeline(&saga_id).unwrap_or_default();
            let seen: Vec<Seen> = timeline
                .into_iter()
                .filter_map(|o| {
                    let party = self
                        .parties
                        .iter()
                        .find(|(_, id)| *id == o.gateway)
                        .map(|(name, _)| *name)?;
                    Some(Seen {
                        party,
                        seq: o.seq,
                        event: o.event,
                        at: UNIX_EPOCH + Duration::from_millis(o.received_at),
                    })
                })
                .collect();
            out.insert(saga_id, seen);
        }
        out
    }

    /// Stops following.
    pub async fn stop(self) {
        self.running.stop().await;
    }
}
