//! The measured operations, shared by the criterion groups and the report.
//! Each returns something derived from its whole result so the optimiser
//! cannot drop the work (callers pass it to `black_box`).

use rayon::prelude::*;

use bsv_format::script::interpreter::{verify_input, VerifyFlags};

use super::workload::{self, bare_verify, Decoded, Triple};

/// p1 — BEEF decode with every txid computed.
pub fn parse(beef: &[u8]) -> Decoded {
    workload::decode(beef)
}

/// e1 — EF of every unproven transaction (1,000 of them); returns total bytes.
pub fn ef_all(d: &Decoded) -> usize {
    workload::ef_all_interim(d).iter().map(Vec::len).sum()
}

/// s1 — bare libsecp256k1 verifies, one thread; returns the count that verified.
pub fn bare_1t(triples: &[Triple]) -> usize {
    triples.iter().filter(|t| bare_verify(t)).count()
}

/// s2 — the same on a rayon pool (call inside `pool.install` for 2 threads).
pub fn bare_par(triples: &[Triple]) -> usize {
    triples.par_iter().filter(|t| bare_verify(t)).count()
}

/// d2 — the 1,000 FORKID sighashes alone (fresh cache per tx), one thread.
pub fn sighash_all(d: &Decoded, sources: &[(u64, bsv_format::Script)]) -> u8 {
    let mut acc = 0u8;
    let chain = d.txs.iter().filter(|(_, _, b)| b.is_none());
    for ((tx, _, _), (sats, lock)) in chain.zip(sources) {
        let h = bsv_format::sighash::signature_hash(tx, 0, lock.as_bytes(), *sats, 0x41, true);
        acc ^= h[0];
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
pub fn scripts_par(d: &Decoded, sources: &[(u64, bsv_format::Script)]) -> usize {
    let chain: Vec<_> = d.txs.iter().filter(|(_, _, b)| b.is_none()).map(|(tx, _, _)| tx).collect();
    chain
        .par_iter()
        .zip(sources.par_iter())
        .filter(|(tx, (sats, lock))| verify_input(tx, 0, lock, *sats, SCRIPT_FLAGS).is_ok())
        .count()
}

/// The (satoshis, locking script) each chain tx's input spends, in chain order.
pub fn chain_sources(d: &Decoded) -> Vec<(u64, bsv_format::Script)> {
    let index: std::collections::HashMap<_, _> = d.txs.iter().enumerate().map(|(i, (_, t, _))| (*t, i)).collect();
    d.txs
        .iter()
        .filter(|(_, _, b)| b.is_none())
        .map(|(tx, _, _)| {
            let p = tx.inputs[0].prev_out;
            let o = &d.txs[index[&p.txid]].0.outputs[p.vout as usize];
            (o.satoshis, o.locking_script.clone())
        })
        .collect()
}
