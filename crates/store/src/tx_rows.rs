//! Transaction rows: as stored (read back into `TxRow` and `AttemptRow`),
//! and written many per statement. Through sqlx every
//! statement is a round trip to the connection's worker thread, which cost
//! more than SQLite's own work: a burst of a thousand requests recorded row
//! by row spent tens of milliseconds on the hops alone, while the API's
//! group commits waited for the write lock.

use sqlx::QueryBuilder;

use crate::tx::{Inserted, NewAttempt, NewTx, SignedAttempt, TxRow};
use crate::{StoreError, now_secs, to_i64};

/// Rows per statement, at most: at ten bound values a row, far below
/// SQLite's limit of 32,766 variables.
const ROWS: usize = 128;

/// Splits `items` into runs whose lengths are powers of two (largest
/// first, at most `max`). A multi-row statement's text depends on its row
/// count, and SQLite compiles each new text afresh (parsing a 150-row
/// statement cost more than running it): with power-of-two runs a kind of
/// statement has a few texts, each compiled once per connection and then
/// taken from its statement cache.
pub(crate) fn shaped<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = 1usize << max.max(1).ilog2();
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = max.min(1 << rest.len().ilog2());
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

type Db = crate::outbox::WriteTx;

/// Inserts requests unless their idempotency key is taken; answers for
/// each whether it was created or what the key already holds.
pub(crate) async fn insert_requests(
    db: &mut Db,
    txs: &[NewTx<'_>],
) -> Result<Vec<Inserted>, StoreError> {
    let now = now_secs();
    let mut created = std::collections::HashSet::with_capacity(txs.len());
    for chunk in shaped(txs, ROWS) {
        let ids: Vec<String> = crate::db::on_tx!(db, |ex, DB| {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO tx_requests (id, idempotency_key, body_hash, chain_id, sender, request, state, status, created_at, updated_at) ",
            );
            q.push_values(chunk, |mut b, t| {
                b.push_bind(t.id.to_owned())
                    .push_bind(t.idempotency_key.to_owned())
                    .push_bind(t.body_hash.to_owned())
                    .push_bind(to_i64(t.chain_id))
                    .push_bind(t.sender.to_owned())
                    .push_bind(t.request.to_owned())
                    .push_bind(t.state.as_json().to_owned())
                    .push_bind(t.status.as_str())
                    .push_bind(now)
                    .push_bind(now);
            });
            q.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
            q.build_query_scalar().fetch_all(ex).await
        })?;
        created.extend(ids);
    }
    let mut out = Vec::with_capacity(txs.len());
    for t in txs {
        if created.contains(t.id) {
            out.push(Inserted::Created);
            continue;
        }
        let (id, hash): (String, String) = crate::db::on_tx!(db, |ex| sqlx::query_as(
            "SELECT id, body_hash FROM tx_requests WHERE idempotency_key = $1"
        )
        .bind(t.idempotency_key)
        .fetch_one(ex)
        .await)?;
        out.push(if hash == t.body_hash {
            Inserted::Existing(id)
        } else {
            Inserted::Conflict(id)
        });
    }
    Ok(out)
}

/// Records signed attempts (request id, attempt), each numbered after its
/// request's earlier attempts. A request appears at most once per call.
pub(crate) async fn insert_attempts(
    db: &mut Db,
    items: &[(&str, &NewAttempt)],
) -> Result<(), StoreError> {
    let now = now_secs();
    for chunk in shaped(items, ROWS) {
        crate::db::on_tx!(db, |ex, DB| {
            let mut q = QueryBuilder::<DB>::new(
                "INSERT INTO tx_attempts (tx_id, n, nonce, hash, raw, noop, gas_limit, max_fee, max_priority_fee, created_at) ",
            );
            q.push_values(chunk, |mut b, (id, a)| {
                b.push_bind((*id).to_owned())
                    .push("(SELECT COALESCE(MAX(n), 0) + 1 FROM tx_attempts WHERE tx_id = ")
                    .push_bind_unseparated((*id).to_owned())
                    .push_unseparated(")")
                    .push_bind(to_i64(a.nonce))
                    .push_bind(a.hash.clone())
                    .push_bind(a.raw.clone())
                    .push_bind(i64::from(a.noop))
                    .push_bind(to_i64(a.gas_limit))
                    .push_bind(a.max_fee.to_string())
                    .push_bind(a.max_priority_fee.to_string())
                    .push_bind(now);
            });
            q.build().execute(ex).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Records signed attempts and their requests' new states (each request
/// then holds the attempt's nonce), inside the caller's transaction.
pub(crate) async fn record_attempts(
    db: &mut Db,
    items: &[SignedAttempt<'_>],
) -> Result<(), StoreError> {
    let attempts: Vec<(&str, &NewAttempt)> = items.iter().map(|t| (t.tx_id, t.attempt)).collect();
    insert_attempts(db, &attempts).await?;
    let states: Vec<NewState<'_>> = items
        .iter()
        .map(|t| NewState {
            tx_id: t.tx_id,
            state: t.state,
            status: t.status,
            nonce: Some(t.attempt.nonce),
            block_number: None,
            error: None,
        })
        .collect();
    update_states(db, &states).await
}

/// A request's new state, as [`update_states`] writes it.
pub(crate) struct NewState<'a> {
    pub tx_id: &'a str,
    pub state: &'a crate::StoredState,
    pub status: ethgate_core::TxStatus,
    pub nonce: Option<u64>,
    pub block_number: Option<u64>,
    /// Kept as it was when `None`, cleared when empty.
    pub error: Option<&'a str>,
}

/// Writes requests' new states. A request appears at most once per call.
pub(crate) async fn update_states(db: &mut Db, items: &[NewState<'_>]) -> Result<(), StoreError> {
    let now = now_secs();
    for chunk in shaped(items, ROWS) {
        crate::db::on_tx!(db, |ex, DB| {
            let mut q = QueryBuilder::<DB>::new(
                "UPDATE tx_requests SET state = v.column2, status = v.column3, nonce = v.column4, \
             block_number = v.column5, \
             error = NULLIF(COALESCE(v.column6, tx_requests.error), ''), updated_at = ",
            );
            q.push_bind(now);
            q.push(" FROM (");
            q.push_values(chunk, |mut b, s| {
                b.push_bind(s.tx_id.to_owned())
                    .push_bind(s.state.as_json().to_owned())
                    .push_bind(s.status.as_str())
                    .push_bind(s.nonce.map(to_i64))
                    .push_bind(s.block_number.map(to_i64))
                    .push_bind(s.error.map(str::to_owned));
            });
            q.push(") AS v WHERE tx_requests.id = v.column1");
            q.build().execute(ex).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// A `tx_requests` row as stored (the columns `tx.rs` selects).
#[derive(sqlx::FromRow)]
pub(crate) struct RawTx {
    pub(crate) id: String,
    pub(crate) idempotency_key: String,
    pub(crate) chain_id: i64,
    pub(crate) sender: String,
    pub(crate) request: String,
    pub(crate) state: String,
    pub(crate) status: String,
    pub(crate) nonce: Option<i64>,
    pub(crate) block_number: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// A row selected with `rowid AS rid` before the columns: its insertion
/// order.
#[derive(sqlx::FromRow)]
pub(crate) struct NumberedTx {
    pub(crate) rid: i64,
    #[sqlx(flatten)]
    pub(crate) tx: RawTx,
}

pub(crate) fn tx_row(r: RawTx) -> Result<TxRow, StoreError> {
    Ok(TxRow {
        id: r.id,
        idempotency_key: r.idempotency_key,
        chain_id: r.chain_id as u64,
        sender: r.sender,
        request: r.request,
        state: crate::StoredState::read(r.state),
        status: crate::tx::status_of(&r.status)?,
        nonce: r.nonce.map(|n| n as u64),
        block_number: r.block_number.map(|n| n as u64),
        error: r.error,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

pub(crate) fn numbered(rows: Vec<NumberedTx>) -> Result<Vec<(i64, TxRow)>, StoreError> {
    rows.into_iter()
        .map(|r| Ok((r.rid, tx_row(r.tx)?)))
        .collect()
}

/// A `tx_attempts` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct RawAttempt {
    pub(crate) n: i64,
    pub(crate) nonce: i64,
    pub(crate) hash: String,
    pub(crate) raw: Vec<u8>,
    pub(crate) noop: i64,
    pub(crate) gas_limit: i64,
    pub(crate) max_fee: String,
    pub(crate) max_priority_fee: String,
    pub(crate) created_at: i64,
}

pub(crate) fn wei(s: &str) -> Result<u128, StoreError> {
    s.parse().map_err(|_| StoreError::Corrupt {
        what: "tx_attempts fee",
        detail: s.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::shaped;

    #[test]
    fn runs_are_powers_of_two_largest_first_and_cover_every_item_in_order() {
        let items: Vec<usize> = (0..150).collect();
        let runs: Vec<&[usize]> = shaped(&items, 128).collect();
        let lens: Vec<usize> = runs.iter().map(|r| r.len()).collect();
        assert_eq!(lens, [128, 16, 4, 2]);
        assert_eq!(runs.concat(), items);
        let lens: Vec<usize> = shaped(&items, 32).map(<[usize]>::len).collect();
        assert_eq!(lens, [32, 32, 32, 32, 16, 4, 2]);
        // A maximum that is not a power of two rounds down to one.
        let lens: Vec<usize> = shaped(&items[..7], 5).map(<[usize]>::len).collect();
        assert_eq!(lens, [4, 2, 1]);
        assert_eq!(shaped(&items[..0], 8).count(), 0);
    }
}
