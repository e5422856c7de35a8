//! Single-use tokens (DESIGN.md §3.4; that section wins over any other note
//! on token encoding): a signed, expiring capability that lets one named
//! party execute one named reservation once.
//!
//! # Encoding (version 1)
//!
//! [`crate::canonical`] fields after the version byte `0x01`:
//!
//! | # | field | bytes |
//! | --- | --- | --- |
//! | 1 | token id | 16 (random, drawn by the caller) |
//! | 2 | saga id | 16 (UUIDv7) |
//! | 3 | reservation outpoint | 36: txid (internal byte order) ‖ vout u32 little-endian, as on the wire (BRC-12) |
//! | 4 | issuer SPIFFE ID (role gateway) | UTF-8 ≤ 2048 |
//! | 5 | holder SPIFFE ID (role gateway) | UTF-8 ≤ 2048 |
//! | 6 | `not_after`, UTC seconds | u64 |
//! | 7 | issuer saga key | 33 (compressed SEC) |
//! | 8 | signature | DER ≤ 72, low-S |
//!
//! Fields 1–7 with the version byte are the *body*; the signature (field 8)
//! is ECDSA by the issuer's saga key over `SHA256("escrowd/token/v1" ‖ body)`.
//! The token's wire form (in `Execute`) is `body ‖ field 8`, at most
//! [`MAX_TOKEN_LEN`] bytes; decoding is bounded and never panics.
//!
//! # Acceptance
//!
//! [`Token::verify`] accepts a token only if the issuer key in it is the one
//! agreed in the terms, the signature verifies under it, the holder is the
//! caller's mTLS identity, and `now ≤ not_after + skew`. It returns a
//! [`VerifiedToken`], the only form the saga accepts.
//!
//! **Consumption exactly once is the store's job.** Contract: the store keeps
//! a `tokens` tree keyed by [`TokenId`] (16 bytes) whose value is the event
//! that consumed the token; the insert (failing if the key exists) commits in
//! the same sled transaction as that saga event, so of two concurrent uses
//! exactly one commits and the other finds the key and is refused as a replay.
//!
//! # Layout
//! - [`TokenId`], [`Token`], [`VerifiedToken`], [`TokenError`].

use std::fmt;
use std::time::Duration;

use bsv_format::hash::sha256;
use bsv_format::keys::{PrivateKey, PublicKey};
use bsv_format::{Outpoint, Txid};

use crate::canonical::{DecodeError, Reader, Writer};
use crate::spiffe::{self, Role as SpiffeRole, MAX_SPIFFE_ID_LEN};
use crate::terms::{der_low_s, SagaId, MAX_DER_SIGNATURE_LEN};
use crate::units::UnixTime;

/// Version byte of the token encoding.
pub const TOKEN_VERSION: u8 = 1;
/// Domain tag hashed before the body (16 bytes).
pub const TOKEN_TAG: &[u8; 16] = b"escrowd/token/v1";
/// Longest token accepted on the wire, bytes.
pub const MAX_TOKEN_LEN: usize = 5 * 1024;

/// A token's id: 16 random bytes drawn by the issuer's runtime. The key of
/// the store's `tokens` tree. Equality is constant-time.
#[derive(Debug, Clone, Copy, Eq)]
pub struct TokenId(pub [u8; 16]);

impl std::hash::Hash for TokenId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: equal ids have equal bytes.
        self.0.hash(state);
    }
}

impl PartialEq for TokenId {
    fn eq(&self, other: &TokenId) -> bool {
        crate::constant_time_eq(&self.0, &other.0)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex_lower(&self.0))
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The bytes do not decode.
    #[error("token encoding: {0}")]
    Decode(#[from] DecodeError),
    /// The issuer or holder is not a gateway SPIFFE ID.
    #[error("token {field}: {reason}")]
    BadIdentity {
        /// `issuer` or `holder`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The signature is not strict low-S DER of at most 72 bytes.
    #[error("token signature is not strict low-S DER")]
    SignatureEncoding,
    /// The issuer key in the token is not the one agreed in the terms.
    #[error("token issuer key is not the issuer's saga key in the terms")]
    WrongIssuerKey,
    /// The signature does not verify under the issuer key.
    #[error("token signature does not verify")]
    BadSignature,
    /// The caller is not the holder named in the token.
    #[error("token is held by {holder}, not by the caller {caller}")]
    WrongHolder {
        /// The holder in the token.
        holder: String,
        /// The caller's mTLS identity.
        caller: String,
    },
    /// `now > not_after + skew`.
    #[error("token expired at {not_after} (now {now}, skew tolerance {skew_secs} s)")]
    Expired {
        /// The token's `not_after`.
        not_after: UnixTime,
        /// Now.
        now: UnixTime,
        /// The tolerance applied.
        skew_secs: u64,
    },
    /// The token is for another saga or reservation than the one it is used on.
    #[error("token grants another saga or reservation")]
    WrongGrant,
}

/// A token as issued or received (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Its id.
    pub token_id: TokenId,
    /// The saga.
    pub saga_id: SagaId,
    /// The reservation (escrow output) it lets the holder execute.
    pub reservation: Outpoint,
    /// The issuing gateway (the reservation's funder).
    pub issuer: String,
    /// The gateway that may use it (the beneficiary).
    pub holder: String,
    /// Last UTC second at which it is valid (before the skew tolerance).
    pub not_after: UnixTime,
    /// The issuer's saga key.
    pub issuer_key: PublicKey,
    signature: Vec<u8>,
}

fn check_gateway(field: &'static str, id: &str) -> Result<(), TokenError> {
    let parts = spiffe::parse_spiffe_id(id).map_err(|e| TokenError::BadIdentity {
        field,
        reason: e.to_string(),
    })?;
    if parts.role != SpiffeRole::Gateway {
        return Err(TokenError::BadIdentity {
            field,
            reason: "must have the role gateway".into(),
        });
    }
    Ok(())
}

impl Token {
    /// Issues a token signed by `key` (the issuer's saga key). Nothing random
    /// is drawn here: `token_id` comes from the caller.
    ///
    /// # Errors
    /// [`TokenError::BadIdentity`] if `issuer` or `holder` is not a gateway SPIFFE ID.
    pub fn issue(
        token_id: TokenId,
        saga_id: SagaId,
        reservation: Outpoint,
        issuer: &str,
        holder: &str,
        not_after: UnixTime,
        key: &PrivateKey,
    ) -> Result<Token, TokenError> {
        check_gateway("issuer", issuer)?;
        check_gateway("holder", holder)?;
        let mut token = Token {
            token_id,
            saga_id,
            reservation,
            issuer: issuer.to_string(),
            holder: holder.to_string(),
            not_after,
            issuer_key: key.public_key(),
            signature: Vec::new(),
        };
        token.signature = key.sign_digest(&token.digest());
        Ok(token)
    }

    /// The body: version byte and fields 1–7.
    fn body(&self) -> Writer {
        let mut w = Writer::new(TOKEN_VERSION);
        w.bytes(&self.token_id.0)
            .bytes(self.saga_id.as_bytes())
            .bytes(&self.reservation.to_bytes())
            .text(&self.issuer)
            .text(&self.holder)
            .u64(self.not_after.0)
            .key(&self.issuer_key);
        w
    }

    /// `SHA256("escrowd/token/v1" ‖ body)`: what the issuer signs.
    pub fn digest(&self) -> [u8; 32] {
        let body = self.body().finish();
        let mut msg = Vec::with_capacity(TOKEN_TAG.len() + body.len());
        msg.extend_from_slice(TOKEN_TAG);
        msg.extend_from_slice(&body);
        sha256(&msg)
    }

    /// The signature (DER, no sighash byte).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The wire form: body ‖ signature field.
    pub fn encode(&self) -> Vec<u8> {
        self.body().bytes(&self.signature).finish()
    }

    /// Decodes the wire form (bounded by [`MAX_TOKEN_LEN`]). Checks the
    /// structure only — identities, key, signature encoding; use
    /// [`Token::verify`] before relying on it.
    ///
    /// # Errors
    /// [`TokenError::Decode`] with offset and field,
    /// [`TokenError::BadIdentity`], [`TokenError::SignatureEncoding`].
    pub fn decode(bytes: &[u8]) -> Result<Token, TokenError> {
        let mut r = Reader::new(bytes, MAX_TOKEN_LEN, TOKEN_VERSION)?;
        let (token_id, _) = r.array::<16>("token_id")?;
        let (saga, at) = r.array::<16>("saga_id")?;
        let saga_id = SagaId::from_bytes(saga).map_err(|_| r.invalid(at, "saga_id"))?;
        let (op, _) = r.array::<36>("reservation")?;
        let mut txid = [0u8; 32];
        txid.copy_from_slice(&op[..32]);
        let vout = u32::from_le_bytes([op[32], op[33], op[34], op[35]]);
        let (issuer, _) = r.text("issuer", MAX_SPIFFE_ID_LEN)?;
        let (holder, _) = r.text("holder", MAX_SPIFFE_ID_LEN)?;
        let not_after = UnixTime(r.u64("not_after")?);
        let issuer_key = r.key("issuer_key")?;
        let (signature, _) = r.bytes("signature", MAX_DER_SIGNATURE_LEN)?;
        r.finish()?;
        check_gateway("issuer", &issuer)?;
        check_gateway("holder", &holder)?;
        if !der_low_s(signature) {
            return Err(TokenError::SignatureEncoding);
        }
        Ok(Token {
            token_id: TokenId(token_id),
            saga_id,
            reservation: Outpoint::new(Txid(txid), vout),
            issuer,
            holder,
            not_after,
            issuer_key,
            signature: signature.to_vec(),
        })
    }

    /// Accepts the token (module docs): the issuer key is
    /// `expected_issuer_key` (the issuer's saga key in the agreed terms), the
    /// signature verifies, the holder is `caller_spiffe_id` (the caller's
    /// mTLS identity), and `now ≤ not_after + skew`. Whether it was already
    /// consumed is the store's check, by [`TokenId`].
    ///
    /// # Errors
    /// In this order: [`TokenError::WrongIssuerKey`],
    /// [`TokenError::SignatureEncoding`], [`TokenError::BadSignature`],
    /// [`TokenError::WrongHolder`], [`TokenError::Expired`].
    pub fn verify(
        &self,
        expected_issuer_key: &PublicKey,
        caller_spiffe_id: &str,
        now: UnixTime,
        skew: Duration,
    ) -> Result<VerifiedToken, TokenError> {
        if !crate::constant_time_eq(
            &self.issuer_key.to_compressed(),
            &expected_issuer_key.to_compressed(),
        ) {
            return Err(TokenError::WrongIssuerKey);
        }
        if !der_low_s(&self.signature) {
            return Err(TokenError::SignatureEncoding);
        }
        if !self
            .issuer_key
            .verify_digest(&self.digest(), &self.signature)
        {
            return Err(TokenError::BadSignature);
        }
        if self.holder != caller_spiffe_id {
            return Err(TokenError::WrongHolder {
                holder: self.holder.clone(),
                caller: caller_spiffe_id.to_string(),
            });
        }
        if now.0 > self.not_after.0.saturating_add(skew.as_secs()) {
            return Err(TokenError::Expired {
                not_after: self.not_after,
                now,
                skew_secs: skew.as_secs(),
            });
        }
        Ok(VerifiedToken(self.clone()))
    }
}

/// A token that passed [`Token::verify`]: only `verify` builds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken(Token);

impl VerifiedToken {
    /// The token.
    pub fn token(&self) -> &Token {
        &self.0
    }

    /// Its id: the key the store consumes it under.
    pub fn token_id(&self) -> TokenId {
        self.0.token_id
    }

    /// Checks that it grants `reservation` of `saga_id` — the saga and the
    /// escrow output it is being used to execute.
    ///
    /// # Errors
    /// [`TokenError::WrongGrant`].
    pub fn check_grants(&self, saga_id: &SagaId, reservation: &Outpoint) -> Result<(), TokenError> {
        if &self.0.saga_id == saga_id && &self.0.reservation == reservation {
            Ok(())
        } else {
            Err(TokenError::WrongGrant)
        }
    }
}
