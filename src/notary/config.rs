//! The notary configuration, `notary.toml` (`escrowd notary --config`).
//! Relative paths are resolved against the file's directory; unknown fields
//! are refused; every error names the file and the field.
//!
//! ```toml
//! [notary]
//! spiffe_id = "spiffe://notary.example/notary/notary"
//! listen = "127.0.0.1:7100"
//! approval_key = "keys/notary.wif"  # WIF key file, mode 0600: signs approvals
//! network = "regtest"               # script rules: mainnet (default), testnet, regtest
//! tip_ttl = "1s"                    # how long a chain tip is reused (default 1s)
//!
//! [identity]                        # DESIGN.md §4, docs/identity.md
//! federation = "certs/federation.toml"
//! cert = "certs/notary.example/notary-notary.pem"
//! key = "certs/notary.example/notary-notary.key"
//!
//! [chains.chain-p]                  # one per chain it judges; others are refused
//! headers_url = "http://127.0.0.1:9001"
//!
//! [policy]
//! trust_domains = ["org-a.example", "org-b.example"]  # absent or empty: any federated domain
//! min_confirmations = 1             # at least this many, whatever the terms say (default 0)
//! max_amount = { chain-p = 1000000 }  # satoshis per leg; a chain not listed has no ceiling
//! ```
//!
//! # Layout
//! - [`NotaryFileConfig`], [`NotaryFileConfig::load`], [`NotaryFileConfig::parse`].
//! - [`NotaryConfigError`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bsv_format::keys::PrivateKey;
use bsv_format::spv::ScriptEras;
use saga_core::Satoshis;
use serde::Deserialize;

use crate::identity::spiffe::{Role, SpiffeId, TrustDomain};
use crate::identity::tls::TlsSettings;
use crate::keys::{load_key_file, KeyFileError};
use crate::rpc::notary::NotaryPolicy;

/// How long a fetched chain tip is reused when `notary.tip_ttl` is absent.
pub const DEFAULT_TIP_TTL: Duration = Duration::from_secs(1);

/// Why a notary configuration cannot be used; each names the file and,
/// past the syntax, the field.
#[derive(Debug, thiserror::Error)]
pub enum NotaryConfigError {
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
        /// The field as a TOML key path (`policy.max_amount.chain-x`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The approval key file is unusable.
    #[error("{path}: notary.approval_key: {source}")]
    Key {
        /// The config file.
        path: String,
        /// Why.
        source: KeyFileError,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    notary: RawNotary,
    identity: TlsSettings,
    chains: BTreeMap<String, RawChain>,
    #[serde(default)]
    policy: RawPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotary {
    spiffe_id: String,
    listen: String,
    approval_key: PathBuf,
    network: Option<String>,
    tip_ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    headers_url: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    trust_domains: Vec<String>,
    #[serde(default)]
    min_confirmations: u32,
    #[serde(default)]
    max_amount: BTreeMap<String, u64>,
}

/// A validated notary configuration: the key loaded, every URL parsed,
/// the policy consistent with the chains.
#[derive(Debug, Clone)]
pub struct NotaryFileConfig {
    /// The config file, as given.
    pub path: PathBuf,
    /// The notary's SPIFFE ID (role `notary`), as terms name it.
    pub spiffe_id: SpiffeId,
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The key approvals are signed with (gateways pin its public key).
    pub approval_key: PrivateKey,
    /// Which script rules the chains run, for SPV of reservations.
    pub script_eras: ScriptEras,
    /// How long a fetched chain tip is reused.
    pub tip_ttl: Duration,
    /// Identity files (paths resolved).
    pub identity: TlsSettings,
    /// The Block Headers Service of each chain it judges, by chain id.
    pub headers: BTreeMap<String, reqwest::Url>,
    /// What it approves.
    pub policy: NotaryPolicy,
}

impl NotaryFileConfig {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`NotaryConfigError`] for the first fault.
    pub fn load(path: &Path) -> Result<NotaryFileConfig, NotaryConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| NotaryConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        NotaryFileConfig::parse(&text, &shown, &base)
    }

    /// Validates config `text` named `shown`, resolving relative paths
    /// against `base`.
    ///
    /// # Errors
    /// As [`NotaryFileConfig::load`].
    pub fn parse(
        text: &str,
        shown: &str,
        base: &Path,
    ) -> Result<NotaryFileConfig, NotaryConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| NotaryConfigError::Syntax {
            path: shown.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let field = |field: &str, reason: String| NotaryConfigError::Field {
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
        let n = &raw.notary;
        let spiffe_id: SpiffeId = n
            .spiffe_id
            .parse()
            .map_err(|e| field("notary.spiffe_id", format!("{e}")))?;
        if spiffe_id.role() != Role::Notary {
            return Err(field(
                "notary.spiffe_id",
                format!("{spiffe_id} has the role {}, not notary", spiffe_id.role()),
            ));
        }
        let listen: SocketAddr = n.listen.parse().map_err(|e| {
            field(
                "notary.listen",
                format!("{:?} is not an address:port: {e}", n.listen),
            )
        })?;
        let script_eras = match n.network.as_deref() {
            None | Some("mainnet") => ScriptEras::MAINNET,
            Some("testnet") => ScriptEras::TESTNET,
            Some("regtest") => ScriptEras::ALWAYS_ACTIVE,
            Some(other) => {
                return Err(field(
                    "notary.network",
                    format!("{other:?}: expected mainnet, testnet or regtest"),
                ))
            }
        };
        let tip_ttl = match &n.tip_ttl {
            None => DEFAULT_TIP_TTL,
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| field("notary.tip_ttl", format!("{t:?}: {e}")))?,
        };
        let approval_key = load_key_file(&resolve(&n.approval_key))
            .map(|w| w.key)
            .map_err(|source| NotaryConfigError::Key {
                path: shown.to_string(),
                source,
            })?;
        if raw.chains.is_empty() {
            return Err(field(
                "chains",
                "no chain configured: a notary judges reservations only on chains it tracks".into(),
            ));
        }
        let mut headers = BTreeMap::new();
        for (chain_id, c) in &raw.chains {
            let url = reqwest::Url::parse(&c.headers_url).map_err(|e| {
                field(
                    &format!("chains.{chain_id}.headers_url"),
                    format!("{:?} is not a URL: {e}", c.headers_url),
                )
            })?;
            headers.insert(chain_id.clone(), url);
        }
        let mut domains = BTreeSet::new();
        for (i, d) in raw.policy.trust_domains.iter().enumerate() {
            let domain: TrustDomain = d
                .parse()
                .map_err(|e| field(&format!("policy.trust_domains[{i}]"), format!("{e}")))?;
            domains.insert(domain.as_str().to_owned());
        }
        let mut max_amount = BTreeMap::new();
        for (chain_id, sats) in &raw.policy.max_amount {
            if !headers.contains_key(chain_id) {
                return Err(field(
                    &format!("policy.max_amount.{chain_id}"),
                    "no such chain in [chains]".into(),
                ));
            }
            max_amount.insert(chain_id.clone(), Satoshis(*sats));
        }
        Ok(NotaryFileConfig {
            path: PathBuf::from(shown),
            spiffe_id,
            listen,
            approval_key,
            script_eras,
            tip_ttl,
            identity: TlsSettings {
                federation: resolve(&raw.identity.federation),
                cert: resolve(&raw.identity.cert),
                key: resolve(&raw.identity.key),
            },
            headers,
            policy: NotaryPolicy {
                domains,
                max_amount,
                min_confirmations: raw.policy.min_confirmations,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bsv_format::keys::Network;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "escrowd-notary-config-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        crate::keys::write_key_file(
            &dir.join("notary.wif"),
            &PrivateKey::from_bytes(&[7; 32]).unwrap(),
            Network::Testnet,
        )
        .unwrap();
        dir
    }

    const TEXT: &str = r#"
[notary]
spiffe_id = "spiffe://notary.example/notary/notary"
listen = "127.0.0.1:7100"
approval_key = "notary.wif"
network = "regtest"

[identity]
federation = "certs/federation.toml"
cert = "certs/n.pem"
key = "certs/n.key"

[chains.chain-p]
headers_url = "http://127.0.0.1:9001"

[chains.chain-d]
headers_url = "http://127.0.0.1:9002"

[policy]
trust_domains = ["org-a.example", "org-b.example"]
min_confirmations = 2
max_amount = { chain-p = 100000 }
"#;

    #[test]
    fn a_complete_config_loads_with_its_policy() {
        let d = dir("ok");
        let c = NotaryFileConfig::parse(TEXT, "notary.toml", &d).unwrap();
        assert_eq!(
            c.spiffe_id.to_string(),
            "spiffe://notary.example/notary/notary"
        );
        assert_eq!(c.approval_key, PrivateKey::from_bytes(&[7; 32]).unwrap());
        assert_eq!(c.identity.cert, d.join("certs/n.pem"));
        assert_eq!(c.tip_ttl, DEFAULT_TIP_TTL);
        assert_eq!(
            c.headers.keys().collect::<Vec<_>>(),
            vec!["chain-d", "chain-p"]
        );
        assert_eq!(
            c.policy,
            NotaryPolicy {
                domains: ["org-a.example".to_string(), "org-b.example".to_string()]
                    .into_iter()
                    .collect(),
                max_amount: [("chain-p".to_string(), Satoshis(100_000))]
                    .into_iter()
                    .collect(),
                min_confirmations: 2,
            }
        );
    }

    #[test]
    fn faults_name_the_file_and_field() {
        let d = dir("faults");
        let e = |t: String| match NotaryFileConfig::parse(&t, "notary.toml", &d) {
            Ok(_) => panic!("accepted:\n{t}"),
            Err(e) => e.to_string(),
        };
        let m = e(TEXT.replace("min_confirmations", "min_confs"));
        assert!(
            m.starts_with("notary.toml: ") && m.contains("min_confs"),
            "{m}"
        );
        let m = e(TEXT.replace("chain-p = 100000", "chain-x = 100000"));
        assert_eq!(
            m,
            "notary.toml: policy.max_amount.chain-x: no such chain in [chains]"
        );
        let m = e(TEXT.replace("notary/notary\"", "gateway/notary\""));
        assert!(m.starts_with("notary.toml: notary.spiffe_id: "), "{m}");
        let m = e(TEXT.replace("\"org-b.example\"]", "\"Not A Domain\"]"));
        assert!(
            m.starts_with("notary.toml: policy.trust_domains[1]: "),
            "{m}"
        );
        let m = e(TEXT.replace("notary.wif", "missing.wif"));
        assert!(
            m.starts_with("notary.toml: notary.approval_key: key file"),
            "{m}"
        );
        let m = e(TEXT.replace("\"http://127.0.0.1:9002\"", "\"nowhere\""));
        assert!(
            m.starts_with("notary.toml: chains.chain-d.headers_url: "),
            "{m}"
        );
    }
}
