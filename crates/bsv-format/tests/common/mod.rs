//! Shared helpers for the vector tests: where the vectors are and how to load them.
//!
//! The vectors live outside the repository (`../shared/vectors` beside the
//! checkout). `ESCROWD_VECTORS` overrides the location. A missing directory is
//! a test failure with a message saying where we looked: never a silent skip.
#![allow(dead_code)]

use std::path::PathBuf;

/// The vectors directory: `$ESCROWD_VECTORS`, else `<workspace>/../shared/vectors`.
pub fn vectors_dir() -> PathBuf {
    let dir = match std::env::var_os("ESCROWD_VECTORS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    assert!(
        dir.is_dir(),
        "test vectors not found at {} — set ESCROWD_VECTORS to the shared/vectors directory \
         (CI places ../shared beside the checkout); vector tests never skip silently",
        dir.display()
    );
    dir
}

/// Parses a JSON file under the vectors directory, e.g. `load("beef/beef_cases.json")`.
pub fn load(rel: &str) -> serde_json::Value {
    let path = vectors_dir().join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
