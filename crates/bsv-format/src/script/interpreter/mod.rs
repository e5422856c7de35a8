//! The script interpreter: evaluates an unlocking script and the locking
//! script it spends under the node's verification flags.
//!
//! Modelled on the SV node 1.2.x `src/script/interpreter.cpp` (`EvalScript`,
//! `VerifyScript`) and its flags (`script_flags.h`); the behaviour, the order
//! of checks and the error names follow the node so that the node's own
//! script and transaction test files pass unchanged
//! (`tests/script_vectors.rs`, `tests/tx_vectors.rs`).
//!
//! What depends on what (bsv-formats.md §9):
//! - **UTXO era** (`UTXO_AFTER_GENESIS`, `UTXO_AFTER_CHRONICLE`, per input):
//!   pre-Genesis limits (520-byte elements, 500 non-push opcodes, 10,000-byte
//!   scripts, 4-byte numbers, 20 keys per multisig, 1,000 stack items), P2SH,
//!   CLTV/CSV, failing `OP_RETURN`; post-Genesis: no such limits (numbers up to
//!   750,000 bytes, 32 MB after Chronicle), `OP_RETURN` ends a top-level script
//!   successfully, CLTV/CSV are NOPs, P2SH is not evaluated, one `OP_ELSE` per
//!   `OP_IF`; post-Chronicle: OP_VER, OP_VERIF, OP_VERNOTIF, OP_SUBSTR, OP_LEFT,
//!   OP_RIGHT, OP_LSHIFTNUM, OP_RSHIFTNUM, OP_2MUL, OP_2DIV.
//! - **Block era** (`GENESIS`, `CHRONICLE`): SIGPUSHONLY is applied after
//!   Genesis; after Chronicle the malleability rules (MINIMALDATA, LOW_S,
//!   NULLFAIL, NULLDUMMY, MINIMALIF, SIGPUSHONLY, CLEANSTACK) are waived for
//!   transactions with version > 1, SIGHASH_CHRONICLE is allowed, and a
//!   CHECKSIG in an unlocking script signs the rest of it plus the whole
//!   locking script.
//!
//! **Work budget** (not in the node): where the node relies on a validation
//! timeout, a deterministic verifier counts work. Every step charges abstract
//! work units *before* doing the work — a base cost per opcode plus the bytes
//! it reads, copies, hashes or allocates, big-number products by operand
//! sizes, signature checks a fixed cost plus the bytes hashed (`work`, and
//! `docs/formats.md` "Known limits" for the calibration) — and an input
//! whose total would pass [`ScriptLimits::max_work`] fails with
//! [`ScriptError::WorkBudgetExceeded`].
//!
//! # Layout
//! - [`VerifyFlags`], [`ScriptError`], [`TxContext`], [`ScriptLimits`], [`Metered`].
//! - [`verify_script`], [`verify_script_with_limits`], [`verify_input`],
//!   [`verify_input_cached`], [`verify_input_cached_with_limits`],
//!   [`verify_input_metered`]: the node's `VerifyScript` (unlocking, then
//!   locking, then P2SH, then CLEANSTACK).
//! - `eval`: `EvalScript`, one script, opcode by opcode.
//! - `sig`: signature/key encoding rules, `FindAndDelete`, CHECKSIG, CHECKMULTISIG, lock times.
//! - `num`: script numbers (machine words with a big-integer fallback).
//! - `stack`: the stacks with the node's memory accounting and the work meter.
//! - `work`: the cost model (what each step charges).

mod eval;
pub(crate) mod num;
mod sig;
mod stack;
mod work;

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use crate::codec::{ParseError, ParseErrorKind};
use crate::script::opcodes::{OP_16, OP_EQUAL, OP_HASH160};
use crate::script::{Chunks, Script};
use crate::sighash::SighashCache;
use crate::tx::Transaction;

use eval::{eval_script, stack_bool, Env};

/// Script verification flags: a bit set with the node's values and names
/// (`script_flags.h`). Combine with `|`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VerifyFlags(u32);

/// Flag names as the node's test files spell them, with their bits.
const FLAG_NAMES: [(&str, VerifyFlags); 20] = [
    ("NONE", VerifyFlags::NONE),
    ("P2SH", VerifyFlags::P2SH),
    ("STRICTENC", VerifyFlags::STRICTENC),
    ("DERSIG", VerifyFlags::DERSIG),
    ("LOW_S", VerifyFlags::LOW_S),
    ("NULLDUMMY", VerifyFlags::NULLDUMMY),
    ("SIGPUSHONLY", VerifyFlags::SIGPUSHONLY),
    ("MINIMALDATA", VerifyFlags::MINIMALDATA),
    (
        "DISCOURAGE_UPGRADABLE_NOPS",
        VerifyFlags::DISCOURAGE_UPGRADABLE_NOPS,
    ),
    ("CLEANSTACK", VerifyFlags::CLEANSTACK),
    ("CHECKLOCKTIMEVERIFY", VerifyFlags::CHECKLOCKTIMEVERIFY),
    ("CHECKSEQUENCEVERIFY", VerifyFlags::CHECKSEQUENCEVERIFY),
    ("MINIMALIF", VerifyFlags::MINIMALIF),
    ("NULLFAIL", VerifyFlags::NULLFAIL),
    ("COMPRESSED_PUBKEYTYPE", VerifyFlags::COMPRESSED_PUBKEYTYPE),
    ("SIGHASH_FORKID", VerifyFlags::SIGHASH_FORKID),
    ("GENESIS", VerifyFlags::GENESIS),
    ("UTXO_AFTER_GENESIS", VerifyFlags::UTXO_AFTER_GENESIS),
    ("CHRONICLE", VerifyFlags::CHRONICLE),
    ("UTXO_AFTER_CHRONICLE", VerifyFlags::UTXO_AFTER_CHRONICLE),
];

impl VerifyFlags {
    /// No flags (`SCRIPT_VERIFY_NONE`).
    pub const NONE: VerifyFlags = VerifyFlags(0);
    /// Evaluate P2SH redeem scripts (BIP16); only for pre-Genesis UTXOs.
    pub const P2SH: VerifyFlags = VerifyFlags(1 << 0);
    /// Strict DER signatures, defined sighash types, well-formed public keys.
    pub const STRICTENC: VerifyFlags = VerifyFlags(1 << 1);
    /// Strict DER signatures (BIP66).
    pub const DERSIG: VerifyFlags = VerifyFlags(1 << 2);
    /// Low S signatures (BIP62 rule 5).
    pub const LOW_S: VerifyFlags = VerifyFlags(1 << 3);
    /// The CHECKMULTISIG dummy element must be empty (BIP62 rule 7).
    pub const NULLDUMMY: VerifyFlags = VerifyFlags(1 << 4);
    /// Unlocking scripts may only push data (BIP62 rule 2); applied with GENESIS or CHRONICLE.
    pub const SIGPUSHONLY: VerifyFlags = VerifyFlags(1 << 5);
    /// Minimal pushes and minimally encoded numbers (BIP62 rules 3 and 4).
    pub const MINIMALDATA: VerifyFlags = VerifyFlags(1 << 6);
    /// Executing OP_NOP1, OP_NOP9, OP_NOP10 (and, where they are NOPs, the lock-time and Chronicle opcodes) fails.
    pub const DISCOURAGE_UPGRADABLE_NOPS: VerifyFlags = VerifyFlags(1 << 7);
    /// Exactly one stack item must remain (BIP62 rule 6); requires P2SH.
    pub const CLEANSTACK: VerifyFlags = VerifyFlags(1 << 8);
    /// Enforce OP_CHECKLOCKTIMEVERIFY (BIP65) for pre-Genesis UTXOs.
    pub const CHECKLOCKTIMEVERIFY: VerifyFlags = VerifyFlags(1 << 9);
    /// Enforce OP_CHECKSEQUENCEVERIFY (BIP112) for pre-Genesis UTXOs.
    pub const CHECKSEQUENCEVERIFY: VerifyFlags = VerifyFlags(1 << 10);
    /// The OP_IF/OP_NOTIF argument must be empty or `0x01`.
    pub const MINIMALIF: VerifyFlags = VerifyFlags(1 << 13);
    /// A failed CHECK(MULTI)SIG must have had empty signatures.
    pub const NULLFAIL: VerifyFlags = VerifyFlags(1 << 14);
    /// Public keys must be compressed.
    pub const COMPRESSED_PUBKEYTYPE: VerifyFlags = VerifyFlags(1 << 15);
    /// Signatures must use SIGHASH_FORKID (and get the BIP143-style digest); implies STRICTENC.
    pub const SIGHASH_FORKID: VerifyFlags = VerifyFlags(1 << 16);
    /// The spending transaction is in a post-Genesis block.
    pub const GENESIS: VerifyFlags = VerifyFlags(1 << 18);
    /// The UTXO being spent was created after Genesis (per input).
    pub const UTXO_AFTER_GENESIS: VerifyFlags = VerifyFlags(1 << 19);
    /// The spending transaction is in a post-Chronicle block.
    pub const CHRONICLE: VerifyFlags = VerifyFlags(1 << 20);
    /// The UTXO being spent was created after Chronicle (per input); requires UTXO_AFTER_GENESIS.
    pub const UTXO_AFTER_CHRONICLE: VerifyFlags = VerifyFlags(1 << 21);

    /// The raw bits (node values).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw node bits (unknown bits are kept and ignored).
    pub const fn from_bits(bits: u32) -> VerifyFlags {
        VerifyFlags(bits)
    }

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: VerifyFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag in `other` is set.
    pub const fn intersects(self, other: VerifyFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// These flags without those in `other`.
    pub const fn without(self, other: VerifyFlags) -> VerifyFlags {
        VerifyFlags(self.0 & !other.0)
    }

    /// Parses a comma-separated list of node flag names, e.g.
    /// `"P2SH,STRICTENC,UTXO_AFTER_GENESIS"`; `""` and `"NONE"` are no flags.
    /// Names are those of the node's test files (`test/scriptflags.cpp`).
    ///
    /// # Errors
    /// [`ParseErrorKind::BadText`] at the byte offset of an unknown name.
    pub fn from_node_names(names: &str) -> Result<VerifyFlags, ParseError> {
        let mut flags = VerifyFlags::NONE;
        if names.is_empty() {
            return Ok(flags);
        }
        let mut offset = 0usize;
        for word in names.split(',') {
            let name = word.trim();
            match FLAG_NAMES.iter().find(|(n, _)| *n == name) {
                Some((_, f)) => flags |= *f,
                None => {
                    return Err(ParseError::new(
                        offset,
                        ParseErrorKind::BadText,
                        "verify flag name",
                    ))
                }
            }
            offset += word.len() + 1;
        }
        Ok(flags)
    }

    /// The flags a current (1.2.x) node applies under standard policy when a
    /// post-Chronicle transaction spends a UTXO created after Chronicle:
    /// the mandatory set (P2SH, STRICTENC, SIGHASH_FORKID, NULLFAIL, LOW_S,
    /// CHRONICLE), the standard additions (DERSIG, NULLDUMMY,
    /// DISCOURAGE_UPGRADABLE_NOPS, CHECKLOCKTIMEVERIFY, CHECKSEQUENCEVERIFY,
    /// CLEANSTACK, MINIMALDATA), the block era (GENESIS) and the per-input
    /// flags (SIGPUSHONLY, UTXO_AFTER_GENESIS, UTXO_AFTER_CHRONICLE) — node
    /// `StandardScriptVerifyFlags` and `InputScriptVerifyFlags` (`policy.h`,
    /// `script/standard.h`). MINIMALIF is not in the node's standard set.
    /// For a UTXO created between Genesis and Chronicle, remove
    /// `UTXO_AFTER_CHRONICLE` ([`without`](Self::without)).
    pub const fn standard_post_chronicle() -> VerifyFlags {
        VerifyFlags(
            VerifyFlags::P2SH.0
                | VerifyFlags::STRICTENC.0
                | VerifyFlags::SIGHASH_FORKID.0
                | VerifyFlags::NULLFAIL.0
                | VerifyFlags::LOW_S.0
                | VerifyFlags::CHRONICLE.0
                | VerifyFlags::DERSIG.0
                | VerifyFlags::NULLDUMMY.0
                | VerifyFlags::DISCOURAGE_UPGRADABLE_NOPS.0
                | VerifyFlags::CHECKLOCKTIMEVERIFY.0
                | VerifyFlags::CHECKSEQUENCEVERIFY.0
                | VerifyFlags::CLEANSTACK.0
                | VerifyFlags::MINIMALDATA.0
                | VerifyFlags::GENESIS.0
                | VerifyFlags::SIGPUSHONLY.0
                | VerifyFlags::UTXO_AFTER_GENESIS.0
                | VerifyFlags::UTXO_AFTER_CHRONICLE.0,
        )
    }
}

impl BitOr for VerifyFlags {
    type Output = VerifyFlags;
    fn bitor(self, rhs: VerifyFlags) -> VerifyFlags {
        VerifyFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for VerifyFlags {
    fn bitor_assign(&mut self, rhs: VerifyFlags) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for VerifyFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = FLAG_NAMES
            .iter()
            .filter(|(_, v)| v.0 != 0 && self.contains(*v))
            .map(|(n, _)| *n)
            .collect();
        write!(f, "VerifyFlags({})", names.join(","))
    }
}

/// Why a script failed, one variant per node `ScriptError`
/// (`script/script_error.h`) plus two of our own ([`InputIndexOutOfRange`](Self::InputIndexOutOfRange),
/// [`WorkBudgetExceeded`](Self::WorkBudgetExceeded)); [`node_name`](Self::node_name)
/// gives the name the node's test files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ScriptError {
    /// The script ended with an empty stack or a false top item.
    #[error("script evaluated to false")]
    EvalFalse,
    /// OP_RETURN was executed (pre-Genesis UTXO).
    #[error("OP_RETURN was encountered")]
    OpReturn,
    /// A script is longer than allowed (10,000 bytes before Genesis).
    #[error("script is too big")]
    ScriptSize,
    /// A push or result is longer than 520 bytes (pre-Genesis), or OP_NUM2BIN's size is out of range.
    #[error("push value size limit exceeded")]
    PushSize,
    /// More than 500 non-push opcodes (pre-Genesis).
    #[error("operation limit exceeded")]
    OpCount,
    /// More than 1,000 stack items (pre-Genesis) or the stack memory limit exceeded.
    #[error("stack size limit exceeded")]
    StackSize,
    /// CHECKMULTISIG signature count negative or above the key count.
    #[error("signature count negative or greater than pubkey count")]
    SigCount,
    /// CHECKMULTISIG key count negative or above the limit.
    #[error("pubkey count negative or limit exceeded")]
    PubkeyCount,
    /// Bitwise operands of different sizes.
    #[error("invalid operand size")]
    InvalidOperandSize,
    /// A number argument is out of range (BIN2NUM, shifts, SUBSTR, LEFT, RIGHT).
    #[error("given operand is not a number within the valid range")]
    InvalidNumberRange,
    /// OP_NUM2BIN cannot fit the number in the requested size.
    #[error("the encoding is not possible")]
    ImpossibleEncoding,
    /// OP_SPLIT position out of range.
    #[error("invalid OP_SPLIT range")]
    InvalidSplitRange,
    /// A number operand or result is longer than allowed.
    #[error("script number overflow")]
    ScriptNumOverflow,
    /// A number operand is not minimally encoded (MINIMALDATA).
    #[error("non-minimally encoded script number")]
    ScriptNumMinEncode,
    /// OP_VERIFY failed.
    #[error("script failed an OP_VERIFY operation")]
    Verify,
    /// OP_EQUALVERIFY failed.
    #[error("script failed an OP_EQUALVERIFY operation")]
    EqualVerify,
    /// OP_CHECKMULTISIGVERIFY failed.
    #[error("script failed an OP_CHECKMULTISIGVERIFY operation")]
    CheckMultiSigVerify,
    /// OP_CHECKSIGVERIFY failed.
    #[error("script failed an OP_CHECKSIGVERIFY operation")]
    CheckSigVerify,
    /// OP_NUMEQUALVERIFY failed.
    #[error("script failed an OP_NUMEQUALVERIFY operation")]
    NumEqualVerify,
    /// An undefined or not-yet-enabled opcode was executed, or a push runs past the end.
    #[error("opcode missing or not understood")]
    BadOpcode,
    /// A disabled opcode (OP_2MUL, OP_2DIV before Chronicle).
    #[error("attempted to use a disabled opcode")]
    DisabledOpcode,
    /// Too few stack items for an operation, or an index out of range.
    #[error("operation not valid with the current stack size")]
    InvalidStackOperation,
    /// OP_FROMALTSTACK on an empty alt stack.
    #[error("operation not valid with the current altstack size")]
    InvalidAltstackOperation,
    /// IF/ELSE/ENDIF do not match.
    #[error("invalid OP_IF construction")]
    UnbalancedConditional,
    /// OP_DIV by zero.
    #[error("division by zero error")]
    DivByZero,
    /// OP_MOD by zero.
    #[error("modulo by zero error")]
    ModByZero,
    /// CLTV/CSV operand negative.
    #[error("negative locktime")]
    NegativeLocktime,
    /// CLTV/CSV requirement not met by the transaction.
    #[error("locktime requirement not satisfied")]
    UnsatisfiedLocktime,
    /// Undefined sighash type (STRICTENC).
    #[error("signature hash type missing or not understood")]
    SigHashType,
    /// Not a strict DER signature.
    #[error("non-canonical DER signature")]
    SigDer,
    /// A push is not minimal (MINIMALDATA).
    #[error("data push larger than necessary")]
    MinimalData,
    /// The unlocking script is not push-only.
    #[error("only push operators allowed in signatures")]
    SigPushOnly,
    /// S above half the curve order (LOW_S).
    #[error("non-canonical signature: S value is unnecessarily high")]
    SigHighS,
    /// CHECKMULTISIG dummy not empty (NULLDUMMY).
    #[error("dummy CHECKMULTISIG argument must be zero")]
    SigNullDummy,
    /// Malformed public key (STRICTENC).
    #[error("public key is neither compressed nor uncompressed")]
    PubkeyType,
    /// More than one stack item left (CLEANSTACK).
    #[error("extra items left on stack after execution")]
    CleanStack,
    /// OP_IF/NOTIF argument not empty or `0x01` (MINIMALIF).
    #[error("OP_IF/NOTIF argument must be minimal")]
    MinimalIf,
    /// A failed signature check had a non-empty signature (NULLFAIL).
    #[error("signature must be zero for failed CHECK(MULTI)SIG operation")]
    SigNullFail,
    /// An upgradable NOP was executed (DISCOURAGE_UPGRADABLE_NOPS).
    #[error("NOPx reserved for soft-fork upgrades")]
    DiscourageUpgradableNops,
    /// Uncompressed public key (COMPRESSED_PUBKEYTYPE).
    #[error("using non-compressed public key")]
    NonCompressedPubkey,
    /// SIGHASH_FORKID used without the SIGHASH_FORKID flag.
    #[error("illegal use of SIGHASH_FORKID")]
    IllegalForkId,
    /// SIGHASH_FORKID required but missing.
    #[error("signature must use SIGHASH_FORKID")]
    MustUseForkId,
    /// SIGHASH_CHRONICLE used before Chronicle.
    #[error("illegal use of SIGHASH_CHRONICLE")]
    IllegalChronicle,
    /// A big-number operation the node refuses (a shift of more than 2^31-1 bits).
    #[error("big integer operation out of range")]
    BigInt,
    /// An invalid flag combination (UTXO_AFTER_CHRONICLE without UTXO_AFTER_GENESIS, CLEANSTACK without P2SH).
    #[error("invalid combination of verification flags")]
    InvalidFlags,
    /// The context's input index is not an input of its transaction (not a node error).
    #[error("input index out of range for the transaction")]
    InputIndexOutOfRange,
    /// The input would use more than [`ScriptLimits::max_work`] work units
    /// (not a node error: the node bounds execution time with a timeout).
    #[error("script work budget exceeded")]
    WorkBudgetExceeded,
}

impl ScriptError {
    /// The node's name for this error as used in its test files
    /// (`test/script_tests.cpp`), e.g. `"EVAL_FALSE"`, `"SIG_DER"`, `"NULLFAIL"`.
    /// [`InputIndexOutOfRange`](Self::InputIndexOutOfRange) and
    /// [`WorkBudgetExceeded`](Self::WorkBudgetExceeded) have no node
    /// counterpart and are named `"INPUT_INDEX"` and `"WORK_BUDGET"`.
    pub fn node_name(&self) -> &'static str {
        match self {
            ScriptError::EvalFalse => "EVAL_FALSE",
            ScriptError::OpReturn => "OP_RETURN",
            ScriptError::ScriptSize => "SCRIPT_SIZE",
            ScriptError::PushSize => "PUSH_SIZE",
            ScriptError::OpCount => "OP_COUNT",
            ScriptError::StackSize => "STACK_SIZE",
            ScriptError::SigCount => "SIG_COUNT",
            ScriptError::PubkeyCount => "PUBKEY_COUNT",
            ScriptError::InvalidOperandSize => "OPERAND_SIZE",
            ScriptError::InvalidNumberRange => "INVALID_NUMBER_RANGE",
            ScriptError::ImpossibleEncoding => "IMPOSSIBLE_ENCODING",
            ScriptError::InvalidSplitRange => "SPLIT_RANGE",
            ScriptError::ScriptNumOverflow => "SCRIPTNUM_OVERFLOW",
            ScriptError::ScriptNumMinEncode => "SCRIPTNUM_MINENCODE",
            ScriptError::Verify => "VERIFY",
            ScriptError::EqualVerify => "EQUALVERIFY",
            ScriptError::CheckMultiSigVerify => "CHECKMULTISIGVERIFY",
            ScriptError::CheckSigVerify => "CHECKSIGVERIFY",
            ScriptError::NumEqualVerify => "NUMEQUALVERIFY",
            ScriptError::BadOpcode => "BAD_OPCODE",
            ScriptError::DisabledOpcode => "DISABLED_OPCODE",
            ScriptError::InvalidStackOperation => "INVALID_STACK_OPERATION",
            ScriptError::InvalidAltstackOperation => "INVALID_ALTSTACK_OPERATION",
            ScriptError::UnbalancedConditional => "UNBALANCED_CONDITIONAL",
            ScriptError::DivByZero => "DIV_BY_ZERO",
            ScriptError::ModByZero => "MOD_BY_ZERO",
            ScriptError::NegativeLocktime => "NEGATIVE_LOCKTIME",
            ScriptError::UnsatisfiedLocktime => "UNSATISFIED_LOCKTIME",
            ScriptError::SigHashType => "SIG_HASHTYPE",
            ScriptError::SigDer => "SIG_DER",
            ScriptError::MinimalData => "MINIMALDATA",
            ScriptError::SigPushOnly => "SIG_PUSHONLY",
            ScriptError::SigHighS => "SIG_HIGH_S",
            ScriptError::SigNullDummy => "SIG_NULLDUMMY",
            ScriptError::PubkeyType => "PUBKEYTYPE",
            ScriptError::CleanStack => "CLEANSTACK",
            ScriptError::MinimalIf => "MINIMALIF",
            ScriptError::SigNullFail => "NULLFAIL",
            ScriptError::DiscourageUpgradableNops => "DISCOURAGE_UPGRADABLE_NOPS",
            ScriptError::NonCompressedPubkey => "NONCOMPRESSED_PUBKEY",
            ScriptError::IllegalForkId => "ILLEGAL_FORKID",
            ScriptError::MustUseForkId => "MISSING_FORKID",
            ScriptError::IllegalChronicle => "ILLEGAL_CHRONICLE",
            ScriptError::BigInt => "BIG_INT",
            ScriptError::InvalidFlags => "INVALID_FLAGS",
            ScriptError::InputIndexOutOfRange => "INPUT_INDEX",
            ScriptError::WorkBudgetExceeded => "WORK_BUDGET",
        }
    }
}

/// The transaction side of a verification: the spending transaction, which of
/// its inputs is being verified, and the value of the output it spends.
#[derive(Debug, Clone, Copy)]
pub struct TxContext<'a> {
    /// The spending transaction.
    pub tx: &'a Transaction,
    /// Index of the input whose scripts are verified.
    pub input_index: usize,
    /// Value in satoshis of the output being spent (signed by FORKID signatures).
    pub satoshis: u64,
}

/// Resource limits that are not fixed by the UTXO era. Pre-Genesis limits are
/// consensus constants and not configurable.
///
/// Two presets: [`Default`] keeps the consensus number lengths (what the
/// node's script test files exercise) and [`policy`](Self::policy) the node's
/// default policy lengths; both have the 100 MB stack-memory cap and the
/// calibrated work budget [`POLICY_MAX_WORK`](Self::POLICY_MAX_WORK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// Post-Genesis cap on stack + alt stack memory in bytes, each element
    /// counting its length plus 32 bytes. The node's consensus value is
    /// unbounded (`INT64_MAX`); a verifier must bound it, so the default is the
    /// node's default policy value, 100,000,000 bytes. Exceeding it is
    /// [`ScriptError::StackSize`].
    pub max_stack_memory: u64,
    /// Longest number operand in bytes for post-Genesis, pre-Chronicle UTXOs
    /// (consensus: 750,000; node policy `maxscriptnumlengthpolicy`: 10,000).
    pub max_num_len_after_genesis: usize,
    /// Longest number operand in bytes for post-Chronicle UTXOs (consensus:
    /// 32,000,000; node policy: 10,000).
    pub max_num_len_after_chronicle: usize,
    /// Work budget of one input (unlocking, locking and any P2SH script
    /// together) in work units: every opcode costs a base charge plus the
    /// bytes it reads, copies, hashes or allocates; big-number MUL/DIV/MOD
    /// the product of their operand lengths (in 64-bit limbs); a signature
    /// check a fixed cost plus the bytes its digest hashes. Each charge is
    /// made before the work, so an oversized step is refused before it runs;
    /// passing the budget is [`ScriptError::WorkBudgetExceeded`]. Any era.
    /// `u64::MAX` disables the budget.
    pub max_work: u64,
}

impl ScriptLimits {
    /// The per-input work budget of both presets: 400,000,000 units. On the
    /// calibration machine (`docs/formats.md`, "Known limits") the most
    /// expensive script we could build per unit takes about 100 ms to exhaust
    /// it, while a P2PKH input uses 259,639 units (0.065 %) and the heaviest
    /// row of the node's script tests 0.68 %.
    pub const POLICY_MAX_WORK: u64 = 400_000_000;

    /// The node's default *policy* limits: numbers of at most 10,000 bytes in
    /// both post-Genesis eras (`maxscriptnumlengthpolicy`, `DEFAULT_SCRIPT_NUM_LENGTH_POLICY`
    /// in the node's `policy.h`), 100,000,000 bytes of stack memory
    /// (`DEFAULT_STACK_MEMORY_USAGE_POLICY`) and the work budget
    /// [`POLICY_MAX_WORK`](Self::POLICY_MAX_WORK). What a verifier of
    /// counterparty-supplied transactions should use (and the SPV default).
    pub const fn policy() -> ScriptLimits {
        ScriptLimits {
            max_stack_memory: 100_000_000,
            max_num_len_after_genesis: 10_000,
            max_num_len_after_chronicle: 10_000,
            max_work: ScriptLimits::POLICY_MAX_WORK,
        }
    }
}

/// Consensus number lengths (750,000 bytes after Genesis, 32,000,000 after
/// Chronicle), 100,000,000 bytes of stack memory and the work budget
/// [`ScriptLimits::POLICY_MAX_WORK`]: the node's script test files pass under
/// these, and nothing runs unbounded. Numbers near the consensus lengths
/// exhaust the work budget long before they reach the length caps.
impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_stack_memory: 100_000_000,
            max_num_len_after_genesis: 750_000,
            max_num_len_after_chronicle: 32_000_000,
            max_work: ScriptLimits::POLICY_MAX_WORK,
        }
    }
}

/// The verdict on one input together with the work it used
/// ([`verify_input_metered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metered {
    /// The verdict, as [`verify_input_cached_with_limits`] returns it.
    pub result: Result<(), ScriptError>,
    /// Work units charged, in the units of [`ScriptLimits::max_work`],
    /// including a refused charge: `work > max_work` exactly when the result
    /// is [`ScriptError::WorkBudgetExceeded`].
    pub work: u64,
}

/// Verifies that `unlocking` satisfies `locking` for the input described by
/// `ctx`, under `flags`, with the default [`ScriptLimits`] (node
/// `VerifyScript`, consensus number lengths, 100 MB stack memory, the
/// calibrated work budget).
///
/// # Errors
/// The first [`ScriptError`] the node would report; never panics, whatever
/// the script bytes or the input index.
pub fn verify_script(
    unlocking: &Script,
    locking: &Script,
    flags: VerifyFlags,
    ctx: &TxContext<'_>,
) -> Result<(), ScriptError> {
    verify_script_with_limits(unlocking, locking, flags, ctx, &ScriptLimits::default())
}

/// [`verify_script`] with explicit [`ScriptLimits`].
///
/// # Errors
/// As [`verify_script`].
pub fn verify_script_with_limits(
    unlocking: &Script,
    locking: &Script,
    flags: VerifyFlags,
    ctx: &TxContext<'_>,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    let cache = SighashCache::new(ctx.tx);
    verify(
        &cache,
        ctx.input_index,
        unlocking,
        locking,
        ctx.satoshis,
        flags,
        limits,
    )
    .result
}

/// Verifies input `input_index` of `tx`, which spends an output of
/// `satoshis` locked by `locking_script`, under `flags` (default limits).
///
/// # Errors
/// [`ScriptError::InputIndexOutOfRange`] if `tx` has no such input, else as
/// [`verify_script`].
pub fn verify_input(
    tx: &Transaction,
    input_index: usize,
    locking_script: &Script,
    satoshis: u64,
    flags: VerifyFlags,
) -> Result<(), ScriptError> {
    verify_input_cached(
        &SighashCache::new(tx),
        input_index,
        locking_script,
        satoshis,
        flags,
    )
}

/// [`verify_input`] for the transaction of `cache`, sharing its
/// `hashPrevouts`/`hashSequence`/`hashOutputs` between the inputs of one
/// transaction (use one cache per transaction; it is `Sync`, so inputs may be
/// verified in parallel).
///
/// # Errors
/// As [`verify_input`].
pub fn verify_input_cached(
    cache: &SighashCache<'_>,
    input_index: usize,
    locking_script: &Script,
    satoshis: u64,
    flags: VerifyFlags,
) -> Result<(), ScriptError> {
    verify_input_cached_with_limits(
        cache,
        input_index,
        locking_script,
        satoshis,
        flags,
        &ScriptLimits::default(),
    )
}

/// [`verify_input_cached`] with explicit [`ScriptLimits`] (use
/// [`ScriptLimits::policy`] for transactions from a counterparty).
///
/// # Errors
/// As [`verify_input`], and [`ScriptError::WorkBudgetExceeded`] when the
/// input needs more than `limits.max_work`.
pub fn verify_input_cached_with_limits(
    cache: &SighashCache<'_>,
    input_index: usize,
    locking_script: &Script,
    satoshis: u64,
    flags: VerifyFlags,
    limits: &ScriptLimits,
) -> Result<(), ScriptError> {
    verify_input_metered(cache, input_index, locking_script, satoshis, flags, limits).result
}

/// [`verify_input_cached_with_limits`], also reporting the work the input
/// used (for a caller that budgets many inputs together, as SPV does, and
/// for calibration). Never panics.
pub fn verify_input_metered(
    cache: &SighashCache<'_>,
    input_index: usize,
    locking_script: &Script,
    satoshis: u64,
    flags: VerifyFlags,
    limits: &ScriptLimits,
) -> Metered {
    match cache.tx().inputs.get(input_index) {
        Some(input) => verify(
            cache,
            input_index,
            &input.unlocking_script,
            locking_script,
            satoshis,
            flags,
            limits,
        ),
        None => Metered {
            result: Err(ScriptError::InputIndexOutOfRange),
            work: 0,
        },
    }
}

/// The node's `VerifyScript`, metered.
fn verify(
    cache: &SighashCache<'_>,
    input_index: usize,
    unlocking: &Script,
    locking: &Script,
    satoshis: u64,
    flags: VerifyFlags,
    limits: &ScriptLimits,
) -> Metered {
    let mut flags = flags;
    if flags.contains(VerifyFlags::SIGHASH_FORKID) {
        flags |= VerifyFlags::STRICTENC;
    }
    let env = Env::new(flags, cache, input_index, satoshis, limits);
    let mut stacks = env.new_stacks();
    let result = verify_on(&env, &mut stacks, unlocking, locking);
    Metered {
        result,
        work: stacks.work(),
    }
}

fn verify_on(
    env: &Env<'_>,
    stacks: &mut stack::Stacks,
    unlocking: &Script,
    locking: &Script,
) -> Result<(), ScriptError> {
    let cache = env.sighash;
    let input_index = env.input_index;
    let flags = env.flags;
    if input_index >= cache.tx().inputs.len() {
        return Err(ScriptError::InputIndexOutOfRange);
    }
    if flags.contains(VerifyFlags::UTXO_AFTER_CHRONICLE)
        && !flags.contains(VerifyFlags::UTXO_AFTER_GENESIS)
    {
        return Err(ScriptError::InvalidFlags);
    }
    let unlocking = unlocking.as_bytes();
    let locking = locking.as_bytes();
    if flags.contains(VerifyFlags::SIGPUSHONLY) {
        let genesis = flags.contains(VerifyFlags::GENESIS);
        let chronicle = flags.contains(VerifyFlags::CHRONICLE);
        if ((genesis && !chronicle) || (chronicle && env.version <= 1)) && !is_push_only(unlocking)
        {
            return Err(ScriptError::SigPushOnly);
        }
    }

    eval_script(env, stacks, unlocking, Some(locking))?;

    // P2SH (BIP16) applies to pre-Genesis UTXOs only; keep the stack the
    // unlocking script left, to evaluate the redeem script on it.
    let p2sh = flags.contains(VerifyFlags::P2SH) && !env.after_genesis && is_p2sh(locking);
    let saved = if p2sh {
        stacks.charge_work(stacks.memory().saturating_mul(work::COPY))?;
        Some(stacks.main.clone())
    } else {
        None
    };

    eval_script(env, stacks, locking, None)?;
    if stacks.len() == 0 || !stack_bool(stacks, 1)? {
        return Err(ScriptError::EvalFalse);
    }

    if let Some(saved) = saved {
        if !is_push_only(unlocking) {
            return Err(ScriptError::SigPushOnly);
        }
        stacks.replace_main(saved);
        // Not empty: the P2SH locking script just succeeded on this stack.
        let redeem = stacks.pop()?;
        eval_script(env, stacks, &redeem, None)?;
        if stacks.len() == 0 || !stack_bool(stacks, 1)? {
            return Err(ScriptError::EvalFalse);
        }
    }

    if flags.contains(VerifyFlags::CLEANSTACK) {
        if !flags.contains(VerifyFlags::P2SH) {
            return Err(ScriptError::InvalidFlags);
        }
        if env.enforce_strict && stacks.len() != 1 {
            return Err(ScriptError::CleanStack);
        }
    }
    Ok(())
}

/// Whether `script` parses and has only push opcodes (`<= OP_16`, node
/// `CScript::IsPushOnly`).
fn is_push_only(script: &[u8]) -> bool {
    Chunks::new(script).all(|c| c.is_ok_and(|c| c.opcode <= OP_16))
}

/// Whether `script` is the P2SH pattern `OP_HASH160 <20 bytes> OP_EQUAL`.
fn is_p2sh(script: &[u8]) -> bool {
    script.len() == 23
        && script.first() == Some(&OP_HASH160)
        && script.get(1) == Some(&0x14)
        && script.get(22) == Some(&OP_EQUAL)
}

#[cfg(test)]
mod tests;
