//! Key files: one WIF private key per file, readable by its owner only
//! (DESIGN.md §5: keys live in the store's `secrets` tree or in key files
//! with mode 0600). The gateway config names one key file per chain.
//!
//! A key file holds the WIF text (Base58Check, mainnet prefix `0x80` or
//! testnet `0xEF`, compressed flag) and optional surrounding whitespace.
//! Loading refuses a file that group or others may read or write — a key
//! that leaked is not a key — and a file that is not one WIF key. Errors
//! name the file, never its content.
//!
//! # Layout
//! - [`load_key_file`], [`write_key_file`], [`KeyFileError`].
//! - [`random_key`]: a fresh secp256k1 key from the system's random source.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use bsv_format::keys::{Network, PrivateKey, Wif};
use ring::rand::{SecureRandom, SystemRandom};

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Group or others have access: the key may have leaked.
    #[error("key file {path} has mode {mode:03o}: group and others must have no access (chmod 600 {path})")]
    TooOpen {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The content is not one WIF private key (the key is not shown).
    #[error("key file {path} does not hold a WIF private key: {reason}")]
    NotWif {
        /// The file.
        path: String,
        /// What is wrong (from the WIF decoder; no key material).
        reason: String,
    },
    /// The file exists: writing never overwrites a key.
    #[error("key file {path} exists: refusing to overwrite a key")]
    Exists {
        /// The file.
        path: String,
    },
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
}

/// A fresh private key: 32 bytes from the system's random source (ring's
/// `SystemRandom`, the OS CSPRNG), drawn again in the negligible case they
/// are not a valid secp256k1 scalar.
///
/// # Errors
/// [`KeyFileError::Random`] when the random source fails.
pub fn random_key() -> Result<PrivateKey, KeyFileError> {
    let random = SystemRandom::new();
    for _ in 0..8 {
        let mut bytes = [0u8; 32];
        random.fill(&mut bytes).map_err(|_| KeyFileError::Random)?;
        if let Ok(key) = PrivateKey::from_bytes(&bytes) {
            return Ok(key);
        }
    }
    Err(KeyFileError::Random)
}

/// Loads the WIF key in `path`.
///
/// # Errors
/// [`KeyFileError::Io`], [`KeyFileError::TooOpen`] (any of the mode's
/// group/other bits set, Unix only), [`KeyFileError::NotWif`].
pub fn load_key_file(path: &Path) -> Result<Wif, KeyFileError> {
    let shown = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::TooOpen { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(io)?;
    Wif::decode(text.trim()).map_err(|e| KeyFileError::NotWif {
        path: shown,
        reason: e.to_string(),
    })
}

/// Writes `key` as compressed WIF for `network` to a new file `path` with
/// mode 0600 (created so; never widened afterwards).
///
/// # Errors
/// [`KeyFileError::Exists`], [`KeyFileError::Io`].
pub fn write_key_file(path: &Path, key: &PrivateKey, network: Network) -> Result<(), KeyFileError> {
    let shown = path.display().to_string();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists {
                path: shown.clone(),
            }
        } else {
            KeyFileError::Io {
                path: shown.clone(),
                source,
            }
        }
    })?;
    let wif = Wif {
        key: *key,
        network,
        compressed: true,
    }
    .encode();
    file.write_all(format!("{wif}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyFileError::Io {
            path: shown,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("escrowd-keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_written_key_loads_back_and_is_owner_only() {
        let d = dir("roundtrip");
        let key = PrivateKey::from_bytes(&[7; 32]).unwrap();
        let path = d.join("chain-p.wif");
        write_key_file(&path, &key, Network::Testnet).unwrap();
        let wif = load_key_file(&path).unwrap();
        assert_eq!(wif.key, key);
        assert_eq!(wif.network, Network::Testnet);
        assert!(wif.compressed);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(
            write_key_file(&path, &key, Network::Testnet),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused_without_showing_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("open");
        let key = PrivateKey::from_bytes(&[9; 32]).unwrap();
        let path = d.join("k.wif");
        write_key_file(&path, &key, Network::Mainnet).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_key_file(&path).unwrap_err();
        assert!(
            matches!(err, KeyFileError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        let wif = std::fs::read_to_string(&path).unwrap();
        assert!(!err.to_string().contains(wif.trim()));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn content_that_is_not_one_wif_key_is_refused_by_name() {
        let d = dir("notwif");
        let path = d.join("k.wif");
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&path).unwrap();
        f.write_all(b"not a key at all").unwrap();
        let err = load_key_file(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::NotWif { .. }), "{err}");
        assert!(err.to_string().contains("k.wif"));
    }
}
