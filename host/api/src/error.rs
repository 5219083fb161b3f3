//! The API's error shape: an HTTP status + `{"error":{"code","message"}}`.

use crate::body::{Body, full};
use helixflow_runtime::{InvokeError, LoadError};
use helixflow_store::StoreError;
use helixflow_store::registry::RegistryError;
use http::{Response, StatusCode};

/// An API error: status, stable machine-readable code, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After`, when retrying later can help.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut b = Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json");
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was not read: the connection cannot be reused.
            b = b.header(http::header::CONNECTION, "close");
        }
        if let Some(s) = self.retry_after {
            b = b.header(http::header::RETRY_AFTER, s.to_string());
        }
        b.body(full(serde_json::to_vec(&body).unwrap_or_default()))
            .unwrap_or_else(|_| Response::new(full(Vec::new())))
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(m) => ApiError::not_found(m),
            RegistryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            RegistryError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            RegistryError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            StoreError::Unavailable(m) => {
                let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", m);
                e.retry_after = Some(1);
                e
            }
            StoreError::Corrupt(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store_corrupt", m)
            }
            e @ (StoreError::ConditionFailed { .. } | StoreError::TransactionCancelled { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
        }
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        let code = match &e {
            LoadError::NotAComponent(_) => "not_a_component",
            LoadError::Compile(_) => "compile_error",
            LoadError::UnsupportedImport(_) => "unsupported_import",
            LoadError::NoSupportedExport => "no_supported_export",
            LoadError::Internal(_) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    e.to_string(),
                );
            }
        };
        ApiError::bad_request(code, e.to_string())
    }
}

impl From<&InvokeError> for ApiError {
    fn from(e: &InvokeError) -> Self {
        let status = match e {
            InvokeError::Trap(_)
            | InvokeError::MemoryLimit(_)
            | InvokeError::StackOverflow
            | InvokeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            InvokeError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            InvokeError::NoResponse => StatusCode::BAD_GATEWAY,
            InvokeError::WrongTrigger(_) => StatusCode::BAD_REQUEST,
            InvokeError::Capacity(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut err = ApiError::new(status, e.code(), e.to_string());
        if matches!(e, InvokeError::Capacity(_)) {
            err.retry_after = Some(1);
        }
        err
    }
}
