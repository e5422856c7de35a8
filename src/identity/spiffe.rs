//! SPIFFE IDs as escrowd uses them: `spiffe://<trust-domain>/<role>/<name>`
//! (DESIGN.md §4), and reading one from a certificate's URI SAN.
//!
//! The syntax follows the SPIFFE ID specification (SPIFFE-ID.md §2): a
//! lower-case trust domain of `[a-z0-9._-]`, path segments of
//! `[A-Za-z0-9._-]` that are neither empty, `.` nor `..`, no query, fragment,
//! port or user info, at most 2,048 bytes. escrowd narrows the path to exactly
//! two segments, a [`Role`] and a name. An X.509-SVID carries exactly one URI
//! SAN (X509-SVID.md §2); a certificate with none or several is refused.

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::CertificateDer;

/// Longest SPIFFE ID accepted, in bytes (SPIFFE-ID.md §2.3).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;
/// Longest trust domain name accepted, in bytes (SPIFFE-ID.md §2.1).
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

/// Why a string is not an escrowd SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    /// It does not start with `spiffe://`.
    #[error("{0:?} is not a SPIFFE ID (it must start with spiffe://)")]
    NotSpiffe(String),
    /// Longer than [`MAX_SPIFFE_ID_BYTES`].
    #[error("SPIFFE ID is {0} bytes long; at most 2048 are allowed")]
    TooLong(usize),
    /// The trust domain is empty, too long, or has a character outside `[a-z0-9._-]`.
    #[error("trust domain {0:?} is invalid: use lower-case letters, digits, '.', '-' and '_'")]
    BadTrustDomain(String),
    /// The path is not `/<role>/<name>` with valid segments.
    #[error("SPIFFE ID {id:?}: {reason}")]
    BadPath {
        /// The whole ID as given.
        id: String,
        /// What is wrong with the path.
        reason: &'static str,
    },
    /// The first path segment is not one of the four roles.
    #[error("unknown role {0:?}: expected gateway, operator, notary or observer")]
    UnknownRole(String),
}

/// Why no SPIFFE ID could be read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertIdError {
    /// x509-parser could not parse the DER.
    #[error("certificate cannot be parsed: {0}")]
    Unparsable(String),
    /// The certificate has no URI SAN.
    #[error("certificate carries no SPIFFE ID (no URI subject alternative name)")]
    NoSpiffeId,
    /// The certificate has more than one URI SAN (X509-SVID.md §2 allows one).
    #[error("certificate carries {0} URI subject alternative names; an SVID has exactly one")]
    SeveralUris(usize),
    /// The URI SAN is not a valid escrowd SPIFFE ID.
    #[error("certificate's URI SAN is not a valid SPIFFE ID: {0}")]
    Malformed(SpiffeError),
}

/// One organisation's identity namespace, e.g. `org-a.example` (DESIGN.md §1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// The name, e.g. `org-a.example`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first DNS label, e.g. `org-a` for `org-a.example`; used to name dev leaves.
    pub fn first_label(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeError;

    /// Parses a trust domain name.
    ///
    /// # Errors
    /// [`SpiffeError::BadTrustDomain`] when empty, longer than 255 bytes or
    /// with a character outside `[a-z0-9._-]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        saga_core::spiffe::check_trust_domain(s)
            .map(|()| TrustDomain(s.to_owned()))
            .map_err(|_| SpiffeError::BadTrustDomain(s.to_owned()))
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a workload is allowed to be (DESIGN.md §4): the one definition in
/// `saga_core::spiffe`, shared with terms and tokens.
pub use saga_core::spiffe::Role;

/// Parses a role name (`gateway`, `operator`, `notary`, `observer`).
///
/// # Errors
/// [`SpiffeError::UnknownRole`] for anything else.
pub fn parse_role(s: &str) -> Result<Role, SpiffeError> {
    Role::from_segment(s).ok_or_else(|| SpiffeError::UnknownRole(s.to_owned()))
}

/// `spiffe://<trust-domain>/<role>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    domain: TrustDomain,
    role: Role,
    name: String,
}

impl SpiffeId {
    /// Builds an ID from its parts.
    ///
    /// # Errors
    /// [`SpiffeError::BadPath`] when `name` is not a valid path segment.
    pub fn new(domain: TrustDomain, role: Role, name: &str) -> Result<Self, SpiffeError> {
        format!("spiffe://{domain}/{role}/{name}").parse()
    }

    /// The trust domain the ID names.
    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// The role segment.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The name segment.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the SPIFFE ID from a DER certificate's single URI SAN (x509-parser).
    ///
    /// This is extraction only: it says nothing about whether the certificate
    /// is trusted. Only [`super::trust::TrustStore`] decides that.
    ///
    /// # Errors
    /// [`CertIdError`] when the DER does not parse, has no URI SAN or several,
    /// or the URI is not a valid escrowd SPIFFE ID.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<Self, CertIdError> {
        let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| CertIdError::Unparsable(e.to_string()))?;
        let san = x509
            .subject_alternative_name()
            .map_err(|e| CertIdError::Unparsable(e.to_string()))?;
        let uris: Vec<&str> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
                _ => None,
            })
            .collect();
        match uris.as_slice() {
            [] => Err(CertIdError::NoSpiffeId),
            [uri] => uri.parse().map_err(CertIdError::Malformed),
            many => Err(CertIdError::SeveralUris(many.len())),
        }
    }
}

const PATH_RULE: &str =
    "path must be exactly /<role>/<name>, each segment of [A-Za-z0-9._-] and not '.' or '..'";

impl FromStr for SpiffeId {
    type Err = SpiffeError;

    /// Parses `spiffe://<trust-domain>/<role>/<name>` with the one set of
    /// rules in `saga_core::spiffe::parse_spiffe_id`.
    ///
    /// # Errors
    /// [`SpiffeError`] naming the first fault: scheme, length, trust domain,
    /// path shape or role.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use saga_core::spiffe::SpiffeError as Core;
        match saga_core::spiffe::parse_spiffe_id(s) {
            Ok(parts) => Ok(SpiffeId {
                domain: TrustDomain(parts.trust_domain.to_owned()),
                role: parts.role,
                name: parts.name.to_owned(),
            }),
            Err(Core::NotSpiffeUri) => Err(SpiffeError::NotSpiffe(s.to_owned())),
            Err(Core::TooLong) => Err(SpiffeError::TooLong(s.len())),
            Err(Core::BadTrustDomain) => {
                let rest = s.strip_prefix("spiffe://").unwrap_or(s);
                let domain = rest.split('/').next().unwrap_or(rest);
                Err(SpiffeError::BadTrustDomain(domain.to_owned()))
            }
            Err(Core::BadPath) => Err(SpiffeError::BadPath {
                id: s.to_owned(),
                reason: PATH_RULE,
            }),
            Err(Core::UnknownRole) => {
                let role = s.split('/').nth(3).unwrap_or_default();
                Err(SpiffeError::UnknownRole(role.to_owned()))
            }
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}/{}/{}", self.domain, self.role, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_round_trip() {
        let id: SpiffeId = "spiffe://org-a.example/gateway/org-a".parse().unwrap();
        assert_eq!(id.domain().as_str(), "org-a.example");
        assert_eq!(id.role(), Role::Gateway);
        assert_eq!(id.name(), "org-a");
        assert_eq!(id.to_string(), "spiffe://org-a.example/gateway/org-a");
    }

    #[test]
    fn refuses_malformed_ids() {
        let cases = [
            ("https://org-a.example/gateway/x", "NotSpiffe"),
            ("spiffe://Org-A.example/gateway/x", "BadTrustDomain"),
            ("spiffe://org-a.example:443/gateway/x", "BadTrustDomain"),
            ("spiffe://user@org-a.example/gateway/x", "BadTrustDomain"),
            ("spiffe://org-a.example", "BadPath"),
            ("spiffe://org-a.example/gateway", "BadPath"),
            ("spiffe://org-a.example/gateway/x/y", "BadPath"),
            ("spiffe://org-a.example/gateway/", "BadPath"),
            ("spiffe://org-a.example/gateway/..", "BadPath"),
            ("spiffe://org-a.example/gateway/x?y", "BadPath"),
            ("spiffe://org-a.example/gateway/x#y", "BadPath"),
            ("spiffe://org-a.example/admin/x", "UnknownRole"),
            ("spiffe:///gateway/x", "BadTrustDomain"),
        ];
        for (text, kind) in cases {
            let err = text.parse::<SpiffeId>().unwrap_err();
            let got = format!("{err:?}");
            assert!(got.starts_with(kind), "{text}: expected {kind}, got {got}");
        }
        let long = format!("spiffe://a/gateway/{}", "x".repeat(2048));
        assert_eq!(
            long.parse::<SpiffeId>().unwrap_err(),
            SpiffeError::TooLong(long.len())
        );
    }

    #[test]
    fn new_checks_the_name_segment() {
        let d: TrustDomain = "org-b.example".parse().unwrap();
        assert!(SpiffeId::new(d.clone(), Role::Observer, "o1").is_ok());
        assert!(matches!(
            SpiffeId::new(d, Role::Observer, "a/b"),
            Err(SpiffeError::BadPath { .. })
        ));
    }
}
