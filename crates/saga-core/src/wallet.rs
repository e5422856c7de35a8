//! Wallet outputs and the changes a saga step or an operator makes to them
//! (DESIGN.md §5). The types are shared by the pure coin selection, the
//! runtime's `Wallet` port and the stores that persist the `utxos` tree.
//!
//! An output lives in one *basket* ([`Basket`]) on one chain and is in one
//! [`UtxoState`]. A [`UtxoChange`] is written in the same store transaction
//! as the saga events that cause it, so a reservation's inputs are reserved
//! atomically with the event that records the reservation: a second saga
//! that selected the same output fails its append and selects again.
//!
//! # Layout
//! - [`Basket`], [`Utxo`], [`UtxoState`], [`UtxoChange`].

use std::fmt;

use bsv_format::{Outpoint, Script};

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
