//! The offline chain tracker: a headers file (DESIGN.md §7).
//!
//! ```json
//! {"tip": 900100, "roots": {"900000": "<merkle root, display hex>", ...}}
//! ```
//! `tip` is optional; without it, coinbase maturity is judged against the
//! highest listed height. Unknown fields are refused so that a typo (`"root"`)
//! is an error and not an empty tracker.

use std::collections::BTreeMap;
use std::path::Path;

use bsv_format::Hash256;
use serde::Deserialize;

/// Why a headers file could not be loaded. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum HeadersError {
    /// The file could not be read.
    #[error("cannot read headers file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is malformed or has unknown fields (serde's message has line and column).
    #[error("headers file {path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// A key of `roots` is not a block height.
    #[error("headers file {path}: roots key {key:?} is not a block height (0..=4294967295)")]
    BadHeight {
        /// The file.
        path: String,
        /// The offending key.
        key: String,
    },
    /// A height is listed twice (also as `"7"` and `"007"`).
    #[error("headers file {path}: height {height} is listed twice in roots")]
    DuplicateHeight {
        /// The file.
        path: String,
        /// The height.
        height: u32,
    },
    /// A root is not 64 hex characters.
    #[error("headers file {path}: roots[{height}] is not a 32-byte hex Merkle root: {source}")]
    BadRoot {
        /// The file.
        path: String,
        /// The height whose root is malformed.
        height: u32,
        /// Where the hex broke.
        source: bsv_format::ParseError,
    },
    /// `tip` is below a listed height.
    #[error("headers file {path}: tip {tip} is below listed height {height}")]
    TipBelowRoot {
        /// The file.
        path: String,
        /// The declared tip.
        tip: u32,
        /// A listed height above it.
        height: u32,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersFile {
    tip: Option<u32>,
    roots: RootEntries,
}

/// The `roots` object with every entry kept in file order, so a height
/// listed twice is an error instead of serde's silent "last one wins".
struct RootEntries(Vec<(String, String)>);

impl<'de> Deserialize<'de> for RootEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = RootEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of block height → Merkle root")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RootEntries, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, String>()? {
                    out.push(entry);
                }
                Ok(RootEntries(out))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// Merkle roots by block height, from a headers file or built in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadersTracker {
    roots: BTreeMap<u32, Hash256>,
    tip: Option<u32>,
}

impl HeadersTracker {
    /// A tracker over `roots` (height → root) with an optional explicit tip height.
    pub fn new(roots: BTreeMap<u32, Hash256>, tip: Option<u32>) -> Self {
        HeadersTracker { roots, tip }
    }

    /// Loads a headers file.
    ///
    /// # Errors
    /// [`HeadersError`] naming the file and the field at fault.
    pub fn load(path: &Path) -> Result<Self, HeadersError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| HeadersError::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&text, &name)
    }

    /// Parses headers-file JSON; `name` is used in error messages.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, name: &str) -> Result<Self, HeadersError> {
        let file: HeadersFile =
            serde_json::from_str(text).map_err(|source| HeadersError::Json {
                path: name.into(),
                source,
            })?;
        let mut roots = BTreeMap::new();
        for (key, root) in file.roots.0 {
            let height: u32 = key.parse().map_err(|_| HeadersError::BadHeight {
                path: name.into(),
                key: key.clone(),
            })?;
            let root =
                Hash256::from_display_hex(&root).map_err(|source| HeadersError::BadRoot {
                    path: name.into(),
                    height,
                    source,
                })?;
            if roots.insert(height, root).is_some() {
                return Err(HeadersError::DuplicateHeight {
                    path: name.into(),
                    height,
                });
            }
        }
        if let (Some(tip), Some((&height, _))) = (file.tip, roots.last_key_value()) {
            if tip < height {
                return Err(HeadersError::TipBelowRoot {
                    path: name.into(),
                    tip,
                    height,
                });
            }
        }
        Ok(HeadersTracker {
            roots,
            tip: file.tip,
        })
    }

    /// Serializes to the headers-file JSON form (pretty-printed).
    pub fn to_json(&self) -> String {
        let roots: BTreeMap<String, String> = self
            .roots
            .iter()
            .map(|(h, r)| (h.to_string(), r.to_string()))
            .collect();
        let mut v = serde_json::json!({ "roots": roots });
        if let Some(tip) = self.tip {
            v["tip"] = tip.into();
        }
        // Serializing a `Value` built from strings and integers cannot fail.
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// The root recorded for `height`, if any.
    pub fn root_at(&self, height: u32) -> Option<&Hash256> {
        self.roots.get(&height)
    }

    /// The tip height: the declared `tip`, else the highest listed height, else 0.
    pub fn tip_height(&self) -> u32 {
        self.tip
            .or_else(|| self.roots.last_key_value().map(|(h, _)| *h))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "57aab6e6fb1b697174ffb64e062c4728f2ffd33ddcfa02a43b64d8cd29b483b4";

    #[test]
    fn parses_roots_and_tip() {
        let t = HeadersTracker::parse(
            &format!(r#"{{"tip": 813800, "roots": {{"813706": "{ROOT}"}}}}"#),
            "h.json",
        )
        .unwrap();
        assert_eq!(t.root_at(813706).unwrap().to_string(), ROOT);
        assert_eq!(t.tip_height(), 813800);
        let t = HeadersTracker::parse(&format!(r#"{{"roots": {{"813706": "{ROOT}"}}}}"#), "h.json")
            .unwrap();
        assert_eq!(t.tip_height(), 813706);
        assert_eq!(HeadersTracker::parse(&t.to_json(), "again").unwrap(), t);
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let e = HeadersTracker::parse(r#"{"root": {}}"#, "h.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("headers file h.json:") && e.contains("unknown field `root`"),
            "{e}"
        );
        let e = HeadersTracker::parse(r#"{"roots": {"12x": "00"}}"#, "h.json").unwrap_err();
        assert!(matches!(e, HeadersError::BadHeight { ref key, .. } if key == "12x"));
        let e = HeadersTracker::parse(r#"{"roots": {"12": "00"}}"#, "h.json").unwrap_err();
        assert!(matches!(e, HeadersError::BadRoot { height: 12, .. }));
        let e = HeadersTracker::parse(
            &format!(r#"{{"tip": 5, "roots": {{"813706": "{ROOT}"}}}}"#),
            "h.json",
        )
        .unwrap_err();
        assert!(matches!(
            e,
            HeadersError::TipBelowRoot {
                tip: 5,
                height: 813706,
                ..
            }
        ));
    }
}
