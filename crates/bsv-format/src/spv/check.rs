//! The checks behind [`super::SpvRequest`]: structure and amounts (no chain
//! data), then maturity and scripts (after the tracker answered).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::{RootClaim, VerifyError, VerifyOptions};
use crate::beef::{Beef, BeefTx};
use crate::hash::Txid;
use crate::script::interpreter::{verify_input_metered, Metered, ScriptError, ScriptLimits};
use crate::sighash::SighashCache;
use crate::tx::Outpoint;

/// Node `COINBASE_MATURITY`: a coinbase output can be spent in a block at
/// least this many blocks above the coinbase's own.
pub(super) const COINBASE_MATURITY: u32 = 100;

/// Work left for [`super::SpvRequest::finish`], found while checking structure.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    coinbase_spends: Vec<CoinbaseSpend>,
    jobs: Vec<ScriptJob>,
}

/// An unproven transaction's input spending a proven coinbase.
#[derive(Debug, Clone, Copy)]
struct CoinbaseSpend {
    txid: Txid,
    input: usize,
    coinbase: Txid,
    height: u32,
}

/// One input to run: the spend and its positions in the BEEF, and the height
/// of the spent output's block if its transaction is proven (`None`: the
/// output is created at the tip).
#[derive(Debug, Clone, Copy)]
struct ScriptJob {
    txid: Txid,
    tx: usize,
    input: usize,
    parent_txid: Txid,
    parent: usize,
    vout: u32,
    utxo_height: Option<u32>,
}

/// Structure, Atomic closure and amounts; returns the subject's position, the
/// root claims and the plan for `finish`.
pub(super) fn structure(
    beef: &Beef,
    opts: &VerifyOptions,
) -> Result<(usize, Vec<RootClaim>, Plan), VerifyError> {
    let txs = beef.txs();
    let last = txs.len().checked_sub(1).ok_or(VerifyError::Empty)?;
    // First, so that every later lookup by txid means one entry.
    for (i, t) in txs.iter().enumerate() {
        if beef.position(&t.txid()) != Some(i) {
            return Err(VerifyError::DuplicateTxid { txid: t.txid() });
        }
    }
    let subject = match beef.subject() {
        Some(s) => {
            let at = beef
                .position(&s)
                .ok_or(VerifyError::SubjectMissing { subject: s })?;
            check_closure(beef, at)?;
            at
        }
        None => last,
    };
    if let Some(t) = txs.get(subject).filter(|t| t.is_txid_only()) {
        return Err(VerifyError::SubjectTxidOnly { subject: t.txid() });
    }
    if !opts.allow_txid_only {
        if let Some(t) = txs.iter().find(|t| t.is_txid_only()) {
            return Err(VerifyError::TxidOnly { txid: t.txid() });
        }
    }
    let claims = root_claims(beef)?;

    let mut plan = Plan::default();
    // Every outpoint spent by an unproven transaction, with its spender: two
    // spends of one output can never both be mined. Within one transaction
    // that is a structural fault (node CheckTransaction,
    // "bad-txns-inputs-duplicate"). Across transactions it is judged with the
    // consensus checks, i.e. when scripts are checked: the vectors' structural
    // verdict (`expect.valid_strict`, which excludes script validity) accepts
    // such a BEEF, and a `--no-scripts` run answers only that question.
    let mut spent_by: HashMap<Outpoint, Txid> = HashMap::new();
    for (i, entry) in txs.iter().enumerate() {
        let Some(tx) = entry.unproven() else { continue };
        let txid = entry.txid();
        // Node CheckTransaction: "bad-txns-vin-empty" / "bad-txns-vout-empty".
        if tx.inputs.is_empty() {
            return Err(VerifyError::NoInputs { txid });
        }
        if tx.outputs.is_empty() {
            return Err(VerifyError::NoOutputs { txid });
        }
        for (k, input) in tx.inputs.iter().enumerate() {
            match spent_by.insert(input.prev_out, txid) {
                Some(first) if first == txid => {
                    return Err(VerifyError::DuplicateInput {
                        txid,
                        input: k,
                        outpoint: input.prev_out,
                    });
                }
                Some(first) if opts.check_scripts => {
                    return Err(VerifyError::ConflictingSpend {
                        txid,
                        input: k,
                        outpoint: input.prev_out,
                        first,
                    });
                }
                _ => {}
            }
        }
        // `None` once an input spends a txid-only entry: its amount is unknown.
        let mut sum_in: Option<u64> = Some(0);
        for (k, input) in tx.inputs.iter().enumerate() {
            let parent = input.prev_out.txid;
            let j = beef.position(&parent).ok_or(VerifyError::MissingInput {
                txid,
                input: k,
                parent,
            })?;
            if j >= i {
                return Err(VerifyError::ParentAfterChild {
                    txid,
                    input: k,
                    parent,
                });
            }
            let Some(parent_entry) = txs.get(j) else {
                continue;
            };
            let Some(parent_tx) = parent_entry.transaction() else {
                sum_in = None;
                continue;
            };
            let vout = input.prev_out.vout;
            let spent = parent_tx
                .outputs
                .get(vout as usize)
                .ok_or(VerifyError::MissingOutput {
                    txid,
                    input: k,
                    parent,
                    vout,
                })?;
            if let Some(s) = sum_in {
                sum_in = Some(
                    s.checked_add(spent.satoshis)
                        .ok_or(VerifyError::AmountOverflow { txid })?,
                );
            }
            let utxo_height = proven_height(beef, parent_entry);
            if let (true, Some(height)) = (parent_tx.is_coinbase(), utxo_height) {
                plan.coinbase_spends.push(CoinbaseSpend {
                    txid,
                    input: k,
                    coinbase: parent,
                    height,
                });
            }
            plan.jobs.push(ScriptJob {
                txid,
                tx: i,
                input: k,
                parent_txid: parent,
                parent: j,
                vout,
                utxo_height,
            });
        }
        let sum_out = tx
            .total_output_satoshis()
            .ok_or(VerifyError::AmountOverflow { txid })?;
        if let Some(sum_in) = sum_in {
            if sum_out > sum_in {
                return Err(VerifyError::OutputsExceedInputs {
                    txid,
                    inputs: sum_in,
                    outputs: sum_out,
                });
            }
            if sum_out == sum_in && !opts.allow_zero_fee {
                return Err(VerifyError::ZeroFee {
                    txid,
                    satoshis: sum_in,
                });
            }
        }
    }
    Ok((subject, claims, plan))
}

/// Height of the block proving `entry`, if a BUMP proves it.
fn proven_height(beef: &Beef, entry: &BeefTx) -> Option<u32> {
    entry
        .bump_index()
        .and_then(|b| beef.bumps().get(b))
        .map(|b| b.block_height())
}

/// One claim per distinct (height, root), sorted; two roots for one height
/// is [`VerifyError::ConflictingRoots`].
fn root_claims(beef: &Beef) -> Result<Vec<RootClaim>, VerifyError> {
    let mut claims: Vec<RootClaim> = beef
        .bumps()
        .iter()
        .map(|b| RootClaim {
            height: b.block_height(),
            root: b.root(),
        })
        .collect();
    claims.sort_unstable();
    claims.dedup();
    if let Some(w) = claims.windows(2).find(|w| w[0].height == w[1].height) {
        return Err(VerifyError::ConflictingRoots {
            height: w[0].height,
        });
    }
    Ok(claims)
}

/// BRC-95: every transaction is the subject or an ancestor it needs (inputs of
/// unproven transactions, recursively; proven and txid-only entries end a path).
fn check_closure(beef: &Beef, subject: usize) -> Result<(), VerifyError> {
    let txs = beef.txs();
    let mut needed = vec![false; txs.len()];
    let mut stack = vec![subject];
    while let Some(i) = stack.pop() {
        match needed.get_mut(i) {
            Some(seen) if !*seen => *seen = true,
            _ => continue,
        }
        if let Some(tx) = txs.get(i).and_then(BeefTx::unproven) {
            stack.extend(
                tx.inputs
                    .iter()
                    .filter_map(|input| beef.position(&input.prev_out.txid)),
            );
        }
    }
    match txs.iter().zip(&needed).find(|(_, n)| !**n) {
        Some((t, _)) => Err(VerifyError::OutsideClosure { txid: t.txid() }),
        None => Ok(()),
    }
}

impl Plan {
    /// Coinbase spends must be mature when mined at `tip_height + 1`.
    pub(super) fn check_maturity(&self, tip_height: u32) -> Result<(), VerifyError> {
        let spend_height = u64::from(tip_height) + 1;
        match self
            .coinbase_spends
            .iter()
            .find(|s| spend_height < u64::from(s.height) + u64::from(COINBASE_MATURITY))
        {
            Some(s) => Err(VerifyError::CoinbaseImmature {
                txid: s.txid,
                input: s.input,
                coinbase: s.coinbase,
                coinbase_height: s.height,
                tip_height,
            }),
            None => Ok(()),
        }
    }

    /// Runs every planned input in parallel; reports the first failure in BEEF order.
    pub(super) fn check_scripts(
        &self,
        beef: &Beef,
        opts: &VerifyOptions,
        tip_height: u32,
    ) -> Result<(), VerifyError> {
        run_jobs(beef, &self.jobs, opts, tip_height)
    }
}

/// Runs `jobs` with a per-input budget and a total budget, giving the
/// verdict of a sequential run in job order where each input may use
/// `min(per-input budget, total left)`: the first input that fails — on its
/// script, its own budget ([`ScriptError::WorkBudgetExceeded`]) or the total
/// ([`VerifyError::TotalWorkExceeded`]) — is reported.
///
/// Inputs run in parallel, in batches in job order. Every input of a batch
/// runs with the budget `min(per-input, total left before the batch)`, at
/// least what the sequential run would give it; a scan in order then
/// replays the sequential run exactly from each input's verdict and work
/// (an input whose work passes its sequential budget would have been stopped
/// there). A batch holds as many inputs as the total left can pay full
/// per-input budgets for, and at least one per thread, so the work done
/// beyond the total is at most one per-input budget per thread. Inputs after
/// a failure found in a batch are skipped.
fn run_jobs(
    beef: &Beef,
    jobs: &[ScriptJob],
    opts: &VerifyOptions,
    tip_height: u32,
) -> Result<(), VerifyError> {
    let txs = beef.txs();
    // One sighash cache per spending transaction, shared by its inputs.
    let caches: Vec<Option<SighashCache<'_>>> = txs
        .iter()
        .map(|t| t.unproven().map(SighashCache::new))
        .collect();
    let spend_height = tip_height.saturating_add(1);
    // The plan was made from this BEEF, so every lookup below succeeds; were
    // one to fail, the input is reported as unverifiable, never skipped.
    let run = |job: &ScriptJob, limits: &ScriptLimits| -> Result<Metered, VerifyError> {
        let (txid, input) = (job.txid, job.input);
        let cache =
            caches
                .get(job.tx)
                .and_then(Option::as_ref)
                .ok_or(VerifyError::MissingInput {
                    txid,
                    input,
                    parent: job.parent_txid,
                })?;
        let spent = txs
            .get(job.parent)
            .and_then(BeefTx::transaction)
            .and_then(|p| p.outputs.get(job.vout as usize))
            .ok_or(VerifyError::MissingOutput {
                txid,
                input,
                parent: job.parent_txid,
                vout: job.vout,
            })?;
        let flags = opts.eras.flags_for(
            opts.script_flags,
            job.utxo_height.unwrap_or(spend_height),
            spend_height,
        );
        Ok(verify_input_metered(
            cache,
            input,
            &spent.locking_script,
            spent.satoshis,
            flags,
            limits,
        ))
    };

    let per_input = opts.script_limits.max_work;
    let threads = rayon::current_num_threads().max(1);
    let mut left = opts.max_total_work;
    let mut rest = jobs;
    while !rest.is_empty() {
        let affordable = usize::try_from(left / per_input.max(1)).unwrap_or(usize::MAX);
        let (batch, after) = rest.split_at(affordable.max(threads).min(rest.len()));
        rest = after;
        let limits = ScriptLimits {
            max_work: per_input.min(left),
            ..opts.script_limits
        };
        // Lowest position in the batch known to fail; later inputs need not run.
        let first_failure = AtomicUsize::new(usize::MAX);
        let outcomes: Vec<Option<Result<Metered, VerifyError>>> = batch
            .par_iter()
            .enumerate()
            .map(|(k, job)| {
                if k > first_failure.load(Ordering::Relaxed) {
                    return None;
                }
                let outcome = run(job, &limits);
                if !matches!(outcome, Ok(Metered { result: Ok(()), .. })) {
                    first_failure.fetch_min(k, Ordering::Relaxed);
                }
                Some(outcome)
            })
            .collect();
        for (job, outcome) in batch.iter().zip(outcomes) {
            // Skipped only after a failure earlier in this batch, which
            // returns first; were that not so, the input runs now.
            let metered = outcome.unwrap_or_else(|| run(job, &limits))?;
            let (txid, input) = (job.txid, job.input);
            if metered.work > per_input.min(left) {
                return Err(if left < per_input {
                    VerifyError::TotalWorkExceeded {
                        txid,
                        input,
                        max_total_work: opts.max_total_work,
                    }
                } else {
                    VerifyError::Script {
                        txid,
                        input,
                        error: ScriptError::WorkBudgetExceeded,
                    }
                });
            }
            metered
                .result
                .map_err(|error| VerifyError::Script { txid, input, error })?;
            left -= metered.work;
        }
    }
    Ok(())
}

/// Scripts of `txid` and its unproven ancestors (see [`super::verify_scripts`]).
pub(super) fn scripts_of(
    beef: &Beef,
    txid: &Txid,
    opts: &VerifyOptions,
    tip_height: u32,
) -> Result<(), VerifyError> {
    let txs = beef.txs();
    let start = beef
        .position(txid)
        .ok_or(VerifyError::SubjectMissing { subject: *txid })?;
    if txs.get(start).is_some_and(BeefTx::is_txid_only) {
        return Err(VerifyError::SubjectTxidOnly { subject: *txid });
    }
    let mut seen = vec![false; txs.len()];
    let mut stack = vec![start];
    let mut jobs = Vec::new();
    while let Some(i) = stack.pop() {
        match seen.get_mut(i) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        let Some(entry) = txs.get(i) else { continue };
        let Some(tx) = entry.unproven() else { continue };
        let child = entry.txid();
        for (k, input) in tx.inputs.iter().enumerate() {
            let parent = input.prev_out.txid;
            let j = beef.position(&parent).ok_or(VerifyError::MissingInput {
                txid: child,
                input: k,
                parent,
            })?;
            let parent_entry = txs.get(j).ok_or(VerifyError::MissingInput {
                txid: child,
                input: k,
                parent,
            })?;
            let parent_tx = parent_entry
                .transaction()
                .ok_or(VerifyError::TxidOnly { txid: parent })?;
            let vout = input.prev_out.vout;
            if parent_tx.outputs.get(vout as usize).is_none() {
                return Err(VerifyError::MissingOutput {
                    txid: child,
                    input: k,
                    parent,
                    vout,
                });
            }
            jobs.push(ScriptJob {
                txid: child,
                tx: i,
                input: k,
                parent_txid: parent,
                parent: j,
                vout,
                utxo_height: proven_height(beef, parent_entry),
            });
            stack.push(j);
        }
    }
    jobs.sort_by_key(|j| (j.tx, j.input));
    run_jobs(beef, &jobs, opts, tip_height)
}
