//! Wallet outputs, the changes a saga step or an operator makes to them,
//! coin selection and balances (DESIGN.md §5 "Coins"). The types are shared
//! by the pure coin selection, the runtime's `Wallet` port and the stores
//! that persist the `utxos` tree.
//!
//! An output lives in one *basket* ([`Basket`]) on one chain and is in one
//! [`UtxoState`]. A [`UtxoChange`] is written in the same store transaction
//! as the saga events that cause it, so a reservation's inputs are reserved
//! atomically with the event that records the reservation: a second saga
//! that selected the same output fails its append and selects again.
//!
//! # A reservation's outputs, step by step
//! | step | changes (appended with the step's event) |
//! | --- | --- |
//! | funded: the signed reservation is recorded | [`changes_when_funded`]: `Reserve` each input for the saga |
//! | broadcast: the broadcaster accepted it, or it was seen on chain | [`changes_when_broadcast`]: `Spend` each input; `Add` the change output (vout 1) to `funding`; `Add` the escrow output (vout 0) to `escrow` and `Reserve` it for the saga |
//! | abandoned before any broadcast | [`changes_when_abandoned`]: `Release` each input |
//! | escrow claimed or refunded | `Spend` the escrow output (saga id given) |
//!
//! The reservation's own outputs are added only once it is broadcast: a
//! transaction that is recorded but may still be abandoned (DESIGN.md §3.2
//! C2) creates nothing another selection may spend, and no child reaches a
//! broadcaster before its parent. A withdrawal ([`changes_when_withdrawn`])
//! has no "abandoned" step: the admin call that asks for it records and
//! broadcasts it at once, so it spends its inputs and adds its change when
//! it is signed.
//!
//! # Layout
//! - [`Basket`], [`Utxo`], [`UtxoState`], [`UtxoChange`] (with
//!   [`UtxoChange::chain_id`] and [`UtxoChange::outpoint`]).
//! - The changes of each step: [`changes_when_funded`],
//!   [`changes_when_broadcast`], [`changes_when_abandoned`],
//!   [`changes_when_withdrawn`].
//! - [`select`]: coin selection with fee and change ([`select_coins`],
//!   [`select_coins_preferring`], [`TxShape`], [`DUST_LIMIT`]) and
//!   [`build_withdrawal`].
//! - [`balance`]: [`balances`] per chain and basket.

pub mod balance;
pub mod select;

pub use balance::{balances, Balances, BasketBalance};
pub use select::{
    build_withdrawal, select_coins, select_coins_preferring, Selection, SelectionError, TxShape,
    DUST_LIMIT, MAX_INPUTS, TX_FRAME_BYTES,
};

use std::fmt;

use bsv_format::{Outpoint, Script, Transaction};

use crate::legs::FundingInput;
use crate::terms::SagaId;
use crate::units::Satoshis;

/// A named group of wallet outputs (DESIGN.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Basket {
    /// Outputs that pay for reservations and fees (imported from a funding
    /// BEEF, a faucet, or change of our own transactions).
    Funding,
    /// Our escrow outputs while a saga holds them.
    Escrow,
    /// The asset this gateway sells (delivery-leg funding on chain D).
    Inventory,
    /// What swaps paid us: our claims and refunds.
    Received,
}

impl Basket {
    /// Every basket, in key order.
    pub const ALL: [Basket; 4] = [
        Basket::Funding,
        Basket::Escrow,
        Basket::Inventory,
        Basket::Received,
    ];

    /// The stable name used in keys, APIs and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Basket::Funding => "funding",
            Basket::Escrow => "escrow",
            Basket::Inventory => "inventory",
            Basket::Received => "received",
        }
    }

    /// Parses [`Basket::name`]; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Basket> {
        Basket::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for Basket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One output the wallet can spend (P2PKH of one of the gateway's keys on
/// `chain_id`, or an escrow output a saga holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utxo {
    /// The chain (as in the policy's `[chains.<id>]`).
    pub chain_id: String,
    /// The basket it belongs to.
    pub basket: Basket,
    /// The output.
    pub outpoint: Outpoint,
    /// Its value.
    pub satoshis: Satoshis,
    /// Its locking script.
    pub locking_script: Script,
}

impl Utxo {
    /// The output as a reservation or withdrawal input.
    pub fn funding_input(&self) -> FundingInput {
        FundingInput {
            outpoint: self.outpoint,
            satoshis: self.satoshis,
            locking_script: self.locking_script.clone(),
        }
    }
}

/// Where an output stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtxoState {
    /// Free to be selected.
    Available,
    /// Selected by a saga's reservation; no other selection may take it.
    Reserved {
        /// The saga holding it.
        saga_id: SagaId,
    },
    /// Spent by a transaction we broadcast (or saw).
    Spent {
        /// The spending transaction.
        spent_by: bsv_format::Txid,
    },
}

/// One change to the `utxos` tree, applied in the same store transaction as
/// the events of the step that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UtxoChange {
    /// A new output (import, change of our own transaction, a claim or
    /// refund paying us). Adding an outpoint that exists is a no-op.
    Add(Utxo),
    /// Reserve an [`UtxoState::Available`] output for a saga. Fails the whole
    /// append (the store's `UtxoUnavailable`) if the output is missing or
    /// not available — unless it is already reserved by the same saga
    /// (a duplicate is a no-op).
    Reserve {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// The saga.
        saga_id: SagaId,
    },
    /// Make an output reserved by `saga_id` available again (the
    /// reservation was abandoned before broadcast). No-op if not reserved by it.
    Release {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// The saga that held it.
        saga_id: SagaId,
    },
    /// Mark an output spent. Fails the whole append (`UtxoUnavailable`) if
    /// the output is reserved by a saga other than `saga_id` (a withdrawal
    /// passes `None` and may spend only available outputs). Spending an
    /// output already spent by the same transaction is a no-op; one spent by
    /// another transaction fails.
    Spend {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// The spending transaction.
        spent_by: bsv_format::Txid,
        /// The saga on whose behalf it is spent, if any.
        saga_id: Option<SagaId>,
    },
}

impl UtxoChange {
    /// The chain of the output this change names.
    pub fn chain_id(&self) -> &str {
        match self {
            UtxoChange::Add(u) => &u.chain_id,
            UtxoChange::Reserve { chain_id, .. }
            | UtxoChange::Release { chain_id, .. }
            | UtxoChange::Spend { chain_id, .. } => chain_id,
        }
    }

    /// The output this change names.
    pub fn outpoint(&self) -> Outpoint {
        match self {
            UtxoChange::Add(u) => u.outpoint,
            UtxoChange::Reserve { outpoint, .. }
            | UtxoChange::Release { outpoint, .. }
            | UtxoChange::Spend { outpoint, .. } => *outpoint,
        }
    }
}

// ---------------------------------------------------------------------------
// The changes of each step
// ---------------------------------------------------------------------------

/// Output index of a reservation's escrow output (`legs::Reservation::escrow_vout`).
const RESERVATION_ESCROW_VOUT: u32 = 0;

/// Output index of a reservation's or withdrawal's change output, when it has one.
const CHANGE_VOUT: u32 = 1;

/// The output `vout` of `tx` as a wallet output of `basket`, if it exists.
fn output_of(tx: &Transaction, chain_id: &str, basket: Basket, vout: u32) -> Option<Utxo> {
    let out = tx.outputs.get(usize::try_from(vout).ok()?)?;
    Some(Utxo {
        chain_id: chain_id.to_owned(),
        basket,
        outpoint: Outpoint::new(tx.txid(), vout),
        satoshis: crate::units::Satoshis(out.satoshis),
        locking_script: out.locking_script.clone(),
    })
}

/// The changes recorded with a signed reservation of `saga_id` on
/// `chain_id`: `Reserve` of each input, in input order. Appending them fails
/// (`UtxoUnavailable`) if another saga took one of them first; the driver
/// then funds the reservation again.
pub fn changes_when_funded(
    chain_id: &str,
    saga_id: SagaId,
    reservation: &Transaction,
) -> Vec<UtxoChange> {
    reservation
        .inputs
        .iter()
        .map(|i| UtxoChange::Reserve {
            chain_id: chain_id.to_owned(),
            outpoint: i.prev_out,
            saga_id,
        })
        .collect()
}

/// The changes recorded once the reservation was accepted by the broadcaster
/// or seen on chain: `Spend` of each input by it; `Add` of its change output
/// (vout 1, if any) to [`Basket::Funding`]; `Add` of its escrow output (vout
/// 0) to [`Basket::Escrow`] and `Reserve` of it for the saga, which holds it
/// until it is claimed or refunded. Every change is idempotent, so recording
/// them again after a restart is harmless.
pub fn changes_when_broadcast(
    chain_id: &str,
    saga_id: SagaId,
    reservation: &Transaction,
) -> Vec<UtxoChange> {
    let txid = reservation.txid();
    let mut changes: Vec<UtxoChange> = reservation
        .inputs
        .iter()
        .map(|i| UtxoChange::Spend {
            chain_id: chain_id.to_owned(),
            outpoint: i.prev_out,
            spent_by: txid,
            saga_id: Some(saga_id),
        })
        .collect();
    if let Some(change) = output_of(reservation, chain_id, Basket::Funding, CHANGE_VOUT) {
        changes.push(UtxoChange::Add(change));
    }
    if let Some(escrow) = output_of(
        reservation,
        chain_id,
        Basket::Escrow,
        RESERVATION_ESCROW_VOUT,
    ) {
        let outpoint = escrow.outpoint;
        changes.push(UtxoChange::Add(escrow));
        changes.push(UtxoChange::Reserve {
            chain_id: chain_id.to_owned(),
            outpoint,
            saga_id,
        });
    }
    changes
}

/// The changes recorded when a reservation that was never broadcast is
/// abandoned: `Release` of each input (no-ops for inputs no longer held).
pub fn changes_when_abandoned(
    chain_id: &str,
    saga_id: SagaId,
    reservation: &Transaction,
) -> Vec<UtxoChange> {
    reservation
        .inputs
        .iter()
        .map(|i| UtxoChange::Release {
            chain_id: chain_id.to_owned(),
            outpoint: i.prev_out,
            saga_id,
        })
        .collect()
}

/// The changes a withdrawal commits before it is broadcast: `Spend` of each
/// input by it (no saga: only available outputs), and `Add` of its change
/// output (vout 1, if any) to [`Basket::Funding`].
pub fn changes_when_withdrawn(chain_id: &str, withdrawal: &Transaction) -> Vec<UtxoChange> {
    let txid = withdrawal.txid();
    let mut changes: Vec<UtxoChange> = withdrawal
        .inputs
        .iter()
        .map(|i| UtxoChange::Spend {
            chain_id: chain_id.to_owned(),
            outpoint: i.prev_out,
            spent_by: txid,
            saga_id: None,
        })
        .collect();
    if let Some(change) = output_of(withdrawal, chain_id, Basket::Funding, CHANGE_VOUT) {
        changes.push(UtxoChange::Add(change));
    }
    changes
}
