//! Endpoint failover through real proxies in front of anvil: an endpoint
//! that is down, answers 500, answers 429 or times out is failed over, and
//! the stream still equals the chain. Logs from a block that is not the
//! canonical one are fetched again, never recorded.

use crate::common;

use std::time::Duration;

use common::*;
use ethgate_core::Confirmations;
use ethgate_events::Syncer;
use ethgate_testkit::{Anvil, Fault, Proxy, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_endpoints_are_failed_over_with_nothing_lost() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    let primary = Proxy::start(&anvil.url).await;
    let backup = Proxy::start(&anvil.url).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = Syncer::new(
        spec(contract, Confirmations::Depth(0)),
        pool(
            &[&dead, &primary.url, &backup.url],
            Duration::from_millis(400),
        ),
        store.clone(),
        config(4, 4),
    )
    .await
    .expect("syncer");

    let faults = [
        Fault::Pass,
        Fault::Http500,
        Fault::Http429,
        Fault::Delay(Duration::from_secs(2)),
        Fault::Pass,
    ];
    let mut value = 0;
    for fault in faults {
        primary.set(fault);
        for _ in 0..5 {
            anvil.burst(contract, 3, value).await;
            value += 3;
        }
        let backup_before = backup.requests();
        sync_to_head(&mut s).await;
        let served_by_backup = backup.requests() - backup_before;
        match fault {
            Fault::Pass => {}
            _ => assert!(
                served_by_backup > 0,
                "{fault:?}: the backup endpoint took over"
            ),
        }
        assert_equals_truth(
            &outbox(&store).await,
            &anvil.logs(contract, 0, anvil.head().await).await,
        );
    }
    assert!(primary.requests() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_with_a_non_canonical_block_hash_are_refetched_never_recorded() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..6 {
        anvil.burst(contract, 2, i * 2).await;
    }
    let proxy = Proxy::start(&anvil.url).await;
    proxy.set(Fault::ForeignLogHashes(3));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = syncer(
        contract,
        0,
        &[&proxy.url],
        &store, // One query per range: each tampered answer is one refetch.
        ethgate_events::SyncerConfig {
            parallel_queries: 1,
            ..config(2, 2)
        },
    )
    .await;
    let mut retries = 0;
    loop {
        match s.step().await.expect("step") {
            ethgate_events::Step::Idle { .. } => break,
            ethgate_events::Step::Retry(why) => {
                assert_eq!(why, "log from a non-canonical block");
                retries += 1;
            }
            _ => {}
        }
    }
    assert_eq!(proxy.tampered(), 3);
    // Inside a backfill pipeline a bad range ends the slice rather than
    // surfacing as a step of its own, so at least one step saw it.
    assert!(
        retries >= 1,
        "the syncer refetched after the tampered answers"
    );
    let all = outbox(&store).await;
    assert!(
        all.iter()
            .all(|e| format!("{}", e.block_hash) != format!("0x{}", "11".repeat(32)))
    );
    assert_equals_truth(&all, &anvil.logs(contract, 0, anvil.head().await).await);
}
