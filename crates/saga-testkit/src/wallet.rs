//! A party's fake wallet: P2PKH outputs of one key per party, kept in the
//! party's [`PartyStore`]; it answers [`saga_core::saga::Effect::BuildReservation`]
//! with [`legs::build_reservation`] and [`legs::sign_p2pkh_inputs`].
//!
//! Selection takes available funding outputs, largest first, until the leg
//! amount and the fee are covered. The returned changes reserve the inputs
//! and add the change and escrow outputs; the store refuses the append if
//! another saga reserved one of the inputs first.
//!
//! # Layout
//! - [`FakeWallet`], [`WalletError`].

use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::Script;
use saga_core::legs::{self, FundingInput, LegError};
use saga_core::saga::Input;
use saga_core::terms::{Leg, Terms};
use saga_core::units::Satoshis;
use saga_core::wallet::{Basket, Utxo, UtxoChange, UtxoState};

use crate::store::PartyStore;

/// Why the wallet could not fund a reservation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// Building or signing failed (no inputs, not enough satoshis).
    #[error("wallet: {0}")]
    Leg(#[from] LegError),
}

/// One party's wallet key (the same on every chain).
#[derive(Debug, Clone)]
pub struct FakeWallet {
    key: PrivateKey,
}

impl FakeWallet {
    /// A wallet of `key`.
    pub fn new(key: PrivateKey) -> FakeWallet {
        FakeWallet { key }
    }

    /// P2PKH of the wallet key: where faucet payments and change go.
    pub fn script(&self) -> Script {
        p2pkh_lock(&self.key.public_key().hash160())
    }

    /// Builds and signs the reservation of `leg` from the available funding
    /// outputs in `store`, at `fee_rate` satoshis per 1,000 bytes, as the
    /// input the saga expects.
    ///
    /// # Errors
    /// [`WalletError::Leg`]: no available output, too few satoshis.
    pub fn fund(
        &self,
        store: &PartyStore,
        terms: &Terms,
        leg: Leg,
        fee_rate: u64,
    ) -> Result<Input, WalletError> {
        let chain_id = &terms.leg(leg).chain_id;
        let mut available: Vec<&Utxo> = store
            .utxos(chain_id)
            .filter(|(u, s)| u.basket == Basket::Funding && *s == UtxoState::Available)
            .map(|(u, _)| u)
            .collect();
        available.sort_by(|a, b| {
            b.satoshis
                .cmp(&a.satoshis)
                .then(a.outpoint.cmp(&b.outpoint))
        });
        let mut inputs: Vec<FundingInput> = Vec::new();
        let mut result = Err(LegError::NoInputs);
        for u in available {
            inputs.push(FundingInput {
                outpoint: u.outpoint,
                satoshis: u.satoshis,
                locking_script: u.locking_script.clone(),
            });
            result = legs::build_reservation(terms, leg, &inputs, &self.script(), fee_rate);
            if result.is_ok() {
                break;
            }
        }
        let mut reservation = result?;
        legs::sign_p2pkh_inputs(&mut reservation.tx, 0, &inputs, &self.key)?;
        let txid = reservation.tx.txid();
        let mut utxo_changes: Vec<UtxoChange> = inputs
            .iter()
            .map(|i| UtxoChange::Reserve {
                chain_id: chain_id.clone(),
                outpoint: i.outpoint,
                saga_id: terms.saga_id,
            })
            .collect();
        utxo_changes.push(UtxoChange::Add(Utxo {
            chain_id: chain_id.clone(),
            basket: Basket::Escrow,
            outpoint: reservation.escrow_outpoint(),
            satoshis: terms.leg(leg).amount,
            locking_script: terms.escrow_script(leg),
        }));
        if reservation.change > Satoshis(0) {
            utxo_changes.push(UtxoChange::Add(Utxo {
                chain_id: chain_id.clone(),
                basket: Basket::Funding,
                outpoint: bsv_format::Outpoint::new(txid, 1),
                satoshis: reservation.change,
                locking_script: self.script(),
            }));
        }
        Ok(Input::ReservationFunded {
            tx: reservation.tx,
            fee: reservation.fee,
            utxo_changes,
        })
    }
}
