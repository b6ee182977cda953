//! `/v1/sinks` and sink replay: where each sink stands in each stream, and
//! moving a sink's cursor back so it receives envelopes again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use axum::extract::RawQuery;
use ethgate_delivery::dead_letters::{RedeliverError, redeliver as redeliver_one};

use crate::audit::{record, refused};
use crate::auth::{Caller, Right};
use crate::{ApiError, ApiState, params};
use ethgate_store::{Action, Outcome};

/// `GET /v1/sinks`: every routed (stream, sink) with cursor, lag and counts.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let out: Vec<Value> = state
        .store
        .route_statuses(&state.routes)
        .await?
        .into_iter()
        .map(|s| {
            json!({
                "sink": s.sink,
                "stream": s.stream,
                "cursor": s.cursor.seq,
                "lag": s.lag,
                "delivered": s.cursor.delivered,
                "failures": s.cursor.failures,
                "dead_letters": s.dead_letters,
                "updated_at": s.updated_at,
            })
        })
        .collect();
    Ok(Json(json!({ "sinks": out })))
}

/// `POST /v1/streams/{name}/sinks/{sink}/rewind` with `{"seq": N}` or
/// `{"block": N}` (scope `admin`): the sink receives every envelope after
/// that seq, or from that block on, again.
pub async fn rewind(
    State(state): State<ApiState>,
    caller: Caller,
    Path((stream, sink)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let target = format!("{stream}/{sink}");
    if let Err(e) = caller.allow(Right::Sink(&sink)) {
        return Err(refused(&state, &caller, Action::SinkRewind, &target, e).await);
    }
    if !state.streams.iter().any(|s| s.name == stream) {
        return Err(ApiError::not_found(
            "name",
            format!("no stream named {stream:?}"),
        ));
    }
    if !state
        .routes
        .iter()
        .any(|(st, sk)| st == &stream && sk == &sink)
    {
        return Err(ApiError::not_found(
            "sink",
            format!("stream {stream:?} is not delivered to a sink named {sink:?}"),
        ));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_param(
            "body",
            format!("expected a JSON object like {{\"seq\": 0}}: {e}"),
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad_param(
            "body",
            "expected a JSON object like {\"seq\": 0}",
        ));
    };
    if let Some(k) = obj.keys().find(|k| *k != "seq" && *k != "block") {
        return Err(ApiError::bad_param(
            k,
            "unknown field; give \"seq\" or \"block\"",
        ));
    }
    let int = |k: &str| -> Result<Option<u64>, ApiError> {
        match obj.get(k) {
            None => Ok(None),
            Some(x) => params::body_uint(x).map(Some).ok_or_else(|| {
                ApiError::bad_param(k, "must be an integer from 0 to 9223372036854775807")
            }),
        }
    };
    let seq = match (int("seq")?, int("block")?) {
        (Some(seq), None) => {
            let last = state.store.last_seq(&stream).await?;
            if seq > last {
                return Err(ApiError::conflict(
                    "seq",
                    format!("{seq} is past the stream's last seq {last}"),
                ));
            }
            seq
        }
        (None, Some(block)) => state.store.seq_before_block(&stream, block).await?,
        _ => {
            return Err(ApiError::bad_param(
                "seq",
                "give exactly one of \"seq\" or \"block\"",
            ));
        }
    };
    state.store.rewind_sink(&stream, &sink, seq).await?;
    let detail = format!("cursor {seq}");
    record(
        &state,
        &caller,
        Action::SinkRewind,
        &target,
        Outcome::Accepted,
        &detail,
    )
    .await;
    tracing::info!(stream = %stream, sink = %sink, seq, token = %caller.token_id, "sink rewound");
    Ok(Json(json!({"stream": stream, "sink": sink, "cursor": seq})))
}

fn sink<'a>(
    state: &'a ApiState,
    name: &str,
) -> Result<&'a std::sync::Arc<dyn ethgate_delivery::Sink>, ApiError> {
    state
        .sinks
        .get(name)
        .ok_or_else(|| ApiError::not_found("name", format!("no sink named {name:?}")))
}

/// `GET /v1/sinks/{name}/dead-letters?limit=N`: the batches the sink gave
/// up on, oldest first, with their envelopes and last error.
pub async fn dead_letters(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ReadDeadLetters(&name))?;
    sink(&state, &name)?;
    let p = params::parse(query.as_deref(), &["limit"])?;
    let limit = params::int(&p, "limit", 100, 1, 1_000)?;
    let rows = state.store.dead_letters(&name, limit as u32).await?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id, "stream": d.stream, "first_seq": d.first_seq, "last_seq": d.last_seq, "count": d.count,
                "error": d.error, "created_at": d.created_at,
                "envelopes": serde_json::from_str::<Value>(&d.payload).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "sink": name, "dead_letters": out })))
}

/// `POST /v1/sinks/{name}/dead-letters/{id}/redeliver` (scope `admin`):
/// sends the parked batch again; on success it is removed.
pub async fn redeliver(
    State(state): State<ApiState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let target = format!("{name}/{id}");
    if let Err(e) = caller.allow(Right::Sink(&name)) {
        return Err(refused(&state, &caller, Action::Redeliver, &target, e).await);
    }
    let sink = sink(&state, &name)?.clone();
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_param("id", format!("{id:?} is not a dead-letter id")))?;
    let done = redeliver_one(&state.store, sink.as_ref(), id).await;
    let (outcome, detail) = match &done {
        Ok(_) => (Outcome::Accepted, String::new()),
        Err(RedeliverError::NotFound { .. }) => (Outcome::Refused, "no such dead letter".into()),
        Err(e) => (Outcome::Failed, e.to_string()),
    };
    record(
        &state,
        &caller,
        Action::Redeliver,
        &target,
        outcome,
        &detail,
    )
    .await;
    match done {
        Ok(d) => Ok(Json(
            json!({"redelivered": d.id, "stream": d.stream, "first_seq": d.first_seq, "last_seq": d.last_seq}),
        )),
        Err(RedeliverError::NotFound { .. }) => Err(ApiError::not_found(
            "id",
            format!("sink {name:?} has no dead letter {id}"),
        )),
        Err(RedeliverError::Sink(e)) => Err(ApiError::bad_gateway(e.to_string())),
        Err(RedeliverError::Store(e)) => Err(e.into()),
    }
}
