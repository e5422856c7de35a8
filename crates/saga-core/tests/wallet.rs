//! Coin selection, withdrawals, the UTXO changes of each reservation step and
//! balances: table tests with exact numbers, reservations built from a
//! selection and run through the format core's interpreter (fee and change
//! must equal the selection's), and property tests of the selection rules.

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::interpreter::{verify_input, VerifyFlags};
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::{Outpoint, Script, Transaction, Txid};
use proptest::prelude::*;
use saga_core::legs::{self, FundingInput};
use saga_core::policy::PolicyId;
use saga_core::terms::{Leg, LegTerms, PartyTerms, SagaId, Terms};
use saga_core::wallet::{
    balances, build_withdrawal, changes_when_abandoned, changes_when_broadcast,
    changes_when_funded, changes_when_withdrawn, select_coins, select_coins_preferring, Basket,
    BasketBalance, Selection, SelectionError, TxShape, Utxo, UtxoChange, UtxoState,
};
use saga_core::{Height, Satoshis, UnixTime};

const RATE: u64 = 100; // sat/kB: reservation fees 36 (1 input), 51 (2), 65 (3)

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

fn wallet_script(n: u8) -> Script {
    p2pkh_lock(&key(n).public_key().hash160())
}

fn flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle() | VerifyFlags::MINIMALIF
}

/// Buyer: saga 1, escrow 2 and 3; seller: 4, 5, 6. Wallet keys: buyer 10 on
/// chain-p, seller 11 on chain-d. Payment 50,000 sat, delivery 20,000 sat.
fn terms() -> Terms {
    Terms {
        saga_id: SagaId::new_v7(1_700_000_000_000, &[7; 10]),
        buyer: PartyTerms {
            spiffe_id: "spiffe://org-a.example/gateway/ga".into(),
            saga_key: key(1).public_key(),
            payment_escrow_key: key(2).public_key(),
            delivery_escrow_key: key(3).public_key(),
        },
        seller: PartyTerms {
            spiffe_id: "spiffe://org-b.example/gateway/gb".into(),
            saga_key: key(4).public_key(),
            payment_escrow_key: key(5).public_key(),
            delivery_escrow_key: key(6).public_key(),
        },
        notary: None,
        payment: LegTerms {
            chain_id: "chain-p".into(),
            amount: Satoshis(50_000),
            refund_height: Height(190),
            confirmations: 1,
        },
        delivery: LegTerms {
            chain_id: "chain-d".into(),
            amount: Satoshis(20_000),
            refund_height: Height(230),
            confirmations: 1,
        },
        hash_lock: sha256(&[0x5a; 32]),
        quote_expiry: UnixTime(1_700_000_030),
        reservation_deadline: UnixTime(1_700_000_300),
        policy_id: PolicyId::of("fast-test.toml", b"fixture policy bytes"),
    }
}

/// An output of `sats` at `tag`-filled txid, vout 0, paying wallet key 10 on chain-p.
fn utxo(tag: u8, sats: u64) -> Utxo {
    utxo_on("chain-p", Basket::Funding, 10, tag, sats)
}

fn utxo_on(chain: &str, basket: Basket, wallet: u8, tag: u8, sats: u64) -> Utxo {
    Utxo {
        chain_id: chain.into(),
        basket,
        outpoint: Outpoint::new(Txid([tag; 32]), 0),
        satoshis: Satoshis(sats),
        locking_script: wallet_script(wallet),
    }
}

fn values(s: &Selection) -> Vec<u64> {
    s.inputs.iter().map(|u| u.satoshis.0).collect()
}

// ---------------------------------------------------------------------------
// Shapes and fees

#[test]
fn shapes_have_the_sizes_of_their_transactions() {
    assert_eq!(TxShape::RESERVATION.signed_size(1), 352);
    assert_eq!(TxShape::RESERVATION.signed_size(2), 501);
    assert_eq!(TxShape::P2PKH_PAYMENT.signed_size(1), 229);
    assert_eq!(TxShape::RESERVATION.fee(1, RATE), Satoshis(36));
    assert_eq!(TxShape::RESERVATION.fee(2, RATE), Satoshis(51));
    assert_eq!(TxShape::P2PKH_PAYMENT.fee(1, RATE), Satoshis(23));
}

/// At 1000 sat/kB the fee is the size in bytes: the reservation shape counts
/// exactly what `build_reservation` counts, for any number of inputs.
#[test]
fn reservation_shape_counts_what_build_reservation_counts() {
    let t = terms();
    for n in 1..=6u8 {
        let inputs: Vec<FundingInput> = (1..=n).map(|i| utxo(i, 100_000).funding_input()).collect();
        let r =
            legs::build_reservation(&t, Leg::Payment, &inputs, &wallet_script(10), 1000).unwrap();
        assert_eq!(
            r.fee.0,
            TxShape::RESERVATION.signed_size(n.into()) as u64,
            "{n} inputs"
        );
    }
}

// ---------------------------------------------------------------------------
// Selection tables

#[test]
fn one_input_is_the_smallest_that_covers() {
    let candidates = [
        utxo(1, 10_000),
        utxo(2, 60_000),
        utxo(3, 200_000),
        utxo(4, 55_000),
    ];
    let s = select_coins(&candidates, Satoshis(50_000), RATE, TxShape::RESERVATION).unwrap();
    assert_eq!(s.inputs, vec![utxo(4, 55_000)]);
    assert_eq!((s.fee, s.change), (Satoshis(36), Satoshis(4_964)));
}

#[test]
fn equal_values_go_to_the_lower_outpoint_whatever_the_order() {
    let a = [utxo(9, 60_000), utxo(2, 60_000)];
    let b = [utxo(2, 60_000), utxo(9, 60_000)];
    for c in [&a, &b] {
        let s = select_coins(c, Satoshis(50_000), RATE, TxShape::RESERVATION).unwrap();
        assert_eq!(s.inputs, vec![utxo(2, 60_000)]);
    }
}

#[test]
fn fewest_inputs_then_the_smallest_last_input_that_covers() {
    let candidates = [
        utxo(1, 30_000),
        utxo(2, 25_000),
        utxo(3, 21_000),
        utxo(4, 5_000),
        utxo(5, 4_000),
    ];
    let s = select_coins(&candidates, Satoshis(50_000), RATE, TxShape::RESERVATION).unwrap();
    // 30,000 + 21,000 covers 50,000 + 51; 30,000 + 5,000 does not.
    assert_eq!(s.inputs, vec![utxo(1, 30_000), utxo(3, 21_000)]);
    assert_eq!((s.fee, s.change), (Satoshis(51), Satoshis(949)));
}

#[test]
fn exact_amount_pays_no_change_and_one_satoshi_more_is_change() {
    let s = select_coins(
        &[utxo(1, 50_036)],
        Satoshis(50_000),
        RATE,
        TxShape::RESERVATION,
    )
    .unwrap();
    assert_eq!((s.fee, s.change), (Satoshis(36), Satoshis(0)));
    let s = select_coins(
        &[utxo(1, 50_037)],
        Satoshis(50_000),
        RATE,
        TxShape::RESERVATION,
    )
    .unwrap();
    assert_eq!((s.fee, s.change), (Satoshis(36), Satoshis(1)));
}

#[test]
fn zero_fee_rate_pays_no_fee() {
    let s = select_coins(
        &[utxo(1, 50_000)],
        Satoshis(50_000),
        0,
        TxShape::RESERVATION,
    )
    .unwrap();
    assert_eq!((s.fee, s.change), (Satoshis(0), Satoshis(0)));
}

#[test]
fn refusals_name_the_fault() {
    let shape = TxShape::RESERVATION;
    assert_eq!(
        select_coins(&[], Satoshis(1), RATE, shape),
        Err(SelectionError::NoCandidates)
    );
    assert_eq!(
        select_coins(
            &[utxo(1, 10_000), utxo(2, 20_000)],
            Satoshis(50_000),
            RATE,
            shape
        ),
        Err(SelectionError::InsufficientFunds {
            needed: Satoshis(50_051),
            available: Satoshis(30_000),
        })
    );
    // Short by the fee alone.
    assert_eq!(
        select_coins(&[utxo(1, 50_035)], Satoshis(50_000), RATE, shape),
        Err(SelectionError::InsufficientFunds {
            needed: Satoshis(50_036),
            available: Satoshis(50_035),
        })
    );
    assert_eq!(
        select_coins(&[utxo(1, 10), utxo(1, 20)], Satoshis(1), RATE, shape),
        Err(SelectionError::DuplicateCandidate {
            outpoint: Outpoint::new(Txid([1; 32]), 0),
        })
    );
    let other = utxo_on("chain-d", Basket::Funding, 10, 2, 10);
    assert_eq!(
        select_coins(&[utxo(1, 10), other], Satoshis(1), RATE, shape),
        Err(SelectionError::MixedChains {
            expected: "chain-p".into(),
            found: "chain-d".into(),
        })
    );
    // Amounts near u64::MAX: reported saturated, nothing wraps.
    assert_eq!(
        select_coins(&[utxo(1, u64::MAX)], Satoshis(u64::MAX), RATE, shape),
        Err(SelectionError::InsufficientFunds {
            needed: Satoshis(u64::MAX),
            available: Satoshis(u64::MAX),
        })
    );
    let s = select_coins(
        &[utxo(1, u64::MAX), utxo(2, u64::MAX)],
        Satoshis(u64::MAX - 100),
        RATE,
        shape,
    )
    .unwrap();
    assert_eq!(
        (values(&s), s.fee, s.change),
        (vec![u64::MAX], Satoshis(36), Satoshis(64))
    );
}

fn inventory(tag: u8, sats: u64) -> Utxo {
    utxo_on("chain-d", Basket::Inventory, 11, tag, sats)
}

fn funding_d(tag: u8, sats: u64) -> Utxo {
    utxo_on("chain-d", Basket::Funding, 11, tag, sats)
}

#[test]
fn delivery_spends_inventory_first_then_tops_up_from_funding() {
    let shape = TxShape::RESERVATION;
    // Inventory alone covers: funding untouched.
    let s = select_coins_preferring(
        &[inventory(5, 25_000)],
        &[funding_d(6, 100_000)],
        Satoshis(20_000),
        RATE,
        shape,
    )
    .unwrap();
    assert_eq!(s.inputs, vec![inventory(5, 25_000)]);
    assert_eq!((s.fee, s.change), (Satoshis(36), Satoshis(4_964)));
    // It does not: all of it, and the smallest funding output that covers the rest.
    let s = select_coins_preferring(
        &[inventory(5, 15_000)],
        &[funding_d(6, 100_000), funding_d(7, 6_000)],
        Satoshis(20_000),
        RATE,
        shape,
    )
    .unwrap();
    assert_eq!(s.inputs, vec![inventory(5, 15_000), funding_d(7, 6_000)]);
    assert_eq!((s.fee, s.change), (Satoshis(51), Satoshis(949)));
    // Neither: the shortfall counts both.
    assert_eq!(
        select_coins_preferring(
            &[inventory(5, 5_000)],
            &[funding_d(6, 6_000)],
            Satoshis(20_000),
            RATE,
            shape
        ),
        Err(SelectionError::InsufficientFunds {
            needed: Satoshis(20_051),
            available: Satoshis(11_000),
        })
    );
    // The same outpoint in both lists is a caller bug.
    assert_eq!(
        select_coins_preferring(
            &[inventory(5, 5_000)],
            &[funding_d(5, 6_000)],
            Satoshis(1),
            RATE,
            shape
        ),
        Err(SelectionError::DuplicateCandidate {
            outpoint: Outpoint::new(Txid([5; 32]), 0),
        })
    );
}

// ---------------------------------------------------------------------------
// Reservations and withdrawals from a selection, through the interpreter

/// Builds the reservation from `selection`, checks fee and change equal the
/// selection's, signs with `wallet` and runs every input's scripts.
fn reservation_from(selection: &Selection, leg: Leg, wallet: u8) -> Transaction {
    let t = terms();
    let inputs = selection.funding_inputs();
    let mut r = legs::build_reservation(&t, leg, &inputs, &wallet_script(wallet), RATE).unwrap();
    assert_eq!((r.fee, r.change), (selection.fee, selection.change));
    legs::sign_p2pkh_inputs(&mut r.tx, 0, &inputs, &key(wallet)).unwrap();
    for (i, input) in inputs.iter().enumerate() {
        verify_input(&r.tx, i, &input.locking_script, input.satoshis.0, flags()).unwrap();
    }
    assert_eq!(
        legs::check_reservation_output(&r.tx, 0, &t, leg),
        Ok(r.escrow_outpoint())
    );
    // The fee was computed on an upper bound of the signed size.
    assert!(r.tx.size() <= TxShape::RESERVATION.signed_size(inputs.len()));
    r.tx
}

#[test]
fn reservation_from_a_selection_has_its_fee_and_change_and_verifies() {
    let candidates = [utxo(1, 30_000), utxo(2, 25_000), utxo(3, 21_000)];
    let s = select_coins(&candidates, Satoshis(50_000), RATE, TxShape::RESERVATION).unwrap();
    let tx = reservation_from(&s, Leg::Payment, 10);
    let outs: Vec<(u64, Script)> = tx
        .outputs
        .iter()
        .map(|o| (o.satoshis, o.locking_script.clone()))
        .collect();
    assert_eq!(
        outs,
        vec![
            (50_000, terms().escrow_script(Leg::Payment)),
            (949, wallet_script(10)),
        ]
    );

    // Exact: no change output.
    let s = select_coins(
        &[utxo(1, 50_036)],
        Satoshis(50_000),
        RATE,
        TxShape::RESERVATION,
    )
    .unwrap();
    let tx = reservation_from(&s, Leg::Payment, 10);
    assert_eq!(tx.outputs.len(), 1);

    // Delivery from inventory topped up with funding.
    let s = select_coins_preferring(
        &[inventory(5, 15_000)],
        &[funding_d(6, 100_000), funding_d(7, 6_000)],
        Satoshis(20_000),
        RATE,
        TxShape::RESERVATION,
    )
    .unwrap();
    let tx = reservation_from(&s, Leg::Delivery, 11);
    assert_eq!(tx.outputs[1].satoshis, 949);
}

#[test]
fn withdrawal_pays_the_amount_and_change_and_verifies() {
    let candidates = [utxo(1, 30_000), utxo(2, 8_000)];
    let s = select_coins(&candidates, Satoshis(25_000), RATE, TxShape::P2PKH_PAYMENT).unwrap();
    assert_eq!(
        (values(&s), s.fee, s.change),
        (vec![30_000], Satoshis(23), Satoshis(4_977))
    );
    let to = wallet_script(20);
    let mut tx = build_withdrawal(&s, &to, Satoshis(25_000), &wallet_script(10));
    let inputs = s.funding_inputs();
    legs::sign_p2pkh_inputs(&mut tx, 0, &inputs, &key(10)).unwrap();
    verify_input(&tx, 0, &inputs[0].locking_script, 30_000, flags()).unwrap();
    let outs: Vec<(u64, Script)> = tx
        .outputs
        .iter()
        .map(|o| (o.satoshis, o.locking_script.clone()))
        .collect();
    assert_eq!(outs, vec![(25_000, to), (4_977, wallet_script(10))]);
    assert!(tx.size() <= TxShape::P2PKH_PAYMENT.signed_size(1));
}

// ---------------------------------------------------------------------------
// The changes of each step

#[test]
fn each_reservation_step_makes_its_changes() {
    let t = terms();
    let saga = t.saga_id;
    let candidates = [utxo(1, 30_000), utxo(3, 21_000)];
    let s = select_coins(&candidates, Satoshis(50_000), RATE, TxShape::RESERVATION).unwrap();
    let tx = reservation_from(&s, Leg::Payment, 10);
    let txid = tx.txid();
    let op = |tag: u8| Outpoint::new(Txid([tag; 32]), 0);
    let reserve = |outpoint| UtxoChange::Reserve {
        chain_id: "chain-p".into(),
        outpoint,
        saga_id: saga,
    };
    assert_eq!(
        changes_when_funded("chain-p", saga, &tx),
        vec![reserve(op(1)), reserve(op(3))]
    );
    let spend = |outpoint| UtxoChange::Spend {
        chain_id: "chain-p".into(),
        outpoint,
        spent_by: txid,
        saga_id: Some(saga),
    };
    let escrow = Outpoint::new(txid, 0);
    assert_eq!(
        changes_when_broadcast("chain-p", saga, &tx),
        vec![
            spend(op(1)),
            spend(op(3)),
            UtxoChange::Add(Utxo {
                chain_id: "chain-p".into(),
                basket: Basket::Funding,
                outpoint: Outpoint::new(txid, 1),
                satoshis: Satoshis(949),
                locking_script: wallet_script(10),
            }),
            UtxoChange::Add(Utxo {
                chain_id: "chain-p".into(),
                basket: Basket::Escrow,
                outpoint: escrow,
                satoshis: Satoshis(50_000),
                locking_script: t.escrow_script(Leg::Payment),
            }),
            reserve(escrow),
        ]
    );
    let release = |outpoint| UtxoChange::Release {
        chain_id: "chain-p".into(),
        outpoint,
        saga_id: saga,
    };
    assert_eq!(
        changes_when_abandoned("chain-p", saga, &tx),
        vec![release(op(1)), release(op(3))]
    );

    // Without change, nothing goes back to funding.
    let s = select_coins(
        &[utxo(1, 50_036)],
        Satoshis(50_000),
        RATE,
        TxShape::RESERVATION,
    )
    .unwrap();
    let tx = reservation_from(&s, Leg::Payment, 10);
    let changes = changes_when_broadcast("chain-p", saga, &tx);
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(!changes
        .iter()
        .any(|c| matches!(c, UtxoChange::Add(u) if u.basket == Basket::Funding)));
}

#[test]
fn a_withdrawal_spends_its_inputs_and_adds_its_change() {
    let s = select_coins(
        &[utxo(1, 30_000)],
        Satoshis(25_000),
        RATE,
        TxShape::P2PKH_PAYMENT,
    )
    .unwrap();
    let tx = build_withdrawal(&s, &wallet_script(20), Satoshis(25_000), &wallet_script(10));
    let txid = tx.txid();
    assert_eq!(
        changes_when_withdrawn("chain-p", &tx),
        vec![
            UtxoChange::Spend {
                chain_id: "chain-p".into(),
                outpoint: Outpoint::new(Txid([1; 32]), 0),
                spent_by: txid,
                saga_id: None,
            },
            UtxoChange::Add(Utxo {
                chain_id: "chain-p".into(),
                basket: Basket::Funding,
                outpoint: Outpoint::new(txid, 1),
                satoshis: Satoshis(4_977),
                locking_script: wallet_script(10),
            }),
        ]
    );
}

// ---------------------------------------------------------------------------
// Balances

#[test]
fn balances_count_available_and_reserved_per_chain_and_basket() {
    let saga = terms().saga_id;
    let spent = UtxoState::Spent {
        spent_by: Txid([0xee; 32]),
    };
    let reserved = UtxoState::Reserved { saga_id: saga };
    let outputs = vec![
        (utxo(1, 10_000), UtxoState::Available),
        (utxo(2, 20_000), reserved.clone()),
        (utxo(3, 5_000), spent.clone()),
        (utxo(4, 1_000), UtxoState::Available),
        (utxo_on("chain-p", Basket::Escrow, 2, 5, 50_000), reserved),
        (utxo_on("chain-p", Basket::Received, 2, 6, 49_000), spent),
        (inventory(7, 7_000), UtxoState::Available),
    ];
    let b = balances(&outputs);
    assert_eq!(
        b.basket("chain-p", Basket::Funding),
        BasketBalance {
            available: Satoshis(11_000),
            available_outputs: 2,
            reserved: Satoshis(20_000),
            reserved_outputs: 1,
        }
    );
    assert_eq!(
        b.basket("chain-p", Basket::Funding).total(),
        Satoshis(31_000)
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
    assert_eq!(
        b.basket("chain-d", Basket::Inventory).available,
        Satoshis(7_000)
    );
    assert_eq!(
        b.basket("chain-d", Basket::Funding),
        BasketBalance::default()
    );
    let listed: Vec<(&str, Basket)> = b.iter().map(|(c, k, _)| (c, k)).collect();
    assert_eq!(
        listed,
        vec![
            ("chain-d", Basket::Inventory),
            ("chain-p", Basket::Funding),
            ("chain-p", Basket::Escrow),
        ]
    );
    assert!(balances(&[]).is_empty());
}

// ---------------------------------------------------------------------------
// Properties

fn arb_candidates(max_value: u64) -> impl Strategy<Value = Vec<Utxo>> {
    proptest::collection::vec((0..=max_value, any::<u8>(), 0u32..4), 0..12).prop_map(|v| {
        let mut seen = std::collections::BTreeSet::new();
        v.into_iter()
            .filter(|(_, tag, vout)| seen.insert((*tag, *vout)))
            .map(|(sats, tag, vout)| {
                let mut u = utxo(tag, sats);
                u.outpoint.vout = vout;
                u
            })
            .collect()
    })
}

/// The sum of the `k` largest values.
fn largest_sum(candidates: &[Utxo], k: usize) -> u128 {
    let mut v: Vec<u128> = candidates
        .iter()
        .map(|u| u128::from(u.satoshis.0))
        .collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.iter().take(k).sum()
}

fn check_selection(
    candidates: &[Utxo],
    target: u64,
    rate: u64,
    shape: TxShape,
) -> Result<(), TestCaseError> {
    let result = select_coins(candidates, Satoshis(target), rate, shape);
    let need = |k: usize| u128::from(target) + u128::from(shape.fee(k, rate).0);
    match &result {
        Ok(s) => {
            let n = s.inputs.len();
            let sum: u128 = s.inputs.iter().map(|u| u128::from(u.satoshis.0)).sum();
            prop_assert!(sum >= need(n));
            prop_assert_eq!(s.fee, shape.fee(n, rate));
            prop_assert_eq!(
                sum,
                u128::from(target) + u128::from(s.fee.0) + u128::from(s.change.0)
            );
            let mut outpoints: Vec<Outpoint> = s.inputs.iter().map(|u| u.outpoint).collect();
            let sorted = {
                let mut o = outpoints.clone();
                o.sort();
                o
            };
            prop_assert_eq!(&outpoints, &sorted, "inputs in outpoint order");
            outpoints.dedup();
            prop_assert_eq!(outpoints.len(), n, "no duplicate inputs");
            for u in &s.inputs {
                prop_assert!(candidates.contains(u), "only candidates are selected");
            }
            // Fewest inputs: no smaller count covers.
            for k in 1..n {
                prop_assert!(
                    largest_sum(candidates, k) < need(k),
                    "{} inputs would do",
                    k
                );
            }
        }
        Err(SelectionError::NoCandidates) => prop_assert!(candidates.is_empty()),
        Err(SelectionError::InsufficientFunds { needed, available }) => {
            for k in 1..=candidates.len() {
                prop_assert!(largest_sum(candidates, k) < need(k), "{} inputs cover", k);
            }
            let total: u128 = candidates.iter().map(|u| u128::from(u.satoshis.0)).sum();
            prop_assert_eq!(u128::from(available.0), total.min(u128::from(u64::MAX)));
            prop_assert_eq!(
                u128::from(needed.0),
                need(candidates.len()).min(u128::from(u64::MAX))
            );
        }
        Err(e) => prop_assert!(false, "unexpected {e}"),
    }
    // Deterministic, whatever the candidates' order.
    let mut reversed = candidates.to_vec();
    reversed.reverse();
    prop_assert_eq!(
        select_coins(&reversed, Satoshis(target), rate, shape),
        result
    );
    Ok(())
}

proptest! {
    #[test]
    fn selection_rules_hold(
        candidates in arb_candidates(200_000),
        target in 0u64..600_000,
        rate in 0u64..2_000,
        reservation in any::<bool>(),
    ) {
        let shape = if reservation { TxShape::RESERVATION } else { TxShape::P2PKH_PAYMENT };
        check_selection(&candidates, target, rate, shape)?;
    }

    #[test]
    fn selection_never_overflows(
        candidates in arb_candidates(u64::MAX),
        target in any::<u64>(),
        rate in any::<u64>(),
    ) {
        check_selection(&candidates, target, rate, TxShape::RESERVATION)?;
    }

    #[test]
    fn preferred_outputs_are_spent_first(
        preferred in arb_candidates(100_000),
        fallback in arb_candidates(100_000),
        target in 0u64..300_000,
    ) {
        // Keep the two lists disjoint: fallback outputs get vout 9.
        let fallback: Vec<Utxo> = fallback
            .into_iter()
            .map(|mut u| {
                u.outpoint.vout = 9;
                u
            })
            .fold(Vec::new(), |mut v, u| {
                if !v.iter().any(|x: &Utxo| x.outpoint == u.outpoint) {
                    v.push(u);
                }
                v
            });
        let shape = TxShape::RESERVATION;
        let alone = select_coins(&preferred, Satoshis(target), RATE, shape);
        match select_coins_preferring(&preferred, &fallback, Satoshis(target), RATE, shape) {
            Ok(s) => {
                let sum: u128 = s.inputs.iter().map(|u| u128::from(u.satoshis.0)).sum();
                prop_assert_eq!(
                    sum,
                    u128::from(target) + u128::from(s.fee.0) + u128::from(s.change.0)
                );
                match alone {
                    Ok(a) => prop_assert_eq!(s, a),
                    Err(_) => {
                        for u in &preferred {
                            prop_assert!(s.inputs.contains(u), "all preferred outputs spent");
                        }
                    }
                }
            }
            Err(SelectionError::NoCandidates) => {
                prop_assert!(preferred.is_empty() && fallback.is_empty());
            }
            Err(SelectionError::InsufficientFunds { available, .. }) => {
                prop_assert!(alone.is_err());
                let total: u64 = preferred.iter().chain(&fallback).map(|u| u.satoshis.0).sum();
                prop_assert_eq!(available.0, total);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
