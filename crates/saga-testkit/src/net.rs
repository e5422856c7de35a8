//! The in-memory network's fault knobs, the notary's, and the seeded
//! random generator the simulator draws every fault from (so a seed
//! replays a run exactly).
//!
//! # Layout
//! - [`NetFaults`]: per-mille chances of losing, duplicating or delaying.
//! - [`NotaryMode`]: how the notary answers.
//! - [`Rng`] (splitmix64).

/// Chances, in per mille (0–1000), that the network misbehaves on one
/// peer call. All zero: a perfect network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetFaults {
    /// The request is lost (the peer never sees it; the caller times out).
    pub drop_request: u32,
    /// The peer handles the request but its reply is lost (the caller
    /// times out).
    pub drop_reply: u32,
    /// The request is delivered twice; both replies come back, in order.
    pub duplicate: u32,
    /// The request is held back and delivered one to three rounds later
    /// (after the caller timed out); its reply then comes back late.
    pub delay: u32,
    /// After running an effect (its side effect done: a broadcast made, a
    /// message delivered) the party crashes before recording the result.
    pub crash_after_effect: u32,
}

impl NetFaults {
    /// No faults.
    pub const NONE: NetFaults = NetFaults {
        drop_request: 0,
        drop_reply: 0,
        duplicate: 0,
        delay: 0,
        crash_after_effect: 0,
    };
}

/// How the notary answers `AskNotary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotaryMode {
    /// Approves with a signature.
    Approve,
    /// Refuses.
    Reject,
    /// Does not answer (the call fails).
    Offline,
}

/// splitmix64: small, seeded, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with a chance of `per_mille` / 1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        per_mille > 0 && self.below(1000) < u64::from(per_mille)
    }
}
