//! `ethgate bench store`: the same work on SQLite and on PostgreSQL in one
//! run — ingest (`ethgate sync` of a chain's logs into a fresh outbox) and
//! transactions (API request → mined, through the in-process API, as
//! `bench tx` measures them) — with PostgreSQL's ratio to SQLite; then
//! transactions through 1, 2 and 3 `ethgate serve` replicas sharing one
//! PostgreSQL, with each process's CPU, to show where the limit is.

use std::time::{Duration, Instant};

use anyhow::Context;
use ethgate_store::scratch::Scratch;
use ethgate_testkit::{DEV_KEYS, free_port};
use futures::StreamExt;
use serde_json::json;

use crate::sync::{ingest_once, logs_chain};
use crate::tx::{Load, chain, cpu_seconds, median, ours};

/// What `ethgate bench store` runs (its command-line arguments).
#[derive(clap::Args)]
pub struct Options {
    /// Logs per ingest run.
    #[arg(long, default_value_t = 100_000)]
    pub logs: u64,
    /// Contract calls per transaction run.
    #[arg(long, default_value_t = 4_000)]
    pub txs: usize,
    /// Accounts the calls are spread over (1-8).
    #[arg(long, default_value_t = 8)]
    pub accounts: usize,
    /// Runs of each side (medians reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Requests kept in flight.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Milliseconds between blocks.
    #[arg(long, default_value_t = 200)]
    pub block_ms: u64,
    /// PostgreSQL database the runs make scratch schemas in.
    #[arg(long, default_value = ethgate_store::scratch::DEFAULT_PG)]
    pub postgres: String,
}

/// Runs the benchmark and prints its figures.
pub async fn store(o: Options) -> anyhow::Result<()> {
    anyhow::ensure!(o.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(
        (1..=8).contains(&o.accounts),
        "--accounts must be between 1 and 8"
    );
    anyhow::ensure!(o.txs >= o.accounts, "--txs must be at least --accounts");
    ingest(&o).await?;
    transactions(&o).await?;
    replicas(&o).await
}

async fn ingest(o: &Options) -> anyhow::Result<()> {
    let (anvil, address, head, emitted) = logs_chain(o.logs, 500).await;
    let (mut sqlite, mut pg) = (Vec::new(), Vec::new());
    for _ in 0..o.rounds {
        // Alternated, so a slow phase of the machine hits both alike.
        sqlite.push(ingest_once(&anvil.url, &address, head, emitted, None).await?);
        let scratch = Scratch::postgres(&o.postgres).await.context("PostgreSQL")?;
        pg.push(ingest_once(&anvil.url, &address, head, emitted, Some(scratch.url())).await?);
    }
    let rate = |runs: &[crate::sync::Ingest]| {
        median(
            runs.iter()
                .map(|r| emitted as f64 / r.inner.as_secs_f64())
                .collect(),
        )
    };
    let (s, p) = (rate(&sqlite), rate(&pg));
    println!(
        "ingest, {emitted} logs, medians of {} runs (in-process rate):",
        o.rounds
    );
    println!("  SQLite     {s:>9.0} logs/s");
    println!("  PostgreSQL {p:>9.0} logs/s");
    println!(
        "  ratio PostgreSQL / SQLite: {:.2}  (target >= 0.60)",
        p / s
    );
    Ok(())
}

async fn transactions(o: &Options) -> anyhow::Result<()> {
    let n = o.txs - o.txs % o.accounts;
    let block = Duration::from_millis(o.block_ms);
    let (mut sqlite, mut pg) = (Vec::new(), Vec::new());
    println!(
        "transactions, {n} calls over {} accounts, {} in flight, a block every {} ms:",
        o.accounts, o.in_flight, o.block_ms
    );
    for _ in 0..o.rounds {
        let (run, _) = ours(n, o.accounts, Load::InFlight(o.in_flight), block, None).await?;
        sqlite.push(n as f64 / run.took.as_secs_f64());
        let scratch = Scratch::postgres(&o.postgres).await.context("PostgreSQL")?;
        let (run, _) = ours(
            n,
            o.accounts,
            Load::InFlight(o.in_flight),
            block,
            Some(scratch.url()),
        )
        .await?;
        pg.push(n as f64 / run.took.as_secs_f64());
    }
    let (s, p) = (median(sqlite), median(pg));
    println!("  SQLite     {s:>7.0} tx/s (median)");
    println!("  PostgreSQL {p:>7.0} tx/s (median)");
    println!(
        "  ratio PostgreSQL / SQLite: {:.2}  (target >= 0.60)",
        p / s
    );
    Ok(())
}

/// CPU seconds of every process named `postgres` (the server and its
/// backends) on this machine.
fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| cpu_seconds(Some(pid)))
        .sum()
}

async fn replicas(o: &Options) -> anyhow::Result<()> {
    let n = o.txs - o.txs % o.accounts;
    println!(
        "transactions through `ethgate serve` replicas on one PostgreSQL, {n} calls over {} accounts, {} in flight:",
        o.accounts, o.in_flight
    );
    let mut first = None;
    for count in 1..=3usize {
        let mut rates = Vec::new();
        let mut cpu = (0.0, 0.0, 0.0);
        for _ in 0..o.rounds {
            let (rate, replicas_cpu, node_cpu, pg_cpu) = replicas_once(o, n, count).await?;
            rates.push(rate);
            cpu = (replicas_cpu, node_cpu, pg_cpu);
        }
        let rate = median(rates);
        let base = *first.get_or_insert(rate);
        println!(
            "  {count} replica(s): {rate:>6.0} tx/s (median; {:.2} of one replica); last run's CPU: replicas {:.1} s, node {:.1} s, PostgreSQL {:.1} s",
            rate / base,
            cpu.0,
            cpu.1,
            cpu.2
        );
    }
    Ok(())
}

/// Waits until every replica's API answers `/readyz`.
async fn ready(http: &reqwest::Client, ports: &[u16]) -> anyhow::Result<()> {
    for p in ports {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("http://127.0.0.1:{p}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            anyhow::ensure!(Instant::now() < deadline, "a replica never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Environment variables for a child process.
type Env = Vec<(String, String)>;

/// The replicas' config (accounts from dev keys given as `KEY_<i>`), the
/// variables that hold the keys, and the accounts' addresses.
fn replicas_config(
    store: &str,
    node: &str,
    accounts: usize,
) -> anyhow::Result<(String, Env, Vec<String>)> {
    let mut config = format!(
        "[store]\nurl = \"{store}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{node}\"]\n\n\
         [tx]\nallow_dev_keys = true\nmax_in_flight = 4096\npoll_interval = \"20ms\"\nstall_after = \"1s\"\n",
    );
    let mut env: Env = vec![("ETHGATE_LOG".into(), "warn".into())];
    let mut from = Vec::new();
    for (i, key) in DEV_KEYS[1..=accounts].iter().enumerate() {
        config.push_str(&format!(
            "\n[[accounts]]\nchain = \"anvil\"\ndev_key_env = \"KEY_{i}\"\n"
        ));
        env.push((format!("KEY_{i}"), (*key).to_owned()));
        let key = ethgate_keys::LocalKey::dev(key, "dev key")?;
        from.push(format!("{:#x}", ethgate_keys::Signer::address(&key)));
    }
    Ok((config, env, from))
}

/// One run through `count` replicas: tx/s, and the CPU seconds of the
/// replicas, the node and PostgreSQL.
async fn replicas_once(
    o: &Options,
    n: usize,
    count: usize,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let mut c = chain(Duration::from_millis(o.block_ms)).await?;
    let scratch = Scratch::postgres(&o.postgres).await.context("PostgreSQL")?;
    let dir = tempfile::tempdir()?;
    let (config, env, from) = replicas_config(scratch.url(), &c.anvil.url, o.accounts)?;
    std::fs::write(dir.path().join("ethgate.toml"), config)?;
    let run = |args: &[&str], port: Option<u16>| {
        let mut cmd = tokio::process::Command::new(crate::ethgate_bin()?);
        cmd.args(args)
            .current_dir(dir.path())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(p) = port {
            cmd.env("ETHGATE_API__LISTEN", format!("127.0.0.1:{p}"));
        }
        anyhow::Ok(cmd)
    };
    let out = run(&["token", "create", "--scope", "tx:write"], None)?
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "token create failed");
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
    let mut children = Vec::new();
    for p in &ports {
        children.push(run(&["serve"], Some(*p))?.spawn()?);
    }
    let http = reqwest::Client::new();
    ready(&http, &ports).await?;
    // Every replica runs its share of the senders before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let store = ethgate_store::Store::connect(scratch.url()).await?;
    let contract = format!("{:#x}", c.contract);
    let pids: Vec<Option<u32>> = children.iter().map(|c| c.id()).collect();
    let cpu_of = |pids: &[Option<u32>]| pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>();
    c.next_block().await?;
    let (r0, n0, p0) = (cpu_of(&pids), cpu_seconds(c.anvil.pid()), postgres_cpu());
    let started = Instant::now();
    let answers: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let body = json!({"chain": "anvil", "from": from[i % from.len()],
                "to": contract, "function": "keyed(string)", "args": [format!("r-{i}")],
                "gas_limit": 100_000, "idempotency_key": format!("r-{i}")});
            let req = http
                .post(format!(
                    "http://127.0.0.1:{}/v1/transactions",
                    ports[i % ports.len()]
                ))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let r = req.send().await?;
                anyhow::ensure!(r.status().as_u16() == 202, "API answered {}", r.status());
                Ok(())
            }
        })
        .buffered(o.in_flight)
        .collect()
        .await;
    answers.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let deadline = Instant::now() + crate::tx::DEADLINE;
    while store.count_txs(ethgate_core::TxStatus::Confirmed).await? < n as u64 {
        anyhow::ensure!(Instant::now() < deadline, "not all mined in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let figures = (
        n as f64 / took.as_secs_f64(),
        cpu_of(&pids) - r0,
        cpu_seconds(c.anvil.pid()) - n0,
        postgres_cpu() - p0,
    );
    for mut child in children {
        let _ = child.kill().await;
    }
    Ok(figures)
}
