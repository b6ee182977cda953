//! The syncer against a real anvil: exactness over ≥ 10,000 blocks,
//! decoding, restart, and adaptive ranges through a fault-injecting proxy.

use crate::common;

use std::time::Duration;

use common::*;
use ethgate_core::Confirmations;
use ethgate_events::{Step, Syncer, SyncerConfig};
use ethgate_testkit::{Anvil, Fault, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_over_ten_thousand_blocks_lands_once_in_order() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    let mut value = 0;
    for round in 0..42u64 {
        anvil.burst(contract, 1 + round % 9, value).await;
        value += 1 + round % 9;
        if round % 5 == 0 {
            anvil
                .note(contract, &format!("round {round}"), -(round as i64))
                .await;
        }
        anvil.mine(240).await;
    }
    let head = anvil.head().await;
    assert!(head >= 10_000, "chain spans {head} blocks");

    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = syncer(contract, 0, &[&anvil.url], &store, config(100, 2_000)).await;
    sync_to_head(&mut s).await;

    let all = outbox(&store).await;
    assert!(
        all.iter().all(|e| !e.removed),
        "no reorg happened, so no retraction"
    );
    let truth = anvil.logs(contract, 0, head).await;
    assert!(truth.len() > 200);
    assert_equals_truth(&all, &truth);
    let seqs: Vec<u64> = all.iter().filter_map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq strictly increasing"
    );

    let transfer = all
        .iter()
        .find(|e| e.event.as_deref() == Some("Transfer"))
        .expect("a transfer");
    assert_eq!(
        transfer.signature.as_deref(),
        Some("Transfer(address,address,uint256)")
    );
    assert_eq!(transfer.args["value"], 0);
    assert!(transfer.block_timestamp > 1_600_000_000);
    let note = all
        .iter()
        .find(|e| e.event.as_deref() == Some("Note"))
        .expect("a note");
    assert_eq!(note.args["text"], "round 0");
    assert_eq!(note.args["delta"], 0);
    assert_eq!(note.args["id"], 1);

    // A restart resumes at the cursor and records nothing twice.
    drop(s);
    let mut again = syncer(contract, 0, &[&anvil.url], &store, config(100, 2_000)).await;
    assert!(matches!(
        again.step().await.expect("step"),
        Step::Idle { .. }
    ));
    anvil.burst(contract, 3, 1_000).await;
    sync_to_head(&mut again).await;
    let after = outbox(&store).await;
    assert_equals_truth(&after, &anvil.logs(contract, 0, anvil.head().await).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_range_shrinks_on_too_many_results_and_grows_back() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..30 {
        anvil.burst(contract, 2, i * 2).await;
        anvil.mine(9).await;
    }
    let proxy = Proxy::start(&anvil.url).await;
    proxy.set(Fault::RangeCap(8));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = syncer(
        contract,
        0,
        &[&proxy.url],
        &store, // One query per range, so the proxy sees exactly the sizer's spans.
        SyncerConfig {
            parallel_queries: 1,
            ..config(64, 64)
        },
    )
    .await;
    // The first half of the chain under the cap.
    let half = anvil.head().await / 2;
    s.sync_until(half, |_, _, _| {}).await.expect("sync");
    let spans = proxy.log_spans();
    assert!(
        spans
            .first()
            .is_some_and(|(span, refused)| *span == 64 && *refused),
        "{spans:?}"
    );
    assert!(
        spans
            .iter()
            .filter(|(_, r)| !*r)
            .all(|(span, _)| *span <= 8),
        "accepted spans stay under the cap: {spans:?}"
    );

    proxy.set(Fault::Pass);
    s.set_stop_at(None);
    sync_to_head(&mut s).await;
    let spans = proxy.log_spans();
    let grown = spans
        .iter()
        .filter(|(_, r)| !*r)
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(0);
    assert!(
        grown > 8,
        "span grew back after the cap was lifted: {spans:?}"
    );
    assert_equals_truth(
        &outbox(&store).await,
        &anvil.logs(contract, 0, anvil.head().await).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_contracts_or_events_change_after_recording_is_refused() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    anvil.burst(contract, 2, 0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let pool = pool(&[&anvil.url], Duration::from_secs(10));
    let mut s = Syncer::new(
        spec(contract, Confirmations::Depth(0)),
        pool.clone(),
        store.clone(),
        config(100, 100),
    )
    .await
    .expect("syncer");
    sync_to_head(&mut s).await;
    // A different confirmation depth is fine: no history goes unread.
    Syncer::new(
        spec(contract, Confirmations::Depth(3)),
        pool.clone(),
        store.clone(),
        config(100, 100),
    )
    .await
    .expect("same contracts, other depth");
    // Removing a contract is refused: its events so far would stay.
    let other = spec(
        alloy_primitives::Address::repeat_byte(7),
        Confirmations::Depth(0),
    );
    let err = Syncer::new(other, pool.clone(), store.clone(), config(100, 100))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("new name"), "{err}");
    let mut fewer_events = spec(contract, Confirmations::Depth(0));
    fewer_events.events.pop();
    assert!(
        Syncer::new(fewer_events, pool.clone(), store.clone(), config(100, 100))
            .await
            .is_err(),
        "events changed"
    );
    let mut later = spec(contract, Confirmations::Depth(0));
    later.from_block = 1;
    assert!(
        Syncer::new(later, pool, store, config(100, 100))
            .await
            .is_err(),
        "from_block changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_range_hint_is_followed_end_to_end() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..12 {
        anvil.burst(contract, 2, i * 2).await;
        anvil.mine(4).await;
    }
    let proxy = Proxy::start(&anvil.url).await;
    proxy.set(Fault::RangeHint(7));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = syncer(
        contract,
        0,
        &[&proxy.url],
        &store,
        SyncerConfig {
            parallel_queries: 1,
            ..config(64, 64)
        },
    )
    .await;
    sync_to_head(&mut s).await;
    let spans = proxy.log_spans();
    // The first query (the whole chain) is refused with a hint of 7
    // blocks, and the next is exactly the hinted range, not a halving.
    assert!(
        spans
            .first()
            .is_some_and(|(span, refused)| *span > 14 && *refused),
        "{spans:?}"
    );
    assert_eq!(spans.get(1), Some(&(7, false)), "{spans:?}");
    assert!(
        spans.iter().all(|(span, refused)| *refused || *span <= 7),
        "{spans:?}"
    );
    assert_equals_truth(
        &outbox(&store).await,
        &anvil.logs(contract, 0, anvil.head().await).await,
    );
}
