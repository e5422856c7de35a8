//! Reading command-line inputs: a file path, `-` for stdin, or (where allowed)
//! inline hex; each may hold binary bytes or hex text.

use std::io::Read;
use std::path::Path;

/// Why an input could not be read. Maps to exit code 2 (usage / I/O error).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The argument is neither an existing file nor hex.
    #[error("{arg:?} is neither a readable file nor hex")]
    NotFileOrHex {
        /// The argument (truncated for display).
        arg: String,
    },
    /// The file looked like hex text but was not valid hex.
    #[error("{path}: {source}")]
    BadHex {
        /// The path as given.
        path: String,
        /// Where the hex broke.
        source: bsv_format::ParseError,
    },
}

/// Reads `path` (`-` = stdin) and returns its bytes, hex-decoding the content
/// when it is entirely ASCII hex digits and whitespace.
///
/// # Errors
/// [`InputError::Read`] if the file cannot be read, [`InputError::BadHex`] if it
/// is hex text with an odd number of digits.
pub fn read_bytes(path: &str) -> Result<Vec<u8>, InputError> {
    let raw = if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|source| InputError::Read {
                path: "<stdin>".into(),
                source,
            })?;
        buf
    } else {
        std::fs::read(path).map_err(|source| InputError::Read {
            path: path.into(),
            source,
        })?
    };
    decode_maybe_hex(&raw).map_err(|source| InputError::BadHex {
        path: display_name(path),
        source,
    })
}

/// Reads `arg` as a file (or `-`) if such a file exists, else as inline hex.
///
/// # Errors
/// As [`read_bytes`], or [`InputError::NotFileOrHex`].
pub fn read_file_or_hex(arg: &str) -> Result<Vec<u8>, InputError> {
    if arg == "-" || Path::new(arg).exists() {
        return read_bytes(arg);
    }
    if is_hex_text(arg.as_bytes()) {
        return decode_maybe_hex(arg.as_bytes()).map_err(|source| InputError::BadHex {
            path: "<argument>".into(),
            source,
        });
    }
    let mut shown: String = arg.chars().take(40).collect();
    if shown.len() < arg.len() {
        shown.push('…');
    }
    Err(InputError::NotFileOrHex { arg: shown })
}

fn display_name(path: &str) -> String {
    if path == "-" {
        "<stdin>".into()
    } else {
        path.into()
    }
}

/// Whether `bytes` is non-empty hex text (hex digits and ASCII whitespace only).
fn is_hex_text(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !b.is_ascii_whitespace())
        && bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
}

/// Hex-decodes `raw` if it is hex text (whitespace anywhere is ignored),
/// otherwise returns it unchanged. Binary BRC structures always contain a
/// non-hex byte in their first four bytes (versions and magics), so the two
/// cannot be confused.
fn decode_maybe_hex(raw: &[u8]) -> Result<Vec<u8>, bsv_format::ParseError> {
    if !is_hex_text(raw) {
        return Ok(raw.to_vec());
    }
    let digits: Vec<usize> = raw
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_whitespace())
        .map(|(i, _)| i)
        .collect();
    if digits.len() % 2 == 1 {
        // Every byte is a hex digit or whitespace (is_hex_text), so an odd
        // count is the only fault: name the digit left without a pair.
        let at = digits.last().copied().unwrap_or(0);
        return Err(bsv_format::ParseError::new(
            at,
            bsv_format::codec::ParseErrorKind::BadText,
            "hex: odd number of digits (this one has no pair)",
        ));
    }
    let compact: String = digits.iter().map(|&i| char::from(raw[i])).collect();
    bsv_format::codec::decode_hex(&compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text_is_decoded_and_binary_is_kept() {
        assert_eq!(
            decode_maybe_hex(b"0100beef\n").unwrap(),
            vec![1, 0, 0xbe, 0xef]
        );
        assert_eq!(
            decode_maybe_hex(b"01 00\r\nbe ef").unwrap(),
            vec![1, 0, 0xbe, 0xef]
        );
        assert_eq!(
            decode_maybe_hex(&[1, 0, 0xbe, 0xef]).unwrap(),
            vec![1, 0, 0xbe, 0xef]
        );
        assert!(decode_maybe_hex(b"abc").is_err());
    }

    #[test]
    fn inline_hex_ignores_inner_whitespace_and_names_an_unpaired_digit() {
        assert_eq!(read_file_or_hex("01 02\n0a").unwrap(), vec![1, 2, 10]);
        match read_file_or_hex("01 02 0") {
            Err(InputError::BadHex { source, .. }) => assert_eq!(source.offset, 6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arguments_that_are_neither_file_nor_hex_are_refused() {
        assert!(matches!(
            read_file_or_hex("no-such-file.beef"),
            Err(InputError::NotFileOrHex { .. })
        ));
        assert_eq!(read_file_or_hex("0a0b").unwrap(), vec![10, 11]);
    }
}
