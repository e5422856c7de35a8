//! Sans-io SPV verification of a BEEF, applying the strict rule set of
//! `bsv-formats.md` §7.7 (a superset of BRC-67, ts-sdk, go-sdk and ARC).
//!
//! Verification is split so that no I/O happens here:
//! 1. [`Beef::spv_request`] checks everything that needs no chain data and
//!    lists the `(height, root)` [`RootClaim`]s the BEEF relies on;
//! 2. the caller asks its chain tracker about each claim (synchronously, over
//!    HTTP, from chainsim: any way it likes) and learns the tip height;
//! 3. [`SpvRequest::finish`] takes the answers and the tip, checks roots,
//!    coinbase maturity and scripts, and returns a [`VerifiedBeef`] — the only
//!    way to obtain one.
//!
//! [`verify`] does the three steps with a synchronous [`ChainTracker`].
//! `finish` is CPU-bound (scripts are checked in parallel with rayon across
//! all inputs): an async caller runs it on a blocking thread.
//!
//! # Rules (each failure names the rule and the transaction / input)
//! - structure: at least one transaction; no txid twice; a txid-only entry
//!   only with [`VerifyOptions::allow_txid_only`]; BUMPs of one height agree
//!   on the root; every input of an unproven transaction spends an output of an
//!   *earlier* entry (wire order, BRC-62) that exists — decoding already
//!   guaranteed bump indexes and leaves (`crate::beef`);
//! - Atomic BEEF (BRC-95): the subject is present and every transaction is
//!   the subject or an ancestor it needs (down to proven or txid-only entries);
//! - amounts, for unproven transactions whose spent outputs are all known:
//!   outputs must not exceed inputs, and by default must be strictly below
//!   them (BRC-67: `sum(in) > sum(out)`); ts-sdk accepts equality and go/py-sdk
//!   do not compare at all (§12.6). [`VerifyOptions::allow_zero_fee`] accepts
//!   equality for chains whose miners take zero-fee transactions. Fee *rates*
//!   are a broadcaster's policy, not checked here;
//! - roots: every claim confirmed by the chain tracker;
//! - coinbase maturity: an unproven transaction spending a coinbase proven at
//!   height `h` can be mined at `tip + 1` only if `tip + 1 - h >= 100` (node
//!   `COINBASE_MATURITY`; ts-sdk 2.1.0 has this check inverted, §3.4). Spends
//!   by proven transactions were checked by the miners;
//! - scripts (unless [`VerifyOptions::check_scripts`] is off): every input of
//!   every unproven transaction whose spent output is known, under
//!   [`VerifyOptions::script_flags`] adjusted per input to the era of the spent
//!   output ([`ScriptEras`]), within [`VerifyOptions::script_limits`] (the
//!   node's policy limits and a per-input work budget by default);
//! - work: all inputs together may use at most
//!   [`VerifyOptions::max_total_work`] work units, so that many inputs cannot
//!   multiply the per-input budget without bound. The verdict is the one a
//!   sequential run in BEEF order would give (each input's budget is the
//!   smaller of the per-input budget and what is left of the total), however
//!   the inputs are scheduled across threads.
//!
//! The subject of a non-Atomic BEEF is its last transaction (BRC-62; BRC-96
//! allows several unrelated ones, all are verified, the last is reported).
//!
//! # Layout
//! - [`ChainTracker`], [`ScriptEras`], [`VerifyOptions`], [`DEFAULT_MAX_TOTAL_WORK`], [`RootClaim`],
//!   [`VerifyError`].
//! - [`SpvRequest`] (`Beef::spv_request`, `finish`), [`VerifiedBeef`],
//!   [`verify`], [`verify_scripts`].

mod check;

use crate::beef::Beef;
use crate::hash::{Hash256, Txid};
use crate::script::interpreter::{ScriptError, ScriptLimits, VerifyFlags};
use crate::tx::Transaction;

/// Answers the two questions SPV asks about a chain (`bsv-formats.md` §11).
pub trait ChainTracker {
    /// Whether `root` (internal byte order) is the Merkle root of the block at
    /// `height` on the best chain.
    fn is_valid_root_for_height(&self, root: &Hash256, height: u32) -> bool;
    /// Height of the best chain's tip.
    fn current_height(&self) -> u32;
}

/// Activation heights of the script eras of one chain (`bsv-formats.md` §9):
/// outputs created below `genesis_height` are verified with pre-Genesis rules,
/// below `chronicle_height` with pre-Chronicle rules; a spend that would be
/// mined below an activation height gets that era's block rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptEras {
    /// First block height with Genesis rules.
    pub genesis_height: u32,
    /// First block height with Chronicle rules.
    pub chronicle_height: u32,
}

impl ScriptEras {
    /// BSV mainnet: Genesis 620,538, Chronicle 943,816.
    pub const MAINNET: ScriptEras = ScriptEras {
        genesis_height: 620_538,
        chronicle_height: 943_816,
    };
    /// BSV testnet: Genesis 1,344,302, Chronicle 1,713,168.
    pub const TESTNET: ScriptEras = ScriptEras {
        genesis_height: 1_344_302,
        chronicle_height: 1_713_168,
    };
    /// Every rule active from height 0 (regtest-style chains such as chainsim).
    pub const ALWAYS_ACTIVE: ScriptEras = ScriptEras {
        genesis_height: 0,
        chronicle_height: 0,
    };

    /// `base` adjusted for an output created at `utxo_height`, spent in a
    /// block at `spend_height`.
    pub fn flags_for(&self, base: VerifyFlags, utxo_height: u32, spend_height: u32) -> VerifyFlags {
        let mut flags = base;
        if spend_height < self.chronicle_height {
            flags = flags.without(VerifyFlags::CHRONICLE);
        }
        if spend_height < self.genesis_height {
            flags = flags.without(VerifyFlags::GENESIS);
        }
        if utxo_height < self.chronicle_height {
            flags = flags.without(VerifyFlags::UTXO_AFTER_CHRONICLE);
        }
        if utxo_height < self.genesis_height {
            flags = flags.without(VerifyFlags::UTXO_AFTER_GENESIS);
        }
        flags
    }
}

/// What to check and what to accept.
///
/// The defaults are for BEEFs from a possibly hostile counterparty: strict
/// rules, the node's policy script limits and a work cap for the whole BEEF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Run every input's scripts (default `true`). Off, only structure,
    /// amounts, roots and maturity are checked.
    pub check_scripts: bool,
    /// Accept BRC-96 txid-only entries as already-validated ancestors
    /// (default `false`, as ARC does).
    pub allow_txid_only: bool,
    /// Accept `sum(outputs) == sum(inputs)` (default `false`: BRC-67 wants a fee).
    pub allow_zero_fee: bool,
    /// Script flags for a spend mined after every activation (default
    /// [`VerifyFlags::standard_post_chronicle`]); adjusted per input by `eras`.
    pub script_flags: VerifyFlags,
    /// Activation heights of the chain (default [`ScriptEras::MAINNET`]).
    pub eras: ScriptEras,
    /// Limits for each input's scripts, including its work budget (default
    /// [`ScriptLimits::policy`]). An input over its budget fails with
    /// [`VerifyError::Script`] carrying [`ScriptError::WorkBudgetExceeded`].
    pub script_limits: ScriptLimits,
    /// Work units all inputs of the BEEF may use together, in the units of
    /// [`ScriptLimits::max_work`] (default [`DEFAULT_MAX_TOTAL_WORK`]).
    /// Passing it is [`VerifyError::TotalWorkExceeded`].
    pub max_total_work: u64,
}

/// Default [`VerifyOptions::max_total_work`]: 40,000,000,000 units, 100
/// per-input policy budgets, room for about 154,000 P2PKH inputs (259,639
/// units each). On the calibration machine a BEEF that spends it all on the
/// most expensive work per unit we could build takes about 8 s of one core
/// (`docs/formats.md`, "Known limits").
pub const DEFAULT_MAX_TOTAL_WORK: u64 = 100 * ScriptLimits::POLICY_MAX_WORK;

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            check_scripts: true,
            allow_txid_only: false,
            allow_zero_fee: false,
            script_flags: VerifyFlags::standard_post_chronicle(),
            eras: ScriptEras::MAINNET,
            script_limits: ScriptLimits::policy(),
            max_total_work: DEFAULT_MAX_TOTAL_WORK,
        }
    }
}

/// A claim the BEEF relies on: the block at `height` has Merkle root `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RootClaim {
    /// Block height.
    pub height: u32,
    /// Merkle root, internal byte order (display with `to_string`).
    pub root: Hash256,
}

/// Why a BEEF failed verification: the rule, and the transaction and input
/// that broke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The BEEF holds no transaction, so there is nothing to verify.
    #[error("the BEEF holds no transaction")]
    Empty,
    /// BRC-95: the Atomic subject is not in the BEEF.
    #[error("Atomic BEEF subject {subject} is not in the BEEF")]
    SubjectMissing {
        /// The subject named by the prefix.
        subject: Txid,
    },
    /// The subject is a txid-only entry: there is no transaction to verify.
    #[error("the subject {subject} is a txid-only entry")]
    SubjectTxidOnly {
        /// The subject.
        subject: Txid,
    },
    /// BRC-95: a transaction the Atomic subject does not need.
    #[error("transaction {txid} is outside the Atomic BEEF subject's ancestry")]
    OutsideClosure {
        /// The unrelated transaction.
        txid: Txid,
    },
    /// The same txid appears twice.
    #[error("transaction {txid} appears more than once")]
    DuplicateTxid {
        /// The repeated txid.
        txid: Txid,
    },
    /// A BRC-96 txid-only entry where it is not accepted.
    #[error("txid-only entry {txid} is not accepted")]
    TxidOnly {
        /// The entry's txid.
        txid: Txid,
    },
    /// Two BUMPs of one block height give different roots.
    #[error("BUMPs for height {height} give different Merkle roots")]
    ConflictingRoots {
        /// The block height.
        height: u32,
    },
    /// An unproven transaction has no inputs (node `bad-txns-vin-empty`).
    #[error("{txid} has no inputs")]
    NoInputs {
        /// The transaction.
        txid: Txid,
    },
    /// An unproven transaction has no outputs (node `bad-txns-vout-empty`).
    #[error("{txid} has no outputs")]
    NoOutputs {
        /// The transaction.
        txid: Txid,
    },
    /// A transaction spends the same outpoint twice (node
    /// `bad-txns-inputs-duplicate`): its value would be counted twice.
    #[error("input {input} of {txid} spends {outpoint} a second time")]
    DuplicateInput {
        /// The transaction.
        txid: Txid,
        /// The input that repeats an earlier one.
        input: usize,
        /// The outpoint spent twice.
        outpoint: crate::tx::Outpoint,
    },
    /// Two transactions of the BEEF spend the same outpoint: at most one of
    /// them can ever be mined.
    #[error("input {input} of {txid} spends {outpoint}, already spent by {first}")]
    ConflictingSpend {
        /// The later spender.
        txid: Txid,
        /// Its input.
        input: usize,
        /// The outpoint spent twice.
        outpoint: crate::tx::Outpoint,
        /// The earlier spender in the BEEF.
        first: Txid,
    },
    /// An unproven transaction spends a transaction that is not in the BEEF.
    #[error("input {input} of {txid} spends {parent}, which is not in the BEEF")]
    MissingInput {
        /// The spending transaction.
        txid: Txid,
        /// Its input index.
        input: usize,
        /// The absent parent.
        parent: Txid,
    },
    /// An input spends an output index its parent does not have.
    #[error("input {input} of {txid} spends {parent}:{vout}, which does not exist")]
    MissingOutput {
        /// The spending transaction.
        txid: Txid,
        /// Its input index.
        input: usize,
        /// The parent.
        parent: Txid,
        /// The output index it lacks.
        vout: u32,
    },
    /// BRC-62: a transaction comes before a parent it needs.
    #[error("{txid} comes before its parent {parent} (input {input})")]
    ParentAfterChild {
        /// The child.
        txid: Txid,
        /// The child's input spending the parent.
        input: usize,
        /// The parent placed later.
        parent: Txid,
    },
    /// Outputs exceed inputs.
    #[error("{txid} spends {inputs} sat and pays out {outputs} sat")]
    OutputsExceedInputs {
        /// The transaction.
        txid: Txid,
        /// Sum of spent outputs, satoshis.
        inputs: u64,
        /// Sum of outputs, satoshis.
        outputs: u64,
    },
    /// Outputs equal inputs and zero fees are not allowed (BRC-67).
    #[error("{txid} pays no fee ({satoshis} sat in and out)")]
    ZeroFee {
        /// The transaction.
        txid: Txid,
        /// Sum of inputs = sum of outputs, satoshis.
        satoshis: u64,
    },
    /// A sum of satoshis does not fit in 64 bits.
    #[error("satoshi amounts of {txid} overflow")]
    AmountOverflow {
        /// The transaction.
        txid: Txid,
    },
    /// [`SpvRequest::finish`] got a different number of answers than claims.
    #[error("{expected} root claims but {got} answers")]
    AnswerCountMismatch {
        /// Number of claims.
        expected: usize,
        /// Number of answers.
        got: usize,
    },
    /// The chain tracker did not confirm a root.
    #[error("Merkle root {root} is not confirmed for height {height}")]
    RootNotConfirmed {
        /// Block height.
        height: u32,
        /// The root the BEEF's BUMP gives.
        root: Hash256,
    },
    /// A coinbase output spent before 100 confirmations.
    #[error("input {input} of {txid} spends coinbase {coinbase} of height {coinbase_height} before maturity (tip {tip_height})")]
    CoinbaseImmature {
        /// The spending transaction.
        txid: Txid,
        /// Its input index.
        input: usize,
        /// The coinbase transaction.
        coinbase: Txid,
        /// Height of the coinbase's block.
        coinbase_height: u32,
        /// Tip height the spend was judged against.
        tip_height: u32,
    },
    /// The inputs' scripts together need more than
    /// [`VerifyOptions::max_total_work`]; `input` of `txid` is where the
    /// total ran out (in BEEF order).
    #[error("input {input} of {txid}: the BEEF's scripts need more than {max_total_work} work units in total")]
    TotalWorkExceeded {
        /// The spending transaction.
        txid: Txid,
        /// Its input index.
        input: usize,
        /// The cap that was passed.
        max_total_work: u64,
    },
    /// An input's scripts fail.
    #[error("input {input} of {txid}: {error}")]
    Script {
        /// The spending transaction.
        txid: Txid,
        /// Its input index.
        input: usize,
        /// The interpreter's verdict.
        error: ScriptError,
    },
}

/// A BEEF whose structure and amounts are checked, waiting for the chain
/// tracker's answers to its [`claims`](Self::claims). Built by
/// [`Beef::spv_request`]; owns the BEEF.
#[derive(Debug, Clone)]
pub struct SpvRequest {
    beef: Beef,
    opts: VerifyOptions,
    subject: usize,
    claims: Vec<RootClaim>,
    plan: check::Plan,
}

impl SpvRequest {
    /// The distinct `(height, root)` pairs the BEEF relies on (one per block
    /// with a BUMP), sorted by height. Answer each with the chain tracker.
    pub fn claims(&self) -> &[RootClaim] {
        &self.claims
    }

    /// The BEEF being verified.
    pub fn beef(&self) -> &Beef {
        &self.beef
    }

    /// Gives the BEEF back without verifying it.
    pub fn into_beef(self) -> Beef {
        self.beef
    }

    /// Completes verification: `confirmed[i]` is the chain tracker's answer
    /// for `claims()[i]`, `tip_height` its current height. Checks roots,
    /// coinbase maturity, then (if enabled) every script, in parallel.
    ///
    /// # Errors
    /// [`VerifyError::AnswerCountMismatch`], [`VerifyError::RootNotConfirmed`],
    /// [`VerifyError::CoinbaseImmature`], [`VerifyError::Script`] (the first
    /// failing input in BEEF order), [`VerifyError::TotalWorkExceeded`].
    pub fn finish(self, confirmed: &[bool], tip_height: u32) -> Result<VerifiedBeef, VerifyError> {
        if confirmed.len() != self.claims.len() {
            return Err(VerifyError::AnswerCountMismatch {
                expected: self.claims.len(),
                got: confirmed.len(),
            });
        }
        if let Some((claim, _)) = self.claims.iter().zip(confirmed).find(|(_, ok)| !**ok) {
            return Err(VerifyError::RootNotConfirmed {
                height: claim.height,
                root: claim.root,
            });
        }
        self.plan.check_maturity(tip_height)?;
        if self.opts.check_scripts {
            self.plan
                .check_scripts(&self.beef, &self.opts, tip_height)?;
        }
        let subject_tx = self
            .beef
            .txs()
            .get(self.subject)
            .and_then(|t| t.transaction())
            .cloned()
            .ok_or(VerifyError::Empty)?;
        Ok(VerifiedBeef {
            subject: subject_tx.txid(),
            subject_tx,
            roots: self.claims,
            tip_height,
            beef: self.beef,
        })
    }
}

impl Beef {
    /// First step of SPV: checks the structure, Atomic closure and amounts
    /// (see the [`spv`](crate::spv) module docs) and lists the root claims.
    ///
    /// # Errors
    /// [`VerifyError::Empty`], [`VerifyError::SubjectMissing`],
    /// [`VerifyError::SubjectTxidOnly`], [`VerifyError::OutsideClosure`],
    /// [`VerifyError::DuplicateTxid`], [`VerifyError::TxidOnly`],
    /// [`VerifyError::NoInputs`], [`VerifyError::NoOutputs`],
    /// [`VerifyError::DuplicateInput`], [`VerifyError::ConflictingSpend`],
    /// [`VerifyError::ConflictingRoots`], [`VerifyError::MissingInput`],
    /// [`VerifyError::MissingOutput`], [`VerifyError::ParentAfterChild`],
    /// [`VerifyError::OutputsExceedInputs`], [`VerifyError::ZeroFee`],
    /// [`VerifyError::AmountOverflow`].
    pub fn spv_request(self, opts: &VerifyOptions) -> Result<SpvRequest, VerifyError> {
        let (subject, claims, plan) = check::structure(&self, opts)?;
        Ok(SpvRequest {
            beef: self,
            opts: *opts,
            subject,
            claims,
            plan,
        })
    }
}

/// A BEEF that passed SPV verification. Only [`SpvRequest::finish`] (and
/// [`verify`]) create one.
#[derive(Debug, Clone)]
pub struct VerifiedBeef {
    beef: Beef,
    subject: Txid,
    subject_tx: Transaction,
    roots: Vec<RootClaim>,
    tip_height: u32,
}

impl VerifiedBeef {
    /// The verified BEEF.
    pub fn beef(&self) -> &Beef {
        &self.beef
    }

    /// Takes the verified BEEF.
    pub fn into_beef(self) -> Beef {
        self.beef
    }

    /// The subject's txid: the Atomic subject, else the last transaction.
    pub fn subject(&self) -> Txid {
        self.subject
    }

    /// The subject transaction.
    pub fn subject_transaction(&self) -> &Transaction {
        &self.subject_tx
    }

    /// The roots the chain tracker confirmed, by height.
    pub fn roots(&self) -> &[RootClaim] {
        &self.roots
    }

    /// The tip height the verification was judged against (coinbase maturity).
    pub fn tip_height(&self) -> u32 {
        self.tip_height
    }
}

/// Verifies `beef` against a synchronous chain tracker: [`Beef::spv_request`],
/// one `is_valid_root_for_height` call per claim, `current_height` once, then
/// [`SpvRequest::finish`].
///
/// # Errors
/// Any [`VerifyError`].
pub fn verify(
    beef: Beef,
    tracker: &impl ChainTracker,
    opts: &VerifyOptions,
) -> Result<VerifiedBeef, VerifyError> {
    let request = beef.spv_request(opts)?;
    let answers: Vec<bool> = request
        .claims()
        .iter()
        .map(|c| tracker.is_valid_root_for_height(&c.root, c.height))
        .collect();
    request.finish(&answers, tracker.current_height())
}

/// Runs the scripts of `txid` and of its unproven ancestors in `beef` (ts-sdk
/// `Transaction.verify('scripts only')`), ignoring roots, order and amounts:
/// for checking a transaction we built before broadcasting it. `tip_height`
/// fixes the script era of the spend and of unproven parents.
///
/// # Errors
/// [`VerifyError::MissingInput`] / [`VerifyError::MissingOutput`] /
/// [`VerifyError::TxidOnly`] when a spent output is not available (scripts
/// cannot run without it), [`VerifyError::Script`],
/// [`VerifyError::TotalWorkExceeded`] (inputs in BEEF order).
pub fn verify_scripts(
    beef: &Beef,
    txid: &Txid,
    opts: &VerifyOptions,
    tip_height: u32,
) -> Result<(), VerifyError> {
    check::scripts_of(beef, txid, opts, tip_height)
}

#[cfg(test)]
mod tests;
