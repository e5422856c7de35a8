//! Keys, WIF, addresses, signing and the node's signature/public-key checks.
//!
//! The WIF, public-key and address values below were computed independently
//! of this crate (a short Python script: textbook affine point
//! multiplication, `hashlib` SHA-256/RIPEMD-160, and a Base58 written from
//! the alphabet); the values for key 1 also match the widely published ones
//! (`KwDiBf89…`, `1BgGZ9tc…`).

use bsv_format::hash::sha256;
use bsv_format::keys::{
    base58check_decode, base58check_encode, decode_p2pkh_address,
    is_compressed_or_uncompressed_pubkey, is_compressed_pubkey, is_low_s, is_strict_der,
    p2pkh_address, verify_ecdsa, KeyError, Network, PrivateKey, PublicKey, Wif,
};

struct KeyVector {
    scalar: &'static str,
    compressed: &'static str,
    uncompressed: &'static str,
    hash160_compressed: &'static str,
    hash160_uncompressed: &'static str,
    wif_main_c: &'static str,
    wif_main_u: &'static str,
    wif_test_c: &'static str,
    wif_test_u: &'static str,
    addr_main_c: &'static str,
    addr_main_u: &'static str,
    addr_test_c: &'static str,
    addr_test_u: &'static str,
}

const VECTORS: &[KeyVector] = &[
    KeyVector {
        scalar: "0000000000000000000000000000000000000000000000000000000000000001",
        compressed: "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        uncompressed: "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
        hash160_compressed: "751e76e8199196d454941c45d1b3a323f1433bd6",
        hash160_uncompressed: "91b24bf9f5288532960ac687abb035127b1d28a5",
        wif_main_c: "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn",
        wif_main_u: "5HpHagT65TZzG1PH3CSu63k8DbpvD8s5ip4nEB3kEsreAnchuDf",
        wif_test_c: "cMahea7zqjxrtgAbB7LSGbcQUr1uX1ojuat9jZodMN87JcbXMTcA",
        wif_test_u: "91avARGdfge8E4tZfYLoxeJ5sGBdNJQH4kvjJoQFacbgwmaKkrx",
        addr_main_c: "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH",
        addr_main_u: "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm",
        addr_test_c: "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r",
        addr_test_u: "mtoKs9V381UAhUia3d7Vb9GNak8Qvmcsme",
    },
    KeyVector {
        scalar: "1111111111111111111111111111111111111111111111111111111111111111",
        compressed: "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa",
        uncompressed: "044f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa385b6b1b8ead809ca67454d9683fcf2ba03456d6fe2c4abe2b07f0fbdbb2f1c1",
        hash160_compressed: "fc7250a211deddc70ee5a2738de5f07817351cef",
        hash160_uncompressed: "e4e517ee07984a4000cd7b00cbcb545911c541c4",
        wif_main_c: "KwntMbt59tTsj8xqpqYqRRWufyjGunvhSyeMo3NTYpFYzZbXJ5Hp",
        wif_main_u: "5HwoXVkHoRM8sL2KmNRS217n1g8mPPBomrY7yehCuXC1115WWsh",
        wif_test_c: "cN9spWsvaxA8taS7DFMxnk1yJD2gaF2PX1npuTpy3vuZFJdwavaw",
        wif_test_u: "91iS7EZqPeRGqPXcPiKLtbfjfLVUYYj17oQ54H3iFFw3n1UmZSS",
        addr_main_c: "1Q1pE5vPGEEMqRcVRMbtBK842Y6Pzo6nK9",
        addr_main_u: "1MsHWS1BnwMc3tLE8G35UXsS58fKipzB7a",
        addr_test_c: "n4XmX91N5FfccY678vaG1ELNtXh6skVES7",
        addr_test_u: "n2PEoV6Abxnrpzoqqq1TJT5kw8G2dMPpBd",
    },
    KeyVector {
        // n - 1, the largest valid scalar: its point is -G.
        scalar: "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140",
        compressed: "0379be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        uncompressed: "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798b7c52588d95c3b9aa25b0403f1eef75702e84bb7597aabe663b82f6f04ef2777",
        hash160_compressed: "adde4c73c7b9cee17da6c7b3e2b2eea1a0dcbe67",
        hash160_uncompressed: "bec08011c9e76dcc42e739a2d7752c2e3ac86e6e",
        wif_main_c: "L5oLkpV3aqBjhki6LmvChTCV6odsp4SXM6FfU2Gppt5kFLaHLuZ9",
        wif_main_u: "5Km2kuu7vtFDPpxywn4u3NLpbr5jKpTB3jsuDU2KYEqetqj84qw",
        wif_test_c: "cWALDjUu1tszsCBMjBjL4mhYj2wHUWYDR8Q8aSjLKzjkW5eBtpzu",
        wif_test_u: "93XfLeifX7KMMtUGa7xouxtnFWSSUyzNPgjrJ6Npsyahfqjy7oJ",
        addr_main_c: "1GrLCmVQXoyJXaPJQdqssNqwxvha1eUo2E",
        addr_main_u: "1JPbzbsAx1HyaDQoLMapWGoqf9pD5uha5m",
        addr_test_c: "mwNHVpaPLqQZJgrv8CpFhJ4GpvJGumskXi",
        addr_test_u: "mxuZHex9m2jEMKtR3vZCLC2AX9QuyLzj7L",
    },
];

fn arr32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

const N: &str = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";

#[test]
fn wif_decodes_to_the_known_key_network_and_flag_and_round_trips() {
    for v in VECTORS {
        let key = PrivateKey::from_bytes(&arr32(v.scalar)).unwrap();
        for (text, network, compressed) in [
            (v.wif_main_c, Network::Mainnet, true),
            (v.wif_main_u, Network::Mainnet, false),
            (v.wif_test_c, Network::Testnet, true),
            (v.wif_test_u, Network::Testnet, false),
        ] {
            let wif = PrivateKey::from_wif(text).unwrap();
            assert_eq!(
                wif,
                Wif {
                    key,
                    network,
                    compressed
                },
                "{text}"
            );
            assert_eq!(hex::encode(wif.key.to_bytes()), v.scalar);
            assert_eq!(wif.encode(), text);
            let sec = wif.public_key_sec();
            assert_eq!(
                hex::encode(&sec),
                if compressed {
                    v.compressed
                } else {
                    v.uncompressed
                }
            );
        }
        assert_eq!(key.to_wif(Network::Mainnet), v.wif_main_c);
        assert_eq!(key.to_wif(Network::Testnet), v.wif_test_c);
    }
}

#[test]
fn public_keys_hashes_and_addresses_match_independent_values() {
    for v in VECTORS {
        let key = PrivateKey::from_bytes(&arr32(v.scalar)).unwrap();
        let pk = key.public_key();
        assert_eq!(hex::encode(pk.to_compressed()), v.compressed);
        assert_eq!(hex::encode(pk.to_uncompressed()), v.uncompressed);
        assert_eq!(pk.to_string(), v.compressed);
        assert_eq!(hex::encode(pk.hash160()), v.hash160_compressed);
        assert_eq!(pk.address(Network::Mainnet), v.addr_main_c);
        assert_eq!(pk.address(Network::Testnet), v.addr_test_c);
        let hu: [u8; 20] = hex::decode(v.hash160_uncompressed)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(p2pkh_address(&hu, Network::Mainnet), v.addr_main_u);
        assert_eq!(p2pkh_address(&hu, Network::Testnet), v.addr_test_u);
        // Both SEC forms parse to the same point.
        assert_eq!(
            PublicKey::from_sec(&hex::decode(v.compressed).unwrap()).unwrap(),
            pk
        );
        assert_eq!(
            PublicKey::from_sec(&hex::decode(v.uncompressed).unwrap()).unwrap(),
            pk
        );
        // Addresses decode back.
        assert_eq!(
            decode_p2pkh_address(v.addr_main_c).unwrap(),
            (pk.hash160(), Network::Mainnet)
        );
        assert_eq!(
            decode_p2pkh_address(v.addr_test_u).unwrap(),
            (hu, Network::Testnet)
        );
    }
}

#[test]
fn private_key_range_is_checked() {
    assert_eq!(
        PrivateKey::from_bytes(&[0u8; 32]),
        Err(KeyError::InvalidScalar)
    );
    assert_eq!(
        PrivateKey::from_bytes(&arr32(N)),
        Err(KeyError::InvalidScalar)
    );
    assert_eq!(
        PrivateKey::from_bytes(&[0xff; 32]),
        Err(KeyError::InvalidScalar)
    );
    assert!(PrivateKey::from_bytes(&arr32(VECTORS[2].scalar)).is_ok());
    // A WIF carrying the scalar n is rejected after its checksum checks out.
    let mut payload = vec![0x80];
    payload.extend_from_slice(&arr32(N));
    payload.push(1);
    assert_eq!(
        PrivateKey::from_wif(&base58check_encode(&payload)),
        Err(KeyError::InvalidScalar)
    );
    // The secret never appears in Debug output.
    let key = PrivateKey::from_bytes(&arr32(VECTORS[1].scalar)).unwrap();
    assert!(!format!("{key:?}").contains("1111"));
}

#[test]
fn wif_errors_name_the_fault() {
    let scalar = arr32(VECTORS[1].scalar);
    let wif_with = |prefix: u8, suffix: &[u8]| {
        let mut p = vec![prefix];
        p.extend_from_slice(&scalar);
        p.extend_from_slice(suffix);
        base58check_encode(&p)
    };
    // Bad checksum: change the last character.
    let good = VECTORS[1].wif_main_c;
    let mut bad = good[..good.len() - 1].to_string();
    bad.push(if good.ends_with('p') { 'q' } else { 'p' });
    assert_eq!(PrivateKey::from_wif(&bad), Err(KeyError::BadChecksum));
    // Wrong prefix.
    assert_eq!(
        PrivateKey::from_wif(&wif_with(0x81, &[1])),
        Err(KeyError::UnknownPrefix { prefix: 0x81 })
    );
    assert_eq!(
        PrivateKey::from_wif(&wif_with(0x00, &[])),
        Err(KeyError::UnknownPrefix { prefix: 0x00 })
    );
    // Wrong compression flag.
    assert_eq!(
        PrivateKey::from_wif(&wif_with(0x80, &[2])),
        Err(KeyError::BadCompressionFlag { flag: 2 })
    );
    // Wrong lengths: 31-byte key, 35-byte payload, empty payload.
    let mut short = vec![0x80];
    short.extend_from_slice(&scalar[..31]);
    assert_eq!(
        PrivateKey::from_wif(&base58check_encode(&short)),
        Err(KeyError::WrongLength { len: 32 })
    );
    assert_eq!(
        PrivateKey::from_wif(&wif_with(0x80, &[1, 1])),
        Err(KeyError::WrongLength { len: 35 })
    );
    assert_eq!(
        PrivateKey::from_wif(&base58check_encode(&[])),
        Err(KeyError::WrongLength { len: 0 })
    );
    // Not Base58 at all.
    assert_eq!(
        PrivateKey::from_wif("KwDiBf89Qg0bj"),
        Err(KeyError::InvalidBase58Char { offset: 10 })
    );
    assert_eq!(
        PrivateKey::from_wif(""),
        Err(KeyError::WrongLength { len: 0 })
    );
}

#[test]
fn address_errors_name_the_fault() {
    let h = [7u8; 20];
    let mut p = vec![0x05];
    p.extend_from_slice(&h);
    assert_eq!(
        decode_p2pkh_address(&base58check_encode(&p)),
        Err(KeyError::UnknownPrefix { prefix: 0x05 })
    );
    assert_eq!(
        decode_p2pkh_address(&base58check_encode(&p[..20])),
        Err(KeyError::WrongLength { len: 20 })
    );
    let good = p2pkh_address(&h, Network::Mainnet);
    let mut bad = good.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'z' { b'y' } else { b'z' };
    assert_eq!(
        decode_p2pkh_address(std::str::from_utf8(&bad).unwrap()),
        Err(KeyError::BadChecksum)
    );
    assert_eq!(base58check_decode(&good).unwrap(), {
        let mut q = vec![0];
        q.extend_from_slice(&h);
        q
    });
}

#[test]
fn public_key_parsing_rejects_hybrid_bad_lengths_and_off_curve_points() {
    let v = &VECTORS[0];
    let unc = hex::decode(v.uncompressed).unwrap();
    let mut hybrid = unc.clone();
    hybrid[0] = 0x06; // y of G is even
    assert_eq!(
        PublicKey::from_sec(&hybrid),
        Err(KeyError::InvalidPublicKey)
    );
    assert_eq!(
        PublicKey::from_sec(&unc[..33]),
        Err(KeyError::InvalidPublicKey)
    );
    assert_eq!(PublicKey::from_sec(&[]), Err(KeyError::InvalidPublicKey));
    let mut comp = hex::decode(v.compressed).unwrap();
    comp.push(0);
    assert_eq!(PublicKey::from_sec(&comp), Err(KeyError::InvalidPublicKey));
    // x = 5 is not the x-coordinate of any curve point (5^3 + 7 = 132 is not a square mod p).
    let mut off = [0u8; 33];
    off[0] = 2;
    off[32] = 5;
    assert_eq!(PublicKey::from_sec(&off), Err(KeyError::InvalidPublicKey));
}

/// Encodes (r, s) as strict DER, as a signer would.
fn der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = v.iter().copied().skip_while(|&b| b == 0).collect();
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    }
    let body: Vec<u8> = [int(r), int(s)].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// Splits a strict DER signature into 32-byte r and s.
fn split_der(sig: &[u8]) -> ([u8; 32], [u8; 32]) {
    let lr = sig[3] as usize;
    let r = &sig[4..4 + lr];
    let ls = sig[5 + lr] as usize;
    let s = &sig[6 + lr..6 + lr + ls];
    let pad = |v: &[u8]| {
        let v: Vec<u8> = v.iter().copied().skip_while(|&b| b == 0).collect();
        let mut out = [0u8; 32];
        out[32 - v.len()..].copy_from_slice(&v);
        out
    };
    (pad(r), pad(s))
}

fn n_minus(s: &[u8; 32]) -> [u8; 32] {
    let n = arr32(N);
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = n[i] as i16 - s[i] as i16 - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out
}

#[test]
fn signing_is_rfc6979_deterministic_low_s_strict_der() {
    // RFC 6979 (HMAC-SHA-256 nonce) over secp256k1, message = SHA-256(text):
    // (key, text, r ‖ s) in low-S form. The first two are the vectors published
    // with several Bitcoin libraries; all three were recomputed with an
    // independent Python RFC 6979 implementation.
    let cases = [
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "Satoshi Nakamoto",
            "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d82442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "All those moments will be lost in time, like tears in rain. Time to die...",
            "8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21",
        ),
        (
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140",
            "Satoshi Nakamoto",
            "fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d06b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5",
        ),
    ];
    for (k, msg, rs) in cases {
        let key = PrivateKey::from_bytes(&arr32(k)).unwrap();
        let digest = sha256(msg.as_bytes());
        let sig = key.sign_digest(&digest);
        let (r, s) = split_der(&sig);
        assert_eq!(hex::encode([r, s].concat()), rs, "{msg}");
        assert_eq!(key.sign_digest(&digest), sig, "deterministic");
        let mut with_type = sig.clone();
        with_type.push(0x41);
        assert!(is_strict_der(&with_type));
        assert!(is_low_s(&with_type), "low-S");
        assert!(verify_ecdsa(
            &digest,
            &sig,
            &key.public_key().to_compressed()
        ));
        assert!(verify_ecdsa(
            &digest,
            &sig,
            &key.public_key().to_uncompressed()
        ));
        assert!(key.public_key().verify_digest(&digest, &sig));
        let mut other = digest;
        other[0] ^= 1;
        assert!(!verify_ecdsa(
            &other,
            &sig,
            &key.public_key().to_compressed()
        ));
    }
}

#[test]
fn many_signatures_are_all_low_s() {
    let key = PrivateKey::from_bytes(&arr32(VECTORS[1].scalar)).unwrap();
    for i in 0u32..200 {
        let digest = sha256(&i.to_le_bytes());
        let mut sig = key.sign_digest(&digest);
        assert!(sig.len() <= 72);
        sig.push(0x01);
        assert!(is_strict_der(&sig) && is_low_s(&sig), "digest #{i}");
    }
}

#[test]
fn verify_follows_the_node_high_s_lax_der_and_hybrid_keys() {
    let key = PrivateKey::from_bytes(&arr32(VECTORS[1].scalar)).unwrap();
    let pk = key.public_key();
    let digest = sha256(b"escrowd");
    let sig = key.sign_digest(&digest);
    let (r, s) = split_der(&sig);

    // High-S twin: verifies (the node normalises), strict DER, but not low-S.
    let high = der(&r, &n_minus(&s));
    assert_ne!(high, sig);
    assert!(verify_ecdsa(&digest, &high, &pk.to_compressed()));
    let mut high_t = high.clone();
    high_t.push(0x41);
    assert!(is_strict_der(&high_t));
    assert!(!is_low_s(&high_t));

    // Lax DER: an extra zero byte of padding in R breaks BIP66 but the node's
    // lax parser accepts it.
    let mut padded = vec![0x30, sig[1] + 1, 0x02, sig[3] + 1, 0x00];
    padded.extend_from_slice(&sig[4..]);
    assert!(verify_ecdsa(&digest, &padded, &pk.to_compressed()));
    let mut padded_t = padded.clone();
    padded_t.push(0x41);
    assert!(!is_strict_der(&padded_t));
    assert!(is_low_s(&padded_t));

    // Hybrid keys verify, as in CPubKey::Verify; the wrong parity byte does not.
    let unc = pk.to_uncompressed();
    let odd = unc[64] & 1 == 1;
    let mut hybrid = unc;
    hybrid[0] = if odd { 0x07 } else { 0x06 };
    assert!(verify_ecdsa(&digest, &sig, &hybrid));
    hybrid[0] = if odd { 0x06 } else { 0x07 };
    assert!(!verify_ecdsa(&digest, &sig, &hybrid));
    assert!(!is_compressed_or_uncompressed_pubkey(&hybrid));

    // Malformed inputs fail without panicking.
    assert!(!verify_ecdsa(&digest, &[], &pk.to_compressed()));
    assert!(!verify_ecdsa(&digest, &sig, &[]));
    assert!(!verify_ecdsa(&digest, &sig, &pk.to_compressed()[..32]));
    assert!(!verify_ecdsa(&digest, &sig, &unc[..33]));
    assert!(!verify_ecdsa(
        &digest,
        &sig[..sig.len() - 1],
        &pk.to_compressed()
    ));
    assert!(!verify_ecdsa(&digest, &[0x30], &pk.to_compressed()));
    assert!(!is_low_s(&[]));
    assert!(!is_low_s(&[0x41]));
    // Another key's public key does not verify.
    let other = PrivateKey::from_bytes(&arr32(VECTORS[0].scalar))
        .unwrap()
        .public_key();
    assert!(!verify_ecdsa(&digest, &sig, &other.to_compressed()));
}

#[test]
fn strict_der_rejects_each_bip66_violation() {
    let key = PrivateKey::from_bytes(&arr32(VECTORS[0].scalar)).unwrap();
    let mut good = key.sign_digest(&sha256(b"bip66"));
    good.push(0x01);
    assert!(is_strict_der(&good));
    let lr = good[3] as usize;
    let mutate = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut s = good.clone();
        f(&mut s);
        is_strict_der(&s)
    };
    assert!(!mutate(&|s| s[0] = 0x31), "sequence tag");
    assert!(!mutate(&|s| s[1] += 1), "total length");
    assert!(!mutate(&|s| s[2] = 0x03), "R tag");
    assert!(!mutate(&|s| s[4 + lr] = 0x03), "S tag");
    assert!(!mutate(&|s| s[4] |= 0x80), "negative R");
    assert!(!mutate(&|s| s[6 + lr] |= 0x80), "negative S");
    assert!(!mutate(&|s| s.truncate(8)), "too short");
    assert!(!mutate(&|s| s.push(0)), "trailing byte");
    // Too long: 74 bytes.
    assert!(!is_strict_der(&[0x30; 74]));
    assert!(!is_strict_der(&[]));
    // Zero-length R and S; padded R.
    assert!(!is_strict_der(
        &hex::decode("3006020002020101_01".replace('_', "")).unwrap()
    ));
    assert!(!is_strict_der(
        &hex::decode("3006020101020001_01".replace('_', "")).unwrap()
    ));
    assert!(!is_strict_der(
        &hex::decode("300702020001020101_01".replace('_', "")).unwrap()
    ));
    assert!(!is_strict_der(
        &hex::decode("300702010102020001_01".replace('_', "")).unwrap()
    ));
    // Minimal valid shapes: R = 1, S = 1; R = 0x0080 (padding needed).
    assert!(is_strict_der(
        &hex::decode("3006020101020101_01".replace('_', "")).unwrap()
    ));
    assert!(is_strict_der(
        &hex::decode("300702020080020101_01".replace('_', "")).unwrap()
    ));
    // R length pointing past the end.
    assert!(!is_strict_der(
        &hex::decode("30060250010201010101".replace('_', "")).unwrap()
    ));
}

#[test]
fn pubkey_type_predicates_match_the_node() {
    let mut k33 = vec![0x02];
    k33.extend([1u8; 32]);
    let mut k65 = vec![0x04];
    k65.extend([1u8; 64]);
    assert!(is_compressed_or_uncompressed_pubkey(&k33) && is_compressed_pubkey(&k33));
    k33[0] = 0x03;
    assert!(is_compressed_or_uncompressed_pubkey(&k33) && is_compressed_pubkey(&k33));
    assert!(is_compressed_or_uncompressed_pubkey(&k65) && !is_compressed_pubkey(&k65));
    for bad_prefix in [0x00, 0x01, 0x05, 0x06, 0x07, 0xff] {
        let mut a = k33.clone();
        a[0] = bad_prefix;
        let mut b = k65.clone();
        b[0] = bad_prefix;
        assert!(!is_compressed_or_uncompressed_pubkey(&a) && !is_compressed_pubkey(&a));
        assert!(!is_compressed_or_uncompressed_pubkey(&b) && !is_compressed_pubkey(&b));
    }
    assert!(!is_compressed_or_uncompressed_pubkey(&k33[..32]));
    assert!(!is_compressed_or_uncompressed_pubkey(&k65[..64]));
    assert!(!is_compressed_or_uncompressed_pubkey(&[]));
    assert!(!is_compressed_pubkey(&[]));
    let mut long33 = k33.clone();
    long33.push(0);
    assert!(!is_compressed_or_uncompressed_pubkey(&long33) && !is_compressed_pubkey(&long33));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn checks_never_panic_on_arbitrary_bytes(
            sig in proptest::collection::vec(any::<u8>(), 0..80),
            pk in proptest::collection::vec(any::<u8>(), 0..70),
            digest in any::<[u8; 32]>(),
        ) {
            let _ = verify_ecdsa(&digest, &sig, &pk);
            let _ = is_strict_der(&sig);
            let _ = is_low_s(&sig);
            if is_compressed_pubkey(&pk) {
                prop_assert!(is_compressed_or_uncompressed_pubkey(&pk));
            }
        }

        #[test]
        fn text_decoders_never_panic(text in "\\PC{0,60}") {
            let _ = PrivateKey::from_wif(&text);
            let _ = decode_p2pkh_address(&text);
        }

        #[test]
        fn signatures_verify_for_any_key_and_digest(k in any::<[u8; 32]>(), digest in any::<[u8; 32]>()) {
            if let Ok(key) = PrivateKey::from_bytes(&k) {
                let mut sig = key.sign_digest(&digest);
                prop_assert!(verify_ecdsa(&digest, &sig, &key.public_key().to_compressed()));
                sig.push(0x41);
                prop_assert!(is_strict_der(&sig) && is_low_s(&sig));
            }
        }
    }
}
