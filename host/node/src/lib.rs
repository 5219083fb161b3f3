//! # helixflow-node: the application layer of a HelixFlow node
//!
//! What a node does, without HTTP: it resolves `{tenant}/{function}[@qualifier]` to a
//! loaded version (cached, refreshed in the background, see [`resolve`]), admits
//! invocations under per-tenant quotas ([`quota`]), runs them through the runtime and
//! records what happened (metrics, recent logs: [`invoke`]), runs durable asynchronous
//! invocations ([`async_invoke`]) and cron schedules ([`schedule`]), serves model names to wasi:nn from the
//! registry ([`models`]), authenticates credentials with bounded caches
//! ([`credentials`]), writes the audit log ([`audit`]), meters usage ([`usage`]) and
//! holds tenants to their spend caps and rate limits ([`budget`]); one node of the
//! fleet at a time evaluates tenants' alert rules and notifies ([`alerts`]).
//!
//! Architecture invariant: this crate knows no routes, statuses, headers or wire formats.
//! Its failures are [`NodeError`]s (a kind, a machine-readable code, a message); the api
//! crate maps each kind to one HTTP status. The only HTTP types here are the request and
//! response a function's own wasi:http handler takes and gives.

pub mod access;
pub mod alerts;
pub mod async_invoke;
pub mod audit;
pub mod bounded;
pub mod budget;
pub mod credentials;
pub mod error;
pub mod fleet;
pub mod invoke;
pub mod lambda;
pub mod logs;
pub mod metrics;
pub mod models;
pub mod quota;
pub mod resolve;
pub mod schedule;
pub mod secrets;
pub mod usage;

pub use credentials::AuthSettings;
pub use error::{ErrorKind, NodeError};
pub use invoke::Who;
pub use resolve::Target;

use helixflow_runtime::Runtime;
use helixflow_store::ArtifactStore;
use helixflow_store::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

/// What a node is told about itself (from the edge config).
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// Location id, e.g. `fra`: in metrics, responses, ARNs' region.
    pub node_id: String,
    pub default_memory_mb: u32,
    pub default_timeout_ms: u64,
    /// Cap on captured stdout and stderr per invocation.
    pub max_log_bytes: usize,
    /// Invocation log records kept per function.
    pub log_records_per_function: usize,
    /// How long a resolution is served from memory (bounds staleness across nodes).
    pub resolve_cache_ttl: Duration,
    /// Tenants this node serves on its data plane (empty: all).
    pub served_tenants: Vec<String>,
    /// Event (asynchronous) invocations this node runs at once.
    pub async_workers: usize,
    /// Whether invocations are metered at all.
    pub usage_enabled: bool,
    /// How often metered usage is written to the metadata store.
    pub usage_flush_interval: Duration,
    /// How long usage records are kept.
    pub usage_retention: Duration,
    /// Most usage series (minute x dimensions) held in memory per tenant.
    pub usage_max_series: usize,
    /// The node's price table (a tenant's own replaces it).
    pub prices: Vec<helixflow_usage::Price>,
    /// Alert evaluation and notification ([`alerts`]).
    pub alerts: alerts::AlertSettings,
    /// Tenants with a metric label of their own; later ones are `other` ([`metrics`]).
    pub metrics_max_tenant_labels: usize,
    /// How often an invoked tenant's spend and other nodes' use are re-read ([`budget`]).
    pub budget_refresh: Duration,
    /// How often the fleet's lease holder rolls complete hours of usage up.
    pub usage_rollup_interval: Duration,
    /// How long hourly roll-ups are kept.
    pub usage_rollup_retention: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            node_id: "local".into(),
            default_memory_mb: 128,
            default_timeout_ms: 10_000,
            max_log_bytes: 64 << 10,
            log_records_per_function: 200,
            resolve_cache_ttl: Duration::from_secs(1),
            served_tenants: Vec::new(),
            async_workers: 16,
            usage_enabled: true,
            usage_flush_interval: Duration::from_secs(10),
            usage_retention: Duration::from_secs(35 * 86_400),
            usage_max_series: 10_000,
            prices: Vec::new(),
            alerts: alerts::AlertSettings::default(),
            metrics_max_tenant_labels: metrics::DEFAULT_MAX_TENANT_LABELS,
            budget_refresh: Duration::from_secs(2),
            usage_rollup_interval: Duration::from_secs(60),
            usage_rollup_retention: Duration::from_secs(400 * 86_400),
        }
    }
}

impl NodeSettings {
    /// Whether this node serves `tenant`'s functions on its data plane.
    pub fn serves(&self, tenant: &str) -> bool {
        self.served_tenants.is_empty() || self.served_tenants.iter().any(|t| t == tenant)
    }
}

/// One node: its stores, runtime, settings and the state its services share.
pub struct Node {
    pub runtime: Arc<Runtime>,
    pub registry: Registry,
    pub artifacts: ArtifactStore,
    pub settings: NodeSettings,
    pub auth: AuthSettings,
    pub credentials: credentials::CredentialCache,
    /// This node's side of the asynchronous-invocation queue.
    pub worker: async_invoke::EventRunner,
    pub quotas: quota::Quotas,
    pub metrics: metrics::Metrics,
    pub logs: logs::LogBook,
    pub resolver: resolve::Resolver,
    /// This node's usage totals, waiting for the next flush ([`usage`]).
    pub meter: helixflow_usage::Meter,
    /// Spend caps and rate limits ([`budget`]).
    pub budgets: budget::Budgets,
    /// This process: `{node_id}~{8 hex}`, new at every start (usage rows and the fleet
    /// heartbeat are written under it, so two processes of one location never clash).
    pub instance: String,
    /// When this process started (Unix seconds).
    pub started_at: u64,
}

impl Node {
    pub fn new(
        runtime: Arc<Runtime>,
        registry: Registry,
        artifacts: ArtifactStore,
        settings: NodeSettings,
        auth: AuthSettings,
    ) -> Arc<Self> {
        let instance = format!(
            "{}~{}",
            settings.node_id,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let node = Arc::new(Node {
            auth,
            credentials: credentials::CredentialCache::new(settings.resolve_cache_ttl),
            worker: async_invoke::EventRunner::new(&settings.node_id, settings.async_workers),
            quotas: quota::Quotas::default(),
            metrics: metrics::Metrics::new(&settings.node_id, settings.metrics_max_tenant_labels)
                .with_egress(runtime.egress_stats()),
            logs: logs::LogBook::new(settings.log_records_per_function),
            resolver: resolve::Resolver::new(settings.resolve_cache_ttl),
            budgets: budget::Budgets::new(settings.resolve_cache_ttl, settings.budget_refresh),
            meter: helixflow_usage::Meter::new(&instance, settings.usage_max_series),
            instance,
            started_at: helixflow_store::now_unix(),
            runtime,
            registry,
            artifacts,
            settings,
        });
        // Background re-reads of budgets need the node itself.
        let _ = node.budgets.me.set(Arc::downgrade(&node));
        node
    }

    /// Forget every cached resolution and credential lookup: after a control-plane
    /// write that can change one.
    pub fn invalidate(&self) {
        self.resolver.invalidate();
    }
}
