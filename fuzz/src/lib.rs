//! The properties every fuzz target checks, one `check_*` function per
//! decoder, so that `fuzz_targets/*.rs` stay one line each and a crash input
//! can be replayed outside libFuzzer (see `docs/fuzzing.md`).
//!
//! Each function takes the raw fuzz input, must never panic on its own, and
//! panics (an `assert!`) only when `bsv-format` breaks a property it documents:
//! a decode that succeeds must re-encode to the same bytes, a decoded value's
//! derived data (txid, Merkle root) must agree with an independent computation,
//! and nothing downstream of a successful decode (queries, sorting, Atomic
//! cut, EF extraction, merging, the script interpreter, SPV) may panic.
//!
//! # Layout
//! - [`check_raw_tx`], [`check_ef`]: BRC-12 and BRC-30 transactions.
//! - [`check_script`], [`ScriptCase`]: chunks, ASM both ways, the interpreter.
//! - [`check_bump`], [`reference_root`]: BRC-74 in both offset modes.
//! - [`check_beef`]: BRC-62/96/95 and everything built on a decoded BEEF.

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::{MerklePath, NodeValue, PathNode};
use bsv_format::codec::{ParseErrorKind, Reader};
use bsv_format::ef::EfTransaction;
use bsv_format::script::asm::parse_node_test_asm;
use bsv_format::script::interpreter::{
    verify_script_with_limits, ScriptLimits, TxContext, VerifyFlags,
};
use bsv_format::spv::{verify, verify_scripts, ChainTracker, RootClaim, ScriptEras, VerifyOptions};
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Hash256, Outpoint, Script, Transaction, TxIn, TxOut, Txid};

/// `0100BEEF`, prepended by the `beef_v1` target.
pub const BEEF_V1_PREFIX: [u8; 4] = [0x01, 0x00, 0xbe, 0xef];
/// `0200BEEF`, prepended by the `beef_v2` target.
pub const BEEF_V2_PREFIX: [u8; 4] = [0x02, 0x00, 0xbe, 0xef];
/// `01010101`, prepended by the `beef_atomic` target (the subject txid and
/// the inner BEEF come from the fuzz input).
pub const ATOMIC_PREFIX: [u8; 4] = [0x01, 0x01, 0x01, 0x01];

/// BRC-12: a successful decode re-encodes to exactly the input, and the txid
/// is `sha256d` of the input.
pub fn check_raw_tx(data: &[u8]) {
    let Ok(tx) = Transaction::from_bytes(data) else {
        return;
    };
    assert_eq!(
        tx.to_bytes(),
        data,
        "raw tx re-encoding differs from the input"
    );
    assert_eq!(tx.size(), data.len());
    assert_eq!(tx.txid(), Txid::of_raw(data));
    let _ = tx.is_coinbase();
    let _ = tx.total_output_satoshis();
}

/// BRC-30: a successful decode re-encodes to exactly the input; the streamed
/// txid equals the txid of the raw form; the raw decoder refuses the EF bytes
/// with `UnexpectedExtendedFormat`; the raw form decodes back to the same
/// transaction (except for the one raw form that is itself an EF marker).
pub fn check_ef(data: &[u8]) {
    let Ok(ef) = EfTransaction::from_bytes(data) else {
        return;
    };
    assert_eq!(ef.to_bytes(), data, "EF re-encoding differs from the input");
    assert_eq!(ef.source_outputs.len(), ef.tx.inputs.len());
    let mut r = Reader::new(data);
    let (again, txid) =
        EfTransaction::read_with_txid(&mut r).expect("EF decoded once, so it decodes again");
    assert_eq!(again, ef);
    assert_eq!(
        txid,
        ef.txid(),
        "streamed EF txid differs from the raw form's txid"
    );
    let err = Transaction::from_bytes(data).expect_err("raw decoder accepted EF bytes");
    assert_eq!(err.kind, ParseErrorKind::UnexpectedExtendedFormat);
    let raw = ef.tx.to_bytes();
    match Transaction::from_bytes(&raw) {
        Ok(tx) => assert_eq!(tx, ef.tx),
        Err(e) => {
            // `version ‖ 00 ‖ 00 ‖ 000000EF` (no inputs, no outputs) reads as EF.
            assert_eq!(e.kind, ParseErrorKind::UnexpectedExtendedFormat);
            assert!(ef.tx.inputs.is_empty() && ef.tx.outputs.is_empty());
        }
    }
    let _ = ef.fee();
}

/// Bytes of the header [`ScriptCase::parse`] reads before the scripts.
pub const SCRIPT_HEADER_BYTES: usize = 18;

/// One interpreter run decoded from fuzz bytes:
/// `flags u32le | tx_version u32le | amount u64le | unlocking_len u16le |
/// unlocking | locking`, evaluated in the node's script-test harness
/// (a crediting transaction paying `amount` to `locking`, spent by a
/// transaction of `tx_version` with `unlocking`).
#[derive(Debug, Clone)]
pub struct ScriptCase {
    /// Verification flags (unknown bits masked off).
    pub flags: VerifyFlags,
    /// Version of the spending transaction.
    pub tx_version: u32,
    /// Satoshis of the output being spent.
    pub amount: u64,
    /// The unlocking script.
    pub unlocking: Script,
    /// The locking script.
    pub locking: Script,
}

/// Every flag bit the interpreter defines.
fn known_flags() -> u32 {
    [
        VerifyFlags::P2SH,
        VerifyFlags::STRICTENC,
        VerifyFlags::DERSIG,
        VerifyFlags::LOW_S,
        VerifyFlags::NULLDUMMY,
        VerifyFlags::SIGPUSHONLY,
        VerifyFlags::MINIMALDATA,
        VerifyFlags::DISCOURAGE_UPGRADABLE_NOPS,
        VerifyFlags::CLEANSTACK,
        VerifyFlags::CHECKLOCKTIMEVERIFY,
        VerifyFlags::CHECKSEQUENCEVERIFY,
        VerifyFlags::MINIMALIF,
        VerifyFlags::NULLFAIL,
        VerifyFlags::COMPRESSED_PUBKEYTYPE,
        VerifyFlags::SIGHASH_FORKID,
        VerifyFlags::GENESIS,
        VerifyFlags::UTXO_AFTER_GENESIS,
        VerifyFlags::CHRONICLE,
        VerifyFlags::UTXO_AFTER_CHRONICLE,
    ]
    .iter()
    .fold(0, |acc, f| acc | f.bits())
}

impl ScriptCase {
    /// Splits fuzz bytes into a case; `None` if the header is incomplete.
    /// An `unlocking_len` past the end takes all remaining bytes.
    pub fn parse(data: &[u8]) -> Option<ScriptCase> {
        let mut r = Reader::new(data);
        let flags = VerifyFlags::from_bits(r.read_u32_le("flags").ok()? & known_flags());
        let tx_version = r.read_u32_le("version").ok()?;
        let amount = r.read_u64_le("amount").ok()?;
        let len = usize::from(r.read_u16_le("len").ok()?).min(r.remaining());
        let unlocking = Script::from_bytes(r.read_bytes(len, "unlocking").ok()?.to_vec());
        let locking = Script::from_bytes(r.rest().to_vec());
        Some(ScriptCase {
            flags,
            tx_version,
            amount,
            unlocking,
            locking,
        })
    }

    /// The node test harness's spending transaction (`script_tests.cpp`).
    pub fn spending_tx(&self) -> Transaction {
        let credit = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(Txid([0; 32]), u32::MAX),
                unlocking_script: Script::from_bytes(vec![0x00, 0x00]),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![TxOut {
                satoshis: self.amount,
                locking_script: self.locking.clone(),
            }],
            lock_time: 0,
        };
        Transaction {
            version: self.tx_version,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(credit.txid(), 0),
                unlocking_script: self.unlocking.clone(),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![TxOut {
                satoshis: self.amount,
                locking_script: Script::default(),
            }],
            lock_time: 0,
        }
    }
}

/// Chunks tile the script (or stop at one `TruncatedPush`), and our ASM
/// round-trips the bytes exactly.
fn check_script_bytes(bytes: &[u8]) {
    let script = Script::from_bytes(bytes.to_vec());
    let mut at = 0;
    let mut failed = false;
    for chunk in script.chunks() {
        assert!(!failed, "chunks yielded after an error");
        match chunk {
            Ok(c) => {
                assert_eq!(c.offset, at, "chunks do not tile the script");
                assert!(c.end > c.offset && c.end <= bytes.len());
                let _ = c.is_minimal_push();
                at = c.end;
            }
            Err(e) => {
                assert_eq!((e.kind, e.offset), (ParseErrorKind::TruncatedPush, at));
                failed = true;
            }
        }
    }
    assert!(
        failed || at == bytes.len(),
        "chunks stopped early without an error"
    );
    let asm = script.to_asm();
    let back = Script::from_asm(&asm)
        .unwrap_or_else(|e| panic!("our own ASM {asm:?} does not parse: {e}"));
    assert_eq!(
        back.as_bytes(),
        bytes,
        "ASM round trip changed the script ({asm:?})"
    );
}

/// Scripts: chunking and ASM on the whole input and on both scripts; ASM and
/// node-test-ASM parsing of the input as text; then the interpreter on the
/// case (must return, never panic).
pub fn check_script(data: &[u8]) {
    check_script_bytes(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = Script::from_asm(&text) {
        let asm = s.to_asm();
        assert_eq!(
            Script::from_asm(&asm).map(Script::into_bytes).ok(),
            Some(s.into_bytes()),
            "ASM not idempotent"
        );
    }
    let _ = parse_node_test_asm(&text);
    let Some(case) = ScriptCase::parse(data) else {
        return;
    };
    check_script_bytes(case.unlocking.as_bytes());
    check_script_bytes(case.locking.as_bytes());
    let tx = case.spending_tx();
    let ctx = TxContext {
        tx: &tx,
        input_index: 0,
        satoshis: case.amount,
    };
    let _ = verify_script_with_limits(
        &case.unlocking,
        &case.locking,
        case.flags,
        &ctx,
        &FUZZ_SCRIPT_LIMITS,
    );
}

/// Limits for the `script` target: the node's policy-sized numbers and a 10 MB
/// stack instead of the consensus defaults (32 MB numbers, 100 MB stack).
/// With the defaults, a few hundred bytes of `OP_MUL` on multi-megabyte
/// numbers take tens of seconds (found by this target, recorded in
/// `crates/bsv-format/tests/fuzz_regressions.rs`), and every run would stop
/// at that one known timeout instead of exploring the rest of the interpreter.
pub const FUZZ_SCRIPT_LIMITS: ScriptLimits = ScriptLimits {
    max_stack_memory: 10_000_000,
    max_num_len_after_genesis: 10_000,
    max_num_len_after_chronicle: 10_000,
};

/// BRC-74 root of `txid`'s leaf computed independently of `bsv-format`'s
/// resolver, from the path's nodes only: at level `h` the sibling
/// `(i >> h) ^ 1` is taken as given, or computed from level `h - 1`, with
/// flag 1 meaning "equals the working hash". `None` where the path does not
/// determine the root this simple way (single-level compound paths, a
/// missing node): only then is the check skipped.
pub fn reference_root(path: &MerklePath, txid: &Txid) -> Option<Hash256> {
    let levels = path.levels();
    let leaf = levels
        .first()?
        .iter()
        .find(|n| n.value.hash().is_some_and(|h| h.0 == txid.0))?;
    if levels.len() == 1 {
        // Single-transaction block (root = the txid) or a compound path; the
        // latter needs height inference this reference does not do.
        return (levels[0].len() == 1).then(|| txid.as_hash());
    }
    let mut w = txid.as_hash();
    let mut i = leaf.offset;
    for h in 0..levels.len() {
        let s = i ^ 1;
        match node(levels, h, s, 0)? {
            Resolved::Dup => w = Hash256::merkle_parent(&w, &w),
            Resolved::Hash(n) if s & 1 == 1 => w = Hash256::merkle_parent(&w, &n),
            Resolved::Hash(n) => w = Hash256::merkle_parent(&n, &w),
        }
        i >>= 1;
    }
    Some(w)
}

enum Resolved {
    Hash(Hash256),
    Dup,
}

fn find(level: &[PathNode], offset: u64) -> Option<&PathNode> {
    level.iter().find(|n| n.offset == offset)
}

/// Node `offset` of level `h`: given, or `H(left ‖ right)` of level `h - 1`
/// (right may be a duplicate marker). Depth-limited by the tree height.
fn node(levels: &[Vec<PathNode>], h: usize, offset: u64, depth: usize) -> Option<Resolved> {
    if let Some(n) = find(levels.get(h)?, offset) {
        return Some(match n.value {
            NodeValue::Duplicate => Resolved::Dup,
            v => Resolved::Hash(v.hash()?),
        });
    }
    if h == 0 || depth > 64 {
        return None;
    }
    let left = match node(levels, h - 1, offset.checked_mul(2)?, depth + 1)? {
        Resolved::Hash(l) => l,
        Resolved::Dup => return None,
    };
    let right = match node(
        levels,
        h - 1,
        offset.checked_mul(2)?.checked_add(1)?,
        depth + 1,
    )? {
        Resolved::Hash(r) => r,
        Resolved::Dup => left,
    };
    Some(Resolved::Hash(Hash256::merkle_parent(&left, &right)))
}

/// BRC-74: strict success implies lenient success with the same value; a
/// decoded path re-encodes to the input; every level-0 leaf with a hash gives
/// the path's root (checked against [`reference_root`] where it applies);
/// extracting the client txids gives a strict path with the same root, and
/// combining a path with itself keeps its root.
pub fn check_bump(data: &[u8]) {
    let strict = MerklePath::from_bytes_strict(data);
    let lenient = MerklePath::from_bytes_lenient(data);
    if let Ok(s) = &strict {
        assert_eq!(
            lenient.as_ref().ok(),
            Some(s),
            "strict accepted what lenient refused"
        );
    }
    let Ok(path) = lenient else { return };
    assert_eq!(
        path.to_bytes(),
        data,
        "BUMP re-encoding differs from the input"
    );
    assert_eq!(usize::from(path.tree_height()), path.levels().len());
    let leaves: Vec<Txid> = path.levels()[0]
        .iter()
        .filter_map(|n| n.value.hash())
        .map(|h| Txid(h.0))
        .collect();
    assert!(!leaves.is_empty(), "decoded BUMP without a level-0 hash");
    for txid in &leaves {
        assert_eq!(path.compute_root(txid), Ok(path.root()));
        assert!(path.leaf_offset(txid).is_some());
        if let Some(r) = reference_root(&path, txid) {
            assert_eq!(
                r,
                path.root(),
                "BUMP root differs from the reference computation for {txid}"
            );
        }
    }
    let clients: Vec<Txid> = path.client_txids().collect();
    if !clients.is_empty() {
        let cut = path
            .extract(&clients)
            .expect("extracting the path's own client txids");
        assert_eq!(cut.root(), path.root());
        let again =
            MerklePath::from_bytes_strict(&cut.to_bytes()).expect("an extracted path is strict");
        assert_eq!(again.root(), path.root());
        for txid in &clients {
            assert_eq!(again.compute_root(txid), Ok(path.root()));
        }
        let mut trimmed = path.clone();
        trimmed.trim();
        assert_eq!(trimmed.root(), path.root());
        let mut combined = path.clone();
        combined
            .combine(&path)
            .expect("a path combines with itself");
        assert_eq!(combined.root(), path.root());
    }
}

/// BEEF: a decoded BEEF re-encodes to the input; every proven transaction is
/// a leaf of its BUMP; the operations built on a BEEF (sort, Atomic cut, EF,
/// merge, version change) keep it encodable and decodable; then the SPV
/// checks run with an accept-all tracker (see [`check_beef_spv`]).
pub fn check_beef(data: &[u8]) {
    let Ok(beef) = Beef::from_bytes(data) else {
        return;
    };
    assert_eq!(
        beef.to_bytes(),
        data,
        "BEEF re-encoding differs from the input"
    );
    let mut txids = Vec::with_capacity(beef.len());
    for entry in beef.txs() {
        let txid = entry.txid();
        txids.push(txid);
        if let Some(tx) = entry.transaction() {
            assert_eq!(tx.txid(), txid);
        }
        if let Some(i) = entry.bump_index() {
            let bump = beef.bumps().get(i).expect("bump index in range");
            assert_eq!(
                bump.compute_root(&txid),
                Ok(bump.root()),
                "proven tx is not a leaf of its BUMP"
            );
        }
        assert!(beef.find(&txid).is_some());
    }
    let distinct = {
        let mut s = txids.clone();
        s.sort();
        s.dedup();
        s.len() == txids.len()
    };
    let _ = beef.order_violation();

    let mut sorted = beef.clone();
    sorted.sort();
    let mut after: Vec<Txid> = sorted.txs().iter().map(|t| t.txid()).collect();
    let mut before = txids.clone();
    after.sort();
    before.sort();
    assert_eq!(after, before, "sort changed the set of transactions");
    let all_inputs_present = beef
        .txs()
        .iter()
        .filter(|t| t.bump_index().is_none())
        .filter_map(|t| t.transaction())
        .all(|tx| {
            tx.inputs
                .iter()
                .all(|i| beef.find(&i.prev_out.txid).is_some())
        });
    if distinct && all_inputs_present {
        assert_eq!(
            sorted.order_violation(),
            None,
            "sort left a parent after its child"
        );
    }
    assert_round_trips(&sorted);

    let subject = beef.subject().or_else(|| txids.last().copied());
    if let Some(subject) = subject {
        if let Ok(atomic) = beef.to_atomic(&subject) {
            assert_eq!(atomic.subject(), Some(subject));
            assert!(atomic.find(&subject).is_some());
            assert_round_trips(&atomic);
        }
    }
    for txid in txids.iter().take(8) {
        if let Ok(ef) = beef.ef_of(txid) {
            assert_eq!(ef.txid(), *txid);
            assert_eq!(EfTransaction::from_bytes(&ef.to_bytes()).ok(), Some(ef));
        }
    }
    let mut merged = beef.clone();
    merged.merge(beef.clone());
    assert_round_trips(&merged);
    for version in [BeefVersion::V1, BeefVersion::V2] {
        let mut v = beef.clone();
        if v.set_version(version).is_ok() {
            assert_round_trips(&v);
        }
    }
    check_beef_spv(&beef);
}

/// Encodes and decodes `beef`, which must give the same value.
fn assert_round_trips(beef: &Beef) {
    let bytes = beef.to_bytes();
    match Beef::from_bytes(&bytes) {
        Ok(back) => assert_eq!(
            back.to_bytes(),
            bytes,
            "re-decoded BEEF encodes differently"
        ),
        Err(e) => panic!("a BEEF we built does not decode: {e}"),
    }
}

/// A chain tracker that confirms every root, at a fixed tip height.
pub struct AcceptAll {
    /// What `current_height` answers.
    pub tip: u32,
}

impl ChainTracker for AcceptAll {
    fn is_valid_root_for_height(&self, _root: &Hash256, _height: u32) -> bool {
        true
    }
    fn current_height(&self) -> u32 {
        self.tip
    }
}

/// SPV over a decoded BEEF with an accept-all tracker and scripts on, under
/// two option sets (mainnet eras, txid-only allowed, tip `u32::MAX`; all
/// eras active, zero fee allowed, tip 0): must return, never panic. On
/// success the claims are exactly the BUMPs' `(height, root)` pairs and the
/// subject is the Atomic subject or the last transaction. The scripts-only
/// check of the subject must not panic either.
pub fn check_beef_spv(beef: &Beef) {
    let opts_a = VerifyOptions {
        allow_txid_only: true,
        ..VerifyOptions::default()
    };
    let opts_b = VerifyOptions {
        allow_zero_fee: true,
        eras: ScriptEras::ALWAYS_ACTIVE,
        ..VerifyOptions::default()
    };
    for (opts, tip) in [(opts_a, u32::MAX), (opts_b, 0)] {
        let result = verify(beef.clone(), &AcceptAll { tip }, &opts);
        if let Ok(verified) = &result {
            let expected_subject = beef
                .subject()
                .or_else(|| beef.txs().last().map(|t| t.txid()));
            assert_eq!(Some(verified.subject()), expected_subject);
            for claim in verified.roots() {
                assert!(
                    beef.bumps()
                        .iter()
                        .any(|b| b.block_height() == claim.height && b.root() == claim.root),
                    "claim {claim:?} matches no BUMP"
                );
            }
            for entry in beef.txs() {
                if let Some(i) = entry.bump_index() {
                    let b = &beef.bumps()[i];
                    assert!(
                        verified.roots().contains(&RootClaim {
                            height: b.block_height(),
                            root: b.root()
                        }),
                        "a proven tx's root was not claimed"
                    );
                }
            }
        }
        // The two-step form agrees with `verify`.
        let stepwise = beef.clone().spv_request(&opts).and_then(|req| {
            let answers = vec![true; req.claims().len()];
            req.finish(&answers, tip)
        });
        assert_eq!(
            stepwise.map(|v| v.subject()),
            result.map(|v| v.subject()),
            "spv_request+finish disagrees with verify"
        );
        if let Some(last) = beef
            .subject()
            .or_else(|| beef.txs().last().map(|t| t.txid()))
        {
            let _ = verify_scripts(beef, &last, &opts, tip);
        }
    }
}
