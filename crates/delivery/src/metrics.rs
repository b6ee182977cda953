//! Metric names of the delivery crate, defined once.

/// Counter: envelopes acknowledged by a sink, per stream and sink.
pub const DELIVERED: &str = "ethgate_sink_delivered_total";
/// Counter: failed delivery attempts, per stream and sink.
pub const FAILURES: &str = "ethgate_sink_failures_total";
/// Gauge: the sink's cursor (last acknowledged seq), per stream and sink.
pub const CURSOR: &str = "ethgate_sink_cursor_seq";
/// Counter: batches parked as dead letters, per stream and sink.
pub const DEAD_LETTERS: &str = "ethgate_sink_dead_letters_total";
/// Gauge: envelopes recorded but not yet acknowledged, per stream and
/// sink; refreshed each time the dispatcher reads the outbox (at least
/// every 1,000 envelopes, and when it idles).
pub const LAG: &str = "ethgate_sink_lag";
