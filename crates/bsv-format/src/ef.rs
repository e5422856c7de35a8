//! BRC-30 Extended Format (EF).
//!
//! ```text
//! version u32le | 00 00 00 00 00 EF | n_in VI
//!   { prev_txid 32, prev_vout u32le, unlocking VI+bytes, sequence u32le,
//!     prev_satoshis u64le, prev_locking VI+bytes }*
//! n_out VI | outputs as raw | lock_time u32le
//! ```
//! The satoshi field is 8 bytes (BRC-30's table says 4; BIP-239 and every
//! implementation use 8, `bsv-formats.md` §2).

/// The 6-byte EF marker that follows the version.
pub const EF_MARKER: [u8; 6] = [0, 0, 0, 0, 0, 0xef];

/// Whether `after_version` (the bytes following a transaction's 4-byte
/// version) starts with the EF marker.
pub fn is_ef_marker(after_version: &[u8]) -> bool {
    after_version.len() >= 6 && after_version[..6] == EF_MARKER
}
