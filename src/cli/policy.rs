//! `escrowd policy check FILE...` (DESIGN.md §7): validates policy files.
//!
//! Every file is checked, in order. A valid file prints
//! `FILE: valid (policy id NAME@sha256:HEX)` and the computed timeline of each
//! (payment chain, delivery chain) pair on stdout. An invalid one prints
//! `file:line:column: field: message` on stderr, followed by the computed
//! timeline when a timeline rule (C1–C3) fails. Exit 0 when all are valid,
//! 1 when any is invalid, 2 when any cannot be read.

use std::path::PathBuf;

use clap::Subcommand;

use super::Failure;

/// `escrowd policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policy files and print their computed timelines.
    Check {
        /// Policy files (TOML); `-` reads one from standard input (shown as `<stdin>`).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

/// Runs a `policy` subcommand.
pub fn run(cmd: PolicyCommand) -> Result<(), Failure> {
    match cmd {
        PolicyCommand::Check { files } => check(&files),
    }
}

fn read_stdin() -> Result<Vec<u8>, crate::policy::PolicyLoadError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).map_err(|source| {
        crate::policy::PolicyLoadError::Unreadable {
            path: "<stdin>".into(),
            source,
        }
    })?;
    Ok(bytes)
}

fn check(files: &[PathBuf]) -> Result<(), Failure> {
    let (mut invalid, mut unreadable) = (0usize, 0usize);
    for path in files {
        let loaded = if path.as_os_str() == "-" {
            read_stdin().and_then(|bytes| crate::policy::parse_bytes(&bytes, "<stdin>"))
        } else {
            crate::policy::load(path)
        };
        let shown = if path.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        match loaded {
            Ok(policy) => {
                let mut out = format!("{shown}: valid (policy id {})\n", policy.id);
                for timeline in policy.timelines() {
                    out.push_str(&format!("{timeline}\n"));
                }
                super::emit(&out);
            }
            Err(e) => {
                if e.is_unreadable() {
                    unreadable += 1;
                } else {
                    invalid += 1;
                }
                eprintln!("{e}");
            }
        }
    }
    let total = files.len();
    if unreadable > 0 {
        Err(Failure::Usage(format!(
            "{unreadable} of {total} policy files could not be read"
        )))
    } else if invalid > 0 {
        Err(Failure::Invalid(format!(
            "{invalid} of {total} policy files invalid"
        )))
    } else {
        Ok(())
    }
}
