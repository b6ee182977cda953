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

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the benchmark and prints its figures.
pub async fn sync(logs: u64, per_tx: u64) -> anyhow::Result<()> {
    anyhow::ensure!(
        per_tx > 0 && per_tx <= 2_000,
        "--per-tx: must be between 1 and 2000"
    );
    anyhow::ensure!(logs >= per_tx, "--logs: must be at least --per-tx");
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
    let address = format!("{contract:#x}");

    let span = raw_span(per_tx);
    raw_rate(&anvil.url, &address, head, span).await?; // warm anvil's caches
    let (raw_logs, raw_time) = raw_rate(&anvil.url, &address, head, span).await?;
    anyhow::ensure!(
        raw_logs == emitted,
        "raw eth_getLogs saw {raw_logs} logs, expected {emitted}"
    );
    let raw = raw_logs as f64 / raw_time.as_secs_f64();

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"sqlite://{}/bench.db\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\n\n\
             [[streams]]\nname = \"bench\"\nchain = \"anvil\"\naddresses = [\"{address}\"]\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
            dir.path().display(),
            anvil.url
        ),
    )?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
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
    let status = loop {
        if let Some(kb) = vm_hwm_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        tokio::select! {
            s = child.wait() => break s?,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    };
    let ingest_time = started.elapsed();
    anyhow::ensure!(status.success(), "ethgate sync failed: {status}");
    let store =
        ethgate_store::Store::connect(&format!("sqlite://{}/bench.db", dir.path().display()))
            .await?;
    let recorded = store
        .stream("bench")
        .await?
        .map_or(0, |r| r.events_recorded);
    anyhow::ensure!(
        recorded == emitted,
        "ethgate recorded {recorded} events, expected {emitted}"
    );
    let ingest = recorded as f64 / ingest_time.as_secs_f64();

    println!();
    println!(
        "raw eth_getLogs (reqwest + serde, {span}-block queries): {raw:>10.0} logs/s  ({raw_logs} logs in {raw_time:.2?})"
    );
    println!(
        "ethgate ingest into the outbox (ethgate sync):          {ingest:>10.0} logs/s  ({recorded} logs in {ingest_time:.2?}, incl. start-up)"
    );
    println!("ratio ingest / raw: {:.2}  (target >= 0.80)", ingest / raw);
    println!(
        "ethgate sync peak RSS: {:.1} MB  (target < 150 MB)",
        peak_kb as f64 / 1024.0
    );
    Ok(())
}
