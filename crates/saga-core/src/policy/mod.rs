//! Policies: the timeouts, limits and rules a gateway applies (DESIGN.md
//! §3.2–3.3), parsed from TOML text with every error at `file:line:column`
//! and the field's dotted name, and validated — in particular the timeline
//! rules C1–C3 for every pair of chains the policy lists ([`timeline`]).
//!
//! The schema (`policies/README.md` has the full table and one worked example
//! per rule):
//!
//! ```toml
//! schema = 1
//! [counterparties]
//! allowed = ["spiffe://org-b.example/gateway/gb", "org-c.example"]
//! [times]                      # UTC-clock durations, whole seconds
//! quote_expiry = "5m"
//! reservation_deadline = "2h"
//! token_lifetime = "10m"
//! clock_skew_tolerance = "30s"
//! [timeline]
//! confidence = 3               # k, standard deviations (≤ 3 decimals)
//! seller_reaction = "10m"      # w
//! [notary]
//! required = false
//! allowed = []
//! [retry]
//! budget = 5
//! backoff_initial = "2s"
//! backoff_max = "5m"
//! [chains.bsv-mainnet]         # one table per chain id
//! block_interval = "10m"       # b
//! confirmations = 6            # c
//! max_confirm_blocks = 3       # K
//! claim_margin_blocks = 6      # m
//! view_lag_blocks = 1          # lag of our view of the tip (lag_A)
//! delivery_refund_blocks = 144 # n_D when this chain carries the delivery leg
//! payment_refund_blocks = 236  # n_P when this chain carries the payment leg
//! min_amount_sats = 10000
//! max_amount_sats = 100000000
//! exposure_limit_sats = 500000000  # per counterparty, in flight
//! fee_rate_sats_per_kb = 100
//! ```
//!
//! Reservations are always secret-holder first (DESIGN.md §3.3 step 1): there
//! is deliberately no key to say otherwise.
//!
//! # Layout
//! - [`timeline`]: C1–C3 arithmetic and the printed timeline.
//! - [`PolicyError`], [`PolicyErrorKind`].
//! - [`Policy`], [`ChainPolicy`], [`PolicyId`], [`CounterpartyRule`],
//!   [`NotaryRule`], [`RetryRule`], [`Times`].
//! - [`Policy::parse`]: text → validated policy.
//! - `reader` (private): the span-keeping strict TOML reader.

mod reader;
pub mod timeline;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bsv_format::hash::sha256;
use toml::de::DeTable;

use crate::legs::{fee_for_size, MAX_LEG_SPEND_BYTES};
use crate::spiffe::{self, Role, SpiffeError};
use crate::units::Satoshis;
use reader::{Source, Spans, Table};
use timeline::{ChainTimes, Confidence, Rule, Timeline, TimelineInputs};

/// The schema version this parser reads (`schema = 1`).
pub const SCHEMA_VERSION: u64 = 1;

/// Longest chain id, bytes.
pub const MAX_CHAIN_ID_LEN: usize = 64;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A policy file that cannot be used: where (file, 1-based line and column in
/// characters, dotted field name) and what. `Display` is
/// `file:line:column: field: message`, followed by the computed timeline on
/// the next lines for a timeline rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file name as given to [`Policy::parse`].
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Dotted field path, e.g. `chains.bsv-mainnet.payment_refund_blocks`.
    /// For a TOML syntax error it is a best guess from the text (the last
    /// table header and the key on the error's line), empty if there is none.
    pub field: String,
    /// What is wrong.
    pub kind: PolicyErrorKind,
}

impl std::error::Error for PolicyError {}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() {
            "(document)"
        } else {
            &self.field
        };
        write!(
            f,
            "{}:{}:{}: {field}: {}",
            self.file, self.line, self.column, self.kind
        )?;
        if let PolicyErrorKind::Unsafe { timeline, .. } = &self.kind {
            write!(f, "\n{timeline}")?;
        }
        Ok(())
    }
}

/// What is wrong with a policy field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrorKind {
    /// The text is not valid TOML (the TOML parser's message).
    #[error("TOML syntax: {message}")]
    Syntax {
        /// The parser's description.
        message: String,
    },
    /// A key the schema does not define (misspelt, or from another version).
    #[error("unknown field")]
    UnknownField,
    /// A required key is absent (the position is its table's).
    #[error("missing field")]
    MissingField,
    /// The value has the wrong TOML type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the schema wants.
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// A value outside the range the schema allows.
    #[error("{value} is out of range {lo}..={hi}")]
    OutOfRange {
        /// The value as written.
        value: String,
        /// Smallest allowed (seconds for durations, whole units for numbers).
        lo: u64,
        /// Largest allowed.
        hi: u64,
    },
    /// A duration string humantime cannot read, or not whole seconds.
    #[error("bad duration {text:?}: {reason}")]
    BadDuration {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A number that is not an integer or a decimal with at most 3 fraction digits.
    #[error("bad number {text}: an integer or a decimal with at most 3 fraction digits")]
    BadNumber {
        /// The text.
        text: String,
    },
    /// `schema` names a version this parser does not read.
    #[error("schema version {found} is not supported (this escrowd reads {SCHEMA_VERSION})")]
    UnsupportedSchema {
        /// The version found.
        found: u64,
    },
    /// A SPIFFE ID or trust domain that is malformed, or names the wrong role.
    #[error("{text:?}: {reason}")]
    BadIdentity {
        /// The text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A chain id with characters outside `[a-z0-9._-]` or too long.
    #[error("chain id {id:?} must be 1 to 64 of a-z, 0-9, '.', '-', '_'")]
    BadChainId {
        /// The id.
        id: String,
    },
    /// A value repeated in a list that must not repeat.
    #[error("{text:?} is listed twice")]
    Duplicate {
        /// The repeated value.
        text: String,
    },
    /// A combination no saga could complete under (e.g. nothing allowed, a
    /// limit below a minimum).
    #[error("impossible: {reason}")]
    Impossible {
        /// Why.
        reason: String,
    },
    /// A timeline rule of DESIGN.md §3.2 fails; the timeline shows the numbers.
    #[error("unsafe: {} fails ({})", rule.name(), describe_rule(*rule))]
    Unsafe {
        /// The failing rule (the first, in the order C1, C2, C3).
        rule: Rule,
        /// The computed timeline of the pair that fails.
        timeline: Box<Timeline>,
    },
}

fn describe_rule(rule: Rule) -> &'static str {
    match rule {
        Rule::C1 => "claim_margin_D must be at least K_D + lag_A",
        Rule::C2 => {
            "the seller's last reservation height T_D - m_D - K_D comes before the buyer's reservation can be confirmed"
        }
        Rule::C3Margin => "claim_margin_P must be at least K_P",
        Rule::C3Blocks => "T_P is too early in block terms: P may pass T_P - m_P - w while D is below T_D + K_D",
        Rule::C3Poisson => {
            "T_P is too early at the policy's confidence: P may pass T_P - m_P - w while D is below T_D + K_D"
        }
    }
}

// ---------------------------------------------------------------------------
// The policy
// ---------------------------------------------------------------------------

/// A policy's identity: the file's base name and the SHA-256 of its bytes
/// (DESIGN.md §3.3 step 0). Two gateways whose terms name the same id applied
/// byte-identical files. `Display`: `name@sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyId {
    /// Base name of the file (after the last `/` or `\`), e.g. `default.toml`.
    pub file_name: String,
    /// SHA-256 of the file's bytes.
    pub sha256: [u8; 32],
}

impl PolicyId {
    /// The id of a file named `file_name` (any directory part is dropped)
    /// whose bytes are `bytes`.
    pub fn of(file_name: &str, bytes: &[u8]) -> PolicyId {
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        PolicyId {
            file_name: base.to_string(),
            sha256: sha256(bytes),
        }
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@sha256:{}",
            self.file_name,
            crate::hex_lower(&self.sha256)
        )
    }
}

/// Who may be a counterparty: one gateway, or every gateway of a trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterpartyRule {
    /// Exactly this SPIFFE ID (role `gateway`).
    Id(String),
    /// Any gateway of this trust domain.
    TrustDomain(String),
}

impl CounterpartyRule {
    /// Whether `spiffe_id` (a gateway's SPIFFE ID) matches the rule. IDs
    /// that do not parse, or do not name a gateway, never match.
    pub fn matches(&self, spiffe_id: &str) -> bool {
        let Ok(parts) = spiffe::parse_spiffe_id(spiffe_id) else {
            return false;
        };
        if parts.role != Role::Gateway {
            return false;
        }
        match self {
            CounterpartyRule::Id(id) => id == spiffe_id,
            CounterpartyRule::TrustDomain(td) => td == parts.trust_domain,
        }
    }
}

/// UTC-clock durations (DESIGN.md §3.3: these deadlines are times on the
/// gateway's clock, unlike refund heights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// How long a proposal stays acceptable after it is made.
    pub quote_expiry: Duration,
    /// How long after agreement both reservations must be made.
    pub reservation_deadline: Duration,
    /// A granted token's `not_after` is its grant time plus this.
    pub token_lifetime: Duration,
    /// Tolerance for the peer's clock when judging UTC expiries.
    pub clock_skew_tolerance: Duration,
}

/// Notary requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotaryRule {
    /// Every saga must name a notary from `allowed`.
    pub required: bool,
    /// The notaries (SPIFFE IDs of role `notary`) terms may name.
    pub allowed: Vec<String>,
}

/// Retry budget and backoff for effects that fail transiently (broadcast,
/// peer calls); when the budget is spent the saga asks an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    /// Attempts before giving up to the `attention` state (≥ 1).
    pub budget: u32,
    /// First delay; doubled per attempt.
    pub backoff_initial: Duration,
    /// Largest delay.
    pub backoff_max: Duration,
}

impl RetryRule {
    /// The delay before retry number `attempt` (0-based):
    /// `min(backoff_initial · 2^attempt, backoff_max)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.backoff_initial
            .checked_mul(factor)
            .map_or(self.backoff_max, |d| d.min(self.backoff_max))
    }
}

/// One chain's rules. Block counts are blocks of this chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPolicy {
    /// Expected block interval `b`.
    pub block_interval: Duration,
    /// Confirmations `c` a reservation needs before the other side relies on
    /// it, and a claim needs before the saga is `Completed`.
    pub confirmations: u32,
    /// `K`: the most blocks a due transaction may take to confirm
    /// (inclusion delay, broadcaster retries, reaction time and allowed downtime).
    pub max_confirm_blocks: u32,
    /// `m`: claim margin, blocks before the leg's refund height.
    pub claim_margin_blocks: u32,
    /// How stale our view of this chain's tip may be, blocks (`lag_A`).
    pub view_lag_blocks: u32,
    /// `n_D`: refund delay of a delivery leg on this chain, blocks from agreement.
    pub delivery_refund_blocks: u32,
    /// `n_P`: refund delay of a payment leg on this chain, blocks from agreement.
    pub payment_refund_blocks: u32,
    /// Smallest leg amount.
    pub min_amount: Satoshis,
    /// Largest leg amount.
    pub max_amount: Satoshis,
    /// Most of our satoshis on this chain locked in sagas with one counterparty at once.
    pub exposure_limit: Satoshis,
    /// Fee rate for the transactions we build, satoshis per 1000 bytes.
    pub fee_rate_sats_per_kb: u64,
}

impl ChainPolicy {
    /// The timeline parameters of this chain.
    pub fn times(&self) -> ChainTimes {
        ChainTimes {
            block_interval_secs: self.block_interval.as_secs(),
            max_confirm_blocks: self.max_confirm_blocks,
            claim_margin_blocks: self.claim_margin_blocks,
            confirmations: self.confirmations,
            view_lag_blocks: self.view_lag_blocks,
        }
    }
}

/// A validated policy. Only [`Policy::parse`] builds one, so holding a
/// `Policy` means every rule of this module held for its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// File name + SHA-256 of the bytes.
    pub id: PolicyId,
    /// Who may be a counterparty.
    pub counterparties: Vec<CounterpartyRule>,
    /// UTC-clock durations.
    pub times: Times,
    /// `k`.
    pub confidence: Confidence,
    /// `w`: the seller's reaction time.
    pub seller_reaction: Duration,
    /// Notary requirement.
    pub notary: NotaryRule,
    /// Retry budget and backoff.
    pub retry: RetryRule,
    /// Per-chain rules, by chain id.
    pub chains: BTreeMap<String, ChainPolicy>,
    timelines: Vec<Timeline>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Policy {
    /// Parses and validates policy text. `file_name` is used in errors as
    /// given, and (its base name) in the [`PolicyId`] with the SHA-256 of
    /// `text`'s bytes — the file's bytes when the file is UTF-8.
    ///
    /// # Errors
    /// The first [`PolicyError`] in this order: TOML syntax; unknown keys
    /// (each table, in source order); missing keys, wrong types and ranges
    /// (in schema order); identities; impossible combinations; then the
    /// timeline rules C1, C2, C3 per chain pair (payment chain, delivery
    /// chain), each pair in chain-id order, self-pairs included.
    pub fn parse(text: &str, file_name: &str) -> Result<Policy, PolicyError> {
        let src = Source::new(text, file_name);
        let doc = DeTable::parse(text).map_err(|e| {
            let at = reader::error_offset(e.span());
            src.error(
                at,
                &reader::field_near(text, at),
                PolicyErrorKind::Syntax {
                    message: e.message().to_string(),
                },
            )
        })?;
        let mut spans = Spans::new();
        let mut root = Table::root(&doc);
        root.only(
            &src,
            &[
                "schema",
                "counterparties",
                "times",
                "timeline",
                "notary",
                "retry",
                "chains",
            ],
        )?;

        let schema = root.uint(&src, &mut spans, "schema", 0, u64::MAX)?;
        if schema != SCHEMA_VERSION {
            return Err(error_at(
                &src,
                &spans,
                "schema",
                PolicyErrorKind::UnsupportedSchema { found: schema },
            ));
        }

        let counterparties = read_counterparties(&src, &mut spans, &mut root)?;

        let mut t = root.table(&src, "times")?;
        t.only(
            &src,
            &[
                "quote_expiry",
                "reservation_deadline",
                "token_lifetime",
                "clock_skew_tolerance",
            ],
        )?;
        let one = Duration::from_secs(1);
        let times = Times {
            quote_expiry: t.duration(&src, &mut spans, "quote_expiry", one, DAY)?,
            reservation_deadline: t.duration(
                &src,
                &mut spans,
                "reservation_deadline",
                one,
                30 * DAY,
            )?,
            token_lifetime: t.duration(&src, &mut spans, "token_lifetime", one, DAY)?,
            clock_skew_tolerance: t.duration(
                &src,
                &mut spans,
                "clock_skew_tolerance",
                Duration::ZERO,
                DAY / 24,
            )?,
        };
        t.finish(&src)?;

        let mut t = root.table(&src, "timeline")?;
        t.only(&src, &["confidence", "seller_reaction"])?;
        let confidence = Confidence(t.milli(&src, &mut spans, "confidence", 1_000, 10_000)?);
        let seller_reaction =
            t.duration(&src, &mut spans, "seller_reaction", Duration::ZERO, DAY)?;
        t.finish(&src)?;

        let mut t = root.table(&src, "notary")?;
        t.only(&src, &["required", "allowed"])?;
        let required = t.bool(&src, &mut spans, "required")?;
        let (_, allowed) = t.strings(&src, &mut spans, "allowed")?;
        t.finish(&src)?;
        let notary = NotaryRule {
            required,
            allowed: check_notaries(&src, allowed)?,
        };

        let mut t = root.table(&src, "retry")?;
        t.only(&src, &["budget", "backoff_initial", "backoff_max"])?;
        let retry = RetryRule {
            budget: t.u32(&src, &mut spans, "budget", 1, 1_000)?,
            backoff_initial: t.duration(&src, &mut spans, "backoff_initial", one, DAY)?,
            backoff_max: t.duration(&src, &mut spans, "backoff_max", one, DAY)?,
        };
        t.finish(&src)?;

        let chains = read_chains(&src, &mut spans, &mut root)?;
        root.finish(&src)?;

        let mut policy = Policy {
            id: PolicyId::of(file_name, text.as_bytes()),
            counterparties,
            times,
            confidence,
            seller_reaction,
            notary,
            retry,
            chains,
            timelines: Vec::new(),
        };
        policy.check_combinations(&src, &spans)?;
        policy.timelines = policy.check_timelines(&src, &spans)?;
        Ok(policy)
    }

    /// The computed timeline of every (payment chain, delivery chain) pair,
    /// in chain-id order, self-pairs included: what `escrowd policy check`
    /// prints for a valid file.
    pub fn timelines(&self) -> &[Timeline] {
        &self.timelines
    }

    /// The rules for `chain_id`, if the policy lists it.
    pub fn chain(&self, chain_id: &str) -> Option<&ChainPolicy> {
        self.chains.get(chain_id)
    }

    /// Whether `spiffe_id` (a gateway) may be a counterparty.
    pub fn allows_counterparty(&self, spiffe_id: &str) -> bool {
        self.counterparties.iter().any(|r| r.matches(spiffe_id))
    }

    /// The timeline for payment on `payment_chain` and delivery on
    /// `delivery_chain` with explicit refund delays (blocks from agreement):
    /// what the terms check recomputes. `None` if a chain is not in the policy.
    pub fn timeline_for(
        &self,
        payment_chain: &str,
        delivery_chain: &str,
        payment_refund_blocks: u32,
        delivery_refund_blocks: u32,
    ) -> Option<Timeline> {
        let p = self.chains.get(payment_chain)?;
        let d = self.chains.get(delivery_chain)?;
        Some(Timeline::compute(TimelineInputs {
            payment_chain: payment_chain.to_string(),
            delivery_chain: delivery_chain.to_string(),
            payment: p.times(),
            delivery: d.times(),
            payment_refund_blocks,
            delivery_refund_blocks,
            seller_reaction_secs: self.seller_reaction.as_secs(),
            confidence: self.confidence,
        }))
    }

    /// Combinations no saga could complete under.
    fn check_combinations(&self, src: &Source<'_>, spans: &Spans) -> Result<(), PolicyError> {
        let t = &self.times;
        let impossible = |field: &str, reason: String| {
            error_at(src, spans, field, PolicyErrorKind::Impossible { reason })
        };
        if t.quote_expiry >= t.reservation_deadline {
            return Err(impossible(
                "times.reservation_deadline",
                "the reservation deadline must be later than the quote expiry".into(),
            ));
        }
        if t.clock_skew_tolerance >= t.quote_expiry || t.clock_skew_tolerance >= t.token_lifetime {
            return Err(impossible(
                "times.clock_skew_tolerance",
                "the clock skew tolerance must be shorter than the quote expiry and the token lifetime".into(),
            ));
        }
        if self.notary.required && self.notary.allowed.is_empty() {
            return Err(impossible(
                "notary.allowed",
                "a notary is required but none is allowed".into(),
            ));
        }
        if self.retry.backoff_initial > self.retry.backoff_max {
            return Err(impossible(
                "retry.backoff_max",
                "backoff_max is shorter than backoff_initial".into(),
            ));
        }
        for (id, c) in &self.chains {
            let f = |name: &str| format!("chains.{id}.{name}");
            if c.min_amount > c.max_amount {
                return Err(impossible(
                    &f("max_amount_sats"),
                    "max_amount_sats is below min_amount_sats".into(),
                ));
            }
            if c.exposure_limit < c.max_amount {
                return Err(impossible(
                    &f("exposure_limit_sats"),
                    "the exposure limit is below max_amount_sats: no saga of the largest amount could start".into(),
                ));
            }
            let fee = fee_for_size(MAX_LEG_SPEND_BYTES, c.fee_rate_sats_per_kb);
            if c.min_amount <= fee {
                return Err(impossible(
                    &f("min_amount_sats"),
                    format!(
                        "min_amount_sats {} does not exceed the fee of a claim or refund ({} bytes at {} sat/kB = {} sat)",
                        c.min_amount.0, MAX_LEG_SPEND_BYTES, c.fee_rate_sats_per_kb, fee.0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// C1–C3 for every (P, D) pair; returns the timelines when all hold.
    fn check_timelines(
        &self,
        src: &Source<'_>,
        spans: &Spans,
    ) -> Result<Vec<Timeline>, PolicyError> {
        let mut out = Vec::new();
        for (p_id, p) in &self.chains {
            for (d_id, d) in &self.chains {
                let tl = self
                    .timeline_for(
                        p_id,
                        d_id,
                        p.payment_refund_blocks,
                        d.delivery_refund_blocks,
                    )
                    .ok_or_else(|| error_at(src, spans, "chains", PolicyErrorKind::MissingField))?;
                if let Some(&rule) = tl.violations().first() {
                    let field = match rule {
                        Rule::C1 => format!("chains.{d_id}.claim_margin_blocks"),
                        Rule::C2 => format!("chains.{d_id}.delivery_refund_blocks"),
                        Rule::C3Margin => format!("chains.{p_id}.claim_margin_blocks"),
                        Rule::C3Blocks | Rule::C3Poisson => {
                            format!("chains.{p_id}.payment_refund_blocks")
                        }
                    };
                    return Err(error_at(
                        src,
                        spans,
                        &field,
                        PolicyErrorKind::Unsafe {
                            rule,
                            timeline: Box::new(tl),
                        },
                    ));
                }
                out.push(tl);
            }
        }
        Ok(out)
    }
}

/// An error at the recorded position of `field` (the document start if none).
fn error_at(src: &Source<'_>, spans: &Spans, field: &str, kind: PolicyErrorKind) -> PolicyError {
    src.error(spans.get(field).copied().unwrap_or(0), field, kind)
}

fn read_counterparties(
    src: &Source<'_>,
    spans: &mut Spans,
    root: &mut Table<'_, '_>,
) -> Result<Vec<CounterpartyRule>, PolicyError> {
    let mut t = root.table(src, "counterparties")?;
    t.only(src, &["allowed"])?;
    let (at, allowed) = t.strings(src, spans, "allowed")?;
    t.finish(src)?;
    let field = "counterparties.allowed";
    if allowed.is_empty() {
        return Err(src.error(
            at,
            field,
            PolicyErrorKind::Impossible {
                reason: "no counterparty is allowed".into(),
            },
        ));
    }
    let mut rules = Vec::new();
    for (text, at) in allowed {
        let bad = |reason: String| {
            src.error(
                at,
                field,
                PolicyErrorKind::BadIdentity {
                    text: text.clone(),
                    reason,
                },
            )
        };
        let rule = if text.starts_with("spiffe://") {
            let parts = spiffe::parse_spiffe_id(&text).map_err(|e| bad(e.to_string()))?;
            if parts.role != Role::Gateway {
                return Err(bad("a counterparty must have the role gateway".into()));
            }
            CounterpartyRule::Id(text.clone())
        } else {
            spiffe::check_trust_domain(&text).map_err(|e: SpiffeError| bad(e.to_string()))?;
            CounterpartyRule::TrustDomain(text.clone())
        };
        if rules.contains(&rule) {
            return Err(src.error(at, field, PolicyErrorKind::Duplicate { text }));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn check_notaries(
    src: &Source<'_>,
    allowed: Vec<(String, usize)>,
) -> Result<Vec<String>, PolicyError> {
    let field = "notary.allowed";
    let mut out: Vec<String> = Vec::new();
    for (text, at) in allowed {
        let bad = |reason: String| {
            src.error(
                at,
                field,
                PolicyErrorKind::BadIdentity {
                    text: text.clone(),
                    reason,
                },
            )
        };
        let parts = spiffe::parse_spiffe_id(&text).map_err(|e| bad(e.to_string()))?;
        if parts.role != Role::Notary {
            return Err(bad("a notary must have the role notary".into()));
        }
        if out.contains(&text) {
            return Err(src.error(at, field, PolicyErrorKind::Duplicate { text }));
        }
        out.push(text);
    }
    Ok(out)
}

/// The keys of a `[chains.<id>]` table.
const CHAIN_KEYS: [&str; 11] = [
    "block_interval",
    "confirmations",
    "max_confirm_blocks",
    "claim_margin_blocks",
    "view_lag_blocks",
    "delivery_refund_blocks",
    "payment_refund_blocks",
    "min_amount_sats",
    "max_amount_sats",
    "exposure_limit_sats",
    "fee_rate_sats_per_kb",
];

/// Largest amount: 21 million coins.
const MAX_SATS: u64 = 2_100_000_000_000_000;

fn read_chains(
    src: &Source<'_>,
    spans: &mut Spans,
    root: &mut Table<'_, '_>,
) -> Result<BTreeMap<String, ChainPolicy>, PolicyError> {
    let mut t = root.table(src, "chains")?;
    let chain_tables = t.subtables(src)?;
    if chain_tables.is_empty() {
        return Err(src.error(
            t.at(),
            "chains",
            PolicyErrorKind::Impossible {
                reason: "no chain is listed".into(),
            },
        ));
    }
    let mut chains = BTreeMap::new();
    for (id, key_at, mut c) in chain_tables {
        let ok = !id.is_empty()
            && id.len() <= MAX_CHAIN_ID_LEN
            && id.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if !ok {
            return Err(src.error(
                key_at,
                &format!("chains.{id}"),
                PolicyErrorKind::BadChainId { id },
            ));
        }
        c.only(src, &CHAIN_KEYS)?;
        let policy = ChainPolicy {
            block_interval: c.duration(
                src,
                spans,
                "block_interval",
                Duration::from_secs(1),
                DAY,
            )?,
            confirmations: c.u32(src, spans, "confirmations", 1, 1_000)?,
            max_confirm_blocks: c.u32(src, spans, "max_confirm_blocks", 1, 10_000)?,
            claim_margin_blocks: c.u32(src, spans, "claim_margin_blocks", 1, 100_000)?,
            view_lag_blocks: c.u32(src, spans, "view_lag_blocks", 0, 1_000)?,
            delivery_refund_blocks: c.u32(src, spans, "delivery_refund_blocks", 1, 1_000_000)?,
            payment_refund_blocks: c.u32(src, spans, "payment_refund_blocks", 1, 1_000_000)?,
            min_amount: Satoshis(c.uint(src, spans, "min_amount_sats", 1, MAX_SATS)?),
            max_amount: Satoshis(c.uint(src, spans, "max_amount_sats", 1, MAX_SATS)?),
            exposure_limit: Satoshis(c.uint(src, spans, "exposure_limit_sats", 1, MAX_SATS)?),
            fee_rate_sats_per_kb: c.uint(src, spans, "fee_rate_sats_per_kb", 0, 100_000_000)?,
        };
        c.finish(src)?;
        chains.insert(id, policy);
    }
    t.finish(src)?;
    Ok(chains)
}
