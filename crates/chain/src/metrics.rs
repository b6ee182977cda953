//! Metric names of the chain crate, defined once.

/// Counter: JSON-RPC requests by chain, endpoint, method and outcome.
pub const RPC_REQUESTS: &str = "ethgate_rpc_requests_total";
/// Histogram: JSON-RPC request latency in seconds by chain, endpoint, method.
pub const RPC_LATENCY: &str = "ethgate_rpc_request_duration_seconds";
/// Counter: times a call moved on from a failing endpoint.
pub const RPC_FAILOVERS: &str = "ethgate_rpc_failovers_total";
/// Gauge: 1 while an endpoint is usable, 0 while it cools down, is
/// down or serves another chain.
pub const RPC_ENDPOINT_UP: &str = "ethgate_rpc_endpoint_up";
/// Gauge: an endpoint's head at its last probe.
pub const RPC_ENDPOINT_HEAD: &str = "ethgate_rpc_endpoint_head";
/// Gauge: blocks an endpoint lags the best head of its chain's endpoints.
pub const RPC_ENDPOINT_LAG: &str = "ethgate_rpc_endpoint_lag_blocks";
/// Gauge: current `eth_getLogs` span in blocks, per chain.
pub const LOG_RANGE_SPAN: &str = "ethgate_getlogs_range_blocks";
