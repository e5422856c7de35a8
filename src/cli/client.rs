//! The client plumbing of the operator's commands (`escrowd swap …`,
//! `escrowd wallet …`): which gateway, who we are, one mTLS channel, and
//! how a gRPC status becomes a message and an exit code.
//!
//! Every setting comes from a flag, else from an environment variable:
//!
//! | flag | env | meaning |
//! | --- | --- | --- |
//! | `--gateway URL` | `ESCROWD_GATEWAY` | `https://host:port` of the gateway |
//! | `--expect-id ID` | `ESCROWD_EXPECT_ID` | the gateway's SPIFFE ID (default: derived, below) |
//! | `--identity DIR/NAME` | `ESCROWD_IDENTITY` | `DIR/NAME.pem`, `DIR/NAME.key`, `DIR/../federation.toml` (the `certs init` layout) |
//! | `--cert FILE` | `ESCROWD_CERT` | the operator's certificate (PEM) |
//! | `--key FILE` | `ESCROWD_KEY` | its private key (PEM) |
//! | `--federation FILE` | `ESCROWD_FEDERATION` | federation.toml |
//!
//! `--cert`, `--key` and `--federation` each override what `--identity`
//! implies. Without `--expect-id` the gateway is taken to be
//! `spiffe://<our domain>/gateway/<first label of our domain>` — the name
//! `escrowd certs init` gives a domain's gateway (`org-a.example` →
//! `gateway/org-a`); name it whenever your gateway is called otherwise.
//!
//! Exit codes of a failed call ([`status_failure`]): 1 when the gateway
//! answered and refused (INVALID_ARGUMENT, FAILED_PRECONDITION,
//! PERMISSION_DENIED, NOT_FOUND, ALREADY_EXISTS, ABORTED, and the server
//! faults INTERNAL and DATA_LOSS); 2 when it could not be reached or did not
//! answer in time (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN —
//! tonic's code for transport faults), as for any other unusable input.
//!
//! # Layout
//! - [`GatewayArgs`] (flattened into each subcommand), [`GatewayArgs::connect`].
//! - [`status_failure`], [`code_name`].
//! - [`block_on`]: a current-thread runtime for one command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use tonic::transport::Channel;
use tonic::Code;

use super::Failure;
use crate::identity::spiffe::Role;
use crate::identity::{IdentityHandle, SpiffeId, TlsSettings};
use crate::rpc::peer_client::{mtls_channel, Timeouts};

/// How long a command waits for the TCP connect plus TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a command waits for one call's answer.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which gateway to call and as whom (module docs for the env variables).
#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// The gateway, https://host:port [env ESCROWD_GATEWAY].
    #[arg(long, value_name = "URL", global = true)]
    pub gateway: Option<String>,
    /// The gateway's SPIFFE ID [env ESCROWD_EXPECT_ID; default
    /// spiffe://<our domain>/gateway/<its first label>].
    #[arg(long, value_name = "SPIFFE_ID", global = true)]
    pub expect_id: Option<String>,
    /// Shorthand for DIR/NAME.pem, DIR/NAME.key and DIR/../federation.toml
    /// [env ESCROWD_IDENTITY].
    #[arg(long, value_name = "DIR/NAME", global = true)]
    pub identity: Option<PathBuf>,
    /// The operator's certificate, PEM [env ESCROWD_CERT].
    #[arg(long, value_name = "FILE", global = true)]
    pub cert: Option<PathBuf>,
    /// The operator's private key, PEM [env ESCROWD_KEY].
    #[arg(long, value_name = "FILE", global = true)]
    pub key: Option<PathBuf>,
    /// The federation file [env ESCROWD_FEDERATION].
    #[arg(long, value_name = "FILE", global = true)]
    pub federation: Option<PathBuf>,
    /// Print JSON on stdout (docs/cli-json.md) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `DIR/NAME` + `ext`, keeping dots already in NAME.
fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

impl GatewayArgs {
    /// The identity files: flags, then `--identity`, then the environment.
    ///
    /// # Errors
    /// [`Failure::Usage`] naming the file that is not given.
    pub fn tls_settings(&self) -> Result<TlsSettings, Failure> {
        let shorthand = self
            .identity
            .clone()
            .or_else(|| env_path("ESCROWD_IDENTITY"));
        let implied = shorthand.as_ref().map(|base| {
            let federation = base
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new(""))
                .join("federation.toml");
            (with_ext(base, ".pem"), with_ext(base, ".key"), federation)
        });
        let pick = |flag: &Option<PathBuf>,
                    env: &str,
                    nth: fn(&(PathBuf, PathBuf, PathBuf)) -> &PathBuf,
                    what: &str| {
            flag.clone()
                .or_else(|| implied.as_ref().map(|i| nth(i).clone()))
                .or_else(|| env_path(env))
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "no {what}: give --{what} FILE or --identity DIR/NAME (or set {env})"
                    ))
                })
        };
        Ok(TlsSettings {
            cert: pick(&self.cert, "ESCROWD_CERT", |i| &i.0, "cert")?,
            key: pick(&self.key, "ESCROWD_KEY", |i| &i.1, "key")?,
            federation: pick(
                &self.federation,
                "ESCROWD_FEDERATION",
                |i| &i.2,
                "federation",
            )?,
        })
    }

    /// Loads the operator's identity and makes a lazy mTLS channel to the
    /// gateway that accepts only the expected SPIFFE ID. Nothing is dialled
    /// until the first call.
    ///
    /// # Errors
    /// [`Failure::Usage`]: no or a malformed `--gateway` or `--expect-id`,
    /// an unusable identity.
    pub fn connect(&self) -> Result<Channel, Failure> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = self
            .gateway
            .clone()
            .or_else(|| {
                std::env::var("ESCROWD_GATEWAY")
                    .ok()
                    .filter(|v| !v.is_empty())
            })
            .ok_or_else(|| {
                Failure::Usage(
                    "no gateway: give --gateway https://HOST:PORT (or set ESCROWD_GATEWAY)".into(),
                )
            })?;
        if !url.starts_with("https://") {
            return Err(Failure::Usage(format!(
                "--gateway {url:?}: expected https://HOST:PORT"
            )));
        }
        let identity = IdentityHandle::load(self.tls_settings()?)
            .map_err(|e| Failure::Usage(format!("identity: {e}")))?;
        let expected = self.expected_id(&identity)?;
        mtls_channel(
            &identity,
            &expected,
            &url,
            Timeouts {
                connect: CONNECT_TIMEOUT,
                request: CALL_TIMEOUT,
            },
        )
        .map_err(|e| Failure::Usage(format!("--gateway: {e}")))
    }

    fn expected_id(&self, identity: &IdentityHandle) -> Result<SpiffeId, Failure> {
        let given = self.expect_id.clone().or_else(|| {
            std::env::var("ESCROWD_EXPECT_ID")
                .ok()
                .filter(|v| !v.is_empty())
        });
        let id = match given {
            Some(text) => text
                .parse::<SpiffeId>()
                .map_err(|e| Failure::Usage(format!("--expect-id {text:?}: {e}")))?,
            None => {
                let own = identity.own_id();
                let domain = own.domain().clone();
                let name = domain.first_label().to_owned();
                SpiffeId::new(domain, Role::Gateway, &name).map_err(|e| {
                    Failure::Usage(format!(
                        "cannot derive the gateway's SPIFFE ID from {own} ({e}): give --expect-id"
                    ))
                })?
            }
        };
        if id.role() != Role::Gateway {
            return Err(Failure::Usage(format!(
                "--expect-id {id}: the role is {}, not gateway",
                id.role()
            )));
        }
        Ok(id)
    }
}

/// The status code as the gRPC spec spells it (`PERMISSION_DENIED`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A failed call as `<code>: <message>` with its exit code (module docs).
pub fn status_failure(status: tonic::Status) -> Failure {
    let mut message = status.message().to_owned();
    // Transport faults carry their cause in the source chain, not the message.
    let mut source = std::error::Error::source(&status);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    let exit = match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => 2,
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::FailedPrecondition
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss
        | Code::Unauthenticated => 1,
    };
    Failure::Status {
        code: code_name(status.code()),
        message,
        exit,
    }
}

/// Runs one command's future on a current-thread runtime.
///
/// # Errors
/// [`Failure::Usage`] when the runtime cannot start; else the future's.
pub fn block_on<F: std::future::Future<Output = Result<(), Failure>>>(
    future: F,
) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_shorthand_names_the_certs_init_files() {
        let args = GatewayArgs {
            gateway: None,
            expect_id: None,
            identity: Some(PathBuf::from("certs/org-a.example/operator-admin")),
            cert: None,
            key: Some(PathBuf::from("other.key")),
            federation: None,
            json: false,
        };
        let s = args.tls_settings().unwrap();
        assert_eq!(
            s.cert,
            PathBuf::from("certs/org-a.example/operator-admin.pem")
        );
        assert_eq!(s.key, PathBuf::from("other.key"));
        assert_eq!(s.federation, PathBuf::from("certs/federation.toml"));
    }

    #[test]
    fn refusals_exit_1_and_transport_faults_exit_2() {
        let exit = |code| match status_failure(tonic::Status::new(code, "m")) {
            Failure::Status { exit, code, .. } => (code, exit),
            other => panic!("{other:?}"),
        };
        assert_eq!(exit(Code::PermissionDenied), ("PERMISSION_DENIED", 1));
        assert_eq!(exit(Code::NotFound), ("NOT_FOUND", 1));
        assert_eq!(exit(Code::Unavailable), ("UNAVAILABLE", 2));
    }
}
