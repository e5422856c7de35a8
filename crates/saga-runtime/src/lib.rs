//! The async side of escrowd's saga: the driver and the ports it talks
//! through.
//!
//! The saga itself (`saga-core`) is pure; everything it needs from the world
//! comes through a *port*, a trait defined here and implemented elsewhere: the
//! network clients in the `escrowd` package (`src/chain`), `escrowd chainsim`
//! in process, or in-memory fakes in tests. This crate depends on tokio and
//! `bsv-format` only — no TLS, HTTP, gRPC or storage stack (DESIGN.md §2), so
//! a port can never leak a transport type into the saga.
//!
//! It holds the driver (one turn per input, one runner per pending effect,
//! restart by replay), the chain ports (DESIGN.md §6), the peer, notary,
//! clock, transaction-source and context ports, the wallet with its UTXO
//! store, and the event log port with its in-memory implementation and
//! conformance suite. (The observers' `Notifier` port is not written yet.)
//!
//! # Why `async-trait`
//! Ports are held as `Arc<dyn Port>`: one implementation per chain is chosen
//! at start-up from the configuration. Native `async fn` in traits is not
//! dyn-compatible, so each method must return a boxed future; `async-trait`
//! writes exactly that boxing (`Pin<Box<dyn Future + Send + 'a>>`) and keeps
//! the trait and every implementation readable as plain `async fn`. The cost,
//! one allocation per call, is nothing next to the network round trip behind
//! every chain port. The crate is a proc macro with no runtime code.
//!
//! # Layout
//! - [`driver`]: the driver turn, coded once ([`driver::Driver`]).
//! - [`ports`]: the peer, notary, clock, transaction-source and context ports.
//! - [`chain`]: [`Broadcaster`] (ARC statuses and error codes as types),
//!   [`ChainTracker`] and [`verify_beef`], [`SpendWatcher`], and the
//!   [`ServiceFault`] they share.
//! - [`wallet`]: the [`wallet::Wallet`] port and [`wallet::KeyWallet`];
//!   [`wallet::UtxoStore`], the wallet's view of the `utxos` tree, with
//!   [`wallet::MemUtxoStore`] and its conformance suite.
//! - [`log`]: the [`EventLog`] port (one atomic, durable append per saga
//!   step), [`MemLog`], the UTXO change rules every log shares, and the
//!   [`log::conformance`] suite every implementation passes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod driver;
pub mod log;
pub mod ports;
pub mod wallet;

pub use chain::{
    verify_beef, ArcErrorCode, BlockInclusion, BroadcastError, BroadcastOutcome, Broadcaster,
    ChainTracker, RejectCode, ServiceFault, SpendWatchError, SpendWatcher, SpendingInput,
    TrackerError, TxState, TxStatus, VerifyBeefError,
};
pub use log::{EventLog, MemLog};
