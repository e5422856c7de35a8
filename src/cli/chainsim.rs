//! `escrowd chainsim --listen ADDR [--data DIR] [--block-interval DUR]
//! [--chain-id NAME] [--fee-rate SAT_PER_KB]` (DESIGN.md §7; API in
//! docs/chainsim.md).
//!
//! Prints one JSON line on stdout once listening —
//! `{"url": "http://127.0.0.1:PORT", "chain_id": "regtest", "tip": 101}` — so a
//! script can start it on port 0 and read the address; logs go to stderr
//! (`RUST_LOG` filters, default `info`). Runs until SIGINT or SIGTERM, then
//! shuts down cleanly (store flushed). Exit 2 if it cannot start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use serde_json::json;

use super::Failure;
use crate::chainsim::{Chainsim, ChainsimConfig};

/// `escrowd chainsim …`
#[derive(Debug, Args)]
pub struct ChainsimArgs {
    /// Address to listen on, e.g. 127.0.0.1:3000 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Keep the ledger in sled in this directory (default: in memory).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Also mine a block every DUR of real time, e.g. 10s, 500ms (default: on demand only).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    block_interval: Option<Duration>,
    /// Chain name (letters, digits, '.', '_', '-'); tags coinbases and keys.
    #[arg(long, value_name = "NAME", default_value = "regtest")]
    chain_id: String,
    /// Minimum fee rate in satoshis per 1,000 bytes.
    #[arg(long, value_name = "SAT_PER_KB", default_value_t = 1)]
    fee_rate: u64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 10s or 500ms: {e}"))
}

/// Runs the chainsim until a termination signal.
pub fn run(args: ChainsimArgs) -> Result<(), Failure> {
    super::init_logging("info");
    let runtime = super::runtime()?;
    // The wall clock only seeds a new ledger's clock; after that chainsim's
    // clock moves by /sim/clock alone.
    let start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let config = ChainsimConfig {
        listen: args.listen,
        chain_id: args.chain_id,
        data_dir: args.data,
        block_interval: args.block_interval,
        fee_rate: args.fee_rate,
        start_unix,
        ..ChainsimConfig::default()
    };
    let chain_id = config.chain_id.clone();
    runtime.block_on(async move {
        // Handlers first: a signal that arrives right after the line below
        // must stop chainsim cleanly, not kill it.
        let termination = Termination::install()
            .map_err(|e| Failure::Usage(format!("cannot install signal handlers: {e}")))?;
        let sim = Chainsim::start(config)
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?;
        super::emitln(json!({ "url": sim.url(), "chain_id": chain_id, "tip": sim.tip() }));
        termination.wait().await;
        sim.shutdown()
            .await
            .map_err(|e| Failure::Usage(e.to_string()))
    })
}

/// SIGINT (Ctrl-C) and, on Unix, SIGTERM, registered when installed.
struct Termination {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Termination {
    fn install() -> std::io::Result<Termination> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Termination {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Termination {})
        }
    }

    /// Resolves at the first signal.
    async fn wait(self) {
        #[cfg(unix)]
        {
            let Termination {
                mut interrupt,
                mut terminate,
            } = self;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
