//! The fee market is read once per block for every sender of a chain: a
//! market moves only with the chain, and under load each read held a
//! tick up before its first signature. Counted through a real JSON-RPC
//! proxy in front of anvil.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use ethgate_testkit::{Anvil, Proxy};
use ethgate_tx::{Settings, TxManager};
use serde_json::{Value, json};
use tokio::sync::watch;

mod common;

/// Submits one call from `from` and waits until it is `pending` (its
/// sender has priced, signed and recorded it).
async fn send_and_wait(manager: &TxManager, contract: Address, from: Address, key: &str) {
    let body = json!({
        "chain": "anvil", "from": format!("{from:#x}"), "to": format!("{contract:#x}"),
        "function": "keyed(string)", "args": [key], "idempotency_key": key,
    });
    let id = manager.submit(&body).await.expect("accepted").id;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = manager.get(&id).await.expect("get").expect("exists");
        if v["status"] == "pending" {
            return;
        }
        assert!(Instant::now() < deadline, "{key} not pending: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_senders_price_their_requests_from_one_fee_market_read_per_block() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
    let proxy = Proxy::start(&anvil.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::store(&dir).await;
    let pool = common::pool(&proxy.url);
    let (accounts, addresses) = common::accounts(&pool, 4, Default::default(), false);
    let settings = Settings {
        poll: Duration::from_millis(50),
        ..Settings::default()
    };
    let manager = TxManager::new(
        store,
        settings,
        HashMap::from([("anvil".to_owned(), 31337)]),
        accounts,
        HashMap::new(),
    );
    let (_stop, stopped) = watch::channel(false);
    manager.spawn(&stopped);

    // No block is mined meanwhile: one head, four senders, each pricing
    // its request in a tick of its own.
    for (i, a) in addresses.iter().enumerate() {
        send_and_wait(&manager, contract, *a, &format!("first-{i}")).await;
    }
    assert_eq!(
        proxy.calls("eth_feeHistory"),
        1,
        "four senders at one head read the market once"
    );

    // A new head is a new market.
    let _: Value = anvil.rpc("evm_mine", json!([])).await;
    for (i, a) in addresses.iter().enumerate() {
        send_and_wait(&manager, contract, *a, &format!("second-{i}")).await;
    }
    assert_eq!(
        proxy.calls("eth_feeHistory"),
        2,
        "after one block the market is read once more"
    );
}
