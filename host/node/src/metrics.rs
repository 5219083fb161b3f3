//! Prometheus metrics (`GET /metrics`, OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvocationLabels {
    pub tenant: String,
    pub function: String,
    pub trigger: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub tenant: String,
    pub function: String,
    pub trigger: &'static str,
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

fn latency_histogram() -> Histogram {
    // 50 us .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    location: String,
    pub invocations: Family<InvocationLabels, Counter>,
    pub latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
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
    pub connections_open: prometheus_client::metrics::gauge::Gauge,
    /// Client connections closed at once on accept, by reason.
    pub connections_refused: Family<RefusedLabels, Counter>,
}

impl Metrics {
    pub fn new(node_id: &str) -> Self {
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
            "Function invocations by tenant, function, trigger and outcome (ok or an error code)",
            invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Invocation latency (instantiate + run), by tenant, function and trigger",
            latency.clone(),
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
        let connections_open = prometheus_client::metrics::gauge::Gauge::default();
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
        Metrics {
            registry,
            location: node_id.to_string(),
            invocations,
            latency,
            requests,
            deploys,
            async_events,
            schedule_ticks,
            artifact_fetches,
            component_loads,
            connections_open,
            connections_refused,
        }
    }

    /// The registry plus the inference service's sessions: one `model_session` line per
    /// loaded model with the execution provider it actually runs on, and its counters.
    pub fn encode_with_inference(
        &self,
        inf: Option<&std::sync::Arc<helixflow_nn::Inference>>,
    ) -> String {
        let mut out = self.encode();
        let Some(inf) = inf else { return out };
        let sessions = inf.loaded();
        let loc = self.location.replace('"', "");
        let body = out.trim_end().strip_suffix("# EOF").map(str::to_string);
        if let Some(b) = body {
            out = b;
        }
        use std::fmt::Write;
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(
            out,
            "# HELP helixflow_model_session Loaded ONNX Runtime sessions (1 per model version and provider)."
        );
        let _ = writeln!(out, "# TYPE helixflow_model_session gauge");
        for s in &sessions {
            let _ = writeln!(
                out,
                "helixflow_model_session{{location=\"{loc}\",model=\"{}\",provider=\"{}\"}} 1",
                esc(&s.model),
                s.provider.as_str()
            );
        }
        for (name, help, get) in [
            (
                "model_computes",
                "wasi:nn compute calls",
                (|s: &helixflow_nn::LoadedInfo| s.computes) as fn(&helixflow_nn::LoadedInfo) -> u64,
            ),
            (
                "model_compute_errors",
                "wasi:nn compute calls that failed",
                |s| s.errors,
            ),
            (
                "model_runs",
                "ONNX Runtime runs (a batch is one run)",
                |s| s.runs,
            ),
            (
                "model_batched_requests",
                "compute calls that ran in a shared batch",
                |s| s.batched_requests,
            ),
        ] {
            let _ = writeln!(out, "# HELP helixflow_{name} {help}.");
            let _ = writeln!(out, "# TYPE helixflow_{name} counter");
            for s in &sessions {
                let _ = writeln!(
                    out,
                    "helixflow_{name}_total{{location=\"{loc}\",model=\"{}\",provider=\"{}\"}} {}",
                    esc(&s.model),
                    s.provider.as_str(),
                    get(s)
                );
            }
        }
        // Causal LMs (helixflow:llm sequences): open sequences, decode rows, KV bytes.
        let lms: Vec<(&helixflow_nn::LoadedInfo, &helixflow_nn::LmInfo)> = sessions
            .iter()
            .filter_map(|s| s.lm.as_ref().map(|l| (s, l)))
            .collect();
        let _ = writeln!(
            out,
            "# HELP helixflow_llm_open_sequences Generation sequences holding a KV cache."
        );
        let _ = writeln!(out, "# TYPE helixflow_llm_open_sequences gauge");
        for (s, l) in &lms {
            let _ = writeln!(
                out,
                "helixflow_llm_open_sequences{{location=\"{loc}\",model=\"{}\"}} {}",
                esc(&s.model),
                l.open_sequences
            );
        }
        for (name, help, get) in [
            (
                "llm_decoded_tokens",
                "tokens decoded (one row of a decode run each)",
                (|l: &helixflow_nn::LmInfo| l.decode_rows) as fn(&helixflow_nn::LmInfo) -> u64,
            ),
            ("llm_prefill_tokens", "prompt tokens run", |l| {
                l.prefill_tokens
            }),
            (
                "llm_batched_runs",
                "decode runs that carried more than one sequence",
                |l| l.batched_runs,
            ),
        ] {
            let _ = writeln!(out, "# HELP helixflow_{name} {help}.");
            let _ = writeln!(out, "# TYPE helixflow_{name} counter");
            for (s, l) in &lms {
                let _ = writeln!(
                    out,
                    "helixflow_{name}_total{{location=\"{loc}\",model=\"{}\"}} {}",
                    esc(&s.model),
                    get(l)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP helixflow_llm_kv_cache_bytes KV-cache bytes held by open sequences on this node."
        );
        let _ = writeln!(out, "# TYPE helixflow_llm_kv_cache_bytes gauge");
        let _ = writeln!(
            out,
            "helixflow_llm_kv_cache_bytes{{location=\"{loc}\"}} {}",
            inf.kv_bytes().0
        );
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
