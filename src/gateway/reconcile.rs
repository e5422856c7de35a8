//! Reconciliation with the counterparty after a restart: for every
//! in-flight saga, ask the other gateway for its view
//! (`PeerService.GetSagaStatus`) and give the answer to the saga as
//! [`Input::PeerStatus`]. The saga decides what it means (a counterparty
//! that no longer knows a saga it agreed to stops progress for an
//! operator); everything else we may have missed reaches us anyway —
//! messages are resent until answered, and the chains are re-read by
//! [`saga_runtime::driver::Driver::recover`].
//!
//! A counterparty that cannot be reached is asked again after a pause, a
//! few times ([`ATTEMPTS`]), then left alone: its messages will reach us
//! when it is back.
//!
//! # Layout
//! - [`Reconciled`], [`reconcile`].

use std::time::Duration;

use saga_core::saga::{Event, Input};
use saga_core::terms::{Role, SagaId};
use saga_runtime::driver::Driver;
use saga_runtime::log::EventLog;

use crate::rpc::peer_client::PeerClient;
use crate::rpc::saga_terms;

/// How many times an unreachable counterparty is asked.
pub const ATTEMPTS: u32 = 5;
/// The pause before the second attempt; doubled after each.
pub const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// What reconciliation found for one saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// The counterparty knows the saga; its state.
    Known(String),
    /// The counterparty answered that it has no such saga.
    Unknown,
    /// It could not be asked (unreachable after [`ATTEMPTS`], or it failed
    /// the call); why.
    NotAsked(String),
}

/// Asks each in-flight saga's counterparty for its view and submits the
/// answer to the saga. Returns what was found, per saga.
pub async fn reconcile(
    log: &dyn EventLog<Event>,
    driver: &Driver,
    peers: &PeerClient,
) -> Vec<(SagaId, Reconciled)> {
    let ids = match log.in_flight_sagas().await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!("reconciliation: cannot list in-flight sagas: {e}");
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    for saga_id in ids {
        let counterparty = match saga_terms(log, &saga_id).await {
            Ok(Some(t)) => match t.role {
                Role::Buyer => t.terms.seller.spiffe_id,
                Role::Seller => t.terms.buyer.spiffe_id,
            },
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(%saga_id, "reconciliation: cannot read the terms: {e}");
                continue;
            }
        };
        let result = ask(peers, &counterparty, saga_id).await;
        let input = match &result {
            Reconciled::Known(state) => Some(Input::PeerStatus {
                known: true,
                detail: state.clone(),
            }),
            Reconciled::Unknown => Some(Input::PeerStatus {
                known: false,
                detail: format!("{counterparty} answered NOT_FOUND"),
            }),
            Reconciled::NotAsked(_) => None,
        };
        match &result {
            Reconciled::Known(state) => {
                tracing::info!(%saga_id, %counterparty, state = %state, "reconciled");
            }
            Reconciled::Unknown => {
                tracing::warn!(%saga_id, %counterparty, "reconciliation: the counterparty does not know this saga");
            }
            Reconciled::NotAsked(why) => {
                tracing::warn!(%saga_id, %counterparty, "reconciliation: not asked: {why}");
            }
        }
        if let Some(input) = input {
            if let Err(e) = driver.submit(saga_id, None, input, None).await {
                tracing::warn!(%saga_id, "reconciliation: the saga did not take the answer: {e}");
            }
        }
        found.push((saga_id, result));
    }
    found
}

async fn ask(peers: &PeerClient, counterparty: &str, saga_id: SagaId) -> Reconciled {
    let mut pause = FIRST_PAUSE;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match peers.saga_status(counterparty, saga_id).await {
            Ok(Some(status)) => {
                let state = crate::proto::escrow_v1::SagaState::try_from(status.state)
                    .map(|s| s.as_str_name().to_string())
                    .unwrap_or_else(|_| format!("state {}", status.state));
                return Reconciled::Known(state);
            }
            Ok(None) => return Reconciled::Unknown,
            Err(saga_runtime::ports::PeerError::Failed { detail, .. }) => {
                return Reconciled::NotAsked(detail)
            }
            Err(e) => last = e.to_string(),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
    }
    Reconciled::NotAsked(last)
}
