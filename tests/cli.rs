//! The command line as a user runs it: the real binary, its exit codes
//! (0 valid, 1 invalid input, 2 usage / unreadable input), stdout and stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bsv_format::beef::Beef;
use bsv_format::hash::{sha256d, Hash256};

const SUBJECT: &str = "2a7305dd3a5a68ab3ec5161125733cbaab0fb7cd1c9ce11cff4664f97392ba22";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn escrowd(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn sample_beef() -> String {
    examples()
        .join("sample.beef.hex")
        .to_string_lossy()
        .into_owned()
}

fn sample_headers() -> String {
    examples()
        .join("sample.headers.json")
        .to_string_lossy()
        .into_owned()
}

fn scratch(name: &str, content: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("escrowd-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

/// The committed sample is exactly what our own code generates.
#[test]
fn committed_sample_is_what_the_generator_builds() {
    let sample = escrowd::sample::build().unwrap();
    assert_eq!(
        std::fs::read_to_string(sample_beef()).unwrap(),
        sample.beef_file()
    );
    assert_eq!(
        std::fs::read_to_string(sample_headers()).unwrap(),
        sample.headers_file()
    );
    assert_eq!(sample.beef.subject().unwrap().to_string(), SUBJECT);
    assert_eq!(sample.beef.txs().len(), 3);
}

/// The headers root is the Merkle root of the block, recomputed here from the
/// five block txids without the BUMP code.
#[test]
fn sample_root_matches_an_independent_merkle_computation() {
    let sample = escrowd::sample::build().unwrap();
    let funding = sample.beef.txs()[0].txid();
    let mut level: Vec<[u8; 32]> = vec![
        sha256d(b"escrowd sample coinbase"),
        funding.0,
        sha256d(b"escrowd sample filler 1"),
        sha256d(b"escrowd sample filler 2"),
        sha256d(b"escrowd sample filler 3"),
    ];
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().unwrap());
        }
        level = level
            .chunks(2)
            .map(|p| sha256d(&[p[0], p[1]].concat()))
            .collect();
    }
    assert_eq!(sample.headers.root_at(1000), Some(&Hash256(level[0])));
}

#[test]
fn verify_accepts_the_sample() {
    let out = escrowd(
        &[
            "beef",
            "verify",
            &sample_beef(),
            "--headers",
            &sample_headers(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("valid: {SUBJECT} (3 transactions, 1 root confirmed, scripts checked)\n")
    );

    let out = escrowd(
        &[
            "beef",
            "verify",
            &sample_beef(),
            "--headers",
            &sample_headers(),
            "--json",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["subject_txid"], SUBJECT);
    assert_eq!(v["tip_height"], 1010);
    assert_eq!(v["roots"][0]["height"], 1000);
    assert_eq!(
        v["roots"][0]["root"],
        "105a44810a039138ad0cd7c3f254c0290f8081b609ef39d6b7ed7261c3f86457"
    );
}

#[test]
fn verify_reads_binary_from_stdin() {
    let bytes = hex::decode(std::fs::read_to_string(sample_beef()).unwrap().trim()).unwrap();
    let out = escrowd(
        &["beef", "verify", "-", "--headers", &sample_headers()],
        Some(&bytes),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn an_unconfirmed_root_is_invalid_with_the_height_named() {
    let headers = scratch("wrong-root.json", br#"{"tip": 1010, "roots": {"1000": "0000000000000000000000000000000000000000000000000000000000000001"}}"#);
    let out = escrowd(
        &[
            "beef",
            "verify",
            &sample_beef(),
            "--headers",
            &headers,
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not confirmed for height 1000"),
        "{}",
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["rule"], "root_not_confirmed");
}

#[test]
fn a_tampered_claim_fails_its_script_and_names_the_input() {
    // Raise the claim's output amount: the seller's signature no longer covers it.
    let sample = escrowd::sample::build().unwrap();
    let mut beef = Beef::new(bsv_format::beef::BeefVersion::V1);
    for b in sample.beef.bumps() {
        beef.add_bump(b.clone());
    }
    let mut claim_txid = None;
    for (i, t) in sample.beef.txs().iter().enumerate() {
        let mut tx = t.transaction().unwrap().clone();
        if i == 2 {
            tx.outputs[0].satoshis -= 1;
        }
        claim_txid = Some(beef.add_transaction(tx));
    }
    let file = scratch("tampered.beef", &beef.to_bytes());
    let out = escrowd(
        &["beef", "verify", &file, "--headers", &sample_headers()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("input 0 of {}", claim_txid.unwrap())),
        "{err}"
    );
    // Without scripts the same BEEF is structurally fine.
    let out = escrowd(
        &[
            "beef",
            "verify",
            &file,
            "--headers",
            &sample_headers(),
            "--no-scripts",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn malformed_input_is_invalid_with_a_byte_offset() {
    let mut bytes = hex::decode(std::fs::read_to_string(sample_beef()).unwrap().trim()).unwrap();
    bytes.truncate(bytes.len() - 1);
    let file = scratch("truncated.beef", &bytes);
    let out = escrowd(&["beef", "inspect", &file], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("at byte offset"),
        "{}",
        text(&out.stderr)
    );

    let file = scratch("odd.hex", b"0100bee");
    let out = escrowd(&["beef", "inspect", &file], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_and_unreadable_files_exit_2() {
    let out = escrowd(&["beef", "verify", &sample_beef()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--headers"));
    let out = escrowd(&["beef", "inspect", "/nonexistent/file.beef"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/file.beef"));
    let bad = scratch("typo.json", br#"{"tip": 1010, "root": {}}"#);
    let out = escrowd(&["beef", "verify", &sample_beef(), "--headers", &bad], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown field `root`"),
        "{}",
        text(&out.stderr)
    );
    let out = escrowd(&["beef", "to-ef", &sample_beef(), "--txid", "xyz"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_lists_bumps_roots_and_transactions() {
    let out = escrowd(&["beef", "inspect", &sample_beef(), "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["format"], "ATOMIC+V1");
    assert_eq!(v["subject_txid"], SUBJECT);
    assert_eq!(v["bumps"][0]["block_height"], 1000);
    assert_eq!(v["bumps"][0]["tree_height"], 3);
    assert_eq!(
        v["bumps"][0]["root"],
        "105a44810a039138ad0cd7c3f254c0290f8081b609ef39d6b7ed7261c3f86457"
    );
    assert_eq!(v["txs"].as_array().unwrap().len(), 3);
    assert_eq!(v["txs"][0]["bump"], 0);
    assert_eq!(v["txs"][2]["txid"], SUBJECT);
    assert_eq!(v["txs"][2]["output_satoshis"], 49_800);
}

#[test]
fn to_ef_and_tx_decode_agree_on_the_subject() {
    let out = escrowd(&["beef", "to-ef", &sample_beef()], None);
    assert_eq!(out.status.code(), Some(0));
    let ef = bsv_format::ef::EfTransaction::from_hex(text(&out.stdout).trim()).unwrap();
    assert_eq!(ef.txid().to_string(), SUBJECT);
    assert_eq!(ef.source_outputs[0].satoshis, 50_000);

    let raw = ef.tx.to_hex();
    let out = escrowd(&["tx", "decode", &raw, "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["txid"], SUBJECT);
    assert_eq!(v["outputs"][0]["satoshis"], 49_800);
    assert!(v["inputs"][0]["unlocking_asm"]
        .as_str()
        .unwrap()
        .ends_with(" OP_1"));

    // EF where a raw transaction is required: a clear error.
    let out = escrowd(&["tx", "decode", &ef.to_hex()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Extended Format"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_height_listed_twice_in_the_headers_file_is_refused() {
    // "1000" and "01000" are the same height: serde would keep the last.
    let root = "0000000000000000000000000000000000000000000000000000000000000001";
    let body = format!(r#"{{"roots": {{"1000": "{root}", "01000": "{root}"}}}}"#);
    let headers = scratch("dup-height.json", body.as_bytes());
    let out = escrowd(
        &["beef", "verify", &sample_beef(), "--headers", &headers],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("height 1000 is listed twice in roots"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn allowing_txid_only_entries_says_which_scripts_are_not_checked() {
    let out = escrowd(
        &[
            "beef",
            "verify",
            &sample_beef(),
            "--headers",
            &sample_headers(),
            "--allow-txid-only",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).ends_with(
            "(3 transactions, 1 root confirmed, scripts checked except inputs spending txid-only entries)\n"
        ),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn serve_refuses_a_bad_config_naming_the_file_and_field() {
    let config = scratch("gateway-typo.toml", b"[gateway]\nspiffe_idd = \"x\"\n");
    let out = escrowd(&["serve", "--config", &config], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("gateway-typo.toml") && err.contains("spiffe_idd"),
        "{err}"
    );
    let out = escrowd(&["serve", "--config", "/nonexistent/gateway.toml"], None);
    assert_eq!(out.status.code(), Some(2));
}
