//! Script text: our ASM (both ways), the node's test-file ASM (parse only),
//! opcode names, and the node's minimal-push rule.
//!
//! **Our ASM** ([`Script::to_asm`], [`Script::from_asm`]) is the common SDK
//! style (ts-sdk, go-sdk): space-separated tokens, opcodes by name
//! (`OP_DUP`), data pushes as lowercase hex, `0` for `OP_0` (`OP_0` and
//! `OP_FALSE` are read too), `OP_1NEGATE` and `OP_1`..`OP_16` by name (`-1`
//! is read too). A hex token is pushed with the shortest push-data opcode for
//! its length ([`push_data`]). Every byte string round-trips exactly:
//! - a push whose opcode is longer than its length needs (e.g.
//!   `OP_PUSHDATA1` for 3 bytes) is written `OP_PUSHDATA1 3 aabbcc`: the
//!   opcode, the length in decimal, and the data (no data token when the
//!   length is 0);
//! - bytes from a push that runs past the end of the script are written as
//!   one raw token `0x4c05aabb` (inserted verbatim when read);
//! - opcodes with no name (`0xba`..`0xfe`) are written `OP_UNKNOWN186` (decimal).
//!
//! **Node test ASM** ([`parse_node_test_asm`]) is the format of the node's
//! `script_tests.json` / `tx_valid.json` (`core_read.cpp` `ParseScript`):
//! decimal numbers push minimal script numbers, `0x..` tokens are raw bytes
//! inserted verbatim, `'text'` pushes the text, opcode names with or without
//! `OP_`.
//!
//! # Layout
//! - [`opcode_name`], [`opcode_from_name`]: the name table.
//! - [`Script::to_asm`], [`Script::from_asm`]: our ASM.
//! - [`parse_node_test_asm`]: node test ASM.
//! - [`Chunk::is_minimal_push`]: node `CheckMinimalPush`.

use super::interpreter::num::ScriptNum;
use super::opcodes::*;
use super::{push_data, Chunk, Script};
use crate::codec::{ParseError, ParseErrorKind};

/// Names of opcodes `OP_PUSHDATA1` (0x4c) through `OP_NOP10` (0xb9), in order.
const NAMES: [&str; 110] = [
    "OP_PUSHDATA1",
    "OP_PUSHDATA2",
    "OP_PUSHDATA4",
    "OP_1NEGATE",
    "OP_RESERVED",
    "OP_1",
    "OP_2",
    "OP_3",
    "OP_4",
    "OP_5",
    "OP_6",
    "OP_7",
    "OP_8",
    "OP_9",
    "OP_10",
    "OP_11",
    "OP_12",
    "OP_13",
    "OP_14",
    "OP_15",
    "OP_16",
    "OP_NOP",
    "OP_VER",
    "OP_IF",
    "OP_NOTIF",
    "OP_VERIF",
    "OP_VERNOTIF",
    "OP_ELSE",
    "OP_ENDIF",
    "OP_VERIFY",
    "OP_RETURN",
    "OP_TOALTSTACK",
    "OP_FROMALTSTACK",
    "OP_2DROP",
    "OP_2DUP",
    "OP_3DUP",
    "OP_2OVER",
    "OP_2ROT",
    "OP_2SWAP",
    "OP_IFDUP",
    "OP_DEPTH",
    "OP_DROP",
    "OP_DUP",
    "OP_NIP",
    "OP_OVER",
    "OP_PICK",
    "OP_ROLL",
    "OP_ROT",
    "OP_SWAP",
    "OP_TUCK",
    "OP_CAT",
    "OP_SPLIT",
    "OP_NUM2BIN",
    "OP_BIN2NUM",
    "OP_SIZE",
    "OP_INVERT",
    "OP_AND",
    "OP_OR",
    "OP_XOR",
    "OP_EQUAL",
    "OP_EQUALVERIFY",
    "OP_RESERVED1",
    "OP_RESERVED2",
    "OP_1ADD",
    "OP_1SUB",
    "OP_2MUL",
    "OP_2DIV",
    "OP_NEGATE",
    "OP_ABS",
    "OP_NOT",
    "OP_0NOTEQUAL",
    "OP_ADD",
    "OP_SUB",
    "OP_MUL",
    "OP_DIV",
    "OP_MOD",
    "OP_LSHIFT",
    "OP_RSHIFT",
    "OP_BOOLAND",
    "OP_BOOLOR",
    "OP_NUMEQUAL",
    "OP_NUMEQUALVERIFY",
    "OP_NUMNOTEQUAL",
    "OP_LESSTHAN",
    "OP_GREATERTHAN",
    "OP_LESSTHANOREQUAL",
    "OP_GREATERTHANOREQUAL",
    "OP_MIN",
    "OP_MAX",
    "OP_WITHIN",
    "OP_RIPEMD160",
    "OP_SHA1",
    "OP_SHA256",
    "OP_HASH160",
    "OP_HASH256",
    "OP_CODESEPARATOR",
    "OP_CHECKSIG",
    "OP_CHECKSIGVERIFY",
    "OP_CHECKMULTISIG",
    "OP_CHECKMULTISIGVERIFY",
    "OP_NOP1",
    "OP_CHECKLOCKTIMEVERIFY",
    "OP_CHECKSEQUENCEVERIFY",
    "OP_SUBSTR",
    "OP_LEFT",
    "OP_RIGHT",
    "OP_LSHIFTNUM",
    "OP_RSHIFTNUM",
    "OP_NOP9",
    "OP_NOP10",
];

/// Other names accepted when reading: historical and SDK aliases.
const ALIASES: [(&str, u8); 10] = [
    ("OP_0", OP_0),
    ("OP_FALSE", OP_FALSE),
    ("OP_TRUE", OP_TRUE),
    ("OP_NOP2", OP_NOP2),
    ("OP_NOP3", OP_NOP3),
    ("OP_NOP4", OP_NOP4),
    ("OP_NOP5", OP_NOP5),
    ("OP_NOP6", OP_NOP6),
    ("OP_NOP7", OP_NOP7),
    ("OP_NOP8", OP_NOP8),
];

/// The canonical name of a non-push opcode (`0x4c..=0xb9` and
/// `OP_INVALIDOPCODE`), e.g. `"OP_CHECKSIG"`; `OP_0` for 0x00; `None` for
/// direct pushes (`0x01..=0x4b`) and undefined opcodes (`0xba..=0xfe`).
/// 0xb1..0xb7 are named for their current meaning (`OP_CHECKLOCKTIMEVERIFY`,
/// ..., `OP_RSHIFTNUM`).
pub fn opcode_name(op: u8) -> Option<&'static str> {
    match op {
        OP_0 => Some("OP_0"),
        OP_INVALIDOPCODE => Some("OP_INVALIDOPCODE"),
        _ => NAMES
            .get(usize::from(op).checked_sub(usize::from(OP_PUSHDATA1))?)
            .copied(),
    }
}

/// The opcode for a name, with or without the `OP_` prefix, including the
/// aliases `OP_FALSE`, `OP_TRUE`, `OP_NOP2`..`OP_NOP8` and `OP_UNKNOWN<n>`
/// (decimal, 186..=254).
pub fn opcode_from_name(name: &str) -> Option<u8> {
    let bare = name.strip_prefix("OP_").unwrap_or(name);
    if let Some(i) = NAMES.iter().position(|n| &n[3..] == bare) {
        return Some(OP_PUSHDATA1 + i as u8);
    }
    if let Some((_, op)) = ALIASES.iter().find(|(n, _)| &n[3..] == bare) {
        return Some(*op);
    }
    if bare == "INVALIDOPCODE" {
        return Some(OP_INVALIDOPCODE);
    }
    let n: u8 = bare.strip_prefix("UNKNOWN")?.parse().ok()?;
    (0xba..=0xfe).contains(&n).then_some(n)
}

impl Chunk<'_> {
    /// Whether this push uses the shortest encoding for its data, as the
    /// node's MINIMALDATA rule requires (`CheckMinimalPush`): `OP_0` for
    /// empty data, `OP_1..OP_16` for one byte 1..16, `OP_1NEGATE` for `0x81`,
    /// a direct push up to 75 bytes, `OP_PUSHDATA1` up to 255, `OP_PUSHDATA2`
    /// up to 65,535. Non-push opcodes (no data) are trivially minimal.
    pub fn is_minimal_push(&self) -> bool {
        let Some(data) = self.data else { return true };
        let op = self.opcode;
        match data {
            [] => op == OP_0,
            [b @ 1..=16] => op == OP_1 + b - 1,
            [0x81] => op == OP_1NEGATE,
            _ if data.len() <= 75 => usize::from(op) == data.len(),
            _ if data.len() <= 0xff => op == OP_PUSHDATA1,
            _ if data.len() <= 0xffff => op == OP_PUSHDATA2,
            _ => true,
        }
    }

    /// Whether this push is exactly what [`push_data`] produces for its data
    /// (so plain hex in our ASM reproduces it).
    fn is_canonical_push_data(&self) -> bool {
        let Some(data) = self.data else { return true };
        match self.opcode {
            OP_0 => true,
            OP_PUSHDATA1 => data.len() > 75,
            OP_PUSHDATA2 => data.len() > 0xff,
            OP_PUSHDATA4 => data.len() > 0xffff,
            _ => true,
        }
    }
}

impl Script {
    /// The script as our ASM text (module docs); round-trips exactly through
    /// [`Script::from_asm`] for every byte string.
    pub fn to_asm(&self) -> String {
        let bytes = self.as_bytes();
        let mut out = String::with_capacity(bytes.len() * 2);
        let mut chunks = self.chunks();
        loop {
            let start = chunks.position();
            let Some(next) = chunks.next() else { break };
            if !out.is_empty() {
                out.push(' ');
            }
            let chunk = match next {
                Ok(c) => c,
                Err(_) => {
                    out.push_str("0x");
                    out.push_str(&hex::encode(bytes.get(start..).unwrap_or(&[])));
                    break;
                }
            };
            match chunk.data {
                Some([]) if chunk.opcode == OP_0 => out.push('0'),
                Some(data) if chunk.is_canonical_push_data() => out.push_str(&hex::encode(data)),
                Some(data) => {
                    out.push_str(opcode_name(chunk.opcode).unwrap_or("OP_PUSHDATA4"));
                    out.push(' ');
                    out.push_str(&data.len().to_string());
                    if !data.is_empty() {
                        out.push(' ');
                        out.push_str(&hex::encode(data));
                    }
                }
                None => match opcode_name(chunk.opcode) {
                    Some(name) => out.push_str(name),
                    None => {
                        out.push_str("OP_UNKNOWN");
                        out.push_str(&chunk.opcode.to_string());
                    }
                },
            }
        }
        out
    }

    /// Parses our ASM text (module docs). Tokens are separated by ASCII
    /// whitespace; the empty string is the empty script.
    ///
    /// # Errors
    /// [`ParseErrorKind::BadText`] at the byte offset of the first token that
    /// is not an opcode name, `0`, `-1`, even-length hex, a raw `0x..` token,
    /// or a well-formed `OP_PUSHDATAn <len> <hex>` group.
    pub fn from_asm(text: &str) -> Result<Script, ParseError> {
        let mut out = Vec::with_capacity(text.len() / 2);
        let mut tokens = tokens(text);
        while let Some((at, tok)) = tokens.next() {
            let bad = || ParseError::new(at, ParseErrorKind::BadText, "asm token");
            match tok {
                "0" => out.push(OP_0),
                "-1" => out.push(OP_1NEGATE),
                "OP_PUSHDATA1" | "OP_PUSHDATA2" | "OP_PUSHDATA4" => {
                    let (len_at, len_tok) = tokens.next().ok_or_else(bad)?;
                    let len: usize = len_tok.parse().map_err(|_| {
                        ParseError::new(len_at, ParseErrorKind::BadText, "asm push length")
                    })?;
                    let fits = match tok {
                        "OP_PUSHDATA1" => len <= 0xff,
                        "OP_PUSHDATA2" => len <= 0xffff,
                        _ => u32::try_from(len).is_ok(),
                    };
                    if !fits {
                        return Err(ParseError::new(
                            len_at,
                            ParseErrorKind::BadText,
                            "asm push length",
                        ));
                    }
                    let data = if len == 0 {
                        Vec::new()
                    } else {
                        let (data_at, data_tok) = tokens.next().ok_or_else(bad)?;
                        let data = hex::decode(data_tok).map_err(|_| {
                            ParseError::new(data_at, ParseErrorKind::BadText, "asm push data")
                        })?;
                        if data.len() != len {
                            return Err(ParseError::new(
                                data_at,
                                ParseErrorKind::BadText,
                                "asm push data length",
                            ));
                        }
                        data
                    };
                    let n = len;
                    match tok {
                        "OP_PUSHDATA1" => {
                            out.push(OP_PUSHDATA1);
                            out.push(n as u8);
                        }
                        "OP_PUSHDATA2" => {
                            out.push(OP_PUSHDATA2);
                            out.extend_from_slice(&(n as u16).to_le_bytes());
                        }
                        _ => {
                            out.push(OP_PUSHDATA4);
                            out.extend_from_slice(&(n as u32).to_le_bytes());
                        }
                    }
                    out.extend_from_slice(&data);
                }
                _ if tok.starts_with("OP_") => out.push(opcode_from_name(tok).ok_or_else(bad)?),
                _ => {
                    if let Some(raw) = tok.strip_prefix("0x") {
                        out.extend_from_slice(&hex::decode(raw).map_err(|_| bad())?);
                    } else {
                        let data = hex::decode(tok).map_err(|_| bad())?;
                        push_data(&mut out, &data);
                    }
                }
            }
        }
        Ok(Script::from_bytes(out))
    }
}

/// Whitespace-separated tokens with their byte offsets.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0usize;
    text.split(|c: char| c.is_ascii_whitespace())
        .filter_map(move |tok| {
            let at = pos;
            pos += tok.len() + 1;
            (!tok.is_empty()).then_some((at, tok))
        })
}

/// Parses a script in the node's test-file ASM (`core_read.cpp`
/// `ParseScript`, used by `script_tests.json` and `tx_valid.json`):
/// - decimal integers (`-?[0-9]+`) push the number minimally: `-1` and
///   `1..16` as `OP_1NEGATE`/`OP_N`, `0` as `OP_0`, others as a script-number
///   data push (values beyond `i64` saturate, as the node's `atoi64`);
/// - `0x<hex>` inserts the bytes verbatim (not pushed);
/// - `'text'` pushes the text's bytes;
/// - opcode names with or without `OP_` (`DUP`, `OP_DUP`, `NOP2`, ...).
///
/// # Errors
/// [`ParseErrorKind::BadText`] at the byte offset of a token that is none of
/// these, or odd-length / non-hex `0x` data.
pub fn parse_node_test_asm(text: &str) -> Result<Script, ParseError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    for (at, tok) in tokens(text) {
        let bad = || ParseError::new(at, ParseErrorKind::BadText, "node test asm token");
        let digits = tok.strip_prefix('-').unwrap_or(tok);
        if digits.bytes().all(|b| b.is_ascii_digit()) {
            let n = parse_i64_saturating(tok);
            match n {
                0 => out.push(OP_0),
                -1 => out.push(OP_1NEGATE),
                1..=16 => out.push(OP_1 + (n as u8) - 1),
                _ => push_data(&mut out, &ScriptNum::Small(n).encode()),
            }
        } else if let Some(raw) = tok.strip_prefix("0x").filter(|r| !r.is_empty()) {
            out.extend_from_slice(&hex::decode(raw).map_err(|_| bad())?);
        } else if tok.len() >= 2 && tok.starts_with('\'') && tok.ends_with('\'') {
            push_data(&mut out, &tok.as_bytes()[1..tok.len() - 1]);
        } else {
            out.push(opcode_from_name(tok).ok_or_else(bad)?);
        }
    }
    Ok(Script::from_bytes(out))
}

/// `atoi64`: decimal with optional `-`, saturating at the `i64` range; `"-"` is 0.
fn parse_i64_saturating(tok: &str) -> i64 {
    let (negative, digits) = match tok.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, tok),
    };
    let mut v: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        v = match v.checked_mul(10).and_then(|x| {
            if negative {
                x.checked_sub(d)
            } else {
                x.checked_add(d)
            }
        }) {
            Some(x) => x,
            None => return if negative { i64::MIN } else { i64::MAX },
        };
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Chunks;
    use proptest::prelude::*;

    fn script(h: &str) -> Script {
        Script::from_bytes(hex::decode(h.replace(' ', "")).unwrap())
    }

    #[test]
    fn asm_uses_sdk_names_and_hex() {
        let p2pkh = script("76a914 1451baa3aad777144a0759998a03538018dd7b4b 88ac");
        assert_eq!(
            p2pkh.to_asm(),
            "OP_DUP OP_HASH160 1451baa3aad777144a0759998a03538018dd7b4b OP_EQUALVERIFY OP_CHECKSIG"
        );
        assert_eq!(Script::from_asm(&p2pkh.to_asm()).unwrap(), p2pkh);
        assert_eq!(
            script("00 4f 51 60 6a").to_asm(),
            "0 OP_1NEGATE OP_1 OP_16 OP_RETURN"
        );
        assert_eq!(
            Script::from_asm("OP_0 OP_FALSE -1 OP_TRUE").unwrap(),
            script("00 00 4f 51")
        );
        assert_eq!(script("b1 b2 b6 ba ff").to_asm(), "OP_CHECKLOCKTIMEVERIFY OP_CHECKSEQUENCEVERIFY OP_LSHIFTNUM OP_UNKNOWN186 OP_INVALIDOPCODE");
        assert_eq!(
            Script::from_asm("OP_NOP2 OP_NOP3 OP_UNKNOWN254").unwrap(),
            script("b1 b2 fe")
        );
        assert_eq!(Script::from_asm("").unwrap(), Script::default());
    }

    #[test]
    fn non_minimal_and_truncated_pushes_round_trip() {
        let odd = script("4c03aabbcc 4d0000 4e01000000ff 0105 4c00");
        assert_eq!(
            odd.to_asm(),
            "OP_PUSHDATA1 3 aabbcc OP_PUSHDATA2 0 OP_PUSHDATA4 1 ff 05 OP_PUSHDATA1 0"
        );
        assert_eq!(Script::from_asm(&odd.to_asm()).unwrap(), odd);
        let truncated = script("51 4c05aabb");
        assert_eq!(truncated.to_asm(), "OP_1 0x4c05aabb");
        assert_eq!(Script::from_asm(&truncated.to_asm()).unwrap(), truncated);
        let long = Script::from_bytes([vec![0x4c, 80], vec![7; 80]].concat());
        assert_eq!(long.to_asm(), "07".repeat(80));
        assert_eq!(Script::from_asm(&long.to_asm()).unwrap(), long);
    }

    #[test]
    fn asm_errors_point_at_the_token() {
        for (text, offset) in [
            ("OP_DUP OP_FOO", 7),
            ("abc", 0),
            ("OP_1 zz", 5),
            ("OP_PUSHDATA1 2 aa", 15),
            ("OP_PUSHDATA1", 0),
            ("OP_PUSHDATA1 x", 13),
            ("OP_PUSHDATA1 256 00", 13),
            ("0xz", 0),
            ("OP_UNKNOWN185", 0),
        ] {
            let err = Script::from_asm(text).unwrap_err();
            assert_eq!(
                (err.kind, err.offset),
                (ParseErrorKind::BadText, offset),
                "{text}"
            );
        }
    }

    #[test]
    fn node_test_asm_follows_parse_script() {
        let s = parse_node_test_asm(
            "0 -1 1 16 17 -2 1000 0x4c01 0x07 'ab' '' DUP OP_ADD NOP2 CHECKLOCKTIMEVERIFY",
        )
        .unwrap();
        assert_eq!(
            hex::encode(s.as_bytes()),
            "004f51600111018202e8034c0107026162007693b1b1"
        );
        assert_eq!(
            parse_node_test_asm("9223372036854775808").unwrap(),
            parse_node_test_asm("9223372036854775807").unwrap()
        );
        assert_eq!(
            hex::encode(
                parse_node_test_asm("-9223372036854775808")
                    .unwrap()
                    .as_bytes()
            ),
            "09000000000000008080"
        );
        assert_eq!(parse_node_test_asm("  \n").unwrap(), Script::default());
        for (text, offset) in [("DUP FOO", 4), ("0x", 0), ("0xabc", 0), ("'a", 0)] {
            let err = parse_node_test_asm(text).unwrap_err();
            assert_eq!(
                (err.kind, err.offset),
                (ParseErrorKind::BadText, offset),
                "{text}"
            );
        }
    }

    #[test]
    fn minimal_push_rule_matches_check_minimal_push() {
        let cases = [
            ("00", true),
            ("0100", true),
            ("0101", false),
            ("51", true),
            ("0181", false),
            ("4f", true),
            ("020102", true),
            ("4c020102", false),
            ("4c00", false),
        ];
        for (h, minimal) in cases {
            let s = script(h);
            let c = s.chunks().next().unwrap().unwrap();
            assert_eq!(c.is_minimal_push(), minimal, "{h}");
        }
        let big = [vec![0x4c, 76], vec![1; 76]].concat();
        assert!(Chunks::new(&big).next().unwrap().unwrap().is_minimal_push());
        let big2 = [vec![0x4d, 76, 0], vec![1; 76]].concat();
        assert!(!Chunks::new(&big2)
            .next()
            .unwrap()
            .unwrap()
            .is_minimal_push());
        let big4 = [vec![0x4e, 0, 1, 0, 0], vec![1; 256]].concat();
        assert!(!Chunks::new(&big4)
            .next()
            .unwrap()
            .unwrap()
            .is_minimal_push());
    }

    #[test]
    fn names_cover_every_defined_opcode_once() {
        for op in 0x4c..=0xb9u8 {
            let name = opcode_name(op).unwrap();
            assert_eq!(opcode_from_name(name), Some(op), "{name}");
            assert_eq!(opcode_from_name(&name[3..]), Some(op), "{name}");
        }
        assert_eq!(opcode_name(0x4b), None);
        assert_eq!(opcode_name(0xba), None);
    }

    proptest! {
        #[test]
        fn every_byte_string_round_trips_through_asm(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = Script::from_bytes(bytes);
            prop_assert_eq!(Script::from_asm(&s.to_asm()).unwrap(), s);
        }
    }
}
