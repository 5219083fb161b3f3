//! # helixflow-store-redb: the embedded `MetadataStore`
//!
//! [`RedbMetadataStore`] keeps HelixFlow's metadata in one local redb file: ACID,
//! durable on commit (fsync), one process at a time. It is the default backend of a
//! node (`[state] metadata = "redb://..."`); `helixflow-store-dynamodb` is the shared,
//! cloud one. Both pass the same conformance suite (`helixflow_store::conformance`).
//! Nothing here knows what the items mean: the key layouts are `helixflow_store::keys`'.

use helixflow_store::{
    Condition, Item, MetadataStore, Page, QueryPage, Result, StoreError, WriteOp, now_unix,
    validate_transaction,
};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keys are `pk \0 sk`, so a partition's items are contiguous and ordered by sort key.
const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");

/// `MetadataStore` on a local redb file.
#[derive(Clone)]
pub struct RedbMetadataStore {
    db: Arc<redb::Database>,
    path: PathBuf,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn composite(pk: &str, sk: &str) -> String {
    let mut k = String::with_capacity(pk.len() + sk.len() + 1);
    k.push_str(pk);
    k.push('\0');
    k.push_str(sk);
    k
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    v: u64,
    a: Map<String, Value>,
}

fn decode(pk: &str, sk: &str, bytes: &[u8]) -> Result<Item> {
    let s: Stored = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{pk}/{sk}: {e}")))?;
    Ok(Item {
        pk: pk.to_string(),
        sk: sk.to_string(),
        version: s.v,
        attrs: s.a,
    })
}

fn holds(current: Option<u64>, cond: Condition) -> bool {
    match cond {
        Condition::Always => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::VersionIs(v) => current == Some(v),
    }
}

impl RedbMetadataStore {
    /// Open (or create) the database file. Fails with a clear message when another
    /// process holds it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Invalid(format!("creating {}: {e}", parent.display())))?;
        }
        let db = redb::Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                "{} is already open in another process (is another `helixflow serve` running on this data dir?)",
                path.display()
            )),
            other => StoreError::Unavailable(format!("opening {}: {other}", path.display())),
        })?;
        let w = db.begin_write().map_err(backend)?;
        w.open_table(ITEMS).map_err(backend)?;
        w.commit().map_err(backend)?;
        Ok(RedbMetadataStore {
            db: Arc::new(db),
            path,
        })
    }

    fn get_sync(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let r = self.db.begin_read().map_err(backend)?;
        let t = r.open_table(ITEMS).map_err(backend)?;
        match t.get(composite(pk, sk).as_str()).map_err(backend)? {
            Some(v) => Ok(Some(decode(pk, sk, v.value())?).filter(|i| !i.expired(now_unix()))),
            None => Ok(None),
        }
    }

    fn query_sync(&self, pk: &str, sk_prefix: &str, page: Page) -> Result<QueryPage> {
        let r = self.db.begin_read().map_err(backend)?;
        let t = r.open_table(ITEMS).map_err(backend)?;
        let prefix = composite(pk, sk_prefix);
        let start = match &page.start_after {
            // Strictly after `start_after`: append the smallest char.
            Some(after) => {
                let mut s = composite(pk, after);
                s.push('\u{1}');
                if s < prefix { prefix.clone() } else { s }
            }
            None => prefix.clone(),
        };
        let limit = page.limit.unwrap_or(usize::MAX).max(1);
        let now = now_unix();
        let mut items = Vec::new();
        let mut next = None;
        for entry in t.range(start.as_str()..).map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            let key = k.value();
            if !key.starts_with(&prefix) {
                break;
            }
            if items.len() == limit {
                next = items.last().map(|i: &Item| i.sk.clone());
                break;
            }
            let sk = &key[pk.len() + 1..];
            let item = decode(pk, sk, v.value())?;
            if !item.expired(now) {
                items.push(item);
            }
        }
        Ok(QueryPage { items, next })
    }

    fn transact_sync(&self, ops: Vec<WriteOp>) -> Result<()> {
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(backend)?;
        {
            let mut t = w.open_table(ITEMS).map_err(backend)?;
            let now = now_unix();
            // Check every condition first; abort (drop w) on the first failure.
            let mut versions = Vec::with_capacity(ops.len());
            for (index, op) in ops.iter().enumerate() {
                let (pk, sk) = op.key();
                // An expired item counts as absent (its version restarts at 1).
                let current = match t.get(composite(pk, sk).as_str()).map_err(backend)? {
                    Some(v) => Some(decode(pk, sk, v.value())?)
                        .filter(|i| !i.expired(now))
                        .map(|i| i.version),
                    None => None,
                };
                if !holds(current, op.condition()) {
                    return Err(StoreError::TransactionCancelled {
                        index,
                        pk: pk.to_string(),
                        sk: sk.to_string(),
                    });
                }
                versions.push(current);
            }
            for (op, current) in ops.into_iter().zip(versions) {
                match op {
                    WriteOp::Put { pk, sk, attrs, .. } => {
                        let stored = Stored {
                            v: current.unwrap_or(0) + 1,
                            a: attrs,
                        };
                        let bytes = serde_json::to_vec(&stored)
                            .map_err(|e| StoreError::Invalid(e.to_string()))?;
                        t.insert(composite(&pk, &sk).as_str(), bytes.as_slice())
                            .map_err(backend)?;
                    }
                    WriteOp::Delete { pk, sk, .. } => {
                        t.remove(composite(&pk, &sk).as_str()).map_err(backend)?;
                    }
                    WriteOp::Check { .. } => {}
                }
            }
        }
        w.commit().map_err(backend)?;
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
}

#[async_trait::async_trait]
impl MetadataStore for RedbMetadataStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        // Point reads are microseconds on redb: no thread hop.
        self.get_sync(pk, sk)
    }

    async fn query(&self, pk: &str, sk_prefix: &str, page: Page) -> Result<QueryPage> {
        let this = self.clone();
        let (pk, sk_prefix) = (pk.to_string(), sk_prefix.to_string());
        blocking(move || this.query_sync(&pk, &sk_prefix, page)).await
    }

    async fn transact(&self, ops: Vec<WriteOp>) -> Result<()> {
        let this = self.clone();
        blocking(move || this.transact_sync(ops)).await
    }

    fn describe(&self) -> String {
        format!("redb:{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn redb_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbMetadataStore::open(dir.path().join("meta.redb")).unwrap();
        helixflow_store::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = RedbMetadataStore::open(&path).unwrap();
            let mut a = Map::new();
            a.insert("x".into(), Value::from(7));
            store.put("p", "s", a, Condition::NotExists).await.unwrap();
        }
        let store = RedbMetadataStore::open(&path).unwrap();
        let item = store.get("p", "s").await.unwrap().unwrap();
        assert_eq!(item.u64("x"), Some(7));
        assert_eq!(item.version, 1);
    }

    #[test]
    fn second_open_of_the_same_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let _first = RedbMetadataStore::open(&path).unwrap();
        let err = RedbMetadataStore::open(&path)
            .err()
            .expect("second open must fail");
        assert!(err.to_string().contains("already open"), "{err}");
    }
}
