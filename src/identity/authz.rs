//! Authorization: the permission matrix of DESIGN.md §4 as one function,
//! [`authorize`], and the tower layer every gRPC service runs behind,
//! [`AuthLayer`].
//!
//! | rule id | RPCs | allowed caller |
//! | --- | --- | --- |
//! | `peer-rpc` | peer (gateway ↔ gateway) | a `gateway` of another trust domain that is a party to the saga |
//! | `admin-rpc` | admin | an `operator` of our own trust domain |
//! | `subscription` | event subscriptions | an `observer` or `notary` (any federated domain), or an `operator` of our own |
//! | `notary-rpc` | notary | a `gateway` (any federated domain) |
//!
//! For every request the layer (1) re-verifies the connection's client
//! chain against the *current* trust store, so a CRL loaded after the
//! handshake refuses the next RPC (UNAUTHENTICATED); (2) finds the method's
//! rule in a [`MethodRules`] table (a method without a rule is refused);
//! (3) for `peer-rpc`, reads the saga id from the `escrow-saga-id` metadata
//! and asks a [`SagaParties`] lookup for the saga's parties; (4) applies
//! [`authorize`], answering PERMISSION_DENIED with a message naming the rule;
//! (5) hands the handler the verified [`PeerIdentity`] (and, for peer RPCs,
//! the [`AuthorizedSaga`]) as request extensions. Handlers read them with
//! [`caller`] and [`authorized_saga`] and must refuse a body whose saga id
//! differs from the authorized one.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::Status;

use super::server::MtlsConnectInfo;
use super::spiffe::{Role, SpiffeId, TrustDomain};
use super::tls::IdentityHandle;
use super::trust::PeerIdentity;

/// gRPC metadata key carrying the saga id (UUIDv7 text) of a peer RPC.
pub const SAGA_ID_METADATA: &str = "escrow-saga-id";

/// One row of the permission matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Gateway ↔ gateway calls about a saga.
    PeerRpc,
    /// Administration of our own gateway.
    AdminRpc,
    /// Saga event subscriptions.
    Subscription,
    /// Calls to a notary.
    NotaryRpc,
}

impl Rule {
    /// The rule's id as it appears in denial messages and docs, e.g. `admin-rpc`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::PeerRpc => "peer-rpc",
            Rule::AdminRpc => "admin-rpc",
            Rule::Subscription => "subscription",
            Rule::NotaryRpc => "notary-rpc",
        }
    }

    /// Who the rule allows, in words.
    pub fn allows(self) -> &'static str {
        match self {
            Rule::PeerRpc => "peer RPCs are for a gateway of another trust domain that is a party to the saga",
            Rule::AdminRpc => "admin RPCs are for an operator of our own trust domain",
            Rule::Subscription => {
                "event subscriptions are for an observer, a notary or an operator of our own trust domain"
            }
            Rule::NotaryRpc => "notary RPCs are for a gateway",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What an RPC asks for, with what its rule needs to be judged.
#[derive(Debug, Clone, Copy)]
pub enum Access<'a> {
    /// A peer RPC about `saga` (`None`: the call named none); `parties` are
    /// its parties' SPIFFE IDs, or `None` when the saga is unknown.
    Peer {
        /// The saga id.
        saga: Option<&'a str>,
        /// The saga's parties, if the saga is known.
        parties: Option<&'a [SpiffeId]>,
    },
    /// An admin RPC.
    Admin,
    /// An event subscription.
    Subscription,
    /// A notary RPC.
    Notary,
}

impl Access<'_> {
    /// The rule that judges this access.
    pub fn rule(&self) -> Rule {
        match self {
            Access::Peer { .. } => Rule::PeerRpc,
            Access::Admin => Rule::AdminRpc,
            Access::Subscription => Rule::Subscription,
            Access::Notary => Rule::NotaryRpc,
        }
    }
}

/// Why an authenticated caller may not make a call. Every message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionDenied {
    /// The caller's role or domain does not fit the rule.
    #[error("permission denied by rule {rule}: {}; caller {caller} is {} {} of {}",
        rule.allows(), article(caller.role()), caller.role(), caller.domain())]
    WrongCaller {
        /// The rule applied.
        rule: Rule,
        /// The caller.
        caller: SpiffeId,
    },
    /// A gateway of another domain, but not one of the saga's parties.
    #[error("permission denied by rule peer-rpc: caller {caller} is not a party to saga {saga}")]
    NotParty {
        /// The caller.
        caller: SpiffeId,
        /// The saga id.
        saga: String,
    },
    /// The saga is unknown, so nobody is a party to it.
    #[error("permission denied by rule peer-rpc: saga {saga} is unknown, so {caller} is not a party to it")]
    UnknownSaga {
        /// The caller.
        caller: SpiffeId,
        /// The saga id.
        saga: String,
    },
    /// A peer RPC without the saga id metadata.
    #[error("permission denied by rule peer-rpc: the call carries no escrow-saga-id metadata")]
    NoSagaId,
    /// No rule covers the method: refused by default.
    #[error("permission denied: no authorization rule covers {method}")]
    NoRule {
        /// The gRPC path, e.g. `/escrow.v1.Gateway/Propose`.
        method: String,
    },
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Operator | Role::Observer => "an",
        Role::Gateway | Role::Notary => "a",
    }
}

/// The permission matrix (DESIGN.md §4): may `peer` make `access` on a
/// gateway of trust domain `own`?
///
/// # Errors
/// [`PermissionDenied`] naming the rule and why the caller does not fit it.
pub fn authorize(
    own: &TrustDomain,
    peer: &PeerIdentity,
    access: &Access<'_>,
) -> Result<(), PermissionDenied> {
    let rule = access.rule();
    let role = peer.role();
    let ours = peer.domain() == own;
    let fits = match rule {
        Rule::PeerRpc => role == Role::Gateway && !ours,
        Rule::AdminRpc => role == Role::Operator && ours,
        Rule::Subscription => {
            matches!(role, Role::Observer | Role::Notary) || (role == Role::Operator && ours)
        }
        Rule::NotaryRpc => role == Role::Gateway,
    };
    if !fits {
        return Err(PermissionDenied::WrongCaller {
            rule,
            caller: peer.id().clone(),
        });
    }
    if let Access::Peer { saga, parties } = access {
        let caller = peer.id().clone();
        let saga = saga.ok_or(PermissionDenied::NoSagaId)?.to_owned();
        match parties {
            None => return Err(PermissionDenied::UnknownSaga { caller, saga }),
            Some(p) if !p.contains(peer.id()) => {
                return Err(PermissionDenied::NotParty { caller, saga })
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Looks up a saga's parties for the `peer-rpc` rule. Implemented for
/// closures `Fn(&str) -> Option<Vec<SpiffeId>>`; the saga store provides the
/// real one.
pub trait SagaParties: Send + Sync {
    /// The SPIFFE IDs of the parties (gateways, notary) of saga `saga`, or
    /// `None` if no such saga exists.
    fn parties(&self, saga: &str) -> Option<Vec<SpiffeId>>;
}

impl<F> SagaParties for F
where
    F: Fn(&str) -> Option<Vec<SpiffeId>> + Send + Sync,
{
    fn parties(&self, saga: &str) -> Option<Vec<SpiffeId>> {
        self(saga)
    }
}

/// Which rule judges which gRPC method: exact paths first, then whole services.
#[derive(Debug, Clone, Default)]
pub struct MethodRules {
    methods: HashMap<String, Rule>,
    services: HashMap<String, Rule>,
}

impl MethodRules {
    /// An empty table (refuses everything).
    pub fn new() -> Self {
        MethodRules::default()
    }

    /// Judges the method at `path` (e.g. `/escrow.v1.Gateway/Propose`) by `rule`.
    pub fn method(mut self, path: &str, rule: Rule) -> Self {
        self.methods.insert(path.to_owned(), rule);
        self
    }

    /// Judges every method of `service` (e.g. `escrow.v1.Admin`) by `rule`.
    pub fn service(mut self, service: &str, rule: Rule) -> Self {
        self.services.insert(service.to_owned(), rule);
        self
    }

    /// The rule for the method at `path`, if any.
    pub fn rule_for(&self, path: &str) -> Option<Rule> {
        self.methods.get(path).copied().or_else(|| {
            let service = path.strip_prefix('/')?.split_once('/')?.0;
            self.services.get(service).copied()
        })
    }
}

/// The saga a peer RPC was authorized for (from `escrow-saga-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedSaga(pub String);

/// The verified caller of a request that passed [`AuthLayer`].
///
/// # Errors
/// UNAUTHENTICATED when the request did not pass the layer (a wiring bug).
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&PeerIdentity, Status> {
    request
        .extensions()
        .get::<PeerIdentity>()
        .ok_or_else(|| Status::unauthenticated("request did not pass the authorization layer"))
}

/// The saga a peer RPC was authorized for, if it is one.
pub fn authorized_saga<T>(request: &tonic::Request<T>) -> Option<&str> {
    request
        .extensions()
        .get::<AuthorizedSaga>()
        .map(|s| s.0.as_str())
}

/// The tower layer applying [`authorize`] to every request (see the module docs).
#[derive(Clone)]
pub struct AuthLayer {
    identity: IdentityHandle,
    rules: Arc<MethodRules>,
    parties: Arc<dyn SagaParties>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("rules", &self.rules)
            .finish()
    }
}

impl AuthLayer {
    /// A layer judging with `identity`'s current trust store, `rules` and `parties`.
    pub fn new(
        identity: IdentityHandle,
        rules: MethodRules,
        parties: Arc<dyn SagaParties>,
    ) -> Self {
        AuthLayer {
            identity,
            rules: Arc::new(rules),
            parties,
        }
    }

    /// Steps (1)–(4) of the module docs for one request.
    fn check<B>(
        &self,
        req: &http::Request<B>,
    ) -> Result<(PeerIdentity, Option<AuthorizedSaga>), Status> {
        let method = req.uri().path();
        let Some(info) = req.extensions().get::<MtlsConnectInfo>() else {
            tracing::warn!(%method, reason = %"connection is not mutually authenticated", "RPC refused");
            return Err(Status::unauthenticated(
                "connection is not mutually authenticated",
            ));
        };
        let remote = info.remote_addr();
        let snapshot = self.identity.current();
        let peer = snapshot
            .trust()
            .authenticate_client(info.chain(), self.identity.now())
            .map_err(|e| {
                tracing::warn!(%remote, %method, reason = %e, "RPC refused");
                Status::unauthenticated(e.to_string())
            })?;
        let denied = |e: PermissionDenied| {
            tracing::warn!(%remote, peer = %peer, %method, reason = %e, "RPC refused");
            Status::permission_denied(e.to_string())
        };
        let rule = self.rules.rule_for(method).ok_or_else(|| {
            denied(PermissionDenied::NoRule {
                method: method.into(),
            })
        })?;
        let own = snapshot.own_id().domain();
        let saga = match rule {
            Rule::PeerRpc => {
                let saga = req
                    .headers()
                    .get(SAGA_ID_METADATA)
                    .and_then(|v| v.to_str().ok());
                let parties = saga.and_then(|s| self.parties.parties(s));
                authorize(
                    own,
                    &peer,
                    &Access::Peer {
                        saga,
                        parties: parties.as_deref(),
                    },
                )
                .map_err(denied)?;
                saga.map(|s| AuthorizedSaga(s.to_owned()))
            }
            Rule::AdminRpc => authorize(own, &peer, &Access::Admin)
                .map_err(denied)
                .map(|()| None)?,
            Rule::Subscription => authorize(own, &peer, &Access::Subscription)
                .map_err(denied)
                .map(|()| None)?,
            Rule::NotaryRpc => authorize(own, &peer, &Access::Notary)
                .map_err(denied)
                .map(|()| None)?,
        };
        Ok((peer, saga))
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around the router.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
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

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.layer.check(&req) {
            Ok((peer, saga)) => {
                req.extensions_mut().insert(peer);
                if let Some(saga) = saga {
                    req.extensions_mut().insert(saga);
                }
                Box::pin(self.inner.call(req))
            }
            Err(status) => {
                let response = status.into_http::<Body>();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
