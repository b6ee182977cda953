//! Transactions through `ethgate serve` and its HTTP API, with `kill -9`:
//! 300 requests submitted while ethgate is killed six times; afterwards
//! every idempotency key is mined exactly once (counted on chain, from the
//! `Keyed` event each call emits) and each account's nonces are contiguous.
//! One account's key is a keystore made by `ethgate keys new`, the other a
//! dev key; neither key nor password appears in anything ethgate logged.
//! On PostgreSQL with `ETHGATE_TEST_STORE=postgres`.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U64, keccak256};
use common::{Destination, ShowLog, ready, serve, token};
use ethgate_testkit::{Anvil, free_port};
use serde_json::{Value, json};

const DEV_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const PASSWORD: &str = "keystore-password-under-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_300_requests_mines_each_key_exactly_once_with_contiguous_nonces() {
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let contract = anvil.deploy_event_source().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let bin = env!("CARGO_BIN_EXE_ethgate");

    // A keystore account made by the CLI, funded on anvil.
    let out = std::process::Command::new(bin)
        .args([
            "keys",
            "new",
            "--dir",
            "keys",
            "--password-env",
            "OPS_PASSWORD",
        ])
        .current_dir(dir.path())
        .env("OPS_PASSWORD", PASSWORD)
        .output()
        .expect("keys new");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (addr, file) = line.split_once(' ').expect("address and file");
    let keystore_account: Address = addr.parse().expect("address");
    let file = std::path::Path::new(file)
        .strip_prefix(dir.path())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|_| file.into());
    let _: Value = anvil
        .rpc(
            "anvil_setBalance",
            json!([keystore_account, "0x56bc75e2d63100000"]),
        )
        .await;

    let hook = common::Webhook::start(u64::MAX).await;
    let port = free_port();
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\n\n\
             [[sinks]]\nname = \"hook\"\n{}\n\n\
             [tx]\nallow_dev_keys = true\nresubmit_after = \"2s\"\nbump_after = \"20s\"\npoll_interval = \"200ms\"\nsinks = [\"hook\"]\n\n\
             [[accounts]]\nchain = \"anvil\"\nkeystore = \"{}\"\npassword_env = \"OPS_PASSWORD\"\n\n\
             [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"DEV_KEY\"\n\n\
             [[pools]]\nname = \"ops\"\naccounts = [\"{keystore_account:#x}\", \"0x70997970c51812dc3a010c7d01b50e0d17dc79c8\"]\n",
            anvil.url,
            hook.sink_toml(),
            file.display()
        ),
    )
    .expect("config");
    let url = ethgate_testkit::store_url(dir.path()).await;
    let env = [
        ("ETHGATE_STORE__URL", url.clone()),
        ("OPS_PASSWORD", PASSWORD.to_owned()),
        ("DEV_KEY", DEV_KEY.to_owned()),
        ("ETHGATE_LOG", "debug".to_owned()),
        ("HOOK_SECRET", hook.env()[0].1.clone()),
    ];
    let token = token(dir.path(), &env, "tx:write");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let body = |key: &str| {
        json!({"chain": "anvil", "from": "ops", "to": format!("{contract:#x}"),
               "function": "keyed(string)", "args": [key], "idempotency_key": key})
    };

    // Six rounds: start, submit 50 (retrying those the last kill cut off),
    // let some get signed and sent, kill -9.
    let keys: Vec<String> = (0..300).map(|i| format!("order-{i}")).collect();
    let mut unsent: Vec<String> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut interrupted = 0;
    for round in 0..6 {
        let mut ethgate = serve(dir.path(), &env);
        ready(&http, &base).await;
        let batch: Vec<String> = unsent
            .drain(..)
            .chain(keys[round * 50..(round + 1) * 50].iter().cloned())
            .collect();
        let posts = batch.iter().map(|k| {
            let req = http
                .post(format!("{base}/v1/transactions"))
                .bearer_auth(&token)
                .json(&body(k));
            async move { (k.clone(), req.send().await) }
        });
        for (k, r) in futures::future::join_all(posts).await {
            match r {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await.expect("json");
                    let id = v["id"].as_str().expect("id").to_owned();
                    if let Some(old) = ids.insert(k.clone(), id.clone()) {
                        assert_eq!(old, id, "a retried key maps to the same transaction");
                    }
                }
                _ => unsent.push(k),
            }
        }
        tokio::time::sleep(Duration::from_millis(300 + 150 * round as u64)).await;
        ethgate.kill().await.expect("SIGKILL");
        let store = ethgate_store::Store::connect(&url).await.expect("store");
        for status in [
            ethgate_core::TxStatus::Queued,
            ethgate_core::TxStatus::Pending,
            ethgate_core::TxStatus::Mined,
        ] {
            interrupted += store
                .txs(Some(status), None, 1000)
                .await
                .expect("list")
                .len();
        }
    }
    eprintln!("requests in flight at the six kills: {interrupted}");
    assert!(
        interrupted > 0,
        "the kills landed while requests were in flight"
    );
    let mut ethgate = serve(dir.path(), &env);
    ready(&http, &base).await;
    for k in unsent.drain(..) {
        let r = http
            .post(format!("{base}/v1/transactions"))
            .bearer_auth(&token)
            .json(&body(&k))
            .send()
            .await
            .expect("post");
        let v: Value = r.json().await.expect("json");
        ids.insert(k, v["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 300);

    // Every request confirmed.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list: Value = http
            .get(format!(
                "{base}/v1/transactions?status=confirmed&limit=1000"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let n = list["transactions"].as_array().map_or(0, Vec::len);
        if n == 300 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of 300 confirmed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Status envelopes reached the webhook: every request's `confirmed`,
    // after its `pending`.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = hook.received().await;
        let mut confirmed = std::collections::HashSet::new();
        let mut pending = std::collections::HashSet::new();
        for d in &got {
            let e = &d.envelope;
            assert_eq!(e["kind"], "tx", "only status envelopes on this sink");
            let id = e["tx_id"].as_str().unwrap_or_default().to_owned();
            match e["status"].as_str() {
                Some("pending") => {
                    pending.insert(id);
                }
                Some("confirmed") => {
                    assert!(pending.contains(&id), "{id}: confirmed before pending");
                    confirmed.insert(id);
                }
                _ => {}
            }
        }
        if ids.values().all(|id| confirmed.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status envelopes of {} of 300 confirmations delivered",
            confirmed.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The same status stream through the pull API. It carries callers'
    // metadata and keys: it belongs to the sending rights, not to
    // events:read.
    let events_only = common::token(dir.path(), &env, "events:read");
    let refused = http
        .get(format!("{base}/v1/streams/tx.anvil/events?after=0&limit=5"))
        .bearer_auth(&events_only)
        .send()
        .await
        .expect("pull");
    assert_eq!(refused.status().as_u16(), 403);
    let reader = common::token(dir.path(), &env, "tx:write");
    let page: Value = http
        .get(format!("{base}/v1/streams/tx.anvil/events?after=0&limit=5"))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("pull")
        .json()
        .await
        .expect("json");
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 5, "{page}");
    assert!(
        events
            .iter()
            .all(|e| e["kind"] == "tx" && e["seq"].is_u64())
    );
    ethgate.kill().await.expect("stop");

    // On chain: each key exactly once; nonces contiguous per account.
    let head = anvil.head().await;
    let topic = keccak256("Keyed(address,string)");
    let logs: Vec<Value> = anvil
        .rpc(
            "eth_getLogs",
            json!([{"address": contract, "fromBlock": "0x0", "toBlock": format!("{head:#x}"), "topics": [topic]}]),
        )
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for l in &logs {
        let data = l["data"].as_str().expect("data");
        let bytes = alloy_primitives::hex::decode(data).expect("hex");
        let len = alloy_primitives::U256::from_be_slice(&bytes[32..64]).to::<usize>();
        let key = String::from_utf8(bytes[64..64 + len].to_vec()).expect("utf8");
        *counts.entry(key).or_default() += 1;
    }
    assert_eq!(counts.len(), 300, "every key mined");
    assert!(
        counts.values().all(|c| *c == 1),
        "a key mined twice: {:?}",
        counts.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
    let mut mined_by: HashMap<String, u64> = HashMap::new();
    for l in &logs {
        let tx: Value = anvil
            .rpc("eth_getTransactionByHash", json!([l["transactionHash"]]))
            .await;
        *mined_by
            .entry(tx["from"].as_str().expect("from").to_lowercase())
            .or_default() += 1;
    }
    for (account, n) in &mined_by {
        let count: U64 = anvil
            .rpc("eth_getTransactionCount", json!([account, "latest"]))
            .await;
        assert_eq!(
            count.to::<u64>(),
            *n,
            "{account}: every nonce used by exactly one of our calls — none skipped, none reused"
        );
    }
    assert_eq!(mined_by.len(), 2, "the pool used both accounts");

    // Nothing secret in anything ethgate logged, at debug level.
    let log = std::fs::read_to_string(dir.path().join("ethgate.log")).expect("log");
    assert!(log.len() > 1_000, "debug logging was captured");
    for secret in [DEV_KEY, DEV_KEY.trim_start_matches("0x"), PASSWORD] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}
