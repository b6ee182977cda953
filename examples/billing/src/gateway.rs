//! ethgate's HTTP API as this service uses it: read the contract through
//! `POST /v1/calls`, submit charges through `POST /v1/transactions`.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Where ethgate is and how to reach it.
#[derive(Clone)]
pub struct Gateway {
    base: String,
    token: String,
    http: reqwest::Client,
    /// The `[[chains]]` name.
    pub chain: String,
    /// The billing contract, 0x.
    pub contract: String,
    /// The pool charges are sent from.
    pub pool: String,
}

/// A billing as the contract holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnChain {
    /// `false` once canceled (the contract deletes it).
    pub active: bool,
    /// Its merchant.
    pub merchant: u64,
    /// Seconds between charges.
    pub period: i64,
    /// Chain time of the last charge.
    pub last_charge_at: i64,
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

impl Gateway {
    /// A client of the gateway at `base`.
    pub fn new(base: &str, token: &str, chain: &str, contract: &str, pool: &str) -> Gateway {
        Gateway {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            chain: chain.to_owned(),
            contract: contract.to_owned(),
            pool: pool.to_owned(),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("ethgate at {} is unreachable", self.base))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    /// The chain's time, and each billing as the contract holds it, all
    /// read at one block.
    pub async fn billings(&self, ids: &[String]) -> anyhow::Result<(i64, Vec<OnChain>)> {
        let mut calls = vec![json!({"chain": self.chain, "to": self.contract,
            "function": "merchantCount()(uint256)"})];
        calls.extend(ids.iter().map(|id| {
            json!({"chain": self.chain, "to": self.contract,
                "function": "billings(uint256)(address customer,uint256 merchantId,uint256 value,uint64 period,uint64 lastChargeAt)",
                "args": [id]})
        }));
        let (status, body) = self.post("/v1/calls", &json!({ "calls": calls })).await?;
        if status != 200 {
            bail!("reading billings: ethgate answered {status}: {body}");
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        let now = results
            .first()
            .and_then(|r| int(&r["block_timestamp"]))
            .context("no block time in the answer")?;
        let mut out = Vec::with_capacity(ids.len());
        for r in results.iter().skip(1) {
            let o = &r["outputs"];
            let customer = o["customer"].as_str().unwrap_or_default();
            out.push(OnChain {
                active: r["ok"] == true
                    && customer.trim_start_matches("0x").chars().any(|c| c != '0'),
                merchant: int(&o["merchantId"]).unwrap_or(0) as u64,
                period: int(&o["period"]).unwrap_or(0),
                last_charge_at: int(&o["lastChargeAt"]).unwrap_or(0),
            });
        }
        Ok((now, out))
    }

    /// Submits `charge(billingId)` under `key`; the transaction's id. The
    /// same key returns the same transaction, so a retry after a crash
    /// never charges twice.
    pub async fn charge(&self, billing: &str, due: i64, key: &str) -> anyhow::Result<String> {
        let body = json!({
            "chain": self.chain, "from": self.pool, "to": self.contract,
            "function": "charge(uint256)", "args": [billing],
            "idempotency_key": key,
            "metadata": {"billing_id": billing, "due": due},
            // The token's errors, so a refusal names the customer's
            // missing allowance or balance rather than showing hex.
            "errors": [
                "ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)",
                "ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)",
            ],
        });
        let (status, answer) = self.post("/v1/transactions", &body).await?;
        match (status, answer["id"].as_str()) {
            (200 | 202, Some(id)) => Ok(id.to_owned()),
            _ => bail!("charging billing {billing}: ethgate answered {status}: {answer}"),
        }
    }
}
