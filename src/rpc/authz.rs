//! The authorization tables of escrowd's gRPC servers (DESIGN.md §4, the
//! matrix in docs/identity.md) and the saga-party lookup the `peer-rpc`
//! rule needs.
//!
//! Every method is listed by its exact path, so a method added to a
//! `.proto` without a row here is refused (`identity::authz` refuses what
//! no rule covers). Health checking and reflection are whole standard
//! services: health is for whoever may watch this gateway (the
//! `subscription` rule: observers, notaries, our own operators);
//! reflection describes the whole API, so it is an operator's tool
//! (`admin-rpc`).
//!
//! # Layout
//! - [`gateway_rules`], [`notary_rules`]: the method tables.
//! - [`LogParties`]: [`SagaParties`] over the sagas of our event log.

use std::collections::HashMap;
use std::sync::RwLock;

use saga_core::saga::Event;
use saga_core::terms::Terms;
use saga_runtime::log::{EventLog, ReadError, SagaFilter};

use crate::identity::{MethodRules, Rule, SagaParties, SpiffeId};

/// `escrow.v1.PeerService` methods.
pub const PEER_METHODS: [&str; 8] = [
    "/escrow.v1.PeerService/Propose",
    "/escrow.v1.PeerService/SignRefund",
    "/escrow.v1.PeerService/ReservationReady",
    "/escrow.v1.PeerService/GrantToken",
    "/escrow.v1.PeerService/Execute",
    "/escrow.v1.PeerService/SignCancel",
    "/escrow.v1.PeerService/Cancel",
    "/escrow.v1.PeerService/GetSagaStatus",
];

/// `escrow.v1.AdminService` methods.
pub const ADMIN_METHODS: [&str; 8] = [
    "/escrow.v1.AdminService/StartSwap",
    "/escrow.v1.AdminService/GetSaga",
    "/escrow.v1.AdminService/ListSagas",
    "/escrow.v1.AdminService/CancelSaga",
    "/escrow.v1.AdminService/ResolveSaga",
    "/escrow.v1.AdminService/WalletBalances",
    "/escrow.v1.AdminService/ImportFunding",
    "/escrow.v1.AdminService/Withdraw",
];

/// `escrow.v1.EventService` methods.
pub const EVENT_METHODS: [&str; 1] = ["/escrow.v1.EventService/Subscribe"];

/// `escrow.v1.NotaryService` methods.
pub const NOTARY_METHODS: [&str; 1] = ["/escrow.v1.NotaryService/Approve"];

/// The standard services every escrowd server also runs.
fn standard(rules: MethodRules) -> MethodRules {
    rules
        .service("grpc.health.v1.Health", Rule::Subscription)
        .service("grpc.reflection.v1.ServerReflection", Rule::AdminRpc)
        .service("grpc.reflection.v1alpha.ServerReflection", Rule::AdminRpc)
}

/// A gateway's table: peer RPCs `peer-rpc`, admin `admin-rpc`, the event
/// feed `subscription`, plus health and reflection.
pub fn gateway_rules() -> MethodRules {
    let mut rules = MethodRules::new();
    for m in PEER_METHODS {
        rules = rules.method(m, Rule::PeerRpc);
    }
    for m in ADMIN_METHODS {
        rules = rules.method(m, Rule::AdminRpc);
    }
    for m in EVENT_METHODS {
        rules = rules.method(m, Rule::Subscription);
    }
    standard(rules)
}

/// A notary's table: `Approve` under `notary-rpc`, plus health and reflection.
pub fn notary_rules() -> MethodRules {
    let mut rules = MethodRules::new();
    for m in NOTARY_METHODS {
        rules = rules.method(m, Rule::NotaryRpc);
    }
    standard(rules)
}

/// The parties of every saga in our log, for the `peer-rpc` rule.
///
/// The authorization layer asks synchronously, before the handler runs, so
/// the parties are kept in memory: loaded from the log at start and
/// recorded by the services that create sagas (a proposal we accept, a
/// swap we start) right after their first append.
///
/// A saga we do not know yet has no parties to ask about, yet a `Propose`
/// must reach its handler: for an unknown saga the lookup answers with the
/// configured counterparty gateways (`proposers`). The handler then holds
/// the proposal to its own terms (the caller must be their buyer), and any
/// other message for an unknown saga is answered NOT_FOUND by the driver.
/// With no proposers configured, unknown sagas have no parties.
#[derive(Debug, Default)]
pub struct LogParties {
    known: RwLock<HashMap<String, Vec<SpiffeId>>>,
    proposers: Vec<SpiffeId>,
}

/// Page size when loading every saga.
const PAGE: usize = 256;

impl LogParties {
    /// A lookup knowing no saga yet.
    pub fn new(proposers: Vec<SpiffeId>) -> LogParties {
        LogParties {
            known: RwLock::new(HashMap::new()),
            proposers,
        }
    }

    /// A lookup knowing every saga of `log`.
    ///
    /// # Errors
    /// [`ReadError`].
    pub async fn load(
        log: &dyn EventLog<Event>,
        proposers: Vec<SpiffeId>,
    ) -> Result<LogParties, ReadError> {
        let parties = LogParties::new(proposers);
        let mut after = None;
        loop {
            let page = log.list_sagas(&SagaFilter::default(), after, PAGE).await?;
            for p in &page {
                if let Some(t) = super::lookup::saga_terms(log, &p.saga_id).await? {
                    parties.record(&t.terms);
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.saga_id),
                _ => return Ok(parties),
            }
        }
    }

    /// Records the parties `terms` name (buyer, seller and notary).
    pub fn record(&self, terms: &Terms) {
        let ids: Vec<SpiffeId> = [
            Some(terms.buyer.spiffe_id.as_str()),
            Some(terms.seller.spiffe_id.as_str()),
            terms.notary.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|s| s.parse().ok())
        .collect();
        if let Ok(mut known) = self.known.write() {
            known.insert(terms.saga_id.to_string(), ids);
        }
    }
}

impl SagaParties for LogParties {
    fn parties(&self, saga: &str) -> Option<Vec<SpiffeId>> {
        let known = self.known.read().ok()?.get(saga).cloned();
        known.or_else(|| (!self.proposers.is_empty()).then(|| self.proposers.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_its_rule_and_others_none() {
        let g = gateway_rules();
        for m in PEER_METHODS {
            assert_eq!(g.rule_for(m), Some(Rule::PeerRpc), "{m}");
        }
        for m in ADMIN_METHODS {
            assert_eq!(g.rule_for(m), Some(Rule::AdminRpc), "{m}");
        }
        assert_eq!(
            g.rule_for("/escrow.v1.EventService/Subscribe"),
            Some(Rule::Subscription)
        );
        assert_eq!(
            g.rule_for("/grpc.health.v1.Health/Check"),
            Some(Rule::Subscription)
        );
        assert_eq!(
            g.rule_for("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Some(Rule::AdminRpc)
        );
        assert_eq!(g.rule_for("/escrow.v1.PeerService/Unlisted"), None);
        assert_eq!(g.rule_for("/escrow.v1.NotaryService/Approve"), None);
        let n = notary_rules();
        assert_eq!(
            n.rule_for("/escrow.v1.NotaryService/Approve"),
            Some(Rule::NotaryRpc)
        );
        assert_eq!(n.rule_for("/escrow.v1.PeerService/Propose"), None);
    }

    #[test]
    fn known_sagas_answer_their_parties_unknown_ones_the_proposers() {
        use saga_core::{Height, UnixTime};
        use saga_testkit::fixtures::{self, BUYER, NOTARY, SELLER};

        let proposer: SpiffeId = SELLER.parse().unwrap();
        let parties = LogParties::new(vec![proposer.clone()]);
        let terms = fixtures::terms(UnixTime(1_700_000_000), Height(200), Height(300), true);
        let id = terms.saga_id.to_string();
        assert_eq!(parties.parties(&id), Some(vec![proposer.clone()]));
        parties.record(&terms);
        let known: Vec<String> = parties
            .parties(&id)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(known, [BUYER, SELLER, NOTARY]);
        assert_eq!(parties.parties("another"), Some(vec![proposer]));
        assert_eq!(LogParties::new(Vec::new()).parties("another"), None);
    }
}
