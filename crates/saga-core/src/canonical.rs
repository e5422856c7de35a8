//! The canonical byte encoding shared by terms and tokens — the bytes that
//! are hashed and signed, so it is fixed, documented and not protobuf or
//! serde (whose bytes are not canonical).
//!
//! ```text
//! encoding = version:u8 ‖ field_1 ‖ … ‖ field_n       (fixed order, fixed n)
//! field    = length:u32 big-endian ‖ bytes[length]
//! ```
//!
//! Inside a field: integers are fixed-width big-endian (`u32` 4 bytes, `u64`
//! 8 bytes); text is UTF-8; keys are 33-byte compressed SEC; hashes and ids
//! are their raw bytes; an optional text is empty when absent (none of the
//! texts that may be absent can be empty when present). Because every field
//! carries its length and the order is fixed, there is exactly one encoding
//! per value; the decoder refuses anything else (wrong version, a length that
//! does not fit the field, a field past its bound, trailing bytes).
//!
//! A signature covers `SHA256(domain tag ‖ encoding)`, with a tag of fixed
//! length per structure (`escrowd/terms/v1`, `escrowd/token/v1`), so the
//! signature of one structure can never be replayed as the other.
//!
//! # Layout
//! - [`DecodeError`], [`DecodeErrorKind`]: small `Copy` errors with offsets.
//! - [`Writer`]: appends fields.
//! - [`Reader`]: bounded field reads.

use bsv_format::keys::PublicKey;

/// What went wrong decoding a canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// The input is longer than the structure's bound.
    TooLong,
    /// The input ended inside a length prefix or a field.
    UnexpectedEnd,
    /// The version byte is not one this decoder reads.
    UnknownVersion,
    /// A fixed-size field has another length, or a field exceeds its bound.
    BadLength,
    /// A text field is not UTF-8.
    NotUtf8,
    /// The field's bytes are not a valid value (a key off the curve, a
    /// non-v7 UUID, an empty required text).
    InvalidValue,
    /// Bytes remain after the last field.
    TrailingBytes,
}

/// A decoding failure: what, at which byte offset, in which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{kind:?} at byte {offset} ({field})")]
pub struct DecodeError {
    /// Byte offset of the field's length prefix (or of the fault).
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// The field, e.g. `"payment.amount"`.
    pub field: &'static str,
}

/// Appends a canonical encoding.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// Starts an encoding with its version byte.
    pub fn new(version: u8) -> Writer {
        Writer { out: vec![version] }
    }

    /// One field: `len u32 BE ‖ bytes`. Fields are bounded far below 4 GiB
    /// by the structures' own limits.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(bytes);
        self
    }

    /// A `u32` field (4 bytes, big-endian).
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A `u64` field (8 bytes, big-endian).
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// A text field (UTF-8 bytes).
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// A public key field (33-byte compressed SEC).
    pub fn key(&mut self, k: &PublicKey) -> &mut Self {
        self.bytes(&k.to_compressed())
    }

    /// The finished encoding.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

/// Reads a canonical encoding field by field, with bounds.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the total length against `max_len` and the version byte
    /// against `version`.
    ///
    /// # Errors
    /// [`DecodeErrorKind::TooLong`], [`DecodeErrorKind::UnexpectedEnd`],
    /// [`DecodeErrorKind::UnknownVersion`].
    pub fn new(buf: &'a [u8], max_len: usize, version: u8) -> Result<Reader<'a>, DecodeError> {
        if buf.len() > max_len {
            return Err(DecodeError {
                offset: max_len,
                kind: DecodeErrorKind::TooLong,
                field: "encoding",
            });
        }
        match buf.first() {
            None => Err(DecodeError {
                offset: 0,
                kind: DecodeErrorKind::UnexpectedEnd,
                field: "version",
            }),
            Some(&v) if v != version => Err(DecodeError {
                offset: 0,
                kind: DecodeErrorKind::UnknownVersion,
                field: "version",
            }),
            Some(_) => Ok(Reader { buf, pos: 1 }),
        }
    }

    fn err(&self, offset: usize, kind: DecodeErrorKind, field: &'static str) -> DecodeError {
        DecodeError {
            offset,
            kind,
            field,
        }
    }

    /// One field of at most `max` bytes; returns its bytes and the offset of
    /// its length prefix.
    ///
    /// # Errors
    /// [`DecodeErrorKind::UnexpectedEnd`], [`DecodeErrorKind::BadLength`].
    pub fn bytes(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<(&'a [u8], usize), DecodeError> {
        let at = self.pos;
        let len_bytes =
            self.buf
                .get(at..at + 4)
                .ok_or(self.err(at, DecodeErrorKind::UnexpectedEnd, field))?;
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(len_bytes);
        let len = usize::try_from(u32::from_be_bytes(len4)).unwrap_or(usize::MAX);
        if len > max {
            return Err(self.err(at, DecodeErrorKind::BadLength, field));
        }
        let data = self.buf.get(at + 4..at + 4 + len).ok_or(self.err(
            at,
            DecodeErrorKind::UnexpectedEnd,
            field,
        ))?;
        self.pos = at + 4 + len;
        Ok((data, at))
    }

    /// A field of exactly `N` bytes.
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes); [`DecodeErrorKind::BadLength`] for another length.
    pub fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<([u8; N], usize), DecodeError> {
        let (data, at) = self.bytes(field, N)?;
        let arr = <[u8; N]>::try_from(data)
            .map_err(|_| self.err(at, DecodeErrorKind::BadLength, field))?;
        Ok((arr, at))
    }

    /// A `u32` field.
    ///
    /// # Errors
    /// As [`array`](Self::array).
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array::<4>(field)?.0))
    }

    /// A `u64` field.
    ///
    /// # Errors
    /// As [`array`](Self::array).
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array::<8>(field)?.0))
    }

    /// A UTF-8 text field of at most `max` bytes (may be empty).
    ///
    /// # Errors
    /// As [`bytes`](Self::bytes); [`DecodeErrorKind::NotUtf8`].
    pub fn text(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<(String, usize), DecodeError> {
        let (data, at) = self.bytes(field, max)?;
        let s =
            std::str::from_utf8(data).map_err(|_| self.err(at, DecodeErrorKind::NotUtf8, field))?;
        Ok((s.to_string(), at))
    }

    /// A 33-byte compressed public key that is a valid curve point.
    ///
    /// # Errors
    /// As [`array`](Self::array); [`DecodeErrorKind::InvalidValue`].
    pub fn key(&mut self, field: &'static str) -> Result<PublicKey, DecodeError> {
        let (bytes, at) = self.array::<33>(field)?;
        if !bsv_format::keys::is_compressed_pubkey(&bytes) {
            return Err(self.err(at, DecodeErrorKind::InvalidValue, field));
        }
        PublicKey::from_sec(&bytes).map_err(|_| self.err(at, DecodeErrorKind::InvalidValue, field))
    }

    /// An error of `kind` at `offset` for `field` (for values the caller checks).
    pub fn invalid(&self, offset: usize, field: &'static str) -> DecodeError {
        self.err(offset, DecodeErrorKind::InvalidValue, field)
    }

    /// Requires the input to be fully consumed.
    ///
    /// # Errors
    /// [`DecodeErrorKind::TrailingBytes`].
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err(self.pos, DecodeErrorKind::TrailingBytes, "end"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_faults_are_located() {
        let enc = Writer::new(1).u32(7).text("ab").bytes(&[]).finish();
        assert_eq!(
            enc,
            [1, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0]
        );
        let mut r = Reader::new(&enc, 100, 1).unwrap();
        assert_eq!(r.u32("n").unwrap(), 7);
        assert_eq!(r.text("t", 2).unwrap(), ("ab".to_string(), 9));
        assert_eq!(r.bytes("e", 0).unwrap(), (&[][..], 15));
        r.finish().unwrap();

        let e = |kind, offset, field| DecodeError {
            offset,
            kind,
            field,
        };
        assert_eq!(
            Reader::new(&enc, 10, 1).unwrap_err(),
            e(DecodeErrorKind::TooLong, 10, "encoding")
        );
        assert_eq!(
            Reader::new(&enc, 100, 2).unwrap_err(),
            e(DecodeErrorKind::UnknownVersion, 0, "version")
        );
        assert_eq!(
            Reader::new(&[], 100, 1).unwrap_err(),
            e(DecodeErrorKind::UnexpectedEnd, 0, "version")
        );
        let mut r = Reader::new(&enc, 100, 1).unwrap();
        assert_eq!(
            r.u64("n").unwrap_err(),
            e(DecodeErrorKind::BadLength, 1, "n")
        );
        let mut r = Reader::new(&enc, 100, 1).unwrap();
        r.u32("n").unwrap();
        assert_eq!(
            r.text("t", 1).unwrap_err(),
            e(DecodeErrorKind::BadLength, 9, "t")
        );
        let mut r = Reader::new(&enc[..12], 100, 1).unwrap();
        r.u32("n").unwrap();
        assert_eq!(
            r.text("t", 2).unwrap_err(),
            e(DecodeErrorKind::UnexpectedEnd, 9, "t")
        );
        let mut r = Reader::new(&enc, 100, 1).unwrap();
        r.u32("n").unwrap();
        assert_eq!(
            r.finish().unwrap_err(),
            e(DecodeErrorKind::TrailingBytes, 9, "end")
        );
        // A huge length prefix is refused before anything is read or allocated.
        let huge = [1, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Reader::new(&huge, 100, 1)
                .unwrap()
                .bytes("x", 64)
                .unwrap_err(),
            e(DecodeErrorKind::BadLength, 1, "x")
        );
    }
}
