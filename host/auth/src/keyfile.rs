//! Key files: the platform admin key (`{data_dir}/admin.key`) and the secrets key
//! (`{data_dir}/secrets.key` or `[auth] secrets_key_file`).
//!
//! Invariants this module enforces:
//! * A key file is written atomically: a temp file in the same directory, created with
//!   mode 0600, written and fsynced, then renamed over the target and the directory
//!   fsynced. A crash leaves either no key file or a whole one, never an empty one.
//! * A key file is refused (the node does not start) when it is empty, when its key is
//!   too weak, or when other users may read or write it (any group/other permission
//!   bit); each refusal says how to fix it.
//! * No credential is ever empty: [`check_admin_key`] refuses empty and short keys
//!   wherever they come from (file, environment).

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The shortest platform admin key accepted (a generated one is 51 characters).
pub const MIN_ADMIN_KEY_LEN: usize = 32;

/// Why a key (file) is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is empty (a crash while it was being written?): {fix}", path.display())]
    Empty { path: PathBuf, fix: String },
    #[error(
        "{} may be read or written by other users (mode {mode:03o}): run `chmod 600 {}` (and make sure the node's user owns it)",
        path.display(),
        path.display()
    )]
    Permissive { path: PathBuf, mode: u32 },
    #[error("{what}: {reason}")]
    Weak { what: String, reason: String },
}

/// Whether `key` may be the platform admin key: at least [`MIN_ADMIN_KEY_LEN`]
/// characters (after trimming whitespace), and not shaped like an API key (`hfk_...`)
/// or a JWT (two dots), which authentication would read as those instead. `Err` says
/// why and how to fix it.
pub fn check_admin_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    if key.is_empty() {
        return Err(format!(
            "the platform admin key is empty; use a random key of at least {MIN_ADMIN_KEY_LEN} characters, e.g. `head -c32 /dev/urandom | base64`"
        ));
    }
    if key.chars().count() < MIN_ADMIN_KEY_LEN {
        return Err(format!(
            "the platform admin key has {} characters, fewer than {MIN_ADMIN_KEY_LEN}; use a random key, e.g. `head -c32 /dev/urandom | base64`",
            key.chars().count()
        ));
    }
    if key.starts_with("hfk_") || key.matches('.').count() == 2 {
        return Err("the platform admin key looks like an API key (hfk_...) or a JWT (two dots) and would never authenticate; use a random key, e.g. `head -c32 /dev/urandom | base64`".into());
    }
    Ok(())
}

/// Reads a key file: `Ok(None)` when it does not exist; the trimmed contents otherwise.
/// Refuses a file that other users may access ([`KeyFileError::Permissive`]) or that is
/// empty ([`KeyFileError::Empty`], `fix_if_empty` says what to do).
pub fn read_key_file(path: &Path, fix_if_empty: &str) -> Result<Option<String>, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissive {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(io)?;
    let key = text.trim();
    if key.is_empty() {
        return Err(KeyFileError::Empty {
            path: path.to_path_buf(),
            fix: fix_if_empty.to_string(),
        });
    }
    Ok(Some(key.to_string()))
}

/// Writes `contents` to `path` atomically with mode 0600 (see the module invariants),
/// replacing any file there.
pub fn write_key_file(path: &Path, contents: &str) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let suffix = hex::encode(
        crate::random_bytes::<8>()
            .map_err(|_| io(std::io::Error::other("no randomness available")))?,
    );
    let tmp = dir.join(format!(".{name}.{suffix}.tmp"));
    let written = (|| -> std::io::Result<()> {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        #[cfg(unix)]
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "hf-keyfile-{tag}-{}-{}",
            std::process::id(),
            hex::encode(crate::random_bytes::<4>().unwrap())
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn admin_keys_must_be_long_and_not_look_like_other_credentials() {
        let bad: Vec<String> = vec![
            "".into(),
            "   ".into(),
            "\n".into(),
            "short".into(),
            "x".repeat(MIN_ADMIN_KEY_LEN - 1),
            format!("  {}  ", "x".repeat(MIN_ADMIN_KEY_LEN - 1)),
            format!("hfk_{}", "a".repeat(40)),
            format!("{}.{}.{}", "a".repeat(20), "b".repeat(20), "c"),
        ];
        for b in &bad {
            assert!(check_admin_key(b).is_err(), "{b:?} accepted");
        }
        assert!(check_admin_key(&"x".repeat(MIN_ADMIN_KEY_LEN)).is_ok());
        assert!(check_admin_key("hfadmin_0123456789abcdefghijABCDEFGHIJ-_0123456").is_ok());
        assert!(check_admin_key("").unwrap_err().contains("empty"));
    }

    #[test]
    fn key_files_are_written_atomically_private_and_read_back() {
        let d = tmpdir("rw");
        let p = d.join("admin.key");
        assert!(read_key_file(&p, "fix").unwrap().is_none(), "absent: None");
        write_key_file(&p, "a-key-of-sufficient-length-0123456789").unwrap();
        assert_eq!(
            read_key_file(&p, "fix").unwrap().as_deref(),
            Some("a-key-of-sufficient-length-0123456789")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // Replacing keeps 0600 and leaves no temp file behind.
        write_key_file(&p, "second").unwrap();
        assert_eq!(read_key_file(&p, "fix").unwrap().as_deref(), Some("second"));
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn empty_and_shared_key_files_are_refused_with_a_fix() {
        let d = tmpdir("bad");
        let p = d.join("admin.key");
        write_key_file(&p, " \n").unwrap();
        let e = read_key_file(&p, "delete it and restart").unwrap_err();
        assert!(
            matches!(e, KeyFileError::Empty { .. })
                && e.to_string().contains("delete it and restart"),
            "{e}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            write_key_file(&p, "a-key-of-sufficient-length-0123456789").unwrap();
            for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
                let e = read_key_file(&p, "fix").unwrap_err();
                assert!(
                    matches!(e, KeyFileError::Permissive { .. })
                        && e.to_string().contains("chmod 600"),
                    "{mode:o}: {e}"
                );
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
            assert!(read_key_file(&p, "fix").unwrap().is_some(), "0400 is fine");
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
