//! The wallet: the gateway's keys and outputs, and the port the driver and
//! the admin API fund, import, withdraw and read balances through
//! (DESIGN.md §5 "Coins").
//!
//! - [`UtxoStore`] is the wallet's view of the store's `utxos` tree: what a
//!   wallet reads outputs from and commits operator-driven changes (imports,
//!   withdrawals) through. Changes decided by a saga step do not go through
//!   here: they ride in that step's append to the event log, so events and
//!   UTXO reservations commit in one transaction. Every event log
//!   implementation (the in-memory one, the sled store) also implements this
//!   trait over the same data, with the rules of [`apply_change`], and passes
//!   [`conformance::check_utxo_store`].
//! - [`Wallet`] is the port; [`KeyWallet`] implements it with one P2PKH key
//!   per chain over any [`UtxoStore`]; [`MemUtxoStore`] is the in-memory store.
//!
//! # Funding a reservation, and losing a race for an output
//! [`Wallet::fund_reservation`] selects, builds and signs, and returns the
//! changes the driver appends *with* the event that records the signed
//! reservation ([`saga_core::wallet::changes_when_funded`]: `Reserve` of each
//! input). It commits nothing itself. Two sagas may select the same output at
//! the same time; the second append then fails with
//! [`UtxoStoreError::UtxoUnavailable`] and nothing of it is written, and the
//! driver calls `fund_reservation` again, which no longer sees the taken
//! output. The later steps' changes (broadcast, abandoned) are pure functions
//! of the recorded transaction in [`saga_core::wallet`].
//!
//! # Which outputs fund what
//! - The payment leg (the buyer's) spends `funding`.
//! - The delivery leg (the seller's) spends `inventory` first, the asset it
//!   sells: if inventory alone covers amount and fee, only inventory;
//!   otherwise all of inventory topped up from `funding`
//!   ([`saga_core::wallet::select_coins_preferring`]).
//! - Change of both goes to `funding`, to P2PKH of the chain's wallet key.
//! - Withdrawals spend `funding` only.
//! - Only available outputs locked to P2PKH of the chain's key are candidates.
//!
//! # Layout
//! - [`UtxoStoreError`], [`UtxoStore`], [`apply_change`].
//! - [`WalletError`], [`FundedReservation`], [`ImportReport`],
//!   [`Withdrawal`], [`Wallet`].
//! - [`KeyWallet`] (`key.rs`), [`MemUtxoStore`] (`mem.rs`), [`conformance`].

use async_trait::async_trait;
use bsv_format::spv::VerifiedBeef;
use bsv_format::{Outpoint, Transaction, Txid};
use saga_core::legs::LegError;
use saga_core::terms::{Leg, Terms};
use saga_core::wallet::{Balances, Basket, SelectionError, Utxo, UtxoChange, UtxoState};
use saga_core::Satoshis;

pub mod conformance;
mod key;
mod mem;

pub use key::KeyWallet;
pub use mem::MemUtxoStore;

// ---------------------------------------------------------------------------
// The store port

/// Why a set of UTXO changes was refused or could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtxoStoreError {
    /// A `Reserve` or `Spend` named an output that is missing, reserved by
    /// another saga or spent by another transaction. Nothing was written.
    #[error("output {outpoint} on chain {chain_id} is not available ({reason})")]
    UtxoUnavailable {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// `missing`, `reserved by saga <id>` or `spent by <txid>`.
        reason: String,
    },
    /// The storage failed (I/O, corruption); nothing is known to be written.
    #[error("store: {0}")]
    Storage(String),
}

/// Read and write access to the wallet's outputs.
#[async_trait]
pub trait UtxoStore: Send + Sync {
    /// Every output of `basket` on `chain_id` with its state, in outpoint
    /// order (txid bytes, then vout).
    ///
    /// # Errors
    /// [`UtxoStoreError::Storage`].
    async fn utxos(
        &self,
        chain_id: &str,
        basket: Basket,
    ) -> Result<Vec<(Utxo, UtxoState)>, UtxoStoreError>;

    /// Applies `changes` all together or not at all (durable when it
    /// returns), with the rules documented on [`UtxoChange`].
    ///
    /// # Errors
    /// [`UtxoStoreError::UtxoUnavailable`] (nothing written), [`UtxoStoreError::Storage`].
    async fn commit_utxos(&self, changes: Vec<UtxoChange>) -> Result<(), UtxoStoreError>;
}

/// What `change` does to the entry it names, `current` (the output and its
/// state, `None` if the store has no such output on that chain): the entry
/// to write, or `None` when the change is a no-op. The rules of
/// [`UtxoChange`], in one place for every store: apply the changes of one
/// commit in order, each seeing the entries the earlier ones wrote, and
/// write nothing if any fails.
///
/// | change | missing | available | reserved by the saga | reserved by another | spent by the tx | spent by another |
/// | --- | --- | --- | --- | --- | --- | --- |
/// | `Add` | add, available | no-op | no-op | no-op | no-op | no-op |
/// | `Reserve` | fails | reserved | no-op | fails | fails | fails |
/// | `Release` | no-op | no-op | available | no-op | no-op | no-op |
/// | `Spend` (saga `s` or none) | fails | spent | spent if `s` is the saga, else fails | fails | no-op | fails |
///
/// # Errors
/// [`UtxoStoreError::UtxoUnavailable`] with the reason `missing`,
/// `reserved by saga <id>` or `spent by <txid>` (display hex).
pub fn apply_change(
    current: Option<&(Utxo, UtxoState)>,
    change: &UtxoChange,
) -> Result<Option<(Utxo, UtxoState)>, UtxoStoreError> {
    let unavailable = |reason: String| UtxoStoreError::UtxoUnavailable {
        chain_id: change.chain_id().to_owned(),
        outpoint: change.outpoint(),
        reason,
    };
    let refusal = |state: &UtxoState| match state {
        UtxoState::Available => String::from("available"),
        UtxoState::Reserved { saga_id } => format!("reserved by saga {saga_id}"),
        UtxoState::Spent { spent_by } => format!("spent by {spent_by}"),
    };
    match change {
        UtxoChange::Add(utxo) => Ok(match current {
            None => Some((utxo.clone(), UtxoState::Available)),
            Some(_) => None,
        }),
        UtxoChange::Reserve { saga_id, .. } => {
            let Some((utxo, state)) = current else {
                return Err(unavailable("missing".into()));
            };
            match state {
                UtxoState::Available => Ok(Some((
                    utxo.clone(),
                    UtxoState::Reserved { saga_id: *saga_id },
                ))),
                UtxoState::Reserved { saga_id: holder } if holder == saga_id => Ok(None),
                UtxoState::Reserved { .. } | UtxoState::Spent { .. } => {
                    Err(unavailable(refusal(state)))
                }
            }
        }
        UtxoChange::Release { saga_id, .. } => Ok(match current {
            Some((utxo, UtxoState::Reserved { saga_id: holder })) if holder == saga_id => {
                Some((utxo.clone(), UtxoState::Available))
            }
            Some(_) | None => None,
        }),
        UtxoChange::Spend {
            spent_by, saga_id, ..
        } => {
            let Some((utxo, state)) = current else {
                return Err(unavailable("missing".into()));
            };
            let spent = || {
                Some((
                    utxo.clone(),
                    UtxoState::Spent {
                        spent_by: *spent_by,
                    },
                ))
            };
            match state {
                UtxoState::Available => Ok(spent()),
                UtxoState::Reserved { saga_id: holder } if Some(*holder) == *saga_id => Ok(spent()),
                UtxoState::Spent { spent_by: by } if by == spent_by => Ok(None),
                UtxoState::Reserved { .. } | UtxoState::Spent { .. } => {
                    Err(unavailable(refusal(state)))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The wallet port

/// Why the wallet could not fund, import, withdraw or report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// No key is configured for this chain.
    #[error("no wallet key for chain {chain_id}")]
    UnknownChain {
        /// The chain asked for.
        chain_id: String,
    },
    /// The baskets' available outputs do not cover amount and fee.
    #[error("insufficient funds on chain {chain_id} in {}: {needed} needed (amount + fee), {available} available", basket_list(.baskets))]
    InsufficientFunds {
        /// The chain.
        chain_id: String,
        /// The baskets selected from, in order of preference.
        baskets: Vec<Basket>,
        /// Amount plus the fee of spending every available output.
        needed: Satoshis,
        /// Sum of the available outputs.
        available: Satoshis,
    },
    /// Coin selection refused for another reason (too many inputs, or a
    /// store that listed an output twice).
    #[error("coin selection on chain {chain_id}: {source}")]
    Selection {
        /// The chain.
        chain_id: String,
        /// Why.
        source: SelectionError,
    },
    /// Building or signing the transaction failed.
    #[error("building the transaction: {0}")]
    Build(#[from] LegError),
    /// The reservation built from a selection has another fee or change than
    /// the selection (a bug: the two compute the same size); nothing signed.
    #[error("reservation pays fee {built_fee} and change {built_change}, the selection {selected_fee} and {selected_change}")]
    FeeMismatch {
        /// The selection's fee.
        selected_fee: Satoshis,
        /// The selection's change.
        selected_change: Satoshis,
        /// The built reservation's fee.
        built_fee: Satoshis,
        /// The built reservation's change.
        built_change: Satoshis,
    },
    /// The amount to withdraw is below the dust limit (1 satoshi).
    #[error("cannot withdraw {amount}: below the dust limit")]
    AmountBelowDust {
        /// The amount asked for.
        amount: Satoshis,
    },
    /// An import asked for an output the transaction does not have.
    #[error("transaction {txid} has no output {vout}")]
    NoSuchOutput {
        /// The verified transaction.
        txid: Txid,
        /// The output index asked for.
        vout: u32,
    },
    /// None of the outputs asked for pays P2PKH of our key on that chain:
    /// nothing was imported.
    #[error("no output of {txid} asked for pays our key on chain {chain_id} (outputs {vouts:?})")]
    NotOurs {
        /// The chain.
        chain_id: String,
        /// The verified transaction.
        txid: Txid,
        /// The outputs that were asked for.
        vouts: Vec<u32>,
    },
    /// Imports go to `funding` or `inventory` only (escrow outputs and what
    /// swaps paid us are recorded by the saga).
    #[error("outputs cannot be imported into basket {basket}")]
    NotImportable {
        /// The basket asked for.
        basket: Basket,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] UtxoStoreError),
}

fn basket_list(baskets: &[Basket]) -> String {
    baskets
        .iter()
        .map(|b| b.name())
        .collect::<Vec<_>>()
        .join(" then ")
}

/// A signed reservation and what recording it changes in the wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundedReservation {
    /// The leg's chain.
    pub chain_id: String,
    /// The signed reservation (`legs::build_reservation`'s shape: output 0
    /// the escrow output, output 1 the change if any).
    pub tx: Transaction,
    /// The escrow output (output 0).
    pub escrow: Outpoint,
    /// Fee paid, satoshis.
    pub fee: Satoshis,
    /// Change paid to `funding`, satoshis (0: no change output).
    pub change: Satoshis,
    /// The outputs spent, in input order.
    pub inputs: Vec<Utxo>,
    /// What the driver appends with the event that records `tx`
    /// ([`saga_core::wallet::changes_when_funded`]: `Reserve` of each input
    /// for the saga). An append that fails with
    /// [`UtxoStoreError::UtxoUnavailable`] means another saga took an input:
    /// fund again.
    pub changes: Vec<UtxoChange>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The verified transaction.
    pub txid: Txid,
    /// The outputs added (`Add` is a no-op for an output already known, so
    /// importing twice changes nothing).
    pub imported: Vec<Utxo>,
    /// Output indexes asked for that do not pay P2PKH of our key: not imported.
    pub not_ours: Vec<u32>,
}

/// A signed withdrawal, its spends already committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    /// The signed transaction: output 0 the payee, output 1 the change if any.
    pub tx: Transaction,
    /// Fee paid, satoshis.
    pub fee: Satoshis,
    /// Change paid back to `funding`, satoshis.
    pub change: Satoshis,
}

/// The wallet, as the driver and the admin API see it. Held as
/// `Arc<dyn Wallet>`.
#[async_trait]
pub trait Wallet: Send + Sync {
    /// Selects outputs for `leg` of `terms` (payment: `funding`; delivery:
    /// `inventory` first, then `funding`), builds the reservation with
    /// `legs::build_reservation` at `fee_rate_sats_per_kb` (the policy's rate
    /// for that chain), signs its inputs and returns it with the changes the
    /// driver appends with its event. The saga is `terms.saga_id`. Commits
    /// nothing.
    ///
    /// # Errors
    /// [`WalletError::UnknownChain`], [`WalletError::InsufficientFunds`],
    /// [`WalletError::Selection`], [`WalletError::Build`],
    /// [`WalletError::FeeMismatch`], [`WalletError::Store`].
    async fn fund_reservation(
        &self,
        terms: &Terms,
        leg: Leg,
        fee_rate_sats_per_kb: u64,
    ) -> Result<FundedReservation, WalletError>;

    /// Imports the outputs `vouts` (all outputs if `None`) of `verified`'s
    /// subject transaction that pay P2PKH of our key on `chain_id` into
    /// `basket` (`funding` or `inventory`), and reports the others. Only a
    /// [`VerifiedBeef`] is accepted: the caller SPV-verifies the BEEF with
    /// [`crate::verify_beef`] against *that chain's* tracker, so nothing
    /// unverified is ever imported. The subject may be unconfirmed (its
    /// ancestors are proven and its scripts ran).
    ///
    /// # Errors
    /// [`WalletError::UnknownChain`], [`WalletError::NotImportable`],
    /// [`WalletError::NoSuchOutput`], [`WalletError::NotOurs`] (nothing
    /// imported), [`WalletError::Store`].
    async fn import_funding(
        &self,
        chain_id: &str,
        verified: &VerifiedBeef,
        vouts: Option<&[u32]>,
        basket: Basket,
    ) -> Result<ImportReport, WalletError>;

    /// Balances of every basket on every chain we hold a key for.
    ///
    /// # Errors
    /// [`WalletError::Store`].
    async fn balances(&self) -> Result<Balances, WalletError>;

    /// Pays `amount` satoshis from `funding` on `chain_id` to P2PKH of
    /// `payee_hash160` (the 20-byte hash of an address, as
    /// `bsv_format::keys::decode_p2pkh_address` gives it), change back to
    /// `funding`. Commits the spends of its inputs and the change output
    /// ([`saga_core::wallet::changes_when_withdrawn`]) *before* returning the
    /// signed transaction: the caller records it (with the request's
    /// idempotency key) and then broadcasts, so a retry rebroadcasts the same
    /// txid and never spends twice. Losing a race for an output to a saga is
    /// retried a few times with a fresh selection.
    ///
    /// # Errors
    /// [`WalletError::UnknownChain`], [`WalletError::AmountBelowDust`],
    /// [`WalletError::InsufficientFunds`], [`WalletError::Selection`],
    /// [`WalletError::Build`], [`WalletError::Store`] (including
    /// `UtxoUnavailable` when every attempt lost its race).
    async fn withdraw(
        &self,
        chain_id: &str,
        payee_hash160: &[u8; 20],
        amount: Satoshis,
        fee_rate_sats_per_kb: u64,
    ) -> Result<Withdrawal, WalletError>;
}
