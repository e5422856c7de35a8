//! proptest strategies shared by `proptest_roundtrip.rs` and
//! `proptest_mutation.rs`: random transactions, scripts built from chunks, and
//! (via the producer APIs) EF transactions, BUMPs and BEEFs.
#![allow(dead_code)]

use bsv_format::script::opcodes::*;
use bsv_format::{Outpoint, Script, Transaction, TxIn, TxOut, Txid};
use proptest::prelude::*;

/// `cases` cases (or `$PROPTEST_CASES`), no failure-persistence files (the
/// minimal failing input is printed; turn it into a `#[test]` instead).
pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Random script bytes, biased towards short scripts.
pub fn script_bytes(max: usize) -> impl Strategy<Value = Script> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(Script::from_bytes)
}

/// A random 32-byte txid.
pub fn txid() -> impl Strategy<Value = Txid> {
    any::<[u8; 32]>().prop_map(Txid)
}

/// A random input (any outpoint, script of up to 120 bytes, any sequence).
pub fn tx_in() -> impl Strategy<Value = TxIn> {
    (txid(), any::<u32>(), script_bytes(120), any::<u32>()).prop_map(
        |(txid, vout, unlocking_script, sequence)| TxIn {
            prev_out: Outpoint { txid, vout },
            unlocking_script,
            sequence,
        },
    )
}

/// A random output (any satoshi value, script of up to 120 bytes).
pub fn tx_out() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), script_bytes(120)).prop_map(|(satoshis, locking_script)| TxOut {
        satoshis,
        locking_script,
    })
}

/// A random transaction with 1..5 inputs and 0..5 outputs. (Zero inputs is
/// excluded: `version ‖ 00 00 ‖ 000000EF` reads as the EF marker, see
/// `empty_transaction_with_ef_marker_lock_time_reads_as_ef`.)
pub fn transaction() -> impl Strategy<Value = Transaction> {
    (
        any::<u32>(),
        prop::collection::vec(tx_in(), 1..5),
        prop::collection::vec(tx_out(), 0..5),
        any::<u32>(),
    )
        .prop_map(|(version, inputs, outputs, lock_time)| Transaction {
            version,
            inputs,
            outputs,
            lock_time,
        })
}

/// One element of a script under construction.
#[derive(Clone, Debug)]
pub enum ScriptPart {
    /// A non-push opcode (`> OP_PUSHDATA4`).
    Op(u8),
    /// A push of `data` with the given push opcode form.
    Push(PushForm, Vec<u8>),
}

/// How a push is encoded (not necessarily minimally: scripts are stored as is).
#[derive(Clone, Copy, Debug)]
pub enum PushForm {
    /// Opcode `0x00..=0x4b` = the length (data up to 75 bytes).
    Direct,
    /// `OP_PUSHDATA1` + 1-byte length.
    Pushdata1,
    /// `OP_PUSHDATA2` + 2-byte length.
    Pushdata2,
    /// `OP_PUSHDATA4` + 4-byte length.
    Pushdata4,
}

/// A random script element.
pub fn script_part() -> impl Strategy<Value = ScriptPart> {
    prop_oneof![
        3 => (OP_1NEGATE..=0xffu8).prop_map(ScriptPart::Op),
        2 => prop::collection::vec(any::<u8>(), 0..76).prop_map(|d| ScriptPart::Push(PushForm::Direct, d)),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|d| ScriptPart::Push(PushForm::Pushdata1, d)),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|d| ScriptPart::Push(PushForm::Pushdata2, d)),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|d| ScriptPart::Push(PushForm::Pushdata4, d)),
    ]
}

/// The `(opcode, pushed data)` a chunk is expected to parse as.
pub type ExpectedChunk = (u8, Option<Vec<u8>>);

/// Encodes parts into script bytes, returning the bytes and the expected
/// `(opcode, data)` of each chunk. A `Pushdata1` of more than 255 bytes is cut
/// to 255 and a `Direct` push is at most 75 bytes.
pub fn encode_parts(parts: &[ScriptPart]) -> (Vec<u8>, Vec<ExpectedChunk>) {
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    for p in parts {
        match p {
            ScriptPart::Op(op) => {
                out.push(*op);
                chunks.push((*op, None));
            }
            ScriptPart::Push(form, data) => {
                let (op, data) = match form {
                    PushForm::Direct => {
                        let d = &data[..data.len().min(75)];
                        out.push(d.len() as u8);
                        (d.len() as u8, d)
                    }
                    PushForm::Pushdata1 => {
                        let d = &data[..data.len().min(255)];
                        out.extend_from_slice(&[OP_PUSHDATA1, d.len() as u8]);
                        (OP_PUSHDATA1, d)
                    }
                    PushForm::Pushdata2 => {
                        out.push(OP_PUSHDATA2);
                        out.extend_from_slice(&(data.len() as u16).to_le_bytes());
                        (OP_PUSHDATA2, &data[..])
                    }
                    PushForm::Pushdata4 => {
                        out.push(OP_PUSHDATA4);
                        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                        (OP_PUSHDATA4, &data[..])
                    }
                };
                out.extend_from_slice(data);
                chunks.push((op, Some(data.to_vec())));
            }
        }
    }
    (out, chunks)
}

// --- Merkle trees, BUMPs and BEEFs built with the producer APIs -------------

use bsv_format::beef::{Beef, BeefVersion};
use bsv_format::bump::MerklePath;
use bsv_format::keys::PrivateKey;
use bsv_format::script::templates::{p2pkh_lock, p2pkh_unlock, sign_input};
use bsv_format::tx::SEQUENCE_FINAL;
use bsv_format::Hash256;

/// The Merkle root of a whole block, computed the plain way (pairwise
/// `sha256d`, the last node of an odd level paired with itself), as an
/// independent reference for BUMP roots.
pub fn block_merkle_root(txids: &[Txid]) -> Hash256 {
    let mut level: Vec<Hash256> = txids.iter().map(Txid::as_hash).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| Hash256::merkle_parent(&p[0], p.get(1).unwrap_or(&p[0])))
            .collect();
    }
    level[0]
}

/// A random block: `1..max` random txids.
pub fn block(max: usize) -> impl Strategy<Value = Vec<Txid>> {
    prop::collection::vec(txid(), 1..max)
}

/// A block with 1..=3 client indices into it.
pub fn block_with_clients(max: usize) -> impl Strategy<Value = (u32, Vec<Txid>, Vec<usize>)> {
    (any::<u32>(), block(max)).prop_flat_map(|(height, txids)| {
        let n = txids.len();
        (
            Just(height),
            Just(txids),
            prop::collection::vec(0..n, 1..=3),
        )
    })
}

/// How a generated BEEF is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeefShape {
    /// BRC-62.
    V1,
    /// BRC-96.
    V2,
    /// BRC-95 around V1.
    AtomicV1,
    /// BRC-95 around V2.
    AtomicV2,
}

/// A BEEF built with the producer API, with what a chain tracker would know.
#[derive(Clone, Debug)]
pub struct GeneratedBeef {
    /// The BEEF.
    pub beef: Beef,
    /// `(height, root)` of every block a BUMP proves into, computed from the
    /// whole block with [`block_merkle_root`].
    pub roots: Vec<(u32, Hash256)>,
    /// The txids in BEEF order.
    pub txids: Vec<Txid>,
}

/// Parameters of a generated BEEF.
#[derive(Clone, Debug)]
pub struct BeefPlan {
    /// Encoding.
    pub shape: BeefShape,
    /// Last byte of the private key (the others are 0x11).
    pub key_seed: u8,
    /// Per proven parent: height, the other txids of its block, and where the
    /// parent goes among them (taken modulo `len + 1`). Heights must differ.
    pub blocks: Vec<(u32, Vec<Txid>, usize)>,
    /// Unproven descendants after the proven parents (1..=3).
    pub chain: usize,
    /// Txids of the (absent) transactions the parents spend; one per parent.
    pub funding: Vec<Txid>,
    /// Value of each parent's output, satoshis.
    pub satoshis: u64,
}

/// Plans for valid BEEFs: 1–2 proven parents (distinct blocks at distinct
/// heights below 10,000,000), then a chain of 1–3 unproven transactions, the
/// first spending every parent, all P2PKH with real FORKID signatures.
pub fn beef_plan() -> impl Strategy<Value = BeefPlan> {
    (
        prop_oneof![
            Just(BeefShape::V1),
            Just(BeefShape::V2),
            Just(BeefShape::AtomicV1),
            Just(BeefShape::AtomicV2)
        ],
        1u8..=255,
        prop::collection::vec(
            (
                0u32..10_000_000,
                prop::collection::vec(txid(), 0..12),
                any::<usize>(),
            ),
            1..=2,
        ),
        1usize..=3,
        prop::collection::vec(txid(), 2),
        10_000u64..1_000_000_000,
    )
        .prop_map(|(shape, key_seed, mut blocks, chain, funding, satoshis)| {
            if blocks.len() == 2 && blocks[0].0 == blocks[1].0 {
                blocks[1].0 = blocks[0].0.wrapping_add(1) % 10_000_000;
            }
            BeefPlan {
                shape,
                key_seed,
                blocks,
                chain,
                funding,
                satoshis,
            }
        })
}

fn signed_spend(prevs: &[(Txid, u64)], key: &PrivateKey, satoshis: u64) -> Transaction {
    let lock = p2pkh_lock(&key.public_key().hash160());
    let mut tx = Transaction {
        version: 1,
        inputs: prevs
            .iter()
            .map(|(txid, _)| TxIn {
                prev_out: Outpoint::new(*txid, 0),
                unlocking_script: Script::default(),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs: vec![TxOut {
            satoshis,
            locking_script: lock.clone(),
        }],
        lock_time: 0,
    };
    for (i, (_, sats)) in prevs.iter().enumerate() {
        let sig = sign_input(&tx, i, &lock, *sats, 0x41, key).unwrap();
        tx.inputs[i].unlocking_script = p2pkh_unlock(&sig, &key.public_key()).unwrap();
    }
    tx
}

/// Builds the BEEF a plan describes.
pub fn build_beef(plan: &BeefPlan) -> GeneratedBeef {
    let mut scalar = [0x11u8; 32];
    scalar[31] = plan.key_seed;
    let key = PrivateKey::from_bytes(&scalar).unwrap();
    let lock = p2pkh_lock(&key.public_key().hash160());
    let version = match plan.shape {
        BeefShape::V1 | BeefShape::AtomicV1 => BeefVersion::V1,
        BeefShape::V2 | BeefShape::AtomicV2 => BeefVersion::V2,
    };
    let mut beef = Beef::new(version);
    let mut roots = Vec::new();
    let mut parents = Vec::new();
    for (k, (height, others, at)) in plan.blocks.iter().enumerate() {
        let parent = Transaction {
            version: 1,
            inputs: vec![TxIn {
                prev_out: Outpoint::new(plan.funding[k], k as u32),
                unlocking_script: Script::from_bytes(vec![0x01, k as u8]),
                sequence: SEQUENCE_FINAL,
            }],
            outputs: vec![TxOut {
                satoshis: plan.satoshis,
                locking_script: lock.clone(),
            }],
            lock_time: 0,
        };
        let mut block = others.clone();
        let index = at % (block.len() + 1);
        block.insert(index, parent.txid());
        let bump = MerklePath::from_block(*height, &block, &[index]).unwrap();
        roots.push((*height, block_merkle_root(&block)));
        beef.add_bump(bump);
        parents.push((beef.add_transaction(parent), plan.satoshis));
    }
    let mut total: u64 = parents.iter().map(|p| p.1).sum();
    let mut prevs = parents;
    let mut last = prevs[0].0;
    for _ in 0..plan.chain {
        total -= 1_000;
        let tx = signed_spend(&prevs, &key, total);
        last = beef.add_transaction(tx);
        prevs = vec![(last, total)];
    }
    if matches!(plan.shape, BeefShape::AtomicV1 | BeefShape::AtomicV2) {
        beef = beef.to_atomic(&last).unwrap();
    }
    let txids = beef.txs().iter().map(|t| t.txid()).collect();
    GeneratedBeef { beef, roots, txids }
}

/// A generated valid BEEF.
pub fn generated_beef() -> impl Strategy<Value = GeneratedBeef> {
    beef_plan().prop_map(|p| build_beef(&p))
}
