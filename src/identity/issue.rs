//! Development certificates with rcgen: the CAs, leaves and CRLs behind
//! `escrowd certs init|issue|revoke` (DESIGN.md §4, §7). Nothing made here
//! is production key material.
//!
//! # Layout of a certs directory
//! ```text
//! DIR/federation.toml                 every domain, its CA, roles and CRL
//! DIR/<domain>/ca.pem, ca.key         the domain's CA (key mode 0600)
//! DIR/<domain>/crl.pem                its CRL (empty until `certs revoke`)
//! DIR/<domain>/<role>-<name>.pem|.key a leaf for spiffe://<domain>/<role>/<name>
//! ```
//!
//! Serial numbers are 16 random bytes (rcgen's default derives them from
//! the key, so two certificates for one key would collide in a CRL).
//! Gateway and notary leaves carry serverAuth and clientAuth and the SANs
//! `localhost` and `127.0.0.1`; operator and observer leaves carry
//! clientAuth only.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::federation::Federation;
use super::pem::PemError;
use super::spiffe::{Role, SpiffeError, SpiffeId, TrustDomain};

/// Seconds in a day.
const DAY: u64 = 86_400;
/// How far before "now" dev certificates start, in seconds, to absorb clock skew.
pub const BACKDATE_SECS: u64 = 3_600;

/// Issuing or writing dev certificates failed. One line, naming the file where there is one.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists and `force` was not given.
    #[error("{}: already exists (pass --force to overwrite)", file.display())]
    Exists {
        /// The file.
        file: PathBuf,
    },
    /// A PEM input could not be used.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// An existing CA certificate or key could not be loaded.
    #[error("{}: {detail}", file.display())]
    BadCa {
        /// The CA file.
        file: PathBuf,
        /// Why.
        detail: String,
    },
    /// An existing CRL could not be read back.
    #[error("{}: existing CRL cannot be parsed: {detail}", file.display())]
    BadCrl {
        /// The CRL file.
        file: PathBuf,
        /// Why.
        detail: String,
    },
    /// rcgen refused the parameters.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The operating system's random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// A time outside what X.509 can carry.
    #[error("time {0} (UNIX seconds) is out of range")]
    Time(u64),
    /// A name or ID is invalid.
    #[error(transparent)]
    Spiffe(#[from] SpiffeError),
    /// A serial number is not hex.
    #[error("serial {0:?} is not hexadecimal")]
    BadSerial(String),
}

/// A validity period, UNIX seconds, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: u64,
    /// notAfter.
    pub not_after: u64,
}

impl Validity {
    /// From `now - BACKDATE_SECS` to `now + days` days.
    pub fn days_from(now: u64, days: u32) -> Validity {
        Validity {
            not_before: now.saturating_sub(BACKDATE_SECS),
            not_after: now + u64::from(days) * DAY,
        }
    }
}

fn datetime(secs: u64) -> Result<OffsetDateTime, IssueError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(IssueError::Time(secs))
}

/// 16 random bytes, top bit clear so the DER INTEGER stays positive and 16 bytes long.
fn random_serial() -> Result<SerialNumber, IssueError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| IssueError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A leaf to issue.
#[derive(Debug, Clone)]
pub struct LeafRequest {
    /// Its SPIFFE ID (the URI SAN).
    pub id: SpiffeId,
    /// Its validity.
    pub validity: Validity,
    /// Extra DNS SANs (servers get `localhost` anyway).
    pub dns: Vec<String>,
    /// Extra IP SANs (servers get `127.0.0.1` anyway).
    pub ips: Vec<IpAddr>,
}

/// An issued leaf: PEM certificate, PEM PKCS#8 key, and its serial (lower-case hex).
#[derive(Debug, Clone)]
pub struct IssuedLeaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8, ECDSA P-256).
    pub key_pem: String,
    /// The serial number, lower-case hex.
    pub serial: String,
}

/// A domain's CA, able to issue leaves and CRLs.
pub struct Ca {
    domain: TrustDomain,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca({})", self.domain)
    }
}

impl Ca {
    /// Generates a self-signed CA for `domain` (ECDSA P-256, random serial,
    /// keyCertSign + cRLSign, path length 0).
    ///
    /// # Errors
    /// [`IssueError`] on a randomness, time or rcgen failure.
    pub fn generate(domain: &TrustDomain, validity: Validity) -> Result<Ca, IssueError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{domain} dev CA"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, domain.as_str());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = datetime(validity.not_before)?;
        params.not_after = datetime(validity.not_after)?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            domain: domain.clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads an existing CA from its PEM certificate and key files.
    ///
    /// # Errors
    /// [`IssueError::Io`] / [`IssueError::BadCa`] naming the file.
    pub fn load(domain: &TrustDomain, cert_file: &Path, key_file: &Path) -> Result<Ca, IssueError> {
        let read = |f: &Path| {
            std::fs::read_to_string(f).map_err(|source| IssueError::Io {
                file: f.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert_file)?;
        let key_pem = read(key_file)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| IssueError::BadCa {
            file: key_file.to_owned(),
            detail: format!("not a usable key: {e}"),
        })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| IssueError::BadCa {
            file: cert_file.to_owned(),
            detail: format!("not a usable CA: {e}"),
        })?;
        Ok(Ca {
            domain: domain.clone(),
            cert_pem,
            issuer,
        })
    }

    /// The domain.
    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf. The SPIFFE ID need not name this CA's domain: tests use
    /// that to make the certificates a federation must refuse.
    ///
    /// # Errors
    /// [`IssueError`] on a randomness, time or rcgen failure.
    pub fn issue(&self, req: &LeafRequest) -> Result<IssuedLeaf, IssueError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, req.id.to_string());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.subject_alt_names = vec![SanType::URI(req.id.to_string().try_into()?)];
        let mut dns = req.dns.clone();
        let mut ips = req.ips.clone();
        if req.id.role().serves() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
            dns.insert(0, "localhost".into());
            ips.insert(0, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        for name in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.try_into()?));
        }
        params
            .subject_alt_names
            .extend(ips.into_iter().map(SanType::IpAddress));
        params.use_authority_key_identifier_extension = true;
        params.not_before = datetime(req.validity.not_before)?;
        params.not_after = datetime(req.validity.not_after)?;
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedLeaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial_hex,
        })
    }

    /// A CRL listing `revoked` serials (lower-case hex), valid from `this_update`
    /// for `days` days; its CRL number is `this_update`, so later CRLs number higher.
    ///
    /// # Errors
    /// [`IssueError::BadSerial`] for non-hex serials; rcgen and time failures.
    pub fn crl(
        &self,
        revoked: &[String],
        this_update: u64,
        days: u32,
    ) -> Result<String, IssueError> {
        let when = datetime(this_update)?;
        let revoked_certs = revoked
            .iter()
            .map(|s| {
                let bytes = hex::decode(s).map_err(|_| IssueError::BadSerial(s.clone()))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&bytes),
                    revocation_time: when,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, IssueError>>()?;
        let params = CertificateRevocationListParams {
            this_update: when,
            next_update: datetime(this_update + u64::from(days.max(1)) * DAY)?,
            crl_number: SerialNumber::from_slice(&this_update.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

/// Paths of a domain's CA, key and CRL inside a certs directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    /// `DIR/<domain>/ca.pem`.
    pub cert: PathBuf,
    /// `DIR/<domain>/ca.key`.
    pub key: PathBuf,
    /// `DIR/<domain>/crl.pem`.
    pub crl: PathBuf,
}

impl CaPaths {
    /// The paths for `domain` under `dir`.
    pub fn new(dir: &Path, domain: &TrustDomain) -> CaPaths {
        let d = dir.join(domain.as_str());
        CaPaths {
            cert: d.join("ca.pem"),
            key: d.join("ca.key"),
            crl: d.join("crl.pem"),
        }
    }
}

/// `DIR/<domain>/<role>-<name>.pem` and `.key` for `id`.
pub fn leaf_paths(dir: &Path, id: &SpiffeId) -> (PathBuf, PathBuf) {
    let base = dir
        .join(id.domain().as_str())
        .join(format!("{}-{}", id.role(), id.name()));
    (base.with_extension("pem"), base.with_extension("key"))
}

/// Writes `text` to `file`: mode 0600 when `secret`, else 0644. Refuses to
/// overwrite unless `force`.
///
/// # Errors
/// [`IssueError::Exists`] or [`IssueError::Io`] naming the file.
pub fn write_file(file: &Path, text: &str, secret: bool, force: bool) -> Result<(), IssueError> {
    let io = |source| IssueError::Io {
        file: file.to_owned(),
        source,
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|source| IssueError::Io {
            file: dir.to_owned(),
            source,
        })?;
    }
    let mode = if secret { 0o600 } else { 0o644 };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(mode);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            IssueError::Exists {
                file: file.to_owned(),
            }
        } else {
            io(e)
        }
    })?;
    // An overwritten file keeps its old mode; set it explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// One domain to create with `certs init`, and the roles it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPlan {
    /// The trust domain.
    pub domain: TrustDomain,
    /// Its roles; `init` issues one leaf per role.
    pub roles: Vec<Role>,
}

impl DomainPlan {
    /// Parses `NAME` or `NAME=ROLE,ROLE…`. Without roles, a domain whose first
    /// label is `notary` or `observer` gets that role; any other gets
    /// `gateway` and `operator`.
    ///
    /// # Errors
    /// [`SpiffeError`] for a bad domain or role name.
    pub fn parse(arg: &str) -> Result<DomainPlan, SpiffeError> {
        let (name, roles) = match arg.split_once('=') {
            Some((n, r)) => (n, Some(r)),
            None => (arg, None),
        };
        let domain: TrustDomain = name.parse()?;
        let roles = match roles {
            Some(r) => r
                .split(',')
                .map(super::spiffe::parse_role)
                .collect::<Result<Vec<Role>, _>>()?,
            None => match domain.first_label() {
                "notary" => vec![Role::Notary],
                "observer" => vec![Role::Observer],
                _ => vec![Role::Gateway, Role::Operator],
            },
        };
        Ok(DomainPlan { domain, roles })
    }

    /// The four default domains: `org-a.example`, `org-b.example` (gateway,
    /// operator), `notary.example` (notary), `observer.example` (observer).
    pub fn defaults() -> Vec<DomainPlan> {
        [
            "org-a.example",
            "org-b.example",
            "notary.example",
            "observer.example",
        ]
        .iter()
        .filter_map(|d| DomainPlan::parse(d).ok())
        .collect()
    }

    /// The default leaf name for `role` in this domain: `admin` for
    /// operators, the domain's first label otherwise (e.g. `org-a`).
    pub fn leaf_name(&self, role: Role) -> &str {
        match role {
            Role::Operator => "admin",
            _ => self.domain.first_label(),
        }
    }
}

/// What `certs init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The federation file.
    pub federation: PathBuf,
    /// Each leaf: its ID, certificate and key files.
    pub leaves: Vec<(SpiffeId, PathBuf, PathBuf)>,
}

/// `escrowd certs init`: a CA, an empty CRL and one leaf per role for each
/// plan, and a `federation.toml` listing them all.
///
/// # Errors
/// [`IssueError`] naming the file that could not be written, or the first
/// that already exists (without `force`; then nothing is written).
pub fn init(
    out: &Path,
    plans: &[DomainPlan],
    now: u64,
    days: u32,
    force: bool,
) -> Result<InitReport, IssueError> {
    if !force {
        // Refuse before writing anything, so a refused init leaves no partial set.
        let mut targets = vec![out.join("federation.toml")];
        for plan in plans {
            let p = CaPaths::new(out, &plan.domain);
            targets.extend([p.cert, p.key, p.crl]);
            for &role in &plan.roles {
                let (cert, key) = leaf_paths(
                    out,
                    &SpiffeId::new(plan.domain.clone(), role, plan.leaf_name(role))?,
                );
                targets.extend([cert, key]);
            }
        }
        if let Some(file) = targets.into_iter().find(|f| f.exists()) {
            return Err(IssueError::Exists { file });
        }
    }
    let validity = Validity::days_from(now, days);
    let mut entries = Vec::new();
    let mut leaves = Vec::new();
    for plan in plans {
        let paths = CaPaths::new(out, &plan.domain);
        let ca = Ca::generate(&plan.domain, validity)?;
        write_file(&paths.cert, ca.cert_pem(), false, force)?;
        write_file(&paths.key, &ca.key_pem(), true, force)?;
        write_file(&paths.crl, &ca.crl(&[], now, days)?, false, force)?;
        for &role in &plan.roles {
            let id = SpiffeId::new(plan.domain.clone(), role, plan.leaf_name(role))?;
            let leaf = ca.issue(&LeafRequest {
                id: id.clone(),
                validity,
                dns: vec![],
                ips: vec![],
            })?;
            let (cert, key) = leaf_paths(out, &id);
            write_file(&cert, &leaf.cert_pem, false, force)?;
            write_file(&key, &leaf.key_pem, true, force)?;
            leaves.push((id, cert, key));
        }
        let d = plan.domain.as_str();
        entries.push((
            plan.domain.clone(),
            format!("{d}/ca.pem"),
            plan.roles.clone(),
            vec![format!("{d}/crl.pem")],
        ));
    }
    let federation = out.join("federation.toml");
    write_file(&federation, &Federation::render(&entries), false, force)?;
    Ok(InitReport { federation, leaves })
}

/// `escrowd certs issue`: one more leaf from the CA in `dir/<domain>/`,
/// written to `dir/<domain>/<role>-<name>.pem|.key`.
///
/// # Errors
/// [`IssueError`] naming the CA file that could not be loaded or the file
/// that could not be written.
pub fn issue_into(
    dir: &Path,
    req: &LeafRequest,
    force: bool,
) -> Result<(IssuedLeaf, PathBuf, PathBuf), IssueError> {
    let paths = CaPaths::new(dir, req.id.domain());
    let ca = Ca::load(req.id.domain(), &paths.cert, &paths.key)?;
    let leaf = ca.issue(req)?;
    let (cert, key) = leaf_paths(dir, &req.id);
    write_file(&cert, &leaf.cert_pem, false, force)?;
    write_file(&key, &leaf.key_pem, true, force)?;
    Ok((leaf, cert, key))
}

/// `escrowd certs revoke`: adds `serials` (lower-case hex) to the CRL of
/// `dir/<domain>/`, keeping the serials it already lists, and rewrites
/// `crl.pem` with a higher CRL number. Returns every serial now listed.
///
/// # Errors
/// [`IssueError`] naming the CA or CRL file at fault.
pub fn revoke(
    dir: &Path,
    domain: &TrustDomain,
    serials: &[String],
    now: u64,
    days: u32,
) -> Result<Vec<String>, IssueError> {
    let paths = CaPaths::new(dir, domain);
    let ca = Ca::load(domain, &paths.cert, &paths.key)?;
    let mut listed = listed_serials(&paths.crl)?;
    for s in serials {
        let s = s.to_ascii_lowercase().replace(':', "");
        hex::decode(&s).map_err(|_| IssueError::BadSerial(s.clone()))?;
        if !listed.contains(&s) {
            listed.push(s);
        }
    }
    // CRL numbers must rise: never reuse the previous one even within a second.
    let this_update = now.max(crl_number(&paths.crl)?.map_or(0, |n| n + 1));
    write_file(
        &paths.crl,
        &ca.crl(&listed, this_update, days)?,
        false,
        true,
    )?;
    Ok(listed)
}

fn existing_crl(file: &Path) -> Result<Option<Vec<u8>>, IssueError> {
    match std::fs::read(file) {
        Ok(bytes) => {
            use rustls_pki_types::pem::PemObject;
            let der = rustls_pki_types::CertificateRevocationListDer::from_pem_slice(&bytes)
                .map_err(|e| IssueError::BadCrl {
                    file: file.to_owned(),
                    detail: e.to_string(),
                })?;
            Ok(Some(der.as_ref().to_vec()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IssueError::Io {
            file: file.to_owned(),
            source,
        }),
    }
}

fn listed_serials(file: &Path) -> Result<Vec<String>, IssueError> {
    let Some(der) = existing_crl(file)? else {
        return Ok(vec![]);
    };
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| IssueError::BadCrl {
        file: file.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| hex::encode(r.raw_serial()))
        .collect())
}

fn crl_number(file: &Path) -> Result<Option<u64>, IssueError> {
    let Some(der) = existing_crl(file)? else {
        return Ok(None);
    };
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| IssueError::BadCrl {
        file: file.to_owned(),
        detail: e.to_string(),
    })?;
    Ok(crl.crl_number().and_then(|n| u64::try_from(n).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_random_and_positive() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(a[0] & 0x80 == 0 && a[0] != 0);
    }

    #[test]
    fn domain_plans_default_roles_by_first_label() {
        assert_eq!(
            DomainPlan::parse("notary.example").unwrap().roles,
            vec![Role::Notary]
        );
        assert_eq!(
            DomainPlan::parse("org-c.example").unwrap().roles,
            vec![Role::Gateway, Role::Operator]
        );
        assert_eq!(
            DomainPlan::parse("audit.example=observer,notary")
                .unwrap()
                .roles,
            vec![Role::Observer, Role::Notary]
        );
        assert!(DomainPlan::parse("x.example=admin").is_err());
        assert_eq!(DomainPlan::defaults().len(), 4);
    }
}
