//! This process's identity and TLS configuration, reloadable as a whole.
//!
//! [`IdentityHandle::load`] reads the federation file, every CA bundle and
//! CRL it lists, and our own certificate and key, checks that they fit
//! together, and builds the rustls server config. Either all of it loads or
//! start-up fails with one line naming the file and the problem: nothing
//! starts half-configured. [`IdentityHandle::reload`] does the same and swaps
//! the result in atomically; on failure the previous configuration stays.
//! Established connections are never dropped by a reload: new handshakes use
//! the new configuration, and the authorization layer re-checks every RPC's
//! certificate chain against the current [`TrustStore`] (so a new CRL
//! reaches live connections on their next RPC).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::time_provider::{DefaultTimeProvider, TimeProvider};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::UnixTime;
use tokio::sync::watch;

use super::federation::{Federation, FederationError};
use super::pem::{read_certificates, read_private_key, PemError};
use super::spiffe::{CertIdError, SpiffeId};
use super::trust::{FederationClientVerifier, PeerServerVerifier, TrustError, TrustStore};

/// ALPN protocol: gRPC runs over HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// Default maximum age of a served HTTP/2 connection, seconds: after it the
/// server sends GOAWAY and the client reconnects (and re-handshakes).
pub const DEFAULT_MAX_CONNECTION_AGE_SECS: u64 = 300;
/// Default grace after the maximum age, seconds, before a connection still
/// busy (e.g. a long event subscription, authorized only when it began) is
/// closed by force.
pub const DEFAULT_MAX_CONNECTION_AGE_GRACE_SECS: u64 = 30;
/// Default interval between checks of the identity files for changes, seconds.
pub const DEFAULT_RELOAD_POLL_SECS: u64 = 10;

/// Where this process's identity comes from; the gateway, notary and
/// observer configs embed these fields (e.g. as an `[identity]` table:
/// `federation`, `cert`, `key`; unknown fields refused). Resolving relative
/// paths is the embedding config's job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The federation file.
    pub federation: PathBuf,
    /// Our certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Our private key, PEM.
    pub key: PathBuf,
}

/// The identity could not be loaded. Displays as one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The federation file is missing or malformed.
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// A CA bundle or CRL the federation lists is unusable.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Our certificate or key file is unusable.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// rustls refused our private key.
    #[error("{}: private key refused: {detail}", file.display())]
    BadKey {
        /// The key file.
        file: PathBuf,
        /// Why.
        detail: String,
    },
    /// Our private key is not the one our certificate certifies.
    #[error("{}: private key does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// Our certificate has no usable SPIFFE ID.
    #[error("{}: {source}", file.display())]
    OwnId {
        /// The certificate file.
        file: PathBuf,
        /// Why.
        source: CertIdError,
    },
    /// Our certificate's domain or role is not allowed by the federation.
    #[error("{}: our identity {id} is not allowed by federation {}: {reason}", file.display(), federation.display())]
    NotFederated {
        /// The certificate file.
        file: PathBuf,
        /// Our SPIFFE ID.
        id: SpiffeId,
        /// The federation file.
        federation: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// rustls refused to build a config.
    #[error("TLS configuration refused: {0}")]
    Tls(String),
}

/// One consistent, immutable configuration: the federation's trust, our
/// certified key and the server config built from them.
#[derive(Debug)]
pub struct IdentitySnapshot {
    trust: Arc<TrustStore>,
    own: Arc<CertifiedKey>,
    own_id: SpiffeId,
    server: Arc<ServerConfig>,
    stamps: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

impl IdentitySnapshot {
    /// The federation's trust.
    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    /// Our SPIFFE ID (from our certificate).
    pub fn own_id(&self) -> &SpiffeId {
        &self.own_id
    }

    /// The rustls server config: TLS 1.3, ALPN h2, client certificate
    /// required and verified by [`FederationClientVerifier`].
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }

    /// A rustls client config that presents our certificate and accepts only
    /// a server whose certificate the federation verifies and whose SPIFFE ID
    /// is `expected`.
    ///
    /// # Errors
    /// [`IdentityError::Tls`] if rustls refuses the protocol settings.
    pub fn client_config(
        &self,
        expected: &SpiffeId,
        time: Arc<dyn TimeProvider>,
    ) -> Result<ClientConfig, IdentityError> {
        client_config(
            self.trust.clone(),
            expected.clone(),
            Some(self.own.clone()),
            time,
        )
    }
}

/// A client config over `trust` accepting only `expected`, presenting
/// `client_cert` if given (tests pass `None` or a deliberately bad one).
///
/// # Errors
/// [`IdentityError::Tls`] if rustls refuses the protocol settings.
pub fn client_config(
    trust: Arc<TrustStore>,
    expected: SpiffeId,
    client_cert: Option<Arc<CertifiedKey>>,
    time: Arc<dyn TimeProvider>,
) -> Result<ClientConfig, IdentityError> {
    let provider = trust.provider().clone();
    let builder = ClientConfig::builder_with_details(provider, time)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerServerVerifier::new(trust, expected)));
    let mut config = match client_cert {
        Some(key) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// Loads a certificate chain and key and checks they belong together.
///
/// # Errors
/// [`IdentityError`] naming the file: unreadable, malformed, key refused or mismatched.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, IdentityError> {
    let chain = read_certificates(cert)?;
    let der = read_private_key(key)?;
    let provider = super::trust::crypto_provider();
    let signing =
        provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| IdentityError::BadKey {
                file: key.to_owned(),
                detail: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(IdentityError::KeyMismatch {
                key: key.to_owned(),
                cert: cert.to_owned(),
            })
        }
        Err(e) => Err(IdentityError::BadKey {
            file: key.to_owned(),
            detail: e.to_string(),
        }),
    }
}

fn stamp(file: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(file).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn build(
    settings: &TlsSettings,
    time: &Arc<dyn TimeProvider>,
) -> Result<IdentitySnapshot, IdentityError> {
    let federation = Federation::load(&settings.federation)?;
    let trust = Arc::new(TrustStore::load(&federation)?);
    let own = Arc::new(load_certified_key(&settings.cert, &settings.key)?);
    let leaf = own
        .end_entity_cert()
        .map_err(|e| IdentityError::Tls(e.to_string()))?;
    let own_id = SpiffeId::from_certificate(leaf).map_err(|source| IdentityError::OwnId {
        file: settings.cert.clone(),
        source,
    })?;
    let not_federated = |reason| IdentityError::NotFederated {
        file: settings.cert.clone(),
        id: own_id.clone(),
        federation: settings.federation.clone(),
        reason,
    };
    if federation.domain(own_id.domain()).is_none() {
        return Err(not_federated("its trust domain is not listed"));
    }
    if !trust.allows(own_id.domain(), own_id.role()) {
        return Err(not_federated("its role is not allowed for its domain"));
    }
    let mut server = ServerConfig::builder_with_details(trust.provider().clone(), time.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| IdentityError::Tls(e.to_string()))?
        .with_client_cert_verifier(Arc::new(FederationClientVerifier::new(trust.clone())))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(own.clone())));
    server.alpn_protocols = vec![ALPN_H2.to_vec()];
    let mut files = vec![
        settings.federation.clone(),
        settings.cert.clone(),
        settings.key.clone(),
    ];
    files.extend(federation.files());
    let stamps = files.into_iter().map(|f| {
        let s = stamp(&f);
        (f, s)
    });
    Ok(IdentitySnapshot {
        trust,
        own,
        own_id,
        server: Arc::new(server),
        stamps: stamps.collect(),
    })
}

struct Inner {
    settings: TlsSettings,
    time: Arc<dyn TimeProvider>,
    current: RwLock<Arc<IdentitySnapshot>>,
    generation: watch::Sender<u64>,
}

/// The shared, reloadable identity of this process. Cheap to clone.
#[derive(Clone)]
pub struct IdentityHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IdentityHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityHandle")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl IdentityHandle {
    /// Loads everything `settings` names, on the system clock.
    ///
    /// # Errors
    /// [`IdentityError`]: one line naming the file and the problem.
    pub fn load(settings: TlsSettings) -> Result<IdentityHandle, IdentityError> {
        IdentityHandle::load_with_time(settings, Arc::new(DefaultTimeProvider))
    }

    /// As [`IdentityHandle::load`], with the clock certificates are judged by.
    ///
    /// # Errors
    /// As [`IdentityHandle::load`].
    pub fn load_with_time(
        settings: TlsSettings,
        time: Arc<dyn TimeProvider>,
    ) -> Result<IdentityHandle, IdentityError> {
        let snapshot = build(&settings, &time)?;
        let (generation, _) = watch::channel(0);
        Ok(IdentityHandle {
            inner: Arc::new(Inner {
                settings,
                time,
                current: RwLock::new(Arc::new(snapshot)),
                generation,
            }),
        })
    }

    /// The current configuration.
    pub fn current(&self) -> Arc<IdentitySnapshot> {
        // A poisoned lock only means a panic elsewhere while holding it; the
        // value is a whole Arc either way.
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Now, by the clock certificates are judged by.
    pub fn now(&self) -> UnixTime {
        self.inner.time.current_time().unwrap_or_else(UnixTime::now)
    }

    /// The clock certificates are judged by.
    pub fn time_provider(&self) -> Arc<dyn TimeProvider> {
        self.inner.time.clone()
    }

    /// Our SPIFFE ID.
    pub fn own_id(&self) -> SpiffeId {
        self.current().own_id.clone()
    }

    /// A client config for calling `expected` (see [`IdentitySnapshot::client_config`]).
    ///
    /// # Errors
    /// [`IdentityError::Tls`] if rustls refuses the protocol settings.
    pub fn client_config(&self, expected: &SpiffeId) -> Result<ClientConfig, IdentityError> {
        self.current()
            .client_config(expected, self.inner.time.clone())
    }

    /// Reloads everything from the same files. On success the new
    /// configuration replaces the old at once and the reload generation
    /// rises by one; on failure the old one stays and the error is returned.
    ///
    /// # Errors
    /// As [`IdentityHandle::load`].
    pub fn reload(&self) -> Result<u64, IdentityError> {
        let snapshot = Arc::new(build(&self.inner.settings, &self.inner.time)?);
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = snapshot;
        let mut generation = 0;
        self.inner.generation.send_modify(|g| {
            *g += 1;
            generation = *g;
        });
        tracing::debug!(generation, "identity configuration replaced");
        Ok(generation)
    }

    /// A receiver of the reload generation (0 at load, +1 per successful reload).
    pub fn generations(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Whether any identity file (federation, CA bundles, CRLs, our cert or
    /// key) changed size or modification time since the current snapshot was built.
    pub fn files_changed(&self) -> bool {
        self.current().stamps.iter().any(|(f, s)| &stamp(f) != s)
    }

    /// Size and modification time of each file of the current snapshot, as on disk now.
    fn disk_stamps(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.current()
            .stamps
            .iter()
            .map(|(f, _)| stamp(f))
            .collect()
    }

    /// Spawns the reload watcher: reloads on SIGHUP, and when
    /// [`IdentityHandle::files_changed`] on a poll every `poll`. A failed
    /// reload is logged (error) and the old configuration kept.
    ///
    /// # Errors
    /// The I/O error when the SIGHUP handler cannot be installed.
    pub fn spawn_watcher(&self, poll: Duration) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.clone();
        Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The files as they were when a file-change reload last failed:
            // not retried (nor logged again) until they change once more.
            let mut failed_at: Option<Vec<Option<(SystemTime, u64)>>> = None;
            loop {
                let cause = tokio::select! {
                    got = hup.recv() => match got {
                        Some(()) => "SIGHUP",
                        None => return,
                    },
                    _ = tick.tick() => {
                        if !handle.files_changed() || failed_at.as_ref() == Some(&handle.disk_stamps()) {
                            continue;
                        }
                        "file change"
                    }
                };
                let on_disk = handle.disk_stamps();
                match handle.reload() {
                    Ok(generation) => {
                        tracing::info!(cause = %cause, generation, "identity reloaded");
                        failed_at = None;
                    }
                    Err(e) => {
                        tracing::error!(cause = %cause, "identity reload failed, keeping the previous configuration: {e}");
                        failed_at = Some(on_disk);
                    }
                }
            }
        }))
    }
}
