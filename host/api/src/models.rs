//! Model registry routes (`/api/v1/tenants/{tenant|public}/models/...`).

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::request::read_body;
use crate::tracked::TrackedBody;
use helixflow_nn::ErrorCode;
use helixflow_node::models::spec_of;
use helixflow_store::models::{ModelConfig, PUBLIC_NAMESPACE};
use http::{Method, Response, StatusCode};
use serde_json::json;

fn ok(v: serde_json::Value) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, &v))
}

fn namespace_ok(state: &AppState, t: &str) -> Result<(), ApiError> {
    let _ = state;
    if t == PUBLIC_NAMESPACE {
        return Ok(());
    }
    helixflow_store::registry::validate_name("tenant", t)?;
    Ok(())
}

fn inference(state: &AppState) -> Result<&std::sync::Arc<helixflow_nn::Inference>, ApiError> {
    state.node.runtime.inference().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "inference_disabled",
            "this node has no ONNX Runtime (set ORT_DYLIB_PATH or [inference].ort_dylib)",
        )
    })
}

/// Sessions of this node serving `sha256` (the provider actually used, counters).
fn sessions_of(state: &AppState, sha256: &str) -> serde_json::Value {
    let v: Vec<_> = state
        .node
        .runtime
        .inference()
        .map(|i| {
            i.loaded()
                .into_iter()
                .filter(|l| l.sha256 == sha256)
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_value(v).unwrap_or_default()
}

/// `segs` = path after `/api/v1/tenants/{t}/models`.
pub async fn route(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    segs: &[&str],
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    namespace_ok(state, tenant)?;
    let method = req.method().clone();
    match (&method, segs) {
        (&Method::GET, []) => {
            let models = state.node.registry.models(tenant).await?;
            ok(json!({ "models": models }))
        }
        (&Method::GET, [name]) => {
            let m = state.node.registry.model(tenant, name).await?;
            let versions = state.node.registry.model_versions(tenant, name).await?;
            let latest = versions
                .iter()
                .find(|v| v.version == m.latest_version)
                .map(|v| v.sha256.clone());
            let sessions = latest.map(|s| sessions_of(state, &s)).unwrap_or_default();
            ok(json!({ "model": m, "versions": versions, "sessions": sessions }))
        }
        (&Method::DELETE, [name]) => {
            let shas = state.node.registry.delete_model(tenant, name).await?;
            tracing::info!(%request_id, tenant, model = name, versions = shas.len(), "model deleted");
            ok(json!({ "deleted_versions": shas.len() }))
        }
        (&Method::PUT, [name, "config"]) => {
            let (parts, body) = req.into_parts();
            let bytes = read_body(body, &parts.headers, 64 << 10).await?;
            let cfg: ModelConfig = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::bad_request("invalid_config", format!("model config: {e}"))
            })?;
            check_config(state, tenant, &cfg).await?;
            let m = state
                .node
                .registry
                .set_model_config(tenant, name, cfg)
                .await?;
            ok(json!({ "model": m }))
        }
        (&Method::POST, [name, "versions"]) => push(state, req, tenant, name, request_id).await,
        (&Method::POST, [name, "preload"]) => {
            let inf = inference(state)?;
            let info = inf
                .preload(tenant, name)
                .await
                .map_err(|e| ApiError::bad_request("model_load_failed", e.to_string()))?;
            ok(serde_json::to_value(info).unwrap_or_default())
        }
        (&Method::GET, [name, "versions", v]) => {
            let n: u32 = v.parse().map_err(|_| {
                ApiError::bad_request("invalid_version", "version must be a number")
            })?;
            let (m, ver) = state
                .node
                .registry
                .model_version(tenant, name, Some(n))
                .await?;
            let sessions = sessions_of(state, &ver.sha256);
            ok(json!({ "model": m, "version": ver, "sessions": sessions }))
        }
        _ => Err(ApiError::not_found("no such model route")),
    }
}

async fn check_config(state: &AppState, tenant: &str, cfg: &ModelConfig) -> Result<(), ApiError> {
    spec_of(String::new(), String::new(), cfg)
        .map_err(|e| ApiError::bad_request("invalid_config", e))?;
    if let Some(s) = &cfg.serve {
        if tenant == PUBLIC_NAMESPACE {
            return Err(ApiError::bad_request(
                "invalid_config",
                "public models cannot have a serve route (functions belong to tenants)",
            ));
        }
        helixflow_store::registry::validate_name("function", &s.function)?;
        let _ = state;
    }
    Ok(())
}

/// Upload: the body is the ONNX file; `x-helixflow-model-config` carries the config.
/// The model must load in ONNX Runtime before anything is stored.
async fn push(
    state: &AppState,
    req: http::Request<TrackedBody>,
    tenant: &str,
    name: &str,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    helixflow_store::registry::validate_name("model", name)?;
    if tenant != PUBLIC_NAMESPACE {
        state.node.registry.tenant(tenant).await?;
    }
    let config: Option<ModelConfig> = match req.headers().get("x-helixflow-model-config") {
        Some(v) => Some(serde_json::from_slice(v.as_bytes()).map_err(|e| {
            ApiError::bad_request("invalid_config", format!("x-helixflow-model-config: {e}"))
        })?),
        None => None,
    };
    if let Some(c) = &config {
        check_config(state, tenant, c).await?;
    }
    let description = crate::request::query(&req)
        .get("description")
        .cloned()
        .unwrap_or_default();
    let inf = inference(state)?.clone();
    let (parts, body) = req.into_parts();
    // The body goes to a private temporary file (hashed on the way), never into memory:
    // an upload of up to `max_model_bytes` costs fixed buffers, and it is removed when
    // `upload` is dropped, on every path.
    let dir = state
        .settings
        .upload_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let upload =
        crate::upload::spool(body, &parts.headers, state.settings.max_model_bytes, &dir).await?;
    if upload.size == 0 {
        return Err(ApiError::bad_request(
            "empty_body",
            "upload the ONNX model file as the request body",
        ));
    }
    // ORT loads it from the file (weights mapped, not copied): see `helixflow_nn::upload`.
    let (inputs, outputs) = inf
        .validate_file(&upload.path)
        .await
        .map_err(|e| match e.code {
            ErrorCode::RuntimeError => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                format!("validating the model: {}", e.message),
            ),
            _ => ApiError::bad_request(
                "invalid_model",
                format!(
                    "the file is not a model ONNX Runtime can load: {}",
                    e.message
                ),
            ),
        })?;
    let sha = upload.sha256.clone();
    state.node.artifacts.put_file(&upload.path, &sha).await?;
    let size = upload.size;
    drop(upload);
    let signature = json!({ "inputs": inputs, "outputs": outputs });
    let v = state
        .node
        .registry
        .add_model_version(
            tenant,
            name,
            helixflow_store::models::NewModelVersion {
                sha256: sha.clone(),
                size,
                signature,
                description,
                config,
            },
        )
        .await?;
    tracing::info!(%request_id, tenant, model = name, version = v.version, %sha, size, "model pushed");
    Ok(json_response(StatusCode::CREATED, &json!({ "version": v })))
}

/// `GET /api/v1/admin/inference`: every session this node holds.
pub fn sessions(state: &AppState) -> Result<Response<Body>, ApiError> {
    let inf = inference(state)?;
    ok(json!({
        "sessions": inf.loaded(),
        "loads": inf.loads.load(std::sync::atomic::Ordering::Relaxed),
        "evictions": inf.evictions.load(std::sync::atomic::Ordering::Relaxed),
        "fallbacks": inf.fallbacks.load(std::sync::atomic::Ordering::Relaxed),
        "kv_cache_bytes": inf.kv_bytes().0,
        "kv_cache_limit_bytes": inf.kv_bytes().1,
    }))
}
