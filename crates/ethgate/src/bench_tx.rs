//! `ethgate bench tx`: in one run on anvil, the same number of contract
//! calls sent by a raw sender (signs locally with pipelined nonces, sends
//! with `eth_sendRawTransaction`, waits for the nonce count) and by ethgate
//! (HTTP request → simulation → nonce → sign → record → broadcast → receipt
//! → `confirmed` at depth 1, i.e. mined), over 1 and 8 accounts. Prints
//! tx/s for both, the ratio, and the API's latency p50/p99.
//!
//! Both sides run against a fresh anvil with automine off and a block
//! mined every 200 ms by the bench, so neither is timed by anvil's
//! automine (which stalls under concurrent senders).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_dyn_abi::{DynSolValue, JsonAbiExt};
use alloy_json_abi::Function;
use alloy_primitives::{Address, Bytes, TxKind, U64, U256};
use anyhow::Context;
use ethgate_api::{ApiState, router};
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_keys::{LocalKey, Signer, UnsignedTx};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, DEV_KEYS};
use ethgate_tx::{Account, Settings, TxManager};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Requests in flight from the benchmark's client (and raw sends).
const CONCURRENCY: usize = 64;

struct Chain {
    anvil: Anvil,
    contract: Address,
    _miner: tokio::task::JoinHandle<()>,
}

async fn chain() -> anyhow::Result<Chain> {
    let anvil = Anvil::start(&["--gas-limit", "300000000"]).await;
    let contract = anvil.deploy_event_source().await;
    let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
    let url = anvil.url.clone();
    let miner = tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []});
            let _ = http.post(&url).json(&body).send().await;
        }
    });
    Ok(Chain {
        anvil,
        contract,
        _miner: miner,
    })
}

fn calldata(key: &str) -> anyhow::Result<Bytes> {
    let f = Function::parse("keyed(string)")?;
    Ok(f.abi_encode_input(&[DynSolValue::String(key.into())])?
        .into())
}

async fn nonce_count(anvil: &Anvil, a: Address) -> u64 {
    let n: U64 = anvil
        .rpc("eth_getTransactionCount", json!([a, "latest"]))
        .await;
    n.to::<u64>()
}

/// The raw sender: sign with pipelined nonces, send, wait until mined.
async fn raw(n: usize, accounts: usize) -> anyhow::Result<Duration> {
    let c = chain().await?;
    let keys: Vec<LocalKey> = DEV_KEYS[1..=accounts]
        .iter()
        .map(|k| LocalKey::dev(k, "dev key"))
        .collect::<Result<_, _>>()?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut raws = Vec::with_capacity(n);
    for i in 0..n {
        let key = &keys[i % accounts];
        let signed = key.sign_sync(UnsignedTx::Eip1559(TxEip1559 {
            chain_id: 31337,
            nonce: (i / accounts) as u64,
            gas_limit: 100_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(c.contract),
            value: U256::ZERO,
            access_list: Default::default(),
            input: calldata(&format!("raw-{i}"))?,
        }))?;
        raws.push(format!("0x{}", hex::encode(signed.raw)));
    }
    let url = c.anvil.url.clone();
    let sent: Vec<anyhow::Result<()>> = futures::stream::iter(raws)
        .map(|raw| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]});
                let v: Value = http.post(&url).json(&body).send().await?.json().await?;
                anyhow::ensure!(v.get("error").is_none(), "send refused: {v}");
                Ok(())
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let per = (n / accounts) as u64;
    for k in &keys {
        while nonce_count(&c.anvil, k.address()).await < per {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(started.elapsed())
}

/// ethgate: the HTTP API in front of the transaction manager.
async fn ours(n: usize, accounts: usize) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let c = chain().await?;
    let dir = tempfile::tempdir()?;
    let store = Store::connect(&format!("sqlite://{}/bench.db", dir.path().display())).await?;
    let pool = Arc::new(EndpointPool::new(PoolConfig {
        chain: "anvil".into(),
        urls: vec![c.anvil.url.clone()],
        request_timeout: Duration::from_secs(10),
        max_rounds: 3,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
    })?);
    let mut list = Vec::new();
    let mut members = Vec::new();
    for k in &DEV_KEYS[1..=accounts] {
        let signer = Arc::new(LocalKey::dev(k, "dev key")?);
        members.push(signer.address());
        list.push(Account {
            chain: "anvil".into(),
            chain_id: 31337,
            signer,
            pool: pool.clone(),
            caps: Default::default(),
            legacy: false,
        });
    }
    let settings = Settings {
        // As the raw sender: every nonce may be in flight at once.
        max_in_flight: 4_096,
        poll: Duration::from_millis(50),
        ..Settings::default()
    };
    let manager = Arc::new(TxManager::new(
        store.clone(),
        settings,
        HashMap::from([("anvil".to_owned(), 31337)]),
        list,
        HashMap::from([("bench".to_owned(), members)]),
    ));
    let (stop, stopped) = watch::channel(false);
    manager.spawn(&stopped);
    let (id, token) = ethgate_api::new_token();
    store
        .insert_token(
            &id,
            &ethgate_api::hash_token(&token),
            &["tx:write".to_owned()],
            "bench",
        )
        .await?;
    let state = ApiState {
        store: store.clone(),
        streams: Arc::default(),
        routes: Arc::default(),
        sinks: Arc::default(),
        chains: Arc::default(),
        sync: Default::default(),
        metrics: None,
        max_wait: Duration::from_secs(1),
        tx: Some(manager),
        pools: None,
        tokens: Default::default(),
        stopping: stopped.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let http = reqwest::Client::new();
    let contract = format!("{:#x}", c.contract);
    let started = Instant::now();
    let latencies: Vec<anyhow::Result<Duration>> = futures::stream::iter(0..n)
        .map(|i| {
            let req = http
                .post(format!("{base}/v1/transactions"))
                .bearer_auth(&token)
                .json(&json!({"chain": "anvil", "from": "bench", "to": contract,
                    "function": "keyed(string)", "args": [format!("ours-{i}")],
                    "gas_limit": 100_000, "idempotency_key": format!("ours-{i}")}));
            async move {
                let t = Instant::now();
                let r = req.send().await?;
                anyhow::ensure!(r.status().as_u16() == 202, "API answered {}", r.status());
                Ok(t.elapsed())
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let latencies = latencies.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let accepted = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.count_txs("confirmed").await? < n as u64 {
        anyhow::ensure!(Instant::now() < deadline, "not all mined within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let _ = stop.send(true);
    println!("    (ethgate: all {n} accepted after {accepted:.2?}, all mined after {took:.2?})");
    Ok((took, latencies))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Runs the benchmark and prints its figures.
pub async fn tx(n: usize) -> anyhow::Result<()> {
    anyhow::ensure!(n >= 8, "--txs must be at least 8");
    println!(
        "transactions: {n} contract calls per run, a block every 200 ms, {CONCURRENCY} requests in flight…"
    );
    for accounts in [1, 8] {
        let n = n - n % accounts;
        let raw = raw(n, accounts).await.context("raw sender")?;
        let (ours, mut lat) = ours(n, accounts).await.context("ethgate")?;
        lat.sort();
        let (r, o) = (n as f64 / raw.as_secs_f64(), n as f64 / ours.as_secs_f64());
        println!("  {accounts} account(s):");
        println!("    raw sign + send, pipelined nonces, to mined: {r:>8.0} tx/s  ({raw:.2?})");
        println!("    ethgate API request -> mined:               {o:>8.0} tx/s  ({ours:.2?})");
        println!("    ratio: {:.2}  (target >= 0.70)", o / r);
        println!(
            "    API latency p50 {:.2?}, p99 {:.2?}  (target p99 < 10 ms)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    Ok(())
}
