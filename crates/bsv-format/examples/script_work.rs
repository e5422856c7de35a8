//! Calibration of the interpreter's work budget: how long the most expensive
//! scripts we can build take to exhaust `ScriptLimits::policy()`, and how much
//! of it legitimate scripts use.
//!
//! ```text
//! cargo run --release -p bsv-format --example script_work            # every pattern
//! cargo run --release -p bsv-format --example script_work -- sha256  # names containing "sha256"
//! ```
//!
//! Each hostile pattern is a version-2 transaction spending a post-Chronicle
//! output under the standard flags (so the Chronicle relaxations apply: no
//! NULLFAIL, no CLEANSTACK, any opcode in either script) whose locking script
//! would run far past the budget. The table gives the verdict, the work
//! charged, the CPU time of the verifying thread (Linux; wall time elsewhere)
//! and the time per unit, the figure the budget is calibrated on
//! (`docs/formats.md`, "Known limits"). On a shared machine run it a few
//! times and take the worst.

use std::time::Instant;

use bsv_format::hash::sha256;
use bsv_format::keys::PrivateKey;
use bsv_format::script::interpreter::{verify_input_metered, Metered, ScriptLimits, VerifyFlags};
use bsv_format::script::opcodes::*;
use bsv_format::script::push_data;
use bsv_format::script::templates::{
    escrow_claim_unlock, escrow_lock, escrow_refund_unlock, p2pkh_lock, p2pkh_unlock, sign_input,
};
use bsv_format::sighash::{
    SighashCache, SIGHASH_ALL, SIGHASH_ANYONECANPAY, SIGHASH_CHRONICLE, SIGHASH_FORKID,
    SIGHASH_SINGLE,
};
use bsv_format::tx::{Outpoint, Transaction, TxIn, TxOut};
use bsv_format::{Script, Txid};

/// A script under construction.
#[derive(Default, Clone)]
struct S(Vec<u8>);

impl S {
    fn op(mut self, op: u8) -> S {
        self.0.push(op);
        self
    }
    fn ops(mut self, ops: &[u8], times: usize) -> S {
        for _ in 0..times {
            self.0.extend_from_slice(ops);
        }
        self
    }
    fn push(mut self, data: &[u8]) -> S {
        push_data(&mut self.0, data);
        self
    }
    fn num(self, n: i64) -> S {
        let mut bytes = Vec::new();
        let mut m = n.unsigned_abs();
        while m != 0 {
            bytes.push((m & 0xff) as u8);
            m >>= 8;
        }
        if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            bytes.push(if n < 0 { 0x80 } else { 0 });
        } else if n < 0 {
            if let Some(b) = bytes.last_mut() {
                *b |= 0x80;
            }
        }
        self.push(&bytes)
    }
    /// Pushes `size` zero bytes built in-script (`0 size NUM2BIN`).
    fn zeros(self, size: i64) -> S {
        self.op(OP_0).num(size).op(OP_NUM2BIN)
    }
    /// Pushes a positive number of `len` pseudo-random bytes (top byte 0x01).
    fn big_num(self, len: usize) -> S {
        let mut bytes = Vec::with_capacity(len + 32);
        let mut block = sha256(&(len as u64).to_le_bytes());
        while bytes.len() < len {
            bytes.extend_from_slice(&block);
            block = sha256(&block);
        }
        bytes.truncate(len.saturating_sub(1));
        bytes.push(0x01);
        self.push(&bytes)
    }
}

fn flags() -> VerifyFlags {
    VerifyFlags::standard_post_chronicle()
}

/// A version-2 spend of one output locked by `locking`, with `extra_inputs`
/// more inputs (to make the original digest's preimage large).
fn spend(unlocking: Script, extra_inputs: usize) -> Transaction {
    let mut inputs = vec![TxIn {
        prev_out: Outpoint::new(Txid([7; 32]), 0),
        unlocking_script: unlocking,
        sequence: 0xffff_ffff,
    }];
    for i in 0..extra_inputs {
        inputs.push(TxIn {
            prev_out: Outpoint::new(Txid([8; 32]), i as u32),
            unlocking_script: Script::default(),
            sequence: 0,
        });
    }
    Transaction {
        version: 2,
        inputs,
        outputs: vec![TxOut {
            satoshis: 1,
            locking_script: Script::default(),
        }],
        lock_time: 0,
    }
}

/// CPU time this thread has run, in ns (Linux `schedstat`), so that time
/// spent waiting for a shared core is not counted; wall time elsewhere.
fn cpu_ns() -> Option<u64> {
    // The main thread's own task: this example verifies on the main thread.
    let text = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|&ns| ns > 0)
}

/// Runs one input; returns the verdict and the time in ms (CPU time where
/// the OS reports it and the run is long enough to resolve, else wall
/// time), dropping the transaction's caches inside the timed region.
fn measure(
    tx: &Transaction,
    locking: &Script,
    flags: VerifyFlags,
    limits: &ScriptLimits,
) -> (Metered, f64) {
    let (cpu, wall) = (cpu_ns(), Instant::now());
    let m = {
        let cache = SighashCache::new(tx);
        verify_input_metered(&cache, 0, locking, 1000, flags, limits)
    };
    let wall = wall.elapsed().as_secs_f64() * 1e3;
    // schedstat advances on scheduler ticks: below ~20 ms wall time is closer.
    let ms = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) if wall > 20.0 => (b - a) as f64 / 1e6,
        _ => wall,
    };
    (m, ms)
}

fn report(name: &str, m: Metered, ms: f64) {
    let verdict = match m.result {
        Ok(()) => "ok".to_string(),
        Err(e) => e.node_name().to_string(),
    };
    let ns_per_unit = if m.work > 0 {
        ms * 1e6 / m.work as f64
    } else {
        0.0
    };
    println!(
        "{name:50} {verdict:>14} {:>12} {:>9.1} ms {:>6.2}",
        m.work, ms, ns_per_unit
    );
}

/// A valid-looking DER signature (strict DER, low S) with the given type byte:
/// it passes every encoding rule and fails verification, so each CHECKSIG
/// does the whole ECDSA verification and the digest.
fn garbage_sig(hash_type: u8) -> Vec<u8> {
    let key = PrivateKey::from_bytes(&sha256(b"garbage")).unwrap_or_else(|e| panic!("{e}"));
    let mut sig = key.sign_digest(&sha256(b"not this transaction"));
    sig.push(hash_type);
    sig
}

fn pubkey() -> Vec<u8> {
    PrivateKey::from_bytes(&sha256(b"someone"))
        .unwrap_or_else(|e| panic!("{e}"))
        .public_key()
        .to_compressed()
        .to_vec()
}

/// One hostile locking script, with the number of extra inputs its
/// transaction gets, its flags and its limits.
struct Pattern(String, S, usize, VerifyFlags, ScriptLimits);

fn hostile() -> Vec<Pattern> {
    // Opcode dispatch: as many cheap opcodes as the budget pays for, and more.
    let mut v: Vec<(String, S, usize)> = vec![
        (
            "NOP x 10M".into(),
            S::default().ops(&[OP_NOP], 10_000_000).op(OP_1),
            0,
        ),
        (
            "1 DROP x 5M".into(),
            S::default().ops(&[OP_1, OP_DROP], 5_000_000).op(OP_1),
            0,
        ),
        (
            "DEPTH DROP x 5M".into(),
            S::default().ops(&[OP_DEPTH, OP_DROP], 5_000_000).op(OP_1),
            0,
        ),
        (
            "push1 DROP x 3M".into(),
            S::default().ops(&[0x01, 0x5a, OP_DROP], 3_000_000).op(OP_1),
            0,
        ),
        (
            "0 IF (not taken) NOP x 10M".into(),
            S::default()
                .op(OP_0)
                .op(OP_IF)
                .ops(&[OP_NOP], 10_000_000)
                .op(OP_ENDIF)
                .op(OP_1),
            0,
        ),
        (
            "1 x 3M (stack of 3M items)".into(),
            S::default().ops(&[OP_1], 3_000_000),
            0,
        ),
    ];
    // Hashing big elements.
    for (name, op) in [
        ("SHA256", OP_SHA256),
        ("SHA1", OP_SHA1),
        ("RIPEMD160", OP_RIPEMD160),
        ("HASH160", OP_HASH160),
        ("HASH256", OP_HASH256),
    ] {
        for size in [64i64, 1_000, 100_000, 10_000_000] {
            let reps = (4_000_000_000 / (size as usize * 2)).clamp(2, 10_000_000);
            v.push((
                format!("{size}B DUP {name} DROP"),
                S::default().zeros(size).ops(&[OP_DUP, op, OP_DROP], reps),
                0,
            ));
        }
    }
    v.push((
        "50MB SHA256 (refused before)".into(),
        S::default().zeros(50_000_000).op(OP_SHA256),
        0,
    ));
    // Copies, scans, bitwise.
    for size in [1_000i64, 1_000_000, 30_000_000] {
        let reps = (4_000_000_000 / size as usize).clamp(2, 10_000_000);
        v.push((
            format!("{size}B DUP DROP"),
            S::default().zeros(size).ops(&[OP_DUP, OP_DROP], reps),
            0,
        ));
        v.push((
            format!("{size}B DUP IF ENDIF"),
            S::default()
                .zeros(size)
                .ops(&[OP_DUP, OP_IF, OP_ENDIF], reps),
            0,
        ));
        v.push((
            format!("{size}B DUP DUP EQUALVERIFY"),
            S::default()
                .zeros(size)
                .ops(&[OP_DUP, OP_DUP, OP_EQUALVERIFY], reps),
            0,
        ));
        v.push((
            format!("{size}B DUP DUP XOR DROP"),
            S::default()
                .zeros(size)
                .ops(&[OP_DUP, OP_DUP, OP_XOR, OP_DROP], reps),
            0,
        ));
        v.push((
            format!("{size}B INVERT"),
            S::default().zeros(size).ops(&[OP_INVERT], reps),
            0,
        ));
        v.push((
            format!("{size}B 1 LSHIFT"),
            S::default().zeros(size).ops(&[OP_1, OP_LSHIFT], reps),
            0,
        ));
        v.push((
            format!("{size}B DUP BIN2NUM DROP"),
            S::default()
                .zeros(size)
                .ops(&[OP_DUP, OP_BIN2NUM, OP_DROP], reps),
            0,
        ));
        v.push((
            format!("{size}B DUP 1 SPLIT DROP DROP"),
            S::default()
                .zeros(size)
                .ops(&[OP_DUP, OP_1, OP_SPLIT, OP_DROP, OP_DROP], reps),
            0,
        ));
        v.push((
            format!("{size}B DUP CAT 2 DIV SPLIT DROP"),
            S::default().zeros(size).ops(
                &[OP_DUP, OP_CAT, OP_SIZE, OP_2, OP_DIV, OP_SPLIT, OP_DROP],
                reps,
            ),
            0,
        ));
        v.push((
            format!("0 {size} NUM2BIN DROP"),
            S::default()
                .ops(&S::default().zeros(size).op(OP_DROP).0, reps)
                .op(OP_1),
            0,
        ));
    }
    v.push((
        "CAT doubling to 64MB".into(),
        S::default().push(&[1; 1]).ops(&[OP_DUP, OP_CAT], 25),
        0,
    ));
    // Deep stacks.
    v.push((
        "500k items, 499999 ROLL".into(),
        S::default()
            .ops(&[OP_1], 500_000)
            .ops(&S::default().num(499_999).op(OP_ROLL).0, 100_000),
        0,
    ));
    v.push((
        "500k items, 499999 PICK DROP".into(),
        S::default().ops(&[OP_1], 500_000).ops(
            &S::default().num(499_999).op(OP_PICK).op(OP_DROP).0,
            1_000_000,
        ),
        0,
    ));
    v.push((
        "500k items TOALTSTACK/FROMALTSTACK".into(),
        S::default()
            .ops(&[OP_1], 500_000)
            .ops(&[OP_TOALTSTACK, OP_FROMALTSTACK], 5_000_000),
        0,
    ));
    // Big numbers at the policy length (10,000 bytes).
    for (name, op) in [
        ("MUL", OP_MUL),
        ("DIV", OP_DIV),
        ("MOD", OP_MOD),
        ("ADD", OP_ADD),
        ("NUMEQUAL", OP_NUMEQUAL),
        ("LESSTHAN", OP_LESSTHAN),
    ] {
        let (a, b) = if op == OP_MUL {
            (5_000, 4_999)
        } else {
            (10_000, 5_000)
        };
        let s = S::default()
            .big_num(a)
            .big_num(b)
            .ops(&[OP_2DUP, op, OP_DROP], 1_000_000);
        v.push((format!("{a}B x {b}B 2DUP {name} DROP"), s, 0));
    }
    v.push((
        "10000B DUP 1ADD DROP".into(),
        S::default()
            .big_num(10_000)
            .ops(&[OP_DUP, OP_1ADD, OP_DROP], 1_000_000),
        0,
    ));
    v.push((
        "10000B DUP NEGATE DROP".into(),
        S::default()
            .big_num(10_000)
            .ops(&[OP_DUP, OP_NEGATE, OP_DROP], 1_000_000),
        0,
    ));
    v.push((
        "1 79990 LSHIFTNUM DROP".into(),
        S::default()
            .ops(
                &S::default()
                    .op(OP_1)
                    .num(79_990)
                    .op(OP_LSHIFTNUM)
                    .op(OP_DROP)
                    .0,
                1_000_000,
            )
            .op(OP_1),
        0,
    ));
    v.push((
        "10000B 1 RSHIFTNUM".into(),
        S::default()
            .big_num(10_000)
            .ops(&[OP_1, OP_RSHIFTNUM], 1_000_000),
        0,
    ));
    v.push((
        "3x10000B WITHIN DROP".into(),
        S::default()
            .big_num(10_000)
            .big_num(10_000)
            .big_num(10_000)
            .ops(&[OP_3DUP, OP_WITHIN, OP_DROP], 1_000_000),
        0,
    ));
    // Signatures.
    let sig = garbage_sig((SIGHASH_ALL | SIGHASH_FORKID) as u8);
    let pk = pubkey();
    let checks = |sig: &[u8], n: usize| {
        S::default()
            .push(sig)
            .push(&pk)
            .ops(&[OP_2DUP, OP_CHECKSIG, OP_DROP], n)
    };
    v.push((
        "2DUP CHECKSIG (fails) DROP x 5k".into(),
        checks(&sig, 5_000),
        0,
    ));
    let big_code = S::default().push(&vec![0x61; 1_000_000]).op(OP_DROP);
    v.push((
        "CHECKSIG with 1MB script code x 1k".into(),
        S(big_code
            .0
            .iter()
            .chain(&checks(&sig, 1_000).0)
            .copied()
            .collect()),
        0,
    ));
    let chronicle = garbage_sig((SIGHASH_ALL | SIGHASH_FORKID | SIGHASH_CHRONICLE) as u8);
    v.push((
        "CHECKSIG original digest, 20k inputs x 1k".into(),
        checks(&chronicle, 1_000),
        20_000,
    ));
    v.push((
        "CHECKSIG original digest, 1MB code x 1k".into(),
        S(big_code
            .0
            .iter()
            .chain(&checks(&chronicle, 1_000).0)
            .copied()
            .collect()),
        0,
    ));
    // The original digest scans the script code for OP_CODESEPARATORs: 1M one-byte opcodes after the checks.
    v.push((
        "CHECKSIG original digest, 1M-opcode code x 1k".into(),
        checks(&chronicle, 1_000).ops(&[OP_NOP], 1_000_000),
        0,
    ));
    let keys = 100_000;
    let multisig = S::default()
        .op(OP_0)
        .push(&sig)
        .op(OP_1)
        .ops(&S::default().push(&pk).0, keys)
        .num(keys as i64)
        .op(OP_CODESEPARATOR)
        .op(OP_CHECKMULTISIG);
    v.push((format!("1-of-{keys} CHECKMULTISIG (fails)"), multisig, 0));
    let mut patterns: Vec<Pattern> = v
        .into_iter()
        .map(|(n, s, e)| Pattern(n, s, e, flags(), ScriptLimits::policy()))
        .collect();
    // FindAndDelete runs only for signatures without FORKID, so only without
    // the SIGHASH_FORKID flag (not under any standard flags since 2017).
    let pre_fork = flags().without(VerifyFlags::SIGHASH_FORKID | VerifyFlags::STRICTENC);
    let old_sig = garbage_sig(SIGHASH_ALL as u8);
    let find_and_delete = S(big_code
        .0
        .iter()
        .chain(&checks(&old_sig, 1_000).0)
        .copied()
        .collect());
    patterns.push(Pattern(
        "FindAndDelete, 1MB code x 1k (no FORKID)".into(),
        find_and_delete,
        0,
        pre_fork,
        ScriptLimits::policy(),
    ));
    let find_in_opcodes = checks(&old_sig, 1_000).ops(&[OP_NOP], 1_000_000);
    patterns.push(Pattern(
        "FindAndDelete, 1M-opcode code x 1k (no FORKID)".into(),
        find_in_opcodes,
        0,
        pre_fork,
        ScriptLimits::policy(),
    ));
    // Numbers at the consensus lengths (ScriptLimits::default()): the
    // budget, not the length cap, is what stops them.
    let consensus = |name: &str, s: S| {
        Pattern(
            format!("consensus: {name}"),
            s,
            0,
            flags(),
            ScriptLimits::default(),
        )
    };
    patterns.push(consensus(
        "16MB DUP 1ADD DROP",
        S::default()
            .big_num(16_000_000)
            .ops(&[OP_DUP, OP_1ADD, OP_DROP], 100),
    ));
    patterns.push(consensus(
        "8MB x 8MB 2DUP ADD DROP",
        S::default()
            .big_num(8_000_000)
            .big_num(8_000_000)
            .ops(&[OP_2DUP, OP_ADD, OP_DROP], 100),
    ));
    patterns.push(consensus(
        "40KB x 40KB 2DUP MUL DROP",
        S::default()
            .big_num(40_000)
            .big_num(40_000)
            .ops(&[OP_2DUP, OP_MUL, OP_DROP], 100),
    ));
    patterns.push(consensus(
        "60KB / 30KB 2DUP DIV DROP",
        S::default()
            .big_num(60_000)
            .big_num(30_000)
            .ops(&[OP_2DUP, OP_DIV, OP_DROP], 100),
    ));
    patterns.push(consensus(
        "60KB % 30KB 2DUP MOD DROP",
        S::default()
            .big_num(60_000)
            .big_num(30_000)
            .ops(&[OP_2DUP, OP_MOD, OP_DROP], 100),
    ));
    patterns.push(consensus(
        "750KB x 750KB MUL (refused before)",
        S::default().big_num(750_000).big_num(750_000).op(OP_MUL),
    ));
    patterns.push(consensus(
        "1 2^27 LSHIFTNUM DROP",
        S::default()
            .ops(
                &S::default()
                    .op(OP_1)
                    .num(1 << 27)
                    .op(OP_LSHIFTNUM)
                    .op(OP_DROP)
                    .0,
                100,
            )
            .op(OP_1),
    ));
    patterns
}

/// Work of legitimate scripts: P2PKH, and every pattern escrowd signs.
fn legitimate() {
    let key = PrivateKey::from_bytes(&sha256(b"legit")).unwrap_or_else(|e| panic!("{e}"));
    let lock = p2pkh_lock(&key.public_key().hash160());
    let mut tx = spend(Script::default(), 0);
    tx.version = 1;
    let sig = sign_input(&tx, 0, &lock, 1000, SIGHASH_ALL | SIGHASH_FORKID, &key)
        .unwrap_or_else(|e| panic!("{e}"));
    tx.inputs[0].unlocking_script =
        p2pkh_unlock(&sig, &key.public_key()).unwrap_or_else(|e| panic!("{e}"));
    measure(&tx, &lock, flags(), &ScriptLimits::policy()); // warm-up: secp256k1 context
    let (m, ms) = measure(&tx, &lock, flags(), &ScriptLimits::policy());
    report("legitimate: P2PKH", m, ms);

    // The escrow legs (DESIGN.md §3.1), version 1, strict flags.
    let (funder, beneficiary) = (
        key,
        PrivateKey::from_bytes(&sha256(b"beneficiary")).unwrap_or_else(|e| panic!("{e}")),
    );
    let preimage = sha256(b"saga secret");
    let lock = escrow_lock(
        &sha256(&preimage),
        &beneficiary.public_key(),
        &funder.public_key(),
    );
    let all = SIGHASH_ALL | SIGHASH_FORKID;
    let leg = |lock_time: u32, sequence: u32| {
        let mut tx = spend(Script::default(), 0);
        tx.version = 1;
        tx.lock_time = lock_time;
        tx.inputs[0].sequence = sequence;
        tx
    };
    let sign = |tx: &Transaction, t: u32, k: &PrivateKey| {
        sign_input(tx, 0, &lock, 1000, t, k).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut claim = leg(0, 0xffff_ffff);
    claim.inputs[0].unlocking_script =
        escrow_claim_unlock(&sign(&claim, all, &beneficiary), &preimage)
            .unwrap_or_else(|e| panic!("{e}"));
    let mut refund = leg(1_000, 0xffff_fffe);
    let single = SIGHASH_SINGLE | SIGHASH_ANYONECANPAY | SIGHASH_FORKID;
    let (sig_f, sig_b) = (
        sign(&refund, all, &funder),
        sign(&refund, single, &beneficiary),
    );
    refund.inputs[0].unlocking_script =
        escrow_refund_unlock(&sig_f, &sig_b).unwrap_or_else(|e| panic!("{e}"));
    for (name, tx) in [
        ("legitimate: escrow claim", &claim),
        ("legitimate: escrow refund (2-of-2)", &refund),
    ] {
        let (m, ms) = measure(
            tx,
            &lock,
            flags() | VerifyFlags::MINIMALIF,
            &ScriptLimits::policy(),
        );
        report(name, m, ms);
    }
}

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default().to_lowercase();
    let limits = ScriptLimits::policy();
    println!(
        "policy budget {} units; columns: pattern, verdict, work units, CPU time, ns per unit",
        limits.max_work
    );
    legitimate();
    let mut worst = (String::new(), 0.0f64);
    for Pattern(name, locking, extra_inputs, flags, limits) in hostile() {
        if !name.to_lowercase().contains(&filter) {
            continue;
        }
        let tx = spend(Script::default(), extra_inputs);
        let locking = Script::from_bytes(locking.0);
        let (m, ms) = measure(&tx, &locking, flags, &limits);
        report(&name, m, ms);
        if ms > worst.1 {
            worst = (name, ms);
        }
    }
    println!("worst: {} at {:.1} ms", worst.0, worst.1);
}
