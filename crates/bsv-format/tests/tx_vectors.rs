//! Every row of the node's `tx_valid.json` / `tx_invalid.json`, run as the
//! node's `transaction_tests.cpp` (`RunTests`) runs them.
//!
//! Rows: `[[[prev_txid, prev_vout, prev_scriptPubKey, amount?], …], tx_hex, flags]`,
//! where `flags` is one comma list or a list of them; single-string rows are
//! comments. For each row:
//! 1. the transaction goes through the node's context-free checks
//!    (`CheckRegularTransaction` / `CheckCoinbase` with pre-Genesis limits,
//!    reproduced in [`basic_check`]). A valid row must pass them; an invalid
//!    row that fails them is invalid as it should be;
//! 2. otherwise, for **each** flag set, every input is verified against its
//!    prevout script (amount 0 unless given) until one fails. A valid row must
//!    pass every input under every flag set; an invalid row must fail some
//!    input under every flag set.

mod common;

use std::collections::{HashMap, HashSet};

use bsv_format::script::asm::parse_node_test_asm;
use bsv_format::script::interpreter::{verify_input_cached, ScriptError, VerifyFlags};
use bsv_format::script::Script;
use bsv_format::sighash::SighashCache;
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut};
use bsv_format::Txid;
use serde_json::Value;

/// 21,000,000 BSV in satoshis (node `MAX_MONEY`).
const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
/// Pre-Genesis consensus limits used by the node's test.
const MAX_TX_SIZE_BEFORE_GENESIS: usize = 1_000_000;
const MAX_TX_SIGOPS_BEFORE_GENESIS: u64 = 20_000;
/// Legacy sigop count of one CHECKMULTISIG.
const MULTISIG_LEGACY_SIGOPS: u64 = 20;

struct Row {
    prevouts: HashMap<Outpoint, (Script, u64)>,
    /// The transaction, or why it does not decode (trailing bytes included:
    /// a segwit-serialized row decodes on the node as a transaction without
    /// inputs, which its basic checks reject).
    tx: Result<Transaction, String>,
    flag_sets: Vec<VerifyFlags>,
}

fn parse_row(row: &[Value]) -> Result<Row, String> {
    let [inputs, tx_hex, flags] = row else {
        return Err(format!("expected 3 elements, got {}", row.len()));
    };
    let mut prevouts = HashMap::new();
    for input in inputs.as_array().ok_or("inputs not an array")? {
        let input = input.as_array().ok_or("input not an array")?;
        if !(3..=4).contains(&input.len()) {
            return Err("input needs 3 or 4 elements".into());
        }
        let txid = Txid::from_display_hex(input[0].as_str().ok_or("prev txid")?)
            .map_err(|e| format!("prev txid: {e}"))?;
        // The node reads the index as an int: -1 is 0xFFFFFFFF.
        let vout = input[1].as_i64().ok_or("prev vout")? as u32;
        let script = parse_node_test_asm(input[2].as_str().ok_or("prev script")?)
            .map_err(|e| format!("prev script: {e}"))?;
        let amount = match input.get(3) {
            Some(v) => v.as_u64().ok_or("amount")?,
            None => 0,
        };
        prevouts.insert(Outpoint::new(txid, vout), (script, amount));
    }
    let tx = Transaction::from_hex(tx_hex.as_str().ok_or("tx not a string")?)
        .map_err(|e| format!("decode: {e}"));
    let names: Vec<&str> = match flags {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .map(|v| v.as_str().ok_or("flags"))
            .collect::<Result<_, _>>()?,
        _ => return Err("flags must be a string or a non-empty list".into()),
    };
    let flag_sets = names
        .iter()
        .map(|n| VerifyFlags::from_node_names(n).map_err(|e| format!("flags {n:?}: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Row {
        prevouts,
        tx,
        flag_sets,
    })
}

/// Legacy (inaccurate) sigop count of a script: CHECKSIG 1, CHECKMULTISIG 20,
/// stopping at the first malformed push (node `GetSigOpCount(false)`).
fn legacy_sigops(script: &Script) -> u64 {
    let mut n = 0;
    for chunk in script.chunks() {
        let Ok(chunk) = chunk else { break };
        match chunk.opcode {
            0xac | 0xad => n += 1,
            0xae | 0xaf => n += MULTISIG_LEGACY_SIGOPS,
            _ => {}
        }
    }
    n
}

/// The node's context-free transaction checks before Genesis
/// (`CheckTransactionCommon` + `CheckRegularTransaction` / `CheckCoinbase`).
fn basic_check(tx: &Transaction) -> Result<(), &'static str> {
    if tx.inputs.is_empty() {
        return Err("bad-txns-vin-empty");
    }
    if tx.outputs.is_empty() {
        return Err("bad-txns-vout-empty");
    }
    if tx.size() > MAX_TX_SIZE_BEFORE_GENESIS {
        return Err("bad-txns-oversize");
    }
    let mut total: u64 = 0;
    for out in &tx.outputs {
        // The node's amounts are signed: values >= 2^63 are negative there.
        if out.satoshis > MAX_MONEY {
            return Err("bad-txns-vout-toolarge");
        }
        total += out.satoshis;
        if total > MAX_MONEY {
            return Err("bad-txns-txouttotal-toolarge");
        }
    }
    let sigops: u64 = tx
        .inputs
        .iter()
        .map(|i| legacy_sigops(&i.unlocking_script))
        .sum::<u64>()
        + tx.outputs
            .iter()
            .map(|o| legacy_sigops(&o.locking_script))
            .sum::<u64>();
    if sigops > MAX_TX_SIGOPS_BEFORE_GENESIS {
        return Err("bad-txn-sigops");
    }
    if tx.is_coinbase() {
        let len = tx.inputs[0].unlocking_script.len();
        if !(2..=100).contains(&len) {
            return Err("bad-cb-length");
        }
        return Ok(());
    }
    let mut seen = HashSet::new();
    for input in &tx.inputs {
        if input.prev_out.is_null() {
            return Err("bad-txns-prevout-null");
        }
        if !seen.insert(input.prev_out) {
            return Err("bad-txns-inputs-duplicate");
        }
    }
    Ok(())
}

/// Verifies every input under `flags`; the first failure, if any.
fn verify_all(row: &Row, tx: &Transaction, flags: VerifyFlags) -> Result<(), String> {
    let cache = SighashCache::new(tx);
    for (i, input) in tx.inputs.iter().enumerate() {
        let (script, amount) = row
            .prevouts
            .get(&input.prev_out)
            .ok_or(format!("bad test: no prevout for input {i}"))?;
        verify_input_cached(&cache, i, script, *amount, flags)
            .map_err(|e: ScriptError| format!("input {i}: {}", e.node_name()))?;
    }
    Ok(())
}

fn run_file(file: &str, should_be_valid: bool) {
    let data = common::load(file);
    let rows = data
        .as_array()
        .unwrap_or_else(|| panic!("{file}: not an array"));
    let (mut run, mut passed, mut by_basic_check) = (0, 0, 0);
    let mut failures = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let row = row
            .as_array()
            .unwrap_or_else(|| panic!("{file}[{index}]: not an array"));
        if !row.first().is_some_and(Value::is_array) {
            continue; // comment
        }
        run += 1;
        let parsed = match parse_row(row) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file}[{index}]: {e}"));
                continue;
            }
        };
        let checked = parsed
            .tx
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|tx| basic_check(tx).map_err(str::to_string).map(|()| tx));
        let tx = match checked {
            Ok(tx) => tx,
            Err(reason) => {
                if should_be_valid {
                    failures.push(format!("{file}[{index}]: basic check failed: {reason}"));
                } else {
                    by_basic_check += 1;
                    passed += 1;
                }
                continue;
            }
        };
        let mut ok = true;
        for flags in &parsed.flag_sets {
            let result = verify_all(&parsed, tx, *flags);
            if let Err(e) = &result {
                if e.starts_with("bad test") {
                    failures.push(format!("{file}[{index}]: {e}"));
                    ok = false;
                    continue;
                }
            }
            if result.is_ok() != should_be_valid {
                failures.push(format!("{file}[{index}] under {flags:?}: {result:?}"));
                ok = false;
            }
        }
        if ok {
            passed += 1;
        }
    }
    println!("{file}: {passed}/{run} rows pass ({by_basic_check} rejected by decoding or the basic checks)");
    assert!(run > 0, "{file}: no rows");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_valid_transaction_passes_under_every_flag_set() {
    run_file("tx/tx_valid.json", true);
}

#[test]
fn every_invalid_transaction_fails_a_basic_check_or_a_script() {
    run_file("tx/tx_invalid.json", false);
}

#[test]
fn basic_checks_reject_what_the_node_rejects() {
    let valid = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([1; 32]), 0),
            unlocking_script: Script::default(),
            sequence: u32::MAX,
        }],
        outputs: vec![TxOut {
            satoshis: MAX_MONEY,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    };
    assert_eq!(basic_check(&valid), Ok(()));
    let mut dup = valid.clone();
    dup.inputs.push(dup.inputs[0].clone());
    assert_eq!(basic_check(&dup), Err("bad-txns-inputs-duplicate"));
    let mut rich = valid.clone();
    rich.outputs[0].satoshis = MAX_MONEY + 1;
    assert_eq!(basic_check(&rich), Err("bad-txns-vout-toolarge"));
    rich.outputs = vec![
        TxOut {
            satoshis: 1,
            locking_script: Script::default(),
        },
        valid.outputs[0].clone(),
    ];
    assert_eq!(basic_check(&rich), Err("bad-txns-txouttotal-toolarge"));
    let mut empty = valid.clone();
    empty.inputs.clear();
    assert_eq!(basic_check(&empty), Err("bad-txns-vin-empty"));
    let mut none = valid.clone();
    none.outputs.clear();
    assert_eq!(basic_check(&none), Err("bad-txns-vout-empty"));
    let mut null = valid.clone();
    null.inputs[0].prev_out = Outpoint::new(Txid([0; 32]), u32::MAX);
    null.inputs.push(valid.inputs[0].clone());
    assert_eq!(basic_check(&null), Err("bad-txns-prevout-null"));
    let mut coinbase = valid;
    coinbase.inputs[0].prev_out = Outpoint::new(Txid([0; 32]), u32::MAX);
    assert_eq!(basic_check(&coinbase), Err("bad-cb-length"));
    let mut heavy = coinbase.clone();
    heavy.inputs[0].unlocking_script = Script::from_bytes(vec![0x51, 0x51]);
    heavy.outputs[0].locking_script = Script::from_bytes(vec![0xae; 1001]);
    assert_eq!(basic_check(&heavy), Err("bad-txn-sigops"));
}
