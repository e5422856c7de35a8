//! `escrowd demo` as users run it: the binary, its exit code, its `--json`
//! report (DESIGN.md §7, docs/cli-json.md) and its stderr. Each test is one
//! whole demo — certificates, two chainsims, two gateways and the notary
//! (real gRPC servers over mutual TLS on loopback) and the observer — so
//! each takes a second or a few.

use std::process::{Command, Output};

use serde_json::Value;

const PAYMENT: u64 = 50_000;
const DELIVERY: u64 = 20_000;

fn demo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .arg("demo")
        .args(["--timeout", "60s"])
        .args(args)
        .output()
        .expect("escrowd runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn is_txid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn balance(report: &Value, party: &str, chain: &str) -> (i128, i128, i128) {
    let b = &report["balances"][party][chain];
    let n = |k: &str| {
        i128::from(
            b[k].as_u64()
                .unwrap_or_else(|| panic!("{party}.{chain}.{k}: {b}")),
        )
    };
    (n("before"), n("after"), n("fees"))
}

/// Runs `scenario` with `--json`, checks exit 0 and each saga's party states.
fn scenario(name: &str, swaps: usize, buyer: &str, seller: &str) -> Value {
    let n = swaps.to_string();
    let out = demo(&["--json", "--scenario", name, "--swaps", &n]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
    assert_eq!(report["scenario"], name);
    assert_eq!(report["conservation"], true);
    let sagas = report["swaps"].as_array().expect("swaps");
    assert_eq!(sagas.len(), swaps);
    for s in sagas {
        assert_eq!(s["parties"]["buyer"]["state"], buyer, "{s}");
        assert_eq!(s["parties"]["seller"]["state"], seller, "{s}");
    }
    report
}

#[test]
fn happy_json_has_the_design_shape_and_balances_move_by_the_amounts_less_fees() {
    let report = scenario("happy", 1, "completed", "completed");
    let keys: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["balances", "conservation", "scenario", "swaps"]);

    let s = &report["swaps"][0];
    assert_eq!(s["state"], "completed");
    assert_eq!(s["saga_id"].as_str().map(str::len), Some(36), "{s}");
    for (leg, chain, amount) in [
        ("payment", "chain-p", PAYMENT),
        ("delivery", "chain-d", DELIVERY),
    ] {
        assert_eq!(s[leg]["chain"], chain);
        assert_eq!(s[leg]["amount"], amount);
        assert!(is_txid(&s[leg]["reservation"]), "{leg}: {}", s[leg]);
        assert!(is_txid(&s[leg]["claim"]), "{leg}: {}", s[leg]);
        assert!(s[leg].get("refund").is_none(), "{leg}: {}", s[leg]);
    }
    // The timeline: every step named and timed; each reservation's and
    // claim's broadcast carries the leg's txid.
    let timeline = s["timeline"].as_array().unwrap();
    for t in timeline {
        assert!(t["step"].is_string() && t["party"].is_string(), "{t}");
        assert!(t["at"].as_str().is_some_and(|a| a.ends_with('Z')), "{t}");
    }
    let txid_of = |party: &str, step: &str| {
        timeline
            .iter()
            .find(|t| t["party"] == party && t["step"] == step)
            .map(|t| t["txid"].clone())
            .unwrap_or_else(|| panic!("no {party} {step}"))
    };
    assert_eq!(
        txid_of("buyer", "reservation_broadcast"),
        s["payment"]["reservation"]
    );
    assert_eq!(
        txid_of("seller", "reservation_broadcast"),
        s["delivery"]["reservation"]
    );
    assert_eq!(txid_of("buyer", "claim_broadcast"), s["delivery"]["claim"]);
    assert_eq!(txid_of("seller", "claim_broadcast"), s["payment"]["claim"]);
    for party in ["buyer", "seller"] {
        for step in [
            "notary_approved",
            "claim_confirmed",
            "counter_claim_confirmed",
        ] {
            assert!(
                timeline
                    .iter()
                    .any(|t| t["party"] == party && t["step"] == step),
                "{party} {step}"
            );
        }
    }

    // Conservation, recomputed: the buyer paid Y and its reservation fee on
    // P and got X less its claim fee on D; the seller the mirror image.
    let (p, d) = (i128::from(PAYMENT), i128::from(DELIVERY));
    for (party, gives, chain_gives, gets, chain_gets) in [
        ("buyer", p, "chain-p", d, "chain-d"),
        ("seller", d, "chain-d", p, "chain-p"),
    ] {
        let (before, after, fees) = balance(&report, party, chain_gives);
        assert!(fees > 0, "{party} paid a reservation fee");
        assert_eq!(after - before, -gives - fees, "{party} on {chain_gives}");
        let (before, after, fees) = balance(&report, party, chain_gets);
        assert_eq!(before, 0);
        assert!(fees > 0, "{party} paid a claim fee");
        assert_eq!(after, gets - fees, "{party} on {chain_gets}");
    }
}

#[test]
fn buyer_vanishes_then_returns_and_both_are_refunded() {
    let report = scenario("buyer-vanishes", 1, "refunded", "refunded");
    let s = &report["swaps"][0];
    assert_eq!(s["state"], "refunded");
    for leg in ["payment", "delivery"] {
        assert!(is_txid(&s[leg]["refund"]), "{leg}: {}", s[leg]);
        assert!(s[leg].get("claim").is_none(), "{leg}: {}", s[leg]);
    }
    // Each got its own leg back, less the reservation's and the refund's fees.
    for (party, chain) in [("buyer", "chain-p"), ("seller", "chain-d")] {
        let (before, after, fees) = balance(&report, party, chain);
        assert!(fees > 0);
        assert_eq!(after, before - fees, "{party}");
    }
}

/// Three sagas on each driver wait for the same heights: each must still
/// wake up (one runner's fresh tip once made the others' wake-ups vanish
/// without a decision, and two of three sellers stayed `reserving`).
#[test]
fn seller_never_reserves_so_the_buyer_is_refunded_and_the_seller_cancels() {
    let report = scenario("seller-never-reserves", 3, "refunded", "cancelled");
    for s in report["swaps"].as_array().unwrap() {
        assert_eq!(s["state"], "refunded");
        assert_eq!(s["delivery"]["reservation"], Value::Null);
        assert!(is_txid(&s["payment"]["refund"]));
        let reason = s["parties"]["seller"]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains("(C2)"), "{reason}");
    }
    let (before, after, fees) = balance(&report, "seller", "chain-d");
    assert_eq!((after, fees), (before, 0), "the seller's funds never moved");
}

/// The notary refuses (its limit is below the amounts). Whoever hears it
/// first cancels; the other may learn of it only through the cancel.
#[test]
fn notary_rejects_and_both_cancel() {
    let report = scenario("notary-rejects", 1, "cancelled", "cancelled");
    let s = &report["swaps"][0];
    let reasons: Vec<&str> = ["buyer", "seller"]
        .iter()
        .filter_map(|p| s["parties"][*p]["reason"].as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("above this notary's ceiling of 10000 sat")),
        "{reasons:?}"
    );
    let steps: Vec<&str> = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["step"].as_str())
        .collect();
    assert!(!steps.contains(&"claim_built"), "{steps:?}");
    assert!(!steps.contains(&"notary_approved"), "{steps:?}");
    assert!(steps.contains(&"notary_rejected"), "{steps:?}");
    for (party, chain) in [("buyer", "chain-p"), ("seller", "chain-d")] {
        let (before, after, fees) = balance(&report, party, chain);
        assert_eq!(after, before - fees, "{party}");
    }
}

#[test]
fn an_operator_cancel_after_both_reservations_returns_both_legs() {
    let report = scenario("cancel", 1, "cancelled", "cancelled");
    let s = &report["swaps"][0];
    for leg in ["payment", "delivery"] {
        assert!(is_txid(&s[leg]["reservation"]), "{leg}: {}", s[leg]);
        assert!(is_txid(&s[leg]["refund"]), "{leg}: {}", s[leg]);
    }
    for (party, chain) in [("buyer", "chain-p"), ("seller", "chain-d")] {
        let (before, after, fees) = balance(&report, party, chain);
        assert_eq!(after, before - fees, "{party}");
    }
}

#[test]
fn three_concurrent_swaps_all_complete_with_a_progress_bar() {
    let report = scenario("happy", 3, "completed", "completed");
    let mut ids: Vec<&str> = report["swaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["saga_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let (before, after, fees) = balance(&report, "buyer", "chain-p");
    assert_eq!(after - before, -3 * i128::from(PAYMENT) - fees);
    // The human report and the bar, without --json.
    let out = demo(&["--swaps", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("] 3/3 sagas done"),
        "{}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches(": completed (buyer completed, seller completed)")
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("conservation: holds"), "{text}");
}

/// Test hook: `--expect` makes the demo expect another end state; the run
/// is the same, the verdict must fail.
#[test]
fn a_swap_that_does_not_end_as_expected_fails_the_run() {
    let out = demo(&["--json", "--expect", "refunded"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["swaps"][0]["state"], "completed");
    assert_eq!(report["conservation"], true);
    assert!(
        stderr(&out).contains("1 of 1 saga(s) did not end as expected"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    let out = demo(&["--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown scenario \"nope\""),
        "{}",
        stderr(&out)
    );
}
