//! A hostile counterparty over the real transport (issue 6): the test
//! speaks to a gateway's `PeerService` *as its counterparty* — with the
//! counterparty's own gateway certificate, over mutual TLS and gRPC,
//! through the authorization layer — and builds its lies with the real leg
//! code on the chainsims' HTTP APIs. Every lie must be refused with a gRPC
//! status, or a `refused` answer where the saga records the misbehaviour
//! (an answer is status OK: the record and the answer are one durable
//! turn), saying what was wrong; and it must never corrupt the honest
//! gateway's saga: nothing is recorded but what the protocol says, nothing
//! is claimed or granted on the strength of a lie, and the honest party
//! ends with both legs executed or its own leg back.
//!
//! - Lying reservations (GB → GA): the wrong amount, hash lock, beneficiary
//!   or funder key; BEEFs that are no BEEF, not Atomic, of another chain,
//!   with a failing script, not mined, or of an unrelated transaction; an
//!   early-locked refund or a diverted cancel to sign.
//! - Tokens (GB → GA): forged, tampered, replayed, expired, misdirected
//!   (another saga, another reservation, another holder) in `GrantToken`
//!   and `Execute`; a consumed token presented with another claim.
//! - A hostile buyer (GA → GB): an `Execute` whose claim cannot be mined.
//! - Ignored tests pin bugs found on the way (see their `ignore` reasons).
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
use saga_core::saga::{CancelOrigin, Event, MessageKind};
use saga_core::terms::{Leg, Terms};
use saga_core::token::Token;
use saga_core::{Satoshis, UnixTime};
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
    // GA recorded GB's answer to its ReservationReady (GB answered before
    // it reserved): GA's log is still from here on.
    until(w, &w.ga, &saga_id, "GA's ReservationReady delivered", |e| {
        delivered(e, MessageKind::ReservationReady)
    })
    .await;
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

/// Broadcasts `tx`, whose single input spends `source`, to `chain`'s ARC
/// as EF (the harness's miner then mines a block); ARC's answer.
async fn broadcast(w: &World, chain: &str, tx: &Transaction, source: TxOut) -> BroadcastOutcome {
    let ports = w.chains.ports(&BTreeMap::new());
    let ef = EfTransaction::new(tx.clone(), vec![source]).unwrap();
    ports[chain].broadcaster.broadcast(&ef).await.unwrap()
}

/// Broadcasts `tx` (spending `input`) to `chain`'s ARC as EF, waits until
/// it is mined (the harness's miner mines after each broadcast) and returns
/// its Atomic BEEF with its BUMP — what an honest funder sends.
async fn mine(w: &World, chain: &str, tx: &Transaction, input: &FundingInput) -> Vec<u8> {
    let source = TxOut {
        satoshis: input.satoshis.0,
        locking_script: input.locking_script.clone(),
    };
    let outcome = broadcast(w, chain, tx, source).await;
    assert!(
        matches!(outcome, BroadcastOutcome::Accepted(_)),
        "{outcome:?}"
    );
    let ports = w.chains.ports(&BTreeMap::new());
    let arc = &ports[chain].broadcaster;
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
    // The harness's miner may have added a block meanwhile.
    assert!(
        body["tip"].as_u64().is_some_and(|t| t >= u64::from(height)),
        "{body}"
    );
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
        assert!(!reason.contains("allowed fee"), "{reason}");
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
/// refund and a cancel paying someone else are not signed. Only a valid transaction that is not the
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
    assert_eq!(
        e.message(),
        "field beef: malformed BEEF: unknown version or magic prefix at byte offset 0 \
         (BEEF version)"
    );

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
    let bump = &p_faucet.bumps()[0];
    assert_eq!(
        e.message(),
        format!(
            "field beef: Merkle root {} is not confirmed for height {} (chain chain-d)",
            bump.root(),
            bump.block_height()
        )
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

    // Nor is an immediate cancel of GB's leg that pays someone else.
    let mut diverted = legs::build_cancel(&terms, Leg::Delivery, escrow, fee).unwrap();
    diverted.outputs[0].locking_script = p2pkh_lock(&stranger.public_key().hash160());
    let e = peer
        .sign_cancel(with_saga(
            &saga_id,
            pb::SignCancelRequest {
                saga_id: saga_id.clone(),
                cancel: diverted.to_bytes(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        "peer misbehaved: cancel refused: refused to sign: output 0 does not pay the funder"
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

// ---------------------------------------------------------------------------
// Tokens

const GRANT_TOKEN: &str = "/escrow.v1.PeerService/GrantToken";

/// Waits until `node`'s events of the saga satisfy `ready`.
async fn until(
    w: &World,
    node: &Node,
    saga_id: &str,
    what: &str,
    ready: impl Fn(&[Event]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !ready(&w.events(node, saga_id).await) {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}:{}", w.report(saga_id).await);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn delivered(events: &[Event], kind: MessageKind) -> bool {
    events.contains(&Event::MessageDelivered { kind })
}

/// The token `node` granted (`TokenGranted`) in the saga.
async fn granted(w: &World, node: &Node, saga_id: &str) -> Token {
    w.events(node, saga_id)
        .await
        .into_iter()
        .find_map(|e| match e {
            Event::TokenGranted { token } => Some(token),
            _ => None,
        })
        .expect("a token was granted")
}

/// The claim `node` built (`ClaimBuilt`) in the saga.
async fn built_claim(w: &World, node: &Node, saga_id: &str) -> Transaction {
    w.events(node, saga_id)
        .await
        .into_iter()
        .find_map(|e| match e {
            Event::ClaimBuilt { tx } => Some(tx),
            _ => None,
        })
        .expect("a claim was built")
}

/// A token like `t` signed by `key` (its issuer key becomes `key`'s).
fn signed_by(t: &Token, key: &PrivateKey) -> Token {
    Token::issue(
        t.token_id,
        t.saga_id,
        t.reservation,
        &t.issuer,
        &t.holder,
        t.not_after,
        key,
    )
    .unwrap()
}

async fn grant_token(
    peer: &mut PeerServiceClient<Channel>,
    saga_id: &str,
    token: &Token,
) -> Result<Reply, tonic::Status> {
    peer.grant_token(with_saga(
        saga_id,
        pb::GrantTokenRequest {
            saga_id: saga_id.into(),
            token: token.encode(),
        },
    ))
    .await
    .map(|r| r.into_inner().reply.expect("a reply"))
}

async fn execute(
    peer: &mut PeerServiceClient<Channel>,
    saga_id: &str,
    token: &Token,
    claim: &Transaction,
) -> Result<Reply, tonic::Status> {
    peer.execute(with_saga(
        saga_id,
        pb::ExecuteRequest {
            saga_id: saga_id.into(),
            token: token.encode(),
            claim: claim.to_bytes(),
        },
    ))
    .await
    .map(|r| r.into_inner().reply.expect("a reply"))
}

/// The status of a refused call: its code and message.
fn status(reply: Result<Reply, tonic::Status>) -> (Code, String) {
    match reply {
        Err(e) => (e.code(), e.message().to_string()),
        Ok(r) => panic!("expected an error status, got {r:?}"),
    }
}

/// Two swaps are held where both gateways have granted their tokens: GA's
/// server refuses GB's `GrantToken` until GB's retry budget is spent
/// (GB then needs an operator). Meanwhile GB presents forged, tampered,
/// replayed and misdirected tokens to GA's `Execute` and `GrantToken`;
/// each is refused with the code and words of its fault, and GA's logs do
/// not move. Then GB's operator retries: its genuine tokens go through, both
/// swaps complete, and GA's token, once consumed by GB's `Execute`, cannot
/// be used for another claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_or_misdirected_tokens_are_refused_and_the_swaps_still_complete() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    for _ in 0..2 {
        w.fund(&mut admin_a, &w.ga, P, 100_000).await;
        w.fund(&mut admin_b, &w.gb, D, 50_000).await;
    }
    w.ga.faults.refuse(GRANT_TOKEN);
    let mut sagas = Vec::new();
    for key in ["tokens-1", "tokens-2"] {
        let started = w.start(&mut admin_a, key).await;
        sagas.push((
            started.status.unwrap().saga_id,
            Terms::decode(&started.terms).unwrap(),
        ));
    }
    for (saga_id, _) in &sagas {
        w.until_event(&w.gb, saga_id, "token_received").await;
        until(&w, &w.ga, saga_id, "GA's grant delivered", |e| {
            delivered(e, MessageKind::GrantToken)
        })
        .await;
        // GB's grant was refused until GB gave up and asked its operator.
        w.until_event(&w.gb, saga_id, "attention_raised").await;
    }
    assert_eq!(w.ga.faults.refused_sagas(GRANT_TOKEN), 2);
    let (s1, terms) = &sagas[0];
    let s2 = &sagas[1].0;
    let before = [w.events(&w.ga, s1).await, w.events(&w.ga, s2).await];
    let mut peer = ga_as_gb(&w);
    let stranger = key("hostile test stranger");
    let (saga_key_b, _) = keys_of("gb");

    // -- Execute at GA (GA's token for GA's reservation of P).
    let ga_token = granted(&w, &w.ga, s1).await;
    let ga_token_2 = granted(&w, &w.ga, s2).await;
    let gb_token = granted(&w, &w.gb, s1).await;
    let gb_token_2 = granted(&w, &w.gb, s2).await;
    // GB does not know s: its best claim pushes another 32 bytes.
    let fake_s = [7u8; 32];
    let mut fake_terms = terms.clone();
    fake_terms.hash_lock = sha256(&fake_s);
    let fee = legs::fee_for_size(legs::MAX_LEG_SPEND_BYTES, FEE_RATE);
    let ga_escrow = ga_token.reservation;
    let no_claim = legs::build_claim(
        &fake_terms,
        Leg::Payment,
        ga_escrow,
        fee,
        p2pkh_lock(&w.gb.public.escrow_keys[P].hash160()),
        &fake_s,
        &w.gb.wallet_keys[P],
    )
    .unwrap();
    let mut tampered = ga_token.clone();
    tampered.not_after = UnixTime(ga_token.not_after.0 + 3_600);
    let wrong_key = "token: token issuer key is not the issuer's saga key in the terms";
    let cases: Vec<(&str, &str, Token, Code, String)> = vec![
        (
            "signed by a stranger",
            s1,
            signed_by(&ga_token, &stranger),
            Code::InvalidArgument,
            wrong_key.into(),
        ),
        (
            "GB's own token, replayed back",
            s1,
            gb_token.clone(),
            Code::InvalidArgument,
            wrong_key.into(),
        ),
        (
            "a longer life than GA signed",
            s1,
            tampered,
            Code::InvalidArgument,
            "token: token signature does not verify".into(),
        ),
        (
            "GA's token of the other saga",
            s1,
            ga_token_2.clone(),
            Code::InvalidArgument,
            "token: token grants another saga or reservation".into(),
        ),
        (
            "GA's genuine token, a claim without s",
            s1,
            ga_token.clone(),
            Code::InvalidArgument,
            format!(
                "peer misbehaved: claim {} does not spend {ga_escrow} with the preimage of H",
                no_claim.txid()
            ),
        ),
    ];
    for (what, saga_id, token, code, message) in cases {
        let got = status(execute(&mut peer, saga_id, &token, &no_claim).await);
        assert_eq!(got, (code, message), "Execute with {what}");
    }

    // -- GrantToken at GA (GB's token for GB's reservation of D), now that
    // GA's server takes it again and GB's gateway no longer sends it.
    w.ga.faults.clear();
    let mut expired = gb_token.clone();
    expired.not_after = UnixTime(NOW - 10);
    let mut other_holder = gb_token.clone();
    other_holder.holder = GB.into();
    let mut other_outpoint = gb_token.clone();
    other_outpoint.reservation = gb_token_2.reservation;
    let mut tampered = gb_token.clone();
    tampered.not_after = UnixTime(gb_token.not_after.0 + 3_600);
    let cases: Vec<(&str, Token, Code, String)> = vec![
        (
            "signed by a stranger",
            signed_by(&gb_token, &stranger),
            Code::InvalidArgument,
            wrong_key.into(),
        ),
        (
            "a longer life than GB signed",
            tampered,
            Code::InvalidArgument,
            "token: token signature does not verify".into(),
        ),
        (
            "GA's own token, replayed to it",
            ga_token.clone(),
            Code::InvalidArgument,
            format!("peer misbehaved: token issued by {GA}, sent by {GB}"),
        ),
        (
            "GB's genuine token of the other saga",
            gb_token_2.clone(),
            Code::InvalidArgument,
            "token: token grants another saga or reservation".into(),
        ),
        (
            "GB's signature, another reservation",
            signed_by(&other_outpoint, &saga_key_b),
            Code::InvalidArgument,
            "token: token grants another saga or reservation".into(),
        ),
        (
            "GB's signature, expired",
            signed_by(&expired, &saga_key_b),
            Code::FailedPrecondition,
            format!(
                "token: token expired at {} (now {NOW}, skew tolerance 2 s)",
                NOW - 10
            ),
        ),
    ];
    for (what, token, code, message) in cases {
        let got = status(grant_token(&mut peer, s1, &token).await);
        assert_eq!(got, (code, message), "GrantToken with {what}");
    }
    // A token GB made out to itself is a malformed grant.
    assert_eq!(
        status(grant_token(&mut peer, s1, &signed_by(&other_holder, &saga_key_b)).await),
        (
            Code::InvalidArgument,
            format!("peer misbehaved: the granted token names holder {GB}, not the receiver {GA}")
        )
    );

    // -- A saga GA does not know.
    let unknown = "0190b2a4-7c3e-7a01-8000-0123456789ab";
    assert_eq!(
        status(grant_token(&mut peer, unknown, &gb_token).await),
        (Code::NotFound, format!("no saga {unknown}"))
    );
    assert_eq!(
        status(execute(&mut peer, unknown, &ga_token, &no_claim).await),
        (Code::NotFound, format!("no saga {unknown}"))
    );

    // Nothing of it reached GA's logs.
    assert_eq!(w.events(&w.ga, s1).await, before[0]);
    assert_eq!(w.events(&w.ga, s2).await, before[1]);

    // GB's operator retries: its genuine grants go through and both swaps
    // complete.
    for (saga_id, _) in &sagas {
        admin_b
            .resolve_saga(pb::ResolveSagaRequest {
                saga_id: saga_id.clone(),
                resolution: Some(pb::resolve_saga_request::Resolution::Retry(
                    pb::resolve_saga_request::Retry {},
                )),
            })
            .await
            .unwrap();
    }
    for (saga_id, _) in &sagas {
        w.until_both(saga_id, pb::SagaState::Completed).await;
    }
    for ((saga_id, _), genuine) in sagas.iter().zip([&gb_token, &gb_token_2]) {
        let received: Vec<Token> = w
            .events(&w.ga, saga_id)
            .await
            .into_iter()
            .filter_map(|e| match e {
                Event::TokenReceived { token } => Some(token),
                _ => None,
            })
            .collect();
        assert_eq!(received, std::slice::from_ref(genuine));
    }

    // GB's Execute consumed GA's token with GB's claim: the same call again
    // is answered alike, the token with another claim is a reuse.
    until(&w, &w.gb, s1, "GB's Execute delivered", |e| {
        delivered(e, MessageKind::Execute)
    })
    .await;
    let claim = built_claim(&w, &w.gb, s1).await;
    let again = execute(&mut peer, s1, &ga_token, &claim).await;
    assert!(matches!(again, Ok(Reply::Ack(_))), "{again:?}");
    let mut other = claim.clone();
    other.outputs[0].satoshis -= 1;
    assert_eq!(
        status(execute(&mut peer, s1, &ga_token, &other).await),
        (
            Code::AlreadyExists,
            format!("token {} was already used", ga_token.token_id)
        )
    );
    let seen: Vec<Event> = w
        .events(&w.ga, s1)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::CounterClaimSeen { .. }))
        .collect();
    assert_eq!(
        seen.last(),
        Some(&Event::CounterClaimSeen {
            txid: claim.txid(),
            token_id: Some(ga_token.token_id)
        }),
        "{seen:?}"
    );
    w.stop().await;
}

/// A token the seller made out to someone else than the buyer is a
/// malformed grant, not a caller without permission: the answer should say
/// whom the token names and that it is not us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_token_naming_another_holder_is_refused_as_a_malformed_grant() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    let saga_id = w
        .start(&mut admin_a, "holder")
        .await
        .status
        .unwrap()
        .saga_id;
    w.until_event(&w.gb, &saga_id, "token_granted").await;
    w.until_event(&w.ga, &saga_id, "counter_reservation_verified")
        .await;
    let mut to_itself = granted(&w, &w.gb, &saga_id).await;
    to_itself.holder = GB.into();
    let (code, message) = status(
        grant_token(
            &mut ga_as_gb(&w),
            &saga_id,
            &signed_by(&to_itself, &keys_of("gb").0),
        )
        .await,
    );
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains(GB) && message.contains(GA), "{message}");
    assert!(!message.contains(&format!("caller {GA}")), "{message}");
    w.stop().await;
}

// ---------------------------------------------------------------------------
// A cancel against a claim that may be out

/// GA built its claim of D and broadcast it; ARC answered "seen" and then
/// lost it (chainsim's `drop` fault) — as GA's own broadcast whose answer
/// was lost. `s` is public now: whoever watched the network has it. GB,
/// hostile, asks GA to cancel; then claims P with `s` itself. GA's ARC
/// comes back while C1 still allows its claim: GA must broadcast its
/// claim again and end `completed`, as it does without the cancel
/// (tests/rpc.rs), not give it up and lose P for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_whose_claim_may_be_out_does_not_give_it_up_for_a_cancel_request() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    w.ga.arc_down[D].store(true, Ordering::SeqCst);
    let started = w.start(&mut admin_a, "cancel-vs-claim").await;
    let terms = Terms::decode(&started.terms).unwrap();
    let saga_id = started.status.unwrap().saga_id;
    w.until_event(&w.ga, &saga_id, "claim_built").await;
    let claim = built_claim(&w, &w.ga, &saga_id).await;
    let ga_escrow = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .find_map(|e| match e {
            Event::ReservationBuilt { tx, .. } => Some(Outpoint::new(tx.txid(), 0)),
            _ => None,
        })
        .unwrap();

    // GA's claim reaches the network, which answers "seen" and drops it.
    let gb_escrow = claim.inputs[0].prev_out;
    let faults: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/sim/faults", w.chains.sims[D].url()))
        .json(&serde_json::json!({ "kind": "drop", "count": 1 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults, serde_json::json!({}));
    let escrow_d = TxOut {
        satoshis: DELIVERY,
        locking_script: terms.escrow_script(Leg::Delivery),
    };
    let seen = broadcast(&w, D, &claim, escrow_d).await;
    assert!(matches!(seen, BroadcastOutcome::Accepted(_)), "{seen:?}");
    let s = legs::extract_preimage(&claim, &gb_escrow, &terms.hash_lock).unwrap();

    // GB asks to cancel.
    let answer = ga_as_gb(&w)
        .cancel(with_saga(
            &saga_id,
            pb::CancelRequest {
                saga_id: saga_id.clone(),
                reason: "let us cancel".into(),
            },
        ))
        .await;
    let events = w.events(&w.ga, &saga_id).await;
    assert!(
        !names(&events).contains(&"claim_abandoned"),
        "GA gave up a claim that may be out on a cancel request (answer {answer:?}): {:?}",
        names(&events)
    );

    // GB claims P with the `s` it saw.
    let fee = legs::fee_for_size(legs::MAX_LEG_SPEND_BYTES, FEE_RATE);
    let take_p = legs::build_claim(
        &terms,
        Leg::Payment,
        ga_escrow,
        fee,
        p2pkh_lock(&w.gb.public.escrow_keys[P].hash160()),
        &s,
        &w.gb.wallet_keys[P],
    )
    .unwrap();
    let escrow_p = TxOut {
        satoshis: PAYMENT,
        locking_script: terms.escrow_script(Leg::Payment),
    };
    let taken = broadcast(&w, P, &take_p, escrow_p).await;
    assert!(matches!(taken, BroadcastOutcome::Accepted(_)), "{taken:?}");

    // GA's ARC is back while C1 allows its claim (D's tip below T_D − m_D).
    assert!(w.chains.sims[D].tip() + 3 < terms.delivery.refund_height.0);
    w.ga.arc_down[D].store(false, Ordering::SeqCst);
    until_state(&w, &w.ga, &saga_id, "completed").await;
    w.stop().await;
}

// ---------------------------------------------------------------------------
// A hostile buyer

/// The other direction: GA's claim of D is built but GA's ARC of chain D is
/// down, and the test, as GA, sends GB an `Execute` whose claim reveals `s`
/// but cannot be mined (one satoshi moved after signing). GB refuses it
/// and records the misbehaviour, keeps `s` and claims P; the token is not
/// consumed, so the genuine claim is taken with it afterwards, and once
/// that claim is on chain GB's saga completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_whose_claim_cannot_be_mined_is_refused_but_the_seller_keeps_s_and_is_paid() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    w.ga.arc_down[D].store(true, Ordering::SeqCst);
    let started = w.start(&mut admin_a, "bad-execute").await;
    let terms = Terms::decode(&started.terms).unwrap();
    let saga_id = started.status.unwrap().saga_id;
    w.until_event(&w.ga, &saga_id, "claim_built").await;
    let claim = built_claim(&w, &w.ga, &saga_id).await;
    let token = granted(&w, &w.gb, &saga_id).await;
    let ga = w.pki.identity("org-a.example/gateway-org-a");
    let mut gb_as_ga = PeerServiceClient::new(channel(&ga, GB, w.gb.addr));

    let mut unminable = claim.clone();
    unminable.outputs[0].satoshis -= 1;
    let reason = refused(execute(&mut gb_as_ga, &saga_id, &token, &unminable).await);
    assert!(
        reason.starts_with(&format!(
            "claim {} does not verify: input 0: ",
            unminable.txid()
        )),
        "{reason}"
    );
    let events = w.events(&w.gb, &saga_id).await;
    assert_eq!(misbehaviours(&events), [reason.as_str()]);
    let learned: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::PreimageLearned {
                preimage,
                claim_txid,
            } => Some((sha256(preimage), *claim_txid)),
            _ => None,
        })
        .collect();
    assert_eq!(learned, [(terms.hash_lock, unminable.txid())]);
    assert!(
        !names(&events).contains(&"counter_claim_seen"),
        "{:?}",
        names(&events)
    );

    // GB claims P with s.
    w.until_event(&w.gb, &saga_id, "claim_confirmed").await;

    // The token was not used up by the refused claim: the genuine one is
    // taken with it, once.
    let ack = execute(&mut gb_as_ga, &saga_id, &token, &claim).await;
    assert!(matches!(ack, Ok(Reply::Ack(_))), "{ack:?}");
    let seen: Vec<Event> = w
        .events(&w.gb, &saga_id)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::CounterClaimSeen { .. }))
        .collect();
    assert_eq!(
        seen,
        [Event::CounterClaimSeen {
            txid: claim.txid(),
            token_id: Some(token.token_id)
        }]
    );
    // Once the genuine claim is on chain, GB's swap is complete.
    let escrow_d = TxOut {
        satoshis: DELIVERY,
        locking_script: terms.escrow_script(Leg::Delivery),
    };
    let out = broadcast(&w, D, &claim, escrow_d).await;
    assert!(matches!(out, BroadcastOutcome::Accepted(_)), "{out:?}");
    until_state(&w, &w.gb, &saga_id, "completed").await;
    w.stop().await;
}
