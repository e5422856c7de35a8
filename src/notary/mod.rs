//! `escrowd notary`: a notary process (DESIGN.md §3.3 step 2, §7) — its
//! configuration file and the server that runs `escrow.v1.NotaryService`
//! (`crate::rpc::notary`) with health and reflection behind mutual TLS and
//! the `notary_rules()` authorization table.
//!
//! # Layout
//! - [`config`]: `notary.toml` ([`config::NotaryFileConfig`], [`config::NotaryConfigError`]).
//! - [`serve`]: [`serve::RunningNotary`], [`serve::serve_until_signalled`].

pub mod config;
pub mod serve;
