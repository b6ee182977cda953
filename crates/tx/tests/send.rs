//! The transaction manager against a real anvil: many concurrent requests
//! over several accounts all confirmed with contiguous nonces; a reverting
//! call rejected with its reason before any nonce is taken; dropped
//! transactions re-broadcast; a base-fee spike answered with a bump; a
//! reorg after `mined` re-tracked; a nonce used behind ethgate's back
//! detected and the request mined anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U64};
use ethgate_store::Store;
use ethgate_testkit::Anvil;
use ethgate_tx::fees::Caps;
use ethgate_tx::{Settings, TxManager};
use serde_json::{Value, json};
use tokio::sync::watch;

mod common;

struct Fixture {
    anvil: Anvil,
    contract: Address,
    manager: Arc<TxManager>,
    store: Store,
    accounts: Vec<Address>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// How anvil mines once the contract is deployed.
#[derive(Clone, Copy)]
enum Mining {
    Auto,
    EverySecond,
    Off,
}

/// The custom errors EventSource's ABI declares.
fn event_source_errors() -> Vec<alloy_json_abi::Error> {
    let artifact: Value = serde_json::from_str(ethgate_testkit::EVENT_SOURCE).expect("artifact");
    let abi: alloy_json_abi::JsonAbi =
        serde_json::from_value(artifact["abi"].clone()).expect("ABI");
    abi.errors().cloned().collect()
}

async fn fixture(mining: Mining, accounts: usize, settings: Settings) -> Fixture {
    fixture_capped(mining, accounts, settings, Caps::default()).await
}

async fn fixture_capped(
    mining: Mining,
    accounts: usize,
    settings: Settings,
    caps: Caps,
) -> Fixture {
    fixture_with(mining, accounts, settings, caps, false).await
}

async fn fixture_with(
    mining: Mining,
    accounts: usize,
    settings: Settings,
    caps: Caps,
    legacy: bool,
) -> Fixture {
    let anvil = Anvil::start(&["--gas-limit", "300000000"]).await;
    let contract = anvil.deploy_event_source().await;
    match mining {
        Mining::Auto => {}
        Mining::EverySecond => {
            let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
            let _: Value = anvil.rpc("evm_setIntervalMining", json!([1])).await;
        }
        Mining::Off => {
            let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::store(&dir).await;
    let pool = common::pool(&anvil.url);
    let (list, addresses) = common::accounts(&pool, accounts, caps, legacy);
    let manager = Arc::new(
        TxManager::new(
            store.clone(),
            settings,
            HashMap::from([("anvil".to_owned(), 31337)]),
            list,
            HashMap::from([("ops".to_owned(), addresses.clone())]),
        )
        // As `ethgate serve` does with a stream's ABI file: the contract's
        // custom errors are known.
        .with_contract_errors(HashMap::from([(
            ("anvil".to_owned(), contract),
            event_source_errors(),
        )])),
    );
    let (stop, rx) = watch::channel(false);
    manager.spawn(&rx);
    Fixture {
        anvil,
        contract,
        manager,
        store,
        accounts: addresses,
        _stop: stop,
        _dir: dir,
    }
}

fn fast() -> Settings {
    Settings {
        resubmit_after: 1,
        bump_after: 3,
        poll: Duration::from_millis(100),
        ..Settings::default()
    }
}

fn keyed(f: &Fixture, from: &str, key: &str) -> Value {
    json!({
        "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
        "function": "keyed(string)", "args": [key], "idempotency_key": key,
    })
}

/// Submits a request the manager must accept; its id.
async fn submit(f: &Fixture, body: &Value) -> String {
    f.manager.submit(body).await.expect("accepted").id
}

/// Waits until every id has `status`; returns their views.
async fn until_status(f: &Fixture, ids: &[String], status: &str, secs: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut views = Vec::new();
        for id in ids {
            views.push(f.manager.get(id).await.expect("get").expect("exists"));
        }
        if views.iter().all(|v| v["status"] == status) {
            return views;
        }
        if Instant::now() > deadline {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for v in &views {
                *counts
                    .entry(v["status"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            let odd = views.iter().find(|v| v["status"] != status);
            panic!("not all {status} after {secs} s: {counts:?}; e.g. {odd:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (30 s at most) until request `id` is mined in a block other than
/// `first_block`: what a reorg that dropped its block must lead to.
async fn until_remined(f: &Fixture, id: &str, first_block: &Value, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = f.manager.get(id).await.expect("get").expect("exists");
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
                .push(t.status.clone());
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
async fn a_reverting_call_is_rejected_with_its_reason_and_takes_no_nonce() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let call = |key: &str, function: &str, args: Value| {
        json!({
            "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
            "function": function, "args": args, "idempotency_key": key,
        })
    };
    // The request's own signatures come first (their parameter names show
    // which were used); else the configuration's ABI for the contract.
    let mut named = call("named", "refuse(uint256,string)", json!([7, "closed"]));
    named["errors"] = json!(["Refused(uint256 status, string text)"]);
    let empty = json!({
        "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
        "data": "0xdeadbeef", "gas_limit": 100_000, "idempotency_key": "empty",
    });
    // Each reason is decoded from the revert data by ethgate, whatever
    // the node's own message says.
    let cases = [
        (
            call("message", "fail(string)", json!(["not due yet"])),
            "execution reverted: not due yet",
        ),
        (
            call("panic", "divide(uint256,uint256)", json!([1, 0])),
            "execution reverted: panic 0x12 (division or modulo by zero)",
        ),
        (
            named,
            r#"execution reverted: Refused(status: 7, text: "closed")"#,
        ),
        (
            call("from-abi", "refuse(uint256,string)", json!([7, "closed"])),
            r#"execution reverted: Refused(code: 7, why: "closed")"#,
        ),
        // No such function and no fallback: a revert without data.
        (empty, "execution reverted without a reason"),
    ];
    for (body, reason) in cases {
        let id = submit(&f, &body).await;
        let v = &until_status(&f, std::slice::from_ref(&id), "rejected", 30).await[0];
        let said = v["error"].as_str().unwrap_or_default();
        assert_eq!(said, reason, "{body}: decoded reason");
        assert_eq!(v["nonce"], Value::Null, "{body}: no nonce taken");
    }
    let good = submit(&f, &keyed(&f, &from, "good")).await;
    let v = &until_status(&f, &[good], "confirmed", 30).await[0];
    assert_eq!(v["nonce"], 0, "the rejected requests took no nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_returns_the_same_transaction_and_a_different_body_conflicts() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let body = keyed(&f, &from, "once");
    let a = f.manager.submit(&body).await.expect("accepted");
    let b = f.manager.submit(&body).await.expect("accepted again");
    assert_eq!(
        (a.id.clone(), a.existing, b.existing),
        (b.id.clone(), false, true)
    );
    let mut other = body.clone();
    other["args"] = json!(["something else"]);
    assert!(matches!(
        f.manager.submit(&other).await,
        Err(ethgate_tx::SubmitError::Conflict(id)) if id == a.id
    ));
    for (patch, field) in [
        (json!({"to": "0x12"}), "to"),
        (json!({"chain": "mainnet"}), "chain"),
        (json!({"from": "nobody"}), "from"),
        (json!({"speed": "ludicrous"}), "speed"),
        (json!({"args": [1, 2]}), "args"),
        (json!({"gas_limit": 5}), "gas_limit"),
        (json!({"colour": "red"}), "colour"),
        (json!({"errors": "Refused(uint256)"}), "errors"),
        (
            json!({"errors": ["Refused(uint256)", "not a signature"]}),
            "errors[1]",
        ),
    ] {
        let mut b = body.clone();
        b["idempotency_key"] = json!(format!("bad-{field}"));
        for (k, v) in patch.as_object().expect("object") {
            b[k] = v.clone();
        }
        match f.manager.submit(&b).await {
            Err(ethgate_tx::SubmitError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("{field}: expected a field error, got {other:?}"),
        }
    }
    assert_eq!(
        f.store.txs(None, None, 100).await.expect("list").len(),
        1,
        "refused requests stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_reverts_on_chain_ends_failed_with_its_reason_replayed() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    // Both simulate against the same state, where "k" is unused; mined in
    // one block, the second reverts with Used("k").
    let once = |key: &str| {
        json!({
            "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
            "function": "once(string)", "args": ["k"], "gas_limit": 100_000,
            "idempotency_key": key,
        })
    };
    let first = submit(&f, &once("first")).await;
    until_status(&f, std::slice::from_ref(&first), "pending", 30).await;
    let second = submit(&f, &once("second")).await;
    until_status(&f, std::slice::from_ref(&second), "pending", 30).await;
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    let ok = &until_status(&f, &[first], "confirmed", 30).await[0];
    let failed = &until_status(&f, std::slice::from_ref(&second), "failed", 30).await[0];
    assert_eq!(
        (ok["nonce"].as_u64(), failed["nonce"].as_u64()),
        (Some(0), Some(1))
    );
    let block = failed["block_number"].as_u64().expect("block number");
    assert_eq!(
        failed["error"].as_str().unwrap_or_default(),
        format!(
            r#"reverted on chain in block {block}; replayed there: execution reverted: Used(key: "k")"#
        ),
        "{failed}"
    );
    // Its status envelope says so too.
    let page = f
        .store
        .events_after("tx.anvil", 0, 100)
        .await
        .expect("outbox");
    let said = page.iter().find_map(|e| match &e.envelope {
        ethgate_core::Envelope::Tx(t) if t.tx_id == second && t.status == "failed" => {
            t.error.clone()
        }
        _ => None,
    });
    assert_eq!(
        said.as_deref(),
        failed["error"].as_str(),
        "the failed envelope carries it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_transactions_are_rebroadcast_and_mined() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&f, &keyed(&f, &from, &format!("drop-{i}"))).await);
    }
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
    let first_fee: u128 = first["attempts"][0]["max_fee_per_gas"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("fee");
    // The next blocks cost far more than the first attempt offers.
    let spike = first_fee * 20;
    let _: Value = f
        .anvil
        .rpc(
            "anvil_setNextBlockBaseFeePerGas",
            json!([format!("{spike:#x}")]),
        )
        .await;
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
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
    let spike = 60_000_000_000u128;
    let _: Value = f
        .anvil
        .rpc(
            "anvil_setNextBlockBaseFeePerGas",
            json!([format!("{spike:#x}")]),
        )
        .await;
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = f.manager.get(&id).await.expect("get").expect("exists");
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
