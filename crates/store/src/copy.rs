//! Moving a deployment between stores (`ethgate store copy`): every table
//! that holds state — outbox, cursors, sink cursors, dead letters,
//! transactions and their attempts and nonces, pools, tokens, the audit
//! trail — copied row for row, ids included, from one store to another of
//! either backend. Leases and replica heartbeats are not copied: they
//! describe running processes, and the source must have none.
//!
//! Rows are read as [`Cell`]s by a table's column list, so one routine
//! serves every table and both directions; [`dump`] reads a table the same
//! way, for comparing a copy with its source.

use futures::TryStreamExt;
use sqlx::Row;

use crate::db::{Backend, on_pool};
use crate::{Store, StoreError};

/// How a column is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
    Blob,
    /// INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
    Bool,
}

/// One value of a row, backend-neutral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// An integer (or NULL).
    Int(Option<i64>),
    /// Text (or NULL).
    Text(Option<String>),
    /// Bytes (or NULL).
    Blob(Option<Vec<u8>>),
    /// A flag.
    Bool(bool),
}

/// A table: its name, its columns in order (the key first) and, when its
/// key is generated, the column whose sequence must follow the copied ids.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    order: &'static str,
    identity: Option<&'static str>,
}

use Kind::{Blob, Bool, Int, Text};

/// Every table with state, parents before children.
const TABLES: &[Table] = &[
    Table {
        name: "streams",
        columns: &[
            ("name", Text),
            ("chain_id", Int),
            ("cursor_block", Int),
            ("cursor_hash", Text),
            ("next_seq", Int),
            ("events_recorded", Int),
            ("reorgs", Int),
            ("updated_at", Int),
            ("spec_hash", Text),
        ],
        order: "name",
        identity: None,
    },
    Table {
        name: "stream_children",
        columns: &[("stream", Text), ("address", Text), ("block", Int)],
        order: "stream, address",
        identity: None,
    },
    Table {
        name: "stream_addresses",
        columns: &[("stream", Text), ("address", Text), ("next_block", Int)],
        order: "stream, address",
        identity: None,
    },
    Table {
        name: "blocks",
        columns: &[
            ("stream", Text),
            ("number", Int),
            ("hash", Text),
            ("parent_hash", Text),
            ("timestamp", Int),
        ],
        order: "stream, number",
        identity: None,
    },
    Table {
        name: "outbox",
        columns: &[
            ("segment", Int),
            ("stream", Text),
            ("first_seq", Int),
            ("last_seq", Int),
            ("removed", Bool),
            ("min_block", Int),
            ("max_block", Int),
            ("live_through", Int),
            ("payload", Blob),
        ],
        order: "segment",
        identity: Some("segment"),
    },
    Table {
        name: "api_tokens",
        columns: &[
            ("id", Text),
            ("hash", Text),
            ("scopes", Text),
            ("label", Text),
            ("created_at", Int),
            ("policy", Text),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("last_used_at", Int),
        ],
        order: "id",
        identity: None,
    },
    Table {
        name: "sink_cursors",
        columns: &[
            ("stream", Text),
            ("sink", Text),
            ("seq", Int),
            ("delivered", Int),
            ("failures", Int),
            ("updated_at", Int),
        ],
        order: "stream, sink",
        identity: None,
    },
    Table {
        name: "dead_letters",
        columns: &[
            ("id", Int),
            ("stream", Text),
            ("sink", Text),
            ("first_seq", Int),
            ("last_seq", Int),
            ("count", Int),
            ("error", Text),
            ("payload", Text),
            ("created_at", Int),
        ],
        order: "id",
        identity: Some("id"),
    },
    Table {
        name: "tx_requests",
        columns: &[
            ("rowid", Int),
            ("id", Text),
            ("idempotency_key", Text),
            ("body_hash", Text),
            ("chain_id", Int),
            ("sender", Text),
            ("request", Text),
            ("state", Text),
            ("status", Text),
            ("nonce", Int),
            ("block_number", Int),
            ("error", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order: "rowid",
        identity: Some("rowid"),
    },
    Table {
        name: "tx_attempts",
        columns: &[
            ("tx_id", Text),
            ("n", Int),
            ("nonce", Int),
            ("hash", Text),
            ("raw", Blob),
            ("noop", Int),
            ("gas_limit", Int),
            ("max_fee", Text),
            ("max_priority_fee", Text),
            ("created_at", Int),
        ],
        order: "tx_id, n",
        identity: None,
    },
    Table {
        name: "tx_accounts",
        columns: &[("chain_id", Int), ("address", Text), ("next_nonce", Int)],
        order: "chain_id, address",
        identity: None,
    },
    Table {
        name: "pool_members",
        columns: &[
            ("pool", Text),
            ("address", Text),
            ("keystore", Text),
            ("state", Text),
            ("rotation", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order: "pool, address",
        identity: None,
    },
    Table {
        name: "rotations",
        columns: &[
            ("id", Text),
            ("pool", Text),
            ("step", Text),
            ("old", Text),
            ("attempt", Int),
            ("error", Text),
            ("request_key", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order: "id",
        identity: None,
    },
    Table {
        name: "top_ups",
        columns: &[
            ("tx_id", Text),
            ("pool", Text),
            ("address", Text),
            ("amount", Text),
            ("day", Int),
            ("created_at", Int),
        ],
        order: "tx_id",
        identity: None,
    },
    Table {
        name: "audit",
        columns: &[
            ("id", Int),
            ("at_ms", Int),
            ("token_id", Text),
            ("label", Text),
            ("action", Text),
            ("target", Text),
            ("outcome", Text),
            ("detail", Text),
        ],
        order: "id",
        identity: Some("id"),
    },
    Table {
        name: "policy_spend",
        columns: &[("day", Int), ("chain", Text), ("who", Text), ("wei", Text)],
        order: "day, chain, who",
        identity: None,
    },
];

/// Names of the tables [`copy`] moves, in its order.
pub fn tables() -> Vec<&'static str> {
    TABLES.iter().map(|t| t.name).collect()
}

/// Why a copy did not start.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds state: a copy would mix two deployments.
    #[error("the target store is not empty: table {0} has rows")]
    TargetNotEmpty(&'static str),
    /// A replica still heartbeats the source: it must be stopped first.
    #[error("the source store is in use: replica {0} is running; stop every ethgate first")]
    SourceInUse(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Rows written per target transaction.
const BATCH: usize = 500;

fn select(t: &Table) -> String {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        t.name,
        t.order
    )
}

/// Reads `row` of table `t` as cells, column by column.
fn cells<R: Row>(row: &R, t: &Table) -> Result<Vec<Cell>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    (t.columns.iter().enumerate())
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Int => Cell::Int(row.try_get(i)?),
                Text => Cell::Text(row.try_get(i)?),
                Blob => Cell::Blob(row.try_get(i)?),
                Bool => Cell::Bool(row.try_get(i)?),
            })
        })
        .collect()
}

/// Every row of `table` in key order, as cells (for comparing stores).
pub async fn dump(store: &Store, table: &str) -> Result<Vec<Vec<Cell>>, StoreError> {
    let Some(t) = TABLES.iter().find(|t| t.name == table) else {
        return Err(StoreError::UnknownTable(table.to_owned()));
    };
    let sql = select(t);
    let rows = on_pool!(store, |ex| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(ex)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| cells(r, t))
                    .collect::<Result<Vec<_>, _>>()
            })
    })?;
    Ok(rows)
}

/// Writes `rows` into `t` in one transaction of `to`.
async fn write(to: &Store, t: &Table, rows: &[Vec<Cell>]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let cols: Vec<&str> = t.columns.iter().map(|c| c.0).collect();
    let head = format!("INSERT INTO {} ({}) ", t.name, cols.join(", "));
    let mut tx = crate::outbox::begin(to).await?;
    crate::db::on_tx!(tx, |ex, DB| {
        let mut q = sqlx::QueryBuilder::<DB>::new(head.as_str());
        // An identity column is written as copied, not generated.
        if t.identity.is_some() && to.backend() == Backend::Postgres {
            q.push("OVERRIDING SYSTEM VALUE ");
        }
        q.push_values(rows, |mut b, row| {
            for c in row {
                match c {
                    Cell::Int(v) => b.push_bind(*v),
                    Cell::Text(v) => b.push_bind(v.clone()),
                    Cell::Blob(v) => b.push_bind(v.clone()),
                    Cell::Bool(v) => b.push_bind(*v),
                };
            }
        });
        q.build().execute(ex).await.map(|_| ())
    })?;
    tx.commit().await?;
    Ok(())
}

/// Whether `store`'s `table` has a row.
async fn has_rows(store: &Store, table: &str) -> Result<bool, StoreError> {
    let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {table} LIMIT 1) AS t");
    let n: i64 = on_pool!(store, |ex| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(ex)
        .await)?;
    Ok(n > 0)
}

/// Copies every table from `from` into the empty `to`, calling `progress`
/// with the table and the rows copied so far; answers rows per table.
pub async fn copy(
    from: &Store,
    to: &Store,
    mut progress: impl FnMut(&str, u64),
) -> Result<Vec<(&'static str, u64)>, CopyError> {
    for t in TABLES {
        if has_rows(to, t.name).await? {
            return Err(CopyError::TargetNotEmpty(t.name));
        }
    }
    if let Some(r) = from.replicas(60_000).await?.into_iter().next() {
        return Err(CopyError::SourceInUse(r.id));
    }
    let mut counts = Vec::with_capacity(TABLES.len());
    for t in TABLES {
        let n = copy_table(from, to, t, &mut progress).await?;
        if let Some(col) = t.identity {
            follow_identity(to, t.name, col).await?;
        }
        counts.push((t.name, n));
    }
    Ok(counts)
}

/// Streams one table across in batches.
async fn copy_table(
    from: &Store,
    to: &Store,
    t: &Table,
    progress: &mut impl FnMut(&str, u64),
) -> Result<u64, StoreError> {
    let sql = select(t);
    let mut n = 0u64;
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(BATCH);
    on_pool!(from, |ex| {
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(ex);
        while let Some(r) = rows.try_next().await? {
            batch.push(cells(&r, t)?);
            if batch.len() == BATCH {
                write(to, t, &batch).await?;
                n += batch.len() as u64;
                batch.clear();
                progress(t.name, n);
            }
        }
        Ok::<(), StoreError>(())
    })?;
    write(to, t, &batch).await?;
    n += batch.len() as u64;
    progress(t.name, n);
    Ok(n)
}

/// Moves a PostgreSQL identity column's sequence past the copied ids, so
/// the next generated one does not collide (SQLite follows by itself).
async fn follow_identity(to: &Store, table: &str, column: &str) -> Result<(), StoreError> {
    if to.backend() != Backend::Postgres {
        return Ok(());
    }
    let sql = format!(
        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
         COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
    );
    on_pool!(to, |ex| sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(ex)
        .await
        .map(|_| ()))?;
    Ok(())
}
