//! Pool membership, rotations and top-ups: the records that make a
//! rotation resumable after a crash and keep the daily top-up cap across
//! restarts. The rules (what a rotation does next, when to top up) live in
//! the accounts crate; this module only reads and writes.

use sqlx::Row;

use crate::{Store, StoreError, now_secs};

/// A member of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// Lower-case hex address.
    pub address: String,
    /// Keystore file name in the pool's directory; empty for an account
    /// configured in `[[accounts]]`.
    pub keystore: String,
    /// `new`, `active`, `retiring` or `retired`.
    pub state: String,
    /// The rotation that created it.
    pub rotation: Option<String>,
}

/// A rotation's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRow {
    /// Id.
    pub id: String,
    /// Pool.
    pub pool: String,
    /// The step it is at.
    pub step: String,
    /// The members it replaces (JSON array of addresses).
    pub old: String,
    /// Retry counter, part of the idempotency keys of its transactions.
    pub attempt: u32,
    /// Why it is stuck, if it is.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

fn rotation_row(r: &sqlx::sqlite::SqliteRow) -> Result<RotationRow, StoreError> {
    Ok(RotationRow {
        id: r.try_get("id")?,
        pool: r.try_get("pool")?,
        step: r.try_get("step")?,
        old: r.try_get("old")?,
        attempt: r.try_get::<i64, _>("attempt")? as u32,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Store {
    /// A pool's members, oldest first.
    pub async fn pool_members(&self, pool: &str) -> Result<Vec<MemberRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, keystore, state, rotation FROM pool_members WHERE pool = ? ORDER BY created_at, address",
        )
        .bind(pool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MemberRow {
                    address: r.try_get("address")?,
                    keystore: r.try_get("keystore")?,
                    state: r.try_get("state")?,
                    rotation: r.try_get("rotation")?,
                })
            })
            .collect()
    }

    /// Adds a member (no change if it is already there).
    pub async fn add_pool_member(&self, pool: &str, member: &MemberRow) -> Result<(), StoreError> {
        let now = now_secs();
        let _turn = crate::outbox::turn(self).await;
        sqlx::query(
            "INSERT INTO pool_members (pool, address, keystore, state, rotation, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pool, address) DO NOTHING",
        )
        .bind(pool)
        .bind(&member.address)
        .bind(&member.keystore)
        .bind(&member.state)
        .bind(&member.rotation)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets the state of the listed members, and optionally moves the
    /// rotation to `step`, in one transaction: a pool switch and the
    /// rotation's progress are never seen apart.
    pub async fn set_member_states(
        &self,
        pool: &str,
        changes: &[(&str, &str)],
        rotation: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let mut tx = crate::outbox::begin(self).await?;
        for (address, state) in changes {
            sqlx::query(
                "UPDATE pool_members SET state = ?, updated_at = ? WHERE pool = ? AND address = ?",
            )
            .bind(state)
            .bind(now)
            .bind(pool)
            .bind(address)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((id, step)) = rotation {
            sqlx::query("UPDATE rotations SET step = ?, error = NULL, updated_at = ? WHERE id = ?")
                .bind(step)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pool's unfinished rotation, or else its latest one.
    pub async fn rotation(&self, pool: &str) -> Result<Option<RotationRow>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM rotations WHERE pool = ? ORDER BY (step = 'done'), created_at DESC LIMIT 1",
        )
        .bind(pool)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rotation_row).transpose()
    }

    /// Starts a rotation of `old`, unless one is unfinished: then that one
    /// is returned (with its attempt bumped and error cleared when it was
    /// stuck, so re-running a rotation retries the failed step). A
    /// rotation already started under `request_key` — finished or not — is
    /// returned as it is: a repeated request never rotates twice.
    pub async fn start_rotation(
        &self,
        id: &str,
        pool: &str,
        old: &str,
        request_key: Option<&str>,
    ) -> Result<RotationRow, StoreError> {
        let now = now_secs();
        let mut tx = crate::outbox::begin(self).await?;
        if let Some(key) = request_key {
            let row = sqlx::query("SELECT * FROM rotations WHERE pool = ? AND request_key = ?")
                .bind(pool)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = row {
                tx.commit().await?;
                return rotation_row(&row);
            }
        }
        sqlx::query(
            "UPDATE rotations SET attempt = attempt + 1, error = NULL, updated_at = ? \
             WHERE pool = ? AND step <> 'done' AND error IS NOT NULL",
        )
        .bind(now)
        .bind(pool)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO rotations (id, pool, step, old, request_key, created_at, updated_at) VALUES (?, ?, 'keys', ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(pool)
        .bind(old)
        .bind(request_key)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM rotations WHERE pool = ? AND step <> 'done'")
            .bind(pool)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        rotation_row(&row)
    }

    /// Moves a rotation to `step`.
    pub async fn set_rotation_step(&self, id: &str, step: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        sqlx::query("UPDATE rotations SET step = ?, error = NULL, updated_at = ? WHERE id = ?")
            .bind(step)
            .bind(now_secs())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records why a rotation cannot go on (an operator re-runs it).
    pub async fn set_rotation_error(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        sqlx::query("UPDATE rotations SET error = ?, updated_at = ? WHERE id = ?")
            .bind(error)
            .bind(now_secs())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a top-up request (no change if already recorded).
    pub async fn add_top_up(
        &self,
        tx_id: &str,
        pool: &str,
        address: &str,
        amount: u128,
        day: i64,
    ) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        sqlx::query(
            "INSERT INTO top_ups (tx_id, pool, address, amount, day, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tx_id) DO NOTHING",
        )
        .bind(tx_id)
        .bind(pool)
        .bind(address)
        .bind(amount.to_string())
        .bind(day)
        .bind(now_secs())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A pool's top-ups on `day`: (transaction id, address, amount, its
    /// request's status).
    pub async fn top_ups(
        &self,
        pool: &str,
        day: i64,
    ) -> Result<Vec<(String, String, u128, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.tx_id, t.address, t.amount, COALESCE(r.status, 'unknown') AS status \
             FROM top_ups t LEFT JOIN tx_requests r ON r.id = t.tx_id \
             WHERE t.pool = ? AND t.day = ? ORDER BY t.created_at, t.tx_id",
        )
        .bind(pool)
        .bind(day)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let amount: String = r.try_get("amount")?;
                Ok((
                    r.try_get("tx_id")?,
                    r.try_get("address")?,
                    amount.parse().unwrap_or(0),
                    r.try_get("status")?,
                ))
            })
            .collect()
    }

    /// How many requests `sender` has not finished (queued, pending, mined).
    pub async fn open_count(&self, chain_id: u64, sender: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tx_requests WHERE chain_id = ? AND sender = ? AND status IN ('queued', 'pending', 'mined')",
        )
        .bind(crate::to_i64(chain_id))
        .bind(sender)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }
}
