//! Middleware that bounds each request and keeps every error in the one
//! JSON shape.
//!
//! Requests are checked outermost first: the head's size (a JSON 414 or
//! 431 instead of the parser's bare status), then the body is read whole
//! within the body timeout and size limit (408, 413), then the handler
//! runs within the request timeout (503). Whatever answers with an error
//! that is not JSON — the router's 405, an extractor's rejection of a
//! badly encoded path — is rewritten into `{"error": …}` without echoing
//! what the caller sent.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, ApiState, MAX_BODY};

/// Connections closed at once because the cap was reached.
pub const M_REFUSED: &str = "ethgate_api_connections_refused_total";

/// Longest request target (path and query) answered.
pub const MAX_URI: usize = 8 * 1024;
/// Most bytes of header names and values answered.
pub const MAX_HEADERS: usize = 16 * 1024;

/// Refuses an oversized head, reads the body within its limits, and runs
/// the handler within the request timeout.
pub async fn bound(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if req.uri().to_string().len() > MAX_URI {
        return ApiError::with_status(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is longer than {MAX_URI} bytes"),
        )
        .into_response();
    }
    let head: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if head > MAX_HEADERS {
        return ApiError::with_status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request headers exceed {MAX_HEADERS} bytes"),
        )
        .into_response();
    }
    let limits = state.limits;
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, MAX_BODY);
    let bytes = match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_) => {
            return ApiError::with_status(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    limits.body_timeout.as_secs()
                ),
            )
            .into_response();
        }
        Ok(Err(_)) => {
            return ApiError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is larger than {MAX_BODY} bytes"),
            )
            .into_response();
        }
        Ok(Ok(b)) => b,
    };
    let req = Request::from_parts(parts, Body::from(bytes));
    match tokio::time::timeout(limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            "request_timeout",
            format!(
                "the request took longer than {} s",
                limits.request_timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Rewrites an error response that is not JSON into the error shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this path does not answer that method; see the Allow header",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the request body is too large"),
        StatusCode::BAD_REQUEST => (
            "invalid_parameter",
            "the request could not be read (a path segment that is not valid percent-encoded UTF-8, or a malformed header)",
        ),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        s if s.is_server_error() => ("internal", "internal error; see the server log"),
        _ => ("invalid_request", "the request was refused"),
    };
    let mut out = ApiError::with_status(status, code, message).into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(header::ALLOW, allow);
    }
    out
}
