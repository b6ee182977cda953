//! The webhook sink against a real local HTTP receiver and a real SQLite
//! outbox: in-order delivery, cursor advanced only on ack, retractions
//! delivered, every envelope with its dedupe id, signatures that verify on
//! the receiver's side, and a running dispatcher woken by new events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, B256};
use axum::Router;
use axum::body::Bytes as Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ethgate_core::{BlockRef, RawLog};
use ethgate_delivery::Dispatcher;
use ethgate_delivery::sinks::webhook::{SIGNATURE_HEADER, WebhookConfig, WebhookSink, verify};
use ethgate_store::Store;
use ethgate_store::fixtures;
use serde_json::Value;

const SECRET: &str = "receiver-shared-secret";

#[derive(Default)]
struct Receiver {
    fail_next: AtomicU32,
    attempts: AtomicU32,
    accepted: Mutex<Vec<(String, Vec<u8>)>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Body) -> StatusCode {
    r.attempts.fetch_add(1, Ordering::SeqCst);
    if r.fail_next.load(Ordering::SeqCst) > 0 {
        r.fail_next.fetch_sub(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    r.accepted.lock().expect("lock").push((sig, body.to_vec()));
    StatusCode::NO_CONTENT
}

async fn receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, r)
}

async fn record(store: &Store, expected: Option<u64>, blocks: &[BlockRef], per_block: u64) {
    let logs: Vec<RawLog> = blocks
        .iter()
        .flat_map(|b| (0..per_block).map(move |i| fixtures::log(Address::repeat_byte(1), b, i)))
        .collect();
    fixtures::record(store, "s", expected, blocks, fixtures::events(&logs, None))
        .await
        .expect("commit");
}

fn sink(url: &str, batch_size: usize) -> Arc<WebhookSink> {
    Arc::new(
        WebhookSink::new(WebhookConfig {
            name: "hook".into(),
            url: url.parse().expect("url"),
            secret: SECRET.into(),
            batch_size,
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(3600),
            allow_private_network: true,
        })
        .expect("sink"),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn delivered(r: &Receiver) -> Vec<Value> {
    let accepted = r.accepted.lock().expect("lock");
    accepted
        .iter()
        .flat_map(|(sig, body)| {
            verify(SECRET, sig, body, now(), Duration::from_secs(300)).expect("signature verifies");
            serde_json::from_slice::<Vec<Value>>(body).expect("a JSON array of envelopes")
        })
        .collect()
}

#[tokio::test]
async fn delivers_in_order_advancing_only_on_ack_with_retractions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/d.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 1).await.expect("stream");
    record(
        &store,
        None,
        &[
            fixtures::block(1, 1),
            fixtures::block(2, 2),
            fixtures::block(3, 3),
        ],
        2,
    )
    .await;
    store
        .rewind("s", Some(3), Some(fixtures::block(1, 1)))
        .await
        .expect("rewind");
    record(&store, Some(1), &[fixtures::block(2, 22)], 1).await;

    let (url, r) = receiver().await;
    r.fail_next.store(3, Ordering::SeqCst);
    let d = Dispatcher::new("s", sink(&url, 4), store.clone());
    for attempt in 0..3 {
        assert!(
            d.deliver_once().await.is_err(),
            "attempt {attempt} answered 500"
        );
        assert_eq!(
            store.sink_cursor("s", "hook").await.expect("cursor").seq,
            0,
            "no ack, no advance"
        );
    }
    let (mut acks, mut acked) = (Vec::new(), 0);
    loop {
        match d.deliver_once().await.expect("delivers") {
            0 => break,
            n => {
                acked += n as u64;
                acks.push(n);
                // Saves are batched while the sink keeps up, but the saved
                // cursor never passes what the sink acknowledged.
                let saved = store.sink_cursor("s", "hook").await.expect("cursor").seq;
                assert!(saved <= acked, "saved {saved} > acknowledged {acked}");
            }
        }
    }
    assert_eq!(acks, vec![4, 4, 3], "batches of the sink's size");
    assert_eq!(
        store.sink_cursor("s", "hook").await.expect("cursor").seq,
        11,
        "saved before the dispatcher idles"
    );

    let got = delivered(&r);
    let seqs: Vec<u64> = got.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<u64>>(), "in order, each once");
    assert!(
        got.iter()
            .all(|e| e["id"].as_str().is_some_and(|id| id.starts_with("1:0x"))),
        "dedupe id on every envelope"
    );
    let retracted: Vec<&Value> = got.iter().filter(|e| e["removed"] == true).collect();
    assert_eq!(retracted.len(), 4);
    for e in &retracted {
        assert!(
            got.iter()
                .any(|o| o["removed"] == false && o["id"] == e["id"]),
            "a retraction repeats the id it retracts"
        );
    }
    assert_eq!(got[10]["block_hash"], format!("{}", B256::repeat_byte(22)));
    let cursor = store.sink_cursor("s", "hook").await.expect("cursor");
    assert_eq!(
        (cursor.delivered, cursor.failures),
        (11, 0),
        "failures are counted by the running dispatcher only"
    );
}

#[tokio::test]
async fn a_running_dispatcher_is_woken_by_new_events_and_retries_until_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/d.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 1).await.expect("stream");
    let (url, r) = receiver().await;
    r.fail_next.store(2, Ordering::SeqCst);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Dispatcher::new("s", sink(&url, 1), store.clone()).run(stopped));
    record(&store, None, &[fixtures::block(1, 1)], 3).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while delivered(&r).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {} attempts",
            r.attempts.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        r.attempts.load(Ordering::SeqCst),
        5,
        "two refusals, then three batches of one"
    );
    let cursor = store.sink_cursor("s", "hook").await.expect("cursor");
    assert_eq!((cursor.seq, cursor.delivered, cursor.failures), (3, 3, 2));
    stop.send(true).expect("dispatcher alive");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops promptly")
        .expect("task");
}

#[tokio::test]
async fn a_receiver_on_a_private_address_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/d.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 1).await.expect("stream");
    record(&store, None, &[fixtures::block(1, 1)], 1).await;
    let (url, r) = receiver().await;
    let guarded = Arc::new(
        WebhookSink::new(WebhookConfig {
            name: "hook".into(),
            url: url.parse().expect("url"),
            secret: SECRET.into(),
            batch_size: 1,
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(3600),
            allow_private_network: false,
        })
        .expect("sink"),
    );
    let err = Dispatcher::new("s", guarded, store.clone())
        .deliver_once()
        .await
        .expect_err("refused");
    assert!(
        err.message.contains("allow_private_network") && !err.retriable,
        "{err}"
    );
    assert_eq!(r.attempts.load(Ordering::SeqCst), 0, "nothing was sent");
    assert_eq!(store.sink_cursor("s", "hook").await.expect("cursor").seq, 0);
}

#[tokio::test]
async fn a_receiver_that_never_recovers_fills_the_dead_letters_and_redelivery_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/d.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 1).await.expect("stream");
    record(&store, None, &[fixtures::block(1, 1)], 4).await;
    let (url, r) = receiver().await;
    r.fail_next.store(u32::MAX, Ordering::SeqCst);
    let hook = Arc::new(
        WebhookSink::new(WebhookConfig {
            name: "hook".into(),
            url: url.parse().expect("url"),
            secret: SECRET.into(),
            batch_size: 2,
            timeout: Duration::from_secs(5),
            max_age: Duration::from_millis(300),
            allow_private_network: true,
        })
        .expect("sink"),
    );
    let d = Dispatcher::new("s", hook.clone(), store.clone());
    let started = std::time::Instant::now();
    let mut parked = 0;
    while parked < 4 {
        match d.deliver_once().await {
            Ok(n) => parked += n,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never parked");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "retried for max_age first"
    );
    assert_eq!(
        store.sink_cursor("s", "hook").await.expect("cursor").seq,
        4,
        "the stream moved on"
    );
    let dead = store.dead_letters("hook", 10).await.expect("list");
    assert_eq!(
        dead.iter()
            .map(|d| (d.first_seq, d.last_seq))
            .collect::<Vec<_>>(),
        vec![(1, 2), (3, 4)]
    );
    assert!(dead[0].error.contains("HTTP 500"), "{}", dead[0].error);
    assert!(r.accepted.lock().expect("lock").is_empty());

    // Still failing: the dead letter stays.
    assert!(
        ethgate_delivery::dead_letters::redeliver(&store, hook.as_ref(), dead[0].id)
            .await
            .is_err()
    );
    assert_eq!(store.dead_letters("hook", 10).await.expect("list").len(), 2);
    r.fail_next.store(0, Ordering::SeqCst);
    for d in &dead {
        ethgate_delivery::dead_letters::redeliver(&store, hook.as_ref(), d.id)
            .await
            .expect("redelivered");
    }
    assert!(
        store
            .dead_letters("hook", 10)
            .await
            .expect("list")
            .is_empty()
    );
    let seqs: Vec<u64> = delivered(&r)
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4], "redelivered as parked, signed");
}
