//! A fake chain: a mempool, blocks mined on demand, and a node's checks on
//! every broadcast (DESIGN.md §6, the rules chainsim applies, without HTTP).
//!
//! What a broadcast must pass, in this order: the transaction is not already
//! known (else it is accepted again: "already known" is success); it has
//! inputs and outputs; every input spends a known output (mempool or block);
//! no input spends an output another transaction spent (else
//! [`BroadcastOutcome::DoubleSpend`] naming the competitors); it is final
//! for the next block ([`legs::is_final`] at `tip + 1`); its outputs do not
//! exceed its inputs; every input's script verifies with
//! [`bsv_format::script::interpreter::verify_input`] under the flags the saga
//! checks its own legs with. [`FakeChain::mine`] puts the whole mempool
//! into the next block (every accepted transaction is final there).
//!
//! Blocks have a placeholder first transaction (so no two blocks share a
//! root) followed by the mempool in acceptance order; roots come from
//! [`MerklePath::from_block`], the BUMP of a mined transaction likewise, and
//! [`FakeChain`] answers SPV's questions as a [`ChainTracker`].
//!
//! # Layout
//! - [`FakeChain`]: faucet, broadcast, mine, look-ups, BEEF, balances.
//! - [`chain_flags`]: the script flags every input is checked with.

use std::collections::BTreeMap;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::hash::sha256d;
use bsv_format::script::interpreter::{verify_input, VerifyFlags};
use bsv_format::spv::ChainTracker;
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use saga_core::legs;
use saga_core::saga::BroadcastOutcome;
use saga_core::units::Height;

/// The flags every input is verified with: the node's standard
/// post-Chronicle rules plus MINIMALIF, as the saga checks its own legs.
pub fn chain_flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle() | VerifyFlags::MINIMALIF
}

/// A transaction the chain knows, and the height of its block once mined.
#[derive(Debug, Clone)]
struct Known {
    tx: Transaction,
    block: Option<Height>,
}

/// One simulated chain (see the module docs).
#[derive(Debug, Clone)]
pub struct FakeChain {
    id: String,
    tip: Height,
    roots: BTreeMap<u32, Hash256>,
    blocks: BTreeMap<u32, Vec<Txid>>,
    known: BTreeMap<Txid, Known>,
    mempool: Vec<Txid>,
    outputs: BTreeMap<Outpoint, TxOut>,
    spent_by: BTreeMap<Outpoint, Txid>,
    faucet_count: u32,
}

impl FakeChain {
    /// A chain named `id` whose tip is `tip` (blocks up to it are empty and
    /// have no root this chain vouches for).
    pub fn new(id: &str, tip: Height) -> FakeChain {
        FakeChain {
            id: id.to_string(),
            tip,
            roots: BTreeMap::new(),
            blocks: BTreeMap::new(),
            known: BTreeMap::new(),
            mempool: Vec::new(),
            outputs: BTreeMap::new(),
            spent_by: BTreeMap::new(),
            faucet_count: 0,
        }
    }

    /// The chain id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Height of the last block.
    pub fn tip(&self) -> Height {
        self.tip
    }

    /// Creates an output of `satoshis` locked by `script` in a faucet
    /// transaction (one made-up input, not checked) put in the mempool; it
    /// is mined with the next block. Returns the output.
    pub fn faucet(&mut self, script: Script, satoshis: u64) -> Outpoint {
        self.faucet_count += 1;
        let mut seed = b"saga-testkit/faucet/".to_vec();
        seed.extend_from_slice(self.id.as_bytes());
        seed.extend_from_slice(&self.faucet_count.to_le_bytes());
        let tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(Txid(sha256d(&seed)), 0),
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![TxOut {
                satoshis,
                locking_script: script,
            }],
            lock_time: 0,
        };
        let txid = self.accept(tx);
        Outpoint::new(txid, 0)
    }

    /// Submits `tx` as a node would (see the module docs).
    pub fn broadcast(&mut self, tx: &Transaction) -> BroadcastOutcome {
        let txid = tx.txid();
        if self.known.contains_key(&txid) {
            return BroadcastOutcome::Accepted;
        }
        if tx.inputs.is_empty() || tx.outputs.is_empty() {
            return rejected("no inputs or no outputs");
        }
        let mut spent = Vec::with_capacity(tx.inputs.len());
        let mut competing = Vec::new();
        for input in &tx.inputs {
            let Some(out) = self.outputs.get(&input.prev_out) else {
                return rejected(&format!("missing input {}", input.prev_out));
            };
            if let Some(other) = self.spent_by.get(&input.prev_out) {
                competing.push(*other);
            }
            spent.push(out.clone());
        }
        if !competing.is_empty() {
            return BroadcastOutcome::DoubleSpend { competing };
        }
        if !legs::is_final(tx, Height(self.tip.0 + 1)) {
            return rejected(&format!(
                "non-final: lock time {} at next block {}",
                tx.lock_time,
                self.tip.0 + 1
            ));
        }
        let total_in: u128 = spent.iter().map(|o| u128::from(o.satoshis)).sum();
        let total_out: u128 = tx.outputs.iter().map(|o| u128::from(o.satoshis)).sum();
        if total_out > total_in {
            return rejected(&format!("outputs {total_out} exceed inputs {total_in}"));
        }
        for (n, out) in spent.iter().enumerate() {
            if let Err(e) = verify_input(tx, n, &out.locking_script, out.satoshis, chain_flags()) {
                return rejected(&format!("input {n}: {e}"));
            }
        }
        self.accept(tx.clone());
        BroadcastOutcome::Accepted
    }

    fn accept(&mut self, tx: Transaction) -> Txid {
        let txid = tx.txid();
        for input in &tx.inputs {
            self.spent_by.insert(input.prev_out, txid);
        }
        for (vout, out) in tx.outputs.iter().enumerate() {
            let vout = u32::try_from(vout).unwrap_or(u32::MAX);
            self.outputs.insert(Outpoint::new(txid, vout), out.clone());
        }
        self.known.insert(txid, Known { tx, block: None });
        self.mempool.push(txid);
        txid
    }

    /// Mines `n` blocks, the first with the whole mempool. Returns the new tip.
    pub fn mine(&mut self, n: u32) -> Height {
        for _ in 0..n {
            let height = self.tip.0 + 1;
            let mut seed = b"saga-testkit/block/".to_vec();
            seed.extend_from_slice(self.id.as_bytes());
            seed.extend_from_slice(&height.to_le_bytes());
            let mut txids = vec![Txid(sha256d(&seed))];
            for txid in self.mempool.drain(..) {
                if let Some(k) = self.known.get_mut(&txid) {
                    k.block = Some(Height(height));
                }
                txids.push(txid);
            }
            // Invariant: the block is non-empty and index 0 exists, the only
            // errors `from_block` has.
            let root = MerklePath::from_block(height, &txids, &[0])
                .map(|p| p.root())
                .unwrap_or(Hash256([0; 32]));
            self.roots.insert(height, root);
            self.blocks.insert(height, txids);
            self.tip = Height(height);
        }
        self.tip
    }

    /// The transaction `txid`, if known (mempool or block).
    pub fn transaction(&self, txid: &Txid) -> Option<&Transaction> {
        self.known.get(txid).map(|k| &k.tx)
    }

    /// Whether `txid` is in the mempool or a block.
    pub fn knows(&self, txid: &Txid) -> bool {
        self.known.contains_key(txid)
    }

    /// Height of the block holding `txid`, once mined.
    pub fn block_of(&self, txid: &Txid) -> Option<Height> {
        self.known.get(txid).and_then(|k| k.block)
    }

    /// Confirmations of `txid`: `tip − block + 1`, 0 in the mempool or unknown.
    pub fn confirmations(&self, txid: &Txid) -> u32 {
        self.block_of(txid)
            .map_or(0, |h| self.tip.0.saturating_sub(h.0).saturating_add(1))
    }

    /// The transaction spending `outpoint` (mempool or block), if any.
    pub fn spender(&self, outpoint: &Outpoint) -> Option<&Transaction> {
        self.spent_by
            .get(outpoint)
            .and_then(|txid| self.transaction(txid))
    }

    /// The output at `outpoint`, spent or not.
    pub fn output(&self, outpoint: &Outpoint) -> Option<&TxOut> {
        self.outputs.get(outpoint)
    }

    /// The Atomic BEEF (BRC-95 over BRC-62 V1) of a mined `txid`: the
    /// transaction with the BUMP (BRC-74) of its block. `None` until mined.
    pub fn atomic_beef(&self, txid: &Txid) -> Option<Vec<u8>> {
        let height = self.block_of(txid)?;
        let block = self.blocks.get(&height.0)?;
        let index = block.iter().position(|t| t == txid)?;
        let path = MerklePath::from_block(height.0, block, &[index]).ok()?;
        let mut beef = Beef::new(BeefVersion::V1);
        beef.add_bump(path);
        beef.add_transaction(self.transaction(txid)?.clone());
        Some(beef.to_atomic(txid).ok()?.to_bytes())
    }

    /// The satoshis in unspent outputs locked by any of `scripts` (mempool
    /// included).
    pub fn balance(&self, scripts: &[Script]) -> u64 {
        self.outputs
            .iter()
            .filter(|(op, out)| {
                !self.spent_by.contains_key(op) && scripts.contains(&out.locking_script)
            })
            .map(|(_, out)| out.satoshis)
            .sum()
    }

    /// The unspent outputs locked by `script` (mempool included), in
    /// outpoint order.
    pub fn unspent(&self, script: &Script) -> Vec<(Outpoint, u64)> {
        self.outputs
            .iter()
            .filter(|(op, out)| !self.spent_by.contains_key(op) && &out.locking_script == script)
            .map(|(op, out)| (*op, out.satoshis))
            .collect()
    }
}

impl ChainTracker for FakeChain {
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool {
        self.roots.get(&height) == Some(root)
    }

    fn current_height(&self) -> u32 {
        self.tip.0
    }
}

fn rejected(reason: &str) -> BroadcastOutcome {
    BroadcastOutcome::Rejected {
        reason: reason.to_string(),
    }
}
