//! `escrowd serve --config gateway.toml`: run one gateway until SIGTERM or
//! SIGINT (`src/gateway/serve.rs`; the config file in docs/operators.md).
//! Exit codes: 0 after a graceful stop; 1 when the configuration is invalid
//! (the message names the file and the field) or the gateway cannot start
//! (a foreign or newer store, an unusable identity, a port in use).

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::config::{ConfigError, GatewayConfig};

/// Arguments of `escrowd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The gateway configuration (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs `escrowd serve`.
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    super::init_logging("info");
    let config = GatewayConfig::load(&args.config).map_err(|e| match e {
        ConfigError::Read { .. } => Failure::Usage(e.to_string()),
        other => Failure::Invalid(other.to_string()),
    })?;
    let runtime = super::runtime()?;
    runtime
        .block_on(crate::gateway::serve::serve_until_signalled(&config))
        .map_err(|e| Failure::Invalid(format!("gateway did not start: {e}")))
}
