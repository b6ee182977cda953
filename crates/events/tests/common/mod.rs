//! Shared set-up for the syncer's tests: a stream on EventSource, a pool,
//! a store in a temp dir, and the consumer's view of the outbox.

#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use alloy_json_abi::Event;
use alloy_primitives::Address;
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_core::{Confirmations, EventEnvelope, RawLog, StreamSpec};
use ethgate_events::{Step, Syncer, SyncerConfig};
use ethgate_store::Store;

pub const TRANSFER: &str = "event Transfer(address indexed from, address indexed to, uint256 value)";
pub const NOTE: &str = "event Note(uint256 indexed id, address indexed author, string text, int256 delta, bytes32 tag, bool flag)";

pub fn spec(address: Address, confirmations: Confirmations) -> StreamSpec {
    StreamSpec {
        name: "source".into(),
        chain: "anvil".into(),
        chain_id: 31337,
        addresses: vec![address],
        events: [TRANSFER, NOTE].iter().map(|s| Event::parse(s).expect("event")).collect(),
        from_block: 0,
        confirmations,
    }
}

pub fn pool(urls: &[&str], timeout: Duration) -> Arc<EndpointPool> {
    Arc::new(
        EndpointPool::new(PoolConfig {
            chain: "anvil".into(),
            urls: urls.iter().map(|u| u.to_string()).collect(),
            request_timeout: timeout,
            max_rounds: 4,
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
        })
        .expect("pool"),
    )
}

pub async fn store(dir: &tempfile::TempDir) -> Store {
    Store::connect(&format!("sqlite://{}/ethgate.db", dir.path().display())).await.expect("store")
}

pub fn config(initial: u64, max: u64) -> SyncerConfig {
    SyncerConfig { initial_range: initial, max_range: max, poll_interval: Duration::from_millis(50), ..Default::default() }
}

/// Steps until the syncer is idle at the chain's head.
pub async fn sync_to_head(s: &mut Syncer) {
    for _ in 0..100_000 {
        match s.step().await.expect("step") {
            Step::Idle { .. } => return,
            _ => continue,
        }
    }
    panic!("syncer never caught up");
}

/// Every envelope of the stream, in seq order.
pub async fn outbox(store: &Store) -> Vec<EventEnvelope> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after("source", after, 1000).await.expect("read");
        let Some(last) = page.last() else { return out };
        after = last.seq;
        out.extend(page.iter().map(|e| serde_json::from_str::<EventEnvelope>(&e.json()).expect("envelope")));
    }
}

/// What a consumer that applies retractions holds: live events in order.
pub fn apply(envelopes: &[EventEnvelope]) -> Vec<EventEnvelope> {
    let mut live: Vec<EventEnvelope> = Vec::new();
    for e in envelopes {
        if e.removed {
            let before = live.len();
            live.retain(|l| l.id != e.id);
            assert_eq!(before - 1, live.len(), "retraction of an event not held: {}", e.id);
        } else {
            assert!(live.iter().all(|l| l.id != e.id), "event delivered twice while live: {}", e.id);
            live.push(e.clone());
        }
    }
    live
}

/// Asserts the consumer's view equals the canonical logs, in order.
pub fn assert_equals_truth(live: &[EventEnvelope], truth: &[RawLog]) {
    let got: Vec<(u64, u64, String)> = live.iter().map(|e| (e.block_number, e.log_index, format!("{}", e.block_hash))).collect();
    let want: Vec<(u64, u64, String)> = truth.iter().map(|l| (l.block(), l.index(), format!("{}", l.block_hash))).collect();
    assert_eq!(got.len(), want.len(), "event count differs from eth_getLogs");
    assert_eq!(got, want, "events differ from eth_getLogs");
    for (e, l) in live.iter().zip(truth) {
        assert_eq!(e.topics, l.topics);
        assert_eq!(e.data, l.data);
        assert_eq!(e.tx_hash, l.transaction_hash);
    }
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, got, "not in (block, log index) order");
    let ids: HashSet<&str> = live.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), live.len(), "duplicate ids");
}
