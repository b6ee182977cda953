//! The one place API errors become HTTP responses.
//!
//! Every error body is `{"error": {"code", "message", "field"}}`: `code` is
//! stable for programs, `message` is for people, `field` names the request
//! parameter at fault when there is one. Internal errors are logged with
//! their cause and answered with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

/// Longest message or field name an error carries: messages quote what the
/// caller sent, which must not come back unbounded.
const MAX_ECHO: usize = 300;

fn clip(mut s: String) -> String {
    if s.len() > MAX_ECHO {
        let mut end = MAX_ECHO;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl ApiError {
    /// Any status with a stable code, for the middleware's own answers.
    pub fn with_status(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 429: the token's request rate is spent; retry after `secs`.
    pub fn rate_limited(secs: u64) -> Self {
        ApiError {
            retry_after: Some(secs),
            ..ApiError::with_status(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this token's request rate limit is reached; retry after the Retry-After seconds",
            )
        }
    }

    /// 403: a policy refused the request; `message` names the policy and
    /// the rule.
    pub fn refused(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::with_status(StatusCode::FORBIDDEN, "policy", message)
        }
    }

    /// 400 for a bad request parameter, naming it.
    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message: message.into(),
            field: Some(field.to_owned()),
            retry_after: None,
        }
    }

    /// 404 for an unknown named resource.
    pub fn not_found(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: Some(field.to_owned()),
            retry_after: None,
        }
    }

    /// 401: no usable token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            field: Some("Authorization".into()),
            retry_after: None,
        }
    }

    /// 403: a valid token without the scope.
    pub fn forbidden(scope: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!("this token lacks the {scope:?} scope"),
            field: Some("Authorization".into()),
            retry_after: None,
        }
    }

    /// 409: the request conflicts with one already accepted.
    pub fn conflict(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            code: "conflict",
            message: message.into(),
            field: Some(field.to_owned()),
            retry_after: None,
        }
    }

    /// 503: a part of the gateway this request needs is not configured.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// 502: a downstream sink refused; its (secret-free) message is shown.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_GATEWAY,
            code: "sink_failed",
            message: message.into(),
            field: None,
            retry_after: None,
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
            retry_after: None,
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The message, for the audit trail.
    pub fn message(&self) -> String {
        clip(self.message.clone())
    }

    /// The status code, for tests and middleware.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl From<ethgate_store::StoreError> for ApiError {
    fn from(e: ethgate_store::StoreError) -> Self {
        ApiError::internal(&e)
    }
}

/// The body of every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code, message and the request field at fault.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_parameter`, `not_found`, `policy`, …
    pub code: &'static str,
    /// For people; at most 300 bytes of what the caller sent is quoted.
    pub message: String,
    /// The request parameter or field at fault, if one is.
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: clip(self.message),
                field: self.field.map(clip),
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
