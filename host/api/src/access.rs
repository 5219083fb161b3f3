//! Authentication of a request (the credential it presents) and authorization per
//! route (RBAC). Every request is authenticated from `Authorization: Bearer ...` (or
//! `x-api-key`): an API key (`hfk_...`), a JWT, or the platform admin key
//! (`helixflow_node::credentials`). [`requirement`] maps each control-plane route to
//! what it needs; `lib.rs` checks it before dispatching. Tenants never learn about each
//! other: a credential for tenant A asking about tenant B gets the same 403 whether B
//! exists or not.

use crate::AppState;
use crate::error::ApiError;
use helixflow_auth::{Action, AuthError, Principal};
use helixflow_node::Who;
pub use helixflow_node::access::Need;

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

/// Removes the HelixFlow credential from a request a function will see: a caller's key
/// or JWT is for the node, never for the tenant's code (a function that printed its
/// `Authorization` header would otherwise hand a signed-in admin's key to whoever reads
/// its logs). Only a credential the node accepted is removed, the header [`bearer`]
/// took it from; a public function's own scheme (a header the node did not accept)
/// passes through.
pub fn strip_credential(who: &Who, headers: &mut http::HeaderMap) {
    if !matches!(who, Ok(Some(_))) {
        return;
    }
    if headers.contains_key(http::header::AUTHORIZATION) {
        headers.remove(http::header::AUTHORIZATION);
    } else {
        headers.remove("x-api-key");
    }
}

/// Who is calling. `Ok(None)`: no credentials at all.
pub async fn authenticate(state: &AppState, headers: &http::HeaderMap) -> Who {
    let token = if state.node.auth.enforce {
        bearer(headers)?
    } else {
        None
    };
    helixflow_node::credentials::authenticate(&state.node, token.as_deref()).await
}

/// What the control-plane route `segs` (after `/api`) needs.
pub fn requirement(method: &http::Method, segs: &[&str]) -> Need {
    use http::Method as M;
    match (method, segs) {
        // The API's description: no credentials needed.
        (&M::GET, ["v1", "openapi.json"]) => Need::Nothing,
        (&M::GET, ["v1", "whoami"]) => Need::Authenticated,
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
        // A budget is a tenant setting: its admins cap their own spend (reading it is
        // viewer and up, below).
        (&M::PUT | &M::DELETE, ["v1", "tenants", t, "budget"]) => {
            Need::Tenant(t.to_string(), Action::Manage)
        }
        (&M::GET, ["v1", "tenants", t, "audit"]) => Need::Tenant(t.to_string(), Action::Read),
        (&M::GET, ["v1", "tenants", t, ..]) => Need::Tenant(t.to_string(), Action::Read),
        (_, ["v1", "tenants", t, ..]) => Need::Tenant(t.to_string(), Action::Deploy),
        _ => Need::PlatformAdmin,
    }
}

/// Checks `need` for `who`: `Err` is the 401/403 to answer.
pub fn check(who: &Who, need: &Need) -> Result<Option<Principal>, ApiError> {
    helixflow_node::access::check(who, need).map_err(ApiError::from)
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
}
