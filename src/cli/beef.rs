//! `escrowd beef inspect|verify|to-ef` (DESIGN.md §7; JSON shapes in docs/cli-json.md).
//! `verify --headers` takes a headers file or a Block Headers Service URL
//! (`crate::chain::HeadersClient`).

use std::path::PathBuf;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::spv::{self, ChainTracker, ScriptEras, VerifiedBeef, VerifyError, VerifyOptions};
use bsv_format::{Hash256, Txid};
use clap::{Subcommand, ValueEnum};
use saga_runtime::{verify_beef, VerifyBeefError};
use serde_json::json;

use super::{input, Failure};
use crate::chain::{HeadersClient, HeadersConfig};
use crate::headers::HeadersTracker;

/// `escrowd beef …`
#[derive(Debug, Subcommand)]
pub enum BeefCommand {
    /// List the transactions and BUMPs of a BEEF with their computed Merkle roots.
    Inspect {
        /// BEEF file (binary or hex); '-' = stdin.
        file: String,
        /// Print JSON (shape in docs/cli-json.md).
        #[arg(long)]
        json: bool,
    },
    /// SPV-verify a BEEF against a headers file or a Block Headers Service
    /// (rules in docs/formats.md).
    Verify {
        /// BEEF file (binary or hex); '-' = stdin.
        file: String,
        /// Headers file: {"tip": H, "roots": {"<height>": "<root hex>"}}; or
        /// the base URL (http:// or https://) of a Block Headers Service such
        /// as chainsim's, asked once for all roots and the tip. Its API key,
        /// if any, is read from $ESCROWD_HEADERS_API_KEY.
        #[arg(long, value_name = "FILE|URL")]
        headers: String,
        /// Skip script evaluation (structure, amounts, roots and maturity only).
        #[arg(long)]
        no_scripts: bool,
        /// Accept BRC-96 txid-only entries as already-validated ancestors.
        #[arg(long)]
        allow_txid_only: bool,
        /// Accept transactions whose outputs equal their inputs (no fee).
        #[arg(long)]
        allow_zero_fee: bool,
        /// Which chain's script-era activation heights apply.
        #[arg(long, value_enum, default_value_t = Chain::Mainnet)]
        chain: Chain,
        /// Print JSON (shape in docs/cli-json.md).
        #[arg(long)]
        json: bool,
    },
    /// Print the EF (BRC-30) hex of the subject transaction, or of --txid.
    ToEf {
        /// BEEF file (binary or hex); '-' = stdin.
        file: String,
        /// The transaction to convert (display hex); default: the subject.
        #[arg(long)]
        txid: Option<String>,
    },
}

/// Chains whose script-era activation heights the verifier knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Chain {
    /// BSV mainnet (Genesis 620,538, Chronicle 943,816).
    Mainnet,
    /// BSV testnet (Genesis 1,344,302, Chronicle 1,713,168).
    Testnet,
    /// Regtest-style chains such as chainsim: every rule active from height 0.
    Regtest,
}

impl Chain {
    fn eras(self) -> ScriptEras {
        match self {
            Chain::Mainnet => ScriptEras::MAINNET,
            Chain::Testnet => ScriptEras::TESTNET,
            Chain::Regtest => ScriptEras::ALWAYS_ACTIVE,
        }
    }
}

/// Runs a `beef` subcommand.
pub fn run(cmd: BeefCommand) -> Result<(), Failure> {
    match cmd {
        BeefCommand::Inspect { file, json } => inspect(&file, json),
        BeefCommand::Verify {
            file,
            headers,
            no_scripts,
            allow_txid_only,
            allow_zero_fee,
            chain,
            json,
        } => {
            let opts = VerifyOptions {
                check_scripts: !no_scripts,
                allow_txid_only,
                allow_zero_fee,
                eras: chain.eras(),
                ..VerifyOptions::default()
            };
            verify(&file, &headers, &opts, json)
        }
        BeefCommand::ToEf { file, txid } => to_ef(&file, txid.as_deref()),
    }
}

fn load(file: &str) -> Result<(Beef, usize), Failure> {
    let bytes = input::read_bytes(file)?;
    let beef = Beef::from_bytes(&bytes).map_err(|e| Failure::Invalid(format!("{file}: {e}")))?;
    Ok((beef, bytes.len()))
}

/// "V1", "V2", "ATOMIC+V1", "ATOMIC+V2": the wire format of a decoded BEEF.
fn format_name(beef: &Beef) -> &'static str {
    match (beef.subject().is_some(), beef.version()) {
        (false, BeefVersion::V1) => "V1",
        (false, BeefVersion::V2) => "V2",
        (true, BeefVersion::V1) => "ATOMIC+V1",
        (true, BeefVersion::V2) => "ATOMIC+V2",
    }
}

/// The subject: the Atomic (BRC-95) subject, else the last transaction (BRC-62).
fn subject_of(beef: &Beef) -> Option<Txid> {
    beef.subject()
        .or_else(|| beef.txs().last().map(|t| t.txid()))
}

fn inspect(file: &str, as_json: bool) -> Result<(), Failure> {
    let (beef, size) = load(file)?;
    let bumps: Vec<_> = beef
        .bumps()
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let root = b.root();
            json!({
                "index": i,
                "block_height": b.block_height(),
                "tree_height": b.tree_height(),
                "client_txids": b.client_txids().map(|t| t.to_string()).collect::<Vec<_>>(),
                "root": root.to_string(),
            })
        })
        .collect();
    let txs: Vec<_> = beef
        .txs()
        .iter()
        .map(|t| match t.transaction() {
            Some(tx) => json!({
                "txid": t.txid().to_string(),
                "kind": "raw",
                "bump": t.bump_index(),
                "size": tx.size(),
                "inputs": tx.inputs.len(),
                "outputs": tx.outputs.len(),
                "output_satoshis": tx.total_output_satoshis(),
            }),
            None => json!({ "txid": t.txid().to_string(), "kind": "txid_only" }),
        })
        .collect();
    let doc = json!({
        "format": format_name(&beef),
        "size": size,
        "atomic": beef.subject().is_some(),
        "subject_txid": subject_of(&beef).map(|t| t.to_string()),
        "bumps": bumps,
        "txs": txs,
    });
    if as_json {
        super::emitln(format!("{doc:#}"));
        return Ok(());
    }
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "format  {} ({} bytes)", format_name(&beef), size);
    if let Some(subject) = subject_of(&beef) {
        let _ = writeln!(s, "subject {subject}");
    }
    let _ = writeln!(s, "bumps   {}", beef.bumps().len());
    for (i, b) in beef.bumps().iter().enumerate() {
        let _ = writeln!(
            s,
            "  [{i}] height {} tree height {} root {}",
            b.block_height(),
            b.tree_height(),
            b.root()
        );
        for t in b.client_txids() {
            let _ = writeln!(s, "        client {t}");
        }
    }
    let _ = writeln!(s, "txs     {}", beef.txs().len());
    for t in beef.txs() {
        match (t.transaction(), t.bump_index()) {
            (Some(tx), Some(b)) => {
                let _ = writeln!(s, "  {} proven by bump {b}, {} bytes", t.txid(), tx.size());
            }
            (Some(tx), None) => {
                let _ = writeln!(
                    s,
                    "  {} {} in / {} out, {} bytes",
                    t.txid(),
                    tx.inputs.len(),
                    tx.outputs.len(),
                    tx.size()
                );
            }
            (None, _) => {
                let _ = writeln!(s, "  {} txid only", t.txid());
            }
        }
    }
    super::emit(&s);
    Ok(())
}

/// The rule a [`VerifyError`] names, as a stable snake_case string for JSON
/// output and scripts (docs/cli-json.md).
pub fn rule_name(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::Empty => "empty",
        VerifyError::SubjectMissing { .. } => "atomic_subject_missing",
        VerifyError::SubjectTxidOnly { .. } => "subject_txid_only",
        VerifyError::OutsideClosure { .. } => "atomic_outside_closure",
        VerifyError::DuplicateTxid { .. } => "duplicate_txid",
        VerifyError::TxidOnly { .. } => "txid_only_not_allowed",
        VerifyError::ConflictingRoots { .. } => "conflicting_roots",
        VerifyError::NoInputs { .. } => "no_inputs",
        VerifyError::NoOutputs { .. } => "no_outputs",
        VerifyError::DuplicateInput { .. } => "duplicate_input",
        VerifyError::ConflictingSpend { .. } => "conflicting_spend",
        VerifyError::MissingInput { .. } => "missing_input",
        VerifyError::MissingOutput { .. } => "missing_output",
        VerifyError::ParentAfterChild { .. } => "parent_after_child",
        VerifyError::OutputsExceedInputs { .. } => "outputs_exceed_inputs",
        VerifyError::ZeroFee { .. } => "zero_fee",
        VerifyError::AmountOverflow { .. } => "amount_overflow",
        VerifyError::AnswerCountMismatch { .. } => "answer_count_mismatch",
        VerifyError::RootNotConfirmed { .. } => "root_not_confirmed",
        VerifyError::CoinbaseImmature { .. } => "coinbase_immature",
        VerifyError::TotalWorkExceeded { .. } => "total_work_exceeded",
        VerifyError::Script { .. } => "script_failed",
    }
}

impl ChainTracker for HeadersTracker {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        self.root_at(height) == Some(root)
    }

    fn current_height(&self) -> u32 {
        self.tip_height()
    }
}

/// Where `beef verify` gets its roots and tip.
enum Tracker {
    /// A headers file (DESIGN.md §7).
    File(HeadersTracker),
    /// A Block Headers Service at this base URL.
    Service(Box<HeadersClient>, String),
}

impl Tracker {
    /// `--headers`: a URL if it starts with `http://` or `https://`, else a file.
    fn open(headers: &str) -> Result<Tracker, Failure> {
        if headers.starts_with("http://") || headers.starts_with("https://") {
            let mut config = HeadersConfig::new(headers);
            config.api_key = std::env::var("ESCROWD_HEADERS_API_KEY")
                .ok()
                .filter(|k| !k.is_empty());
            let client = HeadersClient::new(config)
                .map_err(|e| Failure::Usage(format!("--headers {headers}: {e}")))?;
            Ok(Tracker::Service(Box::new(client), headers.to_string()))
        } else {
            HeadersTracker::load(&PathBuf::from(headers))
                .map(Tracker::File)
                .map_err(|e| Failure::Usage(e.to_string()))
        }
    }

    /// Verifies `beef`. The outer error is a tracker that could not answer
    /// (exit 2); the inner one an SPV verdict.
    fn verify(
        &self,
        beef: Beef,
        opts: &VerifyOptions,
    ) -> Result<Result<VerifiedBeef, VerifyError>, Failure> {
        match self {
            Tracker::File(tracker) => Ok(spv::verify(beef, tracker, opts)),
            Tracker::Service(client, url) => {
                // The CLI is synchronous: a current-thread runtime for the
                // duration of the HTTP calls (SPV's script checks still run
                // on the blocking pool, in parallel with rayon).
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
                match runtime.block_on(verify_beef(client.as_ref(), beef, opts)) {
                    Ok(verified) => Ok(Ok(verified)),
                    Err(VerifyBeefError::Invalid(e)) => Ok(Err(e)),
                    Err(
                        e @ (VerifyBeefError::Tracker(_) | VerifyBeefError::Interrupted { .. }),
                    ) => Err(Failure::Usage(format!("headers service {url}: {e}"))),
                }
            }
        }
    }
}

fn verify(file: &str, headers: &str, opts: &VerifyOptions, as_json: bool) -> Result<(), Failure> {
    let tracker = Tracker::open(headers)?;
    let (beef, _) = match load(file) {
        Ok(v) => v,
        Err(Failure::Invalid(msg)) if as_json => {
            super::emitln(format!(
                "{:#}",
                json!({ "valid": false, "error": { "rule": "malformed", "message": msg } })
            ));
            return Err(Failure::Invalid(msg));
        }
        Err(e) => return Err(e),
    };
    match tracker.verify(beef, opts)? {
        Ok(verified) => {
            if as_json {
                let doc = json!({
                    "valid": true,
                    "subject_txid": verified.subject().to_string(),
                    "txs": verified.beef().txs().len(),
                    "roots": verified.roots().iter().map(|c| json!({"height": c.height, "root": c.root.to_string()})).collect::<Vec<_>>(),
                    "tip_height": verified.tip_height(),
                    "scripts_checked": opts.check_scripts,
                });
                super::emitln(format!("{doc:#}"));
            } else {
                let txs = verified.beef().txs().len();
                let roots = verified.roots().len();
                super::emitln(format!(
                    "valid: {} ({txs} transaction{}, {roots} root{} confirmed, {})",
                    verified.subject(),
                    if txs == 1 { "" } else { "s" },
                    if roots == 1 { "" } else { "s" },
                    match (opts.check_scripts, opts.allow_txid_only) {
                        (false, _) => "scripts NOT checked",
                        (true, false) => "scripts checked",
                        // An input spending a txid-only entry has no source
                        // output to run its script against.
                        (true, true) => "scripts checked except inputs spending txid-only entries",
                    }
                ));
            }
            Ok(())
        }
        Err(e) => {
            let msg = format!("{file}: {e}");
            if as_json {
                super::emitln(format!(
                    "{:#}",
                    json!({ "valid": false, "error": { "rule": rule_name(&e), "message": e.to_string() } })
                ));
            }
            Err(Failure::Invalid(msg))
        }
    }
}

fn to_ef(file: &str, txid: Option<&str>) -> Result<(), Failure> {
    let (beef, _) = load(file)?;
    let txid = match txid {
        Some(t) => {
            Txid::from_display_hex(t).map_err(|e| Failure::Usage(format!("--txid {t:?}: {e}")))?
        }
        None => subject_of(&beef)
            .ok_or_else(|| Failure::Invalid(format!("{file}: the BEEF holds no transaction")))?,
    };
    let ef = beef
        .ef_of(&txid)
        .map_err(|e| Failure::Invalid(format!("{file}: {e}")))?;
    super::emitln(ef.to_hex());
    Ok(())
}
