//! The audit trail and policies' spend counters.
//!
//! Every admin action and every transaction request, accepted or refused,
//! is one row: who (token id and label), what, on what, when, and how it
//! ended. Rows hold no secret — the API writes labels and ids, never
//! tokens. The spend counters add up, per UTC day, what each token and
//! each account has been allowed to move, so a daily cap holds across
//! restarts.

use serde::Serialize;

use ethgate_core::AuditEnvelope;

use crate::{Store, StoreError};

/// The outbox stream the trail is delivered from, once registered.
pub const AUDIT_STREAM: &str = "audit";

pub use ethgate_core::audit::{Action, Outcome};

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// Writes `entries` in `db`'s transaction and, when the `audit` stream is
/// registered, their envelopes to the outbox; whether it did.
async fn insert_rows(
    db: &mut crate::outbox::WriteTx,
    entries: &[AuditEntry],
) -> Result<bool, StoreError> {
    db.conn().in_order(crate::db::Ordered::Audit).await?;
    let now = now_ms();
    let mut rows = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(100) {
        let mut ids: Vec<(i64, i64)> = crate::db::on_tx!(db, |ex, DB| {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "INSERT INTO audit (at_ms, token_id, label, action, target, outcome, detail) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(if e.at_ms == 0 { now } else { e.at_ms })
                    .push_bind(e.token_id.clone())
                    .push_bind(e.label.clone())
                    .push_bind(e.action.as_str())
                    .push_bind(e.target.clone())
                    .push_bind(e.outcome.as_str())
                    .push_bind(e.detail.clone());
            });
            q.push(" RETURNING id, at_ms");
            q.build_query_as().fetch_all(ex).await
        })?;
        // RETURNING's order is unspecified; ids follow the VALUES order.
        ids.sort_unstable();
        rows.extend(ids);
    }
    let registered: Option<i64> = crate::db::on_tx!(db, |ex, DB| sqlx::query_scalar(
        crate::db::locked!(DB, "SELECT next_seq FROM streams WHERE name = $1")
    )
    .bind(AUDIT_STREAM)
    .fetch_optional(ex)
    .await)?;
    if registered.is_none() {
        return Ok(false);
    }
    let mut payload = Vec::new();
    for (e, (id, at_ms)) in entries.iter().zip(rows) {
        let envelope = AuditEnvelope {
            id: format!("audit:{id}"),
            kind: "audit".into(),
            at_ms,
            token_id: e.token_id.clone(),
            label: e.label.clone(),
            action: e.action,
            target: e.target.clone(),
            outcome: e.outcome,
            detail: e.detail.clone(),
            seq: None,
        };
        let json = serde_json::to_string(&envelope).map_err(|e| StoreError::Corrupt {
            what: "audit envelope",
            detail: e.to_string(),
        })?;
        crate::codec::encode_audit(&json, &mut payload);
    }
    crate::tx::append_segment(db, AUDIT_STREAM, payload, entries.len() as i64).await?;
    Ok(true)
}

/// What `who` has been allowed to move on `day` and `chain`, wei.
async fn spent(
    tx: &mut crate::outbox::WriteTx,
    day: i64,
    chain: &str,
    who: &str,
) -> Result<u128, StoreError> {
    let r: Option<(String,)> = crate::db::on_tx!(tx, |ex| sqlx::query_as(
        "SELECT wei FROM policy_spend WHERE day = $1 AND chain = $2 AND who = $3"
    )
    .bind(day)
    .bind(chain)
    .bind(who)
    .fetch_optional(ex)
    .await)?;
    Ok(r.and_then(|(w,)| w.parse().ok()).unwrap_or(0))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// Appends an entry (its `id` and, when 0, `at_ms` are set here); when
    /// the `audit` stream is registered (a sink receives the trail), its
    /// envelope goes to the outbox in the same transaction.
    pub async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.audit_many(std::slice::from_ref(e)).await
    }

    /// Appends entries in one transaction, as [`Store::audit`] does one.
    pub async fn audit_many(&self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut db = crate::outbox::begin(self).await?;
        let delivered = insert_rows(&mut db, entries).await?;
        db.commit().await?;
        if delivered {
            self.notify();
        }
        Ok(())
    }

    /// Entries after `after`, oldest first, at most `limit`.
    pub async fn audit_since(&self, after: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows: Vec<Row> = crate::db::on_pool!(self, |ex| sqlx::query_as(
            "SELECT id, at_ms, token_id, label, action, target, outcome, detail \
             FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(ex)
        .await)?;
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
        let r: Option<(Option<String>,)> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT token_id FROM audit WHERE target = $1 AND action = $2 AND outcome = 'accepted' \
             ORDER BY id LIMIT 1",
        )
        .bind(target)
        .bind(action.as_str())
        .fetch_optional(ex)
        .await
        })?;
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
            match spent(&mut tx, day, chain, who).await?.checked_add(amount) {
                Some(total) if total <= *cap => next.push(total),
                _ => return Ok(Err(i)),
            }
        }
        for ((who, _), total) in whos.iter().zip(next) {
            crate::db::on_tx!(tx, |ex| sqlx::query(
                "INSERT INTO policy_spend (day, chain, who, wei) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (day, chain, who) DO UPDATE SET wei = excluded.wei",
            )
            .bind(day)
            .bind(chain)
            .bind(who)
            .bind(total.to_string())
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))?;
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
            let left = spent(&mut tx, day, chain, who)
                .await?
                .saturating_sub(amount);
            crate::db::on_tx!(tx, |ex| sqlx::query(
                "UPDATE policy_spend SET wei = $1 WHERE day = $2 AND chain = $3 AND who = $4"
            )
            .bind(left.to_string())
            .bind(day)
            .bind(chain)
            .bind(who)
            .execute(ex)
            .await
            .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        Ok(())
    }
}
