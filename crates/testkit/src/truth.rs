//! The consumer's view of a stream, and its comparison with the chain.

use std::collections::HashSet;

use ethgate_core::{EventEnvelope, RawLog};
use ethgate_store::Store;

/// Every envelope of the stream, in seq order.
pub async fn outbox(store: &Store, stream: &str) -> Vec<EventEnvelope> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_after(stream, after, 1000).await.expect("read");
        let Some(last) = page.last() else { return out };
        after = last.seq;
        out.extend(
            page.iter()
                .map(|e| serde_json::from_str::<EventEnvelope>(&e.json()).expect("envelope")),
        );
    }
}

/// What a consumer that applies retractions holds: live events in order.
pub fn apply(envelopes: &[EventEnvelope]) -> Vec<EventEnvelope> {
    let mut live: Vec<EventEnvelope> = Vec::new();
    for e in envelopes {
        if e.removed {
            let before = live.len();
            live.retain(|l| l.id != e.id);
            assert_eq!(
                before - 1,
                live.len(),
                "retraction of an event not held: {}",
                e.id
            );
        } else {
            assert!(
                live.iter().all(|l| l.id != e.id),
                "event delivered twice while live: {}",
                e.id
            );
            live.push(e.clone());
        }
    }
    live
}

/// Asserts the consumer's view equals the canonical logs, in order.
pub fn assert_equals_truth(live: &[EventEnvelope], truth: &[RawLog]) {
    let got: Vec<(u64, u64, String)> = live
        .iter()
        .map(|e| (e.block_number, e.log_index, format!("{}", e.block_hash)))
        .collect();
    let want: Vec<(u64, u64, String)> = truth
        .iter()
        .map(|l| (l.block(), l.index(), format!("{}", l.block_hash)))
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "event count differs from eth_getLogs"
    );
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
