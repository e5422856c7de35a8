//! Applying [`UtxoChange`]s to a log's `utxos` table (DESIGN.md §5): a log
//! gives [`apply_changes`] a view of its table (its pending transaction, or
//! an overlay on its maps) and writes what the view collected only if every
//! change passed. The rule for each change against the output's current
//! state (which includes the earlier changes of the same list) is
//! [`crate::wallet::apply_change`], the one table every store shares.
//!
//! An output is found by chain id and outpoint, whatever its basket.
//!
//! # Layout
//! - [`UtxoTable`]: the view a log provides.
//! - [`apply_changes`], [`ChangeError`].

use bsv_format::Outpoint;
use saga_core::wallet::{Utxo, UtxoChange, UtxoState};

use crate::wallet::UtxoStoreError;

/// A log's `utxos` table as the rules see it: lookup by chain and outpoint,
/// and a write that the log commits later (or drops if a change fails).
pub trait UtxoTable {
    /// The table's own failure (I/O, a corrupt record).
    type Error;

    /// The output `outpoint` on `chain_id`, in any basket, with its state;
    /// it must reflect earlier [`UtxoTable::put`]s of the same apply.
    ///
    /// # Errors
    /// The table's own.
    fn find(
        &mut self,
        chain_id: &str,
        outpoint: &Outpoint,
    ) -> Result<Option<(Utxo, UtxoState)>, Self::Error>;

    /// Records `utxo` (in its basket) with `state`.
    ///
    /// # Errors
    /// The table's own.
    fn put(&mut self, utxo: &Utxo, state: &UtxoState) -> Result<(), Self::Error>;
}

/// Why [`apply_changes`] stopped; the caller then writes none of the changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError<S> {
    /// A `Reserve` or `Spend` named an output that is missing, reserved by
    /// another saga or spent by another transaction.
    #[error("output {outpoint} on chain {chain_id} is not available ({reason})")]
    Unavailable {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// `missing`, `reserved by saga <id>` or `spent by <txid>`.
        reason: String,
    },
    /// The table failed.
    #[error("utxo table: {0}")]
    Table(S),
}

/// Applies `changes` in order to `table` with the rules in the module docs.
///
/// # Errors
/// [`ChangeError::Unavailable`] at the first change that fails (the table's
/// view then holds a partial application: the caller discards it),
/// [`ChangeError::Table`].
pub fn apply_changes<T: UtxoTable>(
    table: &mut T,
    changes: &[UtxoChange],
) -> Result<(), ChangeError<T::Error>> {
    for change in changes {
        apply_one(table, change)?;
    }
    Ok(())
}

fn apply_one<T: UtxoTable>(
    table: &mut T,
    change: &UtxoChange,
) -> Result<(), ChangeError<T::Error>> {
    let current = table
        .find(change.chain_id(), &change.outpoint())
        .map_err(ChangeError::Table)?;
    // The rules themselves live in one place, shared with every UtxoStore.
    match crate::wallet::apply_change(current.as_ref(), change) {
        Ok(Some((utxo, state))) => table.put(&utxo, &state).map_err(ChangeError::Table),
        Ok(None) => Ok(()),
        Err(UtxoStoreError::UtxoUnavailable {
            chain_id,
            outpoint,
            reason,
        }) => Err(ChangeError::Unavailable {
            chain_id,
            outpoint,
            reason,
        }),
        // apply_change never touches storage; kept total all the same.
        Err(UtxoStoreError::Storage(reason)) => Err(ChangeError::Unavailable {
            chain_id: change.chain_id().to_owned(),
            outpoint: change.outpoint(),
            reason,
        }),
    }
}
