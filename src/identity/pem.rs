//! Reading PEM files: certificates, private keys and CRLs (RFC 7468), via
//! `rustls-pki-types`' PEM reader. Every error names the file.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// A PEM file that could not be used. Displays as one line starting with the file.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file is missing or could not be read.
    #[error("{}: cannot read: {source}", file.display())]
    Unreadable {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM section is malformed (bad base64, missing end line, …).
    #[error("{}: malformed PEM: {detail}", file.display())]
    Malformed {
        /// The file.
        file: PathBuf,
        /// What the PEM reader reported.
        detail: String,
    },
    /// The file holds no section of the expected kind.
    #[error("{}: no {what} found (expected a PEM \"{label}\" section)", file.display())]
    Missing {
        /// The file.
        file: PathBuf,
        /// What was looked for, e.g. "certificate".
        what: &'static str,
        /// The PEM label(s) accepted.
        label: &'static str,
    },
    /// A key file holds more than one key.
    #[error("{}: {count} private keys; expected exactly one", file.display())]
    SeveralKeys {
        /// The file.
        file: PathBuf,
        /// How many were found.
        count: usize,
    },
}

fn read(file: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(file).map_err(|source| PemError::Unreadable {
        file: file.to_owned(),
        source,
    })
}

fn all<T: PemObject>(file: &Path, bytes: &[u8]) -> Result<Vec<T>, PemError> {
    T::pem_slice_iter(bytes)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| PemError::Malformed {
            file: file.to_owned(),
            detail: e.to_string(),
        })
}

/// Reads every `CERTIFICATE` section of `file`, in order (leaf first for a chain).
///
/// # Errors
/// [`PemError`] when unreadable, malformed or without a certificate.
pub fn read_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs: Vec<CertificateDer<'static>> = all(file, &read(file)?)?;
    if certs.is_empty() {
        return Err(PemError::Missing {
            file: file.to_owned(),
            what: "certificate",
            label: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Reads the single private key of `file` (PKCS#8, SEC1 or PKCS#1).
///
/// # Errors
/// [`PemError`] when unreadable, malformed, keyless or with several keys.
pub fn read_private_key(file: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let mut keys: Vec<PrivateKeyDer<'static>> = all(file, &read(file)?)?;
    match keys.len() {
        0 => Err(PemError::Missing {
            file: file.to_owned(),
            what: "private key",
            label: "PRIVATE KEY\", \"EC PRIVATE KEY\" or \"RSA PRIVATE KEY",
        }),
        1 => Ok(keys.remove(0)),
        count => Err(PemError::SeveralKeys {
            file: file.to_owned(),
            count,
        }),
    }
}

/// Reads every `X509 CRL` section of `file`.
///
/// # Errors
/// [`PemError`] when unreadable, malformed or without a CRL.
pub fn read_crls(file: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    let crls: Vec<CertificateRevocationListDer<'static>> = all(file, &read(file)?)?;
    if crls.is_empty() {
        return Err(PemError::Missing {
            file: file.to_owned(),
            what: "CRL",
            label: "X509 CRL",
        });
    }
    Ok(crls)
}
