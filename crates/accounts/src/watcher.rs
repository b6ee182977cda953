//! The balance watcher: reads every active member's balance, exports it,
//! and tops up a member below the pool's minimum from the funding account
//! — one top-up in flight per member, and never more per UTC day than the
//! pool's cap. When it cannot (cap reached, top-up refused), the pool
//! carries an alert, shown by `GET /v1/accounts` and as a metric.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, U256};
use serde_json::json;

use crate::{PoolSpec, Pools, Seen, hex_addr};

/// Statuses of a request that has not ended.
const OPEN: [&str; 3] = ["queued", "pending", "mined"];
/// Statuses of a request that moved no ETH.
const NOTHING_SENT: [&str; 3] = ["rejected", "cancelled", "expired"];

/// Seconds before a rejected top-up is tried again.
const RETRY_AFTER: i64 = 300;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn today() -> i64 {
    now() / 86_400
}

fn ether(wei: U256) -> f64 {
    f64::from(wei) / 1e18
}

impl Pools {
    pub(crate) async fn watch(&self, spec: &PoolSpec) -> Result<(), String> {
        let members = self
            .store()
            .pool_members(&spec.settings.name)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen = Seen::default();
        for m in members
            .iter()
            .filter(|m| m.state != ethgate_core::MemberState::Retired)
        {
            let Ok(address) = m.address.parse::<Address>() else {
                continue;
            };
            let balance: U256 = spec
                .endpoints
                .call("eth_getBalance", json!([address, "latest"]))
                .await
                .map_err(|e| e.to_string())?;
            metrics::gauge!("ethgate_account_balance_ether", "chain" => spec.settings.chain.clone(), "pool" => spec.settings.name.clone(), "account" => m.address.clone())
                .set(ether(balance));
            seen.balances.insert(address, balance);
        }
        let day = today();
        let top_ups = self
            .store()
            .top_ups(&spec.settings.name, day)
            .await
            .map_err(|e| e.to_string())?;
        let mut spent: u128 = top_ups
            .iter()
            .filter(|t| !NOTHING_SENT.contains(&t.3.as_str()))
            .map(|t| t.2)
            .sum();
        if let (Some(min), Some(amount), Some(funding)) = (
            spec.settings.min_balance,
            spec.settings.top_up,
            spec.settings.funding,
        ) {
            for m in members
                .iter()
                .filter(|m| m.state == ethgate_core::MemberState::Active)
            {
                let Ok(address) = m.address.parse::<Address>() else {
                    continue;
                };
                let Some(balance) = seen.balances.get(&address) else {
                    continue;
                };
                if *balance >= U256::from(min) {
                    continue;
                }
                let mine: Vec<_> = top_ups.iter().filter(|t| t.1 == m.address).collect();
                if let Some(open) = mine.iter().find(|t| OPEN.contains(&t.3.as_str())) {
                    // One in flight; if the node refuses it (the funding
                    // account cannot pay, say), the pool says so.
                    let error = self
                        .store()
                        .tx(&open.0)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|r| r.error);
                    if let Some(error) = error {
                        seen.alerts
                            .push(format!("top-up of {} is waiting: {error}", m.address));
                    }
                    continue;
                }
                if let Some(last) = mine.last()
                    && last.3 == "rejected"
                {
                    // The funding account could not pay (or the node
                    // refused): alert, and try again once RETRY_AFTER has
                    // passed — someone may have refilled it.
                    let row = self.store().tx(&last.0).await.ok().flatten();
                    let why = row
                        .as_ref()
                        .and_then(|r| r.error.clone())
                        .unwrap_or_default();
                    seen.alerts
                        .push(format!("top-up of {} was rejected: {why}", m.address));
                    let rejected_at = row.map_or(0, |r| r.updated_at);
                    if now() - rejected_at < RETRY_AFTER {
                        continue;
                    }
                }
                if let Some(cap) = spec.settings.daily_cap
                    && spent.saturating_add(amount) > cap
                {
                    seen.alerts.push(format!(
                        "{} is below its minimum balance, but today's top-ups ({spent} wei) would pass the daily cap of {cap} wei",
                        m.address
                    ));
                    continue;
                }
                let body = json!({
                    "chain": spec.settings.chain,
                    "from": hex_addr(funding),
                    "to": m.address,
                    "value": amount.to_string(),
                    "idempotency_key": format!("topup:{}:{}:{day}:{}", spec.settings.name, m.address, mine.len()),
                    "metadata": {"purpose": "top-up", "pool": spec.settings.name},
                });
                match self.tx.submit(&body).await {
                    Ok(s) => {
                        self.store()
                            .add_top_up(&s.id, &spec.settings.name, &m.address, amount, day)
                            .await
                            .map_err(|e| e.to_string())?;
                        spent = spent.saturating_add(amount);
                        tracing::info!(pool = %spec.settings.name, account = %m.address, tx = %s.id, amount, "top-up requested");
                    }
                    Err(e) => seen
                        .alerts
                        .push(format!("top-up of {} refused: {e}", m.address)),
                }
            }
        }
        seen.topped_up_today = spent;
        metrics::gauge!("ethgate_pool_alerts", "pool" => spec.settings.name.clone())
            .set(seen.alerts.len() as f64);
        for a in &seen.alerts {
            tracing::warn!(pool = %spec.settings.name, alert = %a, "pool alert");
        }
        if let Ok(mut all) = self.seen.lock() {
            all.insert(spec.settings.name.clone(), seen);
        }
        Ok(())
    }
}
