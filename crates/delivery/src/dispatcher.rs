//! The dispatcher of one (stream, sink) pair.

use std::sync::Arc;
use std::time::Duration;

use ethgate_store::Store;
use tokio::sync::watch;

use crate::metrics as m;
use crate::sink::Sink;

/// Longest wait between retries of a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// First retry wait.
const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// How often an idle dispatcher looks for envelopes written by another
/// process (within one process it is woken at once).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Moves one stream's envelopes to one sink.
pub struct Dispatcher {
    stream: String,
    sink: Arc<dyn Sink>,
    store: Store,
    /// The batch now failing (its first seq) and since when.
    failing: std::sync::Mutex<Option<(u64, std::time::Instant)>>,
    /// Envelopes read ahead of the sink, and the cursor they follow.
    buffer: tokio::sync::Mutex<ReadAhead>,
}

/// A batch handed to the sink, its acknowledgement still to come.
struct InFlight {
    batch: Vec<ethgate_store::StoredEnvelope>,
    ack: crate::sink::Pending,
}

/// Envelopes read from the outbox but not yet acknowledged by the sink,
/// and acknowledgements not yet saved.
#[derive(Default)]
struct ReadAhead {
    /// Last seq the sink acknowledged.
    cursor: u64,
    /// Last seq read from the outbox (handed over or pending).
    read: u64,
    /// Batches handed to the sink, oldest first, up to its window.
    in_flight: std::collections::VecDeque<InFlight>,
    /// The cursor as saved in the store (`<= cursor`).
    saved: u64,
    /// Envelopes acknowledged since the last save.
    unsaved: u64,
    /// When the oldest unsaved acknowledgement came.
    unsaved_since: Option<std::time::Instant>,
    pending: std::collections::VecDeque<ethgate_store::StoredEnvelope>,
}

/// Acknowledgements saved together while a sink keeps up: one store write
/// per [`SAVE_EVERY`] envelopes or [`SAVE_INTERVAL`], whichever comes first,
/// instead of one per batch (for single-envelope webhooks a write per
/// batch would cost about as much as the delivery). A crash redelivers at most that much — delivery is
/// at least once anyway — and the cursor is always saved before the
/// dispatcher idles, handles a failure or re-reads the outbox.
const SAVE_EVERY: u64 = 1_000;
/// See [`SAVE_EVERY`].
const SAVE_INTERVAL: Duration = Duration::from_millis(50);

/// Envelopes read from the outbox at once.
const READ_AHEAD: u32 = 1_000;

/// Exponential backoff with full jitter: a random wait in [d/2, d], where d
/// doubles per consecutive failure up to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    ethgate_core::backoff::jittered(BASE_BACKOFF, MAX_BACKOFF, failures)
}

/// Waits `d` or until shutdown; returns whether to stop.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        r = shutdown.wait_for(|v| *v) => r.is_ok(),
    };
    stopped || *shutdown.borrow()
}

impl Dispatcher {
    /// A dispatcher of `stream` to `sink`.
    pub fn new(stream: &str, sink: Arc<dyn Sink>, store: Store) -> Self {
        Dispatcher {
            stream: stream.to_owned(),
            sink,
            store,
            failing: std::sync::Mutex::new(None),
            buffer: tokio::sync::Mutex::new(ReadAhead::default()),
        }
    }

    /// Delivers one batch if there is one; returns how many envelopes the
    /// sink acknowledged (0: nothing to do). Up to the sink's window of
    /// batches are handed over before the oldest one's acknowledgement is
    /// awaited; the cursor moves only on acks, in order.
    pub async fn deliver_once(&self) -> Result<usize, crate::SinkError> {
        let store_err = |e: ethgate_store::StoreError| {
            crate::SinkError::retriable(self.sink.name(), e.to_string())
        };
        let mut buf = self.buffer.lock().await;
        self.read_ahead(&mut buf).await.map_err(store_err)?;
        let n_max = self.sink.max_batch().clamp(1, READ_AHEAD as usize);
        while buf.in_flight.len() < self.sink.window().max(1) && !buf.pending.is_empty() {
            let n = n_max.min(buf.pending.len());
            let batch: Vec<ethgate_store::StoredEnvelope> = buf.pending.drain(..n).collect();
            let ack = match self.sink.start(&batch).await {
                Ok(ack) => ack,
                // Met in order, after the batches before it.
                Err(e) => Box::pin(std::future::ready(Err(e))),
            };
            buf.in_flight.push_back(InFlight { batch, ack });
            if buf.pending.is_empty() {
                self.read_ahead(&mut buf).await.map_err(store_err)?;
            }
        }
        let Some(InFlight { batch, ack }) = buf.in_flight.pop_front() else {
            return Ok(0);
        };
        let from = buf.cursor;
        let Some(last) = batch.last().map(|e| e.seq) else {
            return Ok(0);
        };
        if let Err(e) = ack.await {
            // What was handed over after it is sent again from the store.
            buf.in_flight.clear();
            buf.pending.clear();
            // Parking compares against the saved cursor: save first.
            self.save(&mut buf).await.map_err(store_err)?;
            return self.on_failure(from, &batch, e).await;
        }
        if let Ok(mut f) = self.failing.lock() {
            *f = None;
        }
        buf.cursor = last;
        buf.unsaved += batch.len() as u64;
        let since = *buf
            .unsaved_since
            .get_or_insert_with(std::time::Instant::now);
        if buf.unsaved >= SAVE_EVERY || since.elapsed() >= SAVE_INTERVAL {
            self.save(&mut buf).await.map_err(store_err)?;
        }
        let labels = [
            ("stream", self.stream.clone()),
            ("sink", self.sink.name().to_owned()),
        ];
        metrics::counter!(m::DELIVERED, &labels).increment(batch.len() as u64);
        metrics::gauge!(m::CURSOR, &labels).set(last as f64);
        Ok(batch.len())
    }

    /// Refills the read-ahead when it ran dry. With nothing in flight the
    /// cursor is re-read from the store first, so a rewind by another
    /// process is seen; otherwise reading goes on after what was read.
    async fn read_ahead(&self, buf: &mut ReadAhead) -> Result<(), ethgate_store::StoreError> {
        if !buf.pending.is_empty() {
            return Ok(());
        }
        if buf.in_flight.is_empty() {
            self.save(buf).await?;
            let cursor = self
                .store
                .sink_cursor(&self.stream, self.sink.name())
                .await?;
            buf.cursor = cursor.seq;
            buf.saved = cursor.seq;
            buf.read = cursor.seq;
            if let Ok(last) = self.store.last_seq(&self.stream).await {
                let labels = [
                    ("stream", self.stream.clone()),
                    ("sink", self.sink.name().to_owned()),
                ];
                metrics::gauge!(m::LAG, &labels).set(last.saturating_sub(cursor.seq) as f64);
            }
        }
        let page = self
            .store
            .events_after(&self.stream, buf.read, READ_AHEAD)
            .await?;
        if let Some(last) = page.last() {
            buf.read = last.seq;
        }
        buf.pending = page.into();
        Ok(())
    }

    /// Saves the acknowledged cursor if it moved. If the stored cursor is
    /// no longer the one this dispatcher saved (a rewind), the read-ahead is
    /// dropped so the next delivery starts from the store.
    async fn save(&self, buf: &mut ReadAhead) -> Result<(), ethgate_store::StoreError> {
        if buf.cursor != buf.saved {
            let moved = self
                .store
                .advance_sink(
                    &self.stream,
                    self.sink.name(),
                    buf.saved,
                    buf.cursor,
                    buf.unsaved,
                )
                .await?;
            if moved {
                buf.saved = buf.cursor;
            } else {
                tracing::info!(stream = %self.stream, sink = %self.sink.name(), "cursor moved during delivery (rewind); re-reading");
                buf.pending.clear();
                buf.in_flight.clear();
            }
        }
        buf.unsaved = 0;
        buf.unsaved_since = None;
        Ok(())
    }

    /// A batch failed: park it as a dead letter if it has failed for longer
    /// than the sink allows, else report the failure for a retry.
    async fn on_failure(
        &self,
        from: u64,
        batch: &[ethgate_store::StoredEnvelope],
        e: crate::SinkError,
    ) -> Result<usize, crate::SinkError> {
        let first = batch.first().map_or(from + 1, |b| b.seq);
        let now = std::time::Instant::now();
        let since = match self.failing.lock() {
            Ok(mut f) => match *f {
                Some((seq, since)) if seq == first => since,
                _ => {
                    *f = Some((first, now));
                    now
                }
            },
            Err(_) => now,
        };
        let Some(max_age) = self
            .sink
            .dead_letter_after()
            .filter(|max| since.elapsed() >= *max)
        else {
            return Err(e);
        };
        let payload = ethgate_store::StoredEnvelope::json_array(batch);
        let last = batch.last().map_or(first, |b| b.seq);
        let parked = self
            .store
            .dead_letter(
                &self.stream,
                self.sink.name(),
                from,
                first,
                last,
                batch.len() as u64,
                &e.message,
                &payload,
            )
            .await
            .map_err(|se| crate::SinkError::retriable(self.sink.name(), se.to_string()))?;
        if parked {
            tracing::error!(stream = %self.stream, sink = %self.sink.name(), first, last, failing_for = ?max_age, error = %e, "batch parked as a dead letter");
            let labels = [
                ("stream", self.stream.clone()),
                ("sink", self.sink.name().to_owned()),
            ];
            metrics::counter!(m::DEAD_LETTERS, &labels).increment(1);
        }
        if let Ok(mut f) = self.failing.lock() {
            *f = None;
        }
        Ok(batch.len())
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe();
        let mut failures: u32 = 0;
        tracing::info!(stream = %self.stream, sink = %self.sink.name(), "dispatcher started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            changes.borrow_and_update();
            let wait = match self.deliver_once().await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = changes.changed() => Duration::ZERO,
                        _ = tokio::time::sleep(IDLE_POLL) => Duration::ZERO,
                        _ = shutdown.wait_for(|v| *v) => break,
                    }
                }
                Ok(_) => {
                    failures = 0;
                    Duration::ZERO
                }
                Err(e) => {
                    failures += 1;
                    let labels = [
                        ("stream", self.stream.clone()),
                        ("sink", self.sink.name().to_owned()),
                    ];
                    metrics::counter!(m::FAILURES, &labels).increment(1);
                    if let Err(store) = self
                        .store
                        .note_sink_failure(&self.stream, self.sink.name())
                        .await
                    {
                        tracing::warn!(error = %store, "could not count a sink failure");
                    }
                    let wait = backoff(failures);
                    tracing::warn!(stream = %self.stream, sink = %self.sink.name(), error = %e, failures, retry_in = ?wait, "delivery failed; will retry the same batch");
                    wait
                }
            };
            if !wait.is_zero() && pause(wait, &mut shutdown).await {
                break;
            }
        }
        let mut buf = self.buffer.lock().await;
        if let Err(e) = self.save(&mut buf).await {
            tracing::warn!(stream = %self.stream, sink = %self.sink.name(), error = %e, "could not save the cursor on stopping; the last acknowledged envelopes will be delivered again");
        }
        tracing::info!(stream = %self.stream, sink = %self.sink.name(), "dispatcher stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for failures in 1..40 {
            let d = backoff(failures);
            let cap = BASE_BACKOFF
                .saturating_mul(1 << (failures - 1).min(10))
                .min(MAX_BACKOFF);
            assert!(
                d >= cap / 2 && d <= cap,
                "{failures}: {d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
        }
        assert!(backoff(30) <= MAX_BACKOFF);
    }
}
