//! Large request bodies (model uploads) spooled to a private temporary file instead of
//! memory: [`spool`] streams the body to disk while hashing it, so an upload of up to
//! `max_model_bytes` costs a fixed buffer of memory, not its size.

use crate::error::ApiError;
use crate::tracked::TrackedBody;
use http::StatusCode;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Bytes buffered between the socket and the file.
const WRITE_BUFFER: usize = 1 << 20;
/// Spool directories older than this are left over from a crash ([`remove_stale`]).
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// An upload on disk. Dropping it removes its directory and file.
pub(crate) struct Spooled {
    _dir: tempfile::TempDir,
    /// The body, in a directory nothing else uses (ORT may write a file next to it).
    pub path: PathBuf,
    /// Hex SHA-256 of the body.
    pub sha256: String,
    pub size: u64,
}

fn internal(what: &str, e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        format!("{what}: {e}"),
    )
}

/// Streams `body` into `{parent}/upload-XXXX/model.onnx` (a fresh directory, mode 0700),
/// computing its SHA-256 on the way. **Invariants**: no more than `limit` bytes are ever
/// written: a declared `Content-Length` over it is refused before reading, and a body
/// that goes past it is answered 413 the moment it does; on every error the directory
/// and what was written are removed before the error is returned.
pub(crate) async fn spool(
    body: TrackedBody,
    headers: &http::HeaderMap,
    limit: usize,
    parent: &Path,
) -> Result<Spooled, ApiError> {
    crate::request::check_declared_length(headers, limit)?;
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| internal("creating the upload directory", e))?;
    let dir = tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(parent)
        .map_err(|e| internal("creating the upload directory", e))?;
    let path = dir.path().join("model.onnx");
    let file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| internal("creating the upload file", e))?;
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request("bad_body", format!("reading the request body: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > limit as u64 {
            return Err(crate::request::too_big(limit));
        }
        hasher.update(&data);
        out.write_all(&data)
            .await
            .map_err(|e| internal("writing the upload file", e))?;
    }
    out.flush()
        .await
        .map_err(|e| internal("writing the upload file", e))?;
    drop(out);
    Ok(Spooled {
        _dir: dir,
        path,
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// Removes spool directories under `parent` older than a few hours (a crashed process
/// leaves its uploads behind). Called at start-up; errors are ignored.
pub fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old && name.to_string_lossy().starts_with("upload-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
