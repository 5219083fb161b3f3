//! # helixflow-disk-cache: node-local caches on disk
//!
//! A cache is a directory of files written atomically (temp file + rename, so a crash
//! never leaves a half-written entry) whose modification time is its last use: `touch`
//! on every hit, and `sweep` deletes least-recently-used files until the directory fits
//! its size budget. Used for artifacts (by `helixflow-store`) and compiled components
//! (by `helixflow-runtime`); knows nothing about what the files hold.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Write `bytes` to `path` via a temp file in the same directory + rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        std::thread::current().id()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Mark `path` as just used (its mtime is the LRU clock). Missing files are ignored.
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub removed_files: usize,
    pub removed_bytes: u64,
    pub remaining_bytes: u64,
}

fn files(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            files(&e.path(), out);
        } else if !e.file_name().to_string_lossy().ends_with(".tmp") {
            out.push((
                e.path(),
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
}

/// Delete least-recently-used files under `dir` (recursively) until the total is at
/// most `max_bytes`.
pub fn sweep(dir: &Path, max_bytes: u64) -> Sweep {
    let mut all = Vec::new();
    files(dir, &mut all);
    let mut total: u64 = all.iter().map(|(_, len, _)| len).sum();
    let mut result = Sweep::default();
    if total > max_bytes {
        all.sort_by_key(|(_, _, mtime)| *mtime);
        for (path, len, _) in all {
            if total <= max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
                result.removed_files += 1;
                result.removed_bytes += len;
            }
        }
    }
    result.remaining_bytes = total;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sweep_removes_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let p = dir.path().join("sub").join(name);
            write_atomic(&p, &[0u8; 100]).unwrap();
            let f = std::fs::File::options().append(true).open(&p).unwrap();
            f.set_modified(now - Duration::from_secs(100 - i as u64 * 10))
                .unwrap();
        }
        // Using `a` makes it the most recent.
        touch(&dir.path().join("sub/a"));
        let s = sweep(dir.path(), 200);
        assert_eq!(
            (s.removed_files, s.removed_bytes, s.remaining_bytes),
            (1, 100, 200)
        );
        assert!(
            !dir.path().join("sub/b").exists(),
            "b was the least recently used"
        );
        assert!(dir.path().join("sub/a").exists() && dir.path().join("sub/c").exists());
        assert_eq!(sweep(dir.path(), 1000).removed_files, 0);
    }
}
