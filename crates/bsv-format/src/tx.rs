//! Raw transactions (BRC-12): decode, encode, txid.
//!
//! ```text
//! version   u32le | n_in VI | { prev_txid 32, prev_vout u32le, script VI+bytes, sequence u32le }*
//!           n_out VI | { satoshis u64le, script VI+bytes }* | lock_time u32le
//! ```
//! There is no witness form on BSV. The txid is `sha256d` of exactly these
//! bytes, which is why non-canonical CompactSize integers are rejected.
//!
//! # Layout
//! - [`Outpoint`], [`TxIn`], [`TxOut`], [`Transaction`].
//! - Decoding: [`Transaction::from_bytes`] (whole buffer), [`Transaction::read`]
//!   (from a [`Reader`], for nesting in BEEF), [`Transaction::read_with_txid`].

use std::fmt;
use std::str::FromStr;

use crate::codec::{write_var_bytes, write_varint, ParseError, ParseErrorKind, Reader};
use crate::hash::Txid;
use crate::script::Script;

/// `nSequence` value that marks an input final (`0xFFFFFFFF`).
pub const SEQUENCE_FINAL: u32 = 0xffff_ffff;

/// `nLockTime` values below this are block heights; at or above, UNIX times (seconds).
pub const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Smallest possible encoded input: 32 + 4 + 1 + 4 bytes.
const MIN_INPUT_BYTES: usize = 41;
/// Smallest possible encoded output: 8 + 1 bytes.
const MIN_OUTPUT_BYTES: usize = 9;

/// A reference to a transaction output: `txid:vout`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Outpoint {
    /// Id of the transaction that created the output.
    pub txid: Txid,
    /// Index of the output in that transaction (0-based).
    pub vout: u32,
}

impl Outpoint {
    /// Builds an outpoint.
    pub fn new(txid: Txid, vout: u32) -> Self {
        Outpoint { txid, vout }
    }

    /// The 36-byte wire form: txid (internal order) ‖ vout u32le.
    pub fn to_bytes(&self) -> [u8; 36] {
        let mut out = [0u8; 36];
        out[..32].copy_from_slice(&self.txid.0);
        out[32..].copy_from_slice(&self.vout.to_le_bytes());
        out
    }

    /// Whether this is the null outpoint a coinbase input carries
    /// (all-zero txid, vout `0xFFFFFFFF`).
    pub fn is_null(&self) -> bool {
        self.vout == u32::MAX && self.txid.0 == [0u8; 32]
    }
}

impl fmt::Display for Outpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.txid, self.vout)
    }
}

impl FromStr for Outpoint {
    type Err = ParseError;
    /// Parses `txid:vout` (display-hex txid, decimal vout).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = ParseError::new(0, ParseErrorKind::BadText, "outpoint (txid:vout)");
        let (t, v) = s.split_once(':').ok_or(bad)?;
        let txid = Txid::from_display_hex(t)?;
        let vout = v
            .parse::<u32>()
            .map_err(|_| ParseError::new(t.len() + 1, ParseErrorKind::BadText, "outpoint vout"))?;
        Ok(Outpoint { txid, vout })
    }
}

/// A transaction input.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxIn {
    /// The output being spent.
    pub prev_out: Outpoint,
    /// The unlocking script (scriptSig).
    pub unlocking_script: Script,
    /// `nSequence`; [`SEQUENCE_FINAL`] unless a lock time must be enforced.
    pub sequence: u32,
}

/// A transaction output.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TxOut {
    /// Value in satoshis.
    pub satoshis: u64,
    /// The locking script (scriptPubKey).
    pub locking_script: Script,
}

impl TxOut {
    /// Appends the serialized output: `satoshis u64le ‖ VI len ‖ script`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.satoshis.to_le_bytes());
        write_var_bytes(out, self.locking_script.as_bytes());
    }

    /// Reads one serialized output.
    pub fn read(r: &mut Reader<'_>) -> Result<TxOut, ParseError> {
        let satoshis = r.read_u64_le("output satoshis")?;
        let script = r.read_var_bytes("output locking script")?;
        Ok(TxOut {
            satoshis,
            locking_script: Script::from_bytes(script.to_vec()),
        })
    }
}

/// A transaction (BRC-12 raw form).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transaction {
    /// `nVersion`. Stored as read (the node treats it as signed; we never
    /// interpret it beyond "is it > 1", BRC-12 / Chronicle §9.4).
    pub version: u32,
    /// Inputs, in order.
    pub inputs: Vec<TxIn>,
    /// Outputs, in order.
    pub outputs: Vec<TxOut>,
    /// `nLockTime`: a block height if below [`LOCKTIME_THRESHOLD`], else UNIX seconds.
    pub lock_time: u32,
}

impl Transaction {
    /// Decodes a raw transaction that must fill `bytes` exactly.
    ///
    /// # Errors
    /// [`ParseError`] with the byte offset; [`ParseErrorKind::UnexpectedExtendedFormat`]
    /// if `bytes` is BRC-30 EF, [`ParseErrorKind::TrailingBytes`] if bytes remain.
    pub fn from_bytes(bytes: &[u8]) -> Result<Transaction, ParseError> {
        let mut r = Reader::new(bytes);
        let tx = Transaction::read(&mut r)?;
        r.finish("end of transaction")?;
        Ok(tx)
    }

    /// Decodes a raw transaction from hex. Errors as [`from_bytes`](Self::from_bytes)
    /// (offsets count bytes, not hex characters), or [`ParseErrorKind::BadText`].
    pub fn from_hex(text: &str) -> Result<Transaction, ParseError> {
        Transaction::from_bytes(&crate::codec::decode_hex(text)?)
    }

    /// Reads one raw transaction from `r`, leaving the reader after its last byte.
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes), except that trailing bytes are the caller's concern.
    pub fn read(r: &mut Reader<'_>) -> Result<Transaction, ParseError> {
        let version = r.read_u32_le("tx version")?;
        if crate::ef::is_ef_marker(r.rest()) {
            return Err(r.error(ParseErrorKind::UnexpectedExtendedFormat, "tx input count"));
        }
        let n_in = r.read_count(MIN_INPUT_BYTES, "tx input count")?;
        let mut inputs = Vec::with_capacity(n_in);
        for _ in 0..n_in {
            inputs.push(read_input(r)?);
        }
        let n_out = r.read_count(MIN_OUTPUT_BYTES, "tx output count")?;
        let mut outputs = Vec::with_capacity(n_out);
        for _ in 0..n_out {
            outputs.push(TxOut::read(r)?);
        }
        let lock_time = r.read_u32_le("tx lock time")?;
        Ok(Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
    }

    /// Reads one raw transaction and computes its txid from the bytes consumed
    /// (no re-serialization).
    pub fn read_with_txid(r: &mut Reader<'_>) -> Result<(Transaction, Txid), ParseError> {
        let start = r.position();
        let tx = Transaction::read(r)?;
        Ok((tx, Txid::of_raw(r.span_from(start))))
    }

    /// Appends the raw encoding.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        write_varint(out, self.inputs.len() as u64);
        for input in &self.inputs {
            write_input(out, input);
        }
        write_varint(out, self.outputs.len() as u64);
        for output in &self.outputs {
            output.write(out);
        }
        out.extend_from_slice(&self.lock_time.to_le_bytes());
    }

    /// The raw encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.write(&mut out);
        out
    }

    /// The raw encoding as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// The txid: `sha256d` of the raw encoding.
    pub fn txid(&self) -> Txid {
        Txid::of_raw(&self.to_bytes())
    }

    /// Whether this is a coinbase: exactly one input, spending the null outpoint.
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && self.inputs[0].prev_out.is_null()
    }

    /// Sum of output values in satoshis, or `None` on overflow.
    pub fn total_output_satoshis(&self) -> Option<u64> {
        self.outputs
            .iter()
            .try_fold(0u64, |acc, o| acc.checked_add(o.satoshis))
    }

    /// Encoded size in bytes.
    pub fn size(&self) -> usize {
        self.size_hint()
    }

    fn size_hint(&self) -> usize {
        use crate::codec::varint_len;
        let ins: usize = self
            .inputs
            .iter()
            .map(|i| 40 + varint_len(i.unlocking_script.len() as u64) + i.unlocking_script.len())
            .sum();
        let outs: usize = self
            .outputs
            .iter()
            .map(|o| 8 + varint_len(o.locking_script.len() as u64) + o.locking_script.len())
            .sum();
        8 + varint_len(self.inputs.len() as u64)
            + ins
            + varint_len(self.outputs.len() as u64)
            + outs
    }
}

pub(crate) fn read_input(r: &mut Reader<'_>) -> Result<TxIn, ParseError> {
    let txid = Txid(r.read_array::<32>("input previous txid")?);
    let vout = r.read_u32_le("input previous vout")?;
    let script = r.read_var_bytes("input unlocking script")?;
    let sequence = r.read_u32_le("input sequence")?;
    Ok(TxIn {
        prev_out: Outpoint { txid, vout },
        unlocking_script: Script::from_bytes(script.to_vec()),
        sequence,
    })
}

pub(crate) fn write_input(out: &mut Vec<u8>, input: &TxIn) {
    out.extend_from_slice(&input.prev_out.to_bytes());
    write_var_bytes(out, input.unlocking_script.as_bytes());
    out.extend_from_slice(&input.sequence.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    // Mainnet block 170's second transaction (the first bitcoin payment), a
    // well-known fixed point: txid f4184fc5…e16.
    const TX_F4184: &str = "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000";

    #[test]
    fn decodes_and_reencodes_a_known_transaction() {
        let tx = Transaction::from_hex(TX_F4184).unwrap();
        assert_eq!(
            tx.txid().to_string(),
            "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
        );
        assert_eq!(tx.version, 1);
        assert_eq!(tx.inputs.len(), 1);
        assert_eq!(tx.outputs[0].satoshis, 1_000_000_000);
        assert_eq!(tx.outputs[1].satoshis, 4_000_000_000);
        assert_eq!(tx.to_hex(), TX_F4184);
        assert_eq!(tx.size(), TX_F4184.len() / 2);
        let raw = tx.to_bytes();
        let mut r = Reader::new(&raw);
        assert_eq!(Transaction::read_with_txid(&mut r).unwrap().1, tx.txid());
    }

    #[test]
    fn truncation_and_trailing_bytes_are_errors_with_offsets() {
        let bytes = hex::decode(TX_F4184).unwrap();
        let err = Transaction::from_bytes(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(err.kind, ParseErrorKind::UnexpectedEnd);
        assert_eq!(err.context, "tx lock time");
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            Transaction::from_bytes(&long).unwrap_err(),
            ParseError::new(
                bytes.len(),
                ParseErrorKind::TrailingBytes,
                "end of transaction"
            )
        );
    }

    #[test]
    fn absurd_input_count_is_rejected_before_allocation() {
        let bytes = hex::decode("01000000ffffffffffffffff0f00").unwrap();
        let err = Transaction::from_bytes(&bytes).unwrap_err();
        assert_eq!(
            err,
            ParseError::new(4, ParseErrorKind::CountTooLarge, "tx input count")
        );
    }

    #[test]
    fn outpoint_text_round_trips() {
        let op: Outpoint = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16:1"
            .parse()
            .unwrap();
        assert_eq!(op.vout, 1);
        assert_eq!(
            op.to_string(),
            "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16:1"
        );
        assert!("abc".parse::<Outpoint>().is_err());
    }
}
