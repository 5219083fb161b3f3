//! Resolving `{tenant}/{function}[@qualifier]` to a version, its limits and a loaded
//! component, with an in-memory cache invalidated by every control-plane write.

use crate::Node;
use crate::bounded::TtlCache;
use crate::error::{ErrorKind, NodeError};
use crate::metrics::Metrics;
use helixflow_runtime::{InvocationEnv, Limits, LoadedFunction};
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
    /// What the runtime is told about the invocation (env opened, allow-list), built
    /// once per resolution.
    pub invocation: InvocationEnv,
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
        TargetMetrics {
            http_ok: m.invocation(tenant, function, "http", "ok"),
            event_ok: m.invocation(tenant, function, "event", "ok"),
            http_latency: m.latency(tenant, function, "http"),
            event_latency: m.latency(tenant, function, "event"),
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

/// Resolutions and the metadata that decides who may trigger them.
///
/// Invariants: every map here is bounded (`MAX_CACHED`, `MAX_NEGATIVE`, `MAX_KNOWN`),
/// and what was found missing is kept apart from what exists, so distinct bogus names
/// only ever evict each other.
pub struct Resolver {
    generation: AtomicU64,
    cache: RwLock<HashMap<Key, Entry>>,
    /// Resolutions that ended in 404 (tenant, function, version or alias missing), for
    /// `NEGATIVE_TTL` at most: a flood of one bogus name costs one store read.
    missing: TtlCache<Key, NodeError>,
    /// `(tenant, function)` -> the function's `public` flag (metadata only).
    functions: TtlCache<(String, String), bool>,
    /// `(tenant, function)` pairs that do not exist.
    functions_missing: TtlCache<(String, String), ()>,
    /// Tenant names seen to exist since the directory was loaded (resolutions, tenants
    /// created on this node).
    tenants: TtlCache<String, ()>,
    /// Every tenant's name, as of when it was loaded (`None`: not yet). Its size is the
    /// number of real tenants; no request adds to it.
    tenant_dir: std::sync::RwLock<(
        Option<std::time::Instant>,
        Arc<std::collections::HashSet<String>>,
    )>,
    /// Held while the directory loads (one load at a time).
    tenant_dir_load: tokio::sync::Mutex<()>,
}

/// How long a "not found" is remembered (also bounded by the resolve-cache TTL).
const NEGATIVE_TTL: Duration = Duration::from_secs(2);
/// Most remembered "not found" answers per map (least recently used go first).
const MAX_NEGATIVE: usize = 10_000;
/// Most remembered existing tenants and functions.
const MAX_KNOWN: usize = 100_000;
/// How often the tenant directory is reloaded (tenants created on other nodes are
/// seen within it).
const TENANT_DIR_TTL: Duration = Duration::from_secs(60);

impl Resolver {
    /// `ttl`: how long metadata (a function's `public` flag, resolutions) is trusted.
    pub fn new(ttl: Duration) -> Self {
        let negative = NEGATIVE_TTL.min(ttl);
        Resolver {
            generation: AtomicU64::new(0),
            cache: RwLock::default(),
            missing: TtlCache::new(MAX_NEGATIVE, negative),
            functions: TtlCache::new(MAX_KNOWN, ttl),
            functions_missing: TtlCache::new(MAX_NEGATIVE, negative),
            tenants: TtlCache::new(MAX_KNOWN, TENANT_DIR_TTL),
            tenant_dir: Default::default(),
            tenant_dir_load: Default::default(),
        }
    }

    /// Forget everything: called after any write that can change a resolution.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.missing.clear();
        self.functions.clear();
        self.functions_missing.clear();
    }

    /// A tenant was created on this node.
    pub fn tenant_created(&self, name: &str) {
        self.tenants.insert(name.to_string(), ());
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
    node: &Arc<Node>,
    tenant: &str,
    function: &str,
    qualifier: Option<&str>,
) -> Result<Target, NodeError> {
    if !node.settings.serves(tenant) {
        return Err(NodeError::new(
            ErrorKind::NotFound,
            "tenant_not_served",
            format!(
                "tenant {tenant:?} is not served at location {:?}",
                node.settings.node_id
            ),
        ));
    }
    let key = (
        tenant.to_string(),
        function.to_string(),
        cache_qualifier(qualifier),
    );
    let generation = node.resolver.generation.load(Ordering::SeqCst);
    let cached = {
        let cache = node
            .resolver
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner());
        cache
            .get(&key)
            .filter(|e| e.generation == generation)
            .map(|e| {
                (
                    e.at.elapsed() < node.settings.resolve_cache_ttl,
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
                let node = node.clone();
                let qualifier = qualifier.map(str::to_string);
                tokio::spawn(async move {
                    let (t, f) = (key.0.clone(), key.1.clone());
                    match resolve_uncached(&node, &t, &f, qualifier.as_deref()).await {
                        Ok(fresh) => node.resolver.insert(key, generation, fresh),
                        Err(e) if e.is_not_found() => {
                            // Deleted elsewhere: forget it; the next request gets the 404.
                            node.resolver
                                .cache
                                .write()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&key);
                        }
                        Err(e) => {
                            tracing::warn!(tenant = %t, function = %f, code = e.code, error = %e.message,
                                "metadata refresh failed; serving the last known version");
                            let mut cache = node
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
            if let Some(e) = node.resolver.missing.get(&key) {
                return Err(e);
            }
            match resolve_uncached(node, tenant, function, qualifier).await {
                Ok(target) => {
                    node.resolver.tenants.insert(tenant.to_string(), ());
                    node.resolver.insert(key, generation, target.clone());
                    Ok(target)
                }
                Err(e) => {
                    if e.is_not_found()
                        && node.resolver.generation.load(Ordering::SeqCst) == generation
                    {
                        node.resolver.missing.insert(key, e.clone());
                    }
                    Err(e)
                }
            }
        }
    }
}

/// Whether `tenant/function` is public (its HTTP trigger needs no credentials), from
/// metadata alone: this reads at most the function's record, never a version or an
/// artifact, and never loads a component, so a caller without credentials cannot make
/// the node do more than that. Missing functions and store errors answer `false` (the
/// caller then gets the same 401/403 as for a private function); both answers are
/// cached (bounded, briefly for "missing").
pub async fn is_public(node: &Node, tenant: &str, function: &str, qualifier: Option<&str>) -> bool {
    if !node.settings.serves(tenant) {
        return false;
    }
    // A resolution already in memory (fresh or stale) knows the answer.
    let key = (
        tenant.to_string(),
        function.to_string(),
        cache_qualifier(qualifier),
    );
    if let Some(e) = node
        .resolver
        .cache
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
    {
        return e.target.function.config.public;
    }
    let fkey = (tenant.to_string(), function.to_string());
    if let Some(public) = node.resolver.functions.get(&fkey) {
        return public;
    }
    if node.resolver.functions_missing.get(&fkey).is_some() {
        return false;
    }
    let generation = node.resolver.generation.load(Ordering::SeqCst);
    // One read whether or not the tenant or function exists (no timing difference).
    let found = node.registry.find_function(tenant, function).await;
    let current = node.resolver.generation.load(Ordering::SeqCst) == generation;
    match found {
        Ok(Some(f)) => {
            if current {
                node.resolver.functions.insert(fkey, f.config.public);
            }
            f.config.public
        }
        Ok(None) => {
            if current {
                node.resolver.functions_missing.insert(fkey, ());
            }
            false
        }
        Err(e) => {
            tracing::debug!(%tenant, %function, error = %e, "function metadata unavailable; treating it as private");
            false
        }
    }
}

/// Whether `tenant` names an existing tenant, to choose the audit log of a refusal.
///
/// Answers from memory: tenants seen on this node, else the directory of every
/// tenant's name (loaded from the store on first use and reloaded at most every
/// `TENANT_DIR_TTL`, by one caller while the others use the copy they have). So a flood
/// of refusals naming made-up tenants causes no store reads and keeps no node per
/// name, and cannot push a real tenant's refusals out of that tenant's log.
pub async fn tenant_exists(node: &Node, tenant: &str) -> bool {
    if helixflow_store::registry::validate_name("tenant", tenant).is_err() {
        return false;
    }
    let r = &node.resolver;
    if r.tenants.get(tenant).is_some() {
        return true;
    }
    let (loaded_at, dir) = r
        .tenant_dir
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let fresh = loaded_at.is_some_and(|at| at.elapsed() < TENANT_DIR_TTL);
    if fresh {
        return dir.contains(tenant);
    }
    // The first load waits; a reload happens in the caller that gets the lock.
    let guard = if loaded_at.is_none() {
        Some(r.tenant_dir_load.lock().await)
    } else {
        r.tenant_dir_load.try_lock().ok()
    };
    let Some(_guard) = guard else {
        return dir.contains(tenant);
    };
    let (loaded_at, dir) = r
        .tenant_dir
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if loaded_at.is_some_and(|at| at.elapsed() < TENANT_DIR_TTL) {
        return dir.contains(tenant);
    }
    match node.registry.tenants().await {
        Ok(ts) => {
            let dir: Arc<std::collections::HashSet<String>> =
                Arc::new(ts.into_iter().map(|t| t.name).collect());
            *r.tenant_dir.write().unwrap_or_else(|p| p.into_inner()) =
                (Some(std::time::Instant::now()), dir.clone());
            dir.contains(tenant)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot load the tenant directory; using the last copy");
            // Try again after a few seconds, not on every refusal.
            let retry_at =
                std::time::Instant::now().checked_sub(TENANT_DIR_TTL - Duration::from_secs(5));
            *r.tenant_dir.write().unwrap_or_else(|p| p.into_inner()) =
                (retry_at.or(loaded_at), dir.clone());
            dir.contains(tenant)
        }
    }
}

/// The qualifier part of a cache key: `@01` and `@1` are the same version.
fn cache_qualifier(qualifier: Option<&str>) -> String {
    match qualifier {
        None => String::new(),
        Some(q) if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) => match q.parse::<u32>()
        {
            Ok(n) => format!("v{n}"),
            Err(_) => format!("x{q}"),
        },
        Some(alias) => format!("a{alias}"),
    }
}

async fn resolve_uncached(
    node: &Node,
    tenant: &str,
    function: &str,
    qualifier: Option<&str>,
) -> Result<Target, NodeError> {
    let t = node.registry.tenant(tenant).await?;
    let f = node.registry.function(tenant, function).await?;
    let number = match qualifier {
        Some(q) if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) => {
            q.parse::<u32>().map_err(|_| {
                NodeError::invalid("invalid_request", format!("version {q:?} is out of range"))
            })?
        }
        Some(alias) if !alias.is_empty() => {
            node.registry.alias(tenant, function, alias).await?.version
        }
        Some(_) => {
            return Err(NodeError::invalid(
                "invalid_request",
                "empty qualifier after '@'",
            ));
        }
        None => match node.registry.alias(tenant, function, "live").await {
            Ok(a) => a.version,
            Err(helixflow_store::registry::RegistryError::NotFound(_)) => {
                if f.latest_version == 0 {
                    return Err(NodeError::not_found(format!(
                        "{tenant}/{function} has no versions"
                    )));
                }
                f.latest_version
            }
            Err(e) => return Err(e.into()),
        },
    };
    let v = node.registry.version(tenant, function, number).await?;
    let loaded = match node.runtime.loaded(&v.sha256) {
        Some(l) => l,
        None => {
            node.metrics.artifact_fetches.inc();
            let bytes = node.artifacts.get(&v.sha256).await?;
            node.metrics.component_loads.inc();
            node.runtime.load(&v.sha256, &bytes).await?
        }
    };
    let memory_mb = f
        .config
        .memory_mb
        .unwrap_or(node.settings.default_memory_mb)
        .min(t.limits.max_memory_mb);
    let timeout_ms = f
        .config
        .timeout_ms
        .unwrap_or(node.settings.default_timeout_ms)
        .min(t.limits.max_timeout_ms);
    let limits = Limits {
        memory_bytes: (memory_mb as usize) << 20,
        timeout: Duration::from_millis(timeout_ms),
        max_log_bytes: node.settings.max_log_bytes,
    };
    // Stored sealed (secrets::seal_env); opened only here, for the invocation.
    let env = crate::secrets::open_env(node, tenant, function, &f.config.env)?;
    let invocation = InvocationEnv {
        env,
        tenant: t.name.clone(),
        function: f.name.clone(),
        allow_outbound: f.config.allow_outbound.clone(),
    };
    Ok(Target {
        metrics: Arc::new(TargetMetrics::new(&node.metrics, tenant, function)),
        tenant: Arc::new(t),
        function: Arc::new(f),
        version: Arc::new(v),
        limits,
        invocation,
        loaded,
    })
}
