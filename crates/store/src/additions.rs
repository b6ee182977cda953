//! A stream's contracts, and contracts added to a stream that has already
//! recorded: each added one is backfilled from its `next_block` up to the
//! stream's cursor, its events appended to the outbox as they are found
//! (after the events already there), and joins the stream's filter when
//! the backfill reaches the cursor — in the same transaction. A rewind
//! sends an unfinished backfill back to the fork.

use alloy_primitives::Address;

use crate::codec::{self, NewEvent};
use crate::outbox::{SEGMENT_MAX, Segment, append, begin, check_cursor};
use crate::{Store, StoreError, now_secs, to_i64};

/// One backfilled range of added contracts, written in one transaction.
#[derive(Debug, Clone)]
pub struct AddedRange<'a> {
    /// Stream name.
    pub stream: String,
    /// The stream's cursor, unchanged by this write (checked).
    pub cursor: u64,
    /// The added contracts this range covers.
    pub addresses: Vec<Address>,
    /// Their `next_block` as read; the write fails if it moved.
    pub from: u64,
    /// The range's last block (`<= cursor`).
    pub to: u64,
    /// Their events in `[from, to]`, in (block, log index) order.
    pub events: Vec<NewEvent<'a>>,
}

impl Store {
    /// The stream's contracts: `None` for those in its filter, else the
    /// next block of the added contract's backfill.
    pub async fn stream_addresses(
        &self,
        stream: &str,
    ) -> Result<Vec<(Address, Option<u64>)>, StoreError> {
        let rows: Vec<(String, Option<i64>)> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT address, next_block FROM stream_addresses WHERE stream = $1 ORDER BY address"
        )
        .bind(stream)
        .fetch_all(ex)
        .await
        })?;
        rows.into_iter()
            .map(|(a, n)| {
                let address = a.parse().map_err(|_| StoreError::Corrupt {
                    what: "stream_addresses.address",
                    detail: a.clone(),
                })?;
                Ok((address, n.map(|n| n as u64)))
            })
            .collect()
    }

    /// Sets the stream's contracts to `live` (all in its filter), and adds
    /// `added` to be backfilled from `from_block`; with the new spec hash.
    pub async fn set_stream_addresses(
        &self,
        stream: &str,
        live: &[Address],
        added: &[Address],
        from_block: u64,
        spec_hash: &str,
    ) -> Result<(), StoreError> {
        let mut tx = begin(self).await?;
        if added.is_empty() {
            crate::db::on_tx!(tx, |ex| sqlx::query(
                "DELETE FROM stream_addresses WHERE stream = $1"
            )
            .bind(stream)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))?;
        }
        let rows = live
            .iter()
            .map(|a| (a, None))
            .chain(added.iter().map(|a| (a, Some(to_i64(from_block)))));
        for (address, next) in rows {
            crate::db::on_tx!(tx, |ex| sqlx::query(
                "INSERT INTO stream_addresses (stream, address, next_block) VALUES ($1, $2, $3) \
                 ON CONFLICT (stream, address) DO NOTHING"
            )
            .bind(stream)
            .bind(format!("{address:#x}"))
            .bind(next)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))?;
        }
        crate::db::on_tx!(tx, |ex| sqlx::query(
            "UPDATE streams SET spec_hash = $1 WHERE name = $2"
        )
        .bind(spec_hash)
        .bind(stream)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends a backfilled range of added contracts and moves their
    /// backfill on; at the cursor they join the stream's filter. Fails,
    /// changing nothing, if the cursor or their progress moved.
    pub async fn commit_added(&self, r: &AddedRange<'_>) -> Result<(), StoreError> {
        if let Some(e) = r
            .events
            .iter()
            .find(|e| e.log.block() < r.from || e.log.block() > r.to || r.to > r.cursor)
        {
            return Err(StoreError::OutOfRange {
                stream: r.stream.clone(),
                block: e.log.block(),
                cursor: Some(r.cursor),
            });
        }
        let mut segs = Vec::new();
        for chunk in r.events.chunks(SEGMENT_MAX) {
            let mut seg = Segment::new(false);
            for e in chunk {
                codec::encode(e, &mut seg.payload);
                seg.note(e.log.block());
            }
            segs.push(seg);
        }
        let mut tx = begin(self).await?;
        let next_seq = check_cursor(&mut tx, &r.stream, Some(r.cursor)).await?;
        let next = (r.to < r.cursor).then(|| to_i64(r.to + 1));
        for address in &r.addresses {
            let moved = crate::db::on_tx!(tx, |ex| {
                sqlx::query(
                "UPDATE stream_addresses SET next_block = $1 WHERE stream = $2 AND address = $3 AND next_block = $4"
            )
            .bind(next)
            .bind(&r.stream)
            .bind(format!("{address:#x}"))
            .bind(to_i64(r.from))
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
            })?;
            if moved != 1 {
                return Err(StoreError::CursorConflict {
                    stream: r.stream.clone(),
                    expected: Some(r.from),
                    found: None,
                });
            }
        }
        let next_seq = append(&mut tx, &r.stream, next_seq, segs).await?;
        crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "UPDATE streams SET next_seq = $1, events_recorded = events_recorded + $2, updated_at = $3 WHERE name = $4"
        )
        .bind(to_i64(next_seq))
        .bind(r.events.len() as i64)
        .bind(now_secs())
        .bind(&r.stream)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        if !r.events.is_empty() {
            self.notify();
        }
        Ok(())
    }
}
