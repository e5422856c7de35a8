//! [`SpendClient`]: a `SpendWatcher` over a WhatsOnChain-style spent-output
//! endpoint, `GET {base}/tx/{txid}/{vout}/spent`.
//!
//! | answer | meaning |
//! | --- | --- |
//! | 200 `{"txid": "<display hex>", "vin": n}` (other fields ignored, e.g. WhatsOnChain's `status`) | spent by input `vin` of `txid` |
//! | 404 | no spend seen |
//! | 408, 429, 5xx, timeout, connection fault | retried, then `SpendWatchError::Unavailable` |
//! | any other status | `SpendWatchError::Refused` |
//!
//! The base path is configurable because services put the endpoint under
//! different prefixes: chainsim serves it at `/v1/tx/{txid}/{vout}/spent`
//! (DESIGN.md §6), so its base is `http://HOST:PORT/v1`; WhatsOnChain's is
//! `https://api.whatsonchain.com/v1/bsv/main` (or `/test`).
//!
//! What "spent" means, and what callers may rely on, is the contract of
//! `saga_runtime::SpendWatcher`; this client inherits the service's
//! semantics (WhatsOnChain and chainsim both report mempool spends).
//!
//! # Layout
//! - [`SpendConfig`], [`SpendClient`] and its `SpendWatcher` impl.

use std::time::Duration;

use async_trait::async_trait;
use bsv_format::{Outpoint, Txid};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use saga_runtime::{ServiceFault, SpendWatchError, SpendWatcher, SpendingInput};
use serde::Deserialize;

use super::{
    base_url, bearer, excerpt, http_client, is_transient_status, send, with_retries,
    ChainConfigError, RetryPolicy, SendError, Step,
};

/// Largest response body read, bytes.
const MAX_BODY_BYTES: usize = 64 << 10;

/// Where and how to reach the spent-output endpoint. `Debug` shows no API key.
#[derive(Clone)]
pub struct SpendConfig {
    /// Base URL including the path prefix under which `/tx/{txid}/{vout}/spent`
    /// lives: `http://HOST:PORT/v1` for chainsim.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of transient faults.
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for SpendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl SpendConfig {
    /// Defaults: no key, 10 s timeout, [`RetryPolicy::default`].
    pub fn new(base_url: impl Into<String>) -> Self {
        SpendConfig {
            base_url: base_url.into(),
            api_key: None,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// A [`SpendWatcher`] over the spent-output endpoint.
#[derive(Debug, Clone)]
pub struct SpendClient {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
    config: SpendConfig,
}

impl SpendClient {
    /// Checks `config` and builds the client (no request is made).
    ///
    /// # Errors
    /// [`ChainConfigError`]: bad URL, API key or retry policy, TLS set-up.
    pub fn new(config: SpendConfig) -> Result<SpendClient, ChainConfigError> {
        config.retry.check()?;
        Ok(SpendClient {
            http: http_client()?,
            base: base_url(&config.base_url)?,
            auth: bearer(config.api_key.as_deref())?,
            config,
        })
    }
}

#[derive(Deserialize)]
struct WireSpend {
    txid: String,
    vin: u32,
}

#[async_trait]
impl SpendWatcher for SpendClient {
    async fn spent_by(
        &self,
        outpoint: &Outpoint,
    ) -> Result<Option<SpendingInput>, SpendWatchError> {
        let path = &format!("/tx/{}/{}/spent", outpoint.txid, outpoint.vout);
        let url = &format!("{}{path}", self.base);
        with_retries(
            &self.config.retry,
            || async move {
                let mut req = self.http.get(url).timeout(self.config.request_timeout);
                if let Some(auth) = &self.auth {
                    req = req.header(AUTHORIZATION, auth.clone());
                }
                let reply = match send(req, MAX_BODY_BYTES).await {
                    Ok(reply) => reply,
                    Err(SendError::Fault(fault)) => return Step::Retry(fault),
                    Err(SendError::Oversized { limit }) => {
                        return Step::Done(Err(SpendWatchError::MalformedResponse {
                            detail: format!("GET {path}: response body exceeds {limit} bytes"),
                        }))
                    }
                };
                match reply.status {
                    200..=299 => Step::Done(decode(&reply.body).map(Some).map_err(|e| {
                        SpendWatchError::MalformedResponse {
                            detail: format!("GET {path}: {e}"),
                        }
                    })),
                    404 => Step::Done(Ok(None)),
                    status if is_transient_status(status) => Step::Retry(ServiceFault::Http {
                        status,
                        detail: excerpt(&reply.body),
                    }),
                    status => Step::Done(Err(SpendWatchError::Refused {
                        status,
                        detail: excerpt(&reply.body),
                    })),
                }
            },
            |attempts, last| SpendWatchError::Unavailable { attempts, last },
        )
        .await
    }
}

fn decode(body: &[u8]) -> Result<SpendingInput, String> {
    let wire: WireSpend = serde_json::from_slice(body)
        .map_err(|e| format!("not a {{\"txid\", \"vin\"}} object: {e}"))?;
    let txid =
        Txid::from_display_hex(&wire.txid).map_err(|e| format!("txid {:?}: {e}", wire.txid))?;
    Ok(SpendingInput {
        txid,
        vin: wire.vin,
    })
}
