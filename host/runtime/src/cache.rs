//! On-disk cache of compiled components: `{dir}/{engine-hash}/{sha256}.cwasm`.
//! The engine hash changes with the wasmtime version and settings, so a new engine
//! never loads an incompatible artifact; the SHA-256 names the exact component bytes.

use std::path::{Path, PathBuf};

pub fn path(dir: &Path, engine_hash: &str, sha256: &str) -> PathBuf {
    dir.join(engine_hash).join(format!("{sha256}.cwasm"))
}
