//! The anchor workload: `chain1000.beef.hex` from `shared/research/anchor-bench/`
//! (BEEF V1, 1 BUMP, 1,001 transactions: one proven funding tx and 1,000
//! chained P2PKH spends, real `SIGHASH_ALL|FORKID` signatures).
//!
//! Loading checks every published fact of the file (size, counts, subject and
//! root txids, EF total, every signature valid) and panics with the reason if
//! one differs: a benchmark on the wrong bytes is worse than none.

use std::path::PathBuf;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::ef::EfTransaction;
use bsv_format::sighash::{uses_forkid_digest, SighashCache};
use bsv_format::Txid;

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
    /// The DER signature (without the sighash byte) and SEC key as they sit in
    /// the unlocking script, for the row that parses them each time.
    pub der: Vec<u8>,
    pub key_sec: Vec<u8>,
}

/// The loaded workload.
pub struct Workload {
    pub path: PathBuf,
    /// The BEEF bytes (hex decoded).
    pub beef: Vec<u8>,
    /// Txids of the 1,000 unproven (chain) transactions, in wire order.
    pub chain_txids: Vec<Txid>,
    /// The chain transactions in EF (each with the output it spends).
    pub chain: Vec<EfTransaction>,
    /// The 1,000 signature checks, in chain order.
    pub triples: Vec<Triple>,
}

/// Where the hex file is: `$ESCROWD_ANCHOR_BENCH`, else
/// `<workspace>/../shared/research/anchor-bench/chain1000.beef.hex`.
pub fn hex_path() -> PathBuf {
    match std::env::var_os(ENV_VAR) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/research/anchor-bench/chain1000.beef.hex"),
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
    let beef =
        hex::decode(text.trim()).unwrap_or_else(|e| panic!("{}: not hex: {e}", path.display()));
    assert_eq!(beef.len(), BEEF_BYTES, "{}: BEEF size", path.display());

    let decoded = Beef::from_bytes(&beef).expect("the anchor BEEF decodes");
    assert_eq!(decoded.version(), BeefVersion::V1, "BEEF version");
    assert_eq!(decoded.bumps().len(), 1, "BUMP count");
    assert_eq!(decoded.txs().len(), TX_COUNT, "transaction count");
    let root = &decoded.txs()[0];
    assert_eq!(root.txid().to_string(), ROOT_TXID, "root ancestor txid");
    assert_eq!(root.bump_index(), Some(0), "root ancestor carries BUMP 0");
    assert_eq!(
        decoded.bumps()[0].block_height(),
        ROOT_HEIGHT,
        "BUMP height"
    );
    assert_eq!(
        decoded.txs()[TX_COUNT - 1].txid().to_string(),
        SUBJECT_TXID,
        "subject txid"
    );
    assert_eq!(chain_txids(&decoded).len(), CHAIN_TXS, "unproven txs");

    let chain_txids = chain_txids(&decoded);
    let efs: Vec<EfTransaction> = chain_txids
        .iter()
        .map(|t| decoded.ef_of(t).expect("EF"))
        .collect();
    let ef_total: usize = efs.iter().map(|e| e.to_bytes().len()).sum();
    assert_eq!(ef_total, EF_TOTAL_BYTES, "EF total of the 1,000 chain txs");

    let triples: Vec<Triple> = efs.iter().map(triple).collect();
    for (i, t) in triples.iter().enumerate() {
        assert!(bare_verify(t), "signature of chain tx {i} does not verify");
    }
    negative_controls(&beef);
    Workload {
        path,
        beef,
        chain_txids,
        chain: efs,
        triples,
    }
}

/// Untimed: the full verifier must refuse the workload with one amount
/// changed. (1) Output 1 of the subject (the last tx: its bytes end with
/// `value u64 ‖ 0x19 ‖ 25-byte P2PKH ‖ lock_time ‖ has_bump 00`) gets +1 sat:
/// its own signature no longer matches → `VerifyError::Script` on the
/// subject's input 0. (2) The same change in tx #500 breaks its child's link
/// → `VerifyError::MissingInput`.
fn negative_controls(beef: &[u8]) {
    use bsv_format::spv::{verify, VerifyError, VerifyOptions};
    let tracker = super::ops::AcceptAll;
    let at = beef.len() - 1 - 4 - 26 - 8;
    let mut bad = beef.to_vec();
    assert_eq!(
        bad[at..at + 8],
        1000u64.to_le_bytes(),
        "subject output 1 is 1,000 sat"
    );
    bad[at] += 1;
    let tampered = Beef::from_bytes(&bad).expect("tampered BEEF still decodes");
    let subject = tampered.txs()[TX_COUNT - 1].txid();
    match verify(tampered, &tracker, &VerifyOptions::default()) {
        Err(VerifyError::Script { txid, input: 0, .. }) if txid == subject => {}
        other => {
            panic!("negative control 1: expected a script failure on the subject, got {other:?}")
        }
    }

    let decoded = Beef::from_bytes(beef).expect("decodes");
    let mid = decoded.txs()[TX_COUNT / 2].txid();
    let mid_raw = decoded.txs()[TX_COUNT / 2]
        .transaction()
        .expect("full tx")
        .to_bytes();
    let start = beef
        .windows(mid_raw.len())
        .position(|w| w == mid_raw.as_slice())
        .expect("tx #500 in the BEEF");
    let at = start + mid_raw.len() - 4 - 26 - 8;
    let mut bad = beef.to_vec();
    assert_eq!(
        bad[at..at + 8],
        1000u64.to_le_bytes(),
        "tx #500 output 1 is 1,000 sat"
    );
    bad[at] += 1;
    let tampered = Beef::from_bytes(&bad).expect("tampered BEEF still decodes");
    match verify(tampered, &tracker, &VerifyOptions::default()) {
        Err(VerifyError::MissingInput { parent, .. }) if parent == mid => {}
        other => panic!(
            "negative control 2: expected the child of tx #500 to miss its input, got {other:?}"
        ),
    }
}

/// Txids of the transactions without a BUMP (the 1,000 chain spends), in wire order.
pub fn chain_txids(beef: &Beef) -> Vec<Txid> {
    beef.txs()
        .iter()
        .filter(|t| t.bump_index().is_none() && !t.is_txid_only())
        .map(|t| t.txid())
        .collect()
}

/// The bare libsecp256k1 call the interpreter's `OP_CHECKSIG` ends in.
#[inline]
pub fn bare_verify(t: &Triple) -> bool {
    secp256k1::ecdsa::verify(&t.sig, secp256k1::Message::from_digest(t.digest), &t.pubkey).is_ok()
}

/// The (sighash, signature, key) of a chain tx's single input.
fn triple(ef: &EfTransaction) -> Triple {
    let tx = &ef.tx;
    assert_eq!(tx.inputs.len(), 1, "chain txs have one input");
    let source = &ef.source_outputs[0];
    let chunks: Vec<_> = tx.inputs[0]
        .unlocking_script
        .chunks()
        .map(|c| c.expect("push-only unlocking script"))
        .collect();
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
    Triple {
        digest,
        sig: secp256k1::ecdsa::Signature::from_der(der).expect("strict DER"),
        pubkey: secp256k1::PublicKey::from_slice(key).expect("valid key"),
        der: der.to_vec(),
        key_sec: key.to_vec(),
    }
}
