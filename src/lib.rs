//! escrowd: a cross-chain escrow saga coordinator.
//!
//! The gateway binary's library half: command-line handlers and the adapters
//! that need I/O. The pure format core is the `bsv-format` crate.
#![forbid(unsafe_code)]

pub mod chain;
pub mod chainsim;
pub mod cli;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod headers;
pub mod identity;
pub mod keys;
pub mod notary;
pub mod observer;
pub mod policy;
pub mod proto;
pub mod rpc;
pub mod sample;
pub mod store;
