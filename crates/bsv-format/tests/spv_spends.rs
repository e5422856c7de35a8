//! Spends the SPV verifier must refuse even when every script and amount
//! check would pass on its own: a transaction without inputs or outputs, one
//! that spends the same outpoint twice (its value counted twice), and two
//! transactions of one BEEF spending the same output. Found by a hostile
//! review: before these rules, each verified as valid.

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::hash::{sha256d, Hash256};
use bsv_format::script::opcodes::OP_1;
use bsv_format::spv::{verify, ChainTracker, ScriptEras, VerifyError, VerifyOptions};
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut, SEQUENCE_FINAL};
use bsv_format::{Script, Txid};

const HEIGHT: u32 = 1_000;

struct Roots(Hash256);

impl ChainTracker for Roots {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        height == HEIGHT && *root == self.0
    }
    fn current_height(&self) -> u32 {
        HEIGHT + 10
    }
}

fn anyone_can_spend() -> Script {
    Script::from_bytes(vec![OP_1])
}

fn tx(inputs: &[Outpoint], outputs: &[u64]) -> Transaction {
    Transaction {
        version: 1,
        inputs: inputs
            .iter()
            .map(|&prev_out| TxIn {
                prev_out,
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|&satoshis| TxOut {
                satoshis,
                locking_script: anyone_can_spend(),
            })
            .collect(),
        lock_time: 0,
    }
}

/// A proven parent with two 100,000-sat outputs, then `children` in order.
fn beef_with(children: Vec<Transaction>) -> (Beef, Roots) {
    let parent = tx(
        &[Outpoint::new(Txid(sha256d(b"faucet")), 0)],
        &[100_000, 100_000],
    );
    let block = [Txid(sha256d(b"coinbase")), parent.txid()];
    let bump = MerklePath::from_block(HEIGHT, &block, &[1]).unwrap();
    let roots = Roots(bump.root());
    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(bump);
    beef.add_transaction(parent);
    for c in children {
        beef.add_transaction(c);
    }
    (beef, roots)
}

fn parent_out(beef: &Beef, vout: u32) -> Outpoint {
    Outpoint::new(beef.txs()[0].txid(), vout)
}

fn check(beef: Beef, roots: &Roots) -> Result<Txid, VerifyError> {
    let opts = VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        allow_zero_fee: true,
        ..VerifyOptions::default()
    };
    verify(beef, roots, &opts).map(|v| v.subject())
}

#[test]
fn honest_spends_of_both_outputs_verify() {
    let (probe, _) = beef_with(vec![]);
    let a = tx(&[parent_out(&probe, 0)], &[99_000]);
    let b = tx(&[parent_out(&probe, 1)], &[99_000]);
    let c = tx(
        &[Outpoint::new(a.txid(), 0), Outpoint::new(b.txid(), 0)],
        &[197_000],
    );
    let subject = c.txid();
    let (beef, roots) = beef_with(vec![a, b, c]);
    assert_eq!(check(beef, &roots), Ok(subject));
}

#[test]
fn the_same_outpoint_twice_in_one_transaction_is_refused() {
    let (probe, _) = beef_with(vec![]);
    let op = parent_out(&probe, 0);
    let inflate = tx(&[op, op], &[150_000]);
    let txid = inflate.txid();
    let (beef, roots) = beef_with(vec![inflate]);
    assert_eq!(
        check(beef, &roots),
        Err(VerifyError::DuplicateInput {
            txid,
            input: 1,
            outpoint: op
        })
    );
}

#[test]
fn two_transactions_spending_one_output_are_refused() {
    let (probe, _) = beef_with(vec![]);
    let op = parent_out(&probe, 0);
    let a = tx(&[op], &[99_000]);
    let b = tx(&[op], &[98_000]);
    let c = tx(
        &[Outpoint::new(a.txid(), 0), Outpoint::new(b.txid(), 0)],
        &[190_000],
    );
    let (first, second) = (a.txid(), b.txid());
    let (beef, roots) = beef_with(vec![a, b, c]);
    // Structure alone (scripts off) answers the vectors' structural question,
    // which does not include double spends; full verification refuses.
    let structure = VerifyOptions {
        check_scripts: false,
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    assert!(verify(beef.clone(), &roots, &structure).is_ok());
    assert_eq!(
        check(beef, &roots),
        Err(VerifyError::ConflictingSpend {
            txid: second,
            input: 0,
            outpoint: op,
            first
        })
    );
}

#[test]
fn transactions_without_inputs_or_outputs_are_refused() {
    let no_inputs = tx(&[], &[0]);
    let txid = no_inputs.txid();
    let (beef, roots) = beef_with(vec![no_inputs]);
    assert_eq!(check(beef, &roots), Err(VerifyError::NoInputs { txid }));

    let (probe, _) = beef_with(vec![]);
    let no_outputs = tx(&[parent_out(&probe, 0)], &[]);
    let txid = no_outputs.txid();
    let (beef, roots) = beef_with(vec![no_outputs]);
    assert_eq!(check(beef, &roots), Err(VerifyError::NoOutputs { txid }));
}
