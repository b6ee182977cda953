//! Fetching one range and verifying it against the canonical chain
//! (steps 2–4 of the crate docs). Records nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use alloy_primitives::B256;
use ethgate_chain::headers::{self, BlockTag};
use ethgate_chain::logs::get_logs_split;
use ethgate_chain::{ChainError, EndpointPool, LogFilter, RangeSizer, RpcErrorClass};
use ethgate_core::{BlockRef, Confirmations, RawLog};

use crate::metrics as m;
use crate::syncer::SyncError;

/// A range whose logs all belong to canonical blocks, and whose last block
/// was canonical before and after the logs were read.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub from: u64,
    pub to: u64,
    pub end: BlockRef,
    pub logs: Vec<RawLog>,
    pub canon: BTreeMap<u64, BlockRef>,
    /// Children a factory announced in the range, with their blocks.
    pub children: Vec<(alloy_primitives::Address, u64)>,
}

impl Fetched {
    /// The same range with only the logs `keep` takes: a member's part of
    /// a range fetched for several streams. The range's end still vouches
    /// for every block below it.
    pub fn part(&self, keep: impl Fn(&RawLog) -> bool) -> Fetched {
        let logs: Vec<RawLog> = self.logs.iter().filter(|l| keep(l)).cloned().collect();
        let mut canon = BTreeMap::new();
        for l in &logs {
            if let Some(b) = self.canon.get(&l.block()) {
                canon.insert(b.number, *b);
            }
        }
        canon.insert(self.end.number, self.end);
        Fetched {
            from: self.from,
            to: self.to,
            end: self.end,
            logs,
            canon,
            children: self.children.clone(),
        }
    }
}

/// What fetching found.
#[derive(Debug)]
pub(crate) enum Fetch {
    /// A verified range.
    Range(Fetched),
    /// The given cursor block is no longer canonical.
    Reorg(u64),
    /// The chain moved during the fetch; nothing is usable.
    Retry(&'static str),
}

/// Addresses per `eth_getLogs` query: a larger filter (many streams
/// followed together, or a factory's children) is read as several queries
/// over the same range, so no request grows past what providers accept.
const MAX_FILTER_ADDRESSES: usize = 500;

/// Reads the chain for one stream, or for the streams a follower serves:
/// owns the pool handle, the filter and the adaptive range.
pub(crate) struct Fetcher {
    /// Who reads (a stream's name, or the follower's), for logs and metrics.
    pub label: String,
    /// The chain's configured name, for metrics.
    pub chain: String,
    pub pool: Arc<EndpointPool>,
    pub filter: LogFilter,
    sizer: RangeSizer,
    target_logs: usize,
    /// Concurrent sub-queries per range.
    parallel: u64,
    /// Never fetch past this block (`ethgate sync --to`).
    pub stop_at: Option<u64>,
    /// The last head seen.
    pub last_head: Option<u64>,
}

impl Fetcher {
    pub fn new(
        label: String,
        chain: String,
        filter: LogFilter,
        pool: Arc<EndpointPool>,
        sizer: RangeSizer,
        target_logs: usize,
        parallel: u64,
    ) -> Self {
        Fetcher {
            label,
            chain,
            pool,
            filter,
            sizer,
            target_logs,
            parallel,
            stop_at: None,
            last_head: None,
        }
    }

    pub fn span(&self) -> u64 {
        self.sizer.span()
    }

    /// The head, and the highest block that may be recorded now.
    pub async fn head_and_target(
        &mut self,
        confirmations: Confirmations,
    ) -> Result<(u64, Option<u64>), SyncError> {
        let head = self.head().await?;
        let target = self.target(head, confirmations).await?;
        Ok((head, target.map(|t| self.stop_at.map_or(t, |s| t.min(s)))))
    }

    /// The head, as the chain's gauge shows it.
    pub async fn head(&mut self) -> Result<u64, SyncError> {
        let head = headers::block_number(&self.pool).await?;
        self.last_head = Some(head);
        metrics::gauge!(m::HEAD, "chain" => self.chain.clone()).set(head as f64);
        Ok(head)
    }

    /// The highest block `confirmations` lets be recorded under `head`.
    pub async fn target(
        &self,
        head: u64,
        confirmations: Confirmations,
    ) -> Result<Option<u64>, SyncError> {
        Ok(match confirmations {
            Confirmations::Depth(n) => head.checked_sub(n),
            Confirmations::Safe => headers::header(&self.pool, BlockTag::Safe)
                .await?
                .map(|b| b.number),
            Confirmations::Finalized => headers::header(&self.pool, BlockTag::Finalized)
                .await?
                .map(|b| b.number),
        })
    }

    /// Whether the cursor block is still canonical: `None` when the node
    /// answering has no block at its height (it is behind; a block that is
    /// missing is not one that was replaced).
    pub async fn cursor_is_canonical(
        &self,
        number: u64,
        hash: B256,
    ) -> Result<Option<bool>, SyncError> {
        Ok(headers::header(&self.pool, BlockTag::Number(number))
            .await?
            .map(|b| b.hash == hash))
    }

    fn retry(&self, why: &'static str) -> Fetch {
        tracing::debug!(stream = %self.label, why, "chain moved during fetch; nothing recorded");
        metrics::counter!(m::REFETCHES, "stream" => self.label.clone()).increment(1);
        Fetch::Retry(why)
    }

    /// Fetches and verifies `[next, ≤ target]` after `cursor`.
    pub async fn fetch(
        &mut self,
        cursor: Option<(u64, B256)>,
        next: u64,
        target: u64,
    ) -> Result<Fetch, SyncError> {
        let started = std::time::Instant::now();
        let (to, pre, logs) = loop {
            let to = target.min(next.saturating_add(self.sizer.span() - 1));
            let Some(pre) = headers::header(&self.pool, BlockTag::Number(to)).await? else {
                return Ok(self.retry("range end not found"));
            };
            let end = (pre.number, pre.hash);
            match logs(&self.pool, &self.filter, next, end, self.parallel).await {
                Ok(None) => return Ok(self.retry("logs answered by a node without the range")),
                Ok(Some(logs)) => {
                    self.sizer.on_success(logs.len(), self.target_logs);
                    break (to, pre, logs);
                }
                Err(e) => match e.class() {
                    Some(RpcErrorClass::RangeTooLarge { hint_to, max_span }) => {
                        if !self.sizer.on_too_large(next, to, hint_to, max_span) {
                            return Err(e.into());
                        }
                        tracing::info!(stream = %self.label, from = next, to, span = self.sizer.span(), "log range too large; shrinking");
                    }
                    Some(RpcErrorClass::BlockOutOfRange) => {
                        return Ok(self.retry("range past the endpoint's head"));
                    }
                    _ => return Err(e.into()),
                },
            }
        };
        metrics::gauge!(ethgate_chain::metrics::LOG_RANGE_SPAN, "chain" => self.chain.clone())
            .set(self.sizer.span() as f64);
        if logs.iter().any(|l| l.block() < next || l.block() > to) {
            return Ok(self.retry("log outside the requested range"));
        }
        let mut wanted: BTreeSet<u64> = logs.iter().map(RawLog::block).collect();
        wanted.insert(to);
        if let Some((c, _)) = cursor {
            wanted.insert(c);
        }
        let mut canon: BTreeMap<u64, BlockRef> = BTreeMap::new();
        if !read_headers(&self.pool, wanted, &mut canon).await? {
            return Ok(self.retry("header missing"));
        }
        if let Some((c, hash)) = cursor
            && canon.get(&c).map(|b| b.hash) != Some(hash)
        {
            return Ok(Fetch::Reorg(c));
        }
        let Some(end) = canon.get(&to).copied() else {
            return Ok(self.retry("header missing"));
        };
        if end.hash != pre.hash {
            return Ok(self.retry("range end changed during fetch"));
        }
        if !all_canonical(&logs, &canon) {
            return Ok(self.retry("log from a non-canonical block"));
        }
        tracing::debug!(stream = %self.label, from = next, to, logs = logs.len(), fetch_ms = started.elapsed().as_millis() as u64, "range fetched");
        Ok(Fetch::Range(Fetched {
            from: next,
            to,
            end,
            logs,
            canon,
            children: Vec::new(),
        }))
    }
}

/// The logs of `filter` in `[from, end]`, pinned to `end`: one query per
/// [`MAX_FILTER_ADDRESSES`] addresses, all at once; `None` when a node
/// without `end` answered one of them.
pub(crate) async fn logs(
    pool: &EndpointPool,
    filter: &LogFilter,
    from: u64,
    end: (u64, B256),
    parallel: u64,
) -> Result<Option<Vec<RawLog>>, ChainError> {
    let parts: Vec<LogFilter> = if filter.addresses.len() <= MAX_FILTER_ADDRESSES {
        vec![filter.clone()]
    } else {
        filter
            .addresses
            .chunks(MAX_FILTER_ADDRESSES)
            .map(|a| LogFilter {
                addresses: a.to_vec(),
                topic0: filter.topic0.clone(),
            })
            .collect()
    };
    let answers = futures::future::join_all(
        parts
            .iter()
            .map(|f| get_logs_split(pool, f, from, end, parallel)),
    )
    .await;
    let mut out = Vec::new();
    for a in answers {
        match a? {
            Some(logs) => out.extend(logs),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Reads the headers of `numbers` into `canon`; `false` when the node
/// answering has one of them at no or another height.
pub(crate) async fn read_headers(
    pool: &EndpointPool,
    numbers: impl IntoIterator<Item = u64>,
    canon: &mut BTreeMap<u64, BlockRef>,
) -> Result<bool, ChainError> {
    let numbers: Vec<u64> = numbers.into_iter().collect();
    for (n, h) in numbers.iter().zip(headers::headers(pool, &numbers).await?) {
        match h {
            Some(h) if h.number == *n => {
                canon.insert(*n, h);
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Whether every log's block hash is its block's canonical hash.
pub(crate) fn all_canonical(logs: &[RawLog], canon: &BTreeMap<u64, BlockRef>) -> bool {
    logs.iter()
        .all(|l| canon.get(&l.block()).map(|b| b.hash) == Some(l.block_hash))
}
