//! Persistence of the ledger in sled (`--data DIR`).
//!
//! One sled tree, `chainsim`, with one key prefix per kind of record; every
//! value starts with a version byte ([`RECORD_VERSION`]) and a record written
//! by a newer version is refused, as is a store whose schema
//! ([`SCHEMA_VERSION`], key `m:schema`) is newer than this build's.
//!
//! | key | value (after the version byte) |
//! | --- | --- |
//! | `m:schema` | schema version u8 (no version byte) |
//! | `m:chain` | chain id, UTF-8 |
//! | `m:state` | clock u64le (UNIX seconds), reorganisations u32le |
//! | `b` ‖ height u32be | header (80 bytes), txid count u32le, txids (32 bytes each, internal order) |
//! | `t` ‖ txid | fee u64le (satoshis), raw transaction |
//! | `s` ‖ txid | state tag u8: 0 mempool (seq u64le), 1 mined (height u32le, index u32le), 2 double spend (count u32le, txids), 3 rejected (reason: len u32le, UTF-8) |
//! | `u` ‖ outpoint (36) | coinbase u8 (0/1), satoshis u64le, locking script (CompactSize length + bytes) |
//! | `x` ‖ outpoint (36) | spender txid (32), input index u32le |
//! | `h` ‖ block hash | height u32le, header (80 bytes): a block removed by a reorganisation |
//!
//! Heights are big-endian in keys so that sled's byte order is height order.
//! Each ledger operation's changes are one atomic `Batch`; callers flush
//! (fsync) before answering the request that caused them. The UTXO set and the
//! spend index are stored, not recomputed, so opening a store is one scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bsv_format::codec::{write_var_bytes, ParseError, Reader};
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxOut, Txid};

use super::block::{Block, BlockHeader};
use super::ledger::{LedgerParts, Spender, TxEntry, TxState, Utxo};

/// Version of the store layout this build writes and reads.
pub const SCHEMA_VERSION: u8 = 1;
/// Version byte every stored record starts with.
pub const RECORD_VERSION: u8 = 1;

const KEY_SCHEMA: &[u8] = b"m:schema";
const KEY_CHAIN: &[u8] = b"m:chain";
const KEY_STATE: &[u8] = b"m:state";

/// A fault of the sled store. Messages name the directory or the record.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled could not open the directory (missing permissions, already open
    /// by another process).
    #[error("cannot open chainsim store {path}: {source}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// A read, write or flush failed.
    #[error("chainsim store I/O: {0}")]
    Io(#[from] sled::Error),
    /// The store was written by a newer schema.
    #[error(
        "chainsim store {path} has schema version {found}; this build reads up to {SCHEMA_VERSION}"
    )]
    NewerSchema {
        /// The directory.
        path: PathBuf,
        /// The stored schema version.
        found: u8,
    },
    /// A record starts with a version byte this build does not know.
    #[error(
        "chainsim store record {key} has version {found}; this build reads up to {RECORD_VERSION}"
    )]
    NewerRecord {
        /// The record's key (printable form).
        key: String,
        /// Its version byte.
        found: u8,
    },
    /// The store belongs to another chain.
    #[error("chainsim store {path} holds chain {stored:?}, not {configured:?}")]
    ChainMismatch {
        /// The directory.
        path: PathBuf,
        /// The chain id stored.
        stored: String,
        /// The chain id asked for.
        configured: String,
    },
    /// A record does not decode, or the records contradict each other.
    #[error("chainsim store record {key} is corrupt: {detail}")]
    Corrupt {
        /// The record's key (printable form).
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// One change to the stored ledger, recorded by the ledger as it mutates.
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// A new store: writes the schema version and the chain id.
    Created {
        /// The chain id.
        chain_id: String,
    },
    /// A transaction's bytes and fee (written once).
    PutTx {
        /// Its txid.
        txid: Txid,
        /// Fee, satoshis.
        fee: u64,
        /// The transaction.
        tx: Arc<Transaction>,
    },
    /// A transaction's state.
    PutState {
        /// The transaction.
        txid: Txid,
        /// Its new state.
        state: TxState,
    },
    /// An unspent output appeared.
    PutUtxo {
        /// Which.
        outpoint: Outpoint,
        /// Its value, script and coinbase flag.
        utxo: Utxo,
    },
    /// An output left the UTXO set.
    DelUtxo {
        /// Which.
        outpoint: Outpoint,
    },
    /// An output was spent.
    PutSpend {
        /// Which.
        outpoint: Outpoint,
        /// By whom.
        spender: Spender,
    },
    /// A spend was undone.
    DelSpend {
        /// Which output.
        outpoint: Outpoint,
    },
    /// A block was mined.
    PutBlock {
        /// Its height.
        height: u32,
        /// The block.
        block: Block,
    },
    /// A block was removed from the tip.
    DelBlock {
        /// Its height.
        height: u32,
    },
    /// A removed block's header, kept for header-state lookups.
    PutStale {
        /// Its hash.
        hash: Hash256,
        /// Its height.
        height: u32,
        /// Its header.
        header: BlockHeader,
    },
    /// Clock and reorganisation count.
    PutMeta {
        /// UNIX seconds.
        clock: u64,
        /// Reorganisations so far.
        reorgs: u32,
    },
}

/// Where the ledger is kept: nowhere (in memory only) or in sled.
#[derive(Debug)]
pub enum Store {
    /// In memory: operations are discarded.
    Memory,
    /// A sled database.
    Sled(SledStore),
}

impl Store {
    /// Writes `ops` as one atomic batch (nothing for [`Store::Memory`]).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        match self {
            Store::Memory => Ok(()),
            Store::Sled(s) => s.apply(ops),
        }
    }

    /// Makes every applied batch durable (fsync).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory => Ok(()),
            // A blocking flush on tokio's pool rather than sled's
            // `flush_async`: sled's pool may keep a handle to the files alive
            // after answering, which would hold the directory lock past shutdown.
            Store::Sled(s) => {
                let tree = s.tree.clone();
                match tokio::task::spawn_blocking(move || tree.flush()).await {
                    Ok(flushed) => flushed.map(|_| ()).map_err(StoreError::Io),
                    Err(e) => Err(StoreError::Io(sled::Error::ReportableBug(format!(
                        "flush task: {e}"
                    )))),
                }
            }
        }
    }
}

/// An open sled store.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the store in `dir` for `chain_id`. Returns the store
    /// and the stored ledger, or `None` for a new store: the caller creates the
    /// ledger and applies its journal preceded by [`StoreOp::Created`], so the
    /// schema, chain id and initial chain are written in one batch.
    ///
    /// # Errors
    /// [`StoreError::Open`], [`StoreError::NewerSchema`],
    /// [`StoreError::ChainMismatch`], [`StoreError::NewerRecord`],
    /// [`StoreError::Corrupt`], [`StoreError::Io`].
    pub fn open(
        dir: &Path,
        chain_id: &str,
    ) -> Result<(SledStore, Option<LedgerParts>), StoreError> {
        let db = open_db(dir)?;
        let tree = db.open_tree("chainsim")?;
        let store = SledStore { db, tree };
        let Some(schema) = store.tree.get(KEY_SCHEMA)? else {
            return Ok((store, None));
        };
        let found = schema.first().copied().unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: dir.to_path_buf(),
                found,
            });
        }
        let stored = match store.tree.get(KEY_CHAIN)? {
            Some(v) => String::from_utf8_lossy(body(KEY_CHAIN, &v)?).into_owned(),
            None => return Err(corrupt(KEY_CHAIN, "missing")),
        };
        if stored != chain_id {
            return Err(StoreError::ChainMismatch {
                path: dir.to_path_buf(),
                stored,
                configured: chain_id.to_string(),
            });
        }
        let parts = store.load()?;
        Ok((store, Some(parts)))
    }

    fn load(&self) -> Result<LedgerParts, StoreError> {
        let mut parts = LedgerParts::default();
        let state = self
            .tree
            .get(KEY_STATE)?
            .ok_or_else(|| corrupt(KEY_STATE, "missing"))?;
        decode(KEY_STATE, &state, |r| {
            parts.clock = r.read_u64_le("clock")?;
            parts.reorgs = r.read_u32_le("reorgs")?;
            Ok(())
        })?;
        for item in self.tree.scan_prefix(b"b") {
            let (key, value) = item?;
            let height = key_u32(&key)?;
            if height as usize != parts.blocks.len() {
                return Err(corrupt(
                    &key,
                    format!(
                        "block {height} follows block {}",
                        parts.blocks.len().wrapping_sub(1)
                    ),
                ));
            }
            parts.blocks.push(decode(&key, &value, |r| {
                let header = BlockHeader::from_bytes(&r.read_array::<80>("header")?);
                let n = r.read_u32_le("txid count")? as usize;
                let mut txids = Vec::with_capacity(n.min(r.remaining() / 32));
                for _ in 0..n {
                    txids.push(Txid(r.read_array::<32>("txid")?));
                }
                Ok(Block::new(header, txids))
            })?);
        }
        if parts.blocks.is_empty() {
            return Err(corrupt(b"b", "no blocks"));
        }
        let mut fees_and_txs: HashMap<Txid, (u64, Transaction)> = HashMap::new();
        for item in self.tree.scan_prefix(b"t") {
            let (key, value) = item?;
            let txid = key_txid(&key)?;
            let (fee, tx) = decode(&key, &value, |r| {
                let fee = r.read_u64_le("fee")?;
                let tx = Transaction::read(r)?;
                Ok((fee, tx))
            })?;
            fees_and_txs.insert(txid, (fee, tx));
        }
        for item in self.tree.scan_prefix(b"s") {
            let (key, value) = item?;
            let txid = key_txid(&key)?;
            let state = decode(&key, &value, read_state)?;
            let (fee, tx) = fees_and_txs
                .remove(&txid)
                .ok_or_else(|| corrupt(&key, "state without transaction"))?;
            parts.txs.insert(
                txid,
                TxEntry {
                    tx: Arc::new(tx),
                    fee,
                    state,
                },
            );
        }
        if let Some(txid) = fees_and_txs.keys().next() {
            return Err(corrupt(&tx_key(txid), "transaction without state"));
        }
        for item in self.tree.scan_prefix(b"u") {
            let (key, value) = item?;
            let outpoint = key_outpoint(&key)?;
            let utxo = decode(&key, &value, |r| {
                let coinbase = r.read_u8("coinbase flag")? != 0;
                let satoshis = r.read_u64_le("satoshis")?;
                let script = r.read_var_bytes("locking script")?.to_vec();
                Ok(Utxo {
                    out: TxOut {
                        satoshis,
                        locking_script: Script::from_bytes(script),
                    },
                    coinbase,
                })
            })?;
            parts.utxos.insert(outpoint, utxo);
        }
        for item in self.tree.scan_prefix(b"x") {
            let (key, value) = item?;
            let outpoint = key_outpoint(&key)?;
            let spender = decode(&key, &value, |r| {
                Ok(Spender {
                    txid: Txid(r.read_array::<32>("spender")?),
                    vin: r.read_u32_le("vin")?,
                })
            })?;
            parts.spends.insert(outpoint, spender);
        }
        for item in self.tree.scan_prefix(b"h") {
            let (key, value) = item?;
            let hash = Hash256(key_txid(&key)?.0);
            let stale = decode(&key, &value, |r| {
                Ok((
                    r.read_u32_le("height")?,
                    BlockHeader::from_bytes(&r.read_array::<80>("header")?),
                ))
            })?;
            parts.stale.insert(hash, stale);
        }
        Ok(parts)
    }

    fn apply(&self, ops: Vec<StoreOp>) -> Result<(), StoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                StoreOp::Created { chain_id } => {
                    batch.insert(KEY_SCHEMA, &[SCHEMA_VERSION]);
                    batch.insert(KEY_CHAIN, versioned(chain_id.as_bytes()));
                }
                StoreOp::PutTx { txid, fee, tx } => {
                    let mut v = vec![RECORD_VERSION];
                    v.extend_from_slice(&fee.to_le_bytes());
                    tx.write(&mut v);
                    batch.insert(tx_key(&txid), v);
                }
                StoreOp::PutState { txid, state } => {
                    batch.insert(key(b's', &txid.0), write_state(&state))
                }
                StoreOp::PutUtxo { outpoint, utxo } => {
                    let mut v = vec![RECORD_VERSION, u8::from(utxo.coinbase)];
                    v.extend_from_slice(&utxo.out.satoshis.to_le_bytes());
                    write_var_bytes(&mut v, utxo.out.locking_script.as_bytes());
                    batch.insert(key(b'u', &outpoint.to_bytes()), v);
                }
                StoreOp::DelUtxo { outpoint } => batch.remove(key(b'u', &outpoint.to_bytes())),
                StoreOp::PutSpend { outpoint, spender } => {
                    let mut v = vec![RECORD_VERSION];
                    v.extend_from_slice(&spender.txid.0);
                    v.extend_from_slice(&spender.vin.to_le_bytes());
                    batch.insert(key(b'x', &outpoint.to_bytes()), v);
                }
                StoreOp::DelSpend { outpoint } => batch.remove(key(b'x', &outpoint.to_bytes())),
                StoreOp::PutBlock { height, block } => {
                    let mut v = Vec::with_capacity(85 + 32 * block.txids.len());
                    v.push(RECORD_VERSION);
                    v.extend_from_slice(&block.header.to_bytes());
                    v.extend_from_slice(&(block.txids.len() as u32).to_le_bytes());
                    for txid in block.txids.iter() {
                        v.extend_from_slice(&txid.0);
                    }
                    batch.insert(key(b'b', &height.to_be_bytes()), v);
                }
                StoreOp::DelBlock { height } => batch.remove(key(b'b', &height.to_be_bytes())),
                StoreOp::PutStale {
                    hash,
                    height,
                    header,
                } => {
                    let mut v = vec![RECORD_VERSION];
                    v.extend_from_slice(&height.to_le_bytes());
                    v.extend_from_slice(&header.to_bytes());
                    batch.insert(key(b'h', &hash.0), v);
                }
                StoreOp::PutMeta { clock, reorgs } => {
                    let mut v = vec![RECORD_VERSION];
                    v.extend_from_slice(&clock.to_le_bytes());
                    v.extend_from_slice(&reorgs.to_le_bytes());
                    batch.insert(KEY_STATE, v);
                }
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The underlying database (tests use it to inspect or tamper with records).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}

/// How long [`SledStore::open`] keeps trying while another handle in this
/// process still holds the directory lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled database. sled 0.34 finishes some writes on its own
/// threads after the last `Db` handle is dropped, and those keep the
/// directory's file lock for a moment: a store closed and reopened in one
/// process (a chainsim restarted in place) may find it still locked. That
/// case is retried for up to [`LOCK_WAIT`]; a lock held by another process
/// fails the same way after the wait.
fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::open(dir) {
            Ok(db) => return Ok(db),
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(source) => {
                return Err(StoreError::Open {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

fn key(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + rest.len());
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

fn tx_key(txid: &Txid) -> Vec<u8> {
    key(b't', &txid.0)
}

fn versioned(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + body.len());
    v.push(RECORD_VERSION);
    v.extend_from_slice(body);
    v
}

/// Printable form of a key: the prefix letter(s) and hex of the rest.
fn show_key(key: &[u8]) -> String {
    if key.starts_with(b"m:") {
        return String::from_utf8_lossy(key).into_owned();
    }
    match key.split_first() {
        Some((p, rest)) => format!("{}:{}", char::from(*p), hex::encode(rest)),
        None => String::from("(empty key)"),
    }
}

fn corrupt(key: &[u8], detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: show_key(key),
        detail: detail.into(),
    }
}

/// The record's body after its version byte, refusing newer versions.
fn body<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a [u8], StoreError> {
    match value.split_first() {
        None => Err(corrupt(key, "empty record")),
        Some((&v, _)) if v > RECORD_VERSION => Err(StoreError::NewerRecord {
            key: show_key(key),
            found: v,
        }),
        Some((&0, _)) => Err(corrupt(key, "version byte 0")),
        Some((_, rest)) => Ok(rest),
    }
}

/// Decodes a record's body with `f`, which must consume all of it.
fn decode<T>(
    key: &[u8],
    value: &[u8],
    f: impl FnOnce(&mut Reader<'_>) -> Result<T, ParseError>,
) -> Result<T, StoreError> {
    let bytes = body(key, value)?;
    let mut r = Reader::new(bytes);
    let out = f(&mut r).map_err(|e| corrupt(key, e.to_string()))?;
    r.finish("end of record")
        .map_err(|e| corrupt(key, e.to_string()))?;
    Ok(out)
}

fn key_u32(key: &[u8]) -> Result<u32, StoreError> {
    match key {
        [_, a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(corrupt(key, "key is not prefix + 4 bytes")),
    }
}

fn key_txid(key: &[u8]) -> Result<Txid, StoreError> {
    let rest: [u8; 32] = key
        .get(1..)
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| corrupt(key, "key is not prefix + 32 bytes"))?;
    Ok(Txid(rest))
}

fn key_outpoint(key: &[u8]) -> Result<Outpoint, StoreError> {
    let rest: [u8; 36] = key
        .get(1..)
        .and_then(|r| r.try_into().ok())
        .ok_or_else(|| corrupt(key, "key is not prefix + 36 bytes"))?;
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&rest[..32]);
    Ok(Outpoint::new(
        Txid(txid),
        u32::from_le_bytes([rest[32], rest[33], rest[34], rest[35]]),
    ))
}

fn write_state(state: &TxState) -> Vec<u8> {
    let mut v = vec![RECORD_VERSION];
    match state {
        TxState::Mempool { seq } => {
            v.push(0);
            v.extend_from_slice(&seq.to_le_bytes());
        }
        TxState::Mined { height, index } => {
            v.push(1);
            v.extend_from_slice(&height.to_le_bytes());
            v.extend_from_slice(&index.to_le_bytes());
        }
        TxState::DoubleSpend { competing } => {
            v.push(2);
            v.extend_from_slice(&(competing.len() as u32).to_le_bytes());
            for txid in competing {
                v.extend_from_slice(&txid.0);
            }
        }
        TxState::Rejected { reason } => {
            v.push(3);
            v.extend_from_slice(&(reason.len() as u32).to_le_bytes());
            v.extend_from_slice(reason.as_bytes());
        }
    }
    v
}

fn read_state(r: &mut Reader<'_>) -> Result<TxState, ParseError> {
    match r.read_u8("state tag")? {
        0 => Ok(TxState::Mempool {
            seq: r.read_u64_le("mempool seq")?,
        }),
        1 => Ok(TxState::Mined {
            height: r.read_u32_le("height")?,
            index: r.read_u32_le("index")?,
        }),
        2 => {
            let n = r.read_u32_le("competing count")? as usize;
            let mut competing = Vec::with_capacity(n.min(r.remaining() / 32));
            for _ in 0..n {
                competing.push(Txid(r.read_array::<32>("competing txid")?));
            }
            Ok(TxState::DoubleSpend { competing })
        }
        3 => {
            let n = r.read_u32_le("reason length")? as usize;
            let reason = String::from_utf8_lossy(r.read_bytes(n, "reason")?).into_owned();
            Ok(TxState::Rejected { reason })
        }
        _ => Err(r.error(
            bsv_format::codec::ParseErrorKind::BadText,
            "state tag (0..=3)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        let states = [
            TxState::Mempool { seq: 7 },
            TxState::Mined {
                height: 101,
                index: 3,
            },
            TxState::DoubleSpend {
                competing: vec![Txid([4; 32]), Txid([5; 32])],
            },
            TxState::Rejected {
                reason: "gone".into(),
            },
        ];
        for s in states {
            let bytes = write_state(&s);
            assert_eq!(decode(b"s", &bytes, read_state).unwrap(), s);
        }
    }

    #[test]
    fn newer_or_damaged_records_are_refused() {
        let mut bytes = write_state(&TxState::Mempool { seq: 1 });
        bytes[0] = RECORD_VERSION + 1;
        assert!(matches!(
            decode(b"s", &bytes, read_state),
            Err(StoreError::NewerRecord { found: 2, .. })
        ));
        let bytes = write_state(&TxState::Mempool { seq: 1 });
        assert!(matches!(
            decode(b"s", &bytes[..5], read_state),
            Err(StoreError::Corrupt { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            decode(b"s", &long, read_state),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode(b"s", &[], read_state),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn keys_print_readably() {
        assert_eq!(show_key(b"m:state"), "m:state");
        assert_eq!(show_key(&key(b'b', &5u32.to_be_bytes())), "b:00000005");
    }
}
