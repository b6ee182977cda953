//! One stream's sync step (see the crate docs for the algorithm), and the
//! backfill pipeline: while one task fetches and verifies the next range,
//! another decodes and commits the previous one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ethgate_chain::{ChainError, EndpointPool, LogFilter, RangeSizer};
use ethgate_core::StreamSpec;
use ethgate_store::{Store, StoreError};
use tokio::sync::mpsc;

use crate::fetch::{Fetch, Fetched, Fetcher};
use crate::follower::Follower;
use crate::metrics as m;
use crate::record::Recorder;

/// How long one step may keep the pipeline going before it returns, so
/// progress is reported and shutdown is prompt.
const PIPELINE_SLICE: Duration = Duration::from_secs(2);
/// Verified ranges waiting for the writer; bounds memory during backfill.
const PIPELINE_DEPTH: usize = 2;

/// Why a step failed; the runner logs it and retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stream's records belong to another chain than configured.
    #[error(
        "stream {stream}: recorded from chain id {recorded}, but configured on chain id {configured}"
    )]
    ChainMismatch {
        /// Stream name.
        stream: String,
        /// Chain id in the store.
        recorded: u64,
        /// Chain id in the config.
        configured: u64,
    },
    /// The stream's events, `from_block` or factory changed, or a
    /// contract was removed, after it began recording: what it recorded
    /// would no longer match what it records. (Added contracts are
    /// backfilled instead.)
    #[error(
        "stream {stream}: its events, from_block or factory changed, or a contract was removed, after it \
         recorded up to block {cursor}. Give the changed stream a new name (it then backfills from its \
         from_block), or restore the previous configuration; adding contracts alone needs neither"
    )]
    SpecChanged {
        /// Stream name.
        stream: String,
        /// Its cursor.
        cursor: u64,
    },
    /// The pipeline's writer task ended abnormally.
    #[error("stream writer task failed: {0}")]
    Writer(String),
}

/// Tuning shared by all syncers; from the chain's config.
#[derive(Debug, Clone)]
pub struct SyncerConfig {
    /// First `eth_getLogs` span, in blocks; it adapts from there.
    pub initial_range: u64,
    /// Smallest span.
    pub min_range: u64,
    /// Largest span.
    pub max_range: u64,
    /// Logs per query the sizer aims for (bounds memory per step).
    pub target_logs: usize,
    /// Blocks of window kept below the cursor for finding fork points.
    pub keep_window: u64,
    /// Wait between polls once caught up.
    pub poll_interval: Duration,
    /// Concurrent `eth_getLogs` sub-queries per range.
    pub parallel_queries: u64,
}

impl Default for SyncerConfig {
    fn default() -> Self {
        SyncerConfig {
            initial_range: 10,
            min_range: 1,
            max_range: 10_000,
            target_logs: 2_500,
            keep_window: 4_096,
            poll_interval: Duration::from_secs(1),
            parallel_queries: 2,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Recorded `[from, to]` with this many events.
    Recorded {
        /// First block recorded.
        from: u64,
        /// Last block recorded (the new cursor).
        to: u64,
        /// Envelopes recorded.
        events: usize,
    },
    /// A reorg: the cursor went back to `fork` (`None`: to the start) and
    /// this many events were retracted.
    Reorged {
        /// New cursor.
        fork: Option<u64>,
        /// Events retracted.
        retracted: u64,
    },
    /// Caught up with the target; nothing to do until the head moves.
    Idle {
        /// Cursor.
        cursor: Option<u64>,
        /// Head of the chain.
        head: u64,
    },
    /// The chain moved under the fetch; nothing was recorded.
    Retry(&'static str),
}

/// The syncer of one stream.
pub struct Syncer {
    pub(crate) spec: Arc<StreamSpec>,
    pub(crate) fetcher: Fetcher,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) cfg: SyncerConfig,
    /// The chain's follower this stream joins once caught up; `None`
    /// follows the tip alone (`ethgate sync`).
    pub(crate) follower: Option<Arc<Follower>>,
    /// Children the stream's factory announced, as recorded.
    pub(crate) children: std::collections::HashSet<alloy_primitives::Address>,
}

impl Syncer {
    /// Registers the stream in the store (refusing a chain change) and
    /// builds its syncer.
    pub async fn new(
        spec: StreamSpec,
        pool: Arc<EndpointPool>,
        store: Store,
        cfg: SyncerConfig,
    ) -> Result<Self, SyncError> {
        let row = store.ensure_stream(&spec.name, spec.chain_id).await?;
        if row.chain_id != spec.chain_id {
            return Err(SyncError::ChainMismatch {
                stream: spec.name,
                recorded: row.chain_id,
                configured: spec.chain_id,
            });
        }
        crate::added::register(&spec, &store, row.cursor, row.spec_hash.as_deref()).await?;
        let spec = Arc::new(spec);
        let sizer = RangeSizer::new(cfg.initial_range, cfg.min_range, cfg.max_range, 3);
        let filter = LogFilter {
            addresses: spec.addresses.clone(),
            topic0: spec.selectors(),
        };
        let fetcher = Fetcher::new(
            spec.name.clone(),
            spec.chain.clone(),
            filter,
            pool,
            sizer,
            cfg.target_logs,
            cfg.parallel_queries,
        );
        let recorder = Arc::new(Recorder::new(spec.clone(), store, cfg.keep_window));
        let mut syncer = Syncer {
            spec,
            fetcher,
            recorder,
            cfg,
            follower: None,
            children: Default::default(),
        };
        syncer.refresh_filter().await?;
        Ok(syncer)
    }

    /// Follows the tip through the chain's shared `follower` once caught
    /// up, instead of polling the chain on its own.
    pub fn with_follower(mut self, follower: Arc<Follower>) -> Self {
        self.follower = Some(follower);
        self
    }

    /// The stream this syncer records.
    pub fn spec(&self) -> &StreamSpec {
        &self.spec
    }

    /// The current `eth_getLogs` span.
    pub fn range_span(&self) -> u64 {
        self.fetcher.span()
    }

    /// The chain head as last seen.
    pub fn last_head(&self) -> Option<u64> {
        self.fetcher.last_head
    }

    /// Never record past `block` (or lift the limit with `None`).
    pub fn set_stop_at(&mut self, block: Option<u64>) {
        self.fetcher.stop_at = block;
    }

    /// Does one step: records one or more ranges, handles one reorg, or
    /// reports idle.
    pub async fn step(&mut self) -> Result<Step, SyncError> {
        let row = self
            .recorder
            .store
            .ensure_stream(&self.spec.name, self.spec.chain_id)
            .await?;
        let cursor = row.cursor.zip(row.cursor_hash);
        let pending = self.refresh_filter().await?;
        if let Some(cursor) = row.cursor
            && let Some((next, addresses)) = pending.into_iter().next()
        {
            return self.backfill_added(next, addresses, cursor).await;
        }
        let (head, target) = self
            .fetcher
            .head_and_target(self.spec.confirmations)
            .await?;
        let next = row.cursor.map_or(self.spec.from_block, |c| c + 1);
        let before_start = self.spec.from_block.saturating_sub(1);
        let lag = move |c: Option<u64>| head.saturating_sub(c.unwrap_or(before_start)) as f64;
        metrics::gauge!(m::LAG, "stream" => self.spec.name.clone()).set(lag(row.cursor));
        let Some(target) = target.filter(|t| *t >= next) else {
            // Caught up: the head may have been replaced at the same height,
            // so the cursor must still be checked.
            if let Some((number, hash)) = cursor
                && self.fetcher.cursor_is_canonical(number, hash).await? == Some(false)
            {
                return self.handle_reorg(number).await;
            }
            return Ok(Step::Idle {
                cursor: row.cursor,
                head,
            });
        };
        let fetched = match self.fetcher.fetch(cursor, next, target).await? {
            Fetch::Range(f) => self.grow(f).await?,
            other => other,
        };
        let first = match fetched {
            Fetch::Range(f) => f,
            Fetch::Reorg(c) => return self.handle_reorg(c).await,
            Fetch::Retry(why) => return Ok(Step::Retry(why)),
        };
        let step = if first.to >= target {
            let to = first.to;
            let events = self.recorder.record(first, row.cursor).await?;
            Step::Recorded {
                from: next,
                to,
                events,
            }
        } else {
            self.pipeline(first, row.cursor, target).await?
        };
        if let Step::Recorded { to, .. } = step {
            metrics::gauge!(m::LAG, "stream" => self.spec.name.clone()).set(lag(Some(to)));
        }
        Ok(step)
    }

    /// Backfill: keeps fetching verified ranges, each chained on the
    /// previous one's last block, while a writer task records them in order.
    /// Stops at the target, after [`PIPELINE_SLICE`], or at the first reorg,
    /// retry or error, which the next step then meets from the stored cursor.
    async fn pipeline(
        &mut self,
        first: Fetched,
        expected: Option<u64>,
        target: u64,
    ) -> Result<Step, SyncError> {
        let from = first.from;
        let (tx, mut rx) = mpsc::channel::<(Fetched, Option<u64>)>(PIPELINE_DEPTH);
        let recorder = self.recorder.clone();
        let writer = tokio::spawn(async move {
            let mut events = 0;
            let mut last = None;
            while let Some((f, expected)) = rx.recv().await {
                let to = f.to;
                events += recorder.record(f, expected).await?;
                last = Some(to);
            }
            Ok::<_, SyncError>((events, last))
        });
        let started = Instant::now();
        let mut cursor = (first.to, first.end.hash);
        let mut fetch_error = None;
        if tx.send((first, expected)).await.is_ok() {
            while cursor.0 < target && started.elapsed() < PIPELINE_SLICE {
                let fetched = match self.fetcher.fetch(Some(cursor), cursor.0 + 1, target).await {
                    Ok(Fetch::Range(f)) => self.grow(f).await,
                    other => other,
                };
                match fetched {
                    Ok(Fetch::Range(f)) => {
                        let previous = cursor.0;
                        cursor = (f.to, f.end.hash);
                        if tx.send((f, Some(previous))).await.is_err() {
                            break;
                        }
                    }
                    Ok(Fetch::Reorg(_) | Fetch::Retry(_)) => break,
                    Err(e) => {
                        fetch_error = Some(e);
                        break;
                    }
                }
            }
        }
        drop(tx);
        let (events, last) = writer
            .await
            .map_err(|e| SyncError::Writer(e.to_string()))??;
        match (last, fetch_error) {
            (Some(to), e) => {
                if let Some(e) = e {
                    tracing::warn!(stream = %self.spec.name, error = %e, "fetch failed mid-backfill; recorded ranges are kept");
                }
                Ok(Step::Recorded { from, to, events })
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(SyncError::Writer("no range was recorded".into())),
        }
    }
}
