//! The observer configuration, `observer.toml` (`escrowd observer … --config`).
//! Relative paths are resolved against the file's directory; unknown fields
//! are refused; every error names the file and the field.
//!
//! ```toml
//! [observer]
//! spiffe_id = "spiffe://observer.example/observer/observer"  # role observer; must be our certificate's
//! store = "data/observer"           # sled directory of the audit store (made 0700)
//!
//! [identity]                        # DESIGN.md §4, docs/identity.md
//! federation = "certs/federation.toml"
//! cert = "certs/observer.example/observer-observer.pem"
//! key = "certs/observer.example/observer-observer.key"
//!
//! [gateways."org-a.example"]        # one per gateway followed, by its trust domain
//! url = "https://127.0.0.1:7001"
//! spiffe_id = "spiffe://org-a.example/gateway/org-a"  # its certificate must carry exactly this
//! ```
//!
//! # Layout
//! - [`ObserverConfig`], [`GatewayEndpoint`], [`ObserverConfig::load`],
//!   [`ObserverConfig::parse`].
//! - [`ObserverConfigError`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::identity::spiffe::{Role, SpiffeId, TrustDomain};
use crate::identity::tls::TlsSettings;

/// Why an observer configuration cannot be used; each names the file and,
/// past the syntax, the field.
#[derive(Debug, thiserror::Error)]
pub enum ObserverConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML for the schema (unknown or missing field, wrong type);
    /// the message carries the line and column and names the field.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A field's value is unusable.
    #[error("{path}: {field}: {reason}")]
    Field {
        /// The file.
        path: String,
        /// The field as a TOML key path (`gateways.org-a.example.url`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    observer: RawObserver,
    identity: TlsSettings,
    #[serde(default)]
    gateways: BTreeMap<String, RawGateway>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObserver {
    spiffe_id: String,
    store: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    url: String,
    spiffe_id: String,
}

/// A gateway the observer follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayEndpoint {
    /// `https://host:port` (or `http://`: the TLS is the connector's either
    /// way). The host is also the TLS server name checked against the
    /// certificate's DNS/IP SANs.
    pub url: reqwest::Url,
    /// The SPIFFE ID its certificate must carry (role `gateway`); also the
    /// name its events are recorded under.
    pub spiffe_id: SpiffeId,
}

/// A validated observer configuration.
#[derive(Debug, Clone)]
pub struct ObserverConfig {
    /// The config file, as given.
    pub path: PathBuf,
    /// Our SPIFFE ID (role `observer`); our certificate must carry it.
    pub spiffe_id: SpiffeId,
    /// The audit store's sled directory (resolved).
    pub store: PathBuf,
    /// Identity files (paths resolved).
    pub identity: TlsSettings,
    /// The gateways followed, by trust domain (at least one).
    pub gateways: BTreeMap<TrustDomain, GatewayEndpoint>,
}

impl ObserverConfig {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ObserverConfigError`] for the first fault.
    pub fn load(path: &Path) -> Result<ObserverConfig, ObserverConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ObserverConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        ObserverConfig::parse(&text, &shown, &base)
    }

    /// Validates config `text` named `shown`, resolving relative paths
    /// against `base`. Reads no file: the identity files are read when the
    /// observer starts.
    ///
    /// # Errors
    /// As [`ObserverConfig::load`].
    pub fn parse(
        text: &str,
        shown: &str,
        base: &Path,
    ) -> Result<ObserverConfig, ObserverConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ObserverConfigError::Syntax {
            path: shown.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let field = |field: &str, reason: String| ObserverConfigError::Field {
            path: shown.to_string(),
            field: field.to_string(),
            reason,
        };
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let spiffe = |field_name: &str, text: &str, role: Role| {
            let id: SpiffeId = text
                .parse()
                .map_err(|e| field(field_name, format!("{e}")))?;
            if id.role() != role {
                return Err(field(
                    field_name,
                    format!("{id} has the role {}, not {role}", id.role()),
                ));
            }
            Ok(id)
        };
        let spiffe_id = spiffe(
            "observer.spiffe_id",
            &raw.observer.spiffe_id,
            Role::Observer,
        )?;
        if raw.observer.store.as_os_str().is_empty() {
            return Err(field("observer.store", "empty path".into()));
        }
        if raw.gateways.is_empty() {
            return Err(field(
                "gateways",
                "no gateway configured: an observer follows at least one \
                 ([gateways.\"<trust domain>\"] with url and spiffe_id)"
                    .into(),
            ));
        }
        let mut gateways = BTreeMap::new();
        for (domain, g) in &raw.gateways {
            let at = |f: &str| format!("gateways.{domain}.{f}");
            let trust_domain: TrustDomain = domain
                .parse()
                .map_err(|e| field(&format!("gateways.{domain}"), format!("{e}")))?;
            let id = spiffe(&at("spiffe_id"), &g.spiffe_id, Role::Gateway)?;
            if id.domain() != &trust_domain {
                return Err(field(
                    &at("spiffe_id"),
                    format!("{id} is not in the trust domain {trust_domain}"),
                ));
            }
            let url = reqwest::Url::parse(&g.url)
                .map_err(|e| field(&at("url"), format!("{:?} is not a URL: {e}", g.url)))?;
            if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
                return Err(field(
                    &at("url"),
                    format!("{:?}: expected https://host:port", g.url),
                ));
            }
            if url.port_or_known_default().is_none() {
                return Err(field(&at("url"), format!("{:?} has no port", g.url)));
            }
            gateways.insert(trust_domain, GatewayEndpoint { url, spiffe_id: id });
        }
        Ok(ObserverConfig {
            path: PathBuf::from(shown),
            spiffe_id,
            store: resolve(&raw.observer.store),
            identity: TlsSettings {
                federation: resolve(&raw.identity.federation),
                cert: resolve(&raw.identity.cert),
                key: resolve(&raw.identity.key),
            },
            gateways,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[observer]
spiffe_id = "spiffe://observer.example/observer/observer"
store = "data/observer"

[identity]
federation = "certs/federation.toml"
cert = "certs/o.pem"
key = "/abs/o.key"

[gateways."org-a.example"]
url = "https://127.0.0.1:7001"
spiffe_id = "spiffe://org-a.example/gateway/org-a"

[gateways."org-b.example"]
url = "https://127.0.0.1:7002"
spiffe_id = "spiffe://org-b.example/gateway/org-b"
"#;

    fn parse(text: &str) -> Result<ObserverConfig, ObserverConfigError> {
        ObserverConfig::parse(text, "observer.toml", Path::new("/etc/escrowd"))
    }

    fn refused(text: String) -> String {
        match parse(&text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_complete_config_loads_with_paths_resolved() {
        let c = parse(TEXT).unwrap();
        assert_eq!(
            c.spiffe_id.to_string(),
            "spiffe://observer.example/observer/observer"
        );
        assert_eq!(c.store, PathBuf::from("/etc/escrowd/data/observer"));
        assert_eq!(
            c.identity.federation,
            PathBuf::from("/etc/escrowd/certs/federation.toml")
        );
        assert_eq!(c.identity.key, PathBuf::from("/abs/o.key"));
        let ids: Vec<String> = c
            .gateways
            .values()
            .map(|g| g.spiffe_id.to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "spiffe://org-a.example/gateway/org-a",
                "spiffe://org-b.example/gateway/org-b"
            ]
        );
        assert_eq!(
            c.gateways.values().next().unwrap().url.as_str(),
            "https://127.0.0.1:7001/"
        );
    }

    #[test]
    fn faults_name_the_file_and_field() {
        let m = refused(TEXT.replace("store =", "stor ="));
        assert!(
            m.starts_with("observer.toml: ") && m.contains("unknown field `stor`"),
            "{m}"
        );
        let m = refused(TEXT.replace("url = \"https://127.0.0.1:7002\"", "ulr = \"x\""));
        assert!(m.contains("unknown field `ulr`"), "{m}");
        let m = refused(TEXT.replace("observer/observer\"", "gateway/observer\""));
        assert_eq!(
            m,
            "observer.toml: observer.spiffe_id: spiffe://observer.example/gateway/observer \
             has the role gateway, not observer"
        );
        let m = refused(TEXT.replace("org-b.example/gateway/org-b", "org-c.example/gateway/org-b"));
        assert_eq!(
            m,
            "observer.toml: gateways.org-b.example.spiffe_id: \
             spiffe://org-c.example/gateway/org-b is not in the trust domain org-b.example"
        );
        let m = refused(TEXT.replace("https://127.0.0.1:7002", "nowhere"));
        assert!(
            m.starts_with("observer.toml: gateways.org-b.example.url: \"nowhere\" is not a URL"),
            "{m}"
        );
        let m = refused(TEXT.replace("https://127.0.0.1:7002", "ftp://127.0.0.1:7002"));
        assert!(
            m.starts_with("observer.toml: gateways.org-b.example.url: "),
            "{m}"
        );
        let only_observer = TEXT.split("[gateways").next().unwrap().to_string();
        let m = refused(only_observer);
        assert!(m.starts_with("observer.toml: gateways: no gateway"), "{m}");
        let m = refused(TEXT.replace("[identity]", "[identities]"));
        assert!(m.starts_with("observer.toml: "), "{m}");
    }
}
