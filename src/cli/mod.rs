//! The command line (DESIGN.md §7): argument definitions and dispatch.
//!
//! Exit codes, for every subcommand: 0 ok / valid; 1 invalid input (one line on
//! stderr naming the transaction, input index or byte offset); 2 usage error or
//! an input that could not be read at all (missing file, unreadable stdin).
//!
//! # Layout
//! - [`input`]: file / stdin / inline-hex input, binary or hex.
//! - [`beef`]: `escrowd beef inspect|verify|to-ef`.
//! - [`certs`]: `escrowd certs init|issue|revoke`.
//! - [`chainsim`]: `escrowd chainsim` (the regtest ARC / headers server).
//! - [`demo`]: `escrowd demo` (the whole system in process).
//! - [`tx`]: `escrowd tx decode`.
//! - [`policy`]: `escrowd policy check`.
//! - [`serve`]: `escrowd serve` (a gateway); [`notary`]: `escrowd notary`;
//!   [`observer`]: `escrowd observer run|timeline|list`.
//! - [`client`]: the gateway client of [`swap`] (`escrowd swap …`) and
//!   [`wallet`] (`escrowd wallet …`).

pub mod beef;
pub mod certs;
pub mod chainsim;
pub mod client;
pub mod demo;
pub mod input;
pub mod keys;
pub mod notary;
pub mod observer;
pub mod policy;
pub mod serve;
pub mod swap;
pub mod tx;
pub mod wallet;

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
    /// Run the whole system on loopback: chainsims, two gateways and a
    /// notary over gRPC with mutual TLS, and an observer; N swaps through a
    /// scenario; timelines, balances and the conservation check.
    Demo(demo::DemoArgs),
    /// Inspect, verify and convert BEEF (BRC-62 V1, BRC-96 V2, BRC-95 Atomic).
    Beef {
        #[command(subcommand)]
        command: beef::BeefCommand,
    },
    /// Run a regtest ledger that speaks the ARC and Block Headers Service APIs.
    Chainsim(chainsim::ChainsimArgs),
    /// Development certificates: CAs, leaves, CRLs and the federation file.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Decode raw transactions.
    Tx {
        #[command(subcommand)]
        command: tx::TxCommand,
    },
    /// Validate policy files (timeline rules C1-C3, limits, identities).
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Run a gateway: its gRPC services over mutual TLS and its sagas.
    Serve(serve::ServeArgs),
    /// Run a notary: NotaryService over mutual TLS.
    Notary(notary::NotaryArgs),
    /// Key files: make one, or show the public key of one.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Run an observer (follow the gateways' event feeds into an audit
    /// store) or read its audit trail.
    Observer {
        #[command(subcommand)]
        command: observer::ObserverCommand,
    },
    /// Start, inspect, cancel and resolve swaps at a gateway (as its operator).
    Swap(swap::SwapArgs),
    /// A gateway's wallet: balances, funding imports, withdrawals.
    Wallet(wallet::WalletArgs),
}

/// A command's failure, carrying its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: the input was read but is invalid; the message names where.
    Invalid(String),
    /// Exit 2: the input could not be read or the arguments are unusable.
    Usage(String),
    /// A gRPC call failed: printed `escrowd: <code>: <message>`; exit 1 when
    /// the server refused, 2 when it could not be reached
    /// ([`client::status_failure`]).
    Status {
        /// The status code as the gRPC spec spells it (`NOT_FOUND`).
        code: &'static str,
        /// The server's message (and a transport fault's cause).
        message: String,
        /// The exit code, 1 or 2.
        exit: u8,
    },
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

/// Writes `text` to stdout. A closed pipe (`escrowd … | head`) ends output
/// quietly instead of panicking as `print!` would.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// [`emit`] with a trailing newline.
pub fn emitln(text: impl std::fmt::Display) {
    emit(&format!("{text}\n"));
}

/// Logs to stderr, filtered by `RUST_LOG` (else `default`), with colours
/// only when stderr is a terminal (a log file or journald gets plain text).
pub(crate) fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.to_string().into()),
        )
        .try_init();
}

/// The multi-threaded tokio runtime of a long-running command.
///
/// # Errors
/// [`Failure::Usage`] (exit 2) when the runtime cannot be built.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Beef { command } => beef::run(command),
        Command::Chainsim(args) => chainsim::run(args),
        Command::Certs { command } => certs::run(command),
        Command::Tx { command } => tx::run(command),
        Command::Policy { command } => policy::run(command),
        Command::Serve(args) => serve::run(args),
        Command::Notary(args) => notary::run(args),
        Command::Keys { command } => keys::run(command),
        Command::Observer { command } => observer::run(command),
        Command::Swap(args) => swap::run(args),
        Command::Wallet(args) => wallet::run(args),
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
        Err(Failure::Status {
            code,
            message,
            exit,
        }) => {
            eprintln!("escrowd: {code}: {message}");
            ExitCode::from(exit)
        }
    }
}
