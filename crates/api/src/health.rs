//! Liveness, readiness, metrics and the JSON 404.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState};

/// Who may read `/metrics` on the API's address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Anyone (the default: scrapers carry no token).
    #[default]
    Open,
    /// Any valid token.
    Token,
    /// Nobody here: they are served on `[api] metrics_listen`.
    Elsewhere,
}

/// How the API shows itself beyond its routes: metrics access and the
/// browser origins allowed to call it (CORS; none by default).
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    /// Who may read `/metrics`.
    pub metrics: MetricsAccess,
    /// Origins (`https://dash.example.com`) a browser may call from.
    pub cors_origins: Vec<axum::http::HeaderValue>,
}

/// `/healthz`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `"ok"`.
    pub status: &'static str,
}

/// `/readyz`'s answer, 200 or 503.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// The store answers and every chain answered recently.
    pub ready: bool,
    /// The store answered.
    pub store: bool,
    /// Each chain.
    pub chains: Vec<ChainReady>,
}

/// One chain's part in readiness.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChainReady {
    /// The `[[chains]]` name.
    pub chain: String,
    /// An endpoint answered within the chain's staleness bound.
    pub ok: bool,
    /// Milliseconds since the last successful call; `null` before one.
    pub last_success_ms_ago: Option<u64>,
}

/// `/healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health", summary = "Liveness",
    responses((status = 200, body = Health, description = "up")))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `/readyz`: the store answers and every chain answered recently.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    summary = "Readiness: store reachable, every chain answered recently",
    responses((status = 200, body = Readiness, description = "ready"),
        (status = 503, body = Readiness, description = "not ready")))]
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let store_ok = state.store.ping().await;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let chains: Vec<ChainReady> = state
        .chains
        .iter()
        .map(|c| {
            let last = c.pool.last_success_ms();
            let ok = last > 0 && now_ms.saturating_sub(last) <= c.stale_after.as_millis() as u64;
            ChainReady {
                chain: c.name.clone(),
                ok,
                last_success_ms_ago: (last > 0).then(|| now_ms.saturating_sub(last)),
            }
        })
        .collect();
    let ready = store_ok && chains.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        store: store_ok,
        chains,
    };
    (status, Json(body)).into_response()
}

/// `/metrics`: Prometheus text format; behind any valid token, or only on
/// its own address, when so configured.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health", summary = "Prometheus metrics",
    description = "Open unless `[api] metrics_token` puts it behind any valid token, or `[api] metrics_listen` moves it to its own address.",
    responses((status = 200, content_type = "text/plain", body = String, description = "text exposition format"),
        (status = 401, body = ErrorBody, description = "metrics are behind a token and none was given"),
        (status = 404, body = ErrorBody, description = "metrics are served on [api] metrics_listen"),
        (status = 503, body = ErrorBody, description = "no metrics recorder is installed")))]
pub async fn metrics(State(state): State<ApiState>, req: Request) -> Response {
    match state.exposure.metrics {
        MetricsAccess::Open => {}
        MetricsAccess::Elsewhere => {
            return ApiError::not_found("path", "metrics are served on [api] metrics_listen")
                .into_response();
        }
        MetricsAccess::Token => {
            let (mut parts, _) = req.into_parts();
            let caller = Caller::from_request_parts(&mut parts, &state).await;
            if let Err(e) = caller.and_then(|c| c.allow(Right::ReadStatus)) {
                return e.into_response();
            }
        }
    }
    render(state.metrics.as_ref())
}

/// A router with `/metrics` alone, for `[api] metrics_listen`.
pub fn metrics_router(render_fn: Option<crate::MetricsRender>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let r = render_fn.clone();
                async move { render(r.as_ref()) }
            }),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::limits::json_errors))
}

fn render(metrics: Option<&crate::MetricsRender>) -> Response {
    match metrics {
        Some(render) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
            .into_response(),
        None => ApiError::unavailable("no metrics recorder is installed").into_response(),
    }
}

/// Unknown routes get the same JSON error shape as everything else.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found("path", format!("no route for {}", uri.path()))
}
