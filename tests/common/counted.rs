//! The ARC client, counting broadcasts per chain so a test's miner can mine
//! a block after each one (shared by tests/driver and tests/rpc).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::ef::EfTransaction;
use bsv_format::Txid;
use escrowd::chain::ArcClient;
use saga_runtime::{BroadcastError, BroadcastOutcome, Broadcaster, TxStatus};

/// An [`ArcClient`] that counts its broadcasts.
pub struct Counted {
    pub arc: ArcClient,
    pub broadcasts: Arc<AtomicU64>,
}

#[async_trait]
impl Broadcaster for Counted {
    async fn broadcast(&self, ef: &EfTransaction) -> Result<BroadcastOutcome, BroadcastError> {
        let outcome = self.arc.broadcast(ef).await;
        self.broadcasts.fetch_add(1, Ordering::SeqCst);
        outcome
    }

    async fn status(&self, txid: &Txid) -> Result<Option<TxStatus>, BroadcastError> {
        self.arc.status(txid).await
    }
}
