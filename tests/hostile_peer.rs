//! A hostile counterparty over the real transport (issue 6): the test
//! speaks to GA's `PeerService` *as GB* — with GB's own gateway
//! certificate, over mutual TLS and gRPC, through the authorization layer —
//! and builds its lies with the real leg code on the chainsims' HTTP APIs.
//! Every lie must be refused with a status or a `refused` answer that says
//! what was wrong, and must never corrupt GA's saga: GA records the
//! misbehaviour where the protocol says it should, never claims on the
//! strength of a lie, and takes its own leg back.
//!
//! How a lying reservation is staged: GB's ARC client of chain D is down,
//! so GB's honest gateway builds its reservation and has GA sign its refund
//! but never broadcasts it, and never sends its own `ReservationReady`. The
//! test then funds a reservation of its own from the chain D faucet with
//! one thing in the escrow output changed, has GA sign its refund
//! (`SignRefund`, as GB's gateway would), mines it and sends it in a
//! `ReservationReady`.
//!
//! Heights decide, as in tests/rpc.rs: the UTC clock stands still and the
//! harness's miner mines a block after each broadcast; `T_P` is reached by
//! mining chain P on purpose. Every wait is bounded.

// The harness of tests/rpc.rs; this file uses part of it.
#[allow(dead_code)]
#[path = "rpc/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::ef::EfTransaction;
use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::p2pkh_lock;
use bsv_format::{Outpoint, Transaction, TxOut};
use escrowd::proto::escrow_v1 as pb;
use escrowd::proto::escrow_v1::peer_service_client::PeerServiceClient;
use pb::peer_reply::Reply;
use saga_core::legs::{self, FundingInput};
use saga_core::saga::{CancelOrigin, Event};
use saga_core::terms::{Leg, Terms};
use saga_core::Satoshis;
use saga_runtime::{BroadcastOutcome, TxState};
use tonic::transport::Channel;
use tonic::Code;

use support::*;

/// Both policies' fee rate (policies/fast-test.toml), satoshis per 1000 bytes.
const FEE_RATE: u64 = 100;

// ---------------------------------------------------------------------------
// Staging

/// GA's PeerService, called with GB's own gateway certificate.
fn ga_as_gb(w: &World) -> PeerServiceClient<Channel> {
    let gb = w.pki.identity("org-b.example/gateway-org-b");
    PeerServiceClient::new(channel(&gb, GA, w.ga.addr))
}

/// Funds both gateways, takes GB's ARC of chain D down and starts a swap
/// at GA; returns once GA's payment is reserved and confirmed and GA has
/// signed the refund of GB's (never broadcast) reservation. GB's honest
/// gateway sends nothing more that matters: whatever GA hears about GB's
/// leg from now on comes from the test.
async fn stage(w: &World, key: &str) -> (String, Terms) {
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    w.gb.arc_down[D].store(true, Ordering::SeqCst);
    let started = w.start(&mut admin_a, key).await;
    let terms = Terms::decode(&started.terms).unwrap();
    let saga_id = started.status.unwrap().saga_id;
    w.until_event(&w.ga, &saga_id, "reservation_confirmed")
        .await;
    w.until_event(&w.ga, &saga_id, "counter_refund_signed")
        .await;
    w.until_event(&w.gb, &saga_id, "refund_countersigned").await;
    (saga_id, terms)
}

/// A faucet output of `sats` to `key`'s P2PKH on `chain`, as a reservation
/// input, and the faucet's BEEF (which proves it).
async fn faucet_input(w: &World, chain: &str, key: &PrivateKey, sats: u64) -> (FundingInput, Beef) {
    let beef = Beef::from_bytes(&w.chains.faucet(chain, key, sats).await).unwrap();
    let script = p2pkh_lock(&key.public_key().hash160());
    let outpoint = beef
        .txs()
        .iter()
        .filter_map(|e| e.transaction())
        .find_map(|tx| {
            tx.outputs
                .iter()
                .position(|o| o.locking_script == script && o.satoshis == sats)
                .map(|vout| Outpoint::new(tx.txid(), vout as u32))
        })
        .expect("the faucet pays the key");
    let input = FundingInput {
        outpoint,
        satoshis: Satoshis(sats),
        locking_script: script,
    };
    (input, beef)
}

/// The delivery reservation of `terms` (the escrow output they fix),
/// funded by `input` and signed by `key` with the real leg code.
fn reservation(terms: &Terms, input: &FundingInput, key: &PrivateKey) -> Transaction {
    let inputs = std::slice::from_ref(input);
    let mut r = legs::build_reservation(
        terms,
        Leg::Delivery,
        inputs,
        &input.locking_script,
        FEE_RATE,
    )
    .unwrap();
    legs::sign_p2pkh_inputs(&mut r.tx, 0, inputs, key).unwrap();
    r.tx
}

/// Broadcasts `tx` (spending `input`) to `chain`'s ARC as EF, waits until
/// it is mined (the harness's miner mines after each broadcast) and returns
/// its Atomic BEEF with its BUMP — what an honest funder sends.
async fn mine(w: &World, chain: &str, tx: &Transaction, input: &FundingInput) -> Vec<u8> {
    let ports = w.chains.ports(&BTreeMap::new());
    let arc = &ports[chain].broadcaster;
    let ef = EfTransaction::new(
        tx.clone(),
        vec![TxOut {
            satoshis: input.satoshis.0,
            locking_script: input.locking_script.clone(),
        }],
    )
    .unwrap();
    let outcome = arc.broadcast(&ef).await.unwrap();
    assert!(
        matches!(outcome, BroadcastOutcome::Accepted(_)),
        "{outcome:?}"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let inclusion = loop {
        if let Some(status) = arc.status(&tx.txid()).await.unwrap() {
            if let TxState::Mined(inclusion) = status.state {
                break inclusion;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} was never mined",
            tx.txid()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(inclusion.merkle_path);
    let txid = beef.add_transaction(tx.clone());
    beef.to_atomic(&txid).unwrap().to_bytes()
}

/// `tx`'s Atomic BEEF with its (proven) parents from `parents`, `tx` itself
/// unmined.
fn unmined(parents: &Beef, tx: &Transaction) -> Vec<u8> {
    let mut beef = parents.clone();
    let txid = beef.add_transaction(tx.clone());
    beef.to_atomic(&txid).unwrap().to_bytes()
}

/// Has GA sign the refund of GB's escrow output at `escrow` (as GB's
/// gateway asks before broadcasting a reservation); the answer.
async fn sign_refund(
    peer: &mut PeerServiceClient<Channel>,
    saga_id: &str,
    terms: &Terms,
    escrow: Outpoint,
) -> Result<Reply, tonic::Status> {
    let fee = legs::fee_for_size(legs::MAX_LEG_SPEND_BYTES, FEE_RATE);
    let refund = legs::build_refund(terms, Leg::Delivery, escrow, fee).unwrap();
    peer.sign_refund(with_saga(
        saga_id,
        pb::SignRefundRequest {
            saga_id: saga_id.into(),
            refund: refund.to_bytes(),
        },
    ))
    .await
    .map(|r| r.into_inner().reply.expect("a reply"))
}

/// Sends `beef` to GA as GB's `ReservationReady`; the answer.
async fn reservation_ready(
    peer: &mut PeerServiceClient<Channel>,
    saga_id: &str,
    beef: Vec<u8>,
) -> Result<Reply, tonic::Status> {
    peer.reservation_ready(with_saga(
        saga_id,
        pb::ReservationReadyRequest {
            saga_id: saga_id.into(),
            beef,
        },
    ))
    .await
    .map(|r| r.into_inner().reply.expect("a reply"))
}

/// The reason of a `refused` answer (fails on any other).
fn refused(reply: Result<Reply, tonic::Status>) -> String {
    match reply {
        Ok(Reply::Refused(r)) => r.reason,
        other => panic!("expected a refused answer, got {other:?}"),
    }
}

fn names(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::name).collect()
}

/// Waits until `node`'s projection of the saga is in `state`.
async fn until_state(w: &World, node: &Node, saga_id: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let id = saga_id.parse().unwrap();
    loop {
        let p = node.log().projection(&id).await.unwrap();
        if p.is_some_and(|p| p.state == state) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {state}:{}", w.report(saga_id).await);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Mines chain `chain` up to `height` on purpose (a refund height).
async fn mine_to(w: &World, chain: &str, height: u32) {
    let tip = w.chains.sims[chain].tip();
    if tip >= height {
        return;
    }
    let body: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/sim/mine", w.chains.sims[chain].url()))
        .json(&serde_json::json!({ "blocks": height - tip }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["tip"], height, "{body}");
}

/// GA, having recorded a misbehaviour, is compensating; once chain P
/// reaches `T_P` its pre-signed refund takes its payment back and the saga
/// ends `refunded`, having never verified, claimed or been granted
/// anything of GB's leg; the payment less the refund's fee is in GA's wallet.
async fn compensated(w: &World, saga_id: &str, terms: &Terms) {
    until_state(w, &w.ga, saga_id, "compensating").await;
    mine_to(w, P, terms.payment.refund_height.0).await;
    until_state(w, &w.ga, saga_id, "refunded").await;
    let events = w.events(&w.ga, saga_id).await;
    for never in [
        "counter_reservation_verified",
        "token_received",
        "claim_built",
        "claim_broadcast",
    ] {
        assert!(!names(&events).contains(&never), "{:?}", names(&events));
    }
    let refund = events
        .iter()
        .find_map(|e| match e {
            Event::RefundCountersigned { refund } => Some(refund.clone()),
            _ => None,
        })
        .expect("GA's refund was countersigned");
    assert!(events.contains(&Event::RefundBroadcast {
        txid: refund.txid()
    }));
    let back = PAYMENT - legs::fee_for_size(legs::MAX_LEG_SPEND_BYTES, FEE_RATE).0;
    assert_eq!(refund.outputs.len(), 1);
    assert_eq!(refund.outputs[0].satoshis, back);
    assert_eq!(
        refund.outputs[0].locking_script,
        p2pkh_lock(&w.ga.public.escrow_keys[P].hash160())
    );
    let balances = w
        .admin_a()
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap()
        .into_inner();
    let received: Vec<u64> = balances
        .balances
        .iter()
        .filter(|b| b.chain_id == P && b.basket == pb::Basket::Received as i32)
        .map(|b| b.available_sats)
        .collect();
    assert_eq!(received, [back], "{balances:?}");
}

/// The reasons of GA's `counterparty_misbehaved` events.
fn misbehaviours(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CounterpartyMisbehaved { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Lying reservations

/// One thing a lying seller changes in its escrow output.
#[derive(Debug, Clone, Copy)]
enum Lie {
    /// Locks less than the delivery amount.
    Amount,
    /// Locks under another hash lock than `H` (the buyer's `s` opens nothing).
    HashLock,
    /// Names another beneficiary key than the buyer's: the buyer could never claim.
    BuyerKey,
    /// Names another funder key than the seller's agreed one.
    SellerKey,
}

impl Lie {
    /// The terms as the liar funds them.
    fn told(self, terms: &Terms) -> Terms {
        let mut t = terms.clone();
        let stranger = key("hostile test stranger").public_key();
        match self {
            Lie::Amount => t.delivery.amount = Satoshis(DELIVERY - 1_000),
            Lie::HashLock => t.hash_lock = sha256(b"not the buyer's secret"),
            Lie::BuyerKey => t.buyer.delivery_escrow_key = stranger,
            Lie::SellerKey => t.seller.delivery_escrow_key = stranger,
        }
        t
    }
}

/// GB's lying reservation, mined, with GA's signature on its refund; its
/// escrow outpoint and Atomic BEEF.
async fn lying_reservation(
    w: &World,
    peer: &mut PeerServiceClient<Channel>,
    saga_id: &str,
    terms: &Terms,
    lie: Lie,
) -> (Outpoint, Vec<u8>) {
    let gb_key = &w.gb.wallet_keys[D];
    let (input, _) = faucet_input(w, D, gb_key, DELIVERY + 10_000).await;
    let tx = reservation(&lie.told(terms), &input, gb_key);
    let escrow = Outpoint::new(tx.txid(), 0);
    // GA signs a refund it is asked for without seeing the reservation
    // (the beneficiary signs before the funder broadcasts): the refund
    // alone is checked against the terms.
    let signed = sign_refund(peer, saga_id, terms, escrow).await;
    assert!(matches!(signed, Ok(Reply::Signature(_))), "{signed:?}");
    let beef = mine(w, D, &tx, &input).await;
    (escrow, beef)
}

/// A seller that reserves with `lie` is refused with a reason naming its
/// reservation, recorded as misbehaving once, and compensated: GA never
/// claims, asks to cancel, and at `T_P` takes its payment back — the saga
/// ends `refunded` with the payment (less the refund's fee) in GA's wallet.
async fn a_lying_reservation_is_refused_and_compensated(lie: Lie) {
    let w = World::new().await;
    let (saga_id, terms) = stage(&w, &format!("lie-{lie:?}")).await;
    let mut peer = ga_as_gb(&w);
    let (escrow, beef) = lying_reservation(&w, &mut peer, &saga_id, &terms, lie).await;

    let reason = refused(reservation_ready(&mut peer, &saga_id, beef.clone()).await);
    let prefix = format!("reservation {}: ", escrow.txid);
    assert!(reason.starts_with(&prefix), "{lie:?}: {reason}");
    match lie {
        Lie::Amount => assert!(
            reason.contains(&format!("{} sat", DELIVERY - 1_000))
                && reason.contains(&format!("{DELIVERY} sat")),
            "{reason}"
        ),
        Lie::HashLock | Lie::BuyerKey | Lie::SellerKey => {
            assert!(
                reason.starts_with(&format!("{prefix}output 0 ")),
                "{reason}"
            )
        }
    }
    // The same lie again is answered alike and recorded once.
    let again = refused(reservation_ready(&mut peer, &saga_id, beef).await);
    assert_eq!(again, reason);

    let events = w.events(&w.ga, &saga_id).await;
    assert_eq!(misbehaviours(&events), [reason.as_str()]);
    assert!(
        events.contains(&Event::CancelRequested {
            origin: CancelOrigin::CounterpartyMisbehaved
        }),
        "{:?}",
        names(&events)
    );
    compensated(&w, &saga_id, &terms).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_locking_less_than_the_amount_is_refused_and_compensated() {
    a_lying_reservation_is_refused_and_compensated(Lie::Amount).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_under_another_hash_lock_is_refused_and_compensated() {
    a_lying_reservation_is_refused_and_compensated(Lie::HashLock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_paying_another_beneficiary_key_is_refused_and_compensated() {
    a_lying_reservation_is_refused_and_compensated(Lie::BuyerKey).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_with_another_funder_key_is_refused_and_compensated() {
    a_lying_reservation_is_refused_and_compensated(Lie::SellerKey).await;
}

/// What a refusal of a lying reservation should say: which part of the
/// escrow output differs from the terms, with the values — not the wording
/// of a refund check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: legs::check_reservation_output reports a reservation whose escrow script \
            differs from the terms (another H, beneficiary key or funder key) as RefundRefused::\
            WrongPayee, 'output 0 does not pay the funder', and a wrong amount as 'pays N sat, \
            expected A..=A sat (amount less at most the allowed fee)': texts of the refund check \
            that name neither what differs nor, for the script, any value"]
async fn the_refusal_of_a_lying_reservation_names_what_differs() {
    let w = World::new().await;
    let (saga_id, terms) = stage(&w, "lie-wording").await;
    let mut peer = ga_as_gb(&w);
    let stranger = hex::encode(key("hostile test stranger").public_key().to_compressed());
    let lie_h = hex::encode(Lie::HashLock.told(&terms).hash_lock);
    // One saga hears every lie: the first is recorded, each is refused
    // with its own reason.
    for lie in [Lie::Amount, Lie::HashLock, Lie::BuyerKey, Lie::SellerKey] {
        let (_, beef) = lying_reservation(&w, &mut peer, &saga_id, &terms, lie).await;
        let reason = refused(reservation_ready(&mut peer, &saga_id, beef).await);
        assert!(!reason.contains("does not pay the funder"), "{reason}");
        assert!(!reason.contains("fee"), "{reason}");
        let named = match lie {
            Lie::Amount => {
                reason.contains(&format!("{} sat", DELIVERY - 1_000))
                    && reason.contains(&format!("{DELIVERY} sat"))
            }
            Lie::HashLock => reason.contains("hash lock") && reason.contains(&lie_h),
            Lie::BuyerKey => reason.contains("buyer") && reason.contains(&stranger),
            Lie::SellerKey => reason.contains("seller") && reason.contains(&stranger),
        };
        assert!(named, "{lie:?}: {reason}");
    }
    w.stop().await;
}

// ---------------------------------------------------------------------------
// Reservation BEEFs that are no reservation

/// `ReservationReady` with bytes that are no Atomic BEEF, a BEEF that fails
/// SPV on chain D, a reservation not mined yet and one for a saga GA does
/// not know each get their own answer, and change nothing; an early-locked
/// refund is not signed. Only a valid transaction that is not the
/// reservation whose refund GA signed is a lie: refused, recorded, and GA
/// compensates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_beefs_that_prove_nothing_are_refused_and_change_nothing() {
    let w = World::new().await;
    let (saga_id, terms) = stage(&w, "beefs").await;
    let mut peer = ga_as_gb(&w);
    let gb_key = &w.gb.wallet_keys[D];
    let before = w.events(&w.ga, &saga_id).await;

    // Not a BEEF at all.
    let e = reservation_ready(&mut peer, &saga_id, vec![0xde, 0xad, 0xbe, 0xef])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field beef: "), "{e:?}");

    // A BEEF, but not an Atomic one: it names no subject.
    let (input, faucet) = faucet_input(&w, D, gb_key, DELIVERY + 10_000).await;
    let mut plain = Beef::new(BeefVersion::V1);
    plain.merge(faucet.clone());
    let e = reservation_ready(&mut peer, &saga_id, plain.to_bytes())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        "field beef: not an Atomic BEEF (BRC-95, 01010101 + subject txid)"
    );

    // A mined transaction of chain P: its BUMP's root is no block of chain D.
    let (on_p, p_faucet) = faucet_input(&w, P, gb_key, 10_000).await;
    let e = reservation_ready(
        &mut peer,
        &saga_id,
        p_faucet.to_atomic(&on_p.outpoint.txid).unwrap().to_bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field beef: "), "{e:?}");
    assert!(
        e.message().ends_with(&format!(
            " is not confirmed for height {} (chain chain-d)",
            p_faucet.bumps()[0].block_height()
        )),
        "{e:?}"
    );

    // A reservation of the right shape whose input is signed by a key that
    // does not own it: its script fails.
    let stranger = key("hostile test stranger");
    let forged = reservation(&terms, &input, &stranger);
    let signed = sign_refund(&mut peer, &saga_id, &terms, Outpoint::new(forged.txid(), 0)).await;
    assert!(matches!(signed, Ok(Reply::Signature(_))), "{signed:?}");
    let e = reservation_ready(&mut peer, &saga_id, unmined(&faucet, &forged))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "field beef: input 0 of {}: script failed an OP_EQUALVERIFY operation (chain chain-d)",
            forged.txid()
        )
    );

    // The right reservation, not mined yet: not yet, and no lie.
    let honest = reservation(&terms, &input, gb_key);
    let escrow = Outpoint::new(honest.txid(), 0);
    let signed = sign_refund(&mut peer, &saga_id, &terms, escrow).await;
    assert!(matches!(signed, Ok(Reply::Signature(_))), "{signed:?}");
    let answer = reservation_ready(&mut peer, &saga_id, unmined(&faucet, &honest)).await;
    let Ok(Reply::NotYet(not_yet)) = answer else {
        panic!("expected not_yet, got {answer:?}");
    };
    assert_eq!(
        not_yet.reason,
        "the reservation has no BUMP (not yet mined)"
    );

    // A refund locked before T_D is not signed (DESIGN.md §3.1).
    let fee = legs::fee_for_size(legs::MAX_LEG_SPEND_BYTES, FEE_RATE);
    let mut early = legs::build_refund(&terms, Leg::Delivery, escrow, fee).unwrap();
    early.lock_time = terms.delivery.refund_height.0 - 1;
    let e = peer
        .sign_refund(with_saga(
            &saga_id,
            pb::SignRefundRequest {
                saga_id: saga_id.clone(),
                refund: early.to_bytes(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "peer misbehaved: refund refused: refused to sign: nLockTime {} is earlier than \
             the refund height {}",
            terms.delivery.refund_height.0 - 1,
            terms.delivery.refund_height.0
        )
    );

    // A saga GA does not know.
    let unknown = "0190b2a4-7c3e-7a01-8000-0123456789ab";
    let e = reservation_ready(&mut peer, unknown, unmined(&faucet, &honest))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert_eq!(e.message(), format!("no saga {unknown} at this gateway"));

    // None of it moved GA: it only signed the two refunds it was asked for.
    let events = w.events(&w.ga, &saga_id).await;
    let added: Vec<&Event> = events[before.len()..].iter().collect();
    assert_eq!(events[..before.len()], before[..]);
    assert_eq!(
        added,
        [
            &Event::CounterRefundSigned {
                escrow: Outpoint::new(forged.txid(), 0)
            },
            &Event::CounterRefundSigned { escrow },
        ]
    );
    until_state(&w, &w.ga, &saga_id, "reserving").await;

    // A valid, mined transaction of chain D that is not the reservation
    // whose refund GA signed: a lie.
    let unrelated = faucet.to_atomic(&input.outpoint.txid).unwrap().to_bytes();
    let reason = refused(reservation_ready(&mut peer, &saga_id, unrelated).await);
    assert_eq!(
        reason,
        format!(
            "reservation {} is not the one whose refund we signed ({})",
            input.outpoint.txid, escrow.txid
        )
    );
    assert_eq!(
        misbehaviours(&w.events(&w.ga, &saga_id).await),
        [reason.as_str()]
    );
    compensated(&w, &saga_id, &terms).await;
    w.stop().await;
}
