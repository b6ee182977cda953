//! The short-lived subcommands: `config check`, `streams`, `sinks`
//! and `sync`.

use std::time::Duration;

use anyhow::Context;
use ethgate_chain::headers;
use ethgate_chain::pool::redact;
use ethgate_events::Syncer;
use ethgate_store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::serve::checked_pool;

/// Prints what the config means (URLs redacted).
pub fn config_check(cfg: &Config) -> anyhow::Result<()> {
    let source = cfg
        .source
        .as_ref()
        .map_or("embedded defaults".to_owned(), |p| p.display().to_string());
    println!("config ok: {source}");
    println!("  store   {}", ethgate_store::redacted_url(&cfg.store_url));
    println!("  api     http://{}", cfg.listen);
    for c in &cfg.chains {
        let rpc: Vec<String> = c.rpc.iter().map(|u| redact(u)).collect();
        println!(
            "  chain   {} (id {}) via {}",
            c.name,
            c.chain_id,
            rpc.join(", ")
        );
    }
    for w in &cfg.sinks {
        println!("  sink    {}", w.describe());
    }
    private_webhooks(cfg)?;
    for (stream, sink) in &cfg.routes {
        println!("  route   {stream} -> {sink}");
    }
    for s in &cfg.streams {
        let events: Vec<String> = s.events.iter().map(|e| e.signature()).collect();
        println!(
            "  stream  {} on {}: {} address(es), events {}, from block {}, confirmations {}",
            s.name,
            s.chain,
            s.addresses.len(),
            events.join(" "),
            s.from_block,
            s.confirmations
        );
    }
    Ok(())
}

/// Refuses a webhook sink whose host name resolves to a private address
/// while `allow_private_network` is off (an address literal or `localhost`
/// is refused when the config is read; a name needs a lookup, which only
/// `config check` makes). A name that does not resolve here is not
/// refused: the sink checks every connection anyway.
fn private_webhooks(cfg: &Config) -> anyhow::Result<()> {
    use std::net::ToSocketAddrs;
    for sink in &cfg.sinks {
        let ethgate_delivery::sinks::SinkConfig::Webhook(w) = sink else {
            continue;
        };
        let Some(host) = w.url.host_str().filter(|_| !w.allow_private_network) else {
            continue;
        };
        let port = w.url.port_or_known_default().unwrap_or(443);
        let Ok(addrs) = (host, port).to_socket_addrs() else {
            continue;
        };
        for a in addrs {
            if ethgate_delivery::sinks::webhook::is_private(a.ip()) {
                anyhow::bail!(
                    "sinks.{}.url: {host} resolves to the private address {}; set allow_private_network = true for this sink to allow it",
                    w.name,
                    a.ip()
                );
            }
        }
    }
    Ok(())
}

/// Prints a status table of every configured stream.
pub async fn streams(cfg: &Config) -> anyhow::Result<()> {
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    println!(
        "{:<20} {:<12} {:>12} {:>12} {:>8} {:>10} {:>7}",
        "STREAM", "CHAIN", "CURSOR", "HEAD", "LAG", "EVENTS", "REORGS"
    );
    for s in &cfg.streams {
        let row = store.stream(&s.name).await?;
        let head = match cfg.chain(&s.chain) {
            Some(c) => {
                let p = checked_pool(c, 1).await?;
                tokio::time::timeout(Duration::from_secs(5), headers::block_number(&p))
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            None => None,
        };
        let cursor = row.as_ref().and_then(|r| r.cursor);
        let lag = head.map(|h| h.saturating_sub(cursor.unwrap_or(s.from_block.saturating_sub(1))));
        let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        println!(
            "{:<20} {:<12} {:>12} {:>12} {:>8} {:>10} {:>7}",
            s.name,
            s.chain,
            show(cursor),
            show(head),
            show(lag),
            row.as_ref().map_or(0, |r| r.events_recorded),
            row.as_ref().map_or(0, |r| r.reorgs)
        );
    }
    Ok(())
}

/// Backfills one stream to `to` with a progress bar.
pub async fn sync(cfg: &Config, stream: &str, to: u64) -> anyhow::Result<()> {
    let Some(spec) = cfg.streams.iter().find(|s| s.name == stream) else {
        let known: Vec<&str> = cfg.streams.iter().map(|s| s.name.as_str()).collect();
        anyhow::bail!("--stream: no stream named {stream:?}; configured streams: {known:?}");
    };
    if to < spec.from_block {
        anyhow::bail!(
            "--to: {to} is below the stream's from_block {}",
            spec.from_block
        );
    }
    let chain = cfg.chain(&spec.chain).context("stream's chain")?;
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    let pool = std::sync::Arc::new(checked_pool(chain, 5).await?);
    let mut syncer = Syncer::new(spec.clone(), pool, store.clone(), chain.sync.clone()).await?;
    let total = to - spec.from_block + 1;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:<24} [{bar:40}] {pos}/{len} blocks  {per_sec}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(spec.name.clone());
    let started = std::time::Instant::now();
    let first = store
        .stream(&spec.name)
        .await?
        .map_or(0, |r| r.events_recorded);
    let result = syncer
        .sync_until(to, |cursor, head, err| {
            bar.set_position(
                cursor
                    .map_or(0, |c| (c + 1).saturating_sub(spec.from_block))
                    .min(total),
            );
            match (err, head) {
                (Some(e), _) => bar.println(format!("retrying after error: {e}")),
                (None, Some(h)) if h < to => bar.set_message(format!("{} (head {h})", spec.name)),
                _ => {}
            }
        })
        .await;
    bar.finish();
    let cursor = result?;
    store.checkpoint().await?;
    let recorded = store
        .stream(&spec.name)
        .await?
        .map_or(0, |r| r.events_recorded)
        - first;
    let took = std::time::Duration::from_millis(started.elapsed().as_millis() as u64);
    println!(
        "{}: synced to block {cursor}; {recorded} events recorded in {}",
        spec.name,
        humantime::format_duration(took)
    );
    Ok(())
}

/// Prints every routed (stream, sink) with cursor, lag and counts.
pub async fn sinks(cfg: &Config) -> anyhow::Result<()> {
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    println!(
        "{:<16} {:<20} {:>10} {:>8} {:>10} {:>8} {:>12}",
        "SINK", "STREAM", "CURSOR", "LAG", "DELIVERED", "FAILURES", "DEAD LETTERS"
    );
    for s in store.route_statuses(&cfg.routes).await? {
        println!(
            "{:<16} {:<20} {:>10} {:>8} {:>10} {:>8} {:>12}",
            s.sink,
            s.stream,
            s.cursor.seq,
            s.lag,
            s.cursor.delivered,
            s.cursor.failures,
            s.dead_letters
        );
    }
    Ok(())
}

/// Moves a sink's cursor back to a seq, or to just before a block.
pub async fn sinks_rewind(
    cfg: &Config,
    stream: &str,
    sink: &str,
    seq: Option<u64>,
    block: Option<u64>,
) -> anyhow::Result<()> {
    if !cfg.routes.iter().any(|(st, sk)| st == stream && sk == sink) {
        let known: Vec<String> = cfg
            .routes
            .iter()
            .map(|(st, sk)| format!("{st} -> {sk}"))
            .collect();
        anyhow::bail!(
            "--stream/--sink: stream {stream:?} is not delivered to sink {sink:?}; configured: {known:?}"
        );
    }
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    let target = match (seq, block) {
        (Some(seq), None) => {
            let last = store.last_seq(stream).await?;
            anyhow::ensure!(
                seq <= last,
                "--seq: {seq} is past the stream's last seq {last}"
            );
            seq
        }
        (None, Some(block)) => store.seq_before_block(stream, block).await?,
        _ => anyhow::bail!("--seq/--block: give exactly one"),
    };
    store.rewind_sink(stream, sink, target).await?;
    println!(
        "{sink} on {stream}: cursor set to seq {target}; a running ethgate redelivers from seq {}",
        target + 1
    );
    Ok(())
}
