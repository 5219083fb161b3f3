//! Authentication: who a credential is (an API key `hfk_...`, a JWT, the platform admin
//! key, or a SigV4 access key's record), with one bounded cache of store lookups.
//!
//! Invariant: no map grows with what a request names: the cache keeps found and
//! missing credentials apart, each bounded (`bounded::LookupCache`), so made-up
//! credentials only evict made-up ones. Revocations take effect within its TTL.

use crate::Node;
use crate::bounded::LookupCache;
use crate::error::NodeError;
use helixflow_auth::{ApiKey, AuthError, JwtVerifier, Principal, Role, digest_eq, sha256_hex};
use helixflow_store::access::{AccessKeyRecord, KeyRecord};
use std::time::Duration;

/// Node authentication settings.
#[derive(Clone)]
pub struct AuthSettings {
    /// `false`: every request is the platform admin (local development only).
    pub enforce: bool,
    /// SHA-256 (hex) of the platform admin key.
    pub admin_key_sha256: Option<String>,
    pub jwt: JwtVerifier,
    /// Seals the secrets the store must keep (access-key secrets, JWT secrets).
    pub secrets: helixflow_auth::sealed::SecretBox,
}

/// A cached credential record.
#[derive(Clone)]
enum Record {
    ApiKey(KeyRecord),
    AccessKey(AccessKeyRecord),
}

/// API keys (by prefix) and access keys (by id), looked up in the store and cached for
/// a short TTL: one cache, keyed by kind and id.
pub struct CredentialCache(LookupCache<Record>);

/// Most cached found credentials, and most cached unknown ones.
const MAX_FOUND: usize = 100_000;
const MAX_MISSING: usize = 10_000;

impl CredentialCache {
    /// Lookups are trusted for the resolve-cache TTL, at most 5 s.
    pub fn new(resolve_cache_ttl: Duration) -> Self {
        CredentialCache(LookupCache::new(
            MAX_FOUND,
            MAX_MISSING,
            resolve_cache_ttl.min(Duration::from_secs(5)),
        ))
    }

    /// Forget every cached lookup (after a revocation on this node).
    pub fn clear(&self) {
        self.0.clear();
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a JWT's `tenant` claim may name the tenant a token acts in: a valid tenant
/// name, not a reserved one. Checked on every JWT, whichever key verified it.
fn jwt_tenant_ok(tenant: &str) -> bool {
    helixflow_store::registry::validate_name("tenant", tenant).is_ok()
        && !helixflow_store::registry::RESERVED_TENANT_NAMES.contains(&tenant)
}

/// Who presents `token` (a bearer credential, never empty). `Ok(None)` is never
/// returned for a token; callers pass `None` when there is no credential at all.
pub async fn authenticate(
    node: &Node,
    token: Option<&str>,
) -> Result<Option<Principal>, AuthError> {
    if !node.auth.enforce {
        return Ok(Some(Principal::platform_admin()));
    }
    let Some(token) = token else {
        return Ok(None);
    };
    if token.is_empty() || token.len() > 8192 {
        return Err(AuthError::Malformed);
    }
    if token.starts_with("hfk_") {
        let prefix = ApiKey::prefix_of(token)?.to_string();
        let rec = lookup_key(node, &prefix)
            .await
            .map_err(|_| AuthError::Invalid)?;
        let rec = rec.ok_or(AuthError::Invalid)?;
        if !digest_eq(&sha256_hex(token), &rec.sha256) {
            return Err(AuthError::Invalid);
        }
        if rec.revoked {
            return Err(AuthError::Revoked);
        }
        if rec.valid_until.is_some_and(|e| e <= now_secs()) {
            return Err(AuthError::Expired);
        }
        let role = Role::parse(&rec.role).ok_or(AuthError::Invalid)?;
        return Ok(Some(Principal {
            tenant: Some(rec.tenant),
            role,
            subject: format!("key:{prefix}"),
            via: "api_key",
        }));
    }
    if token.matches('.').count() == 2 {
        let secret = if JwtVerifier::is_hs256(token)? {
            let tenant = JwtVerifier::unverified_tenant(token)?;
            if !jwt_tenant_ok(&tenant) {
                return Err(AuthError::Invalid);
            }
            match node.registry.jwt_secret(&tenant).await.map_err(|_| AuthError::Invalid)? {
                Some(stored) => Some(node.auth.secrets.open(&stored, &format!("jwt:{tenant}")).map_err(|e| {
                    tracing::error!(%tenant, error = %e, "cannot open the tenant's JWT secret");
                    AuthError::Invalid
                })?),
                None => None,
            }
        } else {
            None
        };
        let p = node.auth.jwt.verify(token, secret.as_deref())?;
        // A JWKS-signed token's tenant claim was never looked up: check it names a
        // tenant (as the HS256 path did before picking the secret).
        if !p.tenant.as_deref().is_some_and(jwt_tenant_ok) {
            return Err(AuthError::Invalid);
        }
        return Ok(Some(p));
    }
    if let Some(h) = &node.auth.admin_key_sha256
        && digest_eq(&sha256_hex(token), h)
    {
        return Ok(Some(Principal::platform_admin()));
    }
    Err(AuthError::Invalid)
}

/// An API key's record by its prefix (cached).
async fn lookup_key(node: &Node, prefix: &str) -> Result<Option<KeyRecord>, NodeError> {
    let id = format!("key:{prefix}");
    if let Some(rec) = node.credentials.0.get(&id) {
        return Ok(rec.and_then(|r| match r {
            Record::ApiKey(k) => Some(k),
            Record::AccessKey(_) => None,
        }));
    }
    let rec = node.registry.key_by_prefix(prefix).await?;
    node.credentials
        .0
        .insert(&id, rec.clone().map(Record::ApiKey));
    Ok(rec)
}

/// A SigV4 access key's record by its id (cached).
pub async fn lookup_access_key(
    node: &Node,
    id: &str,
) -> Result<Option<AccessKeyRecord>, NodeError> {
    let key = format!("access-key:{id}");
    if let Some(rec) = node.credentials.0.get(&key) {
        return Ok(rec.and_then(|r| match r {
            Record::AccessKey(k) => Some(k),
            Record::ApiKey(_) => None,
        }));
    }
    let rec = node.registry.access_key(id).await?;
    node.credentials
        .0
        .insert(&key, rec.clone().map(Record::AccessKey));
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_tenant_claims_must_name_a_tenant() {
        assert!(jwt_tenant_ok("acme") && jwt_tenant_ok("team-7"));
        let long = "x".repeat(200);
        for bad in [
            "",
            "../x",
            "ACME",
            "a/b",
            "acme#FN",
            "public",
            "api",
            long.as_str(),
        ] {
            assert!(!jwt_tenant_ok(bad), "{bad:?}");
        }
    }
}
