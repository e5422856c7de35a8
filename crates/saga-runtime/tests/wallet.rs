//! The wallet port over the in-memory store: the store's conformance suite;
//! reservations funded from the wallet and run through the format core's
//! interpreter with exact fee and change; two sagas racing for one output;
//! withdrawals (and their retry after losing a race); imports that refuse
//! outputs not paying our key; balances per basket.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::keys::{Network, PrivateKey};
use bsv_format::script::interpreter::{verify_input, VerifyFlags};
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::spv::{VerifiedBeef, VerifyOptions};
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use saga_core::terms::{Leg, SagaId, Terms};
use saga_core::wallet::{
    changes_when_broadcast, changes_when_funded, Basket, BasketBalance, Utxo, UtxoChange, UtxoState,
};
use saga_core::{Height, Satoshis, UnixTime};
use saga_runtime::wallet::conformance::check_utxo_store;
use saga_runtime::wallet::{
    FundedReservation, ImportReport, KeyWallet, MemUtxoStore, UtxoStore, UtxoStoreError, Wallet,
    WalletError,
};
use saga_runtime::{verify_beef, ChainTracker, TrackerError};

const RATE: u64 = 100; // sat/kB: reservation fee 36 (1 input), 51 (2); withdrawal 23 (1)

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

fn wallet_script(n: u8) -> Script {
    p2pkh_lock(&key(n).public_key().hash160())
}

fn flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle() | VerifyFlags::MINIMALIF
}

/// The testkit's terms (payment 50,000 sat on chain-p refundable at 190,
/// delivery 20,000 sat on chain-d at 230) for saga `n`.
fn terms(n: u8) -> Terms {
    let mut t =
        saga_testkit::fixtures::terms(UnixTime(1_700_000_000), Height(100), Height(200), false);
    t.saga_id = SagaId::new_v7(1_700_000_000_000, &[n; 10]);
    t
}

/// A store and a wallet with key 10 on chain-p and key 11 on chain-d.
fn wallet() -> (Arc<MemUtxoStore>, KeyWallet) {
    let store = Arc::new(MemUtxoStore::new());
    let keys = BTreeMap::from([
        ("chain-p".to_owned(), key(10)),
        ("chain-d".to_owned(), key(11)),
    ]);
    let wallet = KeyWallet::new(store.clone(), keys);
    (store, wallet)
}

fn output(chain: &str, basket: Basket, wallet_key: u8, tag: u8, sats: u64) -> Utxo {
    Utxo {
        chain_id: chain.into(),
        basket,
        outpoint: Outpoint::new(Txid([tag; 32]), 0),
        satoshis: Satoshis(sats),
        locking_script: wallet_script(wallet_key),
    }
}

fn funding_p(tag: u8, sats: u64) -> Utxo {
    output("chain-p", Basket::Funding, 10, tag, sats)
}

async fn seed(store: &MemUtxoStore, outputs: &[Utxo]) {
    store
        .commit_utxos(outputs.iter().cloned().map(UtxoChange::Add).collect())
        .await
        .unwrap();
}

async fn state_of(store: &MemUtxoStore, chain: &str, basket: Basket, op: Outpoint) -> UtxoState {
    store
        .utxos(chain, basket)
        .await
        .unwrap()
        .into_iter()
        .find(|(u, _)| u.outpoint == op)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("{op} not in {basket} on {chain}"))
}

/// Runs every input of `funded` through the interpreter and checks its
/// outputs: the escrow output of the terms, then `change` to `wallet_key`.
fn check_funded(funded: &FundedReservation, t: &Terms, leg: Leg, wallet_key: u8) {
    for (i, input) in funded.inputs.iter().enumerate() {
        assert_eq!(funded.tx.inputs[i].prev_out, input.outpoint);
        verify_input(
            &funded.tx,
            i,
            &input.locking_script,
            input.satoshis.0,
            flags(),
        )
        .unwrap();
    }
    let outs: Vec<(u64, Script)> = funded
        .tx
        .outputs
        .iter()
        .map(|o| (o.satoshis, o.locking_script.clone()))
        .collect();
    let mut expected = vec![(t.leg(leg).amount.0, t.escrow_script(leg))];
    if funded.change.0 > 0 {
        expected.push((funded.change.0, wallet_script(wallet_key)));
    }
    assert_eq!(outs, expected);
    assert_eq!(funded.escrow, Outpoint::new(funded.tx.txid(), 0));
    let inputs: u64 = funded.inputs.iter().map(|u| u.satoshis.0).sum();
    assert_eq!(inputs, t.leg(leg).amount.0 + funded.fee.0 + funded.change.0);
    assert_eq!(
        funded.changes,
        changes_when_funded(&funded.chain_id, t.saga_id, &funded.tx)
    );
}

#[tokio::test]
async fn mem_store_keeps_the_utxo_contract() {
    check_utxo_store(MemUtxoStore::new).await;
}

#[tokio::test]
async fn payment_reservation_is_funded_from_funding_with_exact_fee_and_change() {
    let (store, wallet) = wallet();
    let t = terms(1);
    let mut foreign = funding_p(5, 1_000_000);
    foreign.locking_script = wallet_script(99);
    seed(
        &store,
        &[
            funding_p(1, 30_000),
            funding_p(2, 25_000),
            funding_p(3, 21_000),
            output("chain-p", Basket::Inventory, 10, 4, 1_000_000),
            foreign,
            funding_p(6, 60_000),
        ],
    )
    .await;
    // Output 6 would be the single best input, but another saga holds it.
    store
        .commit_utxos(vec![UtxoChange::Reserve {
            chain_id: "chain-p".into(),
            outpoint: funding_p(6, 0).outpoint,
            saga_id: terms(9).saga_id,
        }])
        .await
        .unwrap();

    let funded = wallet
        .fund_reservation(&t, Leg::Payment, RATE)
        .await
        .unwrap();
    assert_eq!(
        funded.inputs,
        vec![funding_p(1, 30_000), funding_p(3, 21_000)]
    );
    assert_eq!((funded.fee, funded.change), (Satoshis(51), Satoshis(949)));
    check_funded(&funded, &t, Leg::Payment, 10);
    // Nothing committed yet.
    assert_eq!(
        state_of(&store, "chain-p", Basket::Funding, funding_p(1, 0).outpoint).await,
        UtxoState::Available
    );
}

#[tokio::test]
async fn delivery_reservation_spends_inventory_then_funding() {
    let (store, wallet) = wallet();
    let t = terms(1);
    let inventory = output("chain-d", Basket::Inventory, 11, 5, 15_000);
    let small = output("chain-d", Basket::Funding, 11, 7, 6_000);
    seed(
        &store,
        &[
            inventory.clone(),
            output("chain-d", Basket::Funding, 11, 6, 100_000),
            small.clone(),
        ],
    )
    .await;
    let funded = wallet
        .fund_reservation(&t, Leg::Delivery, RATE)
        .await
        .unwrap();
    assert_eq!(funded.inputs, vec![inventory, small]);
    assert_eq!((funded.fee, funded.change), (Satoshis(51), Satoshis(949)));
    check_funded(&funded, &t, Leg::Delivery, 11);
}

#[tokio::test]
async fn second_saga_loses_the_output_at_commit_and_funds_again_from_another() {
    let (store, wallet) = wallet();
    seed(&store, &[funding_p(1, 60_000), funding_p(2, 70_000)]).await;
    let (a, b) = (terms(1), terms(2));
    // Both select output 1 (the smallest that covers) before either commits.
    let (fa, fb) = tokio::join!(
        wallet.fund_reservation(&a, Leg::Payment, RATE),
        wallet.fund_reservation(&b, Leg::Payment, RATE)
    );
    let (fa, fb) = (fa.unwrap(), fb.unwrap());
    assert_eq!(fa.inputs, vec![funding_p(1, 60_000)]);
    assert_eq!(fb.inputs, fa.inputs);

    store.commit_utxos(fa.changes.clone()).await.unwrap();
    assert_eq!(
        store.commit_utxos(fb.changes.clone()).await,
        Err(UtxoStoreError::UtxoUnavailable {
            chain_id: "chain-p".into(),
            outpoint: funding_p(1, 0).outpoint,
            reason: format!("reserved by saga {}", a.saga_id),
        })
    );
    let again = wallet
        .fund_reservation(&b, Leg::Payment, RATE)
        .await
        .unwrap();
    assert_eq!(again.inputs, vec![funding_p(2, 70_000)]);
    assert_eq!((again.fee, again.change), (Satoshis(36), Satoshis(19_964)));
    check_funded(&again, &b, Leg::Payment, 10);
    store.commit_utxos(again.changes).await.unwrap();
    assert_eq!(
        state_of(&store, "chain-p", Basket::Funding, funding_p(2, 0).outpoint).await,
        UtxoState::Reserved { saga_id: b.saga_id }
    );
}

#[tokio::test]
async fn funding_refusals_name_chain_baskets_and_amounts() {
    let (store, wallet) = wallet();
    let mut t = terms(1);
    t.payment.chain_id = "chain-x".into();
    assert_eq!(
        wallet.fund_reservation(&t, Leg::Payment, RATE).await,
        Err(WalletError::UnknownChain {
            chain_id: "chain-x".into()
        })
    );
    let t = terms(1);
    assert_eq!(
        wallet.fund_reservation(&t, Leg::Delivery, RATE).await,
        Err(WalletError::InsufficientFunds {
            chain_id: "chain-d".into(),
            baskets: vec![Basket::Inventory, Basket::Funding],
            needed: Satoshis(20_036),
            available: Satoshis(0),
        })
    );
    seed(
        &store,
        &[
            output("chain-d", Basket::Inventory, 11, 1, 5_000),
            output("chain-d", Basket::Funding, 11, 2, 6_000),
        ],
    )
    .await;
    let e = wallet
        .fund_reservation(&t, Leg::Delivery, RATE)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        WalletError::InsufficientFunds {
            chain_id: "chain-d".into(),
            baskets: vec![Basket::Inventory, Basket::Funding],
            needed: Satoshis(20_051),
            available: Satoshis(11_000),
        }
    );
    assert_eq!(
        e.to_string(),
        "insufficient funds on chain chain-d in inventory then funding: 20051 sat needed (amount + fee), 11000 sat available"
    );
}

#[tokio::test]
async fn balances_follow_a_reservation_through_its_steps() {
    let (store, wallet) = wallet();
    let t = terms(1);
    seed(
        &store,
        &[
            funding_p(1, 30_000),
            funding_p(2, 25_000),
            funding_p(3, 21_000),
            output("chain-d", Basket::Inventory, 11, 4, 7_000),
        ],
    )
    .await;
    let funded = wallet
        .fund_reservation(&t, Leg::Payment, RATE)
        .await
        .unwrap();
    store.commit_utxos(funded.changes.clone()).await.unwrap();
    let b = wallet.balances().await.unwrap();
    assert_eq!(
        b.basket("chain-p", Basket::Funding),
        BasketBalance {
            available: Satoshis(25_000),
            available_outputs: 1,
            reserved: Satoshis(51_000),
            reserved_outputs: 2,
        }
    );
    assert_eq!(
        b.basket("chain-d", Basket::Inventory).available,
        Satoshis(7_000)
    );

    store
        .commit_utxos(changes_when_broadcast("chain-p", t.saga_id, &funded.tx))
        .await
        .unwrap();
    let b = wallet.balances().await.unwrap();
    assert_eq!(
        b.basket("chain-p", Basket::Funding),
        BasketBalance {
            available: Satoshis(25_949),
            available_outputs: 2,
            reserved: Satoshis(0),
            reserved_outputs: 0,
        }
    );
    assert_eq!(
        b.basket("chain-p", Basket::Escrow),
        BasketBalance {
            available: Satoshis(0),
            available_outputs: 0,
            reserved: Satoshis(50_000),
            reserved_outputs: 1,
        }
    );
    assert_eq!(b.iter().count(), 3);
}

#[tokio::test]
async fn withdrawal_commits_its_spends_and_change_before_it_is_returned() {
    let (store, wallet) = wallet();
    seed(&store, &[funding_p(1, 30_000), funding_p(2, 8_000)]).await;
    let payee = [0x20; 20];
    let w = wallet
        .withdraw("chain-p", &payee, Satoshis(25_000), RATE)
        .await
        .unwrap();
    assert_eq!((w.fee, w.change), (Satoshis(23), Satoshis(4_977)));
    verify_input(&w.tx, 0, &wallet_script(10), 30_000, flags()).unwrap();
    let outs: Vec<(u64, Script)> =
        w.tx.outputs
            .iter()
            .map(|o| (o.satoshis, o.locking_script.clone()))
            .collect();
    assert_eq!(
        outs,
        vec![(25_000, p2pkh_lock(&payee)), (4_977, wallet_script(10))]
    );
    let txid = w.tx.txid();
    assert_eq!(store.utxos("chain-p", Basket::Funding).await.unwrap(), {
        let mut v = vec![
            (funding_p(1, 30_000), UtxoState::Spent { spent_by: txid }),
            (funding_p(2, 8_000), UtxoState::Available),
            (
                Utxo {
                    chain_id: "chain-p".into(),
                    basket: Basket::Funding,
                    outpoint: Outpoint::new(txid, 1),
                    satoshis: Satoshis(4_977),
                    locking_script: wallet_script(10),
                },
                UtxoState::Available,
            ),
        ];
        v.sort_by_key(|(u, _)| u.outpoint);
        v
    });

    assert_eq!(
        wallet.withdraw("chain-p", &payee, Satoshis(0), RATE).await,
        Err(WalletError::AmountBelowDust {
            amount: Satoshis(0)
        })
    );
    assert_eq!(
        wallet.withdraw("chain-x", &payee, Satoshis(1), RATE).await,
        Err(WalletError::UnknownChain {
            chain_id: "chain-x".into()
        })
    );
    // 8,000 + 4,977 left; two inputs cost 38 in fee.
    assert_eq!(
        wallet
            .withdraw("chain-p", &payee, Satoshis(13_000), RATE)
            .await,
        Err(WalletError::InsufficientFunds {
            chain_id: "chain-p".into(),
            baskets: vec![Basket::Funding, Basket::Received],
            needed: Satoshis(13_038),
            available: Satoshis(12_977),
        })
    );
}

/// A store where a saga reserves the first input of the first commit just
/// before it lands, as a concurrent driver append would.
struct Racing {
    inner: MemUtxoStore,
    raced: AtomicBool,
}

#[async_trait]
impl UtxoStore for Racing {
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError> {
        self.inner.utxos(chain_id, basket).await
    }

    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let first = &changes[0];
            self.inner
                .commit_utxos(vec![UtxoChange::Reserve {
                    chain_id: first.chain_id().to_owned(),
                    outpoint: first.outpoint(),
                    saga_id: terms(9).saga_id,
                }])
                .await?;
        }
        self.inner.commit_utxos(changes).await
    }
}

#[tokio::test]
async fn withdrawal_that_loses_its_output_to_a_saga_selects_again() {
    let store = Arc::new(Racing {
        inner: MemUtxoStore::new(),
        raced: AtomicBool::new(false),
    });
    seed(&store.inner, &[funding_p(1, 30_000), funding_p(2, 40_000)]).await;
    let wallet = KeyWallet::new(
        store.clone(),
        BTreeMap::from([("chain-p".to_owned(), key(10))]),
    );
    let w = wallet
        .withdraw("chain-p", &[0x20; 20], Satoshis(25_000), RATE)
        .await
        .unwrap();
    assert_eq!(w.tx.inputs[0].prev_out, funding_p(2, 0).outpoint);
    assert_eq!(w.change, Satoshis(14_977));
    let op1 = funding_p(1, 0).outpoint;
    assert_eq!(
        state_of(&store.inner, "chain-p", Basket::Funding, op1).await,
        UtxoState::Reserved {
            saga_id: terms(9).saga_id
        }
    );
}

// ---------------------------------------------------------------------------
// Imports

/// Confirms every root, tip 500.
struct Tracker;

#[async_trait]
impl ChainTracker for Tracker {
    async fn is_valid_root_for_height(&self, _: &Hash256, _: u32) -> Result<bool, TrackerError> {
        Ok(true)
    }
    async fn current_height(&self) -> Result<u32, TrackerError> {
        Ok(500)
    }
}

/// A mined transaction paying 30,000 to key 10, 10,000 to key 20 and 5,000
/// to key 10, SPV-verified.
async fn verified_funding() -> VerifiedBeef {
    let tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([3; 32]), 0),
            unlocking_script: Script::from_bytes(vec![0x51]),
            sequence: 0xffff_ffff,
        }],
        outputs: [(30_000, 10), (10_000, 20), (5_000, 10)]
            .into_iter()
            .map(|(satoshis, k)| TxOut {
                satoshis,
                locking_script: wallet_script(k),
            })
            .collect(),
        lock_time: 0,
    };
    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(MerklePath::from_block(400, &[Txid([1; 32]), tx.txid()], &[1]).unwrap());
    beef.add_transaction(tx);
    verify_beef(&Tracker, beef, &VerifyOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn import_takes_only_outputs_paying_our_key() {
    let (_, wallet) = wallet();
    let verified = verified_funding().await;
    let txid = verified.subject();
    let ours = |vout: u32, sats: u64| Utxo {
        chain_id: "chain-p".into(),
        basket: Basket::Funding,
        outpoint: Outpoint::new(txid, vout),
        satoshis: Satoshis(sats),
        locking_script: wallet_script(10),
    };
    let report = wallet
        .import_funding("chain-p", &verified, None, Basket::Funding)
        .await
        .unwrap();
    assert_eq!(
        report,
        ImportReport {
            txid,
            imported: vec![ours(0, 30_000), ours(2, 5_000)],
            not_ours: vec![1],
        }
    );
    let funded = BasketBalance {
        available: Satoshis(35_000),
        available_outputs: 2,
        reserved: Satoshis(0),
        reserved_outputs: 0,
    };
    assert_eq!(
        wallet
            .balances()
            .await
            .unwrap()
            .basket("chain-p", Basket::Funding),
        funded
    );

    // Again, or into another basket: known outputs are not added twice.
    wallet
        .import_funding("chain-p", &verified, Some(&[0]), Basket::Inventory)
        .await
        .unwrap();
    let b = wallet.balances().await.unwrap();
    assert_eq!(b.basket("chain-p", Basket::Funding), funded);
    assert_eq!(
        b.basket("chain-p", Basket::Inventory),
        BasketBalance::default()
    );

    assert_eq!(
        wallet
            .import_funding("chain-p", &verified, Some(&[1]), Basket::Funding)
            .await,
        Err(WalletError::NotOurs {
            chain_id: "chain-p".into(),
            txid,
            vouts: vec![1],
        })
    );
    // Our key on chain-d is key 11: nothing here pays it.
    assert_eq!(
        wallet
            .import_funding("chain-d", &verified, None, Basket::Funding)
            .await,
        Err(WalletError::NotOurs {
            chain_id: "chain-d".into(),
            txid,
            vouts: vec![0, 1, 2],
        })
    );
    assert_eq!(
        wallet
            .import_funding("chain-p", &verified, Some(&[0, 7]), Basket::Funding)
            .await,
        Err(WalletError::NoSuchOutput { txid, vout: 7 })
    );
    assert_eq!(
        wallet
            .import_funding("chain-p", &verified, None, Basket::Escrow)
            .await,
        Err(WalletError::NotImportable {
            basket: Basket::Escrow
        })
    );
    assert_eq!(
        wallet
            .import_funding("chain-x", &verified, None, Basket::Funding)
            .await,
        Err(WalletError::UnknownChain {
            chain_id: "chain-x".into()
        })
    );
}

#[test]
fn debug_names_chains_and_never_keys() {
    let (_, wallet) = wallet();
    let shown = format!("{wallet:?}");
    assert_eq!(shown, r#"KeyWallet { chains: ["chain-d", "chain-p"], .. }"#);
    for k in [key(10), key(11)] {
        assert!(!shown.contains(&hex_of(&k.to_bytes())));
        assert!(!shown.contains(&k.to_wif(Network::Mainnet)));
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
