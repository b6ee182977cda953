//! The NATS JetStream sink against the real server on 127.0.0.1:4222:
//! acked, in-order publication on per-event subjects with `Nats-Msg-Id` =
//! delivery id, so a redelivered batch (after a rewind, as after a crash)
//! is deduplicated by JetStream. A missing server fails the test
//! (`scripts/services` starts it).

use std::sync::Arc;

use alloy_primitives::Address;
use async_nats::jetstream;
use ethgate_core::{Decoded, RawLog};
use ethgate_delivery::Dispatcher;
use ethgate_delivery::sinks::nats::{NatsConfig, NatsSink};
use ethgate_store::Store;
use ethgate_store::fixtures;
use serde_json::Value;

const URL: &str = "nats://127.0.0.1:4222";

async fn server() -> async_nats::Client {
    match async_nats::connect(URL).await {
        Ok(c) => c,
        Err(e) => panic!(
            "NATS is required but unreachable at {URL}: {e}; start it with `scripts/services nats`"
        ),
    }
}

#[tokio::test]
async fn acked_in_order_and_deduplicated_by_message_id() {
    let client = server().await;
    let tag = format!("egtest{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/n.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 5).await.expect("stream");
    let block = fixtures::block(1, 1);
    let logs: Vec<RawLog> = (0..5)
        .map(|i| fixtures::log(Address::repeat_byte(0xcc), &block, i))
        .collect();
    let decoded = Decoded {
        name: "Transfer",
        signature: "Transfer()",
        args: serde_json::json!({}),
    };
    let events = fixtures::events(&logs, Some(&decoded));
    fixtures::record(&store, "s", None, &[block], events)
        .await
        .expect("commit");
    let sink = Arc::new(NatsSink::new(NatsConfig {
        name: "js".into(),
        url: URL.into(),
        stream: tag.to_uppercase(),
        subject_prefix: tag.clone(),
        batch_size: 2,
    }));
    let d = Dispatcher::new("s", sink, store.clone());
    while d.deliver_once().await.expect("delivers") > 0 {}
    assert_eq!(store.sink_cursor("s", "js").await.expect("cursor").seq, 5);
    // A redelivery of everything, as after a crash before the cursor moved.
    store.rewind_sink("s", "js", 0).await.expect("rewind");
    while d.deliver_once().await.expect("redelivers") > 0 {}

    let js = jetstream::new(client);
    let mut stream = js
        .get_stream(tag.to_uppercase())
        .await
        .expect("stream exists");
    assert_eq!(
        stream.info().await.expect("info").state.messages,
        5,
        "duplicates dropped by Nats-Msg-Id"
    );
    for seq in 1..=5u64 {
        let m = stream.get_raw_message(seq).await.expect("message");
        let env: Value = serde_json::from_slice(&m.payload).expect("JSON");
        assert_eq!(env["seq"], seq, "in order");
        assert_eq!(
            m.subject.as_str(),
            format!("{tag}.event.5.{:#x}.Transfer", Address::repeat_byte(0xcc))
        );
        let id = m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_owned());
        assert_eq!(
            id,
            Some(format!("{}/s/{seq}", env["id"].as_str().expect("id"))),
            "Nats-Msg-Id is the delivery id"
        );
    }
    js.delete_stream(tag.to_uppercase()).await.expect("cleanup");
}
