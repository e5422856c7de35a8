//! BRC-74 BUMP vectors: every case of `bump/bump_cases.json`, under the strict
//! rule (standalone BUMPs) and the lenient rule (BUMPs inside a BEEF).

mod common;

use bsv_format::bump::{BumpError, MerklePath, NodeValue};
use bsv_format::codec::ParseErrorKind;
use bsv_format::{Hash256, Txid};
use serde_json::Value;

fn hex_bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn root_hex(root: Hash256) -> String {
    root.to_string()
}

/// Whether our error is the fault @bsv/sdk 2.1.0 reported with `message`.
fn same_fault(message: &str, err: &BumpError) -> bool {
    let parse_kind = match err {
        BumpError::Parse(e) => Some(e.kind),
        _ => None,
    };
    if message.starts_with("Invalid offset") {
        parse_kind == Some(ParseErrorKind::IllegalOffset)
    } else if message.starts_with("Duplicate offset") {
        parse_kind == Some(ParseErrorKind::DuplicateOffset)
    } else if message.starts_with("Mismatched roots") {
        *err == BumpError::MismatchedRoots
    } else if message.starts_with("Empty level") {
        *err == BumpError::EmptyLevel0
    } else if let Some(rest) = message.strip_prefix("Missing hash for index ") {
        // "<index> at height <height>". ts-sdk 2.1.0 reads past the end of a
        // truncated BUMP without a bounds check, so truncation shows up there as
        // a missing hash; our reader reports the truncation itself.
        let mut parts = rest.split(" at height ");
        let index: u64 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .expect("index in message");
        let height: u8 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .expect("height in message");
        *err == BumpError::MissingNode { index, height }
            || matches!(
                parse_kind,
                Some(ParseErrorKind::UnexpectedEnd | ParseErrorKind::CountTooLarge)
            )
    } else {
        panic!("unmapped ts-sdk BUMP error message: {message}")
    }
}

fn check_decoded(id: &str, path: &MerklePath, bytes: &[u8], case: &Value) {
    let expect = &case["expect"];
    assert_eq!(
        u64::from(path.block_height()),
        expect["block_height"].as_u64().unwrap(),
        "{id}: block height"
    );
    assert_eq!(
        u64::from(path.tree_height()),
        expect["tree_height"].as_u64().unwrap(),
        "{id}: tree height"
    );
    let clients: Vec<String> = path.client_txids().map(|t| t.to_string()).collect();
    let expected_clients: Vec<String> = expect["client_txids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(clients, expected_clients, "{id}: client txids");
    assert_eq!(
        root_hex(path.root()),
        expect["merkle_root"].as_str().unwrap(),
        "{id}: root"
    );
    if let Some(up) = expect.get("upstream_expected_root").and_then(Value::as_str) {
        assert_eq!(
            root_hex(path.root()) == up,
            expect["root_agrees_with_upstream"].as_bool().unwrap(),
            "{id}: upstream root"
        );
    }
    if let Some(reference) = expect.get("reference_root").and_then(Value::as_object) {
        for root in reference.values() {
            assert_ne!(
                root_hex(path.root()),
                root.as_str().unwrap(),
                "{id}: a corrupted sibling must change the root"
            );
        }
    }
    assert_eq!(path.to_bytes(), bytes, "{id}: byte-exact round trip");

    // Every level-0 leaf with a hash, client or not, leads to the root.
    // (Recorded for every case ts-sdk parses strictly.)
    let leaves = case["sdk_2_1_0_observed"]["level0_hashes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    assert!(
        !leaves.is_empty() || !expect["valid"].as_bool().unwrap(),
        "{id}: level-0 leaves recorded"
    );
    for leaf in leaves {
        let txid = Txid::from_display_hex(leaf["hash"].as_str().unwrap()).unwrap();
        assert_eq!(
            path.compute_root(&txid),
            Ok(path.root()),
            "{id}: root from leaf {txid}"
        );
        assert_eq!(
            path.leaf_offset(&txid),
            leaf["offset"].as_u64(),
            "{id}: offset of {txid}"
        );
        let node = path.levels()[0]
            .iter()
            .find(|n| n.value.hash().map(|h| h.0) == Some(txid.0))
            .unwrap();
        assert_eq!(
            matches!(node.value, NodeValue::ClientTxid(_)),
            leaf["txid"].as_bool().unwrap(),
            "{id}: flag of {txid}"
        );
    }

    // Paths we derive from it are strict, minimal and keep the root.
    let clients: Vec<Txid> = path.client_txids().collect();
    if !clients.is_empty() {
        let mut trimmed = path.clone();
        trimmed.trim();
        let strict = MerklePath::from_bytes_strict(&trimmed.to_bytes())
            .unwrap_or_else(|e| panic!("{id}: trimmed path not strict: {e}"));
        assert_eq!(strict.root(), path.root(), "{id}: trim keeps the root");
        assert_eq!(
            strict.client_txids().collect::<Vec<_>>().len(),
            clients.len(),
            "{id}: trim keeps the clients"
        );
        for client in &clients {
            let one = path.extract(&[*client]).unwrap();
            let one = MerklePath::from_bytes_strict(&one.to_bytes()).unwrap();
            assert_eq!(
                one.compute_root(client),
                Ok(path.root()),
                "{id}: extract {client}"
            );
        }
    }
}

#[test]
fn every_bump_case() {
    let file = common::load("bump/bump_cases.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len() as u64, file["count"].as_u64().unwrap());
    let (mut strict_ok, mut lenient_ok) = (0, 0);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let bytes = hex_bytes(&case["hex"]);
        let expect = &case["expect"];
        let strict = MerklePath::from_bytes_strict(&bytes);
        let lenient = MerklePath::from_bytes_lenient(&bytes);
        assert_eq!(
            strict.is_ok(),
            expect["valid"].as_bool().unwrap(),
            "{id}: strict verdict {strict:?}"
        );
        assert_eq!(
            lenient.is_ok(),
            expect["valid_lenient_in_beef"].as_bool().unwrap(),
            "{id}: lenient verdict {lenient:?}"
        );
        match &strict {
            Ok(path) => {
                strict_ok += 1;
                check_decoded(id, path, &bytes, case);
                assert_eq!(
                    Ok(path),
                    lenient.as_ref(),
                    "{id}: both modes decode the same path"
                );
            }
            Err(e) => {
                let message = expect["error_ts_2_1_0"]
                    .as_str()
                    .expect("error message for an invalid case");
                assert!(
                    same_fault(message, e),
                    "{id}: we report {e:?}, ts-sdk said {message}"
                );
            }
        }
        match &lenient {
            Ok(path) => {
                lenient_ok += 1;
                check_decoded(id, path, &bytes, case);
            }
            Err(e) => {
                let message = case["sdk_2_1_0_observed"]["lenient_error"]
                    .as_str()
                    .or(expect["error_ts_2_1_0"].as_str())
                    .expect("lenient error message");
                assert!(
                    same_fault(message, e),
                    "{id}: lenient: we report {e:?}, ts-sdk said {message}"
                );
            }
        }
    }
    eprintln!(
        "bump_cases: {} cases, {strict_ok} strict-valid, {lenient_ok} lenient-valid",
        cases.len()
    );
}
