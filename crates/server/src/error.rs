//! API errors: a status code and the CSMS error body `{"error":{"error_code","error_msg"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use secret_rotator_store::StoreError;
use secret_rotator_store::error::codes;
use secret_rotator_store::protocol::wire::{ErrorBody, ErrorInfo};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// CSMS.xxxx.
    pub code: String,
    /// Message (never a value or a credential).
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400 with CSMS.0002: the value of a parameter is invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_PARAMETER, message)
    }

    /// 400 with CSMS.0003: the request URL is invalid (its path or query cannot be read).
    pub fn invalid_url(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_URL, message)
    }

    /// 400 with CSMS.0004: the request body's format is wrong.
    pub fn malformed_body(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::MALFORMED_BODY, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // An upstream CSMS that fails is a bad gateway here; its 4xx answers pass through.
        let status = match &e {
            StoreError::Upstream { status, .. } if *status >= 500 => 502,
            other => other.status(),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

impl From<secret_rotator_store::changer::ResolveError> for ApiError {
    fn from(e: secret_rotator_store::changer::ResolveError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInfo {
                error_code: self.code,
                error_msg: self.message,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}
