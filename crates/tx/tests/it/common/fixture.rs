//! The transaction manager's anvil fixture: a fresh anvil with the
//! EventSource contract, a SQLite store, accounts on dev keys and a
//! running manager, plus the helpers the tests drive it with. Included by
//! the test files that use it (`#[path]`), not through `common`, which
//! every test binary compiles.
#![allow(dead_code)] // each test binary uses a part of it

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use ethgate_store::Store;
use ethgate_testkit::{Anvil, Proxy};
use ethgate_tx::fees::Caps;
use ethgate_tx::{Settings, TxManager};
use serde_json::{Value, json};
use tokio::sync::watch;

pub struct Fixture {
    pub anvil: Anvil,
    pub contract: Address,
    pub manager: Arc<TxManager>,
    pub store: Store,
    pub accounts: Vec<Address>,
    /// The JSON-RPC proxy the manager reaches anvil through, when asked
    /// for one (to count or disturb its calls).
    pub proxy: Option<Proxy>,
    /// Every proxy, in the chain's endpoint order, when asked for several.
    pub proxies: Vec<Proxy>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// The store's database, for a test that reaches into it (a trigger
    /// that refuses some writes, say).
    pub fn db_url(&self) -> String {
        crate::common::db_url(&self._dir)
    }
}

/// How anvil mines once the contract is deployed.
#[derive(Clone, Copy)]
pub enum Mining {
    Auto,
    EverySecond,
    Off,
}

/// The custom errors EventSource's ABI declares.
pub fn event_source_errors() -> Vec<alloy_json_abi::Error> {
    let artifact: Value = serde_json::from_str(ethgate_testkit::EVENT_SOURCE).expect("artifact");
    let abi: alloy_json_abi::JsonAbi =
        serde_json::from_value(artifact["abi"].clone()).expect("ABI");
    abi.errors().cloned().collect()
}

pub async fn fixture(mining: Mining, accounts: usize, settings: Settings) -> Fixture {
    fixture_capped(mining, accounts, settings, Caps::default()).await
}

pub async fn fixture_capped(
    mining: Mining,
    accounts: usize,
    settings: Settings,
    caps: Caps,
) -> Fixture {
    fixture_with(mining, accounts, settings, caps, false).await
}

pub async fn fixture_with(
    mining: Mining,
    accounts: usize,
    settings: Settings,
    caps: Caps,
    legacy: bool,
) -> Fixture {
    build(mining, accounts, settings, caps, legacy, 0).await
}

/// A fixture whose manager reaches anvil through a [`Proxy`] (`f.proxy`).
pub async fn fixture_proxied(mining: Mining, accounts: usize, settings: Settings) -> Fixture {
    build(mining, accounts, settings, Caps::default(), false, 1).await
}

/// A fixture whose chain has `n` endpoints, each a [`Proxy`] before the
/// same anvil (`f.proxies`, in order).
pub async fn fixture_endpoints(mining: Mining, n: usize, settings: Settings) -> Fixture {
    build(mining, 1, settings, Caps::default(), false, n).await
}

async fn build(
    mining: Mining,
    accounts: usize,
    settings: Settings,
    caps: Caps,
    legacy: bool,
    proxied: usize,
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
    let store = crate::common::store(&dir).await;
    let mut proxies = Vec::new();
    for _ in 0..proxied {
        proxies.push(Proxy::start(&anvil.url).await);
    }
    let urls: Vec<&str> = match proxies.is_empty() {
        true => vec![anvil.url.as_str()],
        false => proxies.iter().map(|p| p.url.as_str()).collect(),
    };
    let pool = crate::common::pool_of(&urls);
    let proxy = proxies.first().cloned();
    let (list, addresses) = crate::common::accounts(&pool, accounts, caps, legacy);
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
        proxy,
        proxies,
        _stop: stop,
        _dir: dir,
    }
}

pub fn fast() -> Settings {
    Settings {
        resubmit_after: 1,
        bump_after: 3,
        poll: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// `fast()` with no replacement on the bump interval (an hour): whatever
/// gets the requests mined, it is not a bump.
pub fn without_bumps() -> Settings {
    Settings {
        bump_after: 3_600,
        ..fast()
    }
}

pub fn keyed(f: &Fixture, from: &str, key: &str) -> Value {
    json!({
        "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
        "function": "keyed(string)", "args": [key], "idempotency_key": key,
    })
}

/// Submits a request the manager must accept; its id.
pub async fn submit(f: &Fixture, body: &Value) -> String {
    f.manager.submit(body).await.expect("accepted").id
}

/// Makes the next blocks' base fee 20 times the max fee of `view`'s first
/// attempt, mining one such block: no attempt at that fee is mined again
/// and the market reads past it. Returns the new base fee.
pub async fn price_out(f: &Fixture, view: &Value) -> u128 {
    let first_fee: u128 = view["attempts"][0]["max_fee_per_gas"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("fee");
    let spike = first_fee * 20;
    spike_base_fee(f, spike).await;
    spike
}

/// Makes the next block's base fee `fee` and mines it.
pub async fn spike_base_fee(f: &Fixture, fee: u128) {
    let _: Value = f
        .anvil
        .rpc(
            "anvil_setNextBlockBaseFeePerGas",
            json!([format!("{fee:#x}")]),
        )
        .await;
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
}

/// Submits requests in order, each accepted; their ids.
pub async fn submit_all(f: &Fixture, bodies: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(submit(f, &body).await);
    }
    ids
}

/// Waits until every id has `status`; returns their views.
pub async fn until_status(f: &Fixture, ids: &[String], status: &str, secs: u64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut views = Vec::new();
        for id in ids {
            views.push(
                serde_json::to_value(f.manager.get(id).await.expect("get").expect("exists"))
                    .expect("json"),
            );
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
