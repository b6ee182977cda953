//! `/v1/sinks` and sink replay: where each sink stands in each stream, and
//! moving a sink's cursor back so it receives envelopes again.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::Value;

use axum::extract::RawQuery;
use ethgate_delivery::dead_letters::{RedeliverError, redeliver as redeliver_one};

use crate::audit::{record, refused};
use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState, params};
use ethgate_store::{Action, Outcome};

/// `GET /v1/sinks`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SinksPage {
    /// Every routed (stream, sink).
    pub sinks: Vec<SinkStatus>,
}

/// Where one sink stands in one stream.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SinkStatus {
    /// The `[[sinks]]` name.
    pub sink: String,
    /// The stream.
    pub stream: String,
    /// Last seq delivered.
    pub cursor: u64,
    /// Envelopes recorded and not yet delivered.
    pub lag: u64,
    /// Envelopes delivered.
    pub delivered: u64,
    /// Failed deliveries.
    pub failures: u64,
    /// Batches parked as dead letters.
    pub dead_letters: u64,
    /// Unix seconds of the last cursor move.
    pub updated_at: Option<i64>,
}

/// `GET /v1/sinks`: every routed (stream, sink) with cursor, lag and counts.
#[utoipa::path(get, path = "/v1/sinks", operation_id = "list_sinks", tag = "sinks", security(("bearer" = [])),
    summary = "Every sink's cursor, lag, delivered, failure and dead-letter counts per stream",
    responses((status = 200, body = SinksPage, description = "sinks"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read status")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<SinksPage>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let sinks = state
        .store
        .route_statuses(&state.routes)
        .await?
        .into_iter()
        .map(|s| SinkStatus {
            sink: s.sink,
            stream: s.stream,
            cursor: s.cursor.seq,
            lag: s.lag,
            delivered: s.cursor.delivered,
            failures: s.cursor.failures,
            dead_letters: s.dead_letters,
            updated_at: s.updated_at,
        })
        .collect();
    Ok(Json(SinksPage { sinks }))
}

/// Where to move a sink's cursor: exactly one of `seq` (redeliver
/// everything after it; at most the stream's last seq) or `block`
/// (redeliver from that block on).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RewindTo {
    /// After this seq.
    Seq(RewindSeq),
    /// From this block on.
    Block(RewindBlock),
}

/// Rewind to after a seq.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewindSeq {
    /// Redeliver everything after this seq.
    #[schema(minimum = 0, maximum = 9223372036854775807_u64)]
    pub seq: u64,
}

/// Rewind to a block.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewindBlock {
    /// Redeliver from this block on.
    #[schema(minimum = 0, maximum = 9223372036854775807_u64)]
    pub block: u64,
}

/// A rewind's answer: the sink's new cursor.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Rewound {
    /// The stream.
    pub stream: String,
    /// The sink.
    pub sink: String,
    /// The new cursor: the sink receives every envelope after it again.
    pub cursor: u64,
}

/// The rewind body, read field by field so an error names the field.
fn rewind_to(body: &[u8]) -> Result<RewindTo, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
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
    match (int("seq")?, int("block")?) {
        (Some(seq), None) => Ok(RewindTo::Seq(RewindSeq { seq })),
        (None, Some(block)) => Ok(RewindTo::Block(RewindBlock { block })),
        _ => Err(ApiError::bad_param(
            "seq",
            "give exactly one of \"seq\" or \"block\"",
        )),
    }
}

/// `POST /v1/streams/{name}/sinks/{sink}/rewind` with `{"seq": N}` or
/// `{"block": N}` (scope `admin`): the sink receives every envelope after
/// that seq, or from that block on, again.
#[utoipa::path(post, path = "/v1/streams/{name}/sinks/{sink}/rewind", operation_id = "rewind_sink", tag = "sinks", security(("bearer" = [])),
    summary = "Replay: move a sink's cursor back (scope admin)",
    params(("name" = String, Path, description = "a stream"), ("sink" = String, Path, description = "a sink it is delivered to")),
    request_body = RewindTo,
    responses((status = 200, body = Rewound, description = "the new cursor"),
        (status = 400, body = ErrorBody, description = "bad body; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not rewind this sink"),
        (status = 404, body = ErrorBody, description = "no such stream, or the stream is not delivered to that sink"),
        (status = 409, body = ErrorBody, description = "seq is past the stream's last seq")))]
pub async fn rewind(
    State(state): State<ApiState>,
    caller: Caller,
    Path((stream, sink)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Rewound>, ApiError> {
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
    let seq = match rewind_to(&body)? {
        RewindTo::Seq(RewindSeq { seq }) => {
            let last = state.store.last_seq(&stream).await?;
            if seq > last {
                return Err(ApiError::conflict(
                    "seq",
                    format!("{seq} is past the stream's last seq {last}"),
                ));
            }
            seq
        }
        RewindTo::Block(RewindBlock { block }) => {
            state.store.seq_before_block(&stream, block).await?
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
    Ok(Json(Rewound {
        stream,
        sink,
        cursor: seq,
    }))
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

/// `GET /v1/sinks/{name}/dead-letters`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLettersPage {
    /// The sink.
    pub sink: String,
    /// Parked batches, oldest first.
    pub dead_letters: Vec<DeadLetterView>,
}

/// A batch the sink gave up on.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLetterView {
    /// Its id, for redelivery.
    pub id: i64,
    /// The stream.
    pub stream: String,
    /// First seq of the batch.
    pub first_seq: u64,
    /// Last seq of the batch.
    pub last_seq: u64,
    /// Envelopes in it.
    pub count: u64,
    /// The sink's last refusal.
    pub error: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The envelopes, as they were to be delivered.
    #[schema(value_type = Vec<ethgate_core::Envelope>)]
    pub envelopes: Box<serde_json::value::RawValue>,
}

/// The dead-letter page's query.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// Most dead letters returned (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// `GET /v1/sinks/{name}/dead-letters?limit=N`: the batches the sink gave
/// up on, oldest first, with their envelopes and last error.
#[utoipa::path(get, path = "/v1/sinks/{name}/dead-letters", operation_id = "list_dead_letters", tag = "sinks", security(("bearer" = [])),
    summary = "Batches the sink gave up on (oldest first)",
    params(("name" = String, Path, description = "a sink"), DeadLettersQuery),
    responses((status = 200, body = DeadLettersPage, description = "dead letters"),
        (status = 400, body = ErrorBody, description = "bad parameter; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read this sink's dead letters"),
        (status = 404, body = ErrorBody, description = "no such sink")))]
pub async fn dead_letters(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<DeadLettersPage>, ApiError> {
    caller.allow(Right::ReadDeadLetters(&name))?;
    sink(&state, &name)?;
    let p = params::parse(query.as_deref(), &["limit"])?;
    let q = DeadLettersQuery {
        limit: Some(params::int(&p, "limit", 100, 1, 1_000)?),
    };
    let rows = state
        .store
        .dead_letters(&name, q.limit.unwrap_or(100) as u32)
        .await?;
    let dead_letters = rows
        .into_iter()
        .map(|d| {
            let envelopes = serde_json::value::RawValue::from_string(d.payload)
                .map_err(|e| ApiError::internal(&format!("dead letter {}: {e}", d.id)))?;
            Ok(DeadLetterView {
                id: d.id,
                stream: d.stream,
                first_seq: d.first_seq,
                last_seq: d.last_seq,
                count: d.count,
                error: d.error,
                created_at: d.created_at,
                envelopes,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(DeadLettersPage {
        sink: name,
        dead_letters,
    }))
}

/// A redelivery's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Redelivered {
    /// The dead letter's id, now removed.
    pub redelivered: i64,
    /// The stream.
    pub stream: String,
    /// First seq of the batch.
    pub first_seq: u64,
    /// Last seq of the batch.
    pub last_seq: u64,
}

/// `POST /v1/sinks/{name}/dead-letters/{id}/redeliver` (scope `admin`):
/// sends the parked batch again; on success it is removed.
#[utoipa::path(post, path = "/v1/sinks/{name}/dead-letters/{id}/redeliver", operation_id = "redeliver_dead_letter", tag = "sinks", security(("bearer" = [])),
    summary = "Send a dead letter again (scope admin); removed once acknowledged",
    params(("name" = String, Path, description = "a sink"),
        ("id" = u64, Path, description = "a dead letter", minimum = 0, maximum = 9223372036854775807_u64)),
    responses((status = 200, body = Redelivered, description = "redelivered"),
        (status = 400, body = ErrorBody, description = "bad id"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not redeliver to this sink"),
        (status = 404, body = ErrorBody, description = "no such sink or dead letter"),
        (status = 502, body = ErrorBody, description = "the sink refused again; the dead letter stays")))]
pub async fn redeliver(
    State(state): State<ApiState>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Redelivered>, ApiError> {
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
        Ok(d) => Ok(Json(Redelivered {
            redelivered: d.id,
            stream: d.stream,
            first_seq: d.first_seq,
            last_seq: d.last_seq,
        })),
        Err(RedeliverError::NotFound { .. }) => Err(ApiError::not_found(
            "id",
            format!("sink {name:?} has no dead letter {id}"),
        )),
        Err(RedeliverError::Sink(e)) => Err(ApiError::bad_gateway(e.to_string())),
        Err(RedeliverError::Store(e)) => Err(e.into()),
    }
}
