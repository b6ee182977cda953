//! Dead letters: batches a sink gave up on, parked so the stream moves on.

use crate::outbox::begin;
use crate::{Store, StoreError, now_secs, to_i64};

/// A parked batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id for redelivery.
    pub id: i64,
    /// Stream name.
    pub stream: String,
    /// Sink name.
    pub sink: String,
    /// First seq of the batch.
    pub first_seq: u64,
    /// Last seq of the batch.
    pub last_seq: u64,
    /// Envelopes in the batch.
    pub count: u64,
    /// The last delivery error.
    pub error: String,
    /// The batch as a JSON array of envelopes.
    pub payload: String,
    /// Unix seconds when parked.
    pub created_at: i64,
}

type Row = (i64, String, String, i64, i64, i64, String, String, i64);

fn from_row(r: Row) -> DeadLetter {
    DeadLetter {
        id: r.0,
        stream: r.1,
        sink: r.2,
        first_seq: r.3 as u64,
        last_seq: r.4 as u64,
        count: r.5 as u64,
        error: r.6,
        payload: r.7,
        created_at: r.8,
    }
}

impl Store {
    /// Parks a batch and moves the sink's cursor past it, atomically.
    /// Returns `false` (changing nothing) if the cursor is no longer at
    /// `from`.
    #[allow(clippy::too_many_arguments)]
    pub async fn dead_letter(
        &self,
        stream: &str,
        sink: &str,
        from: u64,
        first_seq: u64,
        last_seq: u64,
        count: u64,
        error: &str,
        payload: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = begin(self).await?;
        let moved = sqlx::query("UPDATE sink_cursors SET seq = ?, updated_at = ? WHERE stream = ? AND sink = ? AND seq = ?")
            .bind(to_i64(last_seq))
            .bind(now_secs())
            .bind(stream)
            .bind(sink)
            .bind(to_i64(from))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !moved {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO dead_letters (stream, sink, first_seq, last_seq, count, error, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(stream)
        .bind(sink)
        .bind(to_i64(first_seq))
        .bind(to_i64(last_seq))
        .bind(to_i64(count))
        .bind(error)
        .bind(payload)
        .bind(now_secs())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A sink's dead letters, oldest first, at most `limit`.
    pub async fn dead_letters(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, stream, sink, first_seq, last_seq, count, error, payload, created_at FROM dead_letters \
             WHERE sink = ? ORDER BY id LIMIT ?",
        )
        .bind(sink)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// One dead letter of a sink.
    pub async fn dead_letter_by_id(
        &self,
        sink: &str,
        id: i64,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT id, stream, sink, first_seq, last_seq, count, error, payload, created_at FROM dead_letters WHERE sink = ? AND id = ?",
        )
        .bind(sink)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(from_row))
    }

    /// Forgets a dead letter once redelivered.
    pub async fn delete_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        sqlx::query("DELETE FROM dead_letters WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
