//! Coin selection: which wallet outputs fund a transaction, what it pays in
//! fee and what comes back as change (DESIGN.md §5 "Coins").
//!
//! # Rules
//! - **Fee.** The fee is [`fee_for_size`] of the *signed* size of the
//!   transaction: [`TX_FRAME_BYTES`] + one [`P2PKH_INPUT_BYTES`] per input +
//!   the shape's fixed outputs + its change output. The change output is
//!   counted whether or not change is paid, exactly as
//!   [`legs::build_reservation`](crate::legs::build_reservation) does, so a
//!   selection made with [`TxShape::RESERVATION`] has the very fee and change
//!   the reservation built from its inputs has (a test checks it). Counting
//!   it always keeps the fee a function of the input count alone; the cost is
//!   at most 34 bytes of fee when no change is paid.
//! - **Preference.** One input if any single candidate covers target + fee:
//!   the smallest such (the least change, "exact-ish"). Otherwise the fewest
//!   inputs: `k`, the least count whose `k` largest candidates cover target +
//!   fee(`k`); of those, the `k − 1` largest and, as the last, the smallest
//!   remaining candidate that still covers (again the least change). Ties
//!   between equal values go to the lower outpoint (txid bytes, then vout).
//! - **Determinism.** The result depends only on the *set* of candidates, not
//!   their order: they are sorted first, and the inputs come out in outpoint
//!   order.
//! - **Dust.** Change below [`DUST_LIMIT`] is given to the fee instead of an
//!   output. The limit is 1 satoshi. On BSV the dust limit is miner policy,
//!   not consensus (SV node's `-dustlimitfactor`, since 1.0.8), and BSV's
//!   micropayment use relies on small outputs being accepted; chainsim
//!   refuses only 0-satoshi outputs that are not `OP_RETURN` data. A higher
//!   limit would also burn real change on every small reservation. So the
//!   only "dust" is zero change, which `build_reservation` also leaves out
//!   (`change > 0` makes the output): the two agree without any change to
//!   `legs`. For a miner whose policy refuses small outputs, this constant
//!   must rise and `build_reservation` must take it too (it has no dust rule
//!   of its own today).
//! - **Sums** are taken in `u128`; nothing wraps. Amounts reported in errors
//!   saturate at `u64::MAX`; the change always fits (it is at most the last
//!   input's value).
//!
//! Candidates must be P2PKH outputs of the signing key (the input size
//! assumes a P2PKH unlocking script) on one chain; callers pass only
//! [`UtxoState::Available`](super::UtxoState::Available) outputs.
//!
//! # Layout
//! - [`DUST_LIMIT`], [`TX_FRAME_BYTES`], [`MAX_INPUTS`], [`TxShape`].
//! - [`Selection`], [`SelectionError`].
//! - [`select_coins`], [`select_coins_preferring`].
//! - [`build_withdrawal`].

use std::collections::BTreeSet;

use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut};

use super::Utxo;
use crate::legs::{
    fee_for_size, FundingInput, ESCROW_OUTPUT_BYTES, LEG_TX_VERSION, P2PKH_INPUT_BYTES,
    P2PKH_OUTPUT_BYTES,
};
use crate::units::Satoshis;

/// Change below this is given to the fee rather than paid as an output: 1
/// satoshi, so only zero change is left out (see the module docs for why).
pub const DUST_LIMIT: Satoshis = Satoshis(1);

/// Bytes of a transaction besides its inputs and outputs: version (4), the
/// input count (3: the CompactSize of up to [`MAX_INPUTS`] inputs, counted at
/// its largest as `legs::build_reservation` does), the output count (1: up
/// to 252 outputs) and nLockTime (4).
pub const TX_FRAME_BYTES: usize = 4 + 3 + 1 + 4;

/// The most inputs a selection may have: the input count is sized as a
/// 3-byte CompactSize, which holds up to 65,535.
pub const MAX_INPUTS: usize = 0xFFFF;

/// The outputs of the transaction being funded, by size: what the fee must
/// pay for besides the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxShape {
    /// Bytes of the outputs every such transaction has, together (each is
    /// 8 bytes of value, the script length's CompactSize and the script).
    pub fixed_output_bytes: usize,
    /// Bytes of the change output, counted whether or not change is paid.
    pub change_output_bytes: usize,
}

impl TxShape {
    /// A reservation (`legs::build_reservation`): the escrow output and a
    /// P2PKH change output.
    pub const RESERVATION: TxShape = TxShape {
        fixed_output_bytes: ESCROW_OUTPUT_BYTES,
        change_output_bytes: P2PKH_OUTPUT_BYTES,
    };

    /// A payment to one P2PKH script with P2PKH change: a withdrawal
    /// ([`build_withdrawal`]).
    pub const P2PKH_PAYMENT: TxShape = TxShape {
        fixed_output_bytes: P2PKH_OUTPUT_BYTES,
        change_output_bytes: P2PKH_OUTPUT_BYTES,
    };

    /// The signed size, in bytes, of this shape with `inputs` P2PKH inputs
    /// (each at its largest, [`P2PKH_INPUT_BYTES`]).
    pub fn signed_size(&self, inputs: usize) -> usize {
        TX_FRAME_BYTES
            .saturating_add(inputs.saturating_mul(P2PKH_INPUT_BYTES))
            .saturating_add(self.fixed_output_bytes)
            .saturating_add(self.change_output_bytes)
    }

    /// The fee, in satoshis, of this shape with `inputs` inputs at
    /// `fee_rate_sats_per_kb` ([`fee_for_size`] of [`TxShape::signed_size`]).
    pub fn fee(&self, inputs: usize, fee_rate_sats_per_kb: u64) -> Satoshis {
        fee_for_size(self.signed_size(inputs), fee_rate_sats_per_kb)
    }
}

/// The outputs chosen to fund a transaction, with its fee and change.
/// `sum(inputs) = target + fee + change` exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The outputs to spend, in outpoint order.
    pub inputs: Vec<Utxo>,
    /// The fee, satoshis (including any change below [`DUST_LIMIT`]).
    pub fee: Satoshis,
    /// The change, satoshis: 0 (no change output) or at least [`DUST_LIMIT`].
    pub change: Satoshis,
}

impl Selection {
    /// The inputs as the leg templates take them.
    pub fn funding_inputs(&self) -> Vec<FundingInput> {
        self.inputs.iter().map(Utxo::funding_input).collect()
    }

    /// Sum of the inputs' values, satoshis (saturating; a selection's sum is
    /// `target + fee + change`, each a `u64`, so it fits unless the target is
    /// near `u64::MAX`).
    pub fn total(&self) -> Satoshis {
        Satoshis(
            self.inputs
                .iter()
                .fold(0u64, |s, u| s.saturating_add(u.satoshis.0)),
        )
    }
}

/// Why no selection could be made. Nothing is selected in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// There was nothing to select from.
    #[error("no outputs to select from")]
    NoCandidates,
    /// Spending every candidate does not cover the target and the fee of
    /// spending them all.
    #[error("insufficient funds: {needed} needed (target + fee of spending every candidate), {available} available")]
    InsufficientFunds {
        /// Target plus the fee with every candidate as an input (saturated).
        needed: Satoshis,
        /// Sum of every candidate (saturated).
        available: Satoshis,
    },
    /// The same outpoint was passed twice (a caller bug: a store lists each
    /// output once).
    #[error("output {outpoint} is a candidate twice")]
    DuplicateCandidate {
        /// The repeated outpoint.
        outpoint: Outpoint,
    },
    /// Candidates from different chains were mixed.
    #[error("candidates from chain {found} mixed with chain {expected}")]
    MixedChains {
        /// The first candidate's chain.
        expected: String,
        /// The other chain.
        found: String,
    },
    /// Covering the target needs more inputs than a transaction may have here.
    #[error("{inputs} inputs needed, at most {max} allowed")]
    TooManyInputs {
        /// Inputs the selection would need.
        inputs: usize,
        /// [`MAX_INPUTS`].
        max: usize,
    },
}

/// Selects outputs from `candidates` to pay `target` satoshis plus the fee
/// at `fee_rate_sats_per_kb` satoshis per 1000 bytes for a transaction of
/// `shape`, by the rules of the module docs.
///
/// # Errors
/// [`SelectionError::NoCandidates`], [`SelectionError::DuplicateCandidate`],
/// [`SelectionError::MixedChains`], [`SelectionError::InsufficientFunds`],
/// [`SelectionError::TooManyInputs`].
pub fn select_coins(
    candidates: &[Utxo],
    target: Satoshis,
    fee_rate_sats_per_kb: u64,
    shape: TxShape,
) -> Result<Selection, SelectionError> {
    check_candidates(candidates.iter())?;
    select_with(&[], candidates, target, fee_rate_sats_per_kb, shape)
}

/// Selects from `preferred` alone if it can pay; otherwise spends *all* of
/// `preferred` and tops it up from `fallback` with the rules of
/// [`select_coins`] (the fee counting every input). How the seller's
/// delivery leg spends its `inventory` before its `funding`.
///
/// # Errors
/// As [`select_coins`]; `InsufficientFunds` then counts both lists.
pub fn select_coins_preferring(
    preferred: &[Utxo],
    fallback: &[Utxo],
    target: Satoshis,
    fee_rate_sats_per_kb: u64,
    shape: TxShape,
) -> Result<Selection, SelectionError> {
    check_candidates(preferred.iter().chain(fallback))?;
    if preferred.is_empty() {
        return select_with(&[], fallback, target, fee_rate_sats_per_kb, shape);
    }
    match select_with(&[], preferred, target, fee_rate_sats_per_kb, shape) {
        Err(SelectionError::InsufficientFunds { .. }) => {
            select_with(preferred, fallback, target, fee_rate_sats_per_kb, shape)
        }
        other => other,
    }
}

/// Refuses duplicate outpoints and mixed chains.
fn check_candidates<'a>(all: impl Iterator<Item = &'a Utxo>) -> Result<(), SelectionError> {
    let mut seen = BTreeSet::new();
    let mut chain: Option<&str> = None;
    for u in all {
        match chain {
            None => chain = Some(&u.chain_id),
            Some(c) if c != u.chain_id => {
                return Err(SelectionError::MixedChains {
                    expected: c.to_owned(),
                    found: u.chain_id.clone(),
                })
            }
            Some(_) => {}
        }
        if !seen.insert(u.outpoint) {
            return Err(SelectionError::DuplicateCandidate {
                outpoint: u.outpoint,
            });
        }
    }
    Ok(())
}

fn saturate(v: u128) -> Satoshis {
    Satoshis(u64::try_from(v).unwrap_or(u64::MAX))
}

/// Spends all of `required` and the fewest of `candidates` that, with them,
/// cover `target` + fee (module rules). Candidates are already checked, and
/// `required` alone does not cover its own target + fee (the caller tried it).
fn select_with(
    required: &[Utxo],
    candidates: &[Utxo],
    target: Satoshis,
    rate: u64,
    shape: TxShape,
) -> Result<Selection, SelectionError> {
    if required.is_empty() && candidates.is_empty() {
        return Err(SelectionError::NoCandidates);
    }
    let need = |inputs: usize| u128::from(target.0) + u128::from(shape.fee(inputs, rate).0);
    let value = |u: &Utxo| u128::from(u.satoshis.0);
    let r = required.len();
    let required_sum: u128 = required.iter().map(value).sum();
    // Largest first, ties to the lower outpoint: the k first have the largest
    // sum of any k candidates, so the first k that covers is the fewest.
    let mut by_value: Vec<&Utxo> = candidates.iter().collect();
    by_value.sort_by(|a, b| {
        b.satoshis
            .cmp(&a.satoshis)
            .then_with(|| a.outpoint.cmp(&b.outpoint))
    });
    let mut sum = required_sum;
    let mut count = None;
    for (i, u) in by_value.iter().enumerate() {
        sum += value(u);
        if sum >= need(r + i + 1) {
            count = Some(i + 1);
            break;
        }
    }
    let Some(k) = count else {
        return Err(SelectionError::InsufficientFunds {
            needed: saturate(need(r + by_value.len())),
            available: saturate(sum),
        });
    };
    if r + k > MAX_INPUTS {
        return Err(SelectionError::TooManyInputs {
            inputs: r + k,
            max: MAX_INPUTS,
        });
    }
    // The k − 1 largest, then the smallest remaining candidate that still
    // covers (the k-th largest does, so there is one).
    let needed = need(r + k);
    let (largest, rest) = by_value.split_at(k - 1);
    let base = required_sum + largest.iter().map(|u| value(u)).sum::<u128>();
    let mut last = rest[0];
    for u in rest {
        if base + value(u) >= needed && (u.satoshis, u.outpoint) < (last.satoshis, last.outpoint) {
            last = u;
        }
    }
    let mut inputs: Vec<&Utxo> = required.iter().chain(largest.iter().copied()).collect();
    inputs.push(last);
    Ok(finish(
        inputs,
        base + value(last),
        target,
        shape.fee(r + k, rate),
    ))
}

/// The selection of `inputs` (worth `sum`, at least `target + fee`).
fn finish(mut inputs: Vec<&Utxo>, sum: u128, target: Satoshis, fee: Satoshis) -> Selection {
    inputs.sort_by_key(|u| u.outpoint);
    // Invariant: the inputs before the last one were short of target + fee
    // (the k − 1 largest did not cover, and `required` alone did not), so the
    // change is at most the last input's value, a u64.
    let change = u64::try_from(sum - u128::from(target.0) - u128::from(fee.0))
        .expect("change is at most the last input's value");
    let (fee, change) = if change < DUST_LIMIT.0 {
        // Below the dust limit: to the fee (fee + change ≤ sum − target fits).
        (Satoshis(fee.0.saturating_add(change)), Satoshis(0))
    } else {
        (fee, Satoshis(change))
    };
    Selection {
        inputs: inputs.into_iter().cloned().collect(),
        fee,
        change,
    }
}

/// Builds the unsigned withdrawal of `amount` satoshis to `to` funded by
/// `selection` (made with [`TxShape::P2PKH_PAYMENT`] for `amount`): version 1,
/// the selection's inputs in order with final nSequence, output 0 paying
/// `to`, output 1 the change to `change_script` if the selection has any,
/// nLockTime 0. Sign it with
/// [`legs::sign_p2pkh_inputs`](crate::legs::sign_p2pkh_inputs) over
/// [`Selection::funding_inputs`].
pub fn build_withdrawal(
    selection: &Selection,
    to: &Script,
    amount: Satoshis,
    change_script: &Script,
) -> Transaction {
    let mut outputs = vec![TxOut {
        satoshis: amount.0,
        locking_script: to.clone(),
    }];
    if selection.change.0 > 0 {
        outputs.push(TxOut {
            satoshis: selection.change.0,
            locking_script: change_script.clone(),
        });
    }
    Transaction {
        version: LEG_TX_VERSION,
        inputs: selection
            .inputs
            .iter()
            .map(|u| TxIn {
                prev_out: u.outpoint,
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs,
        lock_time: 0,
    }
}
