//! Leg transaction templates (DESIGN.md §3.1).

use crate::units::Satoshis;

/// Upper bound, in bytes, of a transaction that spends one escrow output to
/// one P2PKH output: the refund / cancel (`OP_0 <sig> <sig> OP_0`, two
/// signatures of at most 73 bytes with their sighash byte) is the larger at
/// 4 + 1 + (32 + 4 + 1 + 150 + 4) + 1 + (8 + 1 + 25) + 4 = 235 bytes; the
/// claim (`<sig> <s> OP_1`) is at most 193.
pub const MAX_LEG_SPEND_BYTES: usize = 235;

/// The fee for a transaction of `size_bytes` at `rate_sats_per_kb` satoshis
/// per 1000 bytes, rounded up.
pub fn fee_for_size(size_bytes: usize, rate_sats_per_kb: u64) -> Satoshis {
    let fee = (u128::from(rate_sats_per_kb) * size_bytes as u128).div_ceil(1000);
    Satoshis(u64::try_from(fee).unwrap_or(u64::MAX))
}
