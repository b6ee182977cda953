//! The `ethgate` binary's command line: help on every command, config
//! errors that name the key and line and start nothing, argument errors
//! that name the flag, and account keys that never reach the terminal.

use std::path::Path;
use std::process::{Command, Output};

fn ethgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("ETHGATE_CONFIG")
        .output()
        .expect("ethgate runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["config", "check", "--help"],
        vec!["token", "create", "--help"],
        vec!["streams", "--help"],
        vec!["sinks", "--help"],
        vec!["sinks", "rewind", "--help"],
        vec!["sync", "--help"],
        vec!["keys", "new", "--help"],
        vec!["keys", "list", "--help"],
        vec!["tx", "send", "--help"],
        vec!["tx", "bump", "--help"],
        vec!["call", "--help"],
        vec!["store", "copy", "--help"],
    ] {
        let out = ethgate(dir.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn no_config_means_embedded_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ethgate(dir.path(), &["config", "check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("embedded defaults") && text.contains("sqlite://./data/ethgate.db"),
        "{text}"
    );
}

const BAD: &str = r#"[store]
url = "sqlite://./data/x.db"

[[chains]]
name = "anvil"
chain_id = 31337
rpc = ["ftp://secret-key@example"]
poll_interval = "soon"

[[streams]]
name = "a"
chain = "mainnet"
addresses = ["0x1234"]
events = ["event Transfer(address indexed from, address to"]
confirmations = "later"
"#;

#[test]
fn config_check_reports_every_error_with_key_and_line_and_starts_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ethgate.toml"), BAD).expect("write");
    for cmd in [vec!["config", "check"], vec!["serve"]] {
        let out = ethgate(dir.path(), &cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = stderr(&out);
        for expected in [
            "ethgate.toml:7: chains[0].rpc[0]",
            "ethgate.toml:8: chains[0].poll_interval",
            "ethgate.toml:12: streams[0].chain",
            "ethgate.toml:13: streams[0].addresses[0]",
            "ethgate.toml:14: streams[0].events[0]",
            "ethgate.toml:15: streams[0].confirmations",
        ] {
            assert!(
                err.contains(expected),
                "{cmd:?} missing {expected:?} in:\n{err}"
            );
        }
        assert!(
            !err.contains("secret-key"),
            "a URL's credentials never reach an error"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "a bad config creates nothing"
    );
}

#[test]
fn config_check_refuses_a_private_webhook_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = |name: &str, url: &str, allow: bool| {
        format!(
            "[[sinks]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
             secret_env = \"HOOK_SECRET\"\nallow_private_network = {allow}\n\n"
        )
    };
    let config = [
        sink("a", "http://10.1.2.3/in", false),
        sink("b", "http://localhost:8080/in", false),
        sink("c", "http://[64:ff9b::a00:1]/in", false),
        sink("d", "http://127.0.0.1:9/in", true),
    ]
    .concat();
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env_remove("ETHGATE_CONFIG")
        .env("HOOK_SECRET", "s")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for key in ["sinks[0].url", "sinks[1].url", "sinks[2].url"] {
        assert!(
            err.contains(key) && err.contains("allow_private_network"),
            "{key}: {err}"
        );
    }
    assert!(!err.contains("sinks[3]"), "allowed: {err}");
}

#[test]
fn sink_errors_name_the_key_and_never_print_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ethgate.toml"),
        "[[sinks]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://hooks.example/x\"\nsecret_env = \"ETHGATE_TEST_UNSET_SECRET\"\n\n\
         [[sinks]]\nname = \"bus\"\nkind = \"carrier-pigeon\"\n",
    )
    .expect("write");
    let out = ethgate(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("ethgate.toml:5: sinks[0].secret_env"), "{err}");
    assert!(err.contains("ethgate.toml:9: sinks[1].kind"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("ETHGATE_TEST_UNSET_SECRET", "top-secret-value")
        .env("ETHGATE_SINKS__1__KIND", "webhook")
        .env("ETHGATE_SINKS__1__URL", "https://bus.example/in")
        .env("ETHGATE_SINKS__1__SECRET_ENV", "ETHGATE_TEST_UNSET_SECRET")
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        text.contains("sink    hook (webhook) to hooks.example"),
        "{text}"
    );
    assert!(
        !text.contains("top-secret-value"),
        "the secret is never printed"
    );
}

#[test]
fn amqp_sink_urls_come_from_the_environment_and_are_never_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ethgate.toml"),
        "[[sinks]]\nname = \"bus\"\nkind = \"amqp\"\nurl_env = \"ETHGATE_TEST_AMQP_URL\"\n",
    )
    .expect("write");
    let out = ethgate(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ethgate.toml:4: sinks[0].url_env"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("ETHGATE_TEST_AMQP_URL", "http://user:hunter2@broker/")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sinks[0].url: is not an amqp://"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("hunter2"),
        "a URL's password never reaches an error"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env(
            "ETHGATE_TEST_AMQP_URL",
            "amqp://user:hunter2@broker:5672/%2f",
        )
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("sink    bus (amqp) to exchange ethgate, batches of 100")
            && !text.contains("hunter2"),
        "{text}"
    );
}

#[test]
fn type_errors_and_unknown_keys_name_the_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ethgate.toml"),
        "[api]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n",
    )
    .expect("write");
    let out = ethgate(dir.path(), &["config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ethgate.toml:3"), "{}", stderr(&out));
    assert!(stderr(&out).contains("lisen"), "{}", stderr(&out));
    std::fs::write(
        dir.path().join("ethgate.toml"),
        "[[chains]]\nname = \"a\"\nchain_id = \"one\"\nrpc = []\n",
    )
    .expect("write");
    let out = ethgate(dir.path(), &["config", "check"]);
    assert!(
        stderr(&out).contains("ethgate.toml:3: chains[0].chain_id"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn environment_overrides_apply_and_are_named_in_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("ETHGATE_API__LISTEN", "0.0.0.0:9999")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("0.0.0.0:9999"));
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("ETHGATE_API__LISTEN", "nowhere")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ETHGATE_API__LISTEN: api.listen"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn argument_errors_name_the_flag_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ethgate(dir.path(), &["token", "create", "--scope", "root"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--scope"), "{}", stderr(&out));
    assert!(
        !dir.path().join("data").exists(),
        "no store was created for a refused token"
    );
    let out = ethgate(dir.path(), &["sync", "--stream", "nope", "--to", "10"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--stream"), "{}", stderr(&out));
}

#[test]
fn token_create_prints_the_token_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ethgate(
        dir.path(),
        &["token", "create", "--scope", "events:read", "--label", "ci"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("egt_"));
    assert!(
        !stderr(&out).contains(&token),
        "the token is on stdout only"
    );
    let db = std::fs::read(dir.path().join("data/ethgate.db")).expect("store");
    let wal = std::fs::read(dir.path().join("data/ethgate.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    let found = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(
        !found(&db) && !found(&wal),
        "the token itself is not stored"
    );
}

#[test]
fn account_errors_name_the_key_and_never_print_a_key_or_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let made = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args([
            "keys",
            "new",
            "--dir",
            "keys",
            "--password-env",
            "OPS_PASSWORD",
        ])
        .current_dir(dir.path())
        .env("OPS_PASSWORD", "the-right-password")
        .output()
        .expect("keys new");
    assert!(made.status.success(), "{}", stderr(&made));
    let line = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let (address, file) = line.split_once(' ').expect("address and file");
    let listed = ethgate(dir.path(), &["keys", "list", "--dir", "keys"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(address),
        "listed without a password"
    );
    let raw_key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"http://127.0.0.1:1\"]\n\n\
             [[accounts]]\nchain = \"anvil\"\nkeystore = \"{file}\"\npassword_env = \"OPS_PASSWORD\"\n\n\
             [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"RAW_KEY\"\n"
        ),
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("OPS_PASSWORD", "a-wrong-password")
        .env("RAW_KEY", raw_key)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("accounts[0].keystore"), "{err}");
    assert!(err.contains("wrong password"), "{err}");
    assert!(
        err.contains("accounts[1].dev_key_env") && err.contains("allow_dev_keys"),
        "raw keys need the dev flag: {err}"
    );
    for secret in [
        "a-wrong-password",
        "the-right-password",
        raw_key,
        &raw_key[2..],
    ] {
        assert!(!err.contains(secret), "a secret was printed: {err}");
    }
    let out = ethgate(dir.path(), &["tx", "get", "tx_1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no command runs on a config with errors"
    );
}

#[test]
fn tx_commands_need_a_token_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["tx", "get", "tx_1"])
        .current_dir(dir.path())
        .env_remove("ETHGATE_CONFIG")
        .env_remove("ETHGATE_TOKEN")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ETHGATE_TOKEN"), "{}", stderr(&out));
}

#[test]
fn config_check_names_the_field_of_remote_signers_and_pools() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("ethgate.toml"),
        "[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"http://127.0.0.1:1\"]\n\n\
         [[accounts]]\nchain = \"anvil\"\nsigner_url = \"http://127.0.0.1:1\"\n\n\
         [[accounts]]\nchain = \"anvil\"\nkms_key_id = \"alias/ops\"\naddress = \"0x00000000000000000000000000000000000000aa\"\n\
         aws_secret_access_key_env = \"MY_AWS_SECRET\"\n\n\
         [[accounts]]\nchain = \"anvil\"\nsigner_url = \"http://127.0.0.1:1\"\nkms_key_id = \"k\"\naddress = \"0x00000000000000000000000000000000000000bb\"\n\n\
         [[pools]]\nname = \"billing\"\nchain = \"anvil\"\nfunding = \"0x00000000000000000000000000000000000000cc\"\n\
         min_balance = \"0.1 ether\"\ntop_up = \"1 furlong\"\ndaily_top_up_cap = \"x\"\nregistry = \"0x01\"\nkeystore_dir = \"k\"\n",
    )
    .expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("MY_AWS_SECRET", "do-not-print-this")
        .env_remove("AWS_ACCESS_KEY_ID")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for field in [
        "accounts[0].address",
        "accounts[1].kms_region",
        "accounts[2].keystore",
        "pools[0].funding",
        "pools[0].top_up",
        "pools[0].daily_top_up_cap",
        "pools[0].registry",
        "pools[0].keystore_dir",
    ] {
        assert!(err.contains(field), "{field} not named: {err}");
    }
    assert!(
        !err.contains("do-not-print-this"),
        "a secret was printed: {err}"
    );
}

/// The Grafana dashboard in `docs/grafana` charts only metrics the code
/// exports: a renamed metric must not leave a panel silently empty.
#[test]
fn the_grafana_dashboard_names_only_exported_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dash = std::fs::read_to_string(root.join("docs/grafana/ethgate.json")).expect("dashboard");
    let doc: serde_json::Value = serde_json::from_str(&dash).expect("dashboard JSON");
    let mut sources = String::new();
    for dir in std::fs::read_dir(root.join("crates")).expect("crates") {
        let src = dir.expect("entry").path().join("src");
        let mut stack = vec![src];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    sources.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
                }
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for panel in doc["panels"].as_array().into_iter().flatten() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            for (i, _) in expr.match_indices("ethgate_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "{name} is charted but not exported"
        );
    }
}
