//! A recurring-billing back end built on ethgate, the way a user's own
//! service would be: it **hears** `BillingAllowed`, `BillingCharged` and
//! `BillingCanceled` (and their retractions) on its own RabbitMQ queue,
//! **decides** with the contract's state read through `POST /v1/calls`,
//! **publishes** `charge(billingId)` through `POST /v1/transactions` from
//! the merchant's pool under the key `charge:<billingId>:<due>`, and hears
//! how each charge ended. Its schedule is its own SQLite file; its
//! `/metrics` is its own. See `examples/billing/README.md`.

mod consumer;
mod gateway;
mod metrics;
mod schedule;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use gateway::Gateway;
use schedule::Schedule;

/// Command-line settings; each also reads an environment variable.
#[derive(Parser)]
#[command(about = "A recurring-billing back end on ethgate")]
struct Args {
    /// ethgate's API.
    #[arg(long, env = "ETHGATE_URL", default_value = "http://127.0.0.1:8700")]
    ethgate: String,
    /// RabbitMQ.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    amqp: String,
    /// ethgate's AMQP exchange.
    #[arg(long, env = "BILLING_EXCHANGE", default_value = "ethgate")]
    exchange: String,
    /// This service's durable queue.
    #[arg(long, env = "BILLING_QUEUE", default_value = "billing")]
    queue: String,
    /// The `[[chains]]` name in ethgate's config.
    #[arg(long, env = "BILLING_CHAIN")]
    chain: String,
    /// That chain's id (in the routing keys).
    #[arg(long, env = "BILLING_CHAIN_ID")]
    chain_id: u64,
    /// The RecurringBilling contract.
    #[arg(long, env = "BILLING_CONTRACT")]
    contract: String,
    /// The merchant this service charges for.
    #[arg(long, env = "BILLING_MERCHANT")]
    merchant: i64,
    /// The ethgate pool charges are sent from.
    #[arg(long, env = "BILLING_POOL")]
    pool: String,
    /// The schedule's SQLite file.
    #[arg(long, env = "BILLING_DB", default_value = "billing.db")]
    db: String,
    /// Where `/metrics` is served.
    #[arg(long, env = "BILLING_LISTEN", default_value = "127.0.0.1:9400")]
    listen: std::net::SocketAddr,
    /// How often due charges are looked for.
    #[arg(long, default_value = "1000", env = "BILLING_TICK_MS")]
    tick_ms: u64,
}

/// What the consumer and the scheduler share.
pub struct Service {
    /// The schedule.
    pub schedule: Schedule,
    /// ethgate's API.
    pub gateway: Gateway,
    /// The merchant charged for.
    pub merchant: i64,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// The chain's time at the last tick, unix seconds.
    pub now: AtomicI64,
}

impl Service {
    /// One look for due charges: read the chain's state, submit what is
    /// due there and not in flight.
    async fn tick(&self) -> anyhow::Result<()> {
        let (now, _) = self.gateway.billings(&[]).await?;
        self.now.store(now, Ordering::Relaxed);
        let due = self.schedule.due(now, 50).await?;
        if due.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = due.iter().map(|b| b.id.clone()).collect();
        let (now, chain) = self.gateway.billings(&ids).await?;
        for (b, c) in due.iter().zip(chain) {
            let due_at = c.last_charge_at + c.period;
            // Canceled on chain, or the schedule is behind the contract
            // (its event is still on the way): the events decide.
            if !c.active || due_at > now || Some(due_at) != b.next_charge_at {
                continue;
            }
            let key = match b.attempt {
                0 => format!("charge:{}:{due_at}", b.id),
                n => format!("charge:{}:{due_at}:{n}", b.id),
            };
            let tx = self.gateway.charge(&b.id, due_at, &key).await?;
            crash_point();
            self.schedule.submitted(&b.id, &tx).await?;
            self.metrics.submitted.inc();
            tracing::info!(billing = %b.id, due_at, key, tx, "charge submitted");
        }
        Ok(())
    }

    /// A charge ended without charging (allowance or balance too low, a
    /// revert): try again with a new key within the charge window, then
    /// give up with a log line and a metric.
    pub async fn charge_failed(&self, billing: &str, tx: &str, error: &str) -> anyhow::Result<()> {
        let Some((b, _)) = self.schedule.get(billing).await? else {
            return Ok(());
        };
        let now = self.now.load(Ordering::Relaxed);
        let due = b.next_charge_at.unwrap_or(now);
        let give_up = now > due + b.period;
        let retry_at = now + (b.period / 10).max(5);
        if self.schedule.failed(billing, tx, retry_at, give_up).await? {
            tracing::error!(
                billing,
                due,
                error,
                "charge given up: the charge window has passed"
            );
            self.metrics.given_up.inc();
        } else {
            tracing::warn!(billing, due, error, "charge failed; retrying");
            self.metrics.failed.inc();
        }
        Ok(())
    }
}

/// Fault injection for the end-to-end test: with
/// `BILLING_CRASH_AFTER_SUBMITS=N`, the process dies (as by `kill -9`)
/// after its Nth submission is accepted and before it is recorded — the
/// moment where only the idempotency key prevents a second charge.
fn crash_point() {
    static LEFT: std::sync::OnceLock<std::sync::atomic::AtomicI64> = std::sync::OnceLock::new();
    let left = LEFT.get_or_init(|| {
        let n = std::env::var("BILLING_CRASH_AFTER_SUBMITS").ok();
        std::sync::atomic::AtomicI64::new(n.and_then(|n| n.parse().ok()).unwrap_or(-1))
    });
    if left.fetch_sub(1, Ordering::Relaxed) == 1 {
        std::process::abort();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let token = std::env::var("ETHGATE_TOKEN").context("ETHGATE_TOKEN is not set")?;
    let contract = args.contract.to_ascii_lowercase();
    let svc = Arc::new(Service {
        schedule: Schedule::open(&args.db).await?,
        gateway: Gateway::new(&args.ethgate, &token, &args.chain, &contract, &args.pool),
        merchant: args.merchant,
        metrics: Default::default(),
        now: AtomicI64::new(0),
    });
    let binding = consumer::Binding {
        url: args.amqp.clone(),
        exchange: args.exchange.clone(),
        queue: args.queue.clone(),
        keys: vec![
            format!("event.{}.{contract}.*", args.chain_id),
            format!("tx.{}.*", args.chain_id),
        ],
    };
    tokio::spawn(metrics::serve(svc.clone(), args.listen));
    let consuming = tokio::spawn({
        let svc = svc.clone();
        async move {
            loop {
                if let Err(e) = consumer::run(svc.clone(), &binding).await {
                    tracing::warn!(error = %e, "the broker connection ended; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(args.tick_ms));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = svc.tick().await {
                    tracing::warn!(error = %e, "looking for due charges failed; next tick retries");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    consuming.abort();
    Ok(())
}
