use super::*;
use crate::beef::BeefVersion;
use crate::bump::MerklePath;
use crate::codec::write_varint;
use crate::keys::PrivateKey;
use crate::script::interpreter::{verify_input_metered, ScriptError, ScriptLimits};
use crate::script::templates::{p2pkh_lock, p2pkh_unlock, sign_input};
use crate::script::Script;
use crate::sighash::SighashCache;
use crate::tx::{Outpoint, TxIn, TxOut, SEQUENCE_FINAL};

const HEIGHT: u32 = 900_000;

fn key(b: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[b; 32]).unwrap()
}

fn lock(k: &PrivateKey) -> Script {
    p2pkh_lock(&k.public_key().hash160())
}

/// A transaction spending `spent` (outpoint, output) with `signer`, paying `outputs` to `payee`.
fn spend(
    spent: &[(Outpoint, &TxOut)],
    outputs: &[u64],
    signer: &PrivateKey,
    payee: &PrivateKey,
) -> Transaction {
    let mut tx = Transaction {
        version: 1,
        inputs: spent
            .iter()
            .map(|(op, _)| TxIn {
                prev_out: *op,
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|&satoshis| TxOut {
                satoshis,
                locking_script: lock(payee),
            })
            .collect(),
        lock_time: 0,
    };
    for (i, (_, out)) in spent.iter().enumerate() {
        let sig = sign_input(&tx, i, &out.locking_script, out.satoshis, 0x41, signer).unwrap();
        tx.inputs[i].unlocking_script = p2pkh_unlock(&sig, &signer.public_key()).unwrap();
    }
    tx
}

/// A funding transaction paying 100,000 sat to key 1; a coinbase if asked.
fn funding(coinbase: bool, tag: u8) -> Transaction {
    let prev_out = if coinbase {
        Outpoint::new(Txid([0; 32]), u32::MAX)
    } else {
        Outpoint::new(Txid([tag; 32]), 0)
    };
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out,
            unlocking_script: Script::from_bytes(vec![1, tag]),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: 100_000,
            locking_script: lock(&key(1)),
        }],
        lock_time: 0,
    }
}

struct Fixture {
    f: Transaction,
    a: Transaction,
    b: Transaction,
    bump: MerklePath,
}

/// F proven at HEIGHT (offset 1 of a 3-tx block, or offset 0 when a
/// coinbase), A spends F:0, B spends A:0; 50 sat fee each.
fn fixture(coinbase: bool) -> Fixture {
    let f = funding(coinbase, 9);
    let others = [funding(false, 7).txid(), funding(false, 8).txid()];
    let (block, at) = if coinbase {
        ([f.txid(), others[0], others[1]], 0)
    } else {
        ([others[0], f.txid(), others[1]], 1)
    };
    let bump = MerklePath::from_block(HEIGHT, &block, &[at]).unwrap();
    let a = spend(
        &[(Outpoint::new(f.txid(), 0), &f.outputs[0])],
        &[99_950],
        &key(1),
        &key(2),
    );
    let b = spend(
        &[(Outpoint::new(a.txid(), 0), &a.outputs[0])],
        &[60_000, 39_900],
        &key(2),
        &key(3),
    );
    Fixture { f, a, b, bump }
}

/// V2 bytes from parts: (bump index, transaction) entries, in order.
fn v2_bytes(bumps: &[&MerklePath], entries: &[(Option<usize>, &Transaction)]) -> Vec<u8> {
    let mut out = hex::decode("0200beef").unwrap();
    write_varint(&mut out, bumps.len() as u64);
    for b in bumps {
        b.write(&mut out);
    }
    write_varint(&mut out, entries.len() as u64);
    for (bump, tx) in entries {
        match bump {
            Some(i) => {
                out.push(1);
                write_varint(&mut out, *i as u64);
            }
            None => out.push(0),
        }
        tx.write(&mut out);
    }
    out
}

fn beef_of(x: &Fixture) -> Beef {
    Beef::from_bytes(&v2_bytes(
        &[&x.bump],
        &[(Some(0), &x.f), (None, &x.a), (None, &x.b)],
    ))
    .unwrap()
}

struct Tracker {
    roots: Vec<RootClaim>,
    tip: u32,
}

impl ChainTracker for Tracker {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        self.roots.contains(&RootClaim {
            height,
            root: *root,
        })
    }
    fn current_height(&self) -> u32 {
        self.tip
    }
}

fn tracker(x: &Fixture) -> Tracker {
    Tracker {
        roots: vec![RootClaim {
            height: HEIGHT,
            root: x.bump.root(),
        }],
        tip: HEIGHT + 500,
    }
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    }
}

fn structure_only() -> VerifyOptions {
    VerifyOptions {
        check_scripts: false,
        ..opts()
    }
}

fn verdict(bytes: &[u8], o: &VerifyOptions, t: &Tracker) -> Result<VerifiedBeef, VerifyError> {
    verify(Beef::from_bytes(bytes).unwrap(), t, o)
}

#[test]
fn a_valid_chain_verifies_with_scripts() {
    let x = fixture(false);
    let verified = verify(beef_of(&x), &tracker(&x), &opts()).unwrap();
    assert_eq!(verified.subject(), x.b.txid());
    assert_eq!(verified.subject_transaction(), &x.b);
    assert_eq!(
        verified.roots(),
        &[RootClaim {
            height: HEIGHT,
            root: x.bump.root()
        }]
    );
    assert_eq!(verified.tip_height(), HEIGHT + 500);
    assert_eq!(verified.beef().len(), 3);
    verify_scripts(&beef_of(&x), &x.b.txid(), &opts(), HEIGHT).unwrap();
}

#[test]
fn the_sans_io_steps_hand_out_claims_and_take_answers() {
    let x = fixture(false);
    let request = beef_of(&x).spv_request(&opts()).unwrap();
    assert_eq!(
        request.claims(),
        &[RootClaim {
            height: HEIGHT,
            root: x.bump.root()
        }]
    );
    assert_eq!(
        request.clone().finish(&[], HEIGHT).unwrap_err(),
        VerifyError::AnswerCountMismatch {
            expected: 1,
            got: 0
        }
    );
    assert_eq!(
        request.clone().finish(&[false], HEIGHT).unwrap_err(),
        VerifyError::RootNotConfirmed {
            height: HEIGHT,
            root: x.bump.root()
        }
    );
    assert_eq!(
        request.finish(&[true], HEIGHT).unwrap().subject(),
        x.b.txid()
    );
}

#[test]
fn an_empty_beef_verifies_nothing() {
    let x = fixture(false);
    assert_eq!(
        Beef::new(BeefVersion::V2).spv_request(&opts()).unwrap_err(),
        VerifyError::Empty
    );
    assert_eq!(
        verdict(&hex::decode("0100beef0000").unwrap(), &opts(), &tracker(&x)).unwrap_err(),
        VerifyError::Empty
    );
}

#[test]
fn atomic_subject_must_be_present_and_the_only_root_of_the_closure() {
    let x = fixture(false);
    let full = beef_of(&x);
    let atomic_a = full.to_atomic(&x.a.txid()).unwrap();
    verify(atomic_a.clone(), &tracker(&x), &opts()).unwrap();
    // The prefix names a txid that is not inside.
    let mut bytes = atomic_a.to_bytes();
    bytes[4..36].copy_from_slice(&[0xab; 32]);
    assert_eq!(
        verdict(&bytes, &opts(), &tracker(&x)).unwrap_err(),
        VerifyError::SubjectMissing {
            subject: Txid([0xab; 32])
        }
    );
    // The prefix names A, the body also carries B, which A does not need.
    let mut bytes = vec![1, 1, 1, 1];
    bytes.extend_from_slice(&x.a.txid().0);
    bytes.extend_from_slice(&full.to_bytes());
    assert_eq!(
        verdict(&bytes, &opts(), &tracker(&x)).unwrap_err(),
        VerifyError::OutsideClosure { txid: x.b.txid() }
    );
}

#[test]
fn txid_only_entries_need_the_opt_in_and_cannot_be_the_subject() {
    let x = fixture(false);
    let mut beef = Beef::new(BeefVersion::V2);
    beef.add_txid_only(x.a.txid());
    beef.add_transaction(x.b.clone());
    let t = tracker(&x);
    assert_eq!(
        verify(beef.clone(), &t, &opts()).unwrap_err(),
        VerifyError::TxidOnly { txid: x.a.txid() }
    );
    // Allowed: B's input spends a known-by-txid parent; its script and fee cannot be checked.
    let allowed = VerifyOptions {
        allow_txid_only: true,
        ..opts()
    };
    assert_eq!(
        verify(beef.clone(), &t, &allowed).unwrap().subject(),
        x.b.txid()
    );
    assert_eq!(
        verify_scripts(&beef, &x.b.txid(), &allowed, HEIGHT).unwrap_err(),
        VerifyError::TxidOnly { txid: x.a.txid() }
    );
    beef.add_txid_only(Txid([3; 32]));
    assert_eq!(
        verify(beef, &t, &allowed).unwrap_err(),
        VerifyError::SubjectTxidOnly {
            subject: Txid([3; 32])
        }
    );
}

#[test]
fn duplicates_and_order_are_checked_on_the_wire() {
    let x = fixture(false);
    let t = tracker(&x);
    let dup = v2_bytes(
        &[&x.bump],
        &[(Some(0), &x.f), (None, &x.a), (None, &x.a), (None, &x.b)],
    );
    assert_eq!(
        verdict(&dup, &opts(), &t).unwrap_err(),
        VerifyError::DuplicateTxid { txid: x.a.txid() }
    );
    let swapped = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &x.b), (None, &x.a)]);
    assert_eq!(
        verdict(&swapped, &opts(), &t).unwrap_err(),
        VerifyError::ParentAfterChild {
            txid: x.b.txid(),
            input: 0,
            parent: x.a.txid()
        }
    );
    let mut repaired = Beef::from_bytes(&swapped).unwrap();
    repaired.sort();
    assert_eq!(repaired.to_bytes(), beef_of(&x).to_bytes());
}

#[test]
fn inputs_must_come_from_the_beef_and_exist() {
    let x = fixture(false);
    let t = tracker(&x);
    let no_a = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &x.b)]);
    assert_eq!(
        verdict(&no_a, &opts(), &t).unwrap_err(),
        VerifyError::MissingInput {
            txid: x.b.txid(),
            input: 0,
            parent: x.a.txid()
        }
    );
    let bad_vout = spend(
        &[(Outpoint::new(x.f.txid(), 3), &x.f.outputs[0])],
        &[1],
        &key(1),
        &key(2),
    );
    let bytes = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &bad_vout)]);
    assert_eq!(
        verdict(&bytes, &opts(), &t).unwrap_err(),
        VerifyError::MissingOutput {
            txid: bad_vout.txid(),
            input: 0,
            parent: x.f.txid(),
            vout: 3
        }
    );
}

#[test]
fn bumps_of_one_height_must_agree() {
    let x = fixture(false);
    let g = funding(false, 5);
    let other = MerklePath::from_block(HEIGHT, &[g.txid(), x.f.txid()], &[0]).unwrap();
    let bytes = v2_bytes(
        &[&x.bump, &other],
        &[(Some(0), &x.f), (Some(1), &g), (None, &x.a)],
    );
    assert_eq!(
        verdict(&bytes, &structure_only(), &tracker(&x)).unwrap_err(),
        VerifyError::ConflictingRoots { height: HEIGHT }
    );
}

#[test]
fn amounts_outputs_never_exceed_inputs_and_fees_are_positive_by_default() {
    let x = fixture(false);
    let t = tracker(&x);
    let f_out = (Outpoint::new(x.f.txid(), 0), &x.f.outputs[0]);
    let greedy = spend(&[f_out], &[100_001], &key(1), &key(2));
    let bytes = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &greedy)]);
    assert_eq!(
        verdict(&bytes, &opts(), &t).unwrap_err(),
        VerifyError::OutputsExceedInputs {
            txid: greedy.txid(),
            inputs: 100_000,
            outputs: 100_001
        }
    );
    let free = spend(&[f_out], &[100_000], &key(1), &key(2));
    let bytes = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &free)]);
    assert_eq!(
        verdict(&bytes, &opts(), &t).unwrap_err(),
        VerifyError::ZeroFee {
            txid: free.txid(),
            satoshis: 100_000
        }
    );
    let zero_fee_ok = VerifyOptions {
        allow_zero_fee: true,
        ..opts()
    };
    assert_eq!(
        verdict(&bytes, &zero_fee_ok, &t).unwrap().subject(),
        free.txid()
    );
    let huge = spend(&[f_out], &[u64::MAX, 1], &key(1), &key(2));
    let bytes = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &huge)]);
    assert_eq!(
        verdict(&bytes, &opts(), &t).unwrap_err(),
        VerifyError::AmountOverflow { txid: huge.txid() }
    );
}

#[test]
fn roots_must_be_confirmed() {
    let x = fixture(false);
    let wrong = Tracker {
        roots: vec![RootClaim {
            height: HEIGHT,
            root: Hash256([7; 32]),
        }],
        tip: HEIGHT + 500,
    };
    assert_eq!(
        verify(beef_of(&x), &wrong, &opts()).unwrap_err(),
        VerifyError::RootNotConfirmed {
            height: HEIGHT,
            root: x.bump.root()
        }
    );
}

#[test]
fn coinbase_outputs_mature_after_100_blocks() {
    let x = fixture(true);
    assert!(x.f.is_coinbase());
    let at = |tip| Tracker { tip, ..tracker(&x) };
    // Spendable in block HEIGHT + 100, i.e. with the tip at HEIGHT + 99.
    assert_eq!(
        verify(beef_of(&x), &at(HEIGHT + 98), &opts()).unwrap_err(),
        VerifyError::CoinbaseImmature {
            txid: x.a.txid(),
            input: 0,
            coinbase: x.f.txid(),
            coinbase_height: HEIGHT,
            tip_height: HEIGHT + 98
        }
    );
    verify(beef_of(&x), &at(HEIGHT + 99), &opts()).unwrap();
}

#[test]
fn a_bad_signature_names_transaction_and_input() {
    let x = fixture(false);
    // B signed by the wrong key: its input 0 fails.
    let forged = spend(
        &[(Outpoint::new(x.a.txid(), 0), &x.a.outputs[0])],
        &[60_000, 39_900],
        &key(4),
        &key(3),
    );
    let bytes = v2_bytes(
        &[&x.bump],
        &[(Some(0), &x.f), (None, &x.a), (None, &forged)],
    );
    let err = verdict(&bytes, &opts(), &tracker(&x)).unwrap_err();
    assert!(
        matches!(err, VerifyError::Script { txid, input: 0, error: ScriptError::EqualVerify } if txid == forged.txid()),
        "{err:?}"
    );
    // Without scripts the structure is fine.
    verdict(&bytes, &structure_only(), &tracker(&x)).unwrap();
    let beef = Beef::from_bytes(&bytes).unwrap();
    assert!(matches!(
        verify_scripts(&beef, &forged.txid(), &opts(), HEIGHT),
        Err(VerifyError::Script { input: 0, .. })
    ));
    // The proven parent alone has nothing to run.
    verify_scripts(&beef, &x.f.txid(), &opts(), HEIGHT).unwrap();
}

#[test]
fn the_work_of_all_inputs_is_capped_in_beef_order() {
    let x = fixture(false);
    let bytes = v2_bytes(&[&x.bump], &[(Some(0), &x.f), (None, &x.a), (None, &x.b)]);
    let beef = Beef::from_bytes(&bytes).unwrap();
    let work_of = |tx: &Transaction, spent: &TxOut| {
        let cache = SighashCache::new(tx);
        let m = verify_input_metered(
            &cache,
            0,
            &spent.locking_script,
            spent.satoshis,
            opts().script_flags,
            &ScriptLimits::policy(),
        );
        assert_eq!(m.result, Ok(()));
        m.work
    };
    let (a, b) = (
        work_of(&x.a, &x.f.outputs[0]),
        work_of(&x.b, &x.a.outputs[0]),
    );
    let with_cap = |cap| VerifyOptions {
        max_total_work: cap,
        ..opts()
    };
    verdict(&bytes, &with_cap(a + b), &tracker(&x)).unwrap();
    // One unit short: B's input 0 runs the cap out.
    assert_eq!(
        verdict(&bytes, &with_cap(a + b - 1), &tracker(&x)).unwrap_err(),
        VerifyError::TotalWorkExceeded {
            txid: x.b.txid(),
            input: 0,
            max_total_work: a + b - 1
        }
    );
    assert_eq!(
        verify_scripts(&beef, &x.b.txid(), &with_cap(a - 1), HEIGHT).unwrap_err(),
        VerifyError::TotalWorkExceeded {
            txid: x.a.txid(),
            input: 0,
            max_total_work: a - 1
        }
    );
    // A per-input budget below one input is that input's own script failure.
    let small = VerifyOptions {
        script_limits: ScriptLimits {
            max_work: a.min(b) - 1,
            ..ScriptLimits::policy()
        },
        ..opts()
    };
    assert_eq!(
        verdict(&bytes, &small, &tracker(&x)).unwrap_err(),
        VerifyError::Script {
            txid: x.a.txid(),
            input: 0,
            error: ScriptError::WorkBudgetExceeded
        }
    );
}

#[test]
fn script_eras_follow_activation_heights() {
    let base = VerifyFlags::standard_post_chronicle();
    let e = ScriptEras::MAINNET;
    assert_eq!(e.flags_for(base, 950_000, 950_001), base);
    let pre_chronicle_utxo = e.flags_for(base, 900_000, 950_001);
    assert!(!pre_chronicle_utxo.contains(VerifyFlags::UTXO_AFTER_CHRONICLE));
    assert!(pre_chronicle_utxo.contains(VerifyFlags::UTXO_AFTER_GENESIS | VerifyFlags::CHRONICLE));
    let pre_genesis_utxo = e.flags_for(base, 600_000, 950_001);
    assert!(!pre_genesis_utxo
        .intersects(VerifyFlags::UTXO_AFTER_GENESIS | VerifyFlags::UTXO_AFTER_CHRONICLE));
    let old_spend = e.flags_for(base, 700_000, 700_001);
    assert!(
        !old_spend.contains(VerifyFlags::CHRONICLE) && old_spend.contains(VerifyFlags::GENESIS)
    );
    assert_eq!(ScriptEras::ALWAYS_ACTIVE.flags_for(base, 0, 1), base);
}

#[test]
fn a_proof_through_an_unflagged_leaf_is_still_claimed() {
    // BRC-74 flags client txids with 2, but BEEFs in the wild (the crate's
    // hydration regression vector) prove a transaction through a plain leaf.
    // Its root is a claim like any other: never trusted unasked.
    let x = fixture(false);
    let mut bump = MerklePath::from_block(HEIGHT, &[x.f.txid()], &[0])
        .unwrap()
        .to_bytes();
    // height (5 bytes: fe + u32) + tree height + count + offset, then the flag.
    assert_eq!(bump[8], 2);
    bump[8] = 0;
    let bump = MerklePath::from_bytes_strict(&bump).unwrap();
    assert_eq!(bump.client_txids().count(), 0);
    let bytes = v2_bytes(&[&bump], &[(Some(0), &x.f), (None, &x.a)]);
    let request = Beef::from_bytes(&bytes)
        .unwrap()
        .spv_request(&opts())
        .unwrap();
    assert_eq!(
        request.claims(),
        &[RootClaim {
            height: HEIGHT,
            root: x.f.txid().as_hash()
        }]
    );
    assert_eq!(
        request.finish(&[false], HEIGHT + 500).unwrap_err(),
        VerifyError::RootNotConfirmed {
            height: HEIGHT,
            root: x.f.txid().as_hash()
        }
    );
}
