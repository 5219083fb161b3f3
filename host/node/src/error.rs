//! The node's error: what went wrong, as a kind the API maps to a status, a
//! machine-readable code and a human message. Nothing here knows HTTP.

use helixflow_runtime::{InvokeError, LoadError};
use helixflow_store::StoreError;
use helixflow_store::registry::RegistryError;

/// What kind of failure an error is; the API layer maps each to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid (400).
    Invalid,
    /// No credentials, or credentials that do not verify (401).
    Unauthenticated,
    /// Credentials that do not allow this (403).
    Forbidden,
    /// What the request names does not exist (here) (404).
    NotFound,
    /// It conflicts with what is stored (409).
    Conflict,
    /// Over a rate or concurrency limit (429).
    Limited,
    /// The request body is over a limit (413).
    TooLarge,
    /// This node failed (500).
    Internal,
    /// The function failed to give a usable answer (502).
    BadGateway,
    /// A dependency (store, capacity) is unavailable for now (503).
    Unavailable,
    /// The function ran out of time (504).
    Timeout,
}

/// A failure of a node operation.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    pub kind: ErrorKind,
    /// Machine-readable, e.g. `not_found`, `rate_limited`.
    pub code: &'static str,
    pub message: String,
    /// Seconds after which trying again may succeed.
    pub retry_after: Option<u32>,
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

impl NodeError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        NodeError {
            kind,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, "not_found", message)
    }
    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, code, message)
    }
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl From<RegistryError> for NodeError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(m) => NodeError::not_found(m),
            RegistryError::Conflict(m) => NodeError::new(ErrorKind::Conflict, "conflict", m),
            RegistryError::Invalid(m) => NodeError::invalid("invalid_request", m),
            RegistryError::Store(s) => s.into(),
        }
    }
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => NodeError::not_found(m),
            StoreError::Invalid(m) => NodeError::invalid("invalid_request", m),
            StoreError::Unavailable(m) => {
                NodeError::new(ErrorKind::Unavailable, "store_unavailable", m).retry_after(1)
            }
            StoreError::Corrupt(m) => NodeError::internal("store_corrupt", m),
            e @ (StoreError::ConditionFailed { .. } | StoreError::TransactionCancelled { .. }) => {
                NodeError::new(ErrorKind::Conflict, "conflict", e.to_string())
            }
        }
    }
}

impl From<LoadError> for NodeError {
    fn from(e: LoadError) -> Self {
        let code = match &e {
            LoadError::NotAComponent(_) => "not_a_component",
            LoadError::Compile(_) => "compile_error",
            LoadError::UnsupportedImport(_) => "unsupported_import",
            LoadError::NoSupportedExport | LoadError::NoStart(_) => "no_supported_export",
            LoadError::Internal(_) => return NodeError::internal("internal_error", e.to_string()),
        };
        NodeError::invalid(code, e.to_string())
    }
}

impl From<&InvokeError> for NodeError {
    fn from(e: &InvokeError) -> Self {
        let kind = match e {
            InvokeError::Trap(_)
            | InvokeError::MemoryLimit(_)
            | InvokeError::StackOverflow
            | InvokeError::Internal(_) => ErrorKind::Internal,
            InvokeError::Timeout(_) => ErrorKind::Timeout,
            InvokeError::NoResponse => ErrorKind::BadGateway,
            InvokeError::WrongTrigger(_) => ErrorKind::Invalid,
            InvokeError::Capacity(_) => ErrorKind::Unavailable,
            InvokeError::RequestTooLarge(_) => ErrorKind::TooLarge,
            InvokeError::RequestBody(_) => ErrorKind::Invalid,
            InvokeError::BadResponse(_) => ErrorKind::BadGateway,
        };
        let err = NodeError::new(kind, e.code(), e.to_string());
        if matches!(e, InvokeError::Capacity(_)) {
            err.retry_after(1)
        } else {
            err
        }
    }
}
