//! `escrow.v1.AdminService`: the operator's calls (DESIGN.md §7 `swap`,
//! `wallet`) over the driver, the event log and the wallet.
//!
//! `StartSwap` is where a swap begins (DESIGN.md §3.3 step 0, the buyer):
//! 1. an idempotency key seen before answers with its saga, nothing new;
//! 2. the terms are built from the request, our keys and policy (refund
//!    heights = each chain's current tip + the policy's refund delay of
//!    that leg; confirmations per chain; quote expiry and reservation
//!    deadline from the clock) and the counterparty's public keys from our
//!    configuration ([`PeerKeys`]);
//! 3. `s` is 32 bytes from the system RNG, `H = SHA256(s)`; `s` is stored as
//!    the saga's secret `preimage` BEFORE the start turn, so a crash right
//!    after the turn never leaves a saga whose `s` is lost;
//! 4. one driver turn ([`Input::Start`]) with the idempotency key, in the
//!    same append as `TermsProposed`. Two concurrent starts with one key:
//!    the second append fails on the key and answers the first saga.
//!
//! `Withdraw` commits the wallet's spends before it broadcasts (the
//! wallet's contract), and returns the signed transaction whatever the
//! broadcaster said, so an operator can rebroadcast it.
//!
//! # Layout
//! - [`PeerKeys`], [`AdminService`]; the gRPC trait implementation.

use std::collections::BTreeMap;

use bsv_format::hash::sha256;
use bsv_format::keys::PublicKey;
use bsv_format::TxOut;
use ring::rand::{SecureRandom, SystemRandom};
use saga_core::policy::Policy;
use saga_core::saga::Input;
use saga_core::terms::{LegTerms, PartyTerms, Role, SagaId, Terms};
use saga_core::wallet::Basket;
use saga_core::{Height, UnixTime};
use saga_runtime::driver::DriverError;
use saga_runtime::log::{AppendError, SagaFilter, SecretBytes};
use saga_runtime::verify_beef;
use tonic::{Request, Response, Status};

use super::convert::{self, ConvertError};
use super::lookup::{exposure, saga_terms};
use super::status::{respond, RpcError};
use super::Shared;
use crate::config::PeerConfig;
use crate::gateway::context::PREIMAGE_SECRET;
use crate::proto::escrow_v1 as pb;
use crate::proto::escrow_v1::admin_service_server::{self, AdminServiceServer};

/// A counterparty gateway's public keys, from our configuration: what the
/// terms of a swap we start name as the seller's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerKeys {
    /// Its saga key (verifies its terms signature and tokens).
    pub saga_key: PublicKey,
    /// Its escrow key on each chain (chain id → key).
    pub escrow_keys: BTreeMap<String, PublicKey>,
}

impl PeerKeys {
    /// The keys a peer's configuration pins.
    pub fn from_config(peer: &PeerConfig) -> PeerKeys {
        PeerKeys {
            saga_key: peer.saga_key,
            escrow_keys: peer.escrow_keys.clone(),
        }
    }
}

/// Default and largest `ListSagas` page.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// The gateway's AdminService.
#[derive(Debug, Clone)]
pub struct AdminService {
    gw: Shared,
    counterparties: BTreeMap<String, PeerKeys>,
}

impl AdminService {
    /// A service over `shared`, starting swaps with the counterparties
    /// whose keys `counterparties` holds (SPIFFE ID → keys).
    pub fn new(shared: Shared, counterparties: BTreeMap<String, PeerKeys>) -> AdminService {
        AdminService {
            gw: shared,
            counterparties,
        }
    }

    /// The tonic service to add to a server (behind the `AuthLayer`).
    pub fn into_server(self) -> AdminServiceServer<AdminService> {
        AdminServiceServer::new(self)
    }

    /// The saga's status now: the driver's (status, attention), our role
    /// from its terms.
    async fn status_of(&self, saga_id: SagaId) -> Result<pb::SagaStatus, RpcError> {
        let (status, attention) = self.gw.driver.status(saga_id).await?;
        let role = saga_terms(self.gw.log.as_ref(), &saga_id)
            .await?
            .map(|t| t.role);
        Ok(convert::saga_status(
            &saga_id,
            status,
            attention.as_deref(),
            role,
        ))
    }

    /// The answer for a saga an idempotency key already names.
    async fn existing(&self, saga_id: SagaId) -> Result<pb::StartSwapResponse, RpcError> {
        let terms = saga_terms(self.gw.log.as_ref(), &saga_id)
            .await?
            .map(|t| t.terms.encode())
            .unwrap_or_default();
        Ok(pb::StartSwapResponse {
            status: Some(self.status_of(saga_id).await?),
            created: false,
            terms,
        })
    }

    async fn start_swap(&self, r: pb::StartSwapRequest) -> Result<pb::StartSwapResponse, RpcError> {
        let key = convert::idempotency_key("idempotency_key", &r.idempotency_key)?;
        let counterparty = convert::gateway_id("counterparty", &r.counterparty)?;
        let payment_chain = convert::chain_id("payment_chain", &r.payment_chain)?;
        let delivery_chain = convert::chain_id("delivery_chain", &r.delivery_chain)?;
        let payment_sats = convert::amount("payment_sats", r.payment_sats)?;
        let delivery_sats = convert::amount("delivery_sats", r.delivery_sats)?;
        let notary = match r.notary.as_str() {
            "" => None,
            n => Some(convert::notary_id("notary", n)?),
        };
        if let Some(saga_id) = self.gw.log.idempotency(&key).await? {
            // The same key is the same request: a retry gets the saga it
            // started; anything else under that key is refused, naming
            // the first field that differs.
            if let Some(t) = saga_terms(self.gw.log.as_ref(), &saga_id).await? {
                let t = t.terms;
                let fields = [
                    (
                        "counterparty",
                        t.seller.spiffe_id.clone(),
                        counterparty.to_string(),
                    ),
                    (
                        "payment_chain",
                        t.payment.chain_id.clone(),
                        payment_chain.clone(),
                    ),
                    (
                        "payment_sats",
                        t.payment.amount.0.to_string(),
                        payment_sats.0.to_string(),
                    ),
                    (
                        "delivery_chain",
                        t.delivery.chain_id.clone(),
                        delivery_chain.clone(),
                    ),
                    (
                        "delivery_sats",
                        t.delivery.amount.0.to_string(),
                        delivery_sats.0.to_string(),
                    ),
                ];
                let mut differs = fields.into_iter().find(|(_, a, b)| a != b);
                if differs.is_none() {
                    if let Some(n) = &notary {
                        let existing = t.notary.clone().unwrap_or_else(|| "none".into());
                        if existing != *n {
                            differs = Some(("notary", existing, n.to_string()));
                        }
                    }
                }
                if let Some((field, existing, requested)) = differs {
                    return Err(RpcError::KeyReused {
                        key,
                        saga_id,
                        field,
                        existing,
                        requested,
                    });
                }
            }
            return self.existing(saga_id).await;
        }
        let policy = self.gw.policy.clone();
        let seller = self.seller(&counterparty, &payment_chain, &delivery_chain)?;
        let buyer = self.buyer(&payment_chain, &delivery_chain)?;
        let notary = notary.or_else(|| {
            policy
                .notary
                .required
                .then(|| policy.notary.allowed.first().cloned())
                .flatten()
        });
        let payment = self
            .leg(
                &policy,
                "payment_chain",
                &payment_chain,
                payment_sats,
                Role::Buyer,
            )
            .await?;
        let delivery = self
            .leg(
                &policy,
                "delivery_chain",
                &delivery_chain,
                delivery_sats,
                Role::Seller,
            )
            .await?;

        let rng = SystemRandom::new();
        let mut preimage = [0u8; 32];
        let mut id_random = [0u8; 10];
        rng.fill(&mut preimage).map_err(|_| RpcError::Random)?;
        rng.fill(&mut id_random).map_err(|_| RpcError::Random)?;
        let now = self.gw.clock.now();
        let saga_id = SagaId::new_v7(now.0.saturating_mul(1000), &id_random);
        let times = &policy.times;
        let terms = Terms {
            saga_id,
            buyer,
            seller,
            notary,
            payment,
            delivery,
            hash_lock: sha256(&preimage),
            quote_expiry: UnixTime(now.0.saturating_add(times.quote_expiry.as_secs())),
            reservation_deadline: UnixTime(
                now.0.saturating_add(times.reservation_deadline.as_secs()),
            ),
            policy_id: policy.id.clone(),
        };
        // s first: the start turn's context reads it, and a saga must never
        // exist without its preimage.
        self.gw
            .log
            .put_secret(
                &saga_id,
                PREIMAGE_SECRET,
                SecretBytes::new(preimage.to_vec()),
            )
            .await?;
        let exposure = exposure(self.gw.log.as_ref(), &counterparty, &payment_chain).await?;
        let input = Input::Start {
            terms: Box::new(terms.clone()),
            exposure,
        };
        match self
            .gw
            .driver
            .submit(saga_id, Some(Role::Buyer), input, Some(key))
            .await
        {
            Ok(_) => {}
            Err(DriverError::Append(AppendError::IdempotencyConflict { saga_id, .. })) => {
                return self.existing(saga_id).await;
            }
            Err(e) => return Err(e.into()),
        }
        self.gw.parties.record(&terms);
        Ok(pb::StartSwapResponse {
            status: Some(self.status_of(saga_id).await?),
            created: true,
            terms: terms.encode(),
        })
    }

    /// The seller's keys from our configuration.
    fn seller(
        &self,
        counterparty: &str,
        payment_chain: &str,
        delivery_chain: &str,
    ) -> Result<PartyTerms, RpcError> {
        let keys =
            self.counterparties
                .get(counterparty)
                .ok_or_else(|| RpcError::NotConfigured {
                    field: "counterparty",
                    detail: format!("no keys are configured for {counterparty}"),
                })?;
        let escrow = |field: &'static str, chain: &str| {
            keys.escrow_keys
                .get(chain)
                .copied()
                .ok_or_else(|| RpcError::NotConfigured {
                    field,
                    detail: format!(
                        "no escrow key of {counterparty} is configured for chain {chain}"
                    ),
                })
        };
        Ok(PartyTerms {
            spiffe_id: counterparty.to_owned(),
            saga_key: keys.saga_key,
            payment_escrow_key: escrow("payment_chain", payment_chain)?,
            delivery_escrow_key: escrow("delivery_chain", delivery_chain)?,
        })
    }

    /// Our own public keys.
    fn buyer(&self, payment_chain: &str, delivery_chain: &str) -> Result<PartyTerms, RpcError> {
        let keys = &self.gw.own_keys;
        let escrow = |field: &'static str, chain: &str| {
            keys.escrow_keys
                .get(chain)
                .copied()
                .ok_or_else(|| RpcError::NotConfigured {
                    field,
                    detail: format!("this gateway has no escrow key for chain {chain}"),
                })
        };
        Ok(PartyTerms {
            spiffe_id: self.gw.own_spiffe_id.clone(),
            saga_key: keys.saga_key,
            payment_escrow_key: escrow("payment_chain", payment_chain)?,
            delivery_escrow_key: escrow("delivery_chain", delivery_chain)?,
        })
    }

    /// One leg's terms: `T` = the chain's tip + the policy's refund delay
    /// for a leg funded by `funder`.
    async fn leg(
        &self,
        policy: &Policy,
        field: &'static str,
        chain_id: &str,
        amount: saga_core::Satoshis,
        funder: Role,
    ) -> Result<LegTerms, RpcError> {
        let rules = policy
            .chain(chain_id)
            .ok_or_else(|| RpcError::NotConfigured {
                field,
                detail: format!("chain {chain_id} is not in policy {}", policy.id),
            })?;
        let ports = self
            .gw
            .chains
            .get(chain_id)
            .ok_or_else(|| RpcError::NotConfigured {
                field,
                detail: format!("this gateway has no chain {chain_id}"),
            })?;
        let tip = ports
            .tracker
            .current_height()
            .await
            .map_err(|source| RpcError::Tracker {
                chain_id: chain_id.to_owned(),
                source,
            })?;
        let delay = match funder {
            Role::Buyer => rules.payment_refund_blocks,
            Role::Seller => rules.delivery_refund_blocks,
        };
        Ok(LegTerms {
            chain_id: chain_id.to_owned(),
            amount,
            refund_height: Height(tip.saturating_add(delay)),
            confirmations: rules.confirmations,
        })
    }

    async fn get_saga(&self, r: pb::GetSagaRequest) -> Result<pb::GetSagaResponse, RpcError> {
        let saga_id = convert::saga_id("saga_id", &r.saga_id)?;
        let events = self.gw.log.load(&saga_id).await?;
        if events.is_empty() {
            return Err(RpcError::UnknownSaga(saga_id));
        }
        let terms = saga_terms(self.gw.log.as_ref(), &saga_id).await?;
        Ok(pb::GetSagaResponse {
            status: Some(self.status_of(saga_id).await?),
            terms: terms.as_ref().map(|t| t.terms.encode()).unwrap_or_default(),
            terms_view: terms.as_ref().map(|t| convert::terms_view(&t.terms)),
            head: events.len() as u64,
            events: if r.include_events {
                events
                    .iter()
                    .map(|(seq, e)| convert::log_entry(*seq, e))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }

    async fn list_sagas(&self, r: pb::ListSagasRequest) -> Result<pb::ListSagasResponse, RpcError> {
        let limit = match r.page_size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = match r.page_token.as_str() {
            "" => None,
            t => Some(convert::saga_id("page_token", t)?),
        };
        let state = convert::state_filter("state", r.state)?;
        let terminal = match pb::TerminalFilter::try_from(r.terminal) {
            Ok(pb::TerminalFilter::Any) => None,
            Ok(pb::TerminalFilter::InFlight) => Some(false),
            Ok(pb::TerminalFilter::Terminal) => Some(true),
            Err(_) => {
                return Err(ConvertError::Invalid {
                    field: "terminal".into(),
                    reason: format!("{} is not a TerminalFilter", r.terminal),
                }
                .into())
            }
        };
        let filter = SagaFilter {
            terminal,
            state: state.map(|s| s.name().to_owned()),
        };
        let page = self.gw.log.list_sagas(&filter, after, limit).await?;
        let next_page_token = match page.last() {
            Some(last) if page.len() == limit => last.saga_id.to_string(),
            _ => String::new(),
        };
        Ok(pb::ListSagasResponse {
            sagas: page.iter().map(convert::projection_status).collect(),
            next_page_token,
        })
    }

    async fn operator_turn(
        &self,
        saga_id: SagaId,
        input: Input,
    ) -> Result<pb::SagaStatus, RpcError> {
        self.gw.driver.submit(saga_id, None, input, None).await?;
        self.status_of(saga_id).await
    }

    async fn import_funding(
        &self,
        r: pb::ImportFundingRequest,
    ) -> Result<pb::ImportFundingResponse, RpcError> {
        let chain_id = convert::chain_id("chain_id", &r.chain_id)?;
        let beef = convert::beef("beef", &r.beef)?;
        let basket = convert::basket("basket", r.basket)?;
        let tracker = self
            .gw
            .chains
            .get(&chain_id)
            .map(|c| c.tracker.clone())
            .ok_or_else(|| RpcError::NotConfigured {
                field: "chain_id",
                detail: format!("this gateway has no chain {chain_id}"),
            })?;
        let verified = verify_beef(tracker.as_ref(), beef, &self.gw.verify)
            .await
            .map_err(|source| RpcError::Spv {
                field: "beef",
                chain_id: chain_id.clone(),
                source: Box::new(source),
            })?;
        let vouts = (!r.vouts.is_empty()).then_some(r.vouts.as_slice());
        let report = self
            .gw
            .wallet
            .import_funding(&chain_id, &verified, vouts, basket)
            .await?;
        Ok(pb::ImportFundingResponse {
            txid: report.txid.to_string(),
            imported: report
                .imported
                .iter()
                .map(|u| pb::ImportedOutput {
                    vout: u.outpoint.vout,
                    sats: u.satoshis.0,
                })
                .collect(),
            not_ours: report.not_ours,
        })
    }

    async fn withdraw(&self, r: pb::WithdrawRequest) -> Result<pb::WithdrawResponse, RpcError> {
        let chain_id = convert::chain_id("chain_id", &r.chain_id)?;
        let payee = convert::address("address", &r.address)?;
        let amount = convert::amount("amount_sats", r.amount_sats)?;
        let policy = &self.gw.policy;
        let rate = policy
            .chain(&chain_id)
            .map(|c| c.fee_rate_sats_per_kb)
            .ok_or_else(|| RpcError::NotConfigured {
                field: "chain_id",
                detail: format!("chain {chain_id} is not in policy {}", policy.id),
            })?;
        let ports = self
            .gw
            .chains
            .get(&chain_id)
            .ok_or_else(|| RpcError::NotConfigured {
                field: "chain_id",
                detail: format!("this gateway has no chain {chain_id}"),
            })?;
        let w = self
            .gw
            .wallet
            .withdraw(&chain_id, &payee, amount, rate)
            .await?;
        let txid = w.tx.txid();
        let (accepted, broadcast) = self.broadcast_withdrawal(&chain_id, ports, &w.tx).await;
        Ok(pb::WithdrawResponse {
            txid: txid.to_string(),
            tx: w.tx.to_bytes(),
            fee_sats: w.fee.0,
            change_sats: w.change.0,
            accepted,
            broadcast,
        })
    }

    /// Broadcasts a withdrawal as EF (its inputs' sources from the wallet's
    /// `funding` and `received` outputs); whether the chain took it, and
    /// what it said.
    async fn broadcast_withdrawal(
        &self,
        chain_id: &str,
        ports: &saga_runtime::ports::ChainPorts,
        tx: &bsv_format::Transaction,
    ) -> (bool, String) {
        let mut listed = Vec::new();
        for basket in [Basket::Funding, Basket::Received] {
            match self.gw.log.utxos(chain_id, basket).await {
                Ok(list) => listed.extend(list),
                Err(e) => return (false, format!("not broadcast: reading the wallet: {e}")),
            }
        }
        let known: BTreeMap<_, _> = listed
            .into_iter()
            .map(|(u, _)| {
                (
                    u.outpoint,
                    TxOut {
                        satoshis: u.satoshis.0,
                        locking_script: u.locking_script,
                    },
                )
            })
            .collect();
        let sources: Option<Vec<TxOut>> = tx
            .inputs
            .iter()
            .map(|i| known.get(&i.prev_out).cloned())
            .collect();
        let Some(sources) = sources else {
            return (
                false,
                "not broadcast: an input is not a wallet output".into(),
            );
        };
        let ef = match bsv_format::ef::EfTransaction::new(tx.clone(), sources) {
            Ok(ef) => ef,
            Err(e) => return (false, format!("not broadcast: EF: {e}")),
        };
        match ports.broadcaster.broadcast(&ef).await {
            Ok(outcome) if outcome.is_success() => (true, format!("{outcome:?}")),
            Ok(outcome) => (false, format!("{outcome:?}")),
            Err(e) => (false, e.to_string()),
        }
    }
}

#[tonic::async_trait]
impl admin_service_server::AdminService for AdminService {
    async fn start_swap(
        &self,
        request: Request<pb::StartSwapRequest>,
    ) -> Result<Response<pb::StartSwapResponse>, Status> {
        respond(AdminService::start_swap(self, request.into_inner()).await)
    }

    async fn get_saga(
        &self,
        request: Request<pb::GetSagaRequest>,
    ) -> Result<Response<pb::GetSagaResponse>, Status> {
        respond(AdminService::get_saga(self, request.into_inner()).await)
    }

    async fn list_sagas(
        &self,
        request: Request<pb::ListSagasRequest>,
    ) -> Result<Response<pb::ListSagasResponse>, Status> {
        respond(AdminService::list_sagas(self, request.into_inner()).await)
    }

    async fn cancel_saga(
        &self,
        request: Request<pb::CancelSagaRequest>,
    ) -> Result<Response<pb::SagaStatus>, Status> {
        let r = request.into_inner();
        let result = async {
            let saga_id = convert::saga_id("saga_id", &r.saga_id)?;
            let reason = convert::reason("reason", &r.reason)?;
            self.operator_turn(saga_id, Input::CancelRequested { reason })
                .await
        };
        respond(result.await)
    }

    async fn resolve_saga(
        &self,
        request: Request<pb::ResolveSagaRequest>,
    ) -> Result<Response<pb::SagaStatus>, Status> {
        let r = request.into_inner();
        let result = async {
            let saga_id = convert::saga_id("saga_id", &r.saga_id)?;
            let resolution = convert::resolution(r.resolution.as_ref())?;
            self.operator_turn(saga_id, Input::Resolve(resolution))
                .await
        };
        respond(result.await)
    }

    async fn wallet_balances(
        &self,
        _request: Request<pb::WalletBalancesRequest>,
    ) -> Result<Response<pb::WalletBalancesResponse>, Status> {
        let result = async {
            let balances = self.gw.wallet.balances().await?;
            Ok(pb::WalletBalancesResponse {
                balances: convert::basket_balances(&balances),
            })
        };
        respond(result.await)
    }

    async fn import_funding(
        &self,
        request: Request<pb::ImportFundingRequest>,
    ) -> Result<Response<pb::ImportFundingResponse>, Status> {
        respond(AdminService::import_funding(self, request.into_inner()).await)
    }

    async fn withdraw(
        &self,
        request: Request<pb::WithdrawRequest>,
    ) -> Result<Response<pb::WithdrawResponse>, Status> {
        respond(AdminService::withdraw(self, request.into_inner()).await)
    }
}
