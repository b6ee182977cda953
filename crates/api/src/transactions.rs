//! `/v1/transactions`: submit a request (scope `tx:write`), read it and its
//! attempts, list, cancel. The transaction manager does the work; this
//! module maps its answers to HTTP.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use ethgate_core::TxStatus;
use ethgate_store::{Action, Outcome};
use ethgate_tx::TxView;
use ethgate_tx::{CancelOutcome, SubmitError, Submitted, TxManager};
use serde_json::Value;

use crate::audit::{accepted, record, refused};
use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::policy::{SendAsk, Sender};
use crate::{ApiError, ApiState, params};

/// `POST /v1/transactions`'s body. The manager reads it field by field
/// (so an error names the field); this is its shape for the document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TxSubmitBody {
    /// A `[[chains]]` name.
    pub chain: String,
    /// A configured account address, or a `[[pools]]` name (its
    /// least-loaded account).
    pub from: String,
    /// The called contract or recipient.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// 0x calldata; or give `function` and `args`.
    pub data: Option<String>,
    /// E.g. `"charge(uint256)"`.
    pub function: Option<String>,
    /// The function's arguments.
    pub args: Option<Vec<serde_json::Value>>,
    /// Wei sent.
    pub value: Option<Wei>,
    /// Default: the estimate × `tx.gas_margin`.
    #[schema(minimum = 21000)]
    pub gas_limit: Option<u64>,
    /// Fee urgency.
    pub speed: Option<ethgate_tx::Speed>,
    /// Cap, wei.
    pub max_fee_per_gas: Option<Wei>,
    /// Cap, wei; at most `max_fee_per_gas`.
    pub max_priority_fee_per_gas: Option<Wei>,
    /// Unix seconds; then cancelled as expired.
    pub valid_until: Option<u64>,
    /// Depth for `confirmed`.
    #[schema(maximum = 1000)]
    pub confirmations: Option<u64>,
    /// Any JSON, echoed back.
    pub metadata: Option<serde_json::Value>,
    /// Custom errors the call may revert with, e.g. `"TooEarly(uint256
    /// billingId, uint64 nextChargeAt)"`: a rejection then names the error
    /// and its arguments (errors in a `[[streams]]` ABI file for the
    /// contract are known without this).
    #[schema(max_items = 64)]
    pub errors: Option<Vec<String>>,
    /// Same key and same body: the same transaction; another body: 409.
    #[schema(min_length = 1, max_length = 200)]
    pub idempotency_key: String,
}

/// An amount of wei: a JSON integer, or a decimal or 0x string for
/// amounts past 2^53.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Wei {
    /// A JSON integer.
    Int(u64),
    /// Decimal or 0x hex.
    Text(String),
}

impl utoipa::PartialSchema for Wei {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$")),
            )
            .description(Some("wei: an integer, or a decimal or 0x string"))
            .into()
    }
}

impl utoipa::ToSchema for Wei {}

/// A submission's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SubmitAnswer {
    /// The transaction's id.
    pub id: String,
    /// `queued` when new; the request's status does not change here.
    pub status: TxStatus,
    /// The same key and body were accepted before: this is that
    /// transaction.
    pub existing: bool,
}

/// `GET /v1/transactions`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TxPage {
    /// Newest first; without attempts.
    pub transactions: Vec<TxView>,
}

/// A cancel's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CancelRequested {
    /// The transaction.
    pub id: String,
    /// Always `"requested"`.
    pub cancel: &'static str,
}

/// A bump's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BumpRequested {
    /// The transaction.
    pub id: String,
    /// Always `"requested"`.
    pub bump: &'static str,
}

/// The list's query.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TxListQuery {
    /// Only this status.
    pub status: Option<TxStatus>,
    /// Only this sending account.
    #[param(value_type = Option<String>, pattern = "^0x[0-9a-fA-F]{40}$")]
    pub from: Option<alloy_primitives::Address>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

impl TxListQuery {
    fn parse(raw: Option<&str>) -> Result<TxListQuery, ApiError> {
        let p = params::parse(raw, &["status", "from", "limit"])?;
        let status = match p.get("status") {
            None => None,
            Some(s) => Some(TxStatus::parse(s).ok_or_else(|| {
                let all: Vec<&str> = TxStatus::ALL.iter().map(|t| t.as_str()).collect();
                ApiError::bad_param("status", format!("{s:?} is not one of {all:?}"))
            })?),
        };
        let from = match p.get("from") {
            None => None,
            Some(f) => Some(
                f.parse()
                    .map_err(|_| ApiError::bad_param("from", "is not an address"))?,
            ),
        };
        Ok(TxListQuery {
            status,
            from,
            limit: Some(params::int(&p, "limit", 100, 1, 1000)?),
        })
    }
}

fn manager(state: &ApiState) -> Result<&TxManager, ApiError> {
    state.tx.as_deref().ok_or_else(|| {
        ApiError::unavailable("no [[accounts]] are configured, so ethgate sends no transactions")
    })
}

/// `POST /v1/transactions`: 202 with the id; the same idempotency key with
/// the same body returns the same transaction (200), with another body 409.
/// A token's policy is checked first; a refusal (403, naming the rule)
/// takes no nonce. Accepted and refused requests go to the audit trail.
#[utoipa::path(post, path = "/v1/transactions", operation_id = "submit_transaction", tag = "transactions", security(("bearer" = [])),
    summary = "Submit a transaction request (scope tx:write)",
    request_body = TxSubmitBody,
    responses((status = 202, body = SubmitAnswer, description = "accepted, queued"),
        (status = 200, body = SubmitAnswer, description = "the same key and body were accepted before: the same transaction"),
        (status = 400, body = ErrorBody, description = "invalid request; `field` names it; nothing stored"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not send this: its scope or policy; the rule is named"),
        (status = 409, body = ErrorBody, description = "idempotency_key used before with a different body"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn submit(
    State(state): State<ApiState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<SubmitAnswer>), ApiError> {
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
                Json(SubmitAnswer {
                    id: s.id,
                    status: TxStatus::Queued,
                    existing: s.existing,
                }),
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
        SubmitError::RecorderStopped => {
            ApiError::unavailable("the gateway is shutting down; nothing was recorded")
        }
        SubmitError::Encode(e) => ApiError::internal(&e),
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
#[utoipa::path(get, path = "/v1/transactions/{id}", operation_id = "get_transaction", tag = "transactions", security(("bearer" = [])),
    summary = "A transaction with its attempts (scope tx:write)",
    params(("id" = String, Path, description = "a transaction id")),
    responses((status = 200, body = TxView, description = "the transaction"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read this transaction"),
        (status = 404, body = ErrorBody, description = "no such transaction"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TxView>, ApiError> {
    caller.allow(Right::Send)?;
    owned(&state, &caller, &id).await?;
    manager(&state)?
        .get(&id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("id", format!("no transaction {id:?}")))
}

/// `GET /v1/transactions?status=&from=&limit=`.
#[utoipa::path(get, path = "/v1/transactions", operation_id = "list_transactions", tag = "transactions", security(("bearer" = [])),
    summary = "List transactions, newest first (scope tx:write)",
    params(TxListQuery),
    responses((status = 200, body = TxPage, description = "transactions"),
        (status = 400, body = ErrorBody, description = "bad parameter; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not send"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<TxPage>, ApiError> {
    caller.allow(Right::Send)?;
    let q = TxListQuery::parse(q.as_deref())?;
    let mut items = manager(&state)?
        .list(q.status, q.from, q.limit.unwrap_or(100) as u32)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if caller.allow(Right::OthersTx).is_err() {
        // One wait for queued entries, then one lookup per item.
        state.audit.flush(&state.store).await;
        let mut mine = Vec::with_capacity(items.len());
        for item in items {
            let actor = state.store.audit_actor(Action::TxSubmit, &item.id).await?;
            if actor.as_deref() == Some(caller.token_id.as_str()) {
                mine.push(item);
            }
        }
        items = mine;
    }
    Ok(Json(TxPage {
        transactions: items,
    }))
}

/// `POST /v1/transactions/{id}/cancel`: a queued request ends at once; a
/// pending one is replaced by a 0-value self-send at its nonce.
#[utoipa::path(post, path = "/v1/transactions/{id}/cancel", operation_id = "cancel_transaction", tag = "transactions", security(("bearer" = [])),
    summary = "Cancel: a queued request ends; a pending one is replaced by a 0-value self-send (scope tx:write)",
    params(("id" = String, Path, description = "a transaction id")),
    responses((status = 202, body = CancelRequested, description = "cancel requested"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not cancel this transaction"),
        (status = 404, body = ErrorBody, description = "no such transaction"),
        (status = 409, body = ErrorBody, description = "already mined or ended"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CancelRequested>), ApiError> {
    act(&state, &caller, &id, Action::TxCancel).await?;
    let answer = CancelRequested {
        id,
        cancel: "requested",
    };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// `POST /v1/transactions/{id}/bump`: a pending transaction is replaced
/// with higher fees, past its fee caps if need be.
#[utoipa::path(post, path = "/v1/transactions/{id}/bump", operation_id = "bump_transaction", tag = "transactions", security(("bearer" = [])),
    summary = "Replace a pending transaction with higher fees, past its fee caps if need be (scope tx:write)",
    params(("id" = String, Path, description = "a transaction id")),
    responses((status = 202, body = BumpRequested, description = "bump requested"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not bump this transaction"),
        (status = 404, body = ErrorBody, description = "no such transaction"),
        (status = 409, body = ErrorBody, description = "not pending"),
        (status = 503, body = ErrorBody, description = "no accounts are configured")))]
pub async fn bump(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<BumpRequested>), ApiError> {
    act(&state, &caller, &id, Action::TxBump).await?;
    let answer = BumpRequested {
        id,
        bump: "requested",
    };
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// A cancel or a bump: checked, asked of the manager, audited.
async fn act(state: &ApiState, caller: &Caller, id: &str, action: Action) -> Result<(), ApiError> {
    if let Err(e) = caller.allow(Right::Send) {
        return Err(refused(state, caller, action, id, e).await);
    }
    if let Err(e) = owned(state, caller, id).await {
        return Err(refused(state, caller, action, id, e).await);
    }
    let tx = manager(state)?;
    let (outcome, ended) = if action == Action::TxBump {
        let why = "only a pending transaction can be bumped";
        (tx.bump(id).await?, why)
    } else {
        let why = "the transaction is already mined or ended; it cannot be cancelled";
        (tx.cancel(id).await?, why)
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
        CancelOutcome::Requested => Ok(()),
    }
}
