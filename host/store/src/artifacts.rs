//! Content-addressed artifacts (component bytes) in any `object_store` URL.

use crate::{Result, StoreError};
use bytes::Bytes;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn valid_sha(sha: &str) -> bool {
    sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// An existing artifact older than this is rewritten when deployed again (see `put`).
const REFRESH_AFTER: std::time::Duration = std::time::Duration::from_secs(600);
/// Part size of [`ArtifactStore::put_file`]'s streaming uploads (S3 needs >= 5 MiB).
pub const PUT_FILE_PART: usize = 8 << 20;
/// Parts of a streaming upload buffered at once.
pub const PUT_FILE_PARTS_IN_FLIGHT: usize = 2;

/// One listed artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub sha256: String,
    pub size: u64,
    /// Time since it was written.
    pub age: std::time::Duration,
}

/// Immutable blobs addressed by their SHA-256, under `{prefix}/sha256/{hex}`.
#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    url: String,
    local: Option<LocalCache>,
}

/// The node-local copy of a remote store's artifacts: filled on first use (verified),
/// read on later uses (verified again), least recently used evicted past `max_bytes`.
#[derive(Clone, Debug)]
struct LocalCache {
    dir: std::path::PathBuf,
    max_bytes: u64,
}

fn map_err(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { path, .. } => StoreError::NotFound(path),
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl ArtifactStore {
    /// Open the store at an object_store URL: `file:///abs/dir`, `s3://bucket/prefix` or
    /// `az://container/prefix` (settings from each cloud's usual environment variables).
    /// A `file://` directory is created if missing.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::from_url_with(url, crate::RetryPolicy::default())
    }

    /// Like `from_url`, with an explicit retry policy for cloud stores.
    pub fn from_url_with(url: &str, retry: crate::RetryPolicy) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Invalid(format!("artifact store URL {url:?}: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed.to_file_path().map_err(|()| {
                StoreError::Invalid(format!("{url:?} is not an absolute file:// URL"))
            })?;
            std::fs::create_dir_all(&dir)
                .map_err(|e| StoreError::Invalid(format!("creating {}: {e}", dir.display())))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            return Ok(ArtifactStore {
                store: Arc::new(fs),
                prefix: ObjPath::default(),
                url: url.to_string(),
                local: None,
            });
        }
        // Retries (backoff with jitter, for throttling such as S3 503 SlowDown and for
        // transient errors) are bounded so an unreachable store fails a deploy in seconds.
        let retry_config = object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: retry.initial_backoff,
                max_backoff: retry.max_backoff,
                base: 2.0,
            },
            max_retries: retry.max_attempts.saturating_sub(1) as usize,
            retry_timeout: std::time::Duration::from_secs(10),
        };
        let invalid = |e: object_store::Error| {
            StoreError::Invalid(format!("artifact store URL {url:?}: {e}"))
        };
        // Settings come from each cloud's usual environment: AWS_* (region, credentials,
        // AWS_ENDPOINT_URL_S3, AWS_ALLOW_HTTP), AZURE_* (account, key,
        // AZURE_STORAGE_USE_EMULATOR, ...).
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry_config)
                    .build()
                    .map_err(invalid)?,
            ),
            "az" | "azure" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry_config)
                    .build()
                    .map_err(invalid)?,
            ),
            other => {
                return Err(StoreError::Invalid(format!(
                    "artifact store URL {url:?}: scheme {other:?} is not supported (use file://, s3:// or az://)"
                )));
            }
        };
        let prefix = ObjPath::parse(parsed.path().trim_start_matches('/'))
            .map_err(|e| StoreError::Invalid(format!("artifact store URL {url:?}: {e}")))?;
        Ok(ArtifactStore {
            store,
            prefix,
            url: url.to_string(),
            local: None,
        })
    }

    /// Wrap an existing object store (tests, custom back-ends).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, url: &str) -> Self {
        ArtifactStore {
            store,
            prefix: ObjPath::from(prefix),
            url: url.to_string(),
            local: None,
        }
    }

    /// Keep a node-local copy of artifacts in `dir` (at most `max_bytes`, LRU). Only
    /// remote stores use it: a `file://` store is already local.
    pub fn with_local_cache(mut self, dir: impl Into<std::path::PathBuf>, max_bytes: u64) -> Self {
        if !self.url.starts_with("file:") {
            self.local = Some(LocalCache {
                dir: dir.into(),
                max_bytes,
            });
        }
        self
    }

    fn cache_fill(&self, sha: &str, bytes: &[u8]) {
        if let Some(c) = &self.local {
            let path = c.dir.join(sha);
            if let Err(e) = helixflow_disk_cache::write_atomic(&path, bytes) {
                tracing::warn!(path = %path.display(), error = %e, "artifact cache: write failed");
                return;
            }
            let swept = helixflow_disk_cache::sweep(&c.dir, c.max_bytes);
            if swept.removed_files > 0 {
                tracing::info!(
                    removed = swept.removed_files,
                    bytes = swept.removed_bytes,
                    "artifact cache: evicted least recently used"
                );
            }
        }
    }

    /// The locally cached bytes of `sha`, if present and intact.
    fn cache_get(&self, sha: &str) -> Option<Bytes> {
        let c = self.local.as_ref()?;
        let path = c.dir.join(sha);
        let bytes = std::fs::read(&path).ok()?;
        if sha256_hex(&bytes) != sha {
            tracing::warn!(path = %path.display(), "artifact cache: corrupt entry removed");
            let _ = std::fs::remove_file(&path);
            return None;
        }
        helixflow_disk_cache::touch(&path);
        Some(Bytes::from(bytes))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, sha: &str) -> ObjPath {
        let mut parts: Vec<_> = self.prefix.parts().collect();
        parts.push("sha256".into());
        parts.push(sha.to_string().into());
        ObjPath::from_iter(parts)
    }

    /// Store `bytes` under their SHA-256 (returned), with `PutMode::Create`. Storing
    /// bytes that are already there is a no-op (the key is the content), except that an
    /// old copy is rewritten so its age restarts: `gc` only deletes unreferenced
    /// artifacts older than its grace period, and a deploy that is about to reference an
    /// old orphan must not lose it to a concurrent `gc`.
    pub async fn put(&self, bytes: Bytes) -> Result<String> {
        let sha = sha256_hex(&bytes);
        let path = self.path(&sha);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from_bytes(bytes.clone()), opts)
            .await
        {
            Ok(_) => {
                self.cache_fill(&sha, &bytes);
                Ok(sha)
            }
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.cache_fill(&sha, &bytes);
                let meta = self.store.head(&path).await.map_err(map_err)?;
                let age = std::time::SystemTime::now()
                    .duration_since(std::time::SystemTime::from(meta.last_modified))
                    .unwrap_or_default();
                if age > REFRESH_AFTER {
                    self.store
                        .put(&path, PutPayload::from_bytes(bytes))
                        .await
                        .map_err(map_err)?;
                }
                Ok(sha)
            }
            Err(e) => Err(map_err(e)),
        }
    }

    /// Store the file at `file`, whose SHA-256 the caller computed as `sha256`, without
    /// reading it into memory: it is streamed in parts of [`PUT_FILE_PART`] bytes (at most
    /// [`PUT_FILE_PARTS_IN_FLIGHT`] buffered). Invariants, as for [`ArtifactStore::put`]:
    /// the object appears whole or not at all (a multipart upload becomes visible only
    /// when it completes, a `file://` one by rename), and under a name that is the SHA-256
    /// of what it holds: the bytes are hashed again as they are sent and the upload is
    /// aborted unless they hash to `sha256`. An artifact already stored is kept (and
    /// rewritten when older than the `gc` grace period, like `put`); a concurrent upload
    /// of the same name can only write the same verified bytes, which is why the
    /// multipart path needs no `PutMode::Create`. Files up to one part go through `put`.
    pub async fn put_file(&self, file: &std::path::Path, sha256: &str) -> Result<String> {
        use tokio::io::AsyncReadExt;
        if !valid_sha(sha256) {
            return Err(StoreError::Invalid(format!(
                "{sha256:?} is not a SHA-256 hex digest"
            )));
        }
        let io =
            |e: std::io::Error| StoreError::Unavailable(format!("reading {}: {e}", file.display()));
        let size = tokio::fs::metadata(file).await.map_err(io)?.len();
        if size <= PUT_FILE_PART as u64 {
            let bytes = Bytes::from(tokio::fs::read(file).await.map_err(io)?);
            let actual = sha256_hex(&bytes);
            if actual != sha256 {
                return Err(StoreError::Corrupt(format!(
                    "file {} has SHA-256 {actual}, expected {sha256}",
                    file.display()
                )));
            }
            return self.put(bytes).await;
        }
        let path = self.path(sha256);
        match self.store.head(&path).await {
            Ok(meta) => {
                let age = std::time::SystemTime::now()
                    .duration_since(std::time::SystemTime::from(meta.last_modified))
                    .unwrap_or_default();
                if age <= REFRESH_AFTER {
                    return Ok(sha256.to_string());
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(map_err(e)),
        }
        let upload = self.store.put_multipart(&path).await.map_err(map_err)?;
        let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, PUT_FILE_PART);
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(io(e));
                }
            };
            hasher.update(&buf[..n]);
            if let Err(e) = w.wait_for_capacity(PUT_FILE_PARTS_IN_FLIGHT).await {
                let _ = w.abort().await;
                return Err(map_err(e));
            }
            w.write(&buf[..n]);
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha256 {
            let _ = w.abort().await;
            return Err(StoreError::Corrupt(format!(
                "file {} has SHA-256 {actual}, expected {sha256}",
                file.display()
            )));
        }
        w.finish().await.map_err(map_err)?;
        Ok(sha256.to_string())
    }

    /// Fetch the bytes of `sha`, verifying their hash.
    pub async fn get(&self, sha: &str) -> Result<Bytes> {
        if !valid_sha(sha) {
            return Err(StoreError::Invalid(format!(
                "{sha:?} is not a SHA-256 hex digest"
            )));
        }
        if let Some(bytes) = self.cache_get(sha) {
            return Ok(bytes);
        }
        let bytes = self
            .store
            .get(&self.path(sha))
            .await
            .map_err(map_err)?
            .bytes()
            .await
            .map_err(map_err)?;
        let actual = sha256_hex(&bytes);
        if actual != sha {
            return Err(StoreError::Corrupt(format!(
                "artifact {sha} has SHA-256 {actual}"
            )));
        }
        self.cache_fill(sha, &bytes);
        Ok(bytes)
    }

    /// Writes a record (not content-addressed) under `records/{rel}`: dead-letter and
    /// destination records of asynchronous invocations. `rel`'s segments must be plain
    /// names (no `..`); an existing record is replaced (writes are idempotent by key).
    pub async fn put_record(&self, rel: &str, bytes: Bytes) -> Result<()> {
        let path = self.record_path(rel)?;
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    fn record_path(&self, rel: &str) -> Result<ObjPath> {
        let mut parts: Vec<_> = self.prefix.parts().collect();
        parts.push("records".into());
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            if seg == "." || seg == ".." {
                return Err(StoreError::Invalid(format!(
                    "record path {rel:?}: no '.' or '..' segments"
                )));
            }
            parts.push(
                object_store::path::PathPart::parse(seg)
                    .map_err(|e| StoreError::Invalid(format!("record path {rel:?}: {e}")))?
                    .to_owned(),
            );
        }
        Ok(ObjPath::from_iter(parts))
    }

    /// Every stored artifact: (SHA-256, age, size). Objects that are not named by a
    /// SHA-256 are skipped.
    pub async fn list(&self) -> Result<Vec<StoredArtifact>> {
        use futures::TryStreamExt;
        let mut parts: Vec<_> = self.prefix.parts().collect();
        parts.push("sha256".into());
        let dir = ObjPath::from_iter(parts);
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(map_err)?;
        let now = std::time::SystemTime::now();
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let sha = m.location.filename()?.to_string();
                valid_sha(&sha).then(|| StoredArtifact {
                    sha256: sha,
                    size: m.size,
                    age: now
                        .duration_since(std::time::SystemTime::from(m.last_modified))
                        .unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Delete the blob of `sha` (missing is fine).
    pub async fn delete(&self, sha: &str) -> Result<()> {
        if let Some(c) = &self.local {
            let _ = std::fs::remove_file(c.dir.join(sha));
        }
        match self.store.delete(&self.path(sha)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_roundtrip_is_content_addressed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("artifacts").display());
        let store = ArtifactStore::from_url(&url).unwrap();
        let sha = store.put(Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(sha, sha256_hex(b"hello"));
        assert_eq!(
            store.put(Bytes::from_static(b"hello")).await.unwrap(),
            sha,
            "idempotent"
        );
        assert_eq!(store.get(&sha).await.unwrap(), Bytes::from_static(b"hello"));

        // Corrupt the file on disk: reads must notice.
        let file = dir.path().join("artifacts/sha256").join(&sha);
        std::fs::write(&file, b"evil").unwrap();
        assert!(matches!(store.get(&sha).await, Err(StoreError::Corrupt(_))));

        assert!(matches!(
            store.get(&"0".repeat(64)).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.get("../../etc/passwd").await,
            Err(StoreError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn put_file_streams_verifies_and_stores_nothing_on_a_hash_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("artifacts").display());
        let store = ArtifactStore::from_url(&url).unwrap();
        // Larger than one part: the multipart path.
        let big: Vec<u8> = (0..(PUT_FILE_PART * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let file = dir.path().join("upload");
        std::fs::write(&file, &big).unwrap();
        let sha = sha256_hex(&big);
        let wrong = sha256_hex(b"something else");
        assert!(matches!(
            store.put_file(&file, &wrong).await,
            Err(StoreError::Corrupt(_))
        ));
        assert!(
            matches!(store.get(&wrong).await, Err(StoreError::NotFound(_))),
            "nothing stored under the wrong name"
        );
        let leftovers = std::fs::read_dir(dir.path().join("artifacts/sha256"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(leftovers, 0, "no partial object left behind");
        assert_eq!(store.put_file(&file, &sha).await.unwrap(), sha);
        assert_eq!(store.get(&sha).await.unwrap().as_ref(), &big[..]);
        assert_eq!(
            store.put_file(&file, &sha).await.unwrap(),
            sha,
            "idempotent"
        );
        assert_eq!(store.list().await.unwrap().len(), 1);
        // Small files: the single-request path, same checks.
        std::fs::write(&file, b"small").unwrap();
        assert!(matches!(
            store.put_file(&file, &wrong).await,
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            store.put_file(&file, &sha256_hex(b"small")).await.unwrap(),
            sha256_hex(b"small")
        );
        assert!(matches!(
            store.put_file(&file, "../x").await,
            Err(StoreError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn local_filesystem_passes_the_artifact_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::from_url(&format!("file://{}", dir.path().display())).unwrap();
        crate::conformance::artifacts_run_all(&store).await;
    }

    #[tokio::test]
    async fn local_cache_fills_verifies_and_evicts() {
        let dir = tempfile::tempdir().unwrap();
        let remote = Arc::new(object_store::memory::InMemory::new());
        let cache_dir = dir.path().join("cache");
        let store = ArtifactStore::new(remote.clone(), "p", "memory://test")
            .with_local_cache(&cache_dir, 250);
        let a = Bytes::from(vec![1u8; 100]);
        let sha_a = sha256_hex(&a);
        // Written remotely by another node: the first read fills the cache.
        remote
            .put(
                &ObjPath::from(format!("p/sha256/{sha_a}")),
                PutPayload::from_bytes(a.clone()),
            )
            .await
            .unwrap();
        assert_eq!(store.get(&sha_a).await.unwrap(), a);
        assert!(cache_dir.join(&sha_a).exists());
        // Served locally even when the remote copy is gone.
        remote
            .delete(&ObjPath::from(format!("p/sha256/{sha_a}")))
            .await
            .unwrap();
        assert_eq!(store.get(&sha_a).await.unwrap(), a);
        // A corrupt local copy is dropped, not served.
        std::fs::write(cache_dir.join(&sha_a), b"evil").unwrap();
        assert!(matches!(
            store.get(&sha_a).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(!cache_dir.join(&sha_a).exists());
        // Puts fill too; past 250 bytes the least recently used goes.
        let shas: Vec<String> =
            futures::future::join_all((2u8..5).map(|i| store.put(Bytes::from(vec![i; 100]))))
                .await
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
        let cached = shas
            .iter()
            .filter(|s| cache_dir.join(s.as_str()).exists())
            .count();
        assert_eq!(cached, 2, "250-byte budget holds two 100-byte artifacts");
    }

    #[test]
    fn unsupported_urls_are_clear_errors() {
        assert!(ArtifactStore::from_url("not a url").is_err());
        assert!(
            ArtifactStore::from_url("file://relative/path").is_err(),
            "a file URL must be absolute"
        );
        // gs:// is not offered: no GCS server reachable here speaks the XML API with
        // preconditions that object_store uses, so it could not be tested.
        let e = ArtifactStore::from_url("gs://bucket/prefix")
            .err()
            .expect("gs:// refused");
        assert!(e.to_string().contains("not supported"), "{e}");
    }
}
