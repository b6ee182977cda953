//! Recording a verified range: decode every log and commit envelopes,
//! blocks and cursor in one store transaction (step 5 of the crate docs).

use std::collections::BTreeSet;
use std::sync::Arc;

use ethgate_core::{BlockRef, EventDecoder, RawLog, StreamSpec};
use ethgate_store::{NewEvent, RangeCommit, Store};

use crate::fetch::Fetched;
use crate::metrics as m;
use crate::syncer::SyncError;

/// Writes one stream's ranges. Shared with the pipeline's writer task.
pub(crate) struct Recorder {
    pub spec: Arc<StreamSpec>,
    pub store: Store,
    decoder: EventDecoder,
    keep_window: u64,
}

impl Recorder {
    pub fn new(spec: Arc<StreamSpec>, store: Store, keep_window: u64) -> Self {
        let mut events = spec.events.clone();
        events.extend(spec.factory.iter().map(|f| f.event.clone()));
        let decoder = EventDecoder::new(&events);
        Recorder {
            spec,
            store,
            decoder,
            keep_window,
        }
    }

    /// The range's logs as envelopes to record, decoded, in order.
    pub(crate) fn events<'a>(&'a self, f: &'a Fetched) -> Vec<NewEvent<'a>> {
        let mut sorted: Vec<&RawLog> = f.logs.iter().collect();
        sorted.sort_by_key(|l| (l.block(), l.index()));
        sorted.dedup_by_key(|l| (l.block(), l.index()));
        sorted
            .into_iter()
            .map(|log| {
                let timestamp = log
                    .block_timestamp
                    .map(|t| t.to::<u64>())
                    .or_else(|| f.canon.get(&log.block()).map(|b| b.timestamp))
                    .unwrap_or_default();
                let decoded = match self.decoder.decode(&log.topics, &log.data) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        tracing::warn!(stream = %self.spec.name, block = log.block(), log_index = log.index(), error = %e, "log recorded undecoded");
                        metrics::counter!(m::DECODE_ERRORS, "stream" => self.spec.name.clone()).increment(1);
                        None
                    }
                };
                NewEvent { log, timestamp, decoded }
            })
            .collect()
    }

    /// Decodes and commits `f` on top of `expected_cursor`; returns the
    /// number of envelopes recorded.
    pub async fn record(
        &self,
        f: Fetched,
        expected_cursor: Option<u64>,
    ) -> Result<usize, SyncError> {
        let started = std::time::Instant::now();
        let events = self.events(&f);
        let decoded = started.elapsed();
        let blocks: Vec<BlockRef> = f
            .logs
            .iter()
            .map(RawLog::block)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|n| f.canon.get(&n).copied())
            .collect();
        let count = events.len();
        self.store
            .commit_range(&RangeCommit {
                stream: self.spec.name.clone(),
                expected_cursor,
                events,
                blocks,
                cursor: f.end,
                keep_window: self.keep_window,
                children: f.children.clone(),
            })
            .await?;
        tracing::debug!(stream = %self.spec.name, from = f.from, to = f.to, events = count, decode_ms = decoded.as_millis() as u64,
            commit_ms = (started.elapsed() - decoded).as_millis() as u64, "range recorded");
        metrics::counter!(m::EVENTS_RECORDED, "stream" => self.spec.name.clone())
            .increment(count as u64);
        metrics::gauge!(m::CURSOR, "stream" => self.spec.name.clone()).set(f.to as f64);
        Ok(count)
    }
}
