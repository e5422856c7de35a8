//! A deterministic simulator of an escrowd swap: the buyer and the seller
//! each run the real [`saga_core::saga::Saga`] through the driver turn of
//! DESIGN.md §2, over fake chains (mempool, blocks on demand, finality,
//! double spends, script checks, BUMPs and Atomic BEEF), a fake wallet per
//! party, a notary with an approve/reject knob, and an in-memory network
//! that drops, duplicates, delays and partitions; parties crash and restart
//! from their event log. Time is a manual clock. Pure and synchronous: no
//! async runtime, no I/O; every fault is drawn from a seeded generator, so a
//! seed replays a run exactly. Dev-dependency only (DESIGN.md §2).
//!
//! The suites in `tests/`: `scenarios` (whole swaps, each ending),
//! `hostile` (lying reservations, forged, foreign, expired and replayed
//! tokens), `hostile_review` (a hostile counterparty's review: lying
//! broadcasters, cancel order, unverified claims, non-parties; and what
//! held), `inputs` (illegal inputs per state), `crash_matrix` (a crash
//! after every step), `interleavings` (proptest; `SAGA_SIM_CASES=N` for a
//! longer run, `SAGA_SIM_LOG=1` for a failing case's whole log).
//!
//! # Layout
//! - [`chain`] — [`chain::FakeChain`].
//! - [`store`]: [`store::PartyStore`], the all-or-nothing append.
//! - [`wallet`] — [`wallet::FakeWallet`].
//! - [`net`]: fault knobs ([`net::NetFaults`], [`net::NotaryMode`]) and [`net::Rng`].
//! - [`sim`]: [`sim::Sim`], the driver and its checks.
//! - [`fixtures`]: keys, identities, policy and terms.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod fixtures;
pub mod net;
pub mod sim;
pub mod store;
pub mod wallet;

pub use sim::{FeedError, Sim, SimConfig, Stuck, Undelivered};
