//! Where many requests were mined is read from their logs: one
//! `eth_getLogs` finds every call that left an event of the contract it
//! called, and only the others are read by receipt — with the same
//! outcome as reading them all by receipt, a call that reverted on chain
//! included.

use crate::fixture;

use fixture::{Mining, fixture_proxied, keyed, submit_all, until_status, without_bumps};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_left_a_log_are_found_by_it_and_only_the_rest_by_receipt() {
    let f = fixture_proxied(Mining::Off, 1, without_bumps()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    let from = format!("{:#x}", f.accounts[0]);
    let contract = format!("{:#x}", f.contract);
    let call = |key: &str, function: &str, args: Value| {
        json!({
            "chain": "anvil", "from": from, "to": contract, "function": function,
            "args": args, "gas_limit": 100_000, "idempotency_key": key,
        })
    };
    // Ten calls that emit; `once("k")` twice (both simulate alike; mined
    // in one block the second reverts and leaves no log); a call that
    // emits nothing.
    let mut bodies: Vec<Value> = (0..10)
        .map(|i| keyed(&f, &from, &format!("k{i}")))
        .collect();
    bodies.push(call("once-1", "once(string)", json!(["k"])));
    bodies.push(call("once-2", "once(string)", json!(["k"])));
    bodies.push(call("quiet", "divide(uint256,uint256)", json!(["6", "3"])));
    let ids = submit_all(&f, bodies).await;
    until_status(&f, &ids, "pending", 30).await;
    let receipts_before = proxy.calls("eth_getTransactionReceipt");
    let logs_before = proxy.calls("eth_getLogs");
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;

    let (emitted, failed, quiet) = (&ids[..11], &ids[11], &ids[12]);
    let mut confirmed = until_status(&f, emitted, "confirmed", 30).await;
    confirmed.extend(until_status(&f, std::slice::from_ref(quiet), "confirmed", 30).await);
    let failed = &until_status(&f, std::slice::from_ref(failed), "failed", 30).await[0];
    // Each where the node says it is: its receipt's block and hash.
    for view in confirmed.iter().chain([failed]) {
        let hash = view["hash"].as_str().expect("mined hash");
        let receipt: Value = f
            .anvil
            .rpc("eth_getTransactionReceipt", json!([hash]))
            .await;
        assert_eq!(
            (
                view["block_number"].as_u64(),
                view["block_hash"].as_str().map(str::to_owned)
            ),
            (
                receipt["blockNumber"]
                    .as_str()
                    .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok()),
                receipt["blockHash"].as_str().map(str::to_owned)
            ),
            "{view}"
        );
        let ok = receipt["status"] == "0x1";
        assert_eq!(ok, view["status"] == "confirmed", "{view}");
    }
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains(r#"Used(key: "k")"#)),
        "{failed}"
    );
    // One log query found the eleven that emitted; the two that left no
    // log were read by receipt.
    assert_eq!(proxy.calls("eth_getLogs") - logs_before, 1);
    assert_eq!(
        proxy.calls("eth_getTransactionReceipt") - receipts_before,
        2,
        "receipts read: only the calls without a log"
    );
}

/// Checks each view against the node: mined where its receipt says.
async fn where_the_node_says(f: &fixture::Fixture, views: &[Value]) {
    for view in views {
        let receipt: Value = f
            .anvil
            .rpc("eth_getTransactionReceipt", json!([view["hash"]]))
            .await;
        assert_eq!(receipt["blockHash"], view["block_hash"], "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_blocks_logs_are_read_once_for_all_the_chains_senders() {
    let accounts = 4;
    let f = fixture_proxied(Mining::Off, accounts, without_bumps()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    // Two blocks, each with ten emitting calls from every account.
    for block in 0..2 {
        let bodies = f.accounts.iter().flat_map(|a| {
            let from = format!("{a:#x}");
            (0..10)
                .map(|i| keyed(&f, &from, &format!("{from}-{block}-{i}")))
                .collect::<Vec<_>>()
        });
        let ids = submit_all(&f, bodies.collect::<Vec<_>>()).await;
        until_status(&f, &ids, "pending", 30).await;
        let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
        let views = until_status(&f, &ids, "confirmed", 30).await;
        where_the_node_says(&f, &views).await;
    }
    // Every sender found its calls by their logs, and each block's logs
    // crossed the wire once, however many senders waited on them.
    assert_eq!(proxy.logs_answered(), 2 * 10 * accounts as u64);
    assert!(proxy.calls("eth_getLogs") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_found_by_their_logs_are_found_again_in_the_block_a_reorg_put_them_in() {
    let f = fixture_proxied(Mining::Off, 1, without_bumps()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    let from = format!("{:#x}", f.accounts[0]);
    let bodies = (0..10).map(|i| {
        let mut body = keyed(&f, &from, &format!("reorged-{i}"));
        body["confirmations"] = json!(3);
        body
    });
    let ids = submit_all(&f, bodies.collect::<Vec<_>>()).await;
    until_status(&f, &ids, "pending", 30).await;
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    let first = until_status(&f, &ids, "mined", 30).await;
    assert!(proxy.logs_answered() >= 10, "found by their logs");
    let first_block = first[0]["block_hash"].clone();
    // Their block is replaced by another at the same height holding the
    // same transactions: each is confirmed where the node says — in the
    // new block, never in the one the logs read before named.
    let mut again = Vec::new();
    for v in &first {
        let raw: Value = f
            .anvil
            .rpc("eth_getRawTransactionByHash", json!([v["hash"]]))
            .await;
        again.push(json!([raw, 0]));
    }
    let _: Value = f.anvil.rpc("anvil_reorg", json!([1, again])).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let views = loop {
        let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
        let mut views = Vec::new();
        for id in &ids {
            views.push(
                serde_json::to_value(f.manager.get(id).await.expect("get").expect("exists"))
                    .expect("json"),
            );
        }
        if views.iter().all(|v| v["status"] == "confirmed") {
            break views;
        }
        assert!(std::time::Instant::now() < deadline, "{views:?}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    for v in &views {
        assert_ne!(v["block_hash"], first_block, "{v}");
    }
    where_the_node_says(&f, &views).await;
}
