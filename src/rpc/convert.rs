//! Messages of `proto/escrow/v1/` ↔ domain values (STYLE.md 5: parse,
//! don't validate). Every field that arrives is checked here before the
//! service looks at it — ids, amounts, lengths, the canonical encodings
//! (terms, tokens, transactions, BEEF) through their own decoders — and an
//! error names the field exactly as the `.proto` spells it (`terms`,
//! `vouts[2]`), so an INVALID_ARGUMENT says what to fix.
//!
//! # Layout
//! - [`ConvertError`]; limits ([`MAX_REASON_LEN`], [`MAX_PEER_TX_LEN`],
//!   [`MAX_BEEF_LEN`], [`MAX_IDEMPOTENCY_KEY_LEN`]).
//! - Incoming fields: [`saga_id`], [`terms`], [`terms_signature`],
//!   [`transaction`], [`token`], [`atomic_beef`], [`beef`], [`reason`],
//!   [`chain_id`], [`amount`], [`gateway_id`], [`notary_id`],
//!   [`idempotency_key`], [`basket`], [`address`], [`resolution`],
//!   [`state_filter`].
//! - Peer replies both ways: [`peer_reply_to_proto`], [`peer_reply_from_proto`].
//! - Outgoing views: [`saga_state`], [`state_named`], [`saga_role`],
//!   [`saga_status`], [`projection_status`], [`terms_view`],
//!   [`log_entry`], [`event_text`], [`basket_balances`].

use bsv_format::beef::Beef;
use bsv_format::keys::decode_p2pkh_address;
use bsv_format::Transaction;
use saga_core::saga::{Event, PeerReply, Resolution, Status};
use saga_core::spiffe::{parse_spiffe_id, Role as SpiffeRole};
use saga_core::terms::{LegTerms, Role, SagaId, Terms, TermsSignature};
use saga_core::token::Token;
use saga_core::wallet::{Balances, Basket};
use saga_core::Satoshis;
use saga_runtime::log::Projection;

use crate::proto::escrow_v1 as pb;
use crate::store::events::encode_event;

/// Longest free-text reason accepted (cancel, abandon, refusals), bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Longest transaction a peer message may carry, bytes. Refunds, claims
/// and cancels are one input and one or two outputs (a few hundred bytes);
/// the bound leaves room for any fee input a funder adds.
pub const MAX_PEER_TX_LEN: usize = 100_000;
/// Longest BEEF accepted, bytes (tonic's default message limit is 4 MiB).
pub const MAX_BEEF_LEN: usize = 4 * 1024 * 1024;
/// Longest idempotency key, bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// The most satoshis an amount may name (21 million coins).
pub const MAX_SATOSHIS: u64 = 21_000_000 * 100_000_000;

/// Why a message field is not a domain value. Each variant names the field
/// as the `.proto` spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A required field is empty or absent.
    #[error("field {field}: missing")]
    Missing {
        /// The field.
        field: String,
    },
    /// Longer than allowed.
    #[error("field {field}: {len} bytes, at most {max} allowed")]
    TooLong {
        /// The field.
        field: String,
        /// Its length, bytes.
        len: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// Present but not a valid value.
    #[error("field {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConvertError {
    /// The field at fault.
    pub fn field(&self) -> &str {
        match self {
            ConvertError::Missing { field }
            | ConvertError::TooLong { field, .. }
            | ConvertError::Invalid { field, .. } => field,
        }
    }

    fn invalid(field: &str, reason: impl Into<String>) -> ConvertError {
        ConvertError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    fn missing(field: &str) -> ConvertError {
        ConvertError::Missing {
            field: field.to_owned(),
        }
    }
}

fn bounded<'a>(field: &str, bytes: &'a [u8], max: usize) -> Result<&'a [u8], ConvertError> {
    if bytes.is_empty() {
        return Err(ConvertError::missing(field));
    }
    if bytes.len() > max {
        return Err(ConvertError::TooLong {
            field: field.to_owned(),
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// Incoming fields

/// A saga id in its text form (lowercase hyphenated UUIDv7).
///
/// # Errors
/// [`ConvertError::Missing`], [`ConvertError::Invalid`].
pub fn saga_id(field: &str, text: &str) -> Result<SagaId, ConvertError> {
    if text.is_empty() {
        return Err(ConvertError::missing(field));
    }
    text.parse()
        .map_err(|e| ConvertError::invalid(field, format!("{text:?} is {e}")))
}

/// Canonical terms bytes (`Terms::decode`: version 1, structurally valid).
///
/// # Errors
/// [`ConvertError`] with the decoder's reason (offset and inner field).
pub fn terms(field: &str, bytes: &[u8]) -> Result<Terms, ConvertError> {
    let bytes = bounded(field, bytes, saga_core::terms::MAX_TERMS_LEN)?;
    Terms::decode(bytes).map_err(|e| ConvertError::invalid(field, e.to_string()))
}

/// A DER terms signature (strict, low-S, at most 72 bytes; not verified here).
///
/// # Errors
/// [`ConvertError`].
pub fn terms_signature(field: &str, bytes: &[u8]) -> Result<TermsSignature, ConvertError> {
    let bytes = bounded(field, bytes, saga_core::terms::MAX_DER_SIGNATURE_LEN)?;
    TermsSignature::from_der(bytes).map_err(|e| ConvertError::invalid(field, e.to_string()))
}

/// A raw transaction of a peer message (at most [`MAX_PEER_TX_LEN`] bytes).
///
/// # Errors
/// [`ConvertError`] with the parser's offset and reason.
pub fn transaction(field: &str, bytes: &[u8]) -> Result<Transaction, ConvertError> {
    let bytes = bounded(field, bytes, MAX_PEER_TX_LEN)?;
    Transaction::from_bytes(bytes).map_err(|e| ConvertError::invalid(field, e.to_string()))
}

/// A token in its fixed encoding (DESIGN.md §3.4; not verified here).
///
/// # Errors
/// [`ConvertError`].
pub fn token(field: &str, bytes: &[u8]) -> Result<Token, ConvertError> {
    let bytes = bounded(field, bytes, saga_core::token::MAX_TOKEN_LEN)?;
    Token::decode(bytes).map_err(|e| ConvertError::invalid(field, e.to_string()))
}

/// BEEF bytes of any version (BRC-62, BRC-96, BRC-95), at most
/// [`MAX_BEEF_LEN`]; structure only (SPV is the caller's, with a tracker).
///
/// # Errors
/// [`ConvertError`].
pub fn beef(field: &str, bytes: &[u8]) -> Result<Beef, ConvertError> {
    let bytes = bounded(field, bytes, MAX_BEEF_LEN)?;
    Beef::from_bytes(bytes).map_err(|e| ConvertError::invalid(field, e.to_string()))
}

/// An Atomic BEEF (BRC-95): [`beef`] whose bytes name a subject.
///
/// # Errors
/// [`ConvertError`], also for a BEEF that is not atomic.
pub fn atomic_beef(field: &str, bytes: &[u8]) -> Result<Beef, ConvertError> {
    let parsed = beef(field, bytes)?;
    if parsed.subject().is_none() {
        return Err(ConvertError::invalid(
            field,
            "not an Atomic BEEF (BRC-95, 01010101 + subject txid)",
        ));
    }
    Ok(parsed)
}

/// Free text (a reason), 1 to [`MAX_REASON_LEN`] bytes without control
/// characters.
///
/// # Errors
/// [`ConvertError`].
pub fn reason(field: &str, text: &str) -> Result<String, ConvertError> {
    bounded(field, text.as_bytes(), MAX_REASON_LEN)?;
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(ConvertError::invalid(
            field,
            format!("contains the control character {c:?}"),
        ));
    }
    Ok(text.to_owned())
}

/// A chain id: `[a-z0-9._-]`, 1 to 64 bytes (as policies name chains).
///
/// # Errors
/// [`ConvertError`].
pub fn chain_id(field: &str, text: &str) -> Result<String, ConvertError> {
    bounded(field, text.as_bytes(), saga_core::policy::MAX_CHAIN_ID_LEN)?;
    let ok = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        return Err(ConvertError::invalid(
            field,
            format!("{text:?} is not a chain id ([a-z0-9._-])"),
        ));
    }
    Ok(text.to_owned())
}

/// An amount: 1 to [`MAX_SATOSHIS`] satoshis.
///
/// # Errors
/// [`ConvertError`].
pub fn amount(field: &str, sats: u64) -> Result<Satoshis, ConvertError> {
    if sats == 0 {
        return Err(ConvertError::invalid(field, "zero satoshis"));
    }
    if sats > MAX_SATOSHIS {
        return Err(ConvertError::invalid(
            field,
            format!("{sats} satoshis is more than {MAX_SATOSHIS}"),
        ));
    }
    Ok(Satoshis(sats))
}

fn spiffe_of_role(field: &str, text: &str, role: SpiffeRole) -> Result<String, ConvertError> {
    bounded(field, text.as_bytes(), saga_core::spiffe::MAX_SPIFFE_ID_LEN)?;
    let parts = parse_spiffe_id(text).map_err(|e| ConvertError::invalid(field, e.to_string()))?;
    if parts.role != role {
        return Err(ConvertError::invalid(
            field,
            format!("{text} is not a {} SPIFFE ID", role.as_str()),
        ));
    }
    Ok(text.to_owned())
}

/// A gateway's SPIFFE ID (`spiffe://<domain>/gateway/<name>`).
///
/// # Errors
/// [`ConvertError`].
pub fn gateway_id(field: &str, text: &str) -> Result<String, ConvertError> {
    spiffe_of_role(field, text, SpiffeRole::Gateway)
}

/// A notary's SPIFFE ID (`spiffe://<domain>/notary/<name>`).
///
/// # Errors
/// [`ConvertError`].
pub fn notary_id(field: &str, text: &str) -> Result<String, ConvertError> {
    spiffe_of_role(field, text, SpiffeRole::Notary)
}

/// An idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes of printable
/// ASCII (no spaces).
///
/// # Errors
/// [`ConvertError`].
pub fn idempotency_key(field: &str, text: &str) -> Result<String, ConvertError> {
    bounded(field, text.as_bytes(), MAX_IDEMPOTENCY_KEY_LEN)?;
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConvertError::invalid(
            field,
            "only printable ASCII without spaces is allowed",
        ));
    }
    Ok(text.to_owned())
}

/// A basket enum value; `UNSPECIFIED` and unknown numbers are refused.
///
/// # Errors
/// [`ConvertError`].
pub fn basket(field: &str, value: i32) -> Result<Basket, ConvertError> {
    match pb::Basket::try_from(value) {
        Ok(pb::Basket::Funding) => Ok(Basket::Funding),
        Ok(pb::Basket::Escrow) => Ok(Basket::Escrow),
        Ok(pb::Basket::Inventory) => Ok(Basket::Inventory),
        Ok(pb::Basket::Received) => Ok(Basket::Received),
        Ok(pb::Basket::Unspecified) => Err(ConvertError::missing(field)),
        Err(_) => Err(ConvertError::invalid(
            field,
            format!("{value} is not a Basket"),
        )),
    }
}

/// The proto form of a basket.
pub fn basket_to_proto(basket: Basket) -> pb::Basket {
    match basket {
        Basket::Funding => pb::Basket::Funding,
        Basket::Escrow => pb::Basket::Escrow,
        Basket::Inventory => pb::Basket::Inventory,
        Basket::Received => pb::Basket::Received,
    }
}

/// A Base58Check P2PKH address: the 20-byte public key hash it pays.
///
/// # Errors
/// [`ConvertError`].
pub fn address(field: &str, text: &str) -> Result<[u8; 20], ConvertError> {
    bounded(field, text.as_bytes(), 64)?;
    decode_p2pkh_address(text)
        .map(|(hash, _network)| hash)
        .map_err(|e| ConvertError::invalid(field, e.to_string()))
}

/// An operator's resolution.
///
/// # Errors
/// [`ConvertError`] (`resolution` missing, `resolution.abandon.reason` bad).
pub fn resolution(
    value: Option<&pb::resolve_saga_request::Resolution>,
) -> Result<Resolution, ConvertError> {
    use pb::resolve_saga_request::Resolution as R;
    match value {
        None => Err(ConvertError::missing("resolution")),
        Some(R::Retry(_)) => Ok(Resolution::Retry),
        Some(R::Refund(_)) => Ok(Resolution::Refund),
        Some(R::Abandon(a)) => Ok(Resolution::Abandon {
            reason: reason("abandon.reason", &a.reason)?,
        }),
    }
}

/// A state filter: `None` for `UNSPECIFIED`, else the status name.
///
/// # Errors
/// [`ConvertError`] for an unknown number.
pub fn state_filter(field: &str, value: i32) -> Result<Option<Status>, ConvertError> {
    let state = pb::SagaState::try_from(value)
        .map_err(|_| ConvertError::invalid(field, format!("{value} is not a SagaState")))?;
    Ok(match state {
        pb::SagaState::Unspecified => None,
        pb::SagaState::New => Some(Status::New),
        pb::SagaState::Proposed => Some(Status::Proposed),
        pb::SagaState::Reserving => Some(Status::Reserving),
        pb::SagaState::Executing => Some(Status::Executing),
        pb::SagaState::Compensating => Some(Status::Compensating),
        pb::SagaState::Completed => Some(Status::Completed),
        pb::SagaState::Refunded => Some(Status::Refunded),
        pb::SagaState::Cancelled => Some(Status::Cancelled),
        pb::SagaState::Rejected => Some(Status::Rejected),
        pb::SagaState::Abandoned => Some(Status::Abandoned),
    })
}

// ---------------------------------------------------------------------------
// Peer replies

/// The proto form of a peer reply.
pub fn peer_reply_to_proto(reply: &PeerReply) -> pb::PeerReply {
    use pb::peer_reply::{self as r, Reply};
    let reply = match reply {
        PeerReply::Accepted { seller_signature } => Reply::Accepted(r::Accepted {
            seller_signature: seller_signature.as_bytes().to_vec(),
        }),
        PeerReply::Signature { signature } => Reply::Signature(r::Signature {
            signature: signature.clone(),
        }),
        PeerReply::Ack => Reply::Ack(r::Ack {}),
        PeerReply::Refused { reason } => Reply::Refused(r::Refused {
            reason: reason.clone(),
        }),
        PeerReply::NotYet { reason } => Reply::NotYet(r::NotYet {
            reason: reason.clone(),
        }),
    };
    pb::PeerReply { reply: Some(reply) }
}

/// Longest transaction signature accepted in a reply: 72 bytes of DER and
/// the sighash byte.
const MAX_TX_SIGNATURE_LEN: usize = 73;

/// A peer's reply as it arrived.
///
/// Reasons longer than [`MAX_REASON_LEN`] bytes are cut there.
///
/// # Errors
/// [`ConvertError`] naming `reply`, `accepted.seller_signature` or
/// `signature.signature`.
pub fn peer_reply_from_proto(reply: pb::PeerReply) -> Result<PeerReply, ConvertError> {
    use pb::peer_reply::Reply;
    // The peer's free text is shown to operators: bound it (the saga also
    // strips control characters), but never refuse the answer for its
    // wording — a refused answer would only be asked for again.
    let text = |mut t: String| -> String {
        if t.len() > MAX_REASON_LEN {
            let mut end = MAX_REASON_LEN;
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t.truncate(end);
        }
        t
    };
    match reply.reply {
        None => Err(ConvertError::missing("reply")),
        Some(Reply::Accepted(a)) => Ok(PeerReply::Accepted {
            seller_signature: terms_signature("accepted.seller_signature", &a.seller_signature)?,
        }),
        Some(Reply::Signature(s)) => Ok(PeerReply::Signature {
            signature: bounded("signature.signature", &s.signature, MAX_TX_SIGNATURE_LEN)?.to_vec(),
        }),
        Some(Reply::Ack(_)) => Ok(PeerReply::Ack),
        Some(Reply::Refused(r)) => Ok(PeerReply::Refused {
            reason: text(r.reason),
        }),
        Some(Reply::NotYet(n)) => Ok(PeerReply::NotYet {
            reason: text(n.reason),
        }),
    }
}

// ---------------------------------------------------------------------------
// Outgoing views

/// The proto form of a status.
pub fn saga_state(status: Status) -> pb::SagaState {
    match status {
        Status::New => pb::SagaState::New,
        Status::Proposed => pb::SagaState::Proposed,
        Status::Reserving => pb::SagaState::Reserving,
        Status::Executing => pb::SagaState::Executing,
        Status::Compensating => pb::SagaState::Compensating,
        Status::Completed => pb::SagaState::Completed,
        Status::Refunded => pb::SagaState::Refunded,
        Status::Cancelled => pb::SagaState::Cancelled,
        Status::Rejected => pb::SagaState::Rejected,
        Status::Abandoned => pb::SagaState::Abandoned,
    }
}

/// Every status, for name lookups.
const STATUSES: [Status; 10] = [
    Status::New,
    Status::Proposed,
    Status::Reserving,
    Status::Executing,
    Status::Compensating,
    Status::Completed,
    Status::Refunded,
    Status::Cancelled,
    Status::Rejected,
    Status::Abandoned,
];

/// The status whose [`Status::name`] is `name` (projections store names).
pub fn state_named(name: &str) -> Option<Status> {
    STATUSES.into_iter().find(|s| s.name() == name)
}

/// The proto form of a role.
pub fn saga_role(role: Role) -> pb::SagaRole {
    match role {
        Role::Buyer => pb::SagaRole::Buyer,
        Role::Seller => pb::SagaRole::Seller,
    }
}

/// A saga's status message.
pub fn saga_status(
    saga_id: &SagaId,
    status: Status,
    attention: Option<&str>,
    role: Option<Role>,
) -> pb::SagaStatus {
    pb::SagaStatus {
        saga_id: saga_id.to_string(),
        state: saga_state(status) as i32,
        attention: attention.unwrap_or_default().to_owned(),
        terminal: status.is_terminal(),
        role: role.map_or(pb::SagaRole::Unspecified, saga_role) as i32,
    }
}

/// A stored projection as a status message (an unknown state or role name
/// — a newer writer — shows as `UNSPECIFIED`).
pub fn projection_status(p: &Projection) -> pb::SagaStatus {
    let role = match p.role.as_str() {
        "buyer" => pb::SagaRole::Buyer,
        "seller" => pb::SagaRole::Seller,
        _ => pb::SagaRole::Unspecified,
    };
    pb::SagaStatus {
        saga_id: p.saga_id.to_string(),
        state: state_named(&p.state).map_or(pb::SagaState::Unspecified, saga_state) as i32,
        attention: p.attention.clone().unwrap_or_default(),
        terminal: p.terminal,
        role: role as i32,
    }
}

fn leg_view(l: &LegTerms) -> pb::LegView {
    pb::LegView {
        chain_id: l.chain_id.clone(),
        amount_sats: l.amount.0,
        refund_height: l.refund_height.0,
        confirmations: l.confirmations,
    }
}

/// The terms, readable.
pub fn terms_view(t: &Terms) -> pb::TermsView {
    pb::TermsView {
        buyer: t.buyer.spiffe_id.clone(),
        seller: t.seller.spiffe_id.clone(),
        notary: t.notary.clone().unwrap_or_default(),
        payment: Some(leg_view(&t.payment)),
        delivery: Some(leg_view(&t.delivery)),
        hash_lock: hex::encode(t.hash_lock),
        quote_expiry: t.quote_expiry.0,
        reservation_deadline: t.reservation_deadline.0,
        policy_id: t.policy_id.to_string(),
        terms_hash: t.hash().to_string(),
    }
}

/// One event of a saga's log as the admin API shows it.
pub fn log_entry(seq: u64, event: &Event) -> pb::SagaLogEntry {
    pb::SagaLogEntry {
        seq,
        name: event.name().to_owned(),
        text: event_text(event),
        event: stored_event(event),
    }
}

/// The event's stored form as a message (the bytes `encode_event` writes
/// decode as the message they were made from).
pub(crate) fn stored_event(event: &Event) -> Option<pb::SagaEvent> {
    prost::Message::decode(encode_event(event).as_slice()).ok()
}

/// One line about `event` for people. Never prints a secret the log does
/// not already make public (`s` is public once a claim is broadcast).
pub fn event_text(event: &Event) -> String {
    match event {
        Event::TermsProposed { role, terms, .. } => format!(
            "terms proposed ({role}): {} on {} for {} on {}",
            terms.payment.amount,
            terms.payment.chain_id,
            terms.delivery.amount,
            terms.delivery.chain_id
        ),
        Event::TermsAgreed { .. } => "terms agreed by both parties".into(),
        Event::TermsRejected { reason } => format!("terms rejected: {reason}"),
        Event::ReservationBuilt { tx, fee } => {
            format!("reservation {} built, fee {fee}", tx.txid())
        }
        Event::RefundCountersigned { refund } => {
            format!("refund {} signed by both parties", refund.txid())
        }
        Event::ReservationBroadcast { txid } => format!("reservation {txid} broadcast"),
        Event::ReservationConfirmed { block_height, .. } => {
            format!("reservation confirmed in block {block_height}")
        }
        Event::ReservationAbandoned { reason } => format!("reservation abandoned: {reason}"),
        Event::CounterRefundSigned { escrow } => {
            format!("signed the counterparty's refund of {escrow}")
        }
        Event::CounterReservationVerified {
            escrow,
            block_height,
            ..
        } => format!("counterparty's reservation {escrow} verified (block {block_height})"),
        Event::CounterpartyMisbehaved { reason } => format!("counterparty misbehaved: {reason}"),
        Event::NotaryApproved { .. } => "notary approved".into(),
        Event::NotaryRejected { reason } => format!("notary rejected: {reason}"),
        Event::TokenGranted { token } => format!(
            "token {} granted to {} for {}",
            token.token_id, token.holder, token.reservation
        ),
        Event::TokenReceived { token } => format!(
            "token {} received from {} for {}",
            token.token_id, token.issuer, token.reservation
        ),
        Event::PreimageLearned { claim_txid, .. } => {
            format!("preimage learned from claim {claim_txid}")
        }
        Event::ClaimBuilt { tx } => format!("claim {} built", tx.txid()),
        Event::ClaimBroadcast { txid } => format!("claim {txid} broadcast"),
        Event::ClaimConfirmed { block_height } => {
            format!("claim confirmed in block {block_height}")
        }
        Event::ClaimAbandoned { reason } => format!("claim abandoned: {reason}"),
        Event::CounterClaimSeen { txid, token_id } => match token_id {
            Some(t) => format!("counterparty claimed with {txid} (token {t})"),
            None => format!("counterparty's claim {txid} seen on chain"),
        },
        Event::CounterClaimConfirmed { block_height } => {
            format!("counterparty's claim confirmed in block {block_height}")
        }
        Event::MessageDelivered { kind } => format!("{} delivered", kind.name()),
        Event::CancelRequested { origin } => format!("cancel requested ({origin:?})"),
        Event::CancelSigned { escrow } => {
            format!("signed the counterparty's cancel of {escrow}")
        }
        Event::CancelBuilt { tx } => format!("cancel {} built", tx.txid()),
        Event::RefundBroadcast { txid } => format!("refund {txid} broadcast"),
        Event::RefundConfirmed { block_height } => {
            format!("refund confirmed in block {block_height}")
        }
        Event::EffectFailed {
            effect,
            attempt,
            detail,
        } => format!("{} failed (attempt {attempt}): {detail}", effect.to_text()),
        Event::AttentionRaised { reason } => format!("attention: {reason}"),
        Event::OperatorResolved { resolution } => match resolution {
            Resolution::Retry => "operator resolved: retry".into(),
            Resolution::Refund => "operator resolved: refund".into(),
            Resolution::Abandon { reason } => format!("operator resolved: abandon ({reason})"),
        },
    }
}

/// Balances as the admin API lists them.
pub fn basket_balances(balances: &Balances) -> Vec<pb::BasketBalance> {
    balances
        .iter()
        .map(|(chain_id, basket, b)| pb::BasketBalance {
            chain_id: chain_id.to_owned(),
            basket: basket_to_proto(basket) as i32,
            available_sats: b.available.0,
            available_outputs: b.available_outputs,
            reserved_sats: b.reserved.0,
            reserved_outputs: b.reserved_outputs,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saga_ids_are_checked_and_named() {
        assert_eq!(
            saga_id("saga_id", ""),
            Err(ConvertError::Missing {
                field: "saga_id".into()
            })
        );
        let e = saga_id("saga_id", "0190B2A4-7C3E-7A01-8000-0123456789AB").unwrap_err();
        assert_eq!(e.field(), "saga_id");
        assert!(e.to_string().contains("lowercase"), "{e}");
        let id = saga_id("saga_id", "0190b2a4-7c3e-7a01-8000-0123456789ab").unwrap();
        assert_eq!(id.to_string(), "0190b2a4-7c3e-7a01-8000-0123456789ab");
    }

    #[test]
    fn lengths_and_values_are_bounded() {
        assert_eq!(
            reason("reason", &"x".repeat(MAX_REASON_LEN + 1)),
            Err(ConvertError::TooLong {
                field: "reason".into(),
                len: MAX_REASON_LEN + 1,
                max: MAX_REASON_LEN
            })
        );
        assert_eq!(reason("reason", "a\nb").unwrap_err().field(), "reason");
        assert_eq!(
            amount("payment_sats", 0),
            Err(ConvertError::Invalid {
                field: "payment_sats".into(),
                reason: "zero satoshis".into()
            })
        );
        assert_eq!(amount("x", MAX_SATOSHIS), Ok(Satoshis(MAX_SATOSHIS)));
        assert!(amount("x", MAX_SATOSHIS + 1).is_err());
        assert_eq!(chain_id("payment_chain", "chain-p").unwrap(), "chain-p");
        assert_eq!(
            chain_id("payment_chain", "Chain P").unwrap_err().field(),
            "payment_chain"
        );
        assert!(idempotency_key("idempotency_key", "a b").is_err());
        assert_eq!(idempotency_key("k", "swap-1").unwrap(), "swap-1");
        assert_eq!(
            gateway_id("counterparty", "spiffe://org-b.example/operator/op")
                .unwrap_err()
                .to_string(),
            "field counterparty: spiffe://org-b.example/operator/op is not a gateway SPIFFE ID"
        );
    }

    #[test]
    fn malformed_encodings_name_their_field() {
        for (e, field) in [
            (terms("terms", &[1, 2, 3]).unwrap_err(), "terms"),
            (transaction("refund", &[0; 5]).unwrap_err(), "refund"),
            (token("token", &[9; 40]).unwrap_err(), "token"),
            (beef("beef", &[0xde, 0xad]).unwrap_err(), "beef"),
            (
                terms_signature("buyer_signature", &[0x30, 0x00]).unwrap_err(),
                "buyer_signature",
            ),
        ] {
            assert_eq!(e.field(), field, "{e}");
            assert!(matches!(e, ConvertError::Invalid { .. }), "{e}");
        }
        assert_eq!(
            transaction("claim", &[]),
            Err(ConvertError::Missing {
                field: "claim".into()
            })
        );
    }

    #[test]
    fn baskets_and_states_map_both_ways() {
        for b in Basket::ALL {
            assert_eq!(basket("basket", basket_to_proto(b) as i32), Ok(b));
        }
        assert_eq!(
            basket("basket", 0),
            Err(ConvertError::Missing {
                field: "basket".into()
            })
        );
        assert!(basket("basket", 99).is_err());
        for s in STATUSES {
            assert_eq!(state_filter("state", saga_state(s) as i32), Ok(Some(s)));
            assert_eq!(state_named(s.name()), Some(s));
        }
        assert_eq!(state_filter("state", 0), Ok(None));
    }

    #[test]
    fn peer_replies_round_trip_and_empty_ones_are_refused() {
        let replies = [
            PeerReply::Ack,
            PeerReply::Signature {
                signature: vec![0x30, 1, 2, 0x41],
            },
            PeerReply::Refused {
                reason: "no".into(),
            },
            PeerReply::NotYet {
                reason: "later".into(),
            },
        ];
        for r in replies {
            assert_eq!(peer_reply_from_proto(peer_reply_to_proto(&r)), Ok(r));
        }
        let long = PeerReply::Refused {
            reason: "é".repeat(MAX_REASON_LEN),
        };
        assert_eq!(
            peer_reply_from_proto(peer_reply_to_proto(&long)),
            Ok(PeerReply::Refused {
                reason: "é".repeat(MAX_REASON_LEN / 2)
            })
        );
        assert_eq!(
            peer_reply_from_proto(pb::PeerReply { reply: None }),
            Err(ConvertError::Missing {
                field: "reply".into()
            })
        );
    }
}
