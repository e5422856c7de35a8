//! The measured operations, shared by the criterion groups and the report.
//! Each returns something derived from its whole result so the optimiser
//! cannot drop the work (callers pass it to `black_box`).

use rayon::prelude::*;

use bsv_format::beef::Beef;
use bsv_format::ef::EfTransaction;
use bsv_format::script::interpreter::{verify_input, VerifyFlags};
use bsv_format::spv::{self, ChainTracker, ScriptEras, VerifiedBeef, VerifyOptions};
use bsv_format::Txid;

use super::workload::{bare_verify, Triple, TIP_HEIGHT};

/// p1 — `Beef::from_bytes`: BUMPs, 1,001 transactions, every txid computed and indexed.
pub fn parse(beef: &[u8]) -> Beef {
    Beef::from_bytes(beef).expect("anchor BEEF decodes")
}

/// e1 — `Beef::ef_of(txid)` + `EfTransaction::to_bytes` for every unproven
/// transaction (1,000 of them); returns the total EF bytes.
pub fn ef_all(beef: &Beef, txids: &[Txid]) -> usize {
    txids
        .iter()
        .map(|t| beef.ef_of(t).expect("EF").to_bytes().len())
        .sum()
}

/// s1 — bare libsecp256k1 verifies, one thread; returns the count that verified.
pub fn bare_1t(triples: &[Triple]) -> usize {
    triples.iter().filter(|t| bare_verify(t)).count()
}

/// s2 — the same on the current rayon pool (call inside `pool.install` for 2 threads).
pub fn bare_par(triples: &[Triple]) -> usize {
    triples.par_iter().filter(|t| bare_verify(t)).count()
}

/// s3 — the libsecp256k1 work per signature when nothing is reused: parse
/// the SEC key (decompression), lax-DER parse, low-S normalise, verify, on
/// the current rayon pool. (Written out here rather than calling
/// `keys::verify_ecdsa`, which remembers the last key it parsed.)
pub fn parse_verify_par(triples: &[Triple]) -> usize {
    triples
        .par_iter()
        .filter(|t| {
            let (Ok(key), Ok(mut sig)) = (
                secp256k1::PublicKey::from_slice(&t.key_sec),
                secp256k1::ecdsa::Signature::from_der_lax(&t.der),
            ) else {
                return false;
            };
            sig.normalize_s();
            secp256k1::ecdsa::verify(&sig, secp256k1::Message::from_digest(t.digest), &key).is_ok()
        })
        .count()
}

/// d2 — the 1,000 FORKID sighashes alone (fresh cache per tx), one thread.
pub fn sighash_all(chain: &[EfTransaction]) -> u8 {
    let mut acc = 0u8;
    for ef in chain {
        let src = &ef.source_outputs[0];
        acc ^= bsv_format::sighash::signature_hash(
            &ef.tx,
            0,
            src.locking_script.as_bytes(),
            src.satoshis,
            0x41,
            true,
        )[0];
    }
    acc
}

/// The flags `spv` applies to this workload's inputs (mainnet eras, spend at
/// tip + 1 = 900,101, outputs at 900,000 or unproven): the k2 row runs with
/// exactly these.
pub fn script_flags() -> VerifyFlags {
    ScriptEras::MAINNET.flags_for(
        VerifyFlags::standard_post_chronicle(),
        TIP_HEIGHT + 1,
        TIP_HEIGHT + 1,
    )
}

/// The accept-all chain tracker of the research scripts: every root valid,
/// tip 900,100.
pub struct AcceptAll;

impl ChainTracker for AcceptAll {
    fn is_valid_root_for_height(&self, _root: &bsv_format::Hash256, _height: u32) -> bool {
        true
    }
    fn current_height(&self) -> u32 {
        TIP_HEIGHT
    }
}

/// v1 — full SPV verification (`spv::verify`, default options: structure,
/// amounts, roots via [`AcceptAll`], maturity, every script in parallel on
/// the current rayon pool). Takes the BEEF by value, as `verify` does.
pub fn full_verify(beef: Beef) -> VerifiedBeef {
    spv::verify(beef, &AcceptAll, &VerifyOptions::default()).expect("anchor BEEF verifies")
}

/// v2 — the same without scripts (structure, amounts, roots, maturity).
pub fn structure_verify(beef: Beef) -> VerifiedBeef {
    let opts = VerifyOptions {
        check_scripts: false,
        ..VerifyOptions::default()
    };
    spv::verify(beef, &AcceptAll, &opts).expect("anchor BEEF structure verifies")
}

/// v3 — parse and full verify, end to end.
pub fn parse_and_verify(bytes: &[u8]) -> VerifiedBeef {
    full_verify(parse(bytes))
}

/// k2 — every chain input through the interpreter (`verify_input`: sighash,
/// DER and key parsing, ECDSA), no BEEF structure; parallel over the current
/// rayon pool. Returns the count that passed.
pub fn scripts_par(chain: &[EfTransaction], flags: VerifyFlags) -> usize {
    chain
        .par_iter()
        .filter(|ef| {
            let src = &ef.source_outputs[0];
            verify_input(&ef.tx, 0, &src.locking_script, src.satoshis, flags).is_ok()
        })
        .count()
}
