//! `/v1/streams…`: stream status and the long-poll pull of envelopes.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ethgate_core::StreamSpec;
use tokio::time::Instant;

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState, params};

/// Most envelopes per page.
const MAX_LIMIT: u64 = 1_000;

/// One stream's progress.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamStatus {
    /// The `[[streams]]` name.
    pub name: String,
    /// The `[[chains]]` name.
    pub chain: String,
    /// Its chain id.
    pub chain_id: u64,
    /// Contracts followed, 0x lowercase.
    pub addresses: Vec<String>,
    /// Event signatures followed.
    pub events: Vec<String>,
    /// First block.
    pub from_block: u64,
    /// `12`, `safe` or `finalized`.
    pub confirmations: String,
    /// Last block recorded.
    pub cursor: Option<u64>,
    /// The chain's head as last seen.
    pub head: Option<u64>,
    /// Blocks between cursor and head.
    pub lag: Option<u64>,
    /// Envelopes recorded so far.
    pub events_recorded: u64,
    /// Reorgs seen.
    pub reorgs: u64,
    /// The current `eth_getLogs` range, blocks.
    pub range_span: u64,
    /// The last error, until a success clears it.
    pub last_error: Option<String>,
    /// Unix milliseconds of the last successful step.
    pub last_ok: Option<u64>,
}

/// `GET /v1/streams`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct StreamsPage {
    /// The streams this token may read.
    pub streams: Vec<StreamStatus>,
}

/// A page of `GET /v1/streams/{name}/events`. The handler writes it
/// without building it (envelopes are copied as stored), in this shape.
#[derive(Debug, utoipa::ToSchema)]
pub struct EventsPage {
    /// The stream.
    pub stream: String,
    /// Envelopes with `seq > after`, in order.
    pub events: Vec<ethgate_core::Envelope>,
    /// Pass as `after` for the next page.
    pub next: u64,
}

/// The events page's query.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Return envelopes after this seq (default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Seconds to hold the request while nothing is new (at most
    /// `[api] max_wait_secs`).
    #[param(minimum = 0)]
    pub wait: Option<u64>,
}

impl EventsQuery {
    fn parse(raw: Option<&str>, max_wait: u64) -> Result<EventsQuery, ApiError> {
        let p = params::parse(raw, &["after", "limit", "wait"])?;
        Ok(EventsQuery {
            after: Some(params::int(&p, "after", 0, 0, i64::MAX as u64)?),
            limit: Some(params::int(&p, "limit", 100, 1, MAX_LIMIT)?),
            wait: Some(params::int(&p, "wait", 0, 0, max_wait)?),
        })
    }
}

async fn status(state: &ApiState, spec: &StreamSpec) -> Result<StreamStatus, ApiError> {
    let row = state.store.stream(&spec.name).await?;
    let progress = state.sync.get(&spec.name).unwrap_or_default();
    let cursor = row.as_ref().and_then(|r| r.cursor);
    let lag = progress
        .head
        .map(|h| h.saturating_sub(cursor.unwrap_or(spec.from_block.saturating_sub(1))));
    Ok(StreamStatus {
        name: spec.name.clone(),
        chain: spec.chain.clone(),
        chain_id: spec.chain_id,
        addresses: spec.addresses.iter().map(|a| format!("{a:#x}")).collect(),
        events: spec.events.iter().map(|e| e.signature()).collect(),
        from_block: spec.from_block,
        confirmations: spec.confirmations.to_string(),
        cursor,
        head: progress.head,
        lag,
        events_recorded: row.as_ref().map_or(0, |r| r.events_recorded),
        reorgs: row.as_ref().map_or(0, |r| r.reorgs),
        range_span: progress.range_span,
        last_error: progress.last_error,
        last_ok: progress.last_ok,
    })
}

fn find<'a>(state: &'a ApiState, name: &str) -> Result<&'a StreamSpec, ApiError> {
    state
        .streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ApiError::not_found("name", format!("no stream named {name:?}")))
}

/// `GET /v1/streams`.
#[utoipa::path(get, path = "/v1/streams", operation_id = "list_streams", tag = "streams", security(("bearer" = [])),
    summary = "Every stream with its cursor, head and lag",
    responses((status = 200, body = StreamsPage, description = "the streams the token may read"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read status")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<StreamsPage>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let mut out = Vec::with_capacity(state.streams.len());
    for spec in state.streams.iter() {
        if caller.allow(Right::ReadStream(&spec.name)).is_err() {
            continue;
        }
        out.push(status(&state, spec).await?);
    }
    Ok(Json(StreamsPage { streams: out }))
}

/// `GET /v1/streams/{name}`.
#[utoipa::path(get, path = "/v1/streams/{name}", operation_id = "get_stream", tag = "streams", security(("bearer" = [])),
    summary = "One stream's status",
    params(("name" = String, Path, description = "a stream")),
    responses((status = 200, body = StreamStatus, description = "status"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read this stream"),
        (status = 404, body = ErrorBody, description = "no such stream")))]
pub async fn one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<StreamStatus>, ApiError> {
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
#[utoipa::path(get, path = "/v1/streams/{name}/events", operation_id = "stream_events", tag = "streams", security(("bearer" = [])),
    summary = "Envelopes with seq > after, in order; long-polls with wait",
    params(("name" = String, Path, description = "a stream, or a chain's transaction status stream tx.<chain>"), EventsQuery),
    responses((status = 200, body = EventsPage, description = "a page"),
        (status = 400, body = ErrorBody, description = "bad parameter; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read this stream"),
        (status = 404, body = ErrorBody, description = "no such stream")))]
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
    let q = EventsQuery::parse(query.as_deref(), state.max_wait.as_secs())?;
    let (after, limit, wait) = (
        q.after.unwrap_or(0),
        q.limit.unwrap_or(100),
        q.wait.unwrap_or(0),
    );
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
