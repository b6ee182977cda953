//! `/v1/accounts` and `/v1/pools/{name}/rotation`: the operational
//! accounts' balances, alerts and pools, and the one-call key rotation
//! (scope `admin`). The accounts crate does the work.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use ethgate_accounts::{Pools, RotateError};
use serde_json::Value;

use crate::audit::{record, refused};
use crate::auth::{Caller, Right};
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
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::Send)?;
    Ok(Json(pools(&state)?.snapshot().await?))
}

/// `POST /v1/pools/{name}/rotate`: starts a rotation, or returns the
/// unfinished one (retrying a failed step); a body
/// `{"idempotency_key": "…"}` makes a repeated request return the rotation
/// it started, even finished. 202: it runs in the server.
pub async fn rotate(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
pub async fn rotation(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::Send)?;
    Ok(Json(
        pools(&state)?.rotation(&name).await.map_err(rotate_error)?,
    ))
}
