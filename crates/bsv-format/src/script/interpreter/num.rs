//! Script numbers: little-endian sign-magnitude integers of any length.
//!
//! Encoding (node `script/int_serialization.h`): the magnitude in little-endian
//! bytes, with the sign in the top bit of the last byte; zero is the empty
//! string. `0x80` alone is "negative zero" and decodes to 0.
//!
//! Before Genesis a numeric operand is at most 4 bytes (5 for the lock-time
//! opcodes) and the node computes in `int64`; after Genesis operands may be
//! up to 750,000 bytes (32 MB after Chronicle) and the node computes with
//! OpenSSL big numbers. Both give the same mathematical results: the era only
//! changes how long an operand may be and whether a *result* is length-checked
//! (after Genesis only). So [`ScriptNum`] keeps values that fit in an `i64` in
//! a machine word (the common path: no allocation) and moves to a
//! [`BigInt`] only when an operand or a result does not fit.

use std::cmp::Ordering;

use num_bigint::{BigInt, BigUint, Sign};

use super::ScriptError;

/// A decoded script number.
#[derive(Clone, Debug)]
pub(crate) enum ScriptNum {
    /// A value that fits in an `i64`.
    Small(i64),
    /// Anything else (may also hold small values; comparisons are by value).
    Big(BigInt),
}

impl ScriptNum {
    /// Zero.
    pub(crate) const ZERO: ScriptNum = ScriptNum::Small(0);

    /// Decodes `bytes` as a number of at most `max_len` bytes.
    ///
    /// # Errors
    /// [`ScriptError::ScriptNumOverflow`] if `bytes` is longer than `max_len`
    /// (checked first, as the node does); [`ScriptError::ScriptNumMinEncode`] if
    /// `require_minimal` and the encoding has a superfluous top byte.
    pub(crate) fn decode(
        bytes: &[u8],
        require_minimal: bool,
        max_len: usize,
    ) -> Result<ScriptNum, ScriptError> {
        if bytes.len() > max_len {
            return Err(ScriptError::ScriptNumOverflow);
        }
        if require_minimal && !is_minimally_encoded(bytes) {
            return Err(ScriptError::ScriptNumMinEncode);
        }
        let Some((&last, _)) = bytes.split_last() else {
            return Ok(ScriptNum::ZERO);
        };
        let negative = last & 0x80 != 0;
        if bytes.len() <= 8 {
            let mut magnitude = 0u64;
            for (i, &b) in bytes.iter().enumerate() {
                magnitude |= u64::from(b) << (8 * i);
            }
            // Clear the sign bit; what is left is below 2^63, so it fits an i64.
            magnitude &= !(0x80u64 << (8 * (bytes.len() - 1)));
            let value = magnitude as i64;
            return Ok(ScriptNum::Small(if negative { -value } else { value }));
        }
        let mut magnitude = bytes.to_vec();
        if let Some(top) = magnitude.last_mut() {
            *top &= 0x7f;
        }
        let sign = if negative { Sign::Minus } else { Sign::Plus };
        Ok(ScriptNum::Big(BigInt::from_bytes_le(sign, &magnitude)).normalized())
    }

    /// The minimal encoding of this number.
    pub(crate) fn encode(&self) -> Vec<u8> {
        match self {
            ScriptNum::Small(v) => {
                let mut out = Vec::with_capacity(9);
                let mut m = v.unsigned_abs();
                while m != 0 {
                    out.push((m & 0xff) as u8);
                    m >>= 8;
                }
                finish_sign(out, *v < 0)
            }
            ScriptNum::Big(b) => {
                let (sign, magnitude) = b.to_bytes_le();
                if sign == Sign::NoSign {
                    return Vec::new();
                }
                finish_sign(magnitude, sign == Sign::Minus)
            }
        }
    }

    /// Length in bytes of [`encode`](Self::encode), without encoding.
    pub(crate) fn encoded_len(&self) -> usize {
        let bits = match self {
            ScriptNum::Small(v) => u64::from(64 - v.unsigned_abs().leading_zeros()),
            ScriptNum::Big(b) => b.bits(),
        };
        if bits == 0 {
            0
        } else {
            // One more bit is needed for the sign.
            usize::try_from(bits / 8 + 1).unwrap_or(usize::MAX)
        }
    }

    /// Whether the value is zero.
    pub(crate) fn is_zero(&self) -> bool {
        match self {
            ScriptNum::Small(v) => *v == 0,
            ScriptNum::Big(b) => b.sign() == Sign::NoSign,
        }
    }

    /// Whether the value is below zero.
    pub(crate) fn is_negative(&self) -> bool {
        match self {
            ScriptNum::Small(v) => *v < 0,
            ScriptNum::Big(b) => b.sign() == Sign::Minus,
        }
    }

    /// The value clamped to `i64` (node `getint64`).
    pub(crate) fn to_i64_saturating(&self) -> i64 {
        match self {
            ScriptNum::Small(v) => *v,
            ScriptNum::Big(b) => i64::try_from(b).unwrap_or(if b.sign() == Sign::Minus {
                i64::MIN
            } else {
                i64::MAX
            }),
        }
    }

    /// The value clamped to `i32` (node `getint`).
    pub(crate) fn to_i32_saturating(&self) -> i32 {
        self.to_i64_saturating()
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }

    /// The value as a `usize` if it is in `0..=usize::MAX`, else `None`.
    pub(crate) fn to_usize(&self) -> Option<usize> {
        match self {
            ScriptNum::Small(v) => usize::try_from(*v).ok(),
            ScriptNum::Big(b) => usize::try_from(b).ok(),
        }
    }

    fn to_big(&self) -> BigInt {
        match self {
            ScriptNum::Small(v) => BigInt::from(*v),
            ScriptNum::Big(b) => b.clone(),
        }
    }

    /// Moves a big value that fits an `i64` back to the small form.
    fn normalized(self) -> ScriptNum {
        match self {
            ScriptNum::Big(b) => match i64::try_from(&b) {
                Ok(v) => ScriptNum::Small(v),
                Err(_) => ScriptNum::Big(b),
            },
            small => small,
        }
    }

    /// `self + other`.
    pub(crate) fn add(&self, other: &ScriptNum) -> ScriptNum {
        match (self, other) {
            (ScriptNum::Small(a), ScriptNum::Small(b)) => match a.checked_add(*b) {
                Some(v) => ScriptNum::Small(v),
                None => ScriptNum::Big(BigInt::from(*a) + BigInt::from(*b)),
            },
            _ => ScriptNum::Big(self.to_big() + other.to_big()).normalized(),
        }
    }

    /// `self - other`.
    pub(crate) fn sub(&self, other: &ScriptNum) -> ScriptNum {
        match (self, other) {
            (ScriptNum::Small(a), ScriptNum::Small(b)) => match a.checked_sub(*b) {
                Some(v) => ScriptNum::Small(v),
                None => ScriptNum::Big(BigInt::from(*a) - BigInt::from(*b)),
            },
            _ => ScriptNum::Big(self.to_big() - other.to_big()).normalized(),
        }
    }

    /// `self * other`, or `None` when the product would certainly encode to
    /// more than `limit` bytes (checked from the bit lengths before
    /// multiplying, so two huge operands cost nothing).
    pub(crate) fn mul(&self, other: &ScriptNum, limit: Option<usize>) -> Option<ScriptNum> {
        if let (ScriptNum::Small(a), ScriptNum::Small(b)) = (self, other) {
            if let Some(v) = a.checked_mul(*b) {
                return Some(ScriptNum::Small(v));
            }
        }
        if self.mul_overflows(other, limit) {
            return None;
        }
        Some(ScriptNum::Big(self.to_big() * other.to_big()).normalized())
    }

    /// Whether `self * other` certainly encodes to more than `limit` bytes,
    /// from the bit lengths alone (no limit: never).
    pub(crate) fn mul_overflows(&self, other: &ScriptNum, limit: Option<usize>) -> bool {
        let Some(limit) = limit else { return false };
        let (a, b) = (self.bit_len(), other.bit_len());
        // |x| >= 2^(bits-1), so |a*b| >= 2^(a+b-2): a+b-1 bits, (a+b-1)/8+1 bytes.
        a > 0 && b > 0 && (a + b - 1) / 8 + 1 > limit as u64
    }

    fn bit_len(&self) -> u64 {
        match self {
            ScriptNum::Small(v) => u64::from(64 - v.unsigned_abs().leading_zeros()),
            ScriptNum::Big(b) => b.bits(),
        }
    }

    /// `self / other`, truncating toward zero. `other` must not be zero.
    pub(crate) fn div(&self, other: &ScriptNum) -> ScriptNum {
        if let (ScriptNum::Small(a), ScriptNum::Small(b)) = (self, other) {
            if let Some(v) = a.checked_div(*b) {
                return ScriptNum::Small(v);
            }
        }
        if other.is_zero() {
            return ScriptNum::ZERO;
        }
        ScriptNum::Big(self.to_big() / other.to_big()).normalized()
    }

    /// `self % other`, with the sign of `self` (C/C++ semantics). `other` must
    /// not be zero.
    pub(crate) fn rem(&self, other: &ScriptNum) -> ScriptNum {
        if let (ScriptNum::Small(a), ScriptNum::Small(b)) = (self, other) {
            if let Some(v) = a.checked_rem(*b) {
                return ScriptNum::Small(v);
            }
        }
        if other.is_zero() {
            return ScriptNum::ZERO;
        }
        ScriptNum::Big(self.to_big() % other.to_big()).normalized()
    }

    /// `-self`.
    pub(crate) fn neg(&self) -> ScriptNum {
        match self {
            ScriptNum::Small(v) => match v.checked_neg() {
                Some(n) => ScriptNum::Small(n),
                None => ScriptNum::Big(-BigInt::from(*v)),
            },
            ScriptNum::Big(b) => ScriptNum::Big(-b.clone()).normalized(),
        }
    }

    /// `self * 2^shift` (node `CScriptNum::operator<<=` on big numbers, used by
    /// `OP_LSHIFTNUM`). `shift` must be non-negative. Once the result is known
    /// to need at most `max_len` bytes, `charge` is called with that length
    /// before any shifting.
    ///
    /// # Errors
    /// [`ScriptError::ScriptNumOverflow`] if the result would be longer than
    /// `max_len` bytes (the node's pre-check: current length plus
    /// `shift / 8` bytes, then the real length); [`ScriptError::BigInt`] for a
    /// shift above `i32::MAX` bits that passes the pre-check; whatever
    /// `charge` returns.
    pub(crate) fn shl(
        &self,
        shift: &ScriptNum,
        max_len: usize,
        charge: impl FnOnce(usize) -> Result<(), ScriptError>,
    ) -> Result<ScriptNum, ScriptError> {
        let shift_bytes = shift.div(&ScriptNum::Small(8));
        let needed = ScriptNum::Small(self.encoded_len() as i64).add(&shift_bytes);
        if needed.cmp_usize(max_len) == Ordering::Greater {
            return Err(ScriptError::ScriptNumOverflow);
        }
        if shift.cmp_num(&ScriptNum::Small(i64::from(i32::MAX))) == Ordering::Greater {
            return Err(ScriptError::BigInt);
        }
        // `needed` is at most `max_len` here.
        charge(needed.to_usize().unwrap_or(max_len).saturating_add(1))?;
        let n = shift.to_usize().unwrap_or(0);
        if n == 0 {
            return Ok(self.clone());
        }
        let result = match self {
            ScriptNum::Small(v) if n < 63 => {
                let wide = i128::from(*v) << n;
                match i64::try_from(wide) {
                    Ok(s) => ScriptNum::Small(s),
                    Err(_) => ScriptNum::Big(BigInt::from(wide)),
                }
            }
            _ => ScriptNum::Big(self.to_big() << n),
        };
        if result.encoded_len() > max_len {
            return Err(ScriptError::ScriptNumOverflow);
        }
        Ok(result)
    }

    /// `self / 2^shift` rounded toward zero (node `operator>>=` on big numbers:
    /// the magnitude is shifted, the sign kept), used by `OP_RSHIFTNUM`.
    ///
    /// # Errors
    /// [`ScriptError::BigInt`] for a shift above `i32::MAX` bits, as the node.
    pub(crate) fn shr(&self, shift: &ScriptNum) -> Result<ScriptNum, ScriptError> {
        if shift.cmp_num(&ScriptNum::Small(i64::from(i32::MAX))) == Ordering::Greater {
            return Err(ScriptError::BigInt);
        }
        let n = shift.to_usize().unwrap_or(0);
        if n == 0 {
            return Ok(self.clone());
        }
        Ok(match self {
            ScriptNum::Small(v) => {
                // n >= 1, so the shifted magnitude is below 2^63.
                let m = if n >= 64 {
                    0
                } else {
                    (v.unsigned_abs() >> n) as i64
                };
                if *v < 0 {
                    ScriptNum::Small(-m)
                } else {
                    ScriptNum::Small(m)
                }
            }
            ScriptNum::Big(b) => {
                let magnitude: BigUint = b.magnitude() >> n;
                ScriptNum::Big(BigInt::from_biguint(b.sign(), magnitude)).normalized()
            }
        })
    }

    /// Numeric comparison.
    pub(crate) fn cmp_num(&self, other: &ScriptNum) -> Ordering {
        match (self, other) {
            (ScriptNum::Small(a), ScriptNum::Small(b)) => a.cmp(b),
            _ => self.to_big().cmp(&other.to_big()),
        }
    }

    /// Numeric equality.
    pub(crate) fn num_eq(&self, other: &ScriptNum) -> bool {
        self.cmp_num(other) == Ordering::Equal
    }

    /// Compares with a length or count.
    pub(crate) fn cmp_usize(&self, n: usize) -> Ordering {
        match (self, i64::try_from(n)) {
            (ScriptNum::Small(a), Ok(b)) => a.cmp(&b),
            _ => self.to_big().cmp(&BigInt::from(n)),
        }
    }
}

/// Equality is numeric (a small value equals the same value held as a big one).
impl PartialEq for ScriptNum {
    fn eq(&self, other: &ScriptNum) -> bool {
        self.num_eq(other)
    }
}

/// Sets the sign on a little-endian magnitude: adds a `0x00`/`0x80` byte if the
/// top bit is taken, else sets the top bit for negatives.
fn finish_sign(mut out: Vec<u8>, negative: bool) -> Vec<u8> {
    match out.last_mut() {
        None => {}
        Some(top) if *top & 0x80 != 0 => out.push(if negative { 0x80 } else { 0x00 }),
        Some(top) if negative => *top |= 0x80,
        Some(_) => {}
    }
    out
}

/// Whether `bytes` is a minimal number encoding: no superfluous `0x00`/`0x80`
/// top byte, and not negative zero (node `bsv::IsMinimallyEncoded`).
pub(crate) fn is_minimally_encoded(bytes: &[u8]) -> bool {
    match bytes {
        [] => true,
        [.., last] if last & 0x7f != 0 => true,
        [.., before, _] => before & 0x80 != 0,
        [_] => false,
    }
}

/// Rewrites `data` to the minimal encoding of the same number
/// (node `bsv::MinimallyEncode`, used by `OP_NUM2BIN` and `OP_BIN2NUM`).
pub(crate) fn minimally_encode(data: &mut Vec<u8>) {
    let Some(&last) = data.last() else { return };
    if last & 0x7f != 0 {
        return;
    }
    if data.len() == 1 {
        data.clear();
        return;
    }
    if data.len() >= 2 && data[data.len() - 2] & 0x80 != 0 {
        return;
    }
    // Strip zero bytes below the top, then put the sign back.
    let sign = last & 0x80;
    let keep = data[..data.len() - 1]
        .iter()
        .rposition(|&b| b != 0)
        .map(|i| i + 1);
    match keep {
        None => data.clear(),
        Some(n) => {
            data.truncate(n);
            if data[n - 1] & 0x80 != 0 {
                data.push(sign);
            } else {
                data[n - 1] |= sign;
            }
        }
    }
}

/// Script boolean: any non-zero byte, except that a lone top `0x80` (negative
/// zero) is false (node `CastToBool`).
pub(crate) fn cast_to_bool(bytes: &[u8]) -> bool {
    match bytes.split_last() {
        None => false,
        Some((&last, rest)) => rest.iter().any(|&b| b != 0) || (last != 0 && last != 0x80),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(h: &str) -> ScriptNum {
        ScriptNum::decode(&hex::decode(h).unwrap(), false, usize::MAX).unwrap()
    }

    #[test]
    fn small_values_round_trip_through_the_encoding() {
        for (v, h) in [
            (0i64, ""),
            (1, "01"),
            (-1, "81"),
            (127, "7f"),
            (128, "8000"),
            (-128, "8080"),
            (255, "ff00"),
            (256, "0001"),
            (-255, "ff80"),
            (i64::from(i32::MAX), "ffffff7f"),
            (i64::MAX, "ffffffffffffff7f"),
            (-i64::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(hex::encode(ScriptNum::Small(v).encode()), h, "{v}");
            assert_eq!(ScriptNum::Small(v).encoded_len(), h.len() / 2, "{v}");
            assert_eq!(dec(h).to_i64_saturating(), v, "{h}");
        }
        assert_eq!(
            hex::encode(ScriptNum::Small(i64::MIN).encode()),
            "000000000000008080"
        );
        assert_eq!(dec("80").to_i64_saturating(), 0);
    }

    #[test]
    fn big_values_cross_the_i64_boundary_exactly() {
        let max = ScriptNum::Small(i64::MAX);
        let sum = max.add(&ScriptNum::Small(1));
        assert_eq!(hex::encode(sum.encode()), "000000000000008000");
        assert_eq!(sum.sub(&ScriptNum::Small(1)).cmp_num(&max), Ordering::Equal);
        let nine = dec("010000000000000080");
        assert!(nine.is_negative());
        assert_eq!(nine.to_i64_saturating(), -1);
        assert!(matches!(nine, ScriptNum::Small(-1)));
        let sq = sum.mul(&sum, None).unwrap();
        assert_eq!(hex::encode(sq.encode()), format!("{}40", "00".repeat(15)));
        assert_eq!(sq.div(&sum).cmp_num(&sum), Ordering::Equal);
        assert!(sum.mul(&sum, Some(15)).is_none());
        assert!(sum.mul(&sum, Some(16)).is_some());
    }

    #[test]
    fn division_truncates_toward_zero_and_remainder_follows_the_dividend() {
        let n = |v| ScriptNum::Small(v);
        assert_eq!(n(-7).div(&n(2)).to_i64_saturating(), -3);
        assert_eq!(n(-7).rem(&n(2)).to_i64_saturating(), -1);
        assert_eq!(n(7).rem(&n(-2)).to_i64_saturating(), 1);
        let big = dec("00000000000000000001").neg();
        assert_eq!(hex::encode(big.div(&n(-3)).encode()), "55".repeat(9));
        assert_eq!(big.rem(&n(3)).to_i64_saturating(), -1);
    }

    #[test]
    fn shifts_match_the_node_big_number_rules() {
        let n = |v| ScriptNum::Small(v);
        assert_eq!(n(-5).shr(&n(1)).unwrap().to_i64_saturating(), -2);
        assert_eq!(n(-1).shr(&n(100)).unwrap().to_i64_saturating(), 0);
        let free = |_| Ok(());
        assert_eq!(
            n(3).shl(&n(62), 100, free).unwrap().encode(),
            hex::decode("00000000000000c000").unwrap()
        );
        assert_eq!(
            n(1).shl(&n(8 * 4), 4, free),
            Err(ScriptError::ScriptNumOverflow)
        );
        assert_eq!(
            n(0).shl(&n(100), 32, free).unwrap().encode(),
            Vec::<u8>::new()
        );
        assert_eq!(n(1).shr(&n(1i64 << 31)), Err(ScriptError::BigInt));
        assert_eq!(
            n(1).shl(&n(1i64 << 31), usize::MAX >> 4, free),
            Err(ScriptError::BigInt)
        );
        // The charge sees the result's length bound before the shift, and can refuse it.
        let mut seen = 0;
        assert_eq!(
            n(1).shl(&n(80), 100, |len| {
                seen = len;
                Ok(())
            })
            .unwrap()
            .encoded_len(),
            11
        );
        assert_eq!(seen, 12);
        assert_eq!(
            n(1).shl(&n(80), 100, |_| Err(ScriptError::WorkBudgetExceeded)),
            Err(ScriptError::WorkBudgetExceeded)
        );
    }

    #[test]
    fn decoding_checks_length_before_minimality() {
        assert_eq!(
            ScriptNum::decode(&[0, 0, 0, 0, 0], true, 4).unwrap_err(),
            ScriptError::ScriptNumOverflow
        );
        assert_eq!(
            ScriptNum::decode(&[1, 0], true, 4).unwrap_err(),
            ScriptError::ScriptNumMinEncode
        );
        assert_eq!(
            ScriptNum::decode(&[0x80], true, 4).unwrap_err(),
            ScriptError::ScriptNumMinEncode
        );
        assert!(ScriptNum::decode(&[0xff, 0x00], true, 4).is_ok());
        assert!(ScriptNum::decode(&[1, 0], false, 4).is_ok());
    }

    #[test]
    fn minimal_encoding_rewrites_like_the_node() {
        for (input, out) in [
            ("", ""),
            ("00", ""),
            ("80", ""),
            ("0100", "01"),
            ("0180", "81"),
            ("ff00", "ff00"),
            ("ff0000", "ff00"),
            ("ff0080", "ff80"),
            ("000080", ""),
            ("05000080", "85"),
        ] {
            let mut v = hex::decode(input).unwrap();
            minimally_encode(&mut v);
            assert_eq!(hex::encode(&v), out, "{input}");
            assert!(is_minimally_encoded(&v));
        }
    }

    #[test]
    fn booleans_treat_negative_zero_as_false() {
        assert!(!cast_to_bool(&[]));
        assert!(!cast_to_bool(&[0, 0]));
        assert!(!cast_to_bool(&[0, 0x80]));
        assert!(cast_to_bool(&[0x80, 0]));
        assert!(cast_to_bool(&[0, 1]));
    }
}
