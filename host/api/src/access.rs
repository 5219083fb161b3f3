//! Authentication (who is calling), authorization (RBAC per route), and the audit log.
//!
//! Every request is authenticated from `Authorization: Bearer ...` (or `x-api-key`):
//! an API key (`hfk_...`), a JWT, or the platform admin key. [`requirement`] maps each
//! route to what it needs; `lib.rs` checks it before dispatching. Tenants never learn
//! about each other: a credential for tenant A asking about tenant B gets the same 403
//! whether B exists or not.

use crate::AppState;
use crate::error::ApiError;
use helixflow_auth::{
    Action, ApiKey, AuthError, JwtVerifier, Principal, Role, digest_eq, sha256_hex,
};
use helixflow_store::access::{AuditRecord, KeyRecord, PLATFORM_AUDIT};
use http::StatusCode;
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

impl AuthSettings {
    /// Enforcing, with only the admin key (tests and embedders).
    pub fn admin_only(admin_key: &str) -> AuthSettings {
        AuthSettings {
            enforce: true,
            admin_key_sha256: Some(sha256_hex(admin_key)),
            jwt: JwtVerifier::new(None, None, "helixflow".into(), 30).expect("no JWKS"),
            secrets: helixflow_auth::sealed::SecretBox::ephemeral().expect("randomness"),
        }
    }
}

/// Key lookups by prefix, cached for a short TTL (revocations take effect within it);
/// bounded, with unknown prefixes apart from real keys (`bounded::LookupCache`).
pub type KeyCache = crate::bounded::LookupCache<KeyRecord>;

/// What a route needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    Nothing,
    PlatformAdmin,
    Tenant(String, Action),
    /// Any authenticated caller (the route scopes itself, e.g. `/v1`).
    Authenticated,
}

/// The credential a request presents (`Authorization: Bearer ...`, else `x-api-key`).
/// Invariant: never an empty credential: `Bearer` without a token and an empty or blank
/// `x-api-key` are `Malformed` (401), never compared with anything.
fn bearer(headers: &http::HeaderMap) -> Result<Option<String>, AuthError> {
    if let Some(v) = headers.get(http::header::AUTHORIZATION) {
        let s = v.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = s.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(Some(token.trim().to_string()));
    }
    if let Some(v) = headers.get("x-api-key") {
        let key = v.to_str().map_err(|_| AuthError::Malformed)?.trim();
        if key.is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(Some(key.to_string()));
    }
    Ok(None)
}

/// Whether a JWT's `tenant` claim may name the tenant a token acts in: a valid tenant
/// name, not a reserved one. Checked on every JWT, whichever key verified it.
fn jwt_tenant_ok(tenant: &str) -> bool {
    helixflow_store::registry::validate_name("tenant", tenant).is_ok()
        && !helixflow_store::registry::RESERVED_TENANT_NAMES.contains(&tenant)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who is calling. `Ok(None)`: no credentials at all.
pub async fn authenticate(
    state: &AppState,
    headers: &http::HeaderMap,
) -> Result<Option<Principal>, AuthError> {
    if !state.auth.enforce {
        return Ok(Some(Principal::platform_admin()));
    }
    let Some(token) = bearer(headers)? else {
        return Ok(None);
    };
    if token.is_empty() || token.len() > 8192 {
        return Err(AuthError::Malformed);
    }
    if token.starts_with("hfk_") {
        let prefix = ApiKey::prefix_of(&token)?.to_string();
        let rec = lookup_key(state, &prefix)
            .await
            .map_err(|_| AuthError::Invalid)?;
        let rec = rec.ok_or(AuthError::Invalid)?;
        if !digest_eq(&sha256_hex(&token), &rec.sha256) {
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
        let secret = if JwtVerifier::is_hs256(&token)? {
            let tenant = JwtVerifier::unverified_tenant(&token)?;
            if !jwt_tenant_ok(&tenant) {
                return Err(AuthError::Invalid);
            }
            match state.registry.jwt_secret(&tenant).await.map_err(|_| AuthError::Invalid)? {
                Some(stored) => Some(state.auth.secrets.open(&stored, &format!("jwt:{tenant}")).map_err(|e| {
                    tracing::error!(%tenant, error = %e, "cannot open the tenant's JWT secret");
                    AuthError::Invalid
                })?),
                None => None,
            }
        } else {
            None
        };
        let p = state.auth.jwt.verify(&token, secret.as_deref())?;
        // A JWKS-signed token's tenant claim was never looked up: check it names a
        // tenant (as the HS256 path did before picking the secret).
        if !p.tenant.as_deref().is_some_and(jwt_tenant_ok) {
            return Err(AuthError::Invalid);
        }
        return Ok(Some(p));
    }
    if let Some(h) = &state.auth.admin_key_sha256 {
        if digest_eq(&sha256_hex(&token), h) {
            return Ok(Some(Principal::platform_admin()));
        }
    }
    Err(AuthError::Invalid)
}

async fn lookup_key(state: &AppState, prefix: &str) -> Result<Option<KeyRecord>, ApiError> {
    if let Some(rec) = state.keys.get(prefix) {
        return Ok(rec);
    }
    let rec = state.registry.key_by_prefix(prefix).await?;
    state.keys.insert(prefix, rec.clone());
    Ok(rec)
}

/// How long key lookups are cached: the resolve-cache TTL, at most 5 s.
pub(crate) fn key_cache_ttl(resolve_cache_ttl: Duration) -> Duration {
    resolve_cache_ttl.min(Duration::from_secs(5))
}

/// Forget cached keys (after a revocation on this node).
pub fn invalidate_keys(state: &AppState) {
    state.keys.clear();
}

/// What the control-plane route `segs` (after `/api`) needs.
pub fn requirement(method: &http::Method, segs: &[&str]) -> Need {
    use http::Method as M;
    match (method, segs) {
        (_, ["v1", "admin", ..]) => Need::PlatformAdmin,
        (&M::GET | &M::POST, ["v1", "tenants"]) => Need::PlatformAdmin,
        (_, ["v1", "tenants", "public", "models", ..]) if method == M::GET => Need::Authenticated,
        (_, ["v1", "tenants", "public", ..]) => Need::PlatformAdmin,
        (&M::GET, ["v1", "tenants", t]) => Need::Tenant(t.to_string(), Action::Read),
        (
            _,
            ["v1", "tenants", t, "keys", ..]
            | ["v1", "tenants", t, "access-keys", ..]
            | ["v1", "tenants", t, "jwt-secret"],
        ) => Need::Tenant(t.to_string(), Action::Manage),
        (&M::GET, ["v1", "tenants", t, "audit"]) => Need::Tenant(t.to_string(), Action::Read),
        (&M::GET, ["v1", "tenants", t, ..]) => Need::Tenant(t.to_string(), Action::Read),
        (_, ["v1", "tenants", t, ..]) => Need::Tenant(t.to_string(), Action::Deploy),
        _ => Need::PlatformAdmin,
    }
}

/// Checks `need` for `who`: `Err` is the 401/403 to answer.
pub fn check(
    who: &Result<Option<Principal>, AuthError>,
    need: &Need,
) -> Result<Option<Principal>, ApiError> {
    if *need == Need::Nothing {
        return Ok(who.clone().ok().flatten());
    }
    let p = match who {
        Ok(Some(p)) => p,
        Ok(None) => return Err(unauthorized(&AuthError::Missing)),
        Err(e) => return Err(unauthorized(e)),
    };
    let ok = match need {
        Need::Nothing | Need::Authenticated => true,
        Need::PlatformAdmin => p.is_platform_admin(),
        Need::Tenant(t, a) => p.allows(t, *a),
    };
    if ok {
        Ok(Some(p.clone()))
    } else {
        Err(forbidden())
    }
}

pub fn unauthorized(e: &AuthError) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        e.code(),
        format!("{e}: send `Authorization: Bearer <API key or JWT>`"),
    )
}

pub fn forbidden() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "these credentials do not allow this request",
    )
}

/// Appends an audit record (failures to write are logged, never shown to the caller).
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    state: &AppState,
    tenant: Option<&str>,
    who: &Result<Option<Principal>, AuthError>,
    action: &str,
    target: &str,
    outcome: &str,
    status: u16,
    source: std::net::SocketAddr,
    request_id: &str,
) {
    let actor = match who {
        Ok(Some(p)) => p.subject.clone(),
        Ok(None) => "anonymous".into(),
        Err(e) => format!("invalid ({})", e.code()),
    };
    let tenant = tenant
        .filter(|t| helixflow_store::registry::validate_name("tenant", t).is_ok())
        .unwrap_or(PLATFORM_AUDIT)
        .to_string();
    let rec = AuditRecord {
        at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        tenant,
        actor,
        action: action.into(),
        target: target.chars().take(512).collect(),
        outcome: outcome.into(),
        status,
        source: source.to_string(),
        request_id: request_id.into(),
    };
    if let Err(e) = state.registry.audit(&rec).await {
        tracing::error!(error = %e, action, "audit record not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// No empty credential is ever produced (it would be compared with the admin key's
    /// digest): blank `x-api-key` and `Bearer` without a token are malformed.
    #[test]
    fn empty_credentials_are_malformed_never_empty_tokens() {
        for (k, v) in [
            ("x-api-key", ""),
            ("x-api-key", "   "),
            ("authorization", "Bearer"),
            ("authorization", "Bearer    "),
            ("authorization", ""),
        ] {
            assert_eq!(
                bearer(&headers(&[(k, v)])),
                Err(AuthError::Malformed),
                "{k}: {v:?}"
            );
        }
        assert_eq!(bearer(&headers(&[])), Ok(None));
        assert_eq!(
            bearer(&headers(&[("x-api-key", " k ")])),
            Ok(Some("k".into()))
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer t")])),
            Ok(Some("t".into()))
        );
    }

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
