//! Streams following the tip through their chain's shared follower: each
//! stream still ends equal to `eth_getLogs` for its own filter through
//! reorgs and late joins, and the chain is read once per range, not once
//! per stream.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_json_abi::Event;
use alloy_primitives::{Address, B256};
use common::*;
use ethgate_core::{Confirmations, RawLog, StreamSpec};
use ethgate_events::{Follower, SyncState, Syncer};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, Proxy};
use tokio::sync::watch;

/// A stream named `name` on `addresses`, recording `events`.
fn stream(name: &str, addresses: &[Address], events: &[&str]) -> StreamSpec {
    StreamSpec {
        name: name.into(),
        chain: "anvil".into(),
        chain_id: 31337,
        addresses: addresses.to_vec(),
        events: events
            .iter()
            .map(|e| Event::parse(e).expect("event"))
            .collect(),
        from_block: 0,
        confirmations: Confirmations::Depth(0),
        factory: None,
    }
}

/// Runs `spec`'s syncer with `follower` until `stop` turns true.
async fn start(
    spec: StreamSpec,
    url: &str,
    store: &Store,
    follower: &Arc<Follower>,
    stop: &watch::Receiver<bool>,
) {
    let s = Syncer::new(
        spec,
        pool(&[url], Duration::from_secs(10)),
        store.clone(),
        config(10, 1_000),
    )
    .await
    .expect("syncer")
    .with_follower(follower.clone());
    tokio::spawn(s.run(SyncState::default(), stop.clone()));
}

/// Waits until every named stream's cursor is at `head`.
async fn caught_up(store: &Store, names: &[&str], head: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        while store
            .stream(name)
            .await
            .expect("read")
            .and_then(|r| r.cursor)
            != Some(head)
        {
            assert!(
                Instant::now() < deadline,
                "stream {name} never reached block {head}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The canonical logs of `addresses` in `[0, head]` whose topic0 is one
/// of `topics` (any when empty), in block and log order.
async fn truth(anvil: &Anvil, addresses: &[Address], topics: &[B256], head: u64) -> Vec<RawLog> {
    let mut all = Vec::new();
    for a in addresses {
        all.extend(anvil.logs(*a, 0, head).await);
    }
    all.retain(|l| topics.is_empty() || l.topics.first().is_some_and(|t| topics.contains(t)));
    all.sort_by_key(|l| (l.block(), l.index()));
    all
}

fn selector(event: &str) -> B256 {
    Event::parse(event).expect("event").selector()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stream_equals_the_chain_through_reorgs_and_late_joins() {
    let anvil = Anvil::start(&[]).await;
    let a = anvil.deploy_event_source().await;
    let b = anvil.deploy_event_source().await;
    for i in 0..4 {
        anvil.burst(a, 2, i * 2).await;
        anvil.note(b, "before", i as i64).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let follower = Follower::new(
        "anvil",
        pool(&[&anvil.url], Duration::from_secs(10)),
        config(10, 1_000),
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(follower.clone().run(stopped.clone()));
    let streams = [
        ("only-a", vec![a], vec![TRANSFER, NOTE]),
        ("only-b", vec![b], vec![TRANSFER, NOTE]),
        ("both", vec![a, b], vec![TRANSFER, NOTE]),
        ("transfers", vec![a, b], vec![TRANSFER]),
    ];
    for (name, addresses, events) in &streams[..3] {
        start(
            stream(name, addresses, events),
            &anvil.url,
            &store,
            &follower,
            &stopped,
        )
        .await;
    }
    caught_up(&store, &["only-a", "only-b", "both"], anvil.head().await).await;
    for round in 0..6u64 {
        anvil.burst(a, 3, 100 + round * 3).await;
        anvil.note(b, "tail", round as i64).await;
        anvil.note(a, "a's note", -(round as i64)).await;
        if round == 1 {
            // A stream that starts late backfills alone, then joins.
            let (name, addresses, events) = &streams[3];
            start(
                stream(name, addresses, events),
                &anvil.url,
                &store,
                &follower,
                &stopped,
            )
            .await;
        }
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            anvil.reorg(2).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    anvil.burst(b, 2, 900).await;
    let head = anvil.head().await;
    let names: Vec<&str> = streams.iter().map(|s| s.0).collect();
    caught_up(&store, &names, head).await;
    let mut retracted = 0;
    for (name, addresses, events) in &streams {
        let all = ethgate_testkit::outbox(&store, name).await;
        retracted += all.iter().filter(|e| e.removed).count();
        let topics: Vec<B256> = events.iter().map(|e| selector(e)).collect();
        let want = truth(&anvil, addresses, &topics, head).await;
        assert!(!want.is_empty());
        assert_equals_truth(&apply(&all), &want);
    }
    assert!(
        retracted > 0,
        "the reorgs must retract recorded events for this test to mean anything"
    );
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_streams_read_the_chain_once_per_range() {
    let anvil = Anvil::start(&[]).await;
    let busy = anvil.deploy_event_source().await;
    let proxy = Proxy::start(&anvil.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let follower = Follower::new(
        "anvil",
        pool(&[&proxy.url], Duration::from_secs(10)),
        config(10, 1_000),
    );
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(follower.clone().run(stopped.clone()));
    let names: Vec<String> = (0..20).map(|i| format!("s{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let address = if i == 0 {
            busy
        } else {
            Address::with_last_byte(i as u8)
        };
        start(
            stream(name, &[address], &[TRANSFER]),
            &proxy.url,
            &store,
            &follower,
            &stopped,
        )
        .await;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    caught_up(&store, &refs, anvil.head().await).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while follower.members() < names.len() {
        assert!(
            Instant::now() < deadline,
            "streams never joined the follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = proxy.calls("eth_getLogs");
    let blocks = 20;
    for i in 0..blocks {
        anvil.burst(busy, 2, i * 2).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let head = anvil.head().await;
    caught_up(&store, &refs, head).await;
    let reads = proxy.calls("eth_getLogs") - before;
    // Alone, each of the 20 streams reads every new block's logs itself.
    assert!(
        reads <= blocks + 2,
        "{reads} eth_getLogs calls for {blocks} new blocks followed by {} streams",
        names.len()
    );
    let all = ethgate_testkit::outbox(&store, "s0").await;
    assert_equals_truth(&apply(&all), &anvil.logs(busy, 0, head).await);
    let _ = stop.send(true);
}
