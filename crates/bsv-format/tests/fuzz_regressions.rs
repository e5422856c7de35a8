//! Inputs found by the fuzz targets (`fuzz/`, see `docs/fuzzing.md`), kept as
//! ordinary tests so they run in every `cargo test`. Each test names the
//! target, the input (hex) and what went wrong; a test still marked
//! `#[ignore]` reproduces a finding that its owner has not fixed yet. A fixed
//! finding's test pins the fixed behaviour.
//!
//! The script cases use the fuzz target's layout and harness:
//! `flags u32le | tx_version u32le | amount u64le | unlocking_len u16le |
//! unlocking | locking`, run in the node's script-test transaction pair.

use bsv_format::beef::{Beef, BeefError};
use bsv_format::bump::{BumpError, MerklePath, NodeValue};
use bsv_format::codec::{ParseError, ParseErrorKind};
use bsv_format::script::interpreter::{verify_script, ScriptError, TxContext, VerifyFlags};
use bsv_format::script::opcodes::*;
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut, Txid};

/// The node's script-test transaction pair (`script_tests.cpp`): a crediting
/// transaction paying `amount` to `locking`, and the transaction spending it.
fn spending_tx(version: u32, amount: u64, unlocking: &Script, locking: &Script) -> Transaction {
    let credit = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([0; 32]), u32::MAX),
            unlocking_script: Script::from_bytes(vec![0x00, 0x00]),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: amount,
            locking_script: locking.clone(),
        }],
        lock_time: 0,
    };
    Transaction {
        version,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(credit.txid(), 0),
            unlocking_script: unlocking.clone(),
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: amount,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    }
}

/// Runs one `script` fuzz input; returns the verdict and the time it took.
fn run_script_case(hex_input: &str) -> Result<(), ScriptError> {
    let data = hex::decode(hex_input).unwrap();
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    let flags = VerifyFlags::from_bits(word(0));
    let version = word(4);
    let amount = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let len = usize::from(u16::from_le_bytes([data[16], data[17]])).min(data.len() - 18);
    let unlocking = Script::from_bytes(data[18..18 + len].to_vec());
    let locking = Script::from_bytes(data[18 + len..].to_vec());
    let tx = spending_tx(version, amount, &unlocking, &locking);
    let ctx = TxContext {
        tx: &tx,
        input_index: 0,
        satoshis: amount,
    };
    verify_script(&unlocking, &locking, flags, &ctx)
}

/// `script` target, 2026-11-29, 855 bytes, after ~500,000 executions: a
/// post-Chronicle UTXO (flags `UTXO_AFTER_GENESIS | UTXO_AFTER_CHRONICLE`),
/// spending tx version `0x5c000100` (> 1, so the unlocking script need not be
/// push-only), whose unlocking script pushes a 61-byte number and then grows
/// it with `OP_3DUP`/`OP_TUCK`/`OP_MUL` up to the 32,000,000-byte
/// post-Chronicle number limit. One evaluation took 18 s of CPU (libFuzzer
/// timeout). Not a panic: a denial of service on any verifier that runs
/// scripts from untrusted BEEFs with the default `ScriptLimits`.
///
/// Fixed by the interpreter's deterministic work budget (`ScriptLimits::max_work`):
/// the evaluation is refused before the big multiplications run. Timing is a
/// benchmark matter (`cargo run --release -p bsv-format --example script_work`);
/// here the verdict is asserted.
#[test]
fn fuzz_script_timeout_big_number_multiplication() {
    assert_eq!(
        run_script_case(TIMEOUT_5A5BBA56),
        Err(ScriptError::WorkBudgetExceeded)
    );
}

/// The same finding, built by hand and shorter: a 75-byte number squared
/// 17 times (`OP_DUP OP_MUL`) reaches ~9.8 MB; each further
/// `OP_DUP OP_DUP OP_MUL OP_DROP` multiplies two such numbers (a 19.7 MB
/// product, within the 32 MB limit) and the script succeeds. With 8 such
/// groups (142 bytes) one evaluation took 94 s here (2 cores, contended);
/// the test uses 2 groups.
#[test]
fn big_number_multiplication_is_refused_by_the_work_budget() {
    let mut locking = vec![75u8];
    locking.extend_from_slice(&[0x7f; 75]);
    for _ in 0..17 {
        locking.extend_from_slice(&[OP_DUP, OP_MUL]);
    }
    for _ in 0..2 {
        locking.extend_from_slice(&[OP_DUP, OP_DUP, OP_MUL, OP_DROP]);
    }
    let flags = VerifyFlags::UTXO_AFTER_GENESIS | VerifyFlags::UTXO_AFTER_CHRONICLE;
    let case = format!(
        "{}{}{}{}{}",
        hex::encode(flags.bits().to_le_bytes()),
        hex::encode(2u32.to_le_bytes()),
        hex::encode(0u64.to_le_bytes()),
        "0000",
        hex::encode(&locking)
    );
    assert_eq!(run_script_case(&case), Err(ScriptError::WorkBudgetExceeded));
}

const TIMEOUT_5A5BBA56: &str = concat!(
    "000028000001005c5c5c5c5c5c5c5c5c5c5c5c5c24000000000000005c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c",
    "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c624c0401000000870300",
    "000001000000003d00000000000000aa00517d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d",
    "7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d00000000000000000000000000000000",
    "00005454545454545454545454545454545419266f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f3f00000000000000",
    "6f6f6f6f6f6f6f6f6f6fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff6f6f6f6f6f6f6f6fef6f6f6f",
    "6f6f6f6f6f6f6f95959595957d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d",
    "7d7d7d95959595959595959595959595959595959595959595959595950000000000000000000054545454545454545454545454",
    "54545419266f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f3f000000000000006f6f6f6f6f6f6f6f6f6fffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffff6f6f6f6f6f6f6f6fef6f6f6f6f6f6f6f6f6f6f95959595957d7d7d",
    "7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d959595959595959595959595",
    "959595959595959595959595959595959595959595959595959595959595959595959595959595959595959595956f6f6f6f6f6f",
    "6f6f6f6f6f6f6f6f6f6f6f6f7d7d7d95959595959595959595959595959595959595959595959595959595959595956f6f6f6f6f",
    "6f6f6f6f6f6f6f6f6f6f6f6f6f7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d",
    "7d7d7d95959595959595959595959595959595959595959595959595959595959595959595959595959595959595959595959595",
    "9595959595959595956f6f6f7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f",
    "6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f",
);

/// The hex above is exactly the 855-byte artifact.
#[test]
fn timeout_reproducer_is_the_recorded_artifact() {
    let data = hex::decode(TIMEOUT_5A5BBA56).unwrap();
    assert_eq!(data.len(), 855);
    assert_eq!(
        bsv_format::hash::sha1(&data),
        hex_array("5a5bba569604a0bf19d97d790c0fabcf1b9ea198")
    );
}

fn hex_array(h: &str) -> [u8; 20] {
    hex::decode(h).unwrap().try_into().unwrap()
}

/// A 73-byte BUMP found inside the `beef_v1` crash below: a single-level
/// compound path (tree height 1) at block height 1 with three level-0 nodes —
/// client txid at offset 0, a duplicate marker (flag 1) at offset 1, client
/// txid at offset 2. It used to decode (root `ec614b16…05c2`); a marker at
/// offset 1 says level 0 has one node, so the leaf at offset 2 (byte 39)
/// does not fit a real tree, and both modes now refuse it there.
const COMPOUND_BUMP_WITH_INNER_DUPLICATE: &str = concat!(
    "010103",
    "0002",
    "00000000000000c4e02f3200a64cc73a18ae74a7010102000000c73a18ae74a7",
    "0101",
    "0202",
    "000000c71a18ae74a701c5c92eff00c5cb432ed1e6918925c651c4e02ffd0000",
);

/// The error for a BUMP node that does not fit the tree its duplicate
/// markers describe, at byte `offset` of the decoder's input.
fn outside_tree(offset: usize) -> ParseError {
    ParseError::new(
        offset,
        ParseErrorKind::InvalidValue,
        "BUMP node outside the tree its duplicate markers describe",
    )
}

/// The reproducer with its duplicate marker (`01 01` at byte `marker_at`)
/// replaced by a plain sibling hash at offset 1 and a marker at offset 3,
/// the right edge of a 3-leaf level, and the level's node count (byte
/// `count_at`) raised by one: the shape a real block of 3 gives.
fn with_edge_marker(hex_input: &str, count_at: usize, marker_at: usize) -> Vec<u8> {
    let bytes = hex::decode(hex_input).unwrap();
    assert_eq!(&bytes[marker_at..marker_at + 2], &[1, 1], "marker position");
    let mut out = bytes[..marker_at].to_vec();
    out[count_at] += 1;
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&[0x11; 32]);
    out.extend_from_slice(&[3, 1]);
    out.extend_from_slice(&bytes[marker_at + 2..]);
    out
}

#[test]
fn compound_bump_with_inner_duplicate_is_rejected() {
    let bytes = hex::decode(COMPOUND_BUMP_WITH_INNER_DUPLICATE).unwrap();
    assert_eq!(
        MerklePath::from_bytes_strict(&bytes),
        Err(BumpError::Parse(outside_tree(39)))
    );
    assert_eq!(
        MerklePath::from_bytes_lenient(&bytes),
        Err(BumpError::Parse(outside_tree(39)))
    );
    // With the marker at the right edge the same leaves decode strictly.
    let repaired =
        MerklePath::from_bytes_strict(&with_edge_marker(COMPOUND_BUMP_WITH_INNER_DUPLICATE, 2, 37))
            .unwrap();
    assert_eq!(
        repaired.levels()[0]
            .iter()
            .map(|n| (n.offset, n.value.flag()))
            .collect::<Vec<_>>(),
        vec![(0, 2), (1, 0), (3, 1), (2, 2)]
    );
    assert!(matches!(
        repaired.levels()[0][2].value,
        NodeValue::Duplicate
    ));
}

/// `beef_v1` target, 2026-11-29, after ~12,000,000 executions (75-byte
/// input): `extract`, `trim` and `combine` on the path above all expanded it
/// to a two-level path whose level 0 carries two duplicate markers (offsets
/// 1 and 3) and whose level 1 is empty, which the decoder rejects ("second
/// duplicate marker in one BUMP level", offset 73).
///
/// The `bump` target found the same on its own (fork mode, ~13,000,000
/// executions, artifact `crash-960f7a1c…8ac9`, 77 bytes, [`BUMP_960F7A1C`]):
/// height 1,663,533, one level, client txids at offsets 2 and 0 and a
/// duplicate marker at offset 1; `extract` of its client txids did not
/// decode strictly.
///
/// Fixed (branch j) at the decoder: a duplicate marker must fit a real tree
/// (`bump` module docs), so both inputs are refused — the first at its leaf
/// 2, the second at its marker, which comes after leaf 2 on the wire — and
/// what the producers build from the repaired shapes decodes again.
#[test]
fn extract_trim_combine_of_compound_bump_decode_again() {
    // (input, count byte, marker byte, byte of the node refused)
    for (hex_path, count_at, marker_at, refused_at) in [
        (COMPOUND_BUMP_WITH_INNER_DUPLICATE, 2, 37, 39),
        (BUMP_960F7A1C, 6, 75, 75),
    ] {
        let bytes = hex::decode(hex_path).unwrap();
        for decoded in [
            MerklePath::from_bytes_strict(&bytes),
            MerklePath::from_bytes_lenient(&bytes),
        ] {
            assert_eq!(decoded, Err(BumpError::Parse(outside_tree(refused_at))));
        }
        extract_trim_combine_decode_again(&hex::encode(with_edge_marker(
            hex_path, count_at, marker_at,
        )));
    }
}

const BUMP_960F7A1C: &str = "fe2d621900010302020401010101000101090101018000000000000000000000000000000000000000000200000000a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0000101";

fn extract_trim_combine_decode_again(hex_path: &str) {
    let path = MerklePath::from_hex_strict(hex_path).unwrap();
    let clients: Vec<_> = path.client_txids().collect();
    assert_eq!(clients.len(), 2);
    let extracted = path.extract(&clients).unwrap();
    let mut trimmed = path.clone();
    trimmed.trim();
    let mut combined = path.clone();
    combined.combine(&path).unwrap();
    for (what, p) in [
        ("extract", extracted),
        ("trim", trimmed),
        ("combine", combined),
    ] {
        for back in [
            MerklePath::from_bytes_strict(&p.to_bytes()),
            MerklePath::from_bytes_lenient(&p.to_bytes()),
        ] {
            let back = back.unwrap_or_else(|e| panic!("{what}: {e}: {}", p.to_hex()));
            assert_eq!(back.root(), path.root(), "{what}");
            let mut ours: Vec<_> = back.client_txids().collect();
            let mut theirs = clients.clone();
            ours.sort_unstable_by_key(|t| t.0);
            theirs.sort_unstable_by_key(|t| t.0);
            assert_eq!(ours, theirs, "{what}");
        }
    }
}

/// Merges a BEEF with itself and checks the result decodes to the same bytes.
fn merge_with_itself_decodes_again(beef: &Beef) {
    let mut merged = beef.clone();
    merged.merge(beef.clone());
    let bytes = merged.to_bytes();
    assert_eq!(Beef::from_bytes(&bytes).map(|b| b.to_bytes()), Ok(bytes));
}

/// The `beef_v1` crash itself (`0100BEEF` + the 75-byte artifact
/// `crash-c8e7ed2e…0217`): one BUMP (the path above), no transactions.
/// Merging the BEEF with itself combined the BUMP with itself, and the
/// merged BEEF's bytes no longer decoded. Now the BEEF is refused at the
/// BUMP's leaf 2 (byte 5 + 39); with the marker at the right edge it merges.
#[test]
fn fuzz_beef_v1_merge_with_itself_decodes_again() {
    assert_eq!(
        Beef::from_hex(BEEF_V1_C8E7ED2E),
        Err(BeefError::Parse(outside_tree(44)))
    );
    let repaired = Beef::from_bytes(&with_edge_marker(BEEF_V1_C8E7ED2E, 7, 42)).unwrap();
    assert_eq!((repaired.bumps().len(), repaired.len()), (1, 0));
    merge_with_itself_decodes_again(&repaired);
}

const BEEF_V1_C8E7ED2E: &str = concat!(
    "0100beef",
    "01",
    "010103000200000000000000c4e02f3200a64cc73a18ae74a7010102000000c73a18ae74a7",
    "01010202000000c71a18ae74a701c5c92eff00c5cb432ed1e6918925c651c4e02ffd0000",
    "00",
);

/// `beef_atomic` target, 2026-11-29, fork mode, ~15,000,000 executions
/// (`01010101` + the 126-byte artifact `crash-a867c779…8234`): the same fault
/// through an Atomic V2 BEEF. Its BUMP (height 800,000, one level) lists a
/// client txid at offset 2, a client txid at offset 0 and a duplicate marker
/// at offset 1; merging the BEEF with itself gave bytes that did not decode.
/// Now refused at that marker (byte 116); repaired, it merges.
#[test]
fn fuzz_beef_atomic_merge_with_itself_decodes_again() {
    assert_eq!(
        Beef::from_hex(BEEF_ATOMIC_A867C779),
        Err(BeefError::Parse(outside_tree(116)))
    );
    let repaired = Beef::from_bytes(&with_edge_marker(BEEF_ATOMIC_A867C779, 47, 116)).unwrap();
    let level0: Vec<_> = repaired.bumps()[0].levels()[0]
        .iter()
        .map(|n| (n.offset, n.value.flag()))
        .collect();
    assert_eq!(level0, vec![(2, 2), (0, 2), (1, 0), (3, 1)]);
    merge_with_itself_decodes_again(&repaired);
}

const BEEF_ATOMIC_A867C779: &str = concat!(
    "01010101",
    "bb64c6962a043692000000a65774b918bbd06447a991f904dc8513c00f6727570200beef01fe00350c0001030202b677",
    "a38b2b010000000001000006759a0c3bfa720200beef01fe00350c0101020002b677a38b2b9f66a72de8be9f8f78940a",
    "48d2dac77050443f51aef19c0fffaf0101010100000101000000200000fe",
);
