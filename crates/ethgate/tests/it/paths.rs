//! Shipped paths, each through the real binary and real anvils: two chains
//! in one process (a stream and a sending account on each), streams that
//! wait for the node's `safe` and `finalized` blocks, `ethgate sync` run to
//! completion, and the HTTP 409 for an idempotency key reused with another
//! body.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{ShowLog, ready, serve, token, until};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, DEV_KEYS, assert_equals_truth, free_port, outbox};
use serde_json::{Value, json};

const TRANSFER: &str = "event Transfer(address indexed from, address indexed to, uint256 value)";
/// anvil's account 1, whose key is `DEV_KEYS[1]`.
const SENDER: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

fn chain(name: &str, id: u64, url: &str) -> String {
    format!(
        "[[chains]]\nname = \"{name}\"\nchain_id = {id}\nrpc = [\"{url}\"]\npoll_interval = \"100ms\"\n\n"
    )
}

fn stream(name: &str, chain: &str, contract: alloy_primitives::Address, extra: &str) -> String {
    format!(
        "[[streams]]\nname = \"{name}\"\nchain = \"{chain}\"\naddresses = [\"{contract:#x}\"]\n\
         events = [\"{TRANSFER}\"]\n{extra}\n"
    )
}

async fn store(dir: &Path) -> Store {
    Store::connect(&format!("sqlite://{}/data/ethgate.db", dir.display()))
        .await
        .expect("store")
}

async fn cursor(store: &Store, stream: &str) -> Option<u64> {
    store
        .stream(stream)
        .await
        .expect("read")
        .and_then(|r| r.cursor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_chains_in_one_process_each_with_a_stream_and_a_sender() {
    let a = Anvil::start(&[]).await;
    let b = Anvil::start(&["--chain-id", "31338"]).await;
    let (ca, cb) = (a.deploy_event_source().await, b.deploy_event_source().await);
    a.burst(ca, 5, 0).await;
    b.burst(cb, 7, 100).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let port = free_port();
    let config = [
        format!("[api]\nlisten = \"127.0.0.1:{port}\"\n\n"),
        chain("a", 31337, &a.url),
        chain("b", 31338, &b.url),
        stream("on-a", "a", ca, ""),
        stream("on-b", "b", cb, ""),
        "[tx]\nallow_dev_keys = true\npoll_interval = \"100ms\"\n\n".to_owned(),
        "[[accounts]]\nchain = \"a\"\ndev_key_env = \"DEV_KEY\"\n\n".to_owned(),
        "[[accounts]]\nchain = \"b\"\ndev_key_env = \"DEV_KEY\"\n".to_owned(),
    ]
    .concat();
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let env = [("DEV_KEY", DEV_KEYS[1].to_owned())];
    let token = token(dir.path(), &env, "tx:write");
    let mut ethgate = serve(dir.path(), &env);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    ready(&http, &base).await;
    let mut ids = Vec::new();
    for (chain, contract) in [("a", ca), ("b", cb)] {
        let body = json!({"chain": chain, "from": SENDER, "to": format!("{contract:#x}"),
            "function": "transfer(address,uint256)", "args": [SENDER, 5], "idempotency_key": chain});
        let r = http
            .post(format!("{base}/v1/transactions"))
            .bearer_auth(&token)
            .json(&body);
        let v: Value = r.send().await.expect("post").json().await.expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        until(60, "each chain's request confirmed", || async {
            let v: Value = http
                .get(format!("{base}/v1/transactions/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["status"] == "confirmed").then_some(())
        })
        .await;
    }
    let s = store(dir.path()).await;
    for (name, anvil, contract) in [("on-a", &a, ca), ("on-b", &b, cb)] {
        let head = anvil.head().await;
        until(60, "the stream at its chain's head", || async {
            (cursor(&s, name).await == Some(head)).then_some(())
        })
        .await;
        // Each stream holds its own chain's logs — the call's among them.
        assert_equals_truth(
            &outbox(&s, name).await,
            &anvil.logs(contract, 0, head).await,
        );
    }
    ethgate.kill().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_and_finalized_streams_record_only_up_to_the_nodes_blocks() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..10 {
        anvil.burst(contract, 2, i * 2).await;
        anvil.mine(9).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let config = [
        format!("[api]\nlisten = \"127.0.0.1:{}\"\n\n", free_port()),
        chain("anvil", 31337, &anvil.url),
        stream("safe", "anvil", contract, "confirmations = \"safe\""),
        stream("final", "anvil", contract, "confirmations = \"finalized\""),
    ]
    .concat();
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let mut ethgate = serve(dir.path(), &[]);
    let s = store(dir.path()).await;
    let tag = |t: &'static str| {
        let anvil = &anvil;
        async move {
            let b: Value = anvil.rpc("eth_getBlockByNumber", json!([t, false])).await;
            u64::from_str_radix(
                b["number"]
                    .as_str()
                    .expect("number")
                    .trim_start_matches("0x"),
                16,
            )
            .expect("hex")
        }
    };
    for round in 0..2 {
        let (safe, finalized) = (tag("safe").await, tag("finalized").await);
        assert!(finalized < safe && safe < anvil.head().await);
        for (name, at) in [("safe", safe), ("final", finalized)] {
            until(60, "the stream at the node's block", || async {
                (cursor(&s, name).await == Some(at)).then_some(())
            })
            .await;
            // Nothing past it; exactly the chain up to it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(cursor(&s, name).await, Some(at), "{name} stays at {at}");
            assert_equals_truth(&outbox(&s, name).await, &anvil.logs(contract, 0, at).await);
        }
        if round == 0 {
            anvil.burst(contract, 3, 1_000).await;
            anvil.mine(40).await;
        }
    }
    ethgate.kill().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_runs_to_its_block_and_exits() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for i in 0..20 {
        anvil.burst(contract, 4, i * 4).await;
        anvil.mine(5).await;
    }
    let to = anvil.head().await - 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = [
        chain("anvil", 31337, &anvil.url),
        stream("s", "anvil", contract, ""),
    ]
    .concat();
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["sync", "--stream", "s", "--to", &to.to_string()])
        .current_dir(dir.path())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("sync exits")
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = store(dir.path()).await;
    assert_eq!(
        cursor(&s, "s").await,
        Some(to),
        "recorded exactly up to --to"
    );
    assert_equals_truth(&outbox(&s, "s").await, &anvil.logs(contract, 0, to).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_body_is_a_409_and_changes_nothing() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let port = free_port();
    let config = [
        format!("[api]\nlisten = \"127.0.0.1:{port}\"\n\n"),
        chain("anvil", 31337, &anvil.url),
        "[tx]\nallow_dev_keys = true\n\n[[accounts]]\nchain = \"anvil\"\ndev_key_env = \"DEV_KEY\"\n"
            .to_owned(),
    ]
    .concat();
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let env = [("DEV_KEY", DEV_KEYS[1].to_owned())];
    let token = token(dir.path(), &env, "tx:write");
    let mut ethgate = serve(dir.path(), &env);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    ready(&http, &base).await;
    let body = |key: &str| {
        json!({"chain": "anvil", "from": SENDER, "to": format!("{contract:#x}"),
               "function": "keyed(string)", "args": [key], "idempotency_key": "order-1"})
    };
    let post = |body: Value| {
        let r = http
            .post(format!("{base}/v1/transactions"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = r.send().await.expect("post");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (status, first) = post(body("first")).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = post(body("first")).await;
    assert_eq!(
        (status, &again["id"]),
        (200, &first["id"]),
        "a retry is the same request"
    );
    let (status, other) = post(body("other")).await;
    assert_eq!(status, 409, "{other}");
    assert_eq!(other["error"]["field"], "idempotency_key", "{other}");
    let list: Value = http
        .get(format!("{base}/v1/transactions"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["transactions"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    ethgate.kill().await.expect("stop");
}
