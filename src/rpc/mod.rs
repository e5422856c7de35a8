//! escrowd's gRPC services (DESIGN.md §2 "gRPC services", §3.3, §4):
//! what the counterparty, the operator, observers and the notary call, over
//! mutual TLS behind the authorization layer of [`crate::identity`]. The
//! API is `proto/escrow/v1/{peer,admin,subscribe,notary}.proto`;
//! `docs/rpc.md` describes it, the status codes and how to wire a server.
//!
//! Handlers are thin: convert and check every field ([`convert`]), run one
//! driver turn or one read, map every error in one place ([`status`]).
//! Nothing here decides anything about a swap: the saga does.
//!
//! # Layout
//! - [`Shared`]: the parts of a running gateway the services share.
//! - [`convert`]: messages ↔ domain values, with field-named errors.
//! - [`status`]: [`status::RpcError`] and the one mapping to `tonic::Status`.
//! - [`authz`]: the method tables and [`authz::LogParties`].
//! - [`peer`]: `PeerService`; [`peer_client`]: the driver's `PeerTransport`.
//! - [`admin`]: `AdminService` and [`admin::PeerKeys`].
//! - [`events`]: `EventService` and [`events::FeedSignal`].
//! - [`faults`]: the fault plan tests and the demo stage scenarios with.
//! - [`notary`]: `NotaryService` and the driver's `Notary` port client.
//! - [`standard`]: health and reflection services.
//! - `lookup`: a saga's terms and our exposure, read from the log.

pub mod admin;
pub mod authz;
pub mod convert;
pub mod events;
pub mod faults;
pub mod notary;
pub mod peer;
pub mod peer_client;
pub mod standard;
pub mod status;

mod lookup;

use std::collections::BTreeMap;
use std::sync::Arc;

use bsv_format::spv::VerifyOptions;
use saga_core::policy::Policy;
use saga_core::saga::Event;
use saga_runtime::driver::Driver;
use saga_runtime::log::EventLog;
use saga_runtime::ports::{ChainPorts, Clock};
use saga_runtime::wallet::Wallet;

pub use lookup::{exposure, saga_terms, SagaTerms};

/// What the gateway's services share: the driver, what it runs on, and who
/// we are. Cheap to clone (handles).
#[derive(Clone)]
pub struct Shared {
    /// Runs the sagas.
    pub driver: Driver,
    /// The driver's event log.
    pub log: Arc<dyn EventLog<Event>>,
    /// The wallet over the same log.
    pub wallet: Arc<dyn Wallet>,
    /// Per chain id: broadcaster, tracker, spends, transactions (the
    /// driver's).
    pub chains: BTreeMap<String, ChainPorts>,
    /// Our gateway's SPIFFE ID.
    pub own_spiffe_id: String,
    /// Our public keys: saga key and escrow key per chain (the public
    /// halves of what the driver's context source signs with).
    pub own_keys: admin::PeerKeys,
    /// Our policy.
    pub policy: Arc<Policy>,
    /// SPV options for BEEFs we receive (script eras, limits).
    pub verify: VerifyOptions,
    /// The UTC clock (the driver's).
    pub clock: Arc<dyn Clock>,
    /// Sagas' parties, for the authorization layer.
    pub parties: Arc<authz::LogParties>,
    /// The public keys our configuration pins for each counterparty, by its
    /// SPIFFE ID (`[peers."<domain>"]`): a proposal must carry exactly these.
    pub counterparties: Arc<BTreeMap<String, admin::PeerKeys>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("own_spiffe_id", &self.own_spiffe_id)
            .field("chains", &self.chains.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
