//! Contracts added to a stream that has recorded: accepted at start when
//! nothing else about the stream changed, then backfilled alone from the
//! stream's `from_block` to its cursor, a verified range per step, before
//! they join the stream's filter (see the store's `additions`). Removing a
//! contract, or changing events, `from_block` or the factory, is refused.

use std::collections::BTreeSet;

use alloy_primitives::Address;
use ethgate_chain::{LogFilter, RangeSizer};
use ethgate_core::StreamSpec;
use ethgate_store::{AddedRange, Store};

use crate::fetch::{Fetch, Fetcher};
use crate::syncer::{Step, SyncError, Syncer};

/// The stored spec hash: the full fingerprint, then the fingerprint
/// without addresses (absent in stores written before streams could grow).
fn stored(hash: &str) -> (&str, Option<&str>) {
    match hash.split_once(' ') {
        Some((full, core)) => (full, Some(core)),
        None => (hash, None),
    }
}

/// Checks `spec` against what the stream recorded and registers its
/// contracts: unchanged, new, or only contracts added (to backfill).
pub(crate) async fn register(
    spec: &StreamSpec,
    store: &Store,
    cursor: Option<u64>,
    recorded: Option<&str>,
) -> Result<(), SyncError> {
    let hash = format!("{} {}", spec.fingerprint(), spec.core_fingerprint());
    let refused = |cursor| SyncError::SpecChanged {
        stream: spec.name.clone(),
        cursor,
    };
    let known = store.stream_addresses(&spec.name).await?;
    match (cursor, recorded.map(stored)) {
        (_, Some((full, Some(_)))) if full == spec.fingerprint() && !known.is_empty() => Ok(()),
        (Some(_), Some((full, _))) if full == spec.fingerprint() => {
            // Recorded before streams could grow: the same contracts.
            Ok(store
                .set_stream_addresses(&spec.name, &spec.addresses, &[], 0, &hash)
                .await?)
        }
        (Some(cursor), Some((_, Some(core)))) if core == spec.core_fingerprint() => {
            let had: BTreeSet<Address> = known.iter().map(|(a, _)| *a).collect();
            let now: BTreeSet<Address> = spec.addresses.iter().copied().collect();
            if !had.is_subset(&now) {
                return Err(refused(cursor));
            }
            let added: Vec<Address> = now.difference(&had).copied().collect();
            tracing::info!(stream = %spec.name, added = added.len(), cursor, "contracts added: backfilling them up to the cursor before they join");
            Ok(store
                .set_stream_addresses(&spec.name, &[], &added, spec.from_block, &hash)
                .await?)
        }
        (Some(cursor), _) => Err(refused(cursor)),
        (None, _) => Ok(store
            .set_stream_addresses(&spec.name, &spec.addresses, &[], 0, &hash)
            .await?),
    }
}

impl Syncer {
    /// One verified range of the added contracts that are furthest behind,
    /// appended to the outbox; at the cursor they join the filter.
    pub(crate) async fn backfill_added(
        &mut self,
        next: u64,
        addresses: Vec<Address>,
        cursor: u64,
    ) -> Result<Step, SyncError> {
        let from = next.max(self.spec.from_block);
        let mut fetched = None;
        if from <= cursor {
            let mut reader = Fetcher::new(
                self.spec.name.clone(),
                self.spec.chain.clone(),
                LogFilter {
                    addresses: addresses.clone(),
                    topic0: self.spec.event_selectors(),
                },
                self.fetcher.pool.clone(),
                RangeSizer::new(
                    self.fetcher.span(),
                    self.cfg.min_range,
                    self.cfg.max_range,
                    3,
                ),
                self.cfg.target_logs,
                self.cfg.parallel_queries,
            );
            match reader.fetch(None, from, cursor).await? {
                Fetch::Range(f) => fetched = Some(f),
                Fetch::Reorg(_) | Fetch::Retry(_) => {
                    return Ok(Step::Retry("added contracts' range moved"));
                }
            }
        }
        let to = fetched.as_ref().map_or(cursor, |f| f.to);
        let events = fetched
            .as_ref()
            .map(|f| self.recorder.events(f))
            .unwrap_or_default();
        let count = events.len();
        self.recorder
            .store
            .commit_added(&AddedRange {
                stream: self.spec.name.clone(),
                cursor,
                addresses: addresses.clone(),
                from: next,
                to,
                events,
            })
            .await?;
        if to >= cursor {
            tracing::info!(stream = %self.spec.name, added = addresses.len(), cursor, "added contracts caught up; they join the stream");
        }
        Ok(Step::Recorded {
            from,
            to,
            events: count,
        })
    }

    /// Sets the stream's filter from the store: its own contracts (less
    /// those still being backfilled), the factory and the children it
    /// announced. Returns the contracts still being backfilled, by their
    /// next block (lowest first), read in the same query.
    pub(crate) async fn refresh_filter(&mut self) -> Result<Vec<(u64, Vec<Address>)>, SyncError> {
        let store = &self.recorder.store;
        let mut addresses = BTreeSet::new();
        let mut pending: std::collections::BTreeMap<u64, Vec<Address>> = Default::default();
        for (a, next) in store.stream_addresses(&self.spec.name).await? {
            match next {
                None => {
                    addresses.insert(a);
                }
                Some(n) => pending.entry(n).or_default().push(a),
            }
        }
        if self.spec.factory.is_some() {
            self.children = store
                .children(&self.spec.name)
                .await?
                .into_iter()
                .map(|(a, _)| a)
                .collect();
            addresses.extend(self.spec.factory.iter().map(|f| f.address));
            addresses.extend(self.children.iter().copied());
        }
        self.fetcher.filter.addresses = addresses.into_iter().collect();
        Ok(pending.into_iter().collect())
    }
}
