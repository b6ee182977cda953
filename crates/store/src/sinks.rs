//! Per-sink delivery cursors.

use crate::{Store, StoreError, now_secs, to_i64};

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

impl Store {
    /// The sink's cursor in `stream`, registering it at 0 if new.
    pub async fn sink_cursor(&self, stream: &str, sink: &str) -> Result<SinkCursor, StoreError> {
        sqlx::query(
            "INSERT OR IGNORE INTO sink_cursors (stream, sink, updated_at) VALUES (?, ?, ?)",
        )
        .bind(stream)
        .bind(sink)
        .bind(now_secs())
        .execute(&self.pool)
        .await?;
        let (seq, delivered, failures): (i64, i64, i64) = sqlx::query_as(
            "SELECT seq, delivered, failures FROM sink_cursors WHERE stream = ? AND sink = ?",
        )
        .bind(stream)
        .bind(sink)
        .fetch_one(&self.pool)
        .await?;
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
        let done = sqlx::query(
            "UPDATE sink_cursors SET seq = ?, delivered = delivered + ?, updated_at = ? WHERE stream = ? AND sink = ? AND seq = ?",
        )
        .bind(to_i64(to))
        .bind(to_i64(count))
        .bind(now_secs())
        .bind(stream)
        .bind(sink)
        .bind(to_i64(from))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a failed delivery attempt.
    pub async fn note_sink_failure(&self, stream: &str, sink: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sink_cursors SET failures = failures + 1, updated_at = ? WHERE stream = ? AND sink = ?")
            .bind(now_secs())
            .bind(stream)
            .bind(sink)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
