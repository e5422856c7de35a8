//! [`GatewayContexts`]: the gateway's [`ContextSource`] — who we are, our
//! keys and our policy for each saga (DESIGN.md §3.3: each party has a saga
//! key and one escrow key per leg).
//!
//! The gateway holds one saga key and one escrow key per chain; a saga's
//! payment and delivery escrow keys are those of its legs' chains. The
//! driver asks for a context before a saga's first turn, when its log is
//! still empty, so the services that create sagas (a swap we start, a
//! proposal we receive) announce the terms first ([`GatewayContexts::expect`]);
//! after a restart the chains are read from the log's `TermsProposed`.
//! The buyer's preimage `s` is the saga's secret `preimage` in the log's
//! `secrets` (stored before the start turn).
//!
//! # Layout
//! - [`OwnKeys`], [`PREIMAGE_SECRET`], [`GatewayContexts`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bsv_format::keys::{PrivateKey, PublicKey};
use saga_core::policy::Policy;
use saga_core::saga::{Event, SagaContext, SagaKeys};
use saga_core::terms::{Role, SagaId, Terms};
use saga_runtime::log::EventLog;
use saga_runtime::ports::{ContextError, ContextSource};

use super::lookup::saga_terms;

/// Name of the buyer's preimage in the log's `secrets` (32 bytes).
pub const PREIMAGE_SECRET: &str = "preimage";

/// Our gateway's private keys. `Debug` names the chains only.
#[derive(Clone)]
pub struct OwnKeys {
    /// Signs terms and tokens.
    pub saga_key: PrivateKey,
    /// Our escrow key on each chain (chain id → key).
    pub escrow_keys: BTreeMap<String, PrivateKey>,
}

impl fmt::Debug for OwnKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnKeys")
            .field("chains", &self.escrow_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl OwnKeys {
    /// Our escrow public key on `chain_id`, if we have one.
    pub fn escrow_public(&self, chain_id: &str) -> Option<PublicKey> {
        self.escrow_keys.get(chain_id).map(PrivateKey::public_key)
    }
}

/// The gateway's [`ContextSource`] (module docs).
pub struct GatewayContexts {
    own_spiffe_id: String,
    keys: OwnKeys,
    policy: Arc<Policy>,
    log: Arc<dyn EventLog<Event>>,
    /// Leg chains (payment, delivery) of sagas whose terms are not in the log yet.
    expected: Mutex<HashMap<SagaId, (String, String)>>,
}

impl fmt::Debug for GatewayContexts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayContexts")
            .field("own_spiffe_id", &self.own_spiffe_id)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl GatewayContexts {
    /// Contexts for gateway `own_spiffe_id` with `keys` and `policy`,
    /// reading terms and preimages from `log`.
    pub fn new(
        own_spiffe_id: String,
        keys: OwnKeys,
        policy: Arc<Policy>,
        log: Arc<dyn EventLog<Event>>,
    ) -> GatewayContexts {
        GatewayContexts {
            own_spiffe_id,
            keys,
            policy,
            log,
            expected: Mutex::new(HashMap::new()),
        }
    }

    /// Our SPIFFE ID.
    pub fn own_spiffe_id(&self) -> &str {
        &self.own_spiffe_id
    }

    /// Our keys.
    pub fn keys(&self) -> &OwnKeys {
        &self.keys
    }

    /// Our policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Announces the terms of a saga about to be created, so its first turn
    /// finds its legs' chains.
    pub fn expect(&self, terms: &Terms) {
        if let Ok(mut e) = self.expected.lock() {
            e.insert(
                terms.saga_id,
                (
                    terms.payment.chain_id.clone(),
                    terms.delivery.chain_id.clone(),
                ),
            );
        }
    }

    async fn chains(&self, saga_id: SagaId) -> Result<(String, String), ContextError> {
        let err = |detail: String| ContextError { saga_id, detail };
        if let Some(t) = saga_terms(self.log.as_ref(), &saga_id)
            .await
            .map_err(|e| err(e.to_string()))?
        {
            return Ok((t.terms.payment.chain_id, t.terms.delivery.chain_id));
        }
        self.expected
            .lock()
            .ok()
            .and_then(|e| e.get(&saga_id).cloned())
            .ok_or_else(|| err("no terms are known for this saga".into()))
    }

    fn escrow_key(&self, saga_id: SagaId, chain_id: &str) -> Result<PrivateKey, ContextError> {
        self.keys
            .escrow_keys
            .get(chain_id)
            .copied()
            .ok_or_else(|| ContextError {
                saga_id,
                detail: format!("no escrow key for chain {chain_id}"),
            })
    }
}

#[async_trait]
impl ContextSource for GatewayContexts {
    async fn context(&self, saga_id: SagaId, role: Role) -> Result<SagaContext, ContextError> {
        let (payment, delivery) = self.chains(saga_id).await?;
        let preimage = match role {
            Role::Seller => None,
            Role::Buyer => {
                let stored = self
                    .log
                    .secret(&saga_id, PREIMAGE_SECRET)
                    .await
                    .map_err(|e| ContextError {
                        saga_id,
                        detail: e.to_string(),
                    })?;
                let bytes: [u8; 32] = stored
                    .as_ref()
                    .and_then(|s| s.as_bytes().try_into().ok())
                    .ok_or_else(|| ContextError {
                        saga_id,
                        detail: "no 32-byte preimage is stored for this saga".into(),
                    })?;
                Some(bytes)
            }
        };
        Ok(SagaContext {
            role,
            own_spiffe_id: self.own_spiffe_id.clone(),
            keys: SagaKeys {
                saga_key: self.keys.saga_key,
                payment_escrow_key: self.escrow_key(saga_id, &payment)?,
                delivery_escrow_key: self.escrow_key(saga_id, &delivery)?,
                preimage,
            },
            policy: self.policy.clone(),
        })
    }
}
