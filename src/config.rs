//! The gateway configuration, `gateway.toml` (`escrowd serve --config`).
//!
//! One TOML file names everything a gateway needs: who it is, where it
//! listens and stores, its policy, its keys, its chains (each with a
//! broadcaster, a headers service, a spend watcher and a transaction
//! source), its counterparties and their public keys, and its notary.
//! Relative paths are resolved against the file's directory.
//!
//! ```toml
//! [gateway]
//! spiffe_id = "spiffe://org-a.example/gateway/ga"
//! listen = "127.0.0.1:7001"
//! store = "data/ga"               # sled directory (made 0700)
//! policy = "policies/fast-test.toml"
//! saga_key = "keys/saga.wif"      # WIF key file, mode 0600
//! poll_interval = "1s"            # chain polling (tips, watches)
//! network = "regtest"             # script rules: mainnet (default), testnet, regtest
//!
//! [identity]                      # DESIGN.md §4, docs/identity.md
//! federation = "certs/federation.toml"
//! cert = "certs/org-a.example/ga.pem"
//! key = "certs/org-a.example/ga.key"
//!
//! [chains.chain-p]                # every chain of the policy, no more
//! arc_url = "http://127.0.0.1:9001"
//! headers_url = "http://127.0.0.1:9001"
//! spend_url = "http://127.0.0.1:9001"      # GET …/tx/{txid}/{vout}/spent
//! tx_url = "http://127.0.0.1:9001"         # GET …/tx/{txid}/hex (default: spend_url)
//! wallet_key = "keys/chain-p.wif"          # funds reservations; our escrow key on this chain
//!
//! [peers."org-b.example"]         # one per counterparty trust domain
//! url = "https://127.0.0.1:7002"
//! spiffe_id = "spiffe://org-b.example/gateway/gb"
//! saga_key = "02…"                # compressed SEC public keys, hex
//! escrow_keys = { chain-p = "03…", chain-d = "02…" }
//!
//! [notary]                        # optional
//! url = "https://127.0.0.1:7100"
//! spiffe_id = "spiffe://notary.example/notary/notary"
//! public_key = "02…"              # its approval key
//! ```
//!
//! Decisions where DESIGN.md is silent (docs/operators.md repeats them):
//! - A gateway's escrow key on a chain is its wallet key there, so claims
//!   and refunds pay outputs the wallet can spend, and a counterparty's
//!   escrow keys are configured like its certificate: exchanged out of band
//!   and pinned. `H` differs per saga, so escrow scripts never repeat.
//! - A chain without a spend watcher is refused: the saga's safety depends on
//!   seeing spends of its escrow outputs (DESIGN.md §3.3 step 3).
//! - Every chain the policy names must be configured, and no other.
//!
//! # Layout
//! - [`GatewayConfig`] (the validated result), [`GatewayConfig::load`].
//! - [`ChainEndpoints`], [`PeerConfig`], [`NotaryConfig`].
//! - [`ConfigError`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bsv_format::keys::{PrivateKey, PublicKey};
use saga_core::policy::Policy;
use serde::Deserialize;

use crate::identity::spiffe::{Role, SpiffeId};
use crate::identity::tls::TlsSettings;
use crate::keys::{load_key_file, KeyFileError};

/// Why a gateway configuration cannot be used. Each names the file and the
/// field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML for the schema (unknown or missing field, wrong type);
    /// the message carries the line and column.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field's value is unusable.
    #[error("{path}: {field}: {reason}")]
    Field {
        /// The file.
        path: String,
        /// The field, as a TOML key path (`chains.chain-p.spend_url`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A key file is unusable.
    #[error("{path}: {field}: {source}")]
    Key {
        /// The config file.
        path: String,
        /// The field naming the key file.
        field: String,
        /// Why.
        source: KeyFileError,
    },
    /// The policy file fails to load or validate.
    #[error("{path}: gateway.policy: {source}")]
    Policy {
        /// The config file.
        path: String,
        /// Why (boxed: a policy error carries its whole computed timeline).
        source: Box<crate::policy::PolicyLoadError>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    gateway: RawGateway,
    identity: TlsSettings,
    chains: BTreeMap<String, RawChain>,
    #[serde(default)]
    peers: BTreeMap<String, RawPeer>,
    notary: Option<RawNotary>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    spiffe_id: String,
    listen: String,
    store: PathBuf,
    policy: PathBuf,
    saga_key: PathBuf,
    poll_interval: Option<String>,
    network: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    arc_url: String,
    headers_url: String,
    spend_url: String,
    tx_url: Option<String>,
    wallet_key: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    url: String,
    spiffe_id: String,
    saga_key: String,
    escrow_keys: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotary {
    url: String,
    spiffe_id: String,
    public_key: String,
}

/// One chain's service endpoints and our key there.
#[derive(Debug, Clone)]
pub struct ChainEndpoints {
    /// ARC base URL (`POST /v1/tx`).
    pub arc_url: reqwest::Url,
    /// Block Headers Service base URL.
    pub headers_url: reqwest::Url,
    /// Spend watcher base URL (`GET …/tx/{txid}/{vout}/spent`).
    pub spend_url: reqwest::Url,
    /// Transaction source base URL (`GET …/tx/{txid}/hex`).
    pub tx_url: reqwest::Url,
    /// Our wallet key on this chain (also our escrow key on it).
    pub wallet_key: PrivateKey,
}

/// A counterparty gateway.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Its gRPC URL (`https://host:port`).
    pub url: reqwest::Url,
    /// The SPIFFE ID its certificate must carry.
    pub spiffe_id: SpiffeId,
    /// Its saga key (signs terms and tokens).
    pub saga_key: PublicKey,
    /// Its escrow key per chain id.
    pub escrow_keys: BTreeMap<String, PublicKey>,
}

/// The notary.
#[derive(Debug, Clone)]
pub struct NotaryConfig {
    /// Its gRPC URL.
    pub url: reqwest::Url,
    /// The SPIFFE ID its certificate must carry (role `notary`).
    pub spiffe_id: SpiffeId,
    /// Its approval key: an approval that does not verify under it is not one.
    pub public_key: PublicKey,
}

/// A validated gateway configuration: every file it names was read, every
/// key loaded, every chain of the policy configured.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The config file, as given.
    pub path: PathBuf,
    /// Our SPIFFE ID (role `gateway`).
    pub spiffe_id: SpiffeId,
    /// Where the gRPC server listens.
    pub listen: SocketAddr,
    /// The sled store directory.
    pub store: PathBuf,
    /// Our policy.
    pub policy: Policy,
    /// Our saga key.
    pub saga_key: PrivateKey,
    /// How often chains are polled.
    pub poll_interval: Duration,
    /// Which script rules the chains run, for SPV of peers' BEEFs
    /// (`network = "mainnet" | "testnet" | "regtest"`, default mainnet).
    pub script_eras: bsv_format::spv::ScriptEras,
    /// Our identity files (paths resolved).
    pub identity: TlsSettings,
    /// Per chain id.
    pub chains: BTreeMap<String, ChainEndpoints>,
    /// Per counterparty trust domain.
    pub peers: BTreeMap<String, PeerConfig>,
    /// The notary, if any.
    pub notary: Option<NotaryConfig>,
}

/// Default chain polling interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

impl GatewayConfig {
    /// Reads and validates `path`.
    ///
    /// # Errors
    /// [`ConfigError`] for the first fault, naming the field.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        GatewayConfig::parse(&text, &shown, &base)
    }

    /// Validates config `text` named `shown`, resolving relative paths
    /// against `base`.
    ///
    /// # Errors
    /// As [`GatewayConfig::load`].
    pub fn parse(text: &str, shown: &str, base: &Path) -> Result<GatewayConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: shown.to_string(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let field = |field: &str, reason: String| ConfigError::Field {
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
        let key = |field_name: &str, p: &Path| {
            load_key_file(&resolve(p))
                .map(|w| w.key)
                .map_err(|source| ConfigError::Key {
                    path: shown.to_string(),
                    field: field_name.to_string(),
                    source,
                })
        };
        let url = |field_name: &str, text: &str| {
            reqwest::Url::parse(text)
                .map_err(|e| field(field_name, format!("{text:?} is not a URL: {e}")))
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
        let public = |field_name: &str, text: &str| {
            let bytes =
                hex::decode(text).map_err(|e| field(field_name, format!("not hex: {e}")))?;
            if bytes.len() != 33 {
                return Err(field(
                    field_name,
                    format!("{} bytes: a compressed SEC public key is 33", bytes.len()),
                ));
            }
            PublicKey::from_sec(&bytes).map_err(|e| field(field_name, format!("{e}")))
        };

        let g = &raw.gateway;
        let spiffe_id = spiffe("gateway.spiffe_id", &g.spiffe_id, Role::Gateway)?;
        let listen: SocketAddr = g.listen.parse().map_err(|e| {
            field(
                "gateway.listen",
                format!("{:?} is not an address:port: {e}", g.listen),
            )
        })?;
        let poll_interval = match &g.poll_interval {
            None => DEFAULT_POLL_INTERVAL,
            Some(t) => {
                let d = humantime::parse_duration(t)
                    .map_err(|e| field("gateway.poll_interval", format!("{t:?}: {e}")))?;
                if d.is_zero() {
                    return Err(field("gateway.poll_interval", "must be above zero".into()));
                }
                d
            }
        };
        let script_eras = match g.network.as_deref() {
            None | Some("mainnet") => bsv_format::spv::ScriptEras::MAINNET,
            Some("testnet") => bsv_format::spv::ScriptEras::TESTNET,
            Some("regtest") => bsv_format::spv::ScriptEras::ALWAYS_ACTIVE,
            Some(other) => {
                return Err(field(
                    "gateway.network",
                    format!("{other:?}: expected mainnet, testnet or regtest"),
                ))
            }
        };
        let policy =
            crate::policy::load(&resolve(&g.policy)).map_err(|source| ConfigError::Policy {
                path: shown.to_string(),
                source: Box::new(source),
            })?;
        let saga_key = key("gateway.saga_key", &g.saga_key)?;

        for chain_id in policy.chains.keys() {
            if !raw.chains.contains_key(chain_id) {
                return Err(field(
                    &format!("chains.{chain_id}"),
                    "the policy names this chain but it is not configured (a gateway needs a broadcaster, headers service and spend watcher on every chain it may use)".into(),
                ));
            }
        }
        let mut chains = BTreeMap::new();
        for (chain_id, c) in &raw.chains {
            let at = |f: &str| format!("chains.{chain_id}.{f}");
            if policy.chain(chain_id).is_none() {
                return Err(field(
                    &format!("chains.{chain_id}"),
                    "the policy has no such chain".into(),
                ));
            }
            let spend_url = url(&at("spend_url"), &c.spend_url)?;
            let tx_url = match &c.tx_url {
                Some(t) => url(&at("tx_url"), t)?,
                None => spend_url.clone(),
            };
            chains.insert(
                chain_id.clone(),
                ChainEndpoints {
                    arc_url: url(&at("arc_url"), &c.arc_url)?,
                    headers_url: url(&at("headers_url"), &c.headers_url)?,
                    spend_url,
                    tx_url,
                    wallet_key: key(&at("wallet_key"), &c.wallet_key)?,
                },
            );
        }

        let mut peers = BTreeMap::new();
        for (domain, p) in &raw.peers {
            let at = |f: &str| format!("peers.{domain}.{f}");
            let id = spiffe(&at("spiffe_id"), &p.spiffe_id, Role::Gateway)?;
            if id.domain().as_str() != domain {
                return Err(field(
                    &at("spiffe_id"),
                    format!("{id} is not in the trust domain {domain}"),
                ));
            }
            let mut escrow_keys = BTreeMap::new();
            for chain_id in chains.keys() {
                let text = p.escrow_keys.get(chain_id).ok_or_else(|| {
                    field(&at("escrow_keys"), format!("no key for chain {chain_id}"))
                })?;
                escrow_keys.insert(
                    chain_id.clone(),
                    public(&at(&format!("escrow_keys.{chain_id}")), text)?,
                );
            }
            if let Some(extra) = p.escrow_keys.keys().find(|c| !chains.contains_key(*c)) {
                return Err(field(
                    &at("escrow_keys"),
                    format!("chain {extra} is not configured"),
                ));
            }
            peers.insert(
                domain.clone(),
                PeerConfig {
                    url: url(&at("url"), &p.url)?,
                    spiffe_id: id,
                    saga_key: public(&at("saga_key"), &p.saga_key)?,
                    escrow_keys,
                },
            );
        }
        let notary = match &raw.notary {
            None => None,
            Some(n) => Some(NotaryConfig {
                url: url("notary.url", &n.url)?,
                spiffe_id: spiffe("notary.spiffe_id", &n.spiffe_id, Role::Notary)?,
                public_key: public("notary.public_key", &n.public_key)?,
            }),
        };
        if policy.notary.required && notary.is_none() {
            return Err(field(
                "notary",
                "the policy requires a notary but none is configured".into(),
            ));
        }
        let identity = TlsSettings {
            federation: resolve(&raw.identity.federation),
            cert: resolve(&raw.identity.cert),
            key: resolve(&raw.identity.key),
        };
        Ok(GatewayConfig {
            path: PathBuf::from(shown),
            spiffe_id,
            listen,
            store: resolve(&g.store),
            policy,
            saga_key,
            poll_interval,
            script_eras,
            identity,
            chains,
            peers,
            notary,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bsv_format::keys::Network;

    /// A directory with key files and the fast-test policy.
    pub(crate) fn fixture(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("escrowd-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        for (file, n) in [("saga.wif", 1u8), ("p.wif", 2), ("d.wif", 3)] {
            crate::keys::write_key_file(
                &dir.join("keys").join(file),
                &PrivateKey::from_bytes(&[n; 32]).unwrap(),
                Network::Testnet,
            )
            .unwrap();
        }
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/fast-test.toml"),
            dir.join("policy.toml"),
        )
        .unwrap();
        dir
    }

    fn pk(n: u8) -> String {
        hex::encode(
            PrivateKey::from_bytes(&[n; 32])
                .unwrap()
                .public_key()
                .to_compressed(),
        )
    }

    /// A complete config for `fixture`'s directory (chains on 127.0.0.1:9001/9002).
    pub(crate) fn text() -> String {
        format!(
            r#"
[gateway]
spiffe_id = "spiffe://org-a.example/gateway/ga"
listen = "127.0.0.1:7001"
store = "data"
policy = "policy.toml"
saga_key = "keys/saga.wif"

[identity]
federation = "certs/federation.toml"
cert = "certs/ga.pem"
key = "certs/ga.key"

[chains.chain-p]
arc_url = "http://127.0.0.1:9001"
headers_url = "http://127.0.0.1:9001"
spend_url = "http://127.0.0.1:9001"
wallet_key = "keys/p.wif"

[chains.chain-d]
arc_url = "http://127.0.0.1:9002"
headers_url = "http://127.0.0.1:9002"
spend_url = "http://127.0.0.1:9002"
wallet_key = "keys/d.wif"

[peers."org-b.example"]
url = "https://127.0.0.1:7002"
spiffe_id = "spiffe://org-b.example/gateway/gb"
saga_key = "{}"
escrow_keys = {{ chain-p = "{}", chain-d = "{}" }}
"#,
            pk(4),
            pk(5),
            pk(6)
        )
    }

    fn parse(dir: &Path, text: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::parse(text, "gateway.toml", dir)
    }

    #[test]
    fn a_complete_config_loads_with_paths_resolved() {
        let dir = fixture("ok");
        let c = parse(&dir, &text()).unwrap();
        assert_eq!(c.spiffe_id.to_string(), "spiffe://org-a.example/gateway/ga");
        assert_eq!(c.store, dir.join("data"));
        assert_eq!(c.identity.cert, dir.join("certs/ga.pem"));
        assert_eq!(c.poll_interval, DEFAULT_POLL_INTERVAL);
        assert_eq!(
            c.chains["chain-p"].tx_url.as_str(),
            "http://127.0.0.1:9001/"
        );
        assert_eq!(
            c.chains["chain-d"].wallet_key,
            PrivateKey::from_bytes(&[3; 32]).unwrap()
        );
        let peer = &c.peers["org-b.example"];
        assert_eq!(
            peer.saga_key,
            PrivateKey::from_bytes(&[4; 32]).unwrap().public_key()
        );
        assert_eq!(
            peer.escrow_keys["chain-d"],
            PrivateKey::from_bytes(&[6; 32]).unwrap().public_key()
        );
    }

    fn error(dir: &Path, text: &str) -> String {
        match parse(dir, text) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn faults_name_the_field() {
        let dir = fixture("faults");
        let t = text();
        let e = error(&dir, &t.replace("listen =", "listne ="));
        assert!(
            e.contains("gateway.toml") && e.contains("listne") && e.contains("line"),
            "{e}"
        );
        let e = error(
            &dir,
            &t.replace("spend_url = \"http://127.0.0.1:9002\"\n", ""),
        );
        assert!(e.contains("spend_url"), "{e}");
        let e = error(&dir, &t.replace(&pk(5), "02abcd"));
        assert!(
            e.starts_with("gateway.toml: peers.org-b.example.escrow_keys.chain-p: 3 bytes"),
            "{e}"
        );
        let e = error(&dir, &t.replace("gateway/gb", "operator/gb"));
        assert!(
            e.contains("peers.org-b.example.spiffe_id") && e.contains("not gateway"),
            "{e}"
        );
        let e = error(
            &dir,
            &t.replace("org-b.example/gateway/gb", "org-c.example/gateway/gb"),
        );
        assert!(e.contains("not in the trust domain org-b.example"), "{e}");
        let e = error(&dir, &t.replace("\"127.0.0.1:7001\"", "\"nowhere\""));
        assert!(e.starts_with("gateway.toml: gateway.listen:"), "{e}");
        let e = error(&dir, &t.replace("keys/p.wif", "keys/missing.wif"));
        assert!(
            e.starts_with("gateway.toml: chains.chain-p.wallet_key: key file"),
            "{e}"
        );
        let e = error(&dir, &t.replace("[chains.chain-d]", "[chains.chain-x]"));
        assert!(
            e.contains("chains.chain-d: the policy names this chain"),
            "{e}"
        );
        let e = error(&dir, &t.replace("policy.toml", "nope.toml"));
        assert!(e.starts_with("gateway.toml: gateway.policy:"), "{e}");
    }
}
