//! Identity federation and mutual TLS (DESIGN.md §4): who is calling, for sure.
//!
//! Every connection between escrowd processes is mutual TLS (rustls on ring,
//! TLS 1.3). A peer is accepted only if its certificate chain ends at the CA
//! of the trust domain its SPIFFE ID names, is within its validity, is on no
//! loaded CRL, and carries a role the federation allows for that domain;
//! then every RPC passes one authorization layer that applies the permission
//! matrix and hands the handler a [`PeerIdentity`]. Certificate parsing and
//! chain validation are rustls/webpki's and x509-parser's, never ours.
//! `docs/identity.md` describes the file formats, the matrix, reloads and
//! the error messages.
//!
//! # Layout
//! - [`spiffe`]: `SpiffeId`, `TrustDomain`, `Role`; reading the URI SAN.
//! - [`federation`]: the federation file (TOML), errors with file:line:column.
//! - [`pem`]: reading PEM certificates, keys and CRLs.
//! - [`trust`]: `TrustStore` (one webpki verifier pair per domain), the
//!   binding check, `PeerIdentity`, and the rustls verifiers built on them.
//! - [`tls`]: our own identity, server and client configs, reload (SIGHUP or
//!   file change).
//! - [`server`]: the TLS accept loop feeding tonic verified connections.
//! - [`client`]: the TLS connector for tonic channels to one expected peer.
//! - [`authz`]: the permission matrix and the tower layer every service uses.
//! - [`issue`]: dev CAs, leaves and CRLs with rcgen (`escrowd certs`).

pub mod authz;
pub mod client;
pub mod federation;
pub mod issue;
pub mod pem;
pub mod server;
pub mod spiffe;
pub mod tls;
pub mod trust;

pub use authz::{
    authorize, caller, Access, AuthLayer, MethodRules, PermissionDenied, Rule, SagaParties,
};
pub use client::MtlsConnector;
pub use federation::Federation;
pub use spiffe::{Role, SpiffeId, TrustDomain};
pub use tls::{IdentityHandle, TlsSettings};
pub use trust::{AuthError, PeerIdentity, TrustStore};
