//! Hostile scripts against the interpreter's work budget and the SPV work
//! cap, and the margin legitimate scripts keep below them.
//!
//! Each hostile pattern would make a verifier without a budget spend
//! seconds to hours; here it must be refused with the named error under
//! `ScriptLimits::policy()` (or `Default`, for numbers at the consensus
//! lengths). Tests assert verdicts and work units, never times: the time a
//! budget stands for is measured by `examples/script_work.rs`
//! (`docs/formats.md`, "Known limits").
//!
//! The hostile transactions are version 2 and spend post-Chronicle outputs
//! under the standard flags, so the Chronicle relaxations apply (no NULLFAIL,
//! no CLEANSTACK, any opcode in either script): the most room an attacker has.

mod common;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::asm::parse_node_test_asm;
use bsv_format::script::interpreter::{
    verify_input_metered, Metered, ScriptError, ScriptLimits, VerifyFlags,
};
use bsv_format::script::opcodes::*;
use bsv_format::script::push_data;
use bsv_format::script::templates::{
    escrow_claim_unlock, escrow_lock, escrow_refund_unlock, p2pkh_lock, p2pkh_unlock, sign_input,
};
use bsv_format::sighash::{
    SighashCache, SIGHASH_ALL, SIGHASH_ANYONECANPAY, SIGHASH_CHRONICLE, SIGHASH_FORKID,
    SIGHASH_SINGLE,
};
use bsv_format::spv::{
    verify, ChainTracker, ScriptEras, VerifyError, VerifyOptions, DEFAULT_MAX_TOTAL_WORK,
};
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut, SEQUENCE_FINAL};
use bsv_format::{Hash256, Script, Txid};
use serde_json::Value;

const BUDGET: u64 = ScriptLimits::POLICY_MAX_WORK;
const WORK_BUDGET: Result<(), ScriptError> = Err(ScriptError::WorkBudgetExceeded);

/// A script under construction.
#[derive(Default, Clone)]
struct S(Vec<u8>);

impl S {
    fn op(mut self, op: u8) -> S {
        self.0.push(op);
        self
    }
    fn ops(mut self, ops: &[u8], times: usize) -> S {
        for _ in 0..times {
            self.0.extend_from_slice(ops);
        }
        self
    }
    fn push(mut self, data: &[u8]) -> S {
        push_data(&mut self.0, data);
        self
    }
    /// Pushes `n` (0 ≤ n < 2^31) as a minimal script number.
    fn num(self, n: u32) -> S {
        let mut bytes: Vec<u8> = n.to_le_bytes().into_iter().collect();
        while bytes.last() == Some(&0) {
            bytes.pop();
        }
        if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            bytes.push(0);
        }
        self.push(&bytes)
    }
    /// `size` zero bytes built in-script: `0 size NUM2BIN`.
    fn zeros(self, size: u32) -> S {
        self.op(OP_0).num(size).op(OP_NUM2BIN)
    }
    /// A positive number of `len` bytes, all of them significant.
    fn big_num(self, len: usize) -> S {
        let mut bytes = vec![0xa5; len.saturating_sub(1)];
        bytes.push(0x01);
        self.push(&bytes)
    }
    fn then(mut self, other: &S) -> S {
        self.0.extend_from_slice(&other.0);
        self
    }
    fn script(&self) -> Script {
        Script::from_bytes(self.0.clone())
    }
}

fn standard() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle()
}

/// A version-2 spend of output 0 of a fake parent, with `extra_inputs` more
/// inputs and an empty unlocking script.
fn spend_v2(extra_inputs: u32) -> Transaction {
    let mut inputs = vec![TxIn {
        prev_out: Outpoint::new(Txid([7; 32]), 0),
        unlocking_script: Script::default(),
        sequence: SEQUENCE_FINAL,
    }];
    for i in 0..extra_inputs {
        inputs.push(TxIn {
            prev_out: Outpoint::new(Txid([8; 32]), i),
            unlocking_script: Script::default(),
            sequence: 0,
        });
    }
    Transaction {
        version: 2,
        inputs,
        outputs: vec![TxOut {
            satoshis: 1,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    }
}

fn run_tx(tx: &Transaction, locking: &S, flags: VerifyFlags, limits: &ScriptLimits) -> Metered {
    verify_input_metered(
        &SighashCache::new(tx),
        0,
        &locking.script(),
        1_000,
        flags,
        limits,
    )
}

fn run_with(locking: &S, limits: &ScriptLimits) -> Metered {
    run_tx(&spend_v2(0), locking, standard(), limits)
}

fn run(locking: &S) -> Metered {
    run_with(locking, &ScriptLimits::policy())
}

fn key(tag: &str) -> PrivateKey {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).unwrap()
}

/// A strict-DER, low-S signature of something else with the given type byte:
/// it passes every encoding rule and fails verification, so each check does
/// the whole ECDSA verification and digest.
fn wrong_sig(hash_type: u32) -> Vec<u8> {
    let mut sig = key("wrong").sign_digest(&sha256(b"another message"));
    sig.push(hash_type as u8);
    sig
}

fn pubkey() -> Vec<u8> {
    key("someone").public_key().to_compressed().to_vec()
}

#[test]
fn policy_limits_are_the_node_policy_values_and_the_calibrated_budget() {
    let p = ScriptLimits::policy();
    assert_eq!(
        (p.max_num_len_after_genesis, p.max_num_len_after_chronicle),
        (10_000, 10_000)
    );
    assert_eq!(p.max_stack_memory, 100_000_000);
    assert_eq!(p.max_work, 400_000_000);
    let d = ScriptLimits::default();
    assert_eq!(
        (d.max_num_len_after_genesis, d.max_num_len_after_chronicle),
        (750_000, 32_000_000)
    );
    assert_eq!((d.max_stack_memory, d.max_work), (100_000_000, BUDGET));
    assert_eq!(VerifyOptions::default().script_limits, p);
    assert_eq!(
        VerifyOptions::default().max_total_work,
        DEFAULT_MAX_TOTAL_WORK
    );
    assert_eq!(ScriptError::WorkBudgetExceeded.node_name(), "WORK_BUDGET");
}

#[test]
fn a_single_huge_hash_is_refused_before_it_runs() {
    let element = S::default().zeros(50_000_000);
    // Building the 50 MB element fits the budget (it is false, hence EVAL_FALSE).
    let built = run(&element);
    assert_eq!(built.result, Err(ScriptError::EvalFalse));
    assert!(built.work < BUDGET);
    for op in [OP_SHA256, OP_SHA1, OP_RIPEMD160, OP_HASH160, OP_HASH256] {
        let m = run(&element.clone().op(op));
        assert_eq!(m.result, WORK_BUDGET, "opcode {op:#x}");
        // The whole hash was charged at once, before hashing: at least a unit
        // per byte more than building the element.
        assert!(
            m.work >= built.work + 50_000_000,
            "opcode {op:#x}: {} after {}",
            m.work,
            built.work
        );
    }
}

#[test]
fn hashing_a_big_element_over_and_over_is_refused() {
    for size in [64, 1_000_000, 40_000_000] {
        for op in [OP_SHA256, OP_SHA1, OP_RIPEMD160, OP_HASH160, OP_HASH256] {
            // Far more hashing than any budget: 20 bytes per unit.
            let reps = (20 * BUDGET as usize / size).clamp(2, 5_000_000);
            let script = S::default()
                .zeros(size as u32)
                .ops(&[OP_DUP, op, OP_DROP], reps);
            assert_eq!(
                run(&script).result,
                WORK_BUDGET,
                "{size} bytes, opcode {op:#x}"
            );
            if op == OP_SHA256 {
                assert_eq!(
                    run_with(&script, &ScriptLimits::default()).result,
                    WORK_BUDGET,
                    "{size} bytes, consensus lengths"
                );
            }
        }
    }
}

#[test]
fn copying_scanning_and_splicing_big_elements_is_refused() {
    let body: [&[u8]; 9] = [
        &[OP_DUP, OP_DROP],
        &[OP_DUP, OP_IF, OP_ENDIF],
        &[OP_DUP, OP_VERIFY],
        &[OP_DUP, OP_DUP, OP_EQUALVERIFY],
        &[OP_DUP, OP_DUP, OP_XOR, OP_DROP],
        &[OP_INVERT],
        &[OP_1, OP_LSHIFT],
        &[OP_DUP, OP_BIN2NUM, OP_DROP],
        &[OP_DUP, OP_1, OP_SPLIT, OP_DROP, OP_DROP],
    ];
    for size in [1_000u32, 30_000_000] {
        for ops in body {
            let reps = (2 * BUDGET / u64::from(size)).max(2) as usize;
            // A true element where VERIFY needs one.
            let element = if ops == [OP_DUP, OP_VERIFY] {
                S::default().zeros(size).op(OP_INVERT)
            } else {
                S::default().zeros(size)
            };
            let script = element.ops(ops, reps);
            assert_eq!(run(&script).result, WORK_BUDGET, "{size} bytes, {ops:02x?}");
        }
    }
    // Splitting and padding large sizes over and over.
    let split = S::default().zeros(30_000_000).ops(
        &[OP_DUP, OP_CAT, OP_SIZE, OP_2, OP_DIV, OP_SPLIT, OP_DROP],
        100,
    );
    assert_eq!(run(&split).result, WORK_BUDGET);
    let pad = S::default()
        .ops(&S::default().zeros(30_000_000).op(OP_DROP).0, 100)
        .op(OP_1);
    assert_eq!(run(&pad).result, WORK_BUDGET);
    // One padding past the memory cap is refused by the memory check, as the node does.
    assert_eq!(
        run(&S::default().zeros(i32::MAX as u32)).result,
        Err(ScriptError::StackSize)
    );
    assert_eq!(
        run(&S::default().zeros(100_000_000)).result,
        Err(ScriptError::StackSize)
    );
}

#[test]
fn deep_stacks_and_rolls_over_them_are_refused() {
    // 3,000,000 one-byte items fit the 100 MB memory cap (33 bytes each) but not the budget.
    assert_eq!(
        run(&S::default().ops(&[OP_1], 3_000_000)).result,
        WORK_BUDGET
    );
    let deep = S::default().ops(&[OP_1], 400_000);
    assert_eq!(
        run(&deep.clone().op(OP_DEPTH).op(OP_0NOTEQUAL)).result,
        Ok(()),
        "400k items alone fit"
    );
    let roll = deep
        .clone()
        .then(&S::default().ops(&S::default().num(399_999).op(OP_ROLL).0, 100_000));
    assert_eq!(run(&roll).result, WORK_BUDGET);
    let pick = deep.clone().then(&S::default().ops(
        &S::default().num(399_999).op(OP_PICK).op(OP_DROP).0,
        1_000_000,
    ));
    assert_eq!(run(&pick).result, WORK_BUDGET);
    let alt = deep.then(&S::default().ops(&[OP_TOALTSTACK, OP_FROMALTSTACK], 5_000_000));
    assert_eq!(run(&alt).result, WORK_BUDGET);
}

#[test]
fn opcode_floods_are_refused() {
    assert_eq!(
        run(&S::default().ops(&[OP_NOP], 10_000_000).op(OP_1)).result,
        WORK_BUDGET
    );
    assert_eq!(
        run(&S::default().ops(&[OP_1, OP_DROP], 5_000_000).op(OP_1)).result,
        WORK_BUDGET
    );
    // Opcodes in a branch not taken still cost their dispatch.
    let skipped = S::default()
        .op(OP_0)
        .op(OP_IF)
        .ops(&[OP_NOP], 10_000_000)
        .op(OP_ENDIF)
        .op(OP_1);
    assert_eq!(run(&skipped).result, WORK_BUDGET);
}

#[test]
fn big_number_arithmetic_is_refused_or_capped() {
    let binary = |a: usize, b: usize, op: u8| {
        S::default()
            .big_num(a)
            .big_num(b)
            .ops(&[OP_2DUP, op, OP_DROP], 1_000_000)
    };
    // Policy lengths: operands above 10,000 bytes are refused outright.
    for op in [OP_MUL, OP_DIV, OP_MOD, OP_ADD] {
        assert_eq!(
            run(&binary(10_001, 10, op)).result,
            Err(ScriptError::ScriptNumOverflow),
            "{op:#x}"
        );
    }
    // At the policy length, repetition hits the budget.
    assert_eq!(run(&binary(5_000, 4_999, OP_MUL)).result, WORK_BUDGET);
    for op in [
        OP_DIV,
        OP_MOD,
        OP_ADD,
        OP_SUB,
        OP_NUMEQUAL,
        OP_LESSTHAN,
        OP_MAX,
    ] {
        assert_eq!(
            run(&binary(10_000, 5_000, op)).result,
            WORK_BUDGET,
            "{op:#x}"
        );
    }
    let unary = S::default()
        .big_num(10_000)
        .ops(&[OP_DUP, OP_1ADD, OP_DROP], 1_000_000);
    assert_eq!(run(&unary).result, WORK_BUDGET);
    let shifts = S::default()
        .ops(
            &S::default()
                .op(OP_1)
                .num(79_990)
                .op(OP_LSHIFTNUM)
                .op(OP_DROP)
                .0,
            1_000_000,
        )
        .op(OP_1);
    assert_eq!(run(&shifts).result, WORK_BUDGET);

    // Consensus lengths (750 kB, 32 MB after Chronicle): one operation on
    // large operands is refused before it runs.
    let consensus = ScriptLimits::default();
    for op in [OP_MUL, OP_DIV, OP_MOD] {
        let m = run_with(
            &S::default().big_num(700_000).big_num(400_000).op(op),
            &consensus,
        );
        assert_eq!(m.result, WORK_BUDGET, "{op:#x}");
        assert!(m.work > BUDGET);
    }
    let add = S::default()
        .big_num(8_000_000)
        .big_num(8_000_000)
        .ops(&[OP_2DUP, OP_ADD, OP_DROP], 100);
    assert_eq!(run_with(&add, &consensus).result, WORK_BUDGET);
    let shifted = S::default()
        .ops(
            &S::default()
                .op(OP_1)
                .num(1 << 27)
                .op(OP_LSHIFTNUM)
                .op(OP_DROP)
                .0,
            100,
        )
        .op(OP_1);
    assert_eq!(run_with(&shifted, &consensus).result, WORK_BUDGET);
}

#[test]
fn signature_checks_over_huge_script_codes_are_refused() {
    let pk = pubkey();
    let checks = |sig: &[u8], n: usize| {
        S::default()
            .push(sig)
            .push(&pk)
            .ops(&[OP_2DUP, OP_CHECKSIG, OP_DROP], n)
    };
    let forkid = wrong_sig(SIGHASH_ALL | SIGHASH_FORKID);
    // Many failing checks (no NULLFAIL for version 2).
    assert_eq!(run(&checks(&forkid, 5_000)).result, WORK_BUDGET);
    // Each check hashes a 1 MB script code.
    let big_code = S::default().push(&vec![OP_NOP; 1_000_000]).op(OP_DROP);
    assert_eq!(
        run(&big_code.clone().then(&checks(&forkid, 1_000))).result,
        WORK_BUDGET
    );
    // SIGHASH_SINGLE hashes the output at the input's index each time.
    let mut tx = spend_v2(0);
    tx.outputs[0].locking_script = Script::from_bytes(vec![OP_NOP; 2_000_000]);
    let single = wrong_sig(SIGHASH_SINGLE | SIGHASH_FORKID);
    assert_eq!(
        run_tx(
            &tx,
            &checks(&single, 1_000),
            standard(),
            &ScriptLimits::policy()
        )
        .result,
        WORK_BUDGET
    );
    // The original digest (SIGHASH_CHRONICLE) hashes the whole transaction each time.
    let original = wrong_sig(SIGHASH_ALL | SIGHASH_FORKID | SIGHASH_CHRONICLE);
    let wide = spend_v2(20_000);
    assert_eq!(
        run_tx(
            &wide,
            &checks(&original, 1_000),
            standard(),
            &ScriptLimits::policy()
        )
        .result,
        WORK_BUDGET
    );
    assert_eq!(
        run(&big_code.clone().then(&checks(&original, 1_000))).result,
        WORK_BUDGET
    );
    // FindAndDelete (signatures without FORKID, flags without SIGHASH_FORKID).
    let pre_fork = standard().without(VerifyFlags::SIGHASH_FORKID | VerifyFlags::STRICTENC);
    let old = wrong_sig(SIGHASH_ALL);
    assert_eq!(
        run_tx(
            &spend_v2(0),
            &big_code.then(&checks(&old, 1_000)),
            pre_fork,
            &ScriptLimits::policy()
        )
        .result,
        WORK_BUDGET
    );
}

#[test]
fn checkmultisig_with_many_keys_is_refused() {
    let sig = wrong_sig(SIGHASH_ALL | SIGHASH_FORKID);
    let keys = 100_000;
    let script = S::default()
        .op(OP_0)
        .push(&sig)
        .op(OP_1)
        .ops(&S::default().push(&pubkey()).0, keys)
        .num(keys as u32)
        .op(OP_CODESEPARATOR)
        .op(OP_CHECKMULTISIG);
    assert_eq!(run(&script).result, WORK_BUDGET);
    // Empty signatures are not checked, so many keys with them cost only their reads.
    let empty = S::default()
        .op(OP_0)
        .op(OP_0)
        .op(OP_1)
        .ops(&S::default().push(&pubkey()).0, 1_000)
        .num(1_000)
        .op(OP_CHECKMULTISIG)
        .op(OP_NOT);
    let m = run(&empty);
    assert_eq!(m.result, Ok(()));
    assert!(m.work < BUDGET / 100, "{}", m.work);
}

// ---- Legitimate scripts keep a large margin ----

/// A version-1 spend of `outpoint` paying `satoshis` to `to`.
fn spend_v1(
    outpoint: Outpoint,
    sequence: u32,
    lock_time: u32,
    to: &PrivateKey,
    satoshis: u64,
) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: outpoint,
            unlocking_script: Script::default(),
            sequence,
        }],
        outputs: vec![TxOut {
            satoshis,
            locking_script: p2pkh_lock(&to.public_key().hash160()),
        }],
        lock_time,
    }
}

fn p2pkh_work() -> u64 {
    let k = key("payer");
    let lock = p2pkh_lock(&k.public_key().hash160());
    let mut tx = spend_v1(Outpoint::new(Txid([3; 32]), 0), SEQUENCE_FINAL, 0, &k, 900);
    let sig = sign_input(&tx, 0, &lock, 1_000, SIGHASH_ALL | SIGHASH_FORKID, &k).unwrap();
    tx.inputs[0].unlocking_script = p2pkh_unlock(&sig, &k.public_key()).unwrap();
    let m = verify_input_metered(
        &SighashCache::new(&tx),
        0,
        &lock,
        1_000,
        standard(),
        &ScriptLimits::policy(),
    );
    assert_eq!(m.result, Ok(()));
    m.work
}

#[test]
fn p2pkh_and_every_escrow_leg_use_a_sliver_of_the_budget() {
    let p2pkh = p2pkh_work();
    assert!(p2pkh < BUDGET / 1_000, "P2PKH uses {p2pkh}");
    // The default BEEF cap pays for 100,000 P2PKH inputs with room to spare.
    assert!(
        DEFAULT_MAX_TOTAL_WORK / p2pkh >= 150_000,
        "{}",
        DEFAULT_MAX_TOTAL_WORK / p2pkh
    );

    let (funder, beneficiary) = (key("funder"), key("beneficiary"));
    let preimage = sha256(b"saga secret");
    let lock = escrow_lock(
        &sha256(&preimage),
        &beneficiary.public_key(),
        &funder.public_key(),
    );
    let outpoint = Outpoint::new(Txid(sha256(b"reservation")), 0);
    let strict = standard() | VerifyFlags::MINIMALIF;
    let metered = |tx: &Transaction| {
        verify_input_metered(
            &SighashCache::new(tx),
            0,
            &lock,
            50_000,
            strict,
            &ScriptLimits::policy(),
        )
    };
    let all = SIGHASH_ALL | SIGHASH_FORKID;

    let mut claim = spend_v1(outpoint, SEQUENCE_FINAL, 0, &beneficiary, 49_800);
    let sig = sign_input(&claim, 0, &lock, 50_000, all, &beneficiary).unwrap();
    claim.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &preimage).unwrap();
    let mut refund = spend_v1(outpoint, 0xffff_fffe, 1_000, &funder, 49_800);
    let sig_b = sign_input(
        &refund,
        0,
        &lock,
        50_000,
        SIGHASH_SINGLE | SIGHASH_ANYONECANPAY | SIGHASH_FORKID,
        &beneficiary,
    )
    .unwrap();
    let sig_f = sign_input(&refund, 0, &lock, 50_000, all, &funder).unwrap();
    refund.inputs[0].unlocking_script = escrow_refund_unlock(&sig_f, &sig_b).unwrap();
    let mut cancel = spend_v1(outpoint, SEQUENCE_FINAL, 0, &funder, 49_800);
    let sig_f = sign_input(&cancel, 0, &lock, 50_000, all, &funder).unwrap();
    let sig_b = sign_input(&cancel, 0, &lock, 50_000, all, &beneficiary).unwrap();
    cancel.inputs[0].unlocking_script = escrow_refund_unlock(&sig_f, &sig_b).unwrap();
    for (leg, tx) in [("claim", &claim), ("refund", &refund), ("cancel", &cancel)] {
        let m = metered(tx);
        assert_eq!(m.result, Ok(()), "{leg}");
        // At most two signature checks: well under a thousandth of the budget... times three.
        assert!(m.work < 3 * BUDGET / 1_000, "{leg} uses {}", m.work);
        assert!(
            m.work > p2pkh / 2,
            "{leg} uses {}: a signature check must cost",
            m.work
        );
    }
}

/// One row of the node's script test files (see `tests/script_vectors.rs`):
/// the spending transaction, both scripts and the flags.
fn script_rows() -> Vec<(String, Transaction, Script, u64, VerifyFlags)> {
    let mut rows = Vec::new();
    for (file, has_version) in [
        ("script/script_tests_bitcoin-sv.json", true),
        ("script/script_tests_teranode.json", false),
    ] {
        let data = common::load(file);
        for (index, row) in data.as_array().unwrap().iter().enumerate() {
            let row = row.as_array().unwrap();
            if row.len() == 1 {
                continue;
            }
            let mut pos = 0;
            let mut amount = 0u64;
            if let Some(Value::Array(a)) = row.first() {
                amount = (a.last().unwrap().as_f64().unwrap() * 1e8).round() as u64;
                pos = 1;
            }
            let text = |i: usize| row[i].as_str().unwrap();
            let version = if has_version {
                pos += 1;
                text(pos - 1).parse::<i32>().unwrap() as u32
            } else {
                1
            };
            let (Ok(sig), Ok(lock), Ok(mut flags)) = (
                parse_node_test_asm(text(pos)),
                parse_node_test_asm(text(pos + 1)),
                VerifyFlags::from_node_names(text(pos + 2)),
            ) else {
                continue; // rows the vector test reports; nothing to measure here
            };
            if flags.contains(VerifyFlags::CLEANSTACK) {
                flags |= VerifyFlags::P2SH;
            }
            if !has_version && flags.contains(VerifyFlags::SIGPUSHONLY) {
                flags |= VerifyFlags::GENESIS;
            }
            let credit = Transaction {
                version: 1,
                inputs: vec![TxIn {
                    prev_out: Outpoint::new(Txid([0; 32]), u32::MAX),
                    unlocking_script: Script::from_bytes(vec![0, 0]),
                    sequence: SEQUENCE_FINAL,
                }],
                outputs: vec![TxOut {
                    satoshis: amount,
                    locking_script: lock.clone(),
                }],
                lock_time: 0,
            };
            let tx = Transaction {
                version,
                inputs: vec![TxIn {
                    prev_out: Outpoint::new(credit.txid(), 0),
                    unlocking_script: sig,
                    sequence: SEQUENCE_FINAL,
                }],
                outputs: vec![TxOut {
                    satoshis: amount,
                    locking_script: Script::default(),
                }],
                lock_time: 0,
            };
            rows.push((format!("{file}[{index}]"), tx, lock, amount, flags));
        }
    }
    rows
}

#[test]
fn every_script_vector_row_gives_the_same_verdict_with_a_hundredth_of_the_budget() {
    let unbounded = ScriptLimits {
        max_work: u64::MAX,
        ..ScriptLimits::default()
    };
    let tight = ScriptLimits {
        max_work: BUDGET / 100,
        ..ScriptLimits::default()
    };
    let rows = script_rows();
    assert!(rows.len() > 1_500, "{} rows", rows.len());
    let mut most = (0u64, String::new());
    for (name, tx, lock, amount, flags) in &rows {
        let cache = SighashCache::new(tx);
        let free = verify_input_metered(&cache, 0, lock, *amount, *flags, &unbounded);
        let capped = verify_input_metered(&cache, 0, lock, *amount, *flags, &tight);
        assert_eq!(capped, free, "{name}");
        if free.work > most.0 {
            most = (free.work, name.clone());
        }
    }
    eprintln!(
        "script vectors: {} rows, the most work {} units ({:.3}% of the budget) in {}",
        rows.len(),
        most.0,
        most.0 as f64 * 100.0 / BUDGET as f64,
        most.1
    );
}

/// Per-input verdicts and work for every unproven transaction's inputs in
/// `beef`, as SPV would run them at `tip + 1` under `limits`.
fn beef_inputs(beef: &Beef, eras: ScriptEras, tip: u32, limits: &ScriptLimits) -> Vec<Metered> {
    let mut out = Vec::new();
    for entry in beef.txs() {
        let Some(tx) = entry.transaction().filter(|_| entry.bump_index().is_none()) else {
            continue;
        };
        let cache = SighashCache::new(tx);
        for (i, input) in tx.inputs.iter().enumerate() {
            let Some(parent) = beef.find(&input.prev_out.txid) else {
                continue;
            };
            let Some(spent) = parent
                .transaction()
                .and_then(|p| p.outputs.get(input.prev_out.vout as usize))
            else {
                continue;
            };
            let utxo_height = parent
                .bump_index()
                .and_then(|b| beef.bumps().get(b))
                .map_or(tip + 1, |b| b.block_height());
            let flags = eras.flags_for(standard(), utxo_height, tip + 1);
            out.push(verify_input_metered(
                &cache,
                i,
                &spent.locking_script,
                spent.satoshis,
                flags,
                limits,
            ));
        }
    }
    out
}

fn eras(network: &str) -> ScriptEras {
    match network {
        "mainnet" => ScriptEras::MAINNET,
        "testnet" => ScriptEras::TESTNET,
        _ => ScriptEras::ALWAYS_ACTIVE,
    }
}

fn tip_of(beef: &Beef) -> u32 {
    beef.bumps()
        .iter()
        .map(|b| b.block_height())
        .max()
        .unwrap_or(0)
        + 1_000
}

struct AnyRoot(u32);

impl ChainTracker for AnyRoot {
    fn is_valid_root_for_height(&self, _: &Hash256, _: u32) -> bool {
        true
    }
    fn current_height(&self) -> u32 {
        self.0
    }
}

#[test]
fn every_vector_beef_with_real_scripts_keeps_its_verdicts_with_a_hundredth_of_the_budget() {
    let tight = ScriptLimits {
        max_work: BUDGET / 100,
        ..ScriptLimits::policy()
    };
    let unbounded = ScriptLimits {
        max_work: u64::MAX,
        ..ScriptLimits::policy()
    };
    let mut beefs: Vec<(String, Beef, ScriptEras)> = Vec::new();
    let cases = common::load("beef/beef_cases.json");
    for case in cases["cases"].as_array().unwrap() {
        let Ok(beef) = Beef::from_hex(case["hex"].as_str().unwrap()) else {
            continue;
        };
        beefs.push((
            case["id"].as_str().unwrap().to_string(),
            beef,
            eras(case["network"].as_str().unwrap_or("")),
        ));
    }
    let real = common::load("mainnet/real_chain_beef.json");
    let mut real_ids = Vec::new();
    for item in real["beefs"].as_array().unwrap() {
        let beef = Beef::from_hex(item["beef_hex"].as_str().unwrap()).unwrap();
        let id = item["id"].as_str().unwrap().to_string();
        if item["valid_strict"].as_bool().unwrap() {
            real_ids.push((id.clone(), beef.clone()));
        }
        beefs.push((id, beef, eras(item["network"].as_str().unwrap())));
    }
    let (mut inputs, mut most) = (0, 0u64);
    for (id, beef, eras) in &beefs {
        let tip = tip_of(beef);
        let free = beef_inputs(beef, *eras, tip, &unbounded);
        let capped = beef_inputs(beef, *eras, tip, &tight);
        assert_eq!(capped, free, "{id}");
        inputs += free.len();
        most = most.max(
            free.iter()
                .filter(|m| m.result.is_ok())
                .map(|m| m.work)
                .max()
                .unwrap_or(0),
        );
    }
    assert!(inputs > 50, "{inputs} inputs");
    // The real chain BEEFs verify in full under the default (policy) options.
    assert!(!real_ids.is_empty());
    for (id, beef) in real_ids {
        let tip = tip_of(&beef);
        let opts = VerifyOptions {
            eras: ScriptEras::MAINNET,
            ..VerifyOptions::default()
        };
        assert_eq!(opts.script_limits, ScriptLimits::policy());
        verify(beef, &AnyRoot(tip), &opts).unwrap_or_else(|e| panic!("{id}: {e}"));
    }
    eprintln!(
        "vector BEEFs: {} BEEFs, {inputs} inputs, the most work of a passing input {most} units",
        beefs.len()
    );
}

// ---- The BEEF-wide cap ----

/// A proven funding transaction with one output per lock, and one unproven
/// version-2 transaction spending them all with empty unlocking scripts.
fn wide_beef(locks: &[Script]) -> (Beef, Transaction) {
    let n = locks.len() as u32;
    let funding = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([0; 32]), u32::MAX),
            unlocking_script: Script::from_bytes(vec![1, 1]),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: locks
            .iter()
            .map(|lock| TxOut {
                satoshis: 10_000,
                locking_script: lock.clone(),
            })
            .collect(),
        lock_time: 0,
    };
    let other = Txid(sha256(b"other tx in the block"));
    let bump = MerklePath::from_block(800_000, &[funding.txid(), other], &[0]).unwrap();
    let spend = Transaction {
        version: 2,
        inputs: (0..n)
            .map(|vout| TxIn {
                prev_out: Outpoint::new(funding.txid(), vout),
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs: vec![TxOut {
            satoshis: u64::from(n) * 10_000 - 500,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    };
    let mut beef = Beef::new(BeefVersion::V2);
    beef.add_bump(bump);
    beef.add_transaction(funding);
    beef.add_transaction(spend.clone());
    (beef, spend)
}

fn verify_in_pool(threads: usize, beef: &Beef, opts: &VerifyOptions) -> Result<(), VerifyError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| verify(beef.clone(), &AnyRoot(801_000), opts).map(|_| ()))
}

#[test]
fn the_beef_work_cap_stops_many_affordable_inputs_at_the_same_input_on_any_thread_count() {
    // Each input hashes a 1 MB element 5 times: affordable alone, expensive together.
    let lock = S::default()
        .zeros(1_000_000)
        .ops(&[OP_DUP, OP_SHA256, OP_DROP], 5)
        .op(OP_DROP)
        .op(OP_1)
        .script();
    let (beef, spend) = wide_beef(&vec![lock.clone(); 12]);
    let opts = VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    let cache = SighashCache::new(&spend);
    let works: Vec<u64> = (0..12)
        .map(|i| {
            let m = verify_input_metered(&cache, i, &lock, 10_000, standard(), &opts.script_limits);
            assert_eq!(m.result, Ok(()));
            m.work
        })
        .collect();
    assert!(
        works[0] > BUDGET / 100,
        "each input is expensive: {}",
        works[0]
    );
    for threads in [1, 2, 3, 8] {
        assert_eq!(
            verify_in_pool(threads, &beef, &opts),
            Ok(()),
            "{threads} threads, default cap"
        );
    }

    // A cap that pays for three and a half inputs: the fourth (index 3) runs it out.
    let cap = works[0] * 7 / 2;
    let expected_stop = (0..12)
        .find(|&k| works[..=k].iter().sum::<u64>() > cap)
        .unwrap();
    assert_eq!(expected_stop, 3);
    let capped = VerifyOptions {
        max_total_work: cap,
        ..opts
    };
    for threads in [1, 2, 3, 8] {
        assert_eq!(
            verify_in_pool(threads, &beef, &capped),
            Err(VerifyError::TotalWorkExceeded {
                txid: spend.txid(),
                input: expected_stop,
                max_total_work: cap
            }),
            "{threads} threads"
        );
    }
    // A per-input budget below one input's work fails the first input on its own budget.
    let small = VerifyOptions {
        script_limits: ScriptLimits {
            max_work: works[0] - 1,
            ..ScriptLimits::policy()
        },
        ..opts
    };
    for threads in [1, 4] {
        assert_eq!(
            verify_in_pool(threads, &beef, &small),
            Err(VerifyError::Script {
                txid: spend.txid(),
                input: 0,
                error: ScriptError::WorkBudgetExceeded
            }),
            "{threads} threads"
        );
    }
    // The first failure in input order wins: a script failure before the cap
    // runs out, the cap before a later script failure.
    let failing = S::default().op(OP_0).script();
    for (bad, expected) in [(1, Err(ScriptError::EvalFalse)), (7, Ok(()))] {
        let mut locks = vec![lock.clone(); 12];
        locks[bad] = failing.clone();
        let (mixed, mixed_spend) = wide_beef(&locks);
        let want = match expected {
            Err(error) => VerifyError::Script {
                txid: mixed_spend.txid(),
                input: bad,
                error,
            },
            Ok(()) => VerifyError::TotalWorkExceeded {
                txid: mixed_spend.txid(),
                input: 3,
                max_total_work: cap,
            },
        };
        for threads in [1, 2, 8] {
            assert_eq!(
                verify_in_pool(threads, &mixed, &capped),
                Err(want),
                "bad input {bad}, {threads} threads"
            );
        }
    }
}

#[test]
fn a_hostile_input_fails_alone_and_the_cap_counts_what_it_used() {
    // Input 0 is hostile (runs out its own budget), the rest are cheap.
    let hostile = S::default()
        .zeros(1_000_000)
        .ops(&[OP_DUP, OP_SHA256, OP_DROP], 1_000)
        .script();
    let cheap = S::default().op(OP_1).script();
    let (beef, spend) = wide_beef(&[hostile, cheap.clone(), cheap]);
    let opts = VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    assert_eq!(
        verify_in_pool(2, &beef, &opts),
        Err(VerifyError::Script {
            txid: spend.txid(),
            input: 0,
            error: ScriptError::WorkBudgetExceeded
        })
    );
    // With a cap below the per-input budget, the same input runs out the cap instead.
    let capped = VerifyOptions {
        max_total_work: BUDGET / 2,
        ..opts
    };
    assert_eq!(
        verify_in_pool(2, &beef, &capped),
        Err(VerifyError::TotalWorkExceeded {
            txid: spend.txid(),
            input: 0,
            max_total_work: BUDGET / 2
        })
    );
    assert!(VerifyError::TotalWorkExceeded {
        txid: spend.txid(),
        input: 0,
        max_total_work: 7
    }
    .to_string()
    .contains("7 work units"));
}
