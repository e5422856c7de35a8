//! The [`UtxoChange`] rules, written once for every log (DESIGN.md §5,
//! `saga_core::wallet`): a log gives [`apply_changes`] a view of its `utxos`
//! table (its pending transaction, or an overlay on its maps) and writes what
//! the view collected only if every change passed.
//!
//! The rules, per change, against the output's current state (which includes
//! the earlier changes of the same list):
//!
//! | change | missing | `Available` | `Reserved` by the same saga | by another | `Spent` by the same tx | by another |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | `Add` | insert `Available` | no-op | no-op | no-op | no-op | no-op |
//! | `Reserve` | fail | `Reserved` | no-op | fail | fail | fail |
//! | `Release` | no-op | no-op | `Available` | no-op | no-op | no-op |
//! | `Spend` (saga `s`, or `None`) | fail | `Spent` | `Spent` (only if `s` is that saga) | fail | no-op | fail |
//!
//! An output is found by chain id and outpoint, whatever its basket.
//!
//! # Layout
//! - [`UtxoTable`]: the view a log provides.
//! - [`apply_changes`], [`ChangeError`], [`change_chain_id`].

use bsv_format::Outpoint;
use saga_core::wallet::{Utxo, UtxoChange, UtxoState};

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

/// The chain id a change names.
pub fn change_chain_id(change: &UtxoChange) -> &str {
    match change {
        UtxoChange::Add(u) => &u.chain_id,
        UtxoChange::Reserve { chain_id, .. }
        | UtxoChange::Release { chain_id, .. }
        | UtxoChange::Spend { chain_id, .. } => chain_id,
    }
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
    let unavailable = |chain_id: &str, outpoint: &Outpoint, reason: String| {
        Err(ChangeError::Unavailable {
            chain_id: chain_id.to_string(),
            outpoint: *outpoint,
            reason,
        })
    };
    match change {
        UtxoChange::Add(utxo) => {
            let found = table
                .find(&utxo.chain_id, &utxo.outpoint)
                .map_err(ChangeError::Table)?;
            if found.is_none() {
                table
                    .put(utxo, &UtxoState::Available)
                    .map_err(ChangeError::Table)?;
            }
            Ok(())
        }
        UtxoChange::Reserve {
            chain_id,
            outpoint,
            saga_id,
        } => match table.find(chain_id, outpoint).map_err(ChangeError::Table)? {
            None => unavailable(chain_id, outpoint, "missing".into()),
            Some((utxo, UtxoState::Available)) => table
                .put(&utxo, &UtxoState::Reserved { saga_id: *saga_id })
                .map_err(ChangeError::Table),
            Some((_, UtxoState::Reserved { saga_id: holder })) if holder == *saga_id => Ok(()),
            Some((_, state)) => unavailable(chain_id, outpoint, describe(&state)),
        },
        UtxoChange::Release {
            chain_id,
            outpoint,
            saga_id,
        } => match table.find(chain_id, outpoint).map_err(ChangeError::Table)? {
            Some((utxo, UtxoState::Reserved { saga_id: holder })) if holder == *saga_id => table
                .put(&utxo, &UtxoState::Available)
                .map_err(ChangeError::Table),
            Some(_) | None => Ok(()),
        },
        UtxoChange::Spend {
            chain_id,
            outpoint,
            spent_by,
            saga_id,
        } => match table.find(chain_id, outpoint).map_err(ChangeError::Table)? {
            None => unavailable(chain_id, outpoint, "missing".into()),
            Some((utxo, UtxoState::Available)) => table
                .put(
                    &utxo,
                    &UtxoState::Spent {
                        spent_by: *spent_by,
                    },
                )
                .map_err(ChangeError::Table),
            Some((utxo, UtxoState::Reserved { saga_id: holder })) if Some(holder) == *saga_id => {
                table
                    .put(
                        &utxo,
                        &UtxoState::Spent {
                            spent_by: *spent_by,
                        },
                    )
                    .map_err(ChangeError::Table)
            }
            Some((_, UtxoState::Spent { spent_by: by })) if by == *spent_by => Ok(()),
            Some((_, state)) => unavailable(chain_id, outpoint, describe(&state)),
        },
    }
}

/// The `reason` text of [`ChangeError::Unavailable`] for a state in the way.
fn describe(state: &UtxoState) -> String {
    match state {
        UtxoState::Available => "available".into(),
        UtxoState::Reserved { saga_id } => format!("reserved by saga {saga_id}"),
        UtxoState::Spent { spent_by } => format!("spent by {spent_by}"),
    }
}
