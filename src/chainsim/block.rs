//! Blocks of the simulated chain: 80-byte headers, Merkle roots, coinbases.
//!
//! ```text
//! header (80 bytes): version u32le | prev block hash 32 | merkle root 32 |
//!                    time u32le (UNIX seconds) | bits u32le | nonce u32le
//! block hash = sha256d(header), shown byte-reversed like txids
//! ```
//! No proof of work is done: `bits` is regtest's `0x207fffff` and `nonce` 0;
//! nothing here or in an SPV client checks work. Everything else is what a
//! node would produce: the Merkle root over the block's txids in block order
//! (coinbase first, the last node of an odd level paired with itself), the
//! hash chain through `prev`, and timestamps above the median time past.

use std::sync::Arc;

use bsv_format::hash::sha256d;
use bsv_format::script::push_data_minimal;
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};

/// Header `version` of every block chainsim mines (BIP9 top bits, no signalling).
pub const BLOCK_VERSION: u32 = 0x2000_0000;
/// Header `bits` of every block: regtest's minimum difficulty.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Work of one block at [`REGTEST_BITS`]: `2^256 / (target + 1)` = 2.
pub const WORK_PER_BLOCK: u64 = 2;
/// Coinbase value of every block in satoshis (50 BSV; chainsim does not halve).
pub const BLOCK_SUBSIDY: u64 = 5_000_000_000;
/// Blocks whose timestamps make up the median time past (node `nMedianTimeSpan`).
pub const MEDIAN_TIME_SPAN: usize = 11;

/// An 80-byte block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// `nVersion`.
    pub version: u32,
    /// Hash of the previous block (internal order); all zero for the genesis block.
    pub prev_hash: Hash256,
    /// Merkle root of the block's txids (internal order).
    pub merkle_root: Hash256,
    /// Block time, UNIX seconds.
    pub time: u32,
    /// Compact difficulty target.
    pub bits: u32,
    /// Nonce.
    pub nonce: u32,
}

impl BlockHeader {
    /// The 80-byte wire form.
    pub fn to_bytes(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_hash.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Reads the 80-byte wire form (every 80-byte string is a header).
    pub fn from_bytes(bytes: &[u8; 80]) -> BlockHeader {
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let hash_at = |i: usize| {
            let mut h = [0u8; 32];
            h.copy_from_slice(&bytes[i..i + 32]);
            Hash256(h)
        };
        BlockHeader {
            version: u32_at(0),
            prev_hash: hash_at(4),
            merkle_root: hash_at(36),
            time: u32_at(68),
            bits: u32_at(72),
            nonce: u32_at(76),
        }
    }

    /// The block hash: `sha256d` of the 80 bytes (internal order).
    pub fn hash(&self) -> Hash256 {
        Hash256(sha256d(&self.to_bytes()))
    }
}

/// A block of the chain: its header, hash and txids in block order
/// (`txids[0]` is the coinbase). The transactions themselves live in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// `header.hash()`, kept to avoid rehashing.
    pub hash: Hash256,
    /// Txids in block order; shared so a BUMP can be built outside the ledger lock.
    pub txids: Arc<Vec<Txid>>,
}

impl Block {
    /// A block with `header` and `txids` (the hash is computed here).
    pub fn new(header: BlockHeader, txids: Vec<Txid>) -> Block {
        Block {
            hash: header.hash(),
            header,
            txids: Arc::new(txids),
        }
    }
}

/// The Merkle root of `txids` in block order: pairs are hashed with `sha256d`,
/// the last node of an odd-sized level is paired with itself, and a single
/// txid is its own root. An empty list gives the all-zero hash (no block is empty).
pub fn merkle_root(txids: &[Txid]) -> Hash256 {
    let mut level: Vec<Hash256> = txids.iter().map(Txid::as_hash).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => Hash256::merkle_parent(left, right),
                [single] => Hash256::merkle_parent(single, single),
                _ => Hash256::default(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_default()
}

/// Median time past of the blocks ending at the tip: the median of the last
/// [`MEDIAN_TIME_SPAN`] timestamps (node `GetMedianTimePast`: sorted, element
/// `len / 2`). `times` lists block times from genesis to tip; empty gives 0.
pub fn median_time_past(times: &[u32]) -> u32 {
    let start = times.len().saturating_sub(MEDIAN_TIME_SPAN);
    let mut last: Vec<u32> = times[start..].to_vec();
    last.sort_unstable();
    last.get(last.len() / 2).copied().unwrap_or(0)
}

/// The coinbase of the block at `height`: one input spending the null
/// outpoint whose unlocking script pushes the height (BIP34, minimal script
/// number) and a tag naming the chain and the reorganisation count (so a
/// replacement block never repeats a stale block's coinbase txid), and one
/// output of `value` satoshis locked by `lock`.
pub fn coinbase(
    height: u32,
    chain_id: &str,
    reorgs: u32,
    value: u64,
    lock: &Script,
) -> Transaction {
    let mut script = Vec::with_capacity(48);
    push_data_minimal(&mut script, &script_number(height));
    push_data_minimal(
        &mut script,
        format!("escrowd chainsim {chain_id} r{reorgs}").as_bytes(),
    );
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([0u8; 32]), u32::MAX),
            unlocking_script: Script::from_bytes(script),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: value,
            locking_script: lock.clone(),
        }],
        lock_time: 0,
    }
}

/// Minimal little-endian script-number encoding of a non-negative `n`.
fn script_number(n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    let mut v = n;
    while v > 0 {
        out.push((v & 0xff) as u8);
        v >>= 8;
    }
    if out.last().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsv_format::bump::MerklePath;

    #[test]
    fn header_round_trips_and_hashes_like_the_node() {
        // Bitcoin's genesis header: its hash is the well-known 000000000019d6…8ce26f.
        let raw = hex::decode(concat!(
            "01000000",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a",
            "29ab5f49",
            "ffff001d",
            "1dac2b7c"
        ))
        .unwrap();
        let bytes: [u8; 80] = raw.as_slice().try_into().unwrap();
        let header = BlockHeader::from_bytes(&bytes);
        assert_eq!(header.to_bytes(), bytes);
        assert_eq!(header.time, 1_231_006_505);
        assert_eq!(
            header.hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(
            header.merkle_root.to_string(),
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
        );
    }

    #[test]
    fn merkle_root_agrees_with_the_bump_builder() {
        let txids: Vec<Txid> = (0u8..7).map(|i| Txid(sha256d(&[i]))).collect();
        for n in 1..=txids.len() {
            let block = &txids[..n];
            let bump = MerklePath::from_block(0, block, &[n - 1]).unwrap();
            assert_eq!(merkle_root(block), bump.root(), "{n} txids");
        }
        assert_eq!(merkle_root(&txids[..1]), txids[0].as_hash());
    }

    #[test]
    fn median_time_past_takes_the_last_eleven() {
        assert_eq!(median_time_past(&[]), 0);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[1, 9]), 9);
        let times: Vec<u32> = (1..=20).collect();
        // Last eleven: 10..=20, median 15.
        assert_eq!(median_time_past(&times), 15);
    }

    #[test]
    fn script_numbers_are_minimal() {
        assert_eq!(script_number(0), Vec::<u8>::new());
        assert_eq!(script_number(1), vec![1]);
        assert_eq!(script_number(0x80), vec![0x80, 0]);
        assert_eq!(script_number(0x1234), vec![0x34, 0x12]);
    }
}
