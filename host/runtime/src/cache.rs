//! On-disk cache of compiled components: `{dir}/{engine-hash}/{sha256}.cwasm`.
//! The engine hash changes with the wasmtime version and settings, so a new engine
//! never loads an incompatible artifact; the SHA-256 names the exact component bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn path(dir: &Path, engine_hash: &str, sha256: &str) -> PathBuf {
    dir.join(engine_hash).join(format!("{sha256}.cwasm"))
}

/// Write via a temp file + rename, so a crash never leaves a half-written entry.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
