//! Prometheus metrics (`GET /metrics`, OpenMetrics text).
//!
//! Every series carries the node's `location` (a registry-wide label). Families that name
//! a tenant (`invocations`, `invocation_duration_seconds`, `tokens`, `cost_usd`) are
//! written only through [`Metrics`]' methods, which bound their labels.
//!
//! Invariant: label cardinality is bounded. The first `max_tenant_labels` distinct
//! tenants this process records (`[metrics] max_tenant_labels`, default 50) get their
//! own `tenant` label; every later tenant is recorded as `tenant="other"`, and so are its
//! tenant-chosen names (`function`, `model` become `other` too), so a node's series grow
//! with at most that many tenants whatever requests name. A slot is taken only by a
//! tenant something was recorded for (a function resolved, tokens counted, cost
//! added), never by a request that failed before, and is kept until the process ends.
//! Keys, principals, request ids and other caller-chosen values are never labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::AtomicU64;

/// The label value of every tenant past `max_tenant_labels`, and of its functions and
/// models.
pub const OTHER: &str = "other";

/// Default of `[metrics] max_tenant_labels`.
pub const DEFAULT_MAX_TENANT_LABELS: usize = 50;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvocationLabels {
    tenant: String,
    function: String,
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    tenant: String,
    function: String,
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    tenant: String,
    model: String,
    /// `prompt` or `completion`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub plane: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AsyncLabels {
    /// `accepted`, `succeeded`, `retried`, `failed`, `released` (quota), `taken_over`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `per_ip_limit`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployLabels {
    pub outcome: &'static str,
}

/// Invocation latency buckets: 50 us doubling to ~52 s (21 bounds, then +Inf), so a
/// slow LLM call still lands in a finite bucket and p50/p95/p99 hold from a cached
/// hello to a long generation.
pub const LATENCY_BUCKETS: usize = 21;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, LATENCY_BUCKETS as u16))
}

/// The tenants that have their own label value (at most `max`).
struct TenantSlots {
    max: usize,
    known: RwLock<HashSet<String>>,
    /// How many slots are taken (exported as `helixflow_metric_tenant_labels`).
    used: Gauge,
}

impl TenantSlots {
    /// Whether `tenant` has (or now takes) a label of its own.
    fn admit(&self, tenant: &str) -> bool {
        {
            let known = self.known.read().unwrap_or_else(|p| p.into_inner());
            if known.contains(tenant) {
                return true;
            }
            if known.len() >= self.max {
                return false;
            }
        }
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.contains(tenant) {
            return true;
        }
        if known.len() >= self.max {
            return false;
        }
        known.insert(tenant.to_string());
        self.used.set(known.len() as i64);
        true
    }
}

pub struct Metrics {
    registry: Registry,
    location: String,
    tenants: TenantSlots,
    invocations: Family<InvocationLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<TenantLabels, Counter<f64, AtomicU64>>,
    pub requests: Family<RequestLabels, Counter>,
    pub deploys: Family<DeployLabels, Counter>,
    pub async_events: Family<AsyncLabels, Counter>,
    pub schedule_ticks: Counter,
    /// Component bytes read from the artifact store to resolve a version.
    pub artifact_fetches: Counter,
    /// Components loaded (compiled, or deserialized from the compile cache) to resolve
    /// a version. Neither moves for a request the caller may not make.
    pub component_loads: Counter,
    /// Client connections open now.
    pub connections_open: Gauge,
    /// Client connections closed at once on accept, by reason.
    pub connections_refused: Family<RefusedLabels, Counter>,
    /// The usage meter's own counters (samples folded into `overflow` series, samples
    /// dropped), copied from it as invocations are metered.
    usage_overflowed: Counter,
    usage_dropped: Counter,
}

impl Metrics {
    /// A node's registry: every series labelled `location="{node_id}"`, at most
    /// `max_tenant_labels` tenants with a label of their own (the rest are `other`).
    pub fn new(node_id: &str, max_tenant_labels: usize) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            "helixflow",
            [(
                std::borrow::Cow::Borrowed("location"),
                std::borrow::Cow::Owned(node_id.to_string()),
            )]
            .into_iter(),
        );
        let invocations = Family::<InvocationLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let deploys = Family::<DeployLabels, Counter>::default();
        registry.register(
            "invocations",
            "Function invocations by tenant, function, trigger and outcome (ok or an error code); tenants past [metrics] max_tenant_labels are `other`",
            invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Invocation latency (instantiate + run), by tenant, function and trigger; tenants past [metrics] max_tenant_labels are `other`",
            latency.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "helixflow:llm tokens (host-counted) by tenant, model and kind (prompt or completion)",
            tokens.clone(),
        );
        let cost = Family::<TenantLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Cost of usage at the prices in force, in the price table's currency (USD), by tenant",
            cost.clone(),
        );
        let tenant_labels = Gauge::default();
        registry.register(
            "metric_tenant_labels",
            "Tenants with a label of their own on this node (the rest are `other`)",
            tenant_labels.clone(),
        );
        let tenant_labels_limit: Gauge = Gauge::default();
        tenant_labels_limit.set(i64::try_from(max_tenant_labels).unwrap_or(i64::MAX));
        registry.register(
            "metric_tenant_labels_limit",
            "[metrics] max_tenant_labels: tenants past it are labelled `other`",
            tenant_labels_limit,
        );
        registry.register(
            "api_requests",
            "HTTP requests by plane and status",
            requests.clone(),
        );
        registry.register("deploys", "Deploy attempts by outcome", deploys.clone());
        let async_events = Family::<AsyncLabels, Counter>::default();
        registry.register(
            "async_events",
            "Event (asynchronous) invocations by outcome: accepted, succeeded, retried, failed, released, taken_over",
            async_events.clone(),
        );
        let schedule_ticks = Counter::default();
        registry.register(
            "schedule_ticks",
            "Schedule ticks this node fired",
            schedule_ticks.clone(),
        );
        let artifact_fetches = Counter::default();
        registry.register(
            "artifact_fetches",
            "Component artifacts fetched from the object store to resolve a version",
            artifact_fetches.clone(),
        );
        let component_loads = Counter::default();
        registry.register(
            "component_loads",
            "Components loaded (compiled or read from the compile cache) to resolve a version",
            component_loads.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "connections_open",
            "Client connections open now",
            connections_open.clone(),
        );
        let connections_refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Client connections closed on accept, by reason",
            connections_refused.clone(),
        );
        let usage_overflowed = Counter::default();
        registry.register(
            "usage_overflowed_samples",
            "Metered invocations folded into a tenant's `overflow` usage series ([usage] max_series reached)",
            usage_overflowed.clone(),
        );
        let usage_dropped = Counter::default();
        registry.register(
            "usage_dropped_samples",
            "Metered invocations dropped (a tenant past [usage] max_series and its headroom: usage lost)",
            usage_dropped.clone(),
        );
        Metrics {
            registry,
            location: node_id.to_string(),
            tenants: TenantSlots {
                max: max_tenant_labels,
                known: RwLock::default(),
                used: tenant_labels,
            },
            invocations,
            latency,
            tokens,
            cost,
            requests,
            deploys,
            async_events,
            schedule_ticks,
            artifact_fetches,
            component_loads,
            connections_open,
            connections_refused,
            usage_overflowed,
            usage_dropped,
        }
    }

    /// The label values of `tenant` and one of its own names (a function, a model):
    /// themselves while the tenant has a slot, `other` for both past the bound.
    fn bounded(&self, tenant: &str, name: &str) -> (String, String) {
        if self.tenants.admit(tenant) {
            (tenant.to_string(), name.to_string())
        } else {
            (OTHER.to_string(), OTHER.to_string())
        }
    }

    /// The counter of `tenant`'s invocations of `function` by `trigger` that ended in
    /// `outcome` (`ok` or an error code), labels bounded.
    pub fn invocation(
        &self,
        tenant: &str,
        function: &str,
        trigger: &'static str,
        outcome: &'static str,
    ) -> Counter {
        let (tenant, function) = self.bounded(tenant, function);
        self.invocations
            .get_or_create(&InvocationLabels {
                tenant,
                function,
                trigger,
                outcome,
            })
            .clone()
    }

    /// The latency histogram of `tenant`'s invocations of `function` by `trigger`,
    /// labels bounded.
    pub fn latency(&self, tenant: &str, function: &str, trigger: &'static str) -> Histogram {
        let (tenant, function) = self.bounded(tenant, function);
        self.latency
            .get_or_create(&LatencyLabels {
                tenant,
                function,
                trigger,
            })
            .clone()
    }

    /// Counts one invocation's `helixflow:llm` tokens (`helixflow_tokens_total`): the
    /// prompt's and the completion's, for `model` (the model the OpenAI route served, or
    /// `none`). Nothing is recorded for zero tokens.
    pub fn usage_tokens(&self, tenant: &str, model: &str, prompt: u64, completion: u64) {
        if prompt == 0 && completion == 0 {
            return;
        }
        let (tenant, model) = self.bounded(tenant, model);
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            if n > 0 {
                self.tokens
                    .get_or_create(&TokenLabels {
                        tenant: tenant.clone(),
                        model: model.clone(),
                        kind,
                    })
                    .inc_by(n);
            }
        }
    }

    /// Adds `usd` to `tenant`'s cost (`helixflow_cost_usd_total`). A counter only goes
    /// up: a negative, NaN or infinite amount is ignored.
    pub fn add_cost(&self, tenant: &str, usd: f64) {
        if !usd.is_finite() || usd <= 0.0 {
            return;
        }
        let (tenant, _) = self.bounded(tenant, "");
        self.cost
            .get_or_create(&TenantLabels { tenant })
            .inc_by(usd);
    }

    /// Copies the usage meter's overflow and drop counts into
    /// `helixflow_usage_{overflowed,dropped}_samples_total`.
    pub fn observe_meter(&self, meter: &helixflow_usage::Meter) {
        for (counter, now) in [
            (&self.usage_overflowed, meter.overflowed()),
            (&self.usage_dropped, meter.dropped()),
        ] {
            // The meter's counts only grow: the largest seen is the count (no race).
            counter
                .inner()
                .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The `model` label of a loaded session's model (`{tenant}/{name}@{version}`, or a
    /// bare name from a model directory): itself for the `public` namespace, a bare name
    /// and a tenant with a label of its own; `other` past the tenant bound.
    fn session_label(&self, model: &str) -> String {
        match model.split_once('/') {
            Some((tenant, _)) if tenant != "public" && !self.tenants.admit(tenant) => {
                OTHER.to_string()
            }
            _ => model.to_string(),
        }
    }

    /// The registry plus the inference service's sessions: `model_session` (loaded
    /// sessions per model and the execution provider each actually runs on) and their
    /// counters, the causal LMs' schedulers, the KV cache and its budget. Sessions whose
    /// tenant is past the label bound add up under `model="other"`.
    pub fn encode_with_inference(
        &self,
        inf: Option<&std::sync::Arc<helixflow_nn::Inference>>,
    ) -> String {
        use std::collections::BTreeMap;
        use std::fmt::Write;
        let mut out = self.encode();
        let Some(inf) = inf else { return out };
        let sessions = inf.loaded();
        let loc = self.location.replace('"', "");
        let body = out.trim_end().strip_suffix("# EOF").map(str::to_string);
        if let Some(b) = body {
            out = b;
        }
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        // (model label, provider) -> [sessions, computes, errors, runs, batched requests]
        let mut by_model: BTreeMap<(String, &'static str), [u64; 5]> = BTreeMap::new();
        // model label -> [open sequences, decoded, prefill tokens, batched runs, prefix
        // lookups, prefix hits, prefix tokens, prefix cache bytes]
        let mut lms: BTreeMap<String, [u64; 8]> = BTreeMap::new();
        for s in &sessions {
            let label = esc(&self.session_label(&s.model));
            let row = by_model
                .entry((label.clone(), s.provider.as_str()))
                .or_default();
            for (sum, v) in
                row.iter_mut()
                    .zip([1, s.computes, s.errors, s.runs, s.batched_requests])
            {
                *sum = sum.saturating_add(v);
            }
            if let Some(l) = &s.lm {
                let row = lms.entry(label).or_default();
                for (sum, v) in row.iter_mut().zip([
                    l.open_sequences,
                    l.decode_rows,
                    l.prefill_tokens,
                    l.batched_runs,
                    l.prefix_lookups,
                    l.prefix_hits,
                    l.prefix_tokens,
                    l.prefix_cache_bytes,
                ]) {
                    *sum = sum.saturating_add(v);
                }
            }
        }
        for (i, (name, kind, help)) in [
            (
                "model_session",
                "gauge",
                "Loaded ONNX Runtime sessions (1 per model version and provider)",
            ),
            ("model_computes", "counter", "wasi:nn compute calls"),
            (
                "model_compute_errors",
                "counter",
                "wasi:nn compute calls that failed",
            ),
            (
                "model_runs",
                "counter",
                "ONNX Runtime runs (a batch is one run)",
            ),
            (
                "model_batched_requests",
                "counter",
                "compute calls that ran in a shared batch",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let _ = writeln!(out, "# HELP helixflow_{name} {help}.");
            let _ = writeln!(out, "# TYPE helixflow_{name} {kind}");
            let suffix = if kind == "counter" { "_total" } else { "" };
            for ((model, provider), v) in &by_model {
                let _ = writeln!(
                    out,
                    "helixflow_{name}{suffix}{{location=\"{loc}\",model=\"{model}\",provider=\"{provider}\"}} {}",
                    v[i]
                );
            }
        }
        // Dynamic batching made visible: runs by the compute calls they carried.
        let mut sizes: BTreeMap<(String, &'static str), (Vec<u64>, u64)> = BTreeMap::new();
        for s in &sessions {
            let label = esc(&self.session_label(&s.model));
            let (buckets, sum) = sizes.entry((label, s.provider.as_str())).or_default();
            buckets.resize(s.batch_sizes.len(), 0);
            for (b, v) in buckets.iter_mut().zip(&s.batch_sizes) {
                *b = b.saturating_add(*v);
            }
            *sum = sum.saturating_add(s.run_requests);
        }
        let _ = writeln!(
            out,
            "# HELP helixflow_model_batch_size Compute calls carried by each ONNX Runtime run (1 = unbatched)."
        );
        let _ = writeln!(out, "# TYPE helixflow_model_batch_size histogram");
        for ((model, provider), (buckets, sum)) in &sizes {
            let labels = format!("location=\"{loc}\",model=\"{model}\",provider=\"{provider}\"");
            let mut cumulative = 0u64;
            for (i, n) in buckets.iter().enumerate() {
                cumulative = cumulative.saturating_add(*n);
                let le = helixflow_nn::BATCH_BUCKETS
                    .get(i)
                    .map_or("+Inf".to_string(), |b| format!("{b}.0"));
                let _ = writeln!(
                    out,
                    "helixflow_model_batch_size_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(out, "helixflow_model_batch_size_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "helixflow_model_batch_size_count{{{labels}}} {cumulative}"
            );
        }
        // Causal LMs (helixflow:llm sequences): open sequences, decode rows, KV bytes.
        for (i, (name, kind, help)) in [
            (
                "llm_open_sequences",
                "gauge",
                "Generation sequences holding a KV cache",
            ),
            (
                "llm_decoded_tokens",
                "counter",
                "tokens decoded (one row of a decode run each)",
            ),
            ("llm_prefill_tokens", "counter", "prompt tokens run"),
            (
                "llm_batched_runs",
                "counter",
                "decode runs that carried more than one sequence",
            ),
            (
                "llm_prefix_cache_lookups",
                "counter",
                "prompts of new sequences looked up in the prefix cache",
            ),
            (
                "llm_prefix_cache_hits",
                "counter",
                "prompts that started from a cached prefix of the same tenant",
            ),
            (
                "llm_prefix_cache_tokens",
                "counter",
                "prompt tokens taken from the prefix cache instead of being run",
            ),
            (
                "llm_prefix_cache_bytes",
                "gauge",
                "bytes the prefix cache holds",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let _ = writeln!(out, "# HELP helixflow_{name} {help}.");
            let _ = writeln!(out, "# TYPE helixflow_{name} {kind}");
            let suffix = if kind == "counter" { "_total" } else { "" };
            for (model, v) in &lms {
                let _ = writeln!(
                    out,
                    "helixflow_{name}{suffix}{{location=\"{loc}\",model=\"{model}\"}} {}",
                    v[i]
                );
            }
        }
        let (kv_used, kv_limit) = inf.kv_bytes();
        for (name, help, v) in [
            (
                "llm_kv_cache_bytes",
                "KV-cache bytes held by open sequences and prefix caches on this node",
                kv_used,
            ),
            (
                "llm_kv_cache_limit_bytes",
                "The node's KV-cache budget ([inference] max_kv_cache_mb)",
                kv_limit,
            ),
        ] {
            let _ = writeln!(out, "# HELP helixflow_{name} {help}.");
            let _ = writeln!(out, "# TYPE helixflow_{name} gauge");
            let _ = writeln!(out, "helixflow_{name}{{location=\"{loc}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP helixflow_model_provider_fallbacks Execution providers skipped at session creation."
        );
        let _ = writeln!(out, "# TYPE helixflow_model_provider_fallbacks counter");
        let _ = writeln!(
            out,
            "helixflow_model_provider_fallbacks_total{{location=\"{loc}\"}} {}",
            inf.fallbacks.load(std::sync::atomic::Ordering::Relaxed)
        );
        out.push_str("# EOF\n");
        out
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `helixflow_egress_denied_total{reason}`: guests' outbound HTTP requests the runtime
/// refused, read from its counters at each scrape. `reason` is `not_allowed` (not on
/// the function's allow-list) or `private_address` (resolved to a non-public address
/// the node does not opt in); never the tenant-chosen host, so cardinality stays fixed.
#[derive(Debug)]
struct EgressCollector(std::sync::Arc<helixflow_runtime::EgressStats>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EgressLabels {
    reason: &'static str,
}

impl prometheus_client::collector::Collector for EgressCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::TypedMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let mut family = encoder.encode_descriptor(
            "egress_denied",
            "Outbound HTTP requests from functions refused, by reason: not_allowed (host not on the function's allow-list), private_address (resolves to a non-public address the node does not allow)",
            None,
            ConstCounter::<u64>::TYPE,
        )?;
        for (reason, n) in self.0.denials() {
            ConstCounter::new(n).encode(family.encode_family(&EgressLabels { reason })?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Also export the runtime's egress refusal counters (`helixflow_egress_denied_total`).
    pub fn with_egress(mut self, stats: std::sync::Arc<helixflow_runtime::EgressStats>) -> Self {
        self.registry
            .register_collector(Box::new(EgressCollector(stats)));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("helixflow_{family}")))
            .collect()
    }

    #[test]
    fn tenants_past_the_bound_are_other_with_their_names() {
        let m = Metrics::new("fra", 2);
        for t in ["acme", "beta", "acme", "gamma", "delta"] {
            m.invocation(t, &format!("{t}-fn"), "http", "ok").inc();
            m.latency(t, &format!("{t}-fn"), "http").observe(0.01);
            m.usage_tokens(t, &format!("{t}-model"), 3, 2);
            m.add_cost(t, 0.5);
        }
        let text = m.encode();
        let inv = lines_of(&text, "invocations_total");
        assert_eq!(inv.len(), 3, "acme, beta, other: {inv:?}");
        assert!(
            inv.iter().any(|l| l.contains("tenant=\"acme\"")
                && l.contains("function=\"acme-fn\"")
                && l.ends_with(" 2")),
            "{inv:?}"
        );
        assert!(
            inv.iter().any(|l| l.contains("tenant=\"other\"")
                && l.contains("function=\"other\"")
                && l.ends_with(" 2")),
            "gamma and delta add up under other: {inv:?}"
        );
        for name in ["gamma", "delta"] {
            assert!(!text.contains(name), "{name} is never a label:\n{text}");
        }
        let tokens = lines_of(&text, "tokens_total");
        assert_eq!(tokens.len(), 6, "3 tenants x prompt/completion: {tokens:?}");
        assert!(
            tokens.iter().any(|l| l.contains("tenant=\"other\"")
                && l.contains("model=\"other\"")
                && l.contains("kind=\"prompt\"")
                && l.ends_with(" 6")),
            "{tokens:?}"
        );
        let cost = lines_of(&text, "cost_usd_total");
        assert!(
            cost.iter()
                .any(|l| l.contains("tenant=\"acme\"") && l.ends_with(" 1.0")),
            "{cost:?}"
        );
        assert!(
            cost.iter()
                .any(|l| l.contains("tenant=\"other\"") && l.ends_with(" 1.0")),
            "{cost:?}"
        );
        assert!(
            text.contains("helixflow_metric_tenant_labels{location=\"fra\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("helixflow_metric_tenant_labels_limit{location=\"fra\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn zero_tokens_and_bad_costs_record_nothing() {
        let m = Metrics::new("fra", 1);
        m.usage_tokens("acme", "m", 0, 0);
        m.add_cost("beta", -1.0);
        m.add_cost("beta", f64::NAN);
        m.add_cost("beta", f64::INFINITY);
        let text = m.encode();
        assert!(lines_of(&text, "tokens_total").is_empty(), "{text}");
        assert!(lines_of(&text, "cost_usd_total").is_empty(), "{text}");
        // Nothing recorded: no slot taken, the next tenant still gets its own label.
        m.add_cost("gamma", 0.25);
        assert!(
            m.encode()
                .contains("helixflow_cost_usd_total{location=\"fra\",tenant=\"gamma\"} 0.25"),
            "{}",
            m.encode()
        );
        let m = Metrics::new("fra", 0);
        m.invocation("acme", "f", "event", "ok").inc();
        assert!(m.encode().contains("tenant=\"other\""));
    }

    #[test]
    fn latency_buckets_reach_slow_llm_calls() {
        let m = Metrics::new("fra", 50);
        m.latency("acme", "chat", "http").observe(40.0);
        let text = m.encode();
        let buckets = lines_of(&text, "invocation_duration_seconds_bucket");
        assert_eq!(buckets.len(), LATENCY_BUCKETS + 1, "{buckets:?}");
        let finite_with_it = buckets
            .iter()
            .filter(|l| !l.contains("le=\"+Inf\"") && l.ends_with(" 1"))
            .count();
        assert!(
            finite_with_it >= 1,
            "40 s lands in a finite bucket: {buckets:?}"
        );
    }

    #[test]
    fn the_meter_counts_are_copied_monotonically() {
        let m = Metrics::new("fra", 50);
        let meter = helixflow_usage::Meter::new("fra~t", 1);
        let dims = |f: &str| helixflow_usage::Dims::default().with("function", f.to_string());
        for f in ["a", "b", "c"] {
            meter.invocation("acme", dims(f), &helixflow_usage::Sample::default());
        }
        m.observe_meter(&meter);
        m.observe_meter(&meter);
        let text = m.encode();
        assert!(
            text.contains("helixflow_usage_overflowed_samples_total{location=\"fra\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("helixflow_usage_dropped_samples_total{location=\"fra\"} 0"),
            "{text}"
        );
    }
}
