//! The mutation property of SPV: a valid BEEF with any one byte changed,
//! verified against a chain tracker that knows only the ORIGINAL roots,
//! either fails to decode, fails to verify with an error, or decodes to a
//! BEEF with exactly the same txids (in order) and the same computed roots —
//! some bytes are redundant (a BUMP leaf's flag 0 ↔ 2, say) — and never panics.
//!
//! Originals: every case of `beef/beef_cases.json` with
//! `expect.valid_strict == true`, and BEEFs generated with the producer API
//! (signed P2PKH chains, see `proptest_strategies`). An original is verified
//! with scripts on when it passes that way (its signatures are real) and
//! with scripts off otherwise (the synthetic `rs.*` vectors carry dummy
//! signatures); with scripts off, a mutant that changes an unproven
//! transaction can legitimately verify, so there the property is that the
//! proven txids and the roots cannot change.

mod common;
#[path = "proptest_strategies/mod.rs"]
mod strategies;

use std::collections::HashMap;

use bsv_format::beef::Beef;
use bsv_format::spv::{verify, ChainTracker, ScriptEras, VerifyOptions};
use bsv_format::{Hash256, Txid};
use proptest::prelude::*;
use strategies::*;

/// A chain tracker holding a fixed `height → root` map.
struct MapTracker {
    roots: HashMap<u32, Hash256>,
    tip: u32,
}

impl ChainTracker for MapTracker {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        self.roots.get(&height) == Some(root)
    }
    fn current_height(&self) -> u32 {
        self.tip
    }
}

/// A valid BEEF and how to verify it.
struct Original {
    name: String,
    bytes: Vec<u8>,
    txids: Vec<Txid>,
    proven: Vec<Txid>,
    roots: Vec<(u32, Hash256)>,
    tracker: MapTracker,
    opts: VerifyOptions,
    scripts: bool,
}

fn txids(beef: &Beef) -> Vec<Txid> {
    beef.txs().iter().map(|t| t.txid()).collect()
}

fn proven(beef: &Beef) -> Vec<Txid> {
    beef.txs()
        .iter()
        .filter(|t| t.bump_index().is_some())
        .map(|t| t.txid())
        .collect()
}

fn roots(beef: &Beef) -> Vec<(u32, Hash256)> {
    beef.bumps()
        .iter()
        .map(|b| (b.block_height(), b.root()))
        .collect()
}

/// Decodes and verifies an original (scripts on if that passes, else off);
/// panics if it does not verify at all.
fn original(name: String, bytes: Vec<u8>, eras: ScriptEras) -> Original {
    let beef = Beef::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("{name}: valid BEEF does not decode: {e}"));
    let roots = roots(&beef);
    let tip = roots
        .iter()
        .map(|r| r.0)
        .max()
        .unwrap_or(0)
        .saturating_add(1_000);
    let tracker = MapTracker {
        roots: roots.iter().copied().collect(),
        tip,
    };
    let with_scripts = VerifyOptions {
        eras,
        ..VerifyOptions::default()
    };
    let without = VerifyOptions {
        check_scripts: false,
        ..with_scripts
    };
    let (opts, scripts) = match verify(beef.clone(), &tracker, &with_scripts) {
        Ok(_) => (with_scripts, true),
        Err(_) => {
            if let Err(e) = verify(beef.clone(), &tracker, &without) {
                panic!("{name}: valid BEEF does not verify even without scripts: {e}");
            }
            (without, false)
        }
    };
    Original {
        name,
        txids: txids(&beef),
        proven: proven(&beef),
        roots,
        bytes,
        tracker,
        opts,
        scripts,
    }
}

/// The strict-valid shared BEEF vectors, with roots checked against the
/// vectors' `computed_roots` (display hex).
fn vector_originals() -> Vec<Original> {
    let doc = common::load("beef/beef_cases.json");
    let cases = doc["cases"].as_array().expect("cases");
    let mut out = Vec::new();
    for case in cases.iter().filter(|c| c["expect"]["valid_strict"] == true) {
        let name = case["id"].as_str().unwrap().to_string();
        let eras = match case["network"].as_str() {
            Some("mainnet") => ScriptEras::MAINNET,
            Some("testnet") => ScriptEras::TESTNET,
            _ => ScriptEras::ALWAYS_ACTIVE,
        };
        let o = original(
            name,
            hex::decode(case["hex"].as_str().unwrap()).unwrap(),
            eras,
        );
        // Every root the vector lists is one of ours. (A few vectors list
        // none, e.g. for a single-transaction block whose root is its txid.)
        let expected = case["expect"]["computed_roots"]
            .as_object()
            .expect("computed_roots");
        for (height, root) in expected {
            let mut ours: Vec<String> = o
                .roots
                .iter()
                .filter(|r| r.0.to_string() == *height)
                .map(|r| r.1.to_string())
                .collect();
            ours.dedup();
            assert_eq!(
                ours,
                vec![root.as_str().unwrap().to_string()],
                "{}: root of height {height}",
                o.name
            );
        }
        out.push(o);
    }
    assert!(
        out.len() >= 10,
        "expected the strict-valid BEEF vectors, found {}",
        out.len()
    );
    out
}

fn generated_original(g: &GeneratedBeef) -> Original {
    let o = original(
        "generated".into(),
        g.beef.to_bytes(),
        ScriptEras::ALWAYS_ACTIVE,
    );
    assert!(
        o.scripts,
        "a generated BEEF has real signatures and verifies with scripts on"
    );
    for r in &o.roots {
        assert!(
            g.roots.contains(r),
            "generated BUMP root is not its block's Merkle root"
        );
    }
    o
}

/// The property for one mutant: `Ok` or a description of the violation.
fn check_mutant(o: &Original, at: usize, value: u8) -> Result<(), String> {
    let mut bytes = o.bytes.clone();
    bytes[at] = value;
    let Ok(beef) = Beef::from_bytes(&bytes) else {
        return Ok(());
    };
    let (got_txids, got_proven, got_roots) = (txids(&beef), proven(&beef), roots(&beef));
    let Ok(_) = verify(beef, &o.tracker, &o.opts) else {
        return Ok(());
    };
    let what = format!(
        "{} byte {at} {:02x}→{value:02x} verifies",
        o.name, o.bytes[at]
    );
    if got_roots != o.roots {
        return Err(format!("{what} with other roots {got_roots:?}"));
    }
    if got_proven != o.proven {
        return Err(format!("{what} with other proven txids {got_proven:?}"));
    }
    if o.scripts && got_txids != o.txids {
        return Err(format!("{what} with other txids {got_txids:?}"));
    }
    Ok(())
}

/// Exhaustive-ish: every byte of the smallest strict-valid shared vector
/// that verifies with scripts on, and of a generated two-block BEEF, set to
/// each of `b ^ 0x01`, `b ^ 0x80`, `0x00`, `0xff` (when different from `b`).
#[test]
fn every_single_byte_mutation_of_a_small_beef_is_caught() {
    let mut originals = vector_originals();
    originals.retain(|o| o.scripts);
    originals.sort_by_key(|o| o.bytes.len());
    let smallest = originals
        .into_iter()
        .next()
        .expect("a strict-valid vector that verifies with scripts");
    let plan = beef_plan_fixed();
    let generated = generated_original(&build_beef(&plan));
    let mut mutants = 0;
    let mut decoded_and_verified = 0;
    for o in [&smallest, &generated] {
        for at in 0..o.bytes.len() {
            let b = o.bytes[at];
            for value in [b ^ 0x01, b ^ 0x80, 0x00, 0xff] {
                if value == b {
                    continue;
                }
                mutants += 1;
                if let Err(e) = check_mutant(o, at, value) {
                    panic!("{e}");
                }
                let mut m = o.bytes.clone();
                m[at] = value;
                if Beef::from_bytes(&m).is_ok_and(|beef| verify(beef, &o.tracker, &o.opts).is_ok())
                {
                    decoded_and_verified += 1;
                }
            }
        }
    }
    // Nearly every mutant is rejected; the few that pass are redundant bytes.
    eprintln!("STATS {mutants} mutants, {decoded_and_verified} verified; smallest {} ({} bytes), generated {} bytes", smallest.name, smallest.bytes.len(), generated.bytes.len());
    assert!(mutants > 4 * 150, "only {mutants} mutants");
    assert!(
        decoded_and_verified * 20 < mutants,
        "{decoded_and_verified} of {mutants} mutants verified"
    );
}

/// One fixed generated BEEF for the exhaustive test: V1, two proven parents
/// in blocks of 6 and 3 transactions (odd levels, so BUMPs carry duplicate
/// markers), then two unproven transactions.
fn beef_plan_fixed() -> BeefPlan {
    let others = |n: u8, tag: u8| (0..n).map(|i| Txid([tag ^ i; 32])).collect::<Vec<_>>();
    BeefPlan {
        shape: BeefShape::V1,
        key_seed: 7,
        blocks: vec![(800_000, others(5, 0x40), 4), (800_001, others(2, 0x80), 2)],
        chain: 2,
        funding: vec![Txid([0x21; 32]), Txid([0x22; 32])],
        satoshis: 50_000,
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// Random single-byte mutations of every strict-valid shared vector.
    #[test]
    fn single_byte_mutations_of_vectors_are_caught(pick in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), value in any::<u8>()) {
        let originals = vectors();
        let o = &originals[pick.index(originals.len())];
        let at = pos.index(o.bytes.len());
        prop_assume!(o.bytes[at] != value);
        if let Err(e) = check_mutant(o, at, value) {
            return Err(TestCaseError::fail(e));
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// Random single-byte mutations of generated BEEFs (scripts on), eight
    /// positions per BEEF.
    #[test]
    fn single_byte_mutations_of_generated_beefs_are_caught(g in generated_beef(), muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 8)) {
        let o = generated_original(&g);
        for (pos, value) in muts {
            let at = pos.index(o.bytes.len());
            if o.bytes[at] == value {
                continue;
            }
            if let Err(e) = check_mutant(&o, at, value) {
                return Err(TestCaseError::fail(e));
            }
        }
    }
}

/// The vector originals, decoded and verified once per test binary.
fn vectors() -> &'static [Original] {
    static CELL: std::sync::OnceLock<Vec<Original>> = std::sync::OnceLock::new();
    CELL.get_or_init(vector_originals)
}
