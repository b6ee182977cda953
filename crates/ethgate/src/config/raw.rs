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
    /// `[tx]`.
    #[serde(default)]
    pub tx: RawTx,
    /// `[[accounts]]`.
    #[serde(default)]
    pub accounts: Vec<RawAccount>,
    /// `[[pools]]`.
    #[serde(default)]
    pub pools: Vec<RawPool>,
    /// `[[policies]]`.
    #[serde(default)]
    pub policies: Vec<RawPolicy>,
    /// `[cluster]`.
    #[serde(default)]
    pub cluster: RawCluster,
}

/// `[cluster]`: how this process shares the work with other replicas on
/// the same store.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// This replica's id (default: host name and API port).
    pub replica_id: Option<String>,
    /// How long a lease lasts unrenewed: how soon another replica takes a
    /// dead one's work (default "5s").
    pub lease_ttl: Option<String>,
}

/// `[[policies]]`: what a token that names the policy may do. Lists
/// accept `"any"`; what is not listed is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// The name tokens refer to.
    pub name: String,
    /// Chains it may send on (default any).
    pub chains: Option<Vec<String>>,
    /// Pool names and account addresses it may send from.
    #[serde(default)]
    pub from: Vec<String>,
    /// Contracts and recipients it may send to.
    pub to: Option<Vec<String>>,
    /// Function selectors (`"0xa9059cbb"` or `"transfer(address,uint256)"`).
    pub selectors: Option<Vec<String>>,
    /// Whether requests without calldata are allowed.
    #[serde(default)]
    pub value_transfers: bool,
    /// Largest `value` per request, e.g. `"0.1 ether"` (default 0).
    pub max_value: Option<String>,
    /// Cap on max fee per gas, e.g. `"200 gwei"`.
    pub max_fee_per_gas: Option<String>,
    /// Largest gas limit (default 1,000,000).
    pub max_gas: Option<u64>,
    /// Daily cap on value + fee cost for each token, per chain.
    pub daily_cap: Option<String>,
    /// Daily cap on value + fee cost for each sending account.
    pub account_daily_cap: Option<String>,
    /// Streams it may read.
    pub streams: Option<Vec<String>>,
    /// Sinks it may rewind and redeliver to.
    pub sinks: Option<Vec<String>>,
    /// May start pool rotations.
    #[serde(default)]
    pub rotate_pools: bool,
    /// May create, list and revoke tokens.
    #[serde(default)]
    pub manage_tokens: bool,
    /// May read, bump and cancel other tokens' transactions.
    #[serde(default)]
    pub others_transactions: bool,
    /// May read the audit trail.
    #[serde(default)]
    pub audit: bool,
}

/// `[tx]`: how the transaction manager sends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTx {
    /// Re-broadcast an unmined attempt after this long, e.g. `"12s"`.
    pub resubmit_after: Option<String>,
    /// Replace with higher fees after this long unmined, e.g. `"60s"`.
    pub bump_after: Option<String>,
    /// Re-send, then replace, the account's next nonce after this long
    /// when the node holds nothing executable at it, e.g. `"3s"`.
    pub stall_after: Option<String>,
    /// Most nonces in flight per account.
    pub max_in_flight: Option<usize>,
    /// Gas limit = estimate × this, e.g. `1.2`.
    pub gas_margin: Option<f64>,
    /// Lowest priority fee, e.g. `"1 gwei"`.
    pub min_priority_fee: Option<String>,
    /// Blocks a confirmed transaction is watched for reorgs.
    pub finality_depth: Option<u64>,
    /// Confirmations when a request gives none.
    pub confirmations: Option<u64>,
    /// How often each account's sender looks at its requests, e.g. `"500ms"`.
    pub poll_interval: Option<String>,
    /// Accept `dev_key_env` accounts (raw keys: for anvil only).
    #[serde(default)]
    pub allow_dev_keys: bool,
    /// `[[sinks]]` that receive transaction status envelopes.
    #[serde(default)]
    pub sinks: Vec<String>,
}

/// `[[accounts]]`: an operational account ethgate sends from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    /// A `[[chains]]` name.
    pub chain: String,
    /// Keystore file (relative to the config file).
    pub keystore: Option<String>,
    /// Environment variable holding the keystore password.
    pub password_env: Option<String>,
    /// File holding the keystore password.
    pub password_file: Option<String>,
    /// Environment variable holding a raw key (needs `tx.allow_dev_keys`).
    pub dev_key_env: Option<String>,
    /// A JSON-RPC signer (`eth_signTransaction`: Web3Signer, Clef, a node).
    pub signer_url: Option<String>,
    /// AWS KMS key id, ARN or alias (key spec ECC_SECG_P256K1).
    pub kms_key_id: Option<String>,
    /// AWS region of the KMS key.
    pub kms_region: Option<String>,
    /// KMS endpoint; default `https://kms.<region>.amazonaws.com`.
    pub kms_endpoint: Option<String>,
    /// Environment variable with the AWS access key id (default AWS_ACCESS_KEY_ID).
    pub aws_access_key_id_env: Option<String>,
    /// Environment variable with the AWS secret key (default AWS_SECRET_ACCESS_KEY).
    pub aws_secret_access_key_env: Option<String>,
    /// Environment variable with an AWS session token, for temporary credentials.
    pub aws_session_token_env: Option<String>,
    /// The account's address, for remote and KMS signers (checked on every signature).
    pub address: Option<String>,
    /// Fee cap, e.g. `"200 gwei"`.
    pub max_fee_per_gas: Option<String>,
    /// Priority-fee cap, e.g. `"5 gwei"`.
    pub max_priority_fee_per_gas: Option<String>,
}

/// `[[pools]]`: a name requests can send `from`, spread over accounts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// The name.
    pub name: String,
    /// The first member account addresses (rotation replaces them).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Chain name; defaults to the first member's chain.
    pub chain: Option<String>,
    /// Where rotation writes new members' keystores (relative to the config file).
    pub keystore_dir: Option<String>,
    /// Environment variable holding the pool's keystore password.
    pub password_env: Option<String>,
    /// File holding the pool's keystore password.
    pub password_file: Option<String>,
    /// An `[[accounts]]` address that funds top-ups and new members.
    pub funding: Option<String>,
    /// Top up a member whose balance falls below this, e.g. `"0.05 ether"`.
    pub min_balance: Option<String>,
    /// One top-up (and a new member's funding), e.g. `"0.1 ether"`.
    pub top_up: Option<String>,
    /// Most topped up per UTC day, e.g. `"1 ether"`.
    pub daily_top_up_cap: Option<String>,
    /// How often balances are read, e.g. `"15s"`.
    pub balance_interval: Option<String>,
    /// The pool's OperatorRegistry contract.
    pub registry: Option<String>,
    /// Who signs setOperators: an `[[accounts]]` address, or `"external"`
    /// (a multisig: the rotation shows the transaction and waits).
    pub master: Option<String>,
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
    /// `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
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
    /// Time to send a request's headers, e.g. `"10s"`.
    pub header_timeout: Option<String>,
    /// Time to send a request's body, e.g. `"10s"`.
    pub body_timeout: Option<String>,
    /// Longest a request may run, e.g. `"90s"` (above the long-poll wait).
    pub request_timeout: Option<String>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Requests a second per token (bursts of twice that).
    pub rate_limit: Option<u32>,
    /// PEM certificate chain: serve HTTPS (with `tls_key`).
    pub tls_cert: Option<String>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<String>,
    /// Serve `/metrics` on this `host:port` only (plain HTTP).
    pub metrics_listen: Option<String>,
    /// Require a valid token for `/metrics` on the API's address.
    #[serde(default)]
    pub metrics_token: bool,
    /// Browser origins allowed to call the API (CORS); none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// `[[sinks]]` that receive the audit trail (stream `audit`).
    #[serde(default)]
    pub audit_sinks: Vec<String>,
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
    /// Whether the chain prices gas with EIP-1559 (default `true`); `false`
    /// sends legacy transactions priced by `eth_gasPrice`.
    pub eip1559: Option<bool>,
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
    /// A factory whose announced children the stream follows too.
    pub factory: Option<RawFactory>,
}

/// `[streams.factory]`: where a stream's children are announced.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFactory {
    /// The factory contract's address.
    pub address: String,
    /// The announcing event's signature.
    pub event: String,
    /// The name of the event's argument that holds the child's address.
    pub parameter: String,
}
