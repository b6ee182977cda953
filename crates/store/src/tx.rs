//! Transaction requests, attempts and nonces.
//!
//! The store keeps no transaction rules (those are `core::tx::step`); it
//! guarantees the two writes the rules depend on: a request is accepted
//! once per idempotency key, and a nonce is taken in the same database
//! transaction that records the first signed attempt at it, with a
//! compare-and-set on the account's next nonce.

use crate::StoredState;
use crate::tx_rows::{
    NumberedTx, RawAttempt, RawTx, insert_requests, numbered, record_attempts, tx_row, wei,
};
use crate::{Store, StoreError, now_secs, to_i64};
use ethgate_core::TxStatus;

/// A stored status word, read back.
pub(crate) fn status_of(word: &str) -> Result<TxStatus, StoreError> {
    TxStatus::parse(word).ok_or_else(|| StoreError::Corrupt {
        what: "tx_requests.status",
        detail: word.to_owned(),
    })
}

/// A request to record.
#[derive(Debug, Clone)]
pub struct NewTx<'a> {
    /// Generated id.
    pub id: &'a str,
    /// The caller's idempotency key.
    pub idempotency_key: &'a str,
    /// Hash of the request body, to tell a retry from a different request.
    pub body_hash: &'a str,
    /// Chain id.
    pub chain_id: u64,
    /// Sending account, lower-case hex.
    pub sender: &'a str,
    /// The validated request, as JSON.
    pub request: &'a str,
    /// Its initial state.
    pub state: &'a StoredState,
    /// Status word of `state`.
    pub status: TxStatus,
}

/// What [`Store::insert_txs`] did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new request.
    Created,
    /// The key was seen before with the same body: this is its id.
    Existing(String),
    /// The key was seen before with a different body.
    Conflict(String),
}

/// A stored request.
#[derive(Debug, Clone)]
pub struct TxRow {
    /// Id.
    pub id: String,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// Chain id.
    pub chain_id: u64,
    /// Sending account, lower-case hex.
    pub sender: String,
    /// The validated request as JSON.
    pub request: String,
    /// Its state (decoded by whoever acts on it).
    pub state: StoredState,
    /// Its status.
    pub status: TxStatus,
    /// The nonce held, if any.
    pub nonce: Option<u64>,
    /// The block the transaction was mined in, if any.
    pub block_number: Option<u64>,
    /// Last error worth showing (a broadcast refusal, a cap).
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A signed attempt to record (before it is broadcast).
#[derive(Debug, Clone)]
pub struct NewAttempt {
    /// Nonce signed at.
    pub nonce: u64,
    /// Transaction hash, `0x…`.
    pub hash: String,
    /// Raw signed bytes.
    pub raw: Vec<u8>,
    /// A 0-value self-send replacing the request (cancel, expiry).
    pub noop: bool,
    /// Gas limit signed.
    pub gas_limit: u64,
    /// Max fee per gas (wei).
    pub max_fee: u128,
    /// Max priority fee per gas (wei).
    pub max_priority_fee: u128,
}

/// A signed attempt with its request's new state: a first attempt, with
/// the nonce it takes ([`Store::take_nonces`]), or a replacement (a bump or
/// a no-op) at the nonce the request holds ([`Store::add_attempts`]).
#[derive(Debug, Clone, Copy)]
pub struct SignedAttempt<'a> {
    /// The request.
    pub tx_id: &'a str,
    /// The attempt, signed at the request's nonce.
    pub attempt: &'a NewAttempt,
    /// The request's new state.
    pub state: &'a StoredState,
    /// Its status.
    pub status: TxStatus,
}

/// A request's new state, for [`Store::set_tx_states`].
#[derive(Debug, Clone)]
pub struct StateUpdate {
    /// The request.
    pub tx_id: String,
    /// Its new state.
    pub state: StoredState,
    /// Its status.
    pub status: TxStatus,
    /// The nonce held afterwards (`None` releases it).
    pub nonce: Option<u64>,
    /// The block it is mined in, if it is.
    pub block_number: Option<u64>,
    /// An error worth showing; `None` keeps the one shown, an empty
    /// string clears it (a request that got through has no error left).
    pub error: Option<String>,
}

/// A stored attempt.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// 1, 2, … in signing order.
    pub n: u32,
    /// Nonce signed at.
    pub nonce: u64,
    /// Transaction hash.
    pub hash: String,
    /// Raw signed bytes.
    pub raw: Vec<u8>,
    /// A no-op replacement.
    pub noop: bool,
    /// Gas limit.
    pub gas_limit: u64,
    /// Max fee per gas (wei).
    pub max_fee: u128,
    /// Max priority fee per gas (wei).
    pub max_priority_fee: u128,
    /// Unix seconds.
    pub created_at: i64,
}

macro_rules! tx_columns {
    () => {
        "id, idempotency_key, chain_id, sender, request, state, status, nonce, block_number, error, created_at, updated_at"
    };
}

impl Store {
    /// Records many requests in one transaction (the API's group commit),
    /// answering for each: created, or the request already recorded under
    /// its idempotency key (with the same body, or a conflicting one).
    pub async fn insert_txs(&self, txs: &[NewTx<'_>]) -> Result<Vec<Inserted>, StoreError> {
        let mut db = crate::outbox::begin_urgent(self).await?;
        db.conn().in_order(crate::db::Ordered::Requests).await?;
        let out = insert_requests(&mut db, txs).await?;
        if self.backend() == crate::Backend::Postgres {
            // Delivered at commit, to the replica running each sender.
            let mut accounts: Vec<String> = txs
                .iter()
                .zip(&out)
                .filter(|(_, o)| matches!(o, Inserted::Created))
                .map(|(t, _)| crate::wake::tx_payload(t.chain_id, t.sender))
                .collect();
            accounts.sort_unstable();
            accounts.dedup();
            for payload in accounts {
                crate::db::on_tx!(db, |ex| sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(crate::wake::CHANNEL)
                    .bind(&payload)
                    .execute(ex)
                    .await
                    .map(|_| ()))?;
            }
        }
        db.commit().await?;
        Ok(out)
    }

    /// One request by id.
    pub async fn tx(&self, id: &str) -> Result<Option<TxRow>, StoreError> {
        let row: Option<RawTx> = crate::db::on_pool!(self, |ex| sqlx::query_as(concat!(
            "SELECT ",
            tx_columns!(),
            " FROM tx_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(ex)
        .await)?;
        row.map(tx_row).transpose()
    }

    /// How many requests have `status` (dashboards, benchmarks).
    pub async fn count_txs(&self, status: TxStatus) -> Result<u64, StoreError> {
        let n: i64 = crate::db::on_pool!(self, |ex| sqlx::query_scalar(
            "SELECT COUNT(*) FROM tx_requests WHERE status = $1"
        )
        .bind(status.as_str())
        .fetch_one(ex)
        .await)?;
        Ok(n as u64)
    }

    /// How many requests each status has, in one read (statuses with none
    /// are absent).
    pub async fn tx_status_counts(&self) -> Result<Vec<(TxStatus, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = crate::db::on_pool!(self, |ex| sqlx::query_as(
            "SELECT status, COUNT(*) FROM tx_requests GROUP BY status"
        )
        .fetch_all(ex)
        .await)?;
        rows.into_iter()
            .map(|(s, n)| Ok((status_of(&s)?, n as u64)))
            .collect()
    }

    /// Attempts beyond each request's first: replacements (bumps, no-op
    /// cancels) and restarts at a new nonce. A benchmark or a dashboard
    /// tells from it that requests needed more than one signature.
    pub async fn extra_attempts(&self) -> Result<u64, StoreError> {
        let n: i64 = crate::db::on_pool!(self, |ex| sqlx::query_scalar(
            "SELECT COUNT(*) - COUNT(DISTINCT tx_id) FROM tx_attempts"
        )
        .fetch_one(ex)
        .await)?;
        Ok(n.max(0) as u64)
    }

    /// The request accepted under an idempotency key, if any.
    pub async fn tx_by_key(&self, idempotency_key: &str) -> Result<Option<TxRow>, StoreError> {
        let row: Option<RawTx> = crate::db::on_pool!(self, |ex| sqlx::query_as(concat!(
            "SELECT ",
            tx_columns!(),
            " FROM tx_requests WHERE idempotency_key = $1"
        ))
        .bind(idempotency_key)
        .fetch_optional(ex)
        .await)?;
        row.map(tx_row).transpose()
    }

    /// Requests, newest first, optionally by status and sender.
    pub async fn txs(
        &self,
        status: Option<TxStatus>,
        sender: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TxRow>, StoreError> {
        let rows: Vec<RawTx> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(concat!(
            "SELECT ",
            tx_columns!(),
            " FROM tx_requests WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR sender = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(status.map(TxStatus::as_str))
        .bind(sender)
        .bind(i64::from(limit))
        .fetch_all(ex)
        .await
        })?;
        rows.into_iter().map(tx_row).collect()
    }

    /// The requests an account's sender still works on: queued, pending and
    /// mined ones, and confirmed or failed ones mined at or after
    /// `watch_from` (still within the finality depth), in the order they
    /// were accepted, each with that order (rowid). A sender reads this at
    /// start and now and then; between, it keeps the rows itself and reads
    /// only [`new_txs`](Self::new_txs).
    pub async fn open_txs(
        &self,
        chain_id: u64,
        sender: &str,
        watch_from: u64,
    ) -> Result<Vec<(i64, TxRow)>, StoreError> {
        let rows: Vec<NumberedTx> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(concat!(
            "SELECT rowid AS rid, ",
            tx_columns!(),
            " FROM tx_requests WHERE chain_id = $1 AND sender = $2 AND \
             (status IN ('queued', 'pending', 'mined') OR (status IN ('confirmed', 'failed') AND block_number >= $3)) \
             ORDER BY rowid"
        ))
        .bind(to_i64(chain_id))
        .bind(sender)
        .bind(to_i64(watch_from))
        .fetch_all(ex)
        .await
        })?;
        numbered(rows)
    }

    /// Queued requests for an account accepted after rowid `after`: what a
    /// sender that keeps its open rows in memory reads each tick. (Rowids
    /// grow with each commit — SQLite has one writer, and on PostgreSQL
    /// inserts take an advisory lock to commit — so a row committed later
    /// never has a lower rowid than one already read.)
    pub async fn new_txs(
        &self,
        chain_id: u64,
        sender: &str,
        after: i64,
    ) -> Result<Vec<(i64, TxRow)>, StoreError> {
        let rows: Vec<NumberedTx> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(concat!(
            "SELECT rowid AS rid, ",
            tx_columns!(),
            " FROM tx_requests WHERE rowid > $3 AND chain_id = $1 AND sender = $2 AND status = 'queued' \
             ORDER BY rowid"
        ))
        .bind(to_i64(chain_id))
        .bind(sender)
        .bind(after)
        .fetch_all(ex)
        .await
        })?;
        numbered(rows)
    }

    /// A request's attempts, in signing order.
    pub async fn attempts(&self, tx_id: &str) -> Result<Vec<AttemptRow>, StoreError> {
        let rows: Vec<RawAttempt> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT n, nonce, hash, raw, noop, gas_limit, max_fee, max_priority_fee, created_at FROM tx_attempts WHERE tx_id = $1 ORDER BY n",
        )
        .bind(tx_id)
        .fetch_all(ex)
        .await
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(AttemptRow {
                    n: r.n as u32,
                    nonce: r.nonce as u64,
                    hash: r.hash,
                    raw: r.raw,
                    noop: r.noop != 0,
                    gas_limit: r.gas_limit as u64,
                    max_fee: wei(&r.max_fee)?,
                    max_priority_fee: wei(&r.max_priority_fee)?,
                    created_at: r.created_at,
                })
            })
            .collect()
    }

    /// The account's next nonce as ethgate knows it (`None`: never used).
    pub async fn next_nonce(
        &self,
        chain_id: u64,
        address: &str,
    ) -> Result<Option<u64>, StoreError> {
        let n: Option<i64> = crate::db::on_pool!(self, |ex| sqlx::query_scalar(
            "SELECT next_nonce FROM tx_accounts WHERE chain_id = $1 AND address = $2",
        )
        .bind(to_i64(chain_id))
        .bind(address)
        .fetch_optional(ex)
        .await)?;
        Ok(n.map(|n| n as u64))
    }

    /// Raises the account's next nonce to at least `at_least` (the chain's
    /// count when others used the account); never lowers it.
    pub async fn raise_next_nonce(
        &self,
        chain_id: u64,
        address: &str,
        at_least: u64,
    ) -> Result<u64, StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "INSERT INTO tx_accounts (chain_id, address, next_nonce) VALUES ($1, $2, $3) \
             ON CONFLICT (chain_id, address) DO UPDATE SET next_nonce = \
             CASE WHEN tx_accounts.next_nonce > $3 THEN tx_accounts.next_nonce ELSE $3 END",
        )
        .bind(to_i64(chain_id))
        .bind(address)
        .bind(to_i64(at_least))
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(self
            .next_nonce(chain_id, address)
            .await?
            .unwrap_or(at_least))
    }

    /// Takes consecutive nonces from `first` for a batch of requests: records
    /// each signed attempt (item k signed at `first + k`) and the request's
    /// new state, and moves the account's next nonce past them — all in one
    /// transaction, and only if the next nonce is still `first` (else
    /// `false`, nothing written).
    pub async fn take_nonces(
        &self,
        chain_id: u64,
        address: &str,
        first: u64,
        items: &[SignedAttempt<'_>],
        status: StatusEnvelopes<'_>,
    ) -> Result<bool, StoreError> {
        let wrong = items
            .iter()
            .enumerate()
            .find(|(k, t)| t.attempt.nonce != first + *k as u64);
        if let Some((k, t)) = wrong {
            // Checked before writing; a stale first nonce still answers
            // `false`, as it would have written nothing either way.
            if self.next_nonce(chain_id, address).await? != Some(first) {
                return Ok(false);
            }
            return Err(StoreError::Corrupt {
                what: "take_nonces",
                detail: format!(
                    "attempt {k} signed at {} not {}",
                    t.attempt.nonce,
                    first + k as u64
                ),
            });
        }
        let items = items
            .iter()
            .map(|t| crate::combine::Signed {
                tx_id: t.tx_id.to_owned(),
                attempt: t.attempt.clone(),
                state: t.state.clone(),
                status: t.status,
            })
            .collect();
        let take = crate::combine::Take {
            chain_id,
            address: address.to_owned(),
            first,
            items,
        };
        crate::combine::write(self, crate::combine::Write::Take(take), status).await
    }

    /// Records replacement attempts (bumps and no-ops) with their requests'
    /// new states, before any of them is broadcast: one transaction for a
    /// tick's worth (a fee spike brings every pending request's bump due
    /// at once). Each request at most once per call: its attempt's number
    /// follows the rows already written.
    pub async fn add_attempts(&self, items: &[SignedAttempt<'_>]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        if let Some(twice) = items.iter().find(|r| !seen.insert(r.tx_id)) {
            return Err(StoreError::Corrupt {
                what: "add_attempts",
                detail: format!("request {} replaced twice in one call", twice.tx_id),
            });
        }
        let mut db = crate::outbox::begin_durable(self).await?;
        record_attempts(&mut db, items).await?;
        db.commit().await?;
        Ok(())
    }

    /// Records the last error worth showing on a request (a broadcast
    /// refusal), without changing its state; `None` clears it (the node
    /// accepted a later broadcast).
    pub async fn set_tx_error(&self, tx_id: &str, error: Option<&str>) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE tx_requests SET error = $1, updated_at = $2 WHERE id = $3"
        )
        .bind(error)
        .bind(now_secs())
        .bind(tx_id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Saves many requests' new states in one transaction (a sender's
    /// tick's worth), each request at most once (a second change of the
    /// same request in one call is refused: which would win is undefined).
    pub async fn set_tx_states(
        &self,
        updates: &[StateUpdate],
        status: StatusEnvelopes<'_>,
    ) -> Result<(), StoreError> {
        if updates.is_empty() && status.json.is_empty() {
            return Ok(());
        }
        let mut ids = std::collections::HashSet::with_capacity(updates.len());
        if let Some(u) = updates.iter().find(|u| !ids.insert(u.tx_id.as_str())) {
            return Err(StoreError::Corrupt {
                what: "set_tx_states",
                detail: format!("request {} changed twice in one call", u.tx_id),
            });
        }
        let write = crate::combine::Write::States(updates.to_vec());
        crate::combine::write(self, write, status).await.map(|_| ())
    }
}

/// Status envelopes to append to a stream's outbox in the same
/// transaction as the state changes they report.
#[derive(Debug, Clone, Copy)]
pub struct StatusEnvelopes<'a> {
    /// The outbox stream (registered with `ensure_stream`).
    pub stream: &'a str,
    /// Each envelope's JSON.
    pub json: &'a [String],
}

/// Appends status records as one outbox segment; whether any were.
pub(crate) async fn append_status(
    db: &mut crate::outbox::WriteTx,
    status: StatusEnvelopes<'_>,
) -> Result<bool, StoreError> {
    if status.json.is_empty() {
        return Ok(false);
    }
    let mut payload = Vec::new();
    for j in status.json {
        crate::codec::encode_tx(j, &mut payload);
    }
    append_segment(db, status.stream, payload, status.json.len() as i64).await?;
    Ok(true)
}

/// Appends `n` encoded records (no block: status and audit records) to
/// `stream` as one outbox segment.
pub(crate) async fn append_segment(
    db: &mut crate::outbox::WriteTx,
    stream: &str,
    payload: Vec<u8>,
    n: i64,
) -> Result<(), StoreError> {
    let next: Option<i64> = crate::db::on_tx!(db, |ex, DB| sqlx::query_scalar(
        crate::db::locked!(DB, "SELECT next_seq FROM streams WHERE name = $1")
    )
    .bind(stream)
    .fetch_optional(ex)
    .await)?;
    let next = next.ok_or_else(|| StoreError::UnknownStream(stream.to_owned()))?;
    crate::db::on_tx!(db, |ex| {
        sqlx::query(
        "INSERT INTO outbox (stream, first_seq, last_seq, removed, min_block, max_block, payload) VALUES ($1, $2, $3, FALSE, 0, 0, $4)",
    )
    .bind(stream)
    .bind(next)
    .bind(next + n - 1)
    .bind(payload)
    .execute(ex)
    .await
            .map(|r| r.rows_affected())
    })?;
    crate::db::on_tx!(db, |ex| {
        sqlx::query(
        "UPDATE streams SET next_seq = next_seq + $1, events_recorded = events_recorded + $2, updated_at = $3 WHERE name = $4",
    )
    .bind(n)
    .bind(n)
    .bind(now_secs())
    .bind(stream)
    .execute(ex)
    .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}
