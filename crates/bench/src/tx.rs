//! `ethgate bench tx`: in one run on anvil, the same number of contract
//! calls sent by a raw sender (signs locally with pipelined nonces, sends
//! with `eth_sendRawTransaction`, waits for the nonce count) and by ethgate
//! (HTTP request → simulation → nonce → sign → record → broadcast → log or
//! receipt → `confirmed` at depth 1, i.e. mined), over 1 and 8 accounts. Prints
//! tx/s for both, the ratio, and the API's latency p50/p99.
//!
//! The latency of those rounds is the latency of a saturated server (the
//! client keeps K requests in flight, so a request queues behind K − 1
//! others on two shared cores). A last run per account count sends
//! requests at a steady rate instead (open loop, `--rate`), which is how a
//! service's traffic arrives and how a latency target is usually stated.
//!
//! Both sides run against a fresh anvil with automine off and a block
//! mined every 200 ms (`--block-ms`) by the bench, so neither is timed by
//! anvil's automine (which stalls under concurrent senders). Each side's
//! clock starts right after a block is mined: where in the interval a side
//! happened to start would otherwise move its time by up to a block.
//!
//! The block interval sets how large blocks get, and anvil answers a
//! receipt by copying its whole block (every transaction and receipt):
//! its cost per receipt grows with the block, unlike a node that stores
//! receipts (geth, reth). The first raw sender reads no receipts, the
//! second one per call; ethgate finds the calls that left a log with one
//! log query per block and reads receipts only for the others (none
//! here: every `keyed` call emits).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_dyn_abi::{DynSolValue, JsonAbiExt};
use alloy_json_abi::Function;
use alloy_primitives::{Address, Bytes};
use anyhow::Context;
use ethgate_api::{ApiState, router};
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_keys::{LocalKey, Signer};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, DEV_KEYS};
use ethgate_tx::{Account, Settings, TxManager};

use crate::tx_raw::{Learns, raw};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long either side may take before the run is called failed (a
/// node that drops a raw transaction would otherwise stall the raw side
/// for ever: it does not re-send).
pub(crate) const DEADLINE: Duration = Duration::from_secs(600);

pub(crate) struct Chain {
    pub(crate) anvil: Anvil,
    pub(crate) contract: Address,
    miner: tokio::task::JoinHandle<()>,
    /// Blocks mined so far: each side starts right after a block, so
    /// neither gains or loses by where in the interval it happens to start.
    blocks: watch::Receiver<u64>,
}

impl Chain {
    /// Waits until the next block is mined.
    pub(crate) async fn next_block(&mut self) -> anyhow::Result<()> {
        self.blocks
            .changed()
            .await
            .context("the bench's miner stopped")
    }
}

impl Drop for Chain {
    /// The miner stops with its node: left running, it would post to a
    /// port that a later round's node may be given, mining that chain
    /// twice as often.
    fn drop(&mut self) {
        self.miner.abort();
    }
}

pub(crate) async fn chain(block: Duration) -> anyhow::Result<Chain> {
    let anvil = Anvil::start(&["--gas-limit", "300000000"]).await;
    let contract = anvil.deploy_event_source().await;
    let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
    let url = anvil.url.clone();
    let (mined, blocks) = watch::channel(0u64);
    let miner = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut tick = tokio::time::interval(block);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": []});
            if http.post(&url).json(&body).send().await.is_ok() {
                mined.send_modify(|n| *n += 1);
            }
        }
    });
    Ok(Chain {
        anvil,
        contract,
        miner,
        blocks,
    })
}

pub(crate) fn calldata(key: &str) -> anyhow::Result<Bytes> {
    let f = Function::parse("keyed(string)")?;
    Ok(f.abi_encode_input(&[DynSolValue::String(key.into())])?
        .into())
}

/// CPU seconds (user + system) a process has used so far, from
/// `/proc/<pid>/stat`; 0 where that cannot be read.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// One side's run: how long, and the CPU the node and this process used.
pub(crate) struct Run {
    pub(crate) took: Duration,
    pub(crate) node_cpu: f64,
    pub(crate) own_cpu: f64,
}

/// How the bench's client loads the API.
#[derive(Clone, Copy)]
pub(crate) enum Load {
    /// Closed loop: this many requests in flight, the next sent as soon
    /// as one is answered — as fast as the server goes (throughput).
    InFlight(usize),
    /// Open loop: requests at a steady rate, answered or not (latency at
    /// a given load, the way a service's traffic arrives).
    Rate(f64),
}

/// Sends one API request; an error unless it was accepted (202).
async fn accepted(req: reqwest::RequestBuilder) -> anyhow::Result<()> {
    let r = req.send().await?;
    anyhow::ensure!(r.status().as_u16() == 202, "API answered {}", r.status());
    Ok(())
}

/// ethgate: the HTTP API in front of the transaction manager, on a fresh
/// store at `store_url` (a SQLite file in a temporary directory if `None`).
pub(crate) async fn ours(
    n: usize,
    accounts: usize,
    load: Load,
    block: Duration,
    store_url: Option<&str>,
) -> anyhow::Result<(Run, Vec<Duration>)> {
    let mut c = chain(block).await?;
    let dir = tempfile::tempdir()?;
    let url = store_url.map_or_else(
        || format!("sqlite://{}/bench.db", dir.path().display()),
        str::to_owned,
    );
    let store = Store::connect(&url).await?;
    let (stop, stopped) = watch::channel(false);
    let api = gateway(&store, &c.anvil.url, accounts, stopped).await?;
    let contract = format!("{:#x}", c.contract);
    c.next_block().await?;
    let (node0, own0) = (cpu_seconds(c.anvil.pid()), cpu_seconds(None));
    let started = Instant::now();
    let latencies = send_load(&api, &contract, n, load).await?;
    let accepted = started.elapsed();
    all_confirmed(&store, n).await?;
    let took = started.elapsed();
    let run = Run {
        took,
        node_cpu: cpu_seconds(c.anvil.pid()) - node0,
        own_cpu: cpu_seconds(None) - own0,
    };
    let _ = stop.send(true);
    // A run that needed replacements (a bump after `bump_after`, a
    // request moved to a new nonce) is not a steady-state figure: say so.
    let extra = match store.extra_attempts().await? {
        0 => String::new(),
        k => format!("; {k} attempts beyond the first (replacements, new nonces)"),
    };
    println!(
        "      ethgate: all {n} accepted after {accepted:.2?}, all mined after {took:.2?}{extra}"
    );
    Ok((run, latencies))
}

/// A running API: its base URL and a `tx:write` token.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// The `i`th call of a run, from the pool of the bench's accounts.
    fn request(&self, contract: &str, i: usize) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/v1/transactions", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"chain": "anvil", "from": "bench", "to": contract,
                "function": "keyed(string)", "args": [format!("ours-{i}")],
                "gas_limit": 100_000, "idempotency_key": format!("ours-{i}")}))
    }
}

/// The transaction manager over `accounts` dev keys (a pool named
/// `bench`) and the HTTP API in front of it, until `stopped`.
async fn gateway(
    store: &Store,
    node: &str,
    accounts: usize,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Api> {
    let pool = Arc::new(EndpointPool::new(PoolConfig {
        chain: "anvil".into(),
        urls: vec![node.to_owned()],
        request_timeout: Duration::from_secs(10),
        max_rounds: 3,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        chain_id: None,
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
        // As the raw side, which polls the nonce count every 20 ms.
        poll: Duration::from_millis(20),
        // As the raw side, which replaces a nonce anvil parked after
        // RAW_STALL without progress.
        stall_after: crate::tx_raw::RAW_STALL.as_secs(),
        ..Settings::default()
    };
    let chains = HashMap::from([("anvil".to_owned(), 31337)]);
    let pools = HashMap::from([("bench".to_owned(), members)]);
    let manager = Arc::new(TxManager::new(store.clone(), settings, chains, list, pools));
    manager.spawn(&stopped);
    let (id, token) = ethgate_api::new_token();
    store
        .insert_token(&ethgate_store::NewToken {
            hash: ethgate_api::hash_token(&token),
            id,
            scopes: vec!["tx:write".to_owned()],
            label: "bench".into(),
            ..Default::default()
        })
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
        limits: Default::default(),
        policies: Arc::default(),
        guarded: Arc::default(),
        exposure: Default::default(),
        abis: Default::default(),
        stats: Default::default(),
        lease_ttl: Duration::from_secs(5),
        audit: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    // The server stops with the run, so it lets go of the run's store.
    let mut serving = stopped;
    tokio::spawn(async move {
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async move {
                let _ = serving.wait_for(|v| *v).await;
            })
            .await
    });
    let http = reqwest::Client::new();
    Ok(Api { base, token, http })
}

/// Sends `n` calls as `load` says; each one's latency.
async fn send_load(
    api: &Api,
    contract: &str,
    n: usize,
    load: Load,
) -> anyhow::Result<Vec<Duration>> {
    let latencies: Vec<anyhow::Result<Duration>> = match load {
        Load::InFlight(k) => {
            futures::stream::iter(0..n)
                .map(|i| {
                    let req = api.request(contract, i);
                    async move {
                        let t = Instant::now();
                        accepted(req).await?;
                        Ok(t.elapsed())
                    }
                })
                .buffered(k)
                .collect()
                .await
        }
        Load::Rate(rate) => {
            // Open loop: each request leaves at its scheduled time whatever
            // the earlier ones are doing, and its latency counts from that
            // time, so a stalled server cannot hide its stall by slowing
            // the client down.
            let start = tokio::time::Instant::now();
            let mut sent = Vec::with_capacity(n);
            for i in 0..n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                let req = api.request(contract, i);
                sent.push(tokio::spawn(async move {
                    accepted(req).await?;
                    Ok(due.elapsed())
                }));
            }
            let mut out = Vec::with_capacity(n);
            for s in sent {
                out.push(s.await.unwrap_or_else(|e| Err(e.into())));
            }
            out
        }
    };
    latencies.into_iter().collect()
}

/// Waits until `n` requests are confirmed, counted each time the store
/// commits status envelopes (as a service reading the status stream
/// learns of them), at most every 5 ms: a fixed poll would add up to its
/// interval to ethgate's time alone.
async fn all_confirmed(store: &Store, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + DEADLINE;
    let mut changes = store.subscribe();
    while store.count_txs(ethgate_core::TxStatus::Confirmed).await? < n as u64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "not all mined within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The benchmark's knobs, as `ethgate bench tx` takes them.
pub struct Options {
    /// Transactions per run.
    pub txs: usize,
    /// Runs of each side per account count.
    pub rounds: usize,
    /// Requests (or raw sends) each side keeps in flight.
    pub in_flight: usize,
    /// Requests/s of the steady-rate run; 0 skips it.
    pub rate: f64,
    /// Milliseconds between the blocks the bench mines.
    pub block_ms: u64,
}

/// Runs the benchmark and prints its figures.
/// A round's tx/s, node CPU and own CPU of the raw sender, the raw
/// sender reading receipts, and ethgate.
type Figures = [(f64, f64, f64); 3];

/// One round of each side over `accounts`: its figures (printed) and
/// ethgate's API latencies.
async fn one_round(
    n: usize,
    accounts: usize,
    in_flight: usize,
    block: Duration,
    round: usize,
) -> anyhow::Result<(Figures, Vec<Duration>)> {
    let counted = raw(n, accounts, in_flight, block, Learns::NonceCount)
        .await
        .context("raw sender")?;
    let receipted = raw(n, accounts, in_flight, block, Learns::Receipts)
        .await
        .context("raw sender reading receipts")?;
    let (ours, l) = ours(n, accounts, Load::InFlight(in_flight), block, None)
        .await
        .context("ethgate")?;
    let f = [&counted, &receipted, &ours]
        .map(|r| (n as f64 / r.took.as_secs_f64(), r.node_cpu, r.own_cpu));
    println!(
        "    round {round}: raw {:>5.0} tx/s ({:.2?}), raw + receipts {:>5.0} tx/s ({:.2?}), ethgate {:>5.0} tx/s ({:.2?}); ratio {:.2} ({:.2} against raw + receipts); node CPU {:.2} / {:.2} / {:.2} s, this process {:.2} / {:.2} / {:.2} s",
        f[0].0,
        counted.took,
        f[1].0,
        receipted.took,
        f[2].0,
        ours.took,
        f[2].0 / f[0].0,
        f[2].0 / f[1].0,
        f[0].1,
        f[1].1,
        f[2].1,
        f[0].2,
        f[1].2,
        f[2].2,
    );
    Ok((f, l))
}

/// The medians of an account count's rounds, and the latency over them
/// (`lat` sorted).
fn report(figures: &[Figures], lat: &[Duration]) {
    let med = |pick: fn(&Figures) -> f64| median(figures.iter().map(pick).collect());
    println!(
        "    raw sign + send, pipelined nonces, to mined (nonce count):     {:>8.0} tx/s (median)",
        med(|f| f[0].0)
    );
    println!(
        "    raw, also reading each receipt (each call's outcome):          {:>8.0} tx/s (median)",
        med(|f| f[1].0)
    );
    println!(
        "    ethgate API request -> mined:                                  {:>8.0} tx/s (median)",
        med(|f| f[2].0)
    );
    println!(
        "    ratio: {:.2} median of the rounds' ratios  (target >= 0.70); against the raw sender that reads receipts: {:.2}",
        med(|f| f[2].0 / f[0].0),
        med(|f| f[2].0 / f[1].0),
    );
    println!(
        "    API latency over all rounds: p50 {:.2?}, p99 {:.2?}  (target p99 < 10 ms)",
        percentile(lat, 0.5),
        percentile(lat, 0.99)
    );
    println!(
        "    node CPU per run (median): raw {:.2} s, raw + receipts {:.2} s, ethgate {:.2} s (simulation, logs, receipts and reads on top of the same sends)",
        med(|f| f[0].1),
        med(|f| f[1].1),
        med(|f| f[2].1),
    );
}

pub async fn tx(o: Options) -> anyhow::Result<()> {
    let Options {
        txs: n,
        rounds,
        in_flight,
        rate,
        block_ms,
    } = o;
    anyhow::ensure!(n >= 8, "--txs must be at least 8");
    anyhow::ensure!(
        (10..=10_000).contains(&block_ms),
        "--block-ms must be between 10 and 10000"
    );
    let block = Duration::from_millis(block_ms);
    anyhow::ensure!(rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(in_flight >= 1, "--in-flight must be at least 1");
    anyhow::ensure!(
        (0.0..=100_000.0).contains(&rate),
        "--rate must be between 0 (no steady-rate run) and 100000 requests/s"
    );
    println!(
        "transactions: {n} contract calls per run, a block every {block_ms} ms, {in_flight} requests in flight, {rounds} rounds (medians)…"
    );
    for accounts in [1, 8] {
        let n = n - n % accounts;
        println!("  {accounts} account(s):");
        let mut lat = Vec::new();
        let mut figures: Vec<Figures> = Vec::new();
        for round in 1..=rounds {
            let (f, l) = one_round(n, accounts, in_flight, block, round).await?;
            figures.push(f);
            lat.extend(l);
        }
        lat.sort();
        report(&figures, &lat);
        if rate > 0.0 {
            let (run, mut lat) = ours(n, accounts, Load::Rate(rate), block, None)
                .await
                .context("ethgate at a steady rate")?;
            lat.sort();
            println!(
                "    API latency at a steady {rate:.0} requests/s (open loop, from each request's scheduled time; all mined after {:.2?}): p50 {:.2?}, p99 {:.2?}, max {:.2?}  (target p99 < 10 ms)",
                run.took,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                lat.last().copied().unwrap_or_default(),
            );
        }
    }
    Ok(())
}
