//! The audit trail and policies' spend counters.
//!
//! Every admin action and every transaction request, accepted or refused,
//! is one row: who (token id and label), what, on what, when, and how it
//! ended. Rows hold no secret — the API writes labels and ids, never
//! tokens. The spend counters add up, per UTC day, what each token and
//! each account has been allowed to move, so a daily cap holds across
//! restarts.

use serde::Serialize;

use crate::{Store, StoreError};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /v1/transactions`.
    TxSubmit,
    /// A cancel request.
    TxCancel,
    /// A bump request.
    TxBump,
    /// A pool rotation.
    PoolRotate,
    /// A sink cursor moved back.
    SinkRewind,
    /// A dead letter sent again.
    Redeliver,
    /// A token created.
    TokenCreate,
    /// A token revoked.
    TokenRevoke,
}

impl Action {
    /// Every action, for parsing.
    pub const ALL: [Action; 8] = [
        Action::TxSubmit,
        Action::TxCancel,
        Action::TxBump,
        Action::PoolRotate,
        Action::SinkRewind,
        Action::Redeliver,
        Action::TokenCreate,
        Action::TokenRevoke,
    ];

    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::TxSubmit => "tx_submit",
            Action::TxCancel => "tx_cancel",
            Action::TxBump => "tx_bump",
            Action::PoolRotate => "pool_rotate",
            Action::SinkRewind => "sink_rewind",
            Action::Redeliver => "redeliver",
            Action::TokenCreate => "token_create",
            Action::TokenRevoke => "token_revoke",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done or queued.
    Accepted,
    /// Refused by scope, policy or validation.
    Refused,
    /// Allowed but failed.
    Failed,
}

impl Outcome {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Accepted, Outcome::Refused, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the trail (0 before it is recorded).
    pub id: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The token's id; `None` for the command line.
    pub token_id: Option<String>,
    /// The token's label, or `cli`.
    pub label: String,
    /// What.
    pub action: Action,
    /// On what: a transaction id, pool, `stream/sink`, token id.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The refusal's rule, the error, or a short summary.
    pub detail: String,
}

type Row = (
    i64,
    i64,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Appends an entry (its `id` and, when 0, `at_ms` are set here).
    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        sqlx::query(
            "INSERT INTO audit (at_ms, token_id, label, action, target, outcome, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(if e.at_ms == 0 { now_ms() } else { e.at_ms })
        .bind(&e.token_id)
        .bind(&e.label)
        .bind(e.action.as_str())
        .bind(&e.target)
        .bind(e.outcome.as_str())
        .bind(&e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Entries after `after`, oldest first, at most `limit`.
    pub async fn audit_since(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at_ms, token_id, label, action, target, outcome, detail \
             FROM audit WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(
                |(id, at_ms, token_id, label, action, target, outcome, detail)| {
                    Some(AuditEntry {
                        id,
                        at_ms,
                        token_id,
                        label,
                        action: Action::parse(&action)?,
                        target,
                        outcome: Outcome::parse(&outcome)?,
                        detail,
                    })
                },
            )
            .collect())
    }

    /// The token that had `target` accepted by `action` (who submitted a
    /// transaction), if recorded.
    pub async fn audit_actor(
        &self,
        action: Action,
        target: &str,
    ) -> Result<Option<String>, StoreError> {
        let r: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT token_id FROM audit WHERE target = ? AND action = ? AND outcome = 'accepted' \
             ORDER BY id LIMIT 1",
        )
        .bind(target)
        .bind(action.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.and_then(|(t,)| t))
    }

    /// Adds `amount` to each counter of `day` and `chain` in `whos` if
    /// every one stays within its cap; otherwise changes nothing and
    /// returns the index of the first counter that would pass its cap.
    pub async fn spend(
        &self,
        day: i64,
        chain: &str,
        whos: &[(String, u128)],
        amount: u128,
    ) -> Result<Result<(), usize>, StoreError> {
        let mut tx = crate::outbox::begin_urgent(self).await?;
        let mut next = Vec::with_capacity(whos.len());
        for (i, (who, cap)) in whos.iter().enumerate() {
            let r: Option<(String,)> = sqlx::query_as(
                "SELECT wei FROM policy_spend WHERE day = ? AND chain = ? AND who = ?",
            )
            .bind(day)
            .bind(chain)
            .bind(who)
            .fetch_optional(&mut *tx)
            .await?;
            let spent: u128 = r.and_then(|(w,)| w.parse().ok()).unwrap_or(0);
            match spent.checked_add(amount) {
                Some(total) if total <= *cap => next.push(total),
                _ => return Ok(Err(i)),
            }
        }
        for ((who, _), total) in whos.iter().zip(next) {
            sqlx::query(
                "INSERT INTO policy_spend (day, chain, who, wei) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (day, chain, who) DO UPDATE SET wei = excluded.wei",
            )
            .bind(day)
            .bind(chain)
            .bind(who)
            .bind(total.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Gives back `amount` to counters charged by [`Store::spend`] for a
    /// request that was then not accepted.
    pub async fn refund(
        &self,
        day: i64,
        chain: &str,
        whos: &[String],
        amount: u128,
    ) -> Result<(), StoreError> {
        let mut tx = crate::outbox::begin_urgent(self).await?;
        for who in whos {
            let r: Option<(String,)> = sqlx::query_as(
                "SELECT wei FROM policy_spend WHERE day = ? AND chain = ? AND who = ?",
            )
            .bind(day)
            .bind(chain)
            .bind(who)
            .fetch_optional(&mut *tx)
            .await?;
            let spent: u128 = r.and_then(|(w,)| w.parse().ok()).unwrap_or(0);
            sqlx::query("UPDATE policy_spend SET wei = ? WHERE day = ? AND chain = ? AND who = ?")
                .bind(spent.saturating_sub(amount).to_string())
                .bind(day)
                .bind(chain)
                .bind(who)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
