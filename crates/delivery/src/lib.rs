//! Delivery: moving envelopes from the outbox to the services that consume
//! them. It never reads the chain.
//!
//! A [`Dispatcher`] runs per (stream, sink): it reads the outbox in `seq`
//! order after the sink's durable cursor, hands a batch to the [`Sink`],
//! and advances the cursor only after the sink acknowledged (an HTTP 2xx for
//! a webhook). A failing sink is retried with exponential backoff and
//! jitter, on the same batch, and never blocks other sinks or the syncers:
//! the outbox simply holds the backlog. Delivery is therefore at least
//! once; envelopes carry a stable `id` for consumers to deduplicate.
//! Retractions are envelopes like any other.

pub mod dead_letters;
pub mod dispatcher;
pub mod metrics;
pub mod sink;
pub mod sinks;

pub use dispatcher::Dispatcher;
pub use sink::{Pending, Sink, SinkError};
