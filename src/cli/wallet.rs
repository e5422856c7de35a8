//! `escrowd wallet balance|import|withdraw` (DESIGN.md §7): a gateway's
//! wallet through its `AdminService`, as its operator ([`super::client`]
//! for the connection flags and exit codes; `--json` shapes in
//! docs/cli-json.md).
//!
//! # Layout
//! - [`WalletArgs`], [`WalletCommand`], [`run`].
//! - [`basket_name`].

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::client::{block_on, status_failure, GatewayArgs};
use super::input::read_bytes;
use super::{emitln, Failure};
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::admin_service_client::AdminServiceClient;

/// `escrowd wallet …`
#[derive(Debug, Args)]
pub struct WalletArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(subcommand)]
    command: WalletCommand,
}

/// The wallet subcommands.
#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Balances per chain and basket (baskets holding an unspent output).
    Balance,
    /// Import the outputs of a BEEF's subject that pay the wallet's key,
    /// SPV-verified by the gateway against its chain tracker first.
    Import {
        /// The chain the BEEF's transactions are on.
        #[arg(long, value_name = "CHAIN")]
        chain: String,
        /// The BEEF (BRC-62, BRC-96 or BRC-95), binary or hex; '-' for stdin.
        #[arg(long, value_name = "FILE")]
        beef: PathBuf,
        /// The basket the outputs go to.
        #[arg(long, value_enum, default_value = "funding")]
        basket: ImportBasket,
        /// Only these output indexes (repeatable); default: every output
        /// paying the wallet's key.
        #[arg(long = "vout", value_name = "N")]
        vouts: Vec<u32>,
    },
    /// Pay from the funding basket to an address, and broadcast.
    Withdraw {
        /// The chain to pay on.
        #[arg(long, value_name = "CHAIN")]
        chain: String,
        /// The payee: a Base58Check P2PKH address.
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// The amount, satoshis.
        #[arg(long, value_name = "N")]
        sats: u64,
    },
}

/// Baskets an import may fill.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportBasket {
    /// Spendable funds for reservations and withdrawals.
    Funding,
    /// Goods the gateway delivers as a seller.
    Inventory,
}

/// A basket's name in output: `funding`, `escrow`, `inventory`, `received`.
pub fn basket_name(basket: i32) -> &'static str {
    match pb::Basket::try_from(basket) {
        Ok(pb::Basket::Funding) => "funding",
        Ok(pb::Basket::Escrow) => "escrow",
        Ok(pb::Basket::Inventory) => "inventory",
        Ok(pb::Basket::Received) => "received",
        Ok(pb::Basket::Unspecified) | Err(_) => "unspecified",
    }
}

/// Runs `escrowd wallet …`.
pub fn run(args: WalletArgs) -> Result<(), Failure> {
    let json_out = args.gateway.json;
    // Read the BEEF before dialling: an unreadable file is a usage fault.
    let beef = match &args.command {
        WalletCommand::Import { beef, .. } => Some(read_bytes(&beef.display().to_string())?),
        _ => None,
    };
    block_on(async move {
        // The channel's background task needs the runtime: made inside it.
        let mut admin = AdminServiceClient::new(args.gateway.connect()?);
        match args.command {
            WalletCommand::Balance => {
                let r = admin
                    .wallet_balances(pb::WalletBalancesRequest {})
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                if json_out {
                    let balances: Vec<_> = r
                        .balances
                        .iter()
                        .map(|b| {
                            json!({
                                "chain": b.chain_id,
                                "basket": basket_name(b.basket),
                                "available_sats": b.available_sats,
                                "available_outputs": b.available_outputs,
                                "reserved_sats": b.reserved_sats,
                                "reserved_outputs": b.reserved_outputs,
                            })
                        })
                        .collect();
                    emitln(json!({ "balances": balances }));
                } else if r.balances.is_empty() {
                    emitln("no unspent outputs");
                } else {
                    for b in &r.balances {
                        emitln(format!(
                            "{:<12} {:<10} {:>14} sats available ({} outputs), {} sats reserved ({} outputs)",
                            b.chain_id,
                            basket_name(b.basket),
                            b.available_sats,
                            b.available_outputs,
                            b.reserved_sats,
                            b.reserved_outputs
                        ));
                    }
                }
            }
            WalletCommand::Import {
                chain,
                basket,
                vouts,
                ..
            } => {
                let basket = match basket {
                    ImportBasket::Funding => pb::Basket::Funding,
                    ImportBasket::Inventory => pb::Basket::Inventory,
                };
                let r = admin
                    .import_funding(pb::ImportFundingRequest {
                        chain_id: chain,
                        // Invariant: read above for Import.
                        beef: beef.unwrap_or_default(),
                        basket: basket as i32,
                        vouts,
                    })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                if json_out {
                    emitln(json!({
                        "txid": r.txid,
                        "imported": r.imported.iter().map(|o| json!({"vout": o.vout, "sats": o.sats})).collect::<Vec<_>>(),
                        "not_ours": r.not_ours,
                    }));
                } else {
                    for o in &r.imported {
                        emitln(format!("imported {}:{} {} sats", r.txid, o.vout, o.sats));
                    }
                    if r.imported.is_empty() {
                        emitln(format!("{}: no output pays the wallet's key", r.txid));
                    }
                    for v in &r.not_ours {
                        emitln(format!("not ours: {}:{v}", r.txid));
                    }
                }
            }
            WalletCommand::Withdraw { chain, to, sats } => {
                let r = admin
                    .withdraw(pb::WithdrawRequest {
                        chain_id: chain,
                        address: to,
                        amount_sats: sats,
                    })
                    .await
                    .map_err(status_failure)?
                    .into_inner();
                if json_out {
                    emitln(json!({
                        "txid": r.txid,
                        "tx": hex::encode(&r.tx),
                        "fee_sats": r.fee_sats,
                        "change_sats": r.change_sats,
                        "accepted": r.accepted,
                        "broadcast": r.broadcast,
                    }));
                } else {
                    emitln(format!(
                        "{} {}: fee {} sats, change {} sats ({})",
                        if r.accepted {
                            "broadcast"
                        } else {
                            "NOT accepted"
                        },
                        r.txid,
                        r.fee_sats,
                        r.change_sats,
                        r.broadcast
                    ));
                    if !r.accepted {
                        emitln(format!(
                            "raw transaction (rebroadcast it): {}",
                            hex::encode(&r.tx)
                        ));
                    }
                }
            }
        }
        Ok(())
    })
}
