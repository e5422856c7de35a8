//! BRC-30 Extended Format against `ef/ef_cases.json`, both ways, plus the
//! raw/EF confusion errors, truncations and trailing bytes.

mod common;

use bsv_format::codec::Reader;
use bsv_format::ef::{EfError, EfTransaction};
use bsv_format::{ParseError, ParseErrorKind, Script, Transaction, TxOut, Txid};
use serde_json::Value;

struct Case {
    id: String,
    txid: String,
    raw: Vec<u8>,
    ef: Vec<u8>,
    inputs: Vec<Value>,
}

fn cases() -> Vec<Case> {
    let data = common::load("ef/ef_cases.json");
    let list = data["cases"].as_array().expect("cases array");
    assert_eq!(list.len() as u64, data["count"].as_u64().unwrap());
    assert!(!list.is_empty());
    list.iter()
        .map(|c| Case {
            id: c["id"].as_str().unwrap().to_string(),
            txid: c["txid"].as_str().unwrap().to_string(),
            raw: hex::decode(c["raw_hex"].as_str().unwrap()).unwrap(),
            ef: hex::decode(c["ef_hex"].as_str().unwrap()).unwrap(),
            inputs: c["inputs"].as_array().unwrap().clone(),
        })
        .collect()
}

fn source_output(input: &Value) -> TxOut {
    TxOut {
        satoshis: input["source_satoshis"].as_u64().unwrap(),
        locking_script: Script::from_bytes(
            hex::decode(input["source_locking_script_hex"].as_str().unwrap()).unwrap(),
        ),
    }
}

#[test]
fn decoding_ef_gives_the_raw_transaction_txid_and_sources() {
    for c in cases() {
        let ef = EfTransaction::from_bytes(&c.ef).unwrap_or_else(|e| panic!("{}: {e}", c.id));
        assert_eq!(ef.tx.to_bytes(), c.raw, "{}", c.id);
        assert_eq!(ef.txid().to_string(), c.txid, "{}", c.id);
        assert_eq!(ef.tx.inputs.len(), c.inputs.len(), "{}", c.id);
        assert_eq!(ef.source_outputs.len(), c.inputs.len(), "{}", c.id);
        for (i, want) in c.inputs.iter().enumerate() {
            let input = &ef.tx.inputs[i];
            assert_eq!(
                input.prev_out.txid.to_string(),
                want["source_txid"].as_str().unwrap(),
                "{} input {i}",
                c.id
            );
            assert_eq!(
                u64::from(input.prev_out.vout),
                want["source_output_index"].as_u64().unwrap(),
                "{} input {i}",
                c.id
            );
            assert_eq!(
                u64::from(input.sequence),
                want["sequence"].as_u64().unwrap(),
                "{} input {i}",
                c.id
            );
            assert_eq!(
                ef.source_outputs[i],
                source_output(want),
                "{} input {i}",
                c.id
            );
        }
        // Streaming txid equals the txid of the re-serialized raw form.
        let mut r = Reader::new(&c.ef);
        let (again, txid) = EfTransaction::read_with_txid(&mut r).unwrap();
        assert!(r.is_empty());
        assert_eq!(again, ef);
        assert_eq!(txid.to_string(), c.txid, "{}", c.id);
        assert_eq!(Txid::of_raw(&c.raw).to_string(), c.txid, "{}", c.id);
    }
}

#[test]
fn encoding_raw_plus_sources_gives_the_ef_bytes() {
    for c in cases() {
        let tx = Transaction::from_bytes(&c.raw).unwrap_or_else(|e| panic!("{}: {e}", c.id));
        let sources: Vec<TxOut> = c.inputs.iter().map(source_output).collect();
        let ef = EfTransaction::new(tx, sources).unwrap();
        assert_eq!(hex::encode(ef.to_bytes()), hex::encode(&c.ef), "{}", c.id);
        assert_eq!(ef.to_hex(), hex::encode(&c.ef));
        let mut out = vec![0xaa];
        ef.write(&mut out);
        assert_eq!(&out[1..], &c.ef[..]);
        assert_eq!(EfTransaction::from_hex(&ef.to_hex()).unwrap(), ef);
    }
}

#[test]
fn each_decoder_names_the_other_format() {
    for c in cases() {
        assert_eq!(
            EfTransaction::from_bytes(&c.raw).unwrap_err(),
            ParseError::new(4, ParseErrorKind::NotExtendedFormat, "EF marker"),
            "{}",
            c.id
        );
        assert_eq!(
            Transaction::from_bytes(&c.ef).unwrap_err().kind,
            ParseErrorKind::UnexpectedExtendedFormat,
            "{}",
            c.id
        );
        assert_eq!(
            Transaction::from_bytes(&c.ef).unwrap_err().offset,
            4,
            "{}",
            c.id
        );
    }
}

#[test]
fn every_truncation_is_an_error_and_trailing_bytes_are_refused() {
    for c in cases() {
        for len in 0..c.ef.len() {
            let err =
                EfTransaction::from_bytes(&c.ef[..len]).expect_err("truncated EF must not decode");
            assert!(
                matches!(
                    err.kind,
                    ParseErrorKind::UnexpectedEnd | ParseErrorKind::CountTooLarge
                ),
                "{} truncated to {len}: {err}",
                c.id
            );
            assert!(
                err.offset <= len,
                "{} truncated to {len}: offset {}",
                c.id,
                err.offset
            );
        }
        let mut long = c.ef.clone();
        long.push(0);
        assert_eq!(
            EfTransaction::from_bytes(&long).unwrap_err(),
            ParseError::new(
                c.ef.len(),
                ParseErrorKind::TrailingBytes,
                "end of EF transaction"
            ),
            "{}",
            c.id
        );
        // read() leaves trailing bytes to the caller.
        let mut r = Reader::new(&long);
        EfTransaction::read(&mut r).unwrap();
        assert_eq!(r.remaining(), 1);
    }
}

#[test]
fn a_source_count_mismatch_is_refused() {
    let c = &cases()[0];
    let tx = Transaction::from_bytes(&c.raw).unwrap();
    let n = tx.inputs.len();
    let mut sources: Vec<TxOut> = c.inputs.iter().map(source_output).collect();
    sources.push(TxOut {
        satoshis: 1,
        locking_script: Script::default(),
    });
    assert_eq!(
        EfTransaction::new(tx.clone(), sources),
        Err(EfError::SourceCountMismatch {
            inputs: n,
            source_outputs: n + 1
        })
    );
    assert_eq!(
        EfTransaction::new(tx, vec![]),
        Err(EfError::SourceCountMismatch {
            inputs: n,
            source_outputs: 0
        })
    );
}

mod properties {
    use super::*;
    use bsv_format::tx::{Outpoint, TxIn};
    use proptest::prelude::*;

    fn script() -> impl Strategy<Value = Script> {
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Script::from_bytes)
    }

    fn ef_tx() -> impl Strategy<Value = EfTransaction> {
        let input = (
            any::<[u8; 32]>(),
            any::<u32>(),
            script(),
            any::<u32>(),
            any::<u64>(),
            script(),
        );
        let output = (any::<u64>(), script());
        (
            any::<u32>(),
            proptest::collection::vec(input, 0..4),
            proptest::collection::vec(output, 0..4),
            any::<u32>(),
        )
            .prop_map(|(version, ins, outs, lock_time)| {
                let (inputs, sources): (Vec<_>, Vec<_>) = ins
                    .into_iter()
                    .map(
                        |(txid, vout, unlocking_script, sequence, satoshis, locking_script)| {
                            (
                                TxIn {
                                    prev_out: Outpoint::new(Txid(txid), vout),
                                    unlocking_script,
                                    sequence,
                                },
                                TxOut {
                                    satoshis,
                                    locking_script,
                                },
                            )
                        },
                    )
                    .unzip();
                let outputs = outs
                    .into_iter()
                    .map(|(satoshis, locking_script)| TxOut {
                        satoshis,
                        locking_script,
                    })
                    .collect();
                EfTransaction::new(
                    Transaction {
                        version,
                        inputs,
                        outputs,
                        lock_time,
                    },
                    sources,
                )
                .unwrap()
            })
    }

    proptest! {
        #[test]
        fn any_ef_round_trips_with_the_raw_txid(ef in ef_tx()) {
            let bytes = ef.to_bytes();
            prop_assert_eq!(&EfTransaction::from_bytes(&bytes).unwrap(), &ef);
            let mut r = Reader::new(&bytes);
            prop_assert_eq!(EfTransaction::read_with_txid(&mut r).unwrap().1, ef.tx.txid());
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..400), marker in any::<bool>()) {
            if marker && bytes.len() >= 10 {
                bytes[4..10].copy_from_slice(&bsv_format::ef::EF_MARKER);
            }
            if let Err(e) = EfTransaction::from_bytes(&bytes) {
                prop_assert!(e.offset <= bytes.len());
            }
        }
    }
}
