//! `ethgate chaos-proxy`: the chaos proxy (`ethgate-chaos`) as a command,
//! so users can put it in front of their own node and try their setup
//! against the endpoints they will really have.

use std::net::SocketAddr;
use std::time::Duration;

use ethgate_chaos::{ChaosProxy, Lag, Modes, Stale};

/// The proxy's command-line options; each mode is off unless given.
#[derive(clap::Args)]
pub struct ChaosArgs {
    /// The node's JSON-RPC URL (only its scheme, host and port are shown).
    #[arg(long)]
    upstream: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8546")]
    listen: SocketAddr,
    /// RATE:BLOCKS — answer this share of requests from a node MIN-MAX
    /// blocks behind the head, as a load balancer over lagging nodes
    /// does: 0.5:1-3.
    #[arg(long)]
    lag: Option<Lag>,
    /// RATE:AGE — answer this share of requests at the head as it was
    /// AGE ago, as a node that stopped importing does: 0.1:5s.
    #[arg(long)]
    stale_head: Option<Stale>,
    /// Share of requests that fail: HTTP 500, HTTP 429, a timeout after
    /// the node acted, or a cut answer, equally often.
    #[arg(long, value_parser = Modes::rate, default_value = "0")]
    errors: f64,
    /// How long a timed-out request is held before it is closed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    hang: Duration,
    /// Share of eth_sendRawTransaction calls acknowledged and dropped.
    #[arg(long, value_parser = Modes::rate, default_value = "0")]
    drop_sends: f64,
    /// Empty the node's transaction pool this often (anvil only).
    #[arg(long, value_parser = humantime::parse_duration)]
    forget_pool: Option<Duration>,
    /// Seed of the random choices, to repeat a run.
    #[arg(long)]
    seed: Option<u64>,
}

/// Runs the proxy until Ctrl-C, then prints what it did.
pub async fn chaos_proxy(args: ChaosArgs) -> anyhow::Result<()> {
    let modes = Modes {
        lag: args.lag,
        stale: args.stale_head,
        errors: args.errors,
        hang: args.hang,
        drop_sends: args.drop_sends,
        forget_pool: args.forget_pool,
        seed: args.seed,
    };
    let proxy = ChaosProxy::start(&args.upstream, args.listen, modes.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    eprintln!(
        "chaos-proxy: {} -> {} ({modes:?}); statistics at {}/chaos; Ctrl-C stops",
        proxy.url,
        ethgate_chain::pool::redact(&args.upstream),
        proxy.url
    );
    tokio::signal::ctrl_c().await?;
    println!("{}", serde_json::to_string_pretty(&proxy.stats())?);
    Ok(())
}
