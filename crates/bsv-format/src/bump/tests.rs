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
        level = level
            .chunks(2)
            .map(|p| Hash256::merkle_parent(&p[0], p.get(1).unwrap_or(&p[0])))
            .collect();
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
    let levels = vec![
        vec![(0, 0, Some(b[0].as_hash())), (1, 2, Some(b[1].as_hash()))],
        vec![(1, 0, Some(h23))],
    ];
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
        assert!(compound
            .levels()
            .iter()
            .skip(1)
            .all(|l| l.iter().all(|n| n.value == NodeValue::Duplicate)));
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
        assert_eq!(
            a,
            MerklePath::from_block(9, &b, &[i, j]).unwrap(),
            "clients {i} {j}"
        );
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
    assert_eq!(
        a.combine(&higher),
        Err(BumpError::HeightMismatch { ours: 5, theirs: 6 })
    );
    let other_block = MerklePath::from_block(5, &block(5), &[1]).unwrap();
    assert_eq!(a.combine(&other_block), Err(BumpError::RootMismatch));
}

#[test]
fn trim_drops_unneeded_nodes_and_materialises_computable_ones() {
    // Level 0 holds all four leaves, only tx 1 is a client: trim keeps tx 0 and
    // computes the level-1 node H(t2, t3) from the dropped leaves.
    let b = block(4);
    let levels = vec![
        vec![
            (0, 0, Some(b[0].as_hash())),
            (1, 2, Some(b[1].as_hash())),
            (2, 0, Some(b[2].as_hash())),
            (3, 0, Some(b[3].as_hash())),
        ],
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
        let level0: RawLevel = b
            .iter()
            .enumerate()
            .map(|(i, t)| (i as u64, 2, Some(t.as_hash())))
            .collect();
        let bytes = encode(125_632, &[level0]);
        let path = MerklePath::from_bytes_strict(&bytes).unwrap();
        assert_eq!(path.root(), reference_root(&b), "n={n}");
        assert_eq!(path.to_bytes(), bytes);
        for i in 0..n as usize {
            let extracted = path.extract(&[b[i]]).unwrap();
            assert_eq!(
                extracted,
                MerklePath::from_block(125_632, &b, &[i]).unwrap(),
                "n={n} i={i}"
            );
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
fn beef_merge_keeps_both_paths_when_combine_refuses() {
    use crate::beef::{Beef, BeefVersion};
    use crate::tx::{Outpoint, Transaction, TxIn, TxOut};
    // A transaction proven twice: as tx 4 of a block of 5, and as tx 6 of
    // that block's twin of 8 (tail repeated; same root, other size).
    let tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: Outpoint::new(txid(77), 0),
            unlocking_script: crate::Script::default(),
            sequence: 0,
        }],
        outputs: vec![TxOut {
            satoshis: 1,
            locking_script: crate::Script::default(),
        }],
        lock_time: 0,
    };
    let mut five = block(4);
    five.push(tx.txid());
    let mut eight = five.clone();
    eight.extend([tx.txid(); 3]);
    let mut ours = Beef::new(BeefVersion::V1);
    ours.add_bump(MerklePath::from_block(9, &five, &[4]).unwrap());
    ours.add_transaction(tx.clone());
    let mut theirs = Beef::new(BeefVersion::V1);
    theirs.add_bump(MerklePath::from_block(9, &eight, &[6]).unwrap());
    theirs.add_transaction(tx);
    ours.merge(theirs);
    assert_eq!((ours.bumps().len(), ours.len()), (2, 1));
    assert_eq!(ours.bumps()[0].root(), ours.bumps()[1].root());
    let bytes = ours.to_bytes();
    assert_eq!(Beef::from_bytes(&bytes).map(|b| b.to_bytes()), Ok(bytes));
}

#[test]
fn truncation_trailing_bytes_and_non_canonical_integers_are_parse_errors() {
    let (_, parts) = four_tx_parts();
    let bytes = encode(5, &parts);
    let e = parse_err(MerklePath::from_bytes_strict(&bytes[..bytes.len() - 1]));
    assert_eq!(
        (e.kind, e.context),
        (ParseErrorKind::UnexpectedEnd, "BUMP node hash")
    );
    let mut long = bytes.clone();
    long.push(0);
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&long)),
        ParseError::new(bytes.len(), ParseErrorKind::TrailingBytes, "end of BUMP")
    );
    let mut non_canonical = vec![0xfd, 0x05, 0x00];
    non_canonical.extend_from_slice(&bytes[1..]);
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&non_canonical)).kind,
        ParseErrorKind::NonCanonicalVarInt
    );
}

#[test]
fn flags_other_than_0_1_2_are_rejected_at_their_byte() {
    let (_, mut parts) = four_tx_parts();
    parts[0][1].1 = 3;
    let bytes = encode(5, &parts);
    // height 1 + tree height 1 + count 1 + (offset 1 + flag 1 + hash 32) + offset 1.
    let e = parse_err(MerklePath::from_bytes_lenient(&bytes));
    assert_eq!(
        (e.offset, e.kind),
        (3 + 34 + 1, ParseErrorKind::InvalidFlag)
    );
}

#[test]
fn duplicate_offsets_are_rejected_sorted_or_not() {
    let (b, mut parts) = four_tx_parts();
    parts[0][0].0 = 1;
    let e = parse_err(MerklePath::from_bytes_lenient(&encode(5, &parts)));
    assert_eq!(
        (e.offset, e.kind),
        (3 + 34, ParseErrorKind::DuplicateOffset)
    );
    // Unsorted level with a repeat: reported at the second occurrence.
    let (_, mut parts) = four_tx_parts();
    parts[0] = vec![
        (1, 2, Some(b[1].as_hash())),
        (0, 0, Some(b[0].as_hash())),
        (1, 0, Some(b[2].as_hash())),
    ];
    let e = parse_err(MerklePath::from_bytes_lenient(&encode(5, &parts)));
    assert_eq!(
        (e.offset, e.kind),
        (3 + 34 + 34, ParseErrorKind::DuplicateOffset)
    );
}

#[test]
fn a_second_duplicate_marker_in_a_level_is_rejected() {
    let (b, _) = four_tx_parts();
    let parts = vec![vec![
        (0, 2, Some(b[0].as_hash())),
        (1, 1, None),
        (3, 1, None),
    ]];
    let e = parse_err(MerklePath::from_bytes_lenient(&encode(5, &parts)));
    assert_eq!(
        (e.offset, e.kind),
        (3 + 34 + 2, ParseErrorKind::InvalidValue)
    );
}

/// Decodes `levels` in both modes and checks both fail with `InvalidValue`
/// at byte `offset` with `context`.
fn assert_shape_fault(levels: &[RawLevel], offset: usize, context: &'static str) {
    let bytes = encode(5, levels);
    for (mode, result) in [
        ("strict", MerklePath::from_bytes_strict(&bytes)),
        ("lenient", MerklePath::from_bytes_lenient(&bytes)),
    ] {
        assert_eq!(
            parse_err(result),
            ParseError::new(offset, ParseErrorKind::InvalidValue, context),
            "{mode}"
        );
    }
}

const EVEN_MARKER: &str = "BUMP duplicate marker at an even offset";
const OUTSIDE_TREE: &str = "BUMP node outside the tree its duplicate markers describe";
const NO_LEFT_SIBLING: &str = "BUMP duplicate marker without its left sibling";

#[test]
fn a_duplicate_marker_at_an_even_offset_is_rejected() {
    let b = block(3);
    let level0 = vec![
        (0, 2, Some(b[0].as_hash())),
        (1, 0, Some(b[1].as_hash())),
        (2, 1, None),
    ];
    // Count byte, then two 34-byte leaves.
    assert_shape_fault(&[level0], 3 + 68, EVEN_MARKER);
}

#[test]
fn a_leaf_after_a_duplicate_marker_is_rejected() {
    // The fuzz finding: leaf 0, marker at 1 (the level has one node), leaf 2.
    let b = block(3);
    let level0 = vec![
        (0, 2, Some(b[0].as_hash())),
        (1, 1, None),
        (2, 2, Some(b[2].as_hash())),
    ];
    assert_shape_fault(&[level0], 3 + 34 + 2, OUTSIDE_TREE);
    // Same nodes, the marker last on the wire: the marker is the misfit.
    let level0 = vec![
        (2, 2, Some(b[2].as_hash())),
        (0, 2, Some(b[0].as_hash())),
        (1, 1, None),
    ];
    assert_shape_fault(&[level0], 3 + 68, OUTSIDE_TREE);
}

#[test]
fn a_lower_level_node_beyond_a_marker_is_rejected() {
    // Level 1 marker at 3 (level 1 has 3 nodes: N <= 6), but leaf 9 sits
    // under level-1 node 4. Leaf 4 makes the marker a legal offset.
    let b = block(10);
    let level0 = vec![
        (4, 2, Some(b[4].as_hash())),
        (5, 0, Some(b[5].as_hash())),
        (8, 0, Some(b[8].as_hash())),
        (9, 2, Some(b[9].as_hash())),
    ];
    // Level 0: count byte, four leaves; level 1: count byte, then the marker.
    assert_shape_fault(&[level0, vec![(3, 1, None)]], 3 + 4 * 34 + 1, OUTSIDE_TREE);
}

#[test]
fn a_hash_where_the_tree_has_a_duplicate_is_rejected() {
    // Marker at level-0 offset 5: N = 5, so level 1 has 3 nodes and its
    // offset 3 is the pairing, not a node with a hash.
    let b = block(5);
    let h44 = Hash256::merkle_parent(&b[4].as_hash(), &b[4].as_hash());
    let levels = vec![
        vec![(4, 2, Some(b[4].as_hash())), (5, 1, None)],
        vec![(3, 0, Some(h44))],
    ];
    assert_shape_fault(&levels, 3 + 34 + 2 + 1, OUTSIDE_TREE);
}

#[test]
fn markers_of_two_levels_must_agree_on_the_block_size() {
    // Level-0 marker at 5 says N = 5; a level-1 marker at 5 says 8 < N <= 10.
    let b = block(5);
    let bytes = encode(
        5,
        &[
            vec![(4, 2, Some(b[4].as_hash())), (5, 1, None)],
            vec![(5, 1, None)],
        ],
    );
    let at = 3 + 34 + 2 + 1;
    assert_eq!(
        parse_err(MerklePath::from_bytes_lenient(&bytes)),
        ParseError::new(at, ParseErrorKind::InvalidValue, OUTSIDE_TREE)
    );
    // Strict mode stops earlier: no leaf needs level-1 offset 5.
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&bytes)),
        ParseError::new(at, ParseErrorKind::IllegalOffset, "BUMP node offset")
    );
}

#[test]
fn a_duplicate_marker_needs_its_left_sibling() {
    // Level 0: leaves 0 and 1, marker at 3, but no leaf 2 for it to repeat.
    let b = block(3);
    let level0 = vec![
        (0, 2, Some(b[0].as_hash())),
        (1, 0, Some(b[1].as_hash())),
        (3, 1, None),
    ];
    assert_shape_fault(&[level0], 3 + 68, NO_LEFT_SIBLING);
    // Level 1 (lenient; strict rejects the offset itself): marker at 3, and
    // level-1 node 2 is neither given nor computable.
    let (_, mut parts) = four_tx_parts();
    parts[1].push((3, 1, None));
    let bytes = encode(5, &parts);
    let at = 3 + 68 + 1 + 34;
    assert_eq!(
        parse_err(MerklePath::from_bytes_lenient(&bytes)),
        ParseError::new(at, ParseErrorKind::InvalidValue, NO_LEFT_SIBLING)
    );
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&bytes)).kind,
        ParseErrorKind::IllegalOffset
    );
}

#[test]
fn a_marker_at_the_right_edge_fits_in_both_modes() {
    // Block of 3, every leaf given and the marker after the last: N = 3.
    let b = block(3);
    let level0: RawLevel = vec![
        (0, 2, Some(b[0].as_hash())),
        (1, 0, Some(b[1].as_hash())),
        (2, 2, Some(b[2].as_hash())),
        (3, 1, None),
    ];
    let bytes = encode(5, &[level0]);
    for path in [
        MerklePath::from_bytes_strict(&bytes).unwrap(),
        MerklePath::from_bytes_lenient(&bytes).unwrap(),
    ] {
        assert_eq!(path.root(), reference_root(&b));
        assert_eq!(
            path.extract(&[b[2]]).unwrap(),
            MerklePath::from_block(5, &b, &[2]).unwrap()
        );
    }
    // Offset 1 is odd too: "leaf 0, marker at 1" pairs leaf 0 with itself
    // (ts-sdk findOrComputeLeaf; a real tree would stop at one node).
    let bytes = encode(5, &[vec![(0, 2, Some(b[0].as_hash())), (1, 1, None)]]);
    let path = MerklePath::from_bytes_strict(&bytes).unwrap();
    assert_eq!(
        path.root(),
        Hash256::merkle_parent(&b[0].as_hash(), &b[0].as_hash())
    );
    let mut trimmed = path.clone();
    trimmed.trim();
    assert_eq!(MerklePath::from_bytes_strict(&trimmed.to_bytes()), Ok(path));
}

#[test]
fn a_compound_path_pairs_only_a_left_child_with_itself() {
    // Leaves 8 and 9 of a block of 10, one level: the last node pairs with
    // itself at level 1 (position 4 of 5) and level 2 (2 of 3), but at
    // level 3 position 1 is a right child whose left sibling is missing.
    let b = block(10);
    let level0 = vec![(8, 0, Some(b[8].as_hash())), (9, 2, Some(b[9].as_hash()))];
    assert_eq!(
        MerklePath::from_bytes_lenient(&encode(5, &[level0])),
        Err(BumpError::MissingNode {
            index: 8,
            height: 3
        })
    );
}

#[test]
fn combine_refuses_paths_of_one_root_but_different_block_sizes() {
    // CVE-2012-2459: a block of 5 and the same block with its last txid
    // repeated to 8 have one Merkle root. Proving tx 4 in the first needs a
    // level-0 marker at 5 (N = 5); proving tx 6 in the second puts a leaf at 6.
    let five = block(5);
    let mut eight = five.clone();
    eight.extend([five[4]; 3]);
    assert_eq!(reference_root(&five), reference_root(&eight));
    let small = MerklePath::from_block(9, &five, &[4]).unwrap();
    let big = MerklePath::from_block(9, &eight, &[6]).unwrap();
    for (mut ours, theirs) in [(small.clone(), &big), (big.clone(), &small)] {
        let before = ours.clone();
        assert_eq!(ours.combine(theirs), Err(BumpError::BlockSizeMismatch));
        assert_eq!(ours, before, "a refused combine changes nothing");
    }
    // A twin of 6 (tx 4 repeated once) fits together with the block of 5:
    // leaves 4 and 5 pair, and the level-1 marker at 3 holds for N = 6.
    let mut six = five.clone();
    six.push(five[4]);
    let mut joined = small.clone();
    joined
        .combine(&MerklePath::from_block(9, &six, &[5]).unwrap())
        .unwrap();
    let back = MerklePath::from_bytes_strict(&joined.to_bytes()).unwrap();
    assert_eq!(back.root(), reference_root(&five));
    assert_eq!(
        back.levels()[0]
            .iter()
            .map(|n| n.offset)
            .collect::<Vec<_>>(),
        vec![4, 5]
    );
}

#[test]
fn illegal_offsets_fail_strict_and_pass_lenient() {
    let (b, mut parts) = four_tx_parts();
    let h01 = Hash256::merkle_parent(&b[0].as_hash(), &b[1].as_hash());
    parts[1].insert(0, (0, 0, Some(h01)));
    let bytes = encode(5, &parts);
    let e = parse_err(MerklePath::from_bytes_strict(&bytes));
    // Level 1 starts after 3 + 2 × 34 bytes and its count byte.
    assert_eq!(
        (e.offset, e.kind),
        (3 + 68 + 1, ParseErrorKind::IllegalOffset)
    );
    let lenient = MerklePath::from_bytes_lenient(&bytes).unwrap();
    assert_eq!(lenient.root(), reference_root(&b));
    assert_eq!(lenient.to_bytes(), bytes);
}

#[test]
fn tree_height_and_block_height_are_range_checked() {
    let (_, parts) = four_tx_parts();
    let mut bytes = encode(5, &parts);
    bytes[1] = 0;
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&bytes)),
        ParseError::new(1, ParseErrorKind::InvalidValue, "BUMP tree height (1..=64)")
    );
    bytes[1] = 65;
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&bytes)).kind,
        ParseErrorKind::InvalidValue
    );
    let big = encode(u64::from(u32::MAX) + 1, &parts);
    assert_eq!(
        parse_err(MerklePath::from_bytes_strict(&big)),
        ParseError::new(
            0,
            ParseErrorKind::InvalidValue,
            "BUMP block height above u32::MAX"
        )
    );
}

#[test]
fn an_empty_level_zero_proves_nothing() {
    assert_eq!(
        MerklePath::from_bytes_lenient(&encode(5, &[vec![]])),
        Err(BumpError::EmptyLevel0)
    );
    assert_eq!(
        MerklePath::from_bytes_lenient(&encode(5, &[vec![(1, 1, None)]])),
        Err(BumpError::EmptyLevel0)
    );
}

#[test]
fn a_missing_sibling_names_leaf_and_height() {
    let (_, mut parts) = four_tx_parts();
    parts[1].clear();
    assert_eq!(
        MerklePath::from_bytes_lenient(&encode(5, &parts)),
        Err(BumpError::MissingNode {
            index: 0,
            height: 1
        })
    );
}

#[test]
fn leaves_leading_to_different_roots_are_rejected() {
    // Two clients, 0 and 2, whose level-1 siblings disagree with their leaves.
    let b = block(4);
    let parts = vec![
        vec![
            (0, 2, Some(b[0].as_hash())),
            (1, 0, Some(b[1].as_hash())),
            (2, 2, Some(b[2].as_hash())),
            (3, 0, Some(b[3].as_hash())),
        ],
        vec![(0, 0, Some(b[0].as_hash())), (1, 0, Some(b[1].as_hash()))],
    ];
    assert_eq!(
        MerklePath::from_bytes_lenient(&encode(5, &parts)),
        Err(BumpError::MismatchedRoots)
    );
}

#[test]
fn unknown_txids_are_reported() {
    let b = block(4);
    let path = MerklePath::from_block(5, &b, &[1]).unwrap();
    let stranger = txid(99);
    assert_eq!(
        path.compute_root(&stranger),
        Err(BumpError::TxidNotFound(stranger))
    );
    assert_eq!(
        path.extract(&[stranger]),
        Err(BumpError::TxidNotFound(stranger))
    );
    assert_eq!(path.extract(&[]), Err(BumpError::NoClients));
    // The plain sibling leaf is a leaf too, with the same root.
    assert_eq!(path.compute_root(&b[0]).unwrap(), path.root());
}

#[test]
fn from_block_argument_errors() {
    assert_eq!(
        MerklePath::from_block(1, &[], &[0]),
        Err(BumpError::EmptyBlock)
    );
    assert_eq!(
        MerklePath::from_block(1, &block(3), &[]),
        Err(BumpError::NoClients)
    );
    assert_eq!(
        MerklePath::from_block(1, &block(3), &[1, 3]),
        Err(BumpError::ClientIndexOutOfRange {
            index: 3,
            block_len: 3
        })
    );
}

#[test]
fn hostile_counts_do_not_allocate() {
    // 2^62 nodes announced in a few bytes.
    let bytes = [0x05, 0x01, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0];
    assert_eq!(
        parse_err(MerklePath::from_bytes_lenient(&bytes)).kind,
        ParseErrorKind::CountTooLarge
    );
}

#[test]
fn node_at_finds_given_nodes_and_computes_missing_ones() {
    let (b, parts) = four_tx_parts();
    let path = MerklePath::from_bytes_strict(&encode(5, &parts)).unwrap();
    let h01 = Hash256::merkle_parent(&b[0].as_hash(), &b[1].as_hash());
    let h23 = Hash256::merkle_parent(&b[2].as_hash(), &b[3].as_hash());
    assert_eq!(
        path.node_at(0, 1),
        Some(NodeValue::ClientTxid(b[1])).map(|v| NodeValue::Hash(v.hash().unwrap()))
    );
    assert_eq!(
        path.node_at(1, 0),
        Some(NodeValue::Hash(h01)),
        "computed from level 0"
    );
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
        (
            1u64..40,
            proptest::collection::vec(any::<prop::sample::Index>(), 1..5),
        )
            .prop_map(|(n, picks)| {
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
        fn produced_paths_decode_strictly_to_the_block_root(
            n in 1u64..300,
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..6),
            others in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
            edge_marker in any::<bool>(),
        ) {
            let b = block(n);
            let root = reference_root(&b);
            let clients: Vec<usize> = picks.iter().map(|p| p.index(n as usize)).collect();
            let more: Vec<usize> = others.iter().map(|p| p.index(n as usize)).collect();
            let strict = |p: &MerklePath| -> Result<MerklePath, TestCaseError> {
                let back = MerklePath::from_bytes_strict(&p.to_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {}", p.to_hex())))?;
                prop_assert_eq!(back.root(), root);
                prop_assert_eq!(back.client_txids().collect::<Vec<_>>(), p.client_txids().collect::<Vec<_>>());
                Ok(back)
            };
            let path = MerklePath::from_block(3, &b, &clients).unwrap();
            strict(&path)?;
            // extract: every client, then the first alone.
            let wanted: Vec<Txid> = clients.iter().map(|&i| b[i]).collect();
            strict(&path.extract(&wanted).unwrap())?;
            strict(&path.extract(&wanted[..1]).unwrap())?;
            // combine with a path of other clients of the block.
            let mut joint = path.clone();
            joint.combine(&MerklePath::from_block(3, &b, &more).unwrap()).unwrap();
            let mut all = clients.clone();
            all.extend(&more);
            prop_assert_eq!(&strict(&joint)?, &MerklePath::from_block(3, &b, &all).unwrap());
            // A single-level compound path holding the whole block (clients
            // flagged, the rest plain), with the right-edge marker written
            // out or implied: trim, extract and combine it.
            let mut level0: RawLevel = b
                .iter()
                .enumerate()
                .map(|(i, t)| (i as u64, if clients.contains(&i) { 2 } else { 0 }, Some(t.as_hash())))
                .collect();
            if edge_marker && n % 2 == 1 && n > 1 {
                level0.push((n, 1, None));
            }
            let compound = MerklePath::from_bytes_strict(&encode(3, &[level0])).unwrap();
            prop_assert_eq!(compound.root(), root);
            let mut trimmed = compound.clone();
            trimmed.trim();
            prop_assert_eq!(&strict(&trimmed)?, &path);
            strict(&compound.extract(&[b[more[0]]]).unwrap())?;
            let mut combined = compound.clone();
            combined.combine(&path).unwrap();
            prop_assert_eq!(&strict(&combined)?, &path);
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

    proptest! {
        // Cheap cases, and the faults it hunts need a few coincidences: eight
        // times the usual count (which PROPTEST_CASES still scales).
        #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases * 8, ..ProptestConfig::default() })]

        /// Every path the decoder accepts, in either mode, is one the
        /// producers turn into bytes that decode strictly and leniently, with
        /// the same root and clients. Paths here are small valid ones (a
        /// single-level compound path of a whole block, its right-edge marker
        /// written out or implied, or a built path) with
        /// up to three edits: a node removed, a node turned into a duplicate
        /// marker, a marker inserted anywhere.
        #[test]
        fn what_decodes_is_what_the_producers_can_rebuild(
            n in 1u64..10,
            client_bits in proptest::collection::vec(any::<bool>(), 10),
            compound in any::<bool>(),
            edge_marker in any::<bool>(),
            edits in proptest::collection::vec((0u8..3, any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u64..14), 0..4),
        ) {
            let b = block(n);
            let mut clients: Vec<usize> = (0..n as usize).filter(|&i| client_bits[i]).collect();
            if clients.is_empty() {
                clients.push(0);
            }
            let mut levels: Vec<RawLevel> = if compound {
                let mut level0: RawLevel = b
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (i as u64, if clients.contains(&i) { 2 } else { 0 }, Some(t.as_hash())))
                    .collect();
                if edge_marker && n % 2 == 1 && n > 1 {
                    level0.push((n, 1, None));
                }
                vec![level0]
            } else {
                let built = MerklePath::from_block(3, &b, &clients).unwrap();
                built.levels().iter().map(|l| l.iter().map(|p| (p.offset, p.value.flag(), p.value.hash())).collect()).collect()
            };
            for (kind, level, node, offset) in edits {
                let h = level.index(levels.len());
                let nodes = &mut levels[h];
                match kind {
                    0 if !nodes.is_empty() => {
                        nodes.remove(node.index(nodes.len()));
                    }
                    1 if !nodes.is_empty() => {
                        let i = node.index(nodes.len());
                        nodes[i] = (nodes[i].0, 1, None);
                    }
                    _ if nodes.iter().all(|p| p.0 != offset) => nodes.push((offset, 1, None)),
                    _ => {}
                }
            }
            let bytes = encode(3, &levels);
            for decoded in [MerklePath::from_bytes_strict(&bytes), MerklePath::from_bytes_lenient(&bytes)].into_iter().flatten() {
                let clients: Vec<Txid> = decoded.client_txids().collect();
                if clients.is_empty() {
                    continue;
                }
                let mut trimmed = decoded.clone();
                trimmed.trim();
                let mut combined = decoded.clone();
                combined.combine(&decoded).unwrap();
                for (what, p) in [("extract", decoded.extract(&clients).unwrap()), ("trim", trimmed), ("combine", combined)] {
                    for back in [MerklePath::from_bytes_strict(&p.to_bytes()), MerklePath::from_bytes_lenient(&p.to_bytes())] {
                        let back = back.map_err(|e| TestCaseError::fail(format!("{what} of {}: {e}", decoded.to_hex())))?;
                        prop_assert_eq!(back.root(), decoded.root());
                        let mut ours: Vec<Txid> = back.client_txids().collect();
                        let mut theirs = clients.clone();
                        ours.sort_unstable_by_key(|t| t.0);
                        theirs.sort_unstable_by_key(|t| t.0);
                        theirs.dedup();
                        prop_assert_eq!(ours, theirs);
                    }
                }
            }
        }
    }
}
