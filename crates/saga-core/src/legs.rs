//! Leg transaction templates (DESIGN.md §3.1) on the format core: the
//! reservation, the refund and the beneficiary's check before it signs one,
//! the claim (which reveals `s`), the cooperative-cancel refund, and reading
//! `s` back from a claim seen on chain.
//!
//! Shapes (all version 1; "escrow" is the leg's escrow output of
//! [`Terms::escrow_script`]):
//!
//! | transaction | inputs | outputs | nLockTime | nSequence |
//! | --- | --- | --- | --- | --- |
//! | reservation | the funder's selected P2PKH outputs | 0: escrow (the leg amount), 1: change (if any) | 0 | final |
//! | refund | 0: escrow [, the funder's fee inputs] | 0: P2PKH(funder's escrow key), amount − fee [, change] | `T` (the leg's refund height) | input 0: `0xFFFFFFFE` |
//! | claim | 0: escrow | 0: the beneficiary's script, amount − fee | 0 | final |
//! | cancel | 0: escrow | 0: P2PKH(funder's escrow key), amount − fee | 0 | final |
//!
//! - The refund's unlocking script is `OP_0 <sig_funder> <sig_beneficiary> OP_0`.
//!   The beneficiary signs it *before* the reservation is broadcast with
//!   `SIGHASH_SINGLE | ANYONECANPAY | FORKID` (`0xC3`): its signature covers
//!   only input 0 and output 0, so the funder can later add a fee input and a
//!   change output; the funder signs last with `ALL | FORKID` (`0x41`).
//!   nSequence below `0xFFFFFFFF` makes the node enforce nLockTime, so the
//!   refund can be mined from block `T + 1` ([`is_final`]).
//! - A beneficiary signs a refund only after [`check_refund`]: exactly the
//!   escrow outpoint, paying only the funder the reserved amount less a
//!   bounded fee, nSequence below final, nLockTime exactly `T` — an earlier
//!   one is an attack (the protocol model's counterexample 5).
//! - The claim is `<sig_beneficiary> <s> OP_1` (`ALL | FORKID`), `s` exactly 32
//!   bytes with `SHA256(s) = H`; [`extract_preimage`] reads `s` back from any
//!   transaction spending the escrow with `s` pushed anywhere in its
//!   unlocking script (a counterparty's claim need not look like ours).
//! - The cancel is the refund's 2-of-2 branch with no lock time, both
//!   signatures `ALL | FORKID`; the order in which the parties sign (DESIGN.md
//!   §3.1) is the state machine's business, [`check_cancel`] the shape's.
//!
//! # Layout
//! - Sizes and fees: [`MAX_LEG_SPEND_BYTES`], [`fee_for_size`].
//! - [`LegError`], [`RefundRefused`].
//! - Reservation: [`FundingInput`], [`Reservation`], [`build_reservation`],
//!   [`sign_p2pkh_inputs`], [`check_reservation_output`].
//! - Refund: [`build_refund`], [`check_refund`], [`sign_refund_as_beneficiary`],
//!   [`sign_refund_as_funder`], [`set_refund_unlock`].
//! - Claim: [`build_claim`], [`extract_preimage`].
//! - Cancel: [`build_cancel`], [`check_cancel`], [`sign_cancel`].
//! - [`is_final`].

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::{
    escrow_claim_unlock, escrow_refund_unlock, p2pkh_lock, p2pkh_unlock, sign_input, EscrowScript,
    TemplateError,
};
use bsv_format::sighash::{SIGHASH_ALL, SIGHASH_ANYONECANPAY, SIGHASH_FORKID, SIGHASH_SINGLE};
use bsv_format::tx::{LOCKTIME_THRESHOLD, SEQUENCE_FINAL};
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut};

use crate::terms::{Leg, Role, Terms};
use crate::units::{Height, Satoshis};

/// Version of every leg transaction.
pub const LEG_TX_VERSION: u32 = 1;

/// nSequence of the refund's escrow input: below final, so nLockTime is enforced.
pub const REFUND_SEQUENCE: u32 = 0xFFFF_FFFE;

/// Sighash type of every signature but the beneficiary's on the refund: `ALL | FORKID` (0x41).
pub const SIGHASH_ALL_FORKID: u32 = SIGHASH_ALL | SIGHASH_FORKID;

/// Sighash type of the beneficiary's refund signature: `SINGLE | ANYONECANPAY | FORKID` (0xC3).
pub const SIGHASH_REFUND_BENEFICIARY: u32 = SIGHASH_SINGLE | SIGHASH_ANYONECANPAY | SIGHASH_FORKID;

/// Upper bound, in bytes, of a transaction that spends one escrow output to
/// one P2PKH output: the refund / cancel (`OP_0 <sig> <sig> OP_0`, two
/// signatures of at most 73 bytes with their sighash byte) is the larger at
/// 4 + 1 + (32 + 4 + 1 + 150 + 4) + 1 + (8 + 1 + 25) + 4 = 235 bytes; the
/// claim (`<sig> <s> OP_1`) is at most 193.
pub const MAX_LEG_SPEND_BYTES: usize = 235;

/// Upper bound of a P2PKH input with its signature: 32 + 4 + 1 + (74 + 34) + 4 bytes.
pub const P2PKH_INPUT_BYTES: usize = 149;

/// Size of the escrow output: 8 + 1 + 148 bytes.
pub const ESCROW_OUTPUT_BYTES: usize = 157;

/// Size of a P2PKH output: 8 + 1 + 25 bytes.
pub const P2PKH_OUTPUT_BYTES: usize = 34;

/// The fee for a transaction of `size_bytes` at `rate_sats_per_kb` satoshis
/// per 1000 bytes, rounded up.
pub fn fee_for_size(size_bytes: usize, rate_sats_per_kb: u64) -> Satoshis {
    let fee = (u128::from(rate_sats_per_kb) * size_bytes as u128).div_ceil(1000);
    Satoshis(u64::try_from(fee).unwrap_or(u64::MAX))
}

/// Why a leg transaction cannot be built or signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    /// No inputs were selected for the reservation.
    #[error("no inputs selected")]
    NoInputs,
    /// The selected inputs do not cover the amount and the fee.
    #[error("inputs hold {available} sat, {needed} sat needed (amount + fee)")]
    InsufficientFunds {
        /// Amount plus fee, satoshis.
        needed: u64,
        /// Sum of the inputs, satoshis.
        available: u64,
    },
    /// The fee would take the whole output.
    #[error("fee {fee} sat leaves nothing of {amount} sat")]
    FeeExceedsAmount {
        /// The fee.
        fee: u64,
        /// The amount spent.
        amount: u64,
    },
    /// The preimage does not hash to the terms' `H`.
    #[error("SHA256(s) is not the hashlock")]
    WrongPreimage,
    /// A refund height that is not a block height.
    #[error("refund height {0} is not a block height")]
    NotABlockHeight(u32),
    /// Signing failed (input index, signature size).
    #[error("signing: {0}")]
    Template(#[from] TemplateError),
    /// The transaction we were asked to sign fails the check: not signed.
    #[error("refused to sign: {0}")]
    Refused(#[from] RefundRefused),
}

/// Why a beneficiary refuses to sign a refund (or a party a cancel) it is
/// asked to sign. Each variant names what was expected and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefused {
    /// Not version 1.
    #[error("transaction version {found}, expected 1")]
    Version {
        /// The version found.
        found: u32,
    },
    /// Not exactly one input.
    #[error("{found} inputs, expected exactly the escrow input")]
    InputCount {
        /// Inputs found.
        found: usize,
    },
    /// The input spends another outpoint than the leg's escrow output.
    #[error("spends {found}, not the escrow output {expected}")]
    WrongOutpoint {
        /// The escrow outpoint.
        expected: Outpoint,
        /// The outpoint spent.
        found: Outpoint,
    },
    /// nSequence is final, so nLockTime would not be enforced.
    #[error("input nSequence is final: the lock time would not be enforced")]
    SequenceFinal,
    /// nLockTime below the terms' refund height: a refund that could be
    /// mined before the claim deadline — an attack.
    #[error("nLockTime {found} is earlier than the refund height {expected}")]
    EarlyLockTime {
        /// The terms' refund height.
        expected: Height,
        /// nLockTime found.
        found: u32,
    },
    /// nLockTime other than the terms' refund height (later, or a UNIX time).
    #[error("nLockTime {found} is not the refund height {expected}")]
    WrongLockTime {
        /// The terms' refund height.
        expected: Height,
        /// nLockTime found.
        found: u32,
    },
    /// A cancel with a lock time or a non-final sequence.
    #[error("a cooperative cancel must have nLockTime 0 and a final nSequence")]
    NotImmediate,
    /// Not exactly one output.
    #[error("{found} outputs, expected exactly the funder's")]
    OutputCount {
        /// Outputs found.
        found: usize,
    },
    /// Output 0 does not pay P2PKH of the funder's escrow key.
    #[error("output 0 does not pay the funder")]
    WrongPayee,
    /// Output 0's value is not the reserved amount less a fee of at most `max_fee`.
    #[error("output 0 pays {found} sat, expected {min}..={max} sat (amount less at most the allowed fee)")]
    WrongAmount {
        /// Least acceptable (amount − max fee).
        min: u64,
        /// Most acceptable (the amount).
        max: u64,
        /// Found.
        found: u64,
    },
}

// ---------------------------------------------------------------------------
// Reservation
// ---------------------------------------------------------------------------

/// An output of the funder's wallet selected to fund a reservation: P2PKH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundingInput {
    /// The output spent.
    pub outpoint: Outpoint,
    /// Its value.
    pub satoshis: Satoshis,
    /// Its locking script (P2PKH of the key that signs it).
    pub locking_script: Script,
}

/// An unsigned reservation and what it pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The transaction; inputs are unsigned until [`sign_p2pkh_inputs`].
    pub tx: Transaction,
    /// Output index of the escrow output (always 0).
    pub escrow_vout: u32,
    /// Fee paid, satoshis.
    pub fee: Satoshis,
    /// Change returned (0 when there is no change output).
    pub change: Satoshis,
}

impl Reservation {
    /// The escrow output's outpoint (valid once signed: the txid commits to
    /// the unlocking scripts).
    pub fn escrow_outpoint(&self) -> Outpoint {
        Outpoint::new(self.tx.txid(), self.escrow_vout)
    }
}

/// Builds the reservation of `leg`: output 0 the escrow output of the terms
/// holding the leg amount, output 1 the change to `change_script` if any;
/// the fee is `fee_rate` on the signed size (P2PKH inputs at their largest).
///
/// # Errors
/// [`LegError::NoInputs`], [`LegError::InsufficientFunds`].
pub fn build_reservation(
    terms: &Terms,
    leg: Leg,
    inputs: &[FundingInput],
    change_script: &Script,
    fee_rate_sats_per_kb: u64,
) -> Result<Reservation, LegError> {
    if inputs.is_empty() {
        return Err(LegError::NoInputs);
    }
    let amount = terms.leg(leg).amount.0;
    let available: u128 = inputs.iter().map(|i| u128::from(i.satoshis.0)).sum();
    let size =
        4 + 3 + inputs.len() * P2PKH_INPUT_BYTES + 1 + ESCROW_OUTPUT_BYTES + P2PKH_OUTPUT_BYTES + 4;
    let fee = fee_for_size(size, fee_rate_sats_per_kb).0;
    let needed = u128::from(amount) + u128::from(fee);
    if available < needed {
        return Err(LegError::InsufficientFunds {
            needed: u64::try_from(needed).unwrap_or(u64::MAX),
            available: u64::try_from(available).unwrap_or(u64::MAX),
        });
    }
    let change = u64::try_from(available - needed).unwrap_or(u64::MAX);
    let mut outputs = vec![TxOut {
        satoshis: amount,
        locking_script: terms.escrow_script(leg),
    }];
    if change > 0 {
        outputs.push(TxOut {
            satoshis: change,
            locking_script: change_script.clone(),
        });
    }
    let tx = Transaction {
        version: LEG_TX_VERSION,
        inputs: inputs
            .iter()
            .map(|i| TxIn {
                prev_out: i.outpoint,
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs,
        lock_time: 0,
    };
    Ok(Reservation {
        tx,
        escrow_vout: 0,
        fee: Satoshis(fee),
        change: Satoshis(change),
    })
}

/// Signs every input of `tx` listed in `inputs` (same order as `tx.inputs`
/// from `first_input`) as P2PKH with `key` and `ALL | FORKID`.
///
/// # Errors
/// [`LegError::Template`] if an index is out of range.
pub fn sign_p2pkh_inputs(
    tx: &mut Transaction,
    first_input: usize,
    inputs: &[FundingInput],
    key: &PrivateKey,
) -> Result<(), LegError> {
    let pubkey = key.public_key();
    let mut scripts = Vec::with_capacity(inputs.len());
    for (n, input) in inputs.iter().enumerate() {
        let sig = sign_input(
            tx,
            first_input + n,
            &input.locking_script,
            input.satoshis.0,
            SIGHASH_ALL_FORKID,
            key,
        )?;
        scripts.push(p2pkh_unlock(&sig, &pubkey)?);
    }
    for (n, script) in scripts.into_iter().enumerate() {
        if let Some(i) = tx.inputs.get_mut(first_input + n) {
            i.unlocking_script = script;
        }
    }
    Ok(())
}

/// How a reservation's output differs from the escrow output the terms fix
/// (DESIGN.md §3.1): each variant names the output and both values, so a
/// refusal says what a counterparty got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationMismatch {
    /// The transaction has no such output.
    #[error("has no output {vout}")]
    NoOutput {
        /// The output index named.
        vout: u32,
    },
    /// The output's script is not the escrow template at all.
    #[error("output {vout} is not an escrow script: {detail}")]
    NotEscrow {
        /// The output index.
        vout: u32,
        /// Where the template does not match.
        detail: String,
    },
    /// The script locks to another hash lock than the terms' `H`.
    #[error("output {vout} locks to hash lock {found}, the terms' hash lock is {expected}")]
    HashLock {
        /// The output index.
        vout: u32,
        /// The terms' `H`, hex.
        expected: String,
        /// The script's, hex.
        found: String,
    },
    /// The script names another key of a party than the terms.
    #[error(
        "output {vout} names {found} as the {role}'s escrow key ({part}), the terms' is {expected}"
    )]
    Key {
        /// The output index.
        vout: u32,
        /// Whose key: `buyer` or `seller`.
        role: Role,
        /// Its part in the script: `beneficiary` or `funder`.
        part: &'static str,
        /// The terms' key, compressed SEC hex.
        expected: String,
        /// The script's, compressed SEC hex.
        found: String,
    },
    /// The output holds another amount than the leg's.
    #[error("output {vout} holds {found} sat, the terms fix {expected} sat")]
    Amount {
        /// The output index.
        vout: u32,
        /// The leg's amount, satoshis.
        expected: u64,
        /// The output's, satoshis.
        found: u64,
    },
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that output `vout` of a reservation is exactly the escrow output
/// of `leg` in the terms (script byte for byte, the leg amount) and returns
/// its outpoint. What a party checks before relying on (or signing a refund
/// for) the other's reservation.
///
/// # Errors
/// [`ReservationMismatch`] naming the first difference: a missing output, a
/// script that is no escrow script, another hash lock, another key of
/// either party (compressed SEC hex of both), another amount (satoshis).
pub fn check_reservation_output(
    reservation: &Transaction,
    vout: u32,
    terms: &Terms,
    leg: Leg,
) -> Result<Outpoint, ReservationMismatch> {
    let out = reservation
        .outputs
        .get(vout as usize)
        .ok_or(ReservationMismatch::NoOutput { vout })?;
    if out.locking_script != terms.escrow_script(leg) {
        let found = EscrowScript::parse(&out.locking_script).map_err(|e| {
            ReservationMismatch::NotEscrow {
                vout,
                detail: e.to_string(),
            }
        })?;
        if found.hash_lock != terms.hash_lock {
            return Err(ReservationMismatch::HashLock {
                vout,
                expected: hex_of(&terms.hash_lock),
                found: hex_of(&found.hash_lock),
            });
        }
        for (role, part, key) in [
            (leg.beneficiary(), "beneficiary", &found.beneficiary),
            (leg.funder(), "funder", &found.funder),
        ] {
            let expected = terms.party(role).escrow_key(leg);
            if key != expected {
                return Err(ReservationMismatch::Key {
                    vout,
                    role,
                    part,
                    expected: hex_of(&expected.to_compressed()),
                    found: hex_of(&key.to_compressed()),
                });
            }
        }
        // Same parts, other bytes (a non-canonical encoding the parser
        // accepted): still not the terms' script.
        return Err(ReservationMismatch::NotEscrow {
            vout,
            detail: "the parts match the terms but the script is not the canonical escrow script"
                .into(),
        });
    }
    let amount = terms.leg(leg).amount.0;
    if out.satoshis != amount {
        return Err(ReservationMismatch::Amount {
            vout,
            expected: amount,
            found: out.satoshis,
        });
    }
    Ok(Outpoint::new(reservation.txid(), vout))
}

// ---------------------------------------------------------------------------
// Refund
// ---------------------------------------------------------------------------

/// The funder's payout script on `leg`: P2PKH of its escrow key there.
pub fn funder_payout_script(terms: &Terms, leg: Leg) -> Script {
    p2pkh_lock(&terms.party(leg.funder()).escrow_key(leg).hash160())
}

/// The beneficiary's default payout script on `leg`: P2PKH of its escrow key there.
pub fn beneficiary_payout_script(terms: &Terms, leg: Leg) -> Script {
    p2pkh_lock(&terms.party(leg.beneficiary()).escrow_key(leg).hash160())
}

/// Builds the unsigned refund of `leg`'s escrow output at `escrow`:
/// nLockTime = the leg's refund height, input nSequence `0xFFFFFFFE`, one
/// output paying the funder the amount less `fee`.
///
/// # Errors
/// [`LegError::FeeExceedsAmount`], [`LegError::NotABlockHeight`].
pub fn build_refund(
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    fee: Satoshis,
) -> Result<Transaction, LegError> {
    let t = terms.leg(leg).refund_height.0;
    if t == 0 || t >= LOCKTIME_THRESHOLD {
        return Err(LegError::NotABlockHeight(t));
    }
    spend_escrow(
        terms,
        leg,
        escrow,
        fee,
        funder_payout_script(terms, leg),
        t,
        REFUND_SEQUENCE,
    )
}

fn spend_escrow(
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    fee: Satoshis,
    payout: Script,
    lock_time: u32,
    sequence: u32,
) -> Result<Transaction, LegError> {
    let amount = terms.leg(leg).amount.0;
    if fee.0 >= amount {
        return Err(LegError::FeeExceedsAmount { fee: fee.0, amount });
    }
    Ok(Transaction {
        version: LEG_TX_VERSION,
        inputs: vec![TxIn {
            prev_out: escrow,
            unlocking_script: Script::default(),
            sequence,
        }],
        outputs: vec![TxOut {
            satoshis: amount - fee.0,
            locking_script: payout,
        }],
        lock_time,
    })
}

/// Common checks of a 2-of-2 spend the beneficiary is asked to sign.
fn check_escrow_spend(
    tx: &Transaction,
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    max_fee: Satoshis,
) -> Result<(), RefundRefused> {
    if tx.version != LEG_TX_VERSION {
        return Err(RefundRefused::Version { found: tx.version });
    }
    let [input] = tx.inputs.as_slice() else {
        return Err(RefundRefused::InputCount {
            found: tx.inputs.len(),
        });
    };
    if input.prev_out != escrow {
        return Err(RefundRefused::WrongOutpoint {
            expected: escrow,
            found: input.prev_out,
        });
    }
    let [output] = tx.outputs.as_slice() else {
        return Err(RefundRefused::OutputCount {
            found: tx.outputs.len(),
        });
    };
    if output.locking_script != funder_payout_script(terms, leg) {
        return Err(RefundRefused::WrongPayee);
    }
    let amount = terms.leg(leg).amount.0;
    let min = amount.saturating_sub(max_fee.0);
    if output.satoshis < min || output.satoshis > amount {
        return Err(RefundRefused::WrongAmount {
            min,
            max: amount,
            found: output.satoshis,
        });
    }
    Ok(())
}

/// The beneficiary's check of a refund it is asked to sign (DESIGN.md §3.1):
/// version 1; exactly one input, spending `escrow` (the leg's escrow output),
/// with nSequence below `0xFFFFFFFF`; nLockTime exactly the leg's refund
/// height in the terms; exactly one output, paying P2PKH of the funder's
/// escrow key the leg amount less at most `max_fee`.
///
/// # Errors
/// The first failing rule, in that order ([`RefundRefused`]).
pub fn check_refund(
    tx: &Transaction,
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    max_fee: Satoshis,
) -> Result<(), RefundRefused> {
    check_escrow_spend(tx, terms, leg, escrow, max_fee)?;
    if tx.inputs.iter().any(|i| i.sequence == SEQUENCE_FINAL) {
        return Err(RefundRefused::SequenceFinal);
    }
    let expected = terms.leg(leg).refund_height;
    if tx.lock_time < expected.0 {
        return Err(RefundRefused::EarlyLockTime {
            expected,
            found: tx.lock_time,
        });
    }
    if tx.lock_time != expected.0 {
        return Err(RefundRefused::WrongLockTime {
            expected,
            found: tx.lock_time,
        });
    }
    Ok(())
}

/// Checks the refund ([`check_refund`]) and, only if it passes, signs input
/// 0 as the beneficiary with `SINGLE | ANYONECANPAY | FORKID` over the escrow
/// script and amount. Returns the signature with its sighash byte.
///
/// # Errors
/// [`LegError::Refused`] with the failing rule (nothing is signed),
/// [`LegError::Template`].
pub fn sign_refund_as_beneficiary(
    tx: &Transaction,
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    max_fee: Satoshis,
    beneficiary_key: &PrivateKey,
) -> Result<Vec<u8>, LegError> {
    check_refund(tx, terms, leg, escrow, max_fee)?;
    let amount = terms.leg(leg).amount.0;
    Ok(sign_input(
        tx,
        0,
        &terms.escrow_script(leg),
        amount,
        SIGHASH_REFUND_BENEFICIARY,
        beneficiary_key,
    )?)
}

/// The funder's signature on input 0 of a refund or cancel (`ALL | FORKID`),
/// made last — after any fee input and change output were added.
///
/// # Errors
/// [`LegError::Template`].
pub fn sign_refund_as_funder(
    tx: &Transaction,
    terms: &Terms,
    leg: Leg,
    funder_key: &PrivateKey,
) -> Result<Vec<u8>, LegError> {
    Ok(sign_input(
        tx,
        0,
        &terms.escrow_script(leg),
        terms.leg(leg).amount.0,
        SIGHASH_ALL_FORKID,
        funder_key,
    )?)
}

/// Sets input 0's unlocking script to `OP_0 <sig_funder> <sig_beneficiary> OP_0`.
///
/// # Errors
/// [`LegError::Template`] for an overlong signature.
pub fn set_refund_unlock(
    tx: &mut Transaction,
    sig_funder: &[u8],
    sig_beneficiary: &[u8],
) -> Result<(), LegError> {
    let script = escrow_refund_unlock(sig_funder, sig_beneficiary)?;
    if let Some(i) = tx.inputs.first_mut() {
        i.unlocking_script = script;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Claim
// ---------------------------------------------------------------------------

/// Builds and signs the beneficiary's claim of `leg`'s escrow output at
/// `escrow`: one input `<sig> <s> OP_1` (`ALL | FORKID`), one output paying
/// `payout` the amount less `fee`, nLockTime 0, final nSequence.
///
/// # Errors
/// [`LegError::WrongPreimage`] unless `SHA256(preimage) = H` (compared in
/// constant time), [`LegError::FeeExceedsAmount`], [`LegError::Template`].
pub fn build_claim(
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    fee: Satoshis,
    payout: Script,
    preimage: &[u8; 32],
    beneficiary_key: &PrivateKey,
) -> Result<Transaction, LegError> {
    if !crate::constant_time_eq(&sha256(preimage), &terms.hash_lock) {
        return Err(LegError::WrongPreimage);
    }
    let mut tx = spend_escrow(terms, leg, escrow, fee, payout, 0, SEQUENCE_FINAL)?;
    let sig = sign_input(
        &tx,
        0,
        &terms.escrow_script(leg),
        terms.leg(leg).amount.0,
        SIGHASH_ALL_FORKID,
        beneficiary_key,
    )?;
    let unlock = escrow_claim_unlock(&sig, preimage)?;
    if let Some(i) = tx.inputs.first_mut() {
        i.unlocking_script = unlock;
    }
    Ok(tx)
}

/// Reads `s` from `tx` if an input spending `escrow` pushes a 32-byte item
/// with `SHA256(s) = hash_lock` anywhere in its unlocking script. How a
/// funder learns `s` from its reservation's spend — seen on chain, in a
/// mempool, or in an `Execute` call — to claim the other leg.
///
/// Not only our own claim's shape (`<sig> <s> OP_1`): a counterparty
/// writes its claim as it likes, and after Chronicle a node accepts, in a
/// transaction of version 2 or more, any true branch selector (`OP_2`, a
/// non-minimal push: MINIMALIF and MINIMALDATA are waived), extra items
/// (CLEANSTACK), and non-push opcodes (SIGPUSHONLY). A claim that *computes*
/// `s` from other items (e.g. `OP_CAT`) shows it in no push: reading that
/// needs the unlocking script evaluated, which this function does not do.
pub fn extract_preimage(
    tx: &Transaction,
    escrow: &Outpoint,
    hash_lock: &[u8; 32],
) -> Option<[u8; 32]> {
    tx.inputs
        .iter()
        .filter(|i| &i.prev_out == escrow)
        .find_map(|i| {
            // A script that does not parse to its end still shows the
            // pushes before the fault (a node would refuse it; a peer's
            // claim is not trusted for more than `s`, which is checked).
            i.unlocking_script
                .chunks()
                .map_while(Result::ok)
                .filter_map(|c| c.data)
                .filter_map(|d| <[u8; 32]>::try_from(d).ok())
                .find(|s| crate::constant_time_eq(&sha256(s), hash_lock))
        })
}

// ---------------------------------------------------------------------------
// Cooperative cancel
// ---------------------------------------------------------------------------

/// Builds the unsigned cooperative-cancel refund of `leg`: the refund's shape
/// with nLockTime 0 and a final nSequence (valid at once).
///
/// # Errors
/// [`LegError::FeeExceedsAmount`].
pub fn build_cancel(
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    fee: Satoshis,
) -> Result<Transaction, LegError> {
    spend_escrow(
        terms,
        leg,
        escrow,
        fee,
        funder_payout_script(terms, leg),
        0,
        SEQUENCE_FINAL,
    )
}

/// The check of a cancel either party makes before signing it: the
/// refund's checks of the input, output, payee and amount, and nLockTime 0
/// with a final nSequence.
///
/// # Errors
/// [`RefundRefused`].
pub fn check_cancel(
    tx: &Transaction,
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    max_fee: Satoshis,
) -> Result<(), RefundRefused> {
    check_escrow_spend(tx, terms, leg, escrow, max_fee)?;
    if tx.lock_time != 0 || tx.inputs.iter().any(|i| i.sequence != SEQUENCE_FINAL) {
        return Err(RefundRefused::NotImmediate);
    }
    Ok(())
}

/// Checks the cancel ([`check_cancel`]) and signs input 0 with `key`
/// (`ALL | FORKID`); either party's signature.
///
/// # Errors
/// As [`sign_refund_as_beneficiary`].
pub fn sign_cancel(
    tx: &Transaction,
    terms: &Terms,
    leg: Leg,
    escrow: Outpoint,
    max_fee: Satoshis,
    key: &PrivateKey,
) -> Result<Vec<u8>, LegError> {
    check_cancel(tx, terms, leg, escrow, max_fee)?;
    Ok(sign_input(
        tx,
        0,
        &terms.escrow_script(leg),
        terms.leg(leg).amount.0,
        SIGHASH_ALL_FORKID,
        key,
    )?)
}

// ---------------------------------------------------------------------------
// Finality
// ---------------------------------------------------------------------------

/// Whether `tx` may be included in a block at `block_height` by its lock
/// time (the node's `IsFinalTx` for height lock times): nLockTime 0, or
/// below `block_height`, or every nSequence final. A refund with nLockTime
/// `T` is final from block `T + 1`. Lock times at or above 500,000,000 are
/// UNIX times, which escrowd never uses: reported not final.
pub fn is_final(tx: &Transaction, block_height: Height) -> bool {
    if tx.lock_time == 0 || tx.inputs.iter().all(|i| i.sequence == SEQUENCE_FINAL) {
        return true;
    }
    tx.lock_time < LOCKTIME_THRESHOLD && tx.lock_time < block_height.0
}
