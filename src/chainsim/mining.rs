//! Changing the chain: the initial blocks, mining, reorganisations, the
//! clock, and building faucet payments.
//!
//! Block timestamps come from the ledger's clock, which only moves when told
//! to (`/sim/clock`); a block's time is `max(clock, median time past + 1)`, so
//! headers stay valid (node: time above MTP) even while the clock stands still.

use std::collections::HashSet;
use std::sync::Arc;

use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::{p2pkh_lock, p2pkh_unlock, sign_input};
use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_FORKID};
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut, Txid};

use super::block::{
    coinbase, merkle_root, Block, BlockHeader, BLOCK_SUBSIDY, BLOCK_VERSION, REGTEST_BITS,
};
use super::ledger::{Ledger, LedgerParams, TxEntry, TxState, Utxo, COINBASE_MATURITY};
use super::store::StoreOp;
use super::validate;

/// Most blocks one `/sim/mine` or `/sim/reorg` call may add or remove.
pub const MAX_BLOCKS_PER_CALL: u32 = 10_000;
/// Seconds between the timestamps of the initial blocks.
pub const INITIAL_BLOCK_SPACING: u64 = 600;
/// Fewest initial blocks: enough for the first coinbase to be spendable.
pub const MIN_INITIAL_BLOCKS: u32 = COINBASE_MATURITY + 1;

/// A `/sim/` request the ledger refuses. Each message names the field and the
/// allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// `blocks` out of range.
    #[error("blocks must be between 1 and {MAX_BLOCKS_PER_CALL}, got {0}")]
    BadBlockCount(u32),
    /// `depth` out of range.
    #[error("reorg depth must be between 1 and the tip height {tip} (at most {MAX_BLOCKS_PER_CALL}), got {depth}")]
    BadReorgDepth {
        /// Requested depth.
        depth: u32,
        /// Current tip height.
        tip: u32,
    },
    /// `set_unix` is earlier than the clock.
    #[error("the clock cannot go back: it reads {now}, set_unix asks for {requested}")]
    ClockBackwards {
        /// Current clock, UNIX seconds.
        now: u64,
        /// Requested time.
        requested: u64,
    },
    /// The clock would pass what a header's `u32` time field holds.
    #[error("the clock cannot pass {max} (block header time is a u32), asked for {requested}")]
    ClockOverflow {
        /// Largest allowed value.
        max: u64,
        /// The value asked for.
        requested: u64,
    },
    /// The faucet address is not a P2PKH address.
    #[error("address {address:?} is not a P2PKH address: {reason}")]
    BadAddress {
        /// The text given.
        address: String,
        /// Why it was refused.
        reason: String,
    },
    /// The faucet amount is 0.
    #[error("satoshis must be at least 1")]
    ZeroAmount,
    /// No chainsim-owned output can pay the amount and its fee.
    #[error("the faucet has no spendable output of at least {needed} satoshis (one coinbase holds {BLOCK_SUBSIDY})")]
    FaucetDry {
        /// Amount plus fee, satoshis.
        needed: u64,
    },
    /// Building the faucet transaction failed (a bug: the message says where).
    #[error("faucet: {0}")]
    FaucetBuild(String),
}

impl Ledger {
    /// A new chain: the genesis block and `initial_blocks` more (at least
    /// [`MIN_INITIAL_BLOCKS`]), timestamped [`INITIAL_BLOCK_SPACING`] apart and
    /// ending at `start_unix`, which becomes the clock.
    pub fn create(
        params: LedgerParams,
        key: PrivateKey,
        start_unix: u64,
        initial_blocks: u32,
        persistent: bool,
    ) -> Ledger {
        let initial = initial_blocks.max(MIN_INITIAL_BLOCKS);
        let base = start_unix.saturating_sub(u64::from(initial) * INITIAL_BLOCK_SPACING);
        let mut ledger = Ledger::empty(params, key, base, persistent);
        for i in 0..=u64::from(initial) {
            ledger.clock = base + i * INITIAL_BLOCK_SPACING;
            ledger.mine_one(false);
        }
        ledger.clock = start_unix.max(ledger.clock);
        ledger.record(StoreOp::PutMeta {
            clock: ledger.clock,
            reorgs: ledger.reorgs,
        });
        ledger
    }

    /// Mines `blocks` blocks, each holding every final mempool transaction
    /// (in mempool order, so parents precede children) when `include_mempool`,
    /// else only its coinbase. Returns the new tip height.
    ///
    /// # Errors
    /// [`SimError::BadBlockCount`] unless `1 <= blocks <= MAX_BLOCKS_PER_CALL`.
    pub fn mine(&mut self, blocks: u32, include_mempool: bool) -> Result<u32, SimError> {
        if blocks == 0 || blocks > MAX_BLOCKS_PER_CALL {
            return Err(SimError::BadBlockCount(blocks));
        }
        for _ in 0..blocks {
            self.mine_one(include_mempool);
        }
        Ok(self.tip())
    }

    fn mine_one(&mut self, include_mempool: bool) {
        let height = self.blocks.len() as u32;
        let mtp = self.median_time_past();
        let clock = u32::try_from(self.clock).unwrap_or(u32::MAX);
        let time = if self.blocks.is_empty() {
            clock
        } else {
            clock.max(mtp.saturating_add(1))
        };
        let mut chosen: Vec<Txid> = Vec::new();
        let mut fees = 0u64;
        if include_mempool {
            // A transaction that is not final yet stays, and so do its descendants.
            let mut left_behind: HashSet<Txid> = HashSet::new();
            for txid in self.mempool.values() {
                let Some(entry) = self.txs.get(txid) else {
                    continue;
                };
                let blocked = entry
                    .tx
                    .inputs
                    .iter()
                    .any(|i| left_behind.contains(&i.prev_out.txid));
                if blocked || validate::check_finality(&entry.tx, height, mtp).is_err() {
                    left_behind.insert(*txid);
                    continue;
                }
                chosen.push(*txid);
                fees = fees.saturating_add(entry.fee);
            }
        }
        let cb = coinbase(
            height,
            &self.params.chain_id,
            self.reorgs,
            BLOCK_SUBSIDY.saturating_add(fees),
            &self.lock,
        );
        let cb_txid = cb.txid();
        let mut txids = Vec::with_capacity(chosen.len() + 1);
        txids.push(cb_txid);
        txids.extend_from_slice(&chosen);
        let header = BlockHeader {
            version: BLOCK_VERSION,
            prev_hash: self.blocks.last().map(|b| b.hash).unwrap_or_default(),
            merkle_root: merkle_root(&txids),
            time,
            bits: REGTEST_BITS,
            nonce: 0,
        };
        let block = Block::new(header, txids);
        for (index, txid) in block.txids.iter().enumerate().skip(1) {
            if let Some(TxEntry {
                state: TxState::Mempool { seq },
                ..
            }) = self.txs.get(txid)
            {
                self.mempool.remove(seq);
            }
            self.set_state(
                txid,
                TxState::Mined {
                    height,
                    index: index as u32,
                },
            );
        }
        let cb = Arc::new(cb);
        let out = cb.outputs.first().cloned();
        self.record(StoreOp::PutTx {
            txid: cb_txid,
            fee: 0,
            tx: Arc::clone(&cb),
        });
        let state = TxState::Mined { height, index: 0 };
        self.record(StoreOp::PutState {
            txid: cb_txid,
            state: state.clone(),
        });
        self.txs.insert(
            cb_txid,
            TxEntry {
                tx: cb,
                fee: 0,
                state,
            },
        );
        // As on a node, the genesis coinbase is not spendable.
        if let (Some(out), true) = (out, height > 0) {
            self.put_utxo(
                Outpoint::new(cb_txid, 0),
                Utxo {
                    out,
                    coinbase: true,
                },
            );
        }
        self.record(StoreOp::PutBlock {
            height,
            block: block.clone(),
        });
        self.by_hash.insert(block.hash, height);
        self.blocks.push(block);
    }

    /// Un-mines the last `depth` blocks and mines as many empty replacement
    /// blocks, so the height is kept and the tip hash changes. The removed
    /// blocks' transactions go back to the mempool ahead of what was there
    /// (chain order), their coinbases are dropped, and any transaction that
    /// spent a dropped coinbase (possible only when `depth >= 100`) is dropped
    /// with its descendants (`REJECTED`). Returns the tip height.
    ///
    /// # Errors
    /// [`SimError::BadReorgDepth`] unless `1 <= depth <= min(tip, MAX_BLOCKS_PER_CALL)`.
    pub fn reorg(&mut self, depth: u32) -> Result<u32, SimError> {
        let tip = self.tip();
        if depth == 0 || depth > tip || depth > MAX_BLOCKS_PER_CALL {
            return Err(SimError::BadReorgDepth { depth, tip });
        }
        let mut returned: Vec<Vec<Txid>> = Vec::with_capacity(depth as usize);
        let mut coinbases = Vec::with_capacity(depth as usize);
        for _ in 0..depth {
            let Some(block) = self.blocks.pop() else {
                break;
            };
            let height = self.blocks.len() as u32;
            self.by_hash.remove(&block.hash);
            self.record(StoreOp::DelBlock { height });
            self.record(StoreOp::PutStale {
                hash: block.hash,
                height,
                header: block.header,
            });
            self.stale.insert(block.hash, (height, block.header));
            coinbases.extend(block.txids.first().copied());
            returned.push(block.txids.iter().skip(1).copied().collect());
        }
        returned.reverse();
        let old: Vec<Txid> = self.mempool.values().copied().collect();
        self.mempool.clear();
        self.next_seq = 0;
        for txid in returned.into_iter().flatten().chain(old) {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.mempool.insert(seq, txid);
            self.set_state(&txid, TxState::Mempool { seq });
        }
        self.evict(
            &coinbases,
            "coinbase of a block removed by a reorganisation",
        );
        self.reorgs = self.reorgs.saturating_add(1);
        self.record(StoreOp::PutMeta {
            clock: self.clock,
            reorgs: self.reorgs,
        });
        self.mine(depth, false)
    }

    /// Drops `roots` and every transaction that spends their outputs,
    /// directly or not: their outputs leave the UTXO set, inputs spending
    /// outputs of surviving transactions become unspent again, and each is
    /// marked `Rejected` with `reason` (descendants with a reason naming why).
    fn evict(&mut self, roots: &[Txid], reason: &str) {
        let mut doomed: Vec<Txid> = Vec::new();
        let mut seen: HashSet<Txid> = HashSet::new();
        let mut queue: Vec<Txid> = roots.to_vec();
        while let Some(txid) = queue.pop() {
            if !seen.insert(txid) {
                continue;
            }
            let Some(entry) = self.txs.get(&txid) else {
                continue;
            };
            for vout in 0..entry.tx.outputs.len() {
                if let Some(spender) = self.spends.get(&Outpoint::new(txid, vout as u32)) {
                    queue.push(spender.txid);
                }
            }
            doomed.push(txid);
        }
        for txid in &doomed {
            let Some(entry) = self.txs.get(txid) else {
                continue;
            };
            let tx = Arc::clone(&entry.tx);
            if let TxState::Mempool { seq } = entry.state {
                self.mempool.remove(&seq);
            }
            for vout in 0..tx.outputs.len() {
                let outpoint = Outpoint::new(*txid, vout as u32);
                self.del_utxo(&outpoint);
                if self.spends.remove(&outpoint).is_some() {
                    self.record(StoreOp::DelSpend { outpoint });
                }
            }
            if !tx.is_coinbase() {
                for input in &tx.inputs {
                    let outpoint = input.prev_out;
                    if self.spends.get(&outpoint).is_some_and(|s| s.txid == *txid) {
                        self.spends.remove(&outpoint);
                        self.record(StoreOp::DelSpend { outpoint });
                    }
                    if seen.contains(&outpoint.txid) {
                        continue;
                    }
                    if let Some(parent) = self.txs.get(&outpoint.txid) {
                        let coinbase = parent.tx.is_coinbase();
                        if let Some(out) = parent.tx.outputs.get(outpoint.vout as usize).cloned() {
                            self.put_utxo(outpoint, Utxo { out, coinbase });
                        }
                    }
                }
            }
            let why = if roots.contains(txid) {
                reason.to_string()
            } else {
                format!("spends an output of a dropped transaction ({reason})")
            };
            self.set_state(txid, TxState::Rejected { reason: why });
        }
    }

    /// Moves the clock forward by `secs` seconds (no block is mined). Returns
    /// the new time.
    ///
    /// # Errors
    /// [`SimError::ClockOverflow`] past `u32::MAX`.
    pub fn advance_clock(&mut self, secs: u64) -> Result<u64, SimError> {
        let requested = self.clock.saturating_add(secs);
        self.set_clock(requested)
    }

    /// Sets the clock to `unix` seconds, which must not be earlier than now.
    ///
    /// # Errors
    /// [`SimError::ClockBackwards`], [`SimError::ClockOverflow`].
    pub fn set_clock(&mut self, unix: u64) -> Result<u64, SimError> {
        let max = u64::from(u32::MAX);
        if unix > max {
            return Err(SimError::ClockOverflow {
                max,
                requested: unix,
            });
        }
        if unix < self.clock {
            return Err(SimError::ClockBackwards {
                now: self.clock,
                requested: unix,
            });
        }
        self.clock = unix;
        self.record(StoreOp::PutMeta {
            clock: self.clock,
            reorgs: self.reorgs,
        });
        Ok(unix)
    }

    /// Builds (but does not submit) a transaction paying `satoshis` to the
    /// P2PKH `pubkey_hash` from one chainsim-owned output: the oldest spendable
    /// one (mature coinbase, or change of an earlier payment) that covers the
    /// amount and the fee at the configured rate. Output 0 is the payment,
    /// output 1 (if any) the change back to the chainsim key. Returns the
    /// transaction and the output its input spends.
    ///
    /// # Errors
    /// [`SimError::ZeroAmount`], [`SimError::FaucetDry`], [`SimError::FaucetBuild`].
    pub fn faucet_payment(
        &self,
        pubkey_hash: &[u8; 20],
        satoshis: u64,
    ) -> Result<(Transaction, TxOut), SimError> {
        if satoshis == 0 {
            return Err(SimError::ZeroAmount);
        }
        let pay = TxOut {
            satoshis,
            locking_script: p2pkh_lock(pubkey_hash),
        };
        let change_out = |value| TxOut {
            satoshis: value,
            locking_script: self.lock.clone(),
        };
        // Upper bound of the signed size: the unlocking script is at most
        // 1 + 72 (DER + sighash byte) + 1 + 33 = 107 bytes.
        let mut probe = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(Txid([0; 32]), 0),
                unlocking_script: Script::from_bytes(vec![0; 107]),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![pay.clone(), change_out(1)],
            lock_time: 0,
        };
        let fee = validate::required_fee(probe.size(), self.params.fee_rate);
        let needed = satoshis
            .checked_add(fee)
            .ok_or(SimError::FaucetDry { needed: u64::MAX })?;
        let tip = self.tip();
        let chosen = self
            .owned
            .iter()
            .filter_map(|op| {
                let utxo = self.utxos.get(op)?;
                let height = self.mined_height(&op.txid);
                let spendable = match (utxo.coinbase, height) {
                    (true, Some(h)) => tip + 1 >= h + COINBASE_MATURITY,
                    (true, None) => false,
                    (false, _) => true,
                };
                (spendable && utxo.out.satoshis >= needed).then_some((
                    height.unwrap_or(u32::MAX),
                    *op,
                    utxo.out.clone(),
                ))
            })
            .min_by_key(|(height, op, _)| (*height, *op));
        let Some((_, outpoint, source)) = chosen else {
            return Err(SimError::FaucetDry { needed });
        };
        let change = source.satoshis - needed;
        probe.inputs[0] = TxIn {
            prev_out: outpoint,
            unlocking_script: Script::default(),
            sequence: SEQUENCE_FINAL,
        };
        probe.outputs = if change > 0 {
            vec![pay, change_out(change)]
        } else {
            vec![pay]
        };
        let mut tx = probe;
        let sig = sign_input(
            &tx,
            0,
            &source.locking_script,
            source.satoshis,
            SIGHASH_ALL | SIGHASH_FORKID,
            &self.key,
        )
        .map_err(|e| SimError::FaucetBuild(format!("signing: {e}")))?;
        tx.inputs[0].unlocking_script = p2pkh_unlock(&sig, &self.key.public_key())
            .map_err(|e| SimError::FaucetBuild(format!("unlocking script: {e}")))?;
        Ok((tx, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chainsim::ledger::{chainsim_key, Precheck, TxStatus};
    use bsv_format::keys::PrivateKey;

    fn ledger() -> Ledger {
        let params = LedgerParams {
            chain_id: "unit".into(),
            fee_rate: 1,
            double_spend_window: 6,
        };
        let key = chainsim_key("unit").unwrap();
        Ledger::create(params, key, 1_700_000_000, MIN_INITIAL_BLOCKS, false)
    }

    fn accept(l: &mut Ledger, tx: Transaction, source: TxOut) -> TxStatus {
        let txid = tx.txid();
        let tx = Arc::new(tx);
        let Ok(Precheck::Verify(p)) = l.precheck(&tx, txid, &[source]) else {
            panic!("precheck")
        };
        validate::verify_scripts(&p.tx, &p.spent).unwrap();
        l.commit(p).unwrap().status
    }

    #[test]
    fn the_initial_chain_ends_at_the_start_time() {
        let l = ledger();
        assert_eq!(l.tip(), 101);
        assert_eq!(l.tip_block().unwrap().header.time, 1_700_000_000);
        assert_eq!(
            l.block_at(0).unwrap().header.time,
            1_700_000_000 - 101 * 600
        );
        assert_eq!(l.median_time_past(), 1_700_000_000 - 5 * 600);
        assert_eq!(l.now(), 1_700_000_000);
    }

    #[test]
    fn faucet_pays_from_the_oldest_mature_coinbase_with_change() {
        let mut l = ledger();
        let payee = PrivateKey::from_bytes(&[7; 32])
            .unwrap()
            .public_key()
            .hash160();
        let (tx, source) = l.faucet_payment(&payee, 1_000).unwrap();
        let block1_coinbase = l.block_at(1).unwrap().txids[0];
        assert_eq!(
            tx.inputs[0].prev_out,
            Outpoint::new(block1_coinbase, 0),
            "the oldest mature coinbase (genesis's is unspendable)"
        );
        assert_eq!(source.satoshis, BLOCK_SUBSIDY);
        let fee = BLOCK_SUBSIDY - tx.total_output_satoshis().unwrap();
        assert!(
            fee >= validate::required_fee(tx.size(), 1) && fee <= 1,
            "fee {fee}"
        );
        assert_eq!(accept(&mut l, tx, source), TxStatus::SeenOnNetwork);
        assert_eq!(
            l.faucet_payment(&payee, BLOCK_SUBSIDY),
            Err(SimError::FaucetDry {
                needed: BLOCK_SUBSIDY + 1
            })
        );
        assert_eq!(l.faucet_payment(&payee, 0), Err(SimError::ZeroAmount));
    }

    #[test]
    fn a_deep_reorg_drops_spends_of_vanished_coinbases() {
        let mut l = ledger();
        let payee = PrivateKey::from_bytes(&[7; 32])
            .unwrap()
            .public_key()
            .hash160();
        let (tx, source) = l.faucet_payment(&payee, 1_000).unwrap();
        let txid = tx.txid();
        let spent = tx.inputs[0].prev_out;
        accept(&mut l, tx, source);
        assert_eq!(l.mine(1, true), Ok(102));
        assert_eq!(l.status(&txid).unwrap().status, TxStatus::Mined);

        // Removing blocks 1..=102 removes the coinbase the payment spent.
        assert_eq!(l.reorg(102), Ok(102));
        let view = l.status(&txid).unwrap();
        assert_eq!(view.status, TxStatus::Rejected);
        assert!(view
            .extra_info
            .unwrap()
            .contains("spends an output of a dropped transaction"));
        assert_eq!(l.spender(&spent), None);
        assert!(!l.utxos.contains_key(&Outpoint::new(txid, 0)));
        assert_eq!(l.mempool().count(), 0);
        assert_eq!(l.status(&spent.txid).unwrap().status, TxStatus::Rejected);
        assert_eq!(
            l.reorg(103),
            Err(SimError::BadReorgDepth {
                depth: 103,
                tip: 102
            })
        );
    }

    #[test]
    fn the_clock_only_moves_forward() {
        let mut l = ledger();
        assert_eq!(l.advance_clock(10), Ok(1_700_000_010));
        assert_eq!(
            l.set_clock(5),
            Err(SimError::ClockBackwards {
                now: 1_700_000_010,
                requested: 5
            })
        );
        assert_eq!(
            l.set_clock(u64::from(u32::MAX) + 1),
            Err(SimError::ClockOverflow {
                max: u64::from(u32::MAX),
                requested: u64::from(u32::MAX) + 1
            })
        );
        assert_eq!(l.tip(), 101, "no block mined");
    }
}
