//! The ONE mapping from every error an RPC handler meets to a gRPC
//! [`Status`] (DESIGN.md §2: "mapped to gRPC Status in one place"). Every
//! match is exhaustive — no `_ =>` arm — so a new error variant anywhere
//! below breaks this file at compile time until someone decides its code.
//!
//! | code | meaning here |
//! | --- | --- |
//! | INVALID_ARGUMENT | the message is malformed whatever our state: a field that does not parse, terms or a token that do not decode or verify, a body whose saga id differs from the metadata, a BEEF that fails SPV |
//! | FAILED_PRECONDITION | well formed, but not now or not here: wrong state, policy denies, a token expired, a chain, counterparty or key we are not configured for, funds short, a reservation not yet confirmed enough |
//! | PERMISSION_DENIED | the caller is not the party (or token holder) it must be |
//! | ALREADY_EXISTS | a reused hashlock or token, an idempotency key of another saga |
//! | NOT_FOUND | no such saga |
//! | ABORTED | lost a race (another step, another saga's output): try again |
//! | UNAVAILABLE | storage, a chain tracker or the blocking pool cannot answer now, the driver is stopping: retry |
//! | DATA_LOSS | a stored record is corrupt |
//! | INTERNAL | our own fault: a transaction we cannot build, a malformed step |
//!
//! Messages say what was wrong in words a caller can act on; they never
//! carry a secret (errors below never hold one).

use saga_core::saga::Reject;
use saga_core::terms::{SagaId, TermsError};
use saga_core::token::TokenError;
use saga_runtime::driver::DriverError;
use saga_runtime::log::{AppendError, ReadError, SecretError};
use saga_runtime::wallet::{UtxoStoreError, WalletError};
use saga_runtime::{TrackerError, VerifyBeefError};
use tonic::{Code, Status};

use super::convert::ConvertError;

/// Why an RPC failed, before it becomes a [`Status`] (`Status::from`).
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// A field of the request is malformed.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The body names another saga than the `escrow-saga-id` metadata the
    /// call was authorized for.
    #[error("field saga_id: {body} differs from the escrow-saga-id metadata {metadata}")]
    SagaIdMismatch {
        /// The body's saga id.
        body: String,
        /// The metadata's saga id (or `none`).
        metadata: String,
    },
    /// The driver refused or failed a turn.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// Reading the event log failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Storing a secret failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The wallet refused or failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// SPV verification of a BEEF field did not succeed.
    #[error("field {field}: {source} (chain {chain_id})")]
    Spv {
        /// The field holding the BEEF.
        field: &'static str,
        /// The chain whose tracker judged it.
        chain_id: String,
        /// Why (boxed: SPV errors are large).
        source: Box<VerifyBeefError>,
    },
    /// A chain tracker could not tell a tip.
    #[error("chain {chain_id}: {source}")]
    Tracker {
        /// The chain.
        chain_id: String,
        /// Why.
        source: TrackerError,
    },
    /// No such saga at this gateway.
    #[error("no saga {0} at this gateway")]
    UnknownSaga(SagaId),
    /// The request names something this gateway is not configured for (a
    /// chain, a counterparty, a policy entry).
    #[error("field {field}: {detail}")]
    NotConfigured {
        /// The field naming it.
        field: &'static str,
        /// What is missing.
        detail: String,
    },
    /// Well formed but refused by a rule that holds now (a notary's
    /// policy, a reservation without enough confirmations).
    #[error("{0}")]
    Precondition(String),
    /// An idempotency key already names a saga whose terms differ from
    /// this request.
    #[error("idempotency key {key:?} already names saga {saga_id}, whose {field} is {existing}, not {requested}")]
    KeyReused {
        /// The key.
        key: String,
        /// The saga it names.
        saga_id: SagaId,
        /// The first field that differs.
        field: &'static str,
        /// The saga's value.
        existing: String,
        /// The request's.
        requested: String,
    },
    /// The operating system's random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// The caller is not one of the saga's gateways (the notary's check).
    #[error("caller {caller} is not a party to saga {saga_id}")]
    NotAParty {
        /// The caller's SPIFFE ID.
        caller: String,
        /// The saga.
        saga_id: SagaId,
    },
    /// A peer message's turn produced no reply (a saga bug).
    #[error("the saga produced no reply to {0}")]
    NoReply(&'static str),
}

/// A handler's result as tonic wants it.
pub fn respond<T>(result: Result<T, RpcError>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(Status::from)
}

impl From<RpcError> for Status {
    fn from(e: RpcError) -> Status {
        let code = code_of(&e);
        Status::new(code, e.to_string())
    }
}

fn code_of(e: &RpcError) -> Code {
    match e {
        RpcError::Convert(_) | RpcError::SagaIdMismatch { .. } => Code::InvalidArgument,
        RpcError::Driver(d) => driver_code(d),
        RpcError::Read(r) => read_code(r),
        RpcError::Secret(s) => match s {
            SecretError::Exists { .. } => Code::AlreadyExists,
            SecretError::Storage(_) => Code::Unavailable,
        },
        RpcError::NotConfigured { .. } | RpcError::Precondition(_) => Code::FailedPrecondition,
        RpcError::KeyReused { .. } => Code::AlreadyExists,
        RpcError::Wallet(w) => wallet_code(w),
        RpcError::Spv { source, .. } => match source.as_ref() {
            VerifyBeefError::Invalid(_) => Code::InvalidArgument,
            VerifyBeefError::Tracker(t) => tracker_code(t),
            VerifyBeefError::Interrupted { .. } => Code::Unavailable,
        },
        RpcError::Tracker { source, .. } => tracker_code(source),
        RpcError::UnknownSaga(_) => Code::NotFound,
        RpcError::NotAParty { .. } => Code::PermissionDenied,
        RpcError::Random | RpcError::NoReply(_) => Code::Internal,
    }
}

fn tracker_code(e: &TrackerError) -> Code {
    match e {
        TrackerError::Unavailable { .. }
        | TrackerError::Refused { .. }
        | TrackerError::MalformedResponse { .. } => Code::Unavailable,
    }
}

fn driver_code(e: &DriverError) -> Code {
    match e {
        DriverError::Rejected(r) => reject_code(r),
        DriverError::Append(a) => append_code(a),
        DriverError::Read(r) => read_code(r),
        DriverError::Context(_) => Code::FailedPrecondition,
        DriverError::UnknownSaga(_) => Code::NotFound,
        DriverError::Stopped | DriverError::Interrupted { .. } => Code::Unavailable,
    }
}

fn read_code(e: &ReadError) -> Code {
    match e {
        ReadError::Storage(_) => Code::Unavailable,
        ReadError::Corrupt { .. } => Code::DataLoss,
    }
}

fn append_code(e: &AppendError) -> Code {
    match e {
        AppendError::MalformedStep { .. } => Code::Internal,
        AppendError::SeqConflict { .. } | AppendError::UtxoUnavailable { .. } => Code::Aborted,
        AppendError::TokenConsumed { .. }
        | AppendError::HashlockReused { .. }
        | AppendError::IdempotencyConflict { .. }
        | AppendError::ReplyConflict { .. } => Code::AlreadyExists,
        AppendError::Storage(_) => Code::Unavailable,
    }
}

/// The code of a saga's refusal.
pub fn reject_code(e: &Reject) -> Code {
    match e {
        Reject::WrongState { .. } | Reject::PolicyDenied(_) | Reject::NotAllowed { .. } => {
            Code::FailedPrecondition
        }
        Reject::NotAParty { .. } => Code::PermissionDenied,
        Reject::PeerMisbehaved(_) | Reject::Unrelated { .. } => Code::InvalidArgument,
        Reject::Terms(t) => terms_code(t),
        Reject::Token(t) => token_code(t),
        Reject::TokenReused(_) => Code::AlreadyExists,
        Reject::Build { .. } => Code::Internal,
    }
}

fn terms_code(e: &TermsError) -> Code {
    match e {
        TermsError::Decode(_)
        | TermsError::BadIdentity { .. }
        | TermsError::BadField { .. }
        | TermsError::SignatureEncoding
        | TermsError::BadSignature { .. } => Code::InvalidArgument,
        // Our own key does not match the terms we were given: configuration.
        TermsError::KeyMismatch { .. } => Code::Internal,
        TermsError::Denied(_) => Code::FailedPrecondition,
        TermsError::HashlockReused { .. } => Code::AlreadyExists,
    }
}

fn token_code(e: &TokenError) -> Code {
    match e {
        TokenError::Decode(_)
        | TokenError::BadIdentity { .. }
        | TokenError::SignatureEncoding
        | TokenError::WrongIssuerKey
        | TokenError::BadSignature
        | TokenError::WrongGrant => Code::InvalidArgument,
        TokenError::WrongHolder { .. } => Code::PermissionDenied,
        TokenError::Expired { .. } => Code::FailedPrecondition,
    }
}

fn wallet_code(e: &WalletError) -> Code {
    match e {
        WalletError::UnknownChain { .. }
        | WalletError::InsufficientFunds { .. }
        | WalletError::Selection { .. }
        | WalletError::NotOurs { .. } => Code::FailedPrecondition,
        WalletError::AmountBelowDust { .. }
        | WalletError::NoSuchOutput { .. }
        | WalletError::NotImportable { .. } => Code::InvalidArgument,
        WalletError::Build(_) | WalletError::FeeMismatch { .. } => Code::Internal,
        WalletError::Store(s) => match s {
            UtxoStoreError::UtxoUnavailable { .. } => Code::Aborted,
            UtxoStoreError::Storage(_) => Code::Unavailable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use saga_core::terms::Role;
    use saga_core::token::TokenId;

    fn id() -> SagaId {
        SagaId::new_v7(1_700_000_000_000, &[1; 10])
    }

    fn status(e: RpcError) -> (Code, String) {
        let s = Status::from(e);
        (s.code(), s.message().to_owned())
    }

    #[test]
    fn each_kind_of_fault_gets_its_code_and_says_what() {
        let cases: Vec<(RpcError, Code, &str)> = vec![
            (
                ConvertError::Missing {
                    field: "terms".into(),
                }
                .into(),
                Code::InvalidArgument,
                "field terms: missing",
            ),
            (
                DriverError::Rejected(Reject::WrongState {
                    state: "executing",
                    input: "proposal",
                })
                .into(),
                Code::FailedPrecondition,
                "proposal is not accepted while the saga is executing",
            ),
            (
                DriverError::Rejected(Reject::NotAParty {
                    caller: "spiffe://org-c.example/gateway/c".into(),
                })
                .into(),
                Code::PermissionDenied,
                "caller spiffe://org-c.example/gateway/c is not a party to this saga",
            ),
            (
                DriverError::Rejected(Reject::Token(TokenError::WrongHolder {
                    holder: "h".into(),
                    caller: "c".into(),
                }))
                .into(),
                Code::PermissionDenied,
                "token: token is held by h, not by the caller c",
            ),
            (
                DriverError::Rejected(Reject::TokenReused(TokenId([7; 16]))).into(),
                Code::AlreadyExists,
                "was already used",
            ),
            (
                DriverError::Append(AppendError::HashlockReused {
                    hashlock: [0xab; 32],
                    by: id(),
                })
                .into(),
                Code::AlreadyExists,
                "was seen before",
            ),
            (
                DriverError::Rejected(Reject::Terms(TermsError::BadSignature {
                    role: Role::Buyer,
                }))
                .into(),
                Code::InvalidArgument,
                "the buyer's signature does not verify over the terms hash",
            ),
            (
                DriverError::Append(AppendError::Storage("disk full".into())).into(),
                Code::Unavailable,
                "event log storage: disk full",
            ),
            (
                ReadError::Corrupt {
                    what: "events/x".into(),
                    detail: "bad".into(),
                }
                .into(),
                Code::DataLoss,
                "events/x",
            ),
            (
                DriverError::UnknownSaga(id()).into(),
                Code::NotFound,
                "no saga",
            ),
            (
                RpcError::SagaIdMismatch {
                    body: "a".into(),
                    metadata: "b".into(),
                },
                Code::InvalidArgument,
                "field saga_id: a differs from the escrow-saga-id metadata b",
            ),
            (
                WalletError::AmountBelowDust {
                    amount: saga_core::Satoshis(0),
                }
                .into(),
                Code::InvalidArgument,
                "below the dust limit",
            ),
        ];
        for (e, code, text) in cases {
            let (c, message) = status(e);
            assert_eq!(c, code, "{message}");
            assert!(message.contains(text), "{message:?} lacks {text:?}");
        }
    }
}
