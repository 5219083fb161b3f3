//! API keys and JWT secrets of a tenant (`/api/v1/tenants/{t}/keys`, `/jwt-secret`).
//! A key's secret is returned once, at creation; only its SHA-256 is stored.

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::request::read_body;
use crate::tracked::TrackedBody;
use helixflow_auth::{ApiKey, Role};
use helixflow_store::access::{AccessKeyRecord, KeyRecord};
use http::{Method, Response, StatusCode};
use serde_json::json;

fn view(k: &KeyRecord) -> serde_json::Value {
    json!({"prefix": k.prefix, "name": k.name, "role": k.role, "created_at": k.created_at, "expires_at": k.valid_until, "revoked": k.revoked})
}

/// A validated `{"name", "role", "expires_in_secs"?}` body (`role` may default).
struct NewKey {
    name: String,
    role: Role,
    expires_in_secs: Option<u64>,
}

async fn new_key_request(
    req: http::Request<TrackedBody>,
    default_role: Option<Role>,
) -> Result<NewKey, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, &parts.headers, 16 << 10).await?;
    let b: crate::wire::NewKey = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let role = match (b.role.as_deref(), default_role) {
        (Some(r), _) => Role::parse(r),
        (None, d) => d,
    }
    .ok_or_else(|| {
        ApiError::bad_request(
            "invalid_role",
            "role must be admin, developer, invoker or viewer",
        )
    })?;
    if b.name.is_empty() || b.name.len() > 100 || b.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "name must be 1-100 printable characters",
        ));
    }
    Ok(NewKey {
        name: b.name,
        role,
        expires_in_secs: b.expires_in_secs,
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub async fn route(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    rest: &[&str],
    _principal: Option<&helixflow_auth::Principal>,
) -> Result<Response<Body>, ApiError> {
    match (req.method().clone(), rest) {
        (Method::POST, []) => {
            let nk = new_key_request(req, None).await?;
            let role = nk.role;
            let key = ApiKey::generate().map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    e.to_string(),
                )
            })?;
            let now = now_secs();
            let rec = KeyRecord {
                tenant: tenant.to_string(),
                prefix: key.prefix.clone(),
                name: nk.name,
                role: role.as_str().to_string(),
                sha256: key.sha256.clone(),
                created_at: now_rfc3339(),
                valid_until: nk.expires_in_secs.map(|s| now.saturating_add(s)),
                revoked: false,
            };
            state.node.registry.add_key(&rec).await?;
            let mut v = view(&rec);
            v["key"] = json!(key.key);
            Ok(json_response(StatusCode::CREATED, &v))
        }
        (Method::GET, []) => {
            let keys: Vec<_> = state
                .node
                .registry
                .keys(tenant)
                .await?
                .iter()
                .map(view)
                .collect();
            Ok(json_response(StatusCode::OK, &json!({"keys": keys})))
        }
        (Method::DELETE, [prefix]) => {
            let rec = state.node.registry.revoke_key(tenant, prefix).await?;
            state.node.credentials.clear();
            Ok(json_response(StatusCode::OK, &view(&rec)))
        }
        _ => Err(ApiError::not_found("no such key route")),
    }
}

/// A new HS256 secret for the tenant's JWTs (returned once; the old one stops working).
pub async fn rotate_jwt_secret(state: &AppState, tenant: &str) -> Result<Response<Body>, ApiError> {
    let secret = helixflow_auth::random_secret().map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    let sealed = state
        .node
        .auth
        .secrets
        .seal(&secret, &format!("jwt:{tenant}"))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                e.to_string(),
            )
        })?;
    state.node.registry.set_jwt_secret(tenant, &sealed).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"hs256_secret": secret, "audience": "helixflow"}),
    ))
}

fn access_view(k: &AccessKeyRecord) -> serde_json::Value {
    json!({
        "access_key_id": k.access_key_id,
        "name": k.name,
        "role": k.role,
        "created_at": k.created_at,
        "expires_at": k.valid_until,
        "revoked": k.revoked,
        "account_id": helixflow_node::lambda::account_id(&k.tenant),
    })
}

/// SigV4 access key pairs of a tenant (`/api/v1/tenants/{t}/access-keys`), for the
/// Lambda-compatible Invoke API. The secret is returned once, at creation.
pub async fn access_route(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    rest: &[&str],
) -> Result<Response<Body>, ApiError> {
    match (req.method().clone(), rest) {
        (Method::POST, []) => {
            let nk = new_key_request(req, Some(Role::Invoker)).await?;
            let role = nk.role;
            let key = helixflow_auth::sigv4::AccessKey::generate().map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    e.to_string(),
                )
            })?;
            let now = now_secs();
            let rec = AccessKeyRecord {
                tenant: tenant.to_string(),
                access_key_id: key.access_key_id.clone(),
                name: nk.name,
                role: role.as_str().to_string(),
                secret: state
                    .node
                    .auth
                    .secrets
                    .seal(
                        &key.secret_access_key,
                        &format!("access-key:{tenant}:{}", key.access_key_id),
                    )
                    .map_err(|e| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal_error",
                            e.to_string(),
                        )
                    })?,
                created_at: now_rfc3339(),
                valid_until: nk.expires_in_secs.map(|s| now.saturating_add(s)),
                revoked: false,
            };
            state.node.registry.add_access_key(&rec).await?;
            let mut v = access_view(&rec);
            v["secret_access_key"] = json!(key.secret_access_key);
            Ok(json_response(StatusCode::CREATED, &v))
        }
        (Method::GET, []) => {
            let keys: Vec<_> = state
                .node
                .registry
                .access_keys(tenant)
                .await?
                .iter()
                .map(access_view)
                .collect();
            Ok(json_response(StatusCode::OK, &json!({"access_keys": keys})))
        }
        (Method::DELETE, [id]) => {
            let rec = state.node.registry.revoke_access_key(tenant, id).await?;
            state.node.credentials.clear();
            Ok(json_response(StatusCode::OK, &access_view(&rec)))
        }
        _ => Err(ApiError::not_found("no such access-key route")),
    }
}
