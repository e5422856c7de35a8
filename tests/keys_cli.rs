//! `escrowd keys new|show` as an operator runs it: key files created 0600
//! and never overwritten, the public key and address printed (never the
//! private key), and refusals that name the file.

use std::path::PathBuf;
use std::process::{Command, Output};

use bsv_format::keys::{Network, PrivateKey};

fn escrowd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_escrowd"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// The private key 1: its public key is the generator G.
const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

#[test]
fn show_prints_the_public_key_and_address_of_a_known_key() {
    let (_dir, path) = scratch();
    let mut one = [0u8; 32];
    one[31] = 1;
    let file = path.join("one.wif");
    escrowd::keys::write_key_file(
        &file,
        &PrivateKey::from_bytes(&one).unwrap(),
        Network::Mainnet,
    )
    .unwrap();
    let shown = json(&escrowd(&[
        "keys",
        "show",
        file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(shown["public_key"], G);
    assert_eq!(shown["address"], "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH");
    assert_eq!(shown["network"], "mainnet");
    let plain = escrowd(&["keys", "show", file.to_str().unwrap()]);
    assert!(text(&plain.stdout).contains(&format!("public_key {G}")));
}

#[test]
fn new_writes_an_owner_only_key_that_show_reads_back_and_never_overwrites() {
    let (_dir, path) = scratch();
    let file = path.join("saga.wif");
    let f = file.to_str().unwrap();
    let made = json(&escrowd(&["keys", "new", f, "--json"]));
    let public_key = made["public_key"].as_str().unwrap().to_string();
    assert_eq!(public_key.len(), 66);
    assert!(public_key.starts_with("02") || public_key.starts_with("03"));
    assert_eq!(made["network"], "testnet");
    let address = made["address"].as_str().unwrap();
    assert!(
        address.starts_with('m') || address.starts_with('n'),
        "{address}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The WIF itself is never printed.
    let wif = std::fs::read_to_string(&file).unwrap();
    assert!(!text(&escrowd(&["keys", "show", f]).stdout).contains(wif.trim()));
    let shown = json(&escrowd(&["keys", "show", f, "--json"]));
    assert_eq!(shown["public_key"], public_key.as_str());
    assert_eq!(shown["address"], made["address"]);

    let again = escrowd(&["keys", "new", f]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains(&format!("key file {f} exists: refusing to overwrite a key")),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), wif, "untouched");
}

#[test]
fn show_refuses_an_open_file_a_non_key_and_a_missing_file() {
    let (_dir, path) = scratch();
    let file = path.join("k.wif");
    let f = file.to_str().unwrap();
    json(&escrowd(&[
        "keys",
        "new",
        f,
        "--network",
        "mainnet",
        "--json",
    ]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = escrowd(&["keys", "show", f]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains(&format!("key file {f} has mode 644")),
            "{}",
            text(&out.stderr)
        );
    }
    let junk = path.join("junk.wif");
    std::fs::write(&junk, "not a key\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = escrowd(&["keys", "show", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does not hold a WIF private key"));
    let missing = escrowd(&["keys", "show", path.join("none.wif").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("none.wif"));
}
