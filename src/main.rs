//! The `escrowd` binary: parses the command line and dispatches (DESIGN.md §7).
//! Exit codes: 0 ok / valid, 1 invalid input, 2 usage or I/O error.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = escrowd::cli::Cli::parse();
    escrowd::cli::run(cli)
}
