//! The balance watcher: reads every active member's balance, exports it,
//! and tops up a member below the pool's minimum from the funding account
//! — one top-up in flight per member, and never more per UTC day than the
//! pool's cap. When it cannot (cap reached, top-up refused), the pool
//! carries an alert, shown by `GET /v1/accounts` and as a metric.

use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::{Address, U256};
use ethgate_core::{MemberState, TxStatus};
use ethgate_store::{MemberRow, TopUpRow};
use serde_json::json;

use crate::{AlertKind, PoolAlert, PoolSpec, PoolWorkError, Pools, Seen};

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

/// A top-up whose request has not ended: it may still move ETH.
fn open(t: &TopUpRow) -> bool {
    matches!(
        t.status,
        Some(TxStatus::Queued | TxStatus::Pending | TxStatus::Mined)
    )
}

impl Seen {
    /// Raises an alert about `account` for this pass.
    fn alert(&mut self, kind: AlertKind, account: &str, message: String) {
        self.alerts.push(PoolAlert {
            kind,
            account: account.to_owned(),
            message,
        });
    }
}

impl Pools {
    /// One round of a pool's watcher: balances read and exported, members
    /// below the minimum topped up (or an alert saying why not), and what
    /// it saw kept for `GET /v1/accounts`.
    pub(crate) async fn watch(&self, spec: &PoolSpec) -> Result<(), PoolWorkError> {
        let members = self.store().pool_members(&spec.settings.name).await?;
        let mut seen = Seen::default();
        for m in members.iter().filter(|m| m.state != MemberState::Retired) {
            let Ok(address) = m.address.parse::<Address>() else {
                continue;
            };
            let balance: U256 = spec
                .endpoints
                .call("eth_getBalance", json!([address, "latest"]))
                .await?;
            metrics::gauge!("ethgate_account_balance_ether", "chain" => spec.settings.chain.clone(), "pool" => spec.settings.name.clone(), "account" => m.address.clone())
                .set(ether(balance));
            seen.balances.insert(address, balance);
        }
        let day = today();
        let top_ups = self.store().top_ups(&spec.settings.name, day).await?;
        let mut spent: u128 = top_ups
            .iter()
            // A final top-up moved no ETH and never will; one whose
            // request is missing is counted, to be safe.
            .filter(|t| !t.status.is_some_and(TxStatus::is_final))
            .map(|t| t.amount)
            .sum();
        let active = members.iter().filter(|m| m.state == MemberState::Active);
        for m in active {
            self.top_up(spec, m, &top_ups, day, &mut spent, &mut seen)
                .await?;
        }
        seen.topped_up_today = spent;
        metrics::gauge!("ethgate_pool_alerts", "pool" => spec.settings.name.clone())
            .set(seen.alerts.len() as f64);
        for a in &seen.alerts {
            tracing::warn!(pool = %spec.settings.name, kind = ?a.kind, alert = %a.message, "pool alert");
        }
        if let Ok(mut all) = self.seen.lock() {
            all.insert(spec.settings.name.clone(), seen);
        }
        Ok(())
    }

    /// Tops `m` up if it is below the pool's minimum and nothing stands in
    /// the way — one top-up in flight per member, a rejected one retried
    /// after [`RETRY_AFTER`], never past the daily cap — or says why not
    /// in the pool's alerts.
    async fn top_up(
        &self,
        spec: &PoolSpec,
        m: &MemberRow,
        top_ups: &[TopUpRow],
        day: i64,
        spent: &mut u128,
        seen: &mut Seen,
    ) -> Result<(), PoolWorkError> {
        let s = &spec.settings;
        let (Some(min), Some(amount), Some(funding)) = (s.min_balance, s.top_up, s.funding) else {
            return Ok(());
        };
        let Ok(address) = m.address.parse::<Address>() else {
            return Ok(());
        };
        if seen
            .balances
            .get(&address)
            .is_none_or(|b| *b >= U256::from(min))
        {
            return Ok(());
        }
        let mine: Vec<&TopUpRow> = top_ups.iter().filter(|t| t.address == m.address).collect();
        if !self
            .may_top_up(spec, m, &mine, (*spent, amount), seen)
            .await
        {
            return Ok(());
        }
        let key = format!("topup:{}:{}:{day}:{}", s.name, m.address, mine.len());
        let mut req = self.tx.request(&s.chain, funding, address, key);
        req.value = U256::from(amount);
        req.metadata = json!({"purpose": "top-up", "pool": s.name});
        match self.tx.submit_request(req).await {
            Ok(t) => {
                self.store()
                    .add_top_up(&t.id, &s.name, &m.address, amount, day)
                    .await?;
                *spent = spent.saturating_add(amount);
                tracing::info!(pool = %s.name, account = %m.address, tx = %t.id, amount, "top-up requested");
            }
            Err(e) => seen.alert(
                AlertKind::TopUpRefused,
                &m.address,
                format!("top-up of {} refused: {e}", m.address),
            ),
        }
        Ok(())
    }

    /// Whether `m` may be topped up now: no top-up of it in flight, its
    /// last one not rejected less than [`RETRY_AFTER`] ago, the daily cap
    /// not passed by `amount` more than `spent` today. What stands in the
    /// way is raised as an alert.
    async fn may_top_up(
        &self,
        spec: &PoolSpec,
        m: &MemberRow,
        mine: &[&TopUpRow],
        (spent, amount): (u128, u128),
        seen: &mut Seen,
    ) -> bool {
        let s = &spec.settings;
        if let Some(open) = mine.iter().find(|t| open(t)) {
            // One in flight; if the node refuses it (the funding account
            // cannot pay, say), the pool says so.
            let row = self.store().tx(&open.tx_id).await.ok().flatten();
            if let Some(error) = row.and_then(|r| r.error) {
                seen.alert(
                    AlertKind::TopUpWaiting,
                    &m.address,
                    format!("top-up of {} is waiting: {error}", m.address),
                );
            }
            return false;
        }
        if let Some(last) = mine.last()
            && last.status == Some(TxStatus::Rejected)
        {
            // The funding account could not pay (or the node refused):
            // alert, and try again once RETRY_AFTER has passed — someone
            // may have refilled it.
            let row = self.store().tx(&last.tx_id).await.ok().flatten();
            let why = row.as_ref().and_then(|r| r.error.clone());
            seen.alert(
                AlertKind::TopUpRejected,
                &m.address,
                format!(
                    "top-up of {} was rejected: {}",
                    m.address,
                    why.unwrap_or_default()
                ),
            );
            if now() - row.map_or(0, |r| r.updated_at) < RETRY_AFTER {
                return false;
            }
        }
        if let Some(cap) = s.daily_cap
            && spent.saturating_add(amount) > cap
        {
            seen.alert(
                AlertKind::DailyCapReached,
                &m.address,
                format!(
                    "{} is below its minimum balance, but today's top-ups ({spent} wei) would pass the daily cap of {cap} wei",
                    m.address
                ),
            );
            return false;
        }
        true
    }
}
