use super::*;
use crate::hash::sha256d;

fn txid(i: u64) -> Txid {
    Txid(sha256d(&i.to_le_bytes()))
}

fn block(n: u64) -> Vec<Txid> {
    (0..n).map(txid).collect()
}

/// Reference Merkle root: the textbook recursion (odd levels pair the last node with itself).
fn reference_root(txids: &[Txid]) -> Hash256 {
    let mut level: Vec<Hash256> = txids.iter().map(Txid::as_hash).collect();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| Hash256::merkle_parent(&p[0], p.get(1).unwrap_or(&p[0]))).collect();
    }
    level[0]
}

/// Raw node parts: (offset, flag, hash if the flag carries one).
type RawLevel = Vec<(u64, u8, Option<Hash256>)>;

/// Encodes a path from raw parts: per level, (offset, flag, hash if the flag carries one).
fn encode(height: u64, levels: &[RawLevel]) -> Vec<u8> {
    let mut out = Vec::new();
    write_varint(&mut out, height);
    out.push(levels.len() as u8);
    for level in levels {
        write_varint(&mut out, level.len() as u64);
        for (offset, flag, hash) in level {
            write_varint(&mut out, *offset);
            out.push(*flag);
            if let Some(h) = hash {
                out.extend_from_slice(&h.0);
            }
        }
    }
    out
}

fn parse_err(result: Result<MerklePath, BumpError>) -> ParseError {
    match result {
        Err(BumpError::Parse(e)) => e,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// A 4-tx block, client tx 1: level 0 {0: sibling, 1: client}, level 1 {1: H(t2,t3)}.
fn four_tx_parts() -> (Vec<Txid>, Vec<RawLevel>) {
    let b = block(4);
    let h23 = Hash256::merkle_parent(&b[2].as_hash(), &b[3].as_hash());
    let levels = vec![vec![(0, 0, Some(b[0].as_hash())), (1, 2, Some(b[1].as_hash()))], vec![(1, 0, Some(h23))]];
    (b, levels)
}

#[test]
fn from_block_matches_the_reference_root_and_parses_strictly() {
    for n in 1..=19u64 {
        let b = block(n);
        let expected = reference_root(&b);
        for i in 0..n as usize {
            let path = MerklePath::from_block(7, &b, &[i]).unwrap();
            assert_eq!(path.root(), expected, "n={n} i={i}");
            assert_eq!(path.compute_root(&b[i]).unwrap(), expected);
            let reparsed = MerklePath::from_bytes_strict(&path.to_bytes()).unwrap();
            assert_eq!(reparsed, path);
            assert_eq!(reparsed.client_txids().collect::<Vec<_>>(), vec![b[i]]);
        }
        // Several clients at once need fewer nodes than separate paths, same root.
        let all: Vec<usize> = (0..n as usize).collect();
        let compound = MerklePath::from_block(7, &b, &all).unwrap();
        assert_eq!(compound.root(), expected);
        assert!(compound.levels().iter().skip(1).all(|l| l.iter().all(|n| n.value == NodeValue::Duplicate)));
        MerklePath::from_bytes_strict(&compound.to_bytes()).unwrap();
    }
}

#[test]
fn single_transaction_block_root_is_the_txid() {
    let b = block(1);
    let path = MerklePath::from_block(1234, &b, &[0]).unwrap();
    assert_eq!(path.tree_height(), 1);
    assert_eq!(path.root(), b[0].as_hash());
    let mut expected = vec![0xfd, 0xd2, 0x04, 0x01, 0x01, 0x00, 0x02];
    expected.extend_from_slice(&b[0].0);
    assert_eq!(path.to_bytes(), expected);
}

#[test]
fn combine_takes_the_union_and_equals_the_joint_path() {
    let b = block(13);
    for (i, j) in [(0usize, 1usize), (0, 12), (5, 9), (11, 12), (3, 3)] {
        let mut a = MerklePath::from_block(9, &b, &[i]).unwrap();
        let other = MerklePath::from_block(9, &b, &[j]).unwrap();
        a.combine(&other).unwrap();
        assert_eq!(a, MerklePath::from_block(9, &b, &[i, j]).unwrap(), "clients {i} {j}");
    }
}

#[test]
fn combine_never_downgrades_a_client_flag() {
    let (b, mut parts) = four_tx_parts();
    let flagged = MerklePath::from_bytes_strict(&encode(5, &parts)).unwrap();
    // Same block, tx 0 is the client and tx 1 a plain sibling.
    parts[0] = vec![(0, 2, Some(b[0].as_hash())), (1, 0, Some(b[1].as_hash()))];
    let mut other = MerklePath::from_bytes_strict(&encode(5, &parts)).unwrap();
    other.combine(&flagged).unwrap();
    assert_eq!(other.client_txids().collect::<Vec<_>>(), vec![b[0], b[1]]);
}

#[test]
fn combine_rejects_other_blocks() {
    let b = block(4);
    let mut a = MerklePath::from_block(5, &b, &[0]).unwrap();
    let higher = MerklePath::from_block(6, &b, &[1]).unwrap();
    assert_eq!(a.combine(&higher), Err(BumpError::HeightMismatch { ours: 5, theirs: 6 }));
    let other_block = MerklePath::from_block(5, &block(5), &[1]).unwrap();
    assert_eq!(a.combine(&other_block), Err(BumpError::RootMismatch));
}

#[test]
fn trim_drops_unneeded_nodes_and_materialises_computable_ones() {
    // Level 0 holds all four leaves, only tx 1 is a client: trim keeps tx 0 and
    // computes the level-1 node H(t2, t3) from the dropped leaves.
    let b = block(4);
    let levels = vec![
        vec![(0, 0, Some(b[0].as_hash())), (1, 2, Some(b[1].as_hash())), (2, 0, Some(b[2].as_hash())), (3, 0, Some(b[3].as_hash()))],
        vec![],
    ];
    let mut path = MerklePath::from_bytes_strict(&encode(5, &levels)).unwrap();
    path.trim();
    assert_eq!(path, MerklePath::from_block(5, &b, &[1]).unwrap());
    let trimmed = path.clone();
    path.trim();
    assert_eq!(path, trimmed, "trim is idempotent");
}

#[test]
fn trim_without_clients_changes_nothing() {
    let (b, mut parts) = four_tx_parts();
    parts[0][1].1 = 0;
    let mut path = MerklePath::from_bytes_strict(&encode(5, &parts)).unwrap();
    let before = path.clone();
    path.trim();
    assert_eq!(path, before);
    assert_eq!(path.client_txids().count(), 0);
    assert_eq!(path.compute_root(&b[1]).unwrap(), reference_root(&b));
}

#[test]
fn single_level_compound_paths_infer_height_and_duplicate_the_right_edge() {
    for n in [2u64, 3, 5, 11, 16, 17] {
        let b = block(n);
        let level0: RawLevel = b.iter().enumerate().map(|(i, t)| (i as u64, 2, Some(t.as_hash()))).collect();
        let bytes = encode(125_632, &[level0]);
        let path = MerklePath::from_bytes_strict(&bytes).unwrap();
        assert_eq!(path.root(), reference_root(&b), "n={n}");
        assert_eq!(path.to_bytes(), bytes);
        for i in 0..n as usize {
            let extracted = path.extract(&[b[i]]).unwrap();
            assert_eq!(extracted, MerklePath::from_block(125_632, &b, &[i]).unwrap(), "n={n} i={i}");
        }
    }
}

#[test]
fn unsorted_levels_round_trip_byte_for_byte() {
    let (b, mut parts) = four_tx_parts();
    parts[0].reverse();
    let bytes = encode(5, &parts);
    let path = MerklePath::from_bytes_strict(&bytes).unwrap();
    assert_eq!(path.to_bytes(), bytes);
    assert_eq!(path.root(), reference_root(&b));
}

#[test]
fn truncation_trailing_bytes_and_non_canonical_integers_are_parse_errors() {
    let (_, parts) = four_tx_parts();
    let bytes = encode(5, &parts);
    let e = parse_err(MerklePath::from_bytes_strict(&bytes[..bytes.len() - 1]));
    assert_eq!((e.kind, e.context), (ParseErrorKind::UnexpectedEnd, "BUMP node hash"));
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(parse_err(MerklePath::from_bytes_strict(&long)), ParseError::new(bytes.len(), ParseErrorKind::TrailingBytes, "end of BUMP"));
    let mut non_canonical = vec![0xfd, 0x05, 0x00];
    non_canonical.extend_from_slice(&bytes[1..]);
    assert_eq!(parse_err(MerklePath::from_bytes_strict(&non_canonical)).kind, ParseErrorKind::NonCanonicalVarInt);
}

#[test]
fn flags_other_than_0_1_2_are_rejected_at_their_byte() {
    let (_, mut parts) = four_tx_parts();
    parts[0][1].1 = 3;
    let bytes = encode(5, &parts);
    // height 1 + tree height 1 + count 1 + (offset 1 + flag 1 + hash 32) + offset 1.
    let e = parse_err(MerklePath::from_bytes_lenient(&bytes));
    assert_eq!((e.offset, e.kind), (3 + 34 + 1, ParseErrorKind::InvalidFlag));
}

#[test]
fn duplicate_offsets_are_rejected_sorted_or_not() {
    let (b, mut parts) = four_tx_parts();
    parts[0][0].0 = 1;
    let e = parse_err(MerklePath::from_bytes_lenient(&encode(5, &parts)));
    assert_eq!((e.offset, e.kind), (3 + 34, ParseErrorKind::DuplicateOffset));
    // Unsorted level with a repeat: reported at the second occurrence.
    let (_, mut parts) = four_tx_parts();
    parts[0] = vec![(1, 2, Some(b[1].as_hash())), (0, 0, Some(b[0].as_hash())), (1, 0, Some(b[2].as_hash()))];
    let e = parse_err(MerklePath::from_bytes_lenient(&encode(5, &parts)));
    assert_eq!((e.offset, e.kind), (3 + 34 + 34, ParseErrorKind::DuplicateOffset));
}

#[test]
fn a_second_duplicate_marker_in_a_level_is_rejected() {
    let (b, _) = four_tx_parts();
    let parts = vec![vec![(0, 2, Some(b[0].as_hash())), (1, 1, None), (3, 1, None)]];
    let e = parse_err(MerklePath::from_bytes_lenient(&encode(5, &parts)));
    assert_eq!((e.offset, e.kind), (3 + 34 + 2, ParseErrorKind::InvalidValue));
}

#[test]
fn illegal_offsets_fail_strict_and_pass_lenient() {
    let (b, mut parts) = four_tx_parts();
    let h01 = Hash256::merkle_parent(&b[0].as_hash(), &b[1].as_hash());
    parts[1].insert(0, (0, 0, Some(h01)));
    let bytes = encode(5, &parts);
    let e = parse_err(MerklePath::from_bytes_strict(&bytes));
    // Level 1 starts after 3 + 2 × 34 bytes and its count byte.
    assert_eq!((e.offset, e.kind), (3 + 68 + 1, ParseErrorKind::IllegalOffset));
    let lenient = MerklePath::from_bytes_lenient(&bytes).unwrap();
    assert_eq!(lenient.root(), reference_root(&b));
    assert_eq!(lenient.to_bytes(), bytes);
}

#[test]
fn tree_height_and_block_height_are_range_checked() {
    let (_, parts) = four_tx_parts();
    let mut bytes = encode(5, &parts);
    bytes[1] = 0;
    assert_eq!(parse_err(MerklePath::from_bytes_strict(&bytes)), ParseError::new(1, ParseErrorKind::InvalidValue, "BUMP tree height (1..=64)"));
    bytes[1] = 65;
    assert_eq!(parse_err(MerklePath::from_bytes_strict(&bytes)).kind, ParseErrorKind::InvalidValue);
    let big = encode(u64::from(u32::MAX) + 1, &parts);
    assert_eq!(parse_err(MerklePath::from_bytes_strict(&big)), ParseError::new(0, ParseErrorKind::InvalidValue, "BUMP block height above u32::MAX"));
}

#[test]
fn an_empty_level_zero_proves_nothing() {
    assert_eq!(MerklePath::from_bytes_lenient(&encode(5, &[vec![]])), Err(BumpError::EmptyLevel0));
    assert_eq!(MerklePath::from_bytes_lenient(&encode(5, &[vec![(1, 1, None)]])), Err(BumpError::EmptyLevel0));
}

#[test]
fn a_missing_sibling_names_leaf_and_height() {
    let (_, mut parts) = four_tx_parts();
    parts[1].clear();
    assert_eq!(MerklePath::from_bytes_lenient(&encode(5, &parts)), Err(BumpError::MissingNode { index: 0, height: 1 }));
}

#[test]
fn leaves_leading_to_different_roots_are_rejected() {
    // Two clients, 0 and 2, whose level-1 siblings disagree with their leaves.
    let b = block(4);
    let parts = vec![
        vec![(0, 2, Some(b[0].as_hash())), (1, 0, Some(b[1].as_hash())), (2, 2, Some(b[2].as_hash())), (3, 0, Some(b[3].as_hash()))],
        vec![(0, 0, Some(b[0].as_hash())), (1, 0, Some(b[1].as_hash()))],
    ];
    assert_eq!(MerklePath::from_bytes_lenient(&encode(5, &parts)), Err(BumpError::MismatchedRoots));
}

#[test]
fn unknown_txids_are_reported() {
    let b = block(4);
    let path = MerklePath::from_block(5, &b, &[1]).unwrap();
    let stranger = txid(99);
    assert_eq!(path.compute_root(&stranger), Err(BumpError::TxidNotFound(stranger)));
    assert_eq!(path.extract(&[stranger]), Err(BumpError::TxidNotFound(stranger)));
    assert_eq!(path.extract(&[]), Err(BumpError::NoClients));
    // The plain sibling leaf is a leaf too, with the same root.
    assert_eq!(path.compute_root(&b[0]).unwrap(), path.root());
}

#[test]
fn from_block_argument_errors() {
    assert_eq!(MerklePath::from_block(1, &[], &[0]), Err(BumpError::EmptyBlock));
    assert_eq!(MerklePath::from_block(1, &block(3), &[]), Err(BumpError::NoClients));
    assert_eq!(MerklePath::from_block(1, &block(3), &[1, 3]), Err(BumpError::ClientIndexOutOfRange { index: 3, block_len: 3 }));
}

#[test]
fn hostile_counts_do_not_allocate() {
    // 2^62 nodes announced in a few bytes.
    let bytes = [0x05, 0x01, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0];
    assert_eq!(parse_err(MerklePath::from_bytes_lenient(&bytes)).kind, ParseErrorKind::CountTooLarge);
}

#[test]
fn node_at_finds_given_nodes_and_computes_missing_ones() {
    let (b, parts) = four_tx_parts();
    let path = MerklePath::from_bytes_strict(&encode(5, &parts)).unwrap();
    let h01 = Hash256::merkle_parent(&b[0].as_hash(), &b[1].as_hash());
    let h23 = Hash256::merkle_parent(&b[2].as_hash(), &b[3].as_hash());
    assert_eq!(path.node_at(0, 1), Some(NodeValue::ClientTxid(b[1])).map(|v| NodeValue::Hash(v.hash().unwrap())));
    assert_eq!(path.node_at(1, 0), Some(NodeValue::Hash(h01)), "computed from level 0");
    assert_eq!(path.node_at(1, 1), Some(NodeValue::Hash(h23)), "given");
    assert_eq!(path.node_at(2, 0), Some(NodeValue::Hash(path.root())));
    assert_eq!(path.node_at(0, 2), None);
    let dup = MerklePath::from_block(5, &block(3), &[2]).unwrap();
    assert_eq!(dup.node_at(0, 3), Some(NodeValue::Duplicate));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn valid_path() -> impl Strategy<Value = (Vec<Txid>, Vec<usize>, MerklePath)> {
        (1u64..40, proptest::collection::vec(any::<prop::sample::Index>(), 1..5)).prop_map(|(n, picks)| {
            let b = block(n);
            let clients: Vec<usize> = picks.iter().map(|p| p.index(n as usize)).collect();
            let path = MerklePath::from_block(3, &b, &clients).unwrap();
            (b, clients, path)
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = MerklePath::from_bytes_strict(&bytes);
            if let Ok(path) = MerklePath::from_bytes_lenient(&bytes) {
                prop_assert_eq!(path.to_bytes(), bytes);
            }
        }

        #[test]
        fn mutated_paths_never_panic_and_what_decodes_re_encodes((_, _, path) in valid_path(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
            let mut bytes = path.to_bytes();
            let i = at.index(bytes.len());
            if cut { bytes.truncate(i) } else { bytes[i] = byte }
            for decoded in [MerklePath::from_bytes_strict(&bytes), MerklePath::from_bytes_lenient(&bytes)].into_iter().flatten() {
                prop_assert_eq!(decoded.to_bytes(), bytes.clone());
                let mut trimmed = decoded.clone();
                trimmed.trim();
                prop_assert_eq!(trimmed.root(), decoded.root());
            }
        }

        #[test]
        fn built_paths_are_strict_and_prove_every_client((b, clients, path) in valid_path()) {
            let strict = MerklePath::from_bytes_strict(&path.to_bytes()).unwrap();
            prop_assert_eq!(strict.root(), reference_root(&b));
            for &c in &clients {
                prop_assert_eq!(strict.compute_root(&b[c]), Ok(reference_root(&b)));
            }
            // Combining single-client paths gives the joint path.
            let mut joint = MerklePath::from_block(3, &b, &clients[..1]).unwrap();
            for &c in &clients[1..] {
                joint.combine(&MerklePath::from_block(3, &b, &[c]).unwrap()).unwrap();
            }
            prop_assert_eq!(joint, path);
        }
    }
}
