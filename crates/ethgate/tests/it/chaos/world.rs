//! One chaos run: anvil mining a block every 250 ms, ethgate serve
//! reaching it only through chaos proxies, a stream on the contract the
//! calls emit from, requests submitted through the API (with `kill -9` of
//! ethgate between batches when asked), and then the chain read directly
//! as the truth.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U64, keccak256};
use ethgate_chaos::{ChaosProxy, Modes, Stats};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, DEV_KEYS, apply, assert_equals_truth, free_port, outbox};
use serde_json::{Value, json};
use tokio::process::Child;

use crate::common::{ShowLog, ready, serve, token};

/// A run to make.
pub struct Run {
    /// Endpoints in `rpc = [...]` order, each a chaos proxy with these modes.
    pub endpoints: Vec<Modes>,
    /// Sending accounts (anvil's dev accounts from 1).
    pub accounts: usize,
    /// Requests, each a `keyed(key)` call.
    pub requests: usize,
    /// `kill -9` of ethgate this many times while requests are in flight.
    pub kills: usize,
    /// The endpoints' request timeout.
    pub timeout: &'static str,
}

/// What the run ended with, checked against the chain by [`Ended::check`].
pub struct Ended {
    anvil: Anvil,
    contract: Address,
    /// Request id by key.
    ids: HashMap<String, String>,
    /// Each request as the API shows it at the end, by id.
    views: HashMap<String, Value>,
    senders: Vec<Address>,
    store: Store,
    /// What each proxy did.
    pub stats: Vec<Stats>,
    _log: ShowLog,
    _dir: tempfile::TempDir,
}

const BLOCK: Duration = Duration::from_millis(250);

fn config(port: u16, rpc: &[String], contract: Address, accounts: usize, timeout: &str) -> String {
    let urls: Vec<String> = rpc.iter().map(|u| format!("\"{u}\"")).collect();
    let mut toml = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [{}]\npoll_interval = \"200ms\"\nrequest_timeout = \"{timeout}\"\n\n\
         [[streams]]\nname = \"keyed\"\nchain = \"anvil\"\naddresses = [\"{contract:#x}\"]\n\
         events = [\"event Keyed(address indexed sender, string key)\"]\n\n\
         [tx]\nallow_dev_keys = true\nresubmit_after = \"2s\"\nbump_after = \"10s\"\npoll_interval = \"200ms\"\n\n",
        urls.join(", ")
    );
    for i in 0..accounts {
        toml.push_str(&format!(
            "[[accounts]]\nchain = \"anvil\"\ndev_key_env = \"DEV_KEY_{i}\"\n\n"
        ));
    }
    toml
}

fn address(key: &str) -> Address {
    let signer = ethgate_keys::LocalKey::dev(key, "chaos").expect("dev key");
    ethgate_keys::Signer::address(&signer)
}

/// Mines a block every [`BLOCK`] until dropped.
struct Miner(tokio::task::JoinHandle<()>);

impl Drop for Miner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn mine(url: String) -> Miner {
    Miner(tokio::spawn(async move {
        let client = reqwest::Client::new();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []});
        loop {
            tokio::time::sleep(BLOCK).await;
            let _ = client.post(&url).json(&body).send().await;
        }
    }))
}

/// Submits `keys` through the API; the ids of those accepted, and the keys
/// that were not (ethgate died under them).
async fn submit(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    contract: Address,
    keys: &[String],
) -> (Vec<(String, String)>, Vec<String>) {
    let posts = keys.iter().map(|k| {
        let body = json!({"chain": "anvil", "from": "ops", "to": format!("{contract:#x}"),
                          "function": "keyed(string)", "args": [k], "idempotency_key": k});
        let req = http
            .post(format!("{base}/v1/transactions"))
            .bearer_auth(token)
            .json(&body);
        async move { (k.clone(), req.send().await) }
    });
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for (k, r) in futures::future::join_all(posts).await {
        match r {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.expect("json");
                ok.push((k, v["id"].as_str().expect("id").to_owned()));
            }
            _ => failed.push(k),
        }
    }
    (ok, failed)
}

/// Every request's view, by id, through the API.
async fn views(http: &reqwest::Client, base: &str, token: &str) -> HashMap<String, Value> {
    let list: Value = http
        .get(format!("{base}/v1/transactions?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|v| (v["id"].as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect()
}

impl Run {
    /// Makes the run: every request accepted and then confirmed (or the
    /// test fails with the counts it saw).
    pub async fn make(self) -> Ended {
        let anvil = Anvil::start(&["--no-mining", "--gas-limit", "300000000"]).await;
        let miner = mine(anvil.url.clone());
        let contract = anvil.deploy_event_source().await;
        let mut proxies = Vec::new();
        for (k, modes) in self.endpoints.iter().enumerate() {
            let modes = Modes {
                seed: Some(7 + k as u64),
                ..modes.clone()
            };
            let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
            proxies.push(
                ChaosProxy::start(&anvil.url, any, modes)
                    .await
                    .expect("proxy"),
            );
        }
        let rpc: Vec<String> = proxies.iter().map(|p| p.url.clone()).collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ShowLog(dir.path().to_owned());
        let port = free_port();
        let cfg = config(port, &rpc, contract, self.accounts, self.timeout);
        std::fs::write(dir.path().join("ethgate.toml"), cfg).expect("config");
        let keys = &DEV_KEYS[1..=self.accounts];
        let senders: Vec<Address> = keys.iter().map(|k| address(k)).collect();
        let mut pool = "[[pools]]\nname = \"ops\"\naccounts = [".to_owned();
        let listed: Vec<String> = senders.iter().map(|a| format!("\"{a:#x}\"")).collect();
        pool.push_str(&listed.join(", "));
        pool.push_str("]\n");
        let path = dir.path().join("ethgate.toml");
        let mut cfg = std::fs::read_to_string(&path).expect("config");
        cfg.push_str(&pool);
        std::fs::write(&path, cfg).expect("config");
        let env: Vec<(String, String)> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("DEV_KEY_{i}"), (*k).to_owned()))
            .collect();
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let token = token(dir.path(), &env, "tx:write");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();

        let keys: Vec<String> = (0..self.requests).map(|i| format!("call-{i}")).collect();
        let mut ids: HashMap<String, String> = HashMap::new();
        let rounds = self.kills + 1;
        let per_round = keys.len().div_ceil(rounds);
        let mut unsent: Vec<String> = Vec::new();
        let mut ethgate: Child = serve(dir.path(), &env);
        for round in 0..rounds {
            ready(&http, &base).await;
            let batch: Vec<String> = unsent
                .drain(..)
                .chain(keys.iter().skip(round * per_round).take(per_round).cloned())
                .collect();
            let (ok, failed) = submit(&http, &base, &token, contract, &batch).await;
            for (k, id) in ok {
                if let Some(old) = ids.insert(k, id.clone()) {
                    assert_eq!(old, id, "a retried key names the same request");
                }
            }
            unsent.extend(failed);
            if round + 1 < rounds {
                // Killed at a moment that differs from round to round.
                let wait = 200 + (round as u64 * 613) % 1_500;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                ethgate.kill().await.expect("SIGKILL");
                ethgate = serve(dir.path(), &env);
            }
        }
        ready(&http, &base).await;
        let (ok, failed) = submit(&http, &base, &token, contract, &unsent).await;
        assert!(failed.is_empty(), "requests refused after the last start");
        ids.extend(ok);
        assert_eq!(ids.len(), self.requests, "every request accepted");

        let deadline = Instant::now() + Duration::from_secs(240);
        let views = loop {
            let views = views(&http, &base, &token).await;
            let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
            for v in views.values() {
                *by_status
                    .entry(v["status"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            if by_status.get("confirmed") == Some(&self.requests) {
                break views;
            }
            assert!(
                Instant::now() < deadline,
                "not every request confirmed: {by_status:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        drop(miner);
        // The stream catches up with the last block before it is read.
        let store = Store::connect(&format!(
            "sqlite://{}/data/ethgate.db",
            dir.path().display()
        ))
        .await
        .expect("store");
        let head = anvil.head().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cursor = store.stream("keyed").await.expect("stream");
            if cursor.and_then(|c| c.cursor) == Some(head) {
                break;
            }
            assert!(Instant::now() < deadline, "the stream never reached {head}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ethgate.kill().await.expect("stop");
        Ended {
            anvil,
            contract,
            ids,
            views,
            senders,
            store,
            stats: proxies.iter().map(ChaosProxy::stats).collect(),
            _log: log,
            _dir: dir,
        }
    }
}

/// The key a `Keyed(address,string)` log carries.
fn key_of(log: &Value) -> String {
    let data = log["data"].as_str().expect("data");
    let bytes = alloy_primitives::hex::decode(data).expect("hex");
    let len = alloy_primitives::U256::from_be_slice(&bytes[32..64]).to::<usize>();
    String::from_utf8(bytes[64..64 + len].to_vec()).expect("utf8")
}

impl Ended {
    /// The run's guarantees, read from the chain: each request's call
    /// happened exactly once; each account's nonces are used without a
    /// gap and without one left waiting; ethgate's final state of each
    /// request names the transaction, block and nonce the chain has; and
    /// the stream, retractions applied, holds exactly `eth_getLogs`.
    pub async fn check(&self, name: &str) {
        let head = self.anvil.head().await;
        let topic = keccak256("Keyed(address,string)");
        let logs: Vec<Value> = self
            .anvil
            .rpc(
                "eth_getLogs",
                json!([{"address": self.contract, "fromBlock": "0x0", "toBlock": format!("{head:#x}"), "topics": [topic]}]),
            )
            .await;
        let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
        for l in &logs {
            by_key.entry(key_of(l)).or_default().push(l);
        }
        let twice: Vec<_> = by_key
            .iter()
            .filter(|(_, l)| l.len() > 1)
            .map(|(k, _)| k)
            .collect();
        let missing = self.ids.keys().filter(|k| !by_key.contains_key(*k)).count();
        assert!(
            twice.is_empty() && missing == 0,
            "{name}: {} calls on chain for {} requests: {} executed more than once (e.g. {:?}), {missing} never",
            logs.len(),
            self.ids.len(),
            twice.len(),
            twice.iter().take(3).collect::<Vec<_>>()
        );
        let mut nonces: HashMap<String, HashSet<u64>> = HashMap::new();
        for (key, id) in &self.ids {
            let log = by_key[key][0];
            let tx: Value = self
                .anvil
                .rpc("eth_getTransactionByHash", json!([log["transactionHash"]]))
                .await;
            let view = &self.views[id];
            let nonce = tx["nonce"]
                .as_str()
                .and_then(|n| u64::from_str_radix(&n[2..], 16).ok());
            assert_eq!(
                (
                    view["hash"].as_str(),
                    view["block_hash"].as_str(),
                    view["nonce"].as_u64()
                ),
                (
                    log["transactionHash"].as_str(),
                    log["blockHash"].as_str(),
                    nonce
                ),
                "{name}: ethgate's final state of {key} is not the chain's"
            );
            let from = tx["from"].as_str().expect("from").to_lowercase();
            assert!(
                nonces
                    .entry(from)
                    .or_default()
                    .insert(nonce.expect("nonce"))
            );
        }
        for a in &self.senders {
            let from = format!("{a:#x}");
            let used = nonces.get(&from).map_or(0, HashSet::len) as u64;
            let count = |tag: &'static str| async move {
                let n: U64 = self
                    .anvil
                    .rpc("eth_getTransactionCount", json!([a, tag]))
                    .await;
                n.to::<u64>()
            };
            let (latest, pending) = (count("latest").await, count("pending").await);
            assert_eq!(
                (latest, pending),
                (used, used),
                "{name}: {from}'s nonces 0..{latest} are each one request's call, none waits"
            );
        }
        // The event side: a consumer applying retractions holds exactly
        // what eth_getLogs answers.
        let events = apply(&outbox(&self.store, "keyed").await);
        assert_equals_truth(&events, &self.anvil.logs(self.contract, 0, head).await);
    }
}
