//! Resolving `{tenant}/{function}[@qualifier]` to a version, its limits and a loaded
//! component, with an in-memory cache invalidated by every control-plane write.

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::{InvocationLabels, LatencyLabels, Metrics};
use helixflow_runtime::{Limits, LoadedFunction};
use helixflow_store::registry::{Function, Tenant, Version};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Everything an invocation needs, resolved.
#[derive(Clone)]
pub struct Target {
    pub tenant: Arc<Tenant>,
    pub function: Arc<Function>,
    pub version: Arc<Version>,
    pub limits: Limits,
    pub env: Vec<(String, String)>,
    pub loaded: Arc<LoadedFunction>,
    /// Metric handles for the common case, looked up once per resolution.
    pub metrics: Arc<TargetMetrics>,
}

pub struct TargetMetrics {
    pub http_ok: Counter,
    pub event_ok: Counter,
    pub http_latency: Histogram,
    pub event_latency: Histogram,
}

impl TargetMetrics {
    fn new(m: &Metrics, tenant: &str, function: &str) -> Self {
        let inv = |trigger| {
            m.invocations
                .get_or_create(&InvocationLabels {
                    tenant: tenant.into(),
                    function: function.into(),
                    trigger,
                    outcome: "ok",
                })
                .clone()
        };
        let lat = |trigger| {
            m.latency
                .get_or_create(&LatencyLabels {
                    tenant: tenant.into(),
                    function: function.into(),
                    trigger,
                })
                .clone()
        };
        TargetMetrics {
            http_ok: inv("http"),
            event_ok: inv("event"),
            http_latency: lat("http"),
            event_latency: lat("event"),
        }
    }
}

type Key = (String, String, String);

struct Entry {
    generation: u64,
    at: std::time::Instant,
    target: Target,
    refreshing: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
pub struct Resolver {
    generation: AtomicU64,
    cache: RwLock<HashMap<Key, Entry>>,
}

impl Resolver {
    /// Forget everything: called after any write that can change a resolution.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn insert(&self, key: Key, generation: u64, target: Target) {
        // Only cache if nothing changed while we were reading.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(
            key,
            Entry {
                generation,
                at: std::time::Instant::now(),
                target,
                refreshing: Arc::default(),
            },
        );
    }
}

/// `name@qualifier` -> (name, qualifier).
pub fn split_qualifier(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((n, q)) => (n, Some(q)),
        None => (s, None),
    }
}

/// Most cached resolutions; past it the cache starts over (it refills from the store).
const MAX_CACHED: usize = 10_000;

pub async fn resolve(
    state: &Arc<AppState>,
    tenant: &str,
    function: &str,
    qualifier: Option<&str>,
) -> Result<Target, ApiError> {
    let served = &state.settings.served_tenants;
    if !served.is_empty() && !served.iter().any(|t| t == tenant) {
        return Err(ApiError::new(
            http::StatusCode::NOT_FOUND,
            "tenant_not_served",
            format!(
                "tenant {tenant:?} is not served at location {:?}",
                state.settings.node_id
            ),
        ));
    }
    // Canonical key: `@01` and `@1` are the same version.
    let q = match qualifier {
        None => String::new(),
        Some(q) if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) => match q.parse::<u32>()
        {
            Ok(n) => format!("v{n}"),
            Err(_) => format!("x{q}"),
        },
        Some(alias) => format!("a{alias}"),
    };
    let key = (tenant.to_string(), function.to_string(), q);
    let generation = state.resolver.generation.load(Ordering::SeqCst);
    let cached = {
        let cache = state
            .resolver
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner());
        cache
            .get(&key)
            .filter(|e| e.generation == generation)
            .map(|e| {
                (
                    e.at.elapsed() < state.settings.resolve_cache_ttl,
                    e.target.clone(),
                    e.refreshing.clone(),
                )
            })
    };
    match cached {
        Some((true, target, _)) => Ok(target),
        Some((false, target, refreshing)) => {
            // Stale: serve what we have (requests never wait on the metadata store once
            // a target is known, and keep serving through a store outage) and refresh it
            // in the background, once.
            if !refreshing.swap(true, Ordering::SeqCst) {
                let state = state.clone();
                let qualifier = qualifier.map(str::to_string);
                tokio::spawn(async move {
                    let (t, f) = (key.0.clone(), key.1.clone());
                    match resolve_uncached(&state, &t, &f, qualifier.as_deref()).await {
                        Ok(fresh) => state.resolver.insert(key, generation, fresh),
                        Err(e) if e.status == http::StatusCode::NOT_FOUND => {
                            // Deleted elsewhere: forget it; the next request gets the 404.
                            state
                                .resolver
                                .cache
                                .write()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&key);
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %t, function = %f, code = e.code, error = %e.message,
                                "metadata refresh failed; serving the last known version");
                            let mut cache = state
                                .resolver
                                .cache
                                .write()
                                .unwrap_or_else(|p| p.into_inner());
                            if let Some(entry) = cache.get_mut(&key) {
                                // Try again after another TTL.
                                entry.at = std::time::Instant::now();
                                entry.refreshing.store(false, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
            Ok(target)
        }
        None => {
            let target = resolve_uncached(state, tenant, function, qualifier).await?;
            state.resolver.insert(key, generation, target.clone());
            Ok(target)
        }
    }
}

async fn resolve_uncached(
    state: &AppState,
    tenant: &str,
    function: &str,
    qualifier: Option<&str>,
) -> Result<Target, ApiError> {
    let t = state.registry.tenant(tenant).await?;
    let f = state.registry.function(tenant, function).await?;
    let number = match qualifier {
        Some(q) if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) => {
            q.parse::<u32>().map_err(|_| {
                ApiError::bad_request("invalid_request", format!("version {q:?} is out of range"))
            })?
        }
        Some(alias) if !alias.is_empty() => {
            state.registry.alias(tenant, function, alias).await?.version
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "empty qualifier after '@'",
            ));
        }
        None => match state.registry.alias(tenant, function, "live").await {
            Ok(a) => a.version,
            Err(helixflow_store::registry::RegistryError::NotFound(_)) => {
                if f.latest_version == 0 {
                    return Err(ApiError::not_found(format!(
                        "{tenant}/{function} has no versions"
                    )));
                }
                f.latest_version
            }
            Err(e) => return Err(e.into()),
        },
    };
    let v = state.registry.version(tenant, function, number).await?;
    let loaded = match state.runtime.loaded(&v.sha256) {
        Some(l) => l,
        None => {
            let bytes = state.artifacts.get(&v.sha256).await?;
            state.runtime.load(&v.sha256, &bytes).await?
        }
    };
    let memory_mb = f
        .config
        .memory_mb
        .unwrap_or(state.settings.default_memory_mb)
        .min(t.limits.max_memory_mb);
    let timeout_ms = f
        .config
        .timeout_ms
        .unwrap_or(state.settings.default_timeout_ms)
        .min(t.limits.max_timeout_ms);
    let limits = Limits {
        memory_bytes: (memory_mb as usize) << 20,
        timeout: Duration::from_millis(timeout_ms),
        max_log_bytes: state.settings.max_log_bytes,
    };
    let env = f
        .config
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Target {
        metrics: Arc::new(TargetMetrics::new(&state.metrics, tenant, function)),
        tenant: Arc::new(t),
        function: Arc::new(f),
        version: Arc::new(v),
        limits,
        env,
        loaded,
    })
}
