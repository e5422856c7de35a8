//! Key layouts of the store's trees (DESIGN.md §5). Every number in a key is
//! big-endian, so sled's byte order is numeric order (STYLE.md 9); every
//! variable-length part that is followed by more key is prefixed with its
//! length (`u16` BE), so one prefix never matches another's continuation.
//!
//! | tree | key |
//! | --- | --- |
//! | `events` | saga id (16) ‖ seq u64 |
//! | `heads`, `sagas` | saga id (16) |
//! | `feed` | cursor u64 |
//! | `deadlines` | kind (`h` height, `t` time) ‖ len u16 ‖ chain id (or `utc`) ‖ height or UNIX seconds u64 ‖ saga id (16) |
//! | `tokens` | token id (16) |
//! | `hashlocks` | H (32) |
//! | `idempotency` | the client's key, UTF-8 |
//! | `replies` | len u16 ‖ peer ‖ saga id (16) ‖ message seq u64 |
//! | `utxos` | len u16 ‖ chain id ‖ basket u8 (1 funding, 2 escrow, 3 inventory, 4 received) ‖ txid (32, internal order) ‖ vout u32 |
//! | `secrets` | saga id (16) ‖ name, UTF-8 |
//! | `meta` | `schema`, `feed_next` |
//!
//! # Layout
//! - Builders, one per tree; parsers for the keys that are scanned.

use bsv_format::{Outpoint, Txid};
use saga_core::terms::SagaId;
use saga_core::units::{Height, UnixTime};
use saga_core::wallet::Basket;
use saga_runtime::log::{Deadline, ReplyKey};

/// `meta`: what wrote the store ([`crate::proto::escrow_v1::StoredMeta`]).
pub const META_SCHEMA: &[u8] = b"schema";
/// `meta`: the next feed cursor.
pub const META_FEED_NEXT: &[u8] = b"feed_next";

/// Deadline kind byte of chain heights.
const DEADLINE_HEIGHT: u8 = b'h';
/// Deadline kind byte of UTC times.
const DEADLINE_TIME: u8 = b't';
/// The clock name of time deadlines.
const CLOCK_UTC: &str = "utc";

fn with_len(out: &mut Vec<u8>, s: &str) {
    // Callers bound lengths to u16 (`check_step`, `MAX_CHAIN_ID_LEN`); a
    // longer string is cut to a prefix key that matches nothing it should.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// `events`: saga id ‖ seq.
pub fn event(saga_id: &SagaId, seq: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..16].copy_from_slice(saga_id.as_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The seq of an `events` key of `saga_id`.
pub fn event_seq(key: &[u8]) -> Option<u64> {
    let seq: [u8; 8] = key.get(16..24)?.try_into().ok()?;
    (key.len() == 24).then_some(u64::from_be_bytes(seq))
}

/// `feed`: the cursor.
pub fn feed(cursor: u64) -> [u8; 8] {
    cursor.to_be_bytes()
}

/// The cursor of a `feed` key.
pub fn feed_cursor(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// A saga id from a 16-byte key or record field.
pub fn saga_id(bytes: &[u8]) -> Option<SagaId> {
    SagaId::from_bytes(bytes.try_into().ok()?).ok()
}

/// `deadlines`: kind ‖ chain id or clock ‖ height or time ‖ saga id.
pub fn deadline(deadline: &Deadline, saga_id: &SagaId) -> Vec<u8> {
    let mut k = deadline_prefix_of(deadline);
    let when = match deadline {
        Deadline::Height { height, .. } => u64::from(height.0),
        Deadline::Time(t) => t.0,
    };
    k.extend_from_slice(&when.to_be_bytes());
    k.extend_from_slice(saga_id.as_bytes());
    k
}

fn deadline_prefix_of(deadline: &Deadline) -> Vec<u8> {
    match deadline {
        Deadline::Height { chain_id, .. } => deadline_height_prefix(chain_id),
        Deadline::Time(_) => deadline_time_prefix(),
    }
}

/// The prefix of every height deadline of `chain_id`.
pub fn deadline_height_prefix(chain_id: &str) -> Vec<u8> {
    let mut k = vec![DEADLINE_HEIGHT];
    with_len(&mut k, chain_id);
    k
}

/// The prefix of every time deadline.
pub fn deadline_time_prefix() -> Vec<u8> {
    let mut k = vec![DEADLINE_TIME];
    with_len(&mut k, CLOCK_UTC);
    k
}

/// Parses a `deadlines` key back into its deadline and saga.
pub fn parse_deadline(key: &[u8]) -> Option<(Deadline, SagaId)> {
    let (&kind, rest) = key.split_first()?;
    let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
    let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
    let rest = rest.get(2 + len..)?;
    if rest.len() != 8 + 16 {
        return None;
    }
    let when = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let saga = saga_id(&rest[8..])?;
    let deadline = match kind {
        DEADLINE_HEIGHT => Deadline::Height {
            chain_id: name.to_string(),
            height: Height(u32::try_from(when).ok()?),
        },
        DEADLINE_TIME if name == CLOCK_UTC => Deadline::Time(UnixTime(when)),
        _ => return None,
    };
    Some((deadline, saga))
}

/// `replies`: peer ‖ saga id ‖ message seq.
pub fn reply(key: &ReplyKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.peer.len() + 24);
    with_len(&mut k, &key.peer);
    k.extend_from_slice(key.saga_id.as_bytes());
    k.extend_from_slice(&key.message_seq.to_be_bytes());
    k
}

/// The key byte of a basket. Released codes are never renumbered.
pub fn basket_code(basket: Basket) -> u8 {
    match basket {
        Basket::Funding => 1,
        Basket::Escrow => 2,
        Basket::Inventory => 3,
        Basket::Received => 4,
    }
}

/// The prefix of every output of `basket` on `chain_id`.
pub fn utxo_prefix(chain_id: &str, basket: Basket) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + chain_id.len() + 1 + 36);
    with_len(&mut k, chain_id);
    k.push(basket_code(basket));
    k
}

/// `utxos`: chain id ‖ basket ‖ txid ‖ vout.
pub fn utxo(chain_id: &str, basket: Basket, outpoint: &Outpoint) -> Vec<u8> {
    let mut k = utxo_prefix(chain_id, basket);
    k.extend_from_slice(&outpoint.txid.0);
    k.extend_from_slice(&outpoint.vout.to_be_bytes());
    k
}

/// The outpoint at the end of a `utxos` key.
pub fn utxo_outpoint(key: &[u8]) -> Option<Outpoint> {
    let tail = key.get(key.len().checked_sub(36)?..)?;
    let txid: [u8; 32] = tail[..32].try_into().ok()?;
    let vout: [u8; 4] = tail[32..].try_into().ok()?;
    Some(Outpoint::new(Txid(txid), u32::from_be_bytes(vout)))
}

/// `secrets`: saga id ‖ name.
pub fn secret(saga_id: &SagaId, name: &str) -> Vec<u8> {
    let mut k = saga_id.as_bytes().to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// A key in printable form for error messages: hex.
pub fn show(key: &[u8]) -> String {
    hex::encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> SagaId {
        SagaId::new_v7(u64::from(i), &[i; 10])
    }

    #[test]
    fn numbers_are_big_endian_so_key_order_is_numeric_order() {
        assert!(event(&id(1), 255) < event(&id(1), 256));
        assert!(feed(255) < feed(256));
        let at = |h| {
            deadline(
                &Deadline::Height {
                    chain_id: "P".into(),
                    height: Height(h),
                },
                &id(1),
            )
        };
        assert!(at(255) < at(256));
        assert_eq!(
            at(0x0102),
            [
                &[b'h', 0, 1, b'P'][..],
                &[0, 0, 0, 0, 0, 0, 1, 2],
                id(1).as_bytes()
            ]
            .concat()
        );
        let o = |vout| Outpoint::new(Txid([7; 32]), vout);
        assert!(utxo("P", Basket::Funding, &o(255)) < utxo("P", Basket::Funding, &o(256)));
    }

    #[test]
    fn keys_parse_back() {
        let d = Deadline::Height {
            chain_id: "chain-d".into(),
            height: Height(144),
        };
        assert_eq!(parse_deadline(&deadline(&d, &id(3))), Some((d, id(3))));
        let t = Deadline::Time(UnixTime(1_700_000_000));
        assert_eq!(parse_deadline(&deadline(&t, &id(4))), Some((t, id(4))));
        assert_eq!(parse_deadline(b"h\x00\x01P"), None);
        assert_eq!(event_seq(&event(&id(1), 42)), Some(42));
        assert_eq!(feed_cursor(&feed(7)), Some(7));
        let o = Outpoint::new(Txid([9; 32]), 3);
        assert_eq!(utxo_outpoint(&utxo("D", Basket::Received, &o)), Some(o));
        // A chain id that is a prefix of another does not share its outputs.
        assert!(!utxo("PP", Basket::Funding, &o).starts_with(&utxo_prefix("P", Basket::Funding)));
    }
}
