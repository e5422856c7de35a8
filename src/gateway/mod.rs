//! The gateway process's parts that are not transport: where a saga's keys
//! and policy come from. (`escrowd serve` assembles the driver, the store,
//! the chain clients and the gRPC services around them.)
//!
//! # Layout
//! - [`assemble`]: [`assemble::Gateway::start`] — store, chain clients,
//!   wallet, contexts, driver, recovery.
//! - [`serve`]: [`serve::RunningGateway`] — identity, gRPC clients and
//!   server around the saga side; `escrowd serve`.
//! - [`context`]: [`context::GatewayContexts`], the `ContextSource` over the
//!   configuration and the store's secrets.
//! - [`reconcile`]: asking the counterparties for their view after a restart.
//! - [`inproc`]: the in-process `PeerTransport` (tests).

pub mod assemble;
pub mod context;
pub mod inproc;
pub mod reconcile;
pub mod serve;
