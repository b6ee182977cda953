//! The outbox: recording a range atomically, retracting above a fork point,
//! and reading envelopes after a sequence number.

use ethgate_core::{BlockRef, EventEnvelope};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use crate::{Store, StoreError, now_secs, to_i64};

/// Rows per multi-row INSERT: SQLite's fast path, well under its bind limit.
const ROWS_PER_INSERT: usize = 100;

/// Everything one synced range changes, written in one transaction.
#[derive(Debug, Clone)]
pub struct RangeCommit {
    /// Stream name.
    pub stream: String,
    /// The cursor the writer started from; the commit fails if it moved.
    pub expected_cursor: Option<u64>,
    /// Envelopes of the range, in (block, log index) order.
    pub envelopes: Vec<EventEnvelope>,
    /// Blocks to remember (those with events, and the cursor block).
    pub blocks: Vec<BlockRef>,
    /// The new cursor: the last block of the range.
    pub cursor: BlockRef,
    /// Blocks of window kept below the cursor.
    pub keep_window: u64,
}

/// An envelope as stored: its `seq` and its JSON without `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEnvelope {
    /// Outbox sequence number.
    pub seq: u64,
    /// JSON object without `seq`.
    pub payload: String,
}

impl StoredEnvelope {
    /// The envelope JSON with its `seq`.
    pub fn json(&self) -> String {
        ethgate_core::envelope::splice_seq(&self.payload, self.seq)
    }
}

async fn check_cursor(
    tx: &mut Transaction<'_, Sqlite>,
    stream: &str,
    expected: Option<u64>,
) -> Result<(), StoreError> {
    let found: Option<Option<i64>> = sqlx::query_scalar("SELECT cursor_block FROM streams WHERE name = ?")
        .bind(stream)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(found) = found else {
        return Err(StoreError::UnknownStream(stream.to_owned()));
    };
    let found = found.map(|v| v as u64);
    if found != expected {
        return Err(StoreError::CursorConflict { stream: stream.to_owned(), expected, found });
    }
    Ok(())
}

async fn insert_envelopes(
    tx: &mut Transaction<'_, Sqlite>,
    stream: &str,
    rows: &[(String, u64, u64, bool, String)],
) -> Result<Option<u64>, StoreError> {
    let mut last = None;
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO outbox (stream, kind, id, block_number, log_index, removed, payload) ");
        qb.push_values(chunk, |mut b, (id, block, log_index, removed, payload)| {
            b.push_bind(stream)
                .push_bind("event")
                .push_bind(id)
                .push_bind(to_i64(*block))
                .push_bind(to_i64(*log_index))
                .push_bind(*removed)
                .push_bind(payload);
        });
        let done = qb.build().execute(&mut **tx).await?;
        last = Some(done.last_insert_rowid() as u64);
    }
    Ok(last)
}

async fn begin(store: &Store) -> Result<Transaction<'static, Sqlite>, StoreError> {
    // IMMEDIATE takes the write lock up front, so a read-then-write
    // transaction never fails to upgrade while another stream commits.
    Ok(store.pool.begin_with("BEGIN IMMEDIATE").await?)
}

impl Store {
    /// Records a range: envelopes, blocks and the cursor, atomically.
    /// Returns the highest `seq` written, if any envelope was.
    pub async fn commit_range(&self, c: &RangeCommit) -> Result<Option<u64>, StoreError> {
        let rows: Vec<(String, u64, u64, bool, String)> = c
            .envelopes
            .iter()
            .map(|e| {
                let payload = serde_json::to_string(e).unwrap_or_default();
                (e.id.clone(), e.block_number, e.log_index, e.removed, payload)
            })
            .collect();
        let mut tx = begin(self).await?;
        check_cursor(&mut tx, &c.stream, c.expected_cursor).await?;
        let last = insert_envelopes(&mut tx, &c.stream, &rows).await?;
        for b in c.blocks.iter().chain(std::iter::once(&c.cursor)) {
            sqlx::query(
                "INSERT OR REPLACE INTO blocks (stream, number, hash, parent_hash, timestamp) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&c.stream)
            .bind(to_i64(b.number))
            .bind(b.hash.to_string())
            .bind(b.parent_hash.to_string())
            .bind(to_i64(b.timestamp))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE streams SET cursor_block = ?, cursor_hash = ?, events_recorded = events_recorded + ?, updated_at = ? WHERE name = ?",
        )
        .bind(to_i64(c.cursor.number))
        .bind(c.cursor.hash.to_string())
        .bind(rows.len() as i64)
        .bind(now_secs())
        .bind(&c.stream)
        .execute(&mut *tx)
        .await?;
        let floor = c.cursor.number.saturating_sub(c.keep_window);
        sqlx::query("DELETE FROM blocks WHERE stream = ? AND number < ?")
            .bind(&c.stream)
            .bind(to_i64(floor))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Some(seq) = last {
            self.notify(seq);
        }
        Ok(last)
    }

    /// Handles a reorg: every live event of the stream above `fork` gets a
    /// retraction envelope (same id, `removed: true`), the window above it
    /// is forgotten and the cursor moves back to it (`None`: before the
    /// first block, so the stream restarts at its `from_block`). Atomic.
    /// Returns how many events were retracted.
    pub async fn rewind(&self, stream: &str, expected_cursor: Option<u64>, fork: Option<BlockRef>) -> Result<u64, StoreError> {
        let above = fork.map_or(-1, |f| to_i64(f.number));
        let mut tx = begin(self).await?;
        check_cursor(&mut tx, stream, expected_cursor).await?;
        let live: Vec<(i64, String, i64, i64, String)> = sqlx::query_as(
            "SELECT seq, id, block_number, log_index, payload FROM outbox \
             WHERE stream = ? AND block_number > ? AND removed = 0 AND retracted = 0 ORDER BY seq",
        )
        .bind(stream)
        .bind(above)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE outbox SET retracted = 1 WHERE stream = ? AND block_number > ? AND removed = 0 AND retracted = 0")
            .bind(stream)
            .bind(above)
            .execute(&mut *tx)
            .await?;
        let mut rows = Vec::with_capacity(live.len());
        for (seq, id, block, log_index, payload) in live {
            let mut v: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt { what: "outbox.payload", detail: format!("seq {seq}: {e}") })?;
            v["removed"] = serde_json::Value::Bool(true);
            rows.push((id, block as u64, log_index as u64, true, v.to_string()));
        }
        let last = insert_envelopes(&mut tx, stream, &rows).await?;
        sqlx::query("DELETE FROM blocks WHERE stream = ? AND number > ?")
            .bind(stream)
            .bind(above)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE streams SET cursor_block = ?, cursor_hash = ?, events_recorded = events_recorded - ?, \
             reorgs = reorgs + 1, updated_at = ? WHERE name = ?",
        )
        .bind(fork.map(|f| to_i64(f.number)))
        .bind(fork.map(|f| f.hash.to_string()))
        .bind(rows.len() as i64)
        .bind(now_secs())
        .bind(stream)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(seq) = last {
            self.notify(seq);
        }
        Ok(rows.len() as u64)
    }

    /// Up to `limit` envelopes of `stream` with `seq > after`, in order.
    pub async fn events_after(&self, stream: &str, after: u64, limit: u32) -> Result<Vec<StoredEnvelope>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, payload FROM outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?")
                .bind(stream)
                .bind(to_i64(after))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(seq, payload)| StoredEnvelope { seq: seq as u64, payload }).collect())
    }
}
