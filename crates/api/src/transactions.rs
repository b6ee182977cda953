//! `/v1/transactions`: submit a request (scope `tx:write`), read it and its
//! attempts, list, cancel. The transaction manager does the work; this
//! module maps its answers to HTTP.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ethgate_store::{Action, Outcome};
use ethgate_tx::{CancelOutcome, SubmitError, Submitted, TxManager};
use serde_json::{Value, json};

use crate::audit::{accepted, record, refused};
use crate::auth::{Caller, Right};
use crate::policy::{SendAsk, Sender};
use crate::{ApiError, ApiState, params};

fn manager(state: &ApiState) -> Result<&TxManager, ApiError> {
    state.tx.as_deref().ok_or_else(|| {
        ApiError::unavailable("no [[accounts]] are configured, so ethgate sends no transactions")
    })
}

/// `POST /v1/transactions`: 202 with the id; the same idempotency key with
/// the same body returns the same transaction (200), with another body 409.
/// A token's policy is checked first; a refusal (403, naming the rule)
/// takes no nonce. Accepted and refused requests go to the audit trail.
pub async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = serde_json::from_slice::<Value>(&body);
    let key = body
        .as_ref()
        .ok()
        .and_then(|b| b.get("idempotency_key")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    match submit_checked(&state, &caller, body).await {
        Ok(s) => {
            if !s.existing {
                accepted(&state, &caller, Action::TxSubmit, &s.id, &key).await;
            }
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
        Err(e) => {
            let outcome = if e.status().is_server_error() {
                Outcome::Failed
            } else {
                Outcome::Refused
            };
            let detail = format!("key {key:?}: {}", e.message());
            record(&state, &caller, Action::TxSubmit, "", outcome, &detail).await;
            Err(e)
        }
    }
}

fn submit_error(e: SubmitError) -> ApiError {
    match e {
        SubmitError::Invalid(e) => ApiError::bad_param(&e.field, e.message),
        SubmitError::Conflict(id) => ApiError::conflict(
            "idempotency_key",
            format!("already used by transaction {id} with a different body"),
        ),
        SubmitError::Store(e) => e.into(),
        SubmitError::Intake(e) => ApiError::internal(&e),
    }
}

/// A daily-cap charge to give back if the request is not recorded.
struct Charge {
    day: i64,
    chain: String,
    whos: Vec<String>,
    cost: u128,
}

async fn submit_checked(
    state: &ApiState,
    caller: &Caller,
    body: serde_json::Result<Value>,
) -> Result<Submitted, ApiError> {
    caller.allow(Right::Send)?;
    let tx = manager(state)?;
    let body = body.map_err(|e| ApiError::bad_param("body", format!("not JSON: {e}")))?;
    let mut req = tx.parse(&body).map_err(submit_error)?;
    let charge = match caller.policy() {
        None if state.guarded.contains(&req.from) => {
            return Err(ApiError::refused(
                "from",
                format!(
                    "{:#x} is a pool's funding or master account; only a token whose policy names it may send from it",
                    req.from
                ),
            ));
        }
        None => None,
        Some(p) => {
            let from = body.get("from").and_then(Value::as_str).unwrap_or_default();
            let pools = tx.pools_of(req.from);
            let ask = SendAsk {
                chain: &req.chain,
                from,
                account: req.from,
                pools_of_account: &pools,
                to: req.to,
                data: &req.data,
                value: req.value,
                gas_limit: req.gas_limit,
                max_fee_per_gas: req.max_fee_per_gas,
            };
            let refuse = |r: crate::policy::Refusal| ApiError::refused(r.field, r.message);
            let cap = p.check_send(&ask).map_err(refuse)?;
            if state.guarded.contains(&req.from) && !p.from.contains(&Sender::Account(req.from)) {
                return Err(ApiError::refused(
                    "from",
                    format!(
                        "policy {}: {:#x} is a funding or master account the policy does not name",
                        p.name, req.from
                    ),
                ));
            }
            let charge = match p.cost(&ask, cap) {
                None => None,
                Some(cost) => Some(charge(state, caller, p, &req, cost).await?),
            };
            req.max_fee_per_gas = cap;
            charge
        }
    };
    let out = tx.submit_parsed(&body, req).await.map_err(submit_error);
    if let Some(c) = charge
        && !matches!(
            out,
            Ok(Submitted {
                existing: false,
                ..
            })
        )
        && let Err(e) = state.store.refund(c.day, &c.chain, &c.whos, c.cost).await
    {
        tracing::warn!(error = %e, "giving back a daily-cap charge failed");
    }
    out
}

async fn charge(
    state: &ApiState,
    caller: &Caller,
    p: &crate::policy::Policy,
    req: &ethgate_tx::TxRequest,
    cost: u128,
) -> Result<Charge, ApiError> {
    let day = crate::unix_secs() / 86_400;
    let mut whos = Vec::new();
    if let Some(c) = p.daily_cap {
        whos.push((format!("token:{}", caller.token_id), c));
    }
    if let Some(c) = p.account_daily_cap {
        whos.push((format!("account:{:#x}", req.from), c));
    }
    if let Err(i) = state.store.spend(day, &req.chain, &whos, cost).await? {
        let r = p.over_cap(whos[i].0.starts_with("token:"), cost);
        return Err(ApiError::refused(r.field, r.message));
    }
    Ok(Charge {
        day,
        chain: req.chain.clone(),
        whos: whos.into_iter().map(|(w, _)| w).collect(),
        cost,
    })
}

/// Refuses a token without the right to act on others' transactions
/// unless it submitted `id` itself.
async fn owned(state: &ApiState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let Err(denied) = caller.allow(Right::OthersTx) else {
        return Ok(());
    };
    // The submission's entry may still be queued: a miss looks again
    // once the queue is written.
    let mut actor = state.store.audit_actor(Action::TxSubmit, id).await?;
    if actor.is_none() {
        state.audit.flush(&state.store).await;
        actor = state.store.audit_actor(Action::TxSubmit, id).await?;
    }
    match actor {
        Some(t) if t == caller.token_id => Ok(()),
        _ => Err(denied),
    }
}

/// `GET /v1/transactions/{id}`: state, attempts, receipt data, error.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::Send)?;
    owned(&state, &caller, &id).await?;
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
    caller.allow(Right::Send)?;
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
    let mut items = manager(&state)?.list(status, from, limit as u32).await?;
    if caller.allow(Right::OthersTx).is_err() {
        // One wait for queued entries, then one lookup per item.
        state.audit.flush(&state.store).await;
        let mut mine = Vec::with_capacity(items.len());
        for item in items {
            let id = item.get("id").and_then(Value::as_str).unwrap_or_default();
            let actor = state.store.audit_actor(Action::TxSubmit, id).await?;
            if actor.as_deref() == Some(caller.token_id.as_str()) {
                mine.push(item);
            }
        }
        items = mine;
    }
    Ok(Json(json!({ "transactions": items })))
}

/// `POST /v1/transactions/{id}/cancel`: a queued request ends at once; a
/// pending one is replaced by a 0-value self-send at its nonce.
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act(&state, &caller, &id, Action::TxCancel).await
}

/// `POST /v1/transactions/{id}/bump`: a pending transaction is replaced
/// with higher fees, past its fee caps if need be.
pub async fn bump(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    act(&state, &caller, &id, Action::TxBump).await
}

/// A cancel or a bump: checked, asked of the manager, audited.
async fn act(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    action: Action,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if let Err(e) = caller.allow(Right::Send) {
        return Err(refused(state, caller, action, id, e).await);
    }
    if let Err(e) = owned(state, caller, id).await {
        return Err(refused(state, caller, action, id, e).await);
    }
    let tx = manager(state)?;
    let (outcome, verb, ended) = if action == Action::TxBump {
        let why = "only a pending transaction can be bumped";
        (tx.bump(id).await?, "bump", why)
    } else {
        let why = "the transaction is already mined or ended; it cannot be cancelled";
        (tx.cancel(id).await?, "cancel", why)
    };
    let (o, detail) = match outcome {
        CancelOutcome::Requested => (Outcome::Accepted, "requested"),
        CancelOutcome::NotFound => (Outcome::Refused, "no such transaction"),
        CancelOutcome::AlreadyEnded => (Outcome::Refused, "already ended"),
    };
    record(state, caller, action, id, o, detail).await;
    match outcome {
        CancelOutcome::NotFound => Err(ApiError::not_found("id", format!("no transaction {id:?}"))),
        CancelOutcome::AlreadyEnded => Err(ApiError::conflict("id", ended)),
        CancelOutcome::Requested => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, verb: "requested"})),
        )),
    }
}
