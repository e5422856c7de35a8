//! `escrowd keys new|show`: the key files a gateway's configuration names
//! (`saga_key`, each chain's `wallet_key`) and a notary's `approval_key`,
//! and the public halves the other organisation pins in its `[peers]` or
//! `[notary]` table (docs/operators.md, "Two gateways on two machines").
//!
//! A key file is one WIF private key (compressed), mode 0600
//! ([`crate::keys`]). Nothing here ever prints a private key.
//!
//! Output: `public_key` (compressed SEC, 33 bytes as hex) and `address`
//! (P2PKH, Base58Check for the network), as text or with `--json` one
//! object `{"file", "public_key", "address", "network"}`. Exit codes: 0;
//! 1 when the file exists (`new` never overwrites a key), is too open or is
//! not a WIF key; 2 when it cannot be read or written.

use std::path::{Path, PathBuf};

use bsv_format::keys::{Network, PrivateKey};
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::Failure;
use crate::keys::{load_key_file, random_key, write_key_file, KeyFileError};

/// Which network a key's WIF and address are for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyNetwork {
    /// WIF prefix 0x80, addresses starting with 1.
    Mainnet,
    /// Testnet and regtest (chainsim): WIF prefix 0xEF, addresses m/n.
    Testnet,
}

impl From<KeyNetwork> for Network {
    fn from(n: KeyNetwork) -> Network {
        match n {
            KeyNetwork::Mainnet => Network::Mainnet,
            KeyNetwork::Testnet => Network::Testnet,
        }
    }
}

/// `escrowd keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new random private key to FILE (mode 0600; never overwrites)
    /// and print its public key and address.
    New {
        /// The key file to create.
        file: PathBuf,
        /// The WIF's and the address's network.
        #[arg(long, value_enum, default_value = "testnet")]
        network: KeyNetwork,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key and address of the key in FILE.
    Show {
        /// The key file.
        file: PathBuf,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `keys` subcommand.
pub fn run(cmd: KeysCommand) -> Result<(), Failure> {
    match cmd {
        KeysCommand::New {
            file,
            network,
            json,
        } => {
            let key = random_key().map_err(failure)?;
            let network = Network::from(network);
            write_key_file(&file, &key, network).map_err(failure)?;
            print(&file, &key, network, json);
            Ok(())
        }
        KeysCommand::Show { file, json } => {
            let wif = load_key_file(&file).map_err(failure)?;
            print(&file, &wif.key, wif.network, json);
            Ok(())
        }
    }
}

fn failure(e: KeyFileError) -> Failure {
    match e {
        KeyFileError::Io { .. } | KeyFileError::Random => Failure::Usage(e.to_string()),
        KeyFileError::TooOpen { .. }
        | KeyFileError::NotWif { .. }
        | KeyFileError::Exists { .. } => Failure::Invalid(e.to_string()),
    }
}

fn print(file: &Path, key: &PrivateKey, network: Network, json: bool) {
    let public = key.public_key();
    let public_key = hex::encode(public.to_compressed());
    let address = public.address(network);
    let network = match network {
        Network::Mainnet => "mainnet",
        Network::Testnet => "testnet",
    };
    if json {
        println!(
            "{}",
            json!({
                "file": file.display().to_string(),
                "public_key": public_key,
                "address": address,
                "network": network,
            })
        );
    } else {
        println!("{}", file.display());
        println!("  public_key {public_key}");
        println!("  address    {address} ({network})");
    }
}
