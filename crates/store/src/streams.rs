//! Stream registrations, cursors and the block window.

use alloy_primitives::B256;
use ethgate_core::BlockRef;

use crate::{Store, StoreError, now_secs, to_i64};

/// A stream's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    /// Stream name.
    pub name: String,
    /// Chain the stream was first recorded from.
    pub chain_id: u64,
    /// Last block whose events are all recorded; `None` before the first.
    pub cursor: Option<u64>,
    /// Hash of that block as recorded.
    pub cursor_hash: Option<B256>,
    /// Live events recorded (retractions subtract).
    pub events_recorded: u64,
    /// Reorgs handled so far.
    pub reorgs: u64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// Fingerprint of what the stream records, as last started.
    pub spec_hash: Option<String>,
}

pub(crate) fn parse_hash(s: &str, what: &'static str) -> Result<B256, StoreError> {
    s.parse().map_err(|e| StoreError::Corrupt {
        what,
        detail: format!("{s:?}: {e}"),
    })
}

/// A `streams` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct RawStream {
    name: String,
    chain_id: i64,
    cursor_block: Option<i64>,
    cursor_hash: Option<String>,
    events_recorded: i64,
    reorgs: i64,
    updated_at: i64,
    spec_hash: Option<String>,
}

fn row_to_stream(r: RawStream) -> Result<StreamRow, StoreError> {
    Ok(StreamRow {
        name: r.name,
        chain_id: r.chain_id as u64,
        cursor: r.cursor_block.map(|v| v as u64),
        cursor_hash: r
            .cursor_hash
            .map(|h| parse_hash(&h, "streams.cursor_hash"))
            .transpose()?,
        events_recorded: r.events_recorded.max(0) as u64,
        reorgs: r.reorgs as u64,
        updated_at: r.updated_at,
        spec_hash: r.spec_hash,
    })
}

macro_rules! stream_select {
    ($tail:literal) => {
        concat!(
            "SELECT name, chain_id, cursor_block, cursor_hash, events_recorded, reorgs, updated_at, spec_hash FROM streams ",
            $tail
        )
    };
}

impl Store {
    /// Registers a stream if new and returns its state.
    pub async fn ensure_stream(&self, name: &str, chain_id: u64) -> Result<StreamRow, StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| {
            sqlx::query("INSERT INTO streams (name, chain_id, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(name)
            .bind(to_i64(chain_id))
            .bind(now_secs())
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.stream(name)
            .await?
            .ok_or_else(|| StoreError::UnknownStream(name.to_owned()))
    }

    /// Records the fingerprint of what the stream records.
    pub async fn set_spec_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE streams SET spec_hash = $1 WHERE name = $2"
        )
        .bind(hash)
        .bind(name)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// One stream's state.
    pub async fn stream(&self, name: &str) -> Result<Option<StreamRow>, StoreError> {
        let row: Option<RawStream> =
            crate::db::on_pool!(self, |ex| sqlx::query_as(stream_select!("WHERE name = $1"))
                .bind(name)
                .fetch_optional(ex)
                .await)?;
        row.map(row_to_stream).transpose()
    }

    /// Every registered stream, by name.
    pub async fn streams(&self) -> Result<Vec<StreamRow>, StoreError> {
        let rows: Vec<RawStream> =
            crate::db::on_pool!(self, |ex| sqlx::query_as(stream_select!("ORDER BY name"))
                .fetch_all(ex)
                .await)?;
        rows.into_iter().map(row_to_stream).collect()
    }

    /// The recorded blocks of a stream, highest first, at most `limit`.
    pub async fn window(&self, stream: &str, limit: u32) -> Result<Vec<BlockRef>, StoreError> {
        let rows: Vec<(i64, String, String, i64)> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT number, hash, parent_hash, timestamp FROM blocks WHERE stream = $1 ORDER BY number DESC LIMIT $2",
        )
        .bind(stream)
        .bind(i64::from(limit))
        .fetch_all(ex)
        .await
        })?;
        rows.into_iter()
            .map(|(n, h, p, t)| {
                Ok(BlockRef {
                    number: n as u64,
                    hash: parse_hash(&h, "blocks.hash")?,
                    parent_hash: parse_hash(&p, "blocks.parent_hash")?,
                    timestamp: t as u64,
                })
            })
            .collect()
    }
}
