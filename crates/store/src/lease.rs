//! Leases and fencing: how several replicas on one database share the
//! work without doing any of it twice.
//!
//! Each work unit has a lease row (holder, epoch, expiry). A replica
//! acquires a free or expired lease by bumping its epoch, renews what it
//! holds, and releases what it hands off. A unit's writes go through a
//! [`Store::fenced`] handle: every write transaction it begins first
//! checks that the lease still has its holder and epoch, in the same
//! transaction, so a replica that paused past its lease (GC, SIGSTOP, a
//! partition) finds its writes refused ([`StoreError::Fenced`]) once
//! another took over. On PostgreSQL the check holds a `FOR KEY SHARE`
//! lock until commit and a takeover locks the row `FOR UPDATE` first, so
//! a takeover waits for writes already checked; on SQLite the write lock
//! serialises both.
//!
//! Time is the database's, so replicas' clocks need not agree.

use std::sync::Arc;

use crate::db::{Backend, locked, on_pool, on_tx};
use crate::outbox::{WriteTx, begin};
use crate::{Store, StoreError};

/// How long a replica's row outlives its last heartbeat before another
/// replica's heartbeat removes it (listings show only live ones anyway).
pub const FORGET_AFTER_MS: i64 = 3_600_000;

/// The Prometheus counter of writes refused by a fence.
pub const FENCING_REFUSALS: &str = "ethgate_fencing_refusals_total";

/// The lease a fenced handle's writes must still hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The work unit (`stream:NAME`, `route:STREAM/SINK`, …).
    pub unit: String,
    /// The replica holding it.
    pub holder: String,
    /// The epoch it was acquired at.
    pub epoch: i64,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LeaseRow {
    /// The work unit.
    pub unit: String,
    /// The replica holding it; empty when released.
    pub holder: String,
    /// Grows with every change of holder.
    pub epoch: i64,
    /// Database time (Unix ms) after which another replica may take it.
    pub expires_ms: i64,
}

/// A replica that heartbeats the store.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReplicaRow {
    /// Its id (random per process).
    pub id: String,
    /// Where its API listens, as configured.
    pub api: String,
    /// Database time (Unix ms) it joined.
    pub started_ms: i64,
    /// Database time (Unix ms) of its last heartbeat.
    pub seen_ms: i64,
}

/// What [`Store::acquire`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// The new epoch.
    pub epoch: i64,
    /// Another replica held it and let it expire: a failover.
    pub took_over: bool,
}

/// Checks every fence in `fences` inside `tx`; the first one lost is an
/// error, counted in [`FENCING_REFUSALS`].
pub(crate) async fn check(tx: &mut WriteTx, fences: &[&Fence]) -> Result<(), StoreError> {
    for f in fences {
        let held: Option<i64> = on_tx!(tx, |ex, DB| {
            let sql = locked!(
                DB,
                "SELECT epoch FROM leases WHERE unit = $1 AND holder = $2 AND epoch = $3",
                "FOR KEY SHARE"
            );
            sqlx::query_scalar(sql)
                .bind(&f.unit)
                .bind(&f.holder)
                .bind(f.epoch)
                .fetch_optional(ex)
                .await
        })?;
        if held.is_none() {
            metrics::counter!(FENCING_REFUSALS, "unit" => f.unit.clone()).increment(1);
            return Err(StoreError::Fenced {
                unit: f.unit.clone(),
                epoch: f.epoch,
            });
        }
    }
    Ok(())
}

impl Store {
    /// A handle whose every write transaction first checks `fence`: what a
    /// work unit writes through, so it writes only while it holds its lease.
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            fence: Some(Arc::new(fence)),
            ..self.clone()
        }
    }

    /// The fence this handle's writes check, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_deref()
    }

    /// The database's clock, Unix milliseconds.
    pub async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let sql = match self.backend() {
            Backend::Postgres => "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
            Backend::Sqlite => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
            }
        };
        Ok(on_pool!(self, |ex| sqlx::query_scalar(sql)
            .fetch_one(ex)
            .await)?)
    }

    /// Takes `unit` for `holder` if it is free, released, expired, or
    /// `holder`'s own from before a restart (the epoch moves on either way).
    pub async fn acquire(
        &self,
        unit: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<Acquired>, StoreError> {
        let now = self.db_now_ms().await?;
        let mut tx = begin(&self.unfenced()).await?;
        let row: Option<(String, i64, i64)> = on_tx!(tx, |ex, DB| {
            let sql = locked!(
                DB,
                "SELECT holder, epoch, expires_ms FROM leases WHERE unit = $1"
            );
            sqlx::query_as(sql).bind(unit).fetch_optional(ex).await
        })?;
        let got = match row {
            None => {
                let n = on_tx!(tx, |ex| {
                    sqlx::query(
                    "INSERT INTO leases (unit, holder, epoch, expires_ms) VALUES ($1, $2, 1, $3) \
                     ON CONFLICT DO NOTHING"
                )
                .bind(unit)
                .bind(holder)
                .bind(now + ttl_ms)
                .execute(ex)
                .await
                .map(|r| r.rows_affected())
                })?;
                (n == 1).then_some(Acquired {
                    epoch: 1,
                    took_over: false,
                })
            }
            // Its own (a restarted process under the same id) too.
            Some((old, epoch, expires)) if old.is_empty() || expires < now || old == holder => {
                let n = on_tx!(tx, |ex| sqlx::query(
                    "UPDATE leases SET holder = $1, epoch = $2, expires_ms = $3 \
                     WHERE unit = $4 AND epoch = $5"
                )
                .bind(holder)
                .bind(epoch + 1)
                .bind(now + ttl_ms)
                .bind(unit)
                .bind(epoch)
                .execute(ex)
                .await
                .map(|r| r.rows_affected()))?;
                (n == 1).then_some(Acquired {
                    epoch: epoch + 1,
                    took_over: !old.is_empty() && old != holder,
                })
            }
            Some(_) => None,
        };
        tx.commit().await?;
        Ok(got)
    }

    /// Extends every lease `holder` has; answers those it still has with
    /// their epochs (a lease missing from the answer was taken over).
    pub async fn renew(&self, holder: &str, ttl_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let now = self.db_now_ms().await?;
        let _turn = crate::outbox::turn(self).await;
        Ok(on_pool!(self, |ex| sqlx::query_as(
            "UPDATE leases SET expires_ms = $1 WHERE holder = $2 RETURNING unit, epoch"
        )
        .bind(now + ttl_ms)
        .bind(holder)
        .fetch_all(ex)
        .await)?)
    }

    /// Gives `unit` up, if `holder` still has it at `epoch`, so another
    /// replica can take it at once.
    pub async fn release(&self, unit: &str, holder: &str, epoch: i64) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        on_pool!(self, |ex| {
            sqlx::query(
            "UPDATE leases SET holder = '', expires_ms = 0 WHERE unit = $1 AND holder = $2 AND epoch = $3"
        )
        .bind(unit)
        .bind(holder)
        .bind(epoch)
        .execute(ex)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Every lease, by unit.
    pub async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        Ok(on_pool!(self, |ex| sqlx::query_as(
            "SELECT unit, holder, epoch, expires_ms FROM leases ORDER BY unit"
        )
        .fetch_all(ex)
        .await)?)
    }

    /// Records that replica `id` is alive (joining if new), and forgets
    /// replicas unseen for [`FORGET_AFTER_MS`].
    pub async fn heartbeat(&self, id: &str, api: &str) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let _turn = crate::outbox::turn(self).await;
        on_pool!(self, |ex| sqlx::query(
            "INSERT INTO replicas (id, api, started_ms, seen_ms) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET seen_ms = excluded.seen_ms"
        )
        .bind(id)
        .bind(api)
        .bind(now)
        .execute(ex)
        .await
        .map(|_| ()))?;
        on_pool!(self, |ex| sqlx::query(
            "DELETE FROM replicas WHERE seen_ms < $1"
        )
        .bind(now - FORGET_AFTER_MS)
        .execute(ex)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Replicas seen within `within_ms`, oldest first (a read only: the
    /// rows of replicas long gone are removed by [`Store::heartbeat`]).
    pub async fn replicas(&self, within_ms: i64) -> Result<Vec<ReplicaRow>, StoreError> {
        let since = self.db_now_ms().await? - within_ms;
        Ok(on_pool!(self, |ex| sqlx::query_as(
            "SELECT id, api, started_ms, seen_ms FROM replicas WHERE seen_ms >= $1 \
             ORDER BY started_ms, id"
        )
        .bind(since)
        .fetch_all(ex)
        .await)?)
    }

    /// Removes replica `id`'s row (it is shutting down).
    pub async fn leave(&self, id: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        on_pool!(self, |ex| sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(id)
            .execute(ex)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// This handle without its fence (lease bookkeeping itself, and the
    /// combined writer, which checks each write's own fence).
    pub(crate) fn unfenced(&self) -> Store {
        Store {
            fence: None,
            ..self.clone()
        }
    }
}
