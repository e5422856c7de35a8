//! Rust types generated from `proto/escrow/v1/*.proto` by `build.rs`
//! (prost and tonic-prost-build, compiled with protox).
//!
//! # Layout
//! - [`escrow_v1`]: package `escrow.v1` — the stored records of the sled
//!   store (`store.proto`, the `Stored*` messages, and `events.proto`'s
//!   `SagaEvent`; see `docs/persistence.md`) and the gRPC API
//!   (`common.proto`, `peer.proto`, `admin.proto`, `subscribe.proto`,
//!   `notary.proto`: messages, `*_client` and `*_server` modules; see
//!   `docs/rpc.md`).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of every file, for
//!   server reflection.

/// Package `escrow.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod escrow_v1 {
    include!(concat!(env!("OUT_DIR"), "/escrow.v1.rs"));
}

/// The `google.protobuf.FileDescriptorSet` of `proto/escrow/v1/*.proto`
/// (with imports and source info), protobuf bytes: what gRPC reflection
/// serves.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/escrow_v1_descriptor.bin"));
