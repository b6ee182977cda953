//! `/v1/tokens`: create, list and revoke API tokens (right: manage
//! tokens). A token is shown once, in the answer that creates it; lists
//! show labels, policies and dates, never a secret.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ethgate_store::{Action, NewToken, Outcome, TokenRow};
use serde_json::Value;

use crate::audit::{record, refused};
use crate::auth::{Caller, Right, Scope};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState, hash_token, new_token};

/// Longest a token may be made to live: 9,999 days, the most the
/// document's `expires` pattern can say.
const MAX_LIFETIME_SECS: u64 = 9_999 * 86_400;

/// A token's public view: never its secret.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// `tok_…`.
    pub id: String,
    /// Who holds it.
    pub label: String,
    /// Its scopes, when it has no policy.
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    /// Its `[[policies]]` name.
    pub policy: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; refused from then on.
    pub expires_at: Option<i64>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    /// Unix seconds of its last request (to the minute).
    pub last_used_at: Option<i64>,
}

impl TokenView {
    /// The view of a stored token.
    pub fn of(t: &TokenRow) -> TokenView {
        TokenView {
            id: t.id.clone(),
            label: t.label.clone(),
            scopes: t.scopes.clone(),
            policy: t.policy.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// `GET /v1/tokens`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokensPage {
    /// Every token, revoked ones included.
    pub tokens: Vec<TokenView>,
}

/// `POST /v1/tokens`'s body: a policy or scopes, not both.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum NewTokenBody {
    /// Held to scopes.
    Scopes(ScopedToken),
    /// Held to a `[[policies]]` entry.
    Policy(PolicyToken),
}

/// A token held to scopes.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedToken {
    /// Who will hold it.
    #[schema(max_length = 100)]
    pub label: Option<String>,
    /// Its scopes.
    #[schema(min_items = 1, value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    /// Lifetime, e.g. `"90d"` or `"12h"`.
    #[schema(pattern = "^[1-9][0-9]{0,3}[smhd]$")]
    pub expires: Option<String>,
}

/// A token held to a policy.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyToken {
    /// Who will hold it.
    #[schema(max_length = 100)]
    pub label: Option<String>,
    /// A `[[policies]]` name.
    #[schema(min_length = 1)]
    pub policy: String,
    /// Lifetime, e.g. `"90d"` or `"12h"`.
    #[schema(pattern = "^[1-9][0-9]{0,3}[smhd]$")]
    pub expires: Option<String>,
}

/// A new token, shown this once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// `tok_…`.
    pub id: String,
    /// The secret: keep it; it is never shown again.
    pub token: String,
    /// Who holds it.
    pub label: String,
    /// Its policy.
    pub policy: Option<String>,
    /// Its scopes.
    #[schema(value_type = Vec<Scope>)]
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

/// A revocation's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Revoked {
    /// The token.
    pub id: String,
    /// Always `true`.
    pub revoked: bool,
}

/// Checks a token request: scopes or a known policy (not both, not
/// neither), and a lifetime like `"90d"`. Shared with the CLI.
pub fn new_token_row(
    scopes: &[String],
    policy: Option<&str>,
    known_policy: impl Fn(&str) -> bool,
    label: &str,
    expires: Option<&str>,
) -> Result<(NewToken, String), ApiError> {
    for s in scopes {
        if Scope::parse(s).is_none() {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            return Err(ApiError::bad_param(
                "scopes",
                format!("{s:?} is not a scope; use one of {known:?}"),
            ));
        }
    }
    match (scopes.is_empty(), policy) {
        (true, None) => return Err(ApiError::bad_param("policy", "give a policy or scopes")),
        (false, Some(_)) => {
            return Err(ApiError::bad_param(
                "policy",
                "give a policy or scopes, not both",
            ));
        }
        (_, Some(p)) if !known_policy(p) => {
            return Err(ApiError::bad_param(
                "policy",
                format!("{p:?} is not a configured [[policies]] name"),
            ));
        }
        _ => {}
    }
    if label.len() > 100 {
        return Err(ApiError::bad_param(
            "label",
            "must be at most 100 characters",
        ));
    }
    let expires_at = match expires {
        None => None,
        Some(text) => {
            let d = humantime::parse_duration(text)
                .ok()
                .filter(|d| d.as_secs() > 0 && d.as_secs() <= MAX_LIFETIME_SECS)
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "expires",
                        "must be a lifetime like \"90d\" or \"12h\", at most 9999 days",
                    )
                })?;
            Some(crate::unix_secs() + d.as_secs() as i64)
        }
    };
    let (id, secret) = new_token();
    let row = NewToken {
        hash: hash_token(&secret),
        id,
        scopes: scopes.to_vec(),
        label: label.to_owned(),
        policy: policy.map(str::to_owned),
        expires_at,
    };
    Ok((row, secret))
}

fn strings(body: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad_param(field, "must be an array of strings")),
        Some(_) => Err(ApiError::bad_param(field, "must be an array of strings")),
    }
}

fn opt_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_param(field, "must be a string")),
    }
}

/// `POST /v1/tokens` with `{"label", "policy" | "scopes", "expires"?}`:
/// 201 with the token, shown this once.
#[utoipa::path(post, path = "/v1/tokens", operation_id = "create_token", tag = "tokens", security(("bearer" = [])),
    summary = "Create a token held to a policy or scopes; the answer shows it once",
    request_body = NewTokenBody,
    responses((status = 201, body = CreatedToken, description = "the token, shown this once"),
        (status = 400, body = ErrorBody, description = "a field is invalid; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing, unknown, revoked or expired token"),
        (status = 403, body = ErrorBody, description = "the token may not manage tokens (admin scope or a policy with manage_tokens)")))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if let Err(e) = caller.allow(Right::ManageTokens) {
        return Err(refused(&state, &caller, Action::TokenCreate, "", e).await);
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_param("body", format!("not JSON: {e}")))?;
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_param("body", "must be a JSON object"));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["label", "policy", "scopes", "expires"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_param(k, "unknown field"));
    }
    let scopes = strings(&body, "scopes")?;
    let label = opt_str(&body, "label")?.unwrap_or("");
    let (row, secret) = new_token_row(
        &scopes,
        opt_str(&body, "policy")?,
        |p| state.policies.contains_key(p),
        label,
        opt_str(&body, "expires")?,
    )?;
    // A policy token may not mint a token with more than it has.
    if caller.policy().is_some() && !scopes.is_empty() {
        let e = ApiError::bad_param("scopes", "a policy token creates policy tokens only");
        return Err(refused(&state, &caller, Action::TokenCreate, "", e).await);
    }
    state.store.insert_token(&row).await?;
    let detail = match &row.policy {
        Some(p) => format!("label {:?}, policy {p}", row.label),
        None => format!("label {:?}, scopes {}", row.label, row.scopes.join(" ")),
    };
    record(
        &state,
        &caller,
        Action::TokenCreate,
        &row.id,
        Outcome::Accepted,
        &detail,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: row.id,
            token: secret,
            label: row.label,
            policy: row.policy,
            scopes: row.scopes,
            expires_at: row.expires_at,
        }),
    ))
}

/// `GET /v1/tokens`: every token, revoked ones included; no secrets.
#[utoipa::path(get, path = "/v1/tokens", operation_id = "list_tokens", tag = "tokens", security(("bearer" = [])),
    summary = "Every token, revoked ones included; never a secret",
    responses((status = 200, body = TokensPage, description = "tokens"),
        (status = 401, body = ErrorBody, description = "missing, unknown, revoked or expired token"),
        (status = 403, body = ErrorBody, description = "the token may not manage tokens (admin scope or a policy with manage_tokens)")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<TokensPage>, ApiError> {
    caller.allow(Right::ManageTokens)?;
    let rows = state.store.list_tokens().await?;
    Ok(Json(TokensPage {
        tokens: rows.iter().map(TokenView::of).collect(),
    }))
}

/// `POST /v1/tokens/{id}/revoke`: refused on every path from the next
/// request on.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", operation_id = "revoke_token", tag = "tokens", security(("bearer" = [])),
    summary = "Revoke a token: refused on every path from the next request",
    params(("id" = String, Path, description = "a token id")),
    responses((status = 200, body = Revoked, description = "revoked"),
        (status = 401, body = ErrorBody, description = "missing, unknown, revoked or expired token"),
        (status = 403, body = ErrorBody, description = "the token may not manage tokens (admin scope or a policy with manage_tokens)"),
        (status = 404, body = ErrorBody, description = "no such unrevoked token")))]
pub async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    if let Err(e) = caller.allow(Right::ManageTokens) {
        return Err(refused(&state, &caller, Action::TokenRevoke, &id, e).await);
    }
    if !state.store.revoke_token(&id).await? {
        return Err(ApiError::not_found(
            "id",
            format!("no unrevoked token {id:?}"),
        ));
    }
    state.tokens.forget();
    record(
        &state,
        &caller,
        Action::TokenRevoke,
        &id,
        Outcome::Accepted,
        "",
    )
    .await;
    Ok(Json(Revoked { id, revoked: true }))
}
