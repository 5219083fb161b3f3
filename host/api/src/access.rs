//! Authentication (who is calling), authorization (RBAC per route), and the audit log.
//!
//! Every request is authenticated from `Authorization: Bearer ...` (or `x-api-key`):
//! an API key (`hfk_...`), a JWT, or the platform admin key. [`requirement`] maps each
//! route to what it needs; `lib.rs` checks it before dispatching. Tenants never learn
//! about each other: a credential for tenant A asking about tenant B gets the same 403
//! whether B exists or not.

use crate::AppState;
use crate::error::ApiError;
use helixflow_auth::{Action, ApiKey, AuthError, JwtVerifier, Principal, Role, digest_eq, sha256_hex};
use helixflow_store::access::{AuditRecord, KeyRecord, PLATFORM_AUDIT};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Key lookups cached for a short TTL (revocations take effect within it).
#[derive(Default)]
pub struct KeyCache {
    map: Mutex<HashMap<String, (Instant, Option<KeyRecord>)>>,
}

/// What a route needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    Nothing,
    PlatformAdmin,
    Tenant(String, Action),
    /// Any authenticated caller (the route scopes itself, e.g. `/v1`).
    Authenticated,
}

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
        return Ok(Some(v.to_str().map_err(|_| AuthError::Malformed)?.trim().to_string()));
    }
    Ok(None)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Who is calling. `Ok(None)`: no credentials at all.
pub async fn authenticate(state: &AppState, headers: &http::HeaderMap) -> Result<Option<Principal>, AuthError> {
    if !state.auth.enforce {
        return Ok(Some(Principal::platform_admin()));
    }
    let Some(token) = bearer(headers)? else { return Ok(None) };
    if token.len() > 8192 {
        return Err(AuthError::Malformed);
    }
    if token.starts_with("hfk_") {
        let prefix = ApiKey::prefix_of(&token)?.to_string();
        let rec = lookup_key(state, &prefix).await.map_err(|_| AuthError::Invalid)?;
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
        return Ok(Some(Principal { tenant: Some(rec.tenant), role, subject: format!("key:{prefix}"), via: "api_key" }));
    }
    if token.matches('.').count() == 2 {
        let secret = if JwtVerifier::is_hs256(&token)? {
            let tenant = JwtVerifier::unverified_tenant(&token)?;
            if helixflow_store::registry::validate_name("tenant", &tenant).is_err() {
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
        return state.auth.jwt.verify(&token, secret.as_deref()).map(Some);
    }
    if let Some(h) = &state.auth.admin_key_sha256 {
        if digest_eq(&sha256_hex(&token), h) {
            return Ok(Some(Principal::platform_admin()));
        }
    }
    Err(AuthError::Invalid)
}

async fn lookup_key(state: &AppState, prefix: &str) -> Result<Option<KeyRecord>, ApiError> {
    let ttl = state.settings.resolve_cache_ttl.min(Duration::from_secs(5));
    if let Some((at, rec)) = state.keys.map.lock().unwrap_or_else(|p| p.into_inner()).get(prefix) {
        if at.elapsed() < ttl {
            return Ok(rec.clone());
        }
    }
    let rec = state.registry.key_by_prefix(prefix).await?;
    let mut m = state.keys.map.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() > 100_000 {
        m.clear();
    }
    m.insert(prefix.to_string(), (Instant::now(), rec.clone()));
    Ok(rec)
}

/// Forget cached keys (after a revocation on this node).
pub fn invalidate_keys(state: &AppState) {
    state.keys.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
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
        (_, ["v1", "tenants", t, "keys", ..] | ["v1", "tenants", t, "access-keys", ..] | ["v1", "tenants", t, "jwt-secret"]) => Need::Tenant(t.to_string(), Action::Manage),
        (&M::GET, ["v1", "tenants", t, "audit"]) => Need::Tenant(t.to_string(), Action::Read),
        (&M::GET, ["v1", "tenants", t, ..]) => Need::Tenant(t.to_string(), Action::Read),
        (_, ["v1", "tenants", t, ..]) => Need::Tenant(t.to_string(), Action::Deploy),
        _ => Need::PlatformAdmin,
    }
}

/// Checks `need` for `who`: `Err` is the 401/403 to answer.
pub fn check(who: &Result<Option<Principal>, AuthError>, need: &Need) -> Result<Option<Principal>, ApiError> {
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
    if ok { Ok(Some(p.clone())) } else { Err(forbidden()) }
}

pub fn unauthorized(e: &AuthError) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        e.code(),
        format!("{e}: send `Authorization: Bearer <API key or JWT>`"),
    )
}

pub fn forbidden() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", "these credentials do not allow this request")
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
        at: time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
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
