//! The database beneath the store: SQLite or PostgreSQL, one of them per
//! [`Store`](crate::Store). Every query is written once, in the SQL both
//! engines speak (`$N` parameters, `ON CONFLICT`, `TRUE`/`FALSE`), and run
//! on either through [`on_pool!`] and [`on_tx!`], which expand the same
//! code once per backend, so each runs on its own native sqlx driver.
//! What differs — connection options, migrations, the WAL checkpointer,
//! how a write transaction begins — lives here and in `lib.rs`.

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (or memory): the single-node default.
    Sqlite,
    /// A PostgreSQL database, which several replicas can share.
    Postgres,
}

impl Backend {
    /// The backend a store URL names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// `url` with any password replaced by `***`, for logs and `config
/// check`: a PostgreSQL URL may carry one (`postgres://user:pw@host/db`).
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// The connection pools of one store.
#[derive(Clone)]
pub(crate) enum Db {
    /// SQLite: the shared pool and the connection whose commits are
    /// fsync'd (`synchronous = FULL`) for the transaction journal.
    Sqlite {
        pool: SqlitePool,
        durable: SqlitePool,
    },
    /// PostgreSQL: every commit is durable (`synchronous_commit` on).
    Postgres(PgPool),
}

impl Db {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a write transaction; `durable` picks SQLite's fsync'd
    /// connection (PostgreSQL's commits always are).
    pub(crate) async fn begin(&self, durable: bool) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            // IMMEDIATE takes the write lock up front, so a read-then-write
            // transaction never fails to upgrade while another process
            // commits.
            Db::Sqlite { pool, durable: d } => {
                let pool = if durable { d } else { pool };
                Conn::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)
            }
            Db::Postgres(pool) => Conn::Postgres(pool.begin().await?),
        })
    }
}

/// An open write transaction on either backend.
pub(crate) enum Conn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Conn {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Conn::Sqlite(t) => t.commit().await,
            Conn::Postgres(t) => t.commit().await,
        }
    }
}

/// Runs `$body` with `$c` bound to the store's read pool (`&SqlitePool` or
/// `&PgPool`, an executor); `$db` (optional) names the sqlx database type,
/// for a `QueryBuilder<$db>`. The body is compiled once per backend.
macro_rules! on_pool {
    ($store:expr, |$c:ident $(, $db:ident)?| $body:expr) => {
        match &$store.db {
            $crate::db::Db::Sqlite { pool: $c, .. } => {
                $(#[allow(clippy::upper_case_acronyms)] type $db = sqlx::Sqlite;)?
                $body
            }
            $crate::db::Db::Postgres($c) => {
                $(#[allow(clippy::upper_case_acronyms)] type $db = sqlx::Postgres;)?
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to the write transaction's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`; reborrow it as
/// `&mut *c` to use it twice). As [`on_pool!`], once per backend.
macro_rules! on_tx {
    ($tx:expr, |$c:ident $(, $db:ident)?| $body:expr) => {
        match $tx.conn() {
            $crate::db::Conn::Sqlite(t) => {
                $(#[allow(clippy::upper_case_acronyms)] type $db = sqlx::Sqlite;)?
                let $c: &mut sqlx::SqliteConnection = &mut *t;
                $body
            }
            $crate::db::Conn::Postgres(t) => {
                $(#[allow(clippy::upper_case_acronyms)] type $db = sqlx::Postgres;)?
                let $c: &mut sqlx::PgConnection = &mut *t;
                $body
            }
        }
    };
}

/// Keys of the transaction-scoped advisory locks that make a table's
/// generated ids follow commit order on PostgreSQL (see [`Conn::in_order`]).
#[derive(Debug, Clone, Copy)]
#[repr(i64)]
pub(crate) enum Ordered {
    /// `tx_requests.rowid`: senders read new requests after the last one.
    Requests = 0x6574_6701,
    /// `audit.id`: readers page the trail after the last id.
    Audit = 0x6574_6702,
}

impl Conn {
    /// Makes the ids this transaction generates in `table` follow commit
    /// order, for readers that resume after the last id they saw. On
    /// PostgreSQL, replicas inserting at once would otherwise commit id
    /// 101 before 100, and a reader past 101 would never see 100; an
    /// advisory lock held to commit orders those inserts. SQLite has one
    /// writer already.
    pub(crate) async fn in_order(&mut self, table: Ordered) -> Result<(), sqlx::Error> {
        if let Conn::Postgres(t) = self {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(table as i64)
                .execute(&mut **t)
                .await?;
        }
        Ok(())
    }
}

/// `$sql`, row-locking on PostgreSQL (`FOR UPDATE`, or the lock clause
/// given), where writers of several replicas run at once; SQLite's write
/// lock already serialises them. `$db` is the type [`on_tx!`] names.
macro_rules! locked {
    ($db:ident, $sql:literal) => {
        $crate::db::locked!($db, $sql, "FOR UPDATE")
    };
    ($db:ident, $sql:literal, $lock:literal) => {
        if <$db as sqlx::Database>::NAME == <sqlx::Postgres as sqlx::Database>::NAME {
            concat!($sql, " ", $lock)
        } else {
            $sql
        }
    };
}

pub(crate) use {locked, on_pool, on_tx};

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn a_password_in_a_store_url_never_shows() {
        assert_eq!(
            redacted_url("postgres://app:s3cr%40t@db:5432/eg?sslmode=require"),
            "postgres://app:***@db:5432/eg?sslmode=require"
        );
        assert_eq!(redacted_url("postgres://app@db/eg"), "postgres://app@db/eg");
        assert_eq!(redacted_url("sqlite://./data/e.db"), "sqlite://./data/e.db");
        assert_eq!(redacted_url("sqlite::memory:"), "sqlite::memory:");
    }
}
