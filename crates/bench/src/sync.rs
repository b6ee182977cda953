//! `ethgate bench sync`: builds an anvil chain with many logs, then, in the
//! same run, measures the raw `eth_getLogs` rate over the range (reqwest +
//! serde into the same log type, no store) and ethgate's ingest rate into a
//! fresh outbox (`ethgate sync` as a child process), and prints both, their
//! ratio and the ingest's peak RSS.

use std::time::{Duration, Instant};

use anyhow::Context;
use ethgate_core::RawLog;
use ethgate_testkit::Anvil;
use serde_json::json;

/// Blocks per raw `eth_getLogs` query, chosen like the syncer's target of
/// ~5,000 logs per query.
fn raw_span(per_tx: u64) -> u64 {
    (5_000 / per_tx.max(1)).max(1)
}

async fn raw_rate(
    url: &str,
    address: &str,
    head: u64,
    span: u64,
) -> anyhow::Result<(u64, Duration)> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut total = 0u64;
    let mut from = 0;
    while from <= head {
        let to = head.min(from + span - 1);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
            "params": [{"address": address, "fromBlock": format!("{from:#x}"), "toBlock": format!("{to:#x}")}]});
        let bytes = client.post(url).json(&body).send().await?.bytes().await?;
        #[derive(serde::Deserialize)]
        struct Resp {
            result: Vec<RawLog>,
        }
        let resp: Resp = serde_json::from_slice(&bytes).context("eth_getLogs answer")?;
        total += resp.result.len() as u64;
        from = to + 1;
    }
    Ok((total, started.elapsed()))
}

/// Runs per measurement; the median is reported.
const RUNS: usize = 3;

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// One ingest run's figures.
pub(crate) struct Ingest {
    pub(crate) wall: Duration,
    pub(crate) inner: Duration,
    pub(crate) peak_kb: u64,
}

/// Runs `ethgate sync` into a fresh outbox — at `store_url`, or a SQLite
/// file in a temporary directory — and checks it recorded every log.
pub(crate) async fn ingest_once(
    url: &str,
    address: &str,
    head: u64,
    emitted: u64,
    store_url: Option<&str>,
) -> anyhow::Result<Ingest> {
    let dir = tempfile::tempdir()?;
    let store_url = store_url.map_or_else(
        || format!("sqlite://{}/bench.db", dir.path().display()),
        str::to_owned,
    );
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{store_url}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{url}\"]\n\n\
             [[streams]]\nname = \"bench\"\nchain = \"anvil\"\naddresses = [\"{address}\"]\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
        ),
    )?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(crate::ethgate_bin()?)
        .args([
            "--config",
            &config.to_string_lossy(),
            "sync",
            "--stream",
            "bench",
            "--to",
            &head.to_string(),
        ])
        .env("ETHGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting ethgate sync")?;
    let pid = child.id().context("child pid")?;
    let mut peak_kb = 0;
    loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        tokio::select! {
            s = child.wait() => {
                anyhow::ensure!(s?.success(), "ethgate sync failed");
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    let wall = started.elapsed();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut out, &mut stdout).await?;
    }
    let inner = stdout
        .split(" in ")
        .nth(1)
        .and_then(|t| humantime::parse_duration(t.trim()).ok())
        .context("ethgate sync's closing line")?;
    let store = ethgate_store::Store::connect(&store_url).await?;
    let recorded = store
        .stream("bench")
        .await?
        .map_or(0, |r| r.events_recorded);
    anyhow::ensure!(
        recorded == emitted,
        "ethgate recorded {recorded} events, expected {emitted}"
    );
    Ok(Ingest {
        wall,
        inner,
        peak_kb,
    })
}

pub(crate) fn vm_hwm_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM:")
}

/// One kB figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`).
pub(crate) fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A fresh anvil with `logs` Transfer logs, `per_tx` per transaction:
/// the node, the contract's address, the head and the logs emitted.
pub(crate) async fn logs_chain(logs: u64, per_tx: u64) -> (Anvil, String, u64, u64) {
    println!("building an anvil chain with {logs} logs ({per_tx} per transaction)…");
    let anvil = Anvil::start(&["--gas-limit", "300000000"]).await;
    let contract = anvil.deploy_event_source().await;
    let build = Instant::now();
    let mut emitted = 0;
    while emitted < logs {
        let n = per_tx.min(logs - emitted);
        anvil.burst(contract, n, emitted).await;
        emitted += n;
    }
    anvil.mine(10).await;
    let head = anvil.head().await;
    println!(
        "chain built: {head} blocks, {emitted} logs in {:.1?}",
        build.elapsed()
    );
    (anvil, format!("{contract:#x}"), head, emitted)
}

/// Runs the benchmark and prints its figures.
pub async fn sync(logs: u64, per_tx: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        per_tx > 0 && per_tx <= 2_000,
        "--per-tx: must be between 1 and 2000"
    );
    anyhow::ensure!(logs >= per_tx, "--logs: must be at least --per-tx");
    let (anvil, address, head, emitted) = logs_chain(logs, per_tx).await;

    let span = raw_span(per_tx);
    raw_rate(&anvil.url, &address, head, span).await?; // warm anvil's caches
    let mut raw_times = Vec::new();
    for _ in 0..RUNS {
        let (raw_logs, t) = raw_rate(&anvil.url, &address, head, span).await?;
        anyhow::ensure!(
            raw_logs == emitted,
            "raw eth_getLogs saw {raw_logs} logs, expected {emitted}"
        );
        raw_times.push(t);
    }
    let raw_time = median(&mut raw_times);
    let raw = emitted as f64 / raw_time.as_secs_f64();

    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(ingest_once(&anvil.url, &address, head, emitted, None).await?);
    }
    let wall = median(&mut runs.iter().map(|r| r.wall).collect::<Vec<_>>());
    let inner = median(&mut runs.iter().map(|r| r.inner).collect::<Vec<_>>());
    let peak_kb = runs.iter().map(|r| r.peak_kb).max().unwrap_or(0);
    let ingest_wall = emitted as f64 / wall.as_secs_f64();
    let ingest_inner = emitted as f64 / inner.as_secs_f64();

    println!();
    println!("medians of {RUNS} runs, {emitted} logs:");
    println!(
        "raw eth_getLogs (reqwest + serde, {span}-block queries, sequential): {raw:>9.0} logs/s  ({raw_time:.2?})"
    );
    println!(
        "ethgate ingest, in-process (first query to final WAL checkpoint):  {ingest_inner:>9.0} logs/s  ({inner:.2?})"
    );
    println!(
        "ethgate ingest, whole `ethgate sync` process incl. start-up:       {ingest_wall:>9.0} logs/s  ({wall:.2?})"
    );
    println!(
        "ratio ingest / raw: {:.2} in-process, {:.2} whole process  (target >= 0.80)",
        ingest_inner / raw,
        ingest_wall / raw
    );
    println!(
        "ethgate sync peak RSS: {:.1} MB  (target < 150 MB)",
        peak_kb as f64 / 1024.0
    );
    Ok(())
}
