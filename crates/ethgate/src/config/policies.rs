//! `[[policies]]` and the API's limits in `[api]`: what each token may do,
//! and how long and how much any caller may take. Every name a policy
//! uses (chain, pool, account, stream, sink) must exist, so a typo is a
//! config error rather than a policy that silently allows nothing.

use std::collections::HashSet;
use std::time::Duration;

use alloy_primitives::Address;
use ethgate_api::Limits;
use ethgate_api::policy::{Allow, Policy, Sender};

use super::ChainConfig;
use super::accounts::{TxConfig, amount};
use super::raw::{RawApi, RawPolicy};
use super::validate::{Issues, duration, valid_name};

/// The API's limits from `[api]`.
pub(super) fn limits(issues: &mut Issues, api: &RawApi, max_wait: Duration) -> Limits {
    let d = Limits::default();
    let header_timeout = duration(
        issues,
        "api.header_timeout".into(),
        api.header_timeout.as_deref(),
        d.header_timeout,
    );
    let body_timeout = duration(
        issues,
        "api.body_timeout".into(),
        api.body_timeout.as_deref(),
        d.body_timeout,
    );
    let default_request = d.request_timeout.max(max_wait + Duration::from_secs(30));
    let request_timeout = duration(
        issues,
        "api.request_timeout".into(),
        api.request_timeout.as_deref(),
        default_request,
    );
    if request_timeout <= max_wait {
        issues.add(
            "api.request_timeout",
            "must be longer than max_wait_secs, or long-polls time out",
        );
    }
    let max_connections = api.max_connections.unwrap_or(d.max_connections);
    if !(1..=1_000_000).contains(&max_connections) {
        issues.add("api.max_connections", "must be between 1 and 1000000");
    }
    if api.rate_limit == Some(0) {
        issues.add("api.rate_limit", "must be at least 1 request a second");
    }
    Limits {
        header_timeout,
        body_timeout,
        request_timeout,
        max_connections,
        rate_per_token: api.rate_limit,
    }
}

/// The API's TLS settings from `[api] tls_cert` and `tls_key` (paths
/// relative to the config file), loaded now so a bad file is a config
/// error that names the key.
pub(super) fn tls(
    issues: &mut Issues,
    api: &RawApi,
    base: &std::path::Path,
) -> Option<std::sync::Arc<ethgate_api::server::TlsConfig>> {
    match (&api.tls_cert, &api.tls_key) {
        (None, None) => None,
        (Some(_), None) => {
            issues.add("api.tls_key", "is needed with tls_cert");
            None
        }
        (None, Some(_)) => {
            issues.add("api.tls_cert", "is needed with tls_key");
            None
        }
        (Some(c), Some(k)) => match ethgate_api::server::tls_config(&base.join(c), &base.join(k)) {
            Ok(t) => Some(t),
            Err(e @ ethgate_api::server::TlsError::Key(_)) => {
                issues.add("api.tls_key", e.to_string());
                None
            }
            Err(e) => {
                issues.add("api.tls_cert", e.to_string());
                None
            }
        },
    }
}

/// Metrics access and CORS origins from `[api]`, and the metrics
/// address when `/metrics` has one of its own.
pub(super) fn exposure(
    issues: &mut Issues,
    api: &RawApi,
) -> (ethgate_api::health::Exposure, Option<std::net::SocketAddr>) {
    use ethgate_api::health::MetricsAccess;
    let listen = api.metrics_listen.as_deref().and_then(|l| match l.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            issues.add(
                "api.metrics_listen",
                format!("{l:?} is not host:port, e.g. \"127.0.0.1:9100\""),
            );
            None
        }
    });
    let metrics = match (api.metrics_listen.is_some(), api.metrics_token) {
        (true, true) => {
            issues.add(
                "api.metrics_token",
                "has no effect with metrics_listen; choose one",
            );
            MetricsAccess::Elsewhere
        }
        (true, false) => MetricsAccess::Elsewhere,
        (false, true) => MetricsAccess::Token,
        (false, false) => MetricsAccess::Open,
    };
    let mut cors_origins = Vec::with_capacity(api.cors_origins.len());
    for (i, o) in api.cors_origins.iter().enumerate() {
        let scheme_ok = o.starts_with("https://") || o.starts_with("http://");
        let rest = o.split_once("://").map_or("", |(_, r)| r);
        match axum::http::HeaderValue::from_str(o) {
            Ok(v) if scheme_ok && !rest.is_empty() && !rest.contains('/') => cors_origins.push(v),
            _ => issues.add(
                format!("api.cors_origins[{i}]"),
                format!("{o:?} is not an origin like \"https://dash.example.com\" (scheme and host, no path, no *)"),
            ),
        }
    }
    (
        ethgate_api::health::Exposure {
            metrics,
            cors_origins,
        },
        listen,
    )
}

/// The (stream, sink) routes of the audit trail, from `[api] audit_sinks`.
pub(super) fn audit_routes(
    issues: &mut Issues,
    api: &RawApi,
    sinks: &HashSet<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, name) in api.audit_sinks.iter().enumerate() {
        if !sinks.contains(name) {
            issues.add(
                format!("api.audit_sinks[{i}]"),
                format!("no [[sinks]] entry is named {name:?}"),
            );
        } else if !out.iter().any(|(_, s)| s == name) {
            out.push((ethgate_store::audit::AUDIT_STREAM.to_owned(), name.clone()));
        }
    }
    out
}

/// What a policy's names are checked against.
pub(super) struct Known<'a> {
    pub chains: &'a [ChainConfig],
    pub streams: HashSet<String>,
    pub sinks: HashSet<String>,
    pub tx: &'a TxConfig,
}

fn allow_list<T>(
    issues: &mut Issues,
    key: &str,
    items: Option<&[String]>,
    default_any: bool,
    mut one: impl FnMut(&str) -> Result<T, String>,
) -> Allow<T> {
    let Some(items) = items else {
        return if default_any {
            Allow::Any
        } else {
            Allow::Only(Vec::new())
        };
    };
    if items.iter().any(|s| s == "any") {
        if items.len() > 1 {
            issues.add(key, "\"any\" stands alone");
        }
        return Allow::Any;
    }
    let mut out = Vec::with_capacity(items.len());
    for (j, s) in items.iter().enumerate() {
        match one(s) {
            Ok(v) => out.push(v),
            Err(e) => issues.add(format!("{key}[{j}]"), e),
        }
    }
    Allow::Only(out)
}

fn selector(s: &str) -> Result<[u8; 4], String> {
    if let Some(h) = s.strip_prefix("0x") {
        let b = hex::decode(h).map_err(|_| format!("{s:?} is not 4 bytes of hex"))?;
        return b
            .try_into()
            .map_err(|_| format!("{s:?} is not 4 bytes of hex"));
    }
    ethgate_core::signature::check(s).map_err(|e| e.to_string())?;
    let f = alloy_json_abi::Function::parse(s)
        .map_err(|_| format!("{s:?} is neither 0x and 8 hex digits nor a function signature"))?;
    Ok(f.selector().0)
}

/// `from`: pool names and configured account addresses.
fn senders(
    issues: &mut Issues,
    i: usize,
    given: &[String],
    accounts: &HashSet<Address>,
    known: &Known,
) -> Vec<Sender> {
    let mut from = Vec::with_capacity(given.len());
    for (j, f) in given.iter().enumerate() {
        let key = format!("policies[{i}].from[{j}]");
        match f.parse::<Address>() {
            Ok(a) if accounts.contains(&a) => from.push(Sender::Account(a)),
            Ok(a) => issues.add(key, format!("{a:#x} is not in [[accounts]]")),
            Err(_) if known.tx.pools.contains_key(f) => from.push(Sender::Pool(f.clone())),
            Err(_) => issues.add(
                key,
                format!("{f:?} is neither a [[pools]] name nor an account address"),
            ),
        }
    }
    from
}

/// `streams` (configured ones, and `tx.<chain>` status streams) and
/// `sinks` a policy may read and rewind.
fn reads(
    issues: &mut Issues,
    i: usize,
    p: &RawPolicy,
    known: &Known,
) -> (Allow<String>, Allow<String>) {
    let k = |f: &str| format!("policies[{i}].{f}");
    let streams = allow_list(issues, &k("streams"), p.streams.as_deref(), false, |s| {
        let is_status = s
            .strip_prefix("tx.")
            .is_some_and(|c| known.chains.iter().any(|x| x.name == c));
        if known.streams.contains(s) || is_status {
            Ok(s.to_owned())
        } else {
            Err(format!("no stream is named {s:?}"))
        }
    });
    let sinks = allow_list(issues, &k("sinks"), p.sinks.as_deref(), false, |s| {
        if known.sinks.contains(s) {
            Ok(s.to_owned())
        } else {
            Err(format!("no [[sinks]] entry is named {s:?}"))
        }
    });
    (streams, sinks)
}

/// Validates `[[policies]]`.
pub(super) fn policies(issues: &mut Issues, raw: Vec<RawPolicy>, known: &Known) -> Vec<Policy> {
    let mut names = HashSet::new();
    let accounts: HashSet<Address> = known
        .tx
        .accounts
        .iter()
        .map(|a| a.signer.address())
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    for (i, p) in raw.into_iter().enumerate() {
        let k = |f: &str| format!("policies[{i}].{f}");
        if !valid_name(&p.name) {
            issues.add(k("name"), "must be 1-64 letters, digits, '-', '_' or '.'");
        } else if !names.insert(p.name.clone()) {
            issues.add(k("name"), format!("{:?} is configured twice", p.name));
        }
        let chains = allow_list(issues, &k("chains"), p.chains.as_deref(), true, |c| {
            if known.chains.iter().any(|x| x.name == c) {
                Ok(c.to_owned())
            } else {
                Err(format!("no [[chains]] entry is named {c:?}"))
            }
        });
        let from = senders(issues, i, &p.from, &accounts, known);
        let to = allow_list(issues, &k("to"), p.to.as_deref(), false, |t| {
            t.parse::<Address>()
                .map_err(|_| format!("{t:?} is not an address"))
        });
        let selectors = allow_list(
            issues,
            &k("selectors"),
            p.selectors.as_deref(),
            false,
            selector,
        );
        let (streams, sinks) = reads(issues, i, &p, known);
        let max_value = amount(issues, k("max_value"), p.max_value.as_deref()).unwrap_or(0);
        let max_fee_per_gas = amount(issues, k("max_fee_per_gas"), p.max_fee_per_gas.as_deref());
        let daily_cap = amount(issues, k("daily_cap"), p.daily_cap.as_deref());
        let account_daily_cap = amount(
            issues,
            k("account_daily_cap"),
            p.account_daily_cap.as_deref(),
        );
        if (daily_cap.is_some() || account_daily_cap.is_some()) && max_fee_per_gas.is_none() {
            issues.add(
                k("max_fee_per_gas"),
                "is needed with a daily cap, so a request's fee cost has a bound",
            );
        }
        let max_gas = p.max_gas.unwrap_or(1_000_000);
        if max_gas == 0 {
            issues.add(k("max_gas"), "must be more than 0");
        }
        out.push(Policy {
            name: p.name,
            chains,
            from,
            to,
            selectors,
            value_transfers: p.value_transfers,
            max_value,
            max_fee_per_gas,
            max_gas,
            daily_cap,
            account_daily_cap,
            streams,
            sinks,
            rotate_pools: p.rotate_pools,
            manage_tokens: p.manage_tokens,
            others_transactions: p.others_transactions,
            audit: p.audit,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_mistakes_are_named_by_key_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ethgate.toml");
        std::fs::write(
            &path,
            "[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"http://127.0.0.1:1\"]\n\n\
             [[policies]]\nname = \"ops\"\nfrom = [\"no-such-pool\"]\n\
             to = [\"0x5fbdb2315678afecb367f032d93f642f64180aa3\", \"nowhere\"]\n\
             selectors = [\"0x1234\", \"f(uint256\"]\nmax_value = \"lots\"\n\
             daily_cap = \"1 ether\"\nstreams = [\"tx.nochain\"]\n",
        )
        .expect("config");
        let Err(e) = super::super::load(Some(&path), std::iter::empty()) else {
            panic!("a bad policy was accepted");
        };
        let text = e.to_string();
        for want in [
            "ethgate.toml:8: policies[0].from[0]: \"no-such-pool\" is neither",
            "ethgate.toml:9: policies[0].to[1]: \"nowhere\" is not an address",
            "ethgate.toml:10: policies[0].selectors[0]",
            "ethgate.toml:10: policies[0].selectors[1]",
            "ethgate.toml:11: policies[0].max_value",
            "policies[0].max_fee_per_gas: is needed with a daily cap",
            "ethgate.toml:13: policies[0].streams[0]: no stream is named \"tx.nochain\"",
        ] {
            assert!(text.contains(want), "{want:?} in:\n{text}");
        }
    }
}
