//! Saga events ↔ their stored form, `escrow.v1.SagaEvent`
//! (`proto/escrow/v1/events.proto`; STYLE.md 8: stored form ≠ domain form).
//!
//! Decoding never trusts the bytes: every field is checked (lengths of
//! txids, preimages and token ids, transactions and terms parsed with their
//! own decoders), an unknown oneof case — a record written by a newer
//! schema — is an error naming it, and nothing panics.

use bsv_format::{Outpoint, Transaction, Txid};
use prost::Message;
use saga_core::saga::{CancelOrigin, EffectKey, Event, MessageKind, Resolution};
use saga_core::terms::{Role, Terms, TermsSignature};
use saga_core::token::{Token, TokenId};
use saga_core::{Height, Satoshis};

use crate::proto::escrow_v1::saga_event::{self as pb, Event as Case};
use crate::proto::escrow_v1::SagaEvent;

/// Why stored event bytes do not decode to an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// Not a protobuf `SagaEvent`.
    #[error("stored event is not a SagaEvent message: {0}")]
    Protobuf(String),
    /// The oneof is empty or a case this build does not know (a newer schema).
    #[error("stored event has no case this version knows (written by a newer escrowd?)")]
    UnknownCase,
    /// A field is missing or malformed.
    #[error("stored event {event}: field {field}: {reason}")]
    Field {
        /// The event case.
        event: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The protobuf bytes of `event`.
pub fn encode_event(event: &Event) -> Vec<u8> {
    SagaEvent {
        event: Some(to_case(event)),
    }
    .encode_to_vec()
}

/// The event stored as `bytes`.
///
/// # Errors
/// [`EventDecodeError`].
pub fn decode_event(bytes: &[u8]) -> Result<Event, EventDecodeError> {
    let msg = SagaEvent::decode(bytes).map_err(|e| EventDecodeError::Protobuf(e.to_string()))?;
    from_case(msg.event.ok_or(EventDecodeError::UnknownCase)?)
}

fn reason(r: &str) -> pb::Reason {
    pb::Reason {
        reason: r.to_string(),
    }
}

fn raw(tx: &Transaction) -> pb::RawTx {
    pb::RawTx { raw: tx.to_bytes() }
}

fn txid(t: &Txid) -> pb::Txid {
    pb::Txid { txid: t.0.to_vec() }
}

fn outpoint(o: &Outpoint) -> pb::Outpoint {
    pb::Outpoint {
        txid: o.txid.0.to_vec(),
        vout: o.vout,
    }
}

fn confirmed(h: Height, beef: Vec<u8>) -> pb::Confirmed {
    pb::Confirmed {
        block_height: h.0,
        beef,
    }
}

fn kind_to(k: MessageKind) -> pb::MessageKind {
    match k {
        MessageKind::Propose => pb::MessageKind::Propose,
        MessageKind::SignRefund => pb::MessageKind::SignRefund,
        MessageKind::ReservationReady => pb::MessageKind::ReservationReady,
        MessageKind::GrantToken => pb::MessageKind::GrantToken,
        MessageKind::Execute => pb::MessageKind::Execute,
        MessageKind::SignCancel => pb::MessageKind::SignCancel,
        MessageKind::Cancel => pb::MessageKind::Cancel,
    }
}

fn origin_to(o: CancelOrigin) -> pb::CancelOrigin {
    match o {
        CancelOrigin::Operator => pb::CancelOrigin::Operator,
        CancelOrigin::Peer => pb::CancelOrigin::Peer,
        CancelOrigin::NotaryRejected => pb::CancelOrigin::NotaryRejected,
        CancelOrigin::ReservationDeadline => pb::CancelOrigin::ReservationDeadline,
        CancelOrigin::CounterpartyMisbehaved => pb::CancelOrigin::CounterpartyMisbehaved,
    }
}

fn to_case(e: &Event) -> Case {
    match e {
        Event::TermsProposed {
            role,
            terms,
            buyer_signature,
        } => Case::TermsProposed(pb::TermsProposed {
            seller: *role == Role::Seller,
            terms: terms.encode(),
            buyer_signature: buyer_signature.as_bytes().to_vec(),
        }),
        Event::TermsAgreed { seller_signature } => Case::TermsAgreed(pb::TermsAgreed {
            seller_signature: seller_signature.as_bytes().to_vec(),
        }),
        Event::TermsRejected { reason: r } => Case::TermsRejected(reason(r)),
        Event::ReservationBuilt { tx, fee } => Case::ReservationBuilt(pb::ReservationBuilt {
            raw: tx.to_bytes(),
            fee_sats: fee.0,
        }),
        Event::RefundCountersigned { refund } => Case::RefundCountersigned(raw(refund)),
        Event::ReservationBroadcast { txid: t } => Case::ReservationBroadcast(txid(t)),
        Event::ReservationConfirmed { block_height, beef } => {
            Case::ReservationConfirmed(confirmed(*block_height, beef.clone()))
        }
        Event::ReservationAbandoned { reason: r } => Case::ReservationAbandoned(reason(r)),
        Event::CounterRefundSigned { escrow } => Case::CounterRefundSigned(outpoint(escrow)),
        Event::CounterReservationVerified {
            escrow,
            block_height,
            beef,
        } => Case::CounterReservationVerified(pb::CounterReservationVerified {
            escrow: Some(outpoint(escrow)),
            block_height: block_height.0,
            beef: beef.clone(),
        }),
        Event::CounterpartyMisbehaved { reason: r } => Case::CounterpartyMisbehaved(reason(r)),
        Event::NotaryApproved { signature } => Case::NotaryApproved(pb::Bytes {
            value: signature.clone(),
        }),
        Event::NotaryRejected { reason: r } => Case::NotaryRejected(reason(r)),
        Event::TokenGranted { token } => Case::TokenGranted(pb::Bytes {
            value: token.encode(),
        }),
        Event::TokenReceived { token } => Case::TokenReceived(pb::Bytes {
            value: token.encode(),
        }),
        Event::PreimageLearned {
            preimage,
            claim_txid,
        } => Case::PreimageLearned(pb::PreimageLearned {
            preimage: preimage.to_vec(),
            claim_txid: claim_txid.0.to_vec(),
        }),
        Event::ClaimBuilt { tx } => Case::ClaimBuilt(raw(tx)),
        Event::ClaimBroadcast { txid: t } => Case::ClaimBroadcast(txid(t)),
        Event::ClaimConfirmed { block_height } => {
            Case::ClaimConfirmed(confirmed(*block_height, Vec::new()))
        }
        Event::ClaimAbandoned { reason: r } => Case::ClaimAbandoned(reason(r)),
        Event::CounterClaimSeen { txid: t, token_id } => {
            Case::CounterClaimSeen(pb::CounterClaimSeen {
                txid: t.0.to_vec(),
                token_id: token_id.map(|id| id.0.to_vec()).unwrap_or_default(),
            })
        }
        Event::CounterClaimConfirmed { block_height } => {
            Case::CounterClaimConfirmed(confirmed(*block_height, Vec::new()))
        }
        Event::MessageDelivered { kind } => Case::MessageDelivered(pb::MessageDelivered {
            kind: kind_to(*kind).into(),
        }),
        Event::CancelRequested { origin } => Case::CancelRequested(pb::CancelRequested {
            origin: origin_to(*origin).into(),
        }),
        Event::CancelSigned { escrow } => Case::CancelSigned(outpoint(escrow)),
        Event::CancelBuilt { tx } => Case::CancelBuilt(raw(tx)),
        Event::RefundBroadcast { txid: t } => Case::RefundBroadcast(txid(t)),
        Event::RefundConfirmed { block_height } => {
            Case::RefundConfirmed(confirmed(*block_height, Vec::new()))
        }
        Event::EffectFailed {
            effect,
            attempt,
            detail,
        } => Case::EffectFailed(pb::EffectFailed {
            effect: effect.to_text(),
            attempt: *attempt,
            detail: detail.clone(),
        }),
        Event::AttentionRaised { reason: r } => Case::AttentionRaised(reason(r)),
        Event::OperatorResolved { resolution } => {
            use pb::operator_resolved::Resolution as R;
            Case::OperatorResolved(pb::OperatorResolved {
                resolution: Some(match resolution {
                    Resolution::Retry => R::Retry(pb::Empty {}),
                    Resolution::Refund => R::Refund(pb::Empty {}),
                    Resolution::Abandon { reason: r } => R::Abandon(reason(r)),
                }),
            })
        }
    }
}

fn field(event: &'static str, field: &'static str, reason: impl ToString) -> EventDecodeError {
    EventDecodeError::Field {
        event,
        field,
        reason: reason.to_string(),
    }
}

fn tx_from(event: &'static str, bytes: &[u8]) -> Result<Transaction, EventDecodeError> {
    Transaction::from_bytes(bytes).map_err(|e| field(event, "raw", e))
}

fn txid_from(event: &'static str, name: &'static str, b: &[u8]) -> Result<Txid, EventDecodeError> {
    let a: [u8; 32] = b
        .try_into()
        .map_err(|_| field(event, name, format!("{} bytes, not 32", b.len())))?;
    Ok(Txid(a))
}

fn outpoint_from(
    event: &'static str,
    o: Option<&pb::Outpoint>,
) -> Result<Outpoint, EventDecodeError> {
    let o = o.ok_or_else(|| field(event, "escrow", "missing"))?;
    Ok(Outpoint::new(txid_from(event, "txid", &o.txid)?, o.vout))
}

fn sig_from(
    event: &'static str,
    name: &'static str,
    b: &[u8],
) -> Result<TermsSignature, EventDecodeError> {
    TermsSignature::from_der(b).map_err(|e| field(event, name, e))
}

fn token_from(event: &'static str, b: &[u8]) -> Result<Token, EventDecodeError> {
    Token::decode(b).map_err(|e| field(event, "value", e))
}

fn from_case(case: Case) -> Result<Event, EventDecodeError> {
    Ok(match case {
        Case::TermsProposed(m) => Event::TermsProposed {
            role: if m.seller { Role::Seller } else { Role::Buyer },
            terms: Box::new(
                Terms::decode(&m.terms).map_err(|e| field("terms_proposed", "terms", e))?,
            ),
            buyer_signature: sig_from("terms_proposed", "buyer_signature", &m.buyer_signature)?,
        },
        Case::TermsAgreed(m) => Event::TermsAgreed {
            seller_signature: sig_from("terms_agreed", "seller_signature", &m.seller_signature)?,
        },
        Case::TermsRejected(m) => Event::TermsRejected { reason: m.reason },
        Case::ReservationBuilt(m) => Event::ReservationBuilt {
            tx: tx_from("reservation_built", &m.raw)?,
            fee: Satoshis(m.fee_sats),
        },
        Case::RefundCountersigned(m) => Event::RefundCountersigned {
            refund: tx_from("refund_countersigned", &m.raw)?,
        },
        Case::ReservationBroadcast(m) => Event::ReservationBroadcast {
            txid: txid_from("reservation_broadcast", "txid", &m.txid)?,
        },
        Case::ReservationConfirmed(m) => Event::ReservationConfirmed {
            block_height: Height(m.block_height),
            beef: m.beef,
        },
        Case::ReservationAbandoned(m) => Event::ReservationAbandoned { reason: m.reason },
        Case::CounterRefundSigned(m) => Event::CounterRefundSigned {
            escrow: outpoint_from("counter_refund_signed", Some(&m))?,
        },
        Case::CounterReservationVerified(m) => Event::CounterReservationVerified {
            escrow: outpoint_from("counter_reservation_verified", m.escrow.as_ref())?,
            block_height: Height(m.block_height),
            beef: m.beef,
        },
        Case::CounterpartyMisbehaved(m) => Event::CounterpartyMisbehaved { reason: m.reason },
        Case::NotaryApproved(m) => Event::NotaryApproved { signature: m.value },
        Case::NotaryRejected(m) => Event::NotaryRejected { reason: m.reason },
        Case::TokenGranted(m) => Event::TokenGranted {
            token: token_from("token_granted", &m.value)?,
        },
        Case::TokenReceived(m) => Event::TokenReceived {
            token: token_from("token_received", &m.value)?,
        },
        Case::PreimageLearned(m) => Event::PreimageLearned {
            preimage: m.preimage.as_slice().try_into().map_err(|_| {
                field(
                    "preimage_learned",
                    "preimage",
                    format!("{} bytes, not 32", m.preimage.len()),
                )
            })?,
            claim_txid: txid_from("preimage_learned", "claim_txid", &m.claim_txid)?,
        },
        Case::ClaimBuilt(m) => Event::ClaimBuilt {
            tx: tx_from("claim_built", &m.raw)?,
        },
        Case::ClaimBroadcast(m) => Event::ClaimBroadcast {
            txid: txid_from("claim_broadcast", "txid", &m.txid)?,
        },
        Case::ClaimConfirmed(m) => Event::ClaimConfirmed {
            block_height: Height(m.block_height),
        },
        Case::ClaimAbandoned(m) => Event::ClaimAbandoned { reason: m.reason },
        Case::CounterClaimSeen(m) => Event::CounterClaimSeen {
            txid: txid_from("counter_claim_seen", "txid", &m.txid)?,
            token_id: if m.token_id.is_empty() {
                None
            } else {
                Some(TokenId(m.token_id.as_slice().try_into().map_err(|_| {
                    field(
                        "counter_claim_seen",
                        "token_id",
                        format!("{} bytes, not 16", m.token_id.len()),
                    )
                })?))
            },
        },
        Case::CounterClaimConfirmed(m) => Event::CounterClaimConfirmed {
            block_height: Height(m.block_height),
        },
        Case::MessageDelivered(m) => Event::MessageDelivered {
            kind: match pb::MessageKind::try_from(m.kind) {
                Ok(pb::MessageKind::Propose) => MessageKind::Propose,
                Ok(pb::MessageKind::SignRefund) => MessageKind::SignRefund,
                Ok(pb::MessageKind::ReservationReady) => MessageKind::ReservationReady,
                Ok(pb::MessageKind::GrantToken) => MessageKind::GrantToken,
                Ok(pb::MessageKind::Execute) => MessageKind::Execute,
                Ok(pb::MessageKind::SignCancel) => MessageKind::SignCancel,
                Ok(pb::MessageKind::Cancel) => MessageKind::Cancel,
                Ok(pb::MessageKind::Unspecified) | Err(_) => {
                    return Err(field(
                        "message_delivered",
                        "kind",
                        format!("unknown value {}", m.kind),
                    ))
                }
            },
        },
        Case::CancelRequested(m) => Event::CancelRequested {
            origin: match pb::CancelOrigin::try_from(m.origin) {
                Ok(pb::CancelOrigin::Operator) => CancelOrigin::Operator,
                Ok(pb::CancelOrigin::Peer) => CancelOrigin::Peer,
                Ok(pb::CancelOrigin::NotaryRejected) => CancelOrigin::NotaryRejected,
                Ok(pb::CancelOrigin::ReservationDeadline) => CancelOrigin::ReservationDeadline,
                Ok(pb::CancelOrigin::CounterpartyMisbehaved) => {
                    CancelOrigin::CounterpartyMisbehaved
                }
                Ok(pb::CancelOrigin::Unspecified) | Err(_) => {
                    return Err(field(
                        "cancel_requested",
                        "origin",
                        format!("unknown value {}", m.origin),
                    ))
                }
            },
        },
        Case::CancelSigned(m) => Event::CancelSigned {
            escrow: outpoint_from("cancel_signed", Some(&m))?,
        },
        Case::CancelBuilt(m) => Event::CancelBuilt {
            tx: tx_from("cancel_built", &m.raw)?,
        },
        Case::RefundBroadcast(m) => Event::RefundBroadcast {
            txid: txid_from("refund_broadcast", "txid", &m.txid)?,
        },
        Case::RefundConfirmed(m) => Event::RefundConfirmed {
            block_height: Height(m.block_height),
        },
        Case::EffectFailed(m) => Event::EffectFailed {
            effect: EffectKey::parse(&m.effect).ok_or_else(|| {
                field(
                    "effect_failed",
                    "effect",
                    format!("unknown effect {:?}", m.effect),
                )
            })?,
            attempt: m.attempt,
            detail: m.detail,
        },
        Case::AttentionRaised(m) => Event::AttentionRaised { reason: m.reason },
        Case::OperatorResolved(m) => {
            use pb::operator_resolved::Resolution as R;
            Event::OperatorResolved {
                resolution: match m.resolution {
                    Some(R::Retry(_)) => Resolution::Retry,
                    Some(R::Refund(_)) => Resolution::Refund,
                    Some(R::Abandon(r)) => Resolution::Abandon { reason: r.reason },
                    None => {
                        return Err(field(
                            "operator_resolved",
                            "resolution",
                            "missing or unknown",
                        ))
                    }
                },
            }
        }
    })
}

impl super::StoredEvent for Event {
    fn to_stored(&self) -> Vec<u8> {
        encode_event(self)
    }

    fn from_stored(bytes: &[u8]) -> Result<Self, super::StoredEventError> {
        decode_event(bytes).map_err(|e| match e {
            EventDecodeError::Protobuf(m) => super::StoredEventError::Decode(m),
            other => super::StoredEventError::Invalid(other.to_string()),
        })
    }
}

/// The [`saga_runtime::log::Projector`] for saga events: role, status and
/// attention from the log alone. The deadlines are left empty: they depend
/// on the policy and the tips, and the driver's next turn for the saga
/// writes them again (`Driver::recover` runs one per in-flight saga).
pub fn project(
    saga_id: &saga_core::terms::SagaId,
    events: &[(u64, Event)],
) -> saga_runtime::log::Projection {
    let list: Vec<Event> = events.iter().map(|(_, e)| e.clone()).collect();
    let head = events.last().map_or(0, |(seq, _)| seq + 1);
    match saga_core::saga::summarize(&list) {
        Some(summary) => saga_runtime::log::Projection {
            saga_id: *saga_id,
            role: summary.role.to_string(),
            state: summary.status.name().to_string(),
            terminal: summary.status.is_terminal(),
            attention: summary.attention,
            head,
            deadlines: Vec::new(),
        },
        None => saga_runtime::log::Projection {
            saga_id: *saga_id,
            role: String::new(),
            state: "unknown".into(),
            terminal: false,
            attention: Some("the log has no terms: not a saga this gateway can run".into()),
            head,
            deadlines: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_from_a_newer_schema_is_refused_by_name() {
        // Field 99 of SagaEvent: a oneof case this build does not know.
        let mut bytes = Vec::new();
        prost::encoding::encode_key(99, prost::encoding::WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(0, &mut bytes);
        assert_eq!(decode_event(&bytes), Err(EventDecodeError::UnknownCase));
        assert!(matches!(
            decode_event(&[0xff, 0xff]),
            Err(EventDecodeError::Protobuf(_))
        ));
    }

    #[test]
    fn malformed_fields_name_the_event_and_field() {
        let msg = SagaEvent {
            event: Some(Case::ClaimBroadcast(pb::Txid {
                txid: vec![1, 2, 3],
            })),
        };
        assert_eq!(
            decode_event(&msg.encode_to_vec()),
            Err(EventDecodeError::Field {
                event: "claim_broadcast",
                field: "txid",
                reason: "3 bytes, not 32".into()
            })
        );
        let msg = SagaEvent {
            event: Some(Case::EffectFailed(pb::EffectFailed {
                effect: "launch:rockets".into(),
                attempt: 1,
                detail: String::new(),
            })),
        };
        assert!(matches!(
            decode_event(&msg.encode_to_vec()),
            Err(EventDecodeError::Field {
                event: "effect_failed",
                field: "effect",
                ..
            })
        ));
    }
}
