//! `/v1/sinks` and sink replay: where each sink stands in each stream, and
//! moving a sink's cursor back so it receives envelopes again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::auth::{Caller, Scope};
use crate::{ApiError, ApiState};

/// `GET /v1/sinks`: every routed (stream, sink) with cursor, lag and counts.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::EventsRead)?;
    let statuses = state.store.sink_statuses().await?;
    let mut out = Vec::with_capacity(state.routes.len());
    for (stream, sink) in state.routes.iter() {
        let s = statuses
            .iter()
            .find(|s| &s.stream == stream && &s.sink == sink);
        let lag = match s {
            Some(s) => s.lag,
            None => state.store.last_seq(stream).await.unwrap_or(0),
        };
        out.push(json!({
            "sink": sink,
            "stream": stream,
            "cursor": s.map_or(0, |s| s.cursor.seq),
            "lag": lag,
            "delivered": s.map_or(0, |s| s.cursor.delivered),
            "failures": s.map_or(0, |s| s.cursor.failures),
            "updated_at": s.map(|s| s.updated_at),
        }));
    }
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
    caller.require(Scope::Admin)?;
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
            Some(x) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::bad_param(k, "must be a non-negative integer")),
        }
    };
    let seq = match (int("seq")?, int("block")?) {
        (Some(seq), None) => {
            let last = state.store.last_seq(&stream).await?;
            if seq > last {
                return Err(ApiError::bad_param(
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
    tracing::info!(stream = %stream, sink = %sink, seq, token = %caller.token_id, "sink rewound");
    Ok(Json(json!({"stream": stream, "sink": sink, "cursor": seq})))
}
