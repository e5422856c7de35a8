//! Balances: what the wallet holds per chain and basket, from the outputs
//! and their states. Spent outputs are not counted.
//!
//! # Layout
//! - [`BasketBalance`], [`Balances`], [`balances`].

use std::collections::BTreeMap;

use super::{Basket, Utxo, UtxoState};
use crate::units::Satoshis;

/// The unspent outputs of one basket on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasketBalance {
    /// Sum of the available outputs, satoshis.
    pub available: Satoshis,
    /// How many outputs are available.
    pub available_outputs: u64,
    /// Sum of the outputs a saga has reserved, satoshis.
    pub reserved: Satoshis,
    /// How many outputs are reserved.
    pub reserved_outputs: u64,
}

impl Default for BasketBalance {
    /// Nothing held.
    fn default() -> Self {
        BasketBalance {
            available: Satoshis(0),
            available_outputs: 0,
            reserved: Satoshis(0),
            reserved_outputs: 0,
        }
    }
}

impl BasketBalance {
    /// Available plus reserved, satoshis (saturating).
    pub fn total(&self) -> Satoshis {
        Satoshis(self.available.0.saturating_add(self.reserved.0))
    }
}

/// Balances per chain and basket. Only pairs with at least one unspent
/// output appear; [`Balances::basket`] answers zero for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    by_basket: BTreeMap<(String, Basket), BasketBalance>,
}

impl Balances {
    /// The balance of `basket` on `chain_id` (zero if it holds nothing unspent).
    pub fn basket(&self, chain_id: &str, basket: Basket) -> BasketBalance {
        self.by_basket
            .get(&(chain_id.to_owned(), basket))
            .copied()
            .unwrap_or_default()
    }

    /// Every `(chain id, basket, balance)` with an unspent output, in chain
    /// id then basket order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Basket, &BasketBalance)> {
        self.by_basket.iter().map(|((c, b), v)| (c.as_str(), *b, v))
    }

    /// Whether no basket holds an unspent output.
    pub fn is_empty(&self) -> bool {
        self.by_basket.is_empty()
    }
}

/// Sums `outputs` by chain and basket: available and reserved outputs, in
/// satoshis and in number; spent outputs are left out. Sums saturate at
/// `u64::MAX` (no chain holds that much).
pub fn balances(outputs: &[(Utxo, UtxoState)]) -> Balances {
    let mut by_basket: BTreeMap<(String, Basket), BasketBalance> = BTreeMap::new();
    for (utxo, state) in outputs {
        let add = |b: &mut BasketBalance, reserved: bool| {
            let (sum, count) = if reserved {
                (&mut b.reserved, &mut b.reserved_outputs)
            } else {
                (&mut b.available, &mut b.available_outputs)
            };
            sum.0 = sum.0.saturating_add(utxo.satoshis.0);
            *count = count.saturating_add(1);
        };
        let reserved = match state {
            UtxoState::Available => false,
            UtxoState::Reserved { .. } => true,
            UtxoState::Spent { .. } => continue,
        };
        add(
            by_basket
                .entry((utxo.chain_id.clone(), utxo.basket))
                .or_default(),
            reserved,
        );
    }
    Balances { by_basket }
}
