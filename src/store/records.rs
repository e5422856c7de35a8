//! Stored records: one version byte ([`RECORD_VERSION`]) then a protobuf
//! message of `proto/escrow/v1/store.proto`, and the conversions between
//! those stored types and the domain types (STYLE.md 8). Nothing here trusts
//! stored bytes: every decode returns [`RecordError`] with the tree and key.
//!
//! # Layout
//! - [`RECORD_VERSION`], [`RecordError`], [`encode`], [`decode`].
//! - Conversions: projections and deadlines, UTXO records, token
//!   consumptions, saga references.

use bsv_format::{Script, Txid};
use prost::Message;
use saga_core::terms::SagaId;
use saga_core::units::{Height, Satoshis, UnixTime};
use saga_core::wallet::{Basket, Utxo, UtxoState};
use saga_runtime::log::{Deadline, Projection, TokenConsumption};

use super::keys;
use crate::proto::escrow_v1::{
    stored_deadline, stored_utxo, StoredAvailable, StoredDeadline, StoredHeightDeadline,
    StoredProjection, StoredSagaRef, StoredTokenConsumption, StoredUtxo,
};

/// The version byte every record this build writes starts with; a record
/// with another is refused (a newer build wrote it, or it is not ours).
pub const RECORD_VERSION: u8 = 1;

/// A stored record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record starts with a version byte this build does not know.
    #[error("record {what} has version {found}; this build reads version {RECORD_VERSION}")]
    UnknownVersion {
        /// Tree and key (hex).
        what: String,
        /// The version byte (none for an empty record: 0).
        found: u8,
    },
    /// The message or a field does not decode, or it contradicts its key.
    #[error("record {what} is corrupt: {detail}")]
    Corrupt {
        /// Tree and key (hex).
        what: String,
        /// What is wrong.
        detail: String,
    },
}

impl RecordError {
    /// A corrupt-record error for `tree`/`key`.
    pub fn corrupt(tree: &str, key: &[u8], detail: impl Into<String>) -> RecordError {
        RecordError::Corrupt {
            what: what(tree, key),
            detail: detail.into(),
        }
    }
}

fn what(tree: &str, key: &[u8]) -> String {
    format!("{tree}/{}", keys::show(key))
}

/// `RECORD_VERSION ‖ message`.
pub fn encode<M: Message>(message: &M) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&body);
    out
}

/// Reads a record of `tree` at `key`.
///
/// # Errors
/// [`RecordError::UnknownVersion`], [`RecordError::Corrupt`].
pub fn decode<M: Message + Default>(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<M, RecordError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, body)) => {
            M::decode(body).map_err(|e| RecordError::corrupt(tree, key, e.to_string()))
        }
        Some((&found, _)) => Err(RecordError::UnknownVersion {
            what: what(tree, key),
            found,
        }),
        None => Err(RecordError::UnknownVersion {
            what: what(tree, key),
            found: 0,
        }),
    }
}

/// A 16-byte saga id field.
///
/// # Errors
/// [`RecordError::Corrupt`].
pub fn saga_field(tree: &str, key: &[u8], bytes: &[u8]) -> Result<SagaId, RecordError> {
    keys::saga_id(bytes).ok_or_else(|| RecordError::corrupt(tree, key, "saga id is not a UUIDv7"))
}

/// The stored form of a saga reference (`hashlocks`, `idempotency`).
pub fn saga_ref(saga_id: &SagaId) -> StoredSagaRef {
    StoredSagaRef {
        saga_id: saga_id.as_bytes().to_vec(),
    }
}

/// The stored form of a token consumption.
pub fn token_consumption(c: &TokenConsumption) -> StoredTokenConsumption {
    StoredTokenConsumption {
        saga_id: c.saga_id.as_bytes().to_vec(),
        seq: c.seq,
    }
}

/// A token consumption from its stored form.
///
/// # Errors
/// [`RecordError::Corrupt`].
pub fn token_consumption_from(
    key: &[u8],
    s: StoredTokenConsumption,
) -> Result<TokenConsumption, RecordError> {
    Ok(TokenConsumption {
        saga_id: saga_field("tokens", key, &s.saga_id)?,
        seq: s.seq,
    })
}

/// The stored form of a projection.
pub fn projection(p: &Projection) -> StoredProjection {
    StoredProjection {
        saga_id: p.saga_id.as_bytes().to_vec(),
        role: p.role.clone(),
        state: p.state.clone(),
        terminal: p.terminal,
        attention: p.attention.clone(),
        head: p.head,
        deadlines: p
            .deadlines
            .iter()
            .map(|d| StoredDeadline {
                kind: Some(match d {
                    Deadline::Height { chain_id, height } => {
                        stored_deadline::Kind::Height(StoredHeightDeadline {
                            chain_id: chain_id.clone(),
                            height: height.0,
                        })
                    }
                    Deadline::Time(t) => stored_deadline::Kind::UnixTime(t.0),
                }),
            })
            .collect(),
    }
}

/// A projection from its stored form (at `sagas/key`).
///
/// # Errors
/// [`RecordError::Corrupt`]: a bad saga id, one other than the key's, or a
/// deadline without a kind.
pub fn projection_from(key: &[u8], s: StoredProjection) -> Result<Projection, RecordError> {
    let saga_id = saga_field("sagas", key, &s.saga_id)?;
    if saga_id.as_bytes()[..] != *key {
        return Err(RecordError::corrupt(
            "sagas",
            key,
            "projection of another saga",
        ));
    }
    let mut deadlines = Vec::with_capacity(s.deadlines.len());
    for d in s.deadlines {
        deadlines.push(match d.kind {
            Some(stored_deadline::Kind::Height(h)) => Deadline::Height {
                chain_id: h.chain_id,
                height: Height(h.height),
            },
            Some(stored_deadline::Kind::UnixTime(t)) => Deadline::Time(UnixTime(t)),
            None => {
                return Err(RecordError::corrupt(
                    "sagas",
                    key,
                    "deadline without a kind",
                ))
            }
        });
    }
    Ok(Projection {
        saga_id,
        role: s.role,
        state: s.state,
        terminal: s.terminal,
        attention: s.attention,
        head: s.head,
        deadlines,
    })
}

/// The stored form of an output and its state (chain, basket and outpoint
/// are in the key).
pub fn utxo(u: &Utxo, state: &UtxoState) -> StoredUtxo {
    StoredUtxo {
        satoshis: u.satoshis.0,
        locking_script: u.locking_script.as_bytes().to_vec(),
        state: Some(match state {
            UtxoState::Available => stored_utxo::State::Available(StoredAvailable {}),
            UtxoState::Reserved { saga_id } => {
                stored_utxo::State::ReservedBy(saga_id.as_bytes().to_vec())
            }
            UtxoState::Spent { spent_by } => stored_utxo::State::SpentBy(spent_by.0.to_vec()),
        }),
    }
}

/// An output from its stored form at `utxos/key`, with the chain and basket
/// the key names.
///
/// # Errors
/// [`RecordError::Corrupt`]: no state, a bad saga id or txid, a key without
/// an outpoint.
pub fn utxo_from(
    key: &[u8],
    chain_id: &str,
    basket: Basket,
    s: StoredUtxo,
) -> Result<(Utxo, UtxoState), RecordError> {
    let outpoint = keys::utxo_outpoint(key)
        .ok_or_else(|| RecordError::corrupt("utxos", key, "key has no outpoint"))?;
    let state = match s.state {
        Some(stored_utxo::State::Available(_)) => UtxoState::Available,
        Some(stored_utxo::State::ReservedBy(id)) => UtxoState::Reserved {
            saga_id: saga_field("utxos", key, &id)?,
        },
        Some(stored_utxo::State::SpentBy(txid)) => UtxoState::Spent {
            spent_by: Txid(txid.as_slice().try_into().map_err(|_| {
                RecordError::corrupt("utxos", key, "spending txid is not 32 bytes")
            })?),
        },
        None => return Err(RecordError::corrupt("utxos", key, "no state")),
    };
    Ok((
        Utxo {
            chain_id: chain_id.to_string(),
            basket,
            outpoint,
            satoshis: Satoshis(s.satoshis),
            locking_script: Script::from_bytes(s.locking_script),
        },
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsv_format::Outpoint;

    fn id(i: u8) -> SagaId {
        SagaId::new_v7(u64::from(i), &[i; 10])
    }

    #[test]
    fn records_start_with_the_version_byte_and_round_trip() {
        let p = Projection {
            saga_id: id(1),
            role: "seller".into(),
            state: "Reserved".into(),
            terminal: false,
            attention: Some("late".into()),
            head: 4,
            deadlines: vec![
                Deadline::Height {
                    chain_id: "D".into(),
                    height: Height(144),
                },
                Deadline::Time(UnixTime(1_700_000_000)),
            ],
        };
        let bytes = encode(&projection(&p));
        assert_eq!(bytes[0], RECORD_VERSION);
        let back: StoredProjection = decode("sagas", id(1).as_bytes(), &bytes).expect("decode");
        assert_eq!(projection_from(id(1).as_bytes(), back), Ok(p.clone()));
        // Filed under another saga's key: refused.
        let back: StoredProjection = decode("sagas", id(2).as_bytes(), &bytes).expect("decode");
        assert!(matches!(
            projection_from(id(2).as_bytes(), back),
            Err(RecordError::Corrupt { .. })
        ));
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        let mut bytes = encode(&saga_ref(&id(1)));
        bytes[0] = 2;
        assert_eq!(
            decode::<StoredSagaRef>("hashlocks", b"k", &bytes),
            Err(RecordError::UnknownVersion {
                what: "hashlocks/6b".into(),
                found: 2
            })
        );
        assert_eq!(
            decode::<StoredSagaRef>("hashlocks", b"k", &[]),
            Err(RecordError::UnknownVersion {
                what: "hashlocks/6b".into(),
                found: 0
            })
        );
        // Field 1 (bytes) claims 100 bytes and has 1.
        let e = decode::<StoredSagaRef>("hashlocks", b"k", &[1, 0x0a, 100, 0]);
        assert!(matches!(e, Err(RecordError::Corrupt { .. })), "{e:?}");
        let r: StoredSagaRef = decode("hashlocks", b"k", &[1, 0x0a, 1, 0]).expect("decode");
        assert!(saga_field("hashlocks", b"k", &r.saga_id).is_err());
    }

    proptest::proptest! {
        /// Hostile stored bytes never panic any decoder: records of every
        /// tree, the conversions after them, and keys parsed back.
        #[test]
        fn arbitrary_stored_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let mut versioned = vec![RECORD_VERSION];
            versioned.extend_from_slice(&bytes);
            for b in [&bytes, &versioned] {
                if let Ok(p) = decode::<StoredProjection>("sagas", &key, b) {
                    let _ = projection_from(&key, p);
                }
                if let Ok(u) = decode::<StoredUtxo>("utxos", &key, b) {
                    let _ = utxo_from(&key, "P", Basket::Funding, u);
                }
                if let Ok(t) = decode::<StoredTokenConsumption>("tokens", &key, b) {
                    let _ = token_consumption_from(&key, t);
                }
                if let Ok(r) = decode::<StoredSagaRef>("hashlocks", &key, b) {
                    let _ = saga_field("hashlocks", &key, &r.saga_id);
                }
                let _ = decode::<crate::proto::escrow_v1::StoredEventRecord>("events", &key, b);
                let _ = decode::<crate::proto::escrow_v1::StoredMeta>("meta", &key, b);
                let _ = saga_runtime::log::conformance::TestEvent::from_bytes(b);
                let _ = keys::parse_deadline(b);
                let _ = keys::utxo_outpoint(b);
                let _ = keys::event_seq(b);
                let _ = keys::feed_cursor(b);
            }
        }
    }

    #[test]
    fn utxo_states_round_trip() {
        let o = Outpoint::new(Txid([3; 32]), 1);
        let u = Utxo {
            chain_id: "P".into(),
            basket: Basket::Escrow,
            outpoint: o,
            satoshis: Satoshis(5_000),
            locking_script: Script::from_bytes(vec![0x51]),
        };
        let key = keys::utxo("P", Basket::Escrow, &o);
        for state in [
            UtxoState::Available,
            UtxoState::Reserved { saga_id: id(9) },
            UtxoState::Spent {
                spent_by: Txid([4; 32]),
            },
        ] {
            let bytes = encode(&utxo(&u, &state));
            let back: StoredUtxo = decode("utxos", &key, &bytes).expect("decode");
            assert_eq!(
                utxo_from(&key, "P", Basket::Escrow, back),
                Ok((u.clone(), state))
            );
        }
        let no_state = StoredUtxo {
            satoshis: 1,
            locking_script: vec![],
            state: None,
        };
        assert!(utxo_from(&key, "P", Basket::Escrow, no_state).is_err());
    }
}
