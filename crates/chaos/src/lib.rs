//! A JSON-RPC proxy that makes one node answer like the endpoints users
//! really have. Put it in front of a node and point ethgate (or anything
//! else) at it: a share of requests is answered by a "backend" some blocks
//! behind (a provider's load balancer over nodes a few blocks apart), or at
//! a head some seconds old; a share fails with HTTP 500 or 429, times out
//! after the upstream acted on it, or has its answer cut; a share of
//! `eth_sendRawTransaction` calls is acknowledged and dropped; and the
//! upstream's pool can be emptied on a timer. Every choice is random, from
//! a seed that can be fixed.
//!
//! Each HTTP request is answered by one "backend": the calls of a batch
//! see one consistent view, as they would on one node; two requests may
//! see different ones, as they do behind a load balancer. `GET /chaos`
//! answers what was done so far.

pub mod modes;
mod server;
mod view;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use modes::{ErrorKind, Lag, ModeError, Modes, Stale};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// How often the proxy reads the upstream's head (the lagging views are
/// counted back from it).
const HEAD_POLL: Duration = Duration::from_millis(50);
/// How much head history is kept for the stale-head mode.
const HISTORY: Duration = Duration::from_secs(600);

/// What the proxy has done so far.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests received.
    pub requests: u64,
    /// Requests answered from behind the head, by how many blocks behind.
    pub lagged: BTreeMap<u64, u64>,
    /// Requests answered at an old head.
    pub stale: u64,
    /// Requests failed, by kind ([`ErrorKind::name`]).
    pub errors: BTreeMap<String, u64>,
    /// `eth_sendRawTransaction` calls acknowledged and dropped.
    pub dropped_sends: u64,
    /// Times the upstream's pool was emptied.
    pub pools_forgotten: u64,
}

/// What a request handler shares.
pub(crate) struct Inner {
    pub(crate) upstream: String,
    pub(crate) client: reqwest::Client,
    pub(crate) modes: Mutex<Modes>,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) stats: Mutex<Stats>,
    /// The upstream's head as last read.
    pub(crate) head: AtomicU64,
    /// Heads read, oldest first, for the stale-head mode.
    pub(crate) history: Mutex<VecDeque<(Instant, u64)>>,
}

/// What one HTTP request draws, all at once, from the modes.
pub(crate) struct Draw {
    /// The head of the "backend" answering (`None`: the upstream itself).
    pub(crate) view: Option<u64>,
    /// How the request fails, if it does.
    pub(crate) error: Option<ErrorKind>,
}

impl Inner {
    pub(crate) fn count(&self, f: impl FnOnce(&mut Stats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0
            && self
                .rng
                .lock()
                .is_ok_and(|mut r| r.random_bool(rate.min(1.0)))
    }

    /// Draws a request's view and fault.
    pub(crate) fn draw(&self) -> Draw {
        let modes = self.modes.lock().map(|m| m.clone()).unwrap_or_default();
        let head = self.head.load(Ordering::Relaxed);
        let mut view = None;
        if let Some(lag) = modes.lag.filter(|l| self.roll(l.rate)) {
            let behind = self
                .rng
                .lock()
                .map_or(lag.min, |mut r| r.random_range(lag.min..=lag.max));
            self.count(|s| *s.lagged.entry(behind).or_default() += 1);
            view = Some(head.saturating_sub(behind));
        } else if let Some(stale) = modes.stale.filter(|s| self.roll(s.rate)) {
            self.count(|s| s.stale += 1);
            view = Some(self.head_at(stale.age));
        }
        let error = self.roll(modes.errors).then(|| {
            let k = self
                .rng
                .lock()
                .map_or(0, |mut r| r.random_range(0..ErrorKind::ALL.len()));
            ErrorKind::ALL[k]
        });
        Draw { view, error }
    }

    /// Whether this send is dropped.
    pub(crate) fn drops_send(&self) -> bool {
        let rate = self.modes.lock().map_or(0.0, |m| m.drop_sends);
        self.roll(rate)
    }

    /// The head as it was `age` ago (the oldest kept, if older).
    fn head_at(&self, age: Duration) -> u64 {
        let Ok(history) = self.history.lock() else {
            return self.head.load(Ordering::Relaxed);
        };
        let then = Instant::now().checked_sub(age);
        history
            .iter()
            .rev()
            .find(|(at, _)| then.is_none_or(|t| *at <= t))
            .or(history.front())
            .map_or(self.head.load(Ordering::Relaxed), |(_, n)| *n)
    }

    pub(crate) async fn upstream_call(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Option<serde_json::Value> {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer: serde_json::Value = self
            .client
            .post(&self.upstream)
            .json(&body)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        answer.get("result").cloned()
    }
}

/// A running proxy. It stops when dropped.
pub struct ChaosProxy {
    /// `http://ADDR`: where clients reach it.
    pub url: String,
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl ChaosProxy {
    /// Starts a proxy to `upstream` listening on `listen` (port 0: any free
    /// port), doing what `modes` says.
    pub async fn start(
        upstream: &str,
        listen: SocketAddr,
        modes: Modes,
    ) -> std::io::Result<ChaosProxy> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let rng = match modes.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let client = reqwest::Client::builder()
            .build()
            .map_err(std::io::Error::other)?;
        let inner = Arc::new(Inner {
            upstream: upstream.to_owned(),
            client,
            modes: Mutex::new(modes),
            rng: Mutex::new(rng),
            stats: Mutex::default(),
            head: AtomicU64::new(0),
            history: Mutex::default(),
        });
        let app = server::router(inner.clone());
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let heads = tokio::spawn(follow_head(inner.clone()));
        let pool = tokio::spawn(forget_pool(inner.clone()));
        // The first head is read before any request is answered from it.
        inner.read_head().await;
        Ok(ChaosProxy {
            url,
            inner,
            tasks: vec![serving, heads, pool],
        })
    }

    /// Changes the modes for the requests that follow.
    pub fn set(&self, modes: Modes) {
        if let Ok(mut m) = self.inner.modes.lock() {
            *m = modes;
        }
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> Stats {
        self.inner
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}

impl Inner {
    async fn read_head(&self) {
        let Some(n) = self
            .upstream_call("eth_blockNumber", serde_json::json!([]))
            .await
            .and_then(|v| {
                v.as_str()
                    .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
            })
        else {
            return;
        };
        self.head.store(n, Ordering::Relaxed);
        if let Ok(mut h) = self.history.lock() {
            let now = Instant::now();
            if h.back().is_none_or(|(_, last)| *last != n) {
                h.push_back((now, n));
            }
            while h
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > HISTORY)
            {
                h.pop_front();
            }
        }
    }
}

/// Keeps the upstream's head (and its history) current.
async fn follow_head(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(HEAD_POLL).await;
        let moves = inner.modes.lock().is_ok_and(|m| m.moves_head());
        if moves {
            inner.read_head().await;
        }
    }
}

/// Empties the upstream's pool on the `forget_pool` timer.
async fn forget_pool(inner: Arc<Inner>) {
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let every = inner.modes.lock().ok().and_then(|m| m.forget_pool);
        let Some(every) = every else {
            last = Instant::now();
            continue;
        };
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        let done = inner
            .upstream_call("anvil_dropAllTransactions", serde_json::json!([]))
            .await;
        match done {
            Some(_) => inner.count(|s| s.pools_forgotten += 1),
            None => tracing::warn!(
                "the upstream cannot empty its pool (anvil_dropAllTransactions); forget-pool does nothing"
            ),
        }
    }
}
