//! The measured operations, shared by the criterion groups and the report.
//! Each returns something derived from its whole result so the optimiser
//! cannot drop the work (callers pass it to `black_box`).

use rayon::prelude::*;

use bsv_format::beef::Beef;
use bsv_format::ef::EfTransaction;
use bsv_format::script::interpreter::{verify_input, VerifyFlags};
use bsv_format::Txid;

use super::workload::{bare_verify, Triple};

/// p1 — `Beef::from_bytes`: BUMPs, 1,001 transactions, every txid computed and indexed.
pub fn parse(beef: &[u8]) -> Beef {
    Beef::from_bytes(beef).expect("anchor BEEF decodes")
}

/// e1 — `Beef::ef_of(txid)` + `EfTransaction::to_bytes` for every unproven
/// transaction (1,000 of them); returns the total EF bytes.
pub fn ef_all(beef: &Beef, txids: &[Txid]) -> usize {
    txids.iter().map(|t| beef.ef_of(t).expect("EF").to_bytes().len()).sum()
}

/// s1 — bare libsecp256k1 verifies, one thread; returns the count that verified.
pub fn bare_1t(triples: &[Triple]) -> usize {
    triples.iter().filter(|t| bare_verify(t)).count()
}

/// s2 — the same on the current rayon pool (call inside `pool.install` for 2 threads).
pub fn bare_par(triples: &[Triple]) -> usize {
    triples.par_iter().filter(|t| bare_verify(t)).count()
}

/// d2 — the 1,000 FORKID sighashes alone (fresh cache per tx), one thread.
pub fn sighash_all(chain: &[EfTransaction]) -> u8 {
    let mut acc = 0u8;
    for ef in chain {
        let src = &ef.source_outputs[0];
        acc ^= bsv_format::sighash::signature_hash(&ef.tx, 0, src.locking_script.as_bytes(), src.satoshis, 0x41, true)[0];
    }
    acc
}

/// Flags for the interpreter-only row: a post-Genesis transaction spending
/// post-Genesis P2PKH outputs under the node's standard rules.
pub const SCRIPT_FLAGS: VerifyFlags = VerifyFlags::from_bits(
    VerifyFlags::P2SH.bits()
        | VerifyFlags::STRICTENC.bits()
        | VerifyFlags::DERSIG.bits()
        | VerifyFlags::LOW_S.bits()
        | VerifyFlags::NULLDUMMY.bits()
        | VerifyFlags::SIGPUSHONLY.bits()
        | VerifyFlags::MINIMALDATA.bits()
        | VerifyFlags::CLEANSTACK.bits()
        | VerifyFlags::NULLFAIL.bits()
        | VerifyFlags::SIGHASH_FORKID.bits()
        | VerifyFlags::GENESIS.bits()
        | VerifyFlags::UTXO_AFTER_GENESIS.bits(),
);

/// k2 — every chain input through the interpreter (`verify_input`: sighash,
/// DER and key parsing, ECDSA), no BEEF structure; parallel over the current
/// rayon pool. Returns the count that passed.
pub fn scripts_par(chain: &[EfTransaction]) -> usize {
    chain
        .par_iter()
        .filter(|ef| {
            let src = &ef.source_outputs[0];
            verify_input(&ef.tx, 0, &src.locking_script, src.satoshis, SCRIPT_FLAGS).is_ok()
        })
        .count()
}
