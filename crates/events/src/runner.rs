//! Running syncers: the loop around [`Syncer::step`], its backoff, the
//! shared progress the API reads, and a bounded run for `ethgate sync`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::metrics as m;
use crate::syncer::{Step, SyncError, Syncer};
use crate::tail::Left;

/// What the API shows of a running stream besides its stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StreamProgress {
    /// Chain head as last seen.
    pub head: Option<u64>,
    /// Last step error, cleared by a successful step.
    pub last_error: Option<String>,
    /// Unix seconds of the last successful step.
    pub last_ok: Option<u64>,
    /// Current `eth_getLogs` span.
    pub range_span: u64,
}

/// Progress of every stream, shared between syncers and the API.
#[derive(Debug, Clone, Default)]
pub struct SyncState(Arc<RwLock<HashMap<String, StreamProgress>>>);

impl SyncState {
    /// Progress of one stream, if it is running.
    pub fn get(&self, stream: &str) -> Option<StreamProgress> {
        self.0.read().ok()?.get(stream).cloned()
    }

    /// Records a failure seen on the stream's behalf (by its follower).
    pub(crate) fn failed(&self, stream: &str, error: String) {
        self.update(stream, |p| p.last_error = Some(error));
    }

    fn update(&self, stream: &str, f: impl FnOnce(&mut StreamProgress)) {
        if let Ok(mut g) = self.0.write() {
            f(g.entry(stream.to_owned()).or_default());
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits `d`, or less if shutdown is signalled; returns whether to stop.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

impl Syncer {
    pub(crate) fn note(&self, state: &SyncState, result: &Result<Step, SyncError>) {
        let head = self.last_head();
        let span = self.range_span();
        state.update(&self.spec.name, |p| {
            p.head = head.or(p.head);
            p.range_span = span;
            match result {
                Ok(_) => {
                    p.last_error = None;
                    p.last_ok = Some(now());
                }
                Err(e) => p.last_error = Some(e.to_string()),
            }
        });
    }

    /// Syncs until `shutdown` turns true: steps back to back while behind,
    /// polls when caught up, and backs off (up to 30 s) on errors.
    pub async fn run(mut self, state: SyncState, mut shutdown: watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let mut retries: u32 = 0;
        tracing::info!(stream = %self.spec.name, chain = %self.spec.chain, from_block = self.spec.from_block, confirmations = %self.spec.confirmations, "syncer started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let result = tokio::select! {
                r = self.step() => r,
                _ = shutdown.changed() => break,
            };
            self.note(&state, &result);
            let wait = match &result {
                Ok(Step::Recorded { from, to, events }) => {
                    failures = 0;
                    retries = 0;
                    tracing::debug!(stream = %self.spec.name, from, to, events, "range recorded");
                    continue;
                }
                Ok(Step::Reorged { .. }) => Duration::ZERO,
                Ok(Step::Idle { .. }) if self.follower.is_some() => {
                    match self.follow_tail(&state, &mut shutdown).await {
                        Left::Shutdown => break,
                        Left::Step(wait) => wait,
                    }
                }
                Ok(Step::Idle { .. }) => self.cfg.poll_interval,
                Ok(Step::Retry(why)) => {
                    // Normal during a reorg; persistent when endpoints
                    // disagree about the chain (e.g. a lagging replica).
                    retries += 1;
                    if retries.is_multiple_of(50) {
                        tracing::warn!(stream = %self.spec.name, retries, why, "range keeps changing under the fetch; is an endpoint on another fork or lagging?");
                    }
                    Duration::from_millis(100)
                }
                Err(e) => {
                    failures += 1;
                    metrics::counter!(m::STEP_ERRORS, "stream" => self.spec.name.clone())
                        .increment(1);
                    tracing::error!(stream = %self.spec.name, error = %e, failures, "sync step failed");
                    Duration::from_millis(250u64.saturating_mul(1 << failures.min(7)))
                        .min(Duration::from_secs(30))
                }
            };
            if result.is_ok() {
                failures = 0;
            }
            if !matches!(result, Ok(Step::Retry(_))) {
                retries = 0;
            }
            if pause(wait, &mut shutdown).await {
                break;
            }
        }
        tracing::info!(stream = %self.spec.name, "syncer stopped");
    }

    /// Syncs until the cursor reaches `to_block`, calling `progress` with the
    /// cursor after every step; used by `ethgate sync`. Errors are retried
    /// like in [`run`](Self::run) but reported to `progress` too.
    pub async fn sync_until(
        &mut self,
        to_block: u64,
        mut progress: impl FnMut(Option<u64>, Option<u64>, Option<&SyncError>),
    ) -> Result<u64, SyncError> {
        let mut failures: u32 = 0;
        self.set_stop_at(Some(to_block));
        loop {
            let cursor = self
                .recorder
                .store
                .stream(&self.spec.name)
                .await?
                .and_then(|r| r.cursor);
            progress(cursor, self.last_head(), None);
            if cursor.is_some_and(|c| c >= to_block) {
                return Ok(cursor.unwrap_or(to_block));
            }
            match self.step().await {
                Ok(Step::Idle { .. }) => tokio::time::sleep(self.cfg.poll_interval).await,
                Ok(Step::Retry(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    progress(cursor, self.last_head(), Some(&e));
                    if failures >= 10 {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(250u64 << failures.min(7))).await;
                }
            }
        }
    }
}
