//! `EvalScript`: runs one script over the shared stacks (node
//! `interpreter.cpp`). Opcode semantics, limits and the order of checks follow
//! the node; comments name the rule where it is not obvious.

use std::cell::OnceCell;
use std::cmp::Ordering;

use super::num::{cast_to_bool, minimally_encode, ScriptNum};
use super::sig;
use super::stack::{shrink_if_wasteful, Stacks};
use super::work::{self, BITWISE, COPY, NUM, OP, RIPEMD160, SCAN, SHA1, SHA256, SHIFT};
use super::{ScriptError, ScriptLimits, VerifyFlags};
use crate::hash::{hash160, ripemd160, sha1, sha256, sha256d};
use crate::script::opcodes::*;
use crate::script::Chunks;
use crate::sighash::SighashCache;
use crate::tx::Transaction;

/// Pre-Genesis: longest push / stack element, in bytes.
const MAX_ELEMENT_SIZE_BEFORE_GENESIS: usize = 520;
/// Pre-Genesis: most stack + alt stack items.
const MAX_STACK_ITEMS_BEFORE_GENESIS: usize = 1000;
/// Pre-Genesis: most non-push opcodes per script (BSV raised Bitcoin's 201 to 500).
const MAX_OPS_BEFORE_GENESIS: u64 = 500;
/// Pre-Genesis: longest script in bytes.
const MAX_SCRIPT_SIZE_BEFORE_GENESIS: usize = 10_000;
/// Pre-Genesis: longest number operand in bytes.
const MAX_NUM_LEN_BEFORE_GENESIS: usize = 4;
/// Pre-Genesis: most keys in a CHECKMULTISIG.
const MAX_PUBKEYS_BEFORE_GENESIS: u64 = 20;
/// Post-Genesis consensus limit for opcodes, script size and multisig keys.
const UNLIMITED_AFTER_GENESIS: u64 = u32::MAX as u64;
/// Lock-time operands may be 5 bytes (values up to 2^39 - 1).
const LOCKTIME_NUM_LEN: usize = 5;

/// Everything about the verification that does not change while a script runs.
pub(crate) struct Env<'a> {
    pub(crate) flags: VerifyFlags,
    /// Signature hashing over the spending transaction.
    pub(crate) sighash: &'a SighashCache<'a>,
    /// The input being verified (checked to exist before evaluation).
    pub(crate) input_index: usize,
    /// Value of the output being spent, in satoshis.
    pub(crate) satoshis: u64,
    /// The spending transaction's version as the node sees it (`int32_t`).
    pub(crate) version: i32,
    pub(crate) after_genesis: bool,
    pub(crate) after_chronicle: bool,
    /// Malleability rules apply: not (CHRONICLE and version > 1).
    pub(crate) enforce_strict: bool,
    pub(crate) require_minimal: bool,
    max_num_len: usize,
    pub(crate) max_ops: u64,
    pub(crate) max_pubkeys: u64,
    max_script_size: u64,
    max_stack_memory: u64,
    max_work: u64,
    /// [`work::original_tx_bound`] of the spending transaction, computed on
    /// the first original-digest signature check.
    original_tx_bound: OnceCell<u64>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(
        flags: VerifyFlags,
        sighash: &'a SighashCache<'a>,
        input_index: usize,
        satoshis: u64,
        limits: &ScriptLimits,
    ) -> Env<'a> {
        let version = sighash.tx().version as i32;
        let after_genesis = flags.contains(VerifyFlags::UTXO_AFTER_GENESIS);
        let after_chronicle = flags.contains(VerifyFlags::UTXO_AFTER_CHRONICLE);
        let enforce_strict = !(flags.contains(VerifyFlags::CHRONICLE) && version > 1);
        let max_num_len = if after_chronicle {
            limits.max_num_len_after_chronicle
        } else if after_genesis {
            limits.max_num_len_after_genesis
        } else {
            MAX_NUM_LEN_BEFORE_GENESIS
        };
        Env {
            flags,
            sighash,
            input_index,
            satoshis,
            version,
            after_genesis,
            after_chronicle,
            enforce_strict,
            require_minimal: flags.contains(VerifyFlags::MINIMALDATA) && enforce_strict,
            max_num_len,
            max_ops: if after_genesis {
                UNLIMITED_AFTER_GENESIS
            } else {
                MAX_OPS_BEFORE_GENESIS
            },
            max_pubkeys: if after_genesis {
                UNLIMITED_AFTER_GENESIS
            } else {
                MAX_PUBKEYS_BEFORE_GENESIS
            },
            max_script_size: if after_genesis {
                UNLIMITED_AFTER_GENESIS
            } else {
                MAX_SCRIPT_SIZE_BEFORE_GENESIS as u64
            },
            max_stack_memory: if after_genesis {
                limits.max_stack_memory
            } else {
                i64::MAX as u64
            },
            max_work: limits.max_work,
            original_tx_bound: OnceCell::new(),
        }
    }

    /// Empty stacks with this verification's memory limit and work budget.
    pub(crate) fn new_stacks(&self) -> Stacks {
        Stacks::new(self.max_stack_memory, self.max_work)
    }

    /// Bytes of the original digest's preimage without the script code
    /// (computed once per input, on first use).
    pub(crate) fn original_tx_bound(&self) -> u64 {
        *self
            .original_tx_bound
            .get_or_init(|| work::original_tx_bound(self.tx()))
    }

    /// The spending transaction.
    pub(crate) fn tx(&self) -> &'a Transaction {
        self.sighash.tx()
    }

    /// Decodes a number operand with this era's length limit.
    fn num(&self, bytes: &[u8]) -> Result<ScriptNum, ScriptError> {
        ScriptNum::decode(bytes, self.require_minimal, self.max_num_len)
    }

    /// Checks a numeric result: after Genesis (big-number mode) it may not be
    /// longer than the operand limit; before Genesis results are unchecked.
    fn result(&self, n: ScriptNum) -> Result<ScriptNum, ScriptError> {
        if self.after_genesis && n.encoded_len() > self.max_num_len {
            return Err(ScriptError::ScriptNumOverflow);
        }
        Ok(n)
    }

    fn discourage_nops(&self) -> Result<(), ScriptError> {
        if self.flags.contains(VerifyFlags::DISCOURAGE_UPGRADABLE_NOPS) {
            Err(ScriptError::DiscourageUpgradableNops)
        } else {
            Ok(())
        }
    }
}

/// IF/ELSE/ENDIF nesting (node `conditional_tracker`).
#[derive(Default)]
struct Conditions {
    /// Per open IF: (branch currently taken, an ELSE was seen).
    levels: Vec<(bool, bool)>,
    false_count: usize,
}

impl Conditions {
    fn is_active(&self) -> bool {
        self.false_count == 0
    }
    fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }
    fn op_if(&mut self, taken: bool) {
        self.levels.push((taken, false));
        if !taken {
            self.false_count += 1;
        }
    }
    fn has_else(&self) -> bool {
        self.levels.last().is_some_and(|l| l.1)
    }
    fn op_else(&mut self) {
        if let Some(level) = self.levels.last_mut() {
            level.0 = !level.0;
            level.1 = true;
            if level.0 {
                self.false_count = self.false_count.saturating_sub(1);
            } else {
                self.false_count += 1;
            }
        }
    }
    fn op_endif(&mut self) {
        if let Some((taken, _)) = self.levels.pop() {
            if !taken {
                self.false_count = self.false_count.saturating_sub(1);
            }
        }
    }
}

/// Whether `op` is disabled for this UTXO era (OP_2MUL, OP_2DIV before Chronicle).
fn is_disabled(op: u8, env: &Env<'_>) -> bool {
    matches!(op, OP_2MUL | OP_2DIV) && !env.after_chronicle
}

/// The transaction version as the 4 little-endian bytes OP_VER pushes.
fn version_bytes(env: &Env<'_>) -> [u8; 4] {
    env.version.to_le_bytes()
}

/// Runs `script` on `stacks`. `checksig_data` is the locking script when
/// `script` is the unlocking script (post-Chronicle CHECKSIG script code).
///
/// # Errors
/// The node's `ScriptError` for the first failing rule.
pub(crate) fn eval_script(
    env: &Env<'_>,
    stacks: &mut Stacks,
    script: &[u8],
    checksig_data: Option<&[u8]>,
) -> Result<(), ScriptError> {
    stacks.clear_alt();
    let result = run(env, stacks, script, checksig_data);
    stacks.clear_alt();
    result
}

fn run(
    env: &Env<'_>,
    stacks: &mut Stacks,
    script: &[u8],
    checksig_data: Option<&[u8]>,
) -> Result<(), ScriptError> {
    if env.after_chronicle && !env.after_genesis {
        return Err(ScriptError::InvalidFlags);
    }
    if script.len() as u64 > env.max_script_size {
        return Err(ScriptError::ScriptSize);
    }
    let flags = env.flags;
    let mut op_count: u64 = 0;
    let mut cond = Conditions::default();
    // After Genesis, an OP_RETURN inside an executed IF stops execution but
    // the rest of the script must still parse and balance.
    let mut returned_in_branch = false;
    let mut code_start = 0usize;

    for chunk in Chunks::new(script) {
        let chunk = chunk.map_err(|_| ScriptError::BadOpcode)?;
        let op = chunk.opcode;
        stacks.charge_work(OP)?;
        if !env.after_genesis
            && chunk
                .data
                .is_some_and(|d| d.len() > MAX_ELEMENT_SIZE_BEFORE_GENESIS)
        {
            return Err(ScriptError::PushSize);
        }
        let exec = cond.is_active() && (!returned_in_branch || op == OP_RETURN);
        // Non-push opcodes count, executed or not; OP_RESERVED does not.
        if op > OP_16 {
            op_count += 1;
            if op_count > env.max_ops {
                return Err(ScriptError::OpCount);
            }
        }
        if is_disabled(op, env) && (!env.after_genesis || exec) {
            return Err(ScriptError::DisabledOpcode);
        }

        if exec && op <= OP_PUSHDATA4 {
            if env.require_minimal && !chunk.is_minimal_push() {
                return Err(ScriptError::MinimalData);
            }
            stacks.push_slice(chunk.data.unwrap_or(&[]))?;
        } else if exec || (OP_IF..=OP_ENDIF).contains(&op) {
            match op {
                OP_1NEGATE | OP_1..=OP_16 => {
                    let n = i64::from(op) - i64::from(OP_1 - 1);
                    stacks.push(ScriptNum::Small(n).encode())?;
                }

                // Control
                OP_NOP => {}
                OP_CHECKLOCKTIMEVERIFY => {
                    if !flags.contains(VerifyFlags::CHECKLOCKTIMEVERIFY) || env.after_genesis {
                        env.discourage_nops()?;
                    } else {
                        stacks.need(1)?;
                        let n = ScriptNum::decode(
                            stacks.top(1)?,
                            env.require_minimal,
                            LOCKTIME_NUM_LEN,
                        )?;
                        if n.is_negative() {
                            return Err(ScriptError::NegativeLocktime);
                        }
                        if !sig::check_lock_time(env, &n) {
                            return Err(ScriptError::UnsatisfiedLocktime);
                        }
                    }
                }
                OP_CHECKSEQUENCEVERIFY => {
                    if !flags.contains(VerifyFlags::CHECKSEQUENCEVERIFY) || env.after_genesis {
                        env.discourage_nops()?;
                    } else {
                        stacks.need(1)?;
                        let n = ScriptNum::decode(
                            stacks.top(1)?,
                            env.require_minimal,
                            LOCKTIME_NUM_LEN,
                        )?;
                        if n.is_negative() {
                            return Err(ScriptError::NegativeLocktime);
                        }
                        if !sig::sequence_disabled(&n) && !sig::check_sequence(env, &n) {
                            return Err(ScriptError::UnsatisfiedLocktime);
                        }
                    }
                }
                OP_VER => {
                    if !env.after_chronicle {
                        return Err(ScriptError::BadOpcode);
                    }
                    stacks.push(version_bytes(env).to_vec())?;
                }
                OP_SUBSTR | OP_LEFT | OP_RIGHT | OP_LSHIFTNUM | OP_RSHIFTNUM
                    if !env.after_chronicle =>
                {
                    env.discourage_nops()?;
                }
                OP_SUBSTR => {
                    // (data begin len -- data[begin..begin+len])
                    stacks.need(3)?;
                    let len = num_at(env, stacks, 1)?.to_i32_saturating();
                    let begin = num_at(env, stacks, 2)?.to_i32_saturating();
                    let size = stacks.top(3)?.len();
                    let (Ok(b), Ok(l)) = (usize::try_from(begin), usize::try_from(len)) else {
                        return Err(ScriptError::InvalidNumberRange);
                    };
                    if b >= size || l > size - b {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stacks.pop()?;
                    stacks.pop()?;
                    stacks.resize_top(l, |d| {
                        d.truncate(b + l);
                        d.drain(..b);
                    })?;
                }
                OP_LEFT | OP_RIGHT => {
                    // (data len -- first or last len bytes)
                    stacks.need(2)?;
                    let len = num_at(env, stacks, 1)?.to_i32_saturating();
                    let size = stacks.top(2)?.len();
                    let l = usize::try_from(len)
                        .ok()
                        .filter(|l| *l <= size)
                        .ok_or(ScriptError::InvalidNumberRange)?;
                    stacks.pop()?;
                    if op == OP_LEFT {
                        stacks.resize_top(l, |d| d.truncate(l))?;
                    } else {
                        stacks.resize_top(l, |d| {
                            d.drain(..size - l);
                        })?;
                    }
                }
                OP_LSHIFTNUM | OP_RSHIFTNUM => {
                    // (x n -- x shifted by n bits, as a number)
                    stacks.need(2)?;
                    let n = num_at(env, stacks, 1)?;
                    if n.is_negative() {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stacks.pop()?;
                    let value = num_at(env, stacks, 1)?;
                    let shifted = if op == OP_LSHIFTNUM {
                        // Charged once the result is known to fit, at its length.
                        value.shl(&n, env.max_num_len, |len| {
                            stacks.charge_work(work::bytes(len, NUM))
                        })?
                    } else {
                        stacks.charge_work(work::bytes(value.encoded_len(), NUM))?;
                        value.shr(&n)?
                    };
                    stacks.pop()?;
                    push_num(stacks, &shifted)?;
                }
                OP_NOP1 | OP_NOP9 | OP_NOP10 => env.discourage_nops()?,

                OP_IF | OP_NOTIF | OP_VERIF | OP_VERNOTIF => {
                    if matches!(op, OP_VERIF | OP_VERNOTIF) && !env.after_chronicle {
                        if env.after_genesis && !exec {
                            continue;
                        }
                        return Err(ScriptError::BadOpcode);
                    }
                    let mut taken = false;
                    if exec {
                        let top = stacks
                            .top(1)
                            .map_err(|_| ScriptError::UnbalancedConditional)?;
                        if matches!(op, OP_IF | OP_NOTIF) {
                            if flags.contains(VerifyFlags::MINIMALIF)
                                && (top.len() > 1 || (top.len() == 1 && top.first() != Some(&1)))
                                && env.enforce_strict
                            {
                                return Err(ScriptError::MinimalIf);
                            }
                            taken = stack_bool(stacks, 1)?;
                        } else {
                            // Compares at most 4 bytes: lengths first.
                            taken = top.as_slice() == version_bytes(env);
                        }
                        if matches!(op, OP_NOTIF | OP_VERNOTIF) {
                            taken = !taken;
                        }
                        stacks.pop()?;
                    }
                    cond.op_if(taken);
                }
                OP_ELSE => {
                    // After Genesis only one ELSE per IF.
                    if cond.is_empty() || (cond.has_else() && env.after_genesis) {
                        return Err(ScriptError::UnbalancedConditional);
                    }
                    cond.op_else();
                }
                OP_ENDIF => {
                    if cond.is_empty() {
                        return Err(ScriptError::UnbalancedConditional);
                    }
                    cond.op_endif();
                }
                OP_VERIFY => {
                    stacks.need(1)?;
                    if !stack_bool(stacks, 1)? {
                        return Err(ScriptError::Verify);
                    }
                    stacks.pop()?;
                }
                OP_RETURN => {
                    if !env.after_genesis {
                        return Err(ScriptError::OpReturn);
                    }
                    if cond.is_empty() {
                        // Top level: success; the rest of the script is not even parsed.
                        return Ok(());
                    }
                    returned_in_branch = true;
                }

                // Stack
                OP_TOALTSTACK => {
                    stacks.need(1)?;
                    stacks.move_to_alt()?;
                }
                OP_FROMALTSTACK => stacks.move_from_alt()?,
                OP_2DROP => {
                    stacks.need(2)?;
                    stacks.pop()?;
                    stacks.pop()?;
                }
                OP_2DUP => {
                    stacks.need(2)?;
                    stacks.push_copy(2)?;
                    stacks.push_copy(2)?;
                }
                OP_3DUP => {
                    stacks.need(3)?;
                    stacks.push_copy(3)?;
                    stacks.push_copy(3)?;
                    stacks.push_copy(3)?;
                }
                OP_2OVER => {
                    stacks.need(4)?;
                    stacks.push_copy(4)?;
                    stacks.push_copy(4)?;
                }
                OP_2ROT => {
                    // (x1 x2 x3 x4 x5 x6 -- x3 x4 x5 x6 x1 x2)
                    stacks.need(6)?;
                    let x1 = stacks.remove(6)?;
                    let x2 = stacks.remove(5)?;
                    stacks.push(x1)?;
                    stacks.push(x2)?;
                }
                OP_2SWAP => {
                    stacks.need(4)?;
                    stacks.swap(4, 2)?;
                    stacks.swap(3, 1)?;
                }
                OP_IFDUP => {
                    stacks.need(1)?;
                    if stack_bool(stacks, 1)? {
                        stacks.push_copy(1)?;
                    }
                }
                OP_DEPTH => {
                    let depth = ScriptNum::Small(stacks.len() as i64);
                    stacks.push(depth.encode())?;
                }
                OP_DROP => {
                    stacks.need(1)?;
                    stacks.pop()?;
                }
                OP_DUP => {
                    stacks.need(1)?;
                    stacks.push_copy(1)?;
                }
                OP_NIP => {
                    stacks.need(2)?;
                    stacks.remove(2)?;
                }
                OP_OVER => {
                    stacks.need(2)?;
                    stacks.push_copy(2)?;
                }
                OP_PICK | OP_ROLL => {
                    // (xn ... x0 n -- xn ... x0 xn) / (... x0 xn)
                    stacks.need(2)?;
                    let n = num_at(env, stacks, 1)?;
                    stacks.pop()?;
                    if n.is_negative() || n.cmp_usize(stacks.len()) != Ordering::Less {
                        return Err(ScriptError::InvalidStackOperation);
                    }
                    let depth = n.to_usize().ok_or(ScriptError::InvalidStackOperation)? + 1;
                    if op == OP_ROLL {
                        let item = stacks.remove(depth)?;
                        stacks.push(item)?;
                    } else {
                        stacks.push_copy(depth)?;
                    }
                }
                OP_ROT => {
                    // (x1 x2 x3 -- x2 x3 x1)
                    stacks.need(3)?;
                    stacks.swap(3, 2)?;
                    stacks.swap(2, 1)?;
                }
                OP_SWAP => {
                    stacks.need(2)?;
                    stacks.swap(2, 1)?;
                }
                OP_TUCK => {
                    // (x1 x2 -- x2 x1 x2)
                    stacks.need(2)?;
                    stacks.tuck()?;
                }
                OP_SIZE => {
                    stacks.need(1)?;
                    let size = ScriptNum::Small(stacks.top(1)?.len() as i64);
                    stacks.push(size.encode())?;
                }

                // Bitwise logic
                OP_AND | OP_OR | OP_XOR => {
                    stacks.need(2)?;
                    let b = stacks.pop()?;
                    if stacks.top(1)?.len() != b.len() {
                        return Err(ScriptError::InvalidOperandSize);
                    }
                    stacks.charge_work(work::bytes(b.len(), BITWISE))?;
                    let a = stacks.top_mut(1)?;
                    for (x, y) in a.iter_mut().zip(&b) {
                        match op {
                            OP_AND => *x &= y,
                            OP_OR => *x |= y,
                            _ => *x ^= y,
                        }
                    }
                }
                OP_INVERT => {
                    stacks.need(1)?;
                    stacks.charge_work(work::bytes(stacks.top(1)?.len(), BITWISE))?;
                    stacks.top_mut(1)?.iter_mut().for_each(|x| *x = !*x);
                }
                OP_LSHIFT | OP_RSHIFT => {
                    // (x n -- x shifted by n bits, as a bit string of the same length)
                    stacks.need(2)?;
                    let n = num_at(env, stacks, 1)?;
                    if n.is_negative() {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                    stacks.pop()?;
                    stacks.charge_work(work::bytes(stacks.top(1)?.len(), SHIFT))?;
                    let data = stacks.top_mut(1)?;
                    let bits = data.len().saturating_mul(8);
                    match n.to_usize().filter(|n| *n < bits) {
                        None => data.iter_mut().for_each(|x| *x = 0),
                        Some(n) if op == OP_LSHIFT => *data = shift_left(data, n),
                        Some(n) => *data = shift_right(data, n),
                    }
                }
                OP_EQUAL | OP_EQUALVERIFY => {
                    stacks.need(2)?;
                    let compared = stacks.top(1)?.len().min(stacks.top(2)?.len());
                    stacks.charge_work(work::bytes(compared, COPY))?;
                    let equal = stacks.top(1)? == stacks.top(2)?;
                    stacks.pop()?;
                    stacks.pop()?;
                    if op == OP_EQUALVERIFY {
                        if !equal {
                            return Err(ScriptError::EqualVerify);
                        }
                    } else {
                        stacks.push(bool_bytes(equal))?;
                    }
                }

                // Numeric
                OP_1ADD | OP_1SUB | OP_2MUL | OP_2DIV | OP_NEGATE | OP_ABS | OP_NOT
                | OP_0NOTEQUAL => {
                    stacks.need(1)?;
                    let a = num_at(env, stacks, 1)?;
                    stacks.charge_work(work::bytes(a.encoded_len(), NUM))?;
                    let r = match op {
                        OP_1ADD => env.result(a.add(&ScriptNum::Small(1)))?,
                        OP_1SUB => env.result(a.sub(&ScriptNum::Small(1)))?,
                        OP_2MUL => env.result(a.add(&a))?,
                        OP_2DIV => a.div(&ScriptNum::Small(2)),
                        OP_NEGATE => a.neg(),
                        OP_ABS if a.is_negative() => a.neg(),
                        OP_ABS => a,
                        OP_NOT => ScriptNum::Small(i64::from(a.is_zero())),
                        _ => ScriptNum::Small(i64::from(!a.is_zero())),
                    };
                    stacks.pop()?;
                    push_num(stacks, &r)?;
                }
                OP_ADD
                | OP_SUB
                | OP_MUL
                | OP_DIV
                | OP_MOD
                | OP_BOOLAND
                | OP_BOOLOR
                | OP_NUMEQUAL
                | OP_NUMEQUALVERIFY
                | OP_NUMNOTEQUAL
                | OP_LESSTHAN
                | OP_GREATERTHAN
                | OP_LESSTHANOREQUAL
                | OP_GREATERTHANOREQUAL
                | OP_MIN
                | OP_MAX => {
                    stacks.need(2)?;
                    let a = num_at(env, stacks, 2)?;
                    let b = num_at(env, stacks, 1)?;
                    let (la, lb) = (a.encoded_len(), b.encoded_len());
                    match op {
                        OP_MUL | OP_DIV | OP_MOD => {}
                        // Linear: one pass over both operands (and their conversion).
                        _ => stacks.charge_work(work::bytes(la.saturating_add(lb), NUM))?,
                    }
                    let flag = |v: bool| ScriptNum::Small(i64::from(v));
                    let r = match op {
                        OP_ADD => env.result(a.add(&b))?,
                        OP_SUB => env.result(a.sub(&b))?,
                        OP_MUL => {
                            let limit = env.after_genesis.then_some(env.max_num_len);
                            // A product that cannot fit fails before it is charged or computed.
                            if a.mul_overflows(&b, limit) {
                                return Err(ScriptError::ScriptNumOverflow);
                            }
                            stacks.charge_work(work::limb_product(la, lb))?;
                            env.result(a.mul(&b, limit).ok_or(ScriptError::ScriptNumOverflow)?)?
                        }
                        OP_DIV if b.is_zero() => return Err(ScriptError::DivByZero),
                        OP_DIV => {
                            stacks.charge_work(work::limb_product(la, lb))?;
                            a.div(&b)
                        }
                        OP_MOD if b.is_zero() => return Err(ScriptError::ModByZero),
                        OP_MOD => {
                            stacks.charge_work(work::limb_product(la, lb))?;
                            a.rem(&b)
                        }
                        OP_BOOLAND => flag(!a.is_zero() && !b.is_zero()),
                        OP_BOOLOR => flag(!a.is_zero() || !b.is_zero()),
                        OP_NUMEQUAL | OP_NUMEQUALVERIFY => flag(a.num_eq(&b)),
                        OP_NUMNOTEQUAL => flag(!a.num_eq(&b)),
                        OP_LESSTHAN => flag(a.cmp_num(&b) == Ordering::Less),
                        OP_GREATERTHAN => flag(a.cmp_num(&b) == Ordering::Greater),
                        OP_LESSTHANOREQUAL => flag(a.cmp_num(&b) != Ordering::Greater),
                        OP_GREATERTHANOREQUAL => flag(a.cmp_num(&b) != Ordering::Less),
                        OP_MIN if a.cmp_num(&b) == Ordering::Less => a,
                        OP_MIN => b,
                        OP_MAX if a.cmp_num(&b) == Ordering::Greater => a,
                        _ => b,
                    };
                    stacks.pop()?;
                    stacks.pop()?;
                    if op == OP_NUMEQUALVERIFY {
                        if r.is_zero() {
                            return Err(ScriptError::NumEqualVerify);
                        }
                    } else {
                        push_num(stacks, &r)?;
                    }
                }
                OP_WITHIN => {
                    // (x min max -- min <= x < max)
                    stacks.need(3)?;
                    let x = num_at(env, stacks, 3)?;
                    let min = num_at(env, stacks, 2)?;
                    let max = num_at(env, stacks, 1)?;
                    let compared = 2 * x.encoded_len() + min.encoded_len() + max.encoded_len();
                    stacks.charge_work(work::bytes(compared, NUM))?;
                    let within =
                        min.cmp_num(&x) != Ordering::Greater && x.cmp_num(&max) == Ordering::Less;
                    stacks.pop()?;
                    stacks.pop()?;
                    stacks.pop()?;
                    stacks.push(bool_bytes(within))?;
                }

                // Crypto
                OP_RIPEMD160 | OP_SHA1 | OP_SHA256 | OP_HASH160 | OP_HASH256 => {
                    stacks.need(1)?;
                    let len = stacks.top(1)?.len();
                    let cost = match op {
                        OP_RIPEMD160 => work::hash(len, RIPEMD160),
                        OP_SHA1 => work::hash(len, SHA1),
                        OP_SHA256 => work::hash(len, SHA256),
                        OP_HASH160 => {
                            work::hash(len, SHA256).saturating_add(work::hash(32, RIPEMD160))
                        }
                        _ => work::hash(len, SHA256).saturating_add(work::hash(32, SHA256)),
                    };
                    stacks.charge_work(cost)?;
                    let data = stacks.top(1)?;
                    let digest = match op {
                        OP_RIPEMD160 => ripemd160(data).to_vec(),
                        OP_SHA1 => sha1(data).to_vec(),
                        OP_SHA256 => sha256(data).to_vec(),
                        OP_HASH160 => hash160(data).to_vec(),
                        _ => sha256d(data).to_vec(),
                    };
                    stacks.pop()?;
                    stacks.push(digest)?;
                }
                OP_CODESEPARATOR => code_start = chunk.end,
                OP_CHECKSIG | OP_CHECKSIGVERIFY => {
                    stacks.need(2)?;
                    sig::check_signature_encoding(stacks.top(2)?, flags, env.enforce_strict)?;
                    sig::check_pubkey_encoding(stacks.top(1)?, flags)?;
                    let code = script.get(code_start..).unwrap_or(&[]);
                    stacks.charge_work(sig::script_code_work(code.len(), checksig_data, flags))?;
                    let mut code = sig::script_code(code, checksig_data, flags);
                    let signature = sig::SigShape::of(stacks.top(2)?);
                    stacks.charge_work(sig::cleanup_work(signature, code.len(), flags))?;
                    sig::cleanup_script_code(&mut code, stacks.top(2)?, flags);
                    stacks.charge_work(sig::check_work(env, signature, code.len()))?;
                    let signature = stacks.top(2)?;
                    let ok = sig::check_sig(env, signature, stacks.top(1)?, &code);
                    if !ok
                        && flags.contains(VerifyFlags::NULLFAIL)
                        && !signature.is_empty()
                        && env.enforce_strict
                    {
                        return Err(ScriptError::SigNullFail);
                    }
                    stacks.pop()?;
                    stacks.pop()?;
                    if op == OP_CHECKSIGVERIFY {
                        if !ok {
                            return Err(ScriptError::CheckSigVerify);
                        }
                    } else {
                        stacks.push(bool_bytes(ok))?;
                    }
                }
                OP_CHECKMULTISIG | OP_CHECKMULTISIGVERIFY => {
                    let ok = sig::check_multisig(
                        env,
                        stacks,
                        script.get(code_start..).unwrap_or(&[]),
                        checksig_data,
                        &mut op_count,
                    )?;
                    if op == OP_CHECKMULTISIGVERIFY {
                        if !ok {
                            return Err(ScriptError::CheckMultiSigVerify);
                        }
                    } else {
                        stacks.push(bool_bytes(ok))?;
                    }
                }

                // Byte strings
                OP_CAT => {
                    stacks.need(2)?;
                    let total = stacks.top(2)?.len() + stacks.top(1)?.len();
                    if !env.after_genesis && total > MAX_ELEMENT_SIZE_BEFORE_GENESIS {
                        return Err(ScriptError::PushSize);
                    }
                    let b = stacks.pop()?;
                    stacks.resize_top(total, |a| a.extend_from_slice(&b))?;
                }
                OP_SPLIT => {
                    // (data n -- data[..n] data[n..])
                    stacks.need(2)?;
                    let n = num_at(env, stacks, 1)?;
                    let size = stacks.top(2)?.len();
                    if n.is_negative() || n.cmp_usize(size) == Ordering::Greater {
                        return Err(ScriptError::InvalidSplitRange);
                    }
                    let at = n.to_usize().ok_or(ScriptError::InvalidSplitRange)?;
                    stacks.charge_work(work::bytes(size, COPY))?;
                    stacks.pop()?;
                    let mut left = stacks.pop()?;
                    let right = left.split_off(at);
                    shrink_if_wasteful(&mut left);
                    stacks.push(left)?;
                    stacks.push(right)?;
                }
                OP_NUM2BIN => {
                    // (number size -- number padded to size bytes)
                    stacks.need(2)?;
                    let n = num_at(env, stacks, 1)?;
                    if n.is_negative() || n.cmp_usize(i32::MAX as usize) == Ordering::Greater {
                        return Err(ScriptError::PushSize);
                    }
                    let size = n.to_usize().ok_or(ScriptError::PushSize)?;
                    if !env.after_genesis && size > MAX_ELEMENT_SIZE_BEFORE_GENESIS {
                        return Err(ScriptError::PushSize);
                    }
                    stacks.pop()?;
                    stacks.charge_work(work::bytes(stacks.top(1)?.len(), COPY + SCAN))?;
                    let mut raw = stacks.top(1)?.clone();
                    minimally_encode(&mut raw);
                    if raw.len() > size {
                        return Err(ScriptError::ImpossibleEncoding);
                    }
                    // Memory is charged before the padding is allocated.
                    stacks.resize_top(size, move |d| {
                        if raw.len() < size {
                            // Move the sign bit to the new last byte.
                            let sign = raw.last().map_or(0, |b| b & 0x80);
                            if let Some(top) = raw.last_mut() {
                                *top &= 0x7f;
                            }
                            raw.resize(size, 0);
                            if let Some(top) = raw.last_mut() {
                                *top = sign;
                            }
                        }
                        *d = raw;
                    })?;
                }
                OP_BIN2NUM => {
                    stacks.need(1)?;
                    stacks.charge_work(work::bytes(stacks.top(1)?.len(), COPY + SCAN))?;
                    let mut raw = stacks.top(1)?.clone();
                    minimally_encode(&mut raw);
                    let len = raw.len();
                    stacks.resize_top(len, |d| *d = raw)?;
                    // Minimal by construction; only the length can be out of range.
                    if len > env.max_num_len {
                        return Err(ScriptError::InvalidNumberRange);
                    }
                }

                _ => return Err(ScriptError::BadOpcode),
            }
        }

        if !env.after_genesis && stacks.len() + stacks.alt.len() > MAX_STACK_ITEMS_BEFORE_GENESIS {
            return Err(ScriptError::StackSize);
        }
    }

    if !cond.is_empty() {
        return Err(ScriptError::UnbalancedConditional);
    }
    Ok(())
}

/// Decodes the number `depth` places from the top, charging its length
/// first; an operand longer than the era allows fails on its length alone.
fn num_at(env: &Env<'_>, stacks: &mut Stacks, depth: usize) -> Result<ScriptNum, ScriptError> {
    let len = stacks.top(depth)?.len();
    if len <= env.max_num_len {
        stacks.charge_work(work::bytes(len, NUM))?;
    }
    env.num(stacks.top(depth)?)
}

/// Pushes a number, charging its encoding first.
fn push_num(stacks: &mut Stacks, n: &ScriptNum) -> Result<(), ScriptError> {
    stacks.charge_work(work::bytes(n.encoded_len(), NUM))?;
    stacks.push(n.encode())
}

/// `CastToBool` of the item `depth` places from the top, charging the scan first.
pub(crate) fn stack_bool(stacks: &mut Stacks, depth: usize) -> Result<bool, ScriptError> {
    stacks.charge_work(work::bytes(stacks.top(depth)?.len(), SCAN))?;
    Ok(cast_to_bool(stacks.top(depth)?))
}

/// `0x01` for true, empty for false.
fn bool_bytes(v: bool) -> Vec<u8> {
    if v {
        vec![1]
    } else {
        Vec::new()
    }
}

/// Shifts a big-endian bit string left by `n < 8 * len` bits, keeping its length
/// (node `LShift`).
fn shift_left(x: &[u8], n: usize) -> Vec<u8> {
    let (bytes, bits) = (n / 8, n % 8);
    (0..x.len())
        .map(|i| {
            let hi = x.get(i + bytes).copied().unwrap_or(0);
            let lo = x.get(i + bytes + 1).copied().unwrap_or(0);
            if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (8 - bits))
            }
        })
        .collect()
}

/// Shifts a big-endian bit string right by `n < 8 * len` bits, keeping its
/// length (node `RShift`).
fn shift_right(x: &[u8], n: usize) -> Vec<u8> {
    let (bytes, bits) = (n / 8, n % 8);
    (0..x.len())
        .map(|j| {
            let hi = j
                .checked_sub(bytes)
                .and_then(|k| x.get(k))
                .copied()
                .unwrap_or(0);
            let lo = j
                .checked_sub(bytes + 1)
                .and_then(|k| x.get(k))
                .copied()
                .unwrap_or(0);
            if bits == 0 {
                hi
            } else {
                (hi >> bits) | (lo << (8 - bits))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_shifts_keep_length_and_move_bits_across_bytes() {
        assert_eq!(shift_left(&[0x01, 0x80], 1), vec![0x03, 0x00]);
        assert_eq!(shift_left(&[0x12, 0x34, 0x56], 8), vec![0x34, 0x56, 0x00]);
        assert_eq!(shift_left(&[0x12, 0x34, 0x56], 12), vec![0x45, 0x60, 0x00]);
        assert_eq!(shift_right(&[0x01, 0x80], 1), vec![0x00, 0xc0]);
        assert_eq!(shift_right(&[0x12, 0x34, 0x56], 12), vec![0x00, 0x01, 0x23]);
        assert_eq!(shift_right(&[0xff], 7), vec![0x01]);
    }

    #[test]
    fn conditions_track_nesting_and_else() {
        let mut c = Conditions::default();
        c.op_if(true);
        c.op_if(false);
        assert!(!c.is_active());
        c.op_else();
        assert!(c.is_active() && c.has_else());
        c.op_endif();
        c.op_else();
        assert!(!c.is_active());
        c.op_endif();
        assert!(c.is_empty() && c.is_active());
    }
}
