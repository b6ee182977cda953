//! Hearing the chain: this service's own durable queue, bound to the
//! billing contract's events and to the chain's transaction statuses on
//! ethgate's exchange. A message is acknowledged only after what it says
//! is committed to the schedule; one redelivered after a crash is
//! recognised by its envelope id and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use crate::Service;
use crate::schedule::Heard;

/// The queue and what it is bound to.
pub struct Binding {
    /// The broker.
    pub url: String,
    /// ethgate's exchange.
    pub exchange: String,
    /// This service's queue.
    pub queue: String,
    /// `event.<chain_id>.<contract>.*` and `tx.<chain_id>.*`.
    pub keys: Vec<String>,
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

fn id_text(v: &Value) -> Option<String> {
    v.as_u64()
        .map(|n| n.to_string())
        .or_else(|| v.as_str().map(str::to_owned))
}

/// Consumes until the connection drops (the caller reconnects).
pub async fn run(svc: Arc<Service>, b: &Binding) -> anyhow::Result<()> {
    let conn = Connection::connect(&b.url, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    // Declared here too (as ethgate declares it: a durable topic
    // exchange), so the queue is bound before ethgate first publishes.
    let exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        b.exchange.as_str().into(),
        ExchangeKind::Topic,
        exchange,
        FieldTable::default(),
    )
    .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(b.queue.as_str().into(), durable, FieldTable::default())
        .await?;
    for key in &b.keys {
        ch.queue_bind(
            b.queue.as_str().into(),
            b.exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    ch.basic_qos(64, BasicQosOptions::default()).await?;
    let mut deliveries = ch
        .basic_consume(
            b.queue.as_str().into(),
            "billing".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %b.queue, "consuming");
    while let Some(d) = deliveries.next().await {
        let d = d?;
        let envelope: Value = serde_json::from_slice(&d.data).unwrap_or(Value::Null);
        match handle(&svc, &envelope).await {
            Ok(()) => {
                d.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a message could not be handled; it is requeued");
                tokio::time::sleep(Duration::from_millis(500)).await;
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                d.nack(requeue).await?;
            }
        }
    }
    Ok(())
}

/// Acts on one envelope: a billing event (or its retraction) or a
/// transaction status.
pub async fn handle(svc: &Service, e: &Value) -> anyhow::Result<()> {
    match e["kind"].as_str() {
        Some("event") => event(svc, e).await,
        Some("tx") => status(svc, e).await,
        _ => Ok(()),
    }
}

async fn event(svc: &Service, e: &Value) -> anyhow::Result<()> {
    let args = &e["args"];
    let (Some(id), Some(billing)) = (e["id"].as_str(), id_text(&args["billingId"])) else {
        return Ok(());
    };
    if int(&args["merchantId"]) != Some(svc.merchant) {
        return Ok(());
    }
    if e["removed"] == true {
        if svc.schedule.retract(id).await? {
            tracing::info!(billing, event = %e["event"], "retracted by a reorg; undone");
            svc.metrics.retracted.inc();
        }
        return Ok(());
    }
    let heard = match e["event"].as_str() {
        Some("BillingAllowed") => Heard::Allowed {
            period: int(&args["period"]).unwrap_or(0),
        },
        Some("BillingCharged") => Heard::Charged {
            next_charge_at: int(&args["nextChargeAt"]).unwrap_or(0),
        },
        Some("BillingCanceled") => Heard::Canceled,
        _ => return Ok(()),
    };
    if svc.schedule.apply(id, &billing, heard).await? {
        tracing::info!(billing, ?heard, "heard");
        svc.metrics.heard.inc();
    }
    Ok(())
}

async fn status(svc: &Service, e: &Value) -> anyhow::Result<()> {
    let meta = &e["metadata"];
    let (Some(billing), Some(tx)) = (id_text(&meta["billing_id"]), e["tx_id"].as_str()) else {
        return Ok(());
    };
    match e["status"].as_str() {
        Some("confirmed") => {
            svc.schedule.confirmed(&billing, tx).await?;
            svc.metrics.confirmed.inc();
        }
        Some("failed" | "rejected" | "cancelled" | "expired") => {
            svc.charge_failed(&billing, tx, e["error"].as_str().unwrap_or(""))
                .await?;
        }
        _ => {}
    }
    Ok(())
}
