//! Building, merging, sorting and cutting BEEFs; EF extraction.

use std::sync::OnceLock;

use super::{Beef, BeefError, BeefTx, BeefVersion, TxData, TxidMap};
use crate::bump::MerklePath;
use crate::ef::EfTransaction;
use crate::hash::Txid;
use crate::tx::{Transaction, TxOut};

impl Beef {
    /// An empty BEEF of the given version (no BUMPs, no transactions, not Atomic).
    pub fn new(version: BeefVersion) -> Beef {
        Beef {
            version,
            subject: None,
            bumps: Vec::new(),
            txs: Vec::new(),
            index: OnceLock::new(),
        }
    }

    /// Adds a Merkle path, combining it with a BUMP of the same block (same
    /// height and root) if there is one (BRC-74 "Merging"), and links every
    /// unproven transaction it proves. Returns the BUMP's index.
    pub fn add_bump(&mut self, path: MerklePath) -> usize {
        // Combining trims to client txids: keep the leaves our txs rely on.
        self.flag_proven_leaves();
        let index = self.merge_bump(path);
        self.link_unproven();
        index
    }

    /// Appends a full transaction and returns its txid. If the txid is already
    /// present as a txid-only entry, that entry is upgraded in place; if it is
    /// present in full, nothing changes. The transaction is linked to a BUMP
    /// that has it as a level-0 leaf, if any. Add parents before children (or
    /// call [`sort`](Self::sort)): BRC-62 requires parents first.
    pub fn add_transaction(&mut self, tx: Transaction) -> Txid {
        let txid = tx.txid();
        let bump_index = self.bump_proving(&txid);
        self.upsert(BeefTx::full(txid, tx, bump_index));
        txid
    }

    /// Appends a BRC-96 txid-only entry (a transaction the receiver is assumed
    /// to know) unless the txid is present; a V1 BEEF becomes V2, since V1
    /// cannot carry such entries. Returns whether an entry was added.
    pub fn add_txid_only(&mut self, txid: Txid) -> bool {
        if self.position(&txid).is_some() {
            return false;
        }
        self.version = BeefVersion::V2;
        self.index_pushed(txid, self.txs.len());
        self.txs.push(BeefTx::txid_only(txid));
        true
    }

    /// Merges `other` into this BEEF (ts-sdk `mergeBeef`): BUMPs of the same
    /// block are combined, others appended; each transaction is kept once,
    /// a full transaction replacing a txid-only entry and a proven one an
    /// unproven one, never the reverse. The result is a plain BEEF (no Atomic
    /// subject), V2 if it holds txid-only entries, re-sorted with
    /// [`sort`](Self::sort) if parents no longer come first.
    pub fn merge(&mut self, mut other: Beef) {
        // Flag the leaves proven transactions rely on, so combining BUMPs
        // (which trims to client txids) keeps them.
        self.flag_proven_leaves();
        other.flag_proven_leaves();
        let bump_map: Vec<usize> = std::mem::take(&mut other.bumps)
            .into_iter()
            .map(|b| self.merge_bump(b))
            .collect();
        for entry in other.txs {
            let BeefTx { txid, data } = entry;
            let data = match data {
                TxData::Full { tx, bump_index } => TxData::Full {
                    tx,
                    bump_index: bump_index.and_then(|i| bump_map.get(i).copied()),
                },
                TxData::TxidOnly => TxData::TxidOnly,
            };
            self.upsert(BeefTx { txid, data });
        }
        if self.txs.iter().any(BeefTx::is_txid_only) {
            self.version = BeefVersion::V2;
        }
        self.subject = None;
        self.link_unproven();
        if self.order_violation().is_some() {
            self.sort();
        }
    }

    /// Restores parents-before-children order (BRC-62 recommends Kahn's
    /// algorithm), in the order ts-sdk `sortTxs` produces so results compare
    /// byte for byte: first entries that cannot be sorted (an input missing
    /// from the BEEF, then those depending on such), then txid-only entries,
    /// then proven transactions in their current order, then unproven ones in
    /// passes, each pass taking, in current order, every transaction whose
    /// inputs are all placed by then. BUMP indexes are unaffected.
    ///
    /// ts-sdk repeats passes over the queue (quadratic for a reversed chain);
    /// here each transaction's pass is computed from its parents' in one
    /// depth-first walk, O(transactions + inputs), same order.
    pub fn sort(&mut self) {
        let order = self.sorted_order();
        let mut slots: Vec<Option<BeefTx>> = std::mem::take(&mut self.txs)
            .into_iter()
            .map(Some)
            .collect();
        self.txs = order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect();
        self.index = OnceLock::new();
    }

    /// Positions in the order [`sort`](Self::sort) produces.
    fn sorted_order(&self) -> Vec<usize> {
        /// Pass of an unproven transaction that can never be placed.
        const NOT_VALID: usize = usize::MAX;
        /// Not yet computed / being computed (a cycle, impossible with real txids).
        const UNSEEN: usize = usize::MAX - 1;
        const IN_PROGRESS: usize = usize::MAX - 2;
        /// Proven and txid-only entries: placed before every pass.
        const READY: usize = usize::MAX - 3;
        let n = self.txs.len();
        let (mut missing, mut txid_only, mut proven, mut pending) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // pass[i] for pending entries; NOT_VALID for missing ones; READY for the rest.
        let mut pass = vec![READY; n];
        for (i, entry) in self.txs.iter().enumerate() {
            match entry.unproven() {
                None if entry.is_txid_only() => txid_only.push(i),
                None => proven.push(i),
                Some(tx)
                    if tx
                        .inputs
                        .iter()
                        .any(|inp| self.position(&inp.prev_out.txid).is_none()) =>
                {
                    missing.push(i);
                    pass[i] = NOT_VALID;
                }
                Some(_) => {
                    pending.push(i);
                    pass[i] = UNSEEN;
                }
            }
        }
        // The pass placing `t`: a parent placed earlier in the same pass (it
        // comes before `t` in the queue) allows the same pass, a later one the next.
        let parents = |t: usize| -> Vec<usize> {
            self.txs
                .get(t)
                .and_then(BeefTx::unproven)
                .map(|tx| {
                    tx.inputs
                        .iter()
                        .filter_map(|inp| self.position(&inp.prev_out.txid))
                        .collect()
                })
                .unwrap_or_default()
        };
        for &start in &pending {
            if pass.get(start) != Some(&UNSEEN) {
                continue;
            }
            pass[start] = IN_PROGRESS;
            let mut stack: Vec<(usize, Vec<usize>, usize)> = vec![(start, parents(start), 0)];
            while let Some((t, ps, next)) = stack.last_mut() {
                if let Some(&u) = ps.get(*next) {
                    *next += 1;
                    if pass.get(u) == Some(&UNSEEN) {
                        pass[u] = IN_PROGRESS;
                        let pu = parents(u);
                        stack.push((u, pu, 0));
                    }
                    continue;
                }
                let t = *t;
                let mut p = 0;
                for &u in ps.iter() {
                    p = match pass.get(u).copied() {
                        Some(READY) => p,
                        Some(NOT_VALID | IN_PROGRESS | UNSEEN) | None => NOT_VALID,
                        Some(pu) if u < t => p.max(pu),
                        Some(pu) => p.max(pu + 1),
                    };
                    if p == NOT_VALID {
                        break;
                    }
                }
                pass[t] = p;
                stack.pop();
            }
        }
        let (not_valid, mut placed): (Vec<usize>, Vec<usize>) = pending
            .into_iter()
            .partition(|&i| pass.get(i) == Some(&NOT_VALID));
        placed.sort_by_key(|&i| (pass.get(i).copied(), i));
        let mut order = missing;
        order.extend(not_valid);
        order.extend(txid_only);
        order.extend(proven);
        order.extend(placed);
        order
    }

    /// The Atomic BEEF (BRC-95) for `subject`: the subject and exactly the
    /// ancestors needed to validate it (inputs of unproven transactions,
    /// recursively, down to proven or txid-only entries), in this BEEF's order
    /// (sorted if that order puts a parent late), with only the BUMPs they use,
    /// re-indexed. Same version as this BEEF.
    ///
    /// # Errors
    /// [`BeefError::NotFound`] for an unknown subject, [`BeefError::SourceMissing`]
    /// if an input of an unproven transaction in the closure is not here.
    pub fn to_atomic(&self, subject: &Txid) -> Result<Beef, BeefError> {
        let start = self
            .position(subject)
            .ok_or(BeefError::NotFound(*subject))?;
        let mut keep = vec![false; self.txs.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            match keep.get_mut(i) {
                Some(seen) if !*seen => *seen = true,
                _ => continue,
            }
            let Some(entry) = self.txs.get(i) else {
                continue;
            };
            let Some(tx) = entry.unproven() else { continue };
            for (k, input) in tx.inputs.iter().enumerate() {
                let parent = input.prev_out.txid;
                let j = self.position(&parent).ok_or(BeefError::SourceMissing {
                    txid: entry.txid,
                    input: k,
                    parent,
                    vout: input.prev_out.vout,
                })?;
                stack.push(j);
            }
        }
        let mut bump_map: Vec<Option<usize>> = vec![None; self.bumps.len()];
        let mut bumps = Vec::new();
        let mut txs = Vec::new();
        for (entry, _) in self.txs.iter().zip(&keep).filter(|(_, k)| **k) {
            let mut entry = entry.clone();
            if let TxData::Full {
                bump_index: Some(b),
                ..
            } = &mut entry.data
            {
                let old = *b;
                let new = match bump_map.get(old).copied().flatten() {
                    Some(new) => new,
                    None => {
                        bumps.push(self.bumps.get(old).cloned().ok_or(
                            BeefError::BumpLeafMissing {
                                txid: entry.txid,
                                bump_index: old,
                            },
                        )?);
                        let new = bumps.len() - 1;
                        if let Some(slot) = bump_map.get_mut(old) {
                            *slot = Some(new);
                        }
                        new
                    }
                };
                *b = new;
            }
            txs.push(entry);
        }
        let mut atomic = Beef {
            version: self.version,
            subject: Some(*subject),
            bumps,
            txs,
            index: OnceLock::new(),
        };
        if atomic.order_violation().is_some() {
            atomic.sort();
        }
        Ok(atomic)
    }

    /// The BRC-30 Extended Format of `txid`: the transaction with, for every
    /// input, the output it spends taken from this BEEF.
    ///
    /// # Errors
    /// [`BeefError::NotFound`], [`BeefError::TxidOnly`] (for `txid`),
    /// [`BeefError::SourceMissing`] if a parent is absent, txid-only, or lacks
    /// the output.
    pub fn ef_of(&self, txid: &Txid) -> Result<EfTransaction, BeefError> {
        let entry = self.find(txid).ok_or(BeefError::NotFound(*txid))?;
        let tx = entry.transaction().ok_or(BeefError::TxidOnly(*txid))?;
        let mut source_outputs: Vec<TxOut> = Vec::with_capacity(tx.inputs.len());
        for (k, input) in tx.inputs.iter().enumerate() {
            let parent = input.prev_out.txid;
            let out = self
                .find(&parent)
                .and_then(BeefTx::transaction)
                .and_then(|p| p.outputs.get(input.prev_out.vout as usize))
                .ok_or(BeefError::SourceMissing {
                    txid: *txid,
                    input: k,
                    parent,
                    vout: input.prev_out.vout,
                })?;
            source_outputs.push(out.clone());
        }
        // One source output per input, by construction.
        Ok(EfTransaction {
            tx: tx.clone(),
            source_outputs,
        })
    }

    /// Index of a BUMP with `txid` as a level-0 leaf.
    fn bump_proving(&self, txid: &Txid) -> Option<usize> {
        self.bumps.iter().position(|b| b.contains(txid))
    }

    /// Adds or combines a BUMP; returns its index.
    fn merge_bump(&mut self, path: MerklePath) -> usize {
        for (i, b) in self.bumps.iter_mut().enumerate() {
            if b.block_height() == path.block_height()
                && b.root() == path.root()
                && b.combine(&path).is_ok()
            {
                return i;
            }
        }
        self.bumps.push(path);
        self.bumps.len() - 1
    }

    /// Inserts an entry or upgrades the existing one (txid-only → full,
    /// unproven → proven); never downgrades.
    fn upsert(&mut self, new: BeefTx) {
        let Some(i) = self.position(&new.txid) else {
            self.index_pushed(new.txid, self.txs.len());
            self.txs.push(new);
            return;
        };
        let Some(old) = self.txs.get_mut(i) else {
            return;
        };
        let upgrade = matches!(
            (&old.data, &new.data),
            (TxData::TxidOnly, TxData::Full { .. })
                | (
                    TxData::Full {
                        bump_index: None,
                        ..
                    },
                    TxData::Full {
                        bump_index: Some(_),
                        ..
                    }
                )
        );
        if upgrade {
            *old = new;
        }
    }

    /// Links every unproven full transaction to a BUMP that proves it (the
    /// first such BUMP), flagging its leaf as a client txid.
    fn link_unproven(&mut self) {
        let mut leaves: TxidMap<usize> = TxidMap::default();
        for (b, bump) in self.bumps.iter().enumerate() {
            for node in bump.levels().first().into_iter().flatten() {
                if let Some(h) = node.value.hash() {
                    leaves.entry(Txid(h.0)).or_insert(b);
                }
            }
        }
        for entry in &mut self.txs {
            let txid = entry.txid;
            if let TxData::Full {
                bump_index: bump_index @ None,
                ..
            } = &mut entry.data
            {
                if let Some(&b) = leaves.get(&txid) {
                    if let Some(bump) = self.bumps.get_mut(b) {
                        bump.mark_client(&txid);
                    }
                    *bump_index = Some(b);
                }
            }
        }
    }

    /// Flags, in each BUMP, the leaves of the transactions it proves.
    fn flag_proven_leaves(&mut self) {
        for entry in &self.txs {
            if let Some(b) = entry.bump_index() {
                if let Some(bump) = self.bumps.get_mut(b) {
                    bump.mark_client(&entry.txid);
                }
            }
        }
    }
}
