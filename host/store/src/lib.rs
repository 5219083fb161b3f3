//! # helixflow-store: where HelixFlow keeps its state
//!
//! Two kinds of state, two abstractions:
//!
//! * [`MetadataStore`]: small JSON items under a partition key and a sort key, with
//!   optimistic concurrency (every item carries a `version`; writes can be conditional
//!   on it), prefix queries within a partition, and all-or-nothing multi-item
//!   transactions. The shape is DynamoDB's on purpose, so a DynamoDB backend is a
//!   drop-in. The backends are crates of their own: `helixflow-store-redb` (embedded,
//!   the default: one file, ACID, fsync on commit) and `helixflow-store-dynamodb`; both
//!   pass the `conformance` suite (feature `conformance`).
//! * [`ArtifactStore`]: immutable, content-addressed blobs (component bytes, later model
//!   files) in any `object_store` URL; `file://` under the data dir by default.
//!
//! [`registry::Registry`] is the typed layer on top (tenants, functions, versions,
//! aliases; with [`access`], [`events`] and [`models`]: credentials, the audit log,
//! queued events, schedules, models). Where each record lives is [`keys`]' business:
//! it is the only code that spells a partition or sort key (checked by
//! `tests/key_layout.rs`).
//!
//! Architecture invariant: nothing here knows HTTP, JSON wire formats of the API, or
//! wasmtime. Callers get [`StoreError`]s, never backend-specific errors.

pub mod access;
pub mod alerts;
mod artifacts;
pub mod events;
pub mod keys;
pub mod lease;
mod metadata;
pub mod models;
pub mod registry;
pub mod usage;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use artifacts::{ArtifactStore, StoredArtifact, sha256_hex};
pub use metadata::{
    Condition, EXPIRES_AT, Item, MAX_TRANSACTION_OPS, MetadataStore, Page, QueryPage, WriteOp,
    now_unix, validate_op, validate_transaction,
};

/// How cloud backends retry throttling and transient failures (with exponential
/// backoff and jitter). Node configuration: `[state] retry_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per operation, the first included (1 = no retries).
    pub max_attempts: u32,
    pub initial_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: std::time::Duration::from_millis(50),
            max_backoff: std::time::Duration::from_secs(2),
        }
    }
}

/// Errors at the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item in another state than required.
    #[error("condition failed on {pk}/{sk}")]
    ConditionFailed { pk: String, sk: String },
    /// One operation of a transaction failed its condition; nothing was written.
    #[error("transaction cancelled: operation {index} ({pk}/{sk}) failed its condition")]
    TransactionCancelled {
        index: usize,
        pk: String,
        sk: String,
    },
    /// The item or object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Stored data failed a check (bad JSON, SHA-256 mismatch).
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Bad input from the caller (key too long, item too large, bad URL).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend could not be reached or failed; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
