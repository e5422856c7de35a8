//! BEEF: a transaction together with the ancestry and Merkle paths that let a
//! receiver verify it by SPV. BRC-62 (V1), BRC-96 (V2, with txid-only entries)
//! and BRC-95 (Atomic: one subject transaction and exactly its ancestry).
//!
//! ```text
//! Atomic (BRC-95, optional): 01 01 01 01 | subject txid 32 (internal order)
//! version u32le: 0100BEEF (V1) | 0200BEEF (V2)
//! n_bumps VI | n_bumps × BUMP (BRC-74, crate::bump)
//! n_txs VI, then per tx:
//!   V1: raw tx | has_bump u8 (0/1) | bump_index VI if has_bump
//!   V2: format u8: 0 raw tx | 1 bump_index VI, raw tx | 2 txid 32
//! ```
//!
//! # What decoding checks, and what is left to verification
//! [`Beef::from_bytes`] rejects anything that makes the *value* meaningless:
//! unknown magic (including an Atomic prefix around another Atomic prefix),
//! truncation, trailing bytes, non-canonical integers, a malformed or
//! self-contradicting BUMP (parsed with the lenient offset rule, as ts-sdk
//! does inside BEEF, `bsv-formats.md` §12.16), a V1 bump flag or V2 format
//! byte other than 0/1(/2), a bump index past the BUMP list, and a transaction
//! whose bump index names a BUMP that has no level-0 leaf with its txid. So
//! every proven transaction of a decoded `Beef` really is a leaf of its BUMP.
//!
//! Rules about how the transactions relate are checked by
//! [`spv`](crate::spv), because a BEEF that breaks them can still be inspected,
//! merged or repaired: duplicate txids, parents after children (see
//! [`Beef::sort`]), missing inputs, txid-only entries, BUMPs of one height with
//! different roots, the Atomic subject and closure, scripts, amounts.
//!
//! Txids are computed once while decoding, as `sha256d` of exactly the bytes
//! read (no re-serialisation); from 64 transactions on, that hashing — most of
//! the decoding cost — is spread over rayon's threads. Leaf membership is
//! checked once the whole input has been read, so an encoding fault anywhere
//! is reported before a leaf mismatch. The txid index behind [`Beef::find`]
//! is built on first use. Encoding reproduces a decoded BEEF byte for byte.
//!
//! # Layout
//! - [`BeefVersion`], [`BeefTx`], [`Beef`], [`BeefError`].
//! - Decoding, encoding and queries here; building, merging, sorting, Atomic
//!   closure and EF extraction in `build`.

mod build;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::bump::{BumpError, MerklePath, OffsetRule};
use crate::codec::{decode_hex, write_varint, ParseError, ParseErrorKind, Reader};
use crate::hash::Txid;
use crate::tx::Transaction;

/// `0100BEEF` read as a little-endian u32 (BRC-62).
pub const BEEF_V1_MAGIC: u32 = 0xEFBE_0001;
/// `0200BEEF` read as a little-endian u32 (BRC-96).
pub const BEEF_V2_MAGIC: u32 = 0xEFBE_0002;
/// `01010101`, the BRC-95 Atomic BEEF prefix.
pub const ATOMIC_BEEF_MAGIC: u32 = 0x0101_0101;

/// BRC-96 format byte: raw transaction, no BUMP.
const FORMAT_RAW: u8 = 0;
/// BRC-96 format byte: BUMP index, then raw transaction.
const FORMAT_RAW_WITH_BUMP: u8 = 1;
/// BRC-96 format byte: txid only.
const FORMAT_TXID_ONLY: u8 = 2;

/// Smallest encoded BUMP with a leaf hash: height, tree height, count, offset, flags, hash.
const MIN_BUMP_BYTES: usize = 37;
/// Smallest encoded transaction entry: a 10-byte raw tx plus one flag byte.
const MIN_TX_ENTRY_BYTES: usize = 11;
/// From this many full transactions on, txids are hashed on rayon's threads.
const PARALLEL_HASH_MIN_TXS: usize = 64;

/// Errors from decoding a BEEF and from the operations on a [`Beef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeefError {
    /// The bytes are not a well-formed BEEF: unknown magic, truncation,
    /// trailing bytes, non-canonical integer, bad flag/format byte, bump index
    /// past the BUMP list, malformed transaction. Offsets are in the input.
    #[error("malformed BEEF: {0}")]
    Parse(#[from] ParseError),
    /// BUMP number `index` proves nothing or contradicts itself
    /// ([`BumpError::EmptyLevel0`], [`BumpError::MissingNode`],
    /// [`BumpError::MismatchedRoots`]). Byte-level faults inside a BUMP are
    /// [`BeefError::Parse`] with their offset in the BEEF.
    #[error("BUMP {index} of the BEEF: {error}")]
    Bump {
        /// Position of the BUMP in the BEEF's list.
        index: usize,
        /// What is wrong with it.
        error: BumpError,
    },
    /// A transaction names a BUMP that has no level-0 leaf with its txid.
    #[error("transaction {txid} names BUMP {bump_index}, which has no level-0 leaf with its txid")]
    BumpLeafMissing {
        /// The transaction.
        txid: Txid,
        /// The BUMP it names.
        bump_index: usize,
    },
    /// BEEF V1 (BRC-62) cannot carry txid-only entries.
    #[error("txid-only entry {0} cannot be written as BEEF V1")]
    TxidOnlyInV1(Txid),
    /// The transaction is not in this BEEF.
    #[error("transaction {0} is not in this BEEF")]
    NotFound(Txid),
    /// The transaction is only a txid-only entry, its bytes are not here.
    #[error("transaction {0} is a txid-only entry")]
    TxidOnly(Txid),
    /// An input spends an output this BEEF does not hold in full.
    #[error("input {input} of {txid} spends {parent}:{vout}, which this BEEF does not hold")]
    SourceMissing {
        /// The spending transaction.
        txid: Txid,
        /// Index of its input.
        input: usize,
        /// The transaction whose output is spent.
        parent: Txid,
        /// Index of the spent output.
        vout: u32,
    },
}

/// The body format of a BEEF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeefVersion {
    /// BRC-62: raw transactions with an optional BUMP index after each.
    V1,
    /// BRC-96: a format byte before each entry; adds txid-only entries.
    V2,
}

impl BeefVersion {
    /// The 4-byte magic as a little-endian u32.
    pub fn magic(self) -> u32 {
        match self {
            BeefVersion::V1 => BEEF_V1_MAGIC,
            BeefVersion::V2 => BEEF_V2_MAGIC,
        }
    }
}

/// One transaction entry of a BEEF: a full transaction (proven by a BUMP of
/// the BEEF or not), or a BRC-96 txid-only entry. The txid is computed by us
/// (never taken from the sender) for full transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeefTx {
    txid: Txid,
    data: TxData,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TxData {
    Full {
        tx: Transaction,
        bump_index: Option<usize>,
    },
    TxidOnly,
}

impl BeefTx {
    fn full(txid: Txid, tx: Transaction, bump_index: Option<usize>) -> Self {
        BeefTx {
            txid,
            data: TxData::Full { tx, bump_index },
        }
    }

    fn txid_only(txid: Txid) -> Self {
        BeefTx {
            txid,
            data: TxData::TxidOnly,
        }
    }

    /// The transaction id.
    pub fn txid(&self) -> Txid {
        self.txid
    }

    /// The transaction, unless this is a txid-only entry.
    pub fn transaction(&self) -> Option<&Transaction> {
        match &self.data {
            TxData::Full { tx, .. } => Some(tx),
            TxData::TxidOnly => None,
        }
    }

    /// Index of the BUMP (in [`Beef::bumps`]) proving this transaction, if any.
    pub fn bump_index(&self) -> Option<usize> {
        match self.data {
            TxData::Full { bump_index, .. } => bump_index,
            TxData::TxidOnly => None,
        }
    }

    /// Whether this is a BRC-96 txid-only entry.
    pub fn is_txid_only(&self) -> bool {
        matches!(self.data, TxData::TxidOnly)
    }

    /// The full transaction if it is not proven by a BUMP (its inputs must then
    /// come from the BEEF).
    pub(crate) fn unproven(&self) -> Option<&Transaction> {
        match &self.data {
            TxData::Full {
                tx,
                bump_index: None,
            } => Some(tx),
            _ => None,
        }
    }
}

/// Deterministic hasher for txid keys: txids are already uniform hashes, so a
/// multiply-rotate mix of their words is enough (and draws no randomness, as
/// the core must not).
#[derive(Default, Clone, Copy)]
pub(crate) struct TxidHasher(u64);

impl Hasher for TxidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Map from txid to position, built with [`TxidHasher`].
pub(crate) type TxidMap<V> = HashMap<Txid, V, BuildHasherDefault<TxidHasher>>;

/// A decoded (or built) BEEF: BUMPs, transactions in order, and for Atomic
/// BEEF the subject txid.
///
/// Invariants: every bump index is in range and its BUMP has a level-0 leaf
/// with that transaction's txid; a V1 BEEF holds no txid-only entry; the
/// index, once built, maps each txid to its first position.
#[derive(Debug, Clone)]
pub struct Beef {
    version: BeefVersion,
    subject: Option<Txid>,
    bumps: Vec<MerklePath>,
    txs: Vec<BeefTx>,
    /// Built on first lookup, so decoding pays only for what it must.
    index: OnceLock<TxidMap<usize>>,
}

/// Equal content; the lookup index is a cache and does not count.
impl PartialEq for Beef {
    fn eq(&self, other: &Beef) -> bool {
        self.version == other.version
            && self.subject == other.subject
            && self.bumps == other.bumps
            && self.txs == other.txs
    }
}

impl Eq for Beef {}

impl Beef {
    /// Decodes a V1, V2 or Atomic BEEF that must fill `bytes` exactly.
    ///
    /// # Errors
    /// [`BeefError::Parse`] (with the byte offset), [`BeefError::Bump`],
    /// [`BeefError::BumpLeafMissing`]; see the module docs for the checks.
    pub fn from_bytes(bytes: &[u8]) -> Result<Beef, BeefError> {
        let mut r = Reader::new(bytes);
        let mut magic = r.read_u32_le("BEEF version")?;
        let mut subject = None;
        if magic == ATOMIC_BEEF_MAGIC {
            // BRC-95: subject txid, then a complete V1 or V2 BEEF.
            subject = Some(Txid(r.read_array("Atomic BEEF subject txid")?));
            magic = r.read_u32_le("BEEF version")?;
        }
        let version = match magic {
            BEEF_V1_MAGIC => BeefVersion::V1,
            BEEF_V2_MAGIC => BeefVersion::V2,
            _ => {
                return Err(ParseError::new(
                    r.position() - 4,
                    ParseErrorKind::UnknownVersion,
                    "BEEF version",
                )
                .into())
            }
        };
        let n_bumps = r.read_count(MIN_BUMP_BYTES, "BEEF BUMP count")?;
        let mut bumps = Vec::with_capacity(n_bumps);
        for index in 0..n_bumps {
            let bump =
                MerklePath::read(&mut r, OffsetRule::AllowExtra).map_err(|error| match error {
                    BumpError::Parse(e) => BeefError::Parse(e),
                    error => BeefError::Bump { index, error },
                })?;
            bumps.push(bump);
        }
        let n_txs = r.read_count(MIN_TX_ENTRY_BYTES, "BEEF transaction count")?;
        let mut txs = Vec::with_capacity(n_txs);
        // The raw bytes of each full transaction, in order, hashed below.
        let mut raws: Vec<&[u8]> = Vec::with_capacity(n_txs);
        for _ in 0..n_txs {
            let (entry, raw) = match version {
                BeefVersion::V1 => read_v1_entry(&mut r, &bumps)?,
                BeefVersion::V2 => read_v2_entry(&mut r, &bumps)?,
            };
            raws.extend(raw);
            txs.push(entry);
        }
        r.finish("end of BEEF")?;
        // Txids: sha256d of exactly the bytes read, once each; hashing is most
        // of the decoding cost, so large BEEFs spread it over threads.
        let txids: Vec<Txid> = if raws.len() >= PARALLEL_HASH_MIN_TXS {
            raws.par_iter().map(|raw| Txid::of_raw(raw)).collect()
        } else {
            raws.iter().map(|raw| Txid::of_raw(raw)).collect()
        };
        let leaves = LeafCheck::new(&bumps);
        let mut txids = txids.into_iter();
        for entry in txs.iter_mut().filter(|e| !e.is_txid_only()) {
            if let Some(txid) = txids.next() {
                entry.txid = txid;
            }
            if let Some(bump_index) = entry.bump_index() {
                // BRC-62: a transaction with a BUMP must be a level-0 leaf of it.
                if !leaves.holds(&bumps, bump_index, &entry.txid) {
                    return Err(BeefError::BumpLeafMissing {
                        txid: entry.txid,
                        bump_index,
                    });
                }
            }
        }
        Ok(Beef {
            version,
            subject,
            bumps,
            txs,
            index: OnceLock::new(),
        })
    }

    /// Decodes a BEEF from hex. Errors as [`from_bytes`](Self::from_bytes)
    /// (offsets count bytes), or [`ParseErrorKind::BadText`].
    pub fn from_hex(text: &str) -> Result<Beef, BeefError> {
        Beef::from_bytes(&decode_hex(text)?)
    }

    /// Appends the encoding: the Atomic prefix if this BEEF has a subject, then
    /// the body in [`version`](Self::version). A decoded BEEF re-encodes to
    /// the same bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        if let Some(subject) = &self.subject {
            out.extend_from_slice(&ATOMIC_BEEF_MAGIC.to_le_bytes());
            out.extend_from_slice(&subject.0);
        }
        out.extend_from_slice(&self.version.magic().to_le_bytes());
        write_varint(out, self.bumps.len() as u64);
        for bump in &self.bumps {
            bump.write(out);
        }
        write_varint(out, self.txs.len() as u64);
        for entry in &self.txs {
            match (&entry.data, self.version) {
                (TxData::Full { tx, bump_index }, BeefVersion::V1) => {
                    tx.write(out);
                    match bump_index {
                        Some(i) => {
                            out.push(1);
                            write_varint(out, *i as u64);
                        }
                        None => out.push(0),
                    }
                }
                (TxData::Full { tx, bump_index }, BeefVersion::V2) => {
                    match bump_index {
                        Some(i) => {
                            out.push(FORMAT_RAW_WITH_BUMP);
                            write_varint(out, *i as u64);
                        }
                        None => out.push(FORMAT_RAW),
                    }
                    tx.write(out);
                }
                // Unreachable for V1 by the type's invariant; V2's form is the only one.
                (TxData::TxidOnly, _) => {
                    out.push(FORMAT_TXID_ONLY);
                    out.extend_from_slice(&entry.txid.0);
                }
            }
        }
    }

    /// The encoding (see [`write`](Self::write)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let tx_bytes: usize = self
            .txs
            .iter()
            .map(|t| t.transaction().map_or(33, |tx| tx.size() + 10))
            .sum();
        let mut out = Vec::with_capacity(64 + tx_bytes + self.bumps.len() * 512);
        self.write(&mut out);
        out
    }

    /// The encoding as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// The body format.
    pub fn version(&self) -> BeefVersion {
        self.version
    }

    /// Changes the body format used by [`write`](Self::write).
    ///
    /// # Errors
    /// [`BeefError::TxidOnlyInV1`] when asking for V1 while a txid-only entry is present.
    pub fn set_version(&mut self, version: BeefVersion) -> Result<(), BeefError> {
        if version == BeefVersion::V1 {
            if let Some(t) = self.txs.iter().find(|t| t.is_txid_only()) {
                return Err(BeefError::TxidOnlyInV1(t.txid));
            }
        }
        self.version = version;
        Ok(())
    }

    /// The BRC-95 subject txid if this is an Atomic BEEF.
    pub fn subject(&self) -> Option<Txid> {
        self.subject
    }

    /// The BUMPs, in order (bump indexes point into this list).
    pub fn bumps(&self) -> &[MerklePath] {
        &self.bumps
    }

    /// The transaction entries, in order.
    pub fn txs(&self) -> &[BeefTx] {
        &self.txs
    }

    /// Number of transaction entries.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether there are no transaction entries.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// The entry for `txid` (the first, should it appear twice).
    pub fn find(&self, txid: &Txid) -> Option<&BeefTx> {
        self.position(txid).and_then(|i| self.txs.get(i))
    }

    /// Position of `txid`'s (first) entry in [`txs`](Self::txs).
    pub fn position(&self, txid: &Txid) -> Option<usize> {
        self.index
            .get_or_init(|| build_index(&self.txs))
            .get(txid)
            .copied()
    }

    /// Records that `txid` now sits at `position` (after a push), if the index
    /// is built; otherwise it will be built from the entries when needed.
    fn index_pushed(&mut self, txid: Txid, position: usize) {
        if let Some(index) = self.index.get_mut() {
            index.entry(txid).or_insert(position);
        }
    }

    /// The first transaction entry that appears before one of its in-BEEF
    /// parents, as `(child position, input index, parent position)`. Only
    /// unproven full transactions need their parents (BRC-62).
    pub fn order_violation(&self) -> Option<(usize, usize, usize)> {
        for (i, entry) in self.txs.iter().enumerate() {
            let Some(tx) = entry.unproven() else { continue };
            for (k, input) in tx.inputs.iter().enumerate() {
                if let Some(j) = self.position(&input.prev_out.txid) {
                    if j >= i {
                        return Some((i, k, j));
                    }
                }
            }
        }
        None
    }
}

fn build_index(txs: &[BeefTx]) -> TxidMap<usize> {
    let mut index = TxidMap::with_capacity_and_hasher(txs.len(), Default::default());
    for (i, t) in txs.iter().enumerate() {
        index.entry(t.txid).or_insert(i);
    }
    index
}

/// Reads a bump index and checks it against the BUMP list and the txid.
fn read_bump_index(r: &mut Reader<'_>, bumps: &[MerklePath]) -> Result<usize, ParseError> {
    let at = r.position();
    let index = r.read_varint("BEEF bump index")?;
    match usize::try_from(index) {
        Ok(i) if i < bumps.len() => Ok(i),
        _ => Err(ParseError::new(
            at,
            ParseErrorKind::IndexOutOfRange,
            "BEEF bump index",
        )),
    }
}

/// Answers "is `txid` a level-0 leaf of BUMP `i`": by scanning for the usual
/// handful of leaves, through a hash set when the BUMPs hold many (so a BEEF
/// of many transactions sharing a large BUMP stays linear).
enum LeafCheck {
    Scan,
    Set(HashSet<(Txid, usize), BuildHasherDefault<TxidHasher>>),
}

impl LeafCheck {
    /// Leaves above which the set is built.
    const SCAN_LIMIT: usize = 64;

    fn new(bumps: &[MerklePath]) -> LeafCheck {
        let level0 = |b: &MerklePath| b.levels().first().map_or(0, Vec::len);
        if bumps.iter().map(level0).sum::<usize>() <= Self::SCAN_LIMIT {
            return LeafCheck::Scan;
        }
        let mut set = HashSet::default();
        for (i, b) in bumps.iter().enumerate() {
            for node in b.levels().first().into_iter().flatten() {
                if let Some(h) = node.value.hash() {
                    set.insert((Txid(h.0), i));
                }
            }
        }
        LeafCheck::Set(set)
    }

    fn holds(&self, bumps: &[MerklePath], bump_index: usize, txid: &Txid) -> bool {
        match self {
            LeafCheck::Scan => bumps.get(bump_index).is_some_and(|b| b.contains(txid)),
            LeafCheck::Set(set) => set.contains(&(*txid, bump_index)),
        }
    }
}

/// A decoded entry (a full transaction's txid still to be computed) and, for
/// a full transaction, its raw bytes.
type RawEntry<'a> = (BeefTx, Option<&'a [u8]>);

/// Reads one raw transaction, returning it with the bytes it was read from.
fn read_raw_tx<'a>(r: &mut Reader<'a>) -> Result<(Transaction, &'a [u8]), ParseError> {
    let start = r.position();
    let tx = Transaction::read(r)?;
    Ok((tx, r.span_from(start)))
}

/// BRC-62 entry: raw tx, has_bump byte, bump index.
fn read_v1_entry<'a>(r: &mut Reader<'a>, bumps: &[MerklePath]) -> Result<RawEntry<'a>, BeefError> {
    let (tx, raw) = read_raw_tx(r)?;
    let at = r.position();
    let bump_index = match r.read_u8("BEEF V1 has-bump flag")? {
        0 => None,
        1 => Some(read_bump_index(r, bumps)?),
        _ => {
            return Err(ParseError::new(
                at,
                ParseErrorKind::InvalidFlag,
                "BEEF V1 has-bump flag (0 or 1)",
            )
            .into())
        }
    };
    Ok((BeefTx::full(Txid::default(), tx, bump_index), Some(raw)))
}

/// BRC-96 entry: format byte, then bump index + raw tx, raw tx, or txid.
fn read_v2_entry<'a>(r: &mut Reader<'a>, bumps: &[MerklePath]) -> Result<RawEntry<'a>, BeefError> {
    let at = r.position();
    let bump_index = match r.read_u8("BEEF V2 format byte")? {
        FORMAT_RAW => None,
        FORMAT_RAW_WITH_BUMP => Some(read_bump_index(r, bumps)?),
        FORMAT_TXID_ONLY => {
            return Ok((
                BeefTx::txid_only(Txid(r.read_array("BEEF V2 txid-only entry")?)),
                None,
            ))
        }
        // BRC-96 defines 0..=2; go-sdk rejects the rest, ts-sdk 2.1.0 reads them as 0 (§12.12).
        _ => {
            return Err(ParseError::new(
                at,
                ParseErrorKind::InvalidFlag,
                "BEEF V2 format byte (0, 1 or 2)",
            )
            .into())
        }
    };
    let (tx, raw) = read_raw_tx(r)?;
    Ok((BeefTx::full(Txid::default(), tx, bump_index), Some(raw)))
}

#[cfg(test)]
mod tests;
