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
///
/// Writes are **group-committed**: every [`MetadataStore::transact`] goes to one writer
/// thread, which applies all the transactions waiting for it in one redb write
/// transaction and makes them durable with one commit (one fsync), then answers each.
/// Each transaction keeps its own all-or-nothing semantics: its conditions are checked
/// (against the items as the transactions before it in the group left them) before any
/// of its writes, and a transaction whose condition fails is skipped without touching
/// the others. No caller is answered before the commit that holds its writes returned.
/// Under load this turns N fsyncs into one; an idle store commits each write at once
/// (the writer never waits for company).
#[derive(Clone)]
pub struct RedbMetadataStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<redb::Database>,
    path: PathBuf,
    /// To the writer thread; `None` only while dropping.
    writes: Option<std::sync::mpsc::Sender<Pending>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    /// Stops the writer (it finishes what it was sent) and waits for it, so the file is
    /// closed when the last handle is gone and can be opened again at once.
    fn drop(&mut self) {
        self.writes.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// One caller's transaction and where its outcome goes.
type Pending = (Vec<WriteOp>, tokio::sync::oneshot::Sender<Result<()>>);

/// At most this many transactions share one commit.
const MAX_GROUP: usize = 512;

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
        let db = Arc::new(db);
        let (writes, rx) = std::sync::mpsc::channel::<Pending>();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("redb-writer".into())
            .spawn(move || write_groups(&writer_db, rx))
            .map_err(|e| StoreError::Unavailable(format!("starting the store writer: {e}")))?;
        Ok(RedbMetadataStore {
            inner: Arc::new(Inner {
                db,
                path,
                writes: Some(writes),
                writer: Some(writer),
            }),
        })
    }

    fn get_sync(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let r = self.inner.db.begin_read().map_err(backend)?;
        let t = r.open_table(ITEMS).map_err(backend)?;
        match t.get(composite(pk, sk).as_str()).map_err(backend)? {
            Some(v) => Ok(Some(decode(pk, sk, v.value())?).filter(|i| !i.expired(now_unix()))),
            None => Ok(None),
        }
    }

    fn query_sync(&self, pk: &str, sk_prefix: &str, page: Page) -> Result<QueryPage> {
        let r = self.inner.db.begin_read().map_err(backend)?;
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
}

/// The writer thread: takes the first waiting transaction, then every other one already
/// waiting (up to [`MAX_GROUP`]), commits them together and answers each. Ends when
/// every sender is gone.
fn write_groups(db: &redb::Database, rx: std::sync::mpsc::Receiver<Pending>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let (txns, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        // A panic inside redb fails this group (nothing of it committed), not every
        // write after it.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit_group(db, txns)))
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(
                        "the store's writer panicked; this group of writes was not stored".into(),
                    ))
                });
        match outcome {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            // The write transaction failed as a whole (I/O): nothing of it is stored.
            Err(e) => {
                let message = match e {
                    StoreError::Unavailable(m) => m,
                    other => other.to_string(),
                };
                tracing::error!(writes = replies.len(), error = %message, "redb: a group of writes failed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Applies `txns` in order in one write transaction and commits it: the outer error is
/// the store's (nothing committed), the inner ones each transaction's own.
fn commit_group(db: &redb::Database, txns: Vec<Vec<WriteOp>>) -> Result<Vec<Result<()>>> {
    let w = db.begin_write().map_err(backend)?;
    let mut outcomes = Vec::with_capacity(txns.len());
    {
        let mut t = w.open_table(ITEMS).map_err(backend)?;
        let now = now_unix();
        for ops in txns {
            outcomes.push(apply(&mut t, ops, now)?);
        }
    }
    if outcomes.iter().any(Result::is_ok) {
        w.commit().map_err(backend)?;
    } else {
        w.abort().map_err(backend)?;
    }
    Ok(outcomes)
}

/// One transaction inside the group's write transaction: every condition is checked and
/// every value encoded before the first write, so a refused transaction writes nothing.
/// The outer error is a storage failure (the whole group is abandoned).
fn apply(t: &mut redb::Table<&str, &[u8]>, ops: Vec<WriteOp>, now: u64) -> Result<Result<()>> {
    let mut writes = Vec::with_capacity(ops.len());
    for (index, op) in ops.into_iter().enumerate() {
        let (pk, sk) = op.key();
        let key = composite(pk, sk);
        // An expired item counts as absent (its version restarts at 1).
        let current = match t.get(key.as_str()).map_err(backend)? {
            Some(v) => match decode(pk, sk, v.value()) {
                Ok(i) => Some(i).filter(|i| !i.expired(now)).map(|i| i.version),
                Err(e) => return Ok(Err(e)),
            },
            None => None,
        };
        if !holds(current, op.condition()) {
            return Ok(Err(StoreError::TransactionCancelled {
                index,
                pk: pk.to_string(),
                sk: sk.to_string(),
            }));
        }
        match op {
            WriteOp::Put { attrs, .. } => {
                let stored = Stored {
                    v: current.unwrap_or(0) + 1,
                    a: attrs,
                };
                match serde_json::to_vec(&stored) {
                    Ok(bytes) => writes.push((key, Some(bytes))),
                    Err(e) => return Ok(Err(StoreError::Invalid(e.to_string()))),
                }
            }
            WriteOp::Delete { .. } => writes.push((key, None)),
            WriteOp::Check { .. } => {}
        }
    }
    for (key, value) in writes {
        match value {
            Some(bytes) => t.insert(key.as_str(), bytes.as_slice()).map_err(backend)?,
            None => t.remove(key.as_str()).map_err(backend)?,
        };
    }
    Ok(Ok(()))
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
        validate_transaction(&ops)?;
        if ops.is_empty() {
            return Ok(());
        }
        let stopped = || StoreError::Unavailable("the store's writer has stopped".into());
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let writes = self.inner.writes.as_ref().ok_or_else(stopped)?;
        writes.send((ops, reply)).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }

    fn describe(&self) -> String {
        format!("redb:{}", self.inner.path.display())
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

    /// Many writers at once share commits; each keeps its own outcome: of 64 racing
    /// create-if-absent writes of one item exactly one wins, 256 distinct writes all
    /// land, and a refused transaction in a group leaves nothing of itself behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn grouped_transactions_keep_their_own_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let store = RedbMetadataStore::open(&path).unwrap();
        let attrs = |n: u64| {
            let mut a = Map::new();
            a.insert("n".into(), Value::from(n));
            a
        };
        let mut tasks = Vec::new();
        for n in 0..64u64 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                // Each also writes its own item: all or nothing with the race.
                s.transact(vec![
                    WriteOp::Put {
                        pk: "race".into(),
                        sk: "x".into(),
                        attrs: attrs(n),
                        condition: Condition::NotExists,
                    },
                    WriteOp::Put {
                        pk: "mine".into(),
                        sk: format!("{n:03}"),
                        attrs: attrs(n),
                        condition: Condition::NotExists,
                    },
                ])
                .await
                .is_ok()
            }));
        }
        for n in 0..256u64 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.put("many", &format!("{n:03}"), attrs(n), Condition::NotExists)
                    .await
                    .is_ok()
            }));
        }
        let mut ok = Vec::new();
        for t in tasks {
            ok.push(t.await.unwrap());
        }
        assert_eq!(ok[..64].iter().filter(|w| **w).count(), 1, "one winner");
        assert!(ok[64..].iter().all(|w| *w), "every distinct write lands");
        let winner = store
            .get("race", "x")
            .await
            .unwrap()
            .unwrap()
            .u64("n")
            .unwrap();
        let mine = store
            .query("mine", "", Page::default())
            .await
            .unwrap()
            .items;
        assert_eq!(mine.len(), 1, "only the winner's second write exists");
        assert_eq!(mine[0].u64("n"), Some(winner));
        let many = store
            .query("many", "", Page::default())
            .await
            .unwrap()
            .items;
        assert_eq!(many.len(), 256);
        drop(store);
        // The last handle closed the file: it opens again at once, with everything.
        let store = RedbMetadataStore::open(&path).unwrap();
        let many = store
            .query("many", "", Page::default())
            .await
            .unwrap()
            .items;
        assert_eq!(many.len(), 256);
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
