//! The tree-shape rule for duplicate markers (BRC-74 flag 1).
//!
//! A block of `N` transactions has `n_h = ceil(N / 2^h)` nodes at level `h`
//! (0 = leaves). Where `n_h` is odd the tree pairs the last node with itself,
//! and BRC-74 writes that missing right sibling as a duplicate marker at
//! offset `n_h`: the marker *is* the statement "level `h` has `n_h` nodes",
//! so it pins `N` to `((n_h - 1)·2^h, n_h·2^h]`. A node with a hash at
//! `(h, p)` is a real node, so `N > p·2^h`. A path fits a real tree when one
//! `N` satisfies all of these at once: [`Shape`] keeps the interval of such
//! `N` and reports the node that empties it. (A path without markers leaves
//! `N` unbounded above, so only markers can make a path misfit.)
//!
//! With at most one marker per level this says, for every marker at `(h, o)`:
//! `o` is odd; no node of level `h` — given, or implied by a node of a lower
//! level (its ancestor at `h`, level-0 leaves included) — sits at an offset
//! above `o`; every node of a higher level covers some position below `o`;
//! and markers of different levels agree on `N`. The left sibling
//! `(h, o - 1)` must also resolve; that needs the whole path and is checked
//! with the root (`tree::checked_root`).

use super::{NodeValue, PathNode};

/// Why a node does not fit the tree the path's duplicate markers describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShapeFault {
    /// A duplicate marker at an even offset: a level of `n` nodes is paired
    /// at offset `n`, and only odd levels are paired.
    EvenMarker,
    /// No block size fits this node together with the ones before it.
    OutsideTree,
}

/// The block sizes `N` (in transactions) a path fits so far: `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    min: u128,
    max: u128,
}

impl Shape {
    /// No node seen: any block of at least one transaction.
    pub(super) fn new() -> Self {
        Shape {
            min: 1,
            max: u128::MAX,
        }
    }

    /// Adds the node at (`height` < 64, `offset`).
    pub(super) fn add(
        &mut self,
        height: u8,
        offset: u64,
        value: &NodeValue,
    ) -> Result<(), ShapeFault> {
        // offset < 2^64 and height < 64: every bound below is < 2^128.
        let o = u128::from(offset);
        match value {
            NodeValue::Duplicate => {
                if offset & 1 == 0 {
                    return Err(ShapeFault::EvenMarker);
                }
                // Level `height` has exactly `offset` nodes.
                self.min = self.min.max(((o - 1) << height) + 1);
                self.max = self.max.min(o << height);
            }
            // A real node: the level has more than `offset` nodes.
            NodeValue::Hash(_) | NodeValue::ClientTxid(_) => {
                self.min = self.min.max((o << height) + 1)
            }
        }
        if self.min > self.max {
            Err(ShapeFault::OutsideTree)
        } else {
            Ok(())
        }
    }
}

/// Checks whole levels (level 0 first), e.g. a path we built.
pub(super) fn check(levels: &[Vec<PathNode>]) -> Result<(), ShapeFault> {
    let mut shape = Shape::new();
    for (height, level) in levels.iter().enumerate() {
        for node in level {
            // Invariant: at most 64 levels, so height < 64.
            shape.add(height as u8, node.offset, &node.value)?;
        }
    }
    Ok(())
}
