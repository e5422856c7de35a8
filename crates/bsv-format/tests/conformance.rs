//! ts-stack conformance vectors (`conformance/*.json`): Merkle paths,
//! odd-node Merkle parents, and serialization round trips.
//!
//! The vectors describe ts-sdk calls; each is dispatched on the data it
//! carries (a BUMP, a raw or EF transaction, a block's txids, a pair of nodes)
//! and checked with our equivalent. Vectors about ts-sdk builder behaviour
//! that Rust's types rule out (an input without a source outpoint, negative
//! satoshis) are listed as such; every vector carrying bytes is checked.

mod common;

use bsv_format::beef::{Beef, BeefError, BeefVersion};
use bsv_format::bump::{BumpError, MerklePath, NodeValue};
use bsv_format::codec::write_varint;
use bsv_format::ef::EfTransaction;
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use serde_json::Value;

fn txid(v: &Value) -> Txid {
    Txid::from_display_hex(v.as_str().expect("txid hex")).unwrap()
}

fn txids(v: &Value) -> Vec<Txid> {
    v.as_array().expect("txid list").iter().map(txid).collect()
}

/// A single-level compound path: every txid of the block at level 0, flagged
/// as a client (ts-sdk `new MerklePath(height, [allTxidsAtLevel0])`).
fn compound(height: u32, block: &[Txid]) -> MerklePath {
    let mut bytes = Vec::new();
    write_varint(&mut bytes, u64::from(height));
    bytes.push(1);
    write_varint(&mut bytes, block.len() as u64);
    for (i, t) in block.iter().enumerate() {
        write_varint(&mut bytes, i as u64);
        bytes.push(2);
        bytes.extend_from_slice(&t.0);
    }
    MerklePath::from_bytes_strict(&bytes).unwrap()
}

#[test]
fn merkle_path() {
    let file = common::load("conformance/merkle-path.json");
    let vectors = file["vectors"].as_array().expect("vectors");
    // Blocks whose full txid list some vector carries.
    let blocks: Vec<(u32, Vec<Txid>)> = vectors
        .iter()
        .filter_map(|v| {
            let inp = &v["input"];
            Some((
                inp["block_height"].as_u64()? as u32,
                txids(inp.get("full_block_txids")?),
            ))
        })
        .collect();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let (inp, exp) = (&v["input"], &v["expected"]);
        if let Some(hex) = inp["bump_hex"].as_str() {
            let path = MerklePath::from_hex_strict(hex).unwrap_or_else(|e| panic!("{id}: {e}"));
            if let Some(h) = exp["block_height"].as_u64() {
                assert_eq!(u64::from(path.block_height()), h, "{id}");
            }
            if let Some(n) = exp["path_levels"].as_u64() {
                assert_eq!(u64::from(path.tree_height()), n, "{id}");
            }
            if let Some(n) = exp["path_level0_length"].as_u64() {
                assert_eq!(path.levels()[0].len() as u64, n, "{id}");
            }
            for key in ["toHex", "serialized_bump_hex"] {
                if let Some(out) = exp[key].as_str() {
                    assert_eq!(path.to_hex(), out, "{id}: {key}");
                }
            }
            if let (Some(_), Some(root)) = (inp["txid"].as_str(), exp["merkle_root"].as_str()) {
                assert_eq!(
                    path.compute_root(&txid(&inp["txid"])).unwrap().to_string(),
                    root,
                    "{id}"
                );
            }
            if let Some(level0) = inp["txids_at_level_0"].as_array() {
                for (i, t) in level0.iter().enumerate() {
                    let root = exp[format!("merkle_root_for_tx{i}")]
                        .as_str()
                        .expect("root per txid");
                    assert_eq!(
                        path.compute_root(&txid(t)).unwrap().to_string(),
                        root,
                        "{id}: tx{i}"
                    );
                    let built = MerklePath::from_block(
                        path.block_height(),
                        &txids(&inp["txids_at_level_0"]),
                        &[i],
                    )
                    .unwrap();
                    assert_eq!(built.root().to_string(), root, "{id}: from_block tx{i}");
                }
            }
        } else if let (Some(t), Some(height)) = (inp["txid"].as_str(), inp["height"].as_u64()) {
            // fromCoinbaseTxidAndHeight: a one-transaction block.
            let t = Txid::from_display_hex(t).unwrap();
            let path = MerklePath::from_block(height as u32, &[t], &[0]).unwrap();
            assert_eq!(path.to_hex(), exp["bump_hex"].as_str().unwrap(), "{id}");
            assert_eq!(
                path.root().to_string(),
                exp["merkle_root"].as_str().unwrap(),
                "{id}"
            );
            assert_eq!(
                u64::from(path.block_height()),
                exp["block_height"].as_u64().unwrap(),
                "{id}"
            );
        } else if let Some(all) = inp.get("full_block_txids") {
            let height = inp["block_height"].as_u64().unwrap() as u32;
            let block = txids(all);
            let full = compound(height, &block);
            let wanted = txid(&inp["extract_txid"]);
            let extracted = full.extract(&[wanted]).unwrap();
            assert_eq!(
                extracted.root().to_string(),
                exp["merkle_root"].as_str().unwrap(),
                "{id}"
            );
            assert_eq!(
                extracted.compute_root(&wanted),
                Ok(extracted.root()),
                "{id}"
            );
            let smaller = extracted.to_bytes().len() < full.to_bytes().len();
            assert_eq!(
                smaller,
                exp["extracted_smaller_than_full"].as_bool().unwrap(),
                "{id}"
            );
            let index = block.iter().position(|t| *t == wanted).unwrap();
            assert_eq!(
                extracted,
                MerklePath::from_block(height, &block, &[index]).unwrap(),
                "{id}: minimal path"
            );
        } else if let Some(leaf0) = inp["leaf0_hash"].as_str() {
            // findOrComputeLeaf over two level-0 leaves (the right one a duplicate marker or a hash).
            let (level, offset) = (
                inp["find_level"].as_u64().unwrap(),
                inp["find_offset"].as_u64().unwrap(),
            );
            assert_eq!(
                (level, offset),
                (1, 0),
                "{id}: only the level-1 parent of leaves 0 and 1 is expressible as a path"
            );
            let mut bytes = vec![1, 1, 2, 0, 2];
            bytes.extend_from_slice(&Txid::from_display_hex(leaf0).unwrap().0);
            if inp["leaf1_duplicate"].as_bool() == Some(true) {
                bytes.extend_from_slice(&[1, 1]);
            } else {
                bytes.extend_from_slice(&[1, 0]);
                bytes.extend_from_slice(
                    &Txid::from_display_hex(inp["leaf1_hash"].as_str().unwrap())
                        .unwrap()
                        .0,
                );
            }
            let path = MerklePath::from_bytes_strict(&bytes).unwrap();
            let node = path
                .node_at(1, 0)
                .and_then(|n| n.hash())
                .expect("computable");
            assert_eq!(
                node.to_string(),
                exp["computed_hash"].as_str().unwrap(),
                "{id}"
            );
        } else if let (Some(_), Some(height), Some(root)) = (
            inp["txid"].as_str(),
            inp["block_height"].as_u64(),
            exp["merkle_root"].as_str(),
        ) {
            // A per-transaction proof in a block another vector lists in full.
            let wanted = txid(&inp["txid"]);
            let (_, block) = blocks
                .iter()
                .find(|(h, _)| u64::from(*h) == height)
                .expect("a vector lists this block");
            let index = block
                .iter()
                .position(|t| *t == wanted)
                .expect("txid in the block");
            let path = MerklePath::from_block(height as u32, block, &[index]).unwrap();
            assert_eq!(path.root().to_string(), root, "{id}");
            if let Some(proof) = inp["proof_level0"].as_array() {
                let ours: Vec<(u64, String, bool)> = path.levels()[0]
                    .iter()
                    .map(|n| {
                        (
                            n.offset,
                            n.value.hash().unwrap().to_string(),
                            matches!(n.value, NodeValue::ClientTxid(_)),
                        )
                    })
                    .collect();
                let theirs: Vec<(u64, String, bool)> = proof
                    .iter()
                    .map(|l| {
                        (
                            l["offset"].as_u64().unwrap(),
                            l["hash"].as_str().unwrap().to_string(),
                            l["txid"].as_bool() == Some(true),
                        )
                    })
                    .collect();
                assert_eq!(ours, theirs, "{id}: level 0");
            }
        } else if let (Some(_), Some(true)) = (inp["txid"].as_str(), exp["throws"].as_bool()) {
            // extract() of a txid the path does not hold.
            let wanted = txid(&inp["txid"]);
            assert!(!blocks.is_empty(), "{id}: needs a block to extract from");
            for (height, block) in &blocks {
                assert_eq!(
                    compound(*height, block).extract(&[wanted]),
                    Err(BumpError::TxidNotFound(wanted)),
                    "{id}"
                );
            }
        } else {
            panic!("{id}: unrecognised vector shape {v}");
        }
    }
    eprintln!("merkle-path: {} vectors", vectors.len());
}

#[test]
fn merkle_path_odd_node() {
    let file = common::load("conformance/merkle-path-odd-node.json");
    let vectors = file["vectors"].as_array().expect("vectors");
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let inp = &v["input"];
        assert_eq!(
            inp["operation"].as_str(),
            Some("merkle_tree_parent"),
            "{id}: unknown operation"
        );
        // Literal bytes in, literal bytes out (no display reversal).
        let node = |k: &str| {
            Hash256(
                hex::decode(inp[k].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            )
        };
        let parent = Hash256::merkle_parent(&node("left_hex"), &node("right_hex"));
        assert_eq!(
            hex::encode(parent.0),
            v["expected"]["parent_hex"].as_str().unwrap(),
            "{id}"
        );
    }
    eprintln!("merkle-path-odd-node: {} vectors", vectors.len());
}

fn empty_transaction() -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![],
        outputs: vec![],
        lock_time: 0,
    }
}

/// Checks the counts and fields a vector states about a transaction.
fn check_fields(id: &str, tx: &Transaction, exp: &Value) {
    for (key, ours) in [
        ("version", u64::from(tx.version)),
        ("inputs_count", tx.inputs.len() as u64),
        ("outputs_count", tx.outputs.len() as u64),
        ("locktime", u64::from(tx.lock_time)),
    ] {
        if let Some(n) = exp[key].as_u64() {
            assert_eq!(ours, n, "{id}: {key}");
        }
    }
}

#[test]
fn serialization() {
    let file = common::load("conformance/serialization.json");
    let vectors = file["vectors"].as_array().expect("vectors");
    let mut not_applicable = Vec::new();
    for v in vectors {
        let id = v["id"].as_str().unwrap();
        let (inp, exp) = (&v["input"], &v["expected"]);
        if let Some(raw) = inp["raw_hex"].as_str() {
            let tx = Transaction::from_hex(raw).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(
                tx.to_hex(),
                exp["raw_hex_roundtrip"].as_str().unwrap_or(raw),
                "{id}: round trip"
            );
            if let Some(t) = exp["txid"].as_str() {
                assert_eq!(tx.txid().to_string(), t, "{id}: txid");
            }
            check_fields(id, &tx, exp);
        } else if let Some(ef) = inp["ef_hex"].as_str() {
            let tx = EfTransaction::from_hex(ef).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(tx.to_hex(), ef, "{id}: round trip");
            assert_eq!(tx.source_outputs.len(), tx.tx.inputs.len(), "{id}");
            check_fields(id, &tx.tx, exp);
        } else if let Some(bump) = inp["bump_hex"].as_str() {
            let path = MerklePath::from_hex_strict(bump).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(path.to_hex(), bump, "{id}: round trip");
            if let Some(h) = exp["block_height"].as_u64() {
                assert_eq!(u64::from(path.block_height()), h, "{id}");
            }
            if let Some(n) = exp["path_leaf_count"].as_u64() {
                assert_eq!(path.levels()[0].len() as u64, n, "{id}");
            }
        } else if let Some(beef) = inp["beef_hex"].as_str() {
            let b = Beef::from_hex(beef).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(b.to_hex(), beef, "{id}: round trip");
        } else {
            match inp["operation"].as_str() {
                Some("new_transaction") => {
                    // The smallest transaction: version, two empty counts, lock time.
                    let tx = empty_transaction();
                    assert_eq!(tx.to_hex(), "01000000000000000000");
                    let back = Transaction::from_hex(&tx.to_hex()).unwrap();
                    check_fields(id, &back, exp);
                }
                Some("new_transaction_hash_hex") => {
                    let shown = empty_transaction().txid().to_string();
                    assert_eq!(
                        shown.len() as u64,
                        exp["hash_length_chars"].as_u64().unwrap(),
                        "{id}"
                    );
                    assert_eq!(
                        Txid::from_display_hex(&shown).unwrap(),
                        empty_transaction().txid()
                    );
                }
                Some("addInput") if exp["sequence"].is_u64() => {
                    // ts-sdk defaults an omitted sequence to final; ours is spelled out.
                    assert_eq!(
                        u64::from(SEQUENCE_FINAL),
                        exp["sequence"].as_u64().unwrap(),
                        "{id}"
                    );
                }
                Some("getFee_no_source") => {
                    // A fee (EF) needs every spent output: without the source it is an error.
                    let spent = Outpoint::new(
                        txid(&inp["source_txid"]),
                        inp["source_output_index"].as_u64().unwrap() as u32,
                    );
                    let mut b = Beef::new(BeefVersion::V2);
                    let tx = Transaction {
                        inputs: vec![TxIn {
                            prev_out: spent,
                            unlocking_script: Script::default(),
                            sequence: SEQUENCE_FINAL,
                        }],
                        outputs: vec![TxOut {
                            satoshis: 1,
                            locking_script: Script::default(),
                        }],
                        ..empty_transaction()
                    };
                    let t = b.add_transaction(tx);
                    assert_eq!(
                        b.ef_of(&t),
                        Err(BeefError::SourceMissing {
                            txid: t,
                            input: 0,
                            parent: spent.txid,
                            vout: spent.vout
                        }),
                        "{id}"
                    );
                }
                Some(op) => {
                    // addInput without a source outpoint, addOutput with negative
                    // satoshis, ...: TxIn requires an Outpoint and satoshis are u64.
                    assert_eq!(
                        exp["throws"].as_bool(),
                        Some(true),
                        "{id}: operation {op} is neither data nor a rejected call"
                    );
                    not_applicable.push(format!("{id} ({op})"));
                }
                None => panic!("{id}: unrecognised vector shape {v}"),
            }
        }
    }
    eprintln!(
        "serialization: {} vectors; ruled out by the type system: {not_applicable:?}",
        vectors.len()
    );
}
