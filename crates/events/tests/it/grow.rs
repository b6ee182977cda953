//! A contract added to a stream that has recorded: the stream is not
//! refused or restarted; the added contract's history is backfilled alone
//! from `from_block` up to the cursor, then it joins the stream, through a
//! reorg on either side of the join. The consumer's view (as a set: the
//! added history arrives after what was already delivered) equals
//! `eth_getLogs` for both contracts, and the first contract's logs were
//! read once.

use crate::common;

use std::time::Duration;

use alloy_primitives::Address;
use common::*;
use ethgate_core::{Confirmations, EventEnvelope, RawLog};
use ethgate_events::{Step, Syncer};
use ethgate_testkit::{Anvil, Proxy};

fn sorted(mut live: Vec<EventEnvelope>) -> Vec<EventEnvelope> {
    live.sort_by_key(|e| (e.block_number, e.log_index));
    live
}

async fn truth(anvil: &Anvil, contracts: &[Address], head: u64) -> Vec<RawLog> {
    let mut all = Vec::new();
    for c in contracts {
        all.extend(anvil.logs(*c, 0, head).await);
    }
    all.sort_by_key(|l| (l.block(), l.index()));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_contract_is_backfilled_alone_then_joins_the_stream() {
    let anvil = Anvil::start(&[]).await;
    let first = anvil.deploy_event_source().await;
    let added = anvil.deploy_event_source().await;
    for i in 0..6 {
        anvil.burst(first, 2, i * 2).await;
        anvil.note(added, "early", i as i64).await;
    }
    let proxy = Proxy::start(&anvil.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let pool = pool(&[&proxy.url], Duration::from_secs(10));
    let mut s = Syncer::new(
        spec(first, Confirmations::Depth(0)),
        pool.clone(),
        store.clone(),
        config(4, 1_000),
    )
    .await
    .expect("syncer");
    sync_to_head(&mut s).await;
    anvil.burst(first, 3, 100).await;
    anvil.note(added, "while not followed", 7).await;
    sync_to_head(&mut s).await;
    let recorded = store
        .stream("source")
        .await
        .expect("read")
        .and_then(|r| r.cursor)
        .expect("a cursor");

    // The same stream, one contract more: accepted, no restart.
    let mut grown = spec(first, Confirmations::Depth(0));
    grown.addresses.push(added);
    let mut s = Syncer::new(grown.clone(), pool.clone(), store.clone(), config(4, 1_000))
        .await
        .expect("adding a contract is accepted");
    let logs_before = proxy.logs_answered();
    // The added contract's backfill: ranges up to the recorded cursor.
    let mut backfilled = 0;
    while let Step::Recorded { to, .. } = s.step().await.expect("step") {
        assert!(to <= recorded, "the backfill stays below the cursor");
        backfilled += 1;
        if to == recorded {
            break;
        }
    }
    assert!(backfilled > 1, "the backfill took several ranges");
    assert_eq!(
        proxy.logs_answered() - logs_before,
        anvil.logs(added, 0, recorded).await.len() as u64,
        "only the added contract's history was read again"
    );
    // A reorg after the join, and new activity on both.
    anvil.burst(first, 2, 200).await;
    anvil.note(added, "after joining", 8).await;
    sync_to_head(&mut s).await;
    anvil.reorg(2).await;
    anvil.note(added, "new branch", 9).await;
    anvil.burst(first, 1, 300).await;
    sync_to_head(&mut s).await;

    // Started again with the same contracts: nothing more to backfill.
    let mut again = Syncer::new(grown, pool, store.clone(), config(4, 1_000))
        .await
        .expect("restarts");
    sync_to_head(&mut again).await;
    let head = anvil.head().await;
    let all = outbox(&store).await;
    assert!(all.iter().any(|e| e.removed), "the reorg retracted events");
    assert_equals_truth(
        &sorted(apply(&all)),
        &truth(&anvil, &[first, added], head).await,
    );
}
