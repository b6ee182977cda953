//! Pool membership, rotations and top-ups: the records that make a
//! rotation resumable after a crash and keep the daily top-up cap across
//! restarts. The rules (what a rotation does next, when to top up) live in
//! the accounts crate; this module only reads and writes.

use ethgate_core::{MemberState, RotationStep, TxStatus};

use crate::{Store, StoreError, now_secs};

/// A member of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// Lower-case hex address.
    pub address: String,
    /// Keystore file name in the pool's directory; empty for an account
    /// configured in `[[accounts]]`.
    pub keystore: String,
    /// Its place in the rotation life cycle.
    pub state: MemberState,
    /// The rotation that created it.
    pub rotation: Option<String>,
}

/// A top-up requested for a pool member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopUpRow {
    /// The transaction request that carries it.
    pub tx_id: String,
    /// The member topped up, lower-case hex.
    pub address: String,
    /// Wei.
    pub amount: u128,
    /// Its request's status; `None` if the request is not in the store.
    pub status: Option<TxStatus>,
}

/// A rotation's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRow {
    /// Id.
    pub id: String,
    /// Pool.
    pub pool: String,
    /// The step it is at.
    pub step: RotationStep,
    /// The members it replaces, lower-case hex.
    pub old: Vec<String>,
    /// Retry counter, part of the idempotency keys of its transactions.
    pub attempt: u32,
    /// Why it is stuck, if it is.
    pub error: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A `rotations` row as stored.
#[derive(sqlx::FromRow)]
struct RawRotation {
    id: String,
    pool: String,
    step: String,
    old: String,
    attempt: i64,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn rotation_row(r: RawRotation) -> Result<RotationRow, StoreError> {
    Ok(RotationRow {
        id: r.id,
        pool: r.pool,
        step: RotationStep::parse(&r.step).ok_or_else(|| StoreError::Corrupt {
            what: "rotations.step",
            detail: r.step.clone(),
        })?,
        old: serde_json::from_str(&r.old).map_err(|e| StoreError::Corrupt {
            what: "rotations.old",
            detail: e.to_string(),
        })?,
        attempt: u32::try_from(r.attempt).map_err(|_| StoreError::Corrupt {
            what: "rotations.attempt",
            detail: r.attempt.to_string(),
        })?,
        error: r.error,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// The columns [`RawRotation`] reads.
const ROTATION: &str =
    "SELECT id, pool, step, old, attempt, error, created_at, updated_at FROM rotations";

impl Store {
    /// A pool's members, oldest first.
    pub async fn pool_members(&self, pool: &str) -> Result<Vec<MemberRow>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>)> = crate::db::on_pool!(
            self,
            |ex| {
                sqlx::query_as(
            "SELECT address, keystore, state, rotation FROM pool_members WHERE pool = $1 ORDER BY created_at, address",
        )
        .bind(pool)
        .fetch_all(ex)
        .await
            }
        )?;
        rows.into_iter()
            .map(|(address, keystore, state, rotation)| {
                Ok(MemberRow {
                    address,
                    keystore,
                    state: MemberState::parse(&state).ok_or(StoreError::Corrupt {
                        what: "pool_members.state",
                        detail: state,
                    })?,
                    rotation,
                })
            })
            .collect()
    }

    /// Adds a member (no change if it is already there).
    pub async fn add_pool_member(&self, pool: &str, member: &MemberRow) -> Result<(), StoreError> {
        let now = now_secs();
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| {
            sqlx::query(
            "INSERT INTO pool_members (pool, address, keystore, state, rotation, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (pool, address) DO NOTHING",
        )
        .bind(pool)
        .bind(&member.address)
        .bind(&member.keystore)
        .bind(member.state.as_str())
        .bind(&member.rotation)
        .bind(now)
        .bind(now)
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Sets the state of the listed members, and optionally moves the
    /// rotation to `step`, in one transaction: a pool switch and the
    /// rotation's progress are never seen apart.
    pub async fn set_member_states(
        &self,
        pool: &str,
        changes: &[(&str, MemberState)],
        rotation: Option<(&str, RotationStep)>,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let mut tx = crate::outbox::begin(self).await?;
        for (address, state) in changes {
            crate::db::on_tx!(tx, |ex| {
                sqlx::query(
                "UPDATE pool_members SET state = $1, updated_at = $2 WHERE pool = $3 AND address = $4",
            )
            .bind(state.as_str())
            .bind(now)
            .bind(pool)
            .bind(address)
            .execute(ex)
            .await
            .map(|r| r.rows_affected())
            })?;
        }
        if let Some((id, step)) = rotation {
            crate::db::on_tx!(tx, |ex| sqlx::query(
                "UPDATE rotations SET step = $1, error = NULL, updated_at = $2 WHERE id = $3"
            )
            .bind(step.as_str())
            .bind(now)
            .bind(id)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The pool's unfinished rotation, or else its latest one.
    pub async fn rotation(&self, pool: &str) -> Result<Option<RotationRow>, StoreError> {
        let row: Option<RawRotation> =
            crate::db::on_pool!(self, |ex| sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{ROTATION} WHERE pool = $1 ORDER BY (step = 'done'), created_at DESC LIMIT 1",
            )))
            .bind(pool)
            .fetch_optional(ex)
            .await)?;
        row.map(rotation_row).transpose()
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
        old: &[String],
        request_key: Option<&str>,
    ) -> Result<RotationRow, StoreError> {
        let now = now_secs();
        let old = serde_json::Value::from(old).to_string();
        let mut tx = crate::outbox::begin(self).await?;
        if let Some(key) = request_key {
            let row: Option<RawRotation> = crate::db::on_tx!(tx, |ex| sqlx::query_as(
                sqlx::AssertSqlSafe(format!("{ROTATION} WHERE pool = $1 AND request_key = $2"))
            )
            .bind(pool)
            .bind(key)
            .fetch_optional(ex)
            .await)?;
            if let Some(row) = row {
                tx.commit().await?;
                return rotation_row(row);
            }
        }
        crate::db::on_tx!(tx, |ex| sqlx::query(
            "UPDATE rotations SET attempt = attempt + 1, error = NULL, updated_at = $1 \
             WHERE pool = $2 AND step <> 'done' AND error IS NOT NULL",
        )
        .bind(now)
        .bind(pool)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        crate::db::on_tx!(tx, |ex| {
            sqlx::query(
            "INSERT INTO rotations (id, pool, step, old, request_key, created_at, updated_at) VALUES ($1, $2, 'keys', $3, $4, $5, $6) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(pool)
        .bind(&old)
        .bind(request_key)
        .bind(now)
        .bind(now)
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        let row: RawRotation = crate::db::on_tx!(tx, |ex| sqlx::query_as(sqlx::AssertSqlSafe(
            format!("{ROTATION} WHERE pool = $1 AND step <> 'done'")
        ))
        .bind(pool)
        .fetch_one(ex)
        .await)?;
        tx.commit().await?;
        rotation_row(row)
    }

    /// Moves a rotation to `step`.
    pub async fn set_rotation_step(&self, id: &str, step: RotationStep) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE rotations SET step = $1, error = NULL, updated_at = $2 WHERE id = $3"
        )
        .bind(step.as_str())
        .bind(now_secs())
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records why a rotation cannot go on (an operator re-runs it).
    pub async fn set_rotation_error(&self, id: &str, error: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE rotations SET error = $1, updated_at = $2 WHERE id = $3"
        )
        .bind(error)
        .bind(now_secs())
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
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
        crate::db::on_pool!(self, |ex| {
            sqlx::query(
            "INSERT INTO top_ups (tx_id, pool, address, amount, day, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tx_id) DO NOTHING",
        )
        .bind(tx_id)
        .bind(pool)
        .bind(address)
        .bind(amount.to_string())
        .bind(day)
        .bind(now_secs())
        .execute(ex)
        .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// A pool's top-ups on `day`, oldest first.
    pub async fn top_ups(&self, pool: &str, day: i64) -> Result<Vec<TopUpRow>, StoreError> {
        let rows: Vec<(String, String, String, Option<String>)> =
            crate::db::on_pool!(self, |ex| sqlx::query_as(
                "SELECT t.tx_id, t.address, t.amount, r.status \
             FROM top_ups t LEFT JOIN tx_requests r ON r.id = t.tx_id \
             WHERE t.pool = $1 AND t.day = $2 ORDER BY t.created_at, t.tx_id",
            )
            .bind(pool)
            .bind(day)
            .fetch_all(ex)
            .await)?;
        rows.into_iter()
            .map(|(tx_id, address, amount, status)| {
                let amount = amount.parse().map_err(|_| StoreError::Corrupt {
                    what: "top_ups.amount",
                    detail: amount.clone(),
                })?;
                let status = match status {
                    None => None,
                    Some(word) => Some(TxStatus::parse(&word).ok_or(StoreError::Corrupt {
                        what: "tx_requests.status",
                        detail: word,
                    })?),
                };
                Ok(TopUpRow {
                    tx_id,
                    address,
                    amount,
                    status,
                })
            })
            .collect()
    }

    /// How many requests `sender` has not finished (queued, pending, mined).
    pub async fn open_count(&self, chain_id: u64, sender: &str) -> Result<u64, StoreError> {
        let n: i64 = crate::db::on_pool!(self, |ex| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM tx_requests WHERE chain_id = $1 AND sender = $2 AND status IN ('queued', 'pending', 'mined')",
        )
        .bind(crate::to_i64(chain_id))
        .bind(sender)
        .fetch_one(ex)
        .await
        })?;
        Ok(n as u64)
    }
}
