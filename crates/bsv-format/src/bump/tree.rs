//! Root computation and node resolution for [`MerklePath`](super::MerklePath).
//!
//! A node at `(height, offset)` *resolves* to the given node if the path lists
//! one, else to the parent of its two children at `height - 1` (resolved the
//! same way; a right child that is a duplicate marker, or — in a single-level
//! compound path only — a missing right child at the right edge, doubles the
//! left one). This is ts-sdk's `findOrComputeLeaf`, computed bottom-up once per
//! level instead of recursively per lookup, so hostile paths cost O(n log n).

use std::borrow::Cow;

use super::{shape, BumpError, NodeValue, PathNode};
use crate::codec::{ParseError, ParseErrorKind};
use crate::hash::{Hash256, Txid};

/// A resolved node: a hash, or "equals the working hash".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Val {
    Hash(Hash256),
    Dup,
}

fn parent(left: &Hash256, right: &Hash256) -> Hash256 {
    Hash256::merkle_parent(left, right)
}

/// Levels the root computation climbs: 0 for a one-level, one-leaf path (a
/// single-transaction block: the root is the leaf), else the larger of the
/// level count and the bit length of the largest level-0 offset (ts-sdk infers
/// the height this way for single-level compound paths).
pub(super) fn effective_height(levels: &[Vec<PathNode>]) -> usize {
    let level0 = levels.first().map(Vec::as_slice).unwrap_or(&[]);
    if levels.len() == 1 && level0.len() == 1 {
        return 0;
    }
    let max0 = level0.iter().map(|n| n.offset).max().unwrap_or(0);
    levels.len().max((64 - max0.leading_zeros()) as usize)
}

/// Whether a node at `height >= 1` and `offset` is one some leaf in
/// `leaves` (sorted offsets of level-0 leaves with a hash) needs: there is a
/// leaf `i` with `(i >> height) ^ 1 == offset`, i.e. `i` in
/// `[(offset ^ 1) << height, ((offset ^ 1) + 1) << height)`.
pub(super) fn is_legal_offset(leaves: &[u64], height: u8, offset: u64) -> bool {
    let base = u128::from(offset ^ 1);
    let lo = base << height;
    let hi = (base + 1) << height;
    let first = leaves.partition_point(|&i| u128::from(i) < lo);
    leaves.get(first).is_some_and(|&i| u128::from(i) < hi)
}

fn is_sorted(level: &[PathNode]) -> bool {
    level.windows(2).all(|w| w[0].offset < w[1].offset)
}

/// Resolves nodes of one path; computed levels are built lazily, once.
pub(super) struct Resolver<'a> {
    /// Given levels, sorted by offset (borrowed when already sorted).
    given: Vec<Cow<'a, [PathNode]>>,
    /// Single-level compound path: right-edge nodes may be implied duplicates.
    compound: bool,
    /// Largest level-0 offset.
    max0: u64,
    /// `computed[h]`: every node computable from resolved children at `h - 1`,
    /// sorted by offset; `computed[0]` is empty.
    computed: Vec<Vec<(u64, Hash256)>>,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(levels: &'a [Vec<PathNode>]) -> Self {
        let given: Vec<Cow<'a, [PathNode]>> = levels
            .iter()
            .map(|l| {
                if is_sorted(l) {
                    Cow::Borrowed(l.as_slice())
                } else {
                    let mut owned = l.clone();
                    owned.sort_by_key(|n| n.offset);
                    Cow::Owned(owned)
                }
            })
            .collect();
        let max0 = given
            .first()
            .and_then(|l| l.last())
            .map(|n| n.offset)
            .unwrap_or(0);
        Resolver {
            compound: levels.len() == 1,
            max0,
            given,
            computed: vec![Vec::new()],
        }
    }

    fn given_at(&self, height: usize, offset: u64) -> Option<Val> {
        let level = self.given.get(height)?;
        let i = level.binary_search_by_key(&offset, |n| n.offset).ok()?;
        level.get(i).map(|n| match n.value.hash() {
            Some(h) => Val::Hash(h),
            None => Val::Dup,
        })
    }

    /// The node at `(height, offset)`: given first, else computed.
    pub(super) fn lookup(&mut self, height: usize, offset: u64) -> Option<Val> {
        if let Some(v) = self.given_at(height, offset) {
            return Some(v);
        }
        if height == 0 {
            return None;
        }
        while self.computed.len() <= height {
            let level = self.compute_level(self.computed.len());
            self.computed.push(level);
        }
        let level = self.computed.get(height)?;
        let i = level.binary_search_by_key(&offset, |e| e.0).ok()?;
        level.get(i).map(|e| Val::Hash(e.1))
    }

    /// The "missing sibling" rule of single-level compound paths: the last
    /// node of a level pairs with itself when it is a left child, i.e. when
    /// the level (`position + 1` nodes) is odd. ts-sdk also pairs a last node
    /// that is a *right* child whose left sibling is missing; no real tree
    /// does that (the level is even), and the pairing would stand for a
    /// duplicate marker at an even offset, so such a path is `MissingNode`.
    pub(super) fn implied_duplicate(&self, height: usize, position: u64) -> bool {
        self.compound && height < 64 && position & 1 == 0 && position == self.max0 >> height
    }

    /// Every parent computable from resolved nodes at `height - 1`.
    fn compute_level(&self, height: usize) -> Vec<(u64, Hash256)> {
        let below = height - 1;
        let given: &[PathNode] = self.given.get(below).map(|c| &**c).unwrap_or(&[]);
        let computed: &[(u64, Hash256)] =
            self.computed.get(below).map(Vec::as_slice).unwrap_or(&[]);
        // Resolved nodes at `below`, sorted, given ones taking precedence.
        let mut known: Vec<(u64, Val)> = Vec::with_capacity(given.len() + computed.len());
        let (mut gi, mut ci) = (given.iter().peekable(), computed.iter().peekable());
        loop {
            let next = match (gi.peek(), ci.peek()) {
                (Some(g), Some(c)) if g.offset > c.0 => ci.next().map(|c| (c.0, Val::Hash(c.1))),
                (Some(g), Some(c)) => {
                    if g.offset == c.0 {
                        ci.next();
                    }
                    gi.next()
                        .map(|g| (g.offset, g.value.hash().map_or(Val::Dup, Val::Hash)))
                }
                (Some(_), None) => gi
                    .next()
                    .map(|g| (g.offset, g.value.hash().map_or(Val::Dup, Val::Hash))),
                (None, Some(_)) => ci.next().map(|c| (c.0, Val::Hash(c.1))),
                (None, None) => None,
            };
            match next {
                Some(e) => known.push(e),
                None => break,
            }
        }
        let mut out = Vec::with_capacity(known.len() / 2 + 1);
        for (i, &(offset, val)) in known.iter().enumerate() {
            let Val::Hash(left) = val else { continue };
            if offset & 1 == 1 {
                continue;
            }
            let right = known.get(i + 1).filter(|e| e.0 == offset + 1).map(|e| e.1);
            let node = match right {
                Some(Val::Hash(r)) => parent(&left, &r),
                Some(Val::Dup) => parent(&left, &left),
                None if self.implied_duplicate(below, offset) => parent(&left, &left),
                None => continue,
            };
            out.push((offset >> 1, node));
        }
        out
    }
}

/// A duplicate marker as read from the wire: its level, its offset (odd) and
/// the byte position of its node, for the error.
#[derive(Debug, Clone, Copy)]
pub(super) struct Marker {
    pub(super) height: u8,
    pub(super) offset: u64,
    pub(super) at: usize,
}

/// The root every level-0 leaf with a hash leads to. See [`checked_root`].
pub(super) fn root_of(levels: &[Vec<PathNode>]) -> Result<Hash256, BumpError> {
    checked_root(levels, &[])
}

/// The root every level-0 leaf with a hash leads to, after checking that the
/// left sibling `(height, offset - 1)` of every marker in `markers` is given
/// or computable (a duplicate marker repeats that node).
///
/// Climbs from all leaves level by level; leaves whose paths meet share
/// the work, and meeting with different values means different roots.
///
/// # Errors
/// [`BumpError::EmptyLevel0`]; [`BumpError::Parse`] (`InvalidValue` at the
/// marker's byte position) for a marker whose left sibling does not resolve;
/// [`BumpError::MissingNode`], [`BumpError::MismatchedRoots`].
pub(super) fn checked_root(
    levels: &[Vec<PathNode>],
    markers: &[Marker],
) -> Result<Hash256, BumpError> {
    let mut resolver = Resolver::new(levels);
    // (position at the current level, working hash, level-0 offset it came from)
    let mut walkers: Vec<(u64, Hash256, u64)> = resolver
        .given
        .first()
        .map(|l| {
            l.iter()
                .filter_map(|n| n.value.hash().map(|h| (n.offset, h, n.offset)))
                .collect()
        })
        .unwrap_or_default();
    let Some(&(_, first, _)) = walkers.first() else {
        return Err(BumpError::EmptyLevel0);
    };
    for m in markers {
        // Marker offsets are odd (checked when read), so `^ 1` is `- 1`.
        if resolver
            .lookup(usize::from(m.height), m.offset ^ 1)
            .is_none()
        {
            return Err(ParseError::new(
                m.at,
                ParseErrorKind::InvalidValue,
                "BUMP duplicate marker without its left sibling",
            )
            .into());
        }
    }
    let height = effective_height(levels);
    if height == 0 {
        return Ok(first);
    }
    let mut next: Vec<(u64, Hash256, u64)> = Vec::with_capacity(walkers.len());
    for h in 0..height {
        next.clear();
        for &(position, working, leaf) in &walkers {
            let sibling = position ^ 1;
            let up = match resolver.lookup(h, sibling) {
                Some(Val::Dup) => parent(&working, &working),
                Some(Val::Hash(s)) if sibling & 1 == 1 => parent(&working, &s),
                Some(Val::Hash(s)) => parent(&s, &working),
                None if resolver.implied_duplicate(h, position) => parent(&working, &working),
                None => {
                    return Err(BumpError::MissingNode {
                        index: leaf,
                        height: h as u8,
                    })
                }
            };
            let position = position >> 1;
            match next.last() {
                Some(&(p, w, _)) if p == position => {
                    if w != up {
                        return Err(BumpError::MismatchedRoots);
                    }
                }
                _ => next.push((position, up, leaf)),
            }
        }
        std::mem::swap(&mut walkers, &mut next);
    }
    // After `height` levels every leaf offset (< 2^height) is at position 0.
    match walkers.as_slice() {
        [(_, root, _)] => Ok(*root),
        _ => Err(BumpError::MismatchedRoots),
    }
}

/// The levels of a path proving exactly `clients` (offset, txid), with only
/// the nodes they need and cannot compute, each level sorted. Node values come
/// from `sources` (paths of one block with root `root`), first that resolves.
/// The result is checked to lead to `root`.
pub(super) fn materialize(
    sources: &[&super::MerklePath],
    clients: &mut Vec<(u64, Txid)>,
    root: Hash256,
) -> Result<Vec<Vec<PathNode>>, BumpError> {
    clients.sort_by_key(|c| c.0);
    clients.dedup_by_key(|c| c.0);
    let height = sources
        .iter()
        .map(|s| effective_height(&s.levels))
        .max()
        .unwrap_or(0);
    if height == 0 {
        // Single-transaction block: the one leaf is the root.
        let level0 = clients
            .iter()
            .map(|&(offset, t)| PathNode {
                offset,
                value: NodeValue::ClientTxid(t),
            })
            .collect();
        let levels = vec![level0];
        return if root_of(&levels)? == root {
            Ok(levels)
        } else {
            Err(BumpError::MismatchedRoots)
        };
    }
    let mut resolvers: Vec<Resolver<'_>> =
        sources.iter().map(|s| Resolver::new(&s.levels)).collect();
    let mut levels = Vec::with_capacity(height);
    // (position at this level, level-0 offset it came from), sorted, unique.
    let mut positions: Vec<(u64, u64)> = clients.iter().map(|c| (c.0, c.0)).collect();
    for h in 0..height {
        let mut level: Vec<PathNode> = Vec::new();
        if h == 0 {
            level.extend(clients.iter().map(|&(offset, t)| PathNode {
                offset,
                value: NodeValue::ClientTxid(t),
            }));
        }
        for &(position, leaf) in &positions {
            let sibling = position ^ 1;
            if positions.binary_search_by_key(&sibling, |p| p.0).is_ok() {
                continue; // computable from (or itself) a client's path
            }
            let found = resolvers.iter_mut().find_map(|r| r.lookup(h, sibling));
            let value = match found {
                Some(Val::Hash(x)) => NodeValue::Hash(x),
                Some(Val::Dup) => NodeValue::Duplicate,
                None if resolvers.iter().any(|r| r.implied_duplicate(h, position)) => {
                    NodeValue::Duplicate
                }
                None => {
                    return Err(BumpError::MissingNode {
                        index: leaf,
                        height: h as u8,
                    })
                }
            };
            level.push(PathNode {
                offset: sibling,
                value,
            });
        }
        level.sort_by_key(|n| n.offset);
        levels.push(level);
        positions = positions.iter().map(|&(p, leaf)| (p >> 1, leaf)).collect();
        positions.dedup_by_key(|p| p.0);
    }
    // One valid source gives a path that fits its tree; two sources of one
    // root can still describe different block sizes (a block and its
    // CVE-2012-2459 twin with the tail repeated), which no path can join.
    shape::check(&levels).map_err(|_| BumpError::BlockSizeMismatch)?;
    if root_of(&levels)? == root {
        Ok(levels)
    } else {
        Err(BumpError::MismatchedRoots)
    }
}

/// Levels and root of the minimal path for `client_indices` in a block whose
/// txids are `block_txids` (block order). See [`super::MerklePath::from_block`].
pub(super) fn from_block(
    block_txids: &[Txid],
    client_indices: &[usize],
) -> Result<(Vec<Vec<PathNode>>, Hash256), BumpError> {
    let n = block_txids.len();
    if n == 0 {
        return Err(BumpError::EmptyBlock);
    }
    let mut clients: Vec<usize> = client_indices.to_vec();
    clients.sort_unstable();
    clients.dedup();
    match clients.last() {
        None => return Err(BumpError::NoClients),
        Some(&index) if index >= n => {
            return Err(BumpError::ClientIndexOutOfRange {
                index,
                block_len: n,
            })
        }
        Some(_) => {}
    }
    let leaf = |i: usize| PathNode {
        offset: i as u64,
        value: NodeValue::ClientTxid(block_txids[i]),
    };
    if n == 1 {
        return Ok((vec![vec![leaf(0)]], block_txids[0].as_hash()));
    }
    // The full tree, level by level; odd levels pair their last node with itself.
    let mut tree: Vec<Vec<Hash256>> = vec![block_txids.iter().map(Txid::as_hash).collect()];
    while let Some(level) = tree.last().filter(|l| l.len() > 1) {
        let up: Vec<Hash256> = level
            .chunks(2)
            .map(|pair| parent(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
        tree.push(up);
    }
    let root = tree
        .last()
        .and_then(|l| l.first())
        .copied()
        .unwrap_or_default();
    let mut levels = Vec::with_capacity(tree.len() - 1);
    let mut positions: Vec<usize> = clients.clone();
    for (h, full) in tree.iter().take(tree.len() - 1).enumerate() {
        let mut level: Vec<PathNode> = if h == 0 {
            clients.iter().map(|&i| leaf(i)).collect()
        } else {
            Vec::new()
        };
        for &p in &positions {
            let sibling = p ^ 1;
            if positions.binary_search(&sibling).is_ok() {
                continue;
            }
            let value = match full.get(sibling) {
                Some(x) => NodeValue::Hash(*x),
                None => NodeValue::Duplicate,
            };
            level.push(PathNode {
                offset: sibling as u64,
                value,
            });
        }
        level.sort_by_key(|n| n.offset);
        levels.push(level);
        positions = positions.iter().map(|p| p >> 1).collect();
        positions.dedup();
    }
    Ok((levels, root))
}
