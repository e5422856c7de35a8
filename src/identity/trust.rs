//! The federation's trust: one rustls/webpki verifier pair per trust domain,
//! the binding check, and the only constructor of [`PeerIdentity`].
//!
//! Chain validation, validity periods and CRLs are rustls's
//! `WebPkiClientVerifier` / `WebPkiServerVerifier`; this module writes no
//! certificate validation of its own. The binding check (DESIGN.md §4: "a
//! federated CA must not mint another domain's identities") falls out of
//! having one verifier per domain: a certificate is verified only against the
//! CA of the domain its SPIFFE ID names. When that fails with an unknown
//! issuer, the other domains' verifiers are asked only to name the culprit in
//! the log ("issued by the CA of org-b.example").

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};

use super::federation::{DomainEntry, Federation};
use super::pem::{read_certificates, read_crls, PemError};
use super::spiffe::{CertIdError, Role, SpiffeId, TrustDomain};

/// The federation's CA or CRL material could not be loaded. One line, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A CA bundle or CRL file could not be read or is not PEM of the right kind.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// A CA certificate was refused as a trust anchor.
    #[error("{}: CA certificate of {domain} refused: {detail}", file.display())]
    BadCa {
        /// The CA bundle file.
        file: PathBuf,
        /// The domain it belongs to.
        domain: TrustDomain,
        /// Why.
        detail: String,
    },
    /// A CRL could not be parsed.
    #[error("{}: CRL refused: {detail}", file.display())]
    BadCrl {
        /// The CRL file.
        file: PathBuf,
        /// Why.
        detail: String,
    },
    /// A CRL was not issued by the CA of the domain that lists it.
    #[error("{}: CRL is issued by {issuer}, not by the CA of {domain}", file.display())]
    CrlIssuer {
        /// The CRL file.
        file: PathBuf,
        /// The domain that lists it.
        domain: TrustDomain,
        /// The CRL's issuer name.
        issuer: String,
    },
}

/// Why a certificate (chain) was refused. Each message starts with the SPIFFE
/// ID the certificate *claims* where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The peer sent no certificate.
    #[error("client presented no certificate")]
    NoCertificate,
    /// The certificate carries no usable SPIFFE ID.
    #[error("{0}")]
    NoSpiffeId(CertIdError),
    /// The SPIFFE ID names a domain outside the federation.
    #[error("{id}: trust domain {} is not in the federation", id.domain())]
    UnknownDomain {
        /// The claimed ID.
        id: SpiffeId,
    },
    /// No federated CA issued the certificate.
    #[error("{id}: certificate is not issued by any federated CA")]
    UnknownCa {
        /// The claimed ID.
        id: SpiffeId,
    },
    /// A federated CA minted an identity of another domain.
    #[error("{id}: claims trust domain {} but was issued by the CA of {issuer}", id.domain())]
    DomainMismatch {
        /// The claimed ID.
        id: SpiffeId,
        /// The domain whose CA signed it.
        issuer: TrustDomain,
    },
    /// Past its notAfter.
    #[error("{id}: certificate expired{}", at("not valid after", *not_after))]
    Expired {
        /// The claimed ID.
        id: SpiffeId,
        /// notAfter, UNIX seconds, when rustls reported it.
        not_after: Option<u64>,
    },
    /// Before its notBefore.
    #[error("{id}: certificate not yet valid{}", at("not valid before", *not_before))]
    NotYetValid {
        /// The claimed ID.
        id: SpiffeId,
        /// notBefore, UNIX seconds, when rustls reported it.
        not_before: Option<u64>,
    },
    /// Listed on a loaded CRL of its domain.
    #[error("{id}: certificate revoked (serial {serial})")]
    Revoked {
        /// The claimed ID.
        id: SpiffeId,
        /// Serial number, lower-case hex.
        serial: String,
    },
    /// The role is not one the federation allows for the domain.
    #[error("{id}: role {} is not allowed for trust domain {}", id.role(), id.domain())]
    RoleNotAllowed {
        /// The claimed ID.
        id: SpiffeId,
    },
    /// The server's certificate is valid but is not the peer we meant to call.
    #[error("server presented {presented}, expected {expected}")]
    WrongPeer {
        /// The SPIFFE ID configured for the peer.
        expected: SpiffeId,
        /// The one the certificate carries.
        presented: SpiffeId,
    },
    /// Any other verifier refusal (bad signature, wrong key usage, host name, …).
    #[error("{id}: certificate refused: {detail}")]
    Refused {
        /// The claimed ID.
        id: SpiffeId,
        /// rustls's description.
        detail: String,
    },
}

fn at(what: &str, secs: Option<u64>) -> String {
    secs.map_or_else(String::new, |s| {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        format!(" ({what} {})", humantime::format_rfc3339_seconds(t))
    })
}

impl AuthError {
    /// The rustls error to end the handshake with: the precise TLS alert where
    /// one exists (certificate_expired, certificate_revoked, unknown_ca),
    /// bad_certificate carrying this error otherwise.
    pub fn to_rustls(&self) -> TlsError {
        let ce = match self {
            AuthError::NoCertificate => return TlsError::NoCertificatesPresented,
            AuthError::Expired { .. } => CertificateError::Expired,
            AuthError::NotYetValid { .. } => CertificateError::NotValidYet,
            AuthError::Revoked { .. } => CertificateError::Revoked,
            AuthError::UnknownCa { .. } => CertificateError::UnknownIssuer,
            other => CertificateError::Other(rustls::OtherError(Arc::new(other.clone()))),
        };
        TlsError::InvalidCertificate(ce)
    }
}

/// A peer whose certificate chain the federation verified: the chain ends at
/// the CA of the domain its SPIFFE ID names, it is within its validity, on
/// no loaded CRL, and its role is allowed for its domain.
///
/// Only [`TrustStore`] constructs one; handlers receive it from the
/// authorization layer and never see raw certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    id: SpiffeId,
    serial: String,
}

impl PeerIdentity {
    /// The verified SPIFFE ID.
    pub fn id(&self) -> &SpiffeId {
        &self.id
    }

    /// The verified trust domain.
    pub fn domain(&self) -> &TrustDomain {
        self.id.domain()
    }

    /// The verified role.
    pub fn role(&self) -> Role {
        self.id.role()
    }

    /// The certificate's serial number, lower-case hex (as `escrowd certs revoke --serial` takes it).
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.id, f)
    }
}

struct DomainTrust {
    name: TrustDomain,
    roles: Vec<Role>,
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<WebPkiServerVerifier>,
}

/// The loaded federation: per domain, its verifiers (CA bundle + CRLs) and allowed roles.
/// Immutable; a reload builds a new one.
pub struct TrustStore {
    domains: Vec<DomainTrust>,
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.domains.iter().map(|d| d.name.as_str()))
            .finish()
    }
}

/// The crypto provider escrowd uses everywhere: rustls on ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TrustStore {
    /// Loads every CA bundle and CRL the federation lists and builds the verifiers.
    ///
    /// # Errors
    /// [`TrustError`] naming the first file that is missing, unreadable,
    /// malformed, or a CRL not issued by its domain's CA.
    pub fn load(federation: &Federation) -> Result<TrustStore, TrustError> {
        let provider = crypto_provider();
        let mut domains = Vec::with_capacity(federation.domains.len());
        let mut hints = Vec::new();
        for entry in &federation.domains {
            let d = load_domain(entry, &provider)?;
            hints.extend_from_slice(d.client.root_hint_subjects());
            domains.push(d);
        }
        Ok(TrustStore {
            domains,
            hints,
            provider,
        })
    }

    /// The federated domains, in file order.
    pub fn domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.domains.iter().map(|d| &d.name)
    }

    /// Whether `role` is allowed for `domain` (false for unknown domains).
    pub fn allows(&self, domain: &TrustDomain, role: Role) -> bool {
        self.domain(domain).is_some_and(|d| d.roles.contains(&role))
    }

    fn domain(&self, name: &TrustDomain) -> Option<&DomainTrust> {
        self.domains.iter().find(|d| &d.name == name)
    }

    /// The crypto provider the verifiers use.
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Verifies a client's chain (leaf first) at `now` and returns who it is.
    ///
    /// # Errors
    /// [`AuthError`] naming the fault and the claimed SPIFFE ID.
    pub fn authenticate_client(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<PeerIdentity, AuthError> {
        let (end_entity, intermediates) = chain.split_first().ok_or(AuthError::NoCertificate)?;
        self.authenticate(end_entity, None, |d| {
            d.client
                .verify_client_cert(end_entity, intermediates, now)
                .map(|_| ())
        })
    }

    /// Verifies a server's chain for `server_name` at `now`, and that its
    /// SPIFFE ID is exactly `expected`.
    ///
    /// # Errors
    /// [`AuthError::WrongPeer`] for a valid certificate of someone else;
    /// otherwise as [`TrustStore::authenticate_client`].
    pub fn authenticate_server(
        &self,
        expected: &SpiffeId,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<PeerIdentity, AuthError> {
        self.authenticate(end_entity, Some(expected), |d| {
            d.server
                .verify_server_cert(end_entity, intermediates, server_name, &[], now)
                .map(|_| ())
        })
    }

    fn authenticate(
        &self,
        end_entity: &CertificateDer<'_>,
        expected: Option<&SpiffeId>,
        verify: impl Fn(&DomainTrust) -> Result<(), TlsError>,
    ) -> Result<PeerIdentity, AuthError> {
        let id = SpiffeId::from_certificate(end_entity).map_err(AuthError::NoSpiffeId)?;
        let domain = self
            .domain(id.domain())
            .ok_or_else(|| AuthError::UnknownDomain { id: id.clone() })?;
        if let Err(err) = verify(domain) {
            return Err(self.classify(err, &id, end_entity, &verify));
        }
        if let Some(expected) = expected {
            if &id != expected {
                return Err(AuthError::WrongPeer {
                    expected: expected.clone(),
                    presented: id,
                });
            }
        }
        if !domain.roles.contains(&id.role()) {
            return Err(AuthError::RoleNotAllowed { id });
        }
        Ok(PeerIdentity {
            serial: serial_hex(end_entity),
            id,
        })
    }

    fn classify(
        &self,
        err: TlsError,
        id: &SpiffeId,
        end_entity: &CertificateDer<'_>,
        verify: &impl Fn(&DomainTrust) -> Result<(), TlsError>,
    ) -> AuthError {
        let id = id.clone();
        let TlsError::InvalidCertificate(ce) = err else {
            return AuthError::Refused {
                id,
                detail: err.to_string(),
            };
        };
        match ce {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                // Which federated CA did sign it? Any answer from another
                // domain's verifier but "unknown issuer" means its chain
                // reached that domain's CA.
                let issuer = self
                    .domains
                    .iter()
                    .filter(|d| &d.name != id.domain())
                    .find(|d| {
                        !matches!(
                            verify(d),
                            Err(TlsError::InvalidCertificate(
                                CertificateError::UnknownIssuer | CertificateError::BadSignature
                            ))
                        )
                    });
                match issuer {
                    Some(d) => AuthError::DomainMismatch {
                        id,
                        issuer: d.name.clone(),
                    },
                    None => AuthError::UnknownCa { id },
                }
            }
            CertificateError::Expired => AuthError::Expired {
                id,
                not_after: None,
            },
            CertificateError::ExpiredContext { not_after, .. } => AuthError::Expired {
                id,
                not_after: Some(not_after.as_secs()),
            },
            CertificateError::NotValidYet => AuthError::NotYetValid {
                id,
                not_before: None,
            },
            CertificateError::NotValidYetContext { not_before, .. } => AuthError::NotYetValid {
                id,
                not_before: Some(not_before.as_secs()),
            },
            CertificateError::Revoked => AuthError::Revoked {
                id,
                serial: serial_hex(end_entity),
            },
            other => AuthError::Refused {
                id,
                detail: other.to_string(),
            },
        }
    }
}

fn load_domain(
    entry: &DomainEntry,
    provider: &Arc<CryptoProvider>,
) -> Result<DomainTrust, TrustError> {
    let bad_ca = |detail: String| TrustError::BadCa {
        file: entry.ca.clone(),
        domain: entry.name.clone(),
        detail,
    };
    let cas = read_certificates(&entry.ca)?;
    let mut roots = RootCertStore::empty();
    let mut subjects = Vec::new();
    for ca in &cas {
        let (_, x509) =
            x509_parser::parse_x509_certificate(ca.as_ref()).map_err(|e| bad_ca(e.to_string()))?;
        subjects.push(x509.subject().as_raw().to_vec());
        roots.add(ca.clone()).map_err(|e| bad_ca(e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let mut crls = Vec::new();
    for file in &entry.crls {
        let file_crls = read_crls(file)?;
        for crl in &file_crls {
            check_crl_issuer(file, &entry.name, crl, &subjects)?;
        }
        // Build once per file so a CRL webpki refuses is reported with its file.
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(file_crls.iter().cloned())
            .build()
            .map_err(|e| TrustError::BadCrl {
                file: file.clone(),
                detail: e.to_string(),
            })?;
        crls.extend(file_crls);
    }
    let client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .with_crls(crls.iter().cloned())
        .build()
        .map_err(|e| bad_ca(e.to_string()))?;
    let server = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|e| bad_ca(e.to_string()))?;
    Ok(DomainTrust {
        name: entry.name.clone(),
        roles: entry.roles.clone(),
        client,
        server,
    })
}

fn check_crl_issuer(
    file: &Path,
    domain: &TrustDomain,
    crl: &CertificateRevocationListDer<'_>,
    ca_subjects: &[Vec<u8>],
) -> Result<(), TrustError> {
    let (_, parsed) =
        x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| TrustError::BadCrl {
            file: file.to_owned(),
            detail: e.to_string(),
        })?;
    if ca_subjects
        .iter()
        .any(|s| s.as_slice() == parsed.issuer().as_raw())
    {
        Ok(())
    } else {
        Err(TrustError::CrlIssuer {
            file: file.to_owned(),
            domain: domain.clone(),
            issuer: parsed.issuer().to_string(),
        })
    }
}

/// Describes a TLS failure from tokio-rustls: our [`AuthError`] where the
/// verifier refused a certificate, rustls's own description otherwise.
pub fn describe_tls_error(e: &std::io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>());
    match tls {
        Some(TlsError::InvalidCertificate(CertificateError::Other(other))) => {
            match other.0.downcast_ref::<AuthError>() {
                Some(auth) => auth.to_string(),
                None => other.to_string(),
            }
        }
        Some(tls) => tls.to_string(),
        None => e.to_string(),
    }
}

/// The certificate's serial number as lower-case hex ("?" if it cannot be parsed).
pub fn serial_hex(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .map(|(_, x)| hex::encode(x.raw_serial()))
        .unwrap_or_else(|_| "?".into())
}

/// The server-side rustls verifier: client certificate required and
/// verified by [`TrustStore::authenticate_client`]. Refusals are logged
/// (warn) with the reason; the handshake's span carries the remote address.
#[derive(Debug)]
pub struct FederationClientVerifier {
    trust: Arc<TrustStore>,
}

impl FederationClientVerifier {
    /// A verifier over `trust`.
    pub fn new(trust: Arc<TrustStore>) -> Self {
        FederationClientVerifier { trust }
    }
}

impl ClientCertVerifier for FederationClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.trust.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        match self.trust.authenticate_client(&chain, now) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => {
                tracing::warn!(reason = %e, "client certificate refused");
                Err(e.to_rustls())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The client-side rustls verifier for one peer: the server's chain verified
/// against the CA of the domain its SPIFFE ID names (plus host name, validity
/// and CRLs), and the SPIFFE ID equal to `expected`.
#[derive(Debug)]
pub struct PeerServerVerifier {
    trust: Arc<TrustStore>,
    expected: SpiffeId,
}

impl PeerServerVerifier {
    /// A verifier accepting only `expected`.
    pub fn new(trust: Arc<TrustStore>, expected: SpiffeId) -> Self {
        PeerServerVerifier { trust, expected }
    }
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.trust.authenticate_server(
            &self.expected,
            end_entity,
            intermediates,
            server_name,
            now,
        ) {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                tracing::warn!(reason = %e, expected = %self.expected, "server certificate refused");
                Err(e.to_rustls())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.trust.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust
            .provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
