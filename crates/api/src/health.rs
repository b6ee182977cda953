//! Liveness, readiness, metrics and the JSON 404.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{ApiError, ApiState};

/// `/healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `/readyz`: the store answers and every chain answered recently.
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let store_ok = state.store.ping().await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let chains: Vec<serde_json::Value> = state
        .chains
        .iter()
        .map(|c| {
            let last = c.pool.last_success_ms();
            let ok = last > 0 && now_ms.saturating_sub(last) <= c.stale_after.as_millis() as u64;
            json!({"chain": c.name, "ok": ok, "last_success_ms_ago": (last > 0).then(|| now_ms.saturating_sub(last))})
        })
        .collect();
    let ready = store_ok && chains.iter().all(|c| c["ok"] == true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "store": store_ok, "chains": chains})),
    )
        .into_response()
}

/// `/metrics`: Prometheus text format.
pub async fn metrics(State(state): State<ApiState>) -> Response {
    match &state.metrics {
        Some(render) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}

/// Unknown routes get the same JSON error shape as everything else.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("path", format!("no route for {}", uri.path()))
}
