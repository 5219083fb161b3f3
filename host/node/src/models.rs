//! The [`RegistryModels`] source that resolves wasi:nn `load-by-name` through the model
//! registry (the tenant's own models, then public ones) and fetches model files.

use helixflow_nn::{Batching, ErrorCode, Fallback, ModelSource, ModelSpec, NnError, Provider};
use helixflow_store::ArtifactStore;
use helixflow_store::models::{ExecutionProvider, ModelConfig, ProviderFallback};
use helixflow_store::registry::{Registry, RegistryError};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Resolves model names through the registry (tenant first, then public) and fetches
/// model files from the artifact store (SHA-256 verified, locally cached). Resolutions
/// are cached for `ttl`, like function resolutions.
pub struct RegistryModels {
    registry: Registry,
    artifacts: ArtifactStore,
    ttl: Duration,
    cache: Mutex<HashMap<(String, String), (Instant, ModelSpec)>>,
}

impl RegistryModels {
    pub fn new(registry: Registry, artifacts: ArtifactStore, ttl: Duration) -> Self {
        RegistryModels {
            registry,
            artifacts,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

/// Checks a model config and turns it into what the inference service needs.
pub fn spec_of(display: String, sha256: String, c: &ModelConfig) -> Result<ModelSpec, String> {
    let providers = c
        .providers
        .iter()
        .map(|p| match p {
            ExecutionProvider::Tensorrt => Provider::Tensorrt,
            ExecutionProvider::Cuda => Provider::Cuda,
            ExecutionProvider::Cpu => Provider::Cpu,
        })
        .collect();
    let fallback = c.fallback.map(|f| match f {
        ProviderFallback::Next => Fallback::Next,
        ProviderFallback::Refuse => Fallback::Refuse,
    });
    if c.max_batch > 4096 {
        return Err("max_batch must be <= 4096".into());
    }
    if c.max_delay_us > 1_000_000 {
        return Err("max_delay_us must be <= 1000000 (1 s)".into());
    }
    Ok(ModelSpec {
        display,
        sha256,
        providers,
        fallback,
        batching: Batching {
            max_batch: c.max_batch,
            max_delay_us: c.max_delay_us,
            row_independent: c.row_independent,
        },
        trt_fp16: c.trt_fp16,
    })
}

fn nn_err(e: RegistryError) -> NnError {
    match e {
        RegistryError::NotFound(m) => NnError::new(ErrorCode::NotFound, m),
        RegistryError::Invalid(m) => NnError::new(ErrorCode::InvalidArgument, m),
        RegistryError::Conflict(m) => NnError::new(ErrorCode::RuntimeError, m),
        RegistryError::Store(e) => NnError::new(
            ErrorCode::RuntimeError,
            format!("model registry unavailable: {e}"),
        ),
    }
}

#[async_trait::async_trait]
impl ModelSource for RegistryModels {
    async fn resolve(&self, tenant: &str, name: &str) -> Result<ModelSpec, NnError> {
        let key = (tenant.to_string(), name.to_string());
        if let Some((at, spec)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(spec.clone());
        }
        let (m, v) = self
            .registry
            .resolve_model(tenant, name)
            .await
            .map_err(nn_err)?;
        let spec = spec_of(
            format!("{}/{}@{}", m.tenant, m.name, v.version),
            v.sha256.clone(),
            &m.config,
        )
        .map_err(|e| NnError::new(ErrorCode::InvalidArgument, e))?;
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), spec.clone()));
        Ok(spec)
    }

    async fn fetch(&self, spec: &ModelSpec) -> Result<Vec<u8>, NnError> {
        self.artifacts
            .get(&spec.sha256)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| {
                NnError::new(
                    ErrorCode::RuntimeError,
                    format!("model file unavailable: {e}"),
                )
            })
    }
}
