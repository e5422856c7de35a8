//! Inputs where they are illegal: each is refused with its typed
//! [`Reject`] and leaves the saga as it was (status, attention, pending
//! effects, log). Duplicates of legal inputs are no-ops: the simulator
//! re-handles every input that appended something and records a violation
//! if the copy appends again or answers differently; every run here and in
//! the other suites asserts there is none.

use bsv_format::{Outpoint, Transaction, Txid};
use saga_core::saga::{
    BroadcastOutcome, Input, MessageKind, NotaryAnswer, PeerMessage, PeerReply, Reject, Resolution,
    Status,
};
use saga_core::terms::{Leg, Role};
use saga_core::units::{Height, Satoshis};
use saga_testkit::fixtures::{BUYER, CHAIN_D, CHAIN_P, SELLER};
use saga_testkit::{FeedError, Sim, SimConfig};

/// The kind of rejection expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    WrongState,
    NotAParty,
    Build,
    NotAllowed,
    Unrelated,
}

fn kind(r: &Reject) -> Option<Kind> {
    match r {
        Reject::WrongState { .. } => Some(Kind::WrongState),
        Reject::NotAParty { .. } => Some(Kind::NotAParty),
        Reject::Build { .. } => Some(Kind::Build),
        Reject::NotAllowed { .. } => Some(Kind::NotAllowed),
        Reject::Unrelated { .. } => Some(Kind::Unrelated),
        _ => None,
    }
}

fn refused(sim: &mut Sim, role: Role, input: Input, expected: Kind, case: &str) {
    let now = sim.now();
    let snapshot = |sim: &Sim| {
        let saga = sim.saga(role).expect("party is up");
        (
            saga.status(),
            saga.attention().map(str::to_string),
            saga.pending_effects(now),
            sim.events(role).len(),
        )
    };
    let before = snapshot(sim);
    match sim.feed(role, input) {
        Err(FeedError::Rejected(r)) => {
            assert_eq!(kind(&r), Some(expected), "{case}: {r}")
        }
        other => panic!("{case}: expected a {expected:?} rejection, got {other:?}"),
    }
    assert_eq!(snapshot(sim), before, "{case}: state moved");
}

fn dummy_tx() -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![bsv_format::TxIn {
            prev_out: Outpoint::new(Txid([9; 32]), 0),
            unlocking_script: bsv_format::Script::default(),
            sequence: u32::MAX,
        }],
        outputs: vec![bsv_format::TxOut {
            satoshis: 1,
            locking_script: bsv_format::Script::default(),
        }],
        lock_time: 0,
    }
}

/// Inputs that only make sense once terms are agreed.
fn after_agreement_inputs() -> Vec<(&'static str, Input)> {
    let tx = dummy_tx();
    vec![
        (
            "peer sign_refund",
            Input::Peer {
                caller: BUYER.into(),
                message: PeerMessage::SignRefund { refund: tx.clone() },
            },
        ),
        (
            "peer cancel",
            Input::Peer {
                caller: BUYER.into(),
                message: PeerMessage::Cancel { reason: "x".into() },
            },
        ),
        (
            "reservation funded",
            Input::ReservationFunded {
                tx: tx.clone(),
                fee: Satoshis(1),
                utxo_changes: Vec::new(),
            },
        ),
        (
            "broadcasted",
            Input::Broadcasted {
                txid: tx.txid(),
                outcome: BroadcastOutcome::Accepted,
            },
        ),
        (
            "tx confirmed",
            Input::TxConfirmed {
                chain_id: CHAIN_P.into(),
                txid: tx.txid(),
                block_height: Height(1),
                tip: Height(1),
                beef: None,
            },
        ),
        (
            "spend seen",
            Input::SpendSeen {
                chain_id: CHAIN_D.into(),
                outpoint: Outpoint::new(Txid([9; 32]), 0),
                tx,
            },
        ),
        (
            "notary",
            Input::Notary(NotaryAnswer::Approved { signature: vec![1] }),
        ),
        (
            "cancel requested",
            Input::CancelRequested { reason: "x".into() },
        ),
    ]
}

#[test]
fn a_seller_without_terms_refuses_everything_but_a_proposal() {
    let mut sim = Sim::new(&SimConfig::default());
    for (case, input) in after_agreement_inputs() {
        refused(&mut sim, Role::Seller, input, Kind::WrongState, case);
    }
    let terms = sim.terms().clone();
    refused(
        &mut sim,
        Role::Seller,
        Input::Start {
            terms: Box::new(terms),
            exposure: Satoshis(0),
        },
        Kind::WrongState,
        "start to a seller",
    );
    refused(
        &mut sim,
        Role::Seller,
        Input::Resolve(Resolution::Retry),
        Kind::WrongState,
        "resolve without attention",
    );
    refused(
        &mut sim,
        Role::Seller,
        Input::PeerAnswered {
            request: MessageKind::SignRefund,
            reply: PeerReply::Ack,
        },
        Kind::WrongState,
        "an answer to nothing",
    );
}

#[test]
fn a_buyer_awaiting_the_answer_refuses_peer_messages_and_a_second_start() {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    assert_eq!(sim.status(Role::Buyer), Some(Status::Proposed));
    for (case, input) in after_agreement_inputs() {
        let input = match input {
            Input::Peer { message, .. } => Input::Peer {
                caller: SELLER.into(),
                message,
            },
            other => other,
        };
        refused(&mut sim, Role::Buyer, input, Kind::WrongState, case);
    }
    let mut other = sim.terms().clone();
    other.payment.amount = Satoshis(other.payment.amount.0 + 1);
    refused(
        &mut sim,
        Role::Buyer,
        Input::Start {
            terms: Box::new(other),
            exposure: Satoshis(0),
        },
        Kind::WrongState,
        "start with other terms",
    );
    let terms = sim.terms().clone();
    let signature = terms
        .sign(Role::Buyer, &saga_testkit::fixtures::key(1))
        .unwrap();
    refused(
        &mut sim,
        Role::Buyer,
        Input::Proposal {
            caller: SELLER.into(),
            terms: Box::new(terms.clone()),
            buyer_signature: signature,
            exposure: Satoshis(0),
        },
        Kind::WrongState,
        "a proposal to the buyer",
    );
    // The same start again is the same request: accepted, nothing appended.
    let again = sim
        .feed(
            Role::Buyer,
            Input::Start {
                terms: Box::new(terms),
                exposure: Satoshis(0),
            },
        )
        .unwrap();
    assert!(again.events.is_empty());
}

#[test]
fn while_reserving_strangers_unknown_transactions_and_second_reservations_are_refused() {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.run_until(
        |s| {
            s.events(Role::Seller)
                .iter()
                .any(|e| e.name() == "counter_reservation_verified")
        },
        50,
    )
    .unwrap();
    sim.partition(Role::Buyer, true);
    sim.partition(Role::Seller, true);
    assert_eq!(sim.status(Role::Buyer), Some(Status::Reserving));
    let tx = dummy_tx();
    refused(
        &mut sim,
        Role::Seller,
        Input::Peer {
            caller: "spiffe://org-c.example/gateway/gc".into(),
            message: PeerMessage::Cancel { reason: "x".into() },
        },
        Kind::NotAParty,
        "a stranger's cancel",
    );
    refused(
        &mut sim,
        Role::Buyer,
        Input::ReservationFunded {
            tx: tx.clone(),
            fee: Satoshis(1),
            utxo_changes: Vec::new(),
        },
        Kind::WrongState,
        "a second reservation",
    );
    refused(
        &mut sim,
        Role::Buyer,
        Input::Broadcasted {
            txid: tx.txid(),
            outcome: BroadcastOutcome::Accepted,
        },
        Kind::Unrelated,
        "a broadcast result of a stranger transaction",
    );
    refused(
        &mut sim,
        Role::Buyer,
        Input::TxConfirmed {
            chain_id: CHAIN_P.into(),
            txid: tx.txid(),
            block_height: Height(1),
            tip: Height(1),
            beef: None,
        },
        Kind::Unrelated,
        "a confirmation of a stranger transaction",
    );
    refused(
        &mut sim,
        Role::Buyer,
        Input::SpendSeen {
            chain_id: CHAIN_P.into(),
            outpoint: Outpoint::new(Txid([9; 32]), 0),
            tx: tx.clone(),
        },
        Kind::Unrelated,
        "a spend of a stranger outpoint",
    );
    refused(
        &mut sim,
        Role::Buyer,
        Input::Resolve(Resolution::Refund),
        Kind::WrongState,
        "resolve without attention",
    );
    // Execute before the buyer granted any token.
    let token = saga_core::token::Token::issue(
        saga_core::token::TokenId([1; 16]),
        sim.terms().saga_id,
        Outpoint::new(sim.reservation(Role::Buyer).unwrap().txid(), 0),
        BUYER,
        SELLER,
        saga_core::units::UnixTime(sim.now().0 + 60),
        &saga_testkit::fixtures::key(1),
    )
    .unwrap();
    refused(
        &mut sim,
        Role::Buyer,
        Input::Peer {
            caller: SELLER.into(),
            message: PeerMessage::Execute { token, claim: tx },
        },
        Kind::WrongState,
        "execute before a token was granted",
    );
    // The seller's reservation is not built: its funding is legal, a
    // reservation for the wrong leg is not.
    let terms = sim.terms().clone();
    let wrong_leg =
        sim.wallet(Role::Seller)
            .fund(sim.store(Role::Seller), &terms, Leg::Payment, 100);
    assert!(wrong_leg.is_err(), "the seller has no coins on P");
}

#[test]
fn after_completion_a_cancel_is_refused_and_a_peer_cancel_answered_refused() {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.run_until(
        |s| {
            s.status(Role::Buyer) == Some(Status::Completed)
                && s.status(Role::Seller) == Some(Status::Completed)
        },
        100,
    )
    .unwrap();
    refused(
        &mut sim,
        Role::Buyer,
        Input::CancelRequested {
            reason: "late".into(),
        },
        Kind::NotAllowed,
        "an operator cancel after our claim",
    );
    let d = sim
        .deliver(
            Role::Seller,
            BUYER,
            PeerMessage::Cancel {
                reason: "late".into(),
            },
        )
        .unwrap();
    assert!(d.events.is_empty());
    assert!(
        matches!(d.reply, Some(PeerReply::Refused { .. })),
        "{:?}",
        d.reply
    );
    assert!(sim.violations().is_empty(), "{:#?}", sim.violations());
}

#[test]
fn an_abandoned_saga_refuses_everything_but_ticks() {
    let mut sim = Sim::new(&SimConfig::default());
    sim.start().unwrap();
    sim.broadcaster_down = true;
    // The buyer's reservation cannot be broadcast: attention after the budget.
    sim.run_until(
        |s| s.saga(Role::Buyer).is_some_and(|g| g.attention().is_some()),
        50,
    )
    .unwrap();
    sim.feed(
        Role::Buyer,
        Input::Resolve(Resolution::Abandon {
            reason: "by hand".into(),
        }),
    )
    .unwrap();
    assert_eq!(sim.status(Role::Buyer), Some(Status::Abandoned));
    assert!(sim
        .saga(Role::Buyer)
        .unwrap()
        .pending_effects(sim.now())
        .is_empty());
    for (case, input) in after_agreement_inputs() {
        refused(&mut sim, Role::Buyer, input, Kind::WrongState, case);
    }
    refused(
        &mut sim,
        Role::Buyer,
        Input::Resolve(Resolution::Retry),
        Kind::WrongState,
        "resolve after abandon",
    );
    assert!(sim
        .feed(Role::Buyer, Input::Tick)
        .unwrap()
        .events
        .is_empty());
}
