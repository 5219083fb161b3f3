//! Access records: API keys (hashed), per-tenant JWT secrets, and the audit log.
//! Their keys are in [`crate::keys`].
//!
//! A key and its index item are written in one transaction; a key record holds the
//! SHA-256 of the key, never the key. Audit records are only ever created (conditional
//! on not existing), never updated or deleted by the API: append-only. Platform-level
//! events (tenant creation, failures with no tenant) go to the `_platform` log.

use crate::keys::{self, Credential};
use crate::registry::{Registry, RegistryError, Result};
use crate::{Condition, StoreError};
use serde::{Deserialize, Serialize};

/// The audit log of events that belong to no tenant.
pub const PLATFORM_AUDIT: &str = "_platform";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub tenant: String,
    pub prefix: String,
    pub name: String,
    pub role: String,
    /// SHA-256 (hex) of the whole key.
    pub sha256: String,
    pub created_at: String,
    /// Unix seconds; `None` = no expiry. (Not `expires_at`: the store would make the
    /// record vanish, and the caller would get "invalid" instead of "expired".)
    #[serde(default)]
    pub valid_until: Option<u64>,
    #[serde(default)]
    pub revoked: bool,
}

/// A SigV4 access key pair (for the Lambda-compatible Invoke API). Unlike an API key,
/// the secret itself is stored: verifying an HMAC signature needs it. The API returns
/// it once, at creation, and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub tenant: String,
    pub access_key_id: String,
    pub name: String,
    pub role: String,
    pub secret: String,
    pub created_at: String,
    #[serde(default)]
    pub valid_until: Option<u64>,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339.
    pub at: String,
    pub tenant: String,
    /// Key prefix / JWT subject / `platform-admin` / `anonymous`.
    pub actor: String,
    /// e.g. `deploy`, `keys.create`, `auth.denied`.
    pub action: String,
    /// e.g. `functions/hello`.
    pub target: String,
    /// `ok`, or the error code.
    pub outcome: String,
    pub status: u16,
    pub source: String,
    pub request_id: String,
}

fn from<T: for<'de> Deserialize<'de>>(i: &crate::Item) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(i.attrs.clone()))
        .map_err(|e| StoreError::Corrupt(format!("{}/{}: {e}", i.pk, i.sk)).into())
}

/// The two kinds of credential records: `(where they are stored, what the caller calls
/// them)`.
const API_KEY: (Credential, &str) = (Credential::ApiKey, "key");
const ACCESS_KEY: (Credential, &str) = (Credential::AccessKey, "access key");

/// A credential record with a revocation flag.
trait Revocable: Serialize + for<'de> Deserialize<'de> {
    fn revoke(&mut self);
}
impl Revocable for KeyRecord {
    fn revoke(&mut self) {
        self.revoked = true;
    }
}
impl Revocable for AccessKeyRecord {
    fn revoke(&mut self) {
        self.revoked = true;
    }
}

impl Registry {
    /// Writes a credential record and its global id index in one transaction.
    async fn add_credential<T: Serialize>(
        &self,
        kind: (Credential, &str),
        tenant: &str,
        id: &str,
        rec: &T,
    ) -> Result<()> {
        self.tenant(tenant).await?;
        let ops = vec![
            keys::credential(kind.0, tenant, id)
                .put(crate::registry::attrs_of(rec)?, Condition::NotExists),
            keys::credential_index(kind.0, id).put(
                crate::registry::attrs_of(&serde_json::json!({"tenant": tenant}))?,
                Condition::NotExists,
            ),
        ];
        match self.store().transact(ops).await {
            Ok(()) => Ok(()),
            Err(StoreError::TransactionCancelled { .. }) => Err(RegistryError::Conflict(format!(
                "{} id collision; retry",
                kind.1
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A credential by id, wherever it lives (`None`: no such credential).
    async fn credential<T: for<'de> Deserialize<'de>>(
        &self,
        kind: (Credential, &str),
        id: &str,
    ) -> Result<Option<T>> {
        let index = keys::credential_index(kind.0, id);
        let Some(idx) = self.store().get(&index.pk, &index.sk).await? else {
            return Ok(None);
        };
        let Some(tenant) = idx.str("tenant").map(str::to_string) else {
            return Ok(None);
        };
        let key = keys::credential(kind.0, &tenant, id);
        match self.store().get(&key.pk, &key.sk).await? {
            Some(i) => Ok(Some(from(&i)?)),
            None => Ok(None),
        }
    }

    async fn credentials<T: for<'de> Deserialize<'de>>(
        &self,
        kind: (Credential, &str),
        tenant: &str,
    ) -> Result<Vec<T>> {
        self.tenant(tenant).await?;
        let all = keys::credentials(kind.0, tenant);
        self.store()
            .query_all(&all.pk, &all.sk_prefix)
            .await?
            .iter()
            .map(from)
            .collect()
    }

    /// Marks a credential revoked (the record stays, for the audit trail).
    async fn revoke_credential<T: Revocable>(
        &self,
        kind: (Credential, &str),
        tenant: &str,
        id: &str,
    ) -> Result<T> {
        let key = keys::credential(kind.0, tenant, id);
        let item = self.store().get(&key.pk, &key.sk).await?.ok_or_else(|| {
            RegistryError::NotFound(format!("no {} {id:?} in tenant {tenant:?}", kind.1))
        })?;
        let mut rec: T = from(&item)?;
        rec.revoke();
        self.store()
            .put(
                &key.pk,
                &key.sk,
                crate::registry::attrs_of(&rec)?,
                Condition::VersionIs(item.version),
            )
            .await?;
        Ok(rec)
    }

    /// Records a new key (its hash) for `rec.tenant`.
    pub async fn add_key(&self, rec: &KeyRecord) -> Result<()> {
        self.add_credential(API_KEY, &rec.tenant, &rec.prefix, rec)
            .await
    }

    /// The key with this prefix, wherever it lives (`None`: no such key).
    pub async fn key_by_prefix(&self, prefix: &str) -> Result<Option<KeyRecord>> {
        self.credential(API_KEY, prefix).await
    }

    pub async fn keys(&self, tenant: &str) -> Result<Vec<KeyRecord>> {
        self.credentials(API_KEY, tenant).await
    }

    /// Marks a key revoked (the record stays, for the audit trail).
    pub async fn revoke_key(&self, tenant: &str, prefix: &str) -> Result<KeyRecord> {
        self.revoke_credential(API_KEY, tenant, prefix).await
    }

    /// Records a new SigV4 access key pair for `rec.tenant`.
    pub async fn add_access_key(&self, rec: &AccessKeyRecord) -> Result<()> {
        self.add_credential(ACCESS_KEY, &rec.tenant, &rec.access_key_id, rec)
            .await
    }

    /// The access key with this id, wherever it lives (`None`: no such key).
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>> {
        self.credential(ACCESS_KEY, id).await
    }

    pub async fn access_keys(&self, tenant: &str) -> Result<Vec<AccessKeyRecord>> {
        self.credentials(ACCESS_KEY, tenant).await
    }

    /// Marks an access key revoked (the record stays, for the audit trail).
    pub async fn revoke_access_key(&self, tenant: &str, id: &str) -> Result<AccessKeyRecord> {
        self.revoke_credential(ACCESS_KEY, tenant, id).await
    }

    pub async fn set_jwt_secret(&self, tenant: &str, secret: &str) -> Result<()> {
        self.tenant(tenant).await?;
        let key = keys::jwt_secret(tenant);
        self.store()
            .put(
                &key.pk,
                &key.sk,
                crate::registry::attrs_of(&serde_json::json!({"hs256_secret": secret}))?,
                Condition::Always,
            )
            .await?;
        Ok(())
    }

    pub async fn jwt_secret(&self, tenant: &str) -> Result<Option<String>> {
        let key = keys::jwt_secret(tenant);
        Ok(self
            .store()
            .get(&key.pk, &key.sk)
            .await?
            .and_then(|i| i.str("hs256_secret").map(str::to_string)))
    }

    /// Appends an audit record.
    pub async fn audit(&self, rec: &AuditRecord) -> Result<()> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut r = [0u8; 4];
        getrandom::fill(&mut r).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let key = keys::audit_record(&rec.tenant, nanos, r);
        self.store()
            .put(
                &key.pk,
                &key.sk,
                crate::registry::attrs_of(rec)?,
                Condition::NotExists,
            )
            .await?;
        Ok(())
    }

    /// The newest `limit` audit records of `tenant`, newest first.
    pub async fn audit_log(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRecord>> {
        let log = keys::audit_log(tenant);
        let mut all: Vec<AuditRecord> = self
            .store()
            .query_all(&log.pk, &log.sk_prefix)
            .await?
            .iter()
            .map(from)
            .collect::<Result<_>>()?;
        all.reverse();
        all.truncate(limit);
        Ok(all)
    }
}
