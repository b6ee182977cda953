//! Persistence for ethgate, behind one [`Store`] handle.
//!
//! The store owns the outbox (every envelope, in `seq` order), each stream's
//! block cursor, the sparse window of recorded blocks used to find fork
//! points, and API token hashes. It holds no business rules: the syncer
//! decides *what* to write; the store guarantees that a range's envelopes,
//! its blocks and the cursor move together in **one** transaction, so a
//! crash at any instant leaves either all of a range recorded or none of it.
//!
//! SQLite runs in WAL mode. Most writes commit with `synchronous = NORMAL`:
//! a killed process loses nothing committed; a power cut may lose the last
//! commits, but events and cursor are lost together, so the range is
//! simply read again. The transaction journal's writes — a request
//! accepted (the API has answered 202 for it), nonces taken with their
//! signed attempts, replacements — commit on connections with
//! `synchronous = FULL`, so they are on disk before the call returns and
//! before any signed byte leaves the process: after a power cut no nonce is
//! forgotten and nothing is signed again. A background task checkpoints
//! the WAL so commits stay cheap.
//!
//! The outbox stores envelopes in segments (one row per up to
//! [`outbox::SEGMENT_MAX`] events, see the migration) of compact binary
//! records ([`codec`]): recording 10,000 events is ten rows, not ten
//! thousand, and about half the bytes of their JSON.
//! PostgreSQL is the next backend; callers only see `Store`.

pub mod audit;
pub mod codec;
mod combine;
mod dead_letters;
mod error;
pub mod outbox;
mod pools;
mod sinks;
mod streams;
mod tokens;
pub mod tx;
mod tx_rows;

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::watch;

pub use audit::{Action, AuditEntry, Outcome};
pub use codec::NewEvent;
pub use dead_letters::DeadLetter;
pub use error::{DbError, DbErrorKind};
pub use outbox::{RangeCommit, StoredEnvelope};
pub use pools::{MemberRow, RotationRow};
pub use sinks::{SinkCursor, SinkStatus};
pub use streams::StreamRow;
pub use tokens::{NewToken, TokenRow};
pub use tx::{
    AttemptRow, Inserted, NewAttempt, NewTx, SignedAttempt, StateUpdate, StatusEnvelopes, TxRow,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names a backend this build does not have.
    #[error(
        "store.url: unsupported store {0:?}; use sqlite://PATH (PostgreSQL support is not built yet)"
    )]
    Unsupported(String),
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(DbError),
    /// Migrations could not be applied.
    #[error("database migration: {0}")]
    Migrate(String),
    /// Another writer moved the stream's cursor since it was read: two
    /// syncers on one stream, which the store refuses rather than interleave.
    #[error("stream {stream}: cursor moved under us (expected {expected:?}, found {found:?})")]
    CursorConflict {
        /// Stream name.
        stream: String,
        /// Cursor the writer read.
        expected: Option<u64>,
        /// Cursor in the database.
        found: Option<u64>,
    },
    /// A stored value is not what this version wrote.
    #[error("corrupt stored value in {what}: {detail}")]
    Corrupt {
        /// Which table/column.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The stream is not registered.
    #[error("unknown stream {0:?}")]
    UnknownStream(String),
    /// An envelope outside the range being committed: recording it would
    /// duplicate a live event or pass the cursor.
    #[error(
        "stream {stream}: envelope of block {block} is outside the range after cursor {cursor:?}"
    )]
    OutOfRange {
        /// Stream name.
        stream: String,
        /// The envelope's block.
        block: u64,
        /// The cursor the range starts after.
        cursor: Option<u64>,
    },
}

impl StoreError {
    /// A failure another process opening the same new database can cause.
    fn is_open_race(&self) -> bool {
        matches!(self, StoreError::Migrate(_)) || self.is_busy()
    }

    /// The database was busy: the same operation may succeed if retried.
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Db(e) if e.kind() == DbErrorKind::Busy)
    }

    /// Another writer got there first: a key or cursor it holds moved.
    pub fn is_conflict(&self) -> bool {
        match self {
            StoreError::Db(e) => e.kind() == DbErrorKind::Conflict,
            StoreError::CursorConflict { .. } => true,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.into())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e.to_string())
    }
}

/// The store handle; clone it freely (a pool, a notifier and the write
/// turn, all shared).
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// A connection whose commits are fsync'd (`synchronous = FULL`), for
    /// the transaction journal's writes (see the crate docs).
    durable: SqlitePool,
    changes: watch::Sender<u64>,
    /// This process's writers take turns here (see `outbox::WriteTx`).
    turns: std::sync::Arc<outbox::Turns>,
    /// The writer that combines the transaction senders' writes (see
    /// `combine`), started with the first.
    writer: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<combine::Job>>>,
}

/// Creates the database file (0600) and any directory above it (0700)
/// that does not exist yet, so the store — which holds signed
/// transactions and token hashes — is the owner's alone. SQLite gives its
/// `-wal` and `-shm` files the database file's mode.
fn owner_only_file(path: &std::path::Path) -> std::io::Result<()> {
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

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// How often the checkpointer runs. A checkpoint's fsync flushes what
/// was written since the last one, and on a journaling filesystem every
/// writer's next write waits while that flush runs: under a steady stream
/// of small commits (the transaction path's), a checkpoint a second stalled
/// commits 20–60 ms, five a second keep each flush — and stall — short. A
/// checkpoint with nothing to copy costs a fraction of a millisecond.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// How long a connection waits for SQLite's lock held by another process
/// (this process's writers take turns instead, see `outbox::WriteTx`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Log frames past which the checkpointer also restarts the WAL.
/// Readers that began while frames were still to be copied keep a writer
/// from starting the log over, so under steady reads and writes the file
/// only grows — until SQLite's own checkpoint fires inside whichever
/// commit crosses `wal_autocheckpoint`, holding the write turn through its
/// copy and fsyncs (timed: 14–23 ms, every 1.5 s at 500 requests/s, every
/// writer and the API's group commit stalled behind it). 8,192 frames of
/// 4 KiB: 32 MB of log.
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
async fn checkpointer(pool: SqlitePool, turns: std::sync::Arc<outbox::Turns>) {
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

impl Store {
    /// Opens (creating if missing) and migrates the store at `url`:
    /// `sqlite://PATH` or `sqlite::memory:`.
    ///
    /// Two processes opening a new database at once (`ethgate serve` and a
    /// CLI command, say) race to switch it to WAL and to apply the same
    /// migration; the loser sees "database is locked" or "table … already
    /// exists", with its transaction rolled back. Opening again then finds
    /// the work done, so such failures are retried a few times.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut attempt = 0u64;
        loop {
            match Self::open(url).await {
                Err(e) if attempt < 6 && e.is_open_race() => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "opening the store raced another process; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn open(url: &str) -> Result<Self, StoreError> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Unsupported(
                url.split(':').next().unwrap_or("").to_owned(),
            ));
        }
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
            // changes) dirties a dozen index and table pages: 4 KiB pages
            // write a quarter of what 16 KiB ones did (eight accounts'
            // transactions: 5–10 % less CPU), and ingest, whose segments
            // span pages either way, measured no slower (new databases
            // only: an existing file keeps its page size).
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
        sqlx::migrate!("./migrations").run(&pool).await?;
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
        let (changes, _) = watch::channel(0);
        let store = Store {
            pool,
            durable,
            changes,
            turns: Default::default(),
            writer: Default::default(),
        };
        if !memory {
            tokio::spawn(checkpointer(store.pool.clone(), store.turns.clone()));
        }
        Ok(store)
    }

    /// Copies the whole WAL into the database and truncates it; run when a
    /// command ends so the next start reads a compact file.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The `synchronous` level of the connections the transaction
    /// journal commits on (2: FULL) and of the others (1: NORMAL), as
    /// SQLite reports them.
    pub async fn synchronous_levels(&self) -> Result<(i64, i64), StoreError> {
        let level = |pool: &SqlitePool| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                    .fetch_one(&pool)
                    .await
            }
        };
        Ok((level(&self.durable).await?, level(&self.pool).await?))
    }

    /// Whether the database answers; `/readyz` asks this.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// A receiver that changes whenever envelopes are committed by this
    /// process (a commit counter); long-polling readers wait on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}
