//! The fold of a saga's events, and the status derived from it.

use std::collections::{BTreeMap, BTreeSet};

use bsv_format::{Outpoint, Transaction, Txid};

use super::event::{CancelOrigin, Event, MessageKind, Resolution};
use super::io::EffectKey;
use crate::terms::{Role, Terms, TermsSignature};
use crate::token::{Token, TokenId};
use crate::units::{Height, Satoshis};

/// Where a saga stands, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// No terms yet.
    New,
    /// Terms proposed, not yet agreed.
    Proposed,
    /// Terms agreed; reservations under way.
    Reserving,
    /// Both reservations verified; approval, grants and claims under way.
    Executing,
    /// A deadline passed, the counterparty misbehaved or a cancel was asked
    /// for: we are taking our own leg back (or claiming with a known `s`).
    Compensating,
    /// Terminal: our claim is confirmed and our own leg is settled.
    Completed,
    /// Terminal: our timed refund is confirmed and we never claimed.
    Refunded,
    /// Terminal: cancelled cooperatively or before anything of ours was
    /// locked; our own leg is back or never left.
    Cancelled,
    /// Terminal: the proposal was refused or expired.
    Rejected,
    /// Terminal: an operator abandoned the saga.
    Abandoned,
}

impl Status {
    /// Stable lowercase name (APIs, projections, `escrowd demo --json`).
    pub fn name(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Proposed => "proposed",
            Status::Reserving => "reserving",
            Status::Executing => "executing",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Refunded => "refunded",
            Status::Cancelled => "cancelled",
            Status::Rejected => "rejected",
            Status::Abandoned => "abandoned",
        }
    }

    /// Whether nothing more will happen.
    pub fn is_terminal(self) -> bool {
        match self {
            Status::Completed
            | Status::Refunded
            | Status::Cancelled
            | Status::Rejected
            | Status::Abandoned => true,
            Status::New
            | Status::Proposed
            | Status::Reserving
            | Status::Executing
            | Status::Compensating => false,
        }
    }
}

/// Our own leg (we fund it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OwnLeg {
    pub reservation: Option<Transaction>,
    pub fee: Satoshis,
    pub refund: Option<Transaction>,
    pub broadcast: Option<Txid>,
    pub confirmed: Option<(Height, Vec<u8>)>,
    pub abandoned: Option<String>,
    pub token: Option<Token>,
    pub counter_claim: Option<(Txid, Option<TokenId>)>,
    pub counter_claim_confirmed: Option<Height>,
    pub cancel_tx: Option<Transaction>,
    pub refund_broadcast: Option<Txid>,
    pub refund_confirmed: Option<Height>,
}

impl OwnLeg {
    /// The escrow output, once the reservation is built.
    pub fn escrow(&self) -> Option<Outpoint> {
        self.reservation
            .as_ref()
            .map(|tx| Outpoint::new(tx.txid(), 0))
    }

    /// Our leg is settled: never broadcast (and never will be), refunded,
    /// or claimed by the counterparty with confirmations.
    pub fn settled(&self) -> bool {
        (self.abandoned.is_some() && self.broadcast.is_none())
            || self.refund_confirmed.is_some()
            || self.counter_claim_confirmed.is_some()
    }

    /// The refund that was broadcast is the cooperative cancel.
    pub fn refunded_by_cancel(&self) -> bool {
        match (&self.cancel_tx, self.refund_broadcast) {
            (Some(c), Some(r)) => c.txid() == r,
            _ => false,
        }
    }
}

/// The counterparty's leg (we are its beneficiary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CounterLeg {
    pub refund_signed_for: Option<Outpoint>,
    pub verified: Option<(Outpoint, Height, Vec<u8>)>,
    pub token: Option<Token>,
    pub claim: Option<Transaction>,
    pub claim_broadcast: Option<Txid>,
    pub claim_confirmed: Option<Height>,
    pub claim_abandoned: Option<String>,
    pub cancel_signed: Option<Outpoint>,
}

impl CounterLeg {
    /// The escrow outpoint we know for the counterparty's leg.
    pub fn escrow(&self) -> Option<Outpoint> {
        self.verified
            .as_ref()
            .map(|v| v.0)
            .or(self.refund_signed_for)
    }
}

/// Everything the events established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub terms: Option<Box<Terms>>,
    pub buyer_signature: Option<TermsSignature>,
    pub seller_signature: Option<TermsSignature>,
    pub rejected: Option<String>,
    pub own: OwnLeg,
    pub counter: CounterLeg,
    pub misbehaved: Option<String>,
    pub notary_approval: Option<Vec<u8>>,
    pub notary_rejection: Option<String>,
    pub preimage_learned: Option<[u8; 32]>,
    pub cancel: Option<CancelOrigin>,
    pub delivered: BTreeSet<MessageKind>,
    pub failures: BTreeMap<EffectKey, u32>,
    pub attention: Option<String>,
    pub abandoned: Option<String>,
}

impl Facts {
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::TermsProposed {
                role: _,
                terms,
                buyer_signature,
            } => {
                self.terms = Some(terms.clone());
                self.buyer_signature = Some(buyer_signature.clone());
            }
            Event::TermsAgreed { seller_signature } => {
                self.seller_signature = Some(seller_signature.clone())
            }
            Event::TermsRejected { reason } => self.rejected = Some(reason.clone()),
            Event::ReservationBuilt { tx, fee } => {
                self.own.reservation = Some(tx.clone());
                self.own.fee = *fee;
            }
            Event::RefundCountersigned { refund } => self.own.refund = Some(refund.clone()),
            Event::ReservationBroadcast { txid } => self.own.broadcast = Some(*txid),
            Event::ReservationConfirmed { block_height, beef } => {
                self.own.confirmed = Some((*block_height, beef.clone()))
            }
            Event::ReservationAbandoned { reason } => self.own.abandoned = Some(reason.clone()),
            Event::CounterRefundSigned { escrow } => self.counter.refund_signed_for = Some(*escrow),
            Event::CounterReservationVerified {
                escrow,
                block_height,
                beef,
            } => self.counter.verified = Some((*escrow, *block_height, beef.clone())),
            Event::CounterpartyMisbehaved { reason } => {
                self.misbehaved.get_or_insert_with(|| reason.clone());
            }
            Event::NotaryApproved { signature } => self.notary_approval = Some(signature.clone()),
            Event::NotaryRejected { reason } => self.notary_rejection = Some(reason.clone()),
            Event::TokenGranted { token } => self.own.token = Some(token.clone()),
            Event::TokenReceived { token } => self.counter.token = Some(token.clone()),
            Event::PreimageLearned { preimage, .. } => self.preimage_learned = Some(*preimage),
            Event::ClaimBuilt { tx } => self.counter.claim = Some(tx.clone()),
            Event::ClaimBroadcast { txid } => self.counter.claim_broadcast = Some(*txid),
            Event::ClaimConfirmed { block_height } => {
                self.counter.claim_confirmed = Some(*block_height)
            }
            Event::ClaimAbandoned { reason } => self.counter.claim_abandoned = Some(reason.clone()),
            Event::CounterClaimSeen { txid, token_id } => {
                self.own.counter_claim = Some((*txid, *token_id))
            }
            Event::CounterClaimConfirmed { block_height } => {
                self.own.counter_claim_confirmed = Some(*block_height)
            }
            Event::MessageDelivered { kind } => {
                self.delivered.insert(*kind);
            }
            Event::CancelRequested { origin } => {
                self.cancel.get_or_insert(*origin);
            }
            Event::CancelSigned { escrow } => self.counter.cancel_signed = Some(*escrow),
            Event::CancelBuilt { tx } => self.own.cancel_tx = Some(tx.clone()),
            Event::RefundBroadcast { txid } => self.own.refund_broadcast = Some(*txid),
            Event::RefundConfirmed { block_height } => {
                self.own.refund_confirmed = Some(*block_height)
            }
            Event::EffectFailed {
                effect, attempt, ..
            } => {
                self.failures.insert(effect.clone(), *attempt);
            }
            Event::AttentionRaised { reason } => {
                self.attention.get_or_insert_with(|| reason.clone());
            }
            Event::OperatorResolved { resolution } => match resolution {
                Resolution::Retry => {
                    self.failures.clear();
                    self.attention = None;
                }
                Resolution::Refund => {
                    self.failures.clear();
                    self.attention = None;
                    self.cancel.get_or_insert(CancelOrigin::Operator);
                }
                Resolution::Abandon { reason } => self.abandoned = Some(reason.clone()),
            },
        }
    }

    pub fn agreed(&self) -> bool {
        self.terms.is_some() && self.seller_signature.is_some() && self.rejected.is_none()
    }

    /// Progress (new reservations, grants, approvals, claims of the buyer)
    /// is stopped.
    pub fn halted(&self) -> bool {
        self.cancel.is_some()
            || self.misbehaved.is_some()
            || self.attention.is_some()
            || self.abandoned.is_some()
            || self.notary_rejection.is_some()
    }

    pub fn status(&self, role: Role) -> Status {
        if self.abandoned.is_some() {
            return Status::Abandoned;
        }
        if self.terms.is_none() {
            return Status::New;
        }
        if self.rejected.is_some() {
            return Status::Rejected;
        }
        if self.seller_signature.is_none() {
            return Status::Proposed;
        }
        let claim_open =
            self.counter.claim_broadcast.is_some() && self.counter.claim_confirmed.is_none();
        if self.counter.claim_confirmed.is_some() && self.own.settled() {
            return Status::Completed;
        }
        // The seller who knows `s` still has a claim to make.
        let claim_owed = role == Role::Seller
            && self.preimage_learned.is_some()
            && self.counter.claim_confirmed.is_none()
            && self.counter.claim_abandoned.is_none();
        if self.own.settled() && !claim_open && !claim_owed {
            if self.own.refund_confirmed.is_some() && !self.own.refunded_by_cancel() {
                return Status::Refunded;
            }
            if self.own.refund_confirmed.is_some() || self.own.broadcast.is_none() {
                return Status::Cancelled;
            }
        }
        if self.halted()
            || self.own.abandoned.is_some()
            || self.counter.claim_abandoned.is_some()
            || self.own.refund_broadcast.is_some()
        {
            return Status::Compensating;
        }
        if self.own.confirmed.is_some() && self.counter.verified.is_some() {
            return Status::Executing;
        }
        Status::Reserving
    }
}
