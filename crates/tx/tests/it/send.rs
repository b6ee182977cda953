//! The transaction manager against a real anvil: many concurrent requests
//! over several accounts all confirmed with contiguous nonces; dropped
//! transactions re-broadcast; a base-fee spike answered with a bump; a
//! reorg after `mined` re-tracked; a nonce used behind ethgate's back
//! detected and the request mined anyway; insufficient funds, fee caps and
//! legacy-fee chains. (Requests refused, and why: `refusals.rs`.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U64};
use ethgate_testkit::Anvil;
use ethgate_tx::fees::Caps;
use serde_json::{Value, json};

use crate::common;
use crate::fixture;
use fixture::*;

/// Waits (30 s at most) until request `id` is mined in a block other than
/// `first_block`: what a reorg that dropped its block must lead to.
async fn until_remined(f: &Fixture, id: &str, first_block: &Value, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = serde_json::to_value(f.manager.get(id).await.expect("get").expect("exists"))
            .expect("json");
        if v["status"] == "mined" && v["block_hash"] != *first_block {
            return;
        }
        assert!(Instant::now() < deadline, "{why}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn nonce_count(anvil: &Anvil, a: Address) -> u64 {
    let n: U64 = anvil
        .rpc("eth_getTransactionCount", json!([a, "latest"]))
        .await;
    n.to::<u64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_over_four_accounts_all_confirm_with_contiguous_nonces() {
    let f = fixture(Mining::EverySecond, 4, fast()).await;
    let total = 1_000;
    let mut tasks = Vec::new();
    for i in 0..total {
        let m = f.manager.clone();
        let body = keyed(&f, "ops", &format!("load-{i}"));
        tasks.push(tokio::spawn(async move { m.submit(&body).await }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.expect("task").expect("accepted").id);
    }
    let views = until_status(&f, &ids, "confirmed", 240).await;
    let mut nonces: HashMap<String, Vec<u64>> = HashMap::new();
    for v in &views {
        nonces
            .entry(v["from"].as_str().expect("from").to_owned())
            .or_default()
            .push(v["nonce"].as_u64().expect("nonce"));
    }
    assert_eq!(
        nonces.len(),
        4,
        "the pool spread the load over every account"
    );
    for (account, mut list) in nonces {
        list.sort_unstable();
        let n = list.len() as u64;
        assert_eq!(
            list,
            (0..n).collect::<Vec<u64>>(),
            "{account}: contiguous from 0"
        );
        let a: Address = account.parse().expect("address");
        assert_eq!(nonce_count(&f.anvil, a).await, n, "{account}: chain agrees");
    }
    // Every state change is on the outbox, in order, as a status envelope.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut after = 0;
    loop {
        let page = f
            .store
            .events_after("tx.anvil", after, 1000)
            .await
            .expect("outbox");
        let Some(last) = page.last() else { break };
        after = last.seq;
        for e in &page {
            let ethgate_core::Envelope::Tx(t) = &e.envelope else {
                panic!("only status envelopes on tx.anvil")
            };
            assert_eq!(t.kind, "tx");
            seen.entry(t.tx_id.clone())
                .or_default()
                .push(t.status.to_string());
        }
    }
    for id in &ids {
        assert_eq!(
            seen.get(id).map(Vec::as_slice),
            Some(
                &[
                    "pending".to_owned(),
                    "mined".to_owned(),
                    "confirmed".to_owned()
                ][..]
            ),
            "{id}: pending, mined, confirmed — each once, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_transactions_are_rebroadcast_and_mined() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let ids = submit_all(&f, (0..3).map(|i| keyed(&f, &from, &format!("drop-{i}")))).await;
    until_status(&f, &ids, "pending", 30).await;
    let _: Value = f.anvil.rpc("anvil_dropAllTransactions", json!([])).await;
    let pool: Value = f.anvil.rpc("txpool_content", json!([])).await;
    assert_eq!(pool["pending"], json!({}), "anvil dropped them");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let views = until_status(&f, &ids, "confirmed", 60).await;
    let mut nonces: Vec<u64> = views.iter().filter_map(|v| v["nonce"].as_u64()).collect();
    nonces.sort_unstable();
    assert_eq!(nonces, vec![0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_fee_spike_is_answered_with_a_fee_bump() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "spike")).await;
    let first = &until_status(&f, std::slice::from_ref(&id), "pending", 30).await[0];
    // The next blocks cost far more than the first attempt offers.
    let spike = price_out(&f, first).await;
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let v = &until_status(&f, &[id], "confirmed", 90).await[0];
    let attempts = v["attempts"].as_array().expect("attempts");
    assert!(attempts.len() >= 2, "bumped: {v}");
    let last_fee: u128 = attempts
        .last()
        .and_then(|a| a["max_fee_per_gas"].as_str())
        .and_then(|s| s.parse().ok())
        .expect("fee");
    assert!(
        last_fee >= spike,
        "the bump met the market ({last_fee} < {spike})"
    );
    assert_eq!(
        v["hash"],
        attempts.last().expect("last")["hash"],
        "the bump was mined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_after_mined_is_retracked_and_confirmed_again() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let mut body = keyed(&f, &from, "reorged");
    body["confirmations"] = json!(3);
    let id = submit(&f, &body).await;
    let first = &until_status(&f, std::slice::from_ref(&id), "mined", 30).await[0];
    let first_block = first["block_hash"].clone();
    // The block holding it is replaced by an empty one.
    f.anvil.reorg(1).await;
    until_remined(&f, &id, &first_block, "never re-mined after the reorg").await;
    f.anvil.mine(3).await;
    let v = &until_status(&f, &[id], "confirmed", 30).await[0];
    assert_ne!(v["block_hash"], first_block, "confirmed in the new block");
    let on_chain: Value = f
        .anvil
        .rpc("eth_getTransactionReceipt", json!([v["hash"]]))
        .await;
    assert_eq!(on_chain["blockHash"], v["block_hash"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_below_the_head_is_found_through_the_new_chains_parents() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let mut body = keyed(&f, &from, "deep");
    body["confirmations"] = json!(10);
    let id = submit(&f, &body).await;
    let first = &until_status(&f, std::slice::from_ref(&id), "mined", 30).await[0];
    let first_block = first["block_hash"].clone();
    // Two blocks on top, seen by the sender as heads, so its block is
    // below the head when the chain under it is replaced.
    f.anvil.mine(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.anvil.reorg(3).await;
    until_remined(
        &f,
        &id,
        &first_block,
        "the replaced block was never noticed",
    )
    .await;
    f.anvil.mine(10).await;
    let v = &until_status(&f, &[id], "confirmed", 30).await[0];
    let on_chain: Value = f
        .anvil
        .rpc("eth_getTransactionReceipt", json!([v["hash"]]))
        .await;
    assert_eq!(on_chain["blockHash"], v["block_hash"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_used_behind_ethgates_back_is_detected_and_the_request_still_mined() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "contested")).await;
    let v = &until_status(&f, std::slice::from_ref(&id), "pending", 30).await[0];
    assert_eq!(v["nonce"], 0);
    // Someone with the same key sends at nonce 0 with higher fees.
    let out = std::process::Command::new(ethgate_testkit::tool("cast"))
        .args([
            "send",
            "--async",
            "--rpc-url",
            &f.anvil.url,
            "--private-key",
            common::key(0),
        ])
        .args([
            "--nonce",
            "0",
            "--gas-price",
            "100gwei",
            "--priority-gas-price",
            "50gwei",
        ])
        .arg(format!("{:#x}", Address::repeat_byte(9)))
        .output()
        .expect("cast send");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let v = &until_status(&f, &[id], "confirmed", 60).await[0];
    assert_eq!(v["nonce"], 1, "requeued onto the next free nonce");
    assert_eq!(nonce_count(&f.anvil, f.accounts[0]).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_funds_is_a_clear_state_and_wedges_nothing_else() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let mut broke = keyed(&f, &from, "too-expensive");
    broke["value"] = json!("1000000000000000000000000000");
    let broke = submit(&f, &broke).await;
    let fine = submit(&f, &keyed(&f, &from, "affordable")).await;
    let v = &until_status(&f, std::slice::from_ref(&broke), "rejected", 30).await[0];
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("insufficient funds")),
        "says why: {v}"
    );
    assert_eq!(v["nonce"], Value::Null, "no nonce taken");
    let v = &until_status(&f, &[fine], "confirmed", 30).await[0];
    assert_eq!(v["nonce"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_the_node_refuses_for_funds_is_resent_at_its_fees_not_bumped() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let account = format!("{:#x}", f.accounts[0]);
    let attempts = |v: &Value| v["attempts"].as_array().map_or(0, Vec::len);
    let mut body = keyed(&f, &account, "drained");
    body["gas_limit"] = json!(100_000);
    let id = submit(&f, &body).await;
    until_status(&f, std::slice::from_ref(&id), "pending", 30).await;
    // The account is drained after the request passed its simulation,
    // and the node loses the transaction: every re-broadcast is refused.
    let _: Value = f
        .anvil
        .rpc("anvil_setBalance", json!([account, "0x1"]))
        .await;
    let _: Value = f.anvil.rpc("anvil_dropAllTransactions", json!([])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
            .expect("json");
        if v["error"]
            .as_str()
            .is_some_and(|e| e.to_lowercase().contains("insufficient funds"))
        {
            assert_eq!(v["status"], "pending", "holds its nonce: {v}");
            break;
        }
        assert!(Instant::now() < deadline, "the refusal is shown: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
        .expect("json");
    // More than the bump interval (3 s) passes while the node refuses it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let v = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
        .expect("json");
    assert_eq!(v["status"], "pending");
    assert_eq!(
        attempts(&v),
        attempts(&before),
        "a higher fee would not change the node's answer, so none was signed: {v}"
    );
    // Funded again: the next re-broadcast goes through, at the same fees,
    // and the refusal is no longer shown.
    let _: Value = f
        .anvil
        .rpc("anvil_setBalance", json!([account, "0x56bc75e2d63100000"]))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
            .expect("json");
        if v["error"].is_null() {
            assert_eq!(v["status"], "pending", "accepted, not yet mined: {v}");
            assert_eq!(
                attempts(&v),
                attempts(&before),
                "accepted as it was signed: {v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the refusal is cleared: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    until_status(&f, std::slice::from_ref(&id), "confirmed", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_at_its_fee_cap_is_rebroadcast_and_an_operator_bump_gets_it_mined() {
    let caps = Caps {
        max_fee: Some(20_000_000_000),
        max_priority_fee: None,
    };
    let f = fixture_capped(Mining::Off, 1, fast(), caps).await;
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "capped")).await;
    until_status(&f, std::slice::from_ref(&id), "pending", 30).await;
    // The market moves past the account's cap.
    spike_base_fee(&f, 60_000_000_000).await;
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
            .expect("json");
        if v["error"].as_str().is_some_and(|e| e.contains("fee cap")) {
            assert_eq!(v["status"], "pending", "held, not dropped: {v}");
            let attempts = v["attempts"].as_array().expect("attempts");
            assert!(
                attempts.iter().all(|a| a["max_fee_per_gas"]
                    .as_str()
                    .and_then(|s| s.parse::<u128>().ok())
                    .is_some_and(|fee| fee <= 20_000_000_000)),
                "never past the cap on its own: {v}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never reported the cap: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        f.manager.bump(&id).await.expect("bump"),
        ethgate_tx::CancelOutcome::Requested
    );
    let v = &until_status(&f, &[id], "confirmed", 60).await[0];
    let last: u128 = v["attempts"]
        .as_array()
        .and_then(|a| a.last())
        .and_then(|a| a["max_fee_per_gas"].as_str())
        .and_then(|s| s.parse().ok())
        .expect("fee");
    assert!(
        last > 20_000_000_000,
        "the operator's bump went past the cap"
    );
    assert_eq!(
        v["error"],
        Value::Null,
        "the cap is behind it once mined: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_without_eip1559_gets_legacy_transactions_priced_by_gas_price() {
    let f = fixture_with(Mining::Auto, 1, fast(), Caps::default(), true).await;
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "legacy")).await;
    let v = &until_status(&f, &[id], "confirmed", 30).await[0];
    let tx: Value = f
        .anvil
        .rpc("eth_getTransactionByHash", json!([v["hash"]]))
        .await;
    assert_eq!(tx["type"], "0x0", "a legacy transaction: {tx}");
    let price: alloy_primitives::U128 = f.anvil.rpc("eth_gasPrice", json!([])).await;
    let paid: alloy_primitives::U128 =
        serde_json::from_value(tx["gasPrice"].clone()).expect("gasPrice");
    assert!(paid >= price, "priced at least at eth_gasPrice");
    assert!(tx["chainId"].is_string(), "EIP-155 replay protection");
}
