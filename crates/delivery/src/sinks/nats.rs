//! NATS JetStream: one subject per (chain, address, event), publish acks
//! awaited, `Nats-Msg-Id` = the entry's delivery id (`<id>/<stream>/<seq>`)
//! so JetStream drops the duplicates
//! that at-least-once redelivery produces (within the stream's duplicate
//! window).
//!
//! Subjects are `<prefix>.event.<chain_id>.<address>.<EventName>` (prefix
//! `ethgate` by default); the sink creates the JetStream stream that
//! captures `<prefix>.>` if it does not exist.

use std::fmt;

use async_nats::jetstream::{self, Context};
use ethgate_store::StoredEnvelope;
use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::sink::{Sink, SinkError};

/// A NATS sink's settings. The URL may hold a token: `Debug` hides it.
#[derive(Clone)]
pub struct NatsConfig {
    /// Sink name.
    pub name: String,
    /// `nats://host:port` (or with credentials).
    pub url: String,
    /// JetStream stream that captures the subjects.
    pub stream: String,
    /// First subject token.
    pub subject_prefix: String,
    /// Messages per batch (acks awaited per batch).
    pub batch_size: usize,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("name", &self.name)
            .field("url", &"<redacted>")
            .field("stream", &self.stream)
            .field("subject_prefix", &self.subject_prefix)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// The subject of an envelope: `<prefix>.event.<chain_id>.<address>.<Event>`,
/// `<prefix>.tx.<chain_id>.<status>` for a transaction status, or
/// `<prefix>.audit.<action>.<outcome>` for an audit entry.
pub fn subject(prefix: &str, e: &ethgate_core::Envelope) -> String {
    match e {
        ethgate_core::Envelope::Event(e) => format!(
            "{prefix}.event.{}.{}.{}",
            e.chain_id,
            e.address,
            e.event.as_deref().unwrap_or("unknown")
        ),
        ethgate_core::Envelope::Tx(t) => format!("{prefix}.tx.{}.{}", t.chain_id, t.status),
        ethgate_core::Envelope::Audit(a) => format!(
            "{prefix}.audit.{}.{}",
            a.action.as_str(),
            a.outcome.as_str()
        ),
    }
}

/// Publishes to JetStream, reconnecting after a failure.
pub struct NatsSink {
    cfg: NatsConfig,
    ctx: Mutex<Option<Context>>,
}

impl NatsSink {
    /// A sink that connects on first use.
    pub fn new(cfg: NatsConfig) -> Self {
        NatsSink {
            cfg,
            ctx: Mutex::new(None),
        }
    }

    fn fail(&self, what: &str, e: impl fmt::Display) -> SinkError {
        SinkError::retriable(&self.cfg.name, format!("{what}: {e}"))
    }

    async fn context(&self) -> Result<Context, SinkError> {
        let mut guard = self.ctx.lock().await;
        if let Some(ctx) = guard.as_ref() {
            return Ok(ctx.clone());
        }
        let client = async_nats::connect(self.cfg.url.as_str())
            .await
            .map_err(|e| self.fail("connecting to NATS", e))?;
        let ctx = jetstream::new(client);
        ctx.get_or_create_stream(jetstream::stream::Config {
            name: self.cfg.stream.clone(),
            subjects: vec![format!("{}.>", self.cfg.subject_prefix)],
            ..Default::default()
        })
        .await
        .map_err(|e| self.fail("creating the JetStream stream", e))?;
        tracing::info!(sink = %self.cfg.name, stream = %self.cfg.stream, "connected to NATS JetStream");
        *guard = Some(ctx.clone());
        Ok(ctx)
    }

    async fn publish(&self, batch: &[StoredEnvelope]) -> Result<(), SinkError> {
        let ctx = self.context().await?;
        let result = self.publish_on(&ctx, batch).await;
        if result.is_err() {
            *self.ctx.lock().await = None;
        }
        result
    }

    async fn publish_on(&self, ctx: &Context, batch: &[StoredEnvelope]) -> Result<(), SinkError> {
        let mut acks = Vec::with_capacity(batch.len());
        for e in batch {
            let env = &e.envelope;
            let mut body = String::with_capacity(1024);
            env.write_json(&mut body);
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                env.delivery_id().as_str(),
            );
            if let Some(ev) = env.as_event() {
                headers.insert("Ethgate-Stream", ev.stream.as_str());
            }
            let ack = ctx
                .publish_with_headers(
                    subject(&self.cfg.subject_prefix, env),
                    headers,
                    body.into_bytes().into(),
                )
                .await
                .map_err(|e| self.fail("publishing", e))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await
                .map_err(|e| self.fail("awaiting the JetStream ack", e))?;
        }
        Ok(())
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn max_batch(&self) -> usize {
        self.cfg.batch_size
    }

    fn send<'a>(&'a self, batch: &'a [StoredEnvelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.publish(batch))
    }
}
