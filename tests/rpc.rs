//! The gRPC services over real mutual TLS on loopback (issue 6): two
//! gateways — GA (org-a, the buyer) and GB (org-b, the seller) — each a
//! real driver over a sled store in a temp dir, serving PeerService,
//! AdminService, EventService, health and reflection behind the
//! authorization layer, and calling each other through `PeerClient`; two
//! chainsims (`chain-p`, `chain-d`) reached through the real HTTP clients.
//! Certificates come from the library's dev issuer (`certs init`); every
//! client — operators, observers, an intruding gateway — connects with its
//! own certificate through `MtlsConnector`.
//!
//! Only chain heights decide: the UTC clock never moves, and a test miner
//! mines one block on a chain after each broadcast to it (as
//! tests/driver.rs does), so no deadline in blocks is used up while the
//! machine is slow. Every wait is bounded and fails with both gateways'
//! view.

#[path = "rpc/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bsv_format::hash::sha256;
use bsv_format::Txid;
use escrowd::config::GatewayConfig;
use escrowd::gateway::reconcile::Reconciled;
use escrowd::gateway::serve::{RunningGateway, StartOptions};
use escrowd::proto::escrow_v1 as pb;
use escrowd::proto::escrow_v1::admin_service_client::AdminServiceClient;
use escrowd::proto::escrow_v1::event_service_client::EventServiceClient;
use escrowd::proto::escrow_v1::peer_service_client::PeerServiceClient;
use escrowd::rpc::notary::{approval_digest, NotaryPolicy};
use saga_core::saga::Event;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use support::*;

// ---------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_started_through_the_admin_api_completes_on_both_gateways() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;

    // An observer follows GA's feed from the start, drops its stream after
    // three events and resumes from the cursor after the last it saw.
    let observer = w.pki.identity("observer.example/observer-observer");
    let mut events = EventServiceClient::new(channel(&observer, GA, w.ga.addr));
    let mut first = events
        .subscribe(pb::SubscribeRequest { from_cursor: 0 })
        .await
        .unwrap()
        .into_inner();

    let started = w.start(&mut admin_a, "swap-1").await;
    assert!(started.created);
    let status = started.status.unwrap();
    let saga_id = status.saga_id.clone();
    assert_eq!(status.role, pb::SagaRole::Buyer as i32);
    let terms = saga_core::terms::Terms::decode(&started.terms).unwrap();
    assert_eq!(terms.saga_id.to_string(), saga_id);
    assert_eq!(terms.buyer.spiffe_id, GA);
    assert_eq!(terms.seller.spiffe_id, GB);
    assert_eq!(terms.payment.amount.0, PAYMENT);
    assert_eq!(terms.delivery.amount.0, DELIVERY);
    assert_eq!(terms.seller.saga_key, w.gb.public.saga_key);
    assert_eq!(terms.buyer.payment_escrow_key, w.ga.public.escrow_keys[P]);
    // The preimage was stored before the start turn, and H is its hash.
    let s =
        w.ga.log()
            .secret(&terms.saga_id, "preimage")
            .await
            .unwrap()
            .unwrap();
    assert_eq!(sha256(s.as_bytes()), terms.hash_lock);

    // The same idempotency key answers with the same saga, starting nothing.
    let again = w.start(&mut admin_a, "swap-1").await;
    assert!(!again.created);
    assert_eq!(again.status.unwrap().saga_id, saga_id);
    assert_eq!(again.terms, started.terms);
    // The same key with other terms is another request: refused, naming
    // the field, and nothing is started.
    let e = admin_a
        .start_swap(pb::StartSwapRequest {
            idempotency_key: "swap-1".into(),
            counterparty: GB.into(),
            payment_chain: P.into(),
            payment_sats: PAYMENT + 1,
            delivery_chain: D.into(),
            delivery_sats: DELIVERY,
            notary: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "idempotency key \"swap-1\" already names saga {saga_id}, whose payment_sats is {PAYMENT}, not {}",
            PAYMENT + 1
        )
    );

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let item = tokio::time::timeout(PATIENCE, first.message())
            .await
            .expect("the feed delivers")
            .unwrap()
            .expect("the stream is open");
        seen.push(item);
    }
    drop(first);

    w.until_both(&saga_id, pb::SagaState::Completed).await;

    // Both gateways' GetSaga agree on the terms and list the events.
    for admin in [&mut admin_a, &mut admin_b] {
        let got = admin
            .get_saga(pb::GetSagaRequest {
                saga_id: saga_id.clone(),
                include_events: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.terms, started.terms);
        let view = got.terms_view.unwrap();
        assert_eq!(view.terms_hash, terms.hash().to_string());
        assert_eq!(got.head as usize, got.events.len());
        assert_eq!(got.events[0].name, "terms_proposed");
        assert!(got.events.iter().any(|e| e.name == "claim_confirmed"));
        assert!(got.status.unwrap().terminal);
    }
    let listed = admin_b
        .list_sagas(pb::ListSagasRequest {
            page_size: 10,
            page_token: String::new(),
            state: pb::SagaState::Completed as i32,
            terminal: pb::TerminalFilter::Terminal as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sagas.len(), 1);
    assert_eq!(listed.sagas[0].saga_id, saga_id);
    assert_eq!(listed.sagas[0].role, pb::SagaRole::Seller as i32);
    assert_eq!(listed.next_page_token, "");

    // The seller's wallet received the payment on P; the buyer's the delivery on D.
    let received = |r: &pb::WalletBalancesResponse, chain: &str| {
        r.balances
            .iter()
            .find(|b| b.chain_id == chain && b.basket == pb::Basket::Received as i32)
            .map(|b| b.available_sats)
    };
    let balances_b = admin_b
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap()
        .into_inner();
    let balances_a = admin_a
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        received(&balances_b, P).is_some_and(|s| s > 0 && s < PAYMENT),
        "{balances_b:?}"
    );
    assert!(
        received(&balances_a, D).is_some_and(|s| s > 0 && s < DELIVERY),
        "{balances_a:?}"
    );
    // The seller has no funding on P: it withdraws from what it received.
    let payee = key("rpc test payee")
        .public_key()
        .address(bsv_format::keys::Network::Testnet);
    let withdrawn = admin_b
        .withdraw(pb::WithdrawRequest {
            chain_id: P.into(),
            address: payee,
            amount_sats: 10_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(withdrawn.accepted, "{withdrawn:?}");
    let after = admin_b
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap()
        .into_inner();
    let funding_p = after
        .balances
        .iter()
        .find(|b| b.chain_id == P && b.basket == pb::Basket::Funding as i32)
        .map_or(0, |b| b.available_sats);
    assert_eq!(
        received(&after, P).unwrap_or(0) + funding_p,
        received(&balances_b, P).unwrap() - 10_000 - withdrawn.fee_sats,
        "{after:?}"
    );

    // The observer resumes after the last cursor it saw: every later event
    // arrives, in order, without a gap, up to the feed's end.
    let feed = w.ga.log().feed(1, 10_000).await.unwrap();
    let last = seen.last().unwrap().cursor;
    let mut resumed = events
        .subscribe(pb::SubscribeRequest {
            from_cursor: last + 1,
        })
        .await
        .unwrap()
        .into_inner();
    while seen.last().unwrap().cursor < feed.last().unwrap().cursor {
        let item = tokio::time::timeout(PATIENCE, resumed.message())
            .await
            .expect("the resumed feed delivers")
            .unwrap()
            .expect("the stream is open");
        seen.push(item);
    }
    let cursors: Vec<u64> = seen.iter().map(|i| i.cursor).collect();
    let expected: Vec<u64> = feed.iter().map(|e| e.cursor).collect();
    assert_eq!(cursors, expected);
    assert_eq!(expected, (1..=expected.len() as u64).collect::<Vec<_>>());
    for (item, entry) in seen.iter().zip(&feed) {
        assert_eq!(item.saga_id, entry.saga_id.to_string());
        assert_eq!(item.seq, entry.seq);
        assert_eq!(item.name, entry.event.name());
        assert!(item.event.is_some());
    }
    w.stop().await;
}

/// The buyer's ARC for chain P is down: its reservation's broadcast fails
/// until the retry budget is spent and the saga needs attention. When ARC
/// is back, nothing sends the reservation behind the operator's back — not
/// the broadcast (progress stops in attention), and not the confirmation
/// watch (it resends only what was once accepted). The operator decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_never_accepted_is_not_sent_by_the_watch_once_attention_is_raised() {
    let w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    w.ga.arc_down[P].store(true, Ordering::SeqCst);
    let saga_id = w
        .start(&mut admin_a, "attention-1")
        .await
        .status
        .unwrap()
        .saga_id;
    w.until_event(&w.ga, &saga_id, "attention_raised").await;
    w.ga.arc_down[P].store(false, Ordering::SeqCst);
    // The watch polls every 50 ms: give it twenty rounds to misbehave.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<&str> = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .map(|e| e.name())
        .collect();
    assert!(!names.contains(&"reservation_broadcast"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| **n == "effect_failed").count(),
        3,
        "{names:?}"
    );
    assert_eq!(w.chains.broadcasts[P].load(Ordering::SeqCst), 0);
    assert_eq!(w.chains.sims[P].mempool_len().unwrap(), 0);
    w.stop().await;
}

/// The seller's gateway stops after granting its token, before the buyer's
/// claim reveals `s` (the buyer's ARC for chain D is down until then, and
/// the seller's server refuses `Execute` throughout, so `s` can reach the
/// seller only through chain D). The buyer claims while the seller is
/// down; restarted over its store, the seller resumes the saga, learns `s`
/// from the buyer's claim and claims the payment before `T_P`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seller_restarted_mid_execution_learns_s_from_the_chain_and_claims() {
    let mut w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    w.ga.arc_down[D].store(true, Ordering::SeqCst);
    w.gb.faults.refuse("/escrow.v1.PeerService/Execute");

    let started = w.start(&mut admin_a, "restart-1").await;
    let terms = saga_core::terms::Terms::decode(&started.terms).unwrap();
    let saga_id = started.status.unwrap().saga_id;
    w.until_event(&w.ga, &saga_id, "token_received").await;
    w.until_event(&w.ga, &saga_id, "claim_built").await;
    let before: Vec<&str> = w
        .events(&w.gb, &saga_id)
        .await
        .iter()
        .map(|e| e.name())
        .collect();
    assert!(before.contains(&"token_granted"), "{before:?}");
    assert!(!before.contains(&"preimage_learned"), "{before:?}");
    w.gb.stop_gateway().await;

    // The buyer's claim goes out and confirms while the seller is down.
    w.ga.arc_down[D].store(false, Ordering::SeqCst);
    w.until_event(&w.ga, &saga_id, "claim_confirmed").await;
    let buyer_claim = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .find_map(|e| match e {
            Event::ClaimBroadcast { txid } => Some(*txid),
            _ => None,
        })
        .expect("the buyer's claim was broadcast");

    assert_eq!(w.gb.restart(&w.chains).await, 1, "one saga resumed");
    // After its restart the seller asked the buyer for its view.
    let reconciled = w.gb.running.as_mut().unwrap().reconciliation().await;
    assert_eq!(reconciled.len(), 1, "{reconciled:?}");
    assert_eq!(reconciled[0].0.to_string(), saga_id);
    assert!(
        matches!(&reconciled[0].1, Reconciled::Known(state) if state.starts_with("SAGA_STATE_")),
        "{reconciled:?}"
    );
    w.until_both(&saga_id, pb::SagaState::Completed).await;
    let seller = w.events(&w.gb, &saga_id).await;
    let learned: Vec<(&[u8; 32], &Txid)> = seller
        .iter()
        .filter_map(|e| match e {
            Event::PreimageLearned {
                preimage,
                claim_txid,
            } => Some((preimage, claim_txid)),
            _ => None,
        })
        .collect();
    assert_eq!(learned.len(), 1, "{seller:?}");
    assert_eq!(learned[0].1, &buyer_claim);
    assert_eq!(sha256(learned[0].0), terms.hash_lock);
    let claimed_at = seller
        .iter()
        .find_map(|e| match e {
            Event::ClaimConfirmed { block_height } => Some(*block_height),
            _ => None,
        })
        .expect("the seller's claim confirmed");
    assert!(
        claimed_at < terms.payment.refund_height,
        "claimed at {claimed_at:?}, T_P {:?}",
        terms.payment.refund_height
    );
    w.stop().await;
}

/// Reconciliation after a restart finds a counterparty that lost its
/// store: the seller agreed (and never reserved: its ARC for chain D is
/// down), then comes back with an empty store. The buyer, restarted, asks
/// it for the saga, hears NOT_FOUND, stops progress for an operator
/// (`attention`) and is refunded at `T_P` all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buyer_restarted_against_a_seller_that_lost_its_store_needs_attention_and_refunds() {
    let mut w = World::new().await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    w.gb.arc_down[D].store(true, Ordering::SeqCst);
    let started = w.start(&mut admin_a, "lost-store-1").await;
    let terms = saga_core::terms::Terms::decode(&started.terms).unwrap();
    let saga_id = started.status.unwrap().saga_id;
    w.until_event(&w.ga, &saga_id, "reservation_confirmed")
        .await;
    w.until_event(&w.gb, &saga_id, "terms_agreed").await;

    w.ga.stop_gateway().await;
    w.gb.stop_gateway().await;
    std::fs::remove_dir_all(&w.gb.config.store).unwrap();
    assert_eq!(w.gb.restart(&w.chains).await, 0, "an empty store");
    assert_eq!(w.ga.restart(&w.chains).await, 1);
    let reconciled = w.ga.running.as_mut().unwrap().reconciliation().await;
    assert_eq!(reconciled.len(), 1, "{reconciled:?}");
    assert_eq!(reconciled[0].1, Reconciled::Unknown);
    let attention = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .find_map(|e| match e {
            Event::AttentionRaised { reason } => Some(reason.clone()),
            _ => None,
        })
        .expect("attention raised");
    assert!(
        attention.starts_with(&format!(
            "the counterparty does not know this saga although it agreed to its terms ({GB} answered NOT_FOUND)"
        )),
        "{attention}"
    );

    // Chain P reaches T_P: the buyer's refund goes out and confirms.
    let t_p = terms.payment.refund_height.0;
    let tip = w.chains.sims[P].tip();
    reqwest::Client::new()
        .post(format!("{}/sim/mine", w.chains.sims[P].url()))
        .json(&serde_json::json!({ "blocks": t_p - tip + 1 }))
        .send()
        .await
        .unwrap();
    w.until_event(&w.ga, &saga_id, "refund_confirmed").await;
    assert_eq!(
        w.state(&w.ga, &saga_id).await,
        format!("refunded (attention {:?})", Some(attention))
    );
    let names: Vec<&str> = w
        .events(&w.ga, &saga_id)
        .await
        .iter()
        .map(|e| e.name())
        .collect();
    assert!(!names.contains(&"claim_built"), "{names:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_are_not_the_party_a_rule_names_are_permission_denied() {
    let w = World::new().await;
    let mut admin_a = w.admin_a();
    // No funds: the saga stays in reservation, known to both gateways.
    let saga_id = w
        .start(&mut admin_a, "swap-denied")
        .await
        .status
        .unwrap()
        .saga_id;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while w.state(&w.gb, &saga_id).await == "none" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "GB never got the proposal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refund = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    // A gateway of org-a that is not the saga's buyer.
    let intruder = w.pki.issued(
        "org-a.example",
        "spiffe://org-a.example/gateway/intruder",
        "intruder",
    );
    let mut peer = PeerServiceClient::new(channel(&intruder, GB, w.gb.addr));
    let e = peer
        .sign_refund(with_saga(
            &saga_id,
            pb::SignRefundRequest {
                saga_id: saga_id.clone(),
                refund: refund.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "permission denied by rule peer-rpc: caller spiffe://org-a.example/gateway/intruder \
             is not a party to saga {saga_id}"
        )
    );

    // An observer calling a peer RPC.
    let observer = w.pki.identity("observer.example/observer-observer");
    let e = PeerServiceClient::new(channel(&observer, GB, w.gb.addr))
        .get_saga_status(with_saga(
            &saga_id,
            pb::GetSagaStatusRequest {
                saga_id: saga_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("peer RPCs are for a gateway"), "{e:?}");

    // GB's operator calling GA's admin API.
    let op_b = w.pki.identity("org-b.example/operator-admin");
    let e = AdminServiceClient::new(channel(&op_b, GA, w.ga.addr))
        .wallet_balances(pb::WalletBalancesRequest {})
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message()
            .contains("admin RPCs are for an operator of our own trust domain"),
        "{e:?}"
    );

    // The buyer itself is a party: it gets its answer (GB's status).
    let ga_identity = w.pki.identity("org-a.example/gateway-org-a");
    let status = PeerServiceClient::new(channel(&ga_identity, GB, w.gb.addr))
        .get_saga_status(with_saga(
            &saga_id,
            pb::GetSagaStatusRequest {
                saga_id: saga_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.saga_id, saga_id);
    assert_eq!(status.role, pb::SagaRole::Seller as i32);
    w.stop().await;
}

/// A proposal from the configured buyer gateway whose terms carry keys its
/// configuration does not pin (a saga key or an escrow key of someone else:
/// whoever holds GA's certificate could otherwise have GB lock funds to
/// keys nobody agreed to trust) is refused, naming the key, and stores
/// nothing. Signed correctly by the key it claims, so only the pinning
/// catches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_with_keys_the_seller_does_not_pin_is_refused_and_stores_nothing() {
    let w = World::new().await;
    let mut admin_a = w.admin_a();
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    let started = w.start(&mut admin_a, "pinned-1").await;
    let genuine = saga_core::terms::Terms::decode(&started.terms).unwrap();
    let stranger = key("rpc test stranger");
    let hex = |k: &bsv_format::keys::PublicKey| hex::encode(k.to_compressed());
    let ga_identity = w.pki.identity("org-a.example/gateway-org-a");
    let mut peer = PeerServiceClient::new(channel(&ga_identity, GB, w.gb.addr));
    type Change<'a> = Box<dyn Fn(&mut saga_core::terms::Terms) + 'a>;
    let cases: [(&str, Change, String); 2] = [
        (
            "escrow key",
            Box::new(|t| t.buyer.payment_escrow_key = stranger.public_key()),
            format!(
                "field terms: the buyer's escrow key {} on {P} is not the one configured for {GA} ({})",
                hex(&stranger.public_key()),
                hex(&w.ga.public.escrow_keys[P])
            ),
        ),
        (
            "saga key",
            Box::new(|t| t.buyer.saga_key = stranger.public_key()),
            format!(
                "field terms: the buyer's saga key {} is not the one configured for {GA} ({})",
                hex(&stranger.public_key()),
                hex(&w.ga.public.saga_key)
            ),
        ),
    ];
    for (i, (what, change, message)) in cases.into_iter().enumerate() {
        let mut terms = genuine.clone();
        change(&mut terms);
        terms.saga_id = format!("0190b2a4-7c3e-7a01-8000-00000000000{i}")
            .parse()
            .unwrap();
        let signer = if what == "saga key" {
            stranger
        } else {
            keys_of("ga").0
        };
        let signature = terms.sign(saga_core::terms::Role::Buyer, &signer).unwrap();
        let id = terms.saga_id.to_string();
        let e = peer
            .propose(with_saga(
                &id,
                pb::ProposeRequest {
                    saga_id: id.clone(),
                    terms: terms.encode(),
                    buyer_signature: signature.as_bytes().to_vec(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::FailedPrecondition, message.as_str()),
            "{what}"
        );
        let unknown = w
            .admin_b()
            .get_saga(pb::GetSagaRequest {
                saga_id: id,
                include_events: false,
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::NotFound, "{what}: nothing stored");
    }
    // The genuine proposal went through meanwhile.
    w.until_event(&w.gb, &started.status.unwrap().saga_id, "terms_agreed")
        .await;
    w.stop().await;
}

/// A gateway.toml whose `spiffe_id` is not its certificate's does not start:
/// every saga would name one identity while every call presents the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_spiffe_id_is_not_its_certificates_does_not_start() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let chains = Chains::start().await;
    let (saga_a, wallet_a) = keys_of("ga");
    let (saga_b, wallet_b) = keys_of("gb");
    let (dir, text) = write_gateway_toml(
        &pki,
        &chains,
        "127.0.0.1:0",
        (
            "spiffe://org-a.example/gateway/ga",
            "org-a.example/gateway-org-a",
            &saga_a,
            &wallet_a,
        ),
        (
            GB,
            "127.0.0.1:1".parse().unwrap(),
            &public(&saga_b, &wallet_b),
        ),
        None,
    );
    let config = GatewayConfig::parse(&text, "gateway.toml", dir.path()).unwrap();
    let e = RunningGateway::start(&config, StartOptions::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "gateway.spiffe_id is spiffe://org-a.example/gateway/ga, but the certificate {} is {GA}",
            pki.path().join("org-a.example/gateway-org-a.pem").display()
        )
    );
    assert!(!dir.path().join("store").exists(), "no store was made");
    chains.stop().await;
}

/// A notary.toml whose `spiffe_id` is not its certificate's does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_whose_spiffe_id_is_not_its_certificates_does_not_start() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    escrowd::keys::write_key_file(
        &dir.path().join("notary.wif"),
        &key("rpc test notary key"),
        bsv_format::keys::Network::Testnet,
    )
    .unwrap();
    let leaf = pki.path().join("notary.example/notary-notary");
    let text = format!(
        "[notary]\nspiffe_id = \"spiffe://notary.example/notary/other\"\nlisten = \"127.0.0.1:0\"\napproval_key = \"notary.wif\"\n\n\
         [identity]\nfederation = \"{fed}\"\ncert = \"{leaf}.pem\"\nkey = \"{leaf}.key\"\n\n\
         [chains.{P}]\nheaders_url = \"http://127.0.0.1:1\"\n",
        fed = pki.path().join("federation.toml").display(),
        leaf = leaf.display(),
    );
    let config = escrowd::notary::config::NotaryFileConfig::parse(&text, "notary.toml", dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let e = escrowd::notary::serve::RunningNotary::start(&config, Default::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        e.to_string(),
        format!(
            "notary.spiffe_id is spiffe://notary.example/notary/other, but the certificate {}.pem is {NOTARY}",
            leaf.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_invalid_argument_naming_the_field() {
    let w = World::new().await;
    let gb_identity = w.pki.identity("org-b.example/gateway-org-b");
    let mut peer = PeerServiceClient::new(channel(&gb_identity, GA, w.ga.addr));
    let saga_id = "0190b2a4-7c3e-7a01-8000-0123456789ab";

    let e = peer
        .propose(with_saga(
            saga_id,
            pb::ProposeRequest {
                saga_id: saga_id.into(),
                terms: vec![1, 2, 3],
                buyer_signature: vec![0x30],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field terms: "), "{e:?}");

    let e = peer
        .cancel(with_saga(
            saga_id,
            pb::CancelRequest {
                saga_id: "0190b2a4-7c3e-7a01-8000-0123456789ac".into(),
                reason: "because".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(
        e.message(),
        format!(
            "field saga_id: 0190b2a4-7c3e-7a01-8000-0123456789ac differs from the \
             escrow-saga-id metadata {saga_id}"
        )
    );

    let e = peer
        .execute(with_saga(
            saga_id,
            pb::ExecuteRequest {
                saga_id: saga_id.into(),
                token: vec![1; 10],
                claim: vec![],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field token: "), "{e:?}");

    let mut admin = w.admin_a();
    let e = admin
        .start_swap(pb::StartSwapRequest {
            idempotency_key: "k".into(),
            counterparty: GB.into(),
            payment_chain: P.into(),
            payment_sats: 0,
            delivery_chain: D.into(),
            delivery_sats: DELIVERY,
            notary: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(e.message(), "field payment_sats: zero satoshis");

    let e = admin
        .get_saga(pb::GetSagaRequest {
            saga_id: "not-a-saga".into(),
            include_events: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field saga_id: "), "{e:?}");

    // Well formed but unknown: NOT_FOUND, not INVALID_ARGUMENT.
    let e = admin
        .get_saga(pb::GetSagaRequest {
            saga_id: saga_id.into(),
            include_events: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_and_health_answers_serving() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha;

    let w = World::new().await;
    let op = w.pki.identity("org-a.example/operator-admin");

    let mut reflection = ServerReflectionClient::new(channel(&op, GA, w.ga.addr));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "escrow.v1.AdminService",
            "escrow.v1.EventService",
            "escrow.v1.PeerService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ]
    );

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(&op, GA, w.ga.addr));
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "escrow.v1.PeerService".into(),
            ),
        ),
    };
    let answer = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
        answer.message_response
    else {
        panic!("not a descriptor: {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // Health: an observer may watch the gateway.
    let observer = w.pki.identity("observer.example/observer-observer");
    let mut health = HealthClient::new(channel(&observer, GA, w.ga.addr));
    for service in ["", "escrow.v1.PeerService", "escrow.v1.AdminService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let e = health
        .check(HealthCheckRequest {
            service: "escrow.v1.NotaryService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    w.stop().await;
}

/// The approval request a gateway sends, rebuilt from its log.
fn approval_request(events: &[Event]) -> pb::ApproveRequest {
    let mut r = pb::ApproveRequest::default();
    for e in events {
        match e {
            Event::TermsProposed {
                terms,
                buyer_signature,
                ..
            } => {
                r.terms = terms.encode();
                r.buyer_signature = buyer_signature.as_bytes().to_vec();
            }
            Event::TermsAgreed { seller_signature } => {
                r.seller_signature = seller_signature.as_bytes().to_vec();
            }
            Event::ReservationConfirmed { beef, .. } => r.payment_beef = beef.clone(),
            Event::CounterReservationVerified { beef, .. } => r.delivery_beef = beef.clone(),
            _ => {}
        }
    }
    r
}

fn reservation_txid(events: &[Event]) -> Txid {
    events
        .iter()
        .find_map(|e| match e {
            Event::ReservationBuilt { tx, .. } => Some(tx.txid()),
            _ => None,
        })
        .expect("a reservation was built")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_approves_a_swap_it_verified_and_answers_only_its_parties() {
    use escrowd::proto::escrow_v1::notary_service_client::NotaryServiceClient;

    let w = World::with_notary(NotaryPolicy::default()).await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    let started = w.start_with(&mut admin_a, "swap-notary", NOTARY).await;
    let saga_id = started.status.unwrap().saga_id;
    w.until_both(&saga_id, pb::SagaState::Completed).await;

    let (events_a, events_b) = (
        w.events(&w.ga, &saga_id).await,
        w.events(&w.gb, &saga_id).await,
    );
    let approval = |events: &[Event]| {
        events
            .iter()
            .find_map(|e| match e {
                Event::NotaryApproved { signature } => Some(signature.clone()),
                _ => None,
            })
            .expect("the notary approved")
    };
    let terms = saga_core::terms::Terms::decode(&started.terms).unwrap();
    assert_eq!(terms.notary.as_deref(), Some(NOTARY));
    let digest = approval_digest(
        &terms.hash(),
        &reservation_txid(&events_a),
        &reservation_txid(&events_b),
    );
    let notary = w.notary.as_ref().unwrap();
    let signature = approval(&events_a);
    assert!(notary.key.public_key().verify_digest(&digest, &signature));
    // RFC 6979: the seller's identical request got the identical signature.
    assert_eq!(approval(&events_b), signature);

    let request = approval_request(&events_a);
    let ga_identity = w.pki.identity("org-a.example/gateway-org-a");
    let mut as_buyer = NotaryServiceClient::new(channel(&ga_identity, NOTARY, notary.addr));
    let again = as_buyer
        .approve(request.clone())
        .await
        .unwrap()
        .into_inner();
    let Some(pb::approve_response::Answer::Approved(a)) = again.answer else {
        panic!("not approved: {again:?}");
    };
    assert_eq!(a.signature, signature);
    assert_eq!(
        a.notary_key,
        notary.key.public_key().to_compressed().to_vec()
    );

    // The reservations swapped: the payment BEEF fails SPV on chain P's tracker.
    let swapped = pb::ApproveRequest {
        payment_beef: request.delivery_beef.clone(),
        delivery_beef: request.payment_beef.clone(),
        ..request.clone()
    };
    let e = as_buyer.approve(swapped).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("field payment_beef: "), "{e:?}");

    // A gateway that is not a party to the terms.
    let intruder = w.pki.issued(
        "org-a.example",
        "spiffe://org-a.example/gateway/intruder",
        "intruder",
    );
    let e = NotaryServiceClient::new(channel(&intruder, NOTARY, notary.addr))
        .approve(request.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        format!("caller spiffe://org-a.example/gateway/intruder is not a party to saga {saga_id}")
    );

    // An observer may not call a notary at all.
    let observer = w.pki.identity("observer.example/observer-observer");
    let e = NotaryServiceClient::new(channel(&observer, NOTARY, notary.addr))
        .approve(request)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("notary RPCs are for a gateway"),
        "{e:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_refusal_stops_the_swap_before_anything_is_claimed() {
    let w = World::with_notary(NotaryPolicy {
        max_amount: BTreeMap::from([(P.to_string(), saga_core::Satoshis(PAYMENT - 1))]),
        ..NotaryPolicy::default()
    })
    .await;
    let (mut admin_a, mut admin_b) = (w.admin_a(), w.admin_b());
    w.fund(&mut admin_a, &w.ga, P, 200_000).await;
    w.fund(&mut admin_b, &w.gb, D, 100_000).await;
    let saga_id = w
        .start_with(&mut admin_a, "swap-vetoed", NOTARY)
        .await
        .status
        .unwrap()
        .saga_id;
    w.until_both(&saga_id, pb::SagaState::Cancelled).await;
    // Each gateway asks the notary; whichever hears the refusal first
    // cancels, and the other may be cancelled by its peer before its own
    // answer arrives. At least one records the refusal, word for word.
    let mut refusals = Vec::new();
    for node in [&w.ga, &w.gb] {
        let events = w.events(node, &saga_id).await;
        refusals.extend(events.iter().filter_map(|e| match e {
            Event::NotaryRejected { reason } => Some(reason.clone()),
            _ => None,
        }));
        assert!(
            !events.iter().any(|e| matches!(e, Event::ClaimBuilt { .. })),
            "nothing is claimed after a veto: {events:?}"
        );
    }
    assert!(!refusals.is_empty(), "{}", w.report(&saga_id).await);
    for reason in refusals {
        assert_eq!(
            reason,
            format!(
                "payment leg of {PAYMENT} sat on chain-p is above this notary's ceiling of {} sat",
                PAYMENT - 1
            )
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_ends_cleanly_when_the_gateway_shuts_down() {
    let w = World::new().await;
    let operator = w.pki.identity("org-a.example/operator-admin");
    let mut stream = EventServiceClient::new(channel(&operator, GA, w.ga.addr))
        .subscribe(pb::SubscribeRequest { from_cursor: 1 })
        .await
        .unwrap()
        .into_inner();
    // A swap's first events arrive live on the open stream.
    let mut admin = w.admin_a();
    let saga_id = w
        .start(&mut admin, "swap-live")
        .await
        .status
        .unwrap()
        .saga_id;
    let first = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the feed delivers")
        .unwrap()
        .expect("the stream is open");
    assert_eq!((first.cursor, first.seq), (1, 0));
    assert_eq!(first.saga_id, saga_id);
    assert_eq!(first.name, "terms_proposed");
    // Shutting down ends the stream with OK, after whatever was pending.
    w.ga.running().begin_shutdown();
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "{end:?}");
    w.stop().await;
}

// ---------------------------------------------------------------------------
// The command line (`escrowd swap|wallet|notary`, the binary itself)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_a_swap_from_the_command_line() {
    const OP_A: &str = "org-a.example/operator-admin";
    const OP_B: &str = "org-b.example/operator-admin";
    let w = World::new().await;
    let beef_dir = tempfile::tempdir().unwrap();

    // Each operator funds its gateway with `wallet import` from a faucet BEEF.
    for (op, node, chain, sats) in [(OP_A, &w.ga, P, 200_000u64), (OP_B, &w.gb, D, 100_000)] {
        let beef = w.chains.faucet(chain, &node.wallet_keys[chain], sats).await;
        let file = beef_dir.path().join(format!("{chain}.beef"));
        std::fs::write(&file, &beef).unwrap();
        let import = w
            .cli(
                op,
                node,
                &[
                    "wallet",
                    "import",
                    "--chain",
                    chain,
                    "--beef",
                    file.to_str().unwrap(),
                    "--json",
                ],
            )
            .await
            .ok_json();
        assert_eq!(
            import["imported"],
            serde_json::json!([{"vout": 0, "sats": sats}]),
            "{import}"
        );
        // The faucet's change (output 1) is listed as not ours.
        assert_eq!(import["not_ours"], serde_json::json!([1]));
    }
    let balance = w
        .cli(OP_A, &w.ga, &["wallet", "balance", "--json"])
        .await
        .ok_json();
    assert_eq!(
        balance,
        serde_json::json!({"balances": [{
            "chain": P, "basket": "funding",
            "available_sats": 200_000, "available_outputs": 1,
            "reserved_sats": 0, "reserved_outputs": 0,
        }]})
    );

    let pay = format!("{P}:{PAYMENT}");
    let deliver = format!("{D}:{DELIVERY}");
    let start_args = [
        "swap",
        "start",
        "--counterparty",
        GB,
        "--pay",
        &pay,
        "--deliver",
        &deliver,
        "--idempotency-key",
        "cli-swap-1",
        "--json",
    ];
    let started = w.cli(OP_A, &w.ga, &start_args).await.ok_json();
    assert_eq!(started["created"], true, "{started}");
    assert_eq!(started["role"], "buyer");
    assert_eq!(started["idempotency_key"], "cli-swap-1");
    let saga_id = started["saga_id"].as_str().unwrap().to_string();
    w.until_both(&saga_id, pb::SagaState::Completed).await;

    // The same key answers the same saga.
    let again = w.cli(OP_A, &w.ga, &start_args).await.ok_json();
    assert_eq!(
        (again["created"].clone(), again["saga_id"].clone()),
        (false.into(), saga_id.clone().into())
    );

    let shown = w
        .cli(
            OP_A,
            &w.ga,
            &["swap", "show", &saga_id, "--events", "--json"],
        )
        .await
        .ok_json();
    assert_eq!(shown["state"], "completed", "{shown}");
    assert_eq!(shown["terminal"], true);
    assert_eq!(shown["attention"], serde_json::Value::Null);
    assert_eq!(shown["terms"]["buyer"], GA);
    assert_eq!(shown["terms"]["seller"], GB);
    assert_eq!(shown["terms"]["payment"]["chain"], P);
    assert_eq!(shown["terms"]["payment"]["sats"], PAYMENT);
    assert_eq!(shown["terms"]["delivery"]["sats"], DELIVERY);
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, shown["head"].as_u64().unwrap());
    assert_eq!(
        events
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        w.events(&w.ga, &saga_id)
            .await
            .iter()
            .map(|e| e.name().to_string())
            .collect::<Vec<_>>()
    );
    // The seller's view, from its own operator.
    let seller = w
        .cli(OP_B, &w.gb, &["swap", "show", &saga_id, "--json"])
        .await
        .ok_json();
    assert_eq!(
        (seller["state"].as_str(), seller["role"].as_str()),
        (Some("completed"), Some("seller"))
    );

    let listed = w
        .cli(OP_A, &w.ga, &["swap", "list", "--json"])
        .await
        .ok_json();
    assert_eq!(
        listed,
        serde_json::json!({"sagas": [{
            "saga_id": saga_id, "state": "completed", "role": "buyer",
            "terminal": true, "attention": null,
        }], "next": null})
    );
    let none = w
        .cli(
            OP_A,
            &w.ga,
            &["swap", "list", "--state", "reserving", "--json"],
        )
        .await
        .ok_json();
    assert_eq!(none, serde_json::json!({"sagas": [], "next": null}));

    // Human output names the saga and its state.
    let text = w.cli(OP_A, &w.ga, &["swap", "list"]).await;
    assert_eq!(
        (text.code, text.stdout.as_str()),
        (0, format!("{saga_id}  completed  buyer\n").as_str())
    );

    // Org B's operator is no operator of GA.
    let denied = w
        .cli(OP_B, &w.ga, &["swap", "list", "--expect-id", GA, "--json"])
        .await;
    assert_eq!(denied.code, 1, "{denied:?}");
    assert!(
        denied.stderr.starts_with("escrowd: PERMISSION_DENIED: "),
        "{denied:?}"
    );
    assert_eq!(denied.stdout, "");

    // An unknown saga is NOT_FOUND, exit 1.
    let missing = w
        .cli(
            OP_A,
            &w.ga,
            &["swap", "show", "0190a0b0-0000-7000-8000-000000000000"],
        )
        .await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing.stderr.starts_with("escrowd: NOT_FOUND: "),
        "{missing:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gateway_exits_2() {
    let pki = Pki::new();
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let run = escrowd(vec![
        "wallet".into(),
        "balance".into(),
        "--gateway".into(),
        format!("https://127.0.0.1:{port}"),
        "--identity".into(),
        pki.path()
            .join("org-a.example/operator-admin")
            .display()
            .to_string(),
    ])
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.starts_with("escrowd: UNAVAILABLE: "), "{run:?}");

    // No identity at all is a usage error, before anything is dialled.
    let run = escrowd(vec![
        "swap".into(),
        "list".into(),
        "--gateway".into(),
        format!("https://127.0.0.1:{port}"),
    ])
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no cert"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notary_config_fault_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notary.toml");
    std::fs::write(
        &file,
        "[notary]\nspiffe_id = \"spiffe://notary.example/gateway/notary\"\nlisten = \"127.0.0.1:0\"\napproval_key = \"k.wif\"\n\
         [identity]\nfederation = \"f.toml\"\ncert = \"c.pem\"\nkey = \"c.key\"\n[chains.chain-p]\nheaders_url = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let run = escrowd(vec![
        "notary".into(),
        "--config".into(),
        file.display().to_string(),
    ])
    .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "escrowd: invalid: {}: notary.spiffe_id: spiffe://notary.example/gateway/notary has the role gateway, not notary\n",
            file.display()
        )
    );
    let run = escrowd(vec![
        "notary".into(),
        "--config".into(),
        dir.path().join("absent.toml").display().to_string(),
    ])
    .await;
    assert_eq!(run.code, 2, "{run:?}");
}
