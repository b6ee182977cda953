//! `/v1/transactions`: submit a request (scope `tx:write`), read it and its
//! attempts, list, cancel. The transaction manager does the work; this
//! module maps its answers to HTTP.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ethgate_tx::{CancelOutcome, SubmitError, TxManager};
use serde_json::{Value, json};

use crate::auth::{Caller, Scope};
use crate::{ApiError, ApiState, params};

fn manager(state: &ApiState) -> Result<&TxManager, ApiError> {
    state.tx.as_deref().ok_or_else(|| {
        ApiError::unavailable("no [[accounts]] are configured, so ethgate sends no transactions")
    })
}

/// `POST /v1/transactions`: 202 with the id; the same idempotency key with
/// the same body returns the same transaction (200), with another body 409.
pub async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::TxWrite)?;
    let tx = manager(&state)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_param("body", format!("not JSON: {e}")))?;
    match tx.submit(&body).await {
        Ok(s) => {
            let code = if s.existing {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            Ok((
                code,
                Json(json!({"id": s.id, "status": "queued", "existing": s.existing})),
            ))
        }
        Err(SubmitError::Invalid(e)) => Err(ApiError::bad_param(&e.field, e.message)),
        Err(SubmitError::Conflict(id)) => Err(ApiError::conflict(
            "idempotency_key",
            format!("already used by transaction {id} with a different body"),
        )),
        Err(SubmitError::Store(e)) => Err(e.into()),
        Err(SubmitError::Intake(e)) => Err(ApiError::internal(&e)),
    }
}

fn can_read(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Scope::TxWrite)
}

/// `GET /v1/transactions/{id}`: state, attempts, receipt data, error.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    can_read(&caller)?;
    manager(&state)?
        .get(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("id", format!("no transaction {id:?}")))
}

const STATUSES: &[&str] = &[
    "queued",
    "pending",
    "mined",
    "confirmed",
    "failed",
    "rejected",
    "cancelled",
    "expired",
];

/// `GET /v1/transactions?status=&from=&limit=`.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    can_read(&caller)?;
    let p = params::parse(q.as_deref(), &["status", "from", "limit"])?;
    let status = p.get("status").map(String::as_str);
    if let Some(s) = status
        && !STATUSES.contains(&s)
    {
        return Err(ApiError::bad_param(
            "status",
            format!("{s:?} is not one of {STATUSES:?}"),
        ));
    }
    let from = p.get("from").map(String::as_str);
    if let Some(f) = from
        && f.parse::<alloy_primitives::Address>().is_err()
    {
        return Err(ApiError::bad_param("from", "is not an address"));
    }
    let limit = params::int(&p, "limit", 100, 1, 1000)?;
    let items = manager(&state)?.list(status, from, limit as u32).await?;
    Ok(Json(json!({ "transactions": items })))
}

/// `POST /v1/transactions/{id}/cancel`: a queued request ends at once; a
/// pending one is replaced by a 0-value self-send at its nonce.
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::TxWrite)?;
    match manager(&state)?.cancel(&id).await? {
        CancelOutcome::NotFound => Err(ApiError::not_found("id", format!("no transaction {id:?}"))),
        CancelOutcome::AlreadyEnded => Err(ApiError::conflict(
            "id",
            "the transaction is already mined or ended; it cannot be cancelled",
        )),
        CancelOutcome::Requested => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "cancel": "requested"})),
        )),
    }
}

/// `POST /v1/transactions/{id}/bump`: a pending transaction is replaced
/// with higher fees, past its fee caps if need be.
pub async fn bump(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(Scope::TxWrite)?;
    match manager(&state)?.bump(&id).await? {
        CancelOutcome::NotFound => Err(ApiError::not_found("id", format!("no transaction {id:?}"))),
        CancelOutcome::AlreadyEnded => Err(ApiError::conflict(
            "id",
            "only a pending transaction can be bumped",
        )),
        CancelOutcome::Requested => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "bump": "requested"})),
        )),
    }
}
