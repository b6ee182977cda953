//! API token hashes. The token itself is shown once when created and never
//! stored; a request's bearer token is hashed and looked up.

use crate::{Store, StoreError, now_secs};

/// A stored token, without the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Public id, for listing and revoking.
    pub id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Operator's label.
    pub label: String,
}

impl Store {
    /// Records a token by its hash.
    pub async fn insert_token(
        &self,
        id: &str,
        hash: &str,
        scopes: &[String],
        label: &str,
    ) -> Result<(), StoreError> {
        let _turn = crate::outbox::turn(self).await;
        sqlx::query(
            "INSERT INTO api_tokens (id, hash, scopes, label, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(hash)
        .bind(scopes.join(" "))
        .bind(label)
        .bind(now_secs())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The token with this hash, if any.
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT id, scopes, label FROM api_tokens WHERE hash = ?")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, scopes, label)| TokenRow {
            id,
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
            label,
        }))
    }
}
