//! Files that hold secrets are the owner's alone: a keystore made by
//! `ethgate keys new` or `keys import` is 0600 in a 0700 directory, and
//! the store (signed transactions, token hashes) with its WAL and shared
//! memory files is 0600 in a 0700 directory — whatever the umask allows.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn ethgate(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(args)
        .current_dir(dir)
        .env("PW", "a-password-under-test")
        .env(
            "RAW_KEY",
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        )
        .output()
        .expect("ethgate runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keystores_and_the_store_are_created_owner_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let made = ethgate(d, &["keys", "new", "--dir", "keys", "--password-env", "PW"]);
    let imported = ethgate(
        d,
        &[
            "keys",
            "import",
            "--dir",
            "keys",
            "--private-key-env",
            "RAW_KEY",
            "--password-env",
            "PW",
        ],
    );
    assert_eq!(mode(&d.join("keys")), 0o700, "keystore directory");
    for line in [made, imported] {
        let file = line.trim().split_once(' ').expect("address and file").1;
        assert_eq!(mode(&d.join(file)), 0o600, "{file}");
    }

    std::fs::write(
        d.join("ethgate.toml"),
        "[store]\nurl = \"sqlite://./data/ethgate.db\"\n",
    )
    .expect("config");
    ethgate(d, &["token", "create", "--scope", "events:read"]);
    assert_eq!(mode(&d.join("data")), 0o700, "store directory");
    let db = d.join("data/ethgate.db");
    assert_eq!(mode(&db), 0o600, "database");
    // A second process reads the store while the first holds it open, so
    // the WAL and shared-memory files exist to be looked at.
    ethgate(d, &["token", "list"]);
    for f in std::fs::read_dir(d.join("data"))
        .expect("data dir")
        .flatten()
    {
        assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
    }
}
