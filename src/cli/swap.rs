//! `escrowd swap start|show|list|cancel|resolve` (DESIGN.md §7): a
//! gateway's `AdminService` as its operator, over mutual TLS
//! ([`super::client`] for the connection flags and exit codes; the
//! `--json` shapes are in docs/cli-json.md).
//!
//! # Layout
//! - [`SwapArgs`], [`SwapCommand`], [`run`].
//! - [`parse_leg`] (`CHAIN:SATS`), [`state_name`], [`parse_state`].
//! - Renderers: [`status_json`], [`terms_json`].

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::client::{block_on, status_failure, GatewayArgs};
use super::{emitln, Failure};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::admin_service_client::AdminServiceClient;

/// `escrowd swap …`
#[derive(Debug, Args)]
pub struct SwapArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(subcommand)]
    command: SwapCommand,
}

/// The swap subcommands.
#[derive(Debug, Subcommand)]
pub enum SwapCommand {
    /// Start a swap as the buyer: we pay on one chain, the counterparty
    /// delivers on another.
    Start {
        /// The seller's gateway, spiffe://DOMAIN/gateway/NAME.
        #[arg(long, value_name = "SPIFFE_ID")]
        counterparty: String,
        /// What we pay: CHAIN:SATS (chain P).
        #[arg(long, value_name = "CHAIN:SATS", value_parser = parse_leg)]
        pay: (String, u64),
        /// What the seller delivers: CHAIN:SATS (chain D).
        #[arg(long, value_name = "CHAIN:SATS", value_parser = parse_leg)]
        deliver: (String, u64),
        /// The notary that must approve (SPIFFE ID); default: none, or the
        /// first the gateway's policy allows when it requires one.
        #[arg(long, value_name = "SPIFFE_ID")]
        notary: Option<String>,
        /// The request's key: the same key always answers the same saga, so
        /// a start can be retried safely. Default: a fresh random key,
        /// printed (keep it to retry).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// One saga: state, terms, and with --events its log.
    Show {
        /// The saga id (UUIDv7).
        saga_id: String,
        /// Also print the saga's events.
        #[arg(long)]
        events: bool,
    },
    /// Sagas in creation order, one page.
    List {
        /// Only sagas in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// At most this many (default 50, at most 500).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Start after this saga (the `next` of the previous page).
        #[arg(long, value_name = "SAGA_ID")]
        after: Option<String>,
    },
    /// Ask for a cooperative cancel (DESIGN.md §3.3 step 5).
    Cancel {
        /// The saga id.
        saga_id: String,
        /// Why (1 to 1024 bytes).
        #[arg(long, default_value = "cancelled by the operator")]
        reason: String,
    },
    /// Resolve a saga that needs attention.
    Resolve {
        /// The saga id.
        saga_id: String,
        /// retry: reset the retry budget; refund: stop and refund our leg
        /// when its height allows; abandon: give up, take over by hand.
        #[arg(value_enum)]
        resolution: Resolution,
        /// Why (1 to 1024 bytes; recorded with `abandon`, required for it).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// The states `swap list --state` accepts (docs/cli-json.md spells them so).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    /// Not yet proposed.
    New,
    /// Proposed, waiting for the seller.
    Proposed,
    /// Reservations under way.
    Reserving,
    /// Tokens granted; claims under way.
    Executing,
    /// Refunds or cancel under way.
    Compensating,
    /// Both claims confirmed.
    Completed,
    /// Refunded.
    Refunded,
    /// Cancelled cooperatively.
    Cancelled,
    /// Refused (by the seller or the notary).
    Rejected,
    /// Abandoned by an operator.
    Abandoned,
}

impl StateArg {
    fn to_pb(self) -> pb::SagaState {
        match self {
            StateArg::New => pb::SagaState::New,
            StateArg::Proposed => pb::SagaState::Proposed,
            StateArg::Reserving => pb::SagaState::Reserving,
            StateArg::Executing => pb::SagaState::Executing,
            StateArg::Compensating => pb::SagaState::Compensating,
            StateArg::Completed => pb::SagaState::Completed,
            StateArg::Refunded => pb::SagaState::Refunded,
            StateArg::Cancelled => pb::SagaState::Cancelled,
            StateArg::Rejected => pb::SagaState::Rejected,
            StateArg::Abandoned => pb::SagaState::Abandoned,
        }
    }
}

/// `swap resolve`'s choice.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resolution {
    /// Reset the retry budget and try again.
    Retry,
    /// Stop progressing; refund our leg once its refund height allows.
    Refund,
    /// Give up; the operator takes over by hand.
    Abandon,
}

/// Parses `CHAIN:SATS` (satoshis, decimal, above zero).
///
/// # Errors
/// A message naming what is wrong (clap prints it as a usage error).
pub fn parse_leg(text: &str) -> Result<(String, u64), String> {
    let (chain, sats) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: expected CHAIN:SATS"))?;
    if chain.is_empty() {
        return Err(format!("{text:?}: the chain id is empty"));
    }
    let sats: u64 = sats
        .parse()
        .map_err(|e| format!("{text:?}: satoshis {sats:?}: {e}"))?;
    if sats == 0 {
        return Err(format!("{text:?}: the amount must be above zero"));
    }
    Ok((chain.to_owned(), sats))
}

/// A state's name in output: `completed`, `reserving`, … (`unspecified`
/// for a value this build does not know).
pub fn state_name(state: i32) -> &'static str {
    match pb::SagaState::try_from(state) {
        Ok(pb::SagaState::New) => "new",
        Ok(pb::SagaState::Proposed) => "proposed",
        Ok(pb::SagaState::Reserving) => "reserving",
        Ok(pb::SagaState::Executing) => "executing",
        Ok(pb::SagaState::Compensating) => "compensating",
        Ok(pb::SagaState::Completed) => "completed",
        Ok(pb::SagaState::Refunded) => "refunded",
        Ok(pb::SagaState::Cancelled) => "cancelled",
        Ok(pb::SagaState::Rejected) => "rejected",
        Ok(pb::SagaState::Abandoned) => "abandoned",
        Ok(pb::SagaState::Unspecified) | Err(_) => "unspecified",
    }
}

/// Parses a state name as [`state_name`] prints it.
pub fn parse_state(name: &str) -> Option<pb::SagaState> {
    StateArg::from_str(name, true).ok().map(StateArg::to_pb)
}

fn role_name(role: i32) -> &'static str {
    match pb::SagaRole::try_from(role) {
        Ok(pb::SagaRole::Buyer) => "buyer",
        Ok(pb::SagaRole::Seller) => "seller",
        Ok(pb::SagaRole::Unspecified) | Err(_) => "unspecified",
    }
}

/// `{"saga_id", "state", "role", "terminal", "attention"}` (`attention`
/// null when nothing is wrong).
pub fn status_json(s: &pb::SagaStatus) -> Value {
    json!({
        "saga_id": s.saga_id,
        "state": state_name(s.state),
        "role": role_name(s.role),
        "terminal": s.terminal,
        "attention": if s.attention.is_empty() { Value::Null } else { json!(s.attention) },
    })
}

fn leg_json(l: &pb::LegView) -> Value {
    json!({
        "chain": l.chain_id,
        "sats": l.amount_sats,
        "refund_height": l.refund_height,
        "confirmations": l.confirmations,
    })
}

/// The readable terms: `{"buyer", "seller", "notary", "payment": leg,
/// "delivery": leg, "hash_lock", "quote_expiry", "reservation_deadline",
/// "policy_id", "terms_hash"}` with leg `{"chain", "sats", "refund_height",
/// "confirmations"}` (`notary` null when none).
pub fn terms_json(t: &pb::TermsView) -> Value {
    json!({
        "buyer": t.buyer,
        "seller": t.seller,
        "notary": if t.notary.is_empty() { Value::Null } else { json!(t.notary) },
        "payment": t.payment.as_ref().map(leg_json),
        "delivery": t.delivery.as_ref().map(leg_json),
        "hash_lock": t.hash_lock,
        "quote_expiry": t.quote_expiry,
        "reservation_deadline": t.reservation_deadline,
        "policy_id": t.policy_id,
        "terms_hash": t.terms_hash,
    })
}

fn status_line(s: &pb::SagaStatus) -> String {
    let mut line = format!(
        "{}  {}  {}",
        s.saga_id,
        state_name(s.state),
        role_name(s.role)
    );
    if !s.attention.is_empty() {
        line.push_str(&format!("  attention: {}", s.attention));
    }
    line
}

fn missing_status() -> Failure {
    Failure::Invalid("the gateway answered without a saga status".into())
}

fn fresh_key() -> Result<String, Failure> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Failure::Usage("the system random source failed".into()))?;
    Ok(format!("cli-{}", hex::encode(bytes)))
}

/// Runs `escrowd swap …`.
pub fn run(args: SwapArgs) -> Result<(), Failure> {
    let json_out = args.gateway.json;
    // Argument faults are found before anything is dialled.
    let key = match &args.command {
        SwapCommand::Start {
            idempotency_key: Some(k),
            ..
        } => Some(k.clone()),
        SwapCommand::Start { .. } => Some(fresh_key()?),
        _ => None,
    };
    if let SwapCommand::Resolve {
        resolution: Resolution::Abandon,
        reason: None,
        ..
    } = &args.command
    {
        return Err(Failure::Usage(
            "resolve … abandon needs --reason TEXT".into(),
        ));
    }
    block_on(async move {
        // The channel's background task needs the runtime: made inside it.
        let mut admin = AdminServiceClient::new(args.gateway.connect()?);
        match args.command {
            SwapCommand::Start {
                counterparty,
                pay,
                deliver,
                notary,
                ..
            } => {
                // Invariant: `key` is Some for Start (set above).
                let key = key.unwrap_or_default();
                let r = admin
                    .start_swap(pb::StartSwapRequest {
                        idempotency_key: key.clone(),
                        counterparty,
                        payment_chain: pay.0,
                        payment_sats: pay.1,
                        delivery_chain: deliver.0,
                        delivery_sats: deliver.1,
                        notary: notary.unwrap_or_default(),
                    })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                let status = r.status.ok_or_else(missing_status)?;
                if json_out {
                    let mut v = status_json(&status);
                    v["created"] = json!(r.created);
                    v["idempotency_key"] = json!(key);
                    emitln(v);
                } else {
                    let verb = if r.created { "started" } else { "existing" };
                    emitln(format!("{verb} {}", status_line(&status)));
                    emitln(format!("idempotency key: {key}"));
                }
            }
            SwapCommand::Show { saga_id, events } => {
                let r = admin
                    .get_saga(pb::GetSagaRequest {
                        saga_id,
                        include_events: events,
                    })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                let status = r.status.ok_or_else(missing_status)?;
                if json_out {
                    let mut v = status_json(&status);
                    v["head"] = json!(r.head);
                    v["terms"] = r.terms_view.as_ref().map(terms_json).unwrap_or(Value::Null);
                    if events {
                        v["events"] = r
                            .events
                            .iter()
                            .map(|e| json!({"seq": e.seq, "name": e.name, "text": e.text}))
                            .collect();
                    }
                    emitln(v);
                } else {
                    emitln(status_line(&status));
                    if let Some(t) = &r.terms_view {
                        emitln(format!("  buyer    {}", t.buyer));
                        emitln(format!("  seller   {}", t.seller));
                        if !t.notary.is_empty() {
                            emitln(format!("  notary   {}", t.notary));
                        }
                        for (name, leg) in [("payment", &t.payment), ("delivery", &t.delivery)] {
                            if let Some(l) = leg {
                                emitln(format!(
                                    "  {name:<8} {} sats on {} (refund at height {}, {} confirmations)",
                                    l.amount_sats, l.chain_id, l.refund_height, l.confirmations
                                ));
                            }
                        }
                        emitln(format!("  terms    {}", t.terms_hash));
                    }
                    emitln(format!("  events   {}", r.head));
                    for e in &r.events {
                        emitln(format!("  {:>4} {:<24} {}", e.seq, e.name, e.text));
                    }
                }
            }
            SwapCommand::List {
                state,
                limit,
                after,
            } => {
                let r = admin
                    .list_sagas(pb::ListSagasRequest {
                        page_size: limit.unwrap_or(0),
                        page_token: after.unwrap_or_default(),
                        state: state.map_or(pb::SagaState::Unspecified, StateArg::to_pb) as i32,
                        terminal: pb::TerminalFilter::Any as i32,
                    })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                if json_out {
                    emitln(json!({
                        "sagas": r.sagas.iter().map(status_json).collect::<Vec<_>>(),
                        "next": if r.next_page_token.is_empty() { Value::Null } else { json!(r.next_page_token) },
                    }));
                } else {
                    for s in &r.sagas {
                        emitln(status_line(s));
                    }
                    if !r.next_page_token.is_empty() {
                        emitln(format!("more: --after {}", r.next_page_token));
                    }
                }
            }
            SwapCommand::Cancel { saga_id, reason } => {
                let s = admin
                    .cancel_saga(pb::CancelSagaRequest { saga_id, reason })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                print_status(&s, json_out);
            }
            SwapCommand::Resolve {
                saga_id,
                resolution,
                reason,
            } => {
                use pb::resolve_saga_request::{self as rs, Resolution as R};
                let resolution = match resolution {
                    Resolution::Retry => R::Retry(rs::Retry {}),
                    Resolution::Refund => R::Refund(rs::Refund {}),
                    Resolution::Abandon => R::Abandon(rs::Abandon {
                        reason: reason.unwrap_or_default(),
                    }),
                };
                let s = admin
                    .resolve_saga(pb::ResolveSagaRequest {
                        saga_id,
                        resolution: Some(resolution),
                    })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                print_status(&s, json_out);
            }
        }
        Ok(())
    })
}

fn print_status(s: &pb::SagaStatus, json_out: bool) {
    if json_out {
        emitln(status_json(s));
    } else {
        emitln(status_line(s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legs_parse_chain_and_satoshis() {
        assert_eq!(parse_leg("chain-p:50000"), Ok(("chain-p".into(), 50_000)));
        assert!(parse_leg("chain-p").unwrap_err().contains("CHAIN:SATS"));
        assert!(parse_leg("chain-p:0").unwrap_err().contains("above zero"));
        assert!(parse_leg(":5").unwrap_err().contains("empty"));
        assert!(parse_leg("p:5x").unwrap_err().contains("satoshis"));
    }

    #[test]
    fn state_names_round_trip() {
        for s in 1..=10 {
            let name = state_name(s);
            assert_eq!(parse_state(name).map(|p| p as i32), Some(s), "{name}");
        }
        assert_eq!(state_name(99), "unspecified");
    }
}
