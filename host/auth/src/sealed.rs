//! Secrets at rest: the secrets HelixFlow must keep in the clear to use them (SigV4
//! access-key secrets, tenants' HS256 JWT secrets) are sealed with AES-256-GCM before
//! they reach the metadata store, so a copy of the table or its backups does not give
//! them away. The key is the node's (`[auth] secrets_key_file`, `HELIXFLOW_SECRETS_KEY`
//! or a generated `{data_dir}/secrets.key`); nodes sharing a store share the key.
//! Each sealed value is bound to what it belongs to (associated data such as
//! `access-key:acme:HFAK...`), so a sealed value moved to another record does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;

const PREFIX: &str = "sealed:v1:";

/// A secrets key.
#[derive(Clone)]
pub struct SecretBox {
    key: std::sync::Arc<LessSafeKey>,
    /// HMAC-SHA256 under the same key bytes, for [`SecretBox::derive_key`] only.
    derive: aws_lc_rs::hmac::Key,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the secrets key must be 32 bytes, base64 or hex encoded")]
    BadKey,
    #[error(
        "a sealed secret does not open with this node's secrets key (nodes sharing a store must share secrets_key_file)"
    )]
    WrongKey,
    #[error("a sealed secret is malformed")]
    Malformed,
    #[error("no randomness available")]
    Random,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// From 32 key bytes.
    pub fn new(key: &[u8]) -> Result<SecretBox, SealError> {
        let k = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::BadKey)?;
        Ok(SecretBox {
            key: std::sync::Arc::new(LessSafeKey::new(k)),
            derive: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        })
    }

    /// A 32-byte subkey for one other purpose, named by `label` (e.g. the compile cache's
    /// MAC key): `HMAC-SHA256(secrets key, label)`. Different labels give independent
    /// keys, and a subkey reveals nothing about the secrets key or other subkeys, so
    /// the secrets key itself never leaves this box.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let tag = aws_lc_rs::hmac::sign(&self.derive, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// From the text of a key file or variable: 32 bytes as base64 (44 chars) or hex (64).
    pub fn from_text(text: &str) -> Result<SecretBox, SealError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| SealError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|_| SealError::BadKey)?
        };
        if bytes.len() != 32 {
            return Err(SealError::BadKey);
        }
        Self::new(&bytes)
    }

    /// A new random key as text (base64), for a generated key file.
    pub fn generate_text() -> Result<String, SealError> {
        let k = crate::random_bytes::<32>().map_err(|_| SealError::Random)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(k))
    }

    /// A box with a random key (tests, embedders that keep no secrets across restarts).
    pub fn ephemeral() -> Result<SecretBox, SealError> {
        Self::new(&crate::random_bytes::<32>().map_err(|_| SealError::Random)?)
    }

    /// Seals `secret` for `context` (e.g. `jwt:acme`).
    pub fn seal(&self, secret: &str, context: &str) -> Result<String, SealError> {
        let nonce_bytes = crate::random_bytes::<NONCE_LEN>().map_err(|_| SealError::Random)?;
        let mut buf = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Malformed)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens a value written by `seal` for the same `context`. A value without the
    /// sealed prefix is returned as it is (written before sealing existed).
    pub fn open(&self, stored: &str, context: &str) -> Result<String, SealError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SealError::WrongKey)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Malformed)
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_context() {
        let b = SecretBox::from_text(&SecretBox::generate_text().unwrap()).unwrap();
        let s = b.seal("top secret", "jwt:acme").unwrap();
        assert!(SecretBox::is_sealed(&s) && !s.contains("top secret"));
        assert_ne!(
            s,
            b.seal("top secret", "jwt:acme").unwrap(),
            "fresh nonce each time"
        );
        assert_eq!(b.open(&s, "jwt:acme").unwrap(), "top secret");
        assert_eq!(
            b.open(&s, "jwt:globex").unwrap_err(),
            SealError::WrongKey,
            "moved to another record"
        );
        let other = SecretBox::ephemeral().unwrap();
        assert_eq!(other.open(&s, "jwt:acme").unwrap_err(), SealError::WrongKey);
        assert_eq!(b.open("legacy-plain", "jwt:acme").unwrap(), "legacy-plain");
        for bad in ["sealed:v1:", "sealed:v1:!!!", "sealed:v1:AAAA"] {
            assert!(b.open(bad, "jwt:acme").is_err(), "{bad}");
        }
        assert_eq!(
            SecretBox::from_text("short").unwrap_err(),
            SealError::BadKey
        );
        assert!(
            SecretBox::from_text(&"ab".repeat(32)).is_ok(),
            "hex keys work"
        );
    }

    #[test]
    fn derived_keys_are_stable_per_key_and_label() {
        let text = SecretBox::generate_text().unwrap();
        let a = SecretBox::from_text(&text).unwrap();
        let b = SecretBox::from_text(&text).unwrap();
        assert_eq!(
            a.derive_key("helixflow cwasm mac v1"),
            b.derive_key("helixflow cwasm mac v1"),
            "same key, same subkey"
        );
        assert_ne!(
            a.derive_key("helixflow cwasm mac v1"),
            a.derive_key("other")
        );
        assert_ne!(
            a.derive_key("x"),
            SecretBox::ephemeral().unwrap().derive_key("x")
        );
        // The subkey is plain HMAC-SHA256(key, label).
        let k = SecretBox::new(&[0x0b; 32]).unwrap();
        let expected = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[0x0b; 32]),
            b"label",
        );
        assert_eq!(&k.derive_key("label")[..], expected.as_ref());
    }
}
