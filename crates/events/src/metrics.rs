//! Metric names of the events crate, defined once.

/// Counter: envelopes recorded per stream (retractions excluded).
pub const EVENTS_RECORDED: &str = "ethgate_stream_events_total";
/// Counter: retraction envelopes written per stream.
pub const RETRACTIONS: &str = "ethgate_stream_retractions_total";
/// Counter: reorgs handled per stream.
pub const REORGS: &str = "ethgate_stream_reorgs_total";
/// Histogram: blocks rewound per reorg.
pub const REORG_DEPTH: &str = "ethgate_stream_reorg_depth_blocks";
/// Counter: logs recorded with `args: null` because the ABI did not match.
pub const DECODE_ERRORS: &str = "ethgate_stream_decode_errors_total";
/// Counter: ranges fetched again because the chain moved during the fetch.
pub const REFETCHES: &str = "ethgate_stream_refetches_total";
/// Gauge: the stream's cursor block.
pub const CURSOR: &str = "ethgate_stream_cursor_block";
/// Gauge: blocks between the chain head and the cursor.
pub const LAG: &str = "ethgate_stream_lag_blocks";
/// Gauge: the chain head as last seen, per chain.
pub const HEAD: &str = "ethgate_chain_head_block";
/// Counter: failed sync steps per stream.
pub const STEP_ERRORS: &str = "ethgate_stream_step_errors_total";
