//! Each endpoint's own health, from probes sent to every endpoint
//! directly: the chain id it answers (checked on every endpoint, not only
//! the first that answers — a wrong-chain endpoint is never used, and is
//! named), its head, whether it answers, and how far it lags the best head
//! of the chain's endpoints. Calls fail over on their own; probes are what
//! `/v1/chains` and the per-endpoint metrics show, and what admits an
//! endpoint whose chain id was not yet seen.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy_primitives::U64;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::metrics as m;
use crate::pool::EndpointPool;

/// Whether an endpoint answers the configured chain id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChainCheck {
    /// Not seen yet (it has not answered a probe).
    #[default]
    Unchecked,
    /// It answers the configured chain id (or none is configured).
    Matches,
    /// It answers this other chain id: it is never used.
    Wrong(u64),
}

/// What the probes found of one endpoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    pub(crate) chain: ChainCheck,
    pub(crate) head: Option<u64>,
    pub(crate) up: bool,
    pub(crate) error: Option<String>,
    pub(crate) probed_ms: u64,
}

/// One endpoint as the pool knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStatus {
    /// `scheme://host:port` (never the path, which may hold a key).
    pub endpoint: String,
    /// Whether it answered the last probe.
    pub up: bool,
    /// Its head at the last probe it answered.
    pub head: Option<u64>,
    /// Blocks behind the best head of the chain's endpoints.
    pub lag: Option<u64>,
    /// Its chain id check.
    pub chain: ChainCheck,
    /// Why the last probe failed, if it did.
    pub error: Option<String>,
    /// Unix milliseconds of the last probe (0: never probed).
    pub probed_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EndpointPool {
    /// Calls `method` on endpoint `idx` alone (no failover): for probes.
    pub(crate) async fn call_on<T: DeserializeOwned>(
        &self,
        idx: usize,
        method: &str,
        params: Value,
    ) -> Result<T, String> {
        let ep = &self.endpoints[idx];
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let parse = |ep: &crate::pool::Endpoint, bytes: &[u8]| self.parse_single(ep, method, bytes);
        match self.attempt(ep, method, &body, &parse).await {
            crate::pool::Attempt::Done(v) => {
                self.last_ok_ms.store(now_ms(), Ordering::Relaxed);
                Ok(v)
            }
            crate::pool::Attempt::Fatal(e) => Err(e.to_string()),
            crate::pool::Attempt::Endpoint(why, _) => Err(why),
        }
    }

    /// Whether endpoint `idx` may be asked: it never answered another
    /// chain id, and when one is configured it has answered it.
    pub(crate) fn usable(&self, idx: usize) -> bool {
        let Some(ep) = self.endpoints.get(idx) else {
            return false;
        };
        let check = ep.health.lock().map_or(ChainCheck::Unchecked, |h| h.chain);
        match (check, self.cfg.chain_id) {
            (ChainCheck::Wrong(_), _) => false,
            (_, None) | (ChainCheck::Matches, _) => true,
            (ChainCheck::Unchecked, Some(_)) => false,
        }
    }

    /// Probes every endpoint at once: its chain id (until it matched) and
    /// its head; returns what is known of each afterwards.
    pub async fn probe(&self) -> Vec<EndpointStatus> {
        let probes = (0..self.endpoints.len()).map(|i| self.probe_one(i));
        futures::future::join_all(probes).await;
        let statuses = self.statuses();
        for s in &statuses {
            let labels = [
                ("chain", self.cfg.chain.clone()),
                ("endpoint", s.endpoint.clone()),
            ];
            metrics::gauge!(m::RPC_ENDPOINT_HEAD, &labels).set(s.head.unwrap_or(0) as f64);
            metrics::gauge!(m::RPC_ENDPOINT_LAG, &labels).set(s.lag.unwrap_or(0) as f64);
            let serves = s.up && s.chain == ChainCheck::Matches;
            metrics::gauge!(m::RPC_ENDPOINT_UP, &labels).set(f64::from(u8::from(serves)));
        }
        statuses
    }

    async fn probe_one(&self, idx: usize) {
        let checked = self.endpoints[idx]
            .health
            .lock()
            .map_or(ChainCheck::Unchecked, |h| h.chain);
        let chain = match checked {
            ChainCheck::Unchecked => match self.call_on::<U64>(idx, "eth_chainId", json!([])).await
            {
                Ok(id) => Some(Ok(id.to::<u64>())),
                Err(e) => Some(Err(e)),
            },
            _ => None,
        };
        let head = self
            .call_on::<U64>(idx, "eth_blockNumber", json!([]))
            .await
            .map(|n| n.to::<u64>());
        let ep = &self.endpoints[idx];
        let Ok(mut h) = ep.health.lock() else {
            return;
        };
        h.probed_ms = now_ms();
        match chain {
            Some(Ok(id)) if self.cfg.chain_id.is_none_or(|want| want == id) => {
                h.chain = ChainCheck::Matches;
            }
            Some(Ok(id)) => {
                if h.chain != ChainCheck::Wrong(id) {
                    tracing::error!(chain = %self.cfg.chain, endpoint = %ep.label, expected = ?self.cfg.chain_id, answered = id, "endpoint serves another chain; it is not used");
                }
                h.chain = ChainCheck::Wrong(id);
            }
            Some(Err(_)) | None => {}
        }
        match head {
            Ok(n) => {
                h.up = true;
                h.head = Some(n);
                h.error = None;
            }
            Err(e) => {
                h.up = false;
                h.error = Some(e);
            }
        }
    }

    /// What is known of each endpoint, in configured order.
    pub fn statuses(&self) -> Vec<EndpointStatus> {
        let healths: Vec<Health> = self
            .endpoints
            .iter()
            .map(|ep| ep.health.lock().map(|h| h.clone()).unwrap_or_default())
            .collect();
        let best = healths
            .iter()
            .filter(|h| h.up && h.chain != ChainCheck::Unchecked)
            .filter(|h| !matches!(h.chain, ChainCheck::Wrong(_)))
            .filter_map(|h| h.head)
            .max();
        self.endpoints
            .iter()
            .zip(healths)
            .map(|(ep, h)| EndpointStatus {
                endpoint: ep.label.clone(),
                up: h.up,
                head: h.head,
                lag: h.head.zip(best).map(|(n, b)| b.saturating_sub(n)),
                chain: h.chain,
                error: h.error,
                probed_ms: h.probed_ms,
            })
            .collect()
    }
}

/// Probes `pool` every `every` until `shutdown`.
pub async fn watch(pool: Arc<EndpointPool>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    loop {
        pool.probe().await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
    }
}
