//! The contract every [`UtxoStore`] keeps, as one suite to run against each
//! implementation (STYLE.md 13): the in-memory store here, the sled store
//! in the gateway.
//!
//! ```no_run
//! # use saga_runtime::wallet::{conformance::check_utxo_store, MemUtxoStore};
//! // In a #[tokio::test]; the sled store passes a closure opening a fresh
//! // temporary database instead.
//! # async fn run() {
//! check_utxo_store(MemUtxoStore::new).await;
//! # }
//! ```
//!
//! Each check runs on a fresh store from `make` and panics, naming the rule,
//! at the first departure from the rules of [`UtxoChange`] as
//! [`apply_change`](super::apply_change) states them: listing by chain and
//! basket in outpoint order; `Add` of a known output is a no-op; `Reserve`,
//! `Release` and `Spend` in every state; changes of one commit apply in
//! order; a refused commit writes nothing; of two concurrent reservations
//! of one output exactly one wins. Durability across a reopen is the
//! store's own test: this suite cannot reopen what `make` built.
//!
//! # Layout
//! - [`check_utxo_store`], then one private function per rule.

use std::sync::Arc;

use bsv_format::script::templates::p2pkh_lock;
use bsv_format::{Outpoint, Txid};
use saga_core::terms::SagaId;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};
use saga_core::Satoshis;

use super::{UtxoStore, UtxoStoreError};

/// Runs every rule against fresh stores from `make`.
///
/// # Panics
/// At the first rule the store breaks, with the rule's name and the values
/// seen (that is the suite's report).
pub async fn check_utxo_store<S, F>(make: F)
where
    S: UtxoStore + 'static,
    F: Fn() -> S,
{
    lists_by_chain_and_basket_in_outpoint_order(&make()).await;
    add_of_a_known_output_is_a_no_op(&make()).await;
    reserve_takes_only_available_outputs(&make()).await;
    release_frees_only_the_holders_outputs(&make()).await;
    spend_respects_reservations_and_earlier_spends(&make()).await;
    a_refused_commit_writes_nothing(&make()).await;
    changes_of_one_commit_apply_in_order(&make()).await;
    one_of_two_concurrent_reservations_wins(Arc::new(make())).await;
}

const CHAIN: &str = "chain-a";
const OTHER_CHAIN: &str = "chain-b";

fn saga(n: u8) -> SagaId {
    SagaId::new_v7(1_700_000_000_000 + u64::from(n), &[n; 10])
}

fn outpoint(tag: u8, vout: u32) -> Outpoint {
    Outpoint::new(Txid([tag; 32]), vout)
}

fn utxo(chain: &str, basket: Basket, tag: u8, vout: u32, sats: u64) -> Utxo {
    Utxo {
        chain_id: chain.to_owned(),
        basket,
        outpoint: outpoint(tag, vout),
        satoshis: Satoshis(sats),
        locking_script: p2pkh_lock(&[tag; 20]),
    }
}

fn funding(tag: u8) -> Utxo {
    utxo(CHAIN, Basket::Funding, tag, 0, 1_000 * u64::from(tag))
}

fn reserve(tag: u8, saga_id: SagaId) -> UtxoChange {
    UtxoChange::Reserve {
        chain_id: CHAIN.into(),
        outpoint: outpoint(tag, 0),
        saga_id,
    }
}

fn release(tag: u8, saga_id: SagaId) -> UtxoChange {
    UtxoChange::Release {
        chain_id: CHAIN.into(),
        outpoint: outpoint(tag, 0),
        saga_id,
    }
}

fn spend(tag: u8, by: u8, saga_id: Option<SagaId>) -> UtxoChange {
    UtxoChange::Spend {
        chain_id: CHAIN.into(),
        outpoint: outpoint(tag, 0),
        spent_by: Txid([by; 32]),
        saga_id,
    }
}

fn unavailable(tag: u8, reason: String) -> UtxoStoreError {
    UtxoStoreError::UtxoUnavailable {
        chain_id: CHAIN.into(),
        outpoint: outpoint(tag, 0),
        reason,
    }
}

async fn commit(store: &dyn UtxoStore, changes: Vec<UtxoChange>, rule: &str) {
    if let Err(e) = store.commit_utxos(changes).await {
        panic!("{rule}: commit refused: {e}");
    }
}

async fn list(store: &dyn UtxoStore, chain: &str, basket: Basket) -> Vec<(Utxo, UtxoState)> {
    match store.utxos(chain, basket).await {
        Ok(v) => v,
        Err(e) => panic!("listing {basket} on {chain}: {e}"),
    }
}

/// The state of funding output `tag` on [`CHAIN`], `None` if absent.
async fn state(store: &dyn UtxoStore, tag: u8) -> Option<UtxoState> {
    list(store, CHAIN, Basket::Funding)
        .await
        .into_iter()
        .find(|(u, _)| u.outpoint == outpoint(tag, 0))
        .map(|(_, s)| s)
}

async fn lists_by_chain_and_basket_in_outpoint_order(store: &dyn UtxoStore) {
    const RULE: &str = "listing";
    for chain in [CHAIN, OTHER_CHAIN] {
        for basket in Basket::ALL {
            assert_eq!(
                list(store, chain, basket).await,
                vec![],
                "{RULE}: a new store is empty"
            );
        }
    }
    commit(store, vec![], "an empty commit").await;
    let a3 = utxo(CHAIN, Basket::Funding, 3, 0, 300);
    let a1v1 = utxo(CHAIN, Basket::Funding, 1, 1, 110);
    let a1v0 = utxo(CHAIN, Basket::Funding, 1, 0, 100);
    let a2 = utxo(CHAIN, Basket::Inventory, 2, 0, 200);
    let b1 = utxo(OTHER_CHAIN, Basket::Funding, 1, 0, 999);
    let adds = [&a3, &a1v1, &a1v0, &a2, &b1]
        .into_iter()
        .map(|u| UtxoChange::Add(u.clone()))
        .collect();
    commit(store, adds, RULE).await;
    let avail = |u: &Utxo| (u.clone(), UtxoState::Available);
    assert_eq!(
        list(store, CHAIN, Basket::Funding).await,
        vec![avail(&a1v0), avail(&a1v1), avail(&a3)],
        "{RULE}: one chain's basket, in outpoint order (txid bytes, then vout)"
    );
    assert_eq!(
        list(store, CHAIN, Basket::Inventory).await,
        vec![avail(&a2)],
        "{RULE}"
    );
    assert_eq!(
        list(store, OTHER_CHAIN, Basket::Funding).await,
        vec![avail(&b1)],
        "{RULE}: the same outpoint on another chain is another output"
    );
    assert_eq!(
        list(store, OTHER_CHAIN, Basket::Inventory).await,
        vec![],
        "{RULE}"
    );
    assert_eq!(list(store, CHAIN, Basket::Escrow).await, vec![], "{RULE}");
}

async fn add_of_a_known_output_is_a_no_op(store: &dyn UtxoStore) {
    const RULE: &str = "Add of a known output";
    let original = funding(1);
    commit(store, vec![UtxoChange::Add(original.clone())], RULE).await;
    let mut other = utxo(CHAIN, Basket::Inventory, 1, 0, 7);
    other.locking_script = p2pkh_lock(&[9; 20]);
    commit(store, vec![UtxoChange::Add(other)], RULE).await;
    assert_eq!(
        list(store, CHAIN, Basket::Funding).await,
        vec![(original.clone(), UtxoState::Available)],
        "{RULE}: keeps the first basket, value and script"
    );
    assert_eq!(
        list(store, CHAIN, Basket::Inventory).await,
        vec![],
        "{RULE}"
    );
    commit(store, vec![reserve(1, saga(1))], RULE).await;
    commit(store, vec![UtxoChange::Add(original)], RULE).await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Reserved { saga_id: saga(1) }),
        "{RULE}: keeps the state"
    );
}

async fn reserve_takes_only_available_outputs(store: &dyn UtxoStore) {
    const RULE: &str = "Reserve";
    commit(
        store,
        vec![UtxoChange::Add(funding(1)), UtxoChange::Add(funding(2))],
        RULE,
    )
    .await;
    commit(store, vec![reserve(1, saga(1))], RULE).await;
    let held = Some(UtxoState::Reserved { saga_id: saga(1) });
    assert_eq!(state(store, 1).await, held, "{RULE}: an available output");
    commit(store, vec![reserve(1, saga(1))], RULE).await;
    assert_eq!(
        state(store, 1).await,
        held,
        "{RULE}: again by its holder is a no-op"
    );
    assert_eq!(
        store.commit_utxos(vec![reserve(1, saga(2))]).await,
        Err(unavailable(1, format!("reserved by saga {}", saga(1)))),
        "{RULE}: one reserved by another saga"
    );
    assert_eq!(state(store, 1).await, held, "{RULE}: the holder keeps it");
    assert_eq!(
        store.commit_utxos(vec![reserve(9, saga(1))]).await,
        Err(unavailable(9, "missing".into())),
        "{RULE}: a missing output"
    );
    commit(store, vec![spend(2, 0xd2, None)], RULE).await;
    assert_eq!(
        store.commit_utxos(vec![reserve(2, saga(1))]).await,
        Err(unavailable(2, format!("spent by {}", Txid([0xd2; 32])))),
        "{RULE}: a spent output"
    );
}

async fn release_frees_only_the_holders_outputs(store: &dyn UtxoStore) {
    const RULE: &str = "Release";
    commit(
        store,
        vec![UtxoChange::Add(funding(1)), reserve(1, saga(1))],
        RULE,
    )
    .await;
    commit(store, vec![release(1, saga(2))], RULE).await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Reserved { saga_id: saga(1) }),
        "{RULE}: by another saga is a no-op"
    );
    commit(store, vec![release(1, saga(1))], RULE).await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Available),
        "{RULE}: by its holder"
    );
    commit(store, vec![release(1, saga(1))], RULE).await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Available),
        "{RULE}: of an available output is a no-op"
    );
    commit(store, vec![release(9, saga(1))], RULE).await;
    assert_eq!(
        state(store, 9).await,
        None,
        "{RULE}: of a missing output is a no-op"
    );
    commit(store, vec![spend(1, 0xd1, None), release(1, saga(1))], RULE).await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Spent {
            spent_by: Txid([0xd1; 32])
        }),
        "{RULE}: of a spent output is a no-op"
    );
}

async fn spend_respects_reservations_and_earlier_spends(store: &dyn UtxoStore) {
    const RULE: &str = "Spend";
    let adds = (1..=4).map(|t| UtxoChange::Add(funding(t))).collect();
    commit(store, adds, RULE).await;
    let spent = |by: u8| {
        Some(UtxoState::Spent {
            spent_by: Txid([by; 32]),
        })
    };
    commit(store, vec![spend(1, 0xd1, None)], RULE).await;
    assert_eq!(
        state(store, 1).await,
        spent(0xd1),
        "{RULE}: available, no saga"
    );
    commit(store, vec![spend(2, 0xd2, Some(saga(1)))], RULE).await;
    assert_eq!(
        state(store, 2).await,
        spent(0xd2),
        "{RULE}: available, a saga"
    );
    commit(store, vec![reserve(3, saga(1))], RULE).await;
    let taken = unavailable(3, format!("reserved by saga {}", saga(1)));
    assert_eq!(
        store.commit_utxos(vec![spend(3, 0xd3, None)]).await,
        Err(taken.clone()),
        "{RULE}: a withdrawal (no saga) cannot spend a reserved output"
    );
    assert_eq!(
        store
            .commit_utxos(vec![spend(3, 0xd3, Some(saga(2)))])
            .await,
        Err(taken),
        "{RULE}: another saga cannot spend a reserved output"
    );
    commit(store, vec![spend(3, 0xd3, Some(saga(1)))], RULE).await;
    assert_eq!(state(store, 3).await, spent(0xd3), "{RULE}: by its holder");
    commit(store, vec![spend(3, 0xd3, Some(saga(1)))], RULE).await;
    commit(store, vec![spend(3, 0xd3, None)], RULE).await;
    assert_eq!(
        state(store, 3).await,
        spent(0xd3),
        "{RULE}: again by the same transaction is a no-op"
    );
    assert_eq!(
        store
            .commit_utxos(vec![spend(3, 0xee, Some(saga(1)))])
            .await,
        Err(unavailable(3, format!("spent by {}", Txid([0xd3; 32])))),
        "{RULE}: by another transaction"
    );
    assert_eq!(
        store.commit_utxos(vec![spend(9, 0xd9, None)]).await,
        Err(unavailable(9, "missing".into())),
        "{RULE}: a missing output"
    );
    assert_eq!(
        state(store, 4).await,
        Some(UtxoState::Available),
        "{RULE}: others untouched"
    );
}

async fn a_refused_commit_writes_nothing(store: &dyn UtxoStore) {
    const RULE: &str = "all or nothing";
    commit(
        store,
        vec![
            UtxoChange::Add(funding(1)),
            UtxoChange::Add(funding(2)),
            UtxoChange::Add(funding(3)),
            reserve(2, saga(1)),
        ],
        RULE,
    )
    .await;
    let before = list(store, CHAIN, Basket::Funding).await;
    assert_eq!(
        store
            .commit_utxos(vec![
                UtxoChange::Add(funding(4)),
                reserve(1, saga(2)),
                spend(3, 0xd3, None),
                release(2, saga(1)),
                reserve(2, saga(2)),
                reserve(5, saga(2)),
            ])
            .await,
        Err(unavailable(5, "missing".into())),
        "{RULE}: the last change fails"
    );
    assert_eq!(
        list(store, CHAIN, Basket::Funding).await,
        before,
        "{RULE}: no Add, Reserve, Spend or Release of the refused commit is visible"
    );
}

async fn changes_of_one_commit_apply_in_order(store: &dyn UtxoStore) {
    const RULE: &str = "in order";
    commit(
        store,
        vec![UtxoChange::Add(funding(1)), reserve(1, saga(1))],
        RULE,
    )
    .await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Reserved { saga_id: saga(1) }),
        "{RULE}: an output added earlier in the commit can be reserved"
    );
    assert_eq!(
        store
            .commit_utxos(vec![reserve(2, saga(1)), UtxoChange::Add(funding(2))])
            .await,
        Err(unavailable(2, "missing".into())),
        "{RULE}: not one added later"
    );
    assert_eq!(
        state(store, 2).await,
        None,
        "{RULE}: and the Add is not written"
    );
    commit(store, vec![release(1, saga(1)), reserve(1, saga(2))], RULE).await;
    assert_eq!(
        state(store, 1).await,
        Some(UtxoState::Reserved { saga_id: saga(2) }),
        "{RULE}: released then reserved by another saga"
    );
}

async fn one_of_two_concurrent_reservations_wins<S: UtxoStore + 'static>(store: Arc<S>) {
    const RULE: &str = "concurrent reservations";
    commit(store.as_ref(), vec![UtxoChange::Add(funding(1))], RULE).await;
    let race = |n: u8| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.commit_utxos(vec![reserve(1, saga(n))]).await })
    };
    let (first, second) = (race(1), race(2));
    let results = match (first.await, second.await) {
        (Ok(a), Ok(b)) => [a, b],
        (a, b) => panic!("{RULE}: a commit task did not finish: {a:?} {b:?}"),
    };
    let winner = match &results {
        [Ok(()), Err(_)] => saga(1),
        [Err(_), Ok(())] => saga(2),
        other => panic!("{RULE}: exactly one must win, got {other:?}"),
    };
    let loser_error = results.iter().find_map(|r| r.clone().err());
    assert_eq!(
        loser_error,
        Some(unavailable(1, format!("reserved by saga {winner}"))),
        "{RULE}: the loser is told who holds it"
    );
    assert_eq!(
        state(store.as_ref(), 1).await,
        Some(UtxoState::Reserved { saga_id: winner }),
        "{RULE}"
    );
}
