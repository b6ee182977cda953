//! Throwaway databases for tests and benchmarks: a fresh SQLite file in a
//! temporary directory, or a fresh schema in a PostgreSQL database, so
//! every caller starts empty and the same suite runs on either backend.
//!
//! `ETHGATE_TEST_STORE=postgres` (or a `postgres://` URL) picks
//! PostgreSQL for [`Scratch::from_env`]; the default database is
//! [`DEFAULT_PG`]. PostgreSQL schemas are left behind when a scratch is
//! dropped (dropping needs a round trip a destructor cannot make) and
//! removed by the next scratch created an hour or more later.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

use crate::{Backend, StoreError};

/// The PostgreSQL database scratch schemas are made in unless
/// `ETHGATE_TEST_STORE` names another.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Prefix of scratch schema names; the rest is the creation time and a
/// per-process counter.
const PREFIX: &str = "scratch_";

/// A fresh, empty place for a store; hand [`Scratch::url`] to
/// [`Store::connect`](crate::Store::connect).
pub struct Scratch {
    url: String,
    backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    /// A scratch on the backend `ETHGATE_TEST_STORE` names (SQLite when
    /// unset). Panics when PostgreSQL is asked for and cannot be reached:
    /// a test that needs it must fail, not skip.
    pub async fn from_env() -> Self {
        let pg = std::env::var("ETHGATE_TEST_STORE").unwrap_or_default();
        let made = if pg.is_empty() || pg == "sqlite" {
            Self::sqlite()
        } else if pg == "postgres" {
            Self::postgres(DEFAULT_PG).await
        } else {
            Self::postgres(&pg).await
        };
        made.unwrap_or_else(|e| panic!("scratch store ({pg:?}): {e}; run scripts/services"))
    }

    /// A new SQLite file in a temporary directory (removed on drop).
    pub fn sqlite() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(|e| {
            StoreError::Db(crate::DbError::new(crate::DbErrorKind::Io, e.to_string()))
        })?;
        Ok(Scratch {
            url: format!("sqlite://{}/store.db", dir.path().display()),
            backend: Backend::Sqlite,
            _dir: Some(dir),
        })
    }

    /// A new schema in the PostgreSQL database at `base`; the URL it
    /// answers puts that schema first on the search path.
    pub async fn postgres(base: &str) -> Result<Self, StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = crate::now_secs();
        let schema = format!(
            "{PREFIX}{now}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(base).await?;
        sweep(&mut conn, now).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        Ok(Scratch {
            url: format!("{base}{sep}options[search_path]={schema}"),
            backend: Backend::Postgres,
            _dir: None,
        })
    }

    /// The store URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which backend it is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Drops scratch schemas made an hour or more before `now` (best effort).
async fn sweep(conn: &mut sqlx::PgConnection, now: i64) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::TEXT FROM pg_namespace WHERE nspname LIKE 'scratch\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        let made: Option<i64> = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('_').next())
            .and_then(|t| t.parse().ok());
        if made.is_some_and(|t| now - t >= 3_600) {
            let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut *conn)
                .await;
        }
    }
}
