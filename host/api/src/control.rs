//! Control plane: `/api/v1/...` (JSON).

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::request::{query, read_body, read_json};
use crate::tracked::TrackedBody;
use helixflow_node::metrics;
use helixflow_node::secrets::{present_env, seal_env};

use helixflow_store::registry::{FunctionConfig, NewVersion, validate_name};
use http::{Method, Response, StatusCode};
use serde_json::json;

pub fn healthz(state: &AppState) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "location": state.node.settings.node_id}),
    )
}

pub fn metrics(state: &AppState) -> Response<Body> {
    Response::builder()
        .header(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(crate::body::full(
            state
                .node
                .metrics
                .encode_with_inference(state.node.runtime.inference()),
        ))
        .unwrap_or_else(|_| Response::new(crate::body::full(Vec::new())))
}

fn ok(value: serde_json::Value) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, &value))
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn parse_version(s: &str) -> Result<u32, ApiError> {
    s.parse::<u32>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::bad_request("invalid_request", format!("{s:?} is not a version number"))
    })
}

/// `segs`: the path's segments after `/api`.
pub async fn route(
    state: &AppState,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    principal: Option<&helixflow_auth::Principal>,
) -> Response<Body> {
    match route_inner(state, req, segs, request_id, principal).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route_inner(
    state: &AppState,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    principal: Option<&helixflow_auth::Principal>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    match (&method, segs) {
        (&Method::GET, ["v1", "openapi.json"]) => Ok(Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(crate::body::full(crate::openapi::served()))
            .unwrap_or_else(|_| Response::new(crate::body::full(Vec::new())))),
        (&Method::GET, ["v1", "whoami"]) => {
            let p = principal.ok_or_else(|| {
                ApiError::new(
                    http::StatusCode::UNAUTHORIZED,
                    "missing_credentials",
                    "send an API key, a JWT or the admin key",
                )
            })?;
            ok(json!(crate::wire::WhoAmI {
                tenant: p.tenant.clone(),
                role: p.role.as_str(),
                subject: p.subject.clone(),
                via: p.via,
            }))
        }
        (&Method::GET, ["v1", "tenants"]) => {
            let ts = state.node.registry.tenants().await?;
            ok(json!({"tenants": to_json(&ts)}))
        }
        (&Method::POST, ["v1", "tenants"]) => {
            let body: crate::wire::CreateTenant = read_json(req).await?;
            let t = state
                .node
                .registry
                .create_tenant(&body.name, body.limits.unwrap_or_default())
                .await?;
            state.node.resolver.tenant_created(&t.name);
            tracing::info!(tenant = %t.name, "tenant created");
            Ok(json_response(StatusCode::CREATED, &to_json(&t)))
        }
        (&Method::POST, ["v1", "admin", "gc"]) => {
            let q = query(&req);
            let grace = q
                .get("grace_secs")
                .map(|g| g.parse::<u64>())
                .transpose()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_request",
                        "grace_secs must be a number of seconds",
                    )
                })?
                .unwrap_or(3600);
            let dry_run = q.get("dry_run").is_some_and(|v| v == "true" || v == "1");
            gc(state, std::time::Duration::from_secs(grace), dry_run).await
        }
        (&Method::GET, ["v1", "admin", "inference"]) => crate::models::sessions(state),
        (&Method::GET, ["v1", "admin", "nodes"]) => {
            let nodes = helixflow_node::fleet::list(&state.node).await?;
            Ok(json_response(StatusCode::OK, &json!({ "nodes": nodes })))
        }
        (_, ["v1", "tenants", t, "keys", rest @ ..]) => {
            crate::keys::route(state, req, t, rest, principal).await
        }
        (_, ["v1", "tenants", t, "access-keys", rest @ ..]) => {
            crate::keys::access_route(state, req, t, rest).await
        }
        (_, ["v1", "tenants", t, "events", rest @ ..]) => {
            crate::async_invoke::route(state, req, t, rest).await
        }
        (&Method::POST, ["v1", "tenants", t, "jwt-secret"]) => {
            crate::keys::rotate_jwt_secret(state, t).await
        }
        (&Method::GET, ["v1", "tenants", t, "usage"]) => crate::usage::route(state, &req, t).await,
        (&Method::GET, ["v1", "tenants", t, "prices"]) => crate::usage::prices(state, t).await,
        (_, ["v1", "tenants", t, "budget"]) => crate::usage::budget(state, req, t).await,
        (_, ["v1", "tenants", t, "dashboards", rest @ ..]) => {
            crate::usage::dashboards(state, req, t, rest).await
        }
        (_, ["v1", "tenants", t, "alerts", rest @ ..]) => {
            crate::alerts::route(state, req, t, rest).await
        }
        (&Method::PUT, ["v1", "admin", "tenants", t, "prices"]) => {
            crate::usage::set_prices(state, req, t).await
        }
        (&Method::GET, ["v1", "tenants", t, "audit"]) => {
            let limit = query(&req)
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100usize)
                .min(10_000);
            ok(json!({"records": state.node.registry.audit_log(t, limit).await?}))
        }
        (_, ["v1", "tenants", t, "models", rest @ ..]) => {
            let t = t.to_string();
            let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            crate::models::route(state, req, &t, &rest, request_id).await
        }
        (&Method::GET, ["v1", "tenants", t]) => ok(to_json(&state.node.registry.tenant(t).await?)),
        (&Method::GET, ["v1", "tenants", t, "functions"]) => {
            let mut fs = state.node.registry.functions(t).await?;
            for func in &mut fs {
                present_env(
                    &state.node,
                    principal,
                    &func.tenant,
                    &func.name,
                    &mut func.config,
                )?;
            }
            ok(json!({"functions": to_json(&fs)}))
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f]) => {
            let mut func = state.node.registry.function(t, f).await?;
            present_env(&state.node, principal, t, f, &mut func.config)?;
            let versions = state.node.registry.versions(t, f).await?;
            let aliases = state.node.registry.aliases(t, f).await?;
            ok(
                json!({"function": to_json(&func), "versions": to_json(&versions), "aliases": to_json(&aliases)}),
            )
        }
        (&Method::DELETE, ["v1", "tenants", t, "functions", f]) => {
            let shas = state.node.registry.delete_function(t, f).await?;
            state.node.resolver.invalidate();
            // Compiled code another function's version still uses stays loaded.
            let still = state.node.registry.referenced_artifacts().await?;
            for sha in shas.iter().filter(|s| !still.contains(*s)) {
                state.node.runtime.evict(sha);
            }
            state.node.logs.forget(t, f);
            tracing::info!(tenant = %t, function = %f, versions = shas.len(), "function deleted");
            ok(json!({"deleted": true, "versions": shas.len()}))
        }
        (&Method::POST, ["v1", "tenants", t, "functions", f, "versions"]) => {
            let (t, f) = (t.to_string(), f.to_string());
            let result = deploy(state, req, &t, &f, request_id).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.code,
            };
            state
                .node
                .metrics
                .deploys
                .get_or_create(&metrics::DeployLabels { outcome })
                .inc();
            result
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f, "versions"]) => {
            ok(json!({"versions": to_json(&state.node.registry.versions(t, f).await?)}))
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f, "versions", v]) => ok(to_json(
            &state.node.registry.version(t, f, parse_version(v)?).await?,
        )),
        (&Method::DELETE, ["v1", "tenants", t, "functions", f, "versions", v]) => {
            let n = parse_version(v)?;
            state.node.registry.delete_version(t, f, n).await?;
            state.node.resolver.invalidate();
            ok(json!({"deleted": true, "version": n}))
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f, "config"]) => {
            let mut cfg = state.node.registry.function(t, f).await?.config;
            present_env(&state.node, principal, t, f, &mut cfg)?;
            ok(to_json(&cfg))
        }
        (&Method::PUT, ["v1", "tenants", t, "functions", f, "config"]) => {
            let (t, f) = (t.to_string(), f.to_string());
            let mut cfg: FunctionConfig = read_json(req).await?;
            check_config(state, &t, &cfg).await?;
            seal_env(&state.node, &t, &f, &mut cfg)?;
            let mut func = state.node.registry.set_config(&t, &f, cfg).await?;
            state.node.resolver.invalidate();
            present_env(&state.node, principal, &t, &f, &mut func.config)?;
            ok(to_json(&func))
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f, "aliases"]) => {
            state.node.registry.function(t, f).await?;
            ok(json!({"aliases": to_json(&state.node.registry.aliases(t, f).await?)}))
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f, "aliases", a]) => {
            ok(to_json(&state.node.registry.alias(t, f, a).await?))
        }
        (&Method::PUT, ["v1", "tenants", t, "functions", f, "aliases", a]) => {
            let (t, f, a) = (t.to_string(), f.to_string(), a.to_string());
            if a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "an alias name cannot be a number",
                ));
            }
            let body: crate::wire::SetAlias = read_json(req).await?;
            let alias = state
                .node
                .registry
                .set_alias(&t, &f, &a, body.version)
                .await?;
            state.node.resolver.invalidate();
            tracing::info!(tenant = %t, function = %f, alias = %a, version = body.version, "alias set");
            ok(to_json(&alias))
        }
        (&Method::DELETE, ["v1", "tenants", t, "functions", f, "aliases", a]) => {
            state.node.registry.delete_alias(t, f, a).await?;
            state.node.resolver.invalidate();
            ok(json!({"deleted": true}))
        }
        (&Method::POST, ["v1", "tenants", t, "functions", f, "aliases", a, "rollback"]) => {
            let alias = state.node.registry.rollback_alias(t, f, a).await?;
            state.node.resolver.invalidate();
            tracing::info!(tenant = %t, function = %f, alias = %a, version = alias.version, "alias rolled back");
            ok(to_json(&alias))
        }
        (&Method::GET, ["v1", "tenants", t, "functions", f, "logs"]) => {
            state.node.registry.function(t, f).await?;
            let limit = query(&req)
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(50)
                .min(1000);
            ok(json!({"logs": to_json(&state.node.logs.recent(t, f, limit))}))
        }
        _ => {
            if segs.first() == Some(&"v1") {
                Err(ApiError::not_found(format!(
                    "no control-plane route for {method} {}",
                    req.uri().path()
                )))
            } else {
                Err(ApiError::not_found("the control plane lives under /api/v1"))
            }
        }
    }
}

/// Garbage collection: delete artifacts no version references (leftovers of deploys
/// that died between storing the bytes and recording the version, and of deleted
/// functions) once they are older than `grace`, and prune this node's compile cache.
async fn gc(
    state: &AppState,
    grace: std::time::Duration,
    dry_run: bool,
) -> Result<Response<Body>, ApiError> {
    let mut referenced = state.node.registry.referenced_artifacts().await?;
    referenced.extend(state.node.registry.referenced_models().await?);
    let stored = state.node.artifacts.list().await?;
    let mut deleted = Vec::new();
    let mut young = 0;
    for a in stored.iter().filter(|a| !referenced.contains(&a.sha256)) {
        if a.age < grace {
            young += 1;
            continue;
        }
        if !dry_run {
            state.node.artifacts.delete(&a.sha256).await?;
            state.node.runtime.evict(&a.sha256);
        }
        deleted.push(a.sha256.clone());
    }
    let compiled_removed = if dry_run {
        0
    } else {
        state.node.runtime.prune_compile_cache(&referenced)
    };
    tracing::info!(
        deleted = deleted.len(),
        young,
        compiled_removed,
        dry_run,
        "gc"
    );
    ok(json!({
        "dry_run": dry_run,
        "referenced": referenced.len(),
        "stored": stored.len(),
        "deleted": deleted,
        "kept_younger_than_grace": young,
        "compiled_removed": compiled_removed,
    }))
}

async fn check_config(
    state: &AppState,
    tenant: &str,
    cfg: &FunctionConfig,
) -> Result<(), ApiError> {
    let t = state.node.registry.tenant(tenant).await?;
    if let Some(m) = cfg.memory_mb
        && (m == 0 || m > t.limits.max_memory_mb)
    {
        return Err(ApiError::bad_request(
            "invalid_config",
            format!(
                "memory_mb must be 1..={} for tenant {tenant:?}",
                t.limits.max_memory_mb
            ),
        ));
    }
    if let Some(ms) = cfg.timeout_ms
        && (ms == 0 || ms > t.limits.max_timeout_ms)
    {
        return Err(ApiError::bad_request(
            "invalid_config",
            format!(
                "timeout_ms must be 1..={} for tenant {tenant:?}",
                t.limits.max_timeout_ms
            ),
        ));
    }
    if cfg.allow_outbound.len() > 64 {
        return Err(ApiError::bad_request(
            "invalid_config",
            "at most 64 allow_outbound entries",
        ));
    }
    for h in &cfg.allow_outbound {
        let ok = !h.is_empty()
            && h.len() <= 260
            && !h.contains("://")
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:*[]".contains(&b))
            && (!h.contains('*')
                || (h.starts_with("*.") && h.matches('*').count() == 1 && h.len() > 2));
        if !ok {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!(
                    "allow_outbound entry {h:?}: use host, host:port or *.domain (no scheme, no path)"
                ),
            ));
        }
    }
    if cfg.max_concurrency == Some(0) {
        return Err(ApiError::bad_request(
            "invalid_config",
            "max_concurrency must be at least 1",
        ));
    }
    if let Some(a) = &cfg.async_invoke {
        a.validate()
            .map_err(|m| ApiError::bad_request("invalid_config", m))?;
    }
    helixflow_node::schedule::check_schedules(&cfg.schedules)?;
    for (k, v) in &cfg.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(ApiError::bad_request(
                "invalid_config",
                format!("invalid environment variable {k:?}"),
            ));
        }
    }
    let env_size: usize = cfg.env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if env_size > 64 * 1024 {
        return Err(ApiError::bad_request(
            "invalid_config",
            "environment larger than 64 KiB",
        ));
    }
    Ok(())
}

/// Deploy: validate (component, supported exports, imports we provide, compiles),
/// store the bytes content-addressed, then record the version atomically.
/// Nothing is recorded unless every step before it succeeded.
async fn deploy(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    function: &str,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    validate_name("function", function)?;
    state.node.registry.tenant(tenant).await?;
    let q = query(&req);
    let config: Option<FunctionConfig> = match req.headers().get("x-helixflow-config") {
        Some(v) => Some(serde_json::from_slice(v.as_bytes()).map_err(|e| {
            ApiError::bad_request("invalid_config", format!("x-helixflow-config: {e}"))
        })?),
        None => None,
    };
    let mut config = config;
    if let Some(cfg) = &mut config {
        check_config(state, tenant, cfg).await?;
        seal_env(&state.node, tenant, function, cfg)?;
    }
    let alias = q.get("alias").cloned();
    if let Some(a) = &alias {
        validate_name("alias", a)?;
    }
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, &parts.headers, state.settings.max_component_bytes).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "upload the component bytes as the request body",
        ));
    }
    let sha = helixflow_store::sha256_hex(&bytes);
    let loaded = state.node.runtime.load(&sha, &bytes).await?;
    state.node.artifacts.put(bytes.clone()).await?;
    let exports = loaded.exports();
    let version = state
        .node
        .registry
        .add_version(
            tenant,
            function,
            NewVersion {
                sha256: sha.clone(),
                size: bytes.len() as u64,
                exports: helixflow_store::registry::Exports {
                    http: exports.http,
                    event: exports.event,
                },
                description: q.get("description").cloned().unwrap_or_default(),
                config,
            },
        )
        .await?;
    let alias_rec = match &alias {
        Some(a) => Some(
            state
                .node
                .registry
                .set_alias(tenant, function, a, version.version)
                .await?,
        ),
        None => None,
    };
    state.node.resolver.invalidate();
    tracing::info!(%request_id, tenant, function, version = version.version, %sha, size = bytes.len(), "deployed");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"version": to_json(&version), "alias": to_json(&alias_rec)}),
    ))
}
