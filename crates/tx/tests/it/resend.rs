//! Re-broadcasts go out in JSON-RPC batches: when a node loses its pool
//! (a restart, `anvil_dropAllTransactions`) every pending request of an
//! account comes due in the same tick, and one round trip each would hold
//! that tick for seconds per thousand against a remote provider. Counted
//! through a real JSON-RPC proxy in front of anvil.

use std::time::{Duration, Instant};

use ethgate_testkit::Anvil;
use ethgate_tx::Settings;
use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

/// Waits until `n` requests have `status` in `store`.
async fn until_count(
    store: &ethgate_store::Store,
    status: ethgate_core::TxStatus,
    n: u64,
    mine: Option<&Anvil>,
) {
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
    // No replacement meanwhile: only re-broadcasts bring them back.
    let settings = Settings {
        max_in_flight: 1_000,
        ..without_bumps()
    };
    let f = fixture_proxied(Mining::Off, 1, settings).await;
    let (anvil, store) = (&f.anvil, &f.store);
    let proxy = f.proxy.as_ref().expect("proxied");
    let from = format!("{:#x}", f.accounts[0]);
    submit_all(&f, (0..N).map(|i| keyed(&f, &from, &format!("drop-{i}")))).await;
    until_count(store, ethgate_core::TxStatus::Pending, N, None).await;

    // Counted before the drop: the sender may re-broadcast within
    // milliseconds of it, before the test could read the proxy again.
    let (calls, trips) = (
        proxy.calls("eth_sendRawTransaction"),
        proxy.requests_with("eth_sendRawTransaction"),
    );
    let _: Value = anvil.rpc("anvil_dropAllTransactions", json!([])).await;
    until_count(store, ethgate_core::TxStatus::Confirmed, N, Some(anvil)).await;

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
