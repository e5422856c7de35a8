use super::*;
use crate::script::Script;
use crate::tx::{Outpoint, TxIn, TxOut, SEQUENCE_FINAL};

/// A transaction spending `inputs` with empty unlocking scripts and paying
/// `outputs` satoshis to `OP_TRUE`; `tag` makes otherwise equal txs distinct.
fn tx(inputs: &[(Txid, u32)], outputs: &[u64], tag: u8) -> Transaction {
    Transaction {
        version: 1,
        inputs: inputs
            .iter()
            .map(|&(txid, vout)| TxIn {
                prev_out: Outpoint::new(txid, vout),
                unlocking_script: Script::from_bytes(vec![tag]),
                sequence: SEQUENCE_FINAL,
            })
            .collect(),
        outputs: outputs
            .iter()
            .map(|&satoshis| TxOut {
                satoshis,
                locking_script: Script::from_bytes(vec![0x51]),
            })
            .collect(),
        lock_time: 0,
    }
}

fn funding(tag: u8) -> Transaction {
    tx(&[(Txid([tag; 32]), 0)], &[10_000], tag)
}

/// Proven funding tx A (BUMP at height 800 with two other txs), child B spending
/// A:0, grandchild C spending B:0 and B:1.
struct Chain {
    beef: Beef,
    a: Txid,
    b: Txid,
    c: Txid,
}

fn chain(version: BeefVersion) -> Chain {
    let a_tx = funding(1);
    let a = a_tx.txid();
    let block = [funding(7).txid(), a, funding(8).txid()];
    let mut beef = Beef::new(version);
    beef.add_bump(MerklePath::from_block(800, &block, &[1]).unwrap());
    beef.add_transaction(a_tx);
    let b_tx = tx(&[(a, 0)], &[6_000, 3_000], 2);
    let b = beef.add_transaction(b_tx);
    let c = beef.add_transaction(tx(&[(b, 0), (b, 1)], &[8_000], 3));
    Chain { beef, a, b, c }
}

fn parse_err(bytes: &[u8]) -> ParseError {
    match Beef::from_bytes(bytes) {
        Err(BeefError::Parse(e)) => e,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn built_beefs_round_trip_in_every_form() {
    for version in [BeefVersion::V1, BeefVersion::V2] {
        let c = chain(version);
        assert_eq!(
            c.beef.txs().iter().map(BeefTx::txid).collect::<Vec<_>>(),
            vec![c.a, c.b, c.c]
        );
        assert_eq!(c.beef.find(&c.a).and_then(BeefTx::bump_index), Some(0));
        assert_eq!(
            c.beef.bumps()[0].client_txids().collect::<Vec<_>>(),
            vec![c.a]
        );
        let bytes = c.beef.to_bytes();
        assert_eq!(&bytes[..4], &version.magic().to_le_bytes());
        let decoded = Beef::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, c.beef);
        assert_eq!(decoded.to_bytes(), bytes);
        let atomic = c.beef.to_atomic(&c.c).unwrap();
        let atomic_bytes = atomic.to_bytes();
        assert_eq!(&atomic_bytes[..4], &[1, 1, 1, 1]);
        assert_eq!(&atomic_bytes[4..36], &c.c.0);
        assert_eq!(
            &atomic_bytes[36..],
            &bytes[..],
            "the whole chain is the closure"
        );
        let decoded = Beef::from_bytes(&atomic_bytes).unwrap();
        assert_eq!(decoded.subject(), Some(c.c));
        assert_eq!(decoded, atomic);
    }
}

#[test]
fn v1_and_v2_place_the_bump_index_differently() {
    let c = chain(BeefVersion::V1);
    let v1 = c.beef.to_bytes();
    let mut v2 = c.beef.clone();
    v2.set_version(BeefVersion::V2).unwrap();
    let v2 = v2.to_bytes();
    let bump_len = c.beef.bumps()[0].to_bytes().len();
    let a_len = c.beef.txs()[0].transaction().unwrap().size();
    // Header: magic 4, bump count 1, bump, tx count 1.
    let start = 4 + 1 + bump_len + 1;
    assert_eq!(
        &v1[start + a_len..start + a_len + 2],
        &[1, 0],
        "V1: raw tx, then has_bump 1, index 0"
    );
    assert_eq!(
        &v2[start..start + 2],
        &[1, 0],
        "V2: format 1, index 0, then raw tx"
    );
    assert_eq!(v1.len(), v2.len());
}

#[test]
fn unknown_magic_and_nested_atomic_prefixes_are_rejected() {
    assert_eq!(
        parse_err(&hex::decode("0100beff01").unwrap()),
        ParseError::new(0, ParseErrorKind::UnknownVersion, "BEEF version")
    );
    assert_eq!(
        parse_err(&hex::decode("0300beef0000").unwrap()).kind,
        ParseErrorKind::UnknownVersion
    );
    let mut nested = vec![1, 1, 1, 1];
    nested.extend_from_slice(&[9; 32]);
    nested.extend_from_slice(&[1, 1, 1, 1]);
    assert_eq!(
        parse_err(&nested),
        ParseError::new(36, ParseErrorKind::UnknownVersion, "BEEF version")
    );
}

#[test]
fn truncation_and_trailing_bytes_are_rejected() {
    let bytes = chain(BeefVersion::V2).beef.to_bytes();
    for cut in [1, 5, bytes.len() / 2, bytes.len() - 1] {
        let e = parse_err(&bytes[..cut]);
        assert!(
            matches!(
                e.kind,
                ParseErrorKind::UnexpectedEnd | ParseErrorKind::CountTooLarge
            ),
            "cut {cut}: {e:?}"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        parse_err(&long),
        ParseError::new(bytes.len(), ParseErrorKind::TrailingBytes, "end of BEEF")
    );
    // "0200beef000000": 0 BUMPs, 0 txs, one byte too many (bsv-formats.md §12.11).
    assert_eq!(
        parse_err(&hex::decode("0200beef000000").unwrap()).kind,
        ParseErrorKind::TrailingBytes
    );
    assert!(Beef::from_bytes(&hex::decode("0200beef0000").unwrap())
        .unwrap()
        .is_empty());
}

#[test]
fn undefined_flag_and_format_bytes_are_rejected() {
    let mut v1 = Beef::new(BeefVersion::V1);
    v1.add_transaction(funding(1));
    let mut bytes = v1.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] = 2;
    assert_eq!(
        parse_err(&bytes),
        ParseError::new(
            last,
            ParseErrorKind::InvalidFlag,
            "BEEF V1 has-bump flag (0 or 1)"
        )
    );
    let mut v2 = Beef::new(BeefVersion::V2);
    v2.add_transaction(funding(1));
    let mut bytes = v2.to_bytes();
    bytes[6] = 3;
    assert_eq!(
        parse_err(&bytes),
        ParseError::new(
            6,
            ParseErrorKind::InvalidFlag,
            "BEEF V2 format byte (0, 1 or 2)"
        )
    );
}

#[test]
fn bump_indexes_must_be_in_range() {
    let mut v2 = Beef::new(BeefVersion::V2);
    v2.add_transaction(funding(1));
    let mut bytes = v2.to_bytes();
    // Turn format 0 into format 1 with index 0 while there is no BUMP.
    bytes.splice(6..7, [1, 0]);
    assert_eq!(
        parse_err(&bytes),
        ParseError::new(7, ParseErrorKind::IndexOutOfRange, "BEEF bump index")
    );
}

#[test]
fn a_bump_that_contradicts_itself_is_reported_with_its_index() {
    let c = chain(BeefVersion::V2);
    // Second BUMP: four leaves (0 and 2 clients) plus a wrong level-1 node at
    // offset 1, which leaf 0 climbs through while leaf 2 computes it.
    let leaves: Vec<Txid> = (20..24).map(|t| funding(t).txid()).collect();
    let mut bump = vec![0xfd, 0x20, 0x03, 2, 4];
    for (i, leaf) in leaves.iter().enumerate() {
        bump.extend_from_slice(&[i as u8, if i % 2 == 0 { 2 } else { 0 }]);
        bump.extend_from_slice(&leaf.0);
    }
    bump.extend_from_slice(&[1, 1, 0]);
    bump.extend_from_slice(&[0xaa; 32]);
    let mut bytes = hex::decode("0200beef02").unwrap();
    bytes.extend_from_slice(&c.beef.bumps()[0].to_bytes());
    bytes.extend_from_slice(&bump);
    bytes.push(0);
    assert_eq!(
        Beef::from_bytes(&bytes),
        Err(BeefError::Bump {
            index: 1,
            error: BumpError::MismatchedRoots
        })
    );
    // A truncated BUMP is a parse error at its byte offset in the BEEF.
    let cut = bytes.len() - 10;
    let e = parse_err(&bytes[..cut]);
    // The error points at the start of the hash that runs past the end.
    assert_eq!(
        (e.offset, e.kind, e.context),
        (
            bytes.len() - 33,
            ParseErrorKind::UnexpectedEnd,
            "BUMP node hash"
        )
    );
}

#[test]
fn a_bump_index_must_name_a_bump_holding_the_txid() {
    let c = chain(BeefVersion::V2);
    let mut bytes = c.beef.to_bytes();
    // B (format 0) claims BUMP 0, which proves only A.
    let b_start = 4
        + 1
        + c.beef.bumps()[0].to_bytes().len()
        + 1
        + 2
        + c.beef.txs()[0].transaction().unwrap().size();
    assert_eq!(bytes[b_start], 0);
    bytes.splice(b_start..b_start + 1, [1, 0]);
    assert_eq!(
        Beef::from_bytes(&bytes),
        Err(BeefError::BumpLeafMissing {
            txid: c.b,
            bump_index: 0
        })
    );
}

#[test]
fn leaf_membership_scales_to_large_bumps() {
    // 70 proven transactions sharing one BUMP: the hash-set path of the check.
    let txs: Vec<Transaction> = (0..70).map(funding).collect();
    let block: Vec<Txid> = txs.iter().map(Transaction::txid).collect();
    let mut beef = Beef::new(BeefVersion::V1);
    beef.add_bump(MerklePath::from_block(77, &block, &(0..70).collect::<Vec<_>>()).unwrap());
    let other = funding(200);
    beef.add_bump(MerklePath::from_block(78, &[other.txid()], &[0]).unwrap());
    for t in txs.iter().chain([&other]) {
        beef.add_transaction(t.clone());
    }
    assert!(beef
        .txs()
        .iter()
        .take(70)
        .all(|t| t.bump_index() == Some(0)));
    let bytes = beef.to_bytes();
    assert_eq!(Beef::from_bytes(&bytes).unwrap(), beef);
    // Point the last of the 70 at BUMP 1 instead (V1: raw tx, 01, index).
    let mut wrong = Beef::new(BeefVersion::V1);
    wrong.add_bump(beef.bumps()[0].clone());
    wrong.add_bump(beef.bumps()[1].clone());
    let mut bytes = wrong.to_bytes();
    bytes.pop();
    bytes.push(1);
    txs[69].write(&mut bytes);
    bytes.extend_from_slice(&[1, 1]);
    assert_eq!(
        Beef::from_bytes(&bytes),
        Err(BeefError::BumpLeafMissing {
            txid: block[69],
            bump_index: 1
        })
    );
}

#[test]
fn txid_only_entries_need_v2() {
    let mut c = chain(BeefVersion::V1);
    let stranger = Txid([5; 32]);
    assert!(c.beef.add_txid_only(stranger));
    assert!(!c.beef.add_txid_only(stranger));
    assert_eq!(c.beef.version(), BeefVersion::V2);
    assert_eq!(
        c.beef.set_version(BeefVersion::V1),
        Err(BeefError::TxidOnlyInV1(stranger))
    );
    let decoded = Beef::from_bytes(&c.beef.to_bytes()).unwrap();
    assert!(decoded.find(&stranger).unwrap().is_txid_only());
}

#[test]
fn ef_of_takes_source_outputs_from_the_beef() {
    let c = chain(BeefVersion::V2);
    let ef = c.beef.ef_of(&c.c).unwrap();
    assert_eq!(
        ef.source_outputs
            .iter()
            .map(|o| o.satoshis)
            .collect::<Vec<_>>(),
        vec![6_000, 3_000]
    );
    assert_eq!(ef.txid(), c.c);
    // A's input spends a transaction that is not in the BEEF.
    let a_input = c.beef.find(&c.a).unwrap().transaction().unwrap().inputs[0].prev_out;
    assert_eq!(
        c.beef.ef_of(&c.a),
        Err(BeefError::SourceMissing {
            txid: c.a,
            input: 0,
            parent: a_input.txid,
            vout: 0
        })
    );
    assert_eq!(
        c.beef.ef_of(&Txid([3; 32])),
        Err(BeefError::NotFound(Txid([3; 32])))
    );
    let mut with_known = c.beef.clone();
    with_known.add_txid_only(Txid([4; 32]));
    assert_eq!(
        with_known.ef_of(&Txid([4; 32])),
        Err(BeefError::TxidOnly(Txid([4; 32])))
    );
}

#[test]
fn to_atomic_keeps_only_the_closure_and_its_bumps() {
    let mut c = chain(BeefVersion::V2);
    // An unrelated proven tx in another block, listed first.
    let other = funding(9);
    let other_id = other.txid();
    let mut extra = Beef::new(BeefVersion::V2);
    extra.add_bump(MerklePath::from_block(801, &[other_id], &[0]).unwrap());
    extra.add_transaction(other);
    extra.merge(c.beef.clone());
    c.beef = extra;
    assert_eq!(c.beef.bumps().len(), 2);
    let atomic = c.beef.to_atomic(&c.b).unwrap();
    assert_eq!(
        atomic.txs().iter().map(BeefTx::txid).collect::<Vec<_>>(),
        vec![c.a, c.b]
    );
    assert_eq!(atomic.bumps().len(), 1);
    assert_eq!(atomic.bumps()[0].block_height(), 800);
    assert_eq!(
        atomic.find(&c.a).and_then(BeefTx::bump_index),
        Some(0),
        "re-indexed"
    );
    assert_eq!(
        c.beef.to_atomic(&Txid([3; 32])),
        Err(BeefError::NotFound(Txid([3; 32])))
    );
    // A closure with a hole.
    let mut holed = Beef::new(BeefVersion::V2);
    let child = tx(&[(c.a, 0)], &[1], 4);
    let child_id = holed.add_transaction(child);
    assert_eq!(
        holed.to_atomic(&child_id),
        Err(BeefError::SourceMissing {
            txid: child_id,
            input: 0,
            parent: c.a,
            vout: 0
        })
    );
}

#[test]
fn sort_restores_parent_first_order_like_ts_sdk() {
    let c = chain(BeefVersion::V2);
    let mut reversed = Beef::new(BeefVersion::V2);
    reversed.add_bump(c.beef.bumps()[0].clone());
    for entry in c.beef.txs().iter().rev() {
        reversed.add_transaction(entry.transaction().unwrap().clone());
    }
    assert_eq!(reversed.order_violation(), Some((0, 0, 1)));
    reversed.sort();
    assert_eq!(reversed.order_violation(), None);
    assert_eq!(reversed.to_bytes(), c.beef.to_bytes());
    // Txs with inputs missing from the BEEF go first, txid-only next.
    let mut mixed = reversed.clone();
    let orphan = tx(&[(Txid([6; 32]), 0)], &[1], 5);
    let orphan_id = mixed.add_transaction(orphan);
    mixed.add_txid_only(Txid([4; 32]));
    mixed.sort();
    let order: Vec<Txid> = mixed.txs().iter().map(BeefTx::txid).collect();
    assert_eq!(order, vec![orphan_id, Txid([4; 32]), c.a, c.b, c.c]);
}

#[test]
fn merge_upgrades_and_never_downgrades() {
    let c = chain(BeefVersion::V2);
    // A BEEF that knows B only by txid and lacks C.
    let mut partial = Beef::new(BeefVersion::V2);
    partial.add_bump(c.beef.bumps()[0].clone());
    partial.add_transaction(c.beef.find(&c.a).unwrap().transaction().unwrap().clone());
    partial.add_txid_only(c.b);
    let mut merged = partial.clone();
    merged.merge(c.beef.clone());
    assert_eq!(
        merged.to_bytes(),
        c.beef.to_bytes(),
        "full B replaces txid-only B, C appended, one BUMP"
    );
    let mut other_way = c.beef.clone();
    other_way.merge(partial);
    assert_eq!(
        other_way.to_bytes(),
        c.beef.to_bytes(),
        "txid-only B does not replace full B"
    );
}

#[test]
fn merge_combines_bumps_of_one_block_and_proves_unproven_txs() {
    let block: Vec<Txid> = (10..15).map(|t| funding(t).txid()).collect();
    let mut left = Beef::new(BeefVersion::V1);
    left.add_bump(MerklePath::from_block(900, &block, &[1]).unwrap());
    left.add_transaction(funding(11));
    left.add_transaction(funding(13)); // in the block, but unproven here
    let mut right = Beef::new(BeefVersion::V1);
    right.add_bump(MerklePath::from_block(900, &block, &[3]).unwrap());
    right.add_transaction(funding(13));
    left.merge(right);
    assert_eq!(left.bumps().len(), 1);
    assert_eq!(
        left.bumps()[0],
        MerklePath::from_block(900, &block, &[1, 3]).unwrap()
    );
    assert_eq!(left.find(&block[3]).and_then(BeefTx::bump_index), Some(0));
    assert_eq!(left.version(), BeefVersion::V1);
}

#[test]
fn combining_bumps_keeps_leaves_that_transactions_rely_on_without_the_flag() {
    let txs: Vec<Transaction> = (30..34).map(funding).collect();
    let block: Vec<Txid> = txs.iter().map(Transaction::txid).collect();
    let mut bump = MerklePath::from_block(60, &block, &[1]).unwrap().to_bytes();
    // Level 0 is {0: sibling, 1: client}; unflag the client (height 1 byte,
    // tree height, count, then node 0 (offset, flag, 32) and node 1's offset).
    assert_eq!(bump[3 + 34 + 1], 2);
    bump[3 + 34 + 1] = 0;
    let mut bytes = hex::decode("0100beef01").unwrap();
    bytes.extend_from_slice(&bump);
    bytes.push(1);
    txs[1].write(&mut bytes);
    bytes.extend_from_slice(&[1, 0]);
    let mut beef = Beef::from_bytes(&bytes).unwrap();
    beef.add_bump(MerklePath::from_block(60, &block, &[2]).unwrap());
    assert_eq!(beef.bumps().len(), 1);
    assert_eq!(
        beef.bumps()[0].client_txids().collect::<Vec<_>>(),
        vec![block[1], block[2]]
    );
    assert_eq!(Beef::from_bytes(&beef.to_bytes()).unwrap(), beef);
}

#[test]
fn hostile_counts_do_not_allocate() {
    let e = parse_err(&hex::decode("0200beefffffffffffffffff7f").unwrap());
    assert_eq!((e.offset, e.kind), (4, ParseErrorKind::CountTooLarge));
    let e = parse_err(&hex::decode("0200beef00ffffffffffffffff7f").unwrap());
    assert_eq!((e.offset, e.kind), (5, ParseErrorKind::CountTooLarge));
}

mod properties {
    use super::*;
    use crate::spv::{verify, ChainTracker, VerifyOptions};
    use proptest::prelude::*;

    /// ts-sdk `sortTxs`, transcribed literally (repeated passes over the queue).
    fn ts_sort_order(beef: &Beef) -> Vec<Txid> {
        let all: std::collections::HashSet<Txid> = beef.txs().iter().map(BeefTx::txid).collect();
        let mut valid: std::collections::HashSet<Txid> = Default::default();
        let (mut result, mut txid_only, mut queue, mut missing) = (vec![], vec![], vec![], vec![]);
        for t in beef.txs() {
            if t.bump_index().is_some() {
                valid.insert(t.txid());
                result.push(t.txid());
            } else if t.is_txid_only() {
                valid.insert(t.txid());
                txid_only.push(t.txid());
            } else if t
                .transaction()
                .unwrap()
                .inputs
                .iter()
                .any(|i| !all.contains(&i.prev_out.txid))
            {
                missing.push(t.txid());
            } else {
                queue.push(t);
            }
        }
        loop {
            let before = queue.len();
            let mut waiting = vec![];
            for t in queue {
                if t.transaction()
                    .unwrap()
                    .inputs
                    .iter()
                    .all(|i| valid.contains(&i.prev_out.txid))
                {
                    valid.insert(t.txid());
                    result.push(t.txid());
                } else {
                    waiting.push(t);
                }
            }
            queue = waiting;
            if queue.is_empty() || queue.len() == before {
                break;
            }
        }
        missing
            .into_iter()
            .chain(queue.iter().map(|t| t.txid()))
            .chain(txid_only)
            .chain(result)
            .collect()
    }

    /// A random transaction graph: `spec[i]` lists earlier transactions tx i
    /// spends (by index); kinds: 0 proven, 1 unproven, 2 txid-only, 3 spends
    /// a transaction outside the BEEF. Entries are then laid out in `perm` order.
    fn random_beef(spec: &[(u8, Vec<prop::sample::Index>)], perm: &[prop::sample::Index]) -> Beef {
        let mut txs: Vec<(u8, Transaction)> = Vec::new();
        for (i, (kind, parents)) in spec.iter().enumerate() {
            let kind = if i == 0 { 0 } else { kind % 4 };
            let mut inputs: Vec<(Txid, u32)> = parents
                .iter()
                .filter(|_| i > 0)
                .map(|p| (txs[p.index(i)].1.txid(), 0))
                .collect();
            if kind == 3 || inputs.is_empty() {
                inputs.push((Txid([i as u8; 32]), 7));
            }
            txs.push((kind, tx(&inputs, &[1], i as u8)));
        }
        let mut order: Vec<usize> = (0..txs.len()).collect();
        for (i, p) in perm.iter().enumerate().take(order.len()) {
            let j = p.index(order.len());
            order.swap(i, j);
        }
        let proven: Vec<Txid> = txs
            .iter()
            .filter(|(k, _)| *k == 0)
            .map(|(_, t)| t.txid())
            .collect();
        let mut beef = Beef::new(BeefVersion::V2);
        beef.add_bump(
            MerklePath::from_block(5, &proven, &(0..proven.len()).collect::<Vec<_>>()).unwrap(),
        );
        for i in order {
            let (kind, t) = &txs[i];
            if *kind == 2 {
                beef.add_txid_only(t.txid());
            } else {
                beef.add_transaction(t.clone());
            }
        }
        beef
    }

    struct AnyRoot;
    impl ChainTracker for AnyRoot {
        fn is_valid_root_for_height(&self, _: &crate::hash::Hash256, _: u32) -> bool {
            true
        }
        fn current_height(&self) -> u32 {
            1_000
        }
    }

    proptest! {
        #[test]
        fn sort_matches_ts_sdk_order(
            spec in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<prop::sample::Index>(), 0..3)), 1..25),
            perm in proptest::collection::vec(any::<prop::sample::Index>(), 25),
        ) {
            let mut beef = random_beef(&spec, &perm);
            let expected = ts_sort_order(&beef);
            beef.sort();
            prop_assert_eq!(beef.txs().iter().map(BeefTx::txid).collect::<Vec<_>>(), expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), prefix in 0usize..3) {
            let mut input = [hex::decode("0100beef").unwrap(), hex::decode("0200beef").unwrap(), vec![1, 1, 1, 1]][prefix].clone();
            input.extend_from_slice(&bytes);
            if let Ok(beef) = Beef::from_bytes(&input) {
                prop_assert_eq!(beef.to_bytes(), input);
                let _ = verify(beef, &AnyRoot, &VerifyOptions::default());
            }
        }

        #[test]
        fn mutated_beefs_never_panic_and_what_decodes_re_encodes(v2 in any::<bool>(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
            let c = chain(if v2 { BeefVersion::V2 } else { BeefVersion::V1 });
            let mut bytes = c.beef.to_atomic(&c.c).unwrap().to_bytes();
            let i = at.index(bytes.len());
            if cut { bytes.truncate(i) } else { bytes[i] = byte }
            if let Ok(beef) = Beef::from_bytes(&bytes) {
                prop_assert_eq!(beef.to_bytes(), bytes);
                let mut sorted = beef.clone();
                sorted.sort();
                let _ = sorted.to_atomic(&c.c);
                let _ = sorted.ef_of(&c.c);
                let _ = verify(beef, &AnyRoot, &VerifyOptions::default());
            }
        }
    }
}
