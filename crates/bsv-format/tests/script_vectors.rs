//! Every row of the node's script test files, run as the node's
//! `script_json_test` runs them (`src/test/script_tests.cpp`, `DoTest`).
//!
//! - `script_tests_bitcoin-sv.json` (SV Node 1.2.x): rows
//!   `[[amount]?, tx_version, scriptSig, scriptPubKey, flags, expected, comment…]`.
//! - `script_tests_teranode.json`: the same without `tx_version` (version 1).
//!
//! The optional first array holds the amount in BSV (node `AmountFromValue`:
//! fixed point, 8 decimals). A crediting transaction (version 1, one input
//! with a null prevout, scriptSig `OP_0 OP_0`, final sequence, one output of
//! `amount` locked by scriptPubKey) is spent by a transaction with the row's
//! version, one input spending `credit:0` with scriptSig and sequence
//! `0xFFFFFFFF`, one output of `amount` with an empty script, lock time 0. As
//! in `DoTest`, CLEANSTACK implies P2SH.
//!
//! The teranode file was written for a pre-Chronicle node, and two rules have
//! changed since; its rows are read with that node's meaning:
//! - SIGPUSHONLY applied on its own; node 1.2 applies it only together with
//!   GENESIS (or CHRONICLE). A teranode row with SIGPUSHONLY is run with
//!   GENESIS added (GENESIS has no other effect on the interpreter).
//! - The sighash bit 0x20 had no meaning, so a type such as 0x21 was
//!   undefined (`SIG_HASHTYPE` under STRICTENC); node 1.2 reads 0x21 as
//!   ALL|CHRONICLE and, without the CHRONICLE flag, rejects the same
//!   signature as `ILLEGAL_CHRONICLE`. For this file that result is reported
//!   under its old name, `SIG_HASHTYPE`.
//!
//! Rows that cannot apply are listed in `tests/script_skips.txt`
//! (`file<TAB>row index<TAB>reason`); the test fails unless the set of rows
//! skipped is exactly that list.

mod common;

use std::collections::BTreeSet;

use bsv_format::script::asm::parse_node_test_asm;
use bsv_format::script::interpreter::{verify_script, ScriptError, TxContext, VerifyFlags};
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut, SEQUENCE_FINAL};
use bsv_format::{Script, Txid};
use serde_json::Value;

const FILES: [(&str, bool); 2] = [
    ("script/script_tests_bitcoin-sv.json", true),
    ("script/script_tests_teranode.json", false),
];

/// One data row, parsed.
struct Case {
    amount: u64,
    version: u32,
    script_sig: Script,
    script_pub_key: Script,
    flags: VerifyFlags,
    expected: String,
}

/// Node `AmountFromValue`: a number of BSV with at most 8 decimals, to
/// satoshis. Every amount up to the 21,000,000 BSV money range is exact in an
/// `f64` after rounding to whole satoshis.
fn satoshis_from_bsv(v: &Value) -> u64 {
    let bsv = v.as_f64().unwrap_or_else(|| panic!("bad amount {v}"));
    assert!(
        bsv.is_finite() && (0.0..=21e6).contains(&bsv),
        "amount out of range: {v}"
    );
    let sats = (bsv * 1e8).round();
    assert!(
        ((sats / 1e8) - bsv).abs() < 1e-9,
        "more than 8 decimals: {v}"
    );
    sats as u64
}

fn parse_row(row: &[Value], has_version: bool, teranode: bool) -> Result<Case, String> {
    let mut pos = 0;
    let mut amount = 0;
    if let Some(Value::Array(extra)) = row.first() {
        amount = satoshis_from_bsv(extra.last().ok_or("empty amount array")?);
        pos = 1;
    }
    let column = |i: usize| -> Result<&str, String> {
        row.get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("column {i} is not a string"))
    };
    let version = if has_version {
        let v: i32 = column(pos)?
            .parse()
            .map_err(|e| format!("tx_version: {e}"))?;
        pos += 1;
        v as u32
    } else {
        1
    };
    let text = |i: usize| column(pos + i);
    let script_sig = parse_node_test_asm(text(0)?).map_err(|e| format!("scriptSig: {e}"))?;
    let script_pub_key = parse_node_test_asm(text(1)?).map_err(|e| format!("scriptPubKey: {e}"))?;
    let mut flags = VerifyFlags::from_node_names(text(2)?).map_err(|e| format!("flags: {e}"))?;
    if flags.contains(VerifyFlags::CLEANSTACK) {
        flags |= VerifyFlags::P2SH;
    }
    if teranode && flags.contains(VerifyFlags::SIGPUSHONLY) {
        flags |= VerifyFlags::GENESIS;
    }
    Ok(Case {
        amount,
        version,
        script_sig,
        script_pub_key,
        flags,
        expected: text(3)?.to_string(),
    })
}

/// The node test's crediting and spending transactions.
fn spending_tx(case: &Case) -> Transaction {
    let credit = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([0; 32]), u32::MAX),
            unlocking_script: Script::from_bytes(vec![0x00, 0x00]),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: case.amount,
            locking_script: case.script_pub_key.clone(),
        }],
        lock_time: 0,
    };
    Transaction {
        version: case.version,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(credit.txid(), 0),
            unlocking_script: case.script_sig.clone(),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: case.amount,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    }
}

fn skip_list() -> BTreeSet<(String, usize)> {
    let text = include_str!("script_skips.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split('\t');
            let file = parts.next().unwrap_or_default().to_string();
            let row = parts
                .next()
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("bad skip line: {l}"));
            assert!(
                parts.next().is_some_and(|r| !r.trim().is_empty()),
                "skip line without a reason: {l}"
            );
            (file, row)
        })
        .collect()
}

#[test]
fn every_script_vector_row_gives_the_node_result() {
    let skips = skip_list();
    let mut skipped = BTreeSet::new();
    let mut failures = Vec::new();
    for (file, has_version) in FILES {
        let name = file.rsplit('/').next().unwrap_or(file);
        let data = common::load(file);
        let rows = data
            .as_array()
            .unwrap_or_else(|| panic!("{file}: not an array"));
        let (mut run, mut passed) = (0, 0);
        for (index, row) in rows.iter().enumerate() {
            let row = row
                .as_array()
                .unwrap_or_else(|| panic!("{file}[{index}]: not an array"));
            if row.len() == 1 {
                continue; // comment
            }
            if skips.contains(&(name.to_string(), index)) {
                skipped.insert((name.to_string(), index));
                continue;
            }
            run += 1;
            let case = match parse_row(row, has_version, !has_version) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{name}[{index}]: {e}"));
                    continue;
                }
            };
            let tx = spending_tx(&case);
            let ctx = TxContext {
                tx: &tx,
                input_index: 0,
                satoshis: case.amount,
            };
            let got = match verify_script(&case.script_sig, &case.script_pub_key, case.flags, &ctx)
            {
                Ok(()) => "OK",
                Err(ScriptError::IllegalChronicle) if !has_version => {
                    ScriptError::SigHashType.node_name()
                }
                Err(e) => e.node_name(),
            };
            if got == case.expected {
                passed += 1;
            } else {
                failures.push(format!(
                    "{name}[{index}]: got {got}, expected {}: {}",
                    case.expected,
                    Value::Array(row.clone())
                ));
            }
        }
        println!("{name}: {passed}/{run} rows pass");
        assert!(run > 0, "{file}: no rows");
    }
    assert_eq!(
        skipped, skips,
        "the skip list must name exactly the rows skipped"
    );
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn amounts_are_read_as_fixed_point_bsv() {
    assert_eq!(
        satoshis_from_bsv(&serde_json::json!(123450.0)),
        12_345_000_000_000
    );
    assert_eq!(satoshis_from_bsv(&serde_json::json!(0.00000001)), 1);
    assert_eq!(satoshis_from_bsv(&serde_json::json!(21)), 2_100_000_000);
}
