//! Shared set-up for the syncer's tests: a stream on EventSource, a pool,
//! a store in a temp dir, and the consumer's view of the outbox.

#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use alloy_json_abi::Event;
use alloy_primitives::Address;
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_core::{Confirmations, StreamSpec};
use ethgate_events::{Step, Syncer, SyncerConfig};
use ethgate_store::Store;

pub const TRANSFER: &str =
    "event Transfer(address indexed from, address indexed to, uint256 value)";
pub const NOTE: &str = "event Note(uint256 indexed id, address indexed author, string text, int256 delta, bytes32 tag, bool flag)";

pub fn spec(address: Address, confirmations: Confirmations) -> StreamSpec {
    StreamSpec {
        name: "source".into(),
        chain: "anvil".into(),
        chain_id: 31337,
        addresses: vec![address],
        events: [TRANSFER, NOTE]
            .iter()
            .map(|s| Event::parse(s).expect("event"))
            .collect(),
        from_block: 0,
        confirmations,
        factory: None,
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
            chain_id: None,
        })
        .expect("pool"),
    )
}

pub async fn store(dir: &tempfile::TempDir) -> Store {
    Store::connect(&format!("sqlite://{}/ethgate.db", dir.path().display()))
        .await
        .expect("store")
}

pub fn config(initial: u64, max: u64) -> SyncerConfig {
    SyncerConfig {
        initial_range: initial,
        max_range: max,
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    }
}

/// A syncer of the EventSource stream at `contract`, `depth` blocks deep,
/// reading through `urls` (10 s timeout).
pub async fn syncer(
    contract: Address,
    depth: u64,
    urls: &[&str],
    store: &Store,
    cfg: SyncerConfig,
) -> Syncer {
    Syncer::new(
        spec(contract, Confirmations::Depth(depth)),
        pool(urls, Duration::from_secs(10)),
        store.clone(),
        cfg,
    )
    .await
    .expect("syncer")
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

/// Every envelope of the test stream, in seq order.
pub async fn outbox(store: &Store) -> Vec<ethgate_core::EventEnvelope> {
    ethgate_testkit::outbox(store, "source").await
}

pub use ethgate_testkit::{apply, assert_equals_truth};
