//! The durable facts of one saga, as one data-carrying enum (STYLE.md 4).
//!
//! Events are appended per saga with a rising sequence number and never
//! changed; the state is their fold ([`super::Saga::apply`]). Each variant
//! carries only what that fact needs. "Own" means the leg this gateway funds
//! (the buyer's payment, the seller's delivery); "counter" the leg it is the
//! beneficiary of. The store keeps a stored form of its own (protobuf), so
//! these types may change shape as long as the conversion keeps up.

use bsv_format::{Outpoint, Transaction, Txid};

use crate::terms::{Role, Terms, TermsSignature};
use crate::token::{Token, TokenId};
use crate::units::{Height, Satoshis};

/// A message kind of the peer protocol: what a request was, so its reply can
/// be routed back and its delivery recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageKind {
    /// Terms proposal (buyer → seller).
    Propose,
    /// Sign my refund (funder → beneficiary).
    SignRefund,
    /// My reservation is confirmed; here is its Atomic BEEF.
    ReservationReady,
    /// A token for my reservation.
    GrantToken,
    /// I claimed your reservation with your token.
    Execute,
    /// Sign my cooperative-cancel refund (funder → beneficiary).
    SignCancel,
    /// Let us cancel.
    Cancel,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 7] = [
        MessageKind::Propose,
        MessageKind::SignRefund,
        MessageKind::ReservationReady,
        MessageKind::GrantToken,
        MessageKind::Execute,
        MessageKind::SignCancel,
        MessageKind::Cancel,
    ];

    /// Stable name (logs, keys, the wire's method names in snake case).
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Propose => "propose",
            MessageKind::SignRefund => "sign_refund",
            MessageKind::ReservationReady => "reservation_ready",
            MessageKind::GrantToken => "grant_token",
            MessageKind::Execute => "execute",
            MessageKind::SignCancel => "sign_cancel",
            MessageKind::Cancel => "cancel",
        }
    }

    /// The number used as the message sequence of replies (`replies` tree):
    /// each kind is sent at most once per saga and direction, so the kind
    /// identifies the message.
    pub fn seq(self) -> u64 {
        match self {
            MessageKind::Propose => 1,
            MessageKind::SignRefund => 2,
            MessageKind::ReservationReady => 3,
            MessageKind::GrantToken => 4,
            MessageKind::Execute => 5,
            MessageKind::SignCancel => 6,
            MessageKind::Cancel => 7,
        }
    }
}

/// Who asked for a cooperative cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelOrigin {
    /// An operator of this gateway.
    Operator,
    /// The counterparty's gateway.
    Peer,
    /// The notary refused its approval.
    NotaryRejected,
    /// The reservation deadline passed before both reservations were made.
    ReservationDeadline,
    /// The counterparty sent something that contradicts the terms.
    CounterpartyMisbehaved,
}

/// An operator's decision for a saga in `attention` (the admin API's
/// ResolveSaga).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Clear the attempt counters and try again.
    Retry,
    /// Stop progressing and take our own leg back as soon as the chain
    /// allows (cooperatively if the counterparty agrees, else at the refund
    /// height). Never claims.
    Refund,
    /// Give up on the saga, recording why (funds may stay where they are;
    /// the operator takes over by hand).
    Abandon {
        /// The operator's reason.
        reason: String,
    },
}

/// One durable fact of a saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    // -- step 0: agree ----------------------------------------------------
    /// Terms signed by the buyer: proposed by us (buyer) or received (seller).
    TermsProposed {
        /// Our role in this saga (the log says whose it is, so projections
        /// can be rebuilt from it alone).
        role: Role,
        /// The terms.
        terms: Box<Terms>,
        /// The buyer's signature over the terms hash.
        buyer_signature: TermsSignature,
    },
    /// The seller's signature: the terms are agreed by both.
    TermsAgreed {
        /// The seller's signature over the terms hash.
        seller_signature: TermsSignature,
    },
    /// The proposal was refused (by the seller's policy, or it expired).
    TermsRejected {
        /// Why, as said to the other side.
        reason: String,
    },

    // -- step 1: our own reservation (we are the funder) --------------------
    /// Our reservation, signed, with its inputs reserved in the same append.
    ReservationBuilt {
        /// The signed reservation (output 0 is the escrow output).
        tx: Transaction,
        /// Fee it pays.
        fee: Satoshis,
    },
    /// Our refund, signed by both parties (persisted before the reservation
    /// is broadcast).
    RefundCountersigned {
        /// The refund with its complete unlocking script.
        refund: Transaction,
    },
    /// The chain accepted our reservation (or already knew it).
    ReservationBroadcast {
        /// Its txid.
        txid: Txid,
    },
    /// Our reservation has the terms' confirmations.
    ReservationConfirmed {
        /// Height of the block that holds it.
        block_height: Height,
        /// Its Atomic BEEF (BRC-95) with the BUMP, as sent to the peer.
        beef: Vec<u8>,
    },
    /// Our reservation will never be broadcast; its inputs are released in
    /// the same append.
    ReservationAbandoned {
        /// Why.
        reason: String,
    },

    // -- step 1: the counterparty's reservation (we are the beneficiary) ---
    /// We signed the counterparty's refund of its escrow output at `escrow`.
    CounterRefundSigned {
        /// The escrow outpoint the refund spends.
        escrow: Outpoint,
    },
    /// The counterparty's reservation passed SPV and matches the terms exactly.
    CounterReservationVerified {
        /// Its escrow outpoint.
        escrow: Outpoint,
        /// Height of the block that holds it.
        block_height: Height,
        /// Its BEEF as received (for the notary and the audit trail).
        beef: Vec<u8>,
    },
    /// The counterparty sent something that contradicts the terms; we stop
    /// progressing and compensate.
    CounterpartyMisbehaved {
        /// What was wrong.
        reason: String,
    },

    // -- step 2: approve ----------------------------------------------------
    /// The notary approved (its signature over the terms hash and the
    /// reservation txids).
    NotaryApproved {
        /// The notary's signature.
        signature: Vec<u8>,
    },
    /// The notary refused.
    NotaryRejected {
        /// Its reason.
        reason: String,
    },

    // -- step 3: grant and execute ------------------------------------------
    /// We issued the counterparty a token for our reservation.
    TokenGranted {
        /// The token (no secret: it names its holder).
        token: Token,
    },
    /// The counterparty's token for its reservation, verified on receipt.
    TokenReceived {
        /// The token.
        token: Token,
    },
    /// We learned `s` from a claim of our reservation.
    PreimageLearned {
        /// `s` (public once a claim is broadcast).
        preimage: [u8; 32],
        /// The claim that revealed it.
        claim_txid: Txid,
    },
    /// Our claim of the counterparty's reservation, signed (persisted
    /// before it is broadcast).
    ClaimBuilt {
        /// The claim.
        tx: Transaction,
    },
    /// The chain accepted our claim.
    ClaimBroadcast {
        /// Its txid.
        txid: Txid,
    },
    /// Our claim has the terms' confirmations.
    ClaimConfirmed {
        /// Height of its block.
        block_height: Height,
    },
    /// Our claim was not broadcast before its deadline (C1): it never will be.
    ClaimAbandoned {
        /// Why.
        reason: String,
    },
    /// Our reservation was claimed by the counterparty (seen on chain or
    /// presented with its token).
    CounterClaimSeen {
        /// The claim's txid.
        txid: Txid,
        /// The token consumed by it, when it came through `Execute`.
        token_id: Option<TokenId>,
    },
    /// The counterparty's claim of our reservation has the confirmations.
    CounterClaimConfirmed {
        /// Height of its block.
        block_height: Height,
    },
    /// A peer message needing no answer beyond an acknowledgement was delivered.
    MessageDelivered {
        /// Which.
        kind: MessageKind,
    },

    // -- cooperative cancel ---------------------------------------------------
    /// A cooperative cancel was asked for; from now on nothing progresses.
    CancelRequested {
        /// By whom or what.
        origin: CancelOrigin,
    },
    /// We signed the counterparty's immediate refund of its leg: we will
    /// never claim it.
    CancelSigned {
        /// The escrow outpoint it spends.
        escrow: Outpoint,
    },
    /// Our cooperative-cancel refund, signed by both (persisted before broadcast).
    CancelBuilt {
        /// The cancel transaction.
        tx: Transaction,
    },

    // -- step 5: compensation ---------------------------------------------
    /// Our refund (timed or cancel) was accepted by the chain.
    RefundBroadcast {
        /// Its txid.
        txid: Txid,
    },
    /// Our refund has the confirmations: our leg is back.
    RefundConfirmed {
        /// Height of its block.
        block_height: Height,
    },

    // -- unknown outcomes -----------------------------------------------------
    /// An effect failed without a definite answer (time-out, 5xx, peer away).
    EffectFailed {
        /// Which effect.
        effect: super::EffectKey,
        /// Attempt number, from 1.
        attempt: u32,
        /// What the runtime saw.
        detail: String,
    },
    /// The saga needs an operator: a retry budget is spent, or the chain
    /// shows something the protocol cannot resolve alone.
    AttentionRaised {
        /// Why.
        reason: String,
    },
    /// An operator's decision.
    OperatorResolved {
        /// The decision.
        resolution: Resolution,
    },
}

impl Event {
    /// Stable name of the variant (logs, the observer's timeline).
    pub fn name(&self) -> &'static str {
        match self {
            Event::TermsProposed { .. } => "terms_proposed",
            Event::TermsAgreed { .. } => "terms_agreed",
            Event::TermsRejected { .. } => "terms_rejected",
            Event::ReservationBuilt { .. } => "reservation_built",
            Event::RefundCountersigned { .. } => "refund_countersigned",
            Event::ReservationBroadcast { .. } => "reservation_broadcast",
            Event::ReservationConfirmed { .. } => "reservation_confirmed",
            Event::ReservationAbandoned { .. } => "reservation_abandoned",
            Event::CounterRefundSigned { .. } => "counter_refund_signed",
            Event::CounterReservationVerified { .. } => "counter_reservation_verified",
            Event::CounterpartyMisbehaved { .. } => "counterparty_misbehaved",
            Event::NotaryApproved { .. } => "notary_approved",
            Event::NotaryRejected { .. } => "notary_rejected",
            Event::TokenGranted { .. } => "token_granted",
            Event::TokenReceived { .. } => "token_received",
            Event::PreimageLearned { .. } => "preimage_learned",
            Event::ClaimBuilt { .. } => "claim_built",
            Event::ClaimBroadcast { .. } => "claim_broadcast",
            Event::ClaimConfirmed { .. } => "claim_confirmed",
            Event::ClaimAbandoned { .. } => "claim_abandoned",
            Event::CounterClaimSeen { .. } => "counter_claim_seen",
            Event::CounterClaimConfirmed { .. } => "counter_claim_confirmed",
            Event::MessageDelivered { .. } => "message_delivered",
            Event::CancelRequested { .. } => "cancel_requested",
            Event::CancelSigned { .. } => "cancel_signed",
            Event::CancelBuilt { .. } => "cancel_built",
            Event::RefundBroadcast { .. } => "refund_broadcast",
            Event::RefundConfirmed { .. } => "refund_confirmed",
            Event::EffectFailed { .. } => "effect_failed",
            Event::AttentionRaised { .. } => "attention_raised",
            Event::OperatorResolved { .. } => "operator_resolved",
        }
    }
}
