//! What goes into [`super::Saga::handle`] and what comes out: inputs (what
//! arrived), effects (requests to the runtime), the decision, and the typed
//! rejection of an input that is illegal now.

use bsv_format::spv::VerifiedBeef;
use bsv_format::{Outpoint, Transaction, Txid};

use super::event::{Event, MessageKind, Resolution};
use crate::terms::{Denial, Leg, Terms, TermsError, TermsSignature};
use crate::token::{Token, TokenError, TokenId};
use crate::units::{Height, Satoshis, UnixTime};
use crate::wallet::UtxoChange;

/// A peer message as it arrives, after the runtime authenticated the caller
/// (mTLS) and verified what needs I/O (SPV of a BEEF against our chain
/// tracker). Proposals arrive as [`Input::Proposal`].
#[derive(Debug, Clone)]
pub enum PeerMessage {
    /// Sign my refund (input 0 spends my escrow output).
    SignRefund {
        /// The unsigned refund.
        refund: Transaction,
    },
    /// My reservation is confirmed: its BEEF, SPV-verified by our runtime.
    ReservationReady {
        /// The verified BEEF; its subject is the reservation.
        beef: Box<VerifiedBeef>,
        /// The BEEF bytes as received (kept for the notary and the audit).
        beef_bytes: Vec<u8>,
    },
    /// A token for the sender's reservation.
    GrantToken {
        /// The token.
        token: Token,
    },
    /// I claimed your reservation; here is the claim and your token.
    Execute {
        /// The token we issued.
        token: Token,
        /// The claim transaction (spends our escrow output, reveals `s`).
        claim: Transaction,
    },
    /// Sign my cooperative-cancel refund.
    SignCancel {
        /// The unsigned cancel transaction.
        cancel: Transaction,
    },
    /// Let us cancel.
    Cancel {
        /// Why, as the peer says.
        reason: String,
    },
}

impl PeerMessage {
    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            PeerMessage::SignRefund { .. } => MessageKind::SignRefund,
            PeerMessage::ReservationReady { .. } => MessageKind::ReservationReady,
            PeerMessage::GrantToken { .. } => MessageKind::GrantToken,
            PeerMessage::Execute { .. } => MessageKind::Execute,
            PeerMessage::SignCancel { .. } => MessageKind::SignCancel,
            PeerMessage::Cancel { .. } => MessageKind::Cancel,
        }
    }
}

/// A peer message as we send it (the runtime encodes it for the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerRequest {
    /// The buyer's proposal.
    Propose {
        /// The terms.
        terms: Box<Terms>,
        /// The buyer's signature.
        buyer_signature: TermsSignature,
    },
    /// Sign my refund.
    SignRefund {
        /// The unsigned refund.
        refund: Transaction,
    },
    /// My reservation's Atomic BEEF.
    ReservationReady {
        /// BRC-95 bytes.
        beef: Vec<u8>,
    },
    /// A token for my reservation.
    GrantToken {
        /// The token.
        token: Token,
    },
    /// I claimed your reservation.
    Execute {
        /// Your token.
        token: Token,
        /// My claim.
        claim: Transaction,
    },
    /// Sign my cancel.
    SignCancel {
        /// The unsigned cancel.
        cancel: Transaction,
    },
    /// Let us cancel.
    Cancel {
        /// Why.
        reason: String,
    },
}

impl PeerRequest {
    /// The request's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            PeerRequest::Propose { .. } => MessageKind::Propose,
            PeerRequest::SignRefund { .. } => MessageKind::SignRefund,
            PeerRequest::ReservationReady { .. } => MessageKind::ReservationReady,
            PeerRequest::GrantToken { .. } => MessageKind::GrantToken,
            PeerRequest::Execute { .. } => MessageKind::Execute,
            PeerRequest::SignCancel { .. } => MessageKind::SignCancel,
            PeerRequest::Cancel { .. } => MessageKind::Cancel,
        }
    }
}

/// A peer's answer to one of our requests, or ours to one of theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerReply {
    /// Proposal accepted: the seller's signature.
    Accepted {
        /// Over the terms hash.
        seller_signature: TermsSignature,
    },
    /// A signature on the refund or cancel we sent (DER + sighash byte, as
    /// it goes into the unlocking script).
    Signature {
        /// The signature.
        signature: Vec<u8>,
    },
    /// Received; nothing to return.
    Ack,
    /// Refused for good (the proposal, a message contradicting the terms).
    Refused {
        /// Why.
        reason: String,
    },
    /// Not now: ask again later (a cancel signature before our own leg is
    /// back, a message that arrived before the step it depends on).
    NotYet {
        /// What is awaited.
        reason: String,
    },
}

/// What a broadcaster said about one of our transactions (the runtime maps
/// ARC's statuses: RECEIVED…MINED and "already known" are `Accepted`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// The chain has it (or already had it).
    Accepted,
    /// Refused for good (script, fee, malformed, inputs missing).
    Rejected {
        /// The broadcaster's reason.
        reason: String,
    },
    /// Another transaction spends one of its inputs.
    DoubleSpend {
        /// The competing transactions.
        competing: Vec<Txid>,
    },
}

/// The notary's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotaryAnswer {
    /// Approved: its signature over the terms hash and reservation txids.
    Approved {
        /// The signature.
        signature: Vec<u8>,
    },
    /// Refused.
    Rejected {
        /// Its reason.
        reason: String,
    },
}

/// Why a transaction is watched or broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxPurpose {
    /// Our reservation.
    Reservation,
    /// Our timed refund.
    Refund,
    /// Our cooperative-cancel refund.
    Cancel,
    /// Our claim of the counterparty's reservation.
    Claim,
    /// The counterparty's claim of our reservation.
    CounterClaim,
}

/// Something that arrived for the saga.
#[derive(Debug, Clone)]
pub enum Input {
    /// (Buyer) Start a swap on these terms. `H` must be `SHA256` of the
    /// preimage in the saga's secrets; the terms are checked against our
    /// policy and signed.
    Start {
        /// The terms (built by the runtime from the admin request, the
        /// policy and the current tips).
        terms: Box<Terms>,
        /// Our satoshis already locked with this counterparty on the payment chain.
        exposure: Satoshis,
    },
    /// (Seller) A proposal from `caller` (its mTLS identity).
    Proposal {
        /// The caller's SPIFFE ID.
        caller: String,
        /// The terms.
        terms: Box<Terms>,
        /// The buyer's signature.
        buyer_signature: TermsSignature,
        /// Our satoshis already locked with this counterparty on the delivery chain.
        exposure: Satoshis,
    },
    /// A peer message from `caller`.
    Peer {
        /// The caller's SPIFFE ID (mTLS).
        caller: String,
        /// The message.
        message: PeerMessage,
    },
    /// The answer to one of our requests.
    PeerAnswered {
        /// What we had sent.
        request: MessageKind,
        /// Its answer.
        reply: PeerReply,
    },
    /// The wallet built and signed our reservation.
    ReservationFunded {
        /// The signed reservation.
        tx: Transaction,
        /// Its fee.
        fee: Satoshis,
        /// The wallet changes to commit with the event (inputs reserved,
        /// change and escrow outputs added).
        utxo_changes: Vec<UtxoChange>,
    },
    /// The broadcaster's answer for one of our transactions.
    Broadcasted {
        /// The transaction.
        txid: Txid,
        /// The answer.
        outcome: BroadcastOutcome,
    },
    /// A watched transaction is in a block `block_height` on a chain whose
    /// tip is `tip`.
    TxConfirmed {
        /// The chain.
        chain_id: String,
        /// The transaction.
        txid: Txid,
        /// Height of its block.
        block_height: Height,
        /// The chain's tip when seen.
        tip: Height,
        /// Its BEEF (with the BUMP), when the watched transaction is our
        /// reservation: what the peer receives.
        beef: Option<Vec<u8>>,
    },
    /// A watched outpoint was spent (in the mempool or a block).
    SpendSeen {
        /// The chain.
        chain_id: String,
        /// The outpoint.
        outpoint: Outpoint,
        /// The spending transaction.
        tx: Transaction,
    },
    /// The notary answered.
    Notary(NotaryAnswer),
    /// A chain's tip moved or the clock passed a wake time: re-evaluate
    /// deadlines. (Tips are set with [`super::Saga::observe_tip`] first.)
    Tick,
    /// An operator asks for a cooperative cancel.
    CancelRequested {
        /// The operator's reason.
        reason: String,
    },
    /// An operator's decision for a saga in attention.
    Resolve(Resolution),
    /// An effect failed without a definite answer.
    EffectFailed {
        /// Which.
        effect: EffectKey,
        /// What the runtime saw.
        detail: String,
    },
    /// What the counterparty said of the saga when asked after our restart
    /// (`PeerService.GetSagaStatus`, reconciliation).
    PeerStatus {
        /// False when it answered that it has no such saga.
        known: bool,
        /// Its answer as received (its state, or the error), for the record.
        detail: String,
    },
}

/// Identifies an effect (so the runtime can run each at most once at a
/// time, and failures can be counted per effect).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EffectKey {
    /// Sending this kind of message.
    Send(MessageKind),
    /// Funding our reservation.
    BuildReservation,
    /// Broadcasting our transaction of this purpose.
    Broadcast(TxPurpose),
    /// Watching confirmations of a transaction of this purpose.
    WatchConfirmations(TxPurpose),
    /// Watching spends of an escrow output.
    WatchSpend(Leg),
    /// Asking the notary.
    AskNotary,
    /// A wake-up at a height of a chain.
    WakeAtHeight(String),
    /// A wake-up at a time.
    WakeAt,
}

/// A request to the runtime. Idempotent, and recomputed from state by
/// [`super::Saga::pending_effects`]: the runtime runs each pending effect
/// (one at a time per [`Effect::key`]) until the input it leads to changes
/// the state so that the effect is no longer pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a message to the counterparty; its answer comes back as
    /// [`Input::PeerAnswered`].
    SendToPeer(PeerRequest),
    /// Select, sign and return our reservation ([`Input::ReservationFunded`]).
    BuildReservation {
        /// Our leg.
        leg: Leg,
    },
    /// Broadcast (as EF) — answer [`Input::Broadcasted`].
    Broadcast {
        /// The chain.
        chain_id: String,
        /// The transaction.
        tx: Transaction,
        /// Why.
        purpose: TxPurpose,
    },
    /// Report when `txid` has `depth` confirmations ([`Input::TxConfirmed`]).
    WatchConfirmations {
        /// The chain.
        chain_id: String,
        /// The transaction.
        txid: Txid,
        /// Confirmations wanted (≥ 1).
        depth: u32,
        /// Why.
        purpose: TxPurpose,
    },
    /// Report a spend of `outpoint` ([`Input::SpendSeen`]).
    WatchSpend {
        /// The chain.
        chain_id: String,
        /// The escrow output.
        outpoint: Outpoint,
        /// The leg it belongs to.
        leg: Leg,
    },
    /// Ask the notary to approve ([`Input::Notary`]).
    AskNotary {
        /// The notary's SPIFFE ID.
        notary: String,
        /// The agreed terms.
        terms: Box<Terms>,
        /// Both parties' signatures, buyer then seller.
        signatures: [TermsSignature; 2],
        /// The payment reservation's BEEF.
        payment_beef: Vec<u8>,
        /// The delivery reservation's BEEF.
        delivery_beef: Vec<u8>,
    },
    /// Feed [`Input::Tick`] when `chain_id`'s tip reaches `height`.
    WakeAtHeight {
        /// The chain.
        chain_id: String,
        /// The height.
        height: Height,
    },
    /// Feed [`Input::Tick`] at this time.
    WakeAt {
        /// The time.
        at: UnixTime,
    },
}

impl Effect {
    /// The effect's key.
    pub fn key(&self) -> EffectKey {
        match self {
            Effect::SendToPeer(r) => EffectKey::Send(r.kind()),
            Effect::BuildReservation { .. } => EffectKey::BuildReservation,
            Effect::Broadcast { purpose, .. } => EffectKey::Broadcast(*purpose),
            Effect::WatchConfirmations { purpose, .. } => EffectKey::WatchConfirmations(*purpose),
            Effect::WatchSpend { leg, .. } => EffectKey::WatchSpend(*leg),
            Effect::AskNotary { .. } => EffectKey::AskNotary,
            Effect::WakeAtHeight { chain_id, .. } => EffectKey::WakeAtHeight(chain_id.clone()),
            Effect::WakeAt { .. } => EffectKey::WakeAt,
        }
    }
}

/// What one input decided: persist it all in one append, then apply the
/// events, run the effects and send the reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Events to append (empty for a duplicate or an input that changes nothing).
    pub events: Vec<Event>,
    /// Tokens consumed by these events (same append).
    pub consumed_tokens: Vec<TokenId>,
    /// Hashlocks first seen by these events (same append; a reused one fails it).
    pub new_hashlocks: Vec<[u8; 32]>,
    /// Wallet changes (same append).
    pub utxo_changes: Vec<UtxoChange>,
    /// The effects pending once the events are applied.
    pub effects: Vec<Effect>,
    /// The answer to a peer message, sent after the append is durable.
    pub reply: Option<PeerReply>,
}

/// Why an input is refused. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The input is not legal in the current state.
    #[error("{input} is not accepted while the saga is {state}")]
    WrongState {
        /// The saga's status name.
        state: &'static str,
        /// What arrived.
        input: &'static str,
    },
    /// The caller is not the counterparty named in the terms.
    #[error("caller {caller} is not a party to this saga")]
    NotAParty {
        /// The caller's SPIFFE ID.
        caller: String,
    },
    /// The counterparty sent something contradicting the terms or the protocol.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(String),
    /// Our policy refuses.
    #[error("policy denies: {0}")]
    PolicyDenied(Box<Denial>),
    /// The terms are malformed or their signature does not verify.
    #[error("terms: {0}")]
    Terms(TermsError),
    /// A token is refused.
    #[error("token: {0}")]
    Token(TokenError),
    /// A token was already used for something else.
    #[error("token {0} was already used")]
    TokenReused(TokenId),
    /// An operator's request that the protocol forbids now (a cancel once
    /// the swap is executing).
    #[error("{what} is not allowed: {reason}")]
    NotAllowed {
        /// What was asked.
        what: &'static str,
        /// Why not.
        reason: String,
    },
    /// A chain or broadcaster report about a transaction or outpoint that
    /// is none of this saga's.
    #[error("{what}: {detail}")]
    Unrelated {
        /// Which report.
        what: &'static str,
        /// What it named.
        detail: String,
    },
    /// Building or signing one of our transactions failed (a bug or a
    /// configuration fault, e.g. keys that do not match the terms).
    #[error("cannot build {what}: {detail}")]
    Build {
        /// Which transaction.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

impl TxPurpose {
    /// Every purpose.
    pub const ALL: [TxPurpose; 5] = [
        TxPurpose::Reservation,
        TxPurpose::Refund,
        TxPurpose::Cancel,
        TxPurpose::Claim,
        TxPurpose::CounterClaim,
    ];

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            TxPurpose::Reservation => "reservation",
            TxPurpose::Refund => "refund",
            TxPurpose::Cancel => "cancel",
            TxPurpose::Claim => "claim",
            TxPurpose::CounterClaim => "counter_claim",
        }
    }
}

impl EffectKey {
    /// Stable text form, e.g. `send:propose`, `broadcast:claim`,
    /// `watch_spend:payment`, `wake_at_height:chain-p`, `wake_at` (stored
    /// events use it; [`EffectKey::parse`] reads it back).
    pub fn to_text(&self) -> String {
        match self {
            EffectKey::Send(k) => format!("send:{}", k.name()),
            EffectKey::BuildReservation => "build_reservation".into(),
            EffectKey::Broadcast(p) => format!("broadcast:{}", p.name()),
            EffectKey::WatchConfirmations(p) => format!("watch_confirmations:{}", p.name()),
            EffectKey::WatchSpend(leg) => format!("watch_spend:{leg}"),
            EffectKey::AskNotary => "ask_notary".into(),
            EffectKey::WakeAtHeight(chain) => format!("wake_at_height:{chain}"),
            EffectKey::WakeAt => "wake_at".into(),
        }
    }

    /// Parses [`EffectKey::to_text`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<EffectKey> {
        let purpose = |s: &str| TxPurpose::ALL.into_iter().find(|p| p.name() == s);
        let (head, arg) = text.split_once(':').unwrap_or((text, ""));
        match (head, arg) {
            ("send", k) => MessageKind::ALL
                .into_iter()
                .find(|m| m.name() == k)
                .map(EffectKey::Send),
            ("build_reservation", "") => Some(EffectKey::BuildReservation),
            ("broadcast", p) => purpose(p).map(EffectKey::Broadcast),
            ("watch_confirmations", p) => purpose(p).map(EffectKey::WatchConfirmations),
            ("watch_spend", "payment") => Some(EffectKey::WatchSpend(Leg::Payment)),
            ("watch_spend", "delivery") => Some(EffectKey::WatchSpend(Leg::Delivery)),
            ("ask_notary", "") => Some(EffectKey::AskNotary),
            ("wake_at_height", chain) if !chain.is_empty() => {
                Some(EffectKey::WakeAtHeight(chain.to_string()))
            }
            ("wake_at", "") => Some(EffectKey::WakeAt),
            _ => None,
        }
    }
}
