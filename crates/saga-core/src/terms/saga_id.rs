//! [`SagaId`]: a UUIDv7 (RFC 9562 §5.7), text form in APIs.

use std::fmt;
use std::str::FromStr;

use uuid::{Builder, Uuid, Variant};

/// Why a text or 16 bytes are not a saga id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SagaIdError {
    /// Not the canonical text form: 36 characters, lowercase hex, hyphens at
    /// 8-4-4-4-12.
    #[error("not a lowercase hyphenated UUID (8-4-4-4-12)")]
    NotCanonicalText,
    /// A UUID, but not version 7 with the RFC 9562 variant.
    #[error("not a version 7 UUID")]
    NotVersion7,
}

/// A saga's id: a UUIDv7 (48-bit UNIX milliseconds, then 74 random bits),
/// so ids sort by creation time. Its text form is the lowercase hyphenated
/// UUID (`0190b2a4-7c3e-7a01-8000-0123456789ab`); its canonical bytes are the
/// 16 UUID bytes. No randomness is drawn here: the caller passes the time and
/// the random bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SagaId(Uuid);

impl SagaId {
    /// The UUIDv7 for `unix_millis` (milliseconds since the epoch; only the
    /// low 48 bits are used) and 10 random bytes (of which 74 bits are kept
    /// after the version and variant bits are set).
    pub fn new_v7(unix_millis: u64, random: &[u8; 10]) -> SagaId {
        SagaId(Builder::from_unix_timestamp_millis(unix_millis, random).into_uuid())
    }

    /// A saga id from its 16 bytes.
    ///
    /// # Errors
    /// [`SagaIdError::NotVersion7`].
    pub fn from_bytes(bytes: [u8; 16]) -> Result<SagaId, SagaIdError> {
        let u = Uuid::from_bytes(bytes);
        if u.get_version_num() == 7 && u.get_variant() == Variant::RFC4122 {
            Ok(SagaId(u))
        } else {
            Err(SagaIdError::NotVersion7)
        }
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The creation time encoded in the id, UNIX milliseconds.
    pub fn unix_millis(&self) -> u64 {
        let b = self.0.as_bytes();
        b[..6]
            .iter()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    }
}

impl FromStr for SagaId {
    type Err = SagaIdError;

    /// Parses the canonical text form only (lowercase, hyphenated), so each
    /// saga has exactly one text id.
    fn from_str(text: &str) -> Result<SagaId, SagaIdError> {
        let canonical = text.len() == 36
            && text.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
            });
        if !canonical {
            return Err(SagaIdError::NotCanonicalText);
        }
        let u = Uuid::parse_str(text).map_err(|_| SagaIdError::NotCanonicalText)?;
        SagaId::from_bytes(*u.as_bytes())
    }
}

impl fmt::Display for SagaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_from_time_and_random_bytes() {
        let id = SagaId::new_v7(0x0190_b2a4_7c3e, &[0xff; 10]);
        assert_eq!(id.to_string(), "0190b2a4-7c3e-7fff-bfff-ffffffffffff");
        assert_eq!(id.unix_millis(), 0x0190_b2a4_7c3e);
        assert_eq!(
            "0190b2a4-7c3e-7fff-bfff-ffffffffffff".parse::<SagaId>(),
            Ok(id)
        );
        assert_eq!(
            "0190B2A4-7C3E-7FFF-BFFF-FFFFFFFFFFFF".parse::<SagaId>(),
            Err(SagaIdError::NotCanonicalText)
        );
        assert_eq!(
            "0190b2a47c3e7fffbfffffffffffffff".parse::<SagaId>(),
            Err(SagaIdError::NotCanonicalText)
        );
        // A v4 UUID is not a saga id.
        assert_eq!(
            "0190b2a4-7c3e-4fff-bfff-ffffffffffff".parse::<SagaId>(),
            Err(SagaIdError::NotVersion7)
        );
        assert_eq!(SagaId::from_bytes(*id.as_bytes()), Ok(id));
    }
}
