//! `/v1/tokens`: create, list and revoke API tokens (right: manage
//! tokens). A token is shown once, in the answer that creates it; lists
//! show labels, policies and dates, never a secret.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ethgate_store::{Action, NewToken, Outcome, TokenRow};
use serde_json::{Value, json};

use crate::audit::{record, refused};
use crate::auth::{Caller, Right, Scope};
use crate::{ApiError, ApiState, hash_token, new_token};

/// Longest a token may be made to live: 9,999 days, the most the
/// document's `expires` pattern can say.
const MAX_LIFETIME_SECS: u64 = 9_999 * 86_400;

/// A token's public view.
pub fn view(t: &TokenRow) -> Value {
    json!({
        "id": t.id, "label": t.label, "scopes": t.scopes, "policy": t.policy,
        "created_at": t.created_at, "expires_at": t.expires_at,
        "revoked_at": t.revoked_at, "last_used_at": t.last_used_at,
    })
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
        None => Ok(Vec::new()),
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
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad_param(field, "must be a string")),
    }
}

/// `POST /v1/tokens` with `{"label", "policy" | "scopes", "expires"?}`:
/// 201 with the token, shown this once.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(
            json!({"id": row.id, "token": secret, "label": row.label, "policy": row.policy,
            "scopes": row.scopes, "expires_at": row.expires_at}),
        ),
    ))
}

/// `GET /v1/tokens`: every token, revoked ones included; no secrets.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ManageTokens)?;
    let rows = state.store.list_tokens().await?;
    Ok(Json(
        json!({"tokens": rows.iter().map(view).collect::<Vec<_>>()}),
    ))
}

/// `POST /v1/tokens/{id}/revoke`: refused on every path from the next
/// request on.
pub async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"id": id, "revoked": true})))
}
