//! The `MetadataStore` trait: DynamoDB-shaped items with optimistic concurrency.

use crate::Result;
use serde_json::{Map, Value};

/// One stored item. `version` starts at 1 on creation and grows by one on every write.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub pk: String,
    pub sk: String,
    pub version: u64,
    pub attrs: Map<String, Value>,
}

/// The attribute that makes an item expire: Unix seconds (a number). Backends treat an
/// expired item as absent, on reads (never returned) and in write conditions
/// (`NotExists` holds, `Exists`/`VersionIs` do not), before any physical deletion
/// (DynamoDB deletes expired items lazily, up to days later).
pub const EXPIRES_AT: &str = "expires_at";

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Item {
    /// Whether the item has expired at `now` (Unix seconds).
    pub fn expired(&self, now: u64) -> bool {
        self.u64(EXPIRES_AT).is_some_and(|t| t <= now)
    }

    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(Value::as_str)
    }
    /// An unsigned integer attribute.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.attrs.get(key).and_then(Value::as_u64)
    }
}

/// The precondition of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Write regardless of the current state.
    Always,
    /// The item must not exist (create).
    NotExists,
    /// The item must exist (any version).
    Exists,
    /// The item must exist with exactly this version (compare-and-swap).
    VersionIs(u64),
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create or replace an item; the stored version becomes previous + 1 (or 1).
    Put {
        pk: String,
        sk: String,
        attrs: Map<String, Value>,
        condition: Condition,
    },
    /// Delete an item. Deleting a missing item with `Condition::Always` succeeds.
    Delete {
        pk: String,
        sk: String,
        condition: Condition,
    },
    /// Write nothing; only check that the item satisfies the condition.
    Check {
        pk: String,
        sk: String,
        condition: Condition,
    },
}

impl WriteOp {
    pub fn key(&self) -> (&str, &str) {
        match self {
            WriteOp::Put { pk, sk, .. }
            | WriteOp::Delete { pk, sk, .. }
            | WriteOp::Check { pk, sk, .. } => (pk, sk),
        }
    }
    pub fn condition(&self) -> Condition {
        match self {
            WriteOp::Put { condition, .. }
            | WriteOp::Delete { condition, .. }
            | WriteOp::Check { condition, .. } => *condition,
        }
    }
}

/// Paging for queries: at most `limit` items after the sort key `start_after`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: Option<usize>,
    pub start_after: Option<String>,
}

/// A page of query results; `next` is the `start_after` of the next page.
#[derive(Debug, Clone, Default)]
pub struct QueryPage {
    pub items: Vec<Item>,
    pub next: Option<String>,
}

/// Largest accepted item (keys + attributes as JSON), DynamoDB's 400 KB.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Largest accepted partition or sort key, in bytes (DynamoDB: 2048 / 1024).
pub const MAX_KEY_BYTES: usize = 1024;
/// Most operations in one transaction (DynamoDB: 100).
pub const MAX_TRANSACTION_OPS: usize = 100;

/// Items under a partition key and sort key, with conditional writes,
/// prefix queries and transactions. Every backend passes `conformance::run_all`.
#[async_trait::async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Read one item.
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>>;
    /// Items of a partition whose sort key starts with `sk_prefix`, ascending by sort key.
    async fn query(&self, pk: &str, sk_prefix: &str, page: Page) -> Result<QueryPage>;
    /// Apply all operations or none. Fails with `TransactionCancelled` naming the first
    /// operation whose condition did not hold.
    async fn transact(&self, ops: Vec<WriteOp>) -> Result<()>;
    /// A short name for logs and errors (e.g. `redb:/data/meta.redb`).
    fn describe(&self) -> String;

    /// Create or replace one item; returns its new version.
    async fn put(
        &self,
        pk: &str,
        sk: &str,
        attrs: Map<String, Value>,
        condition: Condition,
    ) -> Result<u64> {
        let before = self.get(pk, sk).await?.map(|i| i.version).unwrap_or(0);
        match self
            .transact(vec![WriteOp::Put {
                pk: pk.into(),
                sk: sk.into(),
                attrs,
                condition,
            }])
            .await
        {
            Ok(()) => Ok(match condition {
                Condition::VersionIs(v) => v + 1,
                Condition::NotExists => 1,
                _ => {
                    // Unconditional writes may race; report what is stored now.
                    self.get(pk, sk)
                        .await?
                        .map(|i| i.version)
                        .unwrap_or(before + 1)
                }
            }),
            Err(crate::StoreError::TransactionCancelled { pk, sk, .. }) => {
                Err(crate::StoreError::ConditionFailed { pk, sk })
            }
            Err(e) => Err(e),
        }
    }

    /// Delete one item.
    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> Result<()> {
        match self
            .transact(vec![WriteOp::Delete {
                pk: pk.into(),
                sk: sk.into(),
                condition,
            }])
            .await
        {
            Err(crate::StoreError::TransactionCancelled { pk, sk, .. }) => {
                Err(crate::StoreError::ConditionFailed { pk, sk })
            }
            other => other,
        }
    }

    /// Every item of a partition under a prefix, following pages.
    async fn query_all(&self, pk: &str, sk_prefix: &str) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut page = Page {
            limit: Some(500),
            start_after: None,
        };
        loop {
            let p = self.query(pk, sk_prefix, page.clone()).await?;
            out.extend(p.items);
            match p.next {
                Some(n) => page.start_after = Some(n),
                None => return Ok(out),
            }
        }
    }
}

/// Validate a whole transaction the way every backend must: at most
/// `MAX_TRANSACTION_OPS` operations, each item at most once, each operation valid.
pub fn validate_transaction(ops: &[WriteOp]) -> Result<()> {
    if ops.len() > MAX_TRANSACTION_OPS {
        return Err(crate::StoreError::Invalid(format!(
            "a transaction holds at most {MAX_TRANSACTION_OPS} operations"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        validate_op(op)?;
        if !seen.insert(op.key()) {
            return Err(crate::StoreError::Invalid(
                "a transaction may touch each item once".into(),
            ));
        }
    }
    Ok(())
}

/// Validate keys and sizes the way every backend must (DynamoDB's limits).
pub fn validate_op(op: &WriteOp) -> Result<()> {
    let (pk, sk) = op.key();
    if pk.is_empty() || sk.is_empty() {
        return Err(crate::StoreError::Invalid("keys must not be empty".into()));
    }
    if pk.len() > MAX_KEY_BYTES || sk.len() > MAX_KEY_BYTES {
        return Err(crate::StoreError::Invalid(format!(
            "key longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if pk.contains('\0') || sk.contains('\0') {
        return Err(crate::StoreError::Invalid(
            "keys must not contain NUL".into(),
        ));
    }
    if let WriteOp::Put { attrs, .. } = op {
        let size = serde_json::to_vec(attrs)
            .map(|v| v.len())
            .unwrap_or(usize::MAX)
            + pk.len()
            + sk.len();
        if size > MAX_ITEM_BYTES {
            return Err(crate::StoreError::Invalid(format!(
                "item of {size} bytes exceeds the {MAX_ITEM_BYTES}-byte limit"
            )));
        }
    }
    Ok(())
}
