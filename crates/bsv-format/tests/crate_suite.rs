//! The bsv-sdk 0.8.0 crate's BEEF suite (`rust-crate-beef-suite/*.json`,
//! generated with @bsv/sdk 2.3.1): Atomic closure and spend closure (byte for
//! byte), sort order (byte for byte), merge (compared structurally, per the
//! crate's SURPRISES.json: several byte layouts are equally valid), and the
//! negative corpus with its named rules.
//!
//! The synthetic transactions carry dummy signatures, so verdicts here are
//! structural (scripts off), with a chain tracker that confirms the BEEF's own
//! BUMP roots (the fake heights 800000.. have no real block).

mod common;

use std::collections::BTreeSet;

use bsv_format::beef::{Beef, BeefError};
use bsv_format::codec::ParseErrorKind;
use bsv_format::spv::{verify, ChainTracker, ScriptEras, VerifyError, VerifyOptions};
use bsv_format::{Hash256, Txid};
use serde_json::Value;

fn beef(v: &Value) -> Beef {
    Beef::from_hex(v.as_str().expect("hex")).unwrap_or_else(|e| panic!("decoding {v}: {e}"))
}

fn txid(v: &Value) -> Txid {
    Txid::from_display_hex(v.as_str().expect("txid")).unwrap()
}

/// Confirms exactly the roots of the BEEF's own BUMPs.
struct OwnRoots(Vec<(u32, Hash256)>);

impl OwnRoots {
    fn of(beef: &Beef) -> Self {
        OwnRoots(
            beef.bumps()
                .iter()
                .map(|b| (b.block_height(), b.root()))
                .collect(),
        )
    }
}

impl ChainTracker for OwnRoots {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        self.0.contains(&(height, *root))
    }
    fn current_height(&self) -> u32 {
        self.0.iter().map(|(h, _)| h + 1_000).max().unwrap_or(1_000)
    }
}

fn structure(allow_txid_only: bool) -> VerifyOptions {
    VerifyOptions {
        check_scripts: false,
        allow_txid_only,
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    }
}

fn structurally_valid(b: &Beef) -> Result<(), VerifyError> {
    let allow = b.txs().iter().any(|t| t.is_txid_only());
    verify(b.clone(), &OwnRoots::of(b), &structure(allow)).map(|_| ())
}

fn vectors(file: &str) -> Vec<Value> {
    let f = common::load(file);
    let v = f["vectors"].as_array().expect("vectors").clone();
    assert!(!v.is_empty(), "{file}: no vectors");
    v
}

/// `toBinaryAtomic` outputs: our closure must produce the same bytes.
fn check_closure_file(file: &str) -> usize {
    let all = vectors(file);
    for v in &all {
        let id = v["id"].as_str().unwrap();
        let input = beef(&v["input_beef_hex"]);
        let subject = txid(&v["subject_txid"]);
        let atomic = input
            .to_atomic(&subject)
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(
            atomic.to_hex(),
            v["expected_atomic_hex"].as_str().unwrap(),
            "{id}: Atomic BEEF bytes"
        );
        let expected = beef(&v["expected_atomic_hex"]);
        let verdict = &v["expected_verdict"];
        assert_eq!(
            expected.subject() == Some(subject),
            verdict["is_atomic"].as_bool().unwrap(),
            "{id}: is_atomic"
        );
        assert_eq!(
            expected.bumps().len() as u64,
            verdict["bump_count"].as_u64().unwrap(),
            "{id}: bump count"
        );
        assert_eq!(
            expected.len() as u64,
            verdict["tx_count"].as_u64().unwrap(),
            "{id}: tx count"
        );
        let valid = structurally_valid(&expected);
        assert_eq!(
            valid.is_ok(),
            verdict["verify_valid"].as_bool().unwrap(),
            "{id}: verdict {valid:?}"
        );
        if let Some(route) = v.get("graph_route") {
            // The same closure assembled by merging per-transaction pieces.
            if route["matches_expected"].as_bool() == Some(true) {
                let mut rebuilt = Beef::new(expected.version());
                rebuilt.merge(expected.clone());
                let rebuilt = rebuilt.to_atomic(&subject).unwrap();
                assert_eq!(
                    rebuilt.to_hex(),
                    v["expected_atomic_hex"].as_str().unwrap(),
                    "{id}: graph route"
                );
            }
        }
    }
    all.len()
}

#[test]
fn atomic_closure() {
    let n = check_closure_file("rust-crate-beef-suite/beef_atomic_closure.json");
    eprintln!("beef_atomic_closure: {n} vectors");
}

#[test]
fn spend_closure() {
    let n = check_closure_file("rust-crate-beef-suite/beef_spend_closure.json");
    eprintln!("beef_spend_closure: {n} vectors");
}

#[test]
fn sort_order() {
    let all = vectors("rust-crate-beef-suite/beef_sort_order.json");
    for v in &all {
        let id = v["id"].as_str().unwrap();
        let mut b = beef(&v["input_beef_hex"]);
        b.sort();
        assert_eq!(
            b.to_hex(),
            v["expected_serialized_hex_after_sort"].as_str().unwrap(),
            "{id}: bytes after sort"
        );
        let result = &v["sort_result"];
        let txid_only: Vec<Txid> = b
            .txs()
            .iter()
            .filter(|t| t.is_txid_only())
            .map(|t| t.txid())
            .collect();
        let expected_txid_only: Vec<Txid> = result["txidOnly"]
            .as_array()
            .unwrap()
            .iter()
            .map(txid)
            .collect();
        assert_eq!(txid_only, expected_txid_only, "{id}: txid-only partition");
        let unsortable = !result["missingInputs"].as_array().unwrap().is_empty()
            || !result["notValid"].as_array().unwrap().is_empty();
        if !unsortable {
            assert_eq!(b.order_violation(), None, "{id}: parents first after sort");
            let valid: BTreeSet<Txid> = result["valid"]
                .as_array()
                .unwrap()
                .iter()
                .map(txid)
                .collect();
            let ours: BTreeSet<Txid> = b.txs().iter().map(|t| t.txid()).collect();
            assert_eq!(ours, valid, "{id}: every transaction sortable");
        }
    }
    eprintln!("beef_sort_order: {} vectors", all.len());
}

/// What a BEEF holds, independent of layout: BUMPs by (height, root, client
/// txids), transactions by (txid, form, proving block height).
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    bumps: BTreeSet<(u32, Hash256, BTreeSet<Txid>)>,
    txs: BTreeSet<(Txid, bool, Option<u32>)>,
}

fn shape(b: &Beef) -> Shape {
    Shape {
        bumps: b
            .bumps()
            .iter()
            .map(|p| (p.block_height(), p.root(), p.client_txids().collect()))
            .collect(),
        txs: b
            .txs()
            .iter()
            .map(|t| {
                (
                    t.txid(),
                    t.is_txid_only(),
                    t.bump_index()
                        .and_then(|i| b.bumps().get(i))
                        .map(|p| p.block_height()),
                )
            })
            .collect(),
    }
}

#[test]
fn merge() {
    let all = vectors("rust-crate-beef-suite/beef_merge.json");
    for v in &all {
        let id = v["id"].as_str().unwrap();
        let mut merged = beef(&v["beef_a_hex"]);
        merged.merge(beef(&v["beef_b_hex"]));
        let expected = beef(&v["expected_merged_hex"]);
        assert_eq!(shape(&merged), shape(&expected), "{id}: merged content");
        assert_eq!(merged.order_violation(), None, "{id}: parents first");
        let verdict = &v["merged_verdict"];
        assert_eq!(
            merged.bumps().len() as u64,
            verdict["bump_count"].as_u64().unwrap(),
            "{id}: bump count"
        );
        assert_eq!(
            merged.len() as u64,
            verdict["tx_count"].as_u64().unwrap(),
            "{id}: tx count"
        );
        let valid = structurally_valid(&merged);
        assert_eq!(
            valid.is_ok(),
            verdict["verify_valid"].as_bool().unwrap(),
            "{id}: verdict {valid:?}"
        );
        if merged.to_bytes() != expected.to_bytes() {
            eprintln!("{id}: same content, different layout than @bsv/sdk 2.3.1");
        }
    }
    eprintln!("beef_merge: {} vectors", all.len());
}

/// Whether our rejection is the fault the crate's rule name describes.
fn matches_rule(rule: &str, outcome: &Result<(), Rejection>) -> Option<bool> {
    let Err(rejection) = outcome else {
        return Some(false);
    };
    let hit = match rule {
        "missing-input" => matches!(
            rejection,
            Rejection::Verify(VerifyError::MissingInput { .. })
        ),
        "bump-leaf-mismatch" => matches!(
            rejection,
            Rejection::Decode(BeefError::BumpLeafMissing { .. })
        ),
        "v1-cannot-express-txid-only" => {
            matches!(rejection, Rejection::Decode(BeefError::Parse(_)))
        }
        "conflicting-roots-same-height" => matches!(
            rejection,
            Rejection::Verify(VerifyError::ConflictingRoots { .. })
        ),
        "atomic-subject-missing" => matches!(
            rejection,
            Rejection::Verify(VerifyError::SubjectMissing { .. })
        ),
        "atomic-unrelated-tx" | "atomic-extra-tx" => matches!(
            rejection,
            Rejection::Verify(VerifyError::OutsideClosure { .. })
        ),
        "duplicate-txid" => matches!(
            rejection,
            Rejection::Verify(VerifyError::DuplicateTxid { .. })
        ),
        "trailing-bytes" => {
            matches!(rejection, Rejection::Decode(BeefError::Parse(p)) if p.kind == ParseErrorKind::TrailingBytes)
        }
        "wrong-order" | "parent-after-child" => matches!(
            rejection,
            Rejection::Verify(VerifyError::ParentAfterChild { .. })
        ),
        _ => return None,
    };
    Some(hit)
}

#[derive(Debug)]
enum Rejection {
    Decode(BeefError),
    Verify(VerifyError),
}

#[test]
fn invalid_corpus() {
    let all = vectors("rust-crate-beef-suite/beef_invalid.json");
    for v in &all {
        let id = v["id"].as_str().unwrap();
        let rule = v["expect_reject_rule"].as_str().unwrap();
        let outcome = match Beef::from_hex(v["beef_hex"].as_str().unwrap()) {
            Err(e) => Err(Rejection::Decode(e)),
            // Accept any root: the rule under test is structural.
            Ok(b) => structurally_valid(&b).map_err(Rejection::Verify),
        };
        assert!(outcome.is_err(), "{id}: accepted, rule {rule}");
        match matches_rule(rule, &outcome) {
            Some(hit) => assert!(hit, "{id}: rule {rule}, we report {outcome:?}"),
            None => eprintln!("{id}: rule name {rule} not mapped; rejected with {outcome:?}"),
        }
    }
    eprintln!("beef_invalid: {} vectors", all.len());
}
