//! Unit tests: one script per error kind, the Chronicle rules, big numbers,
//! real signatures over escrowd's own templates, and no panics on any bytes.

use proptest::prelude::*;

use super::*;
use crate::hash::{hash160, sha256};
use crate::keys::PrivateKey;
use crate::script::asm::parse_node_test_asm;
use crate::script::templates::{
    escrow_claim_unlock, escrow_lock, escrow_refund_unlock, p2pkh_lock, p2pkh_unlock, sign_input,
};
use crate::sighash::{
    signature_hash, SIGHASH_ALL, SIGHASH_ANYONECANPAY, SIGHASH_FORKID, SIGHASH_SINGLE,
};
use crate::tx::{Outpoint, TxIn, TxOut, SEQUENCE_FINAL};
use crate::Txid;

/// A compressed public key (the generator) and a 65-byte uncompressed one.
const G: &str = "0x21 0x0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
const G_UNCOMPRESSED: &str = "0x41 0x0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";

/// A spending transaction like the node's script tests build: one input, one output.
fn spend(unlocking: Script, version: u32) -> Transaction {
    Transaction {
        version,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(Txid([7; 32]), 0),
            unlocking_script: unlocking,
            sequence: SEQUENCE_FINAL,
        }],
        outputs: vec![TxOut {
            satoshis: 1000,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    }
}

fn run_v(sig: &str, pubkey: &str, flags: &str, version: u32) -> Result<(), ScriptError> {
    let unlocking = parse_node_test_asm(sig).unwrap();
    let locking = parse_node_test_asm(pubkey).unwrap();
    let tx = spend(unlocking.clone(), version);
    let ctx = TxContext {
        tx: &tx,
        input_index: 0,
        satoshis: 1000,
    };
    verify_script(
        &unlocking,
        &locking,
        VerifyFlags::from_node_names(flags).unwrap(),
        &ctx,
    )
}

fn run(sig: &str, pubkey: &str, flags: &str) -> Result<(), ScriptError> {
    run_v(sig, pubkey, flags, 1)
}

const POST_CHRONICLE: &str = "UTXO_AFTER_GENESIS,UTXO_AFTER_CHRONICLE";

#[test]
fn every_error_kind_has_a_script_that_raises_it() {
    let push = |n: usize| {
        format!(
            "0x4d 0x{:04x} 0x{}",
            (n as u16).swap_bytes(),
            "00".repeat(n)
        )
    };
    let many_nops = vec!["NOP"; 501].join(" ");
    let many_pushes = vec!["1"; 1001].join(" ");
    let big_script = format!("0x{}", "61".repeat(10_001));
    let high_s =
        "0x29 0x3026020101022100fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd036414001";
    let cases: Vec<(String, String, &str, ScriptError)> = vec![
        ("0".into(), "".into(), "", ScriptError::EvalFalse),
        ("1".into(), "RETURN".into(), "", ScriptError::OpReturn),
        ("1".into(), big_script, "", ScriptError::ScriptSize),
        (push(521), "1".into(), "", ScriptError::PushSize),
        ("1".into(), many_nops, "", ScriptError::OpCount),
        (many_pushes, "1".into(), "", ScriptError::StackSize),
        (
            "0".into(),
            "2 7 1 CHECKMULTISIG".into(),
            "",
            ScriptError::SigCount,
        ),
        (
            "0 0".into(),
            "21 CHECKMULTISIG".into(),
            "",
            ScriptError::PubkeyCount,
        ),
        (
            "0 0".into(),
            "-1 CHECKMULTISIG".into(),
            "",
            ScriptError::PubkeyCount,
        ),
        (
            "0x01 0x01 0x02 0x0101".into(),
            "AND".into(),
            "",
            ScriptError::InvalidOperandSize,
        ),
        (
            "0x05 0x0102030405".into(),
            "BIN2NUM".into(),
            "",
            ScriptError::InvalidNumberRange,
        ),
        (
            "0x02 0x0102 1".into(),
            "NUM2BIN".into(),
            "",
            ScriptError::ImpossibleEncoding,
        ),
        (
            "0x01 0x01 2".into(),
            "SPLIT".into(),
            "",
            ScriptError::InvalidSplitRange,
        ),
        (
            "0x05 0x0102030405".into(),
            "1ADD".into(),
            "",
            ScriptError::ScriptNumOverflow,
        ),
        (
            "0x02 0x0100".into(),
            "1ADD".into(),
            "MINIMALDATA",
            ScriptError::ScriptNumMinEncode,
        ),
        ("0".into(), "VERIFY 1".into(), "", ScriptError::Verify),
        (
            "1 2".into(),
            "EQUALVERIFY 1".into(),
            "",
            ScriptError::EqualVerify,
        ),
        (
            "0 0 1 7 1".into(),
            "CHECKMULTISIGVERIFY 1".into(),
            "",
            ScriptError::CheckMultiSigVerify,
        ),
        (
            "0 7".into(),
            "CHECKSIGVERIFY 1".into(),
            "",
            ScriptError::CheckSigVerify,
        ),
        (
            "1 2".into(),
            "NUMEQUALVERIFY 1".into(),
            "",
            ScriptError::NumEqualVerify,
        ),
        ("1".into(), "0xba".into(), "", ScriptError::BadOpcode),
        ("1".into(), "0x4c".into(), "", ScriptError::BadOpcode),
        (
            "1".into(),
            "VER".into(),
            "UTXO_AFTER_GENESIS",
            ScriptError::BadOpcode,
        ),
        (
            "1".into(),
            "0 IF 2MUL ENDIF".into(),
            "",
            ScriptError::DisabledOpcode,
        ),
        (
            "".into(),
            "DROP 1".into(),
            "",
            ScriptError::InvalidStackOperation,
        ),
        (
            "1".into(),
            "FROMALTSTACK".into(),
            "",
            ScriptError::InvalidAltstackOperation,
        ),
        (
            "1".into(),
            "IF 1".into(),
            "",
            ScriptError::UnbalancedConditional,
        ),
        (
            "1".into(),
            "IF ELSE ELSE ENDIF".into(),
            "UTXO_AFTER_GENESIS",
            ScriptError::UnbalancedConditional,
        ),
        ("1 0".into(), "DIV".into(), "", ScriptError::DivByZero),
        ("1 0".into(), "MOD".into(), "", ScriptError::ModByZero),
        (
            "-1".into(),
            "CHECKLOCKTIMEVERIFY".into(),
            "CHECKLOCKTIMEVERIFY",
            ScriptError::NegativeLocktime,
        ),
        (
            "1".into(),
            "CHECKLOCKTIMEVERIFY".into(),
            "CHECKLOCKTIMEVERIFY",
            ScriptError::UnsatisfiedLocktime,
        ),
        (
            "1".into(),
            "CHECKSEQUENCEVERIFY".into(),
            "CHECKSEQUENCEVERIFY",
            ScriptError::UnsatisfiedLocktime,
        ),
        (
            "0x09 0x300602010102010100".into(),
            format!("{G} CHECKSIG"),
            "STRICTENC",
            ScriptError::SigHashType,
        ),
        (
            "0x02 0x3001".into(),
            format!("{G} CHECKSIG"),
            "DERSIG",
            ScriptError::SigDer,
        ),
        (
            "0x01 0x01".into(),
            "".into(),
            "MINIMALDATA",
            ScriptError::MinimalData,
        ),
        (
            "1 DUP".into(),
            "".into(),
            "SIGPUSHONLY,GENESIS",
            ScriptError::SigPushOnly,
        ),
        (
            "NOP 1".into(),
            format!("HASH160 0x14 0x{} EQUAL", hex::encode(hash160(&[1]))),
            "P2SH",
            ScriptError::SigPushOnly,
        ),
        (
            high_s.into(),
            format!("{G} CHECKSIG NOT"),
            "LOW_S",
            ScriptError::SigHighS,
        ),
        (
            "1 0 0".into(),
            "CHECKMULTISIG NOT".into(),
            "NULLDUMMY",
            ScriptError::SigNullDummy,
        ),
        (
            "0 0x01 0x05".into(),
            "CHECKSIG".into(),
            "STRICTENC",
            ScriptError::PubkeyType,
        ),
        (
            "1 1".into(),
            "1".into(),
            "P2SH,CLEANSTACK",
            ScriptError::CleanStack,
        ),
        (
            "0x01 0x02".into(),
            "IF 1 ENDIF".into(),
            "MINIMALIF",
            ScriptError::MinimalIf,
        ),
        (
            "0x09 0x300602010102010101".into(),
            format!("{G} CHECKSIG NOT"),
            "NULLFAIL",
            ScriptError::SigNullFail,
        ),
        (
            "1".into(),
            "NOP1".into(),
            "DISCOURAGE_UPGRADABLE_NOPS",
            ScriptError::DiscourageUpgradableNops,
        ),
        (
            "1".into(),
            "SUBSTR".into(),
            "DISCOURAGE_UPGRADABLE_NOPS,UTXO_AFTER_GENESIS",
            ScriptError::DiscourageUpgradableNops,
        ),
        (
            "0".into(),
            format!("{G_UNCOMPRESSED} CHECKSIG NOT"),
            "COMPRESSED_PUBKEYTYPE",
            ScriptError::NonCompressedPubkey,
        ),
        (
            "0x09 0x300602010102010141".into(),
            format!("{G} CHECKSIG"),
            "STRICTENC",
            ScriptError::IllegalForkId,
        ),
        (
            "0x09 0x300602010102010101".into(),
            format!("{G} CHECKSIG"),
            "SIGHASH_FORKID",
            ScriptError::MustUseForkId,
        ),
        (
            "0x09 0x300602010102010121".into(),
            format!("{G} CHECKSIG"),
            "STRICTENC",
            ScriptError::IllegalChronicle,
        ),
        (
            "1 0x05 0x0000008000".into(),
            "RSHIFTNUM".into(),
            POST_CHRONICLE,
            ScriptError::BigInt,
        ),
        (
            "1".into(),
            "1".into(),
            "UTXO_AFTER_CHRONICLE",
            ScriptError::InvalidFlags,
        ),
        (
            "1".into(),
            "1".into(),
            "CLEANSTACK",
            ScriptError::InvalidFlags,
        ),
        // 50 MB fit in stack memory, but hashing them does not fit the work budget.
        (
            "0 0x04 0x80f0fa02".into(),
            "NUM2BIN SHA256".into(),
            "UTXO_AFTER_GENESIS",
            ScriptError::WorkBudgetExceeded,
        ),
    ];
    for (sig, pubkey, flags, expected) in &cases {
        assert_eq!(
            run(sig, pubkey, flags),
            Err(*expected),
            "{sig} | {pubkey} | {flags}"
        );
    }
    let tx = spend(Script::default(), 1);
    let ctx = TxContext {
        tx: &tx,
        input_index: 1,
        satoshis: 0,
    };
    assert_eq!(
        verify_script(
            &Script::default(),
            &Script::default(),
            VerifyFlags::NONE,
            &ctx
        ),
        Err(ScriptError::InputIndexOutOfRange)
    );
    assert_eq!(
        verify_input(&tx, 9, &Script::default(), 0, VerifyFlags::NONE),
        Err(ScriptError::InputIndexOutOfRange)
    );
}

#[test]
fn node_names_are_distinct() {
    let all = [
        ScriptError::EvalFalse,
        ScriptError::OpReturn,
        ScriptError::ScriptSize,
        ScriptError::PushSize,
        ScriptError::OpCount,
        ScriptError::StackSize,
        ScriptError::SigCount,
        ScriptError::PubkeyCount,
        ScriptError::InvalidOperandSize,
        ScriptError::InvalidNumberRange,
        ScriptError::ImpossibleEncoding,
        ScriptError::InvalidSplitRange,
        ScriptError::ScriptNumOverflow,
        ScriptError::ScriptNumMinEncode,
        ScriptError::Verify,
        ScriptError::EqualVerify,
        ScriptError::CheckMultiSigVerify,
        ScriptError::CheckSigVerify,
        ScriptError::NumEqualVerify,
        ScriptError::BadOpcode,
        ScriptError::DisabledOpcode,
        ScriptError::InvalidStackOperation,
        ScriptError::InvalidAltstackOperation,
        ScriptError::UnbalancedConditional,
        ScriptError::DivByZero,
        ScriptError::ModByZero,
        ScriptError::NegativeLocktime,
        ScriptError::UnsatisfiedLocktime,
        ScriptError::SigHashType,
        ScriptError::SigDer,
        ScriptError::MinimalData,
        ScriptError::SigPushOnly,
        ScriptError::SigHighS,
        ScriptError::SigNullDummy,
        ScriptError::PubkeyType,
        ScriptError::CleanStack,
        ScriptError::MinimalIf,
        ScriptError::SigNullFail,
        ScriptError::DiscourageUpgradableNops,
        ScriptError::NonCompressedPubkey,
        ScriptError::IllegalForkId,
        ScriptError::MustUseForkId,
        ScriptError::IllegalChronicle,
        ScriptError::BigInt,
        ScriptError::InvalidFlags,
        ScriptError::InputIndexOutOfRange,
        ScriptError::WorkBudgetExceeded,
    ];
    let names: std::collections::HashSet<_> = all.iter().map(|e| e.node_name()).collect();
    assert_eq!(names.len(), all.len());
    assert_eq!(ScriptError::SigNullFail.node_name(), "NULLFAIL");
    assert_eq!(ScriptError::MustUseForkId.node_name(), "MISSING_FORKID");
    assert_eq!(ScriptError::WorkBudgetExceeded.node_name(), "WORK_BUDGET");
    assert_eq!(
        ScriptError::SigDer.to_string(),
        "non-canonical DER signature"
    );
}

#[test]
fn flags_parse_from_node_names() {
    let f = VerifyFlags::from_node_names("P2SH,STRICTENC,UTXO_AFTER_GENESIS").unwrap();
    assert_eq!(
        f,
        VerifyFlags::P2SH | VerifyFlags::STRICTENC | VerifyFlags::UTXO_AFTER_GENESIS
    );
    assert_eq!(f.bits(), 0b1000_0000_0000_0000_0011);
    assert_eq!(
        format!("{f:?}"),
        "VerifyFlags(P2SH,STRICTENC,UTXO_AFTER_GENESIS)"
    );
    assert_eq!(VerifyFlags::from_node_names("").unwrap(), VerifyFlags::NONE);
    assert_eq!(
        VerifyFlags::from_node_names("NONE").unwrap(),
        VerifyFlags::NONE
    );
    let err = VerifyFlags::from_node_names("P2SH,BOGUS").unwrap_err();
    assert_eq!((err.kind, err.offset), (ParseErrorKind::BadText, 5));
    let std = VerifyFlags::standard_post_chronicle();
    assert_eq!(
        format!("{std:?}"),
        "VerifyFlags(P2SH,STRICTENC,DERSIG,LOW_S,NULLDUMMY,SIGPUSHONLY,MINIMALDATA,DISCOURAGE_UPGRADABLE_NOPS,CLEANSTACK,\
         CHECKLOCKTIMEVERIFY,CHECKSEQUENCEVERIFY,NULLFAIL,SIGHASH_FORKID,GENESIS,UTXO_AFTER_GENESIS,CHRONICLE,UTXO_AFTER_CHRONICLE)"
    );
    assert!(!std
        .without(VerifyFlags::UTXO_AFTER_CHRONICLE)
        .contains(VerifyFlags::UTXO_AFTER_CHRONICLE));
    assert!(
        !std.contains(VerifyFlags::MINIMALIF)
            && std.intersects(VerifyFlags::MINIMALIF | VerifyFlags::LOW_S)
    );
}

#[test]
fn op_return_ends_post_genesis_scripts_successfully_only_at_top_level() {
    assert_eq!(run("1", "RETURN 0xba", "UTXO_AFTER_GENESIS"), Ok(()));
    assert_eq!(
        run("0", "RETURN", "UTXO_AFTER_GENESIS"),
        Err(ScriptError::EvalFalse)
    );
    assert_eq!(run("1", "1 IF RETURN ENDIF", "UTXO_AFTER_GENESIS"), Ok(()));
    assert_eq!(
        run("1", "1 IF RETURN ENDIF 0 VERIFY", "UTXO_AFTER_GENESIS"),
        Ok(())
    );
    assert_eq!(
        run("1", "1 IF RETURN ENDIF IF", "UTXO_AFTER_GENESIS"),
        Err(ScriptError::UnbalancedConditional)
    );
    assert_eq!(run("1", "RETURN", ""), Err(ScriptError::OpReturn));
    // CLTV/CSV are NOPs for post-Genesis UTXOs.
    assert_eq!(
        run(
            "1",
            "CHECKLOCKTIMEVERIFY",
            "CHECKLOCKTIMEVERIFY,UTXO_AFTER_GENESIS"
        ),
        Ok(())
    );
    assert_eq!(
        run(
            "1",
            "CHECKSEQUENCEVERIFY",
            "CHECKSEQUENCEVERIFY,UTXO_AFTER_GENESIS"
        ),
        Ok(())
    );
}

#[test]
fn chronicle_opcodes_work_for_post_chronicle_utxos() {
    let ok = |sig: &str, pubkey: &str| {
        assert_eq!(
            run_v(sig, pubkey, POST_CHRONICLE, 3),
            Ok(()),
            "{sig} | {pubkey}"
        )
    };
    ok("VER", "0x04 0x03000000 EQUAL");
    ok("0x04 0x03000000 VERIF 1 ELSE 0 ENDIF", "");
    ok("0x04 0x02000000 VERNOTIF 1 ELSE 0 ENDIF", "");
    ok("0x05 0x0102030405 1 3", "SUBSTR 0x03 0x020304 EQUAL");
    ok("0x05 0x0102030405 2", "LEFT 0x02 0x0102 EQUAL");
    ok("0x05 0x0102030405 2", "RIGHT 0x02 0x0405 EQUAL");
    ok("5 3", "LSHIFTNUM 40 EQUAL");
    ok("-5 1", "RSHIFTNUM -2 EQUAL");
    ok("-7", "2MUL -14 EQUAL");
    ok("-7", "2DIV -3 EQUAL");
    // Before Chronicle, the same bytes are NOPs or errors.
    assert_eq!(run("1", "SUBSTR", "UTXO_AFTER_GENESIS"), Ok(()));
    assert_eq!(run("1", "0 IF VERIF ENDIF", "UTXO_AFTER_GENESIS"), Ok(()));
    assert_eq!(
        run("1", "0 IF VERIF ENDIF", ""),
        Err(ScriptError::BadOpcode)
    );
}

#[test]
fn post_genesis_numbers_are_arbitrary_precision() {
    // (2^100 + 1) * (2^100 - 1) = 2^200 - 1
    let p100 = format!("0x0d 0x{}10", "00".repeat(12));
    let script = format!(
        "{p100} 1ADD {p100} 1SUB MUL 1ADD 0x1a 0x{}0001 EQUAL",
        "00".repeat(24)
    );
    assert_eq!(
        run("1", &format!("{script} VERIFY"), "UTXO_AFTER_GENESIS"),
        Ok(())
    );
    // Beyond four bytes is an error before Genesis.
    assert_eq!(
        run("1", &format!("{script} VERIFY"), ""),
        Err(ScriptError::ScriptNumOverflow)
    );
    // Division and modulo truncate toward zero.
    assert_eq!(
        run(
            "1",
            "-7 2 DIV -3 NUMEQUALVERIFY -7 2 MOD -1 NUMEQUAL",
            "UTXO_AFTER_GENESIS"
        ),
        Ok(())
    );
    // Results longer than the era's limit overflow.
    let limits = ScriptLimits {
        max_num_len_after_genesis: 8,
        ..ScriptLimits::default()
    };
    let tx = spend(Script::default(), 1);
    let ctx = TxContext {
        tx: &tx,
        input_index: 0,
        satoshis: 0,
    };
    let flags = VerifyFlags::UTXO_AFTER_GENESIS;
    let add = parse_node_test_asm("0x08 0xffffffffffffff7f 1ADD").unwrap();
    assert_eq!(
        verify_script_with_limits(&Script::default(), &add, flags, &ctx, &limits),
        Err(ScriptError::ScriptNumOverflow)
    );
    let mul = parse_node_test_asm("0x08 0xffffffffffffff7f DUP MUL").unwrap();
    assert_eq!(
        verify_script_with_limits(&Script::default(), &mul, flags, &ctx, &limits),
        Err(ScriptError::ScriptNumOverflow)
    );
    let fits =
        parse_node_test_asm("0x08 0xfeffffffffffff7f 1ADD 0x08 0xffffffffffffff7f EQUAL").unwrap();
    assert_eq!(
        verify_script_with_limits(&Script::default(), &fits, flags, &ctx, &limits),
        Ok(())
    );
}

#[test]
fn stack_memory_is_bounded_after_genesis() {
    let tx = spend(Script::default(), 1);
    let ctx = TxContext {
        tx: &tx,
        input_index: 0,
        satoshis: 0,
    };
    let limits = ScriptLimits {
        max_stack_memory: 10_000,
        ..ScriptLimits::default()
    };
    // Doubling a 64-byte element: 64, 128, ..., 8192 bytes fits; 16384 does not.
    let grow = |n: usize| {
        parse_node_test_asm(&format!(
            "0x40 0x{} {}",
            "11".repeat(64),
            "DUP CAT ".repeat(n)
        ))
        .unwrap()
    };
    let flags = VerifyFlags::UTXO_AFTER_GENESIS;
    assert_eq!(
        verify_script_with_limits(&Script::default(), &grow(7), flags, &ctx, &limits),
        Ok(())
    );
    assert_eq!(
        verify_script_with_limits(&Script::default(), &grow(8), flags, &ctx, &limits),
        Err(ScriptError::StackSize)
    );
    // A 2 GB NUM2BIN is refused before it is allocated.
    let huge = parse_node_test_asm("1 0x04 0xffffff7f NUM2BIN").unwrap();
    assert_eq!(
        verify_script(&Script::default(), &huge, flags, &ctx),
        Err(ScriptError::StackSize)
    );
}

#[test]
fn chronicle_waives_malleability_rules_for_version_2_transactions() {
    let strict = "MINIMALDATA,MINIMALIF,NULLDUMMY,NULLFAIL,P2SH,CLEANSTACK,LOW_S,SIGPUSHONLY,GENESIS,CHRONICLE";
    let high_s =
        "0x29 0x3026020101022100fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd036414001";
    let cases = [
        ("0x01 0x01", "", ScriptError::MinimalData),
        ("0x02 0x0101", "IF 1 ENDIF", ScriptError::MinimalIf),
        ("1 0 0", "CHECKMULTISIG", ScriptError::SigNullDummy),
        ("1 1", "", ScriptError::CleanStack),
        ("1 DUP", "DROP", ScriptError::SigPushOnly),
        (
            high_s,
            &format!("{G} CHECKSIG NOT") as &str,
            ScriptError::SigHighS,
        ),
        (
            "0x09 0x300602010102010101",
            &format!("{G} CHECKSIG NOT"),
            ScriptError::SigNullFail,
        ),
    ];
    for (sig, pubkey, err) in cases {
        assert_eq!(
            run_v(sig, pubkey, strict, 1),
            Err(err),
            "v1 {sig} | {pubkey}"
        );
        assert_eq!(run_v(sig, pubkey, strict, 2), Ok(()), "v2 {sig} | {pubkey}");
        // Without CHRONICLE the rules hold for every version.
        let pre = strict.replace(",CHRONICLE", "");
        assert_eq!(
            run_v(sig, pubkey, &pre, 2),
            Err(err),
            "pre-Chronicle v2 {sig} | {pubkey}"
        );
    }
}

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

#[test]
fn p2pkh_signed_by_our_templates_verifies_under_standard_flags() {
    let k = key(1);
    let lock = p2pkh_lock(&k.public_key().hash160());
    let mut tx = spend(Script::default(), 1);
    let sig = sign_input(&tx, 0, &lock, 5000, SIGHASH_ALL | SIGHASH_FORKID, &k).unwrap();
    tx.inputs[0].unlocking_script = p2pkh_unlock(&sig, &k.public_key()).unwrap();
    let flags = VerifyFlags::standard_post_chronicle();
    assert_eq!(verify_input(&tx, 0, &lock, 5000, flags), Ok(()));
    // The amount is signed.
    assert_eq!(
        verify_input(&tx, 0, &lock, 5001, flags),
        Err(ScriptError::SigNullFail)
    );
    // So are the outputs.
    let mut changed = tx.clone();
    changed.outputs[0].satoshis += 1;
    assert_eq!(
        verify_input(&changed, 0, &lock, 5000, flags),
        Err(ScriptError::SigNullFail)
    );
    // Another key's hash fails at EQUALVERIFY.
    let other = p2pkh_lock(&key(2).public_key().hash160());
    assert_eq!(
        verify_input(&tx, 0, &other, 5000, flags),
        Err(ScriptError::EqualVerify)
    );
}

#[test]
fn escrow_claim_and_refund_verify_under_standard_flags() {
    let (funder, beneficiary) = (key(3), key(4));
    let preimage = [9u8; 32];
    let lock = escrow_lock(
        &sha256(&preimage),
        &beneficiary.public_key(),
        &funder.public_key(),
    );
    let flags = VerifyFlags::standard_post_chronicle();

    let mut claim = spend(Script::default(), 1);
    let sig = sign_input(
        &claim,
        0,
        &lock,
        10_000,
        SIGHASH_ALL | SIGHASH_FORKID,
        &beneficiary,
    )
    .unwrap();
    claim.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &preimage).unwrap();
    assert_eq!(verify_input(&claim, 0, &lock, 10_000, flags), Ok(()));
    let mut wrong = claim.clone();
    wrong.inputs[0].unlocking_script = escrow_claim_unlock(&sig, &[8u8; 32]).unwrap();
    assert_eq!(
        verify_input(&wrong, 0, &lock, 10_000, flags),
        Err(ScriptError::EqualVerify)
    );
    let funder_sig = sign_input(
        &claim,
        0,
        &lock,
        10_000,
        SIGHASH_ALL | SIGHASH_FORKID,
        &funder,
    )
    .unwrap();
    wrong.inputs[0].unlocking_script = escrow_claim_unlock(&funder_sig, &preimage).unwrap();
    assert_eq!(
        verify_input(&wrong, 0, &lock, 10_000, flags),
        Err(ScriptError::SigNullFail)
    );

    // Refund: the beneficiary pre-signs SINGLE|ANYONECANPAY|FORKID; the funder
    // later adds a fee input and change without invalidating it.
    let mut refund = spend(Script::default(), 1);
    refund.lock_time = 900_000;
    refund.inputs[0].sequence = 0xffff_fffe;
    let t = SIGHASH_SINGLE | SIGHASH_ANYONECANPAY | SIGHASH_FORKID;
    let b_sig = sign_input(&refund, 0, &lock, 10_000, t, &beneficiary).unwrap();
    refund.inputs.push(TxIn {
        prev_out: Outpoint::new(Txid([8; 32]), 1),
        unlocking_script: Script::default(),
        sequence: 0,
    });
    refund.outputs.push(TxOut {
        satoshis: 77,
        locking_script: Script::from_bytes(vec![0x51]),
    });
    let f_sig = sign_input(
        &refund,
        0,
        &lock,
        10_000,
        SIGHASH_ALL | SIGHASH_FORKID,
        &funder,
    )
    .unwrap();
    refund.inputs[0].unlocking_script = escrow_refund_unlock(&f_sig, &b_sig).unwrap();
    assert_eq!(verify_input(&refund, 0, &lock, 10_000, flags), Ok(()));
    // Signatures in the wrong order fail (CHECKMULTISIG matches keys in order).
    refund.inputs[0].unlocking_script = escrow_refund_unlock(&b_sig, &f_sig).unwrap();
    assert_eq!(
        verify_input(&refund, 0, &lock, 10_000, flags),
        Err(ScriptError::SigNullFail)
    );
}

#[test]
fn chronicle_checksig_in_the_unlocking_script_signs_the_locking_script_too() {
    let k = key(5);
    let pubkey = k.public_key().to_compressed();
    let locking = parse_node_test_asm("VERIFY 1").unwrap();
    let t = SIGHASH_ALL | SIGHASH_FORKID;
    let mut tx = spend(Script::default(), 1);
    // Script code: the unlocking script after OP_CODESEPARATOR, then the locking script.
    let mut code = vec![OP_CHECKSIG];
    code.extend_from_slice(locking.as_bytes());
    let digest = signature_hash(&tx, 0, &code, 1000, t, true);
    let mut sig = k.sign_digest(&digest);
    sig.push(t as u8);
    let mut unlocking = Vec::new();
    crate::script::push_data(&mut unlocking, &sig);
    crate::script::push_data(&mut unlocking, &pubkey);
    unlocking.extend_from_slice(&[crate::script::opcodes::OP_CODESEPARATOR, OP_CHECKSIG]);
    tx.inputs[0].unlocking_script = Script::from_bytes(unlocking);
    let base = VerifyFlags::SIGHASH_FORKID | VerifyFlags::UTXO_AFTER_GENESIS;
    assert_eq!(
        verify_input(&tx, 0, &locking, 1000, base | VerifyFlags::CHRONICLE),
        Ok(())
    );
    assert_eq!(
        verify_input(&tx, 0, &locking, 1000, base),
        Err(ScriptError::Verify)
    );
}

use crate::script::opcodes::OP_CHECKSIG;

fn any_flags() -> impl Strategy<Value = VerifyFlags> {
    prop_oneof![
        Just(VerifyFlags::NONE),
        Just(
            VerifyFlags::P2SH
                | VerifyFlags::STRICTENC
                | VerifyFlags::MINIMALDATA
                | VerifyFlags::CHECKLOCKTIMEVERIFY
        ),
        Just(VerifyFlags::UTXO_AFTER_GENESIS | VerifyFlags::SIGHASH_FORKID),
        Just(VerifyFlags::standard_post_chronicle()),
        any::<u32>().prop_map(VerifyFlags::from_bits),
    ]
}

proptest! {
    #[test]
    fn arbitrary_scripts_never_panic(
        unlocking in proptest::collection::vec(any::<u8>(), 0..64),
        locking in proptest::collection::vec(any::<u8>(), 0..256),
        flags in any_flags(),
        version in any::<u32>(),
        index in 0usize..3,
    ) {
        let tx = spend(Script::from_bytes(unlocking.clone()), version);
        let ctx = TxContext { tx: &tx, input_index: index, satoshis: 1 };
        let result = verify_script(&Script::from_bytes(unlocking), &Script::from_bytes(locking), flags, &ctx);
        if index > 0 {
            prop_assert_eq!(result, Err(ScriptError::InputIndexOutOfRange));
        }
    }

    #[test]
    fn opcode_soup_never_panics(
        ops in proptest::collection::vec(prop_oneof![0x4fu8..=0xba, Just(0x01), Just(0x02)], 0..80),
        flags in any_flags(),
    ) {
        // Mostly non-push opcodes with small pushes: reaches deep into the opcode table.
        let mut locking = vec![0x52, 0x53, 0x54];
        locking.extend_from_slice(&ops);
        let tx = spend(Script::default(), 2);
        let ctx = TxContext { tx: &tx, input_index: 0, satoshis: 1 };
        let _ = verify_script(&Script::default(), &Script::from_bytes(locking), flags, &ctx);
    }
}
