//! Per-minute counts for the dashboard, kept by the gateway itself so the
//! page works without Prometheus: events recorded and reorgs per stream,
//! and transactions by status, sampled from the store once a minute for
//! the last 24 hours (in memory: a restart starts the charts again). The
//! minute in progress is measured on request, so the newest bar is live.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use ethgate_core::TxStatus;
use ethgate_store::{Store, StoreError};

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState};

/// Minutes kept: 24 hours.
const KEEP: usize = 24 * 60;

/// Cumulative counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Totals {
    events: BTreeMap<String, u64>,
    reorgs: BTreeMap<String, u64>,
    tx: BTreeMap<TxStatus, u64>,
}

/// One minute of the charts.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Minute {
    /// Unix seconds of the minute's start.
    pub at: i64,
    /// Events recorded during the minute, per stream.
    pub events: BTreeMap<String, u64>,
    /// Reorgs seen during the minute, per stream.
    pub reorgs: BTreeMap<String, u64>,
    /// Transactions in each status at the minute's end (or now).
    pub transactions: BTreeMap<String, u64>,
}

/// `GET /v1/stats`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StatsPage {
    /// Oldest first; the last is the minute in progress.
    pub minutes: Vec<Minute>,
}

#[derive(Debug, Default)]
struct Ring {
    last: Option<(i64, Totals)>,
    minutes: VecDeque<Minute>,
}

/// The samples, shared by the sampler and the API.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    ring: Arc<Mutex<Ring>>,
}

async fn totals(store: &Store) -> Result<Totals, StoreError> {
    let mut t = Totals::default();
    for s in store.streams().await? {
        t.events.insert(s.name.clone(), s.events_recorded);
        t.reorgs.insert(s.name, s.reorgs);
    }
    for (status, n) in store.tx_status_counts().await? {
        t.tx.insert(status, n);
    }
    Ok(t)
}

fn delta(now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(*before.get(k).unwrap_or(&0))))
        .collect()
}

fn minute(at: i64, now: &Totals, before: &Totals) -> Minute {
    Minute {
        at,
        events: delta(&now.events, &before.events),
        reorgs: delta(&now.reorgs, &before.reorgs),
        transactions: now
            .tx
            .iter()
            .map(|(s, n)| (s.as_str().to_owned(), *n))
            .collect(),
    }
}

impl Stats {
    /// Takes one sample: closes the minute since the last one.
    pub async fn sample(&self, store: &Store) -> Result<(), StoreError> {
        let now = totals(store).await?;
        let at = crate::unix_secs() / 60 * 60;
        let Ok(mut ring) = self.ring.lock() else {
            return Ok(());
        };
        if let Some((since, before)) = ring.last.take() {
            ring.minutes.push_back(minute(since, &now, &before));
            while ring.minutes.len() > KEEP {
                ring.minutes.pop_front();
            }
        }
        ring.last = Some((at, now));
        Ok(())
    }

    /// Samples every `every` until `stop` turns true.
    pub async fn run(
        self,
        store: Store,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.sample(&store).await {
                tracing::warn!(error = %e, "sampling the dashboard's counts failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }

    /// The kept minutes and the one in progress.
    async fn page(&self, store: &Store) -> Result<Vec<Minute>, StoreError> {
        let now = totals(store).await?;
        let Ok(ring) = self.ring.lock() else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Minute> = ring.minutes.iter().cloned().collect();
        let (since, before) = ring
            .last
            .clone()
            .unwrap_or((crate::unix_secs() / 60 * 60, Totals::default()));
        out.push(minute(since, &now, &before));
        Ok(out)
    }
}

/// `GET /v1/stats`: per-minute counts for the last 24 hours.
#[utoipa::path(get, path = "/v1/stats", operation_id = "get_stats", tag = "health", security(("bearer" = [])),
    summary = "Per-minute counts of the last 24 h: events and reorgs per stream, transactions by status",
    responses((status = 200, body = StatsPage, description = "oldest first; the last is the minute in progress"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read status")))]
pub async fn stats(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<StatsPage>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let minutes = state.stats.page(&state.store).await?;
    Ok(Json(StatsPage { minutes }))
}
