//! The wallet's view of the store: the `utxos` tree (DESIGN.md §5).
//!
//! [`UtxoStore`] is what a `Wallet` reads outputs from and commits
//! operator-driven changes (imports, withdrawals) through. Changes decided by
//! a saga step do not go through here: they ride in that step's append to the
//! event log, so events and UTXO reservations commit in one transaction.
//! Every event log implementation (the in-memory one, the sled store) also
//! implements this trait over the same data.

use async_trait::async_trait;
use bsv_format::Outpoint;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};

/// Why a set of UTXO changes was refused or could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtxoStoreError {
    /// A `Reserve` or `Spend` named an output that is missing, reserved by
    /// another saga or spent by another transaction. Nothing was written.
    #[error("output {outpoint} on chain {chain_id} is not available ({reason})")]
    UtxoUnavailable {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// `missing`, `reserved by saga <id>` or `spent by <txid>`.
        reason: String,
    },
    /// The storage failed (I/O, corruption); nothing is known to be written.
    #[error("store: {0}")]
    Storage(String),
}

/// Read and write access to the wallet's outputs.
#[async_trait]
pub trait UtxoStore: Send + Sync {
    /// Every output of `basket` on `chain_id` with its state, in outpoint
    /// order (txid bytes, then vout).
    ///
    /// # Errors
    /// [`UtxoStoreError::Storage`].
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError>;

    /// Applies `changes` all together or not at all (durable when it
    /// returns), with the rules documented on [`UtxoChange`].
    ///
    /// # Errors
    /// [`UtxoStoreError::UtxoUnavailable`] (nothing written), [`UtxoStoreError::Storage`].
    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError>;
}
