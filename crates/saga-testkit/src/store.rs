//! A party's store in memory, with the real store's all-or-nothing append
//! (DESIGN.md §5): the events of one decision, the tokens they consume, the
//! hashlocks they see first and the wallet changes commit together, or the
//! append fails and nothing is written.
//!
//! # Layout
//! - [`PartyStore`]: event log, consumed tokens, hashlocks, wallet outputs.
//! - [`AppendError`]: why an append failed.

use std::collections::{BTreeMap, BTreeSet};

use bsv_format::Outpoint;
use saga_core::saga::{Decision, Event};
use saga_core::terms::SagaId;
use saga_core::token::TokenId;
use saga_core::wallet::{Utxo, UtxoChange, UtxoState};

/// Why an append was refused (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// A token in the decision was consumed by an earlier append.
    #[error("token {token} was consumed by event {by_seq}")]
    TokenConsumed {
        /// The token.
        token: TokenId,
        /// Sequence number (from 0) of the event that consumed it.
        by_seq: usize,
    },
    /// A hashlock in the decision was seen before.
    #[error("hashlock {0:02x?} was seen before")]
    HashlockSeen([u8; 32]),
    /// A wallet change is not allowed in the output's state.
    #[error("wallet output {outpoint} on {chain_id}: {reason}")]
    UtxoUnavailable {
        /// The chain.
        chain_id: String,
        /// The output.
        outpoint: Outpoint,
        /// What was wrong.
        reason: String,
    },
}

/// One party's durable state.
#[derive(Debug, Clone, Default)]
pub struct PartyStore {
    events: Vec<Event>,
    consumed: Vec<(TokenId, usize)>,
    hashlocks: BTreeSet<[u8; 32]>,
    utxos: BTreeMap<(String, Outpoint), (Utxo, UtxoState)>,
    reserved_by: BTreeMap<(String, Outpoint), BTreeSet<SagaId>>,
}

impl PartyStore {
    /// The event log, in sequence order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Tokens consumed, with the sequence number of the event that did.
    pub fn consumed_tokens(&self) -> &[(TokenId, usize)] {
        &self.consumed
    }

    /// Every hashlock seen.
    pub fn hashlocks(&self) -> &BTreeSet<[u8; 32]> {
        &self.hashlocks
    }

    /// The state of a wallet output.
    pub fn utxo(&self, chain_id: &str, outpoint: &Outpoint) -> Option<&(Utxo, UtxoState)> {
        self.utxos.get(&(chain_id.to_string(), *outpoint))
    }

    /// Wallet outputs on `chain_id` in `state`-independent outpoint order.
    pub fn utxos(&self, chain_id: &str) -> impl Iterator<Item = &(Utxo, UtxoState)> + '_ {
        let chain_id = chain_id.to_string();
        self.utxos
            .iter()
            .filter(move |((c, _), _)| *c == chain_id)
            .map(|(_, v)| v)
    }

    /// Outputs that were ever reserved by more than one saga (must be empty).
    pub fn reserved_twice(&self) -> Vec<(String, Outpoint)> {
        self.reserved_by
            .iter()
            .filter(|(_, sagas)| sagas.len() > 1)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Adds a wallet output outside any saga (an import or faucet payment).
    pub fn import(&mut self, utxo: Utxo) {
        let key = (utxo.chain_id.clone(), utxo.outpoint);
        self.utxos
            .entry(key)
            .or_insert((utxo, UtxoState::Available));
    }

    /// Appends `decision`'s events, consumed tokens, hashlocks and wallet
    /// changes in one step.
    ///
    /// # Errors
    /// [`AppendError`]; then nothing is written.
    pub fn append(&mut self, decision: &Decision) -> Result<(), AppendError> {
        for token in &decision.consumed_tokens {
            if let Some((_, by_seq)) = self.consumed.iter().find(|(t, _)| t == token) {
                return Err(AppendError::TokenConsumed {
                    token: *token,
                    by_seq: *by_seq,
                });
            }
        }
        for h in &decision.new_hashlocks {
            if self.hashlocks.contains(h) {
                return Err(AppendError::HashlockSeen(*h));
            }
        }
        let mut utxos = self.utxos.clone();
        let mut reserved_by = self.reserved_by.clone();
        for change in &decision.utxo_changes {
            apply_change(&mut utxos, &mut reserved_by, change)?;
        }
        let seq = self.events.len();
        for token in &decision.consumed_tokens {
            self.consumed.push((*token, seq));
        }
        self.hashlocks
            .extend(decision.new_hashlocks.iter().copied());
        self.utxos = utxos;
        self.reserved_by = reserved_by;
        self.events.extend(decision.events.iter().cloned());
        Ok(())
    }
}

type Utxos = BTreeMap<(String, Outpoint), (Utxo, UtxoState)>;

/// One change, with the rules of `saga_core::wallet::UtxoChange`'s docs.
fn apply_change(
    utxos: &mut Utxos,
    reserved_by: &mut BTreeMap<(String, Outpoint), BTreeSet<SagaId>>,
    change: &UtxoChange,
) -> Result<(), AppendError> {
    let unavailable = |chain_id: &str, outpoint: &Outpoint, reason: String| {
        Err(AppendError::UtxoUnavailable {
            chain_id: chain_id.to_string(),
            outpoint: *outpoint,
            reason,
        })
    };
    match change {
        UtxoChange::Add(utxo) => {
            let key = (utxo.chain_id.clone(), utxo.outpoint);
            utxos
                .entry(key)
                .or_insert((utxo.clone(), UtxoState::Available));
        }
        UtxoChange::Reserve {
            chain_id,
            outpoint,
            saga_id,
        } => {
            let key = (chain_id.clone(), *outpoint);
            let Some((_, state)) = utxos.get_mut(&key) else {
                return unavailable(chain_id, outpoint, "missing".into());
            };
            match state {
                UtxoState::Available => {
                    *state = UtxoState::Reserved { saga_id: *saga_id };
                    reserved_by.entry(key).or_default().insert(*saga_id);
                }
                UtxoState::Reserved { saga_id: by } if by == saga_id => {}
                other => return unavailable(chain_id, outpoint, format!("{other:?}")),
            }
        }
        UtxoChange::Release {
            chain_id,
            outpoint,
            saga_id,
        } => {
            if let Some((_, state)) = utxos.get_mut(&(chain_id.clone(), *outpoint)) {
                if *state == (UtxoState::Reserved { saga_id: *saga_id }) {
                    *state = UtxoState::Available;
                }
            }
        }
        UtxoChange::Spend {
            chain_id,
            outpoint,
            spent_by,
            saga_id,
        } => {
            let Some((_, state)) = utxos.get_mut(&(chain_id.clone(), *outpoint)) else {
                return unavailable(chain_id, outpoint, "missing".into());
            };
            match (&*state, saga_id) {
                (UtxoState::Available, _) => {}
                (UtxoState::Reserved { saga_id: by }, Some(s)) if by == s => {}
                (UtxoState::Spent { spent_by: by }, _) if by == spent_by => return Ok(()),
                (other, _) => return unavailable(chain_id, outpoint, format!("{other:?}")),
            }
            *state = UtxoState::Spent {
                spent_by: *spent_by,
            };
        }
    }
    Ok(())
}
