//! A switchable fault plan for a gateway's gRPC server: the calls it makes
//! the server refuse, as a counterparty that is down or a network that
//! loses messages would. Tests and `escrowd demo` use it to stage their
//! scenarios over the real transport (mutual TLS, gRPC, the authorization
//! layer); it is reachable only through
//! [`crate::gateway::serve::StartOptions::faults`], never from a
//! configuration file, so a production gateway has an empty plan.
//!
//! A refused call is answered `UNAVAILABLE` ("refused by the fault plan")
//! after the authorization layer let it through, before any handler runs:
//! the caller's driver retries it with the policy's backoff, exactly as it
//! would a gateway that is down. The plan remembers which sagas' calls it
//! refused, per method, so a scenario can wait until every saga has reached
//! the point it stages.
//!
//! # Layout
//! - [`FaultPlan`]: what to refuse, and what was refused.
//! - [`FaultLayer`], [`FaultService`]: the tower layer applying it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

use crate::identity::authz::SAGA_ID_METADATA;

/// What the server refuses: nothing, a set of methods, or every method of
/// a service but a few.
#[derive(Debug, Default)]
pub struct FaultPlan {
    inner: Mutex<Plan>,
}

#[derive(Debug, Default)]
struct Plan {
    /// Full method paths refused, e.g. `/escrow.v1.PeerService/GrantToken`.
    refused: BTreeSet<String>,
    /// `(service prefix, allowed paths)`: every other method of the service
    /// is refused.
    all_but: Option<(String, BTreeSet<String>)>,
    /// Per refused method path, the saga ids its refused calls carried.
    seen: BTreeMap<String, BTreeSet<String>>,
}

impl Plan {
    fn refuses(&self, path: &str) -> bool {
        self.refused.contains(path)
            || self.all_but.as_ref().is_some_and(|(service, allowed)| {
                path.starts_with(service.as_str()) && !allowed.contains(path)
            })
    }
}

impl FaultPlan {
    /// An empty plan: nothing is refused.
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuse calls of `method` (a full path such as
    /// `/escrow.v1.PeerService/GrantToken`) from now on.
    pub fn refuse(&self, method: &str) {
        self.plan().refused.insert(method.to_string());
    }

    /// Refuse every method of `service` (e.g. `/escrow.v1.PeerService/`)
    /// except the full paths in `allowed`.
    pub fn refuse_all_but(&self, service: &str, allowed: &[&str]) {
        self.plan().all_but = Some((
            service.to_string(),
            allowed.iter().map(|m| m.to_string()).collect(),
        ));
    }

    /// Refuse nothing from now on (what was refused is still counted).
    pub fn clear(&self) {
        let mut plan = self.plan();
        plan.refused.clear();
        plan.all_but = None;
    }

    /// How many distinct sagas had a call of `method` refused.
    pub fn refused_sagas(&self, method: &str) -> usize {
        self.plan().seen.get(method).map_or(0, BTreeSet::len)
    }

    /// Whether a call of `path` carrying `saga_id` is refused now; records
    /// it if so.
    pub fn judge(&self, path: &str, saga_id: Option<&str>) -> bool {
        let mut plan = self.plan();
        if !plan.refuses(path) {
            return false;
        }
        let seen = plan.seen.entry(path.to_string()).or_default();
        if let Some(id) = saga_id {
            seen.insert(id.to_string());
        }
        true
    }
}

/// The tower layer applying a [`FaultPlan`] to every call (inside the
/// authorization layer).
#[derive(Debug, Clone, Default)]
pub struct FaultLayer {
    plan: Arc<FaultPlan>,
}

impl FaultLayer {
    /// A layer applying `plan`.
    pub fn new(plan: Arc<FaultPlan>) -> FaultLayer {
        FaultLayer { plan }
    }
}

impl<S> tower::Layer<S> for FaultLayer {
    type Service = FaultService<S>;

    fn layer(&self, inner: S) -> FaultService<S> {
        FaultService {
            inner,
            plan: self.plan.clone(),
        }
    }
}

/// The service [`FaultLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct FaultService<S> {
    inner: S,
    plan: Arc<FaultPlan>,
}

impl<S, B> tower::Service<http::Request<B>> for FaultService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let saga_id = req
            .headers()
            .get(SAGA_ID_METADATA)
            .and_then(|v| v.to_str().ok());
        if self.plan.judge(path, saga_id) {
            let status = Status::unavailable(format!("{path} refused by the fault plan"));
            let response = status.into_http::<Body>();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRANT: &str = "/escrow.v1.PeerService/GrantToken";
    const PROPOSE: &str = "/escrow.v1.PeerService/Propose";
    const READY: &str = "/escrow.v1.PeerService/ReservationReady";
    const SUBSCRIBE: &str = "/escrow.v1.EventService/Subscribe";

    #[test]
    fn an_empty_plan_refuses_nothing() {
        let plan = FaultPlan::new();
        assert!(!plan.judge(GRANT, Some("s1")));
        assert_eq!(plan.refused_sagas(GRANT), 0);
    }

    #[test]
    fn a_refused_method_is_counted_per_saga_until_cleared() {
        let plan = FaultPlan::new();
        plan.refuse(GRANT);
        assert!(plan.judge(GRANT, Some("s1")));
        assert!(plan.judge(GRANT, Some("s1")));
        assert!(plan.judge(GRANT, Some("s2")));
        assert!(plan.judge(GRANT, None));
        assert!(!plan.judge(PROPOSE, Some("s1")));
        assert_eq!(plan.refused_sagas(GRANT), 2);
        plan.clear();
        assert!(!plan.judge(GRANT, Some("s3")));
        assert_eq!(plan.refused_sagas(GRANT), 2);
    }

    #[test]
    fn all_but_refuses_only_the_named_service() {
        let plan = FaultPlan::new();
        plan.refuse_all_but("/escrow.v1.PeerService/", &[PROPOSE]);
        assert!(!plan.judge(PROPOSE, Some("s1")));
        assert!(plan.judge(READY, Some("s1")));
        assert!(!plan.judge(SUBSCRIBE, None));
        assert_eq!(plan.refused_sagas(READY), 1);
    }
}
