//! The sinks. Each is a [`crate::Sink`]; they share the dispatcher and its
//! retry, so a sink only says how to deliver one batch. [`SinkConfig`] is
//! the validated config of any sink; [`SinkConfig::build`] makes it.

use std::sync::Arc;

use crate::Sink;

pub mod amqp;
pub mod nats;
pub mod webhook;

/// A validated sink configuration.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// HTTP POST to a receiver.
    Webhook(webhook::WebhookConfig),
    /// RabbitMQ topic exchange.
    Amqp(amqp::AmqpConfig),
    /// NATS JetStream.
    Nats(nats::NatsConfig),
}

impl SinkConfig {
    /// The sink's name.
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Webhook(w) => &w.name,
            SinkConfig::Amqp(a) => &a.name,
            SinkConfig::Nats(n) => &n.name,
        }
    }

    /// One line for `config check` (no secrets, no URL paths).
    pub fn describe(&self) -> String {
        match self {
            SinkConfig::Webhook(w) => format!(
                "{} (webhook) to {}, batches of {}",
                w.name,
                w.url.host_str().unwrap_or("?"),
                w.batch_size
            ),
            SinkConfig::Amqp(a) => format!(
                "{} (amqp) to exchange {}, batches of {}",
                a.name, a.exchange, a.batch_size
            ),
            SinkConfig::Nats(n) => format!(
                "{} (nats) to JetStream stream {} as {}.event.…, batches of {}",
                n.name, n.stream, n.subject_prefix, n.batch_size
            ),
        }
    }

    /// Builds the sink (connections are made on first use).
    pub fn build(&self) -> Result<Arc<dyn Sink>, String> {
        match self {
            SinkConfig::Webhook(w) => webhook::WebhookSink::new(w.clone())
                .map(|s| Arc::new(s) as Arc<dyn Sink>)
                .map_err(|e| {
                    format!(
                        "sink {}: building the HTTP client: {}",
                        w.name,
                        e.without_url()
                    )
                }),
            SinkConfig::Amqp(a) => Ok(Arc::new(amqp::AmqpSink::new(a.clone()))),
            SinkConfig::Nats(n) => Ok(Arc::new(nats::NatsSink::new(n.clone()))),
        }
    }
}
