//! `escrowd policy check FILE...` as a user runs it: exit codes (0 all valid,
//! 1 any invalid, 2 unreadable or usage), the computed timeline on stdout for
//! valid files, and `file:line:column: field: message` plus the timeline on
//! stderr for invalid ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn escrowd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn shipped(name: &str) -> String {
    policies().join(name).to_string_lossy().into_owned()
}

fn scratch(name: &str, content: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("escrowd-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_string_lossy().into_owned()
}

/// default.toml with the payment refund delay of both chains set to `n_p`.
fn default_with_n_p(n_p: u32) -> String {
    let text = std::fs::read_to_string(shipped("default.toml")).unwrap();
    text.replace(
        "payment_refund_blocks = 240",
        &format!("payment_refund_blocks = {n_p}"),
    )
}

#[test]
fn shipped_policies_are_valid_and_print_their_timelines() {
    let out = escrowd(&[
        "policy",
        "check",
        &shipped("default.toml"),
        &shipped("fast-test.toml"),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let sha = bsv_format::hash::sha256(&std::fs::read(shipped("default.toml")).unwrap());
    assert!(
        stdout.contains(&format!(
            "default.toml: valid (policy id default.toml@sha256:{})",
            hex::encode(sha)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("fast-test.toml: valid (policy id fast-test.toml@sha256:"),
        "{stdout}"
    );
    // Four chain pairs per file, each with its C3 line.
    assert_eq!(
        stdout.matches("timeline: payment on ").count(),
        8,
        "{stdout}"
    );
    assert!(stdout.contains(
        "timeline: payment on bsv-mainnet (P), delivery on bsv-testnet (D); k = 3, w = 600 s"
    ));
    // default.toml's own numbers: n_P = 240 → (240 - 6)*600 = 140,400.
    assert!(
        stdout.contains("140,400 - 27,535 = 112,865 s >= "),
        "{stdout}"
    );
    assert!(
        stdout.contains("88,200 + 21,824 + 600 = 110,624 s: ok"),
        "{stdout}"
    );
    assert!(stdout.contains("smallest safe n_P (C3): 236"), "{stdout}");
}

#[test]
fn an_unsafe_payment_refund_height_fails_with_position_and_timeline() {
    let bad = scratch("unsafe.toml", default_with_n_p(235).as_bytes());
    let out = escrowd(&["policy", "check", &bad]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    let line = default_with_n_p(235)
        .lines()
        .position(|l| l.starts_with("payment_refund_blocks = 235"))
        .unwrap()
        + 1;
    let first = stderr.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{bad}:{line}:25: chains.bsv-mainnet.payment_refund_blocks: unsafe: C3 fails (T_P is too early at the \
             policy's confidence: P may pass T_P - m_P - w while D is below T_D + K_D)"
        )
    );
    assert!(
        stderr.contains("137,400 - 27,239 = 110,161 s >= D late"),
        "{stderr}"
    );
    assert!(
        stderr.contains("= 88,200 + 21,824 + 600 = 110,624 s: FAILS"),
        "{stderr}"
    );
    assert!(stderr.contains("smallest safe n_P (C3): 236"), "{stderr}");
    assert!(
        stderr.ends_with("escrowd: invalid: 1 of 1 policy files invalid\n"),
        "{stderr}"
    );
}

#[test]
fn valid_and_invalid_files_together_exit_1_and_still_print_the_valid_one() {
    let bad = scratch(
        "typo.toml",
        default_with_n_p(240)
            .replace("confirmations = 6", "confirmation = 6")
            .as_bytes(),
    );
    let out = escrowd(&["policy", "check", &shipped("fast-test.toml"), &bad]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(text(&out.stdout).contains("fast-test.toml: valid"));
    let line = default_with_n_p(240)
        .lines()
        .position(|l| l.starts_with("confirmations = 6"))
        .unwrap()
        + 1;
    assert_eq!(
        stderr.lines().next().unwrap(),
        format!("{bad}:{line}:1: chains.bsv-mainnet.confirmation: unknown field")
    );
}

#[test]
fn unreadable_files_and_usage_errors_exit_2() {
    let out = escrowd(&["policy", "check", "/nonexistent/escrowd-policy.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("cannot read policy file /nonexistent/escrowd-policy.toml: ")
    );

    // An unreadable file wins over an invalid one.
    let bad = scratch("bad-schema.toml", b"schema = 7\n");
    let out = escrowd(&["policy", "check", &bad, "/nonexistent/x.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!(
        "{bad}:1:10: schema: schema version 7 is not supported"
    )));

    let out = escrowd(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn non_utf8_files_are_invalid_at_the_bad_byte() {
    let bad = scratch("latin1.toml", b"schema = 1\n# caf\xe9\n");
    let out = escrowd(&["policy", "check", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().next().unwrap(),
        format!("{bad}:2:6: (document): not UTF-8 text")
    );
}

#[test]
fn a_dash_reads_the_policy_from_stdin() {
    use std::io::Write;
    let bytes = std::fs::read(shipped("fast-test.toml")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(["policy", "check", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let sha = bsv_format::hash::sha256(&bytes);
    assert!(
        text(&out.stdout).starts_with(&format!(
            "<stdin>: valid (policy id <stdin>@sha256:{})",
            hex::encode(sha)
        )),
        "{}",
        text(&out.stdout)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(["policy", "check", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"schema = 1\nbogus = 2\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("<stdin>:"),
        "{}",
        text(&out.stderr)
    );
}
