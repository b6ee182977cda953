//! Per-sink delivery cursors.

use crate::{Store, StoreError, codec, now_secs, to_i64};

/// A sink's position in one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SinkCursor {
    /// Last seq the sink acknowledged (0: none).
    pub seq: u64,
    /// Envelopes acknowledged so far.
    pub delivered: u64,
    /// Failed delivery attempts so far.
    pub failures: u64,
}

/// A sink's cursor in a stream with its lag behind the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    /// Stream name.
    pub stream: String,
    /// Sink name.
    pub sink: String,
    /// The cursor.
    pub cursor: SinkCursor,
    /// Envelopes recorded but not yet acknowledged by the sink.
    pub lag: u64,
    /// Unix seconds of the cursor's last change; `None` before the first.
    pub updated_at: Option<i64>,
    /// Batches parked as dead letters and not yet redelivered: envelopes
    /// the cursor passed without the sink acknowledging them.
    pub dead_letters: u64,
}

impl Store {
    /// The status of each (stream, sink) route, in the given order. A sink
    /// that has not delivered yet has a zero cursor, no `updated_at`, and
    /// the whole stream as its lag.
    pub async fn route_statuses(
        &self,
        routes: &[(String, String)],
    ) -> Result<Vec<SinkStatus>, StoreError> {
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> =
            crate::db::on_pool!(self, |ex| sqlx::query_as(
                "SELECT c.stream, c.sink, c.seq, c.delivered, c.failures, c.updated_at, s.next_seq \
             FROM sink_cursors c JOIN streams s ON s.name = c.stream",
            )
            .fetch_all(ex)
            .await)?;
        let parked: Vec<(String, String, i64)> = crate::db::on_pool!(self, |ex| sqlx::query_as(
            "SELECT stream, sink, COUNT(*) FROM dead_letters GROUP BY stream, sink"
        )
        .fetch_all(ex)
        .await)?;
        let mut out = Vec::with_capacity(routes.len());
        for (stream, sink) in routes {
            let dead_letters = parked
                .iter()
                .find(|r| &r.0 == stream && &r.1 == sink)
                .map_or(0, |r| r.2.max(0) as u64);
            let status = match rows.iter().find(|r| &r.0 == stream && &r.1 == sink) {
                Some(&(_, _, seq, delivered, failures, updated_at, next)) => SinkStatus {
                    stream: stream.clone(),
                    sink: sink.clone(),
                    cursor: SinkCursor {
                        seq: seq as u64,
                        delivered: delivered as u64,
                        failures: failures as u64,
                    },
                    lag: (next - 1 - seq).max(0) as u64,
                    updated_at: Some(updated_at),
                    dead_letters,
                },
                None => SinkStatus {
                    stream: stream.clone(),
                    sink: sink.clone(),
                    cursor: SinkCursor::default(),
                    lag: self.last_seq(stream).await.unwrap_or(0),
                    updated_at: None,
                    dead_letters,
                },
            };
            out.push(status);
        }
        Ok(out)
    }

    /// The highest seq of the stream (0 if none).
    pub async fn last_seq(&self, stream: &str) -> Result<u64, StoreError> {
        let next: Option<i64> = crate::db::on_pool!(self, |ex| sqlx::query_scalar(
            "SELECT next_seq FROM streams WHERE name = $1"
        )
        .bind(stream)
        .fetch_optional(ex)
        .await)?;
        next.map(|n| (n - 1).max(0) as u64)
            .ok_or_else(|| StoreError::UnknownStream(stream.to_owned()))
    }

    /// The seq just before the first envelope of `block` or later, so a
    /// sink rewound there replays from that block on.
    pub async fn seq_before_block(&self, stream: &str, block: u64) -> Result<u64, StoreError> {
        let seg: Option<(i64, Vec<u8>)> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT first_seq, payload FROM outbox WHERE stream = $1 AND max_block >= $2 ORDER BY first_seq LIMIT 1",
        )
        .bind(stream)
        .bind(to_i64(block))
        .fetch_optional(ex)
        .await
        })?;
        let Some((first, payload)) = seg else {
            return self.last_seq(stream).await;
        };
        for (i, record) in codec::records(&payload).enumerate() {
            let corrupt = |e: codec::CodecError| StoreError::Corrupt {
                what: "outbox.payload",
                detail: e.to_string(),
            };
            if codec::block_number(record.map_err(corrupt)?).map_err(corrupt)? >= block {
                return Ok((first as u64 + i as u64).saturating_sub(1));
            }
        }
        Ok(first as u64)
    }

    /// Moves a sink's cursor to `seq` (the sink receives everything after
    /// it again), registering the cursor if new. Refuses a seq past the
    /// stream's last.
    pub async fn rewind_sink(&self, stream: &str, sink: &str, seq: u64) -> Result<(), StoreError> {
        let last = self.last_seq(stream).await?;
        if seq > last {
            return Err(StoreError::OutOfRange {
                stream: stream.to_owned(),
                block: seq,
                cursor: Some(last),
            });
        }
        self.sink_cursor(stream, sink).await?;
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE sink_cursors SET seq = $1, updated_at = $2 WHERE stream = $3 AND sink = $4",
        )
        .bind(to_i64(seq))
        .bind(now_secs())
        .bind(stream)
        .bind(sink)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        self.notify();
        Ok(())
    }

    /// The sink's cursor in `stream`, registering it at 0 if new.
    pub async fn sink_cursor(&self, stream: &str, sink: &str) -> Result<SinkCursor, StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| {
            sqlx::query(
            "INSERT INTO sink_cursors (stream, sink, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(stream)
        .bind(sink)
        .bind(now_secs())
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        let (seq, delivered, failures): (i64, i64, i64) =
            crate::db::on_pool!(self, |ex| sqlx::query_as(
                "SELECT seq, delivered, failures FROM sink_cursors WHERE stream = $1 AND sink = $2",
            )
            .bind(stream)
            .bind(sink)
            .fetch_one(ex)
            .await)?;
        Ok(SinkCursor {
            seq: seq as u64,
            delivered: delivered as u64,
            failures: failures as u64,
        })
    }

    /// Moves the cursor from `from` to `to` after the sink acknowledged
    /// `count` envelopes. Refuses (changing nothing) if the cursor is no
    /// longer at `from`, e.g. after a rewind during the delivery.
    pub async fn advance_sink(
        &self,
        stream: &str,
        sink: &str,
        from: u64,
        to: u64,
        count: u64,
    ) -> Result<bool, StoreError> {
        // A transaction, so a fenced dispatcher's lease is checked with it.
        let mut tx = crate::outbox::begin(self).await?;
        let done = crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "UPDATE sink_cursors SET seq = $1, delivered = delivered + $2, updated_at = $3 WHERE stream = $4 AND sink = $5 AND seq = $6",
        )
        .bind(to_i64(to))
        .bind(to_i64(count))
        .bind(now_secs())
        .bind(stream)
        .bind(sink)
        .bind(to_i64(from))
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(done == 1)
    }

    /// Counts a failed delivery attempt.
    pub async fn note_sink_failure(&self, stream: &str, sink: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| {
            sqlx::query("UPDATE sink_cursors SET failures = failures + 1, updated_at = $1 WHERE stream = $2 AND sink = $3")
            .bind(now_secs())
            .bind(stream)
            .bind(sink)
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }
}
