//! Properties of the config loader over generated files and environment
//! overrides: whatever the text, `load` answers a config or problems that
//! each name a key — never a panic — and a file it accepts loads again to
//! the same shape.

use proptest::prelude::*;

const SECTIONS: &[&str] = &[
    "[api]",
    "[store]",
    "[tx]",
    "[[chains]]",
    "[[streams]]",
    "[[sinks]]",
    "[[accounts]]",
    "[[pools]]",
    "[[policies]]",
    "[cluster]",
];
const KEYS: &[&str] = &[
    "name",
    "chain",
    "chain_id",
    "rpc",
    "listen",
    "max_wait_secs",
    "url",
    "addresses",
    "events",
    "from_block",
    "confirmations",
    "sinks",
    "kind",
    "poll_interval",
    "request_timeout",
    "dev_key_env",
    "accounts",
    "from",
    "to",
    "selectors",
    "max_value",
    "daily_cap",
    "max_fee_per_gas",
    "streams",
    "rate_limit",
    "header_timeout",
    "tls_cert",
    "cors_origins",
    "allow_dev_keys",
    "max_connections",
    "abi",
    "funding",
    "min_balance",
    "lease_ttl",
    "replica_id",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 .:/_-]{0,20}".prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        proptest::collection::vec("[a-z0-9x(), ]{0,16}", 0..3).prop_map(|v| format!("{v:?}")),
        Just("\"0x5fbdb2315678afecb367f032d93f642f64180aa3\"".to_owned()),
        Just("[\"event T(uint256 x)\"]".to_owned()),
        Just("\"1 ether\"".to_owned()),
        Just("[\"any\"]".to_owned()),
        "[ -~]{0,12}",
    ]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(SECTIONS).prop_map(str::to_owned),
        (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

proptest! {
    #[test]
    fn any_file_loads_or_names_its_problems(
        lines in proptest::collection::vec(line(), 0..30),
        var in "ETHGATE_[A-Z_]{1,20}",
        val in "[ -~]{0,20}",
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ethgate.toml");
        std::fs::write(&path, lines.join("\n")).expect("write");
        match super::load(Some(&path), std::iter::once((var, val))) {
            Ok(cfg) => {
                // What loads once loads again the same.
                let again = super::load(Some(&path), std::iter::empty()).ok();
                prop_assert!(again.is_none_or(|a| a.chains.len() == cfg.chains.len()
                    && a.streams.len() == cfg.streams.len()));
            }
            Err(e) => {
                prop_assert!(!e.issues.is_empty());
                prop_assert!(e.issues.iter().all(|i| !i.key.is_empty() && !i.message.is_empty()));
            }
        }
    }

    #[test]
    fn any_bytes_are_refused_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ethgate.toml");
        std::fs::write(&path, &bytes).expect("write");
        let _ = super::load(Some(&path), std::iter::empty());
    }
}
