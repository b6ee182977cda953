//! `ethgate bench e2e`: chain to a consumer's queue. A fresh anvil holds
//! `logs` Transfer logs (`per_block` per block); `ethgate serve` is launched
//! with one stream and an AMQP sink, and the clock runs from the launch to
//! the last message in a queue bound to the exchange (persistent,
//! confirmed, one message per event). In the same run a raw lapin client
//! publishes as many messages of the same size with confirms, the broker's
//! rate; rounds alternate and medians are compared (target ≥ 0.7).

use std::time::{Duration, Instant};

use anyhow::Context;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The benchmark's options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Logs on the chain.
    #[arg(long, default_value_t = 60_000)]
    pub logs: u64,
    /// Logs per block.
    #[arg(long, default_value_t = 100)]
    pub per_block: u64,
    /// Rounds of each side; medians are compared.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The AMQP sink's batch size, and the raw client's confirm window.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Another ethgate binary (say, a build before a change) measured in
    /// the same rounds.
    #[arg(long)]
    pub compare: Option<std::path::PathBuf>,
}

/// A fresh exchange bound to a fresh queue that keeps everything.
async fn queue(ch: &Channel, name: &str) -> anyhow::Result<()> {
    crate::delivery::declare_exchange(ch, name).await?;
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        name.into(),
        name.into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

async fn count(ch: &Channel, name: &str) -> anyhow::Result<u32> {
    let q = ch
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(q.message_count())
}

/// Waits until `name` holds `n` messages; the time since `started`.
async fn filled(ch: &Channel, name: &str, n: u64, started: Instant) -> anyhow::Result<Duration> {
    let deadline = started + Duration::from_secs(300);
    loop {
        if u64::from(count(ch, name).await?) >= n {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "{name} never held {n} messages");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One ethgate round: launch to the last message; the size of a message.
async fn ethgate_round(
    bin: &std::path::Path,
    o: &Options,
    ch: &Channel,
    rpc: &str,
    contract: &str,
    round: usize,
) -> anyhow::Result<(Duration, usize, f64)> {
    let name = format!(
        "bench-e2e-ethgate-{}-{round}-{}",
        std::process::id(),
        ethgate_testkit::free_port()
    );
    queue(ch, &name).await?;
    let dir = tempfile::tempdir()?;
    let config = format!(
        "[store]\nurl = \"sqlite://{}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{rpc}\"]\n\n\
         [[sinks]]\nname = \"bus\"\nkind = \"amqp\"\nurl_env = \"AMQP_URL\"\nexchange = \"{name}\"\nbatch_size = {}\n\n\
         [[streams]]\nname = \"bench\"\nchain = \"anvil\"\naddresses = [\"{contract}\"]\nsinks = [\"bus\"]\n\
         events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
        dir.path().join("store.db").display(),
        o.batch
    );
    std::fs::write(dir.path().join("ethgate.toml"), config)?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .arg("serve")
        .current_dir(dir.path())
        .env("AMQP_URL", AMQP_URL)
        .env("ETHGATE_LOG", "warn")
        .env(
            "ETHGATE_API__LISTEN",
            format!("127.0.0.1:{}", ethgate_testkit::free_port()),
        )
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let took = filled(ch, &name, o.logs, started).await?;
    let peak = crate::sync::vm_hwm_kb(child.id().unwrap_or(0)).unwrap_or(0) as f64 / 1024.0;
    let _ = child.kill().await;
    let size = match ch
        .basic_get(name.as_str().into(), BasicGetOptions::default())
        .await?
    {
        Some(m) => m.delivery.data.len(),
        None => 0,
    };
    ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await?;
    Ok((took, size, peak))
}

/// One raw round: `n` persistent messages of `size` bytes in windows of
/// `window`, up to `outstanding` windows awaiting their confirms, until
/// the last is in the queue.
async fn raw_round(
    ch: &Channel,
    n: u64,
    size: usize,
    (window, outstanding): (usize, usize),
    round: usize,
) -> anyhow::Result<Duration> {
    let name = format!("bench-e2e-raw-{}-{outstanding}-{round}", std::process::id());
    queue(ch, &name).await?;
    let body = vec![b'x'; size.max(1)];
    let started = Instant::now();
    let mut sent = 0u64;
    let mut waiting = std::collections::VecDeque::new();
    while sent < n {
        let k = (window as u64).min(n - sent);
        let mut confirms = Vec::with_capacity(k as usize);
        for i in 0..k {
            let props = BasicProperties::default()
                .with_message_id(format!("raw/{}", sent + i).into())
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            confirms.push(
                ch.basic_publish(
                    name.as_str().into(),
                    "event.raw".into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await?,
            );
        }
        waiting.push_back(confirms);
        while waiting.len() >= outstanding.max(1) || (sent + k >= n && !waiting.is_empty()) {
            for c in waiting.pop_front().unwrap_or_default() {
                anyhow::ensure!(c.await?.is_ack(), "broker nacked");
            }
        }
        sent += k;
    }
    let took = filled(ch, &name, n, started).await?;
    ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())
        .await?;
    Ok(took)
}

/// Runs the benchmark and prints its figures.
pub async fn e2e(o: Options) -> anyhow::Result<()> {
    let (anvil, contract, _, logs) = crate::sync::logs_chain(o.logs, o.per_block).await;
    anyhow::ensure!(logs == o.logs, "the chain holds {logs} logs");
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .context("RabbitMQ on 127.0.0.1:5672 (scripts/services)")?;
    let ch = conn.create_channel().await?;
    let raw = conn.create_channel().await?;
    raw.confirm_select(ConfirmSelectOptions::default()).await?;
    let (mut ours, mut theirs, mut piped, mut peaks, mut other) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let this = crate::ethgate_bin()?;
    for round in 0..o.rounds {
        let (took, size, peak) =
            ethgate_round(&this, &o, &ch, &anvil.url, &contract, round).await?;
        if let Some(bin) = &o.compare {
            other.push(
                ethgate_round(bin, &o, &ch, &anvil.url, &contract, round)
                    .await?
                    .0,
            );
        }
        ours.push(took);
        peaks.push(peak);
        theirs.push(raw_round(&raw, o.logs, size, (o.batch, 1), round).await?);
        piped.push(raw_round(&raw, o.logs, size, (o.batch, 4), round).await?);
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let rate = |d: Duration| o.logs as f64 / d.as_secs_f64();
    let (ours, theirs, piped) = (median(ours), median(theirs), median(piped));
    println!(
        "chain → consumer's queue, {} logs ({} per block), persistent + confirmed, one message per event, medians of {}:",
        o.logs, o.per_block, o.rounds
    );
    println!(
        "  raw lapin client (window {}): {:>7.0} msg/s ({} ms)",
        o.batch,
        rate(theirs),
        theirs.as_millis()
    );
    println!(
        "  raw lapin client, 4 windows awaiting confirms: {:>7.0} msg/s ({} ms)",
        rate(piped),
        piped.as_millis()
    );
    println!(
        "  ethgate serve, launch → last message: {:>7.0} msg/s ({} ms), {:.2} of raw (target ≥ 0.7); peak RSS {:.0} MB",
        rate(ours),
        ours.as_millis(),
        rate(ours) / rate(theirs),
        peaks.iter().cloned().fold(0.0, f64::max)
    );
    if let Some(bin) = &o.compare {
        let other = median(other);
        println!(
            "  {} (compared), launch → last message: {:>7.0} msg/s ({} ms), {:.2} of raw",
            bin.display(),
            rate(other),
            other.as_millis(),
            rate(other) / rate(theirs)
        );
    }
    Ok(())
}
