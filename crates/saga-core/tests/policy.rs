//! Policy parsing and validation: the shipped files, the worked example of
//! DESIGN.md §3.2, and every kind of error with its exact position.

use saga_core::policy::timeline::{ChainTimes, Confidence, Rule, Timeline, TimelineInputs};
use saga_core::policy::{CounterpartyRule, Policy, PolicyError, PolicyErrorKind};

const DEFAULT: &str = include_str!("../../../policies/default.toml");
const FAST_TEST: &str = include_str!("../../../policies/fast-test.toml");

/// A one-chain policy with the worked example's numbers; `n_p` is the payment
/// refund delay. Line numbers matter to the tests below: `[chains.x]` is line
/// 21 and each key follows on its own line.
fn worked(n_p: u32) -> String {
    format!(
        r#"schema = 1
[counterparties]
allowed = ["spiffe://org-b.example/gateway/gb", "org-c.example"]
[times]
quote_expiry = "5m"
reservation_deadline = "2h"
token_lifetime = "10m"
clock_skew_tolerance = "30s"
[timeline]
confidence = 3
seller_reaction = "10m"
[notary]
required = false
allowed = []
[retry]
budget = 5
backoff_initial = "2s"
backoff_max = "5m"
# the worked example of DESIGN.md 3.2
#
[chains.x]
block_interval = "10m"
confirmations = 6
max_confirm_blocks = 3
claim_margin_blocks = 6
view_lag_blocks = 1
delivery_refund_blocks = 144
payment_refund_blocks = {n_p}
min_amount_sats = 10000
max_amount_sats = 100000000
exposure_limit_sats = 500000000
fee_rate_sats_per_kb = 100
"#
    )
}

fn err(text: &str) -> PolicyError {
    match Policy::parse(text, "policies/p.toml") {
        Ok(_) => panic!("policy unexpectedly valid:\n{text}"),
        Err(e) => e,
    }
}

fn at(e: &PolicyError) -> (u32, u32, &str) {
    (e.line, e.column, e.field.as_str())
}

fn example_inputs(n_p: u32) -> TimelineInputs {
    let chain = ChainTimes {
        block_interval_secs: 600,
        max_confirm_blocks: 3,
        claim_margin_blocks: 6,
        confirmations: 6,
        view_lag_blocks: 1,
    };
    TimelineInputs {
        payment_chain: "p".into(),
        delivery_chain: "d".into(),
        payment: chain,
        delivery: chain,
        payment_refund_blocks: n_p,
        delivery_refund_blocks: 144,
        seller_reaction_secs: 600,
        confidence: Confidence(3000),
    }
}

#[test]
fn worked_example_of_design_3_2_reproduces_exactly() {
    // n_P - 6 = 230: 138,000 - 27,299 = 110,701 >= 88,200 + 21,824 + 600 = 110,624.
    let ok = Timeline::compute(example_inputs(236));
    assert_eq!(ok.c3_d_expected_secs, 88_200);
    assert_eq!(ok.c3_d_sigma_secs, 21_824);
    assert_eq!(ok.c3_right_secs, 110_624);
    assert_eq!(ok.c3_p_expected_secs, 138_000);
    assert_eq!(ok.c3_p_sigma_secs, 27_299);
    assert_eq!(ok.c3_left_secs, 110_701);
    assert!(ok.c3_poisson_holds());
    // Block terms: 236 - 6 - ceil(600/600) = 229 >= floor((144 + 3 - 1)*600/600) = 146.
    assert_eq!((ok.c3_blocks_left, ok.c3_blocks_right), (229, 146));
    assert!(ok.is_safe(), "{ok}");
    assert_eq!(ok.min_payment_refund_blocks, Some(236));

    // n_P - 6 = 229: 137,400 - 27,239 = 110,161 < 110,624.
    let bad = Timeline::compute(example_inputs(235));
    assert_eq!(bad.c3_p_sigma_secs, 27_239);
    assert_eq!(bad.c3_left_secs, 110_161);
    assert_eq!(bad.c3_right_secs, 110_624);
    assert!(bad.c3_blocks_holds());
    assert_eq!(bad.violations(), vec![Rule::C3Poisson]);

    // C1 and C2 of the same numbers.
    assert!(ok.c1_holds);
    assert_eq!(ok.last_claim_offset, 138);
    assert_eq!(ok.last_reservation_offset, 135);
    assert_eq!(ok.buyer_reservation_blocks_d, 9);
    assert_eq!(ok.buyer_reservation_late_secs, 10_800); // 9*600 + ceil(3*600*3)
    assert_eq!(ok.last_reservation_early_secs, 81_000 - 20_915);
}

#[test]
fn the_printed_timeline_shows_the_worked_numbers() {
    let text = Timeline::compute(example_inputs(236)).to_string();
    assert!(text.contains("138,000 - 27,299 = 110,701 s"), "{text}");
    assert!(
        text.contains("88,200 + 21,824 + 600 = 110,624 s: ok"),
        "{text}"
    );
    assert!(text.contains("smallest safe n_P (C3): 236"), "{text}");
    assert!(
        text.contains("C1 claim_margin_D >= K_D + lag_A: 6 >= 3 + 1: ok"),
        "{text}"
    );
}

#[test]
fn worked_example_as_a_policy_file_235_fails_236_passes() {
    let p = Policy::parse(&worked(236), "policies/worked.toml").unwrap();
    assert_eq!(p.timelines().len(), 1);
    assert_eq!(p.timelines()[0].c3_left_secs, 110_701);

    let e = err(&worked(235));
    assert_eq!(at(&e), (28, 25, "chains.x.payment_refund_blocks"));
    match &e.kind {
        PolicyErrorKind::Unsafe { rule, timeline } => {
            assert_eq!(*rule, Rule::C3Poisson);
            assert_eq!(timeline.c3_left_secs, 110_161);
            assert_eq!(timeline.min_payment_refund_blocks, Some(236));
        }
        other => panic!("{other:?}"),
    }
    let shown = e.to_string();
    assert!(
        shown
            .starts_with("policies/p.toml:28:25: chains.x.payment_refund_blocks: unsafe: C3 fails"),
        "{shown}"
    );
    assert!(
        shown.contains("137,400 - 27,239 = 110,161 s >= "),
        "{shown}"
    );
    assert!(shown.contains("110,624 s: FAILS"), "{shown}");
}

#[test]
fn shipped_policies_pass() {
    let d = Policy::parse(DEFAULT, "policies/default.toml").unwrap();
    assert_eq!(d.chains.len(), 2);
    assert_eq!(d.timelines().len(), 4);
    assert!(d.timelines().iter().all(Timeline::is_safe));
    assert_eq!(d.timelines()[0].min_payment_refund_blocks, Some(236));
    assert_eq!(d.id.file_name, "default.toml");
    assert_eq!(d.id.sha256, bsv_format::hash::sha256(DEFAULT.as_bytes()));
    assert!(d.id.to_string().starts_with("default.toml@sha256:"));
    assert_eq!(
        d.counterparties[0],
        CounterpartyRule::TrustDomain("org-a.example".into())
    );

    let f = Policy::parse(FAST_TEST, "fast-test.toml").unwrap();
    assert_eq!(f.timelines().len(), 4);
    assert_eq!(f.timelines()[0].min_payment_refund_blocks, Some(81));
    assert_eq!(
        f.chain("chain-p").map(|c| c.block_interval.as_secs()),
        Some(1)
    );
    assert_eq!(f.retry.backoff(0).as_secs(), 1);
    assert_eq!(f.retry.backoff(1).as_secs(), 2);
    assert_eq!(f.retry.backoff(5).as_secs(), 4);
    assert_eq!(f.retry.backoff(40).as_secs(), 4);
}

#[test]
fn counterparty_rules_match_ids_and_domains() {
    let p = Policy::parse(&worked(236), "w.toml").unwrap();
    assert!(p.allows_counterparty("spiffe://org-b.example/gateway/gb"));
    assert!(!p.allows_counterparty("spiffe://org-b.example/gateway/other"));
    assert!(p.allows_counterparty("spiffe://org-c.example/gateway/any"));
    assert!(!p.allows_counterparty("spiffe://org-c.example/observer/any"));
    assert!(!p.allows_counterparty("spiffe://org-d.example/gateway/gd"));
    assert!(!p.allows_counterparty("org-c.example"));
}

#[test]
fn policy_id_hashes_the_bytes_and_drops_the_directory() {
    let text = worked(236);
    let a = Policy::parse(&text, "/etc/escrowd/w.toml").unwrap();
    let b = Policy::parse(&text, "w.toml").unwrap();
    assert_eq!(a.id, b.id);
    let c = Policy::parse(&format!("{text}\n"), "w.toml").unwrap();
    assert_ne!(a.id.sha256, c.id.sha256);
}

#[test]
fn unknown_fields_are_refused_where_they_are() {
    let e = err(&worked(236).replace("view_lag_blocks = 1", "view_lag_blocks = 1\nfee_rate = 5"));
    assert_eq!(at(&e), (27, 1, "chains.x.fee_rate"));
    assert_eq!(e.kind, PolicyErrorKind::UnknownField);
    assert_eq!(
        e.to_string(),
        "policies/p.toml:27:1: chains.x.fee_rate: unknown field"
    );

    // A misspelt key is reported as unknown, not as the missing key it meant.
    let e = err(&worked(236).replace("quote_expiry =", "quote_expiri ="));
    assert_eq!(
        (at(&e), e.kind.clone()),
        ((5, 1, "times.quote_expiri"), PolicyErrorKind::UnknownField)
    );

    // No option to reserve in parallel: it is an unknown field like any other.
    let e = err(&worked(236).replace(
        "[counterparties]",
        "parallel_reservations = true\n[counterparties]",
    ));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (2, 1, "parallel_reservations"),
            PolicyErrorKind::UnknownField
        )
    );
}

#[test]
fn missing_fields_wrong_types_and_ranges() {
    let e = err(&worked(236).replace("confirmations = 6\n", ""));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (21, 1, "chains.x.confirmations"),
            PolicyErrorKind::MissingField
        )
    );

    let e = err(&worked(236).replace("budget = 5", "budget = \"5\""));
    assert_eq!(at(&e), (16, 10, "retry.budget"));
    assert_eq!(
        e.kind,
        PolicyErrorKind::WrongType {
            expected: "integer",
            found: "string"
        }
    );

    let e = err(&worked(236).replace("budget = 5", "budget = 0"));
    assert_eq!(at(&e), (16, 10, "retry.budget"));
    assert_eq!(
        e.kind,
        PolicyErrorKind::OutOfRange {
            value: "0".into(),
            lo: 1,
            hi: 1000
        }
    );

    let e = err(&worked(236).replace("max_confirm_blocks = 3", "max_confirm_blocks = -3"));
    assert_eq!(at(&e), (24, 22, "chains.x.max_confirm_blocks"));
    assert!(matches!(e.kind, PolicyErrorKind::OutOfRange { .. }));

    let e = err(&worked(236).replace("schema = 1", "schema = 2"));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (1, 10, "schema"),
            PolicyErrorKind::UnsupportedSchema { found: 2 }
        )
    );
}

#[test]
fn durations_are_humantime_strings_of_whole_seconds() {
    let e = err(&worked(236).replace(
        "seller_reaction = \"10m\"",
        "seller_reaction = \"10 parsecs\"",
    ));
    assert_eq!(at(&e), (11, 19, "timeline.seller_reaction"));
    assert!(matches!(e.kind, PolicyErrorKind::BadDuration { .. }), "{e}");

    let e = err(&worked(236).replace("block_interval = \"10m\"", "block_interval = \"1500ms\""));
    assert_eq!(at(&e), (22, 18, "chains.x.block_interval"));
    assert!(
        e.to_string()
            .ends_with("bad duration \"1500ms\": not a whole number of seconds"),
        "{e}"
    );

    let e = err(&worked(236).replace("block_interval = \"10m\"", "block_interval = 600"));
    assert_eq!(
        e.kind,
        PolicyErrorKind::WrongType {
            expected: "duration string such as \"90s\"",
            found: "integer"
        }
    );

    let p = Policy::parse(
        &worked(236).replace("quote_expiry = \"5m\"", "quote_expiry = \"1m 30s\""),
        "w",
    )
    .unwrap();
    assert_eq!(p.times.quote_expiry.as_secs(), 90);
}

#[test]
fn confidence_takes_up_to_three_decimals() {
    let p = Policy::parse(
        &worked(300).replace("confidence = 3", "confidence = 2.5"),
        "w",
    )
    .unwrap();
    assert_eq!(p.confidence, Confidence(2500));
    let e = err(&worked(236).replace("confidence = 3", "confidence = 2.0001"));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (10, 14, "timeline.confidence"),
            PolicyErrorKind::BadNumber {
                text: "2.0001".into()
            }
        )
    );
    let e = err(&worked(236).replace("confidence = 3", "confidence = 0.5"));
    assert!(matches!(e.kind, PolicyErrorKind::OutOfRange { .. }), "{e}");
}

#[test]
fn syntax_errors_carry_the_parser_position() {
    let e = err(&worked(236).replace("budget = 5", "budget = = 5"));
    assert_eq!(at(&e), (16, 10, "retry.budget"));
    assert!(matches!(e.kind, PolicyErrorKind::Syntax { .. }), "{e}");
    assert!(e.to_string().starts_with("policies/p.toml:16:"), "{e}");

    // A duplicate key is a TOML error too.
    let e = err(&worked(236).replace("budget = 5", "budget = 5\nbudget = 6"));
    assert_eq!((e.line, e.field.as_str()), (17, "retry.budget"));
    // An unterminated string in the first table.
    let e = err(&worked(236).replace("\"org-c.example\"]", "\"org-c.example]"));
    assert_eq!((e.line, e.field.as_str()), (4, "counterparties"), "{e}");
    assert!(matches!(e.kind, PolicyErrorKind::Syntax { .. }), "{e}");
    assert!(matches!(e.kind, PolicyErrorKind::Syntax { .. }), "{e}");
}

#[test]
fn identities_must_be_well_formed_and_of_the_right_role() {
    let e = err(&worked(236).replace("\"org-c.example\"", "\"Org-C\""));
    assert_eq!(at(&e), (3, 49, "counterparties.allowed"));
    assert!(matches!(e.kind, PolicyErrorKind::BadIdentity { .. }), "{e}");

    let e = err(&worked(236).replace("org-b.example/gateway/gb", "org-b.example/notary/n"));
    assert!(
        e.to_string()
            .ends_with("a counterparty must have the role gateway"),
        "{e}"
    );

    let e = err(&worked(236).replace(
        "allowed = []",
        "allowed = [\"spiffe://n.example/gateway/n\"]",
    ));
    assert_eq!(at(&e), (14, 12, "notary.allowed"));
    assert!(
        e.to_string()
            .ends_with("a notary must have the role notary"),
        "{e}"
    );

    let e = err(&worked(236).replace("\"org-c.example\"", "\"org-c.example\", \"org-c.example\""));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (3, 66, "counterparties.allowed"),
            PolicyErrorKind::Duplicate {
                text: "org-c.example".into()
            }
        )
    );

    let e = err(&worked(236).replace("[chains.x]", "[chains.X]"));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (21, 9, "chains.X"),
            PolicyErrorKind::BadChainId { id: "X".into() }
        )
    );
}

#[test]
fn impossible_combinations_are_refused() {
    // (text to replace, replacement, expected line/column/field, message part)
    type Case<'a> = (&'a str, &'a str, (u32, u32, &'a str), &'a str);
    let cases: [Case; 7] = [
        (
            "allowed = [\"spiffe://org-b.example/gateway/gb\", \"org-c.example\"]",
            "allowed = []",
            (3, 11, "counterparties.allowed"),
            "no counterparty is allowed",
        ),
        (
            "reservation_deadline = \"2h\"",
            "reservation_deadline = \"5m\"",
            (6, 24, "times.reservation_deadline"),
            "later than the quote expiry",
        ),
        (
            "clock_skew_tolerance = \"30s\"",
            "clock_skew_tolerance = \"10m\"",
            (8, 24, "times.clock_skew_tolerance"),
            "shorter than the quote expiry",
        ),
        (
            "required = false",
            "required = true",
            (14, 11, "notary.allowed"),
            "a notary is required but none is allowed",
        ),
        (
            "backoff_max = \"5m\"",
            "backoff_max = \"1s\"",
            (18, 15, "retry.backoff_max"),
            "shorter than backoff_initial",
        ),
        (
            "exposure_limit_sats = 500000000",
            "exposure_limit_sats = 5000",
            (31, 23, "chains.x.exposure_limit_sats"),
            "below max_amount_sats",
        ),
        (
            "min_amount_sats = 10000",
            "min_amount_sats = 20",
            (29, 19, "chains.x.min_amount_sats"),
            "(235 bytes at 100 sat/kB = 24 sat)",
        ),
    ];
    for (from, to, pos, msg) in cases {
        let text = worked(236).replace(from, to);
        assert_ne!(text, worked(236), "{from}");
        let e = err(&text);
        assert_eq!(at(&e), pos, "{e}");
        assert!(matches!(e.kind, PolicyErrorKind::Impossible { .. }), "{e}");
        assert!(e.to_string().contains(msg), "{e}");
    }
}

#[test]
fn c1_c2_and_c3_margin_point_at_the_field_to_change() {
    // C1: claim margin 4 < K 3 + lag 2.
    let e = err(&worked(236)
        .replace("view_lag_blocks = 1", "view_lag_blocks = 2")
        .replace("claim_margin_blocks = 6", "claim_margin_blocks = 4"));
    assert_eq!(at(&e), (25, 23, "chains.x.claim_margin_blocks"));
    assert!(
        matches!(e.kind, PolicyErrorKind::Unsafe { rule: Rule::C1, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("C1 claim_margin_D >= K_D + lag_A: 4 >= 3 + 2: FAILS"),
        "{e}"
    );

    // C2: n_D = 15 leaves r = 6 blocks, fewer than the buyer's 9.
    let e = err(&worked(236).replace(
        "delivery_refund_blocks = 144",
        "delivery_refund_blocks = 15",
    ));
    assert_eq!(at(&e), (27, 26, "chains.x.delivery_refund_blocks"));
    assert!(
        matches!(e.kind, PolicyErrorKind::Unsafe { rule: Rule::C2, .. }),
        "{e}"
    );

    // C3's margin alone, across two chains: P's margin 2 < K_P 3 while D is fine.
    let two = worked(236).replace("[chains.x]", "[chains.d]")
        + &worked(236)
            .lines()
            .skip(20)
            .collect::<Vec<_>>()
            .join("\n")
            .replace("[chains.x]", "[chains.p]")
            .replace("claim_margin_blocks = 6", "claim_margin_blocks = 2")
            .replace("view_lag_blocks = 1", "view_lag_blocks = 0");
    let e = err(&two);
    // Pairs in id order: (P=d, D=d) ok, (P=d, D=p): C1 on p (2 < 3 + 0).
    assert_eq!(e.field, "chains.p.claim_margin_blocks");
    assert!(
        matches!(e.kind, PolicyErrorKind::Unsafe { rule: Rule::C1, .. }),
        "{e}"
    );
}

#[test]
fn an_empty_chains_table_points_at_itself() {
    let text = worked(236);
    let cut = text.find("[chains.x]").unwrap();
    let e = err(&format!("{}[chains]\n", &text[..cut]));
    assert_eq!(at(&e), (21, 1, "chains"));
    assert!(
        e.to_string().ends_with("impossible: no chain is listed"),
        "{e}"
    );
    let e = err(&format!("{}[chains]\nx = 5\n", &text[..cut]));
    assert_eq!(
        (at(&e), e.kind.clone()),
        (
            (22, 5, "chains.x"),
            PolicyErrorKind::WrongType {
                expected: "table",
                found: "integer"
            }
        )
    );
}
