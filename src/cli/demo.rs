//! `escrowd demo [--swaps N] [--scenario NAME] [--json] [--timeout DUR]`
//! (DESIGN.md §7): the whole system on loopback, gateways and notary over
//! gRPC with mutual TLS (see [`crate::demo`]).
//!
//! The report goes to stdout — for people, or with `--json` one JSON object
//! (`docs/cli-json.md`); progress goes to stderr, with a bar when N > 1.
//! Exit 0 when every swap ended as the scenario expects and conservation
//! holds; 1 otherwise (the report says which); 2 when the demo could not be
//! set up.
//!
//! Test hook: the hidden `--expect STATE` replaces the state the scenario
//! expects of both parties (`completed`, `refunded`, `cancelled`,
//! `rejected` or `attention`), so a test can show that a wrong outcome
//! fails the run.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use super::{emit, emitln, Failure};
use crate::demo::{self, DemoOptions, Progress, Scenario};

/// Most swaps one demo runs.
pub const MAX_SWAPS: u32 = 100;

/// `escrowd demo …`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Swaps to run concurrently.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SWAPS)))]
    swaps: u32,
    /// happy | buyer-vanishes | seller-never-reserves | notary-rejects | cancel
    #[arg(long, default_value = "happy", value_parser = parse_scenario)]
    scenario: Scenario,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Give up (exit 1, saying where each saga stands) after DUR, e.g. 90s
    /// (the default is `escrowd::demo::DEFAULT_TIMEOUT`).
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "120s")]
    timeout: Duration,
    /// Test hook: the state both parties must end in, instead of the scenario's.
    #[arg(long, hide = true, value_parser = ["completed", "refunded", "cancelled", "rejected", "attention"])]
    expect: Option<String>,
}

fn parse_scenario(text: &str) -> Result<Scenario, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 90s or 2m: {e}"))
}

/// Renders progress on stderr: phases as lines; with a bar, `[###---] 3/8
/// sagas done`, redrawn in place on a terminal, one line per change
/// otherwise.
struct Stderr {
    bar: bool,
    tty: bool,
    open: AtomicBool,
    /// The last `done` drawn (+1; 0: none yet).
    drawn: AtomicUsize,
    start: Instant,
}

impl Stderr {
    fn show(&self, p: Progress) {
        match p {
            Progress::Phase(text) => {
                if self.open.swap(false, Ordering::SeqCst) {
                    eprintln!();
                }
                eprintln!("demo [{:>6.1}s] {text}", self.start.elapsed().as_secs_f64());
            }
            Progress::Sagas { done, total }
                if self.bar
                    && total > 0
                    && self.drawn.swap(done + 1, Ordering::SeqCst) != done + 1 =>
            {
                const WIDTH: usize = 24;
                let filled = done * WIDTH / total;
                let line = format!(
                    "[{}{}] {done}/{total} sagas done",
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled)
                );
                if self.tty {
                    eprint!("\r{line}");
                    self.open.store(done < total, Ordering::SeqCst);
                    if done == total {
                        eprintln!();
                    }
                } else {
                    eprintln!("{line}");
                }
            }
            Progress::Sagas { .. } => {}
        }
    }
}

/// Runs the demo.
///
/// # Errors
/// [`Failure::Invalid`] (exit 1) when a swap did not end as expected, a
/// wait timed out or conservation fails; [`Failure::Usage`] (exit 2) when
/// the demo could not be set up.
pub fn run(args: DemoArgs) -> Result<(), Failure> {
    super::init_logging("error");
    let runtime = super::runtime()?;
    let options = DemoOptions {
        swaps: args.swaps as usize,
        scenario: args.scenario,
        expect: args.expect,
        timeout: args.timeout,
    };
    let stderr = Stderr {
        bar: options.swaps > 1,
        tty: std::io::stderr().is_terminal(),
        open: AtomicBool::new(false),
        drawn: AtomicUsize::new(0),
        start: Instant::now(),
    };
    let report = runtime
        .block_on(demo::run(&options, &|p| stderr.show(p)))
        .map_err(|e| Failure::Usage(e.to_string()))?;
    // Gateways and chainsims are stopped; stray tasks must not hold exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if args.json {
        emitln(report.json());
    } else {
        emit(&report.human());
    }
    eprintln!("demo [{:>6.1}s] done", stderr.start.elapsed().as_secs_f64());
    if report.ok() {
        return Ok(());
    }
    let wrong = report.swaps.iter().filter(|s| !s.as_expected()).count();
    let mut why = Vec::new();
    if wrong > 0 {
        why.push(format!(
            "{wrong} of {} saga(s) did not end as expected",
            report.swaps.len()
        ));
    }
    if let Some(what) = &report.stalled {
        why.push(format!("timed out waiting for {what}"));
    }
    if !report.conservation() {
        why.push("conservation fails".into());
    }
    Err(Failure::Invalid(format!(
        "demo {}: {}",
        options.scenario,
        why.join("; ")
    )))
}
