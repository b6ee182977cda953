//! Persistence for ethgate, behind one [`Store`] handle.
//!
//! The store owns everything the gateway must not forget: the outbox
//! (every envelope, in `seq` order) with each stream's block cursor, the
//! sparse window of recorded blocks used to find fork points, and what a
//! growing stream learned (contracts added, factory children); each
//! sink's cursor and dead letters; the transaction journal (requests,
//! signed attempts, each account's next nonce); the pools' members,
//! rotations and top-ups; API token hashes and the audit trail; and the
//! leases and heartbeats by which replicas share the work. It holds no
//! business rules: the syncer decides *what* to write; the store
//! guarantees that a range's envelopes, its blocks and the cursor move
//! together in **one** transaction, so a crash at any instant leaves
//! either all of a range recorded or none of it.
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
//!
//! The same store runs on PostgreSQL (`postgres://…`), for deployments
//! that outgrow one file; callers only see `Store` ([`db`] holds the seam).

mod additions;
pub mod audit;
pub mod codec;
mod combine;
mod connect;
pub mod copy;
mod db;
mod dead_letters;
mod error;
#[cfg(any(test, feature = "scratch"))]
pub mod fixtures;
pub mod lease;
pub mod outbox;
mod pools;
#[cfg(any(test, feature = "scratch"))]
pub mod scratch;
mod sinks;
mod stored_state;
mod streams;
mod tokens;
pub mod tx;
mod tx_rows;
mod wake;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::SqlitePool;
use tokio::sync::watch;

pub use additions::AddedRange;
pub use audit::{Action, AuditEntry, Outcome};
pub use codec::NewEvent;
pub use db::{Backend, redacted_url};
pub use dead_letters::DeadLetter;
pub use error::{DbError, DbErrorKind};
pub use outbox::{RangeCommit, StoredEnvelope};
pub use pools::{MemberRow, RotationRow, TopUpRow};
pub use sinks::{SinkCursor, SinkStatus};
pub use stored_state::StoredState;
pub use streams::StreamRow;
pub use tokens::{NewToken, TokenRow};
pub use tx::{
    AttemptRow, Inserted, NewAttempt, NewTx, SignedAttempt, StateUpdate, StatusEnvelopes, TxRow,
};
pub use wake::TxWake;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names a backend this build does not have.
    #[error(
        "store.url: unsupported store {0:?}; use sqlite://PATH or postgres://USER@HOST/DATABASE"
    )]
    Unsupported(String),
    /// The operation exists on one backend only (SQLite's WAL levels, say).
    #[error("{what} is not available on {backend:?}")]
    NotOnBackend {
        /// The operation.
        what: &'static str,
        /// The store's backend.
        backend: Backend,
    },
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
    /// A fenced write whose lease another replica has taken over: the
    /// unit must stop (see [`lease`]).
    #[error("lease of {unit} lost (epoch {epoch} is no longer held): write refused")]
    Fenced {
        /// The work unit.
        unit: String,
        /// The epoch the writer held.
        epoch: i64,
    },
    /// A stored value is not what this version wrote.
    #[error("corrupt stored value in {what}: {detail}")]
    Corrupt {
        /// Which table/column.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A table name that is not one of the store's.
    #[error("unknown table {0:?}")]
    UnknownTable(String),
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
    /// The pools beneath: SQLite's two (one fsync'd for the transaction
    /// journal, see the crate docs) or PostgreSQL's one.
    db: db::Db,
    /// The lease this handle's writes check (see [`lease`]); `None` for
    /// writes any replica may make (intake, tokens, audit).
    fence: Option<std::sync::Arc<lease::Fence>>,
    changes: watch::Sender<u64>,
    /// Accepted requests other replicas announced (see [`wake`]).
    tx_wakes: tokio::sync::broadcast::Sender<TxWake>,
    /// Wakes the task that tells other replicas of commits (PostgreSQL).
    announce: Option<std::sync::Arc<tokio::sync::Notify>>,
    /// This process's writers take turns here (see `outbox::WriteTx`).
    turns: std::sync::Arc<outbox::Turns>,
    /// The writer that combines the transaction senders' writes (see
    /// `combine`), started with the first.
    writer: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<combine::Job>>>,
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Opens (creating if missing) and migrates the store at `url`:
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://USER@HOST/DB`.
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
        let db = match Backend::of_url(url) {
            Some(Backend::Sqlite) => connect::open_sqlite(url).await?,
            Some(Backend::Postgres) => connect::open_postgres(url).await?,
            None => {
                return Err(StoreError::Unsupported(
                    url.split(':').next().unwrap_or("").to_owned(),
                ));
            }
        };
        let (changes, _) = watch::channel(0);
        let (tx_wakes, _) = tokio::sync::broadcast::channel(1024);
        let announce = match &db {
            db::Db::Postgres(pool) => {
                let pending = std::sync::Arc::new(tokio::sync::Notify::new());
                tokio::spawn(wake::listen(
                    pool.clone(),
                    changes.clone(),
                    tx_wakes.clone(),
                ));
                tokio::spawn(wake::announce(pool.clone(), pending.clone()));
                Some(pending)
            }
            db::Db::Sqlite { .. } => None,
        };
        let store = Store {
            db,
            fence: None,
            tx_wakes,
            announce,
            changes,
            turns: Default::default(),
            writer: Default::default(),
        };
        if let db::Db::Sqlite { pool, .. } = &store.db
            && !url.contains(":memory:")
        {
            tokio::spawn(connect::checkpointer(pool.clone(), store.turns.clone()));
        }
        Ok(store)
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// Copies the whole WAL into the database and truncates it; run when a
    /// command ends so the next start reads a compact file. (PostgreSQL
    /// has nothing to do.)
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let db::Db::Sqlite { pool, .. } = &self.db {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// The `synchronous` level of the connections the transaction
    /// journal commits on (2: FULL) and of the others (1: NORMAL), as
    /// SQLite reports them.
    pub async fn synchronous_levels(&self) -> Result<(i64, i64), StoreError> {
        let db::Db::Sqlite { pool, durable } = &self.db else {
            return Err(StoreError::NotOnBackend {
                what: "synchronous levels",
                backend: self.backend(),
            });
        };
        let level = |pool: &SqlitePool| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                    .fetch_one(&pool)
                    .await
            }
        };
        Ok((level(durable).await?, level(pool).await?))
    }

    /// Whether the database answers; `/readyz` asks this.
    pub async fn ping(&self) -> bool {
        db::on_pool!(self, |ex| sqlx::query("SELECT 1").execute(ex).await.is_ok())
    }

    /// A receiver that changes whenever envelopes are committed (a commit
    /// counter): by this process, or on PostgreSQL by any replica;
    /// long-polling readers and dispatchers wait on it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Requests accepted by other replicas, for the senders running here.
    pub fn tx_wakes(&self) -> tokio::sync::broadcast::Receiver<TxWake> {
        self.tx_wakes.subscribe()
    }

    pub(crate) fn notify(&self) {
        self.changes.send_modify(|n| *n += 1);
        if let Some(a) = &self.announce {
            a.notify_one();
        }
    }
}
