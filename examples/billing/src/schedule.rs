//! The back end's own state, in its own SQLite file: each billing's terms,
//! when it is next due, the charge in flight, and what each heard event
//! changed — so a retraction (a reorg) can undo exactly that.
//!
//! Every change happens in one database transaction with the record of
//! the event that caused it, so a message redelivered after a crash (the
//! broker redelivers what was not acknowledged) changes nothing twice.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, Sqlite, Transaction};

/// A billing the back end charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Billing {
    /// The id the customer chose, decimal.
    pub id: String,
    /// Seconds between charges.
    pub period: i64,
    /// Chain time of the next charge; `None` until the first is heard.
    pub next_charge_at: Option<i64>,
    /// Failed attempts at the current due charge.
    pub attempt: i64,
    /// Chain time before which no new attempt is made.
    pub retry_at: i64,
    /// The charge transaction in flight, if any.
    pub pending_tx: Option<String>,
}

/// What one heard event did to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// `BillingAllowed`: a new billing.
    Allowed {
        /// Seconds between charges.
        period: i64,
    },
    /// `BillingCharged`: the next charge's time.
    Charged {
        /// Chain time of the next charge.
        next_charge_at: i64,
    },
    /// `BillingCanceled`.
    Canceled,
}

/// The schedule.
#[derive(Clone)]
pub struct Schedule {
    pool: SqlitePool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS billings (
    id TEXT PRIMARY KEY,
    period INTEGER NOT NULL,
    next_charge_at INTEGER,
    canceled INTEGER NOT NULL DEFAULT 0,
    attempt INTEGER NOT NULL DEFAULT 0,
    retry_at INTEGER NOT NULL DEFAULT 0,
    pending_tx TEXT,
    given_up_due INTEGER
);
CREATE TABLE IF NOT EXISTS heard (
    event_id TEXT PRIMARY KEY,
    billing_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    prev_next INTEGER,
    prev_canceled INTEGER
);";

impl Schedule {
    /// Opens (creating) the file.
    pub async fn open(path: &str) -> anyhow::Result<Schedule> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Schedule { pool })
    }

    /// Applies an event once; `false` when it was applied before.
    pub async fn apply(&self, event_id: &str, billing: &str, heard: Heard) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let seen = sqlx::query("SELECT 1 FROM heard WHERE event_id = ?")
            .bind(event_id)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Ok(false);
        }
        let prev = sqlx::query("SELECT next_charge_at, canceled FROM billings WHERE id = ?")
            .bind(billing)
            .fetch_optional(&mut *tx)
            .await?;
        let prev_next: Option<i64> = prev.as_ref().and_then(|r| r.get(0));
        let prev_canceled: Option<i64> = prev.as_ref().map(|r| r.get(1));
        let kind = match heard {
            Heard::Allowed { period } => {
                sqlx::query(
                    "INSERT INTO billings (id, period) VALUES (?, ?)
                     ON CONFLICT (id) DO UPDATE SET period = excluded.period, canceled = 0",
                )
                .bind(billing)
                .bind(period)
                .execute(&mut *tx)
                .await?;
                "allowed"
            }
            Heard::Charged { next_charge_at } => {
                set_next(&mut tx, billing, Some(next_charge_at)).await?;
                "charged"
            }
            Heard::Canceled => {
                set_canceled(&mut tx, billing, 1).await?;
                "canceled"
            }
        };
        sqlx::query("INSERT INTO heard VALUES (?, ?, ?, ?, ?)")
            .bind(event_id)
            .bind(billing)
            .bind(kind)
            .bind(prev_next)
            .bind(prev_canceled)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Undoes what a retracted event did; `false` when it was never
    /// applied (or was undone before).
    pub async fn retract(&self, event_id: &str) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT billing_id, kind, prev_next, prev_canceled FROM heard WHERE event_id = ?",
        )
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let billing: String = row.get(0);
        let kind: String = row.get(1);
        match kind.as_str() {
            "allowed" => {
                sqlx::query("DELETE FROM billings WHERE id = ?")
                    .bind(&billing)
                    .execute(&mut *tx)
                    .await?;
            }
            "charged" => set_next(&mut tx, &billing, row.get(2)).await?,
            _ => set_canceled(&mut tx, &billing, row.get::<Option<i64>, _>(3).unwrap_or(0)).await?,
        }
        sqlx::query("DELETE FROM heard WHERE event_id = ?")
            .bind(event_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Billings due at chain time `now`, not given up, with no charge in
    /// flight and past their retry time.
    pub async fn due(&self, now: i64, limit: i64) -> anyhow::Result<Vec<Billing>> {
        let rows = sqlx::query(
            "SELECT id, period, next_charge_at, attempt, retry_at, pending_tx FROM billings
             WHERE canceled = 0 AND next_charge_at IS NOT NULL AND next_charge_at <= ?1
               AND retry_at <= ?1 AND pending_tx IS NULL
               AND (given_up_due IS NULL OR given_up_due != next_charge_at)
             ORDER BY next_charge_at LIMIT ?2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(billing_of).collect())
    }

    /// One billing, canceled or not.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<(Billing, bool)>> {
        let row = sqlx::query(
            "SELECT id, period, next_charge_at, attempt, retry_at, pending_tx, canceled FROM billings WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| (billing_of(&r), r.get::<i64, _>(6) != 0)))
    }

    /// Every active billing's next charge time, by id.
    pub async fn next_dates(&self) -> anyhow::Result<Vec<(String, Option<i64>)>> {
        let rows =
            sqlx::query("SELECT id, next_charge_at FROM billings WHERE canceled = 0 ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records the charge transaction submitted for a billing.
    pub async fn submitted(&self, id: &str, tx_id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE billings SET pending_tx = ? WHERE id = ?")
            .bind(tx_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A charge transaction ended without charging: the next attempt uses
    /// a new key, no sooner than `retry_at`; past the charge window
    /// (`give_up`) the due charge is given up. Returns whether it was.
    pub async fn failed(
        &self,
        id: &str,
        tx_id: &str,
        retry_at: i64,
        give_up: bool,
    ) -> anyhow::Result<bool> {
        let r = sqlx::query(
            "UPDATE billings SET pending_tx = NULL, attempt = attempt + 1, retry_at = ?,
                 given_up_due = CASE WHEN ? THEN next_charge_at ELSE given_up_due END
             WHERE id = ? AND pending_tx = ?",
        )
        .bind(retry_at)
        .bind(give_up)
        .bind(id)
        .bind(tx_id)
        .execute(&self.pool)
        .await?;
        Ok(give_up && r.rows_affected() > 0)
    }

    /// A charge transaction confirmed: nothing is in flight; the
    /// `BillingCharged` event moves the schedule.
    pub async fn confirmed(&self, id: &str, tx_id: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE billings SET pending_tx = NULL WHERE id = ? AND pending_tx = ?")
            .bind(id)
            .bind(tx_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn billing_of(r: &sqlx::sqlite::SqliteRow) -> Billing {
    Billing {
        id: r.get(0),
        period: r.get(1),
        next_charge_at: r.get(2),
        attempt: r.get(3),
        retry_at: r.get(4),
        pending_tx: r.get(5),
    }
}

async fn set_next(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    next: Option<i64>,
) -> anyhow::Result<()> {
    // A new due charge starts with no attempt, nothing in flight.
    sqlx::query(
        "UPDATE billings SET next_charge_at = ?, attempt = 0, retry_at = 0, pending_tx = NULL WHERE id = ?",
    )
    .bind(next)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn set_canceled(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    canceled: i64,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE billings SET canceled = ? WHERE id = ?")
        .bind(canceled)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_apply_once_and_retractions_undo_exactly_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Schedule::open(&dir.path().join("s.db").display().to_string())
            .await
            .expect("open");
        assert!(
            s.apply("e1", "7", Heard::Allowed { period: 60 })
                .await
                .expect("apply")
        );
        let charged = |n| Heard::Charged { next_charge_at: n };
        assert!(s.apply("e2", "7", charged(100)).await.expect("apply"));
        assert!(
            !s.apply("e2", "7", charged(100)).await.expect("again"),
            "a redelivery changes nothing"
        );
        assert!(s.apply("e3", "7", charged(160)).await.expect("apply"));
        let next = |s: Schedule| async move {
            s.get("7")
                .await
                .expect("get")
                .map(|(b, c)| (b.next_charge_at, c))
        };
        assert_eq!(next(s.clone()).await, Some((Some(160), false)));
        // A reorg retracts the last charge: the billing is due again at 100.
        assert!(s.retract("e3").await.expect("retract"));
        assert!(!s.retract("e3").await.expect("again"));
        assert_eq!(next(s.clone()).await, Some((Some(100), false)));
        assert!(s.apply("e4", "7", Heard::Canceled).await.expect("cancel"));
        assert_eq!(next(s.clone()).await, Some((Some(100), true)));
        assert!(s.retract("e4").await.expect("retract cancel"));
        assert_eq!(next(s.clone()).await, Some((Some(100), false)));
        assert_eq!(s.due(100, 10).await.expect("due").len(), 1);
        assert_eq!(s.due(99, 10).await.expect("due").len(), 0);
        assert!(s.retract("e1").await.expect("retract allowed"));
        assert_eq!(
            next(s).await,
            None,
            "a retracted authorization leaves nothing"
        );
    }

    #[tokio::test]
    async fn a_failed_charge_retries_with_a_new_attempt_then_gives_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Schedule::open(&dir.path().join("s.db").display().to_string())
            .await
            .expect("open");
        s.apply("a", "1", Heard::Allowed { period: 60 })
            .await
            .expect("allowed");
        s.apply(
            "c",
            "1",
            Heard::Charged {
                next_charge_at: 100,
            },
        )
        .await
        .expect("charged");
        s.submitted("1", "tx_a").await.expect("submitted");
        assert!(s.due(100, 10).await.expect("due").is_empty(), "in flight");
        assert!(!s.failed("1", "tx_a", 110, false).await.expect("failed"));
        assert!(
            s.due(105, 10).await.expect("due").is_empty(),
            "not before its retry time"
        );
        let again = s.due(110, 10).await.expect("due");
        assert_eq!(again.iter().map(|b| b.attempt).collect::<Vec<_>>(), vec![1]);
        s.submitted("1", "tx_b").await.expect("submitted");
        assert!(
            !s.failed("1", "tx_a", 200, true).await.expect("stale"),
            "an old transaction changes nothing"
        );
        assert!(s.failed("1", "tx_b", 200, true).await.expect("given up"));
        assert!(
            s.due(500, 10).await.expect("due").is_empty(),
            "a given-up charge is not tried again"
        );
    }
}
