//! Bearer tokens with scopes. A token is shown once when created; the store
//! keeps only its SHA-256, so a leaked database leaks no usable token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{ApiError, ApiState};

/// A permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read streams and their events.
    EventsRead,
    /// Submit and cancel transactions.
    TxWrite,
    /// Everything, including operator actions.
    Admin,
}

impl Scope {
    /// Every scope, for validation and help text.
    pub const ALL: [Scope; 3] = [Scope::EventsRead, Scope::TxWrite, Scope::Admin];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsRead => "events:read",
            Scope::TxWrite => "tx:write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A new random token (`egt_` + 64 hex chars) and its public id.
pub fn new_token() -> (String, String) {
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rand::rng().fill_bytes(&mut id);
    (
        format!("tok_{}", hex::encode(id)),
        format!("egt_{}", hex::encode(secret)),
    )
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Recently checked tokens by hash, so a busy client does not cost a
/// database read per request. Entries live [`TOKEN_TTL`]: a token created
/// or changed in the store is seen within that time.
#[derive(Clone, Default)]
pub struct TokenCache(
    std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (Caller, std::time::Instant)>>,
    >,
);

/// How long a checked token is trusted without asking the store again.
pub const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        let map = self.0.lock().ok()?;
        map.get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_TTL)
            .map(|(c, _)| c.clone())
    }

    fn put(&self, hash: String, caller: &Caller) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
            }
            map.insert(hash, (caller.clone(), std::time::Instant::now()));
        }
    }
}

/// The caller's scopes, from a valid bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token id.
    pub token_id: String,
    scopes: Vec<String>,
}

impl Caller {
    /// Refuses unless the token has `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self
            .scopes
            .iter()
            .any(|s| s == scope.as_str() || s == Scope::Admin.as_str())
        {
            Ok(())
        } else {
            Err(ApiError::forbidden(scope.as_str()))
        }
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("missing Authorization: Bearer <token> header")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization header must be \"Bearer <token>\"")
            })?;
        let hash = hash_token(token);
        if let Some(caller) = state.tokens.get(&hash) {
            return Ok(caller);
        }
        let row = state
            .store
            .token_by_hash(&hash)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
        let caller = Caller {
            token_id: row.id,
            scopes: row.scopes,
        };
        state.tokens.put(hash, &caller);
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_hide_them() {
        let (id1, t1) = new_token();
        let (id2, t2) = new_token();
        assert_ne!(t1, t2);
        assert_ne!(id1, id2);
        assert!(t1.starts_with("egt_") && t1.len() == 68);
        let h = hash_token(&t1);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&t1[4..]));
        assert_eq!(h, hash_token(&t1));
    }

    #[test]
    fn scopes_round_trip_and_admin_implies_all() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("root"), None);
        let admin = Caller {
            token_id: "t".into(),
            scopes: vec!["admin".into()],
        };
        assert!(admin.require(Scope::TxWrite).is_ok());
        let reader = Caller {
            token_id: "t".into(),
            scopes: vec!["events:read".into()],
        };
        assert!(reader.require(Scope::EventsRead).is_ok());
        assert_eq!(
            reader
                .require(Scope::Admin)
                .err()
                .map(|e| e.status().as_u16()),
            Some(403)
        );
    }
}
