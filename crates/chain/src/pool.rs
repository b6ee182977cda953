//! An endpoint pool: one chain's JSON-RPC calls spread over its node URLs,
//! with failover, cooldown and metrics.
//!
//! URLs often carry an API key in their path, so they are treated as secrets:
//! only `scheme://host:port` of an endpoint (its *label*) ever reaches a log
//! line, a metric label or an error.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::metrics as m;
use crate::rpc_error::{RpcErrorClass, classify};

/// Why a call failed after the pool did what it could.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node answered with a JSON-RPC error about the request itself.
    #[error("chain {chain}: {endpoint} answered {method} with error {code}: {message}")]
    Rpc {
        /// Chain name.
        chain: String,
        /// Endpoint label (no path, no key).
        endpoint: String,
        /// Method called.
        method: String,
        /// JSON-RPC error code.
        code: i64,
        /// Node's message.
        message: String,
        /// What the message means.
        class: RpcErrorClass,
        /// The revert data the node attached (a reverted `eth_call` or
        /// `eth_estimateGas`), so callers can decode the reason themselves
        /// rather than trust each node's own rendering of it.
        data: Option<alloy_primitives::Bytes>,
    },
    /// Every endpoint failed for endpoint reasons, for every retry round.
    #[error("chain {chain}: no endpoint answered {method}; last failure: {last}")]
    Unavailable {
        /// Chain name.
        chain: String,
        /// Method called.
        method: String,
        /// The last endpoint failure seen.
        last: String,
    },
    /// The node answered something that is not the expected JSON.
    #[error("chain {chain}: malformed answer to {method} from {endpoint}: {reason}")]
    Malformed {
        /// Chain name.
        chain: String,
        /// Endpoint label.
        endpoint: String,
        /// Method called.
        method: String,
        /// What was wrong.
        reason: String,
    },
}

impl ChainError {
    /// The classification of a JSON-RPC error, if this is one.
    pub fn class(&self) -> Option<RpcErrorClass> {
        match self {
            ChainError::Rpc { class, .. } => Some(*class),
            _ => None,
        }
    }
}

/// Tuning of a pool; every field comes from the chain's config.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Chain name, for labels and errors.
    pub chain: String,
    /// Node URLs, tried in order of preference.
    pub urls: Vec<String>,
    /// Per-request timeout; a timeout fails over.
    pub request_timeout: Duration,
    /// How many times every endpoint is tried before a call gives up.
    pub max_rounds: u32,
    /// First cooldown of a failing endpoint; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Longest cooldown.
    pub backoff_max: Duration,
    /// The chain id every endpoint must answer (`None`: not checked). An
    /// endpoint is used only once [`EndpointPool::probe`] has seen it
    /// answer this id, and never after it answered another.
    pub chain_id: Option<u64>,
}

pub(crate) struct Endpoint {
    url: String,
    pub(crate) label: String,
    failures: Mutex<(u32, Option<Instant>)>,
    /// What probes found (see `health`).
    pub(crate) health: Mutex<crate::health::Health>,
}

/// A chain's endpoints. Cheap to share behind an `Arc`; all methods take
/// `&self`.
pub struct EndpointPool {
    pub(crate) cfg: PoolConfig,
    pub(crate) endpoints: Vec<Endpoint>,
    client: reqwest::Client,
    pub(crate) next_id: AtomicU64,
    pub(crate) last_ok_ms: AtomicU64,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct Response<T> {
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct BatchItem {
    id: u64,
    #[serde(default)]
    result: Option<Box<serde_json::value::RawValue>>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

/// Outcome of one attempt on one endpoint.
pub(crate) enum Attempt<T> {
    Done(T),
    /// The endpoint is at fault; try another.
    Endpoint(String, Option<Duration>),
    /// The request is at fault; stop.
    Fatal(ChainError),
}

/// `scheme://host:port` of a URL: safe to log.
pub fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port_or_known_default() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EndpointPool {
    /// Builds the pool; fails only if the HTTP client cannot be built.
    pub fn new(cfg: PoolConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .pool_max_idle_per_host(8)
            .build()?;
        let endpoints = cfg
            .urls
            .iter()
            .map(|u| Endpoint {
                url: u.clone(),
                label: redact(u),
                failures: Mutex::new((0, None)),
                health: Mutex::default(),
            })
            .collect();
        Ok(EndpointPool {
            cfg,
            endpoints,
            client,
            next_id: AtomicU64::new(1),
            last_ok_ms: AtomicU64::new(0),
        })
    }

    /// Chain name.
    pub fn chain(&self) -> &str {
        &self.cfg.chain
    }

    /// Unix milliseconds of the last successful call, 0 if none; `/readyz`
    /// uses it to tell whether the chain answers.
    pub fn last_success_ms(&self) -> u64 {
        self.last_ok_ms.load(Ordering::Relaxed)
    }

    /// Calls `method` and deserializes its result straight from the response
    /// bytes (logs are the hot path; no intermediate `Value`).
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Value,
    ) -> Result<T, ChainError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.with_failover(method, &body, |ep, bytes| {
            self.parse_single(ep, method, bytes)
        })
        .await
    }

    /// Sends several calls in one JSON-RPC batch. The outer `Result` fails
    /// like [`call`](Self::call); each inner one is that call's own answer.
    pub async fn batch<T: DeserializeOwned>(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<T, ChainError>>, ChainError> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        let (first, body) = self.batch_body(calls);
        let method = calls[0].0;
        self.with_failover(method, &body, |ep, bytes| {
            self.parse_batch(ep, calls, first, bytes)
        })
        .await
    }

    /// Sends one batch to every endpoint at once and returns each
    /// endpoint's answers (one per call), in endpoint order — for
    /// `eth_sendRawTransaction`, where reaching more nodes gets a
    /// transaction mined sooner and one node dropping it does not lose it.
    /// An endpoint that failed answers every call with that failure.
    // One answer per call in the crate's error type, as `batch` gives.
    #[allow(clippy::result_large_err)]
    pub async fn batch_all<T: DeserializeOwned>(
        &self,
        calls: &[(&str, Value)],
    ) -> Vec<Vec<Result<T, ChainError>>> {
        if calls.is_empty() {
            return Vec::new();
        }
        let (first, body) = self.batch_body(calls);
        let method = calls[0].0;
        let parse = |ep: &Endpoint, bytes: &[u8]| self.parse_batch::<T>(ep, calls, first, bytes);
        let usable = (0..self.endpoints.len()).filter(|i| self.usable(*i));
        let sends = usable.map(|i| &self.endpoints[i]).map(|ep| {
            let body = &body;
            let parse = &parse;
            async move {
                let why = match self.attempt(ep, method, body, parse).await {
                    Attempt::Done(v) => return v,
                    Attempt::Fatal(e) => e.to_string(),
                    Attempt::Endpoint(why, _) => why,
                };
                calls
                    .iter()
                    .map(|_| Err(self.unavailable(method, &why)))
                    .collect()
            }
        });
        futures::future::join_all(sends).await
    }

    /// A batch answer the caller parsed itself (a batch of different
    /// methods is read as raw JSON) that is not what `method` returns.
    pub fn malformed(&self, method: &str, reason: String) -> ChainError {
        ChainError::Malformed {
            chain: self.cfg.chain.clone(),
            endpoint: "a batch answer".to_owned(),
            method: method.to_owned(),
            reason,
        }
    }

    fn unavailable(&self, method: &str, why: &str) -> ChainError {
        ChainError::Unavailable {
            chain: self.cfg.chain.clone(),
            method: method.to_owned(),
            last: why.to_owned(),
        }
    }

    fn batch_body(&self, calls: &[(&str, Value)]) -> (u64, Vec<u8>) {
        let first = self
            .next_id
            .fetch_add(calls.len() as u64, Ordering::Relaxed);
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (method, params))| {
                serde_json::json!({"jsonrpc": "2.0", "id": first + i as u64, "method": method, "params": params})
            })
            .collect();
        (first, serde_json::to_vec(&body).unwrap_or_default())
    }

    fn parse_batch<T: DeserializeOwned>(
        &self,
        ep: &Endpoint,
        calls: &[(&str, Value)],
        first: u64,
        bytes: &[u8],
    ) -> Attempt<Vec<Result<T, ChainError>>> {
        let items: Vec<BatchItem> = match serde_json::from_slice(bytes) {
            Ok(items) => items,
            Err(e) => {
                return Attempt::Endpoint(format!("{}: bad batch answer: {e}", ep.label), None);
            }
        };
        let mut out: Vec<Option<Result<T, ChainError>>> = (0..calls.len()).map(|_| None).collect();
        for item in items {
            let Some(slot) = item
                .id
                .checked_sub(first)
                .and_then(|i| out.get_mut(i as usize))
            else {
                continue;
            };
            let m = calls[(item.id - first) as usize].0;
            *slot = Some(match item.error {
                Some(e) => Err(self.rpc_error(ep, m, e)),
                None => {
                    let raw = item.result.as_deref().map_or("null", |r| r.get());
                    serde_json::from_str(raw).map_err(|e| self.malformed_from(ep, m, e.to_string()))
                }
            });
        }
        if out.iter().any(Option::is_none) {
            return Attempt::Endpoint(format!("{}: batch answer is missing items", ep.label), None);
        }
        Attempt::Done(out.into_iter().flatten().collect())
    }

    fn rpc_error(&self, ep: &Endpoint, method: &str, e: ErrorObject) -> ChainError {
        ChainError::Rpc {
            chain: self.cfg.chain.clone(),
            endpoint: ep.label.clone(),
            method: method.to_owned(),
            class: classify(e.code, &e.message, e.data.as_ref()),
            data: crate::rpc_error::revert_data(e.data.as_ref()),
            code: e.code,
            message: e.message,
        }
    }

    fn malformed_from(&self, ep: &Endpoint, method: &str, reason: String) -> ChainError {
        ChainError::Malformed {
            chain: self.cfg.chain.clone(),
            endpoint: ep.label.clone(),
            method: method.to_owned(),
            reason,
        }
    }

    pub(crate) fn parse_single<T: DeserializeOwned>(
        &self,
        ep: &Endpoint,
        method: &str,
        bytes: &[u8],
    ) -> Attempt<T> {
        let resp: Response<T> = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Endpoint(
                    self.malformed_from(ep, method, e.to_string()).to_string(),
                    None,
                );
            }
        };
        if let Some(e) = resp.error {
            let err = self.rpc_error(ep, method, e);
            return match err.class() {
                Some(c) if c.is_endpoint_problem() => {
                    let backoff =
                        (c == RpcErrorClass::RateLimited).then_some(self.cfg.backoff_base * 4);
                    Attempt::Endpoint(err.to_string(), backoff)
                }
                _ => Attempt::Fatal(err),
            };
        }
        match resp.result {
            Some(v) => Attempt::Done(v),
            None => match serde_json::from_value(Value::Null) {
                Ok(v) => Attempt::Done(v),
                Err(_) => Attempt::Fatal(self.malformed_from(ep, method, "null result".to_owned())),
            },
        }
    }

    /// Picks endpoints in preference order, skipping those cooling down
    /// unless all are, sends `body`, and lets `parse` judge the answer.
    async fn with_failover<T>(
        &self,
        method: &str,
        body: &[u8],
        parse: impl Fn(&Endpoint, &[u8]) -> Attempt<T>,
    ) -> Result<T, ChainError> {
        let n = self.endpoints.len().max(1);
        let mut last = match self.cfg.chain_id {
            Some(id) => format!("no endpoint has been seen to serve chain id {id}"),
            None => String::from("no endpoints configured"),
        };
        for round in 0..self.cfg.max_rounds.max(1) {
            // The configured order is the preference: an endpoint that
            // failed cools down, and is first again once it has. One not
            // known to serve the chain is not asked at all.
            let mut order: Vec<usize> = (0..n).filter(|i| self.usable(*i)).collect();
            // Endpoints out of cooldown first, keeping preference order.
            order.sort_by_key(|i| self.cooling(*i));
            for idx in order {
                let Some(ep) = self.endpoints.get(idx) else {
                    break;
                };
                match self.attempt(ep, method, body, &parse).await {
                    Attempt::Done(v) => {
                        self.mark_ok(idx);
                        return Ok(v);
                    }
                    Attempt::Fatal(e) => {
                        self.mark_ok(idx);
                        return Err(e);
                    }
                    Attempt::Endpoint(why, retry_after) => {
                        tracing::warn!(chain = %self.cfg.chain, endpoint = %ep.label, method, error = %why, "endpoint failed; trying the next");
                        metrics::counter!(m::RPC_FAILOVERS, "chain" => self.cfg.chain.clone(), "endpoint" => ep.label.clone()).increment(1);
                        self.mark_failed(idx, retry_after);
                        last = why;
                    }
                }
            }
            if round + 1 < self.cfg.max_rounds {
                tokio::time::sleep(self.backoff(round + 1)).await;
            }
        }
        Err(self.unavailable(method, &last))
    }

    pub(crate) async fn attempt<T>(
        &self,
        ep: &Endpoint,
        method: &str,
        body: &[u8],
        parse: &impl Fn(&Endpoint, &[u8]) -> Attempt<T>,
    ) -> Attempt<T> {
        let started = Instant::now();
        let sent = self
            .client
            .post(&ep.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let labels = |outcome: &'static str| {
            [
                ("chain", self.cfg.chain.clone()),
                ("endpoint", ep.label.clone()),
                ("method", method.to_owned()),
                ("outcome", outcome.to_owned()),
            ]
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                };
                metrics::counter!(m::RPC_REQUESTS, &labels(kind)).increment(1);
                return Attempt::Endpoint(
                    format!("{}: {kind}: {}", ep.label, e.without_url()),
                    None,
                );
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                metrics::counter!(m::RPC_REQUESTS, &labels("transport")).increment(1);
                return Attempt::Endpoint(
                    format!("{}: reading body: {}", ep.label, e.without_url()),
                    None,
                );
            }
        };
        metrics::histogram!(m::RPC_LATENCY, "chain" => self.cfg.chain.clone(), "endpoint" => ep.label.clone(), "method" => method.to_owned())
            .record(started.elapsed().as_secs_f64());
        if status.as_u16() == 429 {
            metrics::counter!(m::RPC_REQUESTS, &labels("rate_limited")).increment(1);
            return Attempt::Endpoint(
                format!("{}: HTTP 429 Too Many Requests", ep.label),
                retry_after.or(Some(self.cfg.backoff_base * 4)),
            );
        }
        if status.is_server_error() || !status.is_success() && bytes.first() != Some(&b'{') {
            metrics::counter!(m::RPC_REQUESTS, &labels("http_error")).increment(1);
            return Attempt::Endpoint(format!("{}: HTTP {status}", ep.label), None);
        }
        let out = parse(ep, &bytes);
        let outcome = match &out {
            Attempt::Done(_) => "ok",
            Attempt::Endpoint(..) => "endpoint_error",
            Attempt::Fatal(_) => "rpc_error",
        };
        metrics::counter!(m::RPC_REQUESTS, &labels(outcome)).increment(1);
        out
    }

    fn cooling(&self, idx: usize) -> bool {
        let now = Instant::now();
        self.endpoints[idx]
            .failures
            .lock()
            .map(|g| g.1.is_some_and(|until| until > now))
            .unwrap_or(false)
    }

    fn mark_ok(&self, idx: usize) {
        let ep = &self.endpoints[idx];
        if let Ok(mut g) = ep.failures.lock() {
            *g = (0, None);
        }
        self.last_ok_ms.store(now_ms(), Ordering::Relaxed);
        metrics::gauge!(m::RPC_ENDPOINT_UP, "chain" => self.cfg.chain.clone(), "endpoint" => ep.label.clone()).set(1.0);
    }

    fn mark_failed(&self, idx: usize, retry_after: Option<Duration>) {
        let ep = &self.endpoints[idx];
        if let Ok(mut g) = ep.failures.lock() {
            g.0 = g.0.saturating_add(1);
            let wait = retry_after.unwrap_or_else(|| self.backoff(g.0));
            g.1 = Some(Instant::now() + wait);
        }
        metrics::gauge!(m::RPC_ENDPOINT_UP, "chain" => self.cfg.chain.clone(), "endpoint" => ep.label.clone()).set(0.0);
    }

    /// Exponential backoff with full jitter in [base·2^(k-1) / 2, base·2^(k-1)].
    fn backoff(&self, k: u32) -> Duration {
        ethgate_core::backoff::jittered(self.cfg.backoff_base, self.cfg.backoff_max, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_carry_path_or_credentials() {
        assert_eq!(
            redact("https://eth-mainnet.example.com/v2/SECRETKEY"),
            "https://eth-mainnet.example.com:443"
        );
        assert_eq!(
            redact("http://user:pw@127.0.0.1:8545/x?key=abc"),
            "http://127.0.0.1:8545"
        );
        assert_eq!(redact("not a url"), "<invalid url>");
    }
}
