//! The outbox: recording a range atomically, retracting above a fork point,
//! and reading envelopes after a sequence number.
//!
//! Envelopes are stored in segments of up to [`SEGMENT_MAX`] JSON lines
//! (see the migration), so recording costs one row per segment rather than
//! one per event, and a retraction moves one watermark per segment.

use ethgate_core::{BlockRef, Envelope};

use crate::codec::{self, NewEvent};
use crate::{Store, StoreError, now_secs, to_i64};

/// Most envelopes in one outbox segment: large enough that a range costs a
/// few rows, small enough that reading one page parses little.
pub const SEGMENT_MAX: usize = 1_000;

/// Everything one synced range changes, written in one transaction.
#[derive(Debug, Clone)]
pub struct RangeCommit<'a> {
    /// Stream name.
    pub stream: String,
    /// The cursor the writer started from; the commit fails if it moved.
    pub expected_cursor: Option<u64>,
    /// Events of the range, in (block, log index) order.
    pub events: Vec<NewEvent<'a>>,
    /// Blocks to remember (those with events).
    pub blocks: Vec<BlockRef>,
    /// The new cursor: the last block of the range.
    pub cursor: BlockRef,
    /// Blocks of window kept below the cursor.
    pub keep_window: u64,
    /// Children the range's factory announcements add, with their blocks.
    pub children: Vec<(alloy_primitives::Address, u64)>,
}

/// An envelope read back from the outbox, with its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEnvelope {
    /// Outbox sequence number, per stream, from 1.
    pub seq: u64,
    /// The envelope (an event or a transaction status), `seq` set.
    pub envelope: Envelope,
}

impl StoredEnvelope {
    /// The envelope's wire JSON.
    pub fn json(&self) -> String {
        let mut out = String::with_capacity(1024);
        self.envelope.write_json(&mut out);
        out
    }

    /// A batch as one JSON array: the webhook body and the dead-letter form.
    pub fn json_array(batch: &[StoredEnvelope]) -> String {
        let mut out = String::with_capacity(batch.len() * 1024 + 2);
        out.push('[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            e.envelope.write_json(&mut out);
        }
        out.push(']');
        out
    }
}

/// One segment to write: `count` records in `payload`.
pub(crate) struct Segment {
    removed: bool,
    count: u64,
    min_block: u64,
    max_block: u64,
    pub(crate) payload: Vec<u8>,
}

impl Segment {
    pub(crate) fn new(removed: bool) -> Self {
        Segment {
            removed,
            count: 0,
            min_block: u64::MAX,
            max_block: 0,
            payload: Vec::new(),
        }
    }

    pub(crate) fn note(&mut self, block: u64) {
        self.count += 1;
        self.min_block = self.min_block.min(block);
        self.max_block = self.max_block.max(block);
    }
}

/// Reads the stream's cursor and next seq, refusing a moved cursor.
pub(crate) async fn check_cursor(
    tx: &mut WriteTx,
    stream: &str,
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    let row: Option<(Option<i64>, i64)> =
        crate::db::on_tx!(tx, |ex, DB| sqlx::query_as(crate::db::locked!(
            DB,
            "SELECT cursor_block, next_seq FROM streams WHERE name = $1"
        ))
        .bind(stream)
        .fetch_optional(ex)
        .await)?;
    let Some((found, next_seq)) = row else {
        return Err(StoreError::UnknownStream(stream.to_owned()));
    };
    let found = found.map(|v| v as u64);
    if found != expected {
        return Err(StoreError::CursorConflict {
            stream: stream.to_owned(),
            expected,
            found,
        });
    }
    Ok(next_seq as u64)
}

/// Appends segments from `next_seq` on; returns the next free seq.
pub(crate) async fn append(
    tx: &mut WriteTx,
    stream: &str,
    mut next_seq: u64,
    segs: Vec<Segment>,
) -> Result<u64, StoreError> {
    for seg in segs {
        let n = seg.count;
        if n == 0 {
            continue;
        }
        crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "INSERT INTO outbox (stream, first_seq, last_seq, removed, min_block, max_block, payload) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(stream)
        .bind(to_i64(next_seq))
        .bind(to_i64(next_seq + n - 1))
        .bind(seg.removed)
        .bind(to_i64(seg.min_block))
        .bind(to_i64(seg.max_block))
        .bind(seg.payload)
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        next_seq += n;
    }
    Ok(next_seq)
}

/// A write transaction holding this process's turn to write.
///
/// SQLite has one writer. Left to SQLite, a writer that finds the lock
/// taken sleeps in growing steps (1, 2, 5, 10, … 100 ms) while holding a
/// pooled connection, so under a few concurrent writers a commit that
/// needed a millisecond waited tens — the API's p99. Writers of this
/// process instead queue on an async lock, are woken the moment the turn
/// is free, and hold no connection while they wait; the API's group
/// commit waits behind at most one background writer (`begin_urgent`).
pub(crate) struct WriteTx {
    conn: crate::db::Conn,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    /// Commits, then gives up the turn.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.conn.commit().await
    }

    /// The transaction, for [`on_tx!`](crate::db::on_tx).
    pub(crate) fn conn(&mut self) -> &mut crate::db::Conn {
        &mut self.conn
    }
}

/// This process's turns at SQLite's one write lock (see [`WriteTx`]).
#[derive(Default)]
pub(crate) struct Turns {
    /// The turn itself.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Where background writers queue for the turn.
    gate: tokio::sync::Mutex<()>,
}

impl Turns {
    /// The turn of a background writer. Background writers queue at the
    /// gate first, so at most one of them waits for the turn itself: an
    /// urgent writer queues behind that one at most.
    pub(crate) async fn background(&self) -> tokio::sync::OwnedMutexGuard<()> {
        let gate = self.gate.lock().await;
        let turn = self.writer.clone().lock_owned().await;
        drop(gate);
        turn
    }

    /// The turn of a writer someone waits on (the API's group commit): it
    /// skips the background writers queued at the gate.
    async fn urgent(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writer.clone().lock_owned().await
    }
}

pub(crate) async fn begin(store: &Store) -> Result<WriteTx, StoreError> {
    let turn = turn(store).await;
    open(store, false, turn).await
}

/// A background writer's transaction whose commit is on disk before it
/// returns: for the transaction journal's nonces and signed attempts.
pub(crate) async fn begin_durable(store: &Store) -> Result<WriteTx, StoreError> {
    let turn = turn(store).await;
    open(store, true, turn).await
}

/// The write turn of a background writer, for a single-statement write
/// outside a [`WriteTx`]. Such a write must take the turn too: run beside
/// a turn holder, one of the two would find SQLite's lock taken and sleep
/// in its busy handler's growing steps — the very stall the turn exists
/// to avoid, landing on whoever holds the turn (the API's group commit
/// among them).
pub(crate) async fn turn(store: &Store) -> tokio::sync::OwnedMutexGuard<()> {
    store.turns.background().await
}

/// A write transaction for a caller that someone waits on (the API's
/// group commit): it skips the background writers queued at the gate.
/// It commits durably: the API answers 202 only for requests on disk.
pub(crate) async fn begin_urgent(store: &Store) -> Result<WriteTx, StoreError> {
    let turn = store.turns.urgent().await;
    open(store, true, turn).await
}

async fn open(
    store: &Store,
    durable: bool,
    turn: tokio::sync::OwnedMutexGuard<()>,
) -> Result<WriteTx, StoreError> {
    let conn = store.db.begin(durable).await?;
    let mut tx = WriteTx { conn, _turn: turn };
    if let Some(fence) = &store.fence {
        crate::lease::check(&mut tx, &[fence]).await?;
    }
    Ok(tx)
}

impl Store {
    /// Records a range: envelopes, blocks and the cursor, atomically.
    /// Refuses envelopes outside `(expected_cursor, cursor]`: the live set of
    /// a stream is exactly its events up to its cursor, so that check is what
    /// keeps an event from being recorded twice.
    pub async fn commit_range(&self, c: &RangeCommit<'_>) -> Result<(), StoreError> {
        let low = c.expected_cursor.map_or(0, |n| n + 1);
        if let Some(e) = c
            .events
            .iter()
            .find(|e| e.log.block() < low || e.log.block() > c.cursor.number)
        {
            return Err(StoreError::OutOfRange {
                stream: c.stream.clone(),
                block: e.log.block(),
                cursor: c.expected_cursor,
            });
        }
        let count = c.events.len() as i64;
        let segs: Vec<Segment> = c
            .events
            .chunks(SEGMENT_MAX)
            .map(|chunk| {
                let mut seg = Segment::new(false);
                seg.payload.reserve(chunk.len() * 512);
                for e in chunk {
                    codec::encode(e, &mut seg.payload);
                    seg.note(e.log.block());
                }
                seg
            })
            .collect();
        let mut tx = begin(self).await?;
        let next_seq = check_cursor(&mut tx, &c.stream, c.expected_cursor).await?;
        let next_seq = append(&mut tx, &c.stream, next_seq, segs).await?;
        for b in c.blocks.iter().chain(std::iter::once(&c.cursor)) {
            crate::db::on_tx!(tx, |ex| {
                sqlx::query(
                "INSERT INTO blocks (stream, number, hash, parent_hash, timestamp) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (stream, number) DO UPDATE SET hash = excluded.hash, \
                 parent_hash = excluded.parent_hash, timestamp = excluded.timestamp",
            )
            .bind(&c.stream)
            .bind(to_i64(b.number))
            .bind(b.hash.to_string())
            .bind(b.parent_hash.to_string())
            .bind(to_i64(b.timestamp))
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        for (address, block) in &c.children {
            crate::db::on_tx!(tx, |ex| {
                sqlx::query(
                "INSERT INTO stream_children (stream, address, block) VALUES ($1, $2, $3) ON CONFLICT (stream, address) DO NOTHING"
            )
            .bind(&c.stream)
            .bind(format!("{address:#x}"))
            .bind(to_i64(*block))
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "UPDATE streams SET cursor_block = $1, cursor_hash = $2, next_seq = $3, events_recorded = events_recorded + $4, \
             updated_at = $5 WHERE name = $6",
        )
        .bind(to_i64(c.cursor.number))
        .bind(c.cursor.hash.to_string())
        .bind(to_i64(next_seq))
        .bind(count)
        .bind(now_secs())
        .bind(&c.stream)
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        crate::db::on_tx!(tx, |ex| sqlx::query(
            "DELETE FROM blocks WHERE stream = $1 AND number < $2"
        )
        .bind(&c.stream)
        .bind(to_i64(c.cursor.number.saturating_sub(c.keep_window)))
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        if count > 0 {
            self.notify();
        }
        Ok(())
    }

    /// Handles a reorg: every live event of the stream above `fork` gets a
    /// retraction envelope (same id, `removed: true`), the window above it
    /// is forgotten and the cursor moves back to it (`None`: before the
    /// first block, so the stream restarts at its `from_block`). Atomic.
    /// Returns how many events were retracted.
    pub async fn rewind(
        &self,
        stream: &str,
        expected_cursor: Option<u64>,
        fork: Option<BlockRef>,
    ) -> Result<u64, StoreError> {
        let above = fork.map_or(-1, |f| to_i64(f.number));
        let mut tx = begin(self).await?;
        let next_seq = check_cursor(&mut tx, stream, expected_cursor).await?;
        let live: Vec<(i64, i64, Option<i64>, Vec<u8>)> = crate::db::on_tx!(tx, |ex| {
            sqlx::query_as(
            "SELECT segment, first_seq, live_through, payload FROM outbox WHERE stream = $1 AND removed = FALSE \
             AND max_block > $2 AND (live_through IS NULL OR live_through > $3) ORDER BY first_seq",
        )
        .bind(stream)
        .bind(above)
        .bind(above)
        .fetch_all(ex)
        .await
        })?;
        let (retractions, count) = retractions_above(&live, above)?;
        for (segment, ..) in &live {
            crate::db::on_tx!(tx, |ex| sqlx::query(
                "UPDATE outbox SET live_through = $1 WHERE segment = $2"
            )
            .bind(above)
            .bind(segment)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))?;
        }
        let next_seq = append(&mut tx, stream, next_seq, retractions).await?;
        forget_above(&mut tx, stream, above).await?;
        crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "UPDATE streams SET cursor_block = $1, cursor_hash = $2, next_seq = $3, events_recorded = events_recorded - $4, \
             reorgs = reorgs + 1, updated_at = $5 WHERE name = $6",
        )
        .bind(fork.map(|f| to_i64(f.number)))
        .bind(fork.map(|f| f.hash.to_string()))
        .bind(to_i64(next_seq))
        .bind(count)
        .bind(now_secs())
        .bind(stream)
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        tx.commit().await?;
        if count > 0 {
            self.notify();
        }
        Ok(count as u64)
    }

    /// The children `stream`'s factory announced in its recorded history,
    /// with the blocks of their announcements.
    pub async fn children(
        &self,
        stream: &str,
    ) -> Result<Vec<(alloy_primitives::Address, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT address, block FROM stream_children WHERE stream = $1 ORDER BY block, address"
        )
        .bind(stream)
        .fetch_all(ex)
        .await
        })?;
        rows.into_iter()
            .map(|(a, b)| {
                let address = a.parse().map_err(|_| StoreError::Corrupt {
                    what: "stream_children.address",
                    detail: a.clone(),
                })?;
                Ok((address, b as u64))
            })
            .collect()
    }

    /// Up to `limit` envelopes of `stream` with `seq > after`, in order.
    pub async fn events_after(
        &self,
        stream: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEnvelope>, StoreError> {
        let mut out = Vec::with_capacity(limit.min(1024) as usize);
        let chain_id: Option<i64> = crate::db::on_pool!(self, |ex| sqlx::query_scalar(
            "SELECT chain_id FROM streams WHERE name = $1"
        )
        .bind(stream)
        .fetch_optional(ex)
        .await)?;
        let Some(chain_id) = chain_id else {
            return Ok(out);
        };
        let mut from = after;
        while out.len() < limit as usize {
            let segs: Vec<(i64, i64, Vec<u8>)> = crate::db::on_pool!(self, |ex| {
                sqlx::query_as(
                "SELECT first_seq, last_seq, payload FROM outbox WHERE stream = $1 AND last_seq > $2 ORDER BY last_seq LIMIT 2",
            )
            .bind(stream)
            .bind(to_i64(from))
            .fetch_all(ex)
            .await
            })?;
            if segs.is_empty() {
                break;
            }
            for (first, last, payload) in segs {
                for (i, record) in codec::records(&payload).enumerate() {
                    let seq = first as u64 + i as u64;
                    if seq <= from || out.len() >= limit as usize {
                        continue;
                    }
                    let corrupt = |e: codec::CodecError| StoreError::Corrupt {
                        what: "outbox.payload",
                        detail: format!("seq {seq}: {e}"),
                    };
                    let envelope =
                        codec::decode(record.map_err(corrupt)?, stream, chain_id as u64, seq)
                            .map_err(corrupt)?;
                    out.push(StoredEnvelope { seq, envelope });
                }
                from = from.max(last as u64);
            }
        }
        Ok(out)
    }
}

/// Retraction envelopes for every live event above block `above` in the
/// segments `live` (segment, first seq, live through, payload), in seq
/// order, and how many there are.
fn retractions_above(
    live: &[(i64, i64, Option<i64>, Vec<u8>)],
    above: i64,
) -> Result<(Vec<Segment>, i64), StoreError> {
    let mut retractions: Vec<Segment> = Vec::new();
    let mut count = 0i64;
    for (_, first_seq, live_through, payload) in live {
        for (i, record) in codec::records(payload).enumerate() {
            let corrupt = |e: codec::CodecError| StoreError::Corrupt {
                what: "outbox.payload",
                detail: format!("seq {}: {e}", *first_seq as u64 + i as u64),
            };
            let record = record.map_err(corrupt)?;
            let block = codec::block_number(record).map_err(corrupt)?;
            if block as i64 <= above || live_through.is_some_and(|t| block as i64 > t) {
                continue;
            }
            if retractions
                .last()
                .is_none_or(|s| s.count as usize >= SEGMENT_MAX)
            {
                retractions.push(Segment::new(true));
            }
            if let Some(seg) = retractions.last_mut() {
                codec::push_retraction(record, &mut seg.payload);
                seg.note(block);
                count += 1;
            }
        }
    }
    Ok((retractions, count))
}

/// Forgets what a stream learned above block `above`: its recorded
/// blocks, the factory children announced there, and the progress of
/// added contracts' backfills past it (they resume from the fork).
async fn forget_above(tx: &mut WriteTx, stream: &str, above: i64) -> Result<(), StoreError> {
    crate::db::on_tx!(tx, |ex| {
        sqlx::query(
            "UPDATE stream_addresses SET next_block = $2 + 1 WHERE stream = $1 AND next_block > $2 + 1",
        )
        .bind(stream)
        .bind(above)
        .execute(ex)
        .await
        .map(|r| r.rows_affected())
    })?;
    crate::db::on_tx!(tx, |ex| sqlx::query(
        "DELETE FROM stream_children WHERE stream = $1 AND block > $2"
    )
    .bind(stream)
    .bind(above)
    .execute(ex)
    .await
    .map(|r| r.rows_affected()))?;
    crate::db::on_tx!(tx, |ex| sqlx::query(
        "DELETE FROM blocks WHERE stream = $1 AND number > $2"
    )
    .bind(stream)
    .bind(above)
    .execute(ex)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
