//! Destinations that go away, through `ethgate serve`: RabbitMQ stopped
//! (`rabbitmqctl stop_app`) for more than 20 s mid-stream loses nothing —
//! every envelope arrives after `start_app`, in order, including those the
//! broker held on disk across the stop; and a webhook receiver that never
//! recovers fills the dead-letter list, which the HTTP API shows and
//! redelivers once the receiver is back.
//!
//! The RabbitMQ test stops the machine's broker, so it lives alone in this
//! binary with tests that do not use it. Under `CI` a missing broker or
//! `rabbitmqctl` fails the test.

use crate::common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{AMQP_URL, Destination, Webhook, drain, exchange, rabbitmq, serve, unique, until};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, free_port};
use lapin::options::{ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;

fn config(dir: &std::path::Path, port: u16, rpc: &str, sink: &str, contract: &str) {
    std::fs::write(
        dir.join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{rpc}\"]\npoll_interval = \"100ms\"\n\n\
             [[sinks]]\nname = \"out\"\n{sink}\n\n\
             [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract}\"]\nsinks = [\"out\"]\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n"
        ),
    )
    .expect("config");
}

async fn open_store(dir: &std::path::Path) -> Store {
    Store::connect(&format!("sqlite://{}/data/ethgate.db", dir.display()))
        .await
        .expect("store")
}

/// Runs `rabbitmqctl <action>`; whether it succeeded.
fn rabbitmqctl(action: &str) -> bool {
    std::process::Command::new("rabbitmqctl")
        .arg(action)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the broker again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        rabbitmqctl("start_app");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_stopped_for_twenty_seconds_loses_nothing() {
    // Nothing else in this binary may use the broker while it is stopped.
    let _broker = common::broker_to_stop().await;
    let (conn, ch) = rabbitmq().await;
    assert!(
        rabbitmqctl("status"),
        "rabbitmqctl is required to stop and start the broker"
    );
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    let ex = unique("ethgate-outage-");
    exchange(&ch, &ex).await;
    // A durable queue: it and its persistent messages survive the stop.
    let queue = format!("{ex}-all");
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue");
    ch.queue_bind(
        queue.as_str().into(),
        ex.as_str().into(),
        "event.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    drop(ch);
    drop(conn);

    let dir = tempfile::tempdir().expect("tempdir");
    let _log = common::ShowLog(dir.path().to_owned());
    let sink =
        format!("kind = \"amqp\"\nurl_env = \"AMQP_URL\"\nexchange = \"{ex}\"\nbatch_size = 20");
    config(
        dir.path(),
        free_port(),
        &anvil.url,
        &sink,
        &format!("{contract:#x}"),
    );
    let env = [("AMQP_URL", AMQP_URL.to_owned())];
    let mut ethgate = serve(dir.path(), &env);
    let store = open_store(dir.path()).await;
    let store = &store;
    let cursor = || async move { store.sink_cursor("source", "out").await.expect("cursor") };
    for i in 0..10 {
        anvil.burst(contract, 20, i * 20).await;
    }
    until(
        60,
        "the first 200 envelopes to be confirmed",
        || async move { (cursor().await.seq == 200).then_some(()) },
    )
    .await;

    let _restart = Restart;
    assert!(rabbitmqctl("stop_app"), "rabbitmqctl stop_app");
    let stopped = Instant::now();
    for i in 10..20 {
        anvil.burst(contract, 20, i * 20).await;
    }
    let head = anvil.head().await;
    until(
        60,
        "ethgate to record the chain while the broker is down",
        || async move {
            let row = store.stream("source").await.expect("stream")?;
            (row.cursor? >= head).then_some(())
        },
    )
    .await;
    let failures = cursor().await.failures;
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed())).await;
    let during = cursor().await;
    assert_eq!(
        during.seq, 200,
        "nothing acknowledged while the broker was down"
    );
    assert!(during.failures > failures, "ethgate kept retrying");
    assert!(rabbitmqctl("start_app"), "rabbitmqctl start_app");
    let outage = stopped.elapsed();

    until(
        90,
        "delivery to resume after the broker returned",
        || async move { (cursor().await.seq == 400).then_some(()) },
    )
    .await;
    ethgate.kill().await.expect("stop");
    let (_conn, ch) = rabbitmq().await;
    let got = drain(&ch, &queue).await;
    let mut first_seen = Vec::new();
    let mut seen = BTreeSet::new();
    for (_, d) in &got {
        let seq = d.envelope["seq"].as_u64().expect("seq");
        if seen.insert(seq) {
            first_seen.push(seq);
        }
    }
    assert_eq!(
        (first_seen.len(), first_seen.first(), first_seen.last()),
        (400, Some(&1), Some(&400)),
        "every envelope arrived once the broker was back (outage {outage:?})"
    );
    assert!(
        first_seen.windows(2).all(|w| w[0] < w[1]),
        "first seen in seq order"
    );
    ch.queue_delete(queue.as_str().into(), Default::default())
        .await
        .expect("cleanup");
    ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_never_recovers_fills_dead_letters_the_api_redelivers() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..3 {
        anvil.burst(contract, 4, i * 4).await;
    }
    let hook = Webhook::start(0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = common::ShowLog(dir.path().to_owned());
    let port = free_port();
    let sink = hook
        .sink_toml()
        .replace("batch_size = 10", "batch_size = 4\nmax_age = \"1s\"");
    config(
        dir.path(),
        port,
        &anvil.url,
        &sink,
        &format!("{contract:#x}"),
    );
    let token = |scope: &str| common::token(dir.path(), &hook.env(), scope);
    let (reader, admin) = (token("events:read"), token("admin"));
    let mut ethgate = serve(dir.path(), &hook.env());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let get = |path: &str, token: &str| http.get(format!("{base}{path}")).bearer_auth(token).send();
    let (get, base, http, reader_ref) = (&get, &base, &http, &reader);

    // Every batch is refused until it is older than max_age, then parked.
    let parked = until(60, "three batches to be parked", || async move {
        let r = get("/v1/sinks/out/dead-letters", reader_ref).await.ok()?;
        let body: Value = r.json().await.ok()?;
        let list = body["dead_letters"].as_array()?.clone();
        (list.len() == 3).then_some(list)
    })
    .await;
    let ranges: Vec<(u64, u64)> = parked
        .iter()
        .map(|d| {
            (
                d["first_seq"].as_u64().unwrap_or(0),
                d["last_seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![(1, 4), (5, 8), (9, 12)],
        "parked batch by batch"
    );
    assert!(
        parked
            .iter()
            .all(|d| d["error"].as_str().is_some_and(|e| e.contains("HTTP 500"))),
        "each names why: {parked:?}"
    );
    let sinks: Value = get("/v1/sinks", &reader)
        .await
        .expect("sinks")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (
            sinks["sinks"][0]["cursor"].clone(),
            sinks["sinks"][0]["dead_letters"].clone()
        ),
        (Value::from(12), Value::from(3)),
        "the stream moved on, counting what it parked"
    );
    assert!(hook.received().await.is_empty());

    // Redelivery needs admin; while the receiver still fails it is a 502
    // and the dead letter stays.
    let redeliver = |id: u64, token: String| async move {
        http.post(format!("{base}/v1/sinks/out/dead-letters/{id}/redeliver"))
            .bearer_auth(token)
            .send()
            .await
            .expect("redeliver")
            .status()
            .as_u16()
    };
    let first = parked[0]["id"].as_u64().expect("id");
    assert_eq!(redeliver(first, reader.clone()).await, 403);
    assert_eq!(redeliver(first, admin.clone()).await, 502);
    hook.open_gate().await;
    for d in &parked {
        assert_eq!(
            redeliver(d["id"].as_u64().expect("id"), admin.clone()).await,
            200
        );
    }
    let seqs: Vec<u64> = hook
        .received()
        .await
        .iter()
        .filter_map(|d| d.envelope["seq"].as_u64())
        .collect();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<u64>>(),
        "redelivered, signed, in order"
    );
    let left: Value = get("/v1/sinks/out/dead-letters", &reader)
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(left["dead_letters"].as_array().map(Vec::len), Some(0));
    ethgate.kill().await.expect("stop");
}
