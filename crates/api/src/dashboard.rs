//! The dashboard at `/`: one page, its script and its style, embedded in
//! the binary (no CDN, no build step). The page asks for a token and reads
//! the same API as everyone else; see `assets/dashboard.js`.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const HTML: &str = include_str!("../assets/dashboard.html");
const JS: &str = include_str!("../assets/dashboard.js");
const CSS: &str = include_str!("../assets/dashboard.css");

/// Only this origin's own script and style run: a value shown on the
/// page can never become code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard.
#[utoipa::path(get, path = "/", operation_id = "dashboard", tag = "health", summary = "The dashboard (HTML)",
    responses((status = 200, content_type = "text/html", body = String, description = "the page")))]
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", HTML)
}

/// `GET /dashboard.js`: the dashboard's script.
#[utoipa::path(get, path = "/dashboard.js", operation_id = "dashboard_script", tag = "health", summary = "The dashboard's script",
    responses((status = 200, content_type = "text/javascript", body = String, description = "the script")))]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// `GET /dashboard.css`: the dashboard's style.
#[utoipa::path(get, path = "/dashboard.css", operation_id = "dashboard_style", tag = "health", summary = "The dashboard's style",
    responses((status = 200, content_type = "text/css", body = String, description = "the style")))]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}
