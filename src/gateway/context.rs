//! The gateway's [`ContextSource`]: a saga's keys and policy from the
//! gateway configuration and the store's `secrets` tree.
//!
//! Our escrow key on a leg is our wallet key on that leg's chain
//! (docs/operators.md); the saga key is the gateway's; the buyer's preimage
//! `s` is the saga's secret `preimage` (32 bytes), written to the store
//! before the saga's first turn ([`PREIMAGE_SECRET`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::keys::PrivateKey;
use saga_core::policy::Policy;
use saga_core::saga::{SagaContext, SagaKeys};
use saga_core::terms::{Role, SagaId, Terms};
use saga_runtime::log::EventLog;
use saga_runtime::ports::{ContextError, ContextSource};

use saga_core::saga::Event;

/// The name of the buyer's preimage in the `secrets` tree.
pub const PREIMAGE_SECRET: &str = "preimage";

/// Keys and policy of one gateway.
pub struct GatewayContexts {
    own_spiffe_id: String,
    saga_key: PrivateKey,
    wallet_keys: BTreeMap<String, PrivateKey>,
    policy: Arc<Policy>,
    log: Arc<dyn EventLog<Event>>,
}

impl GatewayContexts {
    /// A source over our identity, keys (saga key; wallet key per chain id),
    /// policy and store.
    pub fn new(
        own_spiffe_id: String,
        saga_key: PrivateKey,
        wallet_keys: BTreeMap<String, PrivateKey>,
        policy: Arc<Policy>,
        log: Arc<dyn EventLog<Event>>,
    ) -> GatewayContexts {
        GatewayContexts {
            own_spiffe_id,
            saga_key,
            wallet_keys,
            policy,
            log,
        }
    }

    fn key(&self, saga_id: SagaId, chain_id: &str) -> Result<PrivateKey, ContextError> {
        self.wallet_keys
            .get(chain_id)
            .copied()
            .ok_or_else(|| ContextError {
                saga_id,
                detail: format!("no wallet key for chain {chain_id}"),
            })
    }
}

impl std::fmt::Debug for GatewayContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayContexts")
            .field("own_spiffe_id", &self.own_spiffe_id)
            .field("chains", &self.wallet_keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ContextSource for GatewayContexts {
    async fn context(
        &self,
        saga_id: SagaId,
        role: Role,
        terms: &Terms,
    ) -> Result<SagaContext, ContextError> {
        let preimage = match role {
            Role::Seller => None,
            Role::Buyer => {
                let stored = self
                    .log
                    .secret(&saga_id, PREIMAGE_SECRET)
                    .await
                    .map_err(|e| ContextError {
                        saga_id,
                        detail: format!("reading the preimage: {e}"),
                    })?
                    .ok_or_else(|| ContextError {
                        saga_id,
                        detail: "the buyer's preimage is not in the store".into(),
                    })?;
                let s: [u8; 32] = stored.as_bytes().try_into().map_err(|_| ContextError {
                    saga_id,
                    detail: format!(
                        "the stored preimage is {} bytes, not 32",
                        stored.as_bytes().len()
                    ),
                })?;
                Some(s)
            }
        };
        Ok(SagaContext {
            role,
            own_spiffe_id: self.own_spiffe_id.clone(),
            keys: SagaKeys {
                saga_key: self.saga_key,
                payment_escrow_key: self.key(saga_id, &terms.payment.chain_id)?,
                delivery_escrow_key: self.key(saga_id, &terms.delivery.chain_id)?,
                preimage,
            },
            policy: self.policy.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::{Height, UnixTime};
    use saga_runtime::log::{MemLog, SecretBytes};
    use saga_testkit::fixtures::{self, key, CHAIN_D, CHAIN_P, PREIMAGE};

    fn source(log: Arc<MemLog<Event>>) -> GatewayContexts {
        GatewayContexts::new(
            fixtures::BUYER.into(),
            key(1),
            BTreeMap::from([(CHAIN_P.to_string(), key(2)), (CHAIN_D.to_string(), key(3))]),
            fixtures::policy(),
            log,
        )
    }

    fn saga() -> (SagaId, Terms) {
        let terms = fixtures::terms(UnixTime(1_700_000_000), Height(100), Height(200), false);
        (terms.saga_id, terms)
    }

    #[tokio::test]
    async fn escrow_keys_are_the_wallet_keys_of_each_legs_chain() {
        let log = Arc::new(MemLog::new());
        let (id, terms) = saga();
        log.put_secret(&id, PREIMAGE_SECRET, SecretBytes::new(PREIMAGE.to_vec()))
            .await
            .unwrap();
        let ctx = source(log.clone())
            .context(id, Role::Buyer, &terms)
            .await
            .unwrap();
        assert_eq!(ctx.keys.payment_escrow_key, key(2));
        assert_eq!(ctx.keys.delivery_escrow_key, key(3));
        assert_eq!(ctx.keys.preimage, Some(PREIMAGE));
        let seller = source(log).context(id, Role::Seller, &terms).await.unwrap();
        assert_eq!(seller.keys.preimage, None);
    }

    #[tokio::test]
    async fn a_missing_or_malformed_preimage_or_unknown_chain_is_an_error() {
        let log = Arc::new(MemLog::new());
        let (id, terms) = saga();
        let e = source(log.clone())
            .context(id, Role::Buyer, &terms)
            .await
            .unwrap_err();
        assert_eq!(e.detail, "the buyer's preimage is not in the store");
        log.put_secret(&id, PREIMAGE_SECRET, SecretBytes::new(vec![1; 31]))
            .await
            .unwrap();
        let e = source(log.clone())
            .context(id, Role::Buyer, &terms)
            .await
            .unwrap_err();
        assert_eq!(e.detail, "the stored preimage is 31 bytes, not 32");
        let mut other = terms.clone();
        other.delivery.chain_id = "chain-x".into();
        let e = source(log)
            .context(id, Role::Seller, &other)
            .await
            .unwrap_err();
        assert_eq!(e.detail, "no wallet key for chain chain-x");
    }
}
