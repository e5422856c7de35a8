//! The pure building blocks of the escrowd saga (DESIGN.md §3): policy rules
//! and the timeline safety check, saga ids and agreed terms, single-use
//! tokens, and the leg transaction templates.
//!
//! Nothing here awaits, reads a clock, draws randomness or touches files,
//! sockets or environment variables (STYLE.md 1): times, chain heights,
//! random bytes and keys are arguments. The gateway (`src/`) reads policy
//! files and hands their text to [`policy::Policy::parse`]; the saga state
//! machine, the runtime and the store build on these types.
//!
//! # Layout
//! - [`units`]: [`Height`], [`Satoshis`], [`UnixTime`].
//! - [`spiffe`]: SPIFFE ID and trust-domain text checks (the identity types
//!   proper live in the gateway's identity module).
//! - [`policy`]: the policy schema, its parser (spans kept for errors) and the
//!   timeline rules C1–C3 ([`policy::timeline`]).
//! - [`terms`]: [`terms::SagaId`], [`terms::Terms`], their canonical encoding,
//!   hash and signatures, the check of a proposal against our policy, and the
//!   reused-`H` check.
//! - [`token`]: single-use tokens (DESIGN.md §3.4).
//! - [`legs`]: reservation, refund, claim and cooperative-cancel templates, and
//!   the beneficiary's check before it signs a refund.
//! - [`wallet`]: baskets, wallet outputs and their changes, coin selection
//!   with fee and change, balances.
//! - [`saga`]: the state machine of one party, [`saga::Saga::handle`].
//! - [`canonical`]: the length-prefixed byte encoding terms and tokens share.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod canonical;
pub mod legs;
pub mod policy;
pub mod saga;
pub mod spiffe;
pub mod terms;
pub mod token;
pub mod units;
pub mod wallet;

pub use units::{Height, Satoshis, UnixTime};

/// Lowercase hex of `bytes` (display only; parsing goes through the typed
/// decoders).
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Equality of two byte strings in time that depends only on their lengths,
/// not on where they differ: for secrets, token ids and signatures compared
/// against attacker-chosen values.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_constant_time_eq() {
        assert_eq!(hex_lower(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
