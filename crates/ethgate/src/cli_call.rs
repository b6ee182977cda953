//! `ethgate call`: read contract state through the running gateway's
//! `POST /v1/calls` (token from `ETHGATE_TOKEN`, scope `chain:read`), the
//! way a script or an operator checks what a back end will see.

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use crate::config::Config;

/// `ethgate call`.
#[derive(Args)]
pub struct CallArgs {
    /// API base URL; default http://<api.listen>.
    #[arg(long)]
    api: Option<String>,
    /// The `[[chains]]` name.
    #[arg(long, required_unless_present = "json")]
    chain: Option<String>,
    /// The contract.
    #[arg(long, required_unless_present = "json")]
    to: Option<String>,
    /// A signature with outputs, e.g. "balanceOf(address)(uint256)", or a
    /// function name from a [[streams]] ABI for the contract.
    #[arg(long, required_unless_present = "json")]
    function: Option<String>,
    /// An argument, in order; repeat for each.
    #[arg(long = "arg")]
    args: Vec<String>,
    /// latest (default), safe, finalized, a block number or a block hash.
    #[arg(long)]
    block: Option<String>,
    /// The whole body instead, as `POST /v1/calls` takes it (a batch too).
    #[arg(long, conflicts_with_all = ["chain", "to", "function", "args", "block"])]
    json: Option<String>,
}

fn body(a: &CallArgs) -> anyhow::Result<Value> {
    if let Some(j) = &a.json {
        return serde_json::from_str(j).context("--json: the body is not JSON");
    }
    let mut call = json!({
        "chain": a.chain, "to": a.to, "function": a.function, "args": a.args,
    });
    if let Some(b) = &a.block {
        call["block"] = match b.parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => json!(b),
        };
    }
    Ok(call)
}

/// Runs the call; prints the answer as JSON. A call that reverted is an
/// error (exit 1) naming the reason.
pub async fn call(cfg: &Config, a: CallArgs) -> anyhow::Result<()> {
    let token = std::env::var("ETHGATE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context("environment variable ETHGATE_TOKEN is not set or empty")?;
    let base = a
        .api
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/calls"))
        .bearer_auth(token)
        .json(&body(&a)?)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the gateway at {base} (is `ethgate serve` running?)")
        })?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer.pointer("/error/message").and_then(Value::as_str);
        let field = answer.pointer("/error/field").and_then(Value::as_str);
        anyhow::bail!(
            "the gateway answered {status}: {}{}",
            field.map(|f| format!("{f}: ")).unwrap_or_default(),
            message.unwrap_or("no message")
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&answer).unwrap_or_default()
    );
    let results = match answer.get("results").and_then(Value::as_array) {
        Some(list) => list.clone(),
        None => vec![answer],
    };
    if let Some(failed) = results.iter().find(|r| r["ok"] == false) {
        anyhow::bail!(
            "the call failed: {}",
            failed["error"].as_str().unwrap_or("no reason")
        );
    }
    Ok(())
}
