//! secp256k1 keys: private keys and WIF, public keys and P2PKH addresses,
//! ECDSA signing, and the signature/public-key checks the script interpreter
//! makes.
//!
//! Everything here is a thin, checked layer over the `secp256k1` crate
//! (libsecp256k1). Signing is deterministic (RFC 6979) and always yields a
//! low-S DER signature. Verification mirrors the SV node: [`verify_ecdsa`] is
//! `CPubKey::Verify` (`src/pubkey.cpp`), and [`is_strict_der`], [`is_low_s`],
//! [`is_compressed_or_uncompressed_pubkey`] and [`is_compressed_pubkey`] are
//! the encoding checks of `src/script/interpreter.cpp`.
//!
//! Text forms use Base58Check (`payload ‖ sha256d(payload)[..4]`, Base58 with
//! the Bitcoin alphabet):
//! - WIF: `prefix ‖ key (32 bytes) [‖ 0x01 if the public key is compressed]`,
//!   prefix `0x80` mainnet, `0xEF` testnet.
//! - P2PKH address: `prefix ‖ HASH160(SEC public key)`, prefix `0x00`
//!   mainnet, `0x6F` testnet.
//!
//! # Layout
//! - [`KeyError`]: what can go wrong decoding keys and addresses.
//! - [`Network`]: mainnet / testnet prefixes.
//! - [`PrivateKey`], [`Wif`]: secret scalars, WIF import/export, signing.
//! - [`PublicKey`]: SEC parsing and encoding, HASH160, addresses;
//!   [`p2pkh_address`], [`decode_p2pkh_address`].
//! - [`verify_ecdsa`] and the encoding predicates used by `OP_CHECKSIG`.
//! - Base58Check: [`base58check_encode`], [`base58check_decode`].

use std::fmt;

use secp256k1::ecdsa::Signature;
use secp256k1::{Message, SecretKey};

use crate::hash::{hash160, sha256d};

/// A fault in a private key, public key, WIF string or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum KeyError {
    /// The 32 bytes are zero or not below the secp256k1 group order `n`.
    #[error("private key is zero or not below the secp256k1 group order")]
    InvalidScalar,
    /// A character outside the Base58 alphabet, at this character offset.
    #[error("invalid Base58 character at offset {offset}")]
    InvalidBase58Char {
        /// Character (not byte) offset in the text.
        offset: usize,
    },
    /// The Base58Check checksum does not match the payload.
    #[error("Base58Check checksum mismatch")]
    BadChecksum,
    /// The decoded payload (or the text) has a length the format does not allow.
    #[error("wrong length: {len} bytes")]
    WrongLength {
        /// The length found (decoded payload bytes, or text characters if the
        /// text itself is too long to be a key or address).
        len: usize,
    },
    /// The version prefix byte is not one of the format's known prefixes.
    #[error("unknown version prefix 0x{prefix:02x}")]
    UnknownPrefix {
        /// The prefix byte found.
        prefix: u8,
    },
    /// A 34-byte WIF payload whose last byte is not the compression flag `0x01`.
    #[error("WIF compression flag is 0x{flag:02x}, expected 0x01")]
    BadCompressionFlag {
        /// The byte found where `0x01` was expected.
        flag: u8,
    },
    /// The bytes are not a valid SEC-encoded secp256k1 point (compressed
    /// `02/03 ‖ x`, 33 bytes, or uncompressed `04 ‖ x ‖ y`, 65 bytes).
    #[error("invalid public key encoding or point")]
    InvalidPublicKey,
}

/// Which chain's version prefixes to use in WIF and address text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// BSV mainnet: WIF prefix `0x80`, P2PKH prefix `0x00`.
    Mainnet,
    /// BSV testnet (and regtest): WIF prefix `0xEF`, P2PKH prefix `0x6F`.
    Testnet,
}

impl Network {
    /// The WIF version byte (`0x80` / `0xEF`).
    pub const fn wif_prefix(self) -> u8 {
        match self {
            Network::Mainnet => 0x80,
            Network::Testnet => 0xef,
        }
    }

    /// The P2PKH address version byte (`0x00` / `0x6F`).
    pub const fn p2pkh_prefix(self) -> u8 {
        match self {
            Network::Mainnet => 0x00,
            Network::Testnet => 0x6f,
        }
    }

    /// The network whose WIF version byte is `prefix`, if any.
    pub const fn from_wif_prefix(prefix: u8) -> Option<Network> {
        match prefix {
            0x80 => Some(Network::Mainnet),
            0xef => Some(Network::Testnet),
            _ => None,
        }
    }

    /// The network whose P2PKH address version byte is `prefix`, if any.
    pub const fn from_p2pkh_prefix(prefix: u8) -> Option<Network> {
        match prefix {
            0x00 => Some(Network::Mainnet),
            0x6f => Some(Network::Testnet),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Private keys
// ---------------------------------------------------------------------------

/// A secp256k1 private key: a scalar in `[1, n-1]`.
///
/// `Debug` does not print the secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PrivateKey {
    secret: SecretKey,
}

impl PrivateKey {
    /// A private key from its 32-byte big-endian scalar.
    ///
    /// # Errors
    /// [`KeyError::InvalidScalar`] if the value is zero or `>= n`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PrivateKey, KeyError> {
        SecretKey::from_secret_bytes(*bytes)
            .map(|secret| PrivateKey { secret })
            .map_err(|_| KeyError::InvalidScalar)
    }

    /// The 32-byte big-endian scalar.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.to_secret_bytes()
    }

    /// Decodes a WIF string (Base58Check `prefix ‖ key32 [‖ 0x01]`).
    ///
    /// # Errors
    /// [`KeyError::InvalidBase58Char`], [`KeyError::BadChecksum`],
    /// [`KeyError::WrongLength`] (payload not 33 or 34 bytes),
    /// [`KeyError::UnknownPrefix`] (not `0x80`/`0xEF`),
    /// [`KeyError::BadCompressionFlag`], [`KeyError::InvalidScalar`].
    pub fn from_wif(text: &str) -> Result<Wif, KeyError> {
        Wif::decode(text)
    }

    /// The WIF of this key for `network`, flagged compressed (the form escrowd
    /// uses for every key).
    pub fn to_wif(&self, network: Network) -> String {
        Wif {
            key: *self,
            network,
            compressed: true,
        }
        .encode()
    }

    /// The public key `d·G`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            point: self.secret.public_key(),
        }
    }

    /// Signs a 32-byte digest (e.g. a sighash from
    /// [`crate::sighash::signature_hash`], internal byte order) with ECDSA:
    /// RFC 6979 deterministic nonce, low-S, DER-encoded (70–72 bytes typically,
    /// at most 72). The sighash-type byte is *not* appended.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Vec<u8> {
        // libsecp256k1's secp256k1_ecdsa_sign always produces a normalised
        // (low-S) signature with the RFC 6979 nonce function.
        let sig = secp256k1::ecdsa::sign(Message::from_digest(*digest), &self.secret);
        sig.serialize_der().to_vec()
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A decoded WIF: the key, the network its prefix names, and whether it is
/// flagged as having a compressed public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wif {
    /// The private key.
    pub key: PrivateKey,
    /// Mainnet (`0x80`) or testnet (`0xEF`).
    pub network: Network,
    /// Whether the payload carries the `0x01` compression suffix.
    pub compressed: bool,
}

impl Wif {
    /// Decodes WIF text. Errors as [`PrivateKey::from_wif`].
    pub fn decode(text: &str) -> Result<Wif, KeyError> {
        let payload = base58check_decode(text)?;
        let (prefix, rest) = payload
            .split_first()
            .ok_or(KeyError::WrongLength { len: 0 })?;
        let (key_bytes, compressed) = match rest.len() {
            32 => (rest, false),
            33 => match rest.split_last() {
                Some((&0x01, key)) => (key, true),
                Some((&flag, _)) => return Err(KeyError::BadCompressionFlag { flag }),
                None => return Err(KeyError::WrongLength { len: payload.len() }),
            },
            _ => return Err(KeyError::WrongLength { len: payload.len() }),
        };
        let network =
            Network::from_wif_prefix(*prefix).ok_or(KeyError::UnknownPrefix { prefix: *prefix })?;
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(key_bytes);
        let key = PrivateKey::from_bytes(&scalar)?;
        Ok(Wif {
            key,
            network,
            compressed,
        })
    }

    /// Encodes as WIF text.
    pub fn encode(&self) -> String {
        let mut payload = Vec::with_capacity(34);
        payload.push(self.network.wif_prefix());
        payload.extend_from_slice(&self.key.to_bytes());
        if self.compressed {
            payload.push(0x01);
        }
        base58check_encode(&payload)
    }

    /// The public key, in the SEC form the compression flag selects
    /// (33 bytes compressed, 65 bytes uncompressed).
    pub fn public_key_sec(&self) -> Vec<u8> {
        let pk = self.key.public_key();
        if self.compressed {
            pk.to_compressed().to_vec()
        } else {
            pk.to_uncompressed().to_vec()
        }
    }
}

// ---------------------------------------------------------------------------
// Public keys
// ---------------------------------------------------------------------------

/// A secp256k1 public key (a valid curve point).
///
/// escrowd always writes keys compressed (33 bytes); uncompressed keys are
/// accepted when parsing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    point: secp256k1::PublicKey,
}

impl PublicKey {
    /// Parses a SEC-encoded key: `02/03 ‖ x` (33 bytes) or `04 ‖ x ‖ y`
    /// (65 bytes). Hybrid keys (`06/07`) are rejected.
    ///
    /// # Errors
    /// [`KeyError::InvalidPublicKey`] for any other length or prefix, or a
    /// point not on the curve.
    pub fn from_sec(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        if !is_compressed_or_uncompressed_pubkey(bytes) {
            return Err(KeyError::InvalidPublicKey);
        }
        secp256k1::PublicKey::from_slice(bytes)
            .map(|point| PublicKey { point })
            .map_err(|_| KeyError::InvalidPublicKey)
    }

    /// The 33-byte compressed SEC encoding.
    pub fn to_compressed(&self) -> [u8; 33] {
        self.point.serialize()
    }

    /// The 65-byte uncompressed SEC encoding.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.point.serialize_uncompressed()
    }

    /// HASH160 (RIPEMD-160 of SHA-256) of the compressed encoding: the
    /// 20 bytes a P2PKH locking script commits to.
    pub fn hash160(&self) -> [u8; 20] {
        hash160(&self.to_compressed())
    }

    /// The P2PKH address of the compressed key on `network`.
    pub fn address(&self, network: Network) -> String {
        p2pkh_address(&self.hash160(), network)
    }

    /// Verifies a DER signature (without sighash byte) over `digest`, with the
    /// node's rules (see [`verify_ecdsa`]).
    pub fn verify_digest(&self, digest: &[u8; 32], der_sig: &[u8]) -> bool {
        verify_with_point(digest, der_sig, &self.point)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_compressed()))
    }
}

impl fmt::Display for PublicKey {
    /// Lowercase hex of the compressed encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_compressed()))
    }
}

/// The Base58Check P2PKH address for a 20-byte public-key hash on `network`.
pub fn p2pkh_address(pubkey_hash: &[u8; 20], network: Network) -> String {
    let mut payload = [0u8; 21];
    payload[0] = network.p2pkh_prefix();
    payload[1..].copy_from_slice(pubkey_hash);
    base58check_encode(&payload)
}

/// Decodes a P2PKH address into its 20-byte public-key hash and network.
///
/// # Errors
/// [`KeyError::InvalidBase58Char`], [`KeyError::BadChecksum`],
/// [`KeyError::WrongLength`] (payload not 21 bytes),
/// [`KeyError::UnknownPrefix`] (not `0x00`/`0x6F`).
pub fn decode_p2pkh_address(text: &str) -> Result<([u8; 20], Network), KeyError> {
    let payload = base58check_decode(text)?;
    let (prefix, hash) = match payload.split_first() {
        Some((p, h)) if h.len() == 20 => (*p, h),
        _ => return Err(KeyError::WrongLength { len: payload.len() }),
    };
    let network = Network::from_p2pkh_prefix(prefix).ok_or(KeyError::UnknownPrefix { prefix })?;
    let mut out = [0u8; 20];
    out.copy_from_slice(hash);
    Ok((out, network))
}

// ---------------------------------------------------------------------------
// Verification and the interpreter's encoding checks
// ---------------------------------------------------------------------------

/// Verifies an ECDSA signature exactly as the SV node's `CPubKey::Verify`
/// (`src/pubkey.cpp`) does, so `OP_CHECKSIG` agrees with consensus:
///
/// - `pubkey` must have the length its prefix implies (`02/03` → 33 bytes;
///   `04`, and the hybrid `06/07`, → 65 bytes) and be a valid point.
///   Hybrid keys verify here, as on the node; rejecting them is the job of
///   [`is_compressed_or_uncompressed_pubkey`] under `STRICTENC`.
/// - `der_sig` (DER, **without** the trailing sighash-type byte) is parsed
///   with the lax DER parser (`ecdsa_signature_parse_der_lax`); an empty
///   signature fails.
/// - S is normalised to low-S before verification (high-S signatures
///   verify; `LOW_S` is enforced separately by [`is_low_s`]).
///
/// `digest` is the 32-byte message in internal byte order (the sighash).
/// Returns `false` on any parse failure; never panics.
pub fn verify_ecdsa(digest: &[u8; 32], der_sig: &[u8], pubkey: &[u8]) -> bool {
    let expected_len = match pubkey.first() {
        Some(0x02 | 0x03) => 33,
        Some(0x04 | 0x06 | 0x07) => 65,
        _ => return false,
    };
    if pubkey.len() != expected_len {
        return false;
    }
    match parse_point(pubkey) {
        Some(point) => verify_with_point(digest, der_sig, &point),
        None => false,
    }
}

thread_local! {
    /// The last compressed key this thread parsed, with its point. Parsing a
    /// compressed key decompresses it (a field square root), about 11 % of a
    /// whole signature check; spends by one wallet repeat their keys
    /// (docs/benchmarks.md). Keyed on all 33 bytes, so a hit returns exactly
    /// what parsing would.
    static LAST_COMPRESSED_KEY: std::cell::Cell<Option<([u8; 33], secp256k1::PublicKey)>> =
        const { std::cell::Cell::new(None) };
}

/// `secp256k1::PublicKey::from_slice`, remembering the last compressed key.
fn parse_point(pubkey: &[u8]) -> Option<secp256k1::PublicKey> {
    let Ok(bytes) = <[u8; 33]>::try_from(pubkey) else {
        return secp256k1::PublicKey::from_slice(pubkey).ok();
    };
    if let Some((last, point)) = LAST_COMPRESSED_KEY.get() {
        if last == bytes {
            return Some(point);
        }
    }
    let point = secp256k1::PublicKey::from_slice(&bytes).ok()?;
    LAST_COMPRESSED_KEY.set(Some((bytes, point)));
    Some(point)
}

fn verify_with_point(digest: &[u8; 32], der_sig: &[u8], point: &secp256k1::PublicKey) -> bool {
    let Ok(mut sig) = Signature::from_der_lax(der_sig) else {
        return false;
    };
    sig.normalize_s();
    secp256k1::ecdsa::verify(&sig, Message::from_digest(*digest), point).is_ok()
}

/// BIP66 strict DER check, the node's `IsValidSignatureEncoding`
/// (`src/script/interpreter.cpp`). The input **includes** the trailing
/// sighash-type byte:
/// `30 len 02 lenR R 02 lenS S hashtype`, 9–73 bytes, R and S positive and
/// minimally encoded. Never panics.
pub fn is_strict_der(sig_with_hashtype: &[u8]) -> bool {
    let sig = sig_with_hashtype;
    let n = sig.len();
    if !(9..=73).contains(&n) {
        return false;
    }
    // Indexing below is within bounds: every index is checked against `n`
    // (the length constraints tie lenR and lenS to n before use).
    let at = |i: usize| sig.get(i).copied();
    if at(0) != Some(0x30) || at(1) != Some((n - 3) as u8) {
        return false;
    }
    let Some(len_r) = at(3).map(usize::from) else {
        return false;
    };
    if 5 + len_r >= n {
        return false;
    }
    let Some(len_s) = at(5 + len_r).map(usize::from) else {
        return false;
    };
    if len_r + len_s + 7 != n {
        return false;
    }
    if at(2) != Some(0x02) || len_r == 0 {
        return false;
    }
    let (Some(r0), Some(r1)) = (at(4), at(5)) else {
        return false;
    };
    if r0 & 0x80 != 0 || (len_r > 1 && r0 == 0 && r1 & 0x80 == 0) {
        return false;
    }
    if at(len_r + 4) != Some(0x02) || len_s == 0 {
        return false;
    }
    let (Some(s0), Some(s1)) = (at(len_r + 6), at(len_r + 7)) else {
        return false;
    };
    if s0 & 0x80 != 0 || (len_s > 1 && s0 == 0 && s1 & 0x80 == 0) {
        return false;
    }
    true
}

/// Whether the signature's S value is at most `n/2`, the node's
/// `CPubKey::CheckLowS` applied as in `IsLowDERSignature` / `CheckSignatureEncoding`
/// (`src/pubkey.cpp`, `src/script/interpreter.cpp`): the trailing sighash-type
/// byte is dropped, the rest is parsed with the lax DER parser, and the
/// result is `true` iff S did not need normalising. Empty input or a failed
/// parse gives `false` (callers check [`is_strict_der`] first to tell
/// `SIG_DER` from `SIG_HIGH_S`, and treat an empty signature before both).
pub fn is_low_s(sig_with_hashtype: &[u8]) -> bool {
    let Some((_, der)) = sig_with_hashtype.split_last() else {
        return false;
    };
    let Ok(sig) = Signature::from_der_lax(der) else {
        return false;
    };
    let mut normalised = sig;
    normalised.normalize_s();
    normalised.serialize_compact() == sig.serialize_compact()
}

/// The node's `IsCompressedOrUncompressedPubKey`: `02/03` and 33 bytes, or
/// `04` and 65 bytes (no curve check). Hybrid (`06/07`) keys fail.
pub fn is_compressed_or_uncompressed_pubkey(pubkey: &[u8]) -> bool {
    match pubkey.first() {
        Some(0x04) => pubkey.len() == 65,
        Some(0x02 | 0x03) => pubkey.len() == 33,
        _ => false,
    }
}

/// The node's `IsCompressedPubKey`: 33 bytes with prefix `02` or `03`
/// (no curve check).
pub fn is_compressed_pubkey(pubkey: &[u8]) -> bool {
    pubkey.len() == 33 && matches!(pubkey.first(), Some(0x02 | 0x03))
}

// ---------------------------------------------------------------------------
// Base58Check
// ---------------------------------------------------------------------------

const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Longest text [`base58check_decode`] accepts, in characters. Keys and
/// addresses are at most 52; the bound keeps the quadratic conversion cheap
/// on hostile input.
pub const MAX_BASE58_TEXT: usize = 128;

/// Base58Check encoding: Base58 of `payload ‖ sha256d(payload)[..4]`, one
/// `'1'` per leading zero byte.
pub fn base58check_encode(payload: &[u8]) -> String {
    let mut data = Vec::with_capacity(payload.len() + 4);
    data.extend_from_slice(payload);
    let check = sha256d(payload);
    data.extend_from_slice(&check[..4]);
    base58_encode(&data)
}

/// Decodes Base58Check text and returns the payload (checksum removed).
///
/// # Errors
/// [`KeyError::WrongLength`] if the text is longer than [`MAX_BASE58_TEXT`]
/// characters or decodes to fewer than 4 bytes, [`KeyError::InvalidBase58Char`],
/// [`KeyError::BadChecksum`].
pub fn base58check_decode(text: &str) -> Result<Vec<u8>, KeyError> {
    let mut data = base58_decode(text)?;
    if data.len() < 4 {
        return Err(KeyError::WrongLength { len: data.len() });
    }
    let split = data.len() - 4;
    let check = sha256d(&data[..split]);
    if check[..4] != data[split..] {
        return Err(KeyError::BadChecksum);
    }
    data.truncate(split);
    Ok(data)
}

fn base58_encode(data: &[u8]) -> String {
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    // Base-58 digits, little-endian; log(256)/log(58) < 1.37.
    let mut digits: Vec<u8> = Vec::with_capacity(data.len() * 137 / 100 + 1);
    for &byte in &data[zeros..] {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(
        digits
            .iter()
            .rev()
            .map(|&d| char::from(BASE58_ALPHABET[usize::from(d)])),
    );
    out
}

fn base58_value(c: u8) -> Option<u8> {
    BASE58_ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|p| p as u8)
}

fn base58_decode(text: &str) -> Result<Vec<u8>, KeyError> {
    let chars = text.as_bytes();
    if chars.len() > MAX_BASE58_TEXT {
        return Err(KeyError::WrongLength { len: chars.len() });
    }
    let zeros = chars.iter().take_while(|&&c| c == b'1').count();
    // Bytes, little-endian; log(58)/log(256) < 0.74.
    let mut bytes: Vec<u8> = Vec::with_capacity(chars.len() * 3 / 4 + 1);
    for (offset, &c) in chars.iter().enumerate().skip(zeros) {
        // Non-ASCII text makes a multi-byte char; the offset is in bytes then,
        // which equals the character offset for any valid prefix.
        let mut carry = u32::from(base58_value(c).ok_or(KeyError::InvalidBase58Char { offset })?);
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_round_trips_with_leading_zeros() {
        for data in [&[][..], &[0], &[0, 0, 1], &[0xff; 10], &[0, 0x61]] {
            let text = base58_encode(data);
            assert_eq!(base58_decode(&text).unwrap(), data);
        }
        // "Hello World!" (Base58 reference string).
        assert_eq!(base58_encode(b"Hello World!"), "2NEpo7TZRRrLZSi2U");
        assert_eq!(base58_encode(&[0, 0, 0x28, 0x7f, 0xb4, 0xcd]), "11233QC4");
    }

    #[test]
    fn base58_rejects_bad_characters_and_overlong_text() {
        assert_eq!(
            base58_decode("12O4"),
            Err(KeyError::InvalidBase58Char { offset: 2 })
        );
        assert_eq!(
            base58_decode("0"),
            Err(KeyError::InvalidBase58Char { offset: 0 })
        );
        let long = "2".repeat(MAX_BASE58_TEXT + 1);
        assert_eq!(
            base58_decode(&long),
            Err(KeyError::WrongLength {
                len: MAX_BASE58_TEXT + 1
            })
        );
        assert_eq!(
            base58check_decode("1"),
            Err(KeyError::WrongLength { len: 1 })
        );
    }

    #[test]
    fn remembered_key_answers_only_for_its_own_bytes() {
        let a = PrivateKey::from_bytes(&[0x11; 32]).unwrap();
        let b = PrivateKey::from_bytes(&[0x22; 32]).unwrap();
        let digest = [7u8; 32];
        let (sig_a, sig_b) = (a.sign_digest(&digest), b.sign_digest(&digest));
        let (key_a, key_b) = (
            a.public_key().to_compressed(),
            b.public_key().to_compressed(),
        );
        let mut not_a_point = key_a;
        not_a_point[1..].copy_from_slice(&[0xff; 32]); // x ≥ p
        for _ in 0..2 {
            assert!(verify_ecdsa(&digest, &sig_a, &key_a));
            assert!(verify_ecdsa(&digest, &sig_a, &key_a), "remembered key A");
            assert!(
                !verify_ecdsa(&digest, &sig_a, &key_b),
                "key B right after A"
            );
            assert!(verify_ecdsa(&digest, &sig_b, &key_b));
            assert!(
                !verify_ecdsa(&digest, &sig_b, &key_a),
                "key A right after B"
            );
            assert!(
                !verify_ecdsa(&digest, &sig_a, &not_a_point),
                "invalid key right after a valid one"
            );
            assert!(verify_ecdsa(
                &digest,
                &sig_a,
                &a.public_key().to_uncompressed()
            ));
        }
    }
}
