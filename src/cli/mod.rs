//! The command line (DESIGN.md §7): argument definitions and dispatch.
//!
//! Exit codes, for every subcommand: 0 ok / valid; 1 invalid input (one line on
//! stderr naming the transaction, input index or byte offset); 2 usage error or
//! an input that could not be read at all (missing file, unreadable stdin).
//!
//! # Layout
//! - [`input`]: file / stdin / inline-hex input, binary or hex.
//! - [`tx`]: `escrowd tx decode`.

pub mod input;
pub mod tx;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// escrowd: cross-chain escrow saga coordinator.
#[derive(Debug, Parser)]
#[command(name = "escrowd", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode raw transactions.
    Tx {
        #[command(subcommand)]
        command: tx::TxCommand,
    },
}

/// A command's failure, carrying its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: the input was read but is invalid; the message names where.
    Invalid(String),
    /// Exit 2: the input could not be read or the arguments are unusable.
    Usage(String),
}

impl From<input::InputError> for Failure {
    fn from(e: input::InputError) -> Self {
        match e {
            // Malformed hex is a defect of the input, not of the invocation.
            input::InputError::BadHex { .. } => Failure::Invalid(e.to_string()),
            _ => Failure::Usage(e.to_string()),
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Tx { command } => tx::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(msg)) => {
            eprintln!("escrowd: invalid: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("escrowd: error: {msg}");
            ExitCode::from(2)
        }
    }
}
