//! Policy files (DESIGN.md §3.2, `policies/`): read from disk and handed to
//! [`saga_core::policy::Policy::parse`], which keeps spans, validates every
//! rule and computes the timeline. This module only does the I/O: a file
//! that cannot be read, or is not UTF-8, is reported here; everything about
//! its content comes from saga-core with `file:line:column: field:`.

use std::path::Path;

use saga_core::policy::{Policy, PolicyError};

/// Why a policy file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// The file could not be read (missing, a directory, no permission).
    #[error("cannot read policy file {path}: {source}")]
    Unreadable {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not UTF-8 (TOML is UTF-8 text); position of the first bad byte.
    #[error("{path}:{line}:{column}: (document): not UTF-8 text")]
    NotUtf8 {
        /// The path as given.
        path: String,
        /// 1-based line of the first invalid byte.
        line: u32,
        /// 1-based column (characters before it on its line, plus one).
        column: u32,
    },
    /// The text is not a valid policy (see [`PolicyError`]; its `Display`
    /// includes the computed timeline for a timeline rule).
    #[error("{0}")]
    Invalid(#[from] PolicyError),
}

impl PolicyLoadError {
    /// Whether the file itself was unusable (exit 2) rather than read and
    /// found invalid (exit 1).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, PolicyLoadError::Unreadable { .. })
    }
}

/// Reads and validates the policy at `path`. The policy id is the file's
/// base name and the SHA-256 of exactly the bytes read.
///
/// # Errors
/// [`PolicyLoadError`]: unreadable, not UTF-8, or invalid.
pub fn load(path: &Path) -> Result<Policy, PolicyLoadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PolicyLoadError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    parse_bytes(&bytes, &shown)
}

/// Validates policy file bytes named `path` (for errors and the id).
///
/// # Errors
/// [`PolicyLoadError::NotUtf8`] or [`PolicyLoadError::Invalid`].
pub fn parse_bytes(bytes: &[u8], path: &str) -> Result<Policy, PolicyLoadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = bytes.get(..e.valid_up_to()).unwrap_or_default();
        // The prefix is valid UTF-8 by definition of valid_up_to.
        let prefix = std::str::from_utf8(valid).unwrap_or_default();
        let line = prefix.matches('\n').count() + 1;
        let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        PolicyLoadError::NotUtf8 {
            path: path.to_string(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    })?;
    Ok(Policy::parse(text, path)?)
}
