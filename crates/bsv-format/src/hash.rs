//! Hash functions and the 32-byte hash types of the formats.
//!
//! Hashes are stored in *internal* byte order (the raw digest bytes, as on the
//! wire); txids and Merkle roots are *displayed* byte-reversed
//! (`bsv-formats.md`, conventions). [`Txid`] and [`Hash256`] print and parse the
//! display form.
//!
//! # Layout
//! - [`sha256`], [`sha256d`], [`ripemd160`], [`hash160`]: digests.
//! - [`Hash256`]: a 32-byte double-SHA-256 value (Merkle nodes and roots).
//! - [`Txid`]: a transaction id.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::codec::{ParseError, ParseErrorKind};

/// SHA-256 of `data` (FIPS 180-4).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 applied twice ("hash256"), as used for txids and Merkle nodes.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

/// RIPEMD-160 of `data`.
pub fn ripemd160(data: &[u8]) -> [u8; 20] {
    use ripemd::Ripemd160;
    Ripemd160::digest(data).into()
}

/// RIPEMD-160 of SHA-256 ("HASH160"), as used for P2PKH addresses.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    ripemd160(&sha256(data))
}

/// SHA-1 of `data` (only for `OP_SHA1` in the script interpreter).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Sha1;
    Sha1::digest(data).into()
}

/// Parses 64 hex characters in display (byte-reversed) order into internal order.
fn parse_display_hex(text: &str, context: &'static str) -> Result<[u8; 32], ParseError> {
    let bytes = crate::codec::decode_hex(text)?;
    let mut out: [u8; 32] = bytes
        .try_into()
        .map_err(|_| ParseError::new(0, ParseErrorKind::BadText, context))?;
    out.reverse();
    Ok(out)
}

fn write_display_hex(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes.iter().rev() {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// A 32-byte double-SHA-256 value in internal byte order (Merkle nodes, roots).
/// `Display`/`FromStr` use the byte-reversed display hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash256(pub [u8; 32]);

impl Hash256 {
    /// The internal-order bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses display (byte-reversed) hex. Errors: [`ParseErrorKind::BadText`].
    pub fn from_display_hex(text: &str) -> Result<Self, ParseError> {
        parse_display_hex(text, "hash (display hex)").map(Hash256)
    }

    /// The Merkle parent of two nodes: `sha256d(left ‖ right)`.
    pub fn merkle_parent(left: &Hash256, right: &Hash256) -> Hash256 {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(&left.0);
        buf[32..].copy_from_slice(&right.0);
        Hash256(sha256d(&buf))
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_display_hex(&self.0, f)
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl FromStr for Hash256 {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hash256::from_display_hex(s)
    }
}

/// A transaction id: `sha256d` of the raw transaction bytes (BRC-12), stored in
/// internal byte order, displayed byte-reversed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Txid(pub [u8; 32]);

impl Txid {
    /// The txid of raw transaction bytes (`sha256d`).
    pub fn of_raw(raw_tx: &[u8]) -> Txid {
        Txid(sha256d(raw_tx))
    }

    /// The internal-order bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses display (byte-reversed) hex. Errors: [`ParseErrorKind::BadText`].
    pub fn from_display_hex(text: &str) -> Result<Self, ParseError> {
        parse_display_hex(text, "txid (display hex)").map(Txid)
    }

    /// The same 32 bytes as a Merkle leaf.
    pub fn as_hash(&self) -> Hash256 {
        Hash256(self.0)
    }
}

impl fmt::Display for Txid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_display_hex(&self.0, f)
    }
}

impl fmt::Debug for Txid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Txid({self})")
    }
}

impl FromStr for Txid {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Txid::from_display_hex(s)
    }
}

impl From<Hash256> for Txid {
    fn from(h: Hash256) -> Txid {
        Txid(h.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        assert_eq!(
            hex::encode(sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex::encode(ripemd160(b"abc")),
            "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
        );
        assert_eq!(
            hex::encode(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(hash160(b"")),
            "b472a266d0bd89c13706a4132ccfb16f7c3b9fcb"
        );
    }

    #[test]
    fn txid_display_is_byte_reversed() {
        let t = Txid::from_display_hex(
            "0100000000000000000000000000000000000000000000000000000000000002",
        )
        .unwrap();
        assert_eq!(t.0[0], 0x02);
        assert_eq!(t.0[31], 0x01);
        assert_eq!(
            t.to_string(),
            "0100000000000000000000000000000000000000000000000000000000000002"
        );
        assert_eq!(
            Txid::from_display_hex("00").unwrap_err().kind,
            ParseErrorKind::BadText
        );
    }
}
