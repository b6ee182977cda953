//! The store's error, free of the database driver's types: callers ask
//! whether a failure is worth retrying (`is_busy`) or says that another
//! writer got there first (`is_conflict`), never match a driver's message
//! text. Codes are mapped here once, for each backend the store speaks.

/// What kind of database failure it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorKind {
    /// The database was busy or locked, or no connection was free in time:
    /// the same operation may succeed if tried again.
    Busy,
    /// A uniqueness or key constraint refused the write: another writer
    /// recorded the same thing first.
    Conflict,
    /// The file or connection failed.
    Io,
    /// Anything else.
    Other,
}

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    kind: DbErrorKind,
    message: String,
}

impl DbError {
    /// A failure of `kind`.
    pub fn new(kind: DbErrorKind, message: impl Into<String>) -> DbError {
        DbError {
            kind,
            message: message.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> DbErrorKind {
        self.kind
    }
}

/// "Busy, try again": SQLite's BUSY and LOCKED result codes (extended
/// codes carry them in the low byte; SQLite's codes have at most four
/// digits) and PostgreSQL's SQLSTATEs (always five characters) for a
/// serialization failure, a deadlock and an unavailable lock.
fn busy_code(code: &str) -> bool {
    if code.len() == 5 {
        return matches!(code, "40001" | "40P01" | "55P03");
    }
    code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> DbError {
        let kind = match &e {
            sqlx::Error::Database(d) => {
                if d.code().is_some_and(|c| busy_code(&c)) {
                    DbErrorKind::Busy
                } else if matches!(
                    d.kind(),
                    sqlx::error::ErrorKind::UniqueViolation
                        | sqlx::error::ErrorKind::ForeignKeyViolation
                ) {
                    DbErrorKind::Conflict
                } else {
                    DbErrorKind::Other
                }
            }
            sqlx::Error::PoolTimedOut => DbErrorKind::Busy,
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => DbErrorKind::Io,
            _ => DbErrorKind::Other,
        };
        DbError {
            kind,
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_codes_of_both_backends_are_known() {
        for code in ["5", "6", "261", "517", "40001", "55P03"] {
            assert!(busy_code(code), "{code}");
        }
        for code in ["1", "19", "2067", "23505", "42P01"] {
            assert!(!busy_code(code), "{code}");
        }
    }

    /// The mapping on a real SQLite file: a held write lock is `Busy`, a
    /// duplicate key is `Conflict`.
    #[tokio::test]
    async fn a_locked_database_is_busy_and_a_duplicate_key_a_conflict() {
        use sqlx::Connection;
        use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join("e.db"))
            .create_if_missing(true)
            .busy_timeout(std::time::Duration::ZERO);
        let mut a = SqliteConnection::connect_with(&opts).await.expect("a");
        let mut b = SqliteConnection::connect_with(&opts).await.expect("b");
        sqlx::raw_sql("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&mut a)
            .await
            .expect("create");
        sqlx::raw_sql("INSERT INTO t VALUES ('x')")
            .execute(&mut a)
            .await
            .expect("insert");
        let dup = sqlx::raw_sql("INSERT INTO t VALUES ('x')")
            .execute(&mut a)
            .await;
        let dup = DbError::from(dup.expect_err("a duplicate key"));
        assert_eq!(dup.kind(), DbErrorKind::Conflict, "{dup}");
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut a)
            .await
            .expect("lock");
        let locked = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut b).await;
        let locked = DbError::from(locked.expect_err("locked"));
        assert_eq!(locked.kind(), DbErrorKind::Busy, "{locked}");
    }

    /// The mapping on a real PostgreSQL: a row lock not granted within
    /// `lock_timeout` is `Busy`, a duplicate key is `Conflict`.
    #[tokio::test]
    async fn on_postgres_a_lock_timeout_is_busy_and_a_duplicate_key_a_conflict() {
        use sqlx::Connection;
        let scratch = crate::scratch::Scratch::postgres(crate::scratch::DEFAULT_PG)
            .await
            .expect("PostgreSQL (scripts/services starts it)");
        let mut a = sqlx::PgConnection::connect(scratch.url()).await.expect("a");
        let mut b = sqlx::PgConnection::connect(scratch.url()).await.expect("b");
        sqlx::raw_sql("CREATE TABLE t (k TEXT PRIMARY KEY); INSERT INTO t VALUES ('x')")
            .execute(&mut a)
            .await
            .expect("create");
        let dup = sqlx::raw_sql("INSERT INTO t VALUES ('x')")
            .execute(&mut a)
            .await;
        let dup = DbError::from(dup.expect_err("a duplicate key"));
        assert_eq!(dup.kind(), DbErrorKind::Conflict, "{dup}");
        sqlx::raw_sql("BEGIN; SELECT k FROM t FOR UPDATE")
            .execute(&mut a)
            .await
            .expect("lock");
        let locked = sqlx::raw_sql("SET lock_timeout = '50ms'; BEGIN; SELECT k FROM t FOR UPDATE")
            .execute(&mut b)
            .await;
        let locked = DbError::from(locked.expect_err("locked"));
        assert_eq!(locked.kind(), DbErrorKind::Busy, "{locked}");
    }
}
