//! The anchor workload: `chain1000.beef.hex` from `shared/research/anchor-bench/`
//! (BEEF V1, 1 BUMP, 1,001 transactions: one proven funding tx and 1,000
//! chained P2PKH spends, real `SIGHASH_ALL|FORKID` signatures).
//!
//! Loading checks every published fact of the file (size, counts, subject and
//! root txids, EF total, every signature valid) and panics with the reason if
//! one differs: a benchmark on the wrong bytes is worse than none.

use std::collections::HashMap;
use std::path::PathBuf;

use bsv_format::bump::{MerklePath, OffsetRule};
use bsv_format::codec::Reader;
use bsv_format::ef::EfTransaction;
use bsv_format::sighash::{uses_forkid_digest, SighashCache};
use bsv_format::{Transaction, Txid};

/// Environment variable naming the hex file (overrides the default path).
pub const ENV_VAR: &str = "ESCROWD_ANCHOR_BENCH";

/// Published facts of the workload (`RESULTS.md`, "Workload").
pub const BEEF_BYTES: usize = 226_988;
pub const TX_COUNT: usize = 1_001;
pub const CHAIN_TXS: usize = 1_000;
pub const EF_TOTAL_BYTES: usize = 265_499;
pub const SUBJECT_TXID: &str = "2ebfe87c71c2fd219140335fa7e75333c6d0d69b4331c412e99863d85233dfc4";
pub const ROOT_TXID: &str = "ca5ae46fa6b13b263cc569d9a2e49ac245115af01b19c50cdc0c3540146f4d94";
pub const ROOT_HEIGHT: u32 = 900_000;
/// The stub chain tracker's tip (`currentHeight` in bench.mjs / bench.py).
pub const TIP_HEIGHT: u32 = 900_100;

/// One signature check of the chain, prepared for a bare libsecp256k1 call:
/// the sighash (internal byte order), the parsed DER signature and key.
pub struct Triple {
    pub digest: [u8; 32],
    pub sig: secp256k1::ecdsa::Signature,
    pub pubkey: secp256k1::PublicKey,
}

/// The loaded workload.
pub struct Workload {
    pub path: PathBuf,
    /// The BEEF bytes (hex decoded).
    pub beef: Vec<u8>,
    /// The 1,000 signature checks, in chain order.
    pub triples: Vec<Triple>,
}

/// Where the hex file is: `$ESCROWD_ANCHOR_BENCH`, else
/// `<workspace>/../shared/research/anchor-bench/chain1000.beef.hex`.
pub fn hex_path() -> PathBuf {
    match std::env::var_os(ENV_VAR) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/research/anchor-bench/chain1000.beef.hex"),
    }
}

/// Loads and checks the workload. Panics (loudly, with the path and the
/// fact that differs) if the file is missing or is not the anchor BEEF.
pub fn load() -> Workload {
    let path = hex_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "anchor workload not found at {} ({e}); set {ENV_VAR} to chain1000.beef.hex \
             (shared/research/anchor-bench/); benchmarks never run on a stand-in",
            path.display()
        )
    });
    let beef = hex::decode(text.trim()).unwrap_or_else(|e| panic!("{}: not hex: {e}", path.display()));
    assert_eq!(beef.len(), BEEF_BYTES, "{}: BEEF size", path.display());

    let decoded = decode(&beef);
    assert_eq!(decoded.bumps.len(), 1, "BUMP count");
    assert_eq!(decoded.txs.len(), TX_COUNT, "transaction count");
    let (root, root_txid, root_bump) = &decoded.txs[0];
    assert_eq!(root_txid.to_string(), ROOT_TXID, "root ancestor txid");
    assert_eq!(*root_bump, Some(0), "root ancestor carries BUMP 0");
    assert!(decoded.bumps[0].contains(root_txid), "BUMP proves the root ancestor");
    assert_eq!(decoded.bumps[0].block_height(), ROOT_HEIGHT, "BUMP height");
    assert_eq!(root.inputs.len(), 1);
    assert_eq!(decoded.txs[TX_COUNT - 1].1.to_string(), SUBJECT_TXID, "subject txid");

    let ef_total: usize = ef_all_interim(&decoded).iter().map(Vec::len).sum();
    assert_eq!(ef_total, EF_TOTAL_BYTES, "EF total of the 1,000 chain txs");

    let triples = triples(&decoded);
    assert_eq!(triples.len(), CHAIN_TXS, "one signature per chain tx");
    for (i, t) in triples.iter().enumerate() {
        assert!(bare_verify(t), "signature of chain tx {i} does not verify");
    }
    Workload { path, beef, triples }
}

/// The bare libsecp256k1 call the interpreter's `OP_CHECKSIG` ends in.
#[inline]
pub fn bare_verify(t: &Triple) -> bool {
    secp256k1::ecdsa::verify(&t.sig, secp256k1::Message::from_digest(t.digest), &t.pubkey).is_ok()
}

/// A BEEF V1 decoded with this crate's building blocks (`MerklePath::read`,
/// `Transaction::read_with_txid`): used to extract the triples and, until
/// `beef.rs` lands, as the parse row.
pub struct Decoded {
    pub bumps: Vec<MerklePath>,
    /// `(tx, txid, bump index)` in wire order.
    pub txs: Vec<(Transaction, Txid, Option<usize>)>,
}

/// BRC-62 V1 decode: `0100BEEF | VI n_bumps | BUMP* | VI n_txs | (raw_tx, u8 has_bump, [VI idx])*`.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut r = Reader::new(bytes);
    let magic = r.read_array::<4>("BEEF version").expect("BEEF version");
    assert_eq!(magic, [0x01, 0x00, 0xbe, 0xef], "BEEF V1 magic");
    let n_bumps = r.read_count(2, "BUMP count").expect("BUMP count");
    let bumps = (0..n_bumps)
        .map(|_| MerklePath::read(&mut r, OffsetRule::AllowExtra).expect("BUMP"))
        .collect();
    let n_txs = r.read_count(11, "tx count").expect("tx count");
    let mut txs = Vec::with_capacity(n_txs);
    for _ in 0..n_txs {
        let (tx, txid) = Transaction::read_with_txid(&mut r).expect("transaction");
        let bump = match r.read_u8("has bump").expect("has bump") {
            0 => None,
            1 => Some(r.read_varint("bump index").expect("bump index") as usize),
            other => panic!("has_bump byte {other}"),
        };
        txs.push((tx, txid, bump));
    }
    r.finish("end of BEEF").expect("no trailing bytes");
    Decoded { bumps, txs }
}

/// EF of every unproven tx, built from the decoded parts (source outputs
/// looked up by txid). Stand-in until `Beef::ef_of` lands.
pub fn ef_all_interim(d: &Decoded) -> Vec<Vec<u8>> {
    let index: HashMap<Txid, usize> = d.txs.iter().enumerate().map(|(i, (_, txid, _))| (*txid, i)).collect();
    d.txs
        .iter()
        .filter(|(_, _, bump)| bump.is_none())
        .map(|(tx, _, _)| {
            let sources = tx
                .inputs
                .iter()
                .map(|i| d.txs[index[&i.prev_out.txid]].0.outputs[i.prev_out.vout as usize].clone())
                .collect();
            EfTransaction::new(tx.clone(), sources).expect("one source per input").to_bytes()
        })
        .collect()
}

/// The (sighash, signature, key) of every chain tx's single input.
fn triples(d: &Decoded) -> Vec<Triple> {
    let index: HashMap<Txid, usize> = d.txs.iter().enumerate().map(|(i, (_, txid, _))| (*txid, i)).collect();
    let mut out = Vec::with_capacity(CHAIN_TXS);
    for (tx, _, bump) in &d.txs {
        if bump.is_some() {
            continue;
        }
        assert_eq!(tx.inputs.len(), 1, "chain txs have one input");
        let input = &tx.inputs[0];
        let source = &d.txs[index[&input.prev_out.txid]].0.outputs[input.prev_out.vout as usize];
        let chunks: Vec<_> = input.unlocking_script.chunks().map(|c| c.expect("push-only unlocking script")).collect();
        assert_eq!(chunks.len(), 2, "P2PKH unlocking script: <sig> <pubkey>");
        let sig = chunks[0].data.expect("signature push");
        let key = chunks[1].data.expect("pubkey push");
        let (hash_type, der) = sig.split_last().expect("non-empty signature");
        let hash_type = u32::from(*hash_type);
        assert_eq!(hash_type, 0x41, "SIGHASH_ALL|FORKID");
        let digest = SighashCache::new(tx).signature_hash(
            0,
            source.locking_script.as_bytes(),
            source.satoshis,
            hash_type,
            uses_forkid_digest(hash_type, true),
        );
        out.push(Triple {
            digest,
            sig: secp256k1::ecdsa::Signature::from_der(der).expect("strict DER"),
            pubkey: secp256k1::PublicKey::from_slice(key).expect("valid key"),
        });
    }
    out
}
