//! Reorgs made with anvil's `anvil_reorg` and `anvil_rollback`: exactly the
//! orphaned events are retracted, the new canonical ones follow, and a
//! consumer that applies retractions ends equal to the chain.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use ethgate_testkit::Anvil;

enum Reorg {
    Replace(u64),
    Rollback(u64),
}

async fn scenario(reorg: Reorg, confirmations: u64) {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..8 {
        anvil.burst(contract, 2, i * 2).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = syncer(
        contract,
        confirmations,
        &[&anvil.url],
        &store,
        config(100, 1_000),
    )
    .await;
    sync_to_head(&mut s).await;
    let head = anvil.head().await;
    let before = outbox(&store).await;
    assert!(
        before
            .iter()
            .all(|e| e.block_number + confirmations <= head),
        "nothing recorded shallower than the depth"
    );
    assert!(!before.is_empty());

    let depth = match reorg {
        Reorg::Replace(d) => {
            anvil.reorg(d).await;
            d
        }
        Reorg::Rollback(d) => {
            anvil.rollback(d).await;
            d
        }
    };
    let orphaned: BTreeSet<String> = before
        .iter()
        .filter(|e| e.block_number > head - depth)
        .map(|e| e.id.clone())
        .collect();
    assert!(
        !orphaned.is_empty(),
        "the reorg must orphan recorded events for this test to mean anything"
    );

    sync_to_head(&mut s).await;
    // New activity on the new branch.
    anvil.burst(contract, 3, 100).await;
    anvil.mine(confirmations + 1).await;
    sync_to_head(&mut s).await;

    let all = outbox(&store).await;
    let retracted: BTreeSet<String> = all
        .iter()
        .filter(|e| e.removed)
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(
        retracted, orphaned,
        "exactly the orphaned events are retracted"
    );
    assert_eq!(
        all.iter().filter(|e| e.removed).count(),
        orphaned.len(),
        "each retracted once"
    );
    let first_retraction = all.iter().position(|e| e.removed).expect("a retraction");
    let last_retraction = all.iter().rposition(|e| e.removed).expect("a retraction");
    assert!(all[..first_retraction].iter().all(|e| !e.removed));
    assert!(
        all[last_retraction + 1..]
            .iter()
            .all(|e| e.block_number > head - depth),
        "after the retractions come only events of the new branch"
    );
    let live = apply(&all);
    let new_head = anvil.head().await;
    let truth = anvil.logs(contract, 0, new_head - confirmations).await;
    assert_equals_truth(&live, &truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_of_depth_one_retracts_the_head_block() {
    scenario(Reorg::Replace(1), 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_of_depth_three_retracts_three_blocks() {
    scenario(Reorg::Replace(3), 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_then_new_blocks_retracts_the_removed_ones() {
    scenario(Reorg::Rollback(2), 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_deeper_than_confirmations_retracts_recorded_events() {
    scenario(Reorg::Replace(5), 2).await;
}
