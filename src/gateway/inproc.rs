//! An in-process [`PeerTransport`]: the counterparty's gateway reached by a
//! function call instead of gRPC, for `escrowd demo` and the driver tests.
//! The gRPC transport (mutual TLS, `src/rpc/`) replaces it by swapping the
//! `Arc<dyn PeerTransport>` a gateway is started with; the saga cannot
//! tell the difference.
//!
//! The callee's side is an [`Endpoint`]: the driver behind it (none while
//! its gateway is down), its chain trackers, and per message kind a
//! [`Mode`] — answer, drop (unreachable), hold until the mode changes, or
//! deliver twice (checking that the duplicate gets the first answer and
//! appends nothing). A [`Link`] is the caller's side: it turns a request
//! into the callee's input exactly as the gRPC service will — a proposal
//! creates the seller's saga, a `ReservationReady` BEEF is SPV-verified
//! against the callee's own tracker for the counterparty's chain first —
//! and returns the callee's reply.
//!
//! What it does not do (the gRPC transport does): authenticate the caller.
//! The caller's SPIFFE ID is the one the link was made with.
//!
//! # Layout
//! - [`Mode`], [`Endpoint`] (the callee), [`Link`] (the caller's transport).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bsv_format::beef::Beef;
use bsv_format::spv::VerifyOptions;
use saga_core::saga::{Input, MessageKind, PeerMessage, PeerReply, PeerRequest};
use saga_core::terms::{Role, SagaId};
use saga_core::Satoshis;
use saga_runtime::driver::Driver;
use saga_runtime::ports::{PeerError, PeerTransport};
use saga_runtime::{verify_beef, ChainTracker};
use tokio::sync::watch;

/// What an [`Endpoint`] does with one kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver it and return the reply (the default).
    Answer,
    /// Refuse it as unreachable.
    Drop,
    /// Keep the call waiting until the mode changes (or the endpoint goes).
    Hold,
    /// Deliver it twice; the reply to the first goes back. A second answer
    /// that differs, or a second delivery that appended anything, is
    /// recorded in [`Endpoint::mismatches`].
    Twice,
}

/// A mutex's data even if a holder panicked: every mutex here guards a
/// value written whole.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A party's gateway as its counterparty reaches it in process.
pub struct Endpoint {
    driver: Mutex<Option<Driver>>,
    trackers: BTreeMap<String, Arc<dyn ChainTracker>>,
    counter_chain: String,
    verify: VerifyOptions,
    modes: watch::Sender<HashMap<MessageKind, Mode>>,
    held: AtomicUsize,
    mismatches: Mutex<Vec<String>>,
}

impl Endpoint {
    /// An endpoint with no driver yet (its gateway is down until
    /// [`attach`](Self::attach)), answering every kind. `trackers` are the
    /// callee's own, per chain id; `counter_chain` is the chain of the
    /// counterparty's reservation (checked with `verify` when it arrives).
    pub fn new(
        trackers: BTreeMap<String, Arc<dyn ChainTracker>>,
        counter_chain: impl Into<String>,
        verify: VerifyOptions,
    ) -> Endpoint {
        Endpoint {
            driver: Mutex::new(None),
            trackers,
            counter_chain: counter_chain.into(),
            verify,
            modes: watch::channel(HashMap::new()).0,
            held: AtomicUsize::new(0),
            mismatches: Mutex::new(Vec::new()),
        }
    }

    /// Puts `driver` behind the endpoint: the gateway is up.
    pub fn attach(&self, driver: Driver) {
        *locked(&self.driver) = Some(driver);
    }

    /// Takes the driver out: the gateway is down (calls fail as
    /// unreachable). The caller shuts the driver down if it means a crash.
    pub fn detach(&self) -> Option<Driver> {
        locked(&self.driver).take()
    }

    /// The driver, while the gateway is up.
    pub fn driver(&self) -> Option<Driver> {
        locked(&self.driver).clone()
    }

    /// Sets the mode of one message kind; held calls of it re-read it.
    pub fn set(&self, kind: MessageKind, mode: Mode) {
        self.modes.send_modify(|m| {
            m.insert(kind, mode);
        });
    }

    /// Sets the mode of every message kind.
    pub fn set_all(&self, mode: Mode) {
        for kind in MessageKind::ALL {
            self.set(kind, mode);
        }
    }

    /// Drops every message kind but `kinds`.
    pub fn drop_all_but(&self, kinds: &[MessageKind]) {
        for kind in MessageKind::ALL {
            if !kinds.contains(&kind) {
                self.set(kind, Mode::Drop);
            }
        }
    }

    /// How many calls were held so far (each counted once, when it first waits).
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// Duplicates ([`Mode::Twice`]) that got another answer than the first
    /// delivery, or appended something: one line each.
    pub fn mismatches(&self) -> Vec<String> {
        locked(&self.mismatches).clone()
    }

    fn mode(
        &self,
        kind: MessageKind,
        modes: &mut watch::Receiver<HashMap<MessageKind, Mode>>,
    ) -> Mode {
        modes
            .borrow_and_update()
            .get(&kind)
            .copied()
            .unwrap_or(Mode::Answer)
    }
}

/// The caller's side of an in-process link to an [`Endpoint`].
pub struct Link {
    caller: String,
    to: Arc<Endpoint>,
}

impl Link {
    /// A transport whose calls reach `to` as coming from `caller` (a SPIFFE ID).
    pub fn new(caller: impl Into<String>, to: Arc<Endpoint>) -> Link {
        Link {
            caller: caller.into(),
            to,
        }
    }

    fn unreachable(&self, peer: &str, why: &str) -> PeerError {
        PeerError::Unreachable {
            peer: peer.into(),
            detail: format!("{why} (from {})", self.caller),
        }
    }

    /// The callee's input for `request`, and the role it creates a saga in.
    async fn input(
        &self,
        peer: &str,
        request: PeerRequest,
    ) -> Result<(Option<Role>, Input), PeerError> {
        let failed = |detail: String| PeerError::Failed {
            peer: peer.into(),
            detail,
        };
        let caller = self.caller.clone();
        let peer_input = |message| {
            (
                None,
                Input::Peer {
                    caller: caller.clone(),
                    message,
                },
            )
        };
        Ok(match request {
            PeerRequest::Propose {
                terms,
                buyer_signature,
            } => (
                Some(Role::Seller),
                Input::Proposal {
                    caller: caller.clone(),
                    terms,
                    buyer_signature,
                    // The gRPC service reads our exposure to this
                    // counterparty from the store; in process, the demo's
                    // swaps stay far below the policy's limit.
                    exposure: Satoshis(0),
                },
            ),
            PeerRequest::ReservationReady { beef } => {
                let parsed = Beef::from_bytes(&beef).map_err(|e| failed(format!("BEEF: {e}")))?;
                let tracker = self
                    .to
                    .trackers
                    .get(&self.to.counter_chain)
                    .ok_or_else(|| {
                        failed(format!("no tracker for chain {}", self.to.counter_chain))
                    })?;
                let verified = verify_beef(tracker.as_ref(), parsed, &self.to.verify)
                    .await
                    .map_err(|e| failed(format!("SPV: {e}")))?;
                peer_input(PeerMessage::ReservationReady {
                    beef: Box::new(verified),
                    beef_bytes: beef,
                })
            }
            PeerRequest::SignRefund { refund } => peer_input(PeerMessage::SignRefund { refund }),
            PeerRequest::GrantToken { token } => peer_input(PeerMessage::GrantToken { token }),
            PeerRequest::Execute { token, claim } => {
                peer_input(PeerMessage::Execute { token, claim })
            }
            PeerRequest::SignCancel { cancel } => peer_input(PeerMessage::SignCancel { cancel }),
            PeerRequest::Cancel { reason } => peer_input(PeerMessage::Cancel { reason }),
        })
    }
}

#[async_trait]
impl PeerTransport for Link {
    async fn send(
        &self,
        peer: &str,
        saga_id: SagaId,
        request: PeerRequest,
    ) -> Result<PeerReply, PeerError> {
        let kind = request.kind();
        let mut modes = self.to.modes.subscribe();
        let mut counted = false;
        let twice = loop {
            match self.to.mode(kind, &mut modes) {
                Mode::Answer => break false,
                Mode::Twice => break true,
                Mode::Drop => return Err(self.unreachable(peer, "dropped")),
                Mode::Hold => {
                    if !counted {
                        self.to.held.fetch_add(1, Ordering::SeqCst);
                        counted = true;
                    }
                    if modes.changed().await.is_err() {
                        return Err(self.unreachable(peer, "endpoint gone"));
                    }
                }
            }
        };
        let Some(driver) = self.to.driver() else {
            return Err(self.unreachable(peer, "gateway down"));
        };
        let failed = |detail: String| PeerError::Failed {
            peer: peer.into(),
            detail,
        };
        let (new_role, input) = self.input(peer, request).await?;
        let again = twice.then(|| input.clone());
        let turn = driver
            .submit(saga_id, new_role, input, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if let Some(input) = again {
            let second = driver.submit(saga_id, new_role, input, None).await;
            let same = matches!(&second, Ok(t) if t.reply == turn.reply && t.appended == 0);
            if !same {
                locked(&self.to.mismatches).push(format!(
                    "{}: first {:?}, again {second:?}",
                    kind.name(),
                    turn.reply
                ));
            }
        }
        turn.reply
            .ok_or_else(|| failed(format!("no reply to {}", kind.name())))
    }
}
