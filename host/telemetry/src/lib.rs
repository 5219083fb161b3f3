//! # helixflow-telemetry: W3C trace context and OTLP span export
//!
//! * [`TraceContext`]: `traceparent` / `tracestate` parsed and formatted by the W3C
//!   rules (invalid input is "no context", never a panic or an error for a request).
//! * [`Telemetry`]: the OpenTelemetry tracer behind HelixFlow's `tracing` spans
//!   (`tracing-opentelemetry`): the api's `request` span, the node's `invocation` span,
//!   `wasi_nn.compute` and `llm.feed` become OTLP spans of one trace, exported over
//!   OTLP/HTTP (protobuf) in batches from a background thread when an endpoint is
//!   configured. The tracer is installed either way, so trace context is always
//!   propagated: [`set_parent`] makes a span the child of an incoming `traceparent`,
//!   [`current`] gives the context to hand on (into a guest's request, onto its
//!   outbound requests).
//!
//! Exporting never blocks a request: a finished span goes into a bounded queue
//! (full: dropped), the batch thread sends it; a collector that is down costs one
//! warning (and one line when it is back).

mod context;
mod export;

pub use context::{TRACEPARENT, TRACESTATE, TraceContext, TraceContextError};

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use std::time::Duration;
use tracing::{Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// Why telemetry could not start (a configuration problem: `serve` stops with it).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("otlp_endpoint {0:?} is not an http:// or https:// URL")]
    Endpoint(String),
    #[error("OTLP over HTTPS: {0}")]
    Tls(String),
    #[error("the OTLP exporter: {0}")]
    Exporter(String),
    #[error("OTLP export needs a tokio runtime")]
    NoRuntime,
}

/// How spans are sampled and exported (`[telemetry]` in the node config).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (`/v1/traces` is appended
    /// unless the path already ends with it). Empty: no export (trace context is
    /// still accepted and propagated).
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// `service.instance.id` (the node id).
    pub instance_id: String,
    /// Share of new traces sampled (0.0..=1.0); a parent's sampled flag wins.
    pub sample_ratio: f64,
    /// Finished spans waiting for export; past it new spans are dropped.
    pub max_queue_size: usize,
    /// Spans per export request.
    pub max_export_batch_size: usize,
    /// How often queued spans are sent (sooner when a batch is full).
    pub export_interval: Duration,
    /// One export request (connect + send + answer), retries included.
    pub export_timeout: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            service_name: "helixflow".into(),
            instance_id: String::new(),
            sample_ratio: 1.0,
            max_queue_size: 2048,
            max_export_batch_size: 512,
            export_interval: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(10_000),
        }
    }
}

/// The OTLP/HTTP traces URL for a configured endpoint.
pub fn traces_url(endpoint: &str) -> Result<String, TelemetryError> {
    let bad = || TelemetryError::Endpoint(endpoint.to_string());
    let uri: http::Uri = endpoint.parse().map_err(|_| bad())?;
    let scheme = match uri.scheme_str() {
        Some(s @ ("http" | "https")) => s,
        _ => return Err(bad()),
    };
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') {
        return Err(bad());
    }
    let path = uri.path().trim_end_matches('/');
    Ok(if path.ends_with("/v1/traces") {
        format!("{scheme}://{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}/v1/traces")
    })
}

/// The tracer provider: sampling always, OTLP export when configured.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::Tracer,
    export_url: Option<String>,
    shutdown_timeout: Duration,
}

impl Telemetry {
    /// Builds the tracer. With an endpoint, spans are exported through the current
    /// tokio runtime (call it inside one).
    pub fn start(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let ratio = if cfg.sample_ratio.is_finite() {
            cfg.sample_ratio.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let mut resource = Resource::builder_empty()
            .with_service_name(cfg.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if !cfg.instance_id.is_empty() {
            resource = resource.with_attribute(KeyValue::new(
                "service.instance.id",
                cfg.instance_id.clone(),
            ));
        }
        let mut builder = SdkTracerProvider::builder()
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio,
            ))))
            .with_resource(resource.build());
        let export_url = if cfg.otlp_endpoint.trim().is_empty() {
            None
        } else {
            let url = traces_url(cfg.otlp_endpoint.trim())?;
            let runtime =
                tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
            let client = export::OtlpHttp::new(&url, cfg.export_timeout, runtime)?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_endpoint(url.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(cfg.export_timeout)
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
            let queue = cfg.max_queue_size.max(1);
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(queue)
                .with_max_export_batch_size(cfg.max_export_batch_size.clamp(1, queue))
                .with_scheduled_delay(cfg.export_interval)
                .build();
            builder = builder.with_span_processor(
                BatchSpanProcessor::builder(exporter)
                    .with_batch_config(batch)
                    .build(),
            );
            Some(url)
        };
        let provider = builder.build();
        let tracer = provider.tracer("helixflow");
        Ok(Telemetry {
            provider,
            tracer,
            export_url,
            // The last batch: one export (with its retries) and a little slack.
            shutdown_timeout: cfg.export_timeout + Duration::from_secs(1),
        })
    }

    /// Where spans go (`None`: nowhere, context is only propagated).
    pub fn export_url(&self) -> Option<&str> {
        self.export_url.as_deref()
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans. It sees
    /// HelixFlow's INFO spans whatever the log filter says (so trace context flows at
    /// any log level); when exporting, also the WARN and ERROR events inside them
    /// (as span events). Without export only the api's and the node's spans are
    /// tracked: they are all propagation needs.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let exporting = self.export_url.is_some();
        let enabled = move |m: &tracing::Metadata<'_>| {
            if m.is_span() {
                *m.level() <= Level::INFO
                    && if exporting {
                        m.target().starts_with("helixflow")
                    } else {
                        m.target().starts_with("helixflow_api")
                            || m.target().starts_with("helixflow_node")
                    }
            } else {
                exporting && *m.level() <= Level::WARN
            }
        };
        // (A metadata-only filter: its answer is cached per callsite.) It never wants
        // more than INFO, and says so: without that hint the whole subscriber's maximum
        // level is TRACE, so `log` records of dependencies (wasmtime logs at trace level
        // as it instantiates) were built and filtered on every request.
        let filter = tracing_subscriber::filter::filter_fn(enabled)
            .with_max_level_hint(tracing::level_filters::LevelFilter::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(self.tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(filter)
    }

    /// Exports what is still queued and stops the exporter (waits at most one export
    /// timeout; a collector that is down delays shutdown by no more).
    pub async fn shutdown(self) {
        let exporting = self.export_url.is_some();
        let timeout = self.shutdown_timeout;
        let provider = self.provider;
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) if exporting => {
                tracing::warn!(error = %e, "OTLP exporter did not flush at shutdown")
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::warn!(error = %e, "OTLP exporter shutdown failed"),
        }
    }
}

/// Makes `span` the child of `parent` (an incoming `traceparent`). Call it before the
/// span is first entered; without the telemetry layer it does nothing.
pub fn set_parent(span: &tracing::Span, parent: &TraceContext) {
    let cx = opentelemetry::Context::new().with_remote_span_context(parent.to_span_context());
    // LayerNotFound (no telemetry installed) or a disabled span: nothing to link.
    let _ = span.set_parent(cx);
}

/// The trace context of the current span (what to hand on to a callee), if the
/// telemetry layer tracks it.
pub fn current() -> Option<TraceContext> {
    of(&tracing::Span::current())
}

/// The trace context of `span`, if the telemetry layer tracks it.
pub fn of(span: &tracing::Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    TraceContext::from_span_context(cx.span().span_context())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn endpoints_become_traces_urls() {
        for (given, want) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
            (
                "https://otel.example/otlp",
                "https://otel.example/otlp/v1/traces",
            ),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ] {
            assert_eq!(traces_url(given).unwrap(), want, "{given}");
        }
        for bad in [
            "",
            "127.0.0.1:4318",
            "ftp://x",
            "http://",
            "http://u:p@host:1",
            "not a url",
        ] {
            assert!(traces_url(bad).is_err(), "{bad:?}");
        }
    }

    /// A span made a child of a remote parent gets the parent's trace id; a span
    /// inside it is its child; `current` hands on the innermost one.
    #[test]
    fn spans_follow_the_incoming_parent_without_an_exporter() {
        let t = Telemetry::start(&TelemetryConfig::default()).unwrap();
        assert_eq!(t.export_url(), None);
        let subscriber = tracing_subscriber::registry().with(t.layer());
        tracing::subscriber::with_default(subscriber, || {
            let parent = TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Some("k=v"),
            )
            .unwrap();
            // Targets outside the api and the node are not tracked without export.
            let request = tracing::info_span!(target: "helixflow_api", "request");
            set_parent(&request, &parent);
            let r = request.enter();
            let rc = current().unwrap();
            assert_eq!(rc.trace_id(), parent.trace_id());
            assert_ne!(rc.span_id(), parent.span_id());
            assert!(rc.sampled(), "a sampled parent is honored");
            assert_eq!(rc.tracestate(), Some("k=v"));
            let inv = tracing::info_span!(target: "helixflow_node::invoke", "invocation");
            let i = inv.enter();
            let ic = current().unwrap();
            assert_eq!(ic.trace_id(), parent.trace_id());
            assert_ne!(ic.span_id(), rc.span_id());
            drop(i);
            drop(r);
            // A new span with no parent starts a new trace.
            let other = tracing::info_span!(target: "helixflow_api", "request");
            let oc = of(&other).unwrap();
            assert_ne!(oc.trace_id(), parent.trace_id());
            let untracked = tracing::info_span!(target: "helixflow_nn", "x");
            assert_eq!(of(&untracked), None);
        });
    }

    #[test]
    fn an_unsampled_parent_is_not_sampled_and_ratio_zero_samples_no_root() {
        let t = Telemetry::start(&TelemetryConfig {
            sample_ratio: 0.0,
            ..TelemetryConfig::default()
        })
        .unwrap();
        let subscriber = tracing_subscriber::registry().with(t.layer());
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!(target: "helixflow_api", "request");
            let c = of(&root).unwrap();
            assert!(!c.sampled());
            let sampled = TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            )
            .unwrap();
            let child = tracing::info_span!(target: "helixflow_api", "request");
            set_parent(&child, &sampled);
            assert!(of(&child).unwrap().sampled(), "the parent's flag wins");
            let unsampled = TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                None,
            )
            .unwrap();
            let child = tracing::info_span!(target: "helixflow_api", "request");
            set_parent(&child, &unsampled);
            assert!(!of(&child).unwrap().sampled());
        });
    }

    #[test]
    fn without_the_layer_there_is_no_context() {
        let span = tracing::info_span!("request");
        set_parent(
            &span,
            &TraceContext::parse(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            )
            .unwrap(),
        );
        assert_eq!(of(&span), None);
        assert_eq!(current(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_collector_costs_nothing_but_time_at_shutdown() {
        // A port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let t = Telemetry::start(&TelemetryConfig {
            otlp_endpoint: format!("http://127.0.0.1:{port}"),
            export_timeout: Duration::from_millis(300),
            export_interval: Duration::from_millis(50),
            ..TelemetryConfig::default()
        })
        .unwrap();
        assert_eq!(
            t.export_url(),
            Some(format!("http://127.0.0.1:{port}/v1/traces").as_str())
        );
        let subscriber = tracing_subscriber::registry().with(t.layer());
        let started = std::time::Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..100 {
                let s = tracing::info_span!(target: "helixflow_api", "request");
                let _e = s.enter();
            }
        });
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "ending spans does not wait for the collector: {:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        t.shutdown().await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "shutdown is bounded by the export timeout: {:?}",
            started.elapsed()
        );
    }
}
