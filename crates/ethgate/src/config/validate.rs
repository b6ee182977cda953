//! Raw config → validated [`Config`], collecting every problem.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ethgate_core::StreamSpec;
use ethgate_events::SyncerConfig;

use ethgate_delivery::sinks::SinkConfig;

use super::raw::{RawChain, RawConfig, RawSink, RawStream};
use super::sinks::sink;
use super::streams::stream;
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
    let chains = chains(&mut issues, raw.chains);
    let sinks = sinks(&mut issues, raw.sinks, base);
    let (streams, mut routes, abis) = streams(&mut issues, raw.streams, &chains, &sinks, base);
    let tx_sinks = raw.tx.sinks.clone();
    let mut tx =
        super::accounts::tx_config(&mut issues, raw.tx, raw.accounts, raw.pools, &chains, base);
    tx.contract_errors = abis.errors.clone();
    tx_routes(&mut issues, &tx_sinks, &tx, &sinks, &mut routes);
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

fn chains(issues: &mut Issues, raw: Vec<RawChain>) -> Vec<ChainConfig> {
    let mut chains: Vec<ChainConfig> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let c = chain(issues, i, c);
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
    chains
}

fn sinks(issues: &mut Issues, raw: Vec<RawSink>, base: &Path) -> Vec<SinkConfig> {
    let mut sinks: Vec<SinkConfig> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        if sinks.iter().any(|o| o.name() == s.name) {
            issues.add(
                format!("sinks[{i}].name"),
                format!("{:?} is configured twice", s.name),
            );
        }
        if let Some(w) = sink(issues, i, s, base) {
            sinks.push(w);
        }
    }
    sinks
}

/// The streams, each (stream, sink) route they name, and what their ABI
/// files say of the contracts.
fn streams(
    issues: &mut Issues,
    raw: Vec<RawStream>,
    chains: &[ChainConfig],
    sinks: &[SinkConfig],
    base: &Path,
) -> (
    Vec<StreamSpec>,
    Vec<(String, String)>,
    ethgate_api::calls::KnownAbis,
) {
    let mut routes = Vec::new();
    let mut streams = Vec::new();
    let mut abis = ethgate_api::calls::KnownAbis::default();
    let mut names = HashSet::new();
    for (i, s) in raw.into_iter().enumerate() {
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
        if let Some(spec) = stream(issues, i, s, chains, base, &mut abis) {
            streams.push(spec);
        }
    }
    (streams, routes, abis)
}

/// Routes of the transaction status streams (one outbox stream per chain
/// with accounts) to the sinks `[tx] sinks` names.
fn tx_routes(
    issues: &mut Issues,
    tx_sinks: &[String],
    tx: &super::accounts::TxConfig,
    sinks: &[SinkConfig],
    routes: &mut Vec<(String, String)>,
) {
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
