//! API errors: one table from error to HTTP status and code.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The body of every error answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `not_found`, `invalid_json`, `unauthorized`, `unavailable`.
    pub code: String,
    /// What was wrong and how to fix it.
    pub message: String,
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// The request body or a parameter was invalid (400, or 413/415 from the body extractor).
    BadRequest {
        /// HTTP status.
        status: StatusCode,
        /// Machine-readable code.
        code: &'static str,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// No such conversation, queue or agent (404).
    NotFound(String),
    /// The request conflicts with the current state (409).
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// Too many attempts (429, with `Retry-After`): wait this many seconds.
    TooManyRequests {
        /// Seconds until the next attempt is taken.
        retry_after: u64,
        /// What was refused and why.
        message: String,
    },
    /// Storage cannot write now (503): nothing was written; the message says why.
    Unavailable(String),
    /// A failure on our side (500). The cause is logged once; the body stays opaque.
    Internal(anyhow::Error),
}

impl ApiError {
    /// A 400 with code `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
        }
    }

    /// A 403 with code `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: message.into(),
        }
    }

    /// A 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        let status = if status.is_client_error() {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        let hint = match rejection {
            JsonRejection::JsonDataError(_) => {
                "fix the field named above; /openapi.json gives every field's shape"
            }
            JsonRejection::MissingJsonContentType(_) => {
                "send the body with `Content-Type: application/json`"
            }
            _ => "send one JSON object as the body, as /openapi.json describes",
        };
        ApiError::BadRequest {
            status,
            code,
            message: format!("{}: {hint}", rejection.body_text()),
        }
    }
}

impl From<baton_core::CoreError> for ApiError {
    fn from(e: baton_core::CoreError) -> Self {
        use baton_core::CoreError as C;
        match e {
            C::NotFound(message) => ApiError::NotFound(message),
            C::BadRequest(message) => ApiError::invalid(message),
            C::Invalid { code, message } => ApiError::BadRequest {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code,
                message,
            },
            C::Conflict { code, message } => ApiError::Conflict { code, message },
            C::Forbidden(message) => ApiError::forbidden(message),
            C::Unavailable(message) => ApiError::Unavailable(message),
            C::Internal(message) => ApiError::Internal(anyhow::anyhow!(message)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, code, message) = match self {
            ApiError::TooManyRequests {
                retry_after: seconds,
                message,
            } => {
                retry_after = Some(seconds);
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            }
            ApiError::BadRequest {
                status,
                code,
                message,
            } => (status, code, message),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", message),
            ApiError::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            ApiError::Unavailable(message) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the server log has the cause".to_owned(),
                )
            }
        };
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message,
                },
            }),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
