//! The sample BEEF of the README's quick start, built by our own core.
//!
//! A buyer's funding transaction (proven by a BUMP in a 5-transaction block
//! at height 1,000), the buyer's reservation that locks 50,000 satoshis in the
//! escrow output of DESIGN.md §3.1, and the seller's claim that reveals the
//! preimage — as an Atomic BEEF (BRC-95) whose subject is the claim, plus the
//! headers file that confirms the block. Everything is deterministic (keys and
//! the preimage come from fixed tags), so `cargo run --example make_sample`
//! reproduces the committed files byte for byte and a test checks that.

use std::collections::BTreeMap;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::hash::{sha256, sha256d};
use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::{
    escrow_claim_unlock, escrow_lock, p2pkh_lock, p2pkh_unlock, sign_input,
};
use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_FORKID};
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut, SEQUENCE_FINAL};
use bsv_format::{Script, Txid};

use crate::headers::HeadersTracker;

/// Height of the block that holds the funding transaction.
pub const BLOCK_HEIGHT: u32 = 1_000;
/// Tip height written to the headers file.
pub const TIP_HEIGHT: u32 = 1_010;
/// Satoshis of the funding output.
pub const FUNDING_SATS: u64 = 100_000;
/// Satoshis locked in the escrow output.
pub const ESCROW_SATS: u64 = 50_000;
/// Fee of the reservation and of the claim, satoshis each.
pub const FEE_SATS: u64 = 200;

/// The sample: an Atomic BEEF and the headers that confirm it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Atomic BEEF (BRC-95 over V1) whose subject is the claim.
    pub beef: Beef,
    /// Roots and tip for the offline chain tracker.
    pub headers: HeadersTracker,
}

impl Sample {
    /// The BEEF as lowercase hex with a trailing newline (the committed file).
    pub fn beef_file(&self) -> String {
        format!("{}\n", self.beef.to_hex())
    }

    /// The headers file (pretty JSON with a trailing newline).
    pub fn headers_file(&self) -> String {
        format!("{}\n", self.headers.to_json())
    }
}

fn key(tag: &str) -> Result<PrivateKey, String> {
    PrivateKey::from_bytes(&sha256(tag.as_bytes())).map_err(|e| format!("key {tag:?}: {e}"))
}

fn p2pkh_to(key: &PrivateKey) -> Script {
    p2pkh_lock(&key.public_key().hash160())
}

/// Builds the sample.
///
/// # Errors
/// Only if the format core rejects its own well-formed inputs (a bug); the
/// message names the step.
pub fn build() -> Result<Sample, String> {
    const ALL: u32 = SIGHASH_ALL | SIGHASH_FORKID;
    let buyer = key("escrowd sample buyer")?;
    let seller = key("escrowd sample seller")?;
    let preimage = sha256(b"escrowd sample saga secret");

    // Funding: proven by a BUMP, so its own input is not checked.
    let funding = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid(sha256d(b"escrowd sample faucet")), 0),
            unlocking_script: Script::from_bytes(vec![0x51]),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: FUNDING_SATS,
            locking_script: p2pkh_to(&buyer),
        }],
        lock_time: 0,
    };
    let block: Vec<Txid> = [
        Txid(sha256d(b"escrowd sample coinbase")),
        funding.txid(),
        Txid(sha256d(b"escrowd sample filler 1")),
        Txid(sha256d(b"escrowd sample filler 2")),
        Txid(sha256d(b"escrowd sample filler 3")),
    ]
    .into();
    let bump =
        MerklePath::from_block(BLOCK_HEIGHT, &block, &[1]).map_err(|e| format!("BUMP: {e}"))?;
    let root = bump.root();

    // Reservation: the buyer locks ESCROW_SATS for the seller under H = SHA256(s).
    let escrow = escrow_lock(
        &sha256(&preimage),
        &seller.public_key(),
        &buyer.public_key(),
    );
    let mut reservation = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(funding.txid(), 0),
            unlocking_script: Script::default(),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![
            TxOut {
                satoshis: ESCROW_SATS,
                locking_script: escrow.clone(),
            },
            TxOut {
                satoshis: FUNDING_SATS - ESCROW_SATS - FEE_SATS,
                locking_script: p2pkh_to(&buyer),
            },
        ],
        lock_time: 0,
    };
    let funding_lock = p2pkh_to(&buyer);
    let sig = sign_input(&reservation, 0, &funding_lock, FUNDING_SATS, ALL, &buyer)
        .map_err(|e| format!("reservation: {e}"))?;
    reservation.inputs[0].unlocking_script =
        p2pkh_unlock(&sig, &buyer.public_key()).map_err(|e| format!("reservation: {e}"))?;

    // Claim: the seller spends the escrow output, revealing s.
    let mut claim = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(reservation.txid(), 0),
            unlocking_script: Script::default(),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: ESCROW_SATS - FEE_SATS,
            locking_script: p2pkh_to(&seller),
        }],
        lock_time: 0,
    };
    let sig = sign_input(&claim, 0, &escrow, ESCROW_SATS, ALL, &seller)
        .map_err(|e| format!("claim: {e}"))?;
    claim.inputs[0].unlocking_script =
        escrow_claim_unlock(&sig, &preimage).map_err(|e| format!("claim: {e}"))?;

    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(bump);
    beef.add_transaction(funding);
    beef.add_transaction(reservation);
    let subject = beef.add_transaction(claim);
    let beef = beef
        .to_atomic(&subject)
        .map_err(|e| format!("atomic BEEF: {e}"))?;

    let headers = HeadersTracker::new(BTreeMap::from([(BLOCK_HEIGHT, root)]), Some(TIP_HEIGHT));
    Ok(Sample { beef, headers })
}
