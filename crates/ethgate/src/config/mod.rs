//! Configuration in two steps: [`raw`] structs as written, then a validated
//! [`Config`] the rest of the program trusts. Validation is pure (no I/O but
//! reading ABI files the config names) and reports every problem it finds,
//! each with its key, and its line when it comes from the file.

pub mod accounts;
pub mod env;
mod factory;
pub mod policies;
pub mod pools;
#[cfg(test)]
mod props;
pub mod raw;
mod remote_signers;
mod sinks;
mod spans;
mod streams;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ethgate_core::StreamSpec;
use ethgate_delivery::sinks::SinkConfig;
use ethgate_events::SyncerConfig;

pub use validate::validate;

/// Where ethgate looks for its config when none is given.
pub const DEFAULT_CONFIG: &str = "ethgate.toml";
/// The embedded default store.
pub const DEFAULT_STORE: &str = "sqlite://./data/ethgate.db";
/// The embedded default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// One chain, validated.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// Name streams refer to.
    pub name: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// JSON-RPC URLs (secrets: never logged whole).
    pub rpc: Vec<String>,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// EIP-1559 fees (else legacy gas price).
    pub eip1559: bool,
    /// Sync tuning for this chain's streams.
    pub sync: SyncerConfig,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// File it came from; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    /// Store URL.
    pub store_url: String,
    /// API listen address.
    pub listen: SocketAddr,
    /// Longest long-poll wait.
    pub max_wait: Duration,
    /// Chains.
    pub chains: Vec<ChainConfig>,
    /// Streams.
    pub streams: Vec<StreamSpec>,
    /// Sinks.
    pub sinks: Vec<SinkConfig>,
    /// (stream, sink) pairs to dispatch.
    pub routes: Vec<(String, String)>,
    /// The transaction manager's settings and accounts.
    pub tx: accounts::TxConfig,
    /// The API's timeouts, caps and rate.
    pub limits: ethgate_api::Limits,
    /// `[[policies]]`.
    pub policies: Vec<ethgate_api::Policy>,
    /// HTTPS, when `[api] tls_cert` and `tls_key` are set.
    pub tls: Option<std::sync::Arc<ethgate_api::server::TlsConfig>>,
    /// Who may read `/metrics`, and the browser origins allowed.
    pub exposure: ethgate_api::health::Exposure,
    /// `/metrics`' own address, when it has one.
    pub metrics_listen: Option<SocketAddr>,
    /// Functions and errors the streams' ABIs declare, by contract.
    pub abis: ethgate_api::calls::KnownAbis,
    /// `[cluster]`.
    pub cluster: ClusterConfig,
}

/// How this replica shares the work (see `crate::cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Its id, when configured.
    pub replica_id: Option<String>,
    /// A lease's lifetime unrenewed.
    pub lease_ttl: Duration,
}

impl Config {
    /// The chain a stream reads.
    pub fn chain(&self, name: &str) -> Option<&ChainConfig> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Key path, e.g. `streams[0].addresses[1]`.
    pub key: String,
    /// Line in the file, when the key is there.
    pub line: Option<usize>,
    /// Environment variable that set the key, if one did.
    pub var: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found; `Display` prints one per line.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// File name for messages.
    pub file: String,
    /// The problems.
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match (&issue.var, issue.line) {
                (Some(var), _) => write!(f, "{var}: {}: {}", issue.key, issue.message)?,
                (None, Some(line)) => {
                    write!(f, "{}:{line}: {}: {}", self.file, issue.key, issue.message)?
                }
                (None, None) => write!(f, "{}: {}: {}", self.file, issue.key, issue.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Loads the config: `path` if given, else `./ethgate.toml` if present,
/// else the embedded defaults; then applies `ETHGATE_…` overrides from
/// `vars` and validates.
pub fn load(
    path: Option<&Path>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let chosen = match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let file = chosen
        .as_ref()
        .map_or_else(|| "<defaults>".to_owned(), |p| p.display().to_string());
    let fail = |key: &str, line: Option<usize>, message: String| ConfigError {
        file: file.clone(),
        issues: vec![Issue {
            key: key.to_owned(),
            line,
            var: None,
            message,
        }],
    };
    let text = match &chosen {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| fail("(file)", None, format!("cannot read: {e}")))?,
        None => String::new(),
    };
    let overrides = env::overrides(vars);
    let raw: raw::RawConfig = if overrides.is_empty() {
        toml::from_str(&text).map_err(|e| toml_issue(&file, &text, &e))?
    } else {
        let mut doc: toml::Table =
            toml::from_str(&text).map_err(|e| toml_issue(&file, &text, &e))?;
        for o in &overrides {
            env::apply(&mut doc, o).map_err(|m| fail(&o.path.join("."), None, m))?;
        }
        toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let mut err = fail("(environment)", None, e.message().to_owned());
                err.issues[0].var = Some(
                    overrides
                        .iter()
                        .map(|o| o.var.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                err
            })?
    };
    let base = chosen
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    validate(raw, &base, chosen.clone()).map_err(|mut issues| {
        let lines = spans::Lines::new(&text);
        let overridden: Vec<(String, &str)> = overrides
            .iter()
            .map(|o| (spans::key_of(&o.path), o.var.as_str()))
            .collect();
        for issue in &mut issues {
            issue.var = overridden
                .iter()
                .find(|(key, _)| {
                    issue.key == *key
                        || (issue.key.starts_with(key.as_str())
                            && issue.key[key.len()..].starts_with('.'))
                })
                .map(|(_, var)| (*var).to_owned());
            if issue.var.is_none() {
                issue.line = lines.line_of(&issue.key);
            }
        }
        ConfigError { file, issues }
    })
}

fn toml_issue(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let key = e
        .span()
        .and_then(|s| spans::key_at(text, s.start))
        .unwrap_or_else(|| "(syntax)".to_owned());
    ConfigError {
        file: file.to_owned(),
        issues: vec![Issue {
            key,
            line,
            var: None,
            message: e.message().trim().to_owned(),
        }],
    }
}
