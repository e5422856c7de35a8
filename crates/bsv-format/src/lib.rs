//! BSV transaction formats and sans-io SPV verification for escrowd.
//!
//! Everything escrowd does on chain goes through this crate: it decodes and
//! encodes raw transactions (BRC-12), Extended Format (BRC-30), Merkle paths
//! (BUMP, BRC-74) and BEEF (BRC-62 V1, BRC-96 V2, BRC-95 Atomic); it evaluates
//! scripts under the node's verification flags, computes signature hashes
//! (FORKID and original), signs and verifies with secp256k1, and verifies a
//! BEEF by SPV. It performs no I/O: SPV hands out the `(height, root)` claims
//! it relies on and takes the caller's answers.
//!
//! Every decoder reads through the bounded [`codec::Reader`], returns a small
//! `Copy` [`codec::ParseError`] with a byte offset, never panics and never
//! allocates more than the input can justify.
//!
//! # Layout
//! - [`codec`]: `Reader`, CompactSize, `ParseError`.
//! - [`hash`]: SHA-256, HASH160, [`Txid`], [`Hash256`].
//! - [`tx`]: [`Transaction`], [`TxIn`], [`TxOut`], [`Outpoint`].
//! - [`script`]: [`Script`], chunks, ASM, templates, interpreter.
//! - [`ef`]: BRC-30 Extended Format.
//! - [`keys`]: secp256k1 keys, WIF, addresses, signing.
//! - [`sighash`]: signature hashing (FORKID and original digests).
//! - [`bump`]: BRC-74 Merkle paths.
//! - [`beef`]: BRC-62/96/95 BEEF.
//! - [`spv`]: sans-io SPV verification.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod beef;
pub mod bump;
pub mod codec;
pub mod ef;
pub mod hash;
pub mod keys;
pub mod script;
pub mod sighash;
pub mod spv;
pub mod tx;

pub use codec::{ParseError, ParseErrorKind};
pub use hash::{Hash256, Txid};
pub use script::Script;
pub use tx::{Outpoint, Transaction, TxIn, TxOut};
