//! JSON-RPC access to EVM chains, and nothing else: no streams, sinks or
//! transactions are known here.
//!
//! An [`EndpointPool`] spreads one chain's calls over one or more node URLs.
//! A call that fails for reasons of the endpoint — transport error, timeout,
//! HTTP 429 or 5xx, a rate-limit or "node not ready" JSON-RPC error — is
//! retried on the next endpoint, and the failed one cools down with
//! exponential backoff and jitter. Errors that are about the request itself
//! (a log range too large, a block past the head, a revert) go back to the
//! caller, classified by [`rpc_error::classify`], the one place that matches
//! provider error text. [`logs`] sizes `eth_getLogs` ranges adaptively from
//! those classifications.

pub mod headers;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod pool;
pub mod rpc_error;

pub use headers::BlockTag;
pub use health::{ChainCheck, EndpointStatus};
pub use logs::{LogFilter, RangeSizer};
pub use pool::{ChainError, EndpointPool, PoolConfig};
pub use rpc_error::{RpcErrorClass, classify};
