//! [`MemUtxoStore`]: the `utxos` tree in memory, for tests and the
//! simulated parties. Follows [`apply_change`] exactly and passes
//! [`check_utxo_store`](super::conformance::check_utxo_store).
//!
//! # Layout
//! - [`MemUtxoStore`] and its [`UtxoStore`] implementation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bsv_format::Outpoint;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};

use super::{apply_change, UtxoStore, UtxoStoreError};

/// Outputs keyed by chain id then outpoint, so one chain's outputs are
/// contiguous and in outpoint order.
type Entries = BTreeMap<(String, Outpoint), (Utxo, UtxoState)>;

/// An in-memory [`UtxoStore`]: every commit is atomic (one lock) and
/// "durable" for the life of the value.
#[derive(Debug, Default)]
pub struct MemUtxoStore {
    entries: Mutex<Entries>,
}

impl MemUtxoStore {
    /// An empty store.
    pub fn new() -> MemUtxoStore {
        MemUtxoStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>, UtxoStoreError> {
        // A poisoned lock means a thread panicked mid-commit; commits write
        // only after every change passed, but refuse rather than guess.
        self.entries
            .lock()
            .map_err(|_| UtxoStoreError::Storage("in-memory UTXO store lock poisoned".into()))
    }
}

#[async_trait]
impl UtxoStore for MemUtxoStore {
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError> {
        let entries = self.lock()?;
        Ok(entries
            .iter()
            .filter(|((chain, _), (utxo, _))| chain == chain_id && utxo.basket == basket)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError> {
        let mut entries = self.lock()?;
        // Stage every write; later changes see earlier ones. Nothing touches
        // `entries` unless all pass.
        let mut staged: Entries = BTreeMap::new();
        for change in &changes {
            let key = (change.chain_id().to_owned(), change.outpoint());
            let current = staged.get(&key).or_else(|| entries.get(&key));
            if let Some(entry) = apply_change(current, change)? {
                staged.insert(key, entry);
            }
        }
        entries.extend(staged);
        Ok(())
    }
}
