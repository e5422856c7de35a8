//! proptest strategies shared by `proptest_roundtrip.rs` and
//! `proptest_mutation.rs`: random transactions, scripts built from chunks, and
//! (via the producer APIs) EF transactions, BUMPs and BEEFs.
#![allow(dead_code)]

use bsv_format::script::opcodes::*;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use proptest::prelude::*;

/// `cases` cases (or `$PROPTEST_CASES`), no failure-persistence files (the
/// minimal failing input is printed; turn it into a `#[test]` instead).
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Random script bytes, biased towards short scripts.
pub fn script_bytes(max: usize) -> impl Strategy<Value = Script> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Script::from_bytes)
}

/// A random 32-byte txid.
pub fn txid() -> impl Strategy<Value = Txid> {
    any::<[u8; 32]>().prop_map(Txid)
}

/// A random input (any outpoint, script of up to 120 bytes, any sequence).
pub fn tx_in() -> impl Strategy<Value = TxIn> {
    (txid(), any::<u32>(), script_bytes(120), any::<u32>()).prop_map(|(txid, vout, unlocking_script, sequence)| TxIn {
        prev_out: Outpoint { txid, vout },
        unlocking_script,
        sequence,
    })
}

/// A random output (any satoshi value, script of up to 120 bytes).
pub fn tx_out() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), script_bytes(120)).prop_map(|(satoshis, locking_script)| TxOut { satoshis, locking_script })
}

/// A random transaction with 1..5 inputs and 0..5 outputs. (Zero inputs is
/// excluded: `version ‖ 00 00 ‖ 000000EF` reads as the EF marker, see
/// `empty_transaction_with_ef_marker_lock_time_reads_as_ef`.)
pub fn transaction() -> impl Strategy<Value = Transaction> {
    (any::<u32>(), prop::collection::vec(tx_in(), 1..5), prop::collection::vec(tx_out(), 0..5), any::<u32>())
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction { version, inputs, outputs, lock_time })
}

/// One element of a script under construction.
#[derive(Clone, Debug)]
pub enum ScriptPart {
    /// A non-push opcode (`> OP_PUSHDATA4`).
    Op(u8),
    /// A push of `data` with the given push opcode form.
    Push(PushForm, Vec<u8>),
}

/// How a push is encoded (not necessarily minimally: scripts are stored as is).
#[derive(Clone, Copy, Debug)]
pub enum PushForm {
    /// Opcode `0x00..=0x4b` = the length (data up to 75 bytes).
    Direct,
    /// `OP_PUSHDATA1` + 1-byte length.
    Pushdata1,
    /// `OP_PUSHDATA2` + 2-byte length.
    Pushdata2,
    /// `OP_PUSHDATA4` + 4-byte length.
    Pushdata4,
}

/// A random script element.
pub fn script_part() -> impl Strategy<Value = ScriptPart> {
    prop_oneof![
        3 => (OP_1NEGATE..=0xffu8).prop_map(ScriptPart::Op),
        2 => prop::collection::vec(any::<u8>(), 0..76).prop_map(|d| ScriptPart::Push(PushForm::Direct, d)),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|d| ScriptPart::Push(PushForm::Pushdata1, d)),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|d| ScriptPart::Push(PushForm::Pushdata2, d)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|d| ScriptPart::Push(PushForm::Pushdata4, d)),
    ]
}

/// Encodes parts into script bytes, returning the bytes and the expected
/// `(opcode, data)` of each chunk. A `Pushdata1` of more than 255 bytes is cut
/// to 255 and a `Direct` push is at most 75 bytes.
pub fn encode_parts(parts: &[ScriptPart]) -> (Vec<u8>, Vec<(u8, Option<Vec<u8>>)>) {
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    for p in parts {
        match p {
            ScriptPart::Op(op) => {
                out.push(*op);
                chunks.push((*op, None));
            }
            ScriptPart::Push(form, data) => {
                let (op, data) = match form {
                    PushForm::Direct => {
                        let d = &data[..data.len().min(75)];
                        out.push(d.len() as u8);
                        (d.len() as u8, d)
                    }
                    PushForm::Pushdata1 => {
                        let d = &data[..data.len().min(255)];
                        out.extend_from_slice(&[OP_PUSHDATA1, d.len() as u8]);
                        (OP_PUSHDATA1, d)
                    }
                    PushForm::Pushdata2 => {
                        out.push(OP_PUSHDATA2);
                        out.extend_from_slice(&(data.len() as u16).to_le_bytes());
                        (OP_PUSHDATA2, &data[..])
                    }
                    PushForm::Pushdata4 => {
                        out.push(OP_PUSHDATA4);
                        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                        (OP_PUSHDATA4, &data[..])
                    }
                };
                out.extend_from_slice(data);
                chunks.push((op, Some(data.to_vec())));
            }
        }
    }
    (out, chunks)
}
