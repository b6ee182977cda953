//! The config file as written: serde structs with no validation beyond
//! types and field names (unknown fields are refused, catching typos).

use serde::Deserialize;

/// `ethgate.toml` as parsed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
    /// `[api]`.
    #[serde(default)]
    pub api: RawApi,
    /// `[[chains]]`.
    #[serde(default)]
    pub chains: Vec<RawChain>,
    /// `[[streams]]`.
    #[serde(default)]
    pub streams: Vec<RawStream>,
    /// `[[sinks]]`.
    #[serde(default)]
    pub sinks: Vec<RawSink>,
}

/// `[[sinks]]`: where a stream's envelopes are delivered besides the pull API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// Unique name streams refer to.
    pub name: String,
    /// `"webhook"`, `"amqp"` or `"nats"`.
    pub kind: String,
    /// Receiver URL (webhook) or broker URL (amqp).
    pub url: Option<String>,
    /// Environment variable holding the URL, for URLs with credentials.
    pub url_env: Option<String>,
    /// AMQP topic exchange; default `ethgate`.
    pub exchange: Option<String>,
    /// NATS JetStream stream; default `ETHGATE`.
    pub jetstream_stream: Option<String>,
    /// NATS subject prefix; default `ethgate`.
    pub subject_prefix: Option<String>,
    /// Environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// File holding the signing secret.
    pub secret_file: Option<String>,
    /// Envelopes per delivery.
    pub batch_size: Option<usize>,
    /// Per-request timeout, e.g. `"10s"`.
    pub timeout: Option<String>,
    /// Webhook: how long a batch may keep failing before it becomes a
    /// dead letter, e.g. `"1h"`.
    pub max_age: Option<String>,
    /// Allow URLs that resolve to private, loopback or link-local addresses.
    #[serde(default)]
    pub allow_private_network: bool,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://PATH`.
    pub url: Option<String>,
}

/// `[api]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Longest long-poll `wait`, seconds.
    pub max_wait_secs: Option<u64>,
}

/// `[[chains]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChain {
    /// Name streams refer to.
    pub name: String,
    /// EIP-155 chain id; checked against the node.
    pub chain_id: u64,
    /// One or more JSON-RPC URLs, in order of preference.
    pub rpc: Vec<String>,
    /// How often to poll the head once caught up, e.g. `"2s"`.
    pub poll_interval: Option<String>,
    /// Per-request timeout, e.g. `"10s"`.
    pub request_timeout: Option<String>,
    /// Largest `eth_getLogs` span in blocks.
    pub max_block_range: Option<u64>,
    /// Smallest `eth_getLogs` span in blocks.
    pub min_block_range: Option<u64>,
    /// First `eth_getLogs` span in blocks.
    pub initial_block_range: Option<u64>,
    /// Blocks of history kept to find fork points.
    pub reorg_window: Option<u64>,
    /// Concurrent `eth_getLogs` sub-queries per range.
    pub log_query_concurrency: Option<u64>,
}

/// `[[streams]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// Unique name.
    pub name: String,
    /// A `[[chains]]` name.
    pub chain: String,
    /// Contract addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Path of an ABI JSON file (relative to the config file).
    pub abi: Option<String>,
    /// Human-readable event signatures.
    #[serde(default)]
    pub events: Vec<String>,
    /// First block to read.
    pub from_block: Option<u64>,
    /// A depth in blocks, `"safe"` or `"finalized"`.
    pub confirmations: Option<toml::Value>,
    /// Names of `[[sinks]]` this stream is delivered to.
    #[serde(default)]
    pub sinks: Vec<String>,
}
