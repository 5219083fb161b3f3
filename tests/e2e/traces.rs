//! Distributed tracing end to end (issue 15): W3C `traceparent` accepted and passed on,
//! spans request -> invocation -> wasi:nn compute exported over OTLP/HTTP.
//!
//! The collector is this test's own hyper server on loopback; it decodes every
//! `ExportTraceServiceRequest` with `opentelemetry-proto`'s prost types (real
//! protobufs; a body that does not decode is recorded as an error and fails the test).

use crate::lambda_api::LOOPBACK_EGRESS;
use base64::Engine as _;
use bytes::Bytes;
use helixflow_e2e::{Api, Http, Node, Resp, admin_key};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The caller's trace: a trace id and the caller's own span id.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

/// One received span, ids in lowercase hex.
#[derive(Debug, Clone)]
struct RecvSpan {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    trace_state: String,
    attrs: HashMap<String, String>,
    service: String,
}

#[derive(Default)]
struct Received {
    spans: Vec<RecvSpan>,
    /// Requests that were not a decodable OTLP/HTTP protobuf export.
    errors: Vec<String>,
    requests: usize,
}

fn value_string(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// An OTLP/HTTP trace receiver on loopback.
struct Collector {
    port: u16,
    got: Arc<Mutex<Received>>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Received::default()));
        let g = got.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let g = g.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let g = g.clone();
                        async move {
                            let ok = req.method() == http::Method::POST
                                && req.uri().path() == "/v1/traces"
                                && req
                                    .headers()
                                    .get(http::header::CONTENT_TYPE)
                                    .is_some_and(|v| v == "application/x-protobuf");
                            let what =
                                format!("{} {} {:?}", req.method(), req.uri(), req.headers());
                            let body = req.into_body().collect().await.map(|b| b.to_bytes());
                            let mut got = g.lock().unwrap();
                            got.requests += 1;
                            let decoded = match (ok, body) {
                                (true, Ok(b)) => {
                                    ExportTraceServiceRequest::decode(b).map_err(|e| {
                                        format!("{what}: not an ExportTraceServiceRequest: {e}")
                                    })
                                }
                                (false, _) => {
                                    Err(format!("not an OTLP/HTTP protobuf export: {what}"))
                                }
                                (_, Err(e)) => Err(format!("{what}: body: {e}")),
                            };
                            let status = match decoded {
                                Ok(export) => {
                                    for rs in export.resource_spans {
                                        let service = rs
                                            .resource
                                            .as_ref()
                                            .and_then(|r| {
                                                r.attributes
                                                    .iter()
                                                    .find(|kv| kv.key == "service.name")
                                            })
                                            .map(|kv| value_string(&kv.value))
                                            .unwrap_or_default();
                                        for ss in rs.scope_spans {
                                            for s in ss.spans {
                                                got.spans.push(RecvSpan {
                                                    name: s.name,
                                                    trace_id: hex::encode(&s.trace_id),
                                                    span_id: hex::encode(&s.span_id),
                                                    parent: hex::encode(&s.parent_span_id),
                                                    trace_state: s.trace_state,
                                                    attrs: s
                                                        .attributes
                                                        .iter()
                                                        .map(|kv| {
                                                            (
                                                                kv.key.clone(),
                                                                value_string(&kv.value),
                                                            )
                                                        })
                                                        .collect(),
                                                    service: service.clone(),
                                                });
                                            }
                                        }
                                    }
                                    200
                                }
                                Err(e) => {
                                    got.errors.push(e);
                                    400
                                }
                            };
                            let body = ExportTraceServiceResponse::default().encode_to_vec();
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header(http::header::CONTENT_TYPE, "application/x-protobuf")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Collector { port, got }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> Vec<RecvSpan> {
        let g = self.got.lock().unwrap();
        assert!(g.errors.is_empty(), "bad exports: {:#?}", g.errors);
        g.spans.clone()
    }

    /// Waits (at most 20 s) until `done` holds for the spans received so far.
    async fn wait_for(&self, what: &str, done: impl Fn(&[RecvSpan]) -> bool) -> Vec<RecvSpan> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within 20 s; received: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(collector: &Collector, extra: &str) -> String {
    format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"hf-traces-test\"\nexport_interval_ms = 100\n{extra}",
        collector.endpoint()
    )
}

/// The one span named `name` in `trace`.
fn one<'a>(spans: &'a [RecvSpan], trace: &str, name: &str) -> &'a RecvSpan {
    let found: Vec<&RecvSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} span in trace {trace}: {spans:#?}"
    );
    found[0]
}

fn has(spans: &[RecvSpan], trace: &str, name: &str) -> bool {
    spans.iter().any(|s| s.trace_id == trace && s.name == name)
}

/// The request span whose `request_id` is the one a response carried.
fn request_span<'a>(spans: &'a [RecvSpan], r: &Resp) -> Option<&'a RecvSpan> {
    let id = r.header("x-helixflow-request-id")?;
    spans
        .iter()
        .find(|s| s.name == "request" && s.attrs.get("request_id").map(String::as_str) == Some(id))
}

fn probe_spec() -> serde_json::Value {
    let data: Vec<u8> = (0..6u32)
        .flat_map(|i| (i as f32 + 0.5).to_le_bytes())
        .collect();
    json!({
        "model": "id-fp32",
        "inputs": [{
            "name": "x",
            "type": "FP32",
            "dims": [2, 3],
            "data_b64": base64::engine::general_purpose::STANDARD.encode(&data),
        }],
    })
}

/// A request with the caller's `traceparent` through `POST /invoke` to a function that
/// runs a model: the request span is the caller's span's child, the invocation the
/// request's, the model compute the invocation's, all in the caller's trace, with the
/// tenant, function, version, trigger and model on them and no secret anywhere. A
/// request without (or with an invalid) `traceparent` starts a trace of its own.
#[tokio::test(flavor = "multi_thread")]
async fn request_invocation_and_model_compute_spans_join_the_callers_trace() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(&config(&collector, "")));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    let r = crate::nn::push(&api, "acme", "id-fp32", "identity_fp32.onnx", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());

    let tp = traceparent();
    let r = api
        .http
        .request(
            "POST",
            &api.url("/invoke/acme/nn-probe"),
            &[("traceparent", &tp), ("tracestate", "vendor=abc")],
            probe_spec().to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let spans = collector
        .wait_for(
            "request/invocation/compute spans of the caller's trace",
            |s| {
                has(s, TRACE, "request")
                    && has(s, TRACE, "invocation")
                    && has(s, TRACE, "wasi_nn.compute")
            },
        )
        .await;
    let request = one(&spans, TRACE, "request");
    let invocation = one(&spans, TRACE, "invocation");
    let compute = one(&spans, TRACE, "wasi_nn.compute");
    assert_eq!(
        request.parent, CALLER_SPAN,
        "the request span is the caller's child"
    );
    assert_ne!(request.span_id, CALLER_SPAN);
    assert_eq!(
        invocation.parent, request.span_id,
        "invocation is the request's child"
    );
    assert_eq!(
        compute.parent, invocation.span_id,
        "compute is the invocation's child"
    );
    assert_eq!(
        request.trace_state, "vendor=abc",
        "tracestate is carried through"
    );
    assert_eq!(request.service, "hf-traces-test");
    assert_eq!(
        request.attrs.get("request_id").map(String::as_str),
        r.header("x-helixflow-request-id")
    );
    for (k, v) in [
        ("tenant", "acme"),
        ("function", "nn-probe"),
        ("version", "1"),
        ("trigger", "event"),
    ] {
        assert_eq!(
            invocation.attrs.get(k).map(String::as_str),
            Some(v),
            "{k}: {invocation:#?}"
        );
    }
    assert_eq!(
        compute.attrs.get("tenant").map(String::as_str),
        Some("acme")
    );
    assert!(
        compute
            .attrs
            .get("model")
            .is_some_and(|m| m.contains("id-fp32")),
        "{compute:#?}"
    );
    assert_eq!(
        compute.attrs.get("provider").map(String::as_str),
        Some("cpu")
    );

    // No traceparent, and an invalid one: a new trace each, the request still served.
    let plain = api
        .http
        .request(
            "POST",
            &api.url("/invoke/acme/nn-probe"),
            &[],
            probe_spec().to_string(),
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let zero = format!("00-{}-{CALLER_SPAN}-01", "0".repeat(32));
    let invalid = api
        .http
        .request(
            "POST",
            &api.url("/invoke/acme/nn-probe"),
            &[("traceparent", &zero)],
            probe_spec().to_string(),
        )
        .await;
    assert_eq!(
        invalid.status,
        200,
        "an invalid traceparent is never an error: {}",
        invalid.text()
    );
    let spans = collector
        .wait_for("the request spans of the untraced requests", |s| {
            request_span(s, &plain).is_some() && request_span(s, &invalid).is_some()
        })
        .await;
    let mut traces = vec![TRACE.to_string()];
    for r in [&plain, &invalid] {
        let s = request_span(&spans, r).unwrap();
        assert_eq!(s.parent, "", "a root span: {s:#?}");
        assert_eq!(s.trace_id.len(), 32);
        assert_ne!(s.trace_id, "0".repeat(32));
        assert!(!traces.contains(&s.trace_id), "a trace of its own: {s:#?}");
        traces.push(s.trace_id.clone());
    }

    // Never a key or a secret in what is exported.
    let spans = collector.spans();
    for s in &spans {
        for v in s.attrs.values() {
            assert!(!v.contains(admin_key()), "a secret in {s:#?}");
            assert!(!v.contains("hfk_"), "an API key in {s:#?}");
        }
    }
}

/// A loopback server that answers each request with its `traceparent|tracestate`.
async fn header_echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("none")
                            .to_string()
                    };
                    let body = format!("{}|{}", h("traceparent"), h("tracestate"));
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        body,
                    ))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    port
}

async fn deploy_chaos_calling(api: &Api<'_>, port: u16) {
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/acme/functions/chaos/config"),
            json!({"allow_outbound": [format!("127.0.0.1:{port}")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Splits `00-{trace}-{span}-{flags}`.
fn fields(tp: &str) -> (String, String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    assert_eq!(p.len(), 4, "a traceparent: {tp:?}");
    assert_eq!(p[0], "00", "{tp:?}");
    (p[1].to_string(), p[2].to_string(), p[3].to_string())
}

/// The guest's incoming request carries the invocation span's `traceparent` (in place
/// of the client's), and the host adds it to the guest's outbound wasi:http request;
/// `tracestate` goes along. With export on, the parent id both see is the exported
/// invocation span's id.
#[tokio::test(flavor = "multi_thread")]
async fn the_guest_and_its_outbound_requests_get_the_invocation_trace_context() {
    let collector = Collector::start().await;
    let echo = header_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(&config(&collector, LOOPBACK_EGRESS)));
    let api = Api::new(&node);
    deploy_chaos_calling(&api, echo).await;
    let tp = traceparent();
    let headers = [("traceparent", tp.as_str()), ("tracestate", "vendor=abc")];

    let seen = api
        .http
        .request(
            "GET",
            &api.url("/acme/chaos/header?name=traceparent"),
            &headers,
            "",
        )
        .await;
    assert_eq!(
        seen.status,
        200,
        "the guest sees a traceparent: {}",
        seen.text()
    );
    let (trace, guest_parent, flags) = fields(seen.text().trim());
    assert_eq!((trace.as_str(), flags.as_str()), (TRACE, "01"));
    assert_ne!(
        guest_parent, CALLER_SPAN,
        "the client's header was replaced"
    );
    let state = api
        .http
        .request(
            "GET",
            &api.url("/acme/chaos/header?name=tracestate"),
            &headers,
            "",
        )
        .await;
    assert_eq!((state.status, state.text().as_str()), (200, "vendor=abc"));

    let out = api
        .http
        .request(
            "GET",
            &api.url(&format!("/acme/chaos/fetch?url=http://127.0.0.1:{echo}/x")),
            &headers,
            "",
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.text());
    let text = out.text();
    let echoed = text
        .strip_prefix("200 ")
        .unwrap_or_else(|| panic!("{text}"));
    let (otp, ostate) = echoed.split_once('|').unwrap();
    let (otrace, out_parent, oflags) = fields(otp);
    assert_eq!(
        (otrace.as_str(), oflags.as_str()),
        (TRACE, "01"),
        "{echoed}"
    );
    assert_ne!(out_parent, CALLER_SPAN);
    assert_eq!(ostate, "vendor=abc");

    // Both parents are the exported invocation spans of their requests.
    let spans = collector
        .wait_for("three invocation spans", |s| {
            s.iter()
                .filter(|s| s.trace_id == TRACE && s.name == "invocation")
                .count()
                == 3
        })
        .await;
    let invocations: Vec<&RecvSpan> = spans
        .iter()
        .filter(|s| s.trace_id == TRACE && s.name == "invocation")
        .collect();
    for parent in [&guest_parent, &out_parent] {
        let inv = invocations
            .iter()
            .find(|s| &s.span_id == parent)
            .unwrap_or_else(|| panic!("{parent} is no invocation span: {spans:#?}"));
        assert_eq!(inv.attrs.get("trigger").map(String::as_str), Some("http"));
        assert_eq!(inv.attrs.get("function").map(String::as_str), Some("chaos"));
        let req = spans.iter().find(|s| s.span_id == inv.parent).unwrap();
        assert_eq!(
            (req.name.as_str(), req.parent.as_str()),
            ("request", CALLER_SPAN)
        );
    }
}

/// Trace context is passed on with no collector configured, too; without a
/// `traceparent` the guest still gets one (a new trace).
#[tokio::test(flavor = "multi_thread")]
async fn trace_context_is_propagated_without_export() {
    let echo = header_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    let api = Api::new(&node);
    deploy_chaos_calling(&api, echo).await;
    let tp = traceparent();
    let out = api
        .http
        .request(
            "GET",
            &api.url(&format!("/acme/chaos/fetch?url=http://127.0.0.1:{echo}/x")),
            &[("traceparent", &tp)],
            "",
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.text());
    let text = out.text();
    let echoed = text
        .strip_prefix("200 ")
        .unwrap_or_else(|| panic!("{text}"));
    let (otp, ostate) = echoed.split_once('|').unwrap();
    let (trace, parent, _) = fields(otp);
    assert_eq!(trace, TRACE);
    assert_ne!(parent, CALLER_SPAN);
    assert_eq!(ostate, "none", "no tracestate came in, none goes out");

    // An event handler has no headers, but its outbound requests carry the context.
    let ev = api
        .http
        .request(
            "POST",
            &api.url("/invoke/acme/chaos"),
            &[("traceparent", &tp)],
            format!("fetch http://127.0.0.1:{echo}/event"),
        )
        .await;
    assert_eq!(ev.status, 200, "{}", ev.text());
    let text = ev.text();
    let echoed = text
        .strip_prefix("200 ")
        .unwrap_or_else(|| panic!("{text}"));
    let (etrace, eparent, _) = fields(echoed.split_once('|').unwrap().0);
    assert_eq!(etrace, TRACE);
    assert_ne!(eparent, CALLER_SPAN);
    assert_ne!(eparent, parent, "another invocation, another parent span");

    let fresh = api
        .http
        .request(
            "GET",
            &api.url("/acme/chaos/header?name=traceparent"),
            &[],
            "",
        )
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.text());
    let (trace, _, _) = fields(fresh.text().trim());
    assert_ne!(trace, TRACE);
    assert_ne!(trace, "0".repeat(32));
}

/// Spans still queued when the node is told to stop are exported before it exits (the
/// export interval here is far longer than the test).
#[tokio::test(flavor = "multi_thread")]
async fn queued_spans_are_flushed_at_shutdown() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[telemetry]\notlp_endpoint = \"{}/v1/traces\"\nexport_interval_ms = 600000\n",
        collector.endpoint()
    );
    let node = Node::start(dir.path(), Some(&cfg));
    {
        let http = Http::anonymous();
        let tp = traceparent();
        let r = http
            .request(
                "GET",
                &format!("{}/healthz", node.url),
                &[("traceparent", &tp)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !has(&collector.spans(), TRACE, "request"),
        "nothing is exported before the interval or shutdown"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let spans = collector
        .wait_for("the request span, flushed at shutdown", |s| {
            has(s, TRACE, "request")
        })
        .await;
    assert_eq!(one(&spans, TRACE, "request").parent, CALLER_SPAN);
    assert_eq!(
        one(&spans, TRACE, "request").service,
        "helixflow",
        "the default service name"
    );
}

/// A collector that accepts connections and never answers: requests are served as fast
/// as ever (export runs in the background), and the node says so once in its log.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_never_slows_requests_and_costs_one_warning() {
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = blackhole.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = blackhole.accept().await {
            h.lock().unwrap().push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nexport_interval_ms = 50\nexport_batch_size = 1\nexport_timeout_ms = 2000\n"
    );
    let node = Node::start(dir.path(), Some(&cfg));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    let tp = traceparent();
    let deadline = Instant::now() + Duration::from_secs(30);
    let warning = "OTLP span export failed";
    let mut rounds = 0;
    // Keep invoking until the export has failed (and a few batches after it).
    while node.log().matches(warning).count() == 0 || rounds < 20 {
        let started = Instant::now();
        let r = api
            .http
            .request(
                "GET",
                &api.url("/acme/chaos/ok"),
                &[("traceparent", &tp)],
                "",
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "a request waited on the exporter: {:?}",
            started.elapsed()
        );
        rounds += 1;
        assert!(
            Instant::now() < deadline,
            "no export warning within 30 s:\n{}",
            node.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Later batches (one export timeout each) fail too, silently.
    tokio::time::sleep(Duration::from_millis(5000)).await;
    assert_eq!(node.log().matches(warning).count(), 1, "{}", node.log());
    assert!(
        !held.lock().unwrap().is_empty(),
        "the exporter did try the collector"
    );
}
