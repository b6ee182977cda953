//! The audit trail's API side: recording what callers did, and
//! `GET /v1/audit` to read it back.

use axum::Json;
use axum::extract::{RawQuery, State};
use ethgate_store::{Action, AuditEntry, Outcome};
use serde_json::{Value, json};

use crate::auth::{Caller, Right};
use crate::{ApiError, ApiState, params};

/// Records one entry; a failure is logged, never turned into the answer
/// (the action itself has happened or been refused already).
pub async fn record(
    state: &ApiState,
    caller: &Caller,
    action: Action,
    target: &str,
    outcome: Outcome,
    detail: &str,
) {
    let entry = AuditEntry {
        id: 0,
        at_ms: 0,
        token_id: Some(caller.token_id.clone()),
        label: caller.label.clone(),
        action,
        target: target.chars().take(200).collect(),
        outcome,
        detail: detail.chars().take(500).collect(),
    };
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!(error = %e, action = action.as_str(), "recording an audit entry failed");
    }
}

/// Records a refusal and hands the error back, for `?`-style use.
pub async fn refused(
    state: &ApiState,
    caller: &Caller,
    action: Action,
    target: &str,
    err: ApiError,
) -> ApiError {
    record(
        state,
        caller,
        action,
        target,
        Outcome::Refused,
        &err.message(),
    )
    .await;
    err
}

/// `GET /v1/audit?after=ID&limit=N`: entries after `after`, oldest first.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ReadAudit)?;
    let p = params::parse(query.as_deref(), &["after", "limit"])?;
    let after = params::int(&p, "after", 0, 0, i64::MAX as u64)?;
    let limit = params::int(&p, "limit", 100, 1, 1_000)?;
    let rows = state.store.audit_since(after as i64, limit as u32).await?;
    let next = rows.last().map_or(after as i64, |r| r.id);
    Ok(Json(json!({ "entries": rows, "next": next })))
}
