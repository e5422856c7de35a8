//! BRC-30 Extended Format (EF): a transaction whose inputs carry the
//! satoshis and locking script of the outputs they spend, so a broadcaster
//! (ARC) can check scripts and fees without looking anything up.
//!
//! ```text
//! version u32le | 00 00 00 00 00 EF | n_in VI
//!   { prev_txid 32, prev_vout u32le, unlocking VI+bytes, sequence u32le,
//!     prev_satoshis u64le, prev_locking VI+bytes }*
//! n_out VI | outputs as raw | lock_time u32le
//! ```
//! The satoshi field is 8 bytes (BRC-30's table says 4; BIP-239 and every
//! implementation use 8, `bsv-formats.md` §2).
//!
//! EF is a transport form only: the txid is that of the raw form (marker and
//! extensions stripped). The two decoders refuse each other's input with a
//! named error: raw bytes given to [`EfTransaction::from_bytes`] fail with
//! [`ParseErrorKind::NotExtendedFormat`], EF given to
//! [`Transaction::from_bytes`] with [`ParseErrorKind::UnexpectedExtendedFormat`].
//!
//! # Layout
//! - [`EF_MARKER`], [`is_ef_marker`].
//! - [`EfError`], [`EfTransaction`]: build, decode, encode, txid.

use sha2::{Digest, Sha256};

use crate::codec::{write_var_bytes, write_varint, ParseError, ParseErrorKind, Reader};
use crate::hash::Txid;
use crate::script::Script;
use crate::tx::{read_input, write_input, Transaction, TxOut};

/// The 6-byte EF marker that follows the version.
pub const EF_MARKER: [u8; 6] = [0, 0, 0, 0, 0, 0xef];

/// Whether `after_version` (the bytes following a transaction's 4-byte
/// version) starts with the EF marker.
pub fn is_ef_marker(after_version: &[u8]) -> bool {
    after_version.len() >= 6 && after_version[..6] == EF_MARKER
}

/// Smallest encoded EF input: 32 + 4 + 1 + 4 (raw) + 8 + 1 (extension) bytes.
const MIN_EF_INPUT_BYTES: usize = 50;
/// Smallest encoded output: 8 + 1 bytes.
const MIN_OUTPUT_BYTES: usize = 9;

/// A fault building an [`EfTransaction`] from parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum EfError {
    /// EF needs exactly one source output per input.
    #[error("transaction has {inputs} inputs but {source_outputs} source outputs were given")]
    SourceCountMismatch {
        /// Number of inputs in the transaction.
        inputs: usize,
        /// Number of source outputs given.
        source_outputs: usize,
    },
}

/// A transaction in Extended Format: the transaction and, for each input,
/// the output it spends.
///
/// Invariant: `source_outputs.len() == tx.inputs.len()` (`source_outputs[i]`
/// is the output spent by `tx.inputs[i]`). [`EfTransaction::new`] and the
/// decoders guarantee it; code that edits the public fields must keep it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct EfTransaction {
    /// The transaction itself.
    pub tx: Transaction,
    /// The outputs spent by the inputs, in input order.
    pub source_outputs: Vec<TxOut>,
}

impl EfTransaction {
    /// Pairs a transaction with the outputs its inputs spend.
    ///
    /// # Errors
    /// [`EfError::SourceCountMismatch`] unless there is exactly one source
    /// output per input.
    pub fn new(tx: Transaction, source_outputs: Vec<TxOut>) -> Result<EfTransaction, EfError> {
        if tx.inputs.len() != source_outputs.len() {
            return Err(EfError::SourceCountMismatch {
                inputs: tx.inputs.len(),
                source_outputs: source_outputs.len(),
            });
        }
        Ok(EfTransaction { tx, source_outputs })
    }

    /// Decodes EF bytes that must fill `bytes` exactly.
    ///
    /// # Errors
    /// [`ParseError`] with the byte offset: [`ParseErrorKind::NotExtendedFormat`]
    /// (at offset 4) if the marker is missing, e.g. for a raw transaction;
    /// [`ParseErrorKind::UnexpectedEnd`], [`ParseErrorKind::CountTooLarge`],
    /// [`ParseErrorKind::NonCanonicalVarInt`] for damaged input;
    /// [`ParseErrorKind::TrailingBytes`] if bytes remain.
    pub fn from_bytes(bytes: &[u8]) -> Result<EfTransaction, ParseError> {
        let mut r = Reader::new(bytes);
        let ef = EfTransaction::read(&mut r)?;
        r.finish("end of EF transaction")?;
        Ok(ef)
    }

    /// Decodes EF from hex. Errors as [`from_bytes`](Self::from_bytes)
    /// (offsets count bytes), or [`ParseErrorKind::BadText`].
    pub fn from_hex(text: &str) -> Result<EfTransaction, ParseError> {
        EfTransaction::from_bytes(&crate::codec::decode_hex(text)?)
    }

    /// Reads one EF transaction from `r`, leaving the reader after its last
    /// byte. Errors as [`from_bytes`](Self::from_bytes), except that trailing
    /// bytes are the caller's concern.
    pub fn read(r: &mut Reader<'_>) -> Result<EfTransaction, ParseError> {
        read_ef(r, None)
    }

    /// Reads one EF transaction and computes the txid of its raw form from
    /// the bytes consumed, without re-serializing.
    pub fn read_with_txid(r: &mut Reader<'_>) -> Result<(EfTransaction, Txid), ParseError> {
        let mut hasher = Sha256::new();
        let ef = read_ef(r, Some(&mut hasher))?;
        Ok((ef, Txid(Sha256::digest(hasher.finalize()).into())))
    }

    /// Appends the EF encoding.
    ///
    /// If the public fields were edited so that an input has no source
    /// output, that input's extension is written as 0 satoshis and an empty
    /// script (never a panic; [`new`](Self::new) prevents this).
    pub fn write(&self, out: &mut Vec<u8>) {
        let tx = &self.tx;
        out.extend_from_slice(&tx.version.to_le_bytes());
        out.extend_from_slice(&EF_MARKER);
        write_varint(out, tx.inputs.len() as u64);
        for (i, input) in tx.inputs.iter().enumerate() {
            write_input(out, input);
            match self.source_outputs.get(i) {
                Some(source) => source.write(out),
                None => {
                    out.extend_from_slice(&0u64.to_le_bytes());
                    write_var_bytes(out, &[]);
                }
            }
        }
        write_varint(out, tx.outputs.len() as u64);
        for output in &tx.outputs {
            output.write(out);
        }
        out.extend_from_slice(&tx.lock_time.to_le_bytes());
    }

    /// The EF encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let extension: usize = self
            .source_outputs
            .iter()
            .map(|o| {
                8 + crate::codec::varint_len(o.locking_script.len() as u64) + o.locking_script.len()
            })
            .sum();
        let mut out = Vec::with_capacity(self.tx.size() + EF_MARKER.len() + extension);
        self.write(&mut out);
        out
    }

    /// The EF encoding as lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// The txid: `sha256d` of the *raw* encoding (never of the EF bytes).
    pub fn txid(&self) -> Txid {
        self.tx.txid()
    }

    /// The fee in satoshis: source satoshis minus output satoshis, or `None`
    /// if a sum overflows or the outputs exceed the inputs.
    pub fn fee(&self) -> Option<u64> {
        let inputs = self
            .source_outputs
            .iter()
            .try_fold(0u64, |acc, o| acc.checked_add(o.satoshis))?;
        inputs.checked_sub(self.tx.total_output_satoshis()?)
    }

    /// Splits into the transaction and its source outputs.
    pub fn into_parts(self) -> (Transaction, Vec<TxOut>) {
        (self.tx, self.source_outputs)
    }
}

/// Reads EF; if `hasher` is given, feeds it the raw-form bytes (the EF bytes
/// minus marker and extensions) as they are read.
fn read_ef(
    r: &mut Reader<'_>,
    mut hasher: Option<&mut Sha256>,
) -> Result<EfTransaction, ParseError> {
    let mut feed = |bytes: &[u8]| {
        if let Some(h) = hasher.as_deref_mut() {
            h.update(bytes);
        }
    };
    let version = r.read_u32_le("tx version")?;
    feed(&version.to_le_bytes());
    let rest = r.rest();
    if !is_ef_marker(rest) {
        let kind = if rest.len() < EF_MARKER.len() && EF_MARKER.starts_with(rest) {
            ParseErrorKind::UnexpectedEnd
        } else {
            ParseErrorKind::NotExtendedFormat
        };
        return Err(r.error(kind, "EF marker"));
    }
    r.read_bytes(EF_MARKER.len(), "EF marker")?;

    let start = r.position();
    let n_in = r.read_count(MIN_EF_INPUT_BYTES, "tx input count")?;
    feed(r.span_from(start));
    let mut inputs = Vec::with_capacity(n_in);
    let mut source_outputs = Vec::with_capacity(n_in);
    for _ in 0..n_in {
        let start = r.position();
        inputs.push(read_input(r)?);
        feed(r.span_from(start));
        let satoshis = r.read_u64_le("EF source satoshis")?;
        let script = r.read_var_bytes("EF source locking script")?;
        source_outputs.push(TxOut {
            satoshis,
            locking_script: Script::from_bytes(script.to_vec()),
        });
    }
    let start = r.position();
    let n_out = r.read_count(MIN_OUTPUT_BYTES, "tx output count")?;
    let mut outputs = Vec::with_capacity(n_out);
    for _ in 0..n_out {
        outputs.push(TxOut::read(r)?);
    }
    let lock_time = r.read_u32_le("tx lock time")?;
    feed(r.span_from(start));
    Ok(EfTransaction {
        tx: Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        },
        source_outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::{Outpoint, TxIn};

    fn sample() -> EfTransaction {
        let tx = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(Txid([7; 32]), 3),
                unlocking_script: Script::from_bytes(vec![0x51]),
                sequence: 0xffff_fffe,
            }],
            outputs: vec![TxOut {
                satoshis: 900,
                locking_script: Script::from_bytes(vec![0x6a]),
            }],
            lock_time: 5,
        };
        let source = TxOut {
            satoshis: 1000,
            locking_script: Script::from_bytes(vec![0x51, 0x87]),
        };
        EfTransaction::new(tx, vec![source]).unwrap()
    }

    #[test]
    fn round_trip_txid_and_fee() {
        let ef = sample();
        let bytes = ef.to_bytes();
        assert_eq!(&bytes[4..10], &EF_MARKER);
        assert_eq!(EfTransaction::from_bytes(&bytes).unwrap(), ef);
        let mut r = Reader::new(&bytes);
        let (back, txid) = EfTransaction::read_with_txid(&mut r).unwrap();
        assert_eq!(back, ef);
        assert_eq!(txid, ef.tx.txid());
        assert_eq!(ef.txid(), Txid::of_raw(&ef.tx.to_bytes()));
        assert_eq!(ef.fee(), Some(100));
        assert_eq!(bytes.len(), ef.tx.size() + 6 + 8 + 1 + 2);
    }

    #[test]
    fn mismatched_parts_are_refused() {
        let (tx, _) = sample().into_parts();
        assert_eq!(
            EfTransaction::new(tx.clone(), vec![]),
            Err(EfError::SourceCountMismatch {
                inputs: 1,
                source_outputs: 0
            })
        );
        // A hand-edited value with a missing source still encodes without panicking.
        let broken = EfTransaction {
            tx,
            source_outputs: vec![],
        };
        let decoded = EfTransaction::from_bytes(&broken.to_bytes()).unwrap();
        assert_eq!(
            decoded.source_outputs,
            vec![TxOut {
                satoshis: 0,
                locking_script: Script::default()
            }]
        );
    }

    #[test]
    fn short_inputs_say_what_is_missing() {
        assert_eq!(
            EfTransaction::from_bytes(&[1, 0, 0, 0, 0, 0]).unwrap_err(),
            ParseError::new(4, ParseErrorKind::UnexpectedEnd, "EF marker")
        );
        assert_eq!(
            EfTransaction::from_bytes(&[1, 0, 0, 0, 1]).unwrap_err(),
            ParseError::new(4, ParseErrorKind::NotExtendedFormat, "EF marker")
        );
        assert_eq!(
            EfTransaction::from_bytes(&[1, 0]).unwrap_err().kind,
            ParseErrorKind::UnexpectedEnd
        );
        // An absurd input count is refused before allocation.
        let mut bytes = vec![1, 0, 0, 0];
        bytes.extend_from_slice(&EF_MARKER);
        bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0, 0]);
        assert_eq!(
            EfTransaction::from_bytes(&bytes).unwrap_err(),
            ParseError::new(10, ParseErrorKind::CountTooLarge, "tx input count")
        );
        // A fee larger than the inputs is None, not an underflow.
        let mut ef = sample();
        ef.tx.outputs[0].satoshis = 2000;
        assert_eq!(ef.fee(), None);
    }
}
