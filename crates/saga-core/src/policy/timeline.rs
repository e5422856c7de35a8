//! The timeline safety rules C1–C3 of DESIGN.md §3.2, computed for one pair
//! of chains (payment chain P, delivery chain D).
//!
//! Heights are counted in blocks *from agreement*: `n_D` is the delivery
//! refund delay (`T_D = tip_D + n_D`), `n_P` the payment refund delay
//! (`T_P = tip_P + n_P`). Each rule is computed twice where it relates the
//! two chains:
//!
//! - **in block terms**, with each chain producing blocks at exactly its
//!   expected interval (the model's `Pmax(h) = ⌊h·b_D / b_P⌋`, no drift); and
//! - **with the Poisson bound** at `k` standard deviations: `n` blocks of a
//!   chain with expected interval `b` take at least `n·b − k·b·√n` and at most
//!   `n·b + k·b·√n` seconds. Each `k·b·√n` term is rounded *up* to whole
//!   seconds, which is conservative on both sides and reproduces the worked
//!   example of DESIGN.md §3.2 exactly (110,624 s and 110,701 s). The square
//!   root is computed in integers, so the verdict is the same on every machine.
//!
//! The rules (symbols as in DESIGN.md §3.2; `m` = claim margin, `K` = most
//! blocks a due transaction takes to confirm, `w` = seller's reaction time,
//! `lag_A` = staleness of the buyer's view of D's tip, `c` = confirmations):
//!
//! - **C1** `m_D ≥ K_D + lag_A`: the buyer's claim, broadcast while D's tip is
//!   below `T_D − m_D`, is confirmed before the seller's refund can be mined.
//! - **C2** the seller reserves only while D's tip is at most
//!   `T_D − m_D − K_D`; this is checked to be reachable: that height, `r = n_D
//!   − m_D − K_D` blocks after agreement, must come no earlier than the
//!   buyer's reservation can have its `c_P` confirmations (`K_P + c_P` blocks
//!   of P). Blocks: `r ≥ ⌈(K_P + c_P)·b_P / b_D⌉`; Poisson: D's early arrival
//!   at `r` is no earlier than P's late arrival at `K_P + c_P`.
//! - **C3** `m_P ≥ K_P`, and chain P must not pass `T_P − m_P − w` while D is
//!   below `T_D + K_D`. Blocks: `n_P − m_P − ⌈w / b_P⌉ ≥ ⌊(n_D + K_D − 1)·b_D
//!   / b_P⌋`; Poisson: `(n_P − m_P)·b_P − k·b_P·√(n_P − m_P) ≥ (n_D + K_D)·b_D
//!   + k·b_D·√(n_D + K_D) + w`.
//! - **C4** is a runtime rule (the seller broadcasts its refund as soon as D
//!   reaches `T_D`); it shows in the printed timeline only.
//!
//! # Layout
//! - [`Confidence`]: `k` in thousandths.
//! - [`ChainTimes`], [`TimelineInputs`]: what the rules read.
//! - [`Timeline`]: every computed value, the verdicts, `Display`.
//! - Poisson helpers: [`sigma_secs`], [`early_secs`], [`late_secs`].

use std::fmt;

/// The confidence level `k`, in standard deviations, held in thousandths
/// (`3` is `Confidence(3000)`) so that the timeline arithmetic is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Confidence(pub u32);

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// One chain's timing parameters, as its policy section gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainTimes {
    /// Expected block interval `b`, seconds (≥ 1).
    pub block_interval_secs: u64,
    /// `K`: the most blocks a due transaction may take to confirm.
    pub max_confirm_blocks: u32,
    /// `m`: the claim margin, blocks.
    pub claim_margin_blocks: u32,
    /// `c`: confirmations a reservation needs before the other side relies on it.
    pub confirmations: u32,
    /// How stale our view of this chain's tip may be, blocks (`lag_A` when
    /// this chain is D).
    pub view_lag_blocks: u32,
}

/// What the rules read for one (payment, delivery) chain pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineInputs {
    /// Chain id of the payment leg (P).
    pub payment_chain: String,
    /// Chain id of the delivery leg (D).
    pub delivery_chain: String,
    /// Chain P's parameters.
    pub payment: ChainTimes,
    /// Chain D's parameters.
    pub delivery: ChainTimes,
    /// `n_P`: payment refund delay, blocks of P from agreement.
    pub payment_refund_blocks: u32,
    /// `n_D`: delivery refund delay, blocks of D from agreement.
    pub delivery_refund_blocks: u32,
    /// `w`: the seller's time to notice a spend of its reservation and
    /// broadcast its claim, seconds.
    pub seller_reaction_secs: u64,
    /// `k`.
    pub confidence: Confidence,
}

/// A timeline rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// `m_D ≥ K_D + lag_A`.
    C1,
    /// The seller's reservation window exists (block terms and Poisson).
    C2,
    /// `m_P ≥ K_P`.
    C3Margin,
    /// `T_P` late enough, in block terms.
    C3Blocks,
    /// `T_P` late enough, with the Poisson bound.
    C3Poisson,
}

impl Rule {
    /// Short name used in messages (`C1`, `C2`, `C3`).
    pub fn name(self) -> &'static str {
        match self {
            Rule::C1 => "C1",
            Rule::C2 => "C2",
            Rule::C3Margin | Rule::C3Blocks | Rule::C3Poisson => "C3",
        }
    }
}

/// The computed timeline of one chain pair: inputs, every derived value, and
/// the verdict of each rule. Seconds are from agreement; "early" and "late"
/// are the Poisson bounds at `k` standard deviations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The inputs.
    pub inputs: TimelineInputs,
    /// C1 holds: `m_D ≥ K_D + lag_A`.
    pub c1_holds: bool,
    /// Buyer's last claim broadcast: D's tip below `n_D − m_D` (blocks from agreement).
    pub last_claim_offset: i64,
    /// C2: the seller's last reservation height `r = n_D − m_D − K_D`, blocks from agreement.
    pub last_reservation_offset: i64,
    /// C2: blocks of D that the buyer's reservation needs at the expected
    /// rates: `⌈(K_P + c_P)·b_P / b_D⌉`.
    pub buyer_reservation_blocks_d: u64,
    /// C2, Poisson: P's late arrival at `K_P + c_P` blocks, seconds.
    pub buyer_reservation_late_secs: i128,
    /// C2, Poisson: D's early arrival at `r`, seconds.
    pub last_reservation_early_secs: i128,
    /// C2 holds in both terms.
    pub c2_holds: bool,
    /// C3: `m_P ≥ K_P`.
    pub c3_margin_holds: bool,
    /// C3, blocks: `n_P − m_P − ⌈w / b_P⌉`.
    pub c3_blocks_left: i64,
    /// C3, blocks: `Pmax(n_D + K_D − 1) = ⌊(n_D + K_D − 1)·b_D / b_P⌋`.
    pub c3_blocks_right: i64,
    /// C3, Poisson, left side: `(n_P − m_P)·b_P`, seconds.
    pub c3_p_expected_secs: i128,
    /// C3, Poisson: `⌈k·b_P·√(n_P − m_P)⌉`, seconds.
    pub c3_p_sigma_secs: i128,
    /// C3, Poisson: `(n_D + K_D)·b_D`, seconds.
    pub c3_d_expected_secs: i128,
    /// C3, Poisson: `⌈k·b_D·√(n_D + K_D)⌉`, seconds.
    pub c3_d_sigma_secs: i128,
    /// C3, Poisson: left side (P early at `T_P − m_P`), seconds.
    pub c3_left_secs: i128,
    /// C3, Poisson: right side (D late at `T_D + K_D`, plus `w`), seconds.
    pub c3_right_secs: i128,
    /// The smallest `n_P` that satisfies C3 in both terms (given the other
    /// inputs), or `None` if none up to 10,000,000 blocks does.
    pub min_payment_refund_blocks: Option<u32>,
}

/// Upper end of the search for the smallest safe `n_P`.
const MIN_SEARCH_LIMIT: u32 = 10_000_000;

/// Integer square root rounded up: the smallest `s` with `s² ≥ v`.
fn isqrt_ceil(v: u128) -> u128 {
    if v == 0 {
        return 0;
    }
    // Floor square root by Newton's method from an upper bound, then adjust.
    let mut x: u128 = 1u128 << ((128 - v.leading_zeros()).div_ceil(2));
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            break;
        }
        x = y;
    }
    if x * x < v {
        x + 1
    } else {
        x
    }
}

/// `⌈k·b·√n⌉` in whole seconds: one `k`-sigma deviation of the time `n`
/// blocks of a chain with expected interval `b` seconds take (Poisson
/// arrivals: the sum of `n` exponential intervals has standard deviation
/// `b·√n`). Exact: the smallest integer `x` with `(1000·x)² ≥ k_milli²·b²·n`.
pub fn sigma_secs(confidence: Confidence, block_interval_secs: u64, blocks: u64) -> i128 {
    let kb = u128::from(confidence.0) * u128::from(block_interval_secs);
    let v = kb.saturating_mul(kb).saturating_mul(u128::from(blocks));
    let root = isqrt_ceil(v);
    root.div_ceil(1000) as i128
}

/// The earliest time, at confidence `k`, that `blocks` blocks arrive:
/// `blocks·b − ⌈k·b·√blocks⌉` seconds (may be negative for few blocks).
pub fn early_secs(confidence: Confidence, block_interval_secs: u64, blocks: u64) -> i128 {
    i128::from(blocks) * i128::from(block_interval_secs)
        - sigma_secs(confidence, block_interval_secs, blocks)
}

/// The latest time, at confidence `k`, that `blocks` blocks arrive:
/// `blocks·b + ⌈k·b·√blocks⌉` seconds.
pub fn late_secs(confidence: Confidence, block_interval_secs: u64, blocks: u64) -> i128 {
    i128::from(blocks) * i128::from(block_interval_secs)
        + sigma_secs(confidence, block_interval_secs, blocks)
}

impl Timeline {
    /// Computes every rule for `inputs`. Never panics: all arithmetic is in
    /// `i128` on `u32`/`u64` inputs; a block interval of 0 is treated as 1
    /// (the parser refuses 0 before it gets here).
    pub fn compute(inputs: TimelineInputs) -> Timeline {
        let d = inputs.delivery;
        let p = inputs.payment;
        let b_d = d.block_interval_secs.max(1);
        let b_p = p.block_interval_secs.max(1);
        let k = inputs.confidence;
        let n_d = i64::from(inputs.delivery_refund_blocks);
        let n_p = inputs.payment_refund_blocks;

        let c1_holds = u64::from(d.claim_margin_blocks)
            >= u64::from(d.max_confirm_blocks) + u64::from(d.view_lag_blocks);
        let last_claim_offset = n_d - i64::from(d.claim_margin_blocks);

        let r = last_claim_offset - i64::from(d.max_confirm_blocks);
        let buyer_blocks_p = u64::from(p.max_confirm_blocks) + u64::from(p.confirmations);
        let buyer_reservation_blocks_d =
            (u128::from(buyer_blocks_p) * u128::from(b_p)).div_ceil(u128::from(b_d)) as u64;
        let buyer_reservation_late_secs = late_secs(k, b_p, buyer_blocks_p);
        let last_reservation_early_secs = if r > 0 {
            early_secs(k, b_d, r as u64)
        } else {
            i128::from(r) * i128::from(b_d)
        };
        let c2_holds = r >= 1
            && i128::from(r) >= i128::from(buyer_reservation_blocks_d)
            && last_reservation_early_secs >= buyer_reservation_late_secs;

        let c3_margin_holds = p.claim_margin_blocks >= p.max_confirm_blocks;
        let c3 = c3_values(&inputs, n_p);

        let min_payment_refund_blocks = min_safe_payment_refund(&inputs);

        Timeline {
            c1_holds,
            last_claim_offset,
            last_reservation_offset: r,
            buyer_reservation_blocks_d,
            buyer_reservation_late_secs,
            last_reservation_early_secs,
            c2_holds,
            c3_margin_holds,
            c3_blocks_left: c3.blocks_left,
            c3_blocks_right: c3.blocks_right,
            c3_p_expected_secs: c3.p_expected,
            c3_p_sigma_secs: c3.p_sigma,
            c3_d_expected_secs: c3.d_expected,
            c3_d_sigma_secs: c3.d_sigma,
            c3_left_secs: c3.left,
            c3_right_secs: c3.right,
            min_payment_refund_blocks,
            inputs,
        }
    }

    /// C3 in block terms holds.
    pub fn c3_blocks_holds(&self) -> bool {
        self.c3_blocks_left >= self.c3_blocks_right
    }

    /// C3 with the Poisson bound holds.
    pub fn c3_poisson_holds(&self) -> bool {
        self.c3_left_secs >= self.c3_right_secs
    }

    /// The rules that fail, in the order C1, C2, C3 (margin, blocks, Poisson).
    pub fn violations(&self) -> Vec<Rule> {
        let mut v = Vec::new();
        if !self.c1_holds {
            v.push(Rule::C1);
        }
        if !self.c2_holds {
            v.push(Rule::C2);
        }
        if !self.c3_margin_holds {
            v.push(Rule::C3Margin);
        }
        if !self.c3_blocks_holds() {
            v.push(Rule::C3Blocks);
        }
        if !self.c3_poisson_holds() {
            v.push(Rule::C3Poisson);
        }
        v
    }

    /// Whether every rule holds.
    pub fn is_safe(&self) -> bool {
        self.violations().is_empty()
    }
}

/// The smallest `n_P` for which C3 holds in both terms. Both sides of C3 grow
/// with `n_P` once `n_P − m_P` exceeds `k²/4` blocks (where `x·b − k·b·√x`
/// starts to rise), so: double until it holds, binary-search below, then step
/// down over the few small values where the Poisson side is not monotone.
fn min_safe_payment_refund(inputs: &TimelineInputs) -> Option<u32> {
    let holds = |n: u32| c3_values(inputs, n).holds();
    let mut hi: u32 = 1;
    while !holds(hi) {
        if hi >= MIN_SEARCH_LIMIT {
            return None;
        }
        hi = hi.saturating_mul(2).min(MIN_SEARCH_LIMIT);
    }
    let mut lo = hi / 2; // holds(lo) is false unless lo == 0
    if holds(lo) {
        return Some(lo);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if holds(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    while hi > 0 && holds(hi - 1) {
        hi -= 1;
    }
    Some(hi)
}

/// C3's values for a given `n_P`.
struct C3 {
    blocks_left: i64,
    blocks_right: i64,
    p_expected: i128,
    p_sigma: i128,
    d_expected: i128,
    d_sigma: i128,
    left: i128,
    right: i128,
}

impl C3 {
    fn holds(&self) -> bool {
        self.blocks_left >= self.blocks_right && self.left >= self.right
    }
}

fn c3_values(inputs: &TimelineInputs, n_p: u32) -> C3 {
    let d = inputs.delivery;
    let p = inputs.payment;
    let b_d = d.block_interval_secs.max(1);
    let b_p = p.block_interval_secs.max(1);
    let k = inputs.confidence;
    let w = inputs.seller_reaction_secs;
    let m_p = i64::from(p.claim_margin_blocks);
    let n_d_k = u64::from(inputs.delivery_refund_blocks) + u64::from(d.max_confirm_blocks);

    let w_blocks = w.div_ceil(b_p) as i64;
    let blocks_left = i64::from(n_p) - m_p - w_blocks;
    let pmax_h = n_d_k.saturating_sub(1);
    let blocks_right = ((u128::from(pmax_h) * u128::from(b_d)) / u128::from(b_p)) as i64;

    let p_blocks = i64::from(n_p) - m_p;
    let (p_expected, p_sigma) = if p_blocks > 0 {
        (
            i128::from(p_blocks) * i128::from(b_p),
            sigma_secs(k, b_p, p_blocks as u64),
        )
    } else {
        (i128::from(p_blocks) * i128::from(b_p), 0)
    };
    let d_expected = i128::from(n_d_k) * i128::from(b_d);
    let d_sigma = sigma_secs(k, b_d, n_d_k);
    C3 {
        blocks_left,
        blocks_right,
        p_expected,
        p_sigma,
        d_expected,
        d_sigma,
        left: p_expected - p_sigma,
        right: d_expected + d_sigma + i128::from(w),
    }
}

/// Formats an integer with `,` between thousands (110624 → `110,624`).
pub(crate) fn thousands(v: i128) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAILS"
    }
}

impl fmt::Display for Timeline {
    /// A multi-line report: the pair, each chain's parameters, each rule with
    /// its numbers and verdict, and the smallest safe `n_P`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inputs;
        let (d, p) = (i.delivery, i.payment);
        let k = i.confidence;
        writeln!(
            f,
            "timeline: payment on {} (P), delivery on {} (D); k = {k}, w = {} s",
            i.payment_chain, i.delivery_chain, i.seller_reaction_secs
        )?;
        for (name, c, n, what) in [
            ("D", d, i.delivery_refund_blocks, "T_D"),
            ("P", p, i.payment_refund_blocks, "T_P"),
        ] {
            writeln!(
                f,
                "  {name}: b = {} s, {what} = tip + {n}, K = {}, claim margin = {}, confirmations = {}, view lag = {}",
                c.block_interval_secs, c.max_confirm_blocks, c.claim_margin_blocks, c.confirmations, c.view_lag_blocks
            )?;
        }
        writeln!(
            f,
            "  C1 claim_margin_D >= K_D + lag_A: {} >= {} + {}: {}; buyer claims only while D < tip + {}",
            d.claim_margin_blocks,
            d.max_confirm_blocks,
            d.view_lag_blocks,
            verdict(self.c1_holds),
            self.last_claim_offset
        )?;
        writeln!(
            f,
            "  C2 seller reserves only while D <= T_D - m_D - K_D = tip + {}; buyer's reservation needs K_P + c_P = {} blocks of P \
             = {} blocks of D, late {} s <= D early at tip + {}: {} s: {}",
            self.last_reservation_offset,
            u64::from(p.max_confirm_blocks) + u64::from(p.confirmations),
            self.buyer_reservation_blocks_d,
            thousands(self.buyer_reservation_late_secs),
            self.last_reservation_offset,
            thousands(self.last_reservation_early_secs),
            verdict(self.c2_holds)
        )?;
        writeln!(
            f,
            "  C3 claim_margin_P >= K_P: {} >= {}: {}",
            p.claim_margin_blocks,
            p.max_confirm_blocks,
            verdict(self.c3_margin_holds)
        )?;
        writeln!(
            f,
            "  C3 blocks: n_P - m_P - ceil(w/b_P) >= Pmax(n_D + K_D - 1): {} >= {}: {}",
            self.c3_blocks_left,
            self.c3_blocks_right,
            verdict(self.c3_blocks_holds())
        )?;
        writeln!(
            f,
            "  C3 Poisson: P early at T_P - m_P = (n_P - m_P)*b_P - k*b_P*sqrt(n_P - m_P) = {} - {} = {} s \
             >= D late at T_D + K_D, plus w = (n_D + K_D)*b_D + k*b_D*sqrt(n_D + K_D) + w = {} + {} + {} = {} s: {}",
            thousands(self.c3_p_expected_secs),
            thousands(self.c3_p_sigma_secs),
            thousands(self.c3_left_secs),
            thousands(self.c3_d_expected_secs),
            thousands(self.c3_d_sigma_secs),
            thousands(i128::from(i.seller_reaction_secs)),
            thousands(self.c3_right_secs),
            verdict(self.c3_poisson_holds())
        )?;
        match self.min_payment_refund_blocks {
            Some(n) => writeln!(f, "  smallest safe n_P (C3): {n}")?,
            None => writeln!(f, "  no n_P up to {MIN_SEARCH_LIMIT} satisfies C3")?,
        }
        write!(
            f,
            "  C4 seller broadcasts its refund as soon as D reaches T_D = tip + {}",
            i.delivery_refund_blocks
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_ceil_is_exact() {
        for v in 0u128..2000 {
            let s = isqrt_ceil(v);
            assert!(s * s >= v, "{v}");
            assert!(s == 0 || (s - 1) * (s - 1) < v, "{v}");
        }
        assert_eq!(
            isqrt_ceil(u128::from(u64::MAX) * u128::from(u64::MAX)),
            u128::from(u64::MAX)
        );
    }

    #[test]
    fn sigma_terms_of_the_worked_example() {
        let k = Confidence(3000);
        assert_eq!(sigma_secs(k, 600, 147), 21_824);
        assert_eq!(sigma_secs(k, 600, 230), 27_299);
        assert_eq!(sigma_secs(k, 600, 0), 0);
        assert_eq!(sigma_secs(k, 1, 100), 30);
        assert_eq!(early_secs(k, 600, 230), 110_701);
        assert_eq!(late_secs(k, 600, 147), 110_024);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(110_624), "110,624");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(-1_000), "-1,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn confidence_prints_without_trailing_zeros() {
        assert_eq!(Confidence(3000).to_string(), "3");
        assert_eq!(Confidence(2500).to_string(), "2.5");
        assert_eq!(Confidence(1005).to_string(), "1.005");
    }
}
