//! One compliance test, run against every sink kind through `ethgate serve`
//! and a real destination (a local HTTP receiver, RabbitMQ, NATS
//! JetStream): the destination first refuses everything past its first
//! envelopes, and the sink's cursor must not pass what it acknowledged;
//! ethgate is killed with SIGKILL while refused and again mid-delivery; the
//! chain reorganises under it; and in the end the destination holds every
//! envelope at least once, each with its dedupe id, first seen in seq order,
//! and — retractions applied — exactly the chain's `eth_getLogs`.
//!
//! A missing broker fails the test; `scripts/services` starts them.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Amqp, Delivery, Destination, Nats, Webhook, serve, until};
use ethgate_core::EventEnvelope;
use ethgate_store::Store;
use ethgate_testkit::{Anvil, apply, assert_equals_truth, free_port};

/// Envelopes the destination accepts before it starts refusing.
const GATE: u64 = 120;

fn unique_seqs(got: &[Delivery]) -> BTreeSet<u64> {
    got.iter()
        .filter_map(|d| d.envelope["seq"].as_u64())
        .collect()
}

/// The whole scenario, the same for every destination.
async fn compliance<D: Destination>(dest: D) {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..30 {
        anvil.burst(contract, 10, i * 10).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = common::ShowLog(dir.path().to_owned());
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\npoll_interval = \"100ms\"\n\n\
             [[sinks]]\nname = \"out\"\n{}\n\n\
             [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract:#x}\"]\nsinks = [\"out\"]\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
            free_port(),
            anvil.url,
            dest.sink_toml()
        ),
    )
    .expect("config");
    let env = dest.env();
    let store = Store::connect(&format!(
        "sqlite://{}/data/ethgate.db",
        dir.path().display()
    ))
    .await
    .expect("store");
    let (store, dest) = (&store, &dest);
    let cursor = || async move {
        store
            .sink_cursor("source", "out")
            .await
            .expect("sink cursor")
    };

    // 1. The destination refuses everything past its first GATE envelopes:
    // the cursor stops at or before what was acknowledged, and stays there.
    let mut ethgate = serve(dir.path(), &env);
    until(60, "the destination to refuse twice", || async move {
        (cursor().await.failures >= 2).then_some(())
    })
    .await;
    let held = cursor().await.seq;
    assert!(
        held > 0 && held <= GATE,
        "cursor {held} passed the {GATE} envelopes the destination acknowledged"
    );
    let seen = unique_seqs(&dest.received().await);
    assert!(
        (1..=held).all(|s| seen.contains(&s)),
        "the cursor ({held}) passed envelopes the destination never got"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cursor().await.seq, held, "the cursor moved without an ack");

    // 2. SIGKILL while refused; the chain grows, ethgate comes back and
    // records it; then a reorg retracts the last three blocks' events.
    ethgate.kill().await.expect("SIGKILL");
    for i in 0..20 {
        anvil.burst(contract, 100, 1_000 + i * 100).await;
    }
    let mut ethgate = serve(dir.path(), &env);
    let head = anvil.head().await;
    until(
        60,
        "ethgate to record the chain to its head",
        || async move {
            let row = store.stream("source").await.expect("stream")?;
            (row.cursor? >= head).then_some(())
        },
    )
    .await;
    anvil.reorg(3).await;
    for i in 0..5 {
        anvil.burst(contract, 100, 5_000 + i * 100).await;
    }
    let head = anvil.head().await;
    until(60, "ethgate to follow the reorg", || async move {
        let row = store.stream("source").await.expect("stream")?;
        (row.cursor? >= head).then_some(())
    })
    .await;
    let total = store.last_seq("source").await.expect("last seq");
    assert_eq!(total, 300 + 2_000 + 300 + 500, "recorded with retractions");
    assert!(cursor().await.seq <= GATE, "still refused, still held");

    // 3. The destination recovers; SIGKILL again mid-delivery.
    dest.open_gate().await;
    until(60, "delivery to resume", || async move {
        (cursor().await.seq > GATE).then_some(())
    })
    .await;
    ethgate.kill().await.expect("SIGKILL");
    let at_kill = cursor().await.seq;
    assert!(
        at_kill < total,
        "the kill landed mid-delivery (cursor {at_kill} of {total})"
    );
    let mut ethgate = serve(dir.path(), &env);
    until(120, "every envelope to arrive", || async move {
        (cursor().await.seq == total).then_some(())
    })
    .await;
    ethgate.kill().await.expect("stop");

    // 4. What the destination holds.
    let got = dest.received().await;
    let mut first_seen: Vec<u64> = Vec::new();
    let mut by_seq: BTreeMap<u64, EventEnvelope> = BTreeMap::new();
    for d in &got {
        let env: EventEnvelope = serde_json::from_value(d.envelope.clone()).expect("an envelope");
        let seq = env.seq.expect("a delivered envelope has its seq");
        assert_eq!(
            d.dedupe_id.as_deref(),
            Some(format!("{}/source/{seq}", env.id).as_str()),
            "every delivery carries its dedupe id"
        );
        if let Some(previous) = by_seq.get(&seq) {
            assert_eq!(previous, &env, "a redelivery is the same envelope");
        } else {
            first_seen.push(seq);
            by_seq.insert(seq, env);
        }
    }
    let wrong = first_seen
        .iter()
        .zip(1..)
        .find(|(got, want)| **got != *want);
    assert!(
        wrong.is_none() && first_seen.len() as u64 == total,
        "envelopes first seen out of order or missing: {} of {total} arrived; first wrong: {wrong:?} (got, want)",
        first_seen.len()
    );
    let in_order: Vec<EventEnvelope> = by_seq.into_values().collect();
    let retracted = in_order.iter().filter(|e| e.removed).count();
    assert_eq!(retracted, 300, "the reorged blocks' events were retracted");
    let live = apply(&in_order);
    assert_equals_truth(&live, &anvil.logs(contract, 0, head).await);
    dest.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_sink_complies() {
    compliance(Webhook::start(GATE).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_sink_complies() {
    compliance(Amqp::start(GATE).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sink_complies() {
    compliance(Nats::start(GATE).await).await;
}
