//! The ARC client, counting broadcasts per chain so a test's miner can mine
//! a block after each one (shared by tests/driver and tests/rpc), with a
//! switch that makes it unreachable (a gateway's ARC endpoint that is down).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::ef::EfTransaction;
use bsv_format::Txid;
use escrowd::chain::ArcClient;
use saga_runtime::{BroadcastError, BroadcastOutcome, Broadcaster, ServiceFault, TxStatus};

/// An [`ArcClient`] that counts its broadcasts; while `down` is set, every
/// broadcast fails as a connection failure would (status queries still
/// answer).
pub struct Counted {
    pub arc: ArcClient,
    pub broadcasts: Arc<AtomicU64>,
    pub down: Arc<AtomicBool>,
}

#[async_trait]
impl Broadcaster for Counted {
    async fn broadcast(&self, ef: &EfTransaction) -> Result<BroadcastOutcome, BroadcastError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BroadcastError::Unavailable {
                attempts: 1,
                last: ServiceFault::Connection {
                    detail: "ARC is down (test switch)".into(),
                },
            });
        }
        let outcome = self.arc.broadcast(ef).await;
        self.broadcasts.fetch_add(1, Ordering::SeqCst);
        outcome
    }

    async fn status(&self, txid: &Txid) -> Result<Option<TxStatus>, BroadcastError> {
        self.arc.status(txid).await
    }
}
