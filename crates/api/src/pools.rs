//! `/v1/accounts` and `/v1/pools/{name}/rotation`: the operational
//! accounts' balances, alerts and pools, and the one-call key rotation
//! (scope `admin`). The accounts crate does the work.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ethgate_accounts::{AccountsView, Pools, RotateError, RotationView};
use serde_json::Value;

use crate::audit::{record, refused};
use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState};
use ethgate_store::{Action, Outcome};

fn pools(state: &ApiState) -> Result<&Pools, ApiError> {
    state.pools.as_deref().ok_or_else(|| {
        ApiError::unavailable("no [[accounts]] are configured, so there are no pools")
    })
}

fn rotate_error(e: RotateError) -> ApiError {
    match e {
        RotateError::UnknownPool(p) => {
            ApiError::not_found("name", format!("no pool is named {p:?}"))
        }
        // The request is well-formed; the pool's configuration is what
        // stands in the way: a conflict with the server's state.
        RotateError::NotConfigured { pool, field } => ApiError::conflict(
            "name",
            format!("pool {pool} cannot rotate: set {field} in its [[pools]] entry"),
        ),
        RotateError::Store(e) => e.into(),
    }
}

/// `GET /v1/accounts`: pools with members, balances, top-ups, alerts and
/// their latest rotation; every account the gateway sends from.
#[utoipa::path(get, path = "/v1/accounts", operation_id = "list_accounts", tag = "accounts", security(("bearer" = [])),
    summary = "Pools with members, balances, top-ups, alerts and rotation; every sending account (scope tx:write)",
    responses((status = 200, body = AccountsView, description = "pools and accounts"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not send"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<AccountsView>, ApiError> {
    caller.allow(Right::Send)?;
    let view = pools(&state)?.snapshot().await;
    Ok(Json(view.map_err(|e| ApiError::internal(&e))?))
}

/// `POST /v1/pools/{name}/rotate`'s optional body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// A repeated key returns the rotation it started, even finished.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/pools/{name}/rotate`: starts a rotation, or returns the
/// unfinished one (retrying a failed step); a body
/// `{"idempotency_key": "…"}` makes a repeated request return the rotation
/// it started, even finished. 202: it runs in the server.
#[utoipa::path(post, path = "/v1/pools/{name}/rotate", operation_id = "rotate_pool", tag = "accounts", security(("bearer" = [])),
    summary = "Rotate a pool's operational accounts in one master transaction (scope admin); resumes an unfinished rotation",
    params(("name" = String, Path, description = "a [[pools]] name")),
    request_body(content = Option<RotateBody>, description = "optional"),
    responses((status = 202, body = RotationView, description = "the rotation, running in the gateway"),
        (status = 400, body = ErrorBody, description = "a bad body; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not rotate pools"),
        (status = 404, body = ErrorBody, description = "no such pool"),
        (status = 409, body = ErrorBody, description = "the pool lacks a setting rotation needs; `message` names it"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn rotate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<RotationView>), ApiError> {
    if let Err(e) = caller.allow(Right::RotatePools) {
        return Err(refused(&state, &caller, Action::PoolRotate, &name, e).await);
    }
    let body = rotate_body(&body)?;
    let key = match body.get("idempotency_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 200 => Some(k.as_str()),
        Some(_) => {
            return Err(ApiError::bad_param(
                "idempotency_key",
                "must be a string of 1 to 200 characters",
            ));
        }
    };
    let view = pools(&state)?
        .rotate(&name, key)
        .await
        .map_err(rotate_error);
    let (outcome, detail) = match &view {
        Ok(_) => (Outcome::Accepted, String::new()),
        Err(e) if e.status().is_server_error() => (Outcome::Failed, e.message()),
        Err(e) => (Outcome::Refused, e.message()),
    };
    record(&state, &caller, Action::PoolRotate, &name, outcome, &detail).await;
    Ok((StatusCode::ACCEPTED, Json(view?)))
}

/// The rotate body: empty, or an object with at most `idempotency_key`.
fn rotate_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_param("body", format!("not JSON: {e}")))?;
    match v.as_object() {
        None if v.is_null() => Ok(v),
        None => Err(ApiError::bad_param(
            "body",
            "must be a JSON object like {\"idempotency_key\": \"…\"}, or empty",
        )),
        Some(o) => match o.keys().find(|k| *k != "idempotency_key") {
            Some(k) => Err(ApiError::bad_param(
                k,
                "unknown field; only idempotency_key",
            )),
            None => Ok(v),
        },
    }
}

/// `GET /v1/pools/{name}/rotation`: the unfinished or latest rotation.
#[utoipa::path(get, path = "/v1/pools/{name}/rotation", operation_id = "get_rotation", tag = "accounts", security(("bearer" = [])),
    summary = "The pool's unfinished or latest rotation (scope tx:write)",
    params(("name" = String, Path, description = "a [[pools]] name")),
    responses((status = 200, body = Option<RotationView>, description = "the rotation, or null"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not send"),
        (status = 404, body = ErrorBody, description = "no such pool"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn rotation(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Option<RotationView>>, ApiError> {
    caller.allow(Right::Send)?;
    Ok(Json(
        pools(&state)?.rotation(&name).await.map_err(rotate_error)?,
    ))
}
