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
        let moved = crate::db::on_tx!(tx, |ex| {
            sqlx::query("UPDATE sink_cursors SET seq = $1, updated_at = $2 WHERE stream = $3 AND sink = $4 AND seq = $5")
            .bind(to_i64(last_seq))
            .bind(now_secs())
            .bind(stream)
            .bind(sink)
            .bind(to_i64(from))
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
        })? == 1;
        if !moved {
            return Ok(false);
        }
        crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "INSERT INTO dead_letters (stream, sink, first_seq, last_seq, count, error, payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(stream)
        .bind(sink)
        .bind(to_i64(first_seq))
        .bind(to_i64(last_seq))
        .bind(to_i64(count))
        .bind(error)
        .bind(payload)
        .bind(now_secs())
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        Ok(true)
    }

    /// A sink's dead letters, oldest first, at most `limit`.
    pub async fn dead_letters(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows: Vec<Row> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT id, stream, sink, first_seq, last_seq, count, error, payload, created_at FROM dead_letters \
             WHERE sink = $1 ORDER BY id LIMIT $2",
        )
        .bind(sink)
        .bind(i64::from(limit))
        .fetch_all(ex)
        .await
        })?;
        Ok(rows.into_iter().map(from_row).collect())
    }

    /// One dead letter of a sink.
    pub async fn dead_letter_by_id(
        &self,
        sink: &str,
        id: i64,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let row: Option<Row> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT id, stream, sink, first_seq, last_seq, count, error, payload, created_at FROM dead_letters WHERE sink = $1 AND id = $2",
        )
        .bind(sink)
        .bind(id)
        .fetch_optional(ex)
        .await
        })?;
        Ok(row.map(from_row))
    }

    /// Forgets a dead letter once redelivered.
    pub async fn delete_dead_letter(&self, id: i64) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "DELETE FROM dead_letters WHERE id = $1"
        )
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
