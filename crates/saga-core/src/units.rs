//! Units that must not be mixed up: block heights, satoshis, UTC seconds.

use std::fmt;

/// A block height on one chain (the tip's height, a refund height `T`, a
/// deadline). Heights of different chains are never compared directly: the
/// timeline rules convert through each chain's block interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height(pub u32);

/// An amount in satoshis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Satoshis(pub u64);

/// A UTC time in whole seconds since the UNIX epoch (1970-01-01T00:00:00Z),
/// as read from the gateway's clock port and passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Satoshis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sat", self.0)
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
