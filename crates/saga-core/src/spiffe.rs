//! SPIFFE ID and trust-domain text checks (DESIGN.md §4).
//!
//! escrowd identities are `spiffe://<trust-domain>/<role>/<name>` with role
//! one of `gateway`, `operator`, `notary`, `observer`. This module only checks
//! and splits the text (SPIFFE ID standard §2: trust domain of lowercase
//! letters, digits, `.`, `-`, `_`, at most 255 bytes; path segments of
//! letters, digits, `.`, `-`, `_`, never `.` or `..`). Certificates and the
//! federation are the gateway's identity module's job; terms and tokens carry
//! identities as these checked strings.

/// Longest trust domain name, in bytes (SPIFFE ID standard §2.1).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// Longest SPIFFE ID, in bytes (SPIFFE ID standard §2.3: URIs of at most 2048 bytes).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// The roles an escrowd identity may name (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A gateway: a party to sagas.
    Gateway,
    /// An operator of one organisation.
    Operator,
    /// A notary that approves swaps.
    Notary,
    /// An observer that subscribes to saga events.
    Observer,
}

impl Role {
    /// Every role, in the order documented.
    pub const ALL: [Role; 4] = [Role::Gateway, Role::Operator, Role::Notary, Role::Observer];

    /// Whether certificates of this role also serve (gateways and notaries
    /// run servers), so carry serverAuth and host-name SANs.
    pub fn serves(self) -> bool {
        matches!(self, Role::Gateway | Role::Notary)
    }

    /// The role a path segment names, if any.
    pub fn from_segment(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The path segment naming the role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Operator => "operator",
            Role::Notary => "notary",
            Role::Observer => "observer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a text is not an escrowd SPIFFE ID or trust domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SpiffeError {
    /// The text does not start with `spiffe://`.
    #[error("does not start with spiffe://")]
    NotSpiffeUri,
    /// The trust domain is empty, too long, or has a character outside `[a-z0-9._-]`.
    #[error("invalid trust domain (lowercase letters, digits, '.', '-', '_'; 1 to 255 bytes)")]
    BadTrustDomain,
    /// The path is not `/<role>/<name>` with valid segments.
    #[error("path must be /<role>/<name> with segments of letters, digits, '.', '-', '_'")]
    BadPath,
    /// The role segment is not one of gateway, operator, notary, observer.
    #[error("unknown role (gateway, operator, notary, observer)")]
    UnknownRole,
    /// The ID is longer than [`MAX_SPIFFE_ID_LEN`] bytes.
    #[error("longer than 2048 bytes")]
    TooLong,
}

/// A checked escrowd SPIFFE ID, split into its parts (borrowing the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiffeParts<'a> {
    /// The trust domain, e.g. `org-a.example`.
    pub trust_domain: &'a str,
    /// The role the path names.
    pub role: Role,
    /// The workload name, e.g. `ga`.
    pub name: &'a str,
}

/// Checks a trust domain name (`org-a.example`).
///
/// # Errors
/// [`SpiffeError::BadTrustDomain`].
pub fn check_trust_domain(text: &str) -> Result<(), SpiffeError> {
    let ok = !text.is_empty()
        && text.len() <= MAX_TRUST_DOMAIN_LEN
        && text.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(SpiffeError::BadTrustDomain)
    }
}

fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Checks and splits an escrowd SPIFFE ID `spiffe://<trust-domain>/<role>/<name>`.
///
/// # Errors
/// [`SpiffeError`] naming the first fault.
pub fn parse_spiffe_id(text: &str) -> Result<SpiffeParts<'_>, SpiffeError> {
    if text.len() > MAX_SPIFFE_ID_LEN {
        return Err(SpiffeError::TooLong);
    }
    let rest = text
        .strip_prefix("spiffe://")
        .ok_or(SpiffeError::NotSpiffeUri)?;
    let (trust_domain, path) = rest.split_once('/').ok_or(SpiffeError::BadPath)?;
    check_trust_domain(trust_domain)?;
    let (role, name) = path.split_once('/').ok_or(SpiffeError::BadPath)?;
    if !is_segment(role) || !is_segment(name) {
        return Err(SpiffeError::BadPath);
    }
    let role = Role::from_segment(role).ok_or(SpiffeError::UnknownRole)?;
    Ok(SpiffeParts {
        trust_domain,
        role,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_valid_ids_and_names_the_fault_of_invalid_ones() {
        assert_eq!(
            parse_spiffe_id("spiffe://org-a.example/gateway/ga"),
            Ok(SpiffeParts {
                trust_domain: "org-a.example",
                role: Role::Gateway,
                name: "ga"
            })
        );
        assert_eq!(
            parse_spiffe_id("https://org-a.example/gateway/ga"),
            Err(SpiffeError::NotSpiffeUri)
        );
        assert_eq!(
            parse_spiffe_id("spiffe://Org-A/gateway/ga"),
            Err(SpiffeError::BadTrustDomain)
        );
        assert_eq!(
            parse_spiffe_id("spiffe://org-a.example/gateway"),
            Err(SpiffeError::BadPath)
        );
        assert_eq!(
            parse_spiffe_id("spiffe://org-a.example/gateway/ga/x"),
            Err(SpiffeError::BadPath)
        );
        assert_eq!(
            parse_spiffe_id("spiffe://org-a.example/gateway/.."),
            Err(SpiffeError::BadPath)
        );
        assert_eq!(
            parse_spiffe_id("spiffe://org-a.example/admin/ga"),
            Err(SpiffeError::UnknownRole)
        );
        assert_eq!(check_trust_domain("org-b.example"), Ok(()));
        assert_eq!(check_trust_domain(""), Err(SpiffeError::BadTrustDomain));
    }
}
