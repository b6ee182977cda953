//! Opening a store's database: SQLite's file, pragmas, pools and WAL
//! checkpointer, or PostgreSQL's pool; each with its own migrations
//! (`migrations/sqlite`, `migrations/postgres`), which build the same
//! tables.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::db::Db;
use crate::{DbError, DbErrorKind, StoreError, outbox};

/// Creates the database file (0600) and any directory above it (0700)
/// that does not exist yet, so the store — which holds signed
/// transactions and token hashes — is the owner's alone. SQLite gives its
/// `-wal` and `-shm` files the database file's mode.
pub(crate) fn owner_only_file(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(|_| ()),
    }
}

/// How often the checkpointer runs. A checkpoint's fsync flushes what
/// was written since the last one, and on a journaling filesystem every
/// writer's next write waits while that flush runs: under a steady stream of small commits (the transaction path's), rare
/// checkpoints mean long flushes and long stalls; frequent ones keep each
/// short, and one with nothing to copy costs next to nothing.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// How long a connection waits for SQLite's lock held by another process
/// (this process's writers take turns instead, see `outbox::WriteTx`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Log frames past which the checkpointer also restarts the WAL.
/// Readers that began while frames were still to be copied keep a writer
/// from starting the log over, so under steady reads and writes the file
/// only grows — until SQLite's own checkpoint fires inside whichever
/// commit crosses `wal_autocheckpoint`, holding the write turn through its copy and fsyncs while every writer
/// and the API's group commit wait behind it. 8,192 frames of 4 KiB:
/// 32 MB of log.
const RESTART_AT: i64 = 8_192;

/// How long the restart waits for readers of an older snapshot before it
/// gives up until the next round: it holds the write turn meanwhile.
const RESTART_PATIENCE_MS: i64 = 5;

/// Copies the WAL into the database every [`CHECKPOINT_EVERY`] with a
/// PASSIVE checkpoint, which never takes the write lock, and restarts the
/// log when it has grown past [`RESTART_AT`] frames. Left to SQLite's
/// automatic checkpoint, that copy (and its fsyncs) would run inside
/// whichever commit crossed the threshold — on the ingest path. Ends when
/// the pool closes.
pub(crate) async fn checkpointer(pool: SqlitePool, turns: std::sync::Arc<outbox::Turns>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let passive = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        match passive {
            Ok((_, log, _)) if log >= RESTART_AT => {
                // Between writers (the turn, queued like any background
                // writer), so only readers can hold it up, and briefly.
                let turn = turns.background().await;
                if let Err(e) = restart(&pool).await {
                    tracing::debug!(error = %e, "WAL restart skipped");
                }
                drop(turn);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint skipped"),
        }
    }
}

/// Checkpoints the whole WAL and has the next writer start it over, waiting
/// at most [`RESTART_PATIENCE_MS`] for readers (busy: left for next time).
async fn restart(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {RESTART_PATIENCE_MS}"
    )))
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .execute(&mut *conn)
        .await;
    // The connection goes back to the pool with the store's own patience.
    let reset = sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    )))
    .execute(&mut *conn)
    .await;
    if reset.is_err() {
        conn.detach();
    }
    done.map(|_| ())
}

/// Opens the SQLite database at `url` (creating it, 0600) and migrates it.
pub(crate) async fn open_sqlite(url: &str) -> Result<Db, StoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p));
    let memory = url.contains(":memory:");
    if let Some(path) = path.filter(|_| !memory) {
        owner_only_file(std::path::Path::new(path))
            .map_err(|e| StoreError::Db(DbError::new(DbErrorKind::Io, e.to_string())))?;
    }
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(if memory {
            SqliteJournalMode::Memory
        } else {
            SqliteJournalMode::Wal
        })
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        // Each commit writes its dirty pages whole to the log, and a
        // small commit (a group of accepted requests, a sender's state
        // changes) dirties a dozen index and table pages: 4 KiB pages write a
        // quarter of what 16 KiB ones do, and ingest, whose segments span
        // pages either way, is no slower (new databases only: an
        // existing file keeps its page size).
        .page_size(4_096)
        // Room for every statement text this store runs, the
        // multi-row writes' power-of-two shapes among them (see
        // `tx_rows::shaped`): an evicted statement is compiled again.
        .statement_cache_capacity(256)
        // A backstop only: the checkpointer task below keeps the WAL short.
        .pragma("wal_autocheckpoint", "32768")
        .pragma("journal_size_limit", "67108864")
        // Statement journals (a multi-row write inside a transaction
        // keeps one, to undo just that statement) stay in memory: on
        // disk each spilled into a temp file opened, written and closed
        // per statement.
        .pragma("temp_store", "memory");
    let durable_opts = opts.clone().synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(if memory { 1 } else { 3 })
        .min_connections(if memory { 1 } else { 0 })
        .idle_timeout(if memory {
            None
        } else {
            Some(Duration::from_secs(300))
        })
        .max_lifetime(if memory {
            None
        } else {
            Some(Duration::from_secs(3600))
        })
        .connect_with(opts)
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    // An in-memory database exists once per connection: it has one.
    // One connection: writers take turns anyway (see `outbox::WriteTx`),
    // and the shared pool keeps one fewer, so readers hold no more
    // connections than before — more of them, always in flight, keep
    // the checkpointer from restarting the log.
    let durable = match memory {
        true => pool.clone(),
        false => {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(0)
                .idle_timeout(Some(Duration::from_secs(300)))
                .max_lifetime(Some(Duration::from_secs(3600)))
                .connect_with(durable_opts)
                .await?
        }
    };
    Ok(Db::Sqlite { pool, durable })
}

/// How many connections a PostgreSQL store keeps: its writers take turns
/// (see `outbox::WriteTx`), so they are for readers — long-polls, the
/// API, dispatchers — beside one writer.
const PG_CONNECTIONS: u32 = 8;

/// Opens the PostgreSQL database at `url` and migrates it. Concurrent
/// openers wait on the migrator's advisory lock, so the race SQLite has
/// (see `Store::connect`) does not arise.
pub(crate) async fn open_postgres(url: &str) -> Result<Db, StoreError> {
    let opts = PgConnectOptions::from_str(url)?
        // One statement per write at most; the cache keeps every text this
        // store runs, the multi-row writes' shapes among them.
        .statement_cache_capacity(256);
    let pool = PgPoolOptions::new()
        .max_connections(PG_CONNECTIONS)
        .min_connections(1)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_with(opts)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(Db::Postgres(pool))
}
