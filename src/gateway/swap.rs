//! Starting a swap as the buyer: the admin path behind `escrowd swap start`
//! and `escrowd demo` (DESIGN.md §3.3 step 0).
//!
//! The gateway draws the preimage `s` (32 random bytes) and the saga id's
//! random bits, stores `s` as the saga's secret before anything else (so the
//! saga's first turn finds it, and a crash right after leaves nothing
//! behind but an unused secret), builds the terms from the request, the
//! counterparty's pinned keys in the configuration, the policy and the
//! chains' current tips, and submits `Input::Start` with the client's
//! idempotency key. The saga checks the terms against our policy and signs
//! them; the driver proposes them to the seller.
//!
//! # Layout
//! - [`SwapRequest`], [`SwapPorts`], [`start_swap`], [`terms_for`], [`SwapError`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bsv_format::hash::sha256;
use ring::rand::{SecureRandom, SystemRandom};
use saga_core::saga::{Event, Input};
use saga_core::terms::{LegTerms, PartyTerms, Role, SagaId, Terms};
use saga_core::{Height, Satoshis, UnixTime};
use saga_runtime::driver::{Driver, DriverError};
use saga_runtime::log::{EventLog, ReadError, SagaFilter, SecretBytes, SecretError};
use saga_runtime::ports::ChainPorts;

use super::assemble::Gateway;
use super::context::PREIMAGE_SECRET;
use crate::config::GatewayConfig;

/// What the buyer's operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapRequest {
    /// The seller's trust domain (a key of the configuration's `[peers]`).
    pub seller_domain: String,
    /// Chain P (the buyer pays there).
    pub payment_chain: String,
    /// What the buyer pays on P.
    pub payment_amount: Satoshis,
    /// Chain D (the seller delivers there).
    pub delivery_chain: String,
    /// What the seller delivers on D.
    pub delivery_amount: Satoshis,
    /// The notary that must approve (SPIFFE ID of role `notary`), if any.
    pub notary: Option<String>,
    /// The client's key: the same key again returns the saga it started.
    pub idempotency_key: Option<String>,
}

/// Why a swap did not start.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The configuration has no counterparty in this trust domain.
    #[error("no peer {0} in the gateway configuration")]
    UnknownPeer(String),
    /// A chain of the request is not configured, or the policy has no rule for it.
    #[error("chain {0} is not configured, or the policy has no rule for it")]
    UnknownChain(String),
    /// The chain's headers service did not give its tip.
    #[error("tip of chain {chain_id}: {detail}")]
    Tip {
        /// The chain.
        chain_id: String,
        /// The tracker's error.
        detail: String,
    },
    /// The system's random source failed.
    #[error("the random source failed")]
    Random,
    /// The store could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The preimage could not be stored.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The saga refused to start (terms against our policy) or the turn failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// Terms of a new saga: us as the buyer with the configuration's keys, the
/// seller with its pinned keys, refund heights `T = tip + the policy's
/// delay` on each chain, the policy's confirmations, and the quote expiry
/// and reservation deadline from the policy's times after `now`. `tips`
/// are chain P's and chain D's.
///
/// # Errors
/// [`SwapError::UnknownPeer`], [`SwapError::UnknownChain`].
pub fn terms_for(
    config: &GatewayConfig,
    request: &SwapRequest,
    saga_id: SagaId,
    hash_lock: [u8; 32],
    tips: (Height, Height),
    now: UnixTime,
) -> Result<Terms, SwapError> {
    let peer = config
        .peers
        .get(&request.seller_domain)
        .ok_or_else(|| SwapError::UnknownPeer(request.seller_domain.clone()))?;
    let policy = &config.policy;
    let chain = |id: &str| {
        policy
            .chain(id)
            .filter(|_| config.chains.contains_key(id))
            .ok_or_else(|| SwapError::UnknownChain(id.to_string()))
    };
    let (p, d) = (&request.payment_chain, &request.delivery_chain);
    let (p_rule, d_rule) = (chain(p)?, chain(d)?);
    let ours = |chain_id: &str| config.chains[chain_id].wallet_key.public_key();
    let theirs = |chain_id: &str| {
        peer.escrow_keys
            .get(chain_id)
            .copied()
            .ok_or_else(|| SwapError::UnknownChain(chain_id.to_string()))
    };
    let secs = |d: Duration| d.as_secs();
    let (Height(tip_p), Height(tip_d)) = tips;
    Ok(Terms {
        saga_id,
        buyer: PartyTerms {
            spiffe_id: config.spiffe_id.to_string(),
            saga_key: config.saga_key.public_key(),
            payment_escrow_key: ours(p),
            delivery_escrow_key: ours(d),
        },
        seller: PartyTerms {
            spiffe_id: peer.spiffe_id.to_string(),
            saga_key: peer.saga_key,
            payment_escrow_key: theirs(p)?,
            delivery_escrow_key: theirs(d)?,
        },
        notary: request.notary.clone(),
        payment: LegTerms {
            chain_id: p.clone(),
            amount: request.payment_amount,
            refund_height: Height(tip_p.saturating_add(p_rule.payment_refund_blocks)),
            confirmations: p_rule.confirmations,
        },
        delivery: LegTerms {
            chain_id: d.clone(),
            amount: request.delivery_amount,
            refund_height: Height(tip_d.saturating_add(d_rule.delivery_refund_blocks)),
            confirmations: d_rule.confirmations,
        },
        hash_lock,
        quote_expiry: UnixTime(now.0 + secs(policy.times.quote_expiry)),
        reservation_deadline: UnixTime(now.0 + secs(policy.times.reservation_deadline)),
        policy_id: policy.id.clone(),
    })
}

async fn tip(chains: &BTreeMap<String, ChainPorts>, chain_id: &str) -> Result<Height, SwapError> {
    let ports = chains
        .get(chain_id)
        .ok_or_else(|| SwapError::UnknownChain(chain_id.to_string()))?;
    ports
        .tracker
        .current_height()
        .await
        .map(Height)
        .map_err(|e| SwapError::Tip {
            chain_id: chain_id.to_string(),
            detail: e.to_string(),
        })
}

/// Satoshis we have locked, or are about to lock, in in-flight sagas where
/// we are the buyer facing `seller` on `chain_id` (the exposure the policy
/// limits). A swap started concurrently is not counted yet.
async fn exposure(
    log: &dyn EventLog<Event>,
    seller: &str,
    chain_id: &str,
) -> Result<Satoshis, ReadError> {
    let filter = SagaFilter {
        terminal: Some(false),
        state: None,
    };
    let mut total = 0u64;
    let mut after = None;
    loop {
        let page = log.list_sagas(&filter, after, 100).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.saga_id);
        for p in &page {
            let events = log.load(&p.saga_id).await?;
            let buyer_terms = events.iter().find_map(|(_, e)| match e {
                Event::TermsProposed {
                    role: Role::Buyer,
                    terms,
                    ..
                } => Some(terms),
                _ => None,
            });
            if let Some(t) = buyer_terms {
                if t.seller.spiffe_id == seller && t.payment.chain_id == chain_id {
                    total = total.saturating_add(t.payment.amount.0);
                }
            }
        }
    }
    Ok(Satoshis(total))
}

/// What starting a swap needs of a running gateway (cheap to clone, so
/// swaps can start on their own tasks).
#[derive(Clone)]
pub struct SwapPorts {
    /// The gateway's driver.
    pub driver: Driver,
    /// Its store.
    pub log: Arc<dyn EventLog<Event>>,
    /// Its chain clients (for the tips).
    pub chains: BTreeMap<String, ChainPorts>,
}

impl SwapPorts {
    /// The parts of `gateway` a swap start uses.
    pub fn of(gateway: &Gateway) -> SwapPorts {
        SwapPorts {
            driver: gateway.driver.clone(),
            log: gateway.log.clone(),
            chains: gateway.chains.clone(),
        }
    }
}

/// Starts a swap as the buyer (see the module docs) and returns its id and
/// terms. With an idempotency key already used, returns that saga and its
/// terms and starts nothing.
///
/// # Errors
/// [`SwapError`]; a refusal by our own policy is
/// `SwapError::Driver(DriverError::Rejected(..))`.
pub async fn start_swap(
    ports: &SwapPorts,
    config: &GatewayConfig,
    request: &SwapRequest,
    now: UnixTime,
) -> Result<(SagaId, Terms), SwapError> {
    if let Some(key) = &request.idempotency_key {
        if let Some(saga_id) = ports.log.idempotency(key).await? {
            let events = ports.log.load(&saga_id).await?;
            if let Some(terms) = events.into_iter().find_map(|(_, e)| match e {
                Event::TermsProposed { terms, .. } => Some(*terms),
                _ => None,
            }) {
                return Ok((saga_id, terms));
            }
        }
    }
    let random = SystemRandom::new();
    let mut s = [0u8; 32];
    let mut id_bits = [0u8; 10];
    random.fill(&mut s).map_err(|_| SwapError::Random)?;
    random.fill(&mut id_bits).map_err(|_| SwapError::Random)?;
    let saga_id = SagaId::new_v7(now.0.saturating_mul(1000), &id_bits);
    let seller = config
        .peers
        .get(&request.seller_domain)
        .ok_or_else(|| SwapError::UnknownPeer(request.seller_domain.clone()))?
        .spiffe_id
        .to_string();
    let exposure = exposure(ports.log.as_ref(), &seller, &request.payment_chain).await?;
    ports
        .log
        .put_secret(&saga_id, PREIMAGE_SECRET, SecretBytes::new(s.to_vec()))
        .await?;
    // The tips last: the saga judges the refund heights against the tips
    // it sees when it starts, a moment later.
    let tips = (
        tip(&ports.chains, &request.payment_chain).await?,
        tip(&ports.chains, &request.delivery_chain).await?,
    );
    let terms = terms_for(config, request, saga_id, sha256(&s), tips, now)?;
    ports
        .driver
        .submit(
            saga_id,
            Some(Role::Buyer),
            Input::Start {
                terms: Box::new(terms.clone()),
                exposure,
            },
            request.idempotency_key.clone(),
        )
        .await?;
    Ok((saga_id, terms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsv_format::keys::PrivateKey;

    fn key(n: u8) -> bsv_format::keys::PublicKey {
        PrivateKey::from_bytes(&[n; 32]).unwrap().public_key()
    }

    fn request() -> SwapRequest {
        SwapRequest {
            seller_domain: "org-b.example".into(),
            payment_chain: "chain-p".into(),
            payment_amount: Satoshis(50_000),
            delivery_chain: "chain-d".into(),
            delivery_amount: Satoshis(20_000),
            notary: Some("spiffe://notary.example/notary/notary".into()),
            idempotency_key: None,
        }
    }

    #[test]
    fn terms_take_our_keys_the_peers_pinned_keys_and_the_policy_delays_from_the_tips() {
        let dir = crate::config::tests::fixture("swap-terms");
        let config =
            GatewayConfig::parse(&crate::config::tests::text(), "gateway.toml", &dir).unwrap();
        let saga_id = SagaId::new_v7(1_700_000_000_000, &[3; 10]);
        let now = UnixTime(1_700_000_000);
        let t = terms_for(
            &config,
            &request(),
            saga_id,
            [9; 32],
            (Height(200), Height(300)),
            now,
        )
        .unwrap();
        t.validate().unwrap();
        assert_eq!(t.saga_id, saga_id);
        // fast-test.toml: n_P = 90, n_D = 30, one confirmation each.
        assert_eq!(t.payment.refund_height, Height(290));
        assert_eq!(t.delivery.refund_height, Height(330));
        assert_eq!((t.payment.confirmations, t.delivery.confirmations), (1, 1));
        assert_eq!(t.buyer.spiffe_id, "spiffe://org-a.example/gateway/ga");
        assert_eq!(
            (
                t.buyer.saga_key,
                t.buyer.payment_escrow_key,
                t.buyer.delivery_escrow_key
            ),
            (key(1), key(2), key(3))
        );
        assert_eq!(t.seller.spiffe_id, "spiffe://org-b.example/gateway/gb");
        assert_eq!(
            (
                t.seller.saga_key,
                t.seller.payment_escrow_key,
                t.seller.delivery_escrow_key
            ),
            (key(4), key(5), key(6))
        );
        assert_eq!(t.hash_lock, [9; 32]);
        assert_eq!(t.quote_expiry, UnixTime(1_700_000_030));
        assert_eq!(t.reservation_deadline, UnixTime(1_700_000_300));
        assert_eq!(t.policy_id, config.policy.id);

        let mut other = request();
        other.seller_domain = "org-c.example".into();
        let e = terms_for(
            &config,
            &other,
            saga_id,
            [9; 32],
            (Height(1), Height(1)),
            now,
        );
        assert!(matches!(e, Err(SwapError::UnknownPeer(d)) if d == "org-c.example"));
        let mut other = request();
        other.delivery_chain = "chain-x".into();
        let e = terms_for(
            &config,
            &other,
            saga_id,
            [9; 32],
            (Height(1), Height(1)),
            now,
        );
        assert!(matches!(e, Err(SwapError::UnknownChain(c)) if c == "chain-x"));
    }
}
