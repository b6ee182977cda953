//! Every page's TOML blocks — the README's and each page in `docs/` —
//! merged in order into one config, pass `ethgate config check` run as
//! a reader would run it: in a directory holding the files the examples
//! name (keystores, an ABI, a TLS certificate) and with the variables they
//! name set. A page whose examples drift from the config is a failure.

use std::process::Command;

use ethgate_testkit::DEV_KEYS;

use crate::doc_pages;

/// Merges `add` into `into` as a reader adds a block to a file: tables
/// merge key by key, arrays of tables grow, a value given again replaces.
fn merge(into: &mut toml::Table, add: toml::Table) {
    for (key, value) in add {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (Some(toml::Value::Array(a)), toml::Value::Array(b))
                if b.iter().all(toml::Value::is_table) =>
            {
                a.extend(b)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// The files and variables the examples name, in a fresh directory.
fn world() -> (tempfile::TempDir, Vec<(&'static str, &'static str)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = "docs-password";
    let keys = dir.path().join("keys");
    for (name, key) in ["ops-1", "funding", "master"].iter().zip(DEV_KEYS) {
        let made = tempfile::tempdir_in(dir.path()).expect("tempdir");
        let (_, file) = ethgate_keys::keystore::import(made.path(), key, "a dev key", password)
            .expect("keystore");
        std::fs::create_dir_all(&keys).expect("keys/");
        std::fs::rename(file, keys.join(format!("{name}.json"))).expect("rename");
    }
    std::fs::create_dir_all(dir.path().join("abi")).expect("abi/");
    std::fs::write(
        dir.path().join("abi/usdc.json"),
        r#"[{"type":"event","name":"Transfer","anonymous":false,"inputs":[
            {"name":"from","type":"address","indexed":true},
            {"name":"to","type":"address","indexed":true},
            {"name":"value","type":"uint256","indexed":false}]}]"#,
    )
    .expect("abi");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::create_dir_all(dir.path().join("tls")).expect("tls/");
    std::fs::write(dir.path().join("tls/cert.pem"), cert.cert.pem()).expect("cert");
    std::fs::write(
        dir.path().join("tls/key.pem"),
        cert.signing_key.serialize_pem(),
    )
    .expect("key");
    let vars = vec![
        ("OPS_PASSWORD", password),
        ("POOL_PASSWORD", password),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ("HOOK_SECRET", "docs-webhook-secret"),
        ("AWS_ACCESS_KEY_ID", "AKIDOCS"),
        ("AWS_SECRET_ACCESS_KEY", "docs-secret"),
    ];
    (dir, vars)
}

#[test]
fn every_pages_config_passes_config_check() {
    let mut checked = 0;
    for page in doc_pages::pages() {
        let blocks: Vec<doc_pages::Block> = doc_pages::blocks(&page)
            .into_iter()
            .filter(|b| b.lang == "toml")
            .collect();
        if blocks.is_empty() {
            continue;
        }
        let name = page
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let mut config = toml::Table::new();
        for b in blocks {
            let table: toml::Table =
                toml::from_str(&b.text).unwrap_or_else(|e| panic!("{}: not TOML: {e}", b.at));
            merge(&mut config, table);
        }
        let (dir, vars) = world();
        let file = dir.path().join("ethgate.toml");
        std::fs::write(&file, toml::to_string(&config).expect("render")).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
            .args(["--config", &file.to_string_lossy(), "config", "check"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars)
            .output()
            .expect("run ethgate");
        assert!(
            out.status.success(),
            "{name}: its examples fail `ethgate config check`:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} pages hold a config");
}
