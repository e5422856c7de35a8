//! BEEF vectors: every case of `beef/beef_cases.json` and
//! `mainnet/real_chain_beef.json`, and the 1,000-transaction benchmark chain.
//!
//! Each case is decoded, re-encoded byte for byte, its BUMP roots and subject
//! compared, then verified under the strict rule set (bsv-formats.md §7.7)
//! without scripts — `expect.valid_strict` excludes script validity — with a
//! chain tracker that confirms exactly the vector's `reference_roots` (the real
//! block roots) or, without them, its `computed_roots`. A rejection must be for
//! one of the reasons the vector lists in `strict_reject_reasons`. Scripts are
//! then checked separately against `expect.subject_scripts_valid`.

mod common;

use std::collections::BTreeMap;

use bsv_format::beef::{Beef, BeefError};
use bsv_format::codec::ParseErrorKind;
use bsv_format::spv::{
    verify, verify_scripts, ChainTracker, RootClaim, ScriptEras, VerifyError, VerifyOptions,
};
use bsv_format::{Hash256, Txid};
use serde_json::Value;

/// The rules named in `strict_reject_reasons` (bsv-formats.md §7.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    DoesNotParse,
    Truncated,
    TrailingBytes,
    ParentAfterChild,
    DuplicateTxid,
    Structure,
    AtomicSubjectMissing,
    AtomicOutsideClosure,
    RootNotConfirmed,
    Amounts,
    CoinbaseMaturity,
    Scripts,
}

/// The rule a vector's reason text names.
fn rule_named(reason: &str) -> Option<Rule> {
    let r = reason.to_ascii_lowercase();
    let rule = if r.starts_with("does not parse") {
        Rule::DoesNotParse
    } else if r.contains("truncated") || r.contains("early") {
        Rule::Truncated
    } else if r.contains("trailing") {
        Rule::TrailingBytes
    } else if r.contains("before one of its in-beef parents") {
        Rule::ParentAfterChild
    } else if r.contains("duplicate txid") {
        Rule::DuplicateTxid
    } else if r.starts_with("structure invalid") {
        Rule::Structure
    } else if r.contains("subject txid not in beef") {
        Rule::AtomicSubjectMissing
    } else if r.contains("outside the subject closure") {
        Rule::AtomicOutsideClosure
    } else if r.contains("merkle root differs") || r.contains("root not confirmed") {
        Rule::RootNotConfirmed
    } else if r.contains("coinbase") {
        Rule::CoinbaseMaturity
    } else if r.contains("fee") || r.contains("sum(out)") || r.contains("outputs exceed") {
        Rule::Amounts
    } else if r.contains("script") {
        Rule::Scripts
    } else {
        return None;
    };
    Some(rule)
}

fn rule_of_beef_error(e: &BeefError) -> Rule {
    match e {
        BeefError::Parse(p) => match p.kind {
            ParseErrorKind::UnexpectedEnd | ParseErrorKind::CountTooLarge => Rule::Truncated,
            ParseErrorKind::TrailingBytes => Rule::TrailingBytes,
            ParseErrorKind::IndexOutOfRange => Rule::Structure,
            _ => Rule::DoesNotParse,
        },
        BeefError::Bump { .. } | BeefError::BumpLeafMissing { .. } => Rule::Structure,
        other => panic!("decoding does not produce {other:?}"),
    }
}

fn rule_of_verify_error(e: &VerifyError) -> Rule {
    match e {
        VerifyError::Empty
        | VerifyError::SubjectTxidOnly { .. }
        | VerifyError::TxidOnly { .. }
        | VerifyError::ConflictingRoots { .. }
        | VerifyError::MissingInput { .. }
        | VerifyError::MissingOutput { .. }
        | VerifyError::NoInputs { .. }
        | VerifyError::NoOutputs { .. }
        | VerifyError::DuplicateInput { .. }
        | VerifyError::ConflictingSpend { .. } => Rule::Structure,
        VerifyError::SubjectMissing { .. } => Rule::AtomicSubjectMissing,
        VerifyError::OutsideClosure { .. } => Rule::AtomicOutsideClosure,
        VerifyError::DuplicateTxid { .. } => Rule::DuplicateTxid,
        VerifyError::ParentAfterChild { .. } => Rule::ParentAfterChild,
        VerifyError::OutputsExceedInputs { .. }
        | VerifyError::ZeroFee { .. }
        | VerifyError::AmountOverflow { .. } => Rule::Amounts,
        VerifyError::RootNotConfirmed { .. } => Rule::RootNotConfirmed,
        VerifyError::CoinbaseImmature { .. } => Rule::CoinbaseMaturity,
        VerifyError::Script { .. } | VerifyError::TotalWorkExceeded { .. } => Rule::Scripts,
        VerifyError::AnswerCountMismatch { .. } => panic!("verify() answers every claim"),
    }
}

/// Asserts our rejection is for one of the reasons the vector lists.
fn assert_listed(id: &str, ours: Rule, reasons: &[Value], what: &str) {
    let named: Vec<Option<Rule>> = reasons
        .iter()
        .map(|r| rule_named(r.as_str().unwrap()))
        .collect();
    assert!(
        !named.is_empty(),
        "{id}: {what}: rejected ({ours:?}) but the vector lists no reason"
    );
    if named.iter().all(Option::is_some) {
        assert!(
            named.contains(&Some(ours)),
            "{id}: {what}: we reject for {ours:?}, the vector says {reasons:?}"
        );
    } else {
        // A reason outside the vocabulary we know: the rejection itself is the assertion.
        eprintln!("{id}: {what}: unmapped reason in {reasons:?}; we reject for {ours:?}");
    }
}

/// A chain tracker that knows the roots a vector gives: for a height it
/// lists, exactly that root; a height it does not list is not known to the
/// vector (ts-sdk only computes roots from flagged client leaves, so a BUMP
/// leaf used without the flag has no recorded root) and is confirmed.
struct VectorTracker {
    roots: BTreeMap<u32, Hash256>,
    tip: u32,
}

impl VectorTracker {
    fn from_map(map: Option<&Value>, tip: u32) -> Self {
        let mut roots = BTreeMap::new();
        for (h, r) in map.and_then(Value::as_object).into_iter().flatten() {
            roots.insert(
                h.parse().unwrap(),
                Hash256::from_display_hex(r.as_str().unwrap()).unwrap(),
            );
        }
        VectorTracker { roots, tip }
    }
}

impl ChainTracker for VectorTracker {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        self.roots.get(&height).is_none_or(|r| r == root)
    }
    fn current_height(&self) -> u32 {
        self.tip
    }
}

fn eras(network: &str) -> ScriptEras {
    match network {
        "mainnet" => ScriptEras::MAINNET,
        "testnet" => ScriptEras::TESTNET,
        _ => ScriptEras::ALWAYS_ACTIVE,
    }
}

/// A tip far enough above every BUMP that coinbase maturity never interferes.
fn tip_for(beef: &Beef) -> u32 {
    beef.bumps()
        .iter()
        .map(|b| b.block_height())
        .max()
        .unwrap_or(0)
        + 1_000
}

fn structure_opts(network: &str, allow_txid_only: bool) -> VerifyOptions {
    VerifyOptions {
        check_scripts: false,
        allow_txid_only,
        eras: eras(network),
        ..VerifyOptions::default()
    }
}

fn txid(v: &Value) -> Txid {
    Txid::from_display_hex(v.as_str().unwrap()).unwrap()
}

/// Our BUMP roots by height agree with the vector's `computed_roots`.
fn check_roots(id: &str, beef: &Beef, computed: &Value) {
    let computed = computed.as_object().expect("computed_roots");
    for (height, root) in computed {
        let height: u32 = height.parse().unwrap();
        let ours: Vec<String> = beef
            .bumps()
            .iter()
            .filter(|b| b.block_height() == height)
            .map(|b| b.root().to_string())
            .collect();
        assert!(
            ours.iter().any(|r| r == root.as_str().unwrap()),
            "{id}: root at {height}: ours {ours:?}, vector {root}"
        );
    }
    // Every BUMP with a client txid has its height recorded (ts-sdk computes
    // roots from flagged leaves only).
    for b in beef.bumps() {
        if b.client_txids().next().is_some() {
            assert!(
                computed.contains_key(&b.block_height().to_string()),
                "{id}: height {} missing from computed_roots",
                b.block_height()
            );
        }
    }
}

#[test]
fn every_beef_case() {
    let file = common::load("beef/beef_cases.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len() as u64, file["count"].as_u64().unwrap());
    let (mut valid, mut invalid, mut scripts_checked) = (0, 0, 0);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let network = case["network"].as_str().unwrap_or("unknown");
        let expect = &case["expect"];
        let bytes = hex::decode(case["hex"].as_str().unwrap()).unwrap();
        let valid_strict = expect["valid_strict"].as_bool().unwrap();
        let valid_txid_only = expect["valid_if_txid_only_allowed"].as_bool().unwrap();
        let reasons = expect["strict_reject_reasons"].as_array().unwrap();
        if valid_strict {
            valid += 1;
        } else {
            invalid += 1;
        }
        let beef = match Beef::from_bytes(&bytes) {
            Ok(beef) => beef,
            Err(e) => {
                assert!(
                    !valid_strict && !valid_txid_only,
                    "{id}: a valid BEEF fails to decode: {e}"
                );
                assert_listed(id, rule_of_beef_error(&e), reasons, "decode");
                continue;
            }
        };
        assert_eq!(beef.to_bytes(), bytes, "{id}: byte-exact round trip");
        check_roots(id, &beef, &expect["computed_roots"]);
        if let Some(subject) = expect["subject_txid"].as_str() {
            let ours = match beef.subject() {
                Some(s) => s,
                None => {
                    let mut sorted = beef.clone();
                    sorted.sort();
                    sorted.txs().last().unwrap().txid()
                }
            };
            assert_eq!(ours.to_string(), subject, "{id}: subject");
        }

        let roots = expect
            .get("reference_roots")
            .filter(|v| v.is_object())
            .or(expect.get("computed_roots"));
        let tracker = VectorTracker::from_map(roots, tip_for(&beef));
        for (allow_txid_only, expected) in [(false, valid_strict), (true, valid_txid_only)] {
            let what = if allow_txid_only {
                "txid-only allowed"
            } else {
                "strict"
            };
            match verify(
                beef.clone(),
                &tracker,
                &structure_opts(network, allow_txid_only),
            ) {
                Ok(v) => {
                    assert!(expected, "{id}: {what}: we accept an invalid BEEF");
                    let claimed: Vec<RootClaim> = v.roots().to_vec();
                    assert_eq!(
                        claimed.len(),
                        beef.bumps()
                            .iter()
                            .map(|b| b.block_height())
                            .collect::<std::collections::BTreeSet<_>>()
                            .len()
                    );
                }
                Err(e) => {
                    assert!(!expected, "{id}: {what}: we reject a valid BEEF: {e}");
                    assert_listed(id, rule_of_verify_error(&e), reasons, what);
                }
            }
        }

        if let (Some(expected), Some(subject)) = (
            expect["subject_scripts_valid"].as_bool(),
            expect["subject_txid"].as_str(),
        ) {
            let opts = VerifyOptions {
                eras: eras(network),
                ..VerifyOptions::default()
            };
            let ours = verify_scripts(&beef, &txid(&Value::from(subject)), &opts, tip_for(&beef));
            assert_eq!(
                ours.is_ok(),
                expected,
                "{id}: scripts of the subject and its unproven ancestors: {ours:?}"
            );
            scripts_checked += 1;
        }
    }
    eprintln!("beef_cases: {} cases ({valid} valid, {invalid} invalid), {scripts_checked} script verdicts compared", cases.len());
}

#[test]
fn every_real_chain_beef() {
    let file = common::load("mainnet/real_chain_beef.json");
    let beefs = file["beefs"].as_array().expect("beefs");
    assert_eq!(beefs.len() as u64, file["count"].as_u64().unwrap());
    for item in beefs {
        let id = item["id"].as_str().unwrap();
        let network = item["network"].as_str().unwrap();
        let bytes = hex::decode(item["beef_hex"].as_str().unwrap()).unwrap();
        let beef = Beef::from_bytes(&bytes).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(beef.to_bytes(), bytes, "{id}: round trip");
        let mut roots = serde_json::Map::new();
        for b in item["bumps"].as_array().unwrap() {
            let height = b["block_height"].as_u64().unwrap() as u32;
            let root = b["computed_merkle_root"].as_str().unwrap();
            assert!(
                beef.bumps()
                    .iter()
                    .any(|x| x.block_height() == height && x.root().to_string() == root),
                "{id}: BUMP at {height}"
            );
            roots.insert(height.to_string(), Value::from(root));
        }
        assert_eq!(beef.bumps().len(), roots.len(), "{id}: BUMP count");
        let mut sorted = beef.clone();
        sorted.sort();
        assert_eq!(
            sorted.txs().last().unwrap().txid().to_string(),
            item["subject_txid"].as_str().unwrap(),
            "{id}: subject"
        );
        let tracker = VectorTracker::from_map(Some(&Value::Object(roots)), tip_for(&beef));
        // Full verification, scripts included: these are real transactions.
        let opts = VerifyOptions {
            eras: eras(network),
            ..VerifyOptions::default()
        };
        match verify(beef, &tracker, &opts) {
            Ok(v) => {
                assert!(
                    item["valid_strict"].as_bool().unwrap(),
                    "{id}: accepted an invalid BEEF"
                );
                assert_eq!(
                    v.subject().to_string(),
                    item["subject_txid"].as_str().unwrap()
                );
            }
            Err(e) => {
                assert!(
                    !item["valid_strict"].as_bool().unwrap(),
                    "{id}: rejected: {e}"
                );
                assert_listed(
                    id,
                    rule_of_verify_error(&e),
                    item["strict_reject_reasons"].as_array().unwrap(),
                    "full",
                );
            }
        }
    }
}

const CHAIN1000: &str = "../../../shared/research/anchor-bench/chain1000.beef.hex";

fn chain1000() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CHAIN1000);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    hex::decode(text.trim()).unwrap()
}

struct AcceptAll {
    tip: u32,
}

impl ChainTracker for AcceptAll {
    fn is_valid_root_for_height(&self, _: &Hash256, _: u32) -> bool {
        true
    }
    fn current_height(&self) -> u32 {
        self.tip
    }
}

#[test]
fn the_benchmark_chain_verifies_and_a_forged_signature_does_not() {
    let bytes = chain1000();
    assert_eq!(bytes.len(), 226_988);
    let beef = Beef::from_bytes(&bytes).unwrap();
    assert_eq!(beef.len(), 1_001);
    assert_eq!(
        beef.txs()[0].txid().to_string(),
        "ca5ae46fa6b13b263cc569d9a2e49ac245115af01b19c50cdc0c3540146f4d94"
    );
    assert_eq!(beef.bumps()[0].block_height(), 900_000);
    let opts = VerifyOptions {
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    let verified = verify(beef.clone(), &AcceptAll { tip: 900_100 }, &opts).unwrap();
    assert_eq!(
        verified.subject().to_string(),
        "2ebfe87c71c2fd219140335fa7e75333c6d0d69b4331c412e99863d85233dfc4"
    );
    assert_eq!(
        beef.ef_of(&verified.subject())
            .unwrap()
            .source_outputs
            .len(),
        1
    );

    // Negative control: flip one byte inside the last transaction's signature.
    let last = beef.txs().last().unwrap().transaction().unwrap();
    let sig_at = bytes.len() - 1 - last.size() + 4 + 1 + 36 + 1 + 10;
    let mut forged = bytes.clone();
    forged[sig_at] ^= 0x01;
    let forged = Beef::from_bytes(&forged).unwrap();
    let forged_id = forged.txs().last().unwrap().txid();
    match verify(forged, &AcceptAll { tip: 900_100 }, &opts) {
        Err(VerifyError::Script { txid, input: 0, .. }) => assert_eq!(txid, forged_id),
        other => panic!("forged signature: {other:?}"),
    }
}
