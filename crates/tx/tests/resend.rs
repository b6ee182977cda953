//! Re-broadcasts go out in JSON-RPC batches: when a node loses its pool
//! (a restart, `anvil_dropAllTransactions`) every pending request of an
//! account comes due in the same tick, and one round trip each would hold
//! that tick for seconds per thousand against a remote provider. Counted
//! through a real JSON-RPC proxy in front of anvil.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ethgate_testkit::{Anvil, Proxy};
use ethgate_tx::{Settings, TxManager};
use serde_json::{Value, json};
use tokio::sync::watch;

mod common;

/// Waits until `n` requests have `status` in `store`.
async fn until_count(store: &ethgate_store::Store, status: &str, n: u64, mine: Option<&Anvil>) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(anvil) = mine {
            let _: Value = anvil.rpc("evm_mine", json!([])).await;
        }
        let have = store.count_txs(status).await.expect("count");
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {have} of {n} requests {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pool_is_rebroadcast_in_batches_and_every_request_mined() {
    const N: u64 = 600;
    let anvil = Anvil::start(&["--gas-limit", "300000000"]).await;
    let contract = anvil.deploy_event_source().await;
    let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
    let proxy = Proxy::start(&anvil.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::store(&dir).await;
    let pool = common::pool(&proxy.url);
    let (accounts, addresses) = common::accounts(&pool, 1, Default::default(), false);
    let settings = Settings {
        resubmit_after: 1,
        // No replacement meanwhile: only re-broadcasts bring them back.
        bump_after: 3_600,
        max_in_flight: 1_000,
        poll: Duration::from_millis(100),
        ..Settings::default()
    };
    let manager = TxManager::new(
        store.clone(),
        settings,
        HashMap::from([("anvil".to_owned(), 31337)]),
        accounts,
        HashMap::new(),
    );
    let (_stop, stopped) = watch::channel(false);
    manager.spawn(&stopped);
    let from = format!("{:#x}", addresses[0]);
    for i in 0..N {
        let key = format!("drop-{i}");
        let body = json!({
            "chain": "anvil", "from": from, "to": format!("{contract:#x}"),
            "function": "keyed(string)", "args": [key], "idempotency_key": key,
        });
        manager.submit(&body).await.expect("accepted");
    }
    until_count(&store, "pending", N, None).await;

    let _: Value = anvil.rpc("anvil_dropAllTransactions", json!([])).await;
    let pool_content: Value = anvil.rpc("txpool_content", json!([])).await;
    assert_eq!(pool_content["pending"], json!({}), "anvil dropped them");
    let (calls, trips) = (
        proxy.calls("eth_sendRawTransaction"),
        proxy.requests_with("eth_sendRawTransaction"),
    );
    until_count(&store, "confirmed", N, Some(&anvil)).await;

    let resent = proxy.calls("eth_sendRawTransaction") - calls;
    let round_trips = proxy.requests_with("eth_sendRawTransaction") - trips;
    assert!(
        resent >= N,
        "every dropped request was sent again ({resent})"
    );
    assert!(
        round_trips <= resent / 10,
        "{resent} re-broadcasts took {round_trips} round trips"
    );
    // Mined once each, at the nonces they were given: none was dropped for
    // good, none re-queued to a new nonce.
    let count: alloy_primitives::U64 = anvil
        .rpc("eth_getTransactionCount", json!([from, "latest"]))
        .await;
    assert_eq!(count.to::<u64>(), N, "nonces 0..{N}, each used once");
}
