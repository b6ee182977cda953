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
                children: Vec::new(),
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
    declare_exchange(&ch, exchange).await?;
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

/// Rounds of each side, alternated so a slow spell of the shared broker or
/// machine hits both; the medians are compared.
const ROUNDS: usize = 5;

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn rounds(d: &[Duration]) -> String {
    let ms: Vec<String> = d.iter().map(|d| format!("{}", d.as_millis())).collect();
    format!("rounds {} ms", ms.join(" / "))
}

/// Delivers the last `n` envelopes of the outbox again through a fresh
/// dispatcher of `sink`; returns the time taken.
async fn ethgate_round(
    store: &Store,
    sink: Arc<dyn Sink>,
    total: u64,
    n: u64,
) -> anyhow::Result<Duration> {
    store.rewind_sink("bench", sink.name(), total - n).await?;
    let d = Dispatcher::new("bench", sink, store.clone());
    let started = Instant::now();
    let sent = drain(&d).await?;
    let took = started.elapsed();
    anyhow::ensure!(sent == n, "ethgate delivered {sent}, expected {n}");
    Ok(took)
}

async fn raw_webhook(url: &str, envelopes: &[StoredEnvelope]) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let bodies: Vec<String> = envelopes
        .iter()
        .map(|e| format!("[{}]", e.json()))
        .collect();
    let started = Instant::now();
    for body in bodies {
        let status = client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .status();
        anyhow::ensure!(status.is_success(), "receiver answered {status}");
    }
    Ok(started.elapsed())
}

fn report(
    unit: &str,
    n: u64,
    (raw, ours): (Vec<Duration>, Vec<Duration>),
    raw_label: &str,
    ours_label: &str,
) {
    println!("  raw:     {}", rounds(&raw));
    println!("  ethgate: {}", rounds(&ours));
    let (raw, ours) = (median(raw), median(ours));
    let (r, o) = (n as f64 / raw.as_secs_f64(), n as f64 / ours.as_secs_f64());
    println!("  {raw_label:<40} {r:>9.0} {unit}  (median {raw:.2?})");
    println!("  {ours_label:<40} {o:>9.0} {unit}  (median {ours:.2?})");
    println!("  ratio: {:.2}  (target >= 0.80)", o / r);
}

/// Runs the benchmark and prints its figures.
pub async fn delivery(amqp_events: u64, webhook_events: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = outbox(dir.path(), amqp_events.max(webhook_events)).await?;
    let envelopes = all(&store).await?;
    let total = envelopes.len() as u64;
    let exchange = format!("ethgate-bench-{}", std::process::id());
    let batch = 100;

    println!(
        "RabbitMQ: {amqp_events} persistent messages, confirms awaited per {batch}, {ROUNDS} alternating rounds…"
    );
    let tail = &envelopes[(total - amqp_events) as usize..];
    raw_amqp(&envelopes[..1000.min(envelopes.len())], &exchange, batch).await?; // warm up
    let sink: Arc<dyn Sink> = Arc::new(AmqpSink::new(AmqpConfig {
        name: "bus".into(),
        url: AMQP_URL.into(),
        exchange: exchange.clone(),
        batch_size: batch,
    }));
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Who goes first alternates too.
        if round % 2 == 1 {
            ours.push(ethgate_round(&store, sink.clone(), total, amqp_events).await?);
        }
        raw.push(raw_amqp(tail, &exchange, batch).await?);
        if round % 2 == 0 {
            ours.push(ethgate_round(&store, sink.clone(), total, amqp_events).await?);
        }
    }
    report(
        "msg/s",
        amqp_events,
        (raw, ours),
        "raw lapin publish + confirms:",
        "ethgate outbox -> dispatcher -> broker:",
    );
    if let Ok(conn) = Connection::connect(AMQP_URL, ConnectionProperties::default()).await
        && let Ok(ch) = conn.create_channel().await
    {
        let _ = ch
            .exchange_delete(exchange.into(), Default::default())
            .await;
    }

    println!(
        "webhooks: {webhook_events} POSTs of one envelope to a local receiver, {ROUNDS} alternating rounds…"
    );
    let (url, count) = receiver().await?;
    let tail = &envelopes[(total - webhook_events) as usize..];
    let sink: Arc<dyn Sink> = Arc::new(WebhookSink::new(WebhookConfig {
        name: "hook".into(),
        url: url.parse()?,
        secret: "bench".into(),
        batch_size: 1,
        timeout: Duration::from_secs(10),
        max_age: Duration::from_secs(3600),
        allow_private_network: true,
    })?);
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 1 {
            ours.push(ethgate_round(&store, sink.clone(), total, webhook_events).await?);
        }
        raw.push(raw_webhook(&url, tail).await?);
        if round % 2 == 0 {
            ours.push(ethgate_round(&store, sink.clone(), total, webhook_events).await?);
        }
    }
    anyhow::ensure!(
        count.load(Ordering::Relaxed) == 2 * ROUNDS as u64 * webhook_events,
        "the receiver counted a different number of POSTs"
    );
    report(
        "req/s",
        webhook_events,
        (raw, ours),
        "raw reqwest POST (unsigned):",
        "ethgate outbox -> dispatcher -> webhook:",
    );
    println!("  (ethgate signs each POST and saves its cursor at least every 50 ms)");
    Ok(())
}

/// The durable topic exchange both sides publish to, as the AMQP sink
/// declares it.
pub(crate) async fn declare_exchange(ch: &lapin::Channel, name: &str) -> anyhow::Result<()> {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    Ok(())
}
