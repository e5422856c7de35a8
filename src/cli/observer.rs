//! `escrowd observer run|timeline|list --config observer.toml`: follow the
//! gateways' event feeds into the audit store, and read it back
//! (`src/observer/`; docs/observer.md).
//!
//! - `run` follows every configured gateway until SIGTERM or SIGINT,
//!   printing one line per event stored on stderr.
//! - `timeline SAGA_ID [--json]` prints a saga's events from every gateway,
//!   in the order the observer received them: time, gateway, step, txids.
//! - `list [--json]` prints every saga observed: events per gateway and the
//!   last step; then each gateway's cursor.
//!
//! The reading commands open the store only if it exists, and cannot while
//! `run` holds it (sled locks its directory): stop the observer first, or
//! use the library's accessors in the process that runs it.
//!
//! Exit codes: 0 done (`run`: after a graceful stop); 1 invalid input (a
//! configuration naming the file and field, an identity or store the
//! observer cannot use, a malformed SAGA_ID, a saga never observed); 2 a
//! file or store that cannot be read at all (missing, or in use).

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{emitln, Failure};
use crate::observer::config::{ObserverConfig, ObserverConfigError};
use crate::observer::store::{AuditStore, AuditStoreError};
use crate::observer::{event_txids, Observed, ObserverOptions, RunningObserver};

/// The subcommands of `escrowd observer`.
#[derive(Debug, Subcommand)]
pub enum ObserverCommand {
    /// Follow every configured gateway's event feed into the audit store
    /// until SIGTERM or SIGINT; one line per event stored on stderr.
    Run(ConfigArg),
    /// Print a saga's timeline from the audit store: time, gateway, step,
    /// txids.
    Timeline {
        #[command(flatten)]
        config: ConfigArg,
        /// The saga id (UUIDv7 text).
        saga_id: String,
        /// One JSON object on stdout (docs/observer.md).
        #[arg(long)]
        json: bool,
    },
    /// List the sagas in the audit store: events per gateway, last step.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// One JSON object on stdout (docs/observer.md).
        #[arg(long)]
        json: bool,
    },
}

/// `--config FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The observer configuration (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs `escrowd observer …`.
pub fn run(command: ObserverCommand) -> Result<(), Failure> {
    match command {
        ObserverCommand::Run(c) => run_observer(&load(&c)?),
        ObserverCommand::Timeline {
            config,
            saga_id,
            json,
        } => timeline(&load(&config)?, &saga_id, json),
        ObserverCommand::List { config, json } => list(&load(&config)?, json),
    }
}

fn load(arg: &ConfigArg) -> Result<ObserverConfig, Failure> {
    ObserverConfig::load(&arg.config).map_err(|e| match e {
        ObserverConfigError::Read { .. } => Failure::Usage(e.to_string()),
        other => Failure::Invalid(other.to_string()),
    })
}

fn run_observer(config: &ObserverConfig) -> Result<(), Failure> {
    super::init_logging("info");
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let running = RunningObserver::start(config, ObserverOptions::default())
            .await
            .map_err(|e| Failure::Invalid(format!("observer did not start: {e}")))?;
        eprintln!(
            "escrowd observer {} following {} gateway(s) into {}",
            config.spiffe_id,
            config.gateways.len(),
            config.store.display()
        );
        let mut events = running.subscribe();
        let signal = crate::gateway::serve::wait_for_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                received = events.recv() => match received {
                    Ok(o) => eprintln!("{}", line(&o)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        eprintln!("({n} events stored but not printed: the output fell behind)");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        eprintln!("escrowd observer: stopping");
        running.stop().await;
        Ok(())
    })
}

/// `2026-01-01T12:00:00.123Z spiffe://… #7 saga … seq 6 claim_broadcast: claim … broadcast`.
fn line(o: &Observed) -> String {
    format!(
        "{} {} #{} saga {} seq {} {}: {}",
        at(o.received_at),
        o.gateway,
        o.cursor,
        o.saga_id,
        o.seq,
        o.name,
        o.text
    )
}

/// UNIX milliseconds as RFC 3339 UTC with milliseconds.
fn at(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn open(config: &ObserverConfig) -> Result<AuditStore, Failure> {
    AuditStore::open_existing(&config.store).map_err(|e| match e {
        AuditStoreError::Missing { .. }
        | AuditStoreError::Locked { .. }
        | AuditStoreError::Directory { .. } => Failure::Usage(e.to_string()),
        AuditStoreError::NotAStore { .. }
        | AuditStoreError::Sled { .. }
        | AuditStoreError::NewerSchema { .. }
        | AuditStoreError::Corrupt { .. }
        | AuditStoreError::NameTooLong(_) => Failure::Invalid(e.to_string()),
    })
}

fn read_fault(e: AuditStoreError) -> Failure {
    Failure::Invalid(e.to_string())
}

fn timeline(config: &ObserverConfig, saga_id: &str, json: bool) -> Result<(), Failure> {
    let saga_id = crate::rpc::convert::saga_id("SAGA_ID", saga_id)
        .map_err(|e| Failure::Invalid(e.to_string()))?;
    let store = open(config)?;
    let steps = store.timeline(&saga_id).map_err(read_fault)?;
    if steps.is_empty() {
        return Err(Failure::Invalid(format!(
            "saga {saga_id} was not observed (audit store {})",
            config.store.display()
        )));
    }
    if json {
        emitln(timeline_json(&saga_id.to_string(), &steps));
        return Ok(());
    }
    let gateways: std::collections::BTreeSet<&str> =
        steps.iter().map(|o| o.gateway.as_str()).collect();
    emitln(format!(
        "saga {saga_id}: {} events from {} gateway(s)",
        steps.len(),
        gateways.len()
    ));
    let width = gateways.iter().map(|g| g.len()).max().unwrap_or(0);
    for o in &steps {
        let txids: Vec<String> = event_txids(&o.event)
            .iter()
            .map(|t| t.to_string())
            .collect();
        emitln(
            format!(
                "{}  {:<width$}  {:<28}  {}",
                at(o.received_at),
                o.gateway,
                o.name,
                txids.join(" ")
            )
            .trim_end(),
        );
    }
    Ok(())
}

/// `{"saga_id", "timeline": [{"at", "received_at_ms", "sent_at", "gateway",
/// "cursor", "seq", "step", "text", "txids"}]}` (docs/observer.md).
pub fn timeline_json(saga_id: &str, steps: &[Observed]) -> Value {
    json!({
        "saga_id": saga_id,
        "timeline": steps.iter().map(|o| json!({
            "at": at(o.received_at),
            "received_at_ms": o.received_at,
            "sent_at": o.sent_at,
            "gateway": o.gateway,
            "cursor": o.cursor,
            "seq": o.seq,
            "step": o.name,
            "text": o.text,
            "txids": event_txids(&o.event).iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// One saga in `list`.
struct Summary {
    saga_id: String,
    /// Events per gateway.
    events: std::collections::BTreeMap<String, u64>,
    /// The last event received.
    last: Option<Observed>,
}

fn list(config: &ObserverConfig, json: bool) -> Result<(), Failure> {
    let store = open(config)?;
    let cursors = store.cursors().map_err(read_fault)?;
    let mut sagas = Vec::new();
    for saga_id in store.sagas().map_err(read_fault)? {
        let mut steps = store.timeline(&saga_id).map_err(read_fault)?;
        let mut events = std::collections::BTreeMap::<String, u64>::new();
        for o in &steps {
            *events.entry(o.gateway.clone()).or_default() += 1;
        }
        sagas.push(Summary {
            saga_id: saga_id.to_string(),
            events,
            last: steps.pop(),
        });
    }
    if json {
        let sagas: Vec<Value> = sagas
            .iter()
            .map(|s| {
                json!({
                    "saga_id": s.saga_id,
                    "events": s.events,
                    "last": s.last.as_ref().map(|o| json!({
                        "step": o.name, "gateway": o.gateway, "at": at(o.received_at),
                    })),
                })
            })
            .collect();
        emitln(json!({"sagas": sagas, "cursors": cursors}));
        return Ok(());
    }
    if sagas.is_empty() {
        emitln("no saga observed yet");
    }
    for s in &sagas {
        let counts: Vec<String> = s.events.iter().map(|(g, n)| format!("{g}: {n}")).collect();
        let last = s.last.as_ref().map_or_else(
            || "-".to_string(),
            |o| format!("{} ({}, {})", o.name, o.gateway, at(o.received_at)),
        );
        emitln(format!(
            "{}  {}  last: {last}",
            s.saga_id,
            counts.join(", ")
        ));
    }
    for (gateway, cursor) in &cursors {
        emitln(format!("cursor {gateway}: {cursor}"));
    }
    Ok(())
}
