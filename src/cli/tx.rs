//! `escrowd tx decode HEX|FILE [--json]`.

use bsv_format::Transaction;
use clap::Subcommand;
use serde_json::json;

use super::{input, Failure};

/// `escrowd tx …`
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Decode a raw transaction (hex argument, or a file of binary or hex; '-' = stdin).
    Decode {
        /// Hex, or a file path, or '-' for stdin.
        input: String,
        /// Print JSON (shape in docs/cli-json.md).
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `tx` subcommand.
pub fn run(cmd: TxCommand) -> Result<(), Failure> {
    match cmd {
        TxCommand::Decode { input: arg, json } => {
            let bytes = input::read_file_or_hex(&arg)?;
            let tx = Transaction::from_bytes(&bytes)
                .map_err(|e| Failure::Invalid(format!("transaction: {e}")))?;
            let doc = tx_json(&tx);
            if json {
                super::emitln(format!("{doc:#}"));
            } else {
                super::emit(&tx_text(&tx));
            }
            Ok(())
        }
    }
}

/// The `--json` form of a transaction (docs/cli-json.md).
pub fn tx_json(tx: &Transaction) -> serde_json::Value {
    json!({
        "txid": tx.txid().to_string(),
        "version": tx.version,
        "lock_time": tx.lock_time,
        "size": tx.size(),
        "inputs": tx.inputs.iter().map(|i| json!({
            "prev_txid": i.prev_out.txid.to_string(),
            "prev_vout": i.prev_out.vout,
            "unlocking_script": hex::encode(i.unlocking_script.as_bytes()),
            "unlocking_asm": i.unlocking_script.to_asm(),
            "sequence": i.sequence,
        })).collect::<Vec<_>>(),
        "outputs": tx.outputs.iter().map(|o| json!({
            "satoshis": o.satoshis,
            "locking_script": hex::encode(o.locking_script.as_bytes()),
            "locking_asm": o.locking_script.to_asm(),
        })).collect::<Vec<_>>(),
    })
}

/// The human-readable form of a transaction.
pub fn tx_text(tx: &Transaction) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "txid      {}", tx.txid());
    let _ = writeln!(s, "version   {}", tx.version);
    let _ = writeln!(s, "lock_time {}", tx.lock_time);
    let _ = writeln!(s, "size      {} bytes", tx.size());
    for (n, i) in tx.inputs.iter().enumerate() {
        let _ = writeln!(s, "input  {n}: {} seq {:#010x}", i.prev_out, i.sequence);
        let _ = writeln!(s, "           {}", i.unlocking_script.to_asm());
    }
    for (n, o) in tx.outputs.iter().enumerate() {
        let _ = writeln!(s, "output {n}: {} sat", o.satoshis);
        let _ = writeln!(s, "           {}", o.locking_script.to_asm());
    }
    s
}
