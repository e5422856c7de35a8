//! What chainsim checks about a submitted transaction before the ledger sees
//! it, and the rejections it answers with (ARC codes, `bsv-formats.md` §10.6).
//!
//! The checks split by what they need:
//! - [`decode_submission`]: the bytes are EF (BRC-30), not raw or BEEF (460),
//!   and decode (463);
//! - [`check_context_free`]: inputs and outputs make sense on their own (ARC's
//!   `checkInputs` / `checkOutputs`, node `CheckTransaction`): 462, 463, 464;
//! - [`check_finality`], [`required_fee`]: need the tip and median time past;
//!   the ledger calls them (409, 465);
//! - [`verify_scripts`]: every input's scripts under the post-Chronicle
//!   standard flags, the inputs in parallel (461). CPU-bound: callers run it
//!   outside the ledger lock.

use std::collections::HashMap;

use bsv_format::beef::{ATOMIC_BEEF_MAGIC, BEEF_V1_MAGIC, BEEF_V2_MAGIC};
use bsv_format::codec::{ParseError, ParseErrorKind};
use bsv_format::ef::EfTransaction;
use bsv_format::script::interpreter::{verify_input_cached, ScriptError, VerifyFlags};
use bsv_format::sighash::SighashCache;
use bsv_format::tx::{LOCKTIME_THRESHOLD, SEQUENCE_FINAL};
use bsv_format::{Outpoint, Transaction, TxOut, Txid};
use rayon::prelude::*;

/// Largest number of satoshis an output or a sum may carry (21 million BSV).
pub const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
/// Largest transaction chainsim accepts, bytes (node `maxtxsizepolicy` default).
pub const MAX_TX_SIZE: usize = 10_000_000;
/// Largest unlocking or locking script chainsim accepts, bytes (node `maxscriptsizepolicy` default).
pub const MAX_SCRIPT_SIZE: usize = 500_000;

/// Why a transaction was not accepted. Each variant names the fault and maps
/// to one ARC HTTP code ([`code`](Self::code)); the `Display` text becomes the
/// response's `extraInfo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRejection {
    /// 460: the bytes are a raw transaction; chainsim needs the EF extension.
    #[error("not extended format: chainsim needs BRC-30 EF (the raw transaction decodes, but its inputs carry no source outputs)")]
    NotExtendedFormat,
    /// 460: the bytes are a BEEF; chainsim takes EF only.
    #[error("BEEF submissions are not supported by chainsim: send the transaction as BRC-30 EF")]
    BeefNotSupported,
    /// 461: an input's scripts do not evaluate to true.
    #[error("input {input}: script failed: {error} ({})", error.node_name())]
    ScriptFailed {
        /// Index of the failing input.
        input: usize,
        /// The interpreter's verdict.
        error: ScriptError,
    },
    /// 462: the transaction has no inputs.
    #[error("transaction has no inputs")]
    NoInputs,
    /// 462: an input spends the null outpoint (only a block's coinbase may).
    #[error("input {input} is a coinbase input")]
    CoinbaseInput {
        /// Index of the input.
        input: usize,
    },
    /// 462: an input's EF source satoshis, or their sum, exceed 21 million BSV.
    #[error("input {input}: source satoshis exceed 21,000,000 BSV")]
    InputValueTooHigh {
        /// Index of the input (the last one summed, for an overflowing total).
        input: usize,
    },
    /// 462: an input spends an output the ledger has never seen.
    #[error("input {input} spends {outpoint}, which does not exist")]
    InputMissing {
        /// Index of the input.
        input: usize,
        /// The outpoint it spends.
        outpoint: Outpoint,
    },
    /// 462: an input spends an output already spent by a transaction mined
    /// deeper than the conflict window (closer conflicts are double spends).
    #[error(
        "input {input} spends {outpoint}, already spent by {spender} mined at height {height}"
    )]
    InputSpent {
        /// Index of the input.
        input: usize,
        /// The outpoint it spends.
        outpoint: Outpoint,
        /// The transaction that spent it.
        spender: Txid,
        /// Height of the block holding `spender`.
        height: u32,
    },
    /// 462: an input spends a coinbase output fewer than 100 blocks deep.
    #[error("input {input} spends coinbase output {outpoint} of height {coinbase_height}: immature until height {spendable_at}")]
    CoinbaseImmature {
        /// Index of the input.
        input: usize,
        /// The coinbase outpoint.
        outpoint: Outpoint,
        /// Height of the coinbase's block.
        coinbase_height: u32,
        /// First block height that may include the spend.
        spendable_at: u32,
    },
    /// 463: the bytes do not decode as a transaction.
    #[error("malformed transaction: {0}")]
    Malformed(ParseError),
    /// 463: two inputs spend the same outpoint.
    #[error("inputs {first} and {second} both spend {outpoint}")]
    DuplicateInput {
        /// Index of the first input.
        first: usize,
        /// Index of the repeated input.
        second: usize,
        /// The outpoint both spend.
        outpoint: Outpoint,
    },
    /// 463: a script is larger than the policy allows.
    #[error("{what} is {len} bytes, above the {MAX_SCRIPT_SIZE}-byte policy limit")]
    ScriptTooLarge {
        /// Which script ("input 0 unlocking script", "output 1 locking script").
        what: String,
        /// Its length in bytes.
        len: usize,
    },
    /// 463: the transaction is larger than the policy allows.
    #[error("transaction is {len} bytes, above the {MAX_TX_SIZE}-byte policy limit")]
    TxTooLarge {
        /// Raw size in bytes.
        len: usize,
    },
    /// 463: an input's EF extension disagrees with the output it spends.
    #[error("input {input}: EF source output ({claimed_satoshis} sat) does not match {outpoint} ({actual_satoshis} sat, or another locking script)")]
    SourceMismatch {
        /// Index of the input.
        input: usize,
        /// The outpoint it spends.
        outpoint: Outpoint,
        /// Satoshis the EF claims.
        claimed_satoshis: u64,
        /// Satoshis of the real output.
        actual_satoshis: u64,
    },
    /// 464: the transaction has no outputs.
    #[error("transaction has no outputs")]
    NoOutputs,
    /// 464: an output's value is out of range (0 or above 21 million BSV for
    /// a spendable output, non-zero for an OP_RETURN data output), or the total is.
    #[error("output {output}: {reason}")]
    BadOutput {
        /// Index of the output.
        output: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// 465: outputs exceed inputs.
    #[error("outputs ({outputs} sat) exceed inputs ({inputs} sat)")]
    OutputsExceedInputs {
        /// Sum of input values, satoshis.
        inputs: u64,
        /// Sum of output values, satoshis.
        outputs: u64,
    },
    /// 465: the fee is below the configured rate.
    #[error("fee {fee} sat is below the required {required} sat ({rate} sat/kB for {size} bytes)")]
    FeeTooLow {
        /// Fee paid, satoshis.
        fee: u64,
        /// Fee required, satoshis.
        required: u64,
        /// Configured rate, satoshis per 1,000 bytes.
        rate: u64,
        /// Raw transaction size, bytes.
        size: usize,
    },
    /// 409 (chainsim extension): `nLockTime` is a block height the next block
    /// has not reached.
    #[error("non-final until height {final_at}")]
    NonFinalHeight {
        /// First block height that may include the transaction (`nLockTime + 1`).
        final_at: u32,
    },
    /// 409 (chainsim extension): `nLockTime` is a time the median time past
    /// has not passed.
    #[error("non-final until time {final_at}")]
    NonFinalTime {
        /// First median time past (UNIX seconds) at which the transaction is
        /// final (`nLockTime + 1`).
        final_at: u64,
    },
}

impl TxRejection {
    /// The ARC HTTP status code for this rejection (`bsv-formats.md` §10.6;
    /// 409 for non-final transactions is chainsim's extension).
    pub fn code(&self) -> u16 {
        match self {
            TxRejection::NotExtendedFormat | TxRejection::BeefNotSupported => 460,
            TxRejection::ScriptFailed { .. } => 461,
            TxRejection::NoInputs
            | TxRejection::CoinbaseInput { .. }
            | TxRejection::InputValueTooHigh { .. }
            | TxRejection::InputMissing { .. }
            | TxRejection::InputSpent { .. }
            | TxRejection::CoinbaseImmature { .. } => 462,
            TxRejection::Malformed(_)
            | TxRejection::DuplicateInput { .. }
            | TxRejection::ScriptTooLarge { .. }
            | TxRejection::TxTooLarge { .. }
            | TxRejection::SourceMismatch { .. } => 463,
            TxRejection::NoOutputs | TxRejection::BadOutput { .. } => 464,
            TxRejection::OutputsExceedInputs { .. } | TxRejection::FeeTooLow { .. } => 465,
            TxRejection::NonFinalHeight { .. } | TxRejection::NonFinalTime { .. } => 409,
        }
    }
}

/// Decodes one submitted transaction, which must be EF and fill `bytes`.
///
/// # Errors
/// [`TxRejection::BeefNotSupported`] for BEEF magic, [`TxRejection::NotExtendedFormat`]
/// if the bytes are a well-formed raw transaction, [`TxRejection::Malformed`] otherwise.
pub fn decode_submission(bytes: &[u8]) -> Result<(EfTransaction, Txid), TxRejection> {
    let mut r = bsv_format::codec::Reader::new(bytes);
    let decoded = decode_next(&mut r)?;
    r.finish("end of EF transaction")
        .map_err(TxRejection::Malformed)?;
    Ok(decoded)
}

/// Decodes the next EF transaction from a stream of concatenated ones (`POST
/// /v1/txs` with `application/octet-stream`). Errors as [`decode_submission`].
pub fn decode_next(
    r: &mut bsv_format::codec::Reader<'_>,
) -> Result<(EfTransaction, Txid), TxRejection> {
    let rest = r.rest();
    if let Some(magic) = rest.get(..4) {
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if [BEEF_V1_MAGIC, BEEF_V2_MAGIC, ATOMIC_BEEF_MAGIC].contains(&magic) {
            return Err(TxRejection::BeefNotSupported);
        }
    }
    match EfTransaction::read_with_txid(r) {
        Ok(decoded) => Ok(decoded),
        Err(e) if e.kind == ParseErrorKind::NotExtendedFormat => {
            let mut raw = bsv_format::codec::Reader::new(rest);
            match Transaction::read(&mut raw) {
                Ok(_) => Err(TxRejection::NotExtendedFormat),
                Err(_) => Err(TxRejection::Malformed(e)),
            }
        }
        Err(e) => Err(TxRejection::Malformed(e)),
    }
}

/// Checks that need nothing but the EF transaction itself.
///
/// # Errors
/// [`TxRejection::NoInputs`], [`TxRejection::CoinbaseInput`],
/// [`TxRejection::InputValueTooHigh`], [`TxRejection::DuplicateInput`],
/// [`TxRejection::TxTooLarge`], [`TxRejection::ScriptTooLarge`],
/// [`TxRejection::NoOutputs`], [`TxRejection::BadOutput`].
pub fn check_context_free(ef: &EfTransaction) -> Result<(), TxRejection> {
    let tx = &ef.tx;
    let size = tx.size();
    if size > MAX_TX_SIZE {
        return Err(TxRejection::TxTooLarge { len: size });
    }
    if tx.inputs.is_empty() {
        return Err(TxRejection::NoInputs);
    }
    if tx.outputs.is_empty() {
        return Err(TxRejection::NoOutputs);
    }
    let mut first_of: HashMap<Outpoint, usize> = HashMap::with_capacity(tx.inputs.len());
    let mut total_in = 0u64;
    for (i, (input, source)) in tx.inputs.iter().zip(&ef.source_outputs).enumerate() {
        if input.prev_out.is_null() {
            return Err(TxRejection::CoinbaseInput { input: i });
        }
        if let Some(&first) = first_of.get(&input.prev_out) {
            return Err(TxRejection::DuplicateInput {
                first,
                second: i,
                outpoint: input.prev_out,
            });
        }
        first_of.insert(input.prev_out, i);
        if input.unlocking_script.len() > MAX_SCRIPT_SIZE {
            return Err(TxRejection::ScriptTooLarge {
                what: format!("input {i} unlocking script"),
                len: input.unlocking_script.len(),
            });
        }
        total_in = total_in
            .checked_add(source.satoshis)
            .filter(|t| *t <= MAX_MONEY)
            .ok_or(TxRejection::InputValueTooHigh { input: i })?;
    }
    let mut total_out = 0u64;
    for (i, output) in tx.outputs.iter().enumerate() {
        let script = &output.locking_script;
        if script.len() > MAX_SCRIPT_SIZE {
            return Err(TxRejection::ScriptTooLarge {
                what: format!("output {i} locking script"),
                len: script.len(),
            });
        }
        if is_p2sh(script.as_bytes()) {
            return Err(TxRejection::BadOutput {
                output: i,
                reason: "creates a P2SH output (bad-txns-vout-p2sh after Genesis)",
            });
        }
        if is_data(script.as_bytes()) {
            if output.satoshis != 0 {
                return Err(TxRejection::BadOutput {
                    output: i,
                    reason: "OP_RETURN data output carries satoshis",
                });
            }
        } else if output.satoshis == 0 || output.satoshis > MAX_MONEY {
            return Err(TxRejection::BadOutput {
                output: i,
                reason: "satoshis must be between 1 and 21,000,000 BSV",
            });
        }
        total_out = total_out
            .checked_add(output.satoshis)
            .filter(|t| *t <= MAX_MONEY)
            .ok_or(TxRejection::BadOutput {
                output: i,
                reason: "output total exceeds 21,000,000 BSV",
            })?;
    }
    Ok(())
}

/// `OP_HASH160 <20 bytes> OP_EQUAL`.
fn is_p2sh(script: &[u8]) -> bool {
    script.len() == 23 && script[0] == 0xa9 && script[1] == 0x14 && script[22] == 0x87
}

/// A data carrier: `OP_RETURN …` or `OP_FALSE OP_RETURN …`.
fn is_data(script: &[u8]) -> bool {
    matches!(script, [0x6a, ..] | [0x00, 0x6a, ..])
}

/// Lock-time finality for a transaction to be mined in the block at
/// `next_height` when the tip's median time past is `mtp` (node `IsFinalTx`,
/// `bsv-formats.md` §9.1): final if `nLockTime` is 0, or every input's
/// `nSequence` is `0xFFFFFFFF`, or `nLockTime` is below `next_height` (a
/// height, below 500,000,000) or below `mtp` (a time).
///
/// # Errors
/// [`TxRejection::NonFinalHeight`] / [`TxRejection::NonFinalTime`] with the
/// first height / median time past at which it becomes final.
pub fn check_finality(tx: &Transaction, next_height: u32, mtp: u32) -> Result<(), TxRejection> {
    if tx.lock_time == 0 || tx.inputs.iter().all(|i| i.sequence == SEQUENCE_FINAL) {
        return Ok(());
    }
    if tx.lock_time < LOCKTIME_THRESHOLD {
        if tx.lock_time < next_height {
            return Ok(());
        }
        return Err(TxRejection::NonFinalHeight {
            final_at: tx.lock_time.saturating_add(1),
        });
    }
    if tx.lock_time < mtp {
        return Ok(());
    }
    Err(TxRejection::NonFinalTime {
        final_at: u64::from(tx.lock_time) + 1,
    })
}

/// The fee in satoshis a transaction of `size` bytes must pay at `rate`
/// satoshis per 1,000 bytes, rounded up (ts-sdk / go-sdk `SatoshisPerKilobyte`).
pub fn required_fee(size: usize, rate: u64) -> u64 {
    let fee = (size as u128 * u128::from(rate)).div_ceil(1000);
    u64::try_from(fee).unwrap_or(u64::MAX)
}

/// Script flags chainsim verifies every input with: the node's standard
/// post-Chronicle set, every era active from height 0 (regtest).
pub fn script_flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle()
}

/// Verifies every input of `tx` against the output it spends (`spent[i]` for
/// input `i`), in parallel across inputs when there are several.
///
/// # Errors
/// [`TxRejection::ScriptFailed`] for the lowest failing input index.
pub fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), TxRejection> {
    let cache = SighashCache::new(tx);
    let flags = script_flags();
    let check = |(i, out): (usize, &TxOut)| {
        verify_input_cached(&cache, i, &out.locking_script, out.satoshis, flags)
            .map_err(|error| TxRejection::ScriptFailed { input: i, error })
    };
    if spent.len() <= 1 {
        return spent.iter().enumerate().try_for_each(check);
    }
    let mut failures: Vec<TxRejection> = spent
        .par_iter()
        .enumerate()
        .filter_map(|p| check(p).err())
        .collect();
    failures.sort_by_key(|f| match f {
        TxRejection::ScriptFailed { input, .. } => *input,
        _ => usize::MAX,
    });
    match failures.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsv_format::{Script, TxIn};

    fn tx(lock_time: u32, sequence: u32) -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(Txid([1; 32]), 0),
                unlocking_script: Script::default(),
                sequence,
            }],
            outputs: vec![TxOut {
                satoshis: 1,
                locking_script: Script::from_bytes(vec![0x51]),
            }],
            lock_time,
        }
    }

    #[test]
    fn finality_follows_is_final_tx() {
        assert_eq!(check_finality(&tx(0, 0), 10, 0), Ok(()));
        assert_eq!(check_finality(&tx(500, SEQUENCE_FINAL), 10, 0), Ok(()));
        assert_eq!(check_finality(&tx(9, 0), 10, 0), Ok(()));
        assert_eq!(
            check_finality(&tx(10, 0), 10, 0),
            Err(TxRejection::NonFinalHeight { final_at: 11 })
        );
        let t = 1_700_000_000;
        assert_eq!(
            check_finality(&tx(t, 0), 10, t),
            Err(TxRejection::NonFinalTime {
                final_at: u64::from(t) + 1
            })
        );
        assert_eq!(check_finality(&tx(t, 0), 10, t + 1), Ok(()));
    }

    #[test]
    fn fee_rounds_up() {
        assert_eq!(required_fee(0, 1), 0);
        assert_eq!(required_fee(191, 1), 1);
        assert_eq!(required_fee(1000, 1), 1);
        assert_eq!(required_fee(1001, 1), 2);
        assert_eq!(required_fee(250, 500), 125);
        assert_eq!(required_fee(usize::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn rejections_map_to_arc_codes() {
        assert_eq!(TxRejection::NotExtendedFormat.code(), 460);
        assert_eq!(TxRejection::NoInputs.code(), 462);
        assert_eq!(
            TxRejection::NonFinalHeight { final_at: 5 }.to_string(),
            "non-final until height 5"
        );
        assert_eq!(TxRejection::NonFinalTime { final_at: 7 }.code(), 409);
    }

    #[test]
    fn data_and_p2sh_outputs_are_recognised() {
        assert!(is_data(&[0x00, 0x6a, 0x01, 0x02]));
        assert!(is_data(&[0x6a]));
        assert!(!is_data(&[0x76, 0xa9]));
        let mut p2sh = vec![0xa9, 0x14];
        p2sh.extend_from_slice(&[0u8; 20]);
        p2sh.push(0x87);
        assert!(is_p2sh(&p2sh));
    }
}
