//! Raw config → validated [`Config`], collecting every problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_json_abi::{Event, JsonAbi};
use alloy_primitives::Address;
use ethgate_core::{Confirmations, StreamSpec};
use ethgate_events::SyncerConfig;

use ethgate_delivery::sinks::SinkConfig;

use super::raw::{RawChain, RawConfig, RawStream};
use super::sinks::sink;
use super::{ChainConfig, Config, DEFAULT_LISTEN, DEFAULT_STORE, Issue};

pub(super) struct Issues(pub(super) Vec<Issue>);

impl Issues {
    pub(super) fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue {
            key: key.into(),
            line: None,
            var: None,
            message: message.into(),
        });
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn duration(
    issues: &mut Issues,
    key: String,
    v: Option<&str>,
    default: Duration,
) -> Duration {
    match v {
        None => default,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                issues.add(key, "must be longer than zero");
                default
            }
            Err(e) => {
                issues.add(
                    key,
                    format!("{s:?} is not a duration like \"500ms\" or \"2s\": {e}"),
                );
                default
            }
        },
    }
}

fn chain(issues: &mut Issues, i: usize, c: RawChain) -> ChainConfig {
    let k = |f: &str| format!("chains[{i}].{f}");
    if !valid_name(&c.name) {
        issues.add(
            k("name"),
            format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", c.name),
        );
    }
    if c.chain_id == 0 {
        issues.add(k("chain_id"), "must be a positive EIP-155 chain id");
    }
    if c.rpc.is_empty() {
        issues.add(k("rpc"), "needs at least one JSON-RPC URL");
    }
    for (j, url) in c.rpc.iter().enumerate() {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            // The URL may hold an API key: name the entry, never echo it.
            _ => issues.add(format!("chains[{i}].rpc[{j}]"), "is not an http(s) URL"),
        }
    }
    let defaults = SyncerConfig::default();
    let poll = duration(
        issues,
        k("poll_interval"),
        c.poll_interval.as_deref(),
        defaults.poll_interval,
    );
    let timeout = duration(
        issues,
        k("request_timeout"),
        c.request_timeout.as_deref(),
        Duration::from_secs(10),
    );
    let max = c.max_block_range.unwrap_or(defaults.max_range);
    let min = c.min_block_range.unwrap_or(defaults.min_range);
    if max == 0 {
        issues.add(k("max_block_range"), "must be at least 1");
    }
    if min == 0 || min > max {
        issues.add(
            k("min_block_range"),
            format!("must be between 1 and max_block_range ({max})"),
        );
    }
    let initial = c
        .initial_block_range
        .unwrap_or(defaults.initial_range.min(max));
    if initial < min || initial > max {
        issues.add(
            k("initial_block_range"),
            format!("must be between min_block_range ({min}) and max_block_range ({max})"),
        );
    }
    let parallel = c.log_query_concurrency.unwrap_or(defaults.parallel_queries);
    if !(1..=16).contains(&parallel) {
        issues.add(k("log_query_concurrency"), "must be between 1 and 16");
    }
    let keep_window = c.reorg_window.unwrap_or(defaults.keep_window);
    if keep_window < 16 {
        issues.add(k("reorg_window"), "must be at least 16 blocks");
    }
    ChainConfig {
        name: c.name,
        chain_id: c.chain_id,
        rpc: c.rpc,
        request_timeout: timeout,
        eip1559: c.eip1559.unwrap_or(true),
        sync: SyncerConfig {
            initial_range: initial,
            min_range: min,
            max_range: max,
            keep_window,
            poll_interval: poll,
            parallel_queries: parallel,
            ..defaults
        },
    }
}

/// Whether an ABI item's signature is within the parser's bounds; an
/// issue under `key` when it is not.
fn deep(issues: &mut Issues, key: String, signature: &str) -> bool {
    match ethgate_core::signature::check(signature) {
        Ok(()) => true,
        Err(e) => {
            let name = signature.split('(').next().unwrap_or(signature);
            issues.add(key, format!("{name}: the signature {e}"));
            false
        }
    }
}

fn confirmations(issues: &mut Issues, key: String, v: Option<toml::Value>) -> Confirmations {
    match v {
        None => Confirmations::Depth(0),
        Some(toml::Value::Integer(n)) if n >= 0 => Confirmations::Depth(n as u64),
        Some(toml::Value::String(s)) if s == "safe" => Confirmations::Safe,
        Some(toml::Value::String(s)) if s == "finalized" => Confirmations::Finalized,
        Some(other) => {
            issues.add(
                key,
                format!("{other} is not a block count, \"safe\" or \"finalized\""),
            );
            Confirmations::Depth(0)
        }
    }
}

fn stream(
    issues: &mut Issues,
    i: usize,
    s: RawStream,
    chains: &[ChainConfig],
    base: &Path,
    abis: &mut ethgate_api::calls::KnownAbis,
) -> Option<StreamSpec> {
    let k = |f: &str| format!("streams[{i}].{f}");
    if !valid_name(&s.name) {
        issues.add(
            k("name"),
            format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", s.name),
        );
    }
    let chain = chains.iter().find(|c| c.name == s.chain);
    if chain.is_none() {
        let known: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        issues.add(
            k("chain"),
            format!("unknown chain {:?}; configured chains: {known:?}", s.chain),
        );
    }
    let factory = s
        .factory
        .as_ref()
        .and_then(|f| super::factory::factory(issues, i, f));
    if s.addresses.is_empty() && s.factory.is_none() {
        issues.add(
            k("addresses"),
            "needs at least one contract address (or a `factory`)",
        );
    }
    let mut addresses = Vec::new();
    for (j, a) in s.addresses.iter().enumerate() {
        match a.parse::<Address>() {
            Ok(addr) => addresses.push(addr),
            Err(_) => issues.add(
                format!("streams[{i}].addresses[{j}]"),
                format!("{a:?} is not a 20-byte hex address"),
            ),
        }
    }
    let mut events: Vec<Event> = Vec::new();
    if let Some(path) = &s.abi {
        let full = base.join(path);
        match std::fs::read_to_string(&full) {
            Err(e) => issues.add(k("abi"), format!("cannot read {}: {e}", full.display())),
            Ok(text) => {
                // Accept a bare ABI array or a compiler artifact with an `abi` field.
                let parsed = serde_json::from_str::<JsonAbi>(&text).or_else(|_| {
                    serde_json::from_str::<serde_json::Value>(&text)
                        .and_then(|v| serde_json::from_value::<JsonAbi>(v["abi"].clone()))
                });
                // Types nested past the bounds would overflow the stack
                // when resolved (see `ethgate_core::signature`).
                let parsed = parsed.map(|mut abi| {
                    abi.events.retain(|_, list| {
                        list.retain(|e| deep(issues, k("abi"), &e.signature()));
                        !list.is_empty()
                    });
                    abi.errors.retain(|_, list| {
                        list.retain(|e| deep(issues, k("abi"), &e.signature()));
                        !list.is_empty()
                    });
                    abi
                });
                if let Ok(abi) = &parsed {
                    for a in &addresses {
                        let known = abis.errors.entry((s.chain.clone(), *a)).or_default();
                        known.extend(abi.errors().cloned());
                        known.sort_by_key(|e| e.selector());
                        known.dedup_by_key(|e| e.selector());
                        let functions = abis.functions.entry((s.chain.clone(), *a)).or_default();
                        functions.extend(
                            abi.functions()
                                .filter(|f| ethgate_core::signature::check(&f.signature()).is_ok())
                                .cloned(),
                        );
                        functions.sort_by_key(|f| f.selector());
                        functions.dedup_by_key(|f| f.selector());
                    }
                }
                match parsed {
                    Ok(abi) if abi.events().next().is_some() => {
                        events.extend(abi.events().cloned())
                    }
                    Ok(_) => issues.add(k("abi"), format!("{} declares no events", full.display())),
                    Err(e) => issues.add(
                        k("abi"),
                        format!("{} is not an ABI JSON: {e}", full.display()),
                    ),
                }
            }
        }
    }
    for (j, sig) in s.events.iter().enumerate() {
        let text = sig.trim();
        let text = if text.starts_with("event ") {
            text.to_owned()
        } else {
            format!("event {text}")
        };
        if let Err(e) = ethgate_core::signature::check(&text) {
            issues.add(format!("streams[{i}].events[{j}]"), e.to_string());
            continue;
        }
        match Event::parse(&text) {
            Ok(e) if e.anonymous => issues.add(
                format!("streams[{i}].events[{j}]"),
                "anonymous events have no selector to filter on",
            ),
            Ok(e) => events.push(e),
            Err(e) => issues.add(
                format!("streams[{i}].events[{j}]"),
                format!("{sig:?} is not an event signature: {e}"),
            ),
        }
    }
    if s.abi.is_none() && s.events.is_empty() {
        issues.add(k("events"), "give `events` signatures and/or an `abi` file");
    }
    events.sort_by_key(Event::selector);
    events.dedup_by_key(|e| e.selector());
    let confirmations = confirmations(issues, k("confirmations"), s.confirmations);
    Some(StreamSpec {
        name: s.name,
        chain: s.chain,
        chain_id: chain?.chain_id,
        addresses,
        events,
        from_block: s.from_block.unwrap_or(0),
        confirmations,
        factory,
    })
}

/// Validates `raw`; ABI paths resolve against `base` (the file's folder).
pub fn validate(
    raw: RawConfig,
    base: &Path,
    source: Option<PathBuf>,
) -> Result<Config, Vec<Issue>> {
    let mut issues = Issues(Vec::new());
    let store_url = raw.store.url.unwrap_or_else(|| DEFAULT_STORE.to_owned());
    if ethgate_store::Backend::of_url(&store_url).is_none() {
        issues.add(
            "store.url",
            "must be sqlite://PATH or postgres://USER@HOST[:PORT]/DATABASE",
        );
    }
    let listen_text = raw
        .api
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        issues.add(
            "api.listen",
            format!("{listen_text:?} is not host:port, e.g. \"127.0.0.1:8700\""),
        );
        ([127, 0, 0, 1], 8700).into()
    });
    let max_wait = raw.api.max_wait_secs.unwrap_or(60);
    if !(1..=300).contains(&max_wait) {
        issues.add("api.max_wait_secs", "must be between 1 and 300");
    }
    let mut chains: Vec<ChainConfig> = Vec::new();
    for (i, c) in raw.chains.into_iter().enumerate() {
        let c = chain(&mut issues, i, c);
        if chains.iter().any(|o| o.name == c.name) {
            issues.add(
                format!("chains[{i}].name"),
                format!("{:?} is configured twice", c.name),
            );
        }
        if chains.iter().any(|o| o.chain_id == c.chain_id) {
            issues.add(
                format!("chains[{i}].chain_id"),
                format!("{} is configured twice", c.chain_id),
            );
        }
        chains.push(c);
    }
    let mut sinks: Vec<SinkConfig> = Vec::new();
    for (i, s) in raw.sinks.into_iter().enumerate() {
        if sinks.iter().any(|o| o.name() == s.name) {
            issues.add(
                format!("sinks[{i}].name"),
                format!("{:?} is configured twice", s.name),
            );
        }
        if let Some(w) = sink(&mut issues, i, s, base) {
            sinks.push(w);
        }
    }
    let mut routes = Vec::new();
    let mut streams = Vec::new();
    let mut abis = ethgate_api::calls::KnownAbis::default();
    let mut names = HashSet::new();
    for (i, s) in raw.streams.into_iter().enumerate() {
        for (j, name) in s.sinks.iter().enumerate() {
            if sinks.iter().any(|w| w.name() == name) {
                routes.push((s.name.clone(), name.clone()));
            } else {
                issues.add(
                    format!("streams[{i}].sinks[{j}]"),
                    format!("no [[sinks]] entry is named {name:?}"),
                );
            }
        }
        if !names.insert(s.name.clone()) {
            issues.add(
                format!("streams[{i}].name"),
                format!("{:?} is configured twice", s.name),
            );
        }
        if let Some(spec) = stream(&mut issues, i, s, &chains, base, &mut abis) {
            streams.push(spec);
        }
    }
    let tx_sinks = raw.tx.sinks.clone();
    let mut tx =
        super::accounts::tx_config(&mut issues, raw.tx, raw.accounts, raw.pools, &chains, base);
    tx.contract_errors = abis.errors.clone();
    // Status envelopes: one outbox stream per chain with accounts.
    for (j, name) in tx_sinks.iter().enumerate() {
        if !sinks.iter().any(|w| w.name() == name) {
            issues.add(
                format!("tx.sinks[{j}]"),
                format!("no [[sinks]] entry is named {name:?}"),
            );
            continue;
        }
        let mut chains_used: Vec<&str> = tx.accounts.iter().map(|a| a.chain.as_str()).collect();
        chains_used.sort_unstable();
        chains_used.dedup();
        for chain in chains_used {
            let route = (format!("tx.{chain}"), name.clone());
            if !routes.contains(&route) {
                routes.push(route);
            }
        }
    }
    let limits = super::policies::limits(&mut issues, &raw.api, Duration::from_secs(max_wait));
    let known = super::policies::Known {
        chains: &chains,
        streams: streams.iter().map(|s| s.name.clone()).collect(),
        sinks: sinks.iter().map(|s| s.name().to_owned()).collect(),
        tx: &tx,
    };
    let policies = super::policies::policies(&mut issues, raw.policies, &known);
    routes.extend(super::policies::audit_routes(
        &mut issues,
        &raw.api,
        &known.sinks,
    ));
    let tls = super::policies::tls(&mut issues, &raw.api, base);
    let (exposure, metrics_listen) = super::policies::exposure(&mut issues, &raw.api);
    let cluster = cluster(&mut issues, raw.cluster);
    if !issues.0.is_empty() {
        return Err(issues.0);
    }
    Ok(Config {
        limits,
        policies,
        tls,
        exposure,
        metrics_listen,
        tx,
        source,
        store_url,
        listen,
        max_wait: Duration::from_secs(max_wait),
        chains,
        streams,
        sinks,
        routes,
        abis,
        cluster,
    })
}

/// `[cluster]`: an id other replicas can tell apart, a lease long enough
/// to renew (every third of it) yet short enough to fail over.
fn cluster(issues: &mut Issues, c: super::raw::RawCluster) -> super::ClusterConfig {
    if let Some(id) = &c.replica_id
        && !valid_name(id)
    {
        issues.add(
            "cluster.replica_id",
            format!("{id:?} must be 1-64 letters, digits, '-', '_' or '.'"),
        );
    }
    let lease_ttl = duration(
        issues,
        "cluster.lease_ttl".into(),
        c.lease_ttl.as_deref(),
        Duration::from_secs(5),
    );
    if !(Duration::from_millis(500)..=Duration::from_secs(300)).contains(&lease_ttl) {
        issues.add("cluster.lease_ttl", "must be between 500ms and 5m");
    }
    super::ClusterConfig {
        replica_id: c.replica_id,
        lease_ttl,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_streams_abi_makes_its_contracts_custom_errors_known_to_transactions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let contract = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
        std::fs::write(
            dir.path().join("EventSource.json"),
            include_str!("../../../../contracts/artifacts/EventSource.json"),
        )
        .expect("abi");
        let path = dir.path().join("ethgate.toml");
        std::fs::write(
            &path,
            format!(
                "[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"http://127.0.0.1:1\"]\n\n\
                 [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract}\"]\n\
                 abi = \"EventSource.json\"\n"
            ),
        )
        .expect("config");
        let cfg = super::super::load(Some(&path), std::iter::empty()).expect("valid config");
        let key = ("anvil".to_owned(), contract.parse().expect("address"));
        let mut known: Vec<String> = cfg.tx.contract_errors[&key]
            .iter()
            .map(|e| e.signature())
            .collect();
        known.sort();
        assert_eq!(known, ["Refused(uint256,string)", "Used(string)"]);
    }

    #[test]
    fn signatures_nested_too_deep_are_config_errors_not_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = format!("uint256{}", "[]".repeat(40_000));
        let abi = serde_json::json!([
            {"type": "event", "name": "Deep", "anonymous": false,
             "inputs": [{"name": "x", "type": deep, "indexed": false}]},
            {"type": "error", "name": "Worse", "inputs": [{"name": "x", "type": deep}]},
        ]);
        std::fs::write(dir.path().join("deep.json"), abi.to_string()).expect("abi");
        let path = dir.path().join("ethgate.toml");
        std::fs::write(
            &path,
            format!(
                "[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"http://127.0.0.1:1\"]\n\n\
                 [[streams]]\nname = \"source\"\nchain = \"anvil\"\n\
                 addresses = [\"0x5fbdb2315678afecb367f032d93f642f64180aa3\"]\n\
                 abi = \"deep.json\"\nevents = [\"event Deeper({deep} x)\"]\n"
            ),
        )
        .expect("config");
        let Err(e) = super::super::load(Some(&path), std::iter::empty()) else {
            panic!("a deep signature was accepted");
        };
        let text = e.to_string();
        for key in ["streams[0].abi", "streams[0].events[0]"] {
            assert!(text.contains(key), "{key} named: {text}");
        }
        assert!(text.contains("Deep: the signature") && text.contains("Worse: the signature"));
    }
}
