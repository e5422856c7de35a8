//! The simulated chain's state: blocks, transactions, UTXO set, spend index,
//! mempool and clock, with the node's rules for accepting transactions.
//!
//! The ledger is synchronous and does no I/O. Callers hold it behind one lock
//! and keep each critical section short: [`Ledger::precheck`] gathers what
//! script verification needs, the caller verifies scripts without the lock
//! ([`validate::verify_scripts`]), then [`Ledger::commit`] re-checks against
//! the state of that moment and applies. Every mutation is also written as a
//! [`StoreOp`] to the journal when the ledger is persistent; the caller drains
//! it ([`Ledger::take_journal`]) into the store under the same lock.
//!
//! Mining, reorganisation and the faucet are in `mining.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bsv_format::bump::{BumpError, MerklePath};
use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxOut, Txid};

use super::block::{median_time_past, Block, BlockHeader};
use super::store::StoreOp;
use super::validate::{self, TxRejection};

/// Blocks a coinbase output must wait before it is spent: a spend of a
/// coinbase from height `h` can be mined at height `h + 100` at the earliest
/// (node `COINBASE_MATURITY`).
pub const COINBASE_MATURITY: u32 = 100;

/// Settings the ledger's rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerParams {
    /// Name of the chain; tags coinbases and derives the chainsim key.
    pub chain_id: String,
    /// Minimum fee rate, satoshis per 1,000 bytes.
    pub fee_rate: u64,
    /// A conflict with a transaction mined at most this many blocks deep
    /// (confirmations, 1 = in the tip) is a double spend (200,
    /// `DOUBLE_SPEND_ATTEMPTED`); deeper, the input is simply spent (462).
    pub double_spend_window: u32,
}

/// Where a known transaction stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxState {
    /// Accepted, waiting in the mempool; `seq` orders the mempool (parents first).
    Mempool {
        /// Position in the mempool (ascending).
        seq: u64,
    },
    /// In the block at `height`, at position `index` (0 = coinbase).
    Mined {
        /// Block height.
        height: u32,
        /// Index of the transaction in its block.
        index: u32,
    },
    /// Valid, but spends outputs already spent by `competing`; never mined.
    DoubleSpend {
        /// The transactions that spent the same outputs first.
        competing: Vec<Txid>,
    },
    /// Dropped after acceptance: a reorganisation removed an output it spends
    /// (or the coinbase itself went stale).
    Rejected {
        /// Why.
        reason: String,
    },
}

/// A transaction the ledger knows.
#[derive(Debug, Clone)]
pub struct TxEntry {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Fee paid, satoshis (0 for coinbases and double-spend attempts).
    pub fee: u64,
    /// Where it stands.
    pub state: TxState,
}

/// An unspent output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utxo {
    /// Value and locking script.
    pub out: TxOut,
    /// Whether a coinbase created it (maturity applies).
    pub coinbase: bool,
}

/// The input that spent an outpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spender {
    /// The spending transaction.
    pub txid: Txid,
    /// Index of its input.
    pub vin: u32,
}

/// ARC `txStatus` values chainsim reports (`bsv-formats.md` §10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// In the mempool.
    SeenOnNetwork,
    /// In a block of the longest chain.
    Mined,
    /// Refused as a double spend.
    DoubleSpendAttempted,
    /// Dropped (see [`TxState::Rejected`]) or refused by an injected fault.
    Rejected,
}

impl TxStatus {
    /// The ARC status string.
    pub fn arc_name(self) -> &'static str {
        match self {
            TxStatus::SeenOnNetwork => "SEEN_ON_NETWORK",
            TxStatus::Mined => "MINED",
            TxStatus::DoubleSpendAttempted => "DOUBLE_SPEND_ATTEMPTED",
            TxStatus::Rejected => "REJECTED",
        }
    }
}

/// A block that holds a transaction, with what a BUMP for it needs.
#[derive(Debug, Clone)]
pub struct MinedAt {
    /// Block height.
    pub height: u32,
    /// Block hash (internal order).
    pub block_hash: Hash256,
    /// Index of the transaction in the block.
    pub index: usize,
    /// All txids of the block, in order.
    pub block_txids: Arc<Vec<Txid>>,
}

impl MinedAt {
    /// The BRC-74 path proving the transaction, built by
    /// [`MerklePath::from_block`] (O(block size); run it outside the lock).
    ///
    /// # Errors
    /// [`BumpError`] only if the index is outside the block (a ledger bug).
    pub fn merkle_path(&self) -> Result<MerklePath, BumpError> {
        MerklePath::from_block(self.height, &self.block_txids, &[self.index])
    }
}

/// What the ledger says about one transaction.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// The transaction.
    pub txid: Txid,
    /// Its ARC status.
    pub status: TxStatus,
    /// Its block, once mined.
    pub mined: Option<MinedAt>,
    /// Competing txids, for a double-spend attempt.
    pub competing: Vec<Txid>,
    /// Human-readable detail (reason for `REJECTED`).
    pub extra_info: Option<String>,
}

/// What [`Ledger::precheck`] decided.
#[derive(Debug)]
pub enum Precheck {
    /// The txid is known: broadcasting is idempotent, answer its status.
    Known(StatusView),
    /// Inputs, maturity, finality and fee are fine; scripts must be verified.
    Verify(Pending),
}

/// A transaction waiting for script verification.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The transaction.
    pub tx: Arc<Transaction>,
    /// Its txid.
    pub txid: Txid,
    /// Fee paid, satoshis.
    pub fee: u64,
    /// The outputs its inputs spend, in input order (the ledger's copies).
    pub spent: Vec<TxOut>,
    /// Transactions that already spent some of the same outputs.
    pub conflicts: Vec<Txid>,
}

/// Answer to "is `root` the Merkle root of the block at `height`?" (Block
/// Headers Service states, strongest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootConfirmation {
    /// Yes; the block's hash.
    Confirmed(Hash256),
    /// The height is above the tip.
    UnableToVerify,
    /// The block at that height has another root.
    Invalid,
}

/// Everything a persistent ledger stores, as loaded back (`store.rs`).
#[derive(Debug, Default)]
pub struct LedgerParts {
    /// Blocks from genesis to tip.
    pub blocks: Vec<Block>,
    /// Headers of blocks removed by reorganisations: hash → (height, header).
    pub stale: HashMap<Hash256, (u32, BlockHeader)>,
    /// Every known transaction.
    pub txs: HashMap<Txid, TxEntry>,
    /// Unspent outputs.
    pub utxos: HashMap<Outpoint, Utxo>,
    /// Spent outputs and their spenders.
    pub spends: HashMap<Outpoint, Spender>,
    /// The clock, UNIX seconds.
    pub clock: u64,
    /// Reorganisations so far.
    pub reorgs: u32,
}

/// The chain: see the module docs.
#[derive(Debug)]
pub struct Ledger {
    pub(super) params: LedgerParams,
    pub(super) key: PrivateKey,
    pub(super) lock: Script,
    pub(super) blocks: Vec<Block>,
    pub(super) by_hash: HashMap<Hash256, u32>,
    pub(super) stale: HashMap<Hash256, (u32, BlockHeader)>,
    pub(super) txs: HashMap<Txid, TxEntry>,
    pub(super) utxos: HashMap<Outpoint, Utxo>,
    pub(super) spends: HashMap<Outpoint, Spender>,
    /// Outputs locked to the chainsim key (the faucet's coins), spent or not
    /// removed as they go.
    pub(super) owned: BTreeSet<Outpoint>,
    pub(super) mempool: BTreeMap<u64, Txid>,
    pub(super) next_seq: u64,
    pub(super) clock: u64,
    pub(super) reorgs: u32,
    pub(super) journal: Option<Vec<StoreOp>>,
}

/// The chainsim key of `chain_id`: `sha256("escrowd chainsim key " ‖ chain_id)`.
/// It receives every coinbase and funds the faucet. Deterministic, so two runs
/// of the same chain id build the same chain.
///
/// # Errors
/// Only if the hash is not a valid secp256k1 scalar (probability ~2^-128).
pub fn chainsim_key(chain_id: &str) -> Result<PrivateKey, bsv_format::keys::KeyError> {
    let seed = bsv_format::hash::sha256(format!("escrowd chainsim key {chain_id}").as_bytes());
    PrivateKey::from_bytes(&seed)
}

impl Ledger {
    /// An empty ledger (no blocks yet); `mining.rs` builds the initial chain.
    pub(super) fn empty(
        params: LedgerParams,
        key: PrivateKey,
        clock: u64,
        persistent: bool,
    ) -> Ledger {
        let lock = p2pkh_lock(&key.public_key().hash160());
        Ledger {
            params,
            key,
            lock,
            blocks: Vec::new(),
            by_hash: HashMap::new(),
            stale: HashMap::new(),
            txs: HashMap::new(),
            utxos: HashMap::new(),
            spends: HashMap::new(),
            owned: BTreeSet::new(),
            mempool: BTreeMap::new(),
            next_seq: 0,
            clock,
            reorgs: 0,
            journal: persistent.then(Vec::new),
        }
    }

    /// A ledger rebuilt from stored parts (indexes and mempool order derived).
    pub fn restore(params: LedgerParams, key: PrivateKey, parts: LedgerParts) -> Ledger {
        let mut ledger = Ledger::empty(params, key, parts.clock, true);
        ledger.by_hash = parts
            .blocks
            .iter()
            .enumerate()
            .map(|(h, b)| (b.hash, h as u32))
            .collect();
        ledger.blocks = parts.blocks;
        ledger.stale = parts.stale;
        ledger.reorgs = parts.reorgs;
        for (txid, entry) in &parts.txs {
            if let TxState::Mempool { seq } = entry.state {
                ledger.mempool.insert(seq, *txid);
            }
        }
        ledger.next_seq = ledger.mempool.keys().next_back().map_or(0, |s| s + 1);
        ledger.owned = parts
            .utxos
            .iter()
            .filter(|(_, u)| u.out.locking_script == ledger.lock)
            .map(|(op, _)| *op)
            .collect();
        ledger.txs = parts.txs;
        ledger.utxos = parts.utxos;
        ledger.spends = parts.spends;
        ledger
    }

    /// The rules' settings.
    pub fn params(&self) -> &LedgerParams {
        &self.params
    }

    /// Takes the store operations recorded since the last call (empty for an
    /// in-memory ledger).
    pub fn take_journal(&mut self) -> Vec<StoreOp> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(super) fn record(&mut self, op: StoreOp) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push(op);
        }
    }

    /// Height of the tip (0 before the genesis block exists).
    pub fn tip(&self) -> u32 {
        (self.blocks.len() as u32).saturating_sub(1)
    }

    /// The tip block, if any.
    pub fn tip_block(&self) -> Option<&Block> {
        self.blocks.last()
    }

    /// The block at `height` on the longest chain.
    pub fn block_at(&self, height: u32) -> Option<&Block> {
        self.blocks.get(height as usize)
    }

    /// A header by hash: `(height, header, on the longest chain?)`; stale
    /// blocks (removed by `/sim/reorg`) are found too.
    pub fn header_by_hash(&self, hash: &Hash256) -> Option<(u32, BlockHeader, bool)> {
        if let Some(&h) = self.by_hash.get(hash) {
            return self.blocks.get(h as usize).map(|b| (h, b.header, true));
        }
        self.stale.get(hash).map(|(h, header)| (*h, *header, false))
    }

    /// The clock, UNIX seconds.
    pub fn now(&self) -> u64 {
        self.clock
    }

    /// Median time past of the tip (UNIX seconds).
    pub fn median_time_past(&self) -> u32 {
        let start = self
            .blocks
            .len()
            .saturating_sub(super::block::MEDIAN_TIME_SPAN);
        let times: Vec<u32> = self.blocks[start..].iter().map(|b| b.header.time).collect();
        median_time_past(&times)
    }

    /// Whether `root` is the Merkle root of the block at `height`.
    pub fn confirm_root(&self, root: &Hash256, height: u32) -> RootConfirmation {
        match self.blocks.get(height as usize) {
            None => RootConfirmation::UnableToVerify,
            Some(b) if b.header.merkle_root == *root => RootConfirmation::Confirmed(b.hash),
            Some(_) => RootConfirmation::Invalid,
        }
    }

    /// The transaction with `txid`, if known.
    pub fn transaction(&self, txid: &Txid) -> Option<&Arc<Transaction>> {
        self.txs.get(txid).map(|e| &e.tx)
    }

    /// Height of the block holding `txid`, if mined.
    pub fn mined_height(&self, txid: &Txid) -> Option<u32> {
        match self.txs.get(txid)?.state {
            TxState::Mined { height, .. } => Some(height),
            _ => None,
        }
    }

    /// The output `outpoint` names, spent or not, if its transaction is known.
    pub fn output(&self, outpoint: &Outpoint) -> Option<&TxOut> {
        self.txs
            .get(&outpoint.txid)?
            .tx
            .outputs
            .get(outpoint.vout as usize)
    }

    /// The input that spent `outpoint` (in the mempool or mined), if any.
    pub fn spender(&self, outpoint: &Outpoint) -> Option<Spender> {
        self.spends.get(outpoint).copied()
    }

    /// Mempool txids in mempool order.
    pub fn mempool(&self) -> impl Iterator<Item = &Txid> {
        self.mempool.values()
    }

    /// Satoshis in unspent outputs locked by exactly `script`, mempool
    /// included (the UTXO view a wallet would see). Scans every output.
    pub fn balance(&self, script: &Script) -> u64 {
        self.utxos
            .values()
            .filter(|u| u.out.locking_script == *script)
            .map(|u| u.out.satoshis)
            .sum()
    }

    /// The status of `txid`, if known.
    pub fn status(&self, txid: &Txid) -> Option<StatusView> {
        let entry = self.txs.get(txid)?;
        let mut view = StatusView {
            txid: *txid,
            status: TxStatus::SeenOnNetwork,
            mined: None,
            competing: Vec::new(),
            extra_info: None,
        };
        match &entry.state {
            TxState::Mempool { .. } => {}
            TxState::Mined { height, index } => {
                let block = self.blocks.get(*height as usize)?;
                view.status = TxStatus::Mined;
                view.mined = Some(MinedAt {
                    height: *height,
                    block_hash: block.hash,
                    index: *index as usize,
                    block_txids: Arc::clone(&block.txids),
                });
            }
            TxState::DoubleSpend { competing } => {
                view.status = TxStatus::DoubleSpendAttempted;
                view.competing = competing.clone();
            }
            TxState::Rejected { reason } => {
                view.status = TxStatus::Rejected;
                view.extra_info = Some(reason.clone());
            }
        }
        Some(view)
    }

    /// Checks a submitted transaction against the ledger, in this order:
    /// already known (→ [`Precheck::Known`]); each input's outpoint exists
    /// and is unspent, or is spent by a transaction within the double-spend
    /// window (a conflict, judged after the scripts); the EF source output
    /// equals the real one; coinbase maturity; lock-time finality for the next
    /// block; outputs within inputs; fee at the configured rate. `claimed[i]`
    /// is the EF source output of input `i` (same length as the inputs).
    ///
    /// # Errors
    /// [`TxRejection`]: `InputMissing`, `InputSpent`, `SourceMismatch`,
    /// `CoinbaseImmature`, `NonFinalHeight`, `NonFinalTime`,
    /// `OutputsExceedInputs`, `FeeTooLow`.
    pub fn precheck(
        &self,
        tx: &Arc<Transaction>,
        txid: Txid,
        claimed: &[TxOut],
    ) -> Result<Precheck, TxRejection> {
        if let Some(view) = self.status(&txid) {
            return Ok(Precheck::Known(view));
        }
        let tip = self.tip();
        let mut spent = Vec::with_capacity(tx.inputs.len());
        let mut conflicts: Vec<Txid> = Vec::new();
        let mut total_in = 0u64;
        for (i, (input, claim)) in tx.inputs.iter().zip(claimed).enumerate() {
            let outpoint = input.prev_out;
            let (out, coinbase) = match self.utxos.get(&outpoint) {
                Some(u) => (&u.out, u.coinbase),
                None => {
                    let (Some(spender), Some(out)) =
                        (self.spends.get(&outpoint), self.output(&outpoint))
                    else {
                        return Err(TxRejection::InputMissing { input: i, outpoint });
                    };
                    if let Some(height) = self.mined_height(&spender.txid) {
                        if tip - height + 1 > self.params.double_spend_window {
                            return Err(TxRejection::InputSpent {
                                input: i,
                                outpoint,
                                spender: spender.txid,
                                height,
                            });
                        }
                    }
                    if !conflicts.contains(&spender.txid) {
                        conflicts.push(spender.txid);
                    }
                    let coinbase = self
                        .txs
                        .get(&outpoint.txid)
                        .is_some_and(|e| e.tx.is_coinbase());
                    (out, coinbase)
                }
            };
            if out != claim {
                return Err(TxRejection::SourceMismatch {
                    input: i,
                    outpoint,
                    claimed_satoshis: claim.satoshis,
                    actual_satoshis: out.satoshis,
                });
            }
            if coinbase {
                let coinbase_height = self.mined_height(&outpoint.txid).unwrap_or(tip);
                let spendable_at = coinbase_height.saturating_add(COINBASE_MATURITY);
                if tip + 1 < spendable_at {
                    return Err(TxRejection::CoinbaseImmature {
                        input: i,
                        outpoint,
                        coinbase_height,
                        spendable_at,
                    });
                }
            }
            // Context-free checks bounded each claimed value and the sum; a
            // ledger output equals its claim, so this cannot overflow.
            total_in = total_in.saturating_add(out.satoshis);
            spent.push(out.clone());
        }
        validate::check_finality(tx, tip + 1, self.median_time_past())?;
        let total_out = tx.total_output_satoshis().unwrap_or(u64::MAX);
        let fee = total_in
            .checked_sub(total_out)
            .ok_or(TxRejection::OutputsExceedInputs {
                inputs: total_in,
                outputs: total_out,
            })?;
        let size = tx.size();
        let required = validate::required_fee(size, self.params.fee_rate);
        if fee < required {
            return Err(TxRejection::FeeTooLow {
                fee,
                required,
                rate: self.params.fee_rate,
                size,
            });
        }
        Ok(Precheck::Verify(Pending {
            tx: Arc::clone(tx),
            txid,
            fee,
            spent,
            conflicts,
        }))
    }

    /// Applies a transaction whose scripts passed: re-runs [`precheck`](Self::precheck)
    /// against the current state (another request may have spent an input or
    /// submitted the same transaction meanwhile), then records a double-spend
    /// attempt if it conflicts, or adds it to the mempool.
    ///
    /// # Errors
    /// As [`precheck`](Self::precheck).
    pub fn commit(&mut self, pending: Pending) -> Result<StatusView, TxRejection> {
        let fresh = match self.precheck(&pending.tx, pending.txid, &pending.spent)? {
            Precheck::Known(view) => return Ok(view),
            Precheck::Verify(fresh) => fresh,
        };
        let txid = fresh.txid;
        let mut view = StatusView {
            txid,
            status: TxStatus::SeenOnNetwork,
            mined: None,
            competing: Vec::new(),
            extra_info: None,
        };
        if fresh.conflicts.is_empty() {
            self.add_to_mempool(fresh.tx, txid, fresh.fee);
        } else {
            view.status = TxStatus::DoubleSpendAttempted;
            view.competing = fresh.conflicts.clone();
            let state = TxState::DoubleSpend {
                competing: fresh.conflicts,
            };
            self.record(StoreOp::PutTx {
                txid,
                fee: 0,
                tx: Arc::clone(&fresh.tx),
            });
            self.record(StoreOp::PutState {
                txid,
                state: state.clone(),
            });
            self.txs.insert(
                txid,
                TxEntry {
                    tx: fresh.tx,
                    fee: 0,
                    state,
                },
            );
        }
        Ok(view)
    }

    fn add_to_mempool(&mut self, tx: Arc<Transaction>, txid: Txid, fee: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        for (vin, input) in tx.inputs.iter().enumerate() {
            self.del_utxo(&input.prev_out);
            let spender = Spender {
                txid,
                vin: vin as u32,
            };
            self.spends.insert(input.prev_out, spender);
            self.record(StoreOp::PutSpend {
                outpoint: input.prev_out,
                spender,
            });
        }
        for (vout, out) in tx.outputs.iter().enumerate() {
            self.put_utxo(
                Outpoint::new(txid, vout as u32),
                Utxo {
                    out: out.clone(),
                    coinbase: false,
                },
            );
        }
        self.mempool.insert(seq, txid);
        let state = TxState::Mempool { seq };
        self.record(StoreOp::PutTx {
            txid,
            fee,
            tx: Arc::clone(&tx),
        });
        self.record(StoreOp::PutState {
            txid,
            state: state.clone(),
        });
        self.txs.insert(txid, TxEntry { tx, fee, state });
    }

    pub(super) fn put_utxo(&mut self, outpoint: Outpoint, utxo: Utxo) {
        if utxo.out.locking_script == self.lock {
            self.owned.insert(outpoint);
        }
        if self.journal.is_some() {
            self.record(StoreOp::PutUtxo {
                outpoint,
                utxo: utxo.clone(),
            });
        }
        self.utxos.insert(outpoint, utxo);
    }

    pub(super) fn del_utxo(&mut self, outpoint: &Outpoint) {
        if self.utxos.remove(outpoint).is_some() {
            self.owned.remove(outpoint);
            self.record(StoreOp::DelUtxo {
                outpoint: *outpoint,
            });
        }
    }

    pub(super) fn set_state(&mut self, txid: &Txid, state: TxState) {
        if let Some(entry) = self.txs.get_mut(txid) {
            entry.state = state.clone();
            if let Some(journal) = self.journal.as_mut() {
                journal.push(StoreOp::PutState { txid: *txid, state });
            }
        }
    }
}
