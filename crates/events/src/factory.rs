//! Streams that grow: a stream with a factory follows every child the
//! factory announces, from the announcement's block on. A range that
//! announces children was fetched without them, so before it is recorded
//! their logs over the rest of the range are fetched too — pinned to the
//! same range end, their blocks checked against the range's canonical
//! headers — and the children are committed with the range. A reorg below
//! an announcement forgets the child with the events.

use std::collections::{BTreeSet, HashSet};

use alloy_primitives::Address;
use ethgate_chain::LogFilter;
use ethgate_core::RawLog;

use crate::fetch::{self, Fetch, Fetched};
use crate::syncer::{SyncError, Syncer};

impl Syncer {
    /// Completes a fetched range of a factory stream: the logs of children
    /// announced in it, from their blocks to the range's end, and only the
    /// logs the stream records. `Retry` when the children's logs could not
    /// be read from the range's own chain.
    pub(crate) async fn grow(&mut self, mut f: Fetched) -> Result<Fetch, SyncError> {
        let Some(factory) = self.spec.factory.clone() else {
            return Ok(Fetch::Range(f));
        };
        let mut announced: Vec<(Address, u64)> = Vec::new();
        for log in &f.logs {
            if let Some(child) = factory.child(log)
                && !self.children.contains(&child)
                && !announced.iter().any(|(a, _)| *a == child)
            {
                announced.push((child, log.block()));
            }
        }
        if let Some(first) = announced.iter().map(|(_, b)| *b).min() {
            let Some((logs, canon)) = self.children_logs(&announced, first, &f).await? else {
                return Ok(Fetch::Retry("children's logs answered from another chain"));
            };
            f.logs.extend(logs);
            f.canon = canon;
            self.children.extend(announced.iter().map(|(a, _)| *a));
            self.fetcher
                .filter
                .addresses
                .extend(announced.iter().map(|(a, _)| *a));
        }
        let selectors: HashSet<_> = self.spec.event_selectors().into_iter().collect();
        // The filter's contracts, less the factory unless it is one of
        // the stream's own.
        let own: HashSet<Address> = self
            .fetcher
            .filter
            .addresses
            .iter()
            .copied()
            .filter(|a| *a != factory.address || self.spec.addresses.contains(a))
            .collect();
        f.logs.retain(|l| {
            factory.child(l).is_some()
                || own.contains(&l.address)
                    && l.topics.first().is_some_and(|t| selectors.contains(t))
        });
        f.children = announced;
        Ok(Fetch::Range(f))
    }

    /// The logs of `announced` children in `[first, f.to]`, each from its
    /// own announcement's block, pinned to `f`'s end and checked against
    /// its canonical headers (returned with `f`'s); `None` when a node
    /// without them answered.
    async fn children_logs(
        &self,
        announced: &[(Address, u64)],
        first: u64,
        f: &Fetched,
    ) -> Result<Option<(Vec<RawLog>, Canon)>, SyncError> {
        let filter = LogFilter {
            addresses: announced.iter().map(|(a, _)| *a).collect(),
            topic0: self.spec.event_selectors(),
        };
        let pool = &self.fetcher.pool;
        let end = (f.to, f.end.hash);
        let Some(mut logs) =
            fetch::logs(pool, &filter, first, end, self.cfg.parallel_queries).await?
        else {
            return Ok(None);
        };
        logs.retain(|l| {
            announced
                .iter()
                .any(|(a, b)| l.address == *a && l.block() >= *b)
        });
        let mut canon = f.canon.clone();
        let missing: BTreeSet<u64> = logs
            .iter()
            .map(RawLog::block)
            .filter(|b| !canon.contains_key(b))
            .collect();
        if !fetch::read_headers(pool, missing, &mut canon).await?
            || !fetch::all_canonical(&logs, &canon)
        {
            return Ok(None);
        }
        Ok(Some((logs, canon)))
    }
}

/// Canonical headers by height.
type Canon = std::collections::BTreeMap<u64, ethgate_core::BlockRef>;
