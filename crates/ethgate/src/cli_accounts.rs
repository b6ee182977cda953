//! `ethgate accounts …`: the operational accounts through the running
//! gateway's API (token from `ETHGATE_TOKEN`). `rotate` asks the gateway
//! to rotate a pool and follows it to the end; the rotation itself runs in
//! the gateway and survives this command being interrupted — running the
//! command again picks the same rotation up.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use ethgate_core::RotationStep;

use crate::config::Config;

/// `ethgate accounts`.
#[derive(Subcommand)]
pub enum AccountsCommand {
    /// Pools, members, balances, top-ups and alerts.
    List,
    /// Replace every member of a pool in one master transaction: new
    /// keystores, funded, registered with setOperators(new, old), the pool
    /// switched, the old members drained and swept back to funding.
    Rotate {
        /// The pool.
        #[arg(long)]
        pool: String,
        /// Return once the gateway has accepted the rotation (the final
        /// rotation is printed on stdout otherwise, as JSON).
        #[arg(long)]
        no_wait: bool,
        /// Makes the command idempotent: run again with the same key, it
        /// follows the rotation it started instead of starting another.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// With an external master: also write the transaction to sign here.
        #[arg(long)]
        multisig_out: Option<std::path::PathBuf>,
        /// Give up waiting after this long, e.g. "10m" (the rotation goes on).
        #[arg(long, default_value = "30m")]
        timeout: humantime::Duration,
    },
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.bearer_auth(&self.token).send().await.with_context(|| {
            format!(
                "cannot reach the gateway at {} (is `ethgate serve` running?)",
                self.base
            )
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            anyhow::bail!("the gateway answered {status}: {message}");
        }
        Ok(body)
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Runs an accounts command against the gateway at `api`.
pub async fn accounts(cfg: &Config, api: Option<&str>, cmd: AccountsCommand) -> anyhow::Result<()> {
    let token = std::env::var("ETHGATE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context("environment variable ETHGATE_TOKEN is not set or empty")?;
    let c = Client {
        base: api.map_or_else(|| format!("http://{}", cfg.listen), str::to_owned),
        token,
        http: reqwest::Client::new(),
    };
    match cmd {
        AccountsCommand::List => {
            let v = c
                .call(c.http.get(format!("{}/v1/accounts", c.base)))
                .await?;
            println!("{}", pretty(&v));
        }
        AccountsCommand::Rotate {
            pool,
            no_wait,
            idempotency_key,
            multisig_out,
            timeout,
        } => {
            let body = serde_json::json!({"idempotency_key": idempotency_key});
            let started = c
                .call(
                    c.http
                        .post(format!("{}/v1/pools/{pool}/rotate", c.base))
                        .json(&body),
                )
                .await?;
            eprintln!(
                "rotation {} of pool {pool}: {}",
                started["id"].as_str().unwrap_or("?"),
                started["step"].as_str().unwrap_or("?")
            );
            if no_wait {
                println!("{}", pretty(&started));
            } else {
                follow(&c, &pool, multisig_out.as_deref(), timeout).await?;
            }
        }
    }
    Ok(())
}

/// Follows a pool's rotation to its end, printing each step as it is
/// reached and the transaction an external master must sign; the final
/// rotation goes to stdout as JSON.
async fn follow(
    c: &Client,
    pool: &str,
    multisig_out: Option<&std::path::Path>,
    timeout: humantime::Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from(timeout);
    let mut last = None;
    let mut shown_multisig = false;
    loop {
        let v = c
            .call(c.http.get(format!("{}/v1/pools/{pool}/rotation", c.base)))
            .await?;
        let step: RotationStep = serde_json::from_value(v["step"].clone())
            .with_context(|| format!("the gateway showed a rotation without a step: {v}"))?;
        if last != Some(step) {
            eprintln!("  step: {step}");
            last = Some(step);
        }
        if let Some(m) = v.get("multisig_transaction")
            && !shown_multisig
        {
            show_multisig(m, multisig_out)?;
            shown_multisig = true;
        }
        if let Some(e) = v["error"].as_str() {
            anyhow::bail!(
                "rotation stopped at {step}: {e}\nfix the cause and run this command again to retry"
            );
        }
        if step == RotationStep::Done {
            println!("{}", pretty(&v));
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "still at {step} after {timeout}; the gateway carries on — run this command again to follow it"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Shows the transaction an external master must sign (and writes it to
/// `out`, when given).
fn show_multisig(m: &Value, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    eprintln!(
        "  sign and send this transaction from the registry's owner; waiting for it on chain:"
    );
    eprintln!("{}", pretty(m));
    if let Some(path) = out {
        std::fs::write(path, pretty(m) + "\n")
            .with_context(|| format!("--multisig-out: cannot write {}", path.display()))?;
        eprintln!("  (also written to {})", path.display());
    }
    Ok(())
}
