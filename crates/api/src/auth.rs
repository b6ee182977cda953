//! Bearer tokens with scopes. A token is shown once when created; the store
//! keeps only its SHA-256, so a leaked database leaks no usable token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::policy::Policy;
use crate::{ApiError, ApiState};

/// A permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum Scope {
    /// Read streams and their events.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Submit and cancel transactions.
    #[serde(rename = "tx:write")]
    TxWrite,
    /// Everything, including operator actions.
    #[serde(rename = "admin")]
    Admin,
    /// Read chain state: calls, balances, nonces.
    #[serde(rename = "chain:read")]
    ChainRead,
}

impl Scope {
    /// Every scope, for validation and help text.
    pub const ALL: [Scope; 4] = [
        Scope::EventsRead,
        Scope::TxWrite,
        Scope::Admin,
        Scope::ChainRead,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsRead => "events:read",
            Scope::TxWrite => "tx:write",
            Scope::Admin => "admin",
            Scope::ChainRead => "chain:read",
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

/// Per-token state kept in memory: recently checked tokens by hash, so a
/// busy client does not cost a database read per request, and each
/// token's rate-limit bucket. A checked token is trusted [`TOKEN_TTL`]:
/// a token revoked from the command line is refused within that time (at
/// once when revoked through the API).
#[derive(Clone, Default)]
pub struct TokenCache(std::sync::Arc<std::sync::Mutex<CacheInner>>);

#[derive(Default)]
struct CacheInner {
    checked: HashMap<String, (Caller, Instant)>,
    buckets: HashMap<String, (f64, Instant)>,
}

/// How long a checked token is trusted without asking the store again.
pub const TOKEN_TTL: Duration = Duration::from_secs(1);

/// How stale a token's "last used" may get before it is written again.
const TOUCH_EVERY: i64 = 60;

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        let map = self.0.lock().ok()?;
        map.checked
            .get(hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_TTL)
            .map(|(c, _)| c.clone())
    }

    fn put(&self, hash: String, caller: &Caller) {
        if let Ok(mut map) = self.0.lock() {
            if map.checked.len() > 10_000 {
                map.checked.retain(|_, (_, at)| at.elapsed() < TOKEN_TTL);
            }
            map.checked.insert(hash, (caller.clone(), Instant::now()));
        }
    }

    /// Forgets every checked token, so a revocation through the API takes
    /// effect on the next request.
    pub fn forget(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.checked.clear();
        }
    }

    /// Takes one request from the token's bucket (`per_sec` a second,
    /// bursts of twice that); `Err` holds the seconds to wait.
    fn take(&self, token_id: &str, per_sec: u32) -> Result<(), u64> {
        let Ok(mut map) = self.0.lock() else {
            return Ok(());
        };
        let rate = f64::from(per_sec.max(1));
        let burst = rate * 2.0;
        if map.buckets.len() > 10_000 {
            map.buckets
                .retain(|_, (_, at)| at.elapsed() < Duration::from_secs(60));
        }
        let now = Instant::now();
        let (level, at) = map
            .buckets
            .entry(token_id.to_owned())
            .or_insert((burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *level) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// What a request needs the caller to hold.
#[derive(Debug, Clone, Copy)]
pub enum Right<'a> {
    /// Read a stream's status and events.
    ReadStream(&'a str),
    /// Read chain and sink status.
    ReadStatus,
    /// Submit transactions, read and cancel one's own.
    Send,
    /// Read, bump and cancel other tokens' transactions.
    OthersTx,
    /// Start a pool rotation.
    RotatePools,
    /// Create, list and revoke tokens.
    ManageTokens,
    /// Rewind a sink or redeliver its dead letters.
    Sink(&'a str),
    /// Read the audit trail.
    ReadAudit,
    /// Read a sink's dead letters (they hold envelopes).
    ReadDeadLetters(&'a str),
    /// Read a chain's state (calls, balances).
    ReadChain(&'a str),
}

impl Right<'_> {
    /// The scope a scope-only token needs for this right.
    fn scope(self) -> Scope {
        match self {
            Right::ReadStream(s) if s.starts_with("tx.") => Scope::TxWrite,
            Right::ReadStream(_) | Right::ReadStatus | Right::ReadDeadLetters(_) => {
                Scope::EventsRead
            }
            Right::Send | Right::OthersTx => Scope::TxWrite,
            Right::ReadChain(_) => Scope::ChainRead,
            Right::RotatePools | Right::ManageTokens | Right::Sink(_) | Right::ReadAudit => {
                Scope::Admin
            }
        }
    }

    fn name(self) -> String {
        match self {
            Right::ReadStream(s) => format!("reading stream {s:?}"),
            Right::ReadStatus => "reading status".into(),
            Right::Send => "sending transactions".into(),
            Right::OthersTx => "acting on other tokens' transactions".into(),
            Right::RotatePools => "rotating pools".into(),
            Right::ManageTokens => "managing tokens".into(),
            Right::Sink(s) => format!("rewinding or redelivering sink {s:?}"),
            Right::ReadAudit => "reading the audit trail".into(),
            Right::ReadDeadLetters(s) => format!("reading sink {s:?}'s dead letters"),
            Right::ReadChain(c) => format!("reading chain {c:?}'s state"),
        }
    }
}

/// What a token grants: scopes, or a policy.
#[derive(Debug, Clone)]
pub enum Grant {
    /// Coarse scopes; `admin` implies the others.
    Scopes(Vec<Scope>),
    /// A configured policy.
    Policy(Arc<Policy>),
}

/// The caller, from a valid bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Token id.
    pub token_id: String,
    /// Token label, for the audit trail.
    pub label: String,
    /// What it may do.
    pub grant: Grant,
}

impl Caller {
    /// Refuses unless the token has `scope` (or `admin`); a policy token
    /// holds the scope its policy implies.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        match &self.grant {
            Grant::Scopes(s) if s.contains(&scope) || s.contains(&Scope::Admin) => Ok(()),
            Grant::Scopes(_) => Err(ApiError::forbidden(scope.as_str())),
            Grant::Policy(p) => {
                let ok = match scope {
                    Scope::EventsRead => true,
                    Scope::TxWrite => p.may_send(),
                    Scope::Admin | Scope::ChainRead => false,
                };
                if ok {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(scope.as_str()))
                }
            }
        }
    }

    /// Refuses unless the token holds `right`.
    pub fn allow(&self, right: Right<'_>) -> Result<(), ApiError> {
        let Grant::Policy(p) = &self.grant else {
            return self.require(right.scope());
        };
        let ok = match right {
            Right::ReadStream(s) => p.may_read(s),
            Right::ReadStatus => true,
            Right::Send => p.may_send(),
            Right::OthersTx => p.others_transactions,
            Right::RotatePools => p.rotate_pools,
            Right::ManageTokens => p.manage_tokens,
            Right::Sink(s) | Right::ReadDeadLetters(s) => p.sinks.allows(&s.to_owned()),
            Right::ReadAudit => p.audit,
            Right::ReadChain(c) => p.chains.allows(&c.to_owned()),
        };
        if ok {
            Ok(())
        } else {
            let r = p.not_granted(&right.name());
            Err(ApiError::refused(r.field, r.message))
        }
    }

    /// The policy, when the token carries one.
    pub fn policy(&self) -> Option<&Policy> {
        match &self.grant {
            Grant::Policy(p) => Some(p),
            Grant::Scopes(_) => None,
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization header must be \"Bearer <token>\""))
}

async fn load(state: &ApiState, hash: &str) -> Result<Caller, ApiError> {
    let row = state
        .store
        .token_by_hash(hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    let now = crate::unix_secs();
    if row.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::unauthorized("this token has expired"));
    }
    let grant = match &row.policy {
        Some(name) => Grant::Policy(state.policies.get(name).cloned().ok_or_else(|| {
            ApiError::unauthorized(format!(
                "this token's policy {name:?} is not in the configuration"
            ))
        })?),
        None => Grant::Scopes(row.scopes.iter().filter_map(|s| Scope::parse(s)).collect()),
    };
    if row.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
        let (store, id) = (state.store.clone(), row.id.clone());
        tokio::spawn(async move {
            if let Err(e) = store.touch_token(&id).await {
                tracing::warn!(error = %e, "recording a token's last use failed");
            }
        });
    }
    Ok(Caller {
        token_id: row.id,
        label: row.label,
        grant,
    })
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let hash = hash_token(bearer(parts)?);
        let caller = match state.tokens.get(&hash) {
            Some(c) => c,
            None => {
                let c = load(state, &hash).await?;
                state.tokens.put(hash, &c);
                c
            }
        };
        if let Some(per_sec) = state.limits.rate_per_token {
            state
                .tokens
                .take(&caller.token_id, per_sec)
                .map_err(ApiError::rate_limited)?;
        }
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
            label: String::new(),
            grant: Grant::Scopes(vec![Scope::Admin]),
        };
        assert!(admin.require(Scope::TxWrite).is_ok());
        let reader = Caller {
            token_id: "t".into(),
            label: String::new(),
            grant: Grant::Scopes(vec![Scope::EventsRead]),
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
