//! [`TxClient`]: a `TransactionSource` over a WhatsOnChain-style raw
//! transaction endpoint, `GET {base}/tx/{txid}/hex`.
//!
//! | answer | meaning |
//! | --- | --- |
//! | 200, body the raw transaction as hex (surrounding whitespace ignored) | the transaction; its txid must be the one asked for |
//! | 404 | the service does not know the transaction |
//! | 408, 429, 5xx, timeout, connection fault | retried, then `TransactionSourceError::Unavailable` |
//! | any other status | `TransactionSourceError::Refused` |
//!
//! The base path is configurable as for [`super::SpendClient`]: chainsim
//! serves the endpoint at `/v1/tx/{txid}/hex`, so its base is
//! `http://HOST:PORT/v1`; WhatsOnChain's is
//! `https://api.whatsonchain.com/v1/bsv/main` (or `/test`).
//!
//! The body cap follows from the largest transaction the chain accepts
//! ([`TxConfig::max_tx_bytes`]): the transactions fetched are the
//! counterparty's claims of our escrow outputs, and a claim too large to
//! fetch would hide the preimage `s` from us. The cap must therefore be at
//! least the chain's transaction size limit, not a guess at a claim's size.
//!
//! # Layout
//! - [`TxConfig`], [`TxClient`] and its `TransactionSource` impl.

use std::time::Duration;

use async_trait::async_trait;
use bsv_format::{Transaction, Txid};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use saga_runtime::ports::{TransactionSource, TransactionSourceError};
use saga_runtime::ServiceFault;

use super::{
    base_url, bearer, excerpt, http_client, is_transient_status, send, with_retries,
    ChainConfigError, RetryPolicy, SendError, Step,
};

/// The default [`TxConfig::max_tx_bytes`]: 10,000,000 bytes, ARC's and the
/// node's default `maxtxsizepolicy` (and chainsim's limit).
pub const DEFAULT_MAX_TX_BYTES: usize = 10_000_000;

/// Where and how to reach the raw-transaction endpoint. `Debug` shows no API key.
#[derive(Clone)]
pub struct TxConfig {
    /// Base URL including the path prefix under which `/tx/{txid}/hex`
    /// lives: `http://HOST:PORT/v1` for chainsim.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries of transient faults.
    pub retry: RetryPolicy,
    /// Largest transaction accepted, bytes (the body may be twice this, as
    /// hex, plus whitespace). At least the chain's transaction size limit.
    pub max_tx_bytes: usize,
}

impl std::fmt::Debug for TxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("max_tx_bytes", &self.max_tx_bytes)
            .finish()
    }
}

impl TxConfig {
    /// Defaults: no key, 30 s timeout (a large transaction is 20 MB of
    /// hex), [`RetryPolicy::default`], [`DEFAULT_MAX_TX_BYTES`].
    pub fn new(base_url: impl Into<String>) -> Self {
        TxConfig {
            base_url: base_url.into(),
            api_key: None,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            max_tx_bytes: DEFAULT_MAX_TX_BYTES,
        }
    }
}

/// A [`TransactionSource`] over the raw-transaction endpoint.
#[derive(Debug, Clone)]
pub struct TxClient {
    http: reqwest::Client,
    base: String,
    auth: Option<HeaderValue>,
    config: TxConfig,
}

impl TxClient {
    /// Checks `config` and builds the client (no request is made).
    ///
    /// # Errors
    /// [`ChainConfigError`]: bad URL, API key or retry policy, TLS set-up.
    pub fn new(config: TxConfig) -> Result<TxClient, ChainConfigError> {
        config.retry.check()?;
        Ok(TxClient {
            http: http_client()?,
            base: base_url(&config.base_url)?,
            auth: bearer(config.api_key.as_deref())?,
            config,
        })
    }

    /// The body cap, bytes: hex of the largest transaction and some
    /// whitespace.
    fn body_limit(&self) -> usize {
        self.config
            .max_tx_bytes
            .saturating_mul(2)
            .saturating_add(64)
    }
}

#[async_trait]
impl TransactionSource for TxClient {
    async fn transaction(
        &self,
        txid: &Txid,
    ) -> Result<Option<Transaction>, TransactionSourceError> {
        let path = &format!("/tx/{txid}/hex");
        let url = &format!("{}{path}", self.base);
        let limit = self.body_limit();
        with_retries(
            &self.config.retry,
            || async move {
                let mut req = self.http.get(url).timeout(self.config.request_timeout);
                if let Some(auth) = &self.auth {
                    req = req.header(AUTHORIZATION, auth.clone());
                }
                let reply = match send(req, limit).await {
                    Ok(reply) => reply,
                    Err(SendError::Fault(fault)) => return Step::Retry(fault),
                    Err(SendError::Oversized { limit }) => {
                        return Step::Done(Err(TransactionSourceError::MalformedResponse {
                            detail: format!("GET {path}: response body exceeds {limit} bytes"),
                        }))
                    }
                };
                match reply.status {
                    200..=299 => {
                        Step::Done(decode(txid, &reply.body).map(Some).map_err(|e| match e {
                            Decoded::Wrong(got) => {
                                TransactionSourceError::WrongTransaction { asked: *txid, got }
                            }
                            Decoded::Malformed(detail) => {
                                TransactionSourceError::MalformedResponse {
                                    detail: format!("GET {path}: {detail}"),
                                }
                            }
                        }))
                    }
                    404 => Step::Done(Ok(None)),
                    status if is_transient_status(status) => Step::Retry(ServiceFault::Http {
                        status,
                        detail: excerpt(&reply.body),
                    }),
                    status => Step::Done(Err(TransactionSourceError::Refused {
                        status,
                        detail: excerpt(&reply.body),
                    })),
                }
            },
            |attempts, last| TransactionSourceError::Unavailable { attempts, last },
        )
        .await
    }
}

/// Why a 200 body is not the transaction asked for.
enum Decoded {
    /// Not hex of one whole transaction.
    Malformed(String),
    /// A transaction, with this other txid.
    Wrong(Txid),
}

fn decode(asked: &Txid, body: &[u8]) -> Result<Transaction, Decoded> {
    let text = std::str::from_utf8(body)
        .map_err(|e| Decoded::Malformed(format!("body is not UTF-8 text: {e}")))?;
    let tx = Transaction::from_hex(text.trim())
        .map_err(|e| Decoded::Malformed(format!("body is not a raw transaction in hex: {e}")))?;
    let got = tx.txid();
    if got == *asked {
        Ok(tx)
    } else {
        Err(Decoded::Wrong(got))
    }
}
