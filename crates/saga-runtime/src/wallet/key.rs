//! [`KeyWallet`]: the [`Wallet`] port over one P2PKH key per chain and a
//! [`UtxoStore`].
//!
//! # Layout
//! - [`KeyWallet`] and its [`Wallet`] implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::spv::VerifiedBeef;
use bsv_format::Script;
use saga_core::legs;
use saga_core::terms::{Leg, Terms};
use saga_core::wallet::{
    balances, build_withdrawal, changes_when_funded, changes_when_withdrawn, select_coins,
    select_coins_preferring, Balances, Basket, Selection, SelectionError, TxShape, Utxo, UtxoState,
    DUST_LIMIT,
};
use saga_core::Satoshis;

use super::{
    FundedReservation, ImportReport, UtxoStore, UtxoStoreError, Wallet, WalletError, Withdrawal,
};

/// How many times [`KeyWallet::withdraw`] selects again after losing an
/// output to a concurrent commit before it reports the conflict.
const WITHDRAW_ATTEMPTS: usize = 4;

/// Amount plus the fee of one input: the least a transaction of `shape` needs.
fn least_needed(amount: Satoshis, shape: TxShape, fee_rate_sats_per_kb: u64) -> Satoshis {
    Satoshis(
        amount
            .0
            .saturating_add(shape.fee(1, fee_rate_sats_per_kb).0),
    )
}

/// A wallet holding one private key per chain id; every output it funds
/// from, and all its change, is P2PKH of that chain's key. `Debug` names
/// the chains only, never a key.
pub struct KeyWallet {
    store: Arc<dyn UtxoStore>,
    keys: BTreeMap<String, PrivateKey>,
}

impl fmt::Debug for KeyWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWallet")
            .field("chains", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyWallet {
    /// A wallet over `store` with `keys` (chain id → the key whose P2PKH
    /// outputs fund that chain's transactions).
    pub fn new(store: Arc<dyn UtxoStore>, keys: BTreeMap<String, PrivateKey>) -> KeyWallet {
        KeyWallet { store, keys }
    }

    /// The chain ids this wallet holds a key for, in order.
    pub fn chains(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The key of `chain_id` and the P2PKH locking script it spends.
    fn key(&self, chain_id: &str) -> Result<(&PrivateKey, Script), WalletError> {
        let key = self
            .keys
            .get(chain_id)
            .ok_or_else(|| WalletError::UnknownChain {
                chain_id: chain_id.to_owned(),
            })?;
        Ok((key, p2pkh_lock(&key.public_key().hash160())))
    }

    /// The available outputs of `basket` on `chain_id` locked to `ours`.
    async fn candidates(
        &self,
        chain_id: &str,
        basket: Basket,
        ours: &Script,
    ) -> Result<Vec<Utxo>, WalletError> {
        Ok(self
            .store
            .utxos(chain_id, basket)
            .await?
            .into_iter()
            .filter(|(u, state)| *state == UtxoState::Available && u.locking_script == *ours)
            .map(|(u, _)| u)
            .collect())
    }
}

/// The wallet's error for a selection refused on `chain_id` from `baskets`;
/// `least_needed` (the amount and the fee of one input) is what an empty
/// basket is short of.
fn selection_error(
    chain_id: &str,
    baskets: &[Basket],
    least_needed: Satoshis,
    e: SelectionError,
) -> WalletError {
    match e {
        SelectionError::InsufficientFunds { needed, available } => WalletError::InsufficientFunds {
            chain_id: chain_id.to_owned(),
            baskets: baskets.to_vec(),
            needed,
            available,
        },
        SelectionError::NoCandidates => WalletError::InsufficientFunds {
            chain_id: chain_id.to_owned(),
            baskets: baskets.to_vec(),
            needed: least_needed,
            available: Satoshis(0),
        },
        source => WalletError::Selection {
            chain_id: chain_id.to_owned(),
            source,
        },
    }
}

#[async_trait]
impl Wallet for KeyWallet {
    async fn fund_reservation(
        &self,
        terms: &Terms,
        leg: Leg,
        fee_rate_sats_per_kb: u64,
    ) -> Result<FundedReservation, WalletError> {
        let leg_terms = terms.leg(leg);
        let chain_id = leg_terms.chain_id.as_str();
        let (key, ours) = self.key(chain_id)?;
        let shape = TxShape::RESERVATION;
        let funding = self.candidates(chain_id, Basket::Funding, &ours).await?;
        let (selection, baskets): (Result<Selection, SelectionError>, &[Basket]) = match leg {
            Leg::Payment => (
                select_coins(&funding, leg_terms.amount, fee_rate_sats_per_kb, shape),
                &[Basket::Funding],
            ),
            Leg::Delivery => {
                let inventory = self.candidates(chain_id, Basket::Inventory, &ours).await?;
                (
                    select_coins_preferring(
                        &inventory,
                        &funding,
                        leg_terms.amount,
                        fee_rate_sats_per_kb,
                        shape,
                    ),
                    &[Basket::Inventory, Basket::Funding],
                )
            }
        };
        let least = least_needed(leg_terms.amount, shape, fee_rate_sats_per_kb);
        let selection = selection.map_err(|e| selection_error(chain_id, baskets, least, e))?;
        let inputs = selection.funding_inputs();
        let mut reservation =
            legs::build_reservation(terms, leg, &inputs, &ours, fee_rate_sats_per_kb)?;
        if (reservation.fee, reservation.change) != (selection.fee, selection.change) {
            return Err(WalletError::FeeMismatch {
                selected_fee: selection.fee,
                selected_change: selection.change,
                built_fee: reservation.fee,
                built_change: reservation.change,
            });
        }
        legs::sign_p2pkh_inputs(&mut reservation.tx, 0, &inputs, key)?;
        let changes = changes_when_funded(chain_id, terms.saga_id, &reservation.tx);
        Ok(FundedReservation {
            chain_id: chain_id.to_owned(),
            escrow: reservation.escrow_outpoint(),
            fee: reservation.fee,
            change: reservation.change,
            inputs: selection.inputs,
            tx: reservation.tx,
            changes,
        })
    }

    async fn import_funding(
        &self,
        chain_id: &str,
        verified: &VerifiedBeef,
        vouts: Option<&[u32]>,
        basket: Basket,
    ) -> Result<ImportReport, WalletError> {
        let (_, ours) = self.key(chain_id)?;
        match basket {
            Basket::Funding | Basket::Inventory => {}
            Basket::Escrow | Basket::Received => return Err(WalletError::NotImportable { basket }),
        }
        let tx = verified.subject_transaction();
        let txid = verified.subject();
        let wanted: BTreeSet<u32> = match vouts {
            Some(v) => v.iter().copied().collect(),
            // Output counts are far below u32::MAX (each output is ≥ 9 bytes
            // of a transaction read from bounded input).
            None => (0..tx.outputs.len())
                .filter_map(|i| u32::try_from(i).ok())
                .collect(),
        };
        let mut imported = Vec::new();
        let mut not_ours = Vec::new();
        for vout in wanted {
            let output = usize::try_from(vout)
                .ok()
                .and_then(|i| tx.outputs.get(i))
                .ok_or(WalletError::NoSuchOutput { txid, vout })?;
            if output.locking_script == ours && output.satoshis >= DUST_LIMIT.0 {
                imported.push(Utxo {
                    chain_id: chain_id.to_owned(),
                    basket,
                    outpoint: bsv_format::Outpoint::new(txid, vout),
                    satoshis: Satoshis(output.satoshis),
                    locking_script: output.locking_script.clone(),
                });
            } else {
                not_ours.push(vout);
            }
        }
        if imported.is_empty() {
            return Err(WalletError::NotOurs {
                chain_id: chain_id.to_owned(),
                txid,
                vouts: not_ours,
            });
        }
        self.store
            .commit_utxos(
                imported
                    .iter()
                    .cloned()
                    .map(saga_core::wallet::UtxoChange::Add)
                    .collect(),
            )
            .await?;
        Ok(ImportReport {
            txid,
            imported,
            not_ours,
        })
    }

    async fn balances(&self) -> Result<Balances, WalletError> {
        let mut outputs = Vec::new();
        for chain_id in self.keys.keys() {
            for basket in Basket::ALL {
                outputs.extend(self.store.utxos(chain_id, basket).await?);
            }
        }
        Ok(balances(&outputs))
    }

    async fn withdraw(
        &self,
        chain_id: &str,
        payee_hash160: &[u8; 20],
        amount: Satoshis,
        fee_rate_sats_per_kb: u64,
    ) -> Result<Withdrawal, WalletError> {
        let (key, ours) = self.key(chain_id)?;
        if amount < DUST_LIMIT {
            return Err(WalletError::AmountBelowDust { amount });
        }
        let payee = p2pkh_lock(payee_hash160);
        let shape = TxShape::P2PKH_PAYMENT;
        let least = least_needed(amount, shape, fee_rate_sats_per_kb);
        let mut attempt = 1;
        loop {
            // What we funded, then what swaps paid us (claims, refunds):
            // both are ours to withdraw.
            let mut funding = self.candidates(chain_id, Basket::Funding, &ours).await?;
            funding.extend(self.candidates(chain_id, Basket::Received, &ours).await?);
            let selection =
                select_coins(&funding, amount, fee_rate_sats_per_kb, shape).map_err(|e| {
                    selection_error(chain_id, &[Basket::Funding, Basket::Received], least, e)
                })?;
            let mut tx = build_withdrawal(&selection, &payee, amount, &ours);
            legs::sign_p2pkh_inputs(&mut tx, 0, &selection.funding_inputs(), key)?;
            match self
                .store
                .commit_utxos(changes_when_withdrawn(chain_id, &tx))
                .await
            {
                Ok(()) => {
                    return Ok(Withdrawal {
                        tx,
                        fee: selection.fee,
                        change: selection.change,
                    })
                }
                Err(UtxoStoreError::UtxoUnavailable { .. }) if attempt < WITHDRAW_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
