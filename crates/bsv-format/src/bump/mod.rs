//! BRC-74 BUMP (BSV Unified Merkle Path): [`MerklePath`], the proof that one
//! or more transactions ("client txids") are in one block.
//!
//! ```text
//! block_height VI | tree_height u8 (1..=64)
//! tree_height × level (0 = leaves):
//!   n_nodes VI | n_nodes × { offset VI, flags u8, hash 32 (internal order) unless flags == 1 }
//! ```
//! Flags (BRC-74): `0` a plain node hash, `1` "duplicate" (no data: the node
//! equals the working hash, the right edge of an odd-sized level), `2` a client
//! txid (level 0). Any other value is rejected (`bsv-formats.md` §3.1). The
//! node needed at level `h` for the leaf at block index `i` sits at offset
//! `(i >> h) ^ 1` (§3.2); nodes that can be computed from lower levels may be
//! left out.
//!
//! # What every decoded path satisfies
//! Both parse modes check the encoding (canonical integers, flags 0/1/2, no
//! offset listed twice in a level, at most one duplicate marker per level, no
//! truncation) and the tree: level 0 holds at least one leaf with a hash,
//! duplicate markers fit a real Merkle tree (below), and *every* level-0 leaf
//! with a hash (client txid or sibling) leads to the same root, using given
//! nodes first and nodes computed from lower levels otherwise (as ts-sdk
//! `MerklePath`'s constructor does). The root is computed once, at
//! construction, so [`MerklePath::compute_root`] is a lookup.
//!
//! # Duplicate markers fit a real tree (a decision)
//! A block of `N` transactions has `ceil(N / 2^h)` nodes at level `h`; where
//! that count is odd, the last node is paired with itself and BRC-74 writes
//! the missing right sibling as a duplicate marker. So a marker at `(h, o)`
//! says "level `h` has `o` nodes", and both parse modes require one block
//! size `N` that every node fits (`shape`):
//! - a marker's offset is odd (only odd-sized levels are paired);
//! - no node of the marker's level — given, or implied by a node of a lower
//!   level (its ancestor at `h`; level-0 leaves included) — sits at a higher
//!   offset, no node of a higher level lies wholly to its right, and the
//!   markers of different levels agree on `N`;
//! - its left sibling `(h, o - 1)` is given or computable from lower levels.
//!
//! In a single-level compound path a marker can thus only be the last node
//! of level 0, right after the largest leaf. BRC-74 does not spell this out,
//! and ts-sdk does not check it; without it a path such as "leaf 0, marker at
//! 1, leaf 2" decodes, and the producers below can only expand it into two
//! markers in one level, which no decoder accepts. Two liberties remain: a
//! marker at offset 1 (a one-node level paired with itself, which a real
//! tree stops at) is accepted, because ts-sdk's `findOrComputeLeaf` and the
//! ts-stack conformance vectors use one; and the tree height is not checked
//! against `N`. Every path [`MerklePath::from_block`], `extract`, `trim` and
//! `combine` build fits the rule; `combine` refuses two paths of one root
//! whose markers describe different block sizes
//! ([`BumpError::BlockSizeMismatch`]).
//!
//! # Strict and lenient
//! [`OffsetRule::LegalOnly`] ([`MerklePath::from_bytes_strict`]) also rejects a
//! node at level `h >= 1` whose offset is not `(i >> h) ^ 1` for some level-0
//! leaf `i` with a hash: that is the rule for paths we *produce* and accept
//! standalone. [`OffsetRule::AllowExtra`] ([`MerklePath::from_bytes_lenient`])
//! tolerates such extra nodes: real BEEFs carry them (the testnet BEEF at
//! height 1651724, `bsv-formats.md` §12.16) and ts-sdk parses BUMPs inside a
//! BEEF this way.
//!
//! # Single-level compound paths (a decision)
//! ts-sdk accepts a path whose only level is level 0 holding *all* txids of the
//! block (`tree_height == 1`), infers the real height from the largest offset
//! and duplicates the last node of odd-sized levels (§3.4). The BRC-74 text
//! does not describe this, but the shared vectors (block 125632, the ts-stack
//! "compound" vector) expect it to be valid, so we accept it, in both modes,
//! with exactly those rules: the inference applies only when the path has one
//! level. Where the last node of a level is a right child whose left sibling
//! is missing, ts-sdk pairs it with itself too; a real tree never does (that
//! level is even), so we report the missing node instead.
//! [`MerklePath::trim`], [`MerklePath::extract`] and [`MerklePath::combine`]
//! turn such a path into an ordinary multi-level one.
//! A one-level path with a single leaf is a single-transaction block: its root
//! is that leaf.
//!
//! # Wire order
//! Levels are kept in wire order, so decoding then encoding reproduces the
//! input byte for byte even where a level is not sorted by offset (BRC-74 does
//! not require it). Paths we build ([`MerklePath::from_block`], `trim`,
//! `extract`, `combine`) have every level sorted.
//!
//! # Layout
//! - [`MerklePath`], [`PathNode`], [`NodeValue`], [`OffsetRule`], [`BumpError`].
//! - Decoding and encoding, then queries, then building and merging.
//! - `shape`: the duplicate-marker rule (private).
//! - `tree`: root computation and node resolution (private).

mod shape;
mod tree;

use shape::{Shape, ShapeFault};

use crate::codec::{decode_hex, write_varint, ParseError, ParseErrorKind, Reader};
use crate::hash::{Hash256, Txid};

/// The largest tree height a BUMP may declare (BRC-74: a block has at most
/// 2^64 transactions).
pub const MAX_TREE_HEIGHT: u8 = 64;

/// BRC-74 flag: a node hash that is not a client txid.
const FLAG_HASH: u8 = 0;
/// BRC-74 flag: the node duplicates the working hash; no hash follows.
const FLAG_DUPLICATE: u8 = 1;
/// BRC-74 flag: a client txid (the transaction this path proves).
const FLAG_CLIENT: u8 = 2;

/// Smallest possible encoded node: offset (1 byte) + flags (1 byte).
const MIN_NODE_BYTES: usize = 2;
/// Encoded size of a node carrying a hash with a one-byte offset.
const HASH_NODE_BYTES: usize = 34;

/// Errors from decoding, querying, building and merging Merkle paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BumpError {
    /// The bytes are not a well-formed BUMP (truncated, non-canonical integer,
    /// flag other than 0/1/2, offset listed twice in a level, a second
    /// duplicate marker in a level, a duplicate marker at an even offset or
    /// without its left sibling, a node outside the tree the duplicate markers
    /// describe, a node at an illegal offset in strict mode, tree height
    /// outside 1..=64, block height above `u32::MAX`).
    #[error("malformed BUMP: {0}")]
    Parse(#[from] ParseError),
    /// Level 0 holds no leaf with a hash, so the path proves nothing.
    #[error("BUMP level 0 holds no leaf with a hash")]
    EmptyLevel0,
    /// The node needed to climb from level-0 leaf `index` at `height` is neither
    /// given nor computable from lower levels.
    #[error("missing hash for index {index} at height {height}")]
    MissingNode {
        /// Offset (block index) of the level-0 leaf whose path is incomplete.
        index: u64,
        /// Level at which the needed node is missing.
        height: u8,
    },
    /// Two level-0 leaves lead to different roots: the path contradicts itself.
    #[error("level-0 leaves of the BUMP lead to different Merkle roots")]
    MismatchedRoots,
    /// The txid is not a level-0 leaf of this path.
    #[error("txid {0} is not a level-0 leaf of this BUMP")]
    TxidNotFound(Txid),
    /// `combine` was given a path of another block height.
    #[error("cannot combine BUMPs of block heights {ours} and {theirs}")]
    HeightMismatch {
        /// Height of the path being extended.
        ours: u32,
        /// Height of the other path.
        theirs: u32,
    },
    /// `combine` was given a path of the same height with another root.
    #[error("cannot combine BUMPs with different Merkle roots")]
    RootMismatch,
    /// `combine` was given a path of the same block height and root whose
    /// duplicate markers describe a block of another size (a block and its
    /// CVE-2012-2459 twin, the tail repeated, share a root): no path fits both.
    #[error("cannot combine BUMPs that describe blocks of different sizes")]
    BlockSizeMismatch,
    /// `from_block` was given no transactions.
    #[error("a block has at least one transaction")]
    EmptyBlock,
    /// `from_block` was given a client index past the end of the block.
    #[error("client index {index} is outside a block of {block_len} transactions")]
    ClientIndexOutOfRange {
        /// The offending index.
        index: usize,
        /// Number of transactions in the block.
        block_len: usize,
    },
    /// `from_block` / `extract` were given no client transaction.
    #[error("a BUMP needs at least one client transaction")]
    NoClients,
}

/// Whether nodes at levels ≥ 1 must sit at offsets some level-0 leaf needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetRule {
    /// Strict: every node at level `h >= 1` is at `(i >> h) ^ 1` for a level-0
    /// leaf `i` with a hash (ts-sdk `legalOffsetsOnly = true`). For standalone
    /// BUMPs and the ones we produce.
    LegalOnly,
    /// Lenient: extra nodes at other offsets are accepted (ts-sdk parses BUMPs
    /// inside a BEEF this way; real BEEFs need it, `bsv-formats.md` §12.16).
    AllowExtra,
}

/// The content of one node of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeValue {
    /// Flag 0: a node hash (internal byte order) that is not a client txid.
    Hash(Hash256),
    /// Flag 1: the node equals the working hash (right edge of an odd level).
    Duplicate,
    /// Flag 2: a client txid, a transaction this path proves (level 0).
    ClientTxid(Txid),
}

impl NodeValue {
    /// The BRC-74 flag byte: 0, 1 or 2.
    pub fn flag(&self) -> u8 {
        match self {
            NodeValue::Hash(_) => FLAG_HASH,
            NodeValue::Duplicate => FLAG_DUPLICATE,
            NodeValue::ClientTxid(_) => FLAG_CLIENT,
        }
    }

    /// The 32-byte value carried (internal order), if any.
    pub fn hash(&self) -> Option<Hash256> {
        match self {
            NodeValue::Hash(h) => Some(*h),
            NodeValue::Duplicate => None,
            NodeValue::ClientTxid(t) => Some(t.as_hash()),
        }
    }
}

/// One node of one level: its position in the level and its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNode {
    /// Position within the level, counted from the left (0-based). At level 0
    /// it is the transaction's index in the block.
    pub offset: u64,
    /// What the node carries.
    pub value: NodeValue,
}

/// A BRC-74 Merkle path (BUMP), validated at construction: it always holds at
/// least one level-0 leaf with a hash, and all of them lead to [`root`](Self::root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerklePath {
    block_height: u32,
    /// Levels 0.. in wire order (sorted for paths we build).
    levels: Vec<Vec<PathNode>>,
    root: Hash256,
}

impl MerklePath {
    /// Decodes a standalone BUMP with the strict offset rule; `bytes` must hold
    /// exactly one BUMP.
    ///
    /// # Errors
    /// [`BumpError::Parse`] (with the byte offset) for encoding faults,
    /// illegal offsets and trailing bytes; [`BumpError::EmptyLevel0`],
    /// [`BumpError::MissingNode`], [`BumpError::MismatchedRoots`] for an
    /// inconsistent tree.
    pub fn from_bytes_strict(bytes: &[u8]) -> Result<MerklePath, BumpError> {
        Self::from_bytes_with(bytes, OffsetRule::LegalOnly)
    }

    /// Decodes a standalone BUMP with the lenient offset rule (extra nodes
    /// accepted), as inside a BEEF. Errors as [`from_bytes_strict`](Self::from_bytes_strict)
    /// except for illegal offsets.
    pub fn from_bytes_lenient(bytes: &[u8]) -> Result<MerklePath, BumpError> {
        Self::from_bytes_with(bytes, OffsetRule::AllowExtra)
    }

    /// Decodes a strict BUMP from hex. Errors as [`from_bytes_strict`](Self::from_bytes_strict),
    /// or [`ParseErrorKind::BadText`].
    pub fn from_hex_strict(text: &str) -> Result<MerklePath, BumpError> {
        Self::from_bytes_strict(&decode_hex(text)?)
    }

    fn from_bytes_with(bytes: &[u8], rule: OffsetRule) -> Result<MerklePath, BumpError> {
        let mut r = Reader::new(bytes);
        let path = Self::read(&mut r, rule)?;
        r.finish("end of BUMP")?;
        Ok(path)
    }

    /// Reads one BUMP from `r` (for nesting in BEEF), leaving the reader after it.
    ///
    /// # Errors
    /// As [`from_bytes_strict`](Self::from_bytes_strict); parse offsets are
    /// positions in `r`'s whole input. Trailing bytes are the caller's concern.
    pub fn read(r: &mut Reader<'_>, rule: OffsetRule) -> Result<MerklePath, BumpError> {
        let at = r.position();
        let height = r.read_varint("BUMP block height")?;
        let block_height = u32::try_from(height).map_err(|_| {
            ParseError::new(
                at,
                ParseErrorKind::InvalidValue,
                "BUMP block height above u32::MAX",
            )
        })?;
        let at = r.position();
        let tree_height = r.read_u8("BUMP tree height")?;
        if tree_height == 0 || tree_height > MAX_TREE_HEIGHT {
            return Err(ParseError::new(
                at,
                ParseErrorKind::InvalidValue,
                "BUMP tree height (1..=64)",
            )
            .into());
        }
        let mut levels: Vec<Vec<PathNode>> = Vec::with_capacity(usize::from(tree_height));
        // Sorted offsets of the level-0 leaves with a hash (strict mode only).
        let mut legal_leaves: Vec<u64> = Vec::new();
        // The block sizes the nodes read so far fit, and the markers read.
        let mut shape = Shape::new();
        let mut markers: Vec<tree::Marker> = Vec::new();
        for height in 0..tree_height {
            let level = read_level(r, height, rule, &legal_leaves, &mut shape, &mut markers)?;
            if height == 0 && rule == OffsetRule::LegalOnly {
                legal_leaves = level
                    .iter()
                    .filter(|n| n.value.hash().is_some())
                    .map(|n| n.offset)
                    .collect();
                legal_leaves.sort_unstable();
            }
            levels.push(level);
        }
        let root = tree::checked_root(&levels, &markers)?;
        Ok(MerklePath {
            block_height,
            levels,
            root,
        })
    }

    /// Appends the BRC-74 binary encoding (levels in stored order).
    pub fn write(&self, out: &mut Vec<u8>) {
        write_varint(out, u64::from(self.block_height));
        // Invariant: 1..=64 levels (checked when decoding, built by us otherwise).
        out.push(self.levels.len() as u8);
        for level in &self.levels {
            write_varint(out, level.len() as u64);
            for node in level {
                write_varint(out, node.offset);
                out.push(node.value.flag());
                if let Some(h) = node.value.hash() {
                    out.extend_from_slice(&h.0);
                }
            }
        }
    }

    /// The BRC-74 binary encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    /// The BRC-74 binary encoding as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Height of the block this path proves into.
    pub fn block_height(&self) -> u32 {
        self.block_height
    }

    /// Number of levels on the wire (the `tree_height` byte, 1..=64).
    pub fn tree_height(&self) -> u8 {
        self.levels.len() as u8
    }

    /// The levels, level 0 (leaves) first, each in stored order.
    pub fn levels(&self) -> &[Vec<PathNode>] {
        &self.levels
    }

    /// The block's Merkle root (internal order) that every level-0 leaf leads to.
    pub fn root(&self) -> Hash256 {
        self.root
    }

    /// The Merkle root computed from `txid`'s leaf (BRC-74 §"Computing the root").
    ///
    /// # Errors
    /// [`BumpError::TxidNotFound`] unless `txid` is a level-0 leaf with a hash
    /// (client txid or plain sibling) of this path.
    pub fn compute_root(&self, txid: &Txid) -> Result<Hash256, BumpError> {
        if self.contains(txid) {
            Ok(self.root)
        } else {
            Err(BumpError::TxidNotFound(*txid))
        }
    }

    /// The node at (`height`, `offset`): the given node if the path lists one,
    /// else the one computed from its children (ts-sdk `findOrComputeLeaf`):
    /// a hash, or [`NodeValue::Duplicate`] for a given duplicate marker. `None`
    /// if it can be neither found nor computed.
    pub fn node_at(&self, height: u8, offset: u64) -> Option<NodeValue> {
        let mut resolver = tree::Resolver::new(&self.levels);
        resolver
            .lookup(usize::from(height), offset)
            .map(|v| match v {
                tree::Val::Hash(h) => NodeValue::Hash(h),
                tree::Val::Dup => NodeValue::Duplicate,
            })
    }

    /// Block index (level-0 offset) of `txid`'s leaf, if it is one.
    pub fn leaf_offset(&self, txid: &Txid) -> Option<u64> {
        self.level0()
            .iter()
            .find(|n| n.value.hash().is_some_and(|h| h.0 == txid.0))
            .map(|n| n.offset)
    }

    /// Whether `txid` is a level-0 leaf with a hash (client or plain).
    pub fn contains(&self, txid: &Txid) -> bool {
        self.leaf_offset(txid).is_some()
    }

    /// The client txids (level-0 leaves flagged 2), in stored order.
    pub fn client_txids(&self) -> impl Iterator<Item = Txid> + '_ {
        self.level0().iter().filter_map(|n| match n.value {
            NodeValue::ClientTxid(t) => Some(t),
            _ => None,
        })
    }

    fn level0(&self) -> &[PathNode] {
        self.levels.first().map(Vec::as_slice).unwrap_or(&[])
    }

    /// Flags `txid`'s level-0 leaf as a client txid (BEEF merging does this for
    /// transactions that rely on an unflagged leaf). Returns whether it is a leaf.
    pub(crate) fn mark_client(&mut self, txid: &Txid) -> bool {
        let Some(level0) = self.levels.first_mut() else {
            return false;
        };
        for node in level0.iter_mut() {
            if node.value.hash().is_some_and(|h| h.0 == txid.0) {
                node.value = NodeValue::ClientTxid(*txid);
                return true;
            }
        }
        false
    }

    /// Builds the minimal strict path proving `block_txids[i]` for every `i` in
    /// `client_indices` (duplicates ignored), from the full list of a block's
    /// txids in block order: only the nodes a client needs and cannot compute
    /// are emitted, `(i >> h) ^ 1` at each level, with a duplicate marker at the
    /// right edge of odd-sized levels. A one-transaction block gives a one-level
    /// path whose root is that txid.
    ///
    /// # Errors
    /// [`BumpError::EmptyBlock`], [`BumpError::NoClients`],
    /// [`BumpError::ClientIndexOutOfRange`].
    pub fn from_block(
        block_height: u32,
        block_txids: &[Txid],
        client_indices: &[usize],
    ) -> Result<MerklePath, BumpError> {
        let (levels, root) = tree::from_block(block_txids, client_indices)?;
        Ok(MerklePath {
            block_height,
            levels,
            root,
        })
    }

    /// A path for the same block proving only `txids` (each must be a level-0
    /// leaf with a hash here), with only the nodes they need, every level sorted,
    /// single-level compound paths expanded. The result satisfies the strict rule.
    ///
    /// # Errors
    /// [`BumpError::NoClients`] for an empty list, [`BumpError::TxidNotFound`].
    pub fn extract(&self, txids: &[Txid]) -> Result<MerklePath, BumpError> {
        let mut clients = Vec::with_capacity(txids.len());
        for txid in txids {
            let offset = self
                .leaf_offset(txid)
                .ok_or(BumpError::TxidNotFound(*txid))?;
            clients.push((offset, *txid));
        }
        if clients.is_empty() {
            return Err(BumpError::NoClients);
        }
        let levels = tree::materialize(&[self], &mut clients, self.root)?;
        Ok(MerklePath {
            block_height: self.block_height,
            levels,
            root: self.root,
        })
    }

    /// Removes every node the client txids do not need (BRC-74 "Merging",
    /// ts-sdk `trim`), materialising needed nodes that were only computable
    /// from nodes being removed, and sorts every level. A path without client
    /// txids is left unchanged (trimming would leave nothing to prove).
    pub fn trim(&mut self) {
        let mut clients: Vec<(u64, Txid)> = self
            .level0()
            .iter()
            .filter_map(|n| match n.value {
                NodeValue::ClientTxid(t) => Some((n.offset, t)),
                _ => None,
            })
            .collect();
        if clients.is_empty() {
            return;
        }
        // Cannot fail: the path was validated, so every node a leaf needs
        // resolves. Should it ever fail, the path stays as it was.
        if let Ok(levels) = tree::materialize(&[&*self], &mut clients, self.root) {
            self.levels = levels;
        }
    }

    /// Merges `other` (a path of the same block) into this one: the union of
    /// their nodes, a leaf that is a client txid in either stays one (never
    /// downgraded), then trimmed to what the client txids need (BRC-74
    /// "Merging", ts-sdk `combine`). Without client txids in either path, this
    /// path is left unchanged; on error it is left unchanged too.
    ///
    /// # Errors
    /// [`BumpError::HeightMismatch`], [`BumpError::RootMismatch`],
    /// [`BumpError::BlockSizeMismatch`] (see the module docs).
    pub fn combine(&mut self, other: &MerklePath) -> Result<(), BumpError> {
        if self.block_height != other.block_height {
            return Err(BumpError::HeightMismatch {
                ours: self.block_height,
                theirs: other.block_height,
            });
        }
        if self.root != other.root {
            return Err(BumpError::RootMismatch);
        }
        let mut clients: Vec<(u64, Txid)> = self
            .level0()
            .iter()
            .chain(other.level0())
            .filter_map(|n| match n.value {
                NodeValue::ClientTxid(t) => Some((n.offset, t)),
                _ => None,
            })
            .collect();
        if clients.is_empty() {
            return Ok(());
        }
        let levels = tree::materialize(&[&*self, other], &mut clients, self.root)?;
        self.levels = levels;
        Ok(())
    }
}

/// Reads one level; checks flags, duplicate offsets, duplicate markers, (in
/// strict mode, for levels ≥ 1) legal offsets, and that every node fits the
/// tree the markers read so far describe (`shape`, updated). Appends the
/// level's duplicate marker, if any, to `markers`.
fn read_level(
    r: &mut Reader<'_>,
    height: u8,
    rule: OffsetRule,
    legal_leaves: &[u64],
    shape: &mut Shape,
    markers: &mut Vec<tree::Marker>,
) -> Result<Vec<PathNode>, BumpError> {
    let level_start = r.position();
    let n = r.read_count(MIN_NODE_BYTES, "BUMP level node count")?;
    // Nodes with a hash take 34+ bytes; cap the up-front allocation by that.
    let mut nodes: Vec<PathNode> = Vec::with_capacity(n.min(r.remaining() / HASH_NODE_BYTES + 1));
    let mut sorted = true;
    let mut seen_duplicate_marker = false;
    for _ in 0..n {
        let node_at = r.position();
        let offset = r.read_varint("BUMP node offset")?;
        let flag_at = r.position();
        let value = match r.read_u8("BUMP node flags")? {
            FLAG_HASH => NodeValue::Hash(Hash256(r.read_array("BUMP node hash")?)),
            FLAG_CLIENT => NodeValue::ClientTxid(Txid(r.read_array("BUMP client txid")?)),
            FLAG_DUPLICATE => {
                // A level has one right edge, so one duplicate marker at most.
                if seen_duplicate_marker {
                    return Err(ParseError::new(
                        node_at,
                        ParseErrorKind::InvalidValue,
                        "second duplicate marker in one BUMP level",
                    )
                    .into());
                }
                seen_duplicate_marker = true;
                NodeValue::Duplicate
            }
            _ => {
                return Err(ParseError::new(
                    flag_at,
                    ParseErrorKind::InvalidFlag,
                    "BUMP node flags (0, 1 or 2)",
                )
                .into())
            }
        };
        if let Some(prev) = nodes.last() {
            if offset == prev.offset {
                return Err(ParseError::new(
                    node_at,
                    ParseErrorKind::DuplicateOffset,
                    "BUMP node offset",
                )
                .into());
            }
            sorted &= offset > prev.offset;
        }
        if height > 0
            && rule == OffsetRule::LegalOnly
            && !tree::is_legal_offset(legal_leaves, height, offset)
        {
            return Err(ParseError::new(
                node_at,
                ParseErrorKind::IllegalOffset,
                "BUMP node offset",
            )
            .into());
        }
        // BRC-74: a duplicate marker stands at the right edge of an odd-sized
        // level; see `shape`.
        shape.add(height, offset, &value).map_err(|fault| {
            let context = match fault {
                ShapeFault::EvenMarker => "BUMP duplicate marker at an even offset",
                ShapeFault::OutsideTree => {
                    "BUMP node outside the tree its duplicate markers describe"
                }
            };
            ParseError::new(node_at, ParseErrorKind::InvalidValue, context)
        })?;
        if value == NodeValue::Duplicate {
            markers.push(tree::Marker {
                height,
                offset,
                at: node_at,
            });
        }
        nodes.push(PathNode { offset, value });
    }
    if !sorted {
        check_unsorted_duplicates(r.input(), level_start, &nodes)?;
    }
    Ok(nodes)
}

/// For a level not sorted on the wire: finds an offset listed twice and reports
/// it at the byte position of its second occurrence.
fn check_unsorted_duplicates(
    input: &[u8],
    level_start: usize,
    nodes: &[PathNode],
) -> Result<(), BumpError> {
    let mut offsets: Vec<u64> = nodes.iter().map(|n| n.offset).collect();
    offsets.sort_unstable();
    let Some(dup) = offsets.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]) else {
        return Ok(());
    };
    // Re-read the level (it parsed once, so this cannot fail) to locate it.
    let mut r = Reader::new(input);
    r.read_bytes(level_start, "BUMP level")?;
    let n = r.read_count(MIN_NODE_BYTES, "BUMP level node count")?;
    let mut seen = false;
    for _ in 0..n {
        let at = r.position();
        let offset = r.read_varint("BUMP node offset")?;
        if r.read_u8("BUMP node flags")? != FLAG_DUPLICATE {
            r.read_bytes(32, "BUMP node hash")?;
        }
        if offset == dup {
            if seen {
                return Err(ParseError::new(
                    at,
                    ParseErrorKind::DuplicateOffset,
                    "BUMP node offset",
                )
                .into());
            }
            seen = true;
        }
    }
    Err(ParseError::new(level_start, ParseErrorKind::DuplicateOffset, "BUMP level").into())
}

#[cfg(test)]
mod tests;
