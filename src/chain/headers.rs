//! [`HeadersClient`]: a `ChainTracker` over the Block Headers Service API
//! (`bsv-formats.md` §11; go-sdk `headers_client`, ts-sdk
//! `BlockHeadersService`), which `escrowd chainsim` also serves.
//!
//! | call | request | answer |
//! | --- | --- | --- |
//! | `confirm_roots` | `POST /api/v1/chain/merkleroot/verify` `[{"merkleRoot", "blockHeight"}, …]` | `{"confirmationState", "confirmations": [{"blockHash", "blockHeight", "merkleRoot", "confirmation"}]}` |
//! | `current_height` | `GET /api/v1/chain/tip/longest` | `{"header": {…}, "state", "height"}` |
//! | `header_by_height` | `GET /api/v1/chain/header/byHeight?height=N` | a header object, or an array of them |
//!
//! Merkle roots are sent and read as display hex (reversed). Only
//! `CONFIRMED` confirms: a claim is confirmed when its own entry in
//! `confirmations` says so, or, if the service lists no entry for it, when the
//! overall `confirmationState` does. Some BHS documentation shows the answer
//! wrapped in a one-element array; that form is read too.
//!
//! # Cache
//! - **Confirmed roots** are remembered (at most
//!   [`HeadersConfig::max_cached_roots`], lowest heights evicted first) and
//!   answered without a request — but only roots at least
//!   [`HeadersConfig::min_cache_depth`] blocks deep under the last tip seen,
//!   since a shallower block can still be reorganised away and a cached
//!   "confirmed" would then outlive it. Negative answers are never cached.
//! - **The tip** is reused for [`HeadersConfig::tip_ttl`], measured on an
//!   injected [`MonotonicClock`] ([`SystemClock`] in production,
//!   [`ManualClock`] in tests).
//!
//! # Layout
//! - [`MonotonicClock`], [`SystemClock`], [`ManualClock`].
//! - [`HeadersConfig`], [`BlockHeader`], [`HeadersClient`] and its
//!   `ChainTracker` impl.
//! - Reading answers (private).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bsv_format::spv::RootClaim;
use bsv_format::Hash256;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use saga_runtime::{ChainTracker, ServiceFault, TrackerError};
use serde::Deserialize;

use super::{
    base_url, bearer, excerpt, http_client, is_transient_status, send, with_retries,
    ChainConfigError, Reply, RetryPolicy, SendError, Step,
};

/// Largest response body read, bytes.
const MAX_BODY_BYTES: usize = 1 << 20;

/// A monotonic time source: time elapsed since an arbitrary origin. Injected
/// so tests can move time by hand.
pub trait MonotonicClock: Send + Sync {
    /// Time since the clock's origin.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock (`std::time::Instant`).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl MonotonicClock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock at 0.
    pub fn new() -> Self {
        ManualClock::default()
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update with a closure that always returns Some cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(by))
            });
    }
}

impl MonotonicClock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// Where and how to reach a Block Headers Service, and how to cache.
/// `Debug` shows no API key.
#[derive(Clone)]
pub struct HeadersConfig {
    /// Base URL, e.g. `https://headers.example` or chainsim's
    /// `http://127.0.0.1:PORT`; `/api/v1/chain/…` is appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of transient faults.
    pub retry: RetryPolicy,
    /// How long a fetched tip height is reused.
    pub tip_ttl: Duration,
    /// A confirmed root is cached only if its block is at least this many
    /// blocks deep (tip − height + 1) under the last tip seen.
    pub min_cache_depth: u32,
    /// Most confirmed roots remembered.
    pub max_cached_roots: usize,
}

impl std::fmt::Debug for HeadersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadersConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("tip_ttl", &self.tip_ttl)
            .field("min_cache_depth", &self.min_cache_depth)
            .field("max_cached_roots", &self.max_cached_roots)
            .finish()
    }
}

impl HeadersConfig {
    /// Defaults: no key, 10 s timeout, [`RetryPolicy::default`], tip reused
    /// for 5 s, roots cached from 6 blocks deep, up to 4,096 of them.
    pub fn new(base_url: impl Into<String>) -> Self {
        HeadersConfig {
            base_url: base_url.into(),
            api_key: None,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            tip_ttl: Duration::from_secs(5),
            min_cache_depth: 6,
            max_cached_roots: 4096,
        }
    }
}

/// A block header as the Block Headers Service reports it. Hashes are
/// internal byte order (the JSON carries display hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block height.
    pub height: u32,
    /// Block hash.
    pub hash: Hash256,
    /// Header version.
    pub version: u32,
    /// Merkle root of the block's transactions.
    pub merkle_root: Hash256,
    /// Header timestamp, UNIX seconds (`creationTimestamp`).
    pub timestamp: u32,
    /// Compact difficulty target (`difficultyTarget`, nBits).
    pub bits: u32,
    /// Nonce.
    pub nonce: u32,
    /// Hash of the previous block (`prevBlockHash`).
    pub prev_block_hash: Hash256,
}

#[derive(Debug, Default)]
struct Cache {
    roots: BTreeSet<RootClaim>,
    /// Last tip height seen and when (clock time).
    tip: Option<(u32, Duration)>,
}

/// A [`ChainTracker`] over the Block Headers Service, with a small cache.
/// Cheap to share (`Arc<HeadersClient>`).
pub struct HeadersClient {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
    config: HeadersConfig,
    clock: Arc<dyn MonotonicClock>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for HeadersClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadersClient")
            .field("base", &self.base)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HeadersClient {
    /// Checks `config` and builds the client on the system clock.
    ///
    /// # Errors
    /// [`ChainConfigError`]: bad URL, API key or retry policy, TLS set-up.
    pub fn new(config: HeadersConfig) -> Result<HeadersClient, ChainConfigError> {
        Self::with_clock(config, Arc::new(SystemClock::default()))
    }

    /// As [`new`](Self::new), with the clock that times the tip cache.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_clock(
        config: HeadersConfig,
        clock: Arc<dyn MonotonicClock>,
    ) -> Result<HeadersClient, ChainConfigError> {
        config.retry.check()?;
        Ok(HeadersClient {
            http: http_client()?,
            base: base_url(&config.base_url)?,
            auth: bearer(config.api_key.as_deref())?,
            config,
            clock,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The header of the best chain's block at `height`; `Ok(None)` if the
    /// service has none (404 or an empty list). When the service lists
    /// several headers for the height (competing branches), the first is
    /// taken, as go-sdk does without a state lookup.
    ///
    /// # Errors
    /// [`TrackerError`] when the service cannot answer or answers nonsense
    /// (including a header for another height).
    pub async fn header_by_height(&self, height: u32) -> Result<Option<BlockHeader>, TrackerError> {
        let path = &format!("/api/v1/chain/header/byHeight?height={height}");
        let reply = self.get(path, true).await?;
        let Some(reply) = reply else { return Ok(None) };
        let headers: Vec<WireHeader> =
            match serde_json::from_slice::<OneOrMany<WireHeader>>(&reply.body) {
                Ok(OneOrMany::One(h)) => vec![h],
                Ok(OneOrMany::Many(hs)) => hs,
                Err(e) => {
                    return Err(malformed(format!(
                        "GET {path}: not a header object or array: {e}"
                    )))
                }
            };
        let Some(wire) = headers.into_iter().next() else {
            return Ok(None);
        };
        let header = wire
            .decode(height)
            .map_err(|e| malformed(format!("GET {path}: {e}")))?;
        Ok(Some(header))
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // The cache holds no invariant a panicking holder could break
        // half-way (single inserts and assignments), so a poisoned lock is
        // still usable.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.config.request_timeout);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        req
    }

    /// GET with retries; `Ok(None)` for 404 when `allow_404`.
    async fn get(&self, path: &str, allow_404: bool) -> Result<Option<Reply>, TrackerError> {
        with_retries(
            &self.config.retry,
            || async move {
                classify(
                    send(self.request(reqwest::Method::GET, path), MAX_BODY_BYTES).await,
                    allow_404,
                )
            },
            |attempts, last| TrackerError::Unavailable { attempts, last },
        )
        .await
    }

    /// Asks the service about `claims` (all uncached) in one request.
    async fn verify_remote(&self, claims: &[RootClaim]) -> Result<Vec<bool>, TrackerError> {
        let path = "/api/v1/chain/merkleroot/verify";
        let body: Vec<serde_json::Value> = claims
            .iter()
            .map(|c| serde_json::json!({ "merkleRoot": c.root.to_string(), "blockHeight": c.height }))
            .collect();
        let body = &serde_json::Value::Array(body);
        let reply = with_retries(
            &self.config.retry,
            || async move {
                classify(
                    send(
                        self.request(reqwest::Method::POST, path).json(body),
                        MAX_BODY_BYTES,
                    )
                    .await,
                    false,
                )
            },
            |attempts, last| TrackerError::Unavailable { attempts, last },
        )
        .await?
        .ok_or_else(|| malformed(format!("POST {path}: no answer")))?;
        let answer = match serde_json::from_slice::<OneOrMany<WireVerify>>(&reply.body) {
            Ok(OneOrMany::One(v)) => v,
            Ok(OneOrMany::Many(mut vs)) if vs.len() == 1 => vs.remove(0),
            Ok(OneOrMany::Many(vs)) => {
                return Err(malformed(format!(
                    "POST {path}: an array of {} answers, expected one",
                    vs.len()
                )))
            }
            Err(e) => {
                return Err(malformed(format!(
                    "POST {path}: not a confirmation object: {e}"
                )))
            }
        };
        answer
            .answers(claims)
            .map_err(|e| malformed(format!("POST {path}: {e}")))
    }

    /// Remembers confirmed `claims` deep enough under the last tip seen.
    fn remember(&self, claims: &[RootClaim], answers: &[bool]) {
        let mut cache = self.cache();
        let Some((tip, _)) = cache.tip else { return };
        for (claim, _) in claims.iter().zip(answers).filter(|(_, ok)| **ok) {
            let deep_enough = tip
                .checked_sub(claim.height)
                .is_some_and(|d| d + 1 >= self.config.min_cache_depth);
            if !deep_enough || self.config.max_cached_roots == 0 {
                continue;
            }
            cache.roots.insert(*claim);
            while cache.roots.len() > self.config.max_cached_roots {
                cache.roots.pop_first();
            }
        }
    }
}

#[async_trait]
impl ChainTracker for HeadersClient {
    async fn is_valid_root_for_height(
        &self,
        root: &Hash256,
        height: u32,
    ) -> Result<bool, TrackerError> {
        let answers = self
            .confirm_roots(&[RootClaim {
                height,
                root: *root,
            }])
            .await?;
        Ok(answers.first().copied().unwrap_or(false))
    }

    async fn current_height(&self) -> Result<u32, TrackerError> {
        let now = self.clock.now();
        if let Some((height, at)) = self.cache().tip {
            if now.saturating_sub(at) < self.config.tip_ttl {
                return Ok(height);
            }
        }
        let path = "/api/v1/chain/tip/longest";
        let reply = self
            .get(path, false)
            .await?
            .ok_or_else(|| malformed(format!("GET {path}: no answer")))?;
        let tip: WireTip = serde_json::from_slice(&reply.body)
            .map_err(|e| malformed(format!("GET {path}: not a tip object: {e}")))?;
        self.cache().tip = Some((tip.height, self.clock.now()));
        Ok(tip.height)
    }

    /// Cached roots are answered locally; the rest go in one request.
    async fn confirm_roots(&self, claims: &[RootClaim]) -> Result<Vec<bool>, TrackerError> {
        let mut answers: Vec<Option<bool>> = {
            let cache = self.cache();
            claims
                .iter()
                .map(|c| cache.roots.contains(c).then_some(true))
                .collect()
        };
        let mut ask: Vec<RootClaim> = claims
            .iter()
            .zip(&answers)
            .filter(|(_, a)| a.is_none())
            .map(|(c, _)| *c)
            .collect();
        ask.sort();
        ask.dedup();
        if !ask.is_empty() {
            let remote = self.verify_remote(&ask).await?;
            self.remember(&ask, &remote);
            for (claim, answer) in claims.iter().zip(answers.iter_mut()) {
                if answer.is_none() {
                    *answer = ask
                        .binary_search(claim)
                        .ok()
                        .and_then(|i| remote.get(i).copied());
                }
            }
        }
        Ok(answers.into_iter().map(|a| a.unwrap_or(false)).collect())
    }
}

// ---------------------------------------------------------------------------
// Reading answers

fn malformed(detail: String) -> TrackerError {
    TrackerError::MalformedResponse { detail }
}

/// The verdict on one attempt's outcome.
fn classify(sent: Result<Reply, SendError>, allow_404: bool) -> Step<Option<Reply>, TrackerError> {
    match sent {
        Err(SendError::Fault(fault)) => Step::Retry(fault),
        Err(SendError::Oversized { limit }) => Step::Done(Err(malformed(format!(
            "response body exceeds {limit} bytes"
        )))),
        Ok(reply) if (200..300).contains(&reply.status) => Step::Done(Ok(Some(reply))),
        Ok(reply) if reply.status == 404 && allow_404 => Step::Done(Ok(None)),
        Ok(reply) if is_transient_status(reply.status) => Step::Retry(ServiceFault::Http {
            status: reply.status,
            detail: excerpt(&reply.body),
        }),
        Ok(reply) => Step::Done(Err(TrackerError::Refused {
            status: reply.status,
            detail: excerpt(&reply.body),
        })),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireVerify {
    confirmation_state: String,
    #[serde(default)]
    confirmations: Option<Vec<WireConfirmation>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireConfirmation {
    block_height: u32,
    merkle_root: String,
    confirmation: String,
}

impl WireVerify {
    /// `result[i]` answers `claims[i]` (see the module docs for the rule).
    fn answers(&self, claims: &[RootClaim]) -> Result<Vec<bool>, String> {
        let mut listed = Vec::new();
        for c in self.confirmations.iter().flatten() {
            let root = Hash256::from_display_hex(&c.merkle_root)
                .map_err(|e| format!("confirmations: merkleRoot {:?}: {e}", c.merkle_root))?;
            listed.push((
                RootClaim {
                    height: c.block_height,
                    root,
                },
                c.confirmation == "CONFIRMED",
            ));
        }
        let overall = self.confirmation_state == "CONFIRMED";
        Ok(claims
            .iter()
            .map(|claim| {
                listed
                    .iter()
                    .find(|(c, _)| c == claim)
                    .map_or(overall, |(_, ok)| *ok)
            })
            .collect())
    }
}

#[derive(Deserialize)]
struct WireTip {
    height: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHeader {
    height: Option<u32>,
    hash: String,
    version: u32,
    merkle_root: String,
    creation_timestamp: u32,
    difficulty_target: u32,
    nonce: u32,
    prev_block_hash: String,
}

impl WireHeader {
    fn decode(&self, height: u32) -> Result<BlockHeader, String> {
        if let Some(h) = self.height.filter(|h| *h != height) {
            return Err(format!("header is for height {h}, asked for {height}"));
        }
        let hash = |field: &str, text: &str| {
            Hash256::from_display_hex(text).map_err(|e| format!("{field} {text:?}: {e}"))
        };
        Ok(BlockHeader {
            height,
            hash: hash("hash", &self.hash)?,
            version: self.version,
            merkle_root: hash("merkleRoot", &self.merkle_root)?,
            timestamp: self.creation_timestamp,
            bits: self.difficulty_target,
            nonce: self.nonce,
            prev_block_hash: hash("prevBlockHash", &self.prev_block_hash)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "57aab6e6fb1b697174ffb64e062c4728f2ffd33ddcfa02a43b64d8cd29b483b4";

    #[test]
    fn per_claim_entries_win_over_the_overall_state() {
        let root = Hash256::from_display_hex(ROOT).unwrap();
        let other = Hash256([7; 32]);
        let claims = [
            RootClaim {
                height: 813706,
                root,
            },
            RootClaim {
                height: 5,
                root: other,
            },
        ];
        let v: WireVerify = serde_json::from_str(&format!(
            r#"{{"confirmationState":"UNCONFIRMED","confirmations":[{{"blockHash":"","blockHeight":813706,"merkleRoot":"{ROOT}","confirmation":"CONFIRMED"}}]}}"#
        ))
        .unwrap();
        assert_eq!(v.answers(&claims).unwrap(), [true, false]);
        let v: WireVerify = serde_json::from_str(r#"{"confirmationState":"CONFIRMED"}"#).unwrap();
        assert_eq!(v.answers(&claims).unwrap(), [true, true]);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        assert_eq!(c.now(), Duration::ZERO);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now(), Duration::from_millis(1500));
        c.advance(Duration::MAX);
        assert_eq!(c.now(), Duration::from_nanos(u64::MAX));
    }
}
