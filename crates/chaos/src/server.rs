//! The proxy's HTTP side: one request in, the modes drawn for it, its
//! calls answered here or forwarded (rewritten for a lagging view), and
//! the answer failed, held or cut as drawn.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::view::{self, Post, Rewritten};
use crate::{ErrorKind, Inner};

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/chaos", get(stats))
        .with_state(inner)
}

async fn stats(State(inner): State<Arc<Inner>>) -> Response {
    let stats = inner.stats.lock().map(|s| s.clone()).unwrap_or_default();
    axum::Json(stats).into_response()
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    (status, [("content-type", "application/json")], bytes).into_response()
}

async fn handle(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    inner.count(|s| s.requests += 1);
    let draw = inner.draw();
    if let Some(kind) = draw.error {
        inner.count(|s| *s.errors.entry(kind.name().to_owned()).or_default() += 1);
    }
    match draw.error {
        Some(ErrorKind::Http500) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "backend unavailable").into_response();
        }
        Some(ErrorKind::Http429) => {
            return (StatusCode::TOO_MANY_REQUESTS, "rate limited").into_response();
        }
        _ => {}
    }
    let answered = answer(&inner, &body, draw.view).await;
    let (status, bytes) = match answered {
        Ok(bytes) => (StatusCode::OK, bytes),
        Err(why) => return (StatusCode::BAD_GATEWAY, why).into_response(),
    };
    match draw.error {
        Some(ErrorKind::Timeout) => {
            // The upstream acted on it; the client never hears.
            let hang = inner
                .modes
                .lock()
                .map_or(std::time::Duration::ZERO, |m| m.hang);
            tokio::time::sleep(hang).await;
            (StatusCode::GATEWAY_TIMEOUT, "upstream timed out").into_response()
        }
        Some(ErrorKind::Truncated) => {
            let half = bytes[..bytes.len() / 2].to_vec();
            json_response(status, half)
        }
        _ => json_response(status, bytes),
    }
}

/// A call's fate: answered here, or forwarded with what to do to its answer.
enum Fate {
    Here(Value),
    Forward(Value, Post),
}

/// Answers a request's calls: the upstream's bytes unchanged when nothing
/// applies to them, else each call as its view and the modes say.
async fn answer(inner: &Inner, body: &Bytes, view: Option<u64>) -> Result<Vec<u8>, String> {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let batch = req.is_array();
    let calls: Vec<Value> = match req {
        Value::Array(calls) => calls,
        Value::Null => Vec::new(),
        call => vec![call],
    };
    let sends = calls
        .iter()
        .any(|c| c["method"] == "eth_sendRawTransaction");
    if view.is_none() && !sends || calls.is_empty() {
        return forward_raw(inner, body.to_vec()).await;
    }
    let fates: Vec<Fate> = calls.iter().map(|c| fate(inner, c, view)).collect();
    let mut out: Vec<Value> = Vec::with_capacity(fates.len());
    let forwards: Vec<Value> = fates
        .iter()
        .enumerate()
        .filter_map(|(k, f)| match f {
            Fate::Forward(c, _) => {
                let mut c = c.clone();
                c["id"] = json!(k);
                Some(c)
            }
            Fate::Here(_) => None,
        })
        .collect();
    let mut answers = std::collections::HashMap::new();
    if !forwards.is_empty() {
        let bytes = forward_raw(inner, serde_json::to_vec(&forwards).unwrap_or_default()).await?;
        let got: Vec<Value> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the upstream's batch answer did not parse: {e}"))?;
        for a in got {
            if let Some(k) = a["id"].as_u64() {
                answers.insert(k as usize, a);
            }
        }
    }
    for (k, (f, call)) in fates.into_iter().zip(&calls).enumerate() {
        let mut a = match f {
            Fate::Here(a) => a,
            Fate::Forward(c, post) => {
                let mut a = answers
                    .remove(&k)
                    .ok_or_else(|| format!("the upstream left call {k} unanswered"))?;
                if let (Some(v), Some(result)) = (view, a.get_mut("result"))
                    && view::finish(post, result, v)
                {
                    let full = c["params"][1].clone();
                    *result = inner
                        .upstream_call("eth_getBlockByNumber", json!([format!("{v:#x}"), full]))
                        .await
                        .unwrap_or(Value::Null);
                }
                a
            }
        };
        a["id"] = call["id"].clone();
        out.push(a);
    }
    let value = match batch {
        true => Value::Array(out),
        false => out.pop().unwrap_or(Value::Null),
    };
    Ok(serde_json::to_vec(&value).unwrap_or_default())
}

/// What happens to one call: a dropped send is acknowledged here with the
/// transaction's hash; with a view, the call is rewritten for it.
fn fate(inner: &Inner, call: &Value, view: Option<u64>) -> Fate {
    let reply = |result: Result<Value, Value>| match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": call["id"], "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": call["id"], "error": e}),
    };
    if call["method"] == "eth_sendRawTransaction" && inner.drops_send() {
        let raw = call["params"][0].as_str().unwrap_or_default();
        let bytes = alloy_primitives::hex::decode(raw).unwrap_or_default();
        inner.count(|s| s.dropped_sends += 1);
        let hash = alloy_primitives::keccak256(bytes);
        return Fate::Here(reply(Ok(json!(format!("{hash:#x}")))));
    }
    match view {
        None => Fate::Forward(call.clone(), Post::Keep),
        Some(v) => match view::rewrite(call, v) {
            Rewritten::Answer(a) => Fate::Here(reply(a)),
            Rewritten::Forward(c, post) => Fate::Forward(c, post),
        },
    }
}

async fn forward_raw(inner: &Inner, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let resp = inner
        .client
        .post(&inner.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("upstream: {}", e.without_url()))?;
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("upstream: {}", e.without_url()))?;
    Ok(bytes.to_vec())
}
