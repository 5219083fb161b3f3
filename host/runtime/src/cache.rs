//! On-disk cache of compiled components: `{dir}/{engine-hash}/{sha256}.cwasm`.
//! The engine hash changes with the wasmtime version and settings, so a new engine
//! never loads an incompatible artifact; the SHA-256 names the exact component bytes.
//!
//! A `.cwasm` is native code that wasmtime maps executable: whoever can change one runs
//! code in the host. So every entry is authenticated with a key only the node holds
//! (derived from its secrets key): the file is `serialized || tag || MAGIC`, where
//! `tag = HMAC-SHA256(key, DOMAIN || engine_hash || 0 || sha256 || 0 || serialized)`.
//! **Invariant**: nothing read from the cache reaches `Component::deserialize` unless
//! its tag verifies (constant-time) for this engine hash and this component's SHA-256,
//! so a modified file, a file from another key, or a valid entry of another component
//! or engine copied over this one is never loaded. Entries are written whole with
//! temp file + rename ([`helixflow_disk_cache::write_atomic`]), so a crash never leaves
//! a file whose tag covers other bytes than it holds.

use aws_lc_rs::hmac;
use std::path::{Path, PathBuf};

/// Last bytes of an authenticated entry (format version 1).
const MAGIC: &[u8; 8] = b"HFCWMAC1";
/// Bytes of the HMAC-SHA256 tag.
const TAG_LEN: usize = 32;
/// Domain separation: this key and format authenticate compiled components only.
const DOMAIN: &[u8] = b"helixflow compile cache v1\0";

pub fn path(dir: &Path, engine_hash: &str, sha256: &str) -> PathBuf {
    dir.join(engine_hash).join(format!("{sha256}.cwasm"))
}

/// The key that authenticates compile-cache entries. Embedders derive it from the
/// node's secrets key (`HMAC(secrets_key, DERIVATION_LABEL)`) so entries survive
/// restarts and only that node (or its fleet) can produce them.
#[derive(Clone)]
pub struct CompileCacheKey(hmac::Key);

impl CompileCacheKey {
    /// The label to derive this key from the node's secrets key with.
    pub const DERIVATION_LABEL: &'static str = "helixflow cwasm mac v1";

    /// From 32 secret bytes.
    pub fn new(key: [u8; 32]) -> Self {
        CompileCacheKey(hmac::Key::new(hmac::HMAC_SHA256, &key))
    }

    /// A fresh random key: entries written under it verify only in this process.
    pub fn random() -> Result<Self, crate::LoadError> {
        let mut k = [0u8; 32];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| {
            crate::LoadError::Internal("no randomness for the compile-cache key".into())
        })?;
        Ok(Self::new(k))
    }

    fn tag(&self, engine_hash: &str, sha256: &str, serialized: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(DOMAIN);
        ctx.update(engine_hash.as_bytes());
        ctx.update(b"\0");
        ctx.update(sha256.as_bytes());
        ctx.update(b"\0");
        ctx.update(serialized);
        ctx.sign()
    }
}

impl std::fmt::Debug for CompileCacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompileCacheKey(..)")
    }
}

/// Why a cache entry was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// No tag (an entry from a version before authentication, or a truncated file).
    Unauthenticated,
    /// A tag that does not verify: the file was modified, or written under another key,
    /// engine or component.
    BadTag,
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejected::Unauthenticated => "the entry carries no MAC",
            Rejected::BadTag => "the entry's MAC does not verify (modified, or not written by this node for this component)",
        })
    }
}

/// The file contents for `serialized`: itself, its tag, the format marker.
pub fn seal(
    key: &CompileCacheKey,
    engine_hash: &str,
    sha256: &str,
    mut serialized: Vec<u8>,
) -> Vec<u8> {
    let tag = key.tag(engine_hash, sha256, &serialized);
    serialized.reserve_exact(TAG_LEN + MAGIC.len());
    serialized.extend_from_slice(tag.as_ref());
    serialized.extend_from_slice(MAGIC);
    serialized
}

/// The serialized component in `file` (the whole entry as read), if its tag verifies
/// for `engine_hash` and `sha256`: the trailer is cut off in place.
pub fn open(
    key: &CompileCacheKey,
    engine_hash: &str,
    sha256: &str,
    mut file: Vec<u8>,
) -> Result<Vec<u8>, Rejected> {
    let n = file.len();
    if n < TAG_LEN + MAGIC.len() || &file[n - MAGIC.len()..] != MAGIC {
        return Err(Rejected::Unauthenticated);
    }
    let body = n - MAGIC.len() - TAG_LEN;
    let expected = key.tag(engine_hash, sha256, &file[..body]);
    aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_ref(),
        &file[body..n - MAGIC.len()],
    )
    .map_err(|_| Rejected::BadTag)?;
    file.truncate(body);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const E: &str = "00112233445566aa";
    const S: &str = "ab12";

    #[test]
    fn sealed_entries_open_only_unmodified_and_in_place() {
        let key = CompileCacheKey::new([7; 32]);
        let code = b"\x7fELF pretend native code".to_vec();
        let file = seal(&key, E, S, code.clone());
        assert_eq!(file.len(), code.len() + TAG_LEN + MAGIC.len());
        assert_eq!(open(&key, E, S, file.clone()).unwrap(), code);

        // Any flipped bit, anywhere, is refused.
        for i in [
            0,
            code.len() / 2,
            code.len() - 1,
            code.len() + 3,
            file.len() - 1,
        ] {
            let mut bad = file.clone();
            bad[i] ^= 0x01;
            assert!(
                open(&key, E, S, bad).is_err(),
                "flipped byte {i} was accepted"
            );
        }
        // Another key, engine or component: a valid entry moved elsewhere is refused.
        assert_eq!(
            open(&CompileCacheKey::new([8; 32]), E, S, file.clone()),
            Err(Rejected::BadTag)
        );
        assert_eq!(
            open(&key, "ffffffffffffffff", S, file.clone()),
            Err(Rejected::BadTag)
        );
        assert_eq!(open(&key, E, "cd34", file.clone()), Err(Rejected::BadTag));
        // Entries of older versions (no trailer), truncated files, empty files.
        assert_eq!(
            open(&key, E, S, code.clone()),
            Err(Rejected::Unauthenticated)
        );
        assert_eq!(
            open(&key, E, S, file[..file.len() - 1].to_vec()),
            Err(Rejected::Unauthenticated)
        );
        assert_eq!(open(&key, E, S, Vec::new()), Err(Rejected::Unauthenticated));
        // A bare trailer authenticates the empty payload only for its own key.
        let empty = seal(&key, E, S, Vec::new());
        assert_eq!(open(&key, E, S, empty).unwrap(), Vec::<u8>::new());
        assert_eq!(
            format!("{key:?}"),
            "CompileCacheKey(..)",
            "the key never shows in logs"
        );
    }
}
