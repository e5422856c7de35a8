//! Canonical byte encoding.
