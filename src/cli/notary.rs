//! `escrowd notary --config notary.toml`: run a notary until SIGTERM or
//! SIGINT (`src/notary/`; the config file in docs/operators.md).
//! Exit codes: 0 after a graceful stop; 1 when the configuration is invalid
//! (the message names the file and the field) or the notary cannot start
//! (an unusable identity, a port in use); 2 when the file cannot be read.

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::notary::config::{NotaryConfigError, NotaryFileConfig};

/// Arguments of `escrowd notary`.
#[derive(Debug, Args)]
pub struct NotaryArgs {
    /// The notary configuration (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs `escrowd notary`.
pub fn run(args: NotaryArgs) -> Result<(), Failure> {
    super::init_logging("info");
    let config = NotaryFileConfig::load(&args.config).map_err(|e| match e {
        NotaryConfigError::Read { .. } => Failure::Usage(e.to_string()),
        other => Failure::Invalid(other.to_string()),
    })?;
    let runtime = super::runtime()?;
    runtime
        .block_on(crate::notary::serve::serve_until_signalled(&config))
        .map_err(|e| Failure::Invalid(format!("notary did not start: {e}")))
}
