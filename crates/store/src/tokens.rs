//! API token hashes. The token itself is shown once when created and never
//! stored; a request's bearer token is hashed and looked up. A token names
//! scopes or a policy, may expire, and is revoked by marking it (so the
//! audit trail can still name it).

use crate::{Store, StoreError, now_secs};

/// A token to record.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    /// Public id, for listing and revoking.
    pub id: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Granted scopes (empty when a policy decides).
    pub scopes: Vec<String>,
    /// Operator's label.
    pub label: String,
    /// A `[[policies]]` name, when the token carries one.
    pub policy: Option<String>,
    /// Unix seconds after which it is refused.
    pub expires_at: Option<i64>,
}

/// A stored token, without the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id, for listing and revoking.
    pub id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Operator's label.
    pub label: String,
    /// Its policy's name, if any.
    pub policy: Option<String>,
    /// Unix seconds it was created.
    pub created_at: i64,
    /// Unix seconds after which it is refused.
    pub expires_at: Option<i64>,
    /// Unix seconds it was revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds it was last seen (to the minute).
    pub last_used_at: Option<i64>,
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn row(
    (id, scopes, label, policy, created_at, expires_at, revoked_at, last_used_at): Row,
) -> TokenRow {
    TokenRow {
        id,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        label,
        policy,
        created_at,
        expires_at,
        revoked_at,
        last_used_at,
    }
}

impl Store {
    /// Records a token by its hash.
    pub async fn insert_token(&self, t: &NewToken) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "INSERT INTO api_tokens (id, hash, scopes, label, policy, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.hash)
        .bind(t.scopes.join(" "))
        .bind(&t.label)
        .bind(&t.policy)
        .bind(t.expires_at)
        .bind(now_secs())
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The unrevoked token with this hash, if any (expiry is the caller's
    /// to judge, so it can say why it refuses).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let r: Option<Row> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT id, scopes, label, policy, created_at, expires_at, revoked_at, last_used_at \
             FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(ex)
        .await
        })?;
        Ok(r.map(row))
    }

    /// Every token, oldest first, revoked ones included.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows: Vec<Row> = crate::db::on_pool!(self, |ex| {
            sqlx::query_as(
            "SELECT id, scopes, label, policy, created_at, expires_at, revoked_at, last_used_at \
             FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(ex)
        .await
        })?;
        Ok(rows.into_iter().map(row).collect())
    }

    /// Revokes a token by id; `false` when there is no such unrevoked token.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let _turn = crate::outbox::turn(self).await;
        let done = crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL"
        )
        .bind(now_secs())
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Notes that a token was used now.
    pub async fn touch_token(&self, id: &str) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        crate::db::on_pool!(self, |ex| sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"
        )
        .bind(now_secs())
        .bind(id)
        .execute(ex)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
