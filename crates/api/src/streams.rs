//! `/v1/streams…`: stream status and the long-poll pull of envelopes.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ethgate_core::StreamSpec;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::auth::{Caller, Right};
use crate::{ApiError, ApiState, params};

/// Most envelopes per page.
const MAX_LIMIT: u64 = 1_000;

async fn status(state: &ApiState, spec: &StreamSpec) -> Result<Value, ApiError> {
    let row = state.store.stream(&spec.name).await?;
    let progress = state.sync.get(&spec.name).unwrap_or_default();
    let cursor = row.as_ref().and_then(|r| r.cursor);
    let lag = progress
        .head
        .map(|h| h.saturating_sub(cursor.unwrap_or(spec.from_block.saturating_sub(1))));
    Ok(json!({
        "name": spec.name,
        "chain": spec.chain,
        "chain_id": spec.chain_id,
        "addresses": spec.addresses.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
        "events": spec.events.iter().map(|e| e.signature()).collect::<Vec<_>>(),
        "from_block": spec.from_block,
        "confirmations": spec.confirmations.to_string(),
        "cursor": cursor,
        "head": progress.head,
        "lag": lag,
        "events_recorded": row.as_ref().map_or(0, |r| r.events_recorded),
        "reorgs": row.as_ref().map_or(0, |r| r.reorgs),
        "range_span": progress.range_span,
        "last_error": progress.last_error,
        "last_ok": progress.last_ok,
    }))
}

fn find<'a>(state: &'a ApiState, name: &str) -> Result<&'a StreamSpec, ApiError> {
    state
        .streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found("name", format!("no stream named {name:?}")))
}

/// `GET /v1/streams`.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let mut out = Vec::with_capacity(state.streams.len());
    for spec in state.streams.iter() {
        if caller.allow(Right::ReadStream(&spec.name)).is_err() {
            continue;
        }
        out.push(status(&state, spec).await?);
    }
    Ok(Json(json!({ "streams": out })))
}

/// `GET /v1/streams/{name}`.
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ReadStream(&name))?;
    let spec = find(&state, &name)?;
    Ok(Json(status(&state, spec).await?))
}

/// Resolves when `flag` turns true; never, if its sender is gone.
async fn until_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    if flag.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// `GET /v1/streams/{name}/events?after=SEQ&limit=N&wait=SECONDS`: the
/// envelopes with `seq > after`, in order; with `wait`, holds the request
/// until at least one exists or the wait ends.
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.allow(Right::ReadStream(&name))?;
    // A configured stream, or a chain's transaction status stream
    // (`tx.<chain>`) once its senders have registered it.
    let stream = match find(&state, &name) {
        Ok(spec) => spec.name.clone(),
        Err(e) => {
            let is_status = name.starts_with("tx.")
                && state.tx.is_some()
                && state.store.stream(&name).await?.is_some();
            if !is_status {
                return Err(e);
            }
            name.clone()
        }
    };
    let p = params::parse(query.as_deref(), &["after", "limit", "wait"])?;
    let after = params::int(&p, "after", 0, 0, i64::MAX as u64)?;
    let limit = params::int(&p, "limit", 100, 1, MAX_LIMIT)?;
    let wait = params::int(&p, "wait", 0, 0, state.max_wait.as_secs())?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    let mut changes = state.store.subscribe();
    let mut stopping = state.stopping.clone();
    let page = loop {
        changes.borrow_and_update();
        let page = state
            .store
            .events_after(&stream, after, limit as u32)
            .await?;
        if !page.is_empty() || Instant::now() >= deadline || *stopping.borrow() {
            break page;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = changes.changed() => {}
            _ = until_true(&mut stopping) => {}
        }
    };
    let next = page.last().map_or(after, |e| e.seq);
    let mut body = String::with_capacity(64 + page.len() * 1024);
    body.push_str("{\"stream\":");
    body.push_str(&serde_json::to_string(&stream).unwrap_or_default());
    body.push_str(",\"events\":[");
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        e.envelope.write_json(&mut body);
    }
    body.push_str(&format!("],\"next\":{next}}}"));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
