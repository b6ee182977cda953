//! One stream's sync step (see the crate docs for the algorithm).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ethgate_chain::headers::{self, BlockTag};
use ethgate_chain::logs::get_logs;
use ethgate_chain::{ChainError, EndpointPool, LogFilter, RangeSizer, RpcErrorClass};
use ethgate_core::{BlockRef, Confirmations, EventDecoder, EventEnvelope, RawLog, StreamSpec};
use ethgate_store::{RangeCommit, Store, StoreError};

use crate::metrics as m;

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
    #[error("stream {stream}: recorded from chain id {recorded}, but configured on chain id {configured}")]
    ChainMismatch {
        /// Stream name.
        stream: String,
        /// Chain id in the store.
        recorded: u64,
        /// Chain id in the config.
        configured: u64,
    },
}

/// Tuning shared by all syncers; from the chain's config.
#[derive(Debug, Clone)]
pub struct SyncerConfig {
    /// First `eth_getLogs` span, in blocks.
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
}

impl Default for SyncerConfig {
    fn default() -> Self {
        SyncerConfig {
            initial_range: 100,
            min_range: 1,
            max_range: 10_000,
            target_logs: 5_000,
            keep_window: 4_096,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Recorded `[from, to]` with this many events.
    Recorded {
        /// First block of the range.
        from: u64,
        /// Last block of the range (the new cursor).
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

/// The syncer of one stream. Owns nothing shared but the pool and store.
pub struct Syncer {
    pub(crate) spec: StreamSpec,
    pub(crate) pool: Arc<EndpointPool>,
    pub(crate) store: Store,
    decoder: EventDecoder,
    filter: LogFilter,
    sizer: RangeSizer,
    pub(crate) cfg: SyncerConfig,
    /// The last head seen, for status and lag.
    pub last_head: Option<u64>,
    /// Never record past this block (`ethgate sync --to`).
    pub stop_at: Option<u64>,
}

impl Syncer {
    /// Registers the stream in the store (refusing a chain change) and
    /// builds its syncer.
    pub async fn new(spec: StreamSpec, pool: Arc<EndpointPool>, store: Store, cfg: SyncerConfig) -> Result<Self, SyncError> {
        let row = store.ensure_stream(&spec.name, spec.chain_id).await?;
        if row.chain_id != spec.chain_id {
            return Err(SyncError::ChainMismatch { stream: spec.name, recorded: row.chain_id, configured: spec.chain_id });
        }
        let decoder = EventDecoder::new(&spec.events);
        let filter = LogFilter { addresses: spec.addresses.clone(), topic0: spec.selectors() };
        let sizer = RangeSizer::new(cfg.initial_range, cfg.min_range, cfg.max_range, 3);
        Ok(Syncer { spec, pool, store, decoder, filter, sizer, cfg, last_head: None, stop_at: None })
    }

    /// The stream this syncer records.
    pub fn spec(&self) -> &StreamSpec {
        &self.spec
    }

    /// The current `eth_getLogs` span.
    pub fn range_span(&self) -> u64 {
        self.sizer.span()
    }

    async fn head_and_target(&mut self) -> Result<(u64, Option<u64>), SyncError> {
        let head = headers::block_number(&self.pool).await?;
        self.last_head = Some(head);
        metrics::gauge!(m::HEAD, "chain" => self.spec.chain.clone()).set(head as f64);
        let target = match self.spec.confirmations {
            Confirmations::Depth(n) => head.checked_sub(n),
            Confirmations::Safe => headers::header(&self.pool, BlockTag::Safe).await?.map(|b| b.number),
            Confirmations::Finalized => headers::header(&self.pool, BlockTag::Finalized).await?.map(|b| b.number),
        };
        Ok((head, target.map(|t| self.stop_at.map_or(t, |s| t.min(s)))))
    }

    /// Does one step: records one range, handles one reorg, or reports idle.
    pub async fn step(&mut self) -> Result<Step, SyncError> {
        let row = self.store.ensure_stream(&self.spec.name, self.spec.chain_id).await?;
        let cursor = row.cursor.zip(row.cursor_hash);
        let (head, target) = self.head_and_target().await?;
        let next = row.cursor.map_or(self.spec.from_block, |c| c + 1);
        metrics::gauge!(m::LAG, "stream" => self.spec.name.clone())
            .set(head.saturating_sub(row.cursor.unwrap_or(self.spec.from_block.saturating_sub(1))) as f64);
        let Some(target) = target.filter(|t| *t >= next) else {
            // Caught up: the head may have been replaced at the same height,
            // so the cursor must still be checked.
            if let Some((number, hash)) = cursor {
                match headers::header(&self.pool, BlockTag::Number(number)).await? {
                    Some(b) if b.hash == hash => {}
                    _ => return self.handle_reorg(number).await,
                }
            }
            return Ok(Step::Idle { cursor: row.cursor, head });
        };

        let (to, pre, logs) = loop {
            let to = target.min(next.saturating_add(self.sizer.span() - 1));
            let Some(pre) = headers::header(&self.pool, BlockTag::Number(to)).await? else {
                return Ok(self.refetch("range end not found"));
            };
            match get_logs(&self.pool, &self.filter, next, to).await {
                Ok(logs) => {
                    self.sizer.on_success(logs.len(), self.cfg.target_logs);
                    break (to, pre, logs);
                }
                Err(e) => match e.class() {
                    Some(RpcErrorClass::RangeTooLarge { hint_to, max_span }) => {
                        if !self.sizer.on_too_large(next, to, hint_to, max_span) {
                            return Err(e.into());
                        }
                        tracing::info!(stream = %self.spec.name, from = next, to, span = self.sizer.span(), "log range too large; shrinking");
                    }
                    Some(RpcErrorClass::BlockOutOfRange) => return Ok(self.refetch("range past the endpoint's head")),
                    _ => return Err(e.into()),
                },
            }
        };
        metrics::gauge!(ethgate_chain::metrics::LOG_RANGE_SPAN, "chain" => self.spec.chain.clone())
            .set(self.sizer.span() as f64);

        if logs.iter().any(|l| l.block() < next || l.block() > to) {
            return Ok(self.refetch("log outside the requested range"));
        }
        let mut wanted: BTreeSet<u64> = logs.iter().map(RawLog::block).collect();
        wanted.insert(to);
        if let Some((c, _)) = cursor {
            wanted.insert(c);
        }
        let numbers: Vec<u64> = wanted.into_iter().collect();
        let fetched = headers::headers(&self.pool, &numbers).await?;
        let mut canon: BTreeMap<u64, BlockRef> = BTreeMap::new();
        for (n, h) in numbers.iter().zip(fetched) {
            match h {
                Some(h) if h.number == *n => {
                    canon.insert(*n, h);
                }
                _ => return Ok(self.refetch("header missing")),
            }
        }
        if let Some((c, hash)) = cursor
            && canon.get(&c).map(|b| b.hash) != Some(hash)
        {
            return self.handle_reorg(c).await;
        }
        let Some(end) = canon.get(&to).copied() else { return Ok(self.refetch("header missing")) };
        if end.hash != pre.hash {
            return Ok(self.refetch("range end changed during fetch"));
        }
        if logs.iter().any(|l| canon.get(&l.block()).map(|b| b.hash) != Some(l.block_hash)) {
            return Ok(self.refetch("log from a non-canonical block"));
        }

        let envelopes = self.envelopes(&logs, &canon);
        let blocks: Vec<BlockRef> = logs
            .iter()
            .map(RawLog::block)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|n| canon.get(&n).copied())
            .collect();
        let events = envelopes.len();
        self.store
            .commit_range(&RangeCommit {
                stream: self.spec.name.clone(),
                expected_cursor: row.cursor,
                envelopes,
                blocks,
                cursor: end,
                keep_window: self.cfg.keep_window,
            })
            .await?;
        metrics::counter!(m::EVENTS_RECORDED, "stream" => self.spec.name.clone()).increment(events as u64);
        metrics::gauge!(m::CURSOR, "stream" => self.spec.name.clone()).set(to as f64);
        metrics::gauge!(m::LAG, "stream" => self.spec.name.clone()).set(head.saturating_sub(to) as f64);
        Ok(Step::Recorded { from: next, to, events })
    }

    fn refetch(&self, why: &'static str) -> Step {
        tracing::debug!(stream = %self.spec.name, why, "chain moved during fetch; nothing recorded");
        metrics::counter!(m::REFETCHES, "stream" => self.spec.name.clone()).increment(1);
        Step::Retry(why)
    }

    fn envelopes(&self, logs: &[RawLog], canon: &BTreeMap<u64, BlockRef>) -> Vec<EventEnvelope> {
        let mut sorted: Vec<&RawLog> = logs.iter().collect();
        sorted.sort_by_key(|l| (l.block(), l.index()));
        sorted.dedup_by_key(|l| (l.block(), l.index()));
        sorted
            .into_iter()
            .map(|log| {
                let ts = log
                    .block_timestamp
                    .map(|t| t.to::<u64>())
                    .or_else(|| canon.get(&log.block()).map(|b| b.timestamp))
                    .unwrap_or_default();
                let decoded = match self.decoder.decode(&log.topics, &log.data) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!(stream = %self.spec.name, block = log.block(), log_index = log.index(), error = %e, "log recorded undecoded");
                        metrics::counter!(m::DECODE_ERRORS, "stream" => self.spec.name.clone()).increment(1);
                        None
                    }
                };
                EventEnvelope::from_log(&self.spec.name, self.spec.chain_id, log, ts, decoded)
            })
            .collect()
    }
}
