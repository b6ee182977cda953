//! `ethgate bench delivery`: in one run, the same envelopes delivered by a
//! raw client and by ethgate's dispatcher from a fresh outbox, to the local
//! RabbitMQ (publisher confirms, windows of the sink's batch size) and to a
//! local HTTP receiver (one POST per envelope, the webhook default); prints
//! both rates and their ratio (target ≥ 0.8).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, Bytes, U64};
use anyhow::Context;
use ethgate_core::{BlockRef, Decoded, RawLog};
use ethgate_delivery::sinks::amqp::{AmqpConfig, AmqpSink, routing_key};
use ethgate_delivery::sinks::webhook::{WebhookConfig, WebhookSink};
use ethgate_delivery::{Dispatcher, Sink};
use ethgate_store::{NewEvent, RangeCommit, Store, StoredEnvelope};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn outbox(dir: &std::path::Path, n: u64) -> anyhow::Result<Store> {
    let store = Store::connect(&format!("sqlite://{}/bench.db", dir.display())).await?;
    store.ensure_stream("bench", 31337).await?;
    let per_block = 500;
    let mut cursor = None;
    for b in 0..n.div_ceil(per_block) {
        let block = BlockRef {
            number: b + 1,
            hash: B256::from(alloy_primitives::U256::from(b + 1)),
            parent_hash: B256::ZERO,
            timestamp: b,
        };
        let logs: Vec<RawLog> = (0..per_block.min(n - b * per_block))
            .map(|i| RawLog {
                address: Address::repeat_byte(0x5f),
                topics: vec![
                    B256::repeat_byte(0xdd),
                    B256::repeat_byte(1),
                    B256::repeat_byte(2),
                ],
                data: Bytes::from(vec![7u8; 32]),
                block_number: U64::from(b + 1),
                block_hash: block.hash,
                block_timestamp: None,
                transaction_hash: B256::repeat_byte(3),
                transaction_index: U64::ZERO,
                log_index: U64::from(i),
                removed: false,
            })
            .collect();
        let args = serde_json::json!({"from": "0x0101010101010101010101010101010101010101", "to": "0x0202020202020202020202020202020202020202", "value": 7});
        let events = logs
            .iter()
            .map(|l| NewEvent {
                log: l,
                timestamp: b,
                decoded: Some(Decoded {
                    name: "Transfer",
                    signature: "Transfer(address,address,uint256)",
                    args: args.clone(),
                }),
            })
            .collect();
        store
            .commit_range(&RangeCommit {
                stream: "bench".into(),
                expected_cursor: cursor,
                events,
                blocks: vec![block],
                cursor: block,
                keep_window: 10,
            })
            .await?;
        cursor = Some(b + 1);
    }
    Ok(store)
}

async fn all(store: &Store) -> anyhow::Result<Vec<StoredEnvelope>> {
    let mut out = Vec::new();
    loop {
        let page = store
            .events_after(
                "bench",
                out.last().map_or(0, |e: &StoredEnvelope| e.seq),
                1000,
            )
            .await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

async fn drain(d: &Dispatcher) -> anyhow::Result<u64> {
    let mut n = 0;
    loop {
        match d.deliver_once().await {
            Ok(0) => return Ok(n),
            Ok(k) => n += k as u64,
            Err(e) => anyhow::bail!("{e}"),
        }
    }
}

async fn raw_amqp(
    envelopes: &[StoredEnvelope],
    exchange: &str,
    window: usize,
) -> anyhow::Result<Duration> {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .context("RabbitMQ on 127.0.0.1:5672 (scripts/services)")?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    let bodies: Vec<(String, String, String)> = envelopes
        .iter()
        .map(|e| (routing_key(&e.envelope), e.envelope.delivery_id(), e.json()))
        .collect();
    let started = Instant::now();
    for chunk in bodies.chunks(window) {
        let mut confirms = Vec::with_capacity(chunk.len());
        for (key, id, body) in chunk {
            let props = BasicProperties::default()
                .with_message_id(id.clone().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            confirms.push(
                ch.basic_publish(
                    exchange.into(),
                    key.clone().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    props,
                )
                .await?,
            );
        }
        for c in confirms {
            anyhow::ensure!(c.await?.is_ack(), "broker nacked");
        }
    }
    Ok(started.elapsed())
}

async fn receiver() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let c = c.clone();
            async move {
                c.fetch_add(
                    body.iter().filter(|b| **b == b'{').count().min(1) as u64,
                    Ordering::Relaxed,
                );
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, count))
}

/// Runs the benchmark and prints its figures.
pub async fn delivery(amqp_events: u64, webhook_events: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = outbox(dir.path(), amqp_events.max(webhook_events)).await?;
    let envelopes = all(&store).await?;
    let exchange = format!("ethgate-bench-{}", std::process::id());
    let batch = 100;

    println!("RabbitMQ: {amqp_events} persistent messages, confirms awaited per {batch}…");
    raw_amqp(&envelopes[..1000.min(envelopes.len())], &exchange, batch).await?; // warm up
    let raw = raw_amqp(&envelopes[..amqp_events as usize], &exchange, batch).await?;
    let sink: Arc<dyn Sink> = Arc::new(AmqpSink::new(AmqpConfig {
        name: "bus".into(),
        url: AMQP_URL.into(),
        exchange: exchange.clone(),
        batch_size: batch,
    }));
    let limited = Store::connect(&format!("sqlite://{}/bench.db", dir.path().display())).await?;
    limited
        .rewind_sink("bench", "bus", envelopes.len() as u64 - amqp_events)
        .await?;
    let d = Dispatcher::new("bench", sink, limited.clone());
    let started = Instant::now();
    let sent = drain(&d).await?;
    let ours = started.elapsed();
    anyhow::ensure!(
        sent == amqp_events,
        "ethgate delivered {sent}, expected {amqp_events}"
    );
    let (r, o) = (
        amqp_events as f64 / raw.as_secs_f64(),
        amqp_events as f64 / ours.as_secs_f64(),
    );
    println!("  raw lapin publish + confirms:            {r:>9.0} msg/s  ({raw:.2?})");
    println!("  ethgate outbox -> dispatcher -> broker:  {o:>9.0} msg/s  ({ours:.2?})");
    println!("  ratio: {:.2}  (target >= 0.80)", o / r);
    if let Ok(conn) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await
        && let Ok(ch) = conn.create_channel().await
    {
        let _ = ch
            .exchange_delete(exchange.into(), Default::default())
            .await;
    }

    println!("webhooks: {webhook_events} POSTs of one envelope to a local receiver…");
    let (url, count) = receiver().await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    for e in &envelopes[..webhook_events as usize] {
        let body = format!("[{}]", e.json());
        let status = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .status();
        anyhow::ensure!(status.is_success(), "receiver answered {status}");
    }
    let raw = started.elapsed();
    let sink: Arc<dyn Sink> = Arc::new(WebhookSink::new(WebhookConfig {
        name: "hook".into(),
        url: url.parse()?,
        secret: "bench".into(),
        batch_size: 1,
        timeout: Duration::from_secs(10),
        max_age: Duration::from_secs(3600),
        allow_private_network: true,
    })?);
    limited
        .rewind_sink("bench", "hook", envelopes.len() as u64 - webhook_events)
        .await?;
    let d = Dispatcher::new("bench", sink, limited);
    let started = Instant::now();
    let sent = drain(&d).await?;
    let ours = started.elapsed();
    anyhow::ensure!(
        sent == webhook_events && count.load(Ordering::Relaxed) == 2 * webhook_events,
        "webhook count mismatch"
    );
    let (r, o) = (
        webhook_events as f64 / raw.as_secs_f64(),
        webhook_events as f64 / ours.as_secs_f64(),
    );
    println!("  raw reqwest POST (unsigned):             {r:>9.0} req/s  ({raw:.2?})");
    println!(
        "  ethgate outbox -> dispatcher -> webhook: {o:>9.0} req/s  ({ours:.2?}, signed, cursor per ack)"
    );
    println!("  ratio: {:.2}  (target >= 0.80)", o / r);
    Ok(())
}
