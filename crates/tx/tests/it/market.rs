//! The fee market is read once per block for every sender of a chain: a
//! market moves only with the chain, and under load each read held a
//! tick up before its first signature. Counted through a real JSON-RPC
//! proxy in front of anvil.

use std::time::{Duration, Instant};

use ethgate_tx::Settings;
use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

/// Submits one call from account `k` and waits until it is `pending` (its
/// sender has priced, signed and recorded it).
async fn send_and_wait(f: &Fixture, k: usize, key: &str) {
    let from = format!("{:#x}", f.accounts[k]);
    let id = submit(f, &keyed(f, &from, key)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
            .expect("json");
        if v["status"] == "pending" {
            return;
        }
        assert!(Instant::now() < deadline, "{key} not pending: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_senders_price_their_requests_from_one_fee_market_read_per_block() {
    let settings = Settings {
        poll: Duration::from_millis(50),
        ..Settings::default()
    };
    let f = fixture_proxied(Mining::Off, 4, settings).await;
    let proxy = f.proxy.as_ref().expect("proxied");

    // No block is mined meanwhile: one head, four senders, each pricing
    // its request in a tick of its own.
    for i in 0..4 {
        send_and_wait(&f, i, &format!("first-{i}")).await;
    }
    assert_eq!(
        proxy.calls("eth_feeHistory"),
        1,
        "four senders at one head read the market once"
    );

    // A new head is a new market.
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    for i in 0..4 {
        send_and_wait(&f, i, &format!("second-{i}")).await;
    }
    assert_eq!(
        proxy.calls("eth_feeHistory"),
        2,
        "after one block the market is read once more"
    );
}
