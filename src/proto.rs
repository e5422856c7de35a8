//! Rust types generated from `proto/escrow/v1/*.proto` by `build.rs`
//! (prost, compiled with protox).
//!
//! # Layout
//! - [`escrow_v1`]: package `escrow.v1` — today the stored records of the
//!   sled store (`store.proto`, the `Stored*` messages; see
//!   `docs/persistence.md`).

/// Package `escrow.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod escrow_v1 {
    include!(concat!(env!("OUT_DIR"), "/escrow.v1.rs"));
}
