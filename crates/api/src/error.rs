//! The one place API errors become HTTP responses.
//!
//! Every error body is `{"error": {"code", "message", "field"}}`: `code` is
//! stable for programs, `message` is for people, `field` names the request
//! parameter at fault when there is one. Internal errors are logged with
//! their cause and answered with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// 400 for a bad request parameter, naming it.
    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 404 for an unknown named resource.
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 401: no usable token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            field: Some("Authorization".into()),
        }
    }

    /// 403: a valid token without the scope.
    pub fn forbidden(scope: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!("this token lacks the {scope:?} scope"),
            field: Some("Authorization".into()),
        }
    }

    /// 409: the request conflicts with one already accepted.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 503: a part of the gateway this request needs is not configured.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            field: None,
        }
    }

    /// 502: a downstream sink refused; its (secret-free) message is shown.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: "sink_failed",
            message: message.into(),
            field: None,
        }
    }

    /// 500; the cause is logged, not returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error; see the server log".into(),
            field: None,
        }
    }

    /// The status code, for tests and middleware.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ethgate_store::StoreError> for ApiError {
    fn from(e: ethgate_store::StoreError) -> Self {
        ApiError::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "field": self.field}});
        (self.status, Json(body)).into_response()
    }
}
