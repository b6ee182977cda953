//! `eth_getLogs` with adaptive ranges.
//!
//! Providers cap a log query by blocks, by results or by response size, and
//! say so in many wordings (see [`crate::rpc_error`]). [`RangeSizer`] starts
//! at the configured span, shrinks to a provider's hint (or halves) when a
//! query is refused as too large, and doubles back after a run of successes,
//! so a sparse contract is read in big strides and a busy one in small ones.

use alloy_primitives::{Address, B256};
use ethgate_core::RawLog;
use serde_json::json;

use crate::pool::{ChainError, EndpointPool};

/// Which logs to fetch: any of these addresses, any of these topic0s.
#[derive(Debug, Clone)]
pub struct LogFilter {
    /// Emitting contracts.
    pub addresses: Vec<Address>,
    /// Event selectors (topic0); empty means any.
    pub topic0: Vec<B256>,
}

/// The current `eth_getLogs` span and how it adapts.
#[derive(Debug, Clone)]
pub struct RangeSizer {
    span: u64,
    min: u64,
    max: u64,
    grow_after: u32,
    successes: u32,
}

impl RangeSizer {
    /// Starts at `initial` blocks per query, never goes below `min` or
    /// above `max`, and grows after `grow_after` successes in a row.
    pub fn new(initial: u64, min: u64, max: u64, grow_after: u32) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        RangeSizer {
            span: initial.clamp(min, max),
            min,
            max,
            grow_after: grow_after.max(1),
            successes: 0,
        }
    }

    /// Blocks per query now.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// Records a successful query that returned `logs` logs. A response far
    /// above `target_logs` shrinks the span in proportion, so memory per
    /// query stays bounded on busy contracts; a light one (under a quarter
    /// of the target) doubles it at once, so sparse contracts are read in
    /// big strides soon; otherwise it grows after enough successes in a row.
    pub fn on_success(&mut self, logs: usize, target_logs: usize) {
        let target = target_logs.max(1) as u64;
        let logs = logs as u64;
        if logs > target.saturating_mul(2) {
            self.span = (self.span.saturating_mul(target) / logs).clamp(self.min, self.max);
            self.successes = 0;
            return;
        }
        if logs > target {
            self.successes = 0;
            return;
        }
        if logs.saturating_mul(4) < target {
            self.span = self.span.saturating_mul(2).min(self.max);
            self.successes = 0;
            return;
        }
        self.successes += 1;
        if self.successes >= self.grow_after && self.span < self.max {
            self.span = self.span.saturating_mul(2).min(self.max);
            self.successes = 0;
        }
    }

    /// Records that `[from, to]` was refused as too large. Returns `false`
    /// when the range cannot shrink further (one block is already too much).
    pub fn on_too_large(
        &mut self,
        from: u64,
        to: u64,
        hint_to: Option<u64>,
        max_span: Option<u64>,
    ) -> bool {
        let tried = to.saturating_sub(from) + 1;
        self.successes = 0;
        if tried <= self.min {
            return false;
        }
        let hinted = hint_to
            .filter(|h| *h >= from && *h < to)
            .map(|h| h - from + 1);
        let stated = max_span.filter(|s| *s < tried);
        self.span = hinted
            .or(stated)
            .unwrap_or(tried / 2)
            .clamp(self.min, tried - 1);
        true
    }
}

/// Fetches the logs of `[from, to]` as up to `parts` concurrent queries
/// over contiguous sub-ranges, concatenated in block order. A node serves
/// concurrent queries on several cores, so a backfill is not bound by one
/// request's latency; any part's error is the whole call's error (a "too
/// large" from one part shrinks the whole span).
///
/// Every part is pinned to `end`, the header of block `to` the caller
/// read: it is asked in one batch with that block's header, and its answer
/// counts only if the node answering holds `end`. A node behind answers a
/// range past its head with the logs it has, or none, and a load balancer
/// sends each query to whichever node: an empty answer from a node that
/// lacks the range is not evidence of no logs. `Ok(None)`: some part was
/// answered by a node that does not hold `end` (behind, or on another
/// fork); ask again.
pub async fn get_logs_split(
    pool: &EndpointPool,
    filter: &LogFilter,
    from: u64,
    end: (u64, B256),
    parts: u64,
) -> Result<Option<Vec<RawLog>>, ChainError> {
    let ranges = split(from, end.0, parts);
    let results = futures::future::join_all(
        ranges
            .iter()
            .map(|(a, b)| get_logs_pinned(pool, filter, *a, *b, end)),
    )
    .await;
    let mut out = Vec::new();
    for r in results {
        match r? {
            Some(logs) => out.extend(logs),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// `[from, to]` cut into at most `parts` contiguous sub-ranges of equal
/// span (the last may be shorter), in order.
fn split(from: u64, to: u64, parts: u64) -> Vec<(u64, u64)> {
    let span = to.saturating_sub(from) + 1;
    let parts = parts.clamp(1, span);
    let step = span.div_ceil(parts);
    (0..parts)
        .map(|i| (from + i * step, to.min(from + (i + 1) * step - 1)))
        .filter(|(a, b)| a <= b)
        .collect()
}

/// The hash of a header, all a pinned query needs of it.
#[derive(serde::Deserialize)]
struct HeaderHash {
    hash: B256,
}

/// The logs of `[from, to]`, asked in one batch with the header of block
/// `end.0`: `None` when the node answering does not hold `end`.
async fn get_logs_pinned(
    pool: &EndpointPool,
    filter: &LogFilter,
    from: u64,
    to: u64,
    end: (u64, B256),
) -> Result<Option<Vec<RawLog>>, ChainError> {
    let mut f = json!({
        "fromBlock": format!("{from:#x}"),
        "toBlock": format!("{to:#x}"),
        "address": filter.addresses,
    });
    if !filter.topic0.is_empty() {
        f["topics"] = json!([filter.topic0]);
    }
    let calls = [
        ("eth_getLogs", json!([f])),
        (
            "eth_getBlockByNumber",
            json!([format!("{:#x}", end.0), false]),
        ),
    ];
    let mut answers = pool
        .batch::<Box<serde_json::value::RawValue>>(&calls)
        .await?
        .into_iter();
    let (Some(logs), Some(header)) = (answers.next(), answers.next()) else {
        return Ok(None);
    };
    // A refused query is the caller's to classify (a range too large).
    let logs = logs?;
    let header: Option<HeaderHash> = serde_json::from_str(header?.get())
        .map_err(|e| pool.malformed("eth_getBlockByNumber", e.to_string()))?;
    if header.map(|h| h.hash) != Some(end.1) {
        return Ok(None);
    }
    let logs = serde_json::from_str(logs.get())
        .map_err(|e| pool.malformed("eth_getLogs", e.to_string()))?;
    Ok(Some(logs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_refusal_and_grows_back_after_successes() {
        let mut s = RangeSizer::new(1000, 1, 1000, 2);
        assert_eq!(s.span(), 1000);
        // 40 logs against a target of 100: not light, so growth is counted.
        assert!(s.on_too_large(0, 999, None, None));
        assert_eq!(s.span(), 500);
        assert!(s.on_too_large(0, 499, None, None));
        assert_eq!(s.span(), 250);
        s.on_success(40, 100);
        assert_eq!(s.span(), 250);
        s.on_success(40, 100);
        assert_eq!(s.span(), 500);
        s.on_success(40, 100);
        s.on_success(40, 100);
        assert_eq!(s.span(), 1000);
        s.on_success(40, 100);
        s.on_success(40, 100);
        assert_eq!(s.span(), 1000, "never above max");
    }

    #[test]
    fn uses_provider_hint_and_stated_span() {
        let mut s = RangeSizer::new(10_000, 1, 10_000, 3);
        assert!(s.on_too_large(100, 10_099, Some(141), None));
        assert_eq!(s.span(), 42);
        let mut s = RangeSizer::new(10_000, 1, 10_000, 3);
        assert!(s.on_too_large(0, 9_999, None, Some(2_000)));
        assert_eq!(s.span(), 2_000);
        // A hint outside the tried range is ignored.
        let mut s = RangeSizer::new(100, 1, 100, 3);
        assert!(s.on_too_large(50, 149, Some(10), None));
        assert_eq!(s.span(), 50);
    }

    #[test]
    fn a_heavy_response_shrinks_the_next_span_in_proportion() {
        let mut s = RangeSizer::new(1000, 1, 10_000, 1);
        s.on_success(40_000, 5_000);
        assert_eq!(s.span(), 125);
        s.on_success(7_000, 5_000);
        assert_eq!(s.span(), 125, "somewhat above target: hold");
        s.on_success(100, 5_000);
        assert_eq!(s.span(), 250);
    }

    #[test]
    fn light_responses_double_the_span_at_once() {
        let mut s = RangeSizer::new(10, 1, 10_000, 3);
        for want in [20, 40, 80, 160] {
            s.on_success(3, 5_000);
            assert_eq!(s.span(), want);
        }
    }

    #[test]
    fn split_ranges_cover_the_span_contiguously() {
        // The ranges get_logs_split queries, checked without a node.
        for (from, to, parts) in [(0u64, 9u64, 2u64), (5, 5, 4), (10, 20, 3), (0, 99, 7)] {
            let ranges = split(from, to, parts);
            assert!(!ranges.is_empty() && ranges.len() as u64 <= parts);
            assert_eq!(ranges.first().map(|r| r.0), Some(from));
            assert_eq!(ranges.last().map(|r| r.1), Some(to));
            assert!(
                ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1),
                "{ranges:?}"
            );
        }
        assert_eq!(split(10, 20, 3), [(10, 13), (14, 17), (18, 20)]);
        assert_eq!(split(5, 5, 4), [(5, 5)]);
        assert_eq!(split(0, 9, 0), [(0, 9)], "no parts means one");
    }

    #[test]
    fn cannot_shrink_below_min() {
        let mut s = RangeSizer::new(8, 4, 8, 1);
        assert!(s.on_too_large(0, 7, None, None));
        assert_eq!(s.span(), 4);
        assert!(!s.on_too_large(0, 3, None, None));
    }
}
