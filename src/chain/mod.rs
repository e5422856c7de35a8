//! HTTP clients for the chain ports of `saga-runtime` (DESIGN.md §6): they
//! speak the public ARC, Block Headers Service and WhatsOnChain-style APIs,
//! so a gateway can point at a real network or at `escrowd chainsim`.
//!
//! All four share one HTTP stack: reqwest with rustls on the *ring*
//! provider (aws-lc-rs never enters the build), a per-request timeout, a cap
//! on response bodies (a hostile or broken service cannot make us allocate
//! more), and [`RetryPolicy`]: transient faults (timeouts, connection errors,
//! 5xx, 408, 429, ARC 469) are retried with capped exponential backoff;
//! anything else is answered at once. Backoff has no jitter: one gateway
//! talks to each service, so there is no herd to spread, and tests stay
//! deterministic.
//!
//! # Layout
//! - [`RetryPolicy`], [`ChainConfigError`]; the shared request plumbing (private).
//! - [`arc`]: [`ArcClient`], a `Broadcaster` over ARC (`bsv-formats.md` §10).
//! - [`headers`]: [`HeadersClient`], a `ChainTracker` over the Block Headers
//!   Service (§11), with its cache and injected clock.
//! - [`spend`]: [`SpendClient`], a `SpendWatcher` over `GET …/tx/{txid}/{vout}/spent`.
//! - [`tx`]: [`TxClient`], a `TransactionSource` over `GET …/tx/{txid}/hex`.

pub mod arc;
pub mod headers;
pub mod spend;
pub mod tx;

use std::future::Future;
use std::time::Duration;

use reqwest::header::HeaderValue;
use saga_runtime::ServiceFault;

pub use arc::{ArcClient, ArcConfig, WaitFor};
pub use headers::{
    BlockHeader, HeadersClient, HeadersConfig, ManualClock, MonotonicClock, SystemClock,
};
pub use spend::{SpendClient, SpendConfig};
pub use tx::{TxClient, TxConfig};

/// How often and how patiently a client repeats a request that failed
/// transiently. Attempt `n` (1-based) is followed, if it fails transiently
/// and `n < attempts`, by a pause of [`delay(n - 1)`](Self::delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total requests, first one included (at least 1).
    pub attempts: u32,
    /// Pause after the first failure; doubles after each further one.
    pub base: Duration,
    /// Upper bound of any pause.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The pause after the `retry`-th failure (0-based): `base · 2^retry`,
    /// at most `cap`.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    fn check(&self) -> Result<(), ChainConfigError> {
        if self.attempts == 0 {
            return Err(ChainConfigError::NoAttempts);
        }
        if self.base > self.cap {
            return Err(ChainConfigError::BackoffAboveCap {
                base: self.base,
                cap: self.cap,
            });
        }
        Ok(())
    }
}

impl Default for RetryPolicy {
    /// 4 attempts; pauses of 250 ms, 500 ms, 1 s (cap 4 s).
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(250),
            cap: Duration::from_secs(4),
        }
    }
}

/// A client configuration that cannot work; found when the client is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainConfigError {
    /// The base URL does not parse or is not `http`/`https`.
    #[error("base URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key cannot be sent in an HTTP header (control characters).
    #[error("the API key contains characters not allowed in an HTTP header")]
    BadApiKey,
    /// `RetryPolicy::attempts` is 0.
    #[error("retry policy: attempts must be at least 1")]
    NoAttempts,
    /// `RetryPolicy::base` exceeds `cap`.
    #[error("retry policy: base {base:?} exceeds cap {cap:?}")]
    BackoffAboveCap {
        /// The base pause.
        base: Duration,
        /// The cap.
        cap: Duration,
    },
    /// ARC `X-MaxTimeout` outside 1..=30 seconds (ARC answers 400 above 30).
    #[error("X-MaxTimeout {secs} s is outside 1..=30")]
    MaxTimeoutOutOfRange {
        /// The configured value, seconds.
        secs: u32,
    },
    /// The request timeout would cut ARC's `X-MaxTimeout` wait short.
    #[error("request timeout {timeout:?} must exceed X-MaxTimeout {max_timeout_secs} s")]
    TimeoutBelowMaxTimeout {
        /// The request timeout.
        timeout: Duration,
        /// ARC's wait, seconds.
        max_timeout_secs: u32,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("HTTP client: {detail}")]
    HttpClient {
        /// reqwest's message.
        detail: String,
    },
}

/// Builds the shared HTTP client: rustls on ring, webpki roots.
fn http_client() -> Result<reqwest::Client, ChainConfigError> {
    // reqwest's `-no-provider` TLS feature uses the process-wide rustls
    // provider; install ring unless one is installed already (then this
    // returns Err and the existing one — also ring, the only one we link —
    // stays).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .map_err(|e| ChainConfigError::HttpClient {
            detail: error_chain(&e),
        })
}

/// Checks a base URL and returns it without a trailing `/`, ready for paths
/// to be appended.
fn base_url(url: &str) -> Result<String, ChainConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| ChainConfigError::BadUrl {
        url: url.into(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ChainConfigError::BadUrl {
            url: url.into(),
            reason: "scheme must be http or https".into(),
        });
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ChainConfigError::BadUrl {
            url: url.into(),
            reason: "no query or fragment allowed".into(),
        });
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `Authorization: Bearer <key>`, marked sensitive (never logged by reqwest).
fn bearer(api_key: Option<&str>) -> Result<Option<HeaderValue>, ChainConfigError> {
    api_key
        .map(|key| {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ChainConfigError::BadApiKey)?;
            value.set_sensitive(true);
            Ok(value)
        })
        .transpose()
}

/// An HTTP answer: status and the whole body.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// Why a request produced no [`Reply`].
enum SendError {
    /// Transient: timeout or connection fault.
    Fault(ServiceFault),
    /// The body exceeded the cap (bytes): the answer is unusable.
    Oversized { limit: usize },
}

/// Sends `request` and reads the body, at most `limit` bytes.
async fn send(request: reqwest::RequestBuilder, limit: usize) -> Result<Reply, SendError> {
    let mut response = request
        .send()
        .await
        .map_err(|e| SendError::Fault(fault_of(&e)))?;
    let status = response.status().as_u16();
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(SendError::Oversized { limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| SendError::Fault(fault_of(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(SendError::Oversized { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply { status, body })
}

fn fault_of(e: &reqwest::Error) -> ServiceFault {
    if e.is_timeout() {
        ServiceFault::Timeout
    } else {
        ServiceFault::Connection {
            detail: error_chain(e),
        }
    }
}

/// An error and its sources, `: `-joined (reqwest's own message omits them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The first 200 characters of a body, for error messages (bodies that are
/// not the expected JSON, such as a proxy's HTML error page).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Whether an HTTP status means "try again later" for the non-ARC services.
fn is_transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

/// One attempt's verdict.
enum Step<T, E> {
    /// Final: answer or permanent error.
    Done(Result<T, E>),
    /// Transient: retry if the policy allows.
    Retry(ServiceFault),
}

/// Runs `attempt` until it is [`Step::Done`] or the policy's attempts are
/// used up; then `exhausted(attempts, last_fault)` is the error.
async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
    exhausted: impl FnOnce(u32, ServiceFault) -> E,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Step<T, E>>,
{
    let mut made = 0u32;
    loop {
        made += 1;
        match attempt().await {
            Step::Done(result) => return result,
            Step::Retry(fault) if made >= policy.attempts => return Err(exhausted(made, fault)),
            Step::Retry(fault) => {
                tracing::debug!(attempt = made, %fault, "transient fault; retrying");
                tokio::time::sleep(policy.delay(made - 1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let delays: Vec<u128> = (0..6).map(|i| p.delay(i).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(40), Duration::from_millis(1000));
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(
            RetryPolicy {
                attempts: 0,
                ..RetryPolicy::default()
            }
            .check(),
            Err(ChainConfigError::NoAttempts)
        );
        let p = RetryPolicy {
            attempts: 1,
            base: Duration::from_secs(2),
            cap: Duration::from_secs(1),
        };
        assert!(matches!(
            p.check(),
            Err(ChainConfigError::BackoffAboveCap { .. })
        ));
        assert!(matches!(
            base_url("ftp://x"),
            Err(ChainConfigError::BadUrl { .. })
        ));
        assert!(matches!(
            base_url("not a url"),
            Err(ChainConfigError::BadUrl { .. })
        ));
        assert!(matches!(
            base_url("http://x/?q=1"),
            Err(ChainConfigError::BadUrl { .. })
        ));
        assert_eq!(
            base_url("http://127.0.0.1:8080/v1/"),
            Ok("http://127.0.0.1:8080/v1".into())
        );
        assert_eq!(bearer(Some("bad\nkey")), Err(ChainConfigError::BadApiKey));
        assert!(bearer(Some("k")).is_ok_and(|v| v.is_some_and(|v| v.is_sensitive())));
    }

    #[test]
    fn excerpts_are_short() {
        assert_eq!(
            excerpt(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
    }
}
