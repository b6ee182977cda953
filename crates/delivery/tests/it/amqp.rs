//! The RabbitMQ sink against the real broker on 127.0.0.1:5672: in-order,
//! persistent, confirmed delivery with `message_id` = delivery id; the
//! cursor advances only on confirms; retractions are delivered; and queues
//! bound by pattern (one event name, one address) receive exactly what their
//! binding selects. A missing broker fails the test (`scripts/services`
//! starts it).

use std::sync::Arc;

use alloy_primitives::Address;
use ethgate_core::{Decoded, RawLog};
use ethgate_delivery::Dispatcher;
use ethgate_delivery::sinks::amqp::{AmqpConfig, AmqpSink};
use ethgate_store::fixtures;
use ethgate_store::{NewEvent, RangeCommit, Store};
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::Value;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn broker() -> Channel {
    match Connection::connect(URL, ConnectionProperties::default()).await {
        Ok(conn) => {
            let ch = conn.create_channel().await.expect("channel");
            // Keep the connection alive for the test's duration.
            std::mem::forget(conn);
            ch
        }
        Err(e) => panic!(
            "RabbitMQ is required but unreachable at {URL}: {e}; start it with `scripts/services rabbitmq`"
        ),
    }
}

async fn queue(ch: &Channel, exchange: &str, pattern: &str) -> String {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    let name = q.name().to_string();
    ch.queue_bind(
        name.clone().into(),
        exchange.into(),
        pattern.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    name
}

async fn drain(ch: &Channel, queue: &str) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
    {
        let d = m.delivery;
        let id = d
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        out.push((
            d.routing_key.to_string(),
            id,
            serde_json::from_slice(&d.data).expect("JSON body"),
        ));
    }
    out
}

#[tokio::test]
async fn confirmed_in_order_delivery_routed_by_event_and_address() {
    let ch = broker().await;
    let exchange = format!("ethgate-test-{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/a.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 7).await.expect("stream");
    let a = Address::repeat_byte(0xaa);
    let b = Address::repeat_byte(0xbb);
    let blocks = [fixtures::block(1, 1), fixtures::block(2, 2)];
    let logs: Vec<RawLog> = blocks
        .iter()
        .flat_map(|blk| (0..4).map(move |i| fixtures::log(if i % 2 == 0 { a } else { b }, blk, i)))
        .collect();
    let events = logs
        .iter()
        .map(|l| NewEvent {
            log: l,
            timestamp: l.block(),
            decoded: Some(Decoded {
                name: if l.index() < 2 {
                    "Transfer"
                } else {
                    "Approval"
                },
                signature: "X()",
                args: serde_json::json!({}),
            }),
        })
        .collect();
    store
        .commit_range(&RangeCommit {
            stream: "s".into(),
            expected_cursor: None,
            events,
            blocks: blocks.to_vec(),
            cursor: blocks[1],
            keep_window: 100,
            children: Vec::new(),
        })
        .await
        .expect("commit");
    store
        .rewind("s", Some(2), Some(blocks[0]))
        .await
        .expect("rewind");

    // The sink declares the exchange; queues are bound afterwards, as consumers would.
    let sink = Arc::new(AmqpSink::new(AmqpConfig {
        name: "bus".into(),
        url: URL.into(),
        exchange: exchange.clone(),
        batch_size: 3,
    }));
    let down = Arc::new(AmqpSink::new(AmqpConfig {
        name: "bus".into(),
        url: "amqp://guest:guest@127.0.0.1:1/%2f".into(),
        exchange: exchange.clone(),
        batch_size: 3,
    }));
    assert!(
        Dispatcher::new("s", down, store.clone())
            .deliver_once()
            .await
            .is_err(),
        "an unreachable broker fails the batch"
    );
    assert_eq!(
        store.sink_cursor("s", "bus").await.expect("cursor").seq,
        0,
        "nothing confirmed, nothing advanced"
    );
    let d = Dispatcher::new("s", sink.clone(), store.clone());
    ch.exchange_declare(
        exchange.clone().into(),
        lapin::ExchangeKind::Topic,
        lapin::options::ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let all = queue(&ch, &exchange, "event.#").await;
    let transfers = queue(&ch, &exchange, "event.*.*.Transfer").await;
    let from_a = queue(&ch, &exchange, &format!("event.*.{a:#x}.*")).await;
    while d.deliver_once().await.expect("delivers") > 0 {}
    assert_eq!(store.sink_cursor("s", "bus").await.expect("cursor").seq, 12);

    let got = drain(&ch, &all).await;
    let seqs: Vec<u64> = got
        .iter()
        .filter_map(|(_, _, e)| e["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<u64>>(),
        "every envelope, in order"
    );
    for (key, id, e) in &got {
        assert_eq!(
            id,
            &format!(
                "{}/{}/{}",
                e["id"].as_str().expect("id"),
                e["stream"].as_str().expect("stream"),
                e["seq"]
            ),
            "message_id is the delivery id"
        );
        assert_eq!(
            key,
            &format!(
                "event.7.{}.{}",
                e["address"].as_str().expect("address"),
                e["event"].as_str().expect("event")
            )
        );
    }
    assert_eq!(
        got.iter().filter(|(_, _, e)| e["removed"] == true).count(),
        4,
        "the retractions of block 2"
    );

    let t = drain(&ch, &transfers).await;
    let want_t: Vec<u64> = got
        .iter()
        .filter(|(_, _, e)| e["event"] == "Transfer")
        .filter_map(|(_, _, e)| e["seq"].as_u64())
        .collect();
    assert_eq!(
        t.iter()
            .filter_map(|(_, _, e)| e["seq"].as_u64())
            .collect::<Vec<_>>(),
        want_t
    );
    let fa = drain(&ch, &from_a).await;
    let want_a: Vec<u64> = got
        .iter()
        .filter(|(_, _, e)| e["address"] == format!("{a:#x}"))
        .filter_map(|(_, _, e)| e["seq"].as_u64())
        .collect();
    assert_eq!(
        fa.iter()
            .filter_map(|(_, _, e)| e["seq"].as_u64())
            .collect::<Vec<_>>(),
        want_a
    );
    assert!(!want_t.is_empty() && !want_a.is_empty() && want_a.len() < seqs.len());
    ch.exchange_delete(exchange.into(), Default::default())
        .await
        .expect("cleanup");
}
