//! RabbitMQ: one durable topic exchange, publisher confirms awaited.
//!
//! Routing keys are `event.<chain_id>.<address>.<EventName>` (address in
//! lower-case hex; `unknown` for a log the ABI did not decode), so consumers
//! bind their own queues by pattern, e.g. `event.*.*.Transfer`. Messages are
//! persistent, `message_id` is the entry's delivery id (`<id>/<stream>/<seq>`,
//! see `EventEnvelope::delivery_id`), `content_type` is JSON and
//! the headers carry the stream and topic0. A batch is acknowledged only
//! when the broker confirmed every message; a nack or a lost connection
//! fails the batch, and the next attempt reconnects. Up to [`WINDOW`]
//! batches await their confirms at once, so the broker is never idle
//! between one batch's confirms and the next batch's publishes.

use std::fmt;

use ethgate_store::StoredEnvelope;
use futures::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::sink::{Pending, Sink, SinkError};

/// Batches awaiting the broker's confirms at once.
pub const WINDOW: usize = 4;

/// An AMQP sink's settings. The URL holds credentials: `Debug` hides it.
#[derive(Clone)]
pub struct AmqpConfig {
    /// Sink name.
    pub name: String,
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// Topic exchange to publish to (declared durable if missing).
    pub exchange: String,
    /// Messages per batch (confirms awaited per batch).
    pub batch_size: usize,
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("name", &self.name)
            .field("url", &"<redacted>")
            .field("exchange", &self.exchange)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// The routing key of an envelope: `event.<chain_id>.<address>.<Event>`,
/// `tx.<chain_id>.<status>` for a transaction status, or
/// `audit.<action>.<outcome>` for an audit entry.
pub fn routing_key(e: &ethgate_core::Envelope) -> String {
    match e {
        ethgate_core::Envelope::Event(e) => format!(
            "event.{}.{}.{}",
            e.chain_id,
            e.address,
            e.event.as_deref().unwrap_or("unknown")
        ),
        ethgate_core::Envelope::Tx(t) => format!("tx.{}.{}", t.chain_id, t.status),
        ethgate_core::Envelope::Audit(a) => {
            format!("audit.{}.{}", a.action.as_str(), a.outcome.as_str())
        }
    }
}

/// Publishes to one exchange over one connection, reconnecting on failure.
pub struct AmqpSink {
    cfg: AmqpConfig,
    link: Arc<Mutex<Option<(Connection, Channel)>>>,
}

impl AmqpSink {
    /// A sink that connects on first use.
    pub fn new(cfg: AmqpConfig) -> Self {
        AmqpSink {
            cfg,
            link: Arc::new(Mutex::new(None)),
        }
    }

    fn fail(&self, what: &str, e: impl fmt::Display) -> SinkError {
        SinkError::retriable(&self.cfg.name, format!("{what}: {e}"))
    }

    async fn channel(&self) -> Result<Channel, SinkError> {
        let mut link = self.link.lock().await;
        if let Some((_, ch)) = link.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        *link = None;
        let conn = Connection::connect(&self.cfg.url, ConnectionProperties::default())
            .await
            .map_err(|e| self.fail("connecting to the broker", e))?;
        let ch = conn
            .create_channel()
            .await
            .map_err(|e| self.fail("opening a channel", e))?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.fail("enabling publisher confirms", e))?;
        ch.exchange_declare(
            self.cfg.exchange.clone().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| self.fail("declaring the exchange", e))?;
        tracing::info!(sink = %self.cfg.name, exchange = %self.cfg.exchange, "connected to RabbitMQ");
        *link = Some((conn, ch.clone()));
        Ok(ch)
    }

    /// Publishes `batch` and returns its confirms still to come; any
    /// failure drops the connection, so the next attempt starts afresh.
    async fn publish(&self, batch: &[StoredEnvelope]) -> Result<Pending, SinkError> {
        let published = match self.channel().await {
            Ok(ch) => self.publish_on(ch, batch).await,
            Err(e) => Err(e),
        };
        let confirms = match published {
            Ok(c) => c,
            Err(e) => {
                *self.link.lock().await = None;
                return Err(e);
            }
        };
        let (link, name) = (self.link.clone(), self.cfg.name.clone());
        Ok(Box::pin(async move {
            let fail = |what: &str| SinkError::retriable(&name, what.to_owned());
            for confirm in confirms {
                let err = match confirm.await {
                    Ok(c) if c.is_ack() => continue,
                    Ok(_) => fail("publishing: the broker refused a message (nack)"),
                    Err(e) => fail(&format!("awaiting the broker's confirm: {e}")),
                };
                *link.lock().await = None;
                return Err(err);
            }
            Ok(())
        }))
    }

    async fn publish_on(
        &self,
        ch: Channel,
        batch: &[StoredEnvelope],
    ) -> Result<Vec<lapin::PublisherConfirm>, SinkError> {
        let mut confirms = Vec::with_capacity(batch.len());
        let mut body = String::with_capacity(1024);
        for e in batch {
            let env = &e.envelope;
            body.clear();
            env.write_json(&mut body);
            let mut headers = FieldTable::default();
            if let Some(ev) = env.as_event() {
                headers.insert(
                    "stream".into(),
                    AMQPValue::LongString(ev.stream.clone().into()),
                );
                if let Some(t) = ev.topic0 {
                    headers.insert(
                        "topic0".into(),
                        AMQPValue::LongString(format!("{t}").into()),
                    );
                }
            }
            let props = BasicProperties::default()
                .with_message_id(env.delivery_id().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(headers);
            let confirm = ch
                .basic_publish(
                    self.cfg.exchange.clone().into(),
                    routing_key(env).into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await
                .map_err(|e| self.fail("publishing", e))?;
            confirms.push(confirm);
        }
        Ok(confirms)
    }
}

impl Sink for AmqpSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn max_batch(&self) -> usize {
        self.cfg.batch_size
    }

    fn send<'a>(&'a self, batch: &'a [StoredEnvelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move { self.publish(batch).await?.await })
    }

    fn start<'a>(
        &'a self,
        batch: &'a [StoredEnvelope],
    ) -> BoxFuture<'a, Result<Pending, SinkError>> {
        Box::pin(self.publish(batch))
    }

    fn window(&self) -> usize {
        WINDOW
    }
}
