//! [`SledLog`] as the runtime's ports: [`EventLog`] and [`UtxoStore`].
//!
//! Writes (append, secrets, UTXO commits) end in an fsync, so they run on
//! tokio's blocking pool (`spawn_blocking`), never on a runtime worker; the
//! flush is sled's blocking `flush` there rather than `flush_async`, whose
//! pool may keep the files open after answering. Reads run in place: sled
//! serves them from its page cache.
//!
//! # Layout
//! - `blocking`, then the two trait implementations.

use async_trait::async_trait;
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};
use saga_runtime::log::{
    AppendError, Appended, Deadline, DeadlineQuery, EventLog, FeedEntry, Projection, ReadError,
    ReplyKey, SagaFilter, SecretBytes, SecretError, Step, TokenConsumption,
};
use saga_runtime::wallet::{UtxoStore, UtxoStoreError};

use super::{append, read, SledLog, StoredEvent};

/// Runs `f` on the blocking pool; a panic or cancellation of the task
/// becomes `fault(text)`.
async fn blocking<T, Er>(
    f: impl FnOnce() -> Result<T, Er> + Send + 'static,
    fault: fn(String) -> Er,
) -> Result<T, Er>
where
    T: Send + 'static,
    Er: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(fault(format!("store task failed: {e}"))),
    }
}

#[async_trait]
impl<E: StoredEvent> EventLog<E> for SledLog<E> {
    async fn append(&self, step: Step<E>) -> Result<Appended, AppendError> {
        let inner = self.inner.clone();
        blocking(move || append::append(&inner, step), AppendError::Storage).await
    }

    async fn load(&self, saga_id: &SagaId) -> Result<Vec<(u64, E)>, ReadError> {
        Ok(read::load_events(&self.inner.trees, saga_id)?)
    }

    async fn head(&self, saga_id: &SagaId) -> Result<u64, ReadError> {
        Ok(read::head(&self.inner.trees, saga_id)?)
    }

    async fn in_flight_sagas(&self) -> Result<Vec<SagaId>, ReadError> {
        Ok(read::in_flight(&self.inner.trees)?)
    }

    async fn feed(&self, from_cursor: u64, limit: usize) -> Result<Vec<FeedEntry<E>>, ReadError> {
        Ok(read::feed(&self.inner.trees, from_cursor, limit)?)
    }

    async fn token_consumption(
        &self,
        token_id: &TokenId,
    ) -> Result<Option<TokenConsumption>, ReadError> {
        Ok(read::token_consumption(&self.inner.trees, token_id)?)
    }

    async fn hashlock_seen(&self, hashlock: &[u8; 32]) -> Result<Option<SagaId>, ReadError> {
        Ok(read::saga_ref(
            &self.inner.trees.hashlocks,
            "hashlocks",
            hashlock,
        )?)
    }

    async fn idempotency(&self, key: &str) -> Result<Option<SagaId>, ReadError> {
        Ok(read::saga_ref(
            &self.inner.trees.idempotency,
            "idempotency",
            key.as_bytes(),
        )?)
    }

    async fn reply(&self, key: &ReplyKey) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(read::reply(&self.inner.trees, key)?)
    }

    async fn projection(&self, saga_id: &SagaId) -> Result<Option<Projection>, ReadError> {
        Ok(read::projection(&self.inner.trees, saga_id)?)
    }

    async fn list_sagas(
        &self,
        filter: &SagaFilter,
        page_after: Option<SagaId>,
        limit: usize,
    ) -> Result<Vec<Projection>, ReadError> {
        Ok(read::list_sagas(
            &self.inner.trees,
            filter,
            page_after,
            limit,
        )?)
    }

    async fn due_deadlines(
        &self,
        query: &DeadlineQuery,
    ) -> Result<Vec<(Deadline, SagaId)>, ReadError> {
        Ok(read::due_deadlines(&self.inner.trees, query)?)
    }

    async fn put_secret(
        &self,
        saga_id: &SagaId,
        name: &str,
        secret: SecretBytes,
    ) -> Result<(), SecretError> {
        let inner = self.inner.clone();
        let (saga_id, name) = (*saga_id, name.to_string());
        blocking(
            move || append::put_secret(&inner, &saga_id, &name, &secret),
            SecretError::Storage,
        )
        .await
    }

    async fn secret(&self, saga_id: &SagaId, name: &str) -> Result<Option<SecretBytes>, ReadError> {
        Ok(read::secret(&self.inner.trees, saga_id, name)?)
    }
}

#[async_trait]
impl<E: StoredEvent> UtxoStore for SledLog<E> {
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError> {
        Ok(read::utxos(&self.inner.trees, chain_id, basket)?)
    }

    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError> {
        let inner = self.inner.clone();
        blocking(
            move || append::commit_utxos(&inner, &changes),
            UtxoStoreError::Storage,
        )
        .await
    }
}
