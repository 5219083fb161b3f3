//! # helixflow-api: the HTTP face of a HelixFlow node
//!
//! * Control plane (JSON) under `/api/v1`: tenants, deploys (component bytes in ->
//!   immutable version by SHA-256), functions, versions, aliases + rollback, config, logs.
//! * Data plane: `ANY /{tenant}/{function}[@qualifier]/{path...}` (HTTP trigger, through
//!   wasi:http, streaming) and `POST /invoke/{tenant}/{function}[@qualifier]` (events).
//! * `GET /metrics` (Prometheus/OpenMetrics) and `GET /healthz`.
//!
//! Architecture invariant: this is the only crate that knows HTTP routes and JSON wire
//! formats. It turns requests into calls on `helixflow-store` (state) and
//! `helixflow-runtime` (execution), and every failure into an `ApiError`
//! (status + `{"error":{"code","message"}}`).

pub mod access;
mod body;
mod control;
pub(crate) mod data;
mod error;
pub mod events;
mod keys;
pub mod lambda;
pub mod lambda_host;
mod logs;
mod metrics;
pub mod models;
mod openai;
mod quota;
mod resolve;
pub mod tls;
mod tracked;

pub use body::Body;

/// The pure request-mapping functions, for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::access::requirement;
    pub use crate::data::{TriggerPath, parse_trigger_path};
    pub use crate::lambda::parse_function_name;
    pub use crate::lambda_host::{classify, http_request};
    pub use crate::resolve::split_qualifier;
}
pub use error::ApiError;

use helixflow_runtime::Runtime;
use helixflow_store::ArtifactStore;
use helixflow_store::registry::Registry;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;
use tracked::TrackedBody;

/// Node-level API settings (from the edge config).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Location id, e.g. `fra`: in metrics and responses.
    pub node_id: String,
    pub default_memory_mb: u32,
    pub default_timeout_ms: u64,
    /// Largest component upload.
    pub max_component_bytes: usize,
    /// Largest model upload.
    pub max_model_bytes: usize,
    /// Largest request body passed to a function (HTTP or event).
    pub max_request_body_bytes: usize,
    /// Largest HTTP response a function may stream (cut off past it).
    pub max_response_bytes: usize,
    /// Cap on captured stdout and stderr per invocation.
    pub max_log_bytes: usize,
    /// Invocation log records kept per function.
    pub log_records_per_function: usize,
    /// How long a resolution is served from memory (bounds staleness across nodes).
    pub resolve_cache_ttl: std::time::Duration,
    /// `/api` only over HTTPS with a client certificate verified against `client_ca`.
    pub control_plane_mtls: bool,
    /// Tenants this node serves on its data plane (empty: all).
    pub served_tenants: Vec<String>,
    /// Event (asynchronous) invocations this node runs at once.
    pub async_workers: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            node_id: "local".into(),
            default_memory_mb: 128,
            default_timeout_ms: 10_000,
            max_component_bytes: 50 << 20,
            max_model_bytes: 1 << 30,
            max_request_body_bytes: 6 << 20,
            max_response_bytes: 64 << 20,
            max_log_bytes: 64 << 10,
            log_records_per_function: 200,
            resolve_cache_ttl: std::time::Duration::from_secs(1),
            served_tenants: Vec::new(),
            control_plane_mtls: false,
            async_workers: 16,
        }
    }
}

/// Everything a request handler needs.
pub struct AppState {
    pub runtime: Arc<Runtime>,
    pub registry: Registry,
    pub artifacts: ArtifactStore,
    pub settings: ApiSettings,
    pub auth: access::AuthSettings,
    keys: access::KeyCache,
    access_keys: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Option<helixflow_store::access::AccessKeyRecord>)>>,
    events: events::EventRunner,
    quotas: quota::Quotas,
    metrics: metrics::Metrics,
    logs: logs::LogBook,
    resolver: resolve::Resolver,
    request_ids: RequestIds,
}

/// Request ids: a random per-process prefix + a counter (unique, and no syscall per
/// request, unlike a v4 UUID per request).
struct RequestIds {
    prefix: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        RequestIds {
            prefix: uuid::Uuid::new_v4().as_u64_pair().0,
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }
    fn next(&self) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:016x}{:016x}", self.prefix, n)
    }
}

impl AppState {
    pub fn new(
        runtime: Arc<Runtime>,
        registry: Registry,
        artifacts: ArtifactStore,
        settings: ApiSettings,
        auth: access::AuthSettings,
    ) -> Arc<Self> {
        Arc::new(AppState {
            auth,
            keys: access::KeyCache::default(),
            access_keys: Default::default(),
            events: events::EventRunner::new(&settings.node_id, settings.async_workers),
            quotas: quota::Quotas::default(),
            metrics: metrics::Metrics::new(&settings.node_id),
            logs: logs::LogBook::new(settings.log_records_per_function),
            resolver: resolve::Resolver::default(),
            request_ids: RequestIds::new(),
            runtime,
            registry,
            artifacts,
            settings,
        })
    }
}

/// Route one request.
pub async fn handle(
    state: Arc<AppState>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
    client_cert: bool,
) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let http1 = parts.version < http::Version::HTTP_2;
    let (body, body_done) = TrackedBody::new(body);
    let req = http::Request::from_parts(parts, body);
    let request_id = state.request_ids.next();
    let span = tracing::info_span!("request", %request_id, method = %req.method(), path = %req.uri().path(), %peer);
    async move {
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // SigV4 requests are verified by the Invoke API itself (it needs the body).
        let sigv4 = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(helixflow_auth::sigv4::is_sigv4);
        let who = if sigv4 { Ok(None) } else { access::authenticate(&state, req.headers()).await };
        let (plane, resp) = match segs.first().copied() {
            Some("healthz") if segs.len() == 1 => ("other", control::healthz(&state)),
            Some("metrics") if segs.len() == 1 => match access::check(&who, &access::Need::PlatformAdmin) {
                Ok(_) => ("other", control::metrics(&state)),
                Err(e) => {
                    denied(&state, None, &who, "metrics", &path, &e, peer, &request_id).await;
                    ("other", e.into_response())
                }
            },
            Some("api") => {
                let method = req.method().clone();
                let api_segs: Vec<&str> = path.trim_start_matches('/').trim_end_matches('/').split('/').skip(1).collect();
                let need = access::requirement(&method, &api_segs);
                let tenant = match &need {
                    access::Need::Tenant(t, _) => Some(t.clone()),
                    _ => None,
                };
                let mtls = if state.settings.control_plane_mtls && !client_cert {
                    Err(ApiError::new(
                        http::StatusCode::FORBIDDEN,
                        "client_certificate_required",
                        "the control plane needs a client certificate (mutual TLS) on this node",
                    ))
                } else {
                    Ok(())
                };
                match mtls.and_then(|_| access::check(&who, &need)) {
                    Err(e) => {
                        denied(&state, tenant.as_deref(), &who, "api", &path, &e, peer, &request_id).await;
                        ("control", e.into_response())
                    }
                    Ok(principal) => {
                        let resp = control::route(&state, req, &request_id, principal.as_ref()).await;
                        if method != http::Method::GET && method != http::Method::HEAD {
                            let status = resp.status().as_u16();
                            let outcome = if status < 400 { "ok" } else { "error" };
                            let tenant = tenant.or_else(|| api_segs.get(2).map(|s| s.to_string()).filter(|_| api_segs.get(1) == Some(&"tenants")));
                            let action = format!("{} {}", method, route_template(&api_segs));
                            access::audit(&state, tenant.as_deref(), &who, &action, &path, outcome, status, peer, &request_id).await;
                        }
                        ("control", resp)
                    }
                }
            }
            Some("v1") => ("openai", openai::route(&state, req, &request_id, &who).await),
            Some("invoke") => ("data", data::invoke_event_route(&state, req, &request_id, &who, peer).await),
            Some("2015-03-31") => ("lambda", lambda::route(&state, req, &request_id, &who, peer).await),
            Some(s) if !s.is_empty() => ("data", data::http_trigger_route(&state, req, &request_id, &who, peer).await),
            _ => (
                "other",
                ApiError::not_found("no route here: see /api/v1, /{tenant}/{function}/..., /invoke/..., /metrics, /healthz")
                    .into_response(),
            ),
        };
        state
            .metrics
            .requests
            .get_or_create(&metrics::RequestLabels {
                plane,
                status: resp.status().as_u16(),
            })
            .inc();
        let mut resp = resp;
        if let Ok(v) = http::HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-helixflow-request-id", v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&state.settings.node_id) {
            resp.headers_mut().insert("x-helixflow-location", v);
        }
        // Security headers on HelixFlow's own responses (a function's response headers
        // are its own business).
        if plane != "data" {
            let h = resp.headers_mut();
            h.insert("x-content-type-options", http::HeaderValue::from_static("nosniff"));
            h.insert("x-frame-options", http::HeaderValue::from_static("DENY"));
            h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        }
        if http1 && !body_done.load(std::sync::atomic::Ordering::Acquire) && !resp.headers().contains_key(http::header::CONNECTION) {
            resp.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        tracing::debug!(status = resp.status().as_u16(), "response");
        resp
    }
    .instrument(span)
    .await
}

/// `POST v1/tenants/{t}/functions/{f}/versions` -> `POST tenants/*/functions/*/versions`.
fn route_template(segs: &[&str]) -> String {
    segs.iter()
        .skip(1)
        .enumerate()
        .map(|(i, s)| if i % 2 == 1 { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Records a refused request in the audit log.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn denied(
    state: &AppState,
    tenant: Option<&str>,
    who: &Result<Option<helixflow_auth::Principal>, helixflow_auth::AuthError>,
    plane: &str,
    path: &str,
    e: &ApiError,
    peer: SocketAddr,
    request_id: &str,
) {
    // Refusals cost the caller nothing, so their records are rate-limited per tenant
    // (50/s): a flood of bad requests cannot flood the metadata store.
    let log = tenant.unwrap_or(helixflow_store::access::PLATFORM_AUDIT);
    if state.quotas.rate(&format!("audit-denials/{log}"), 50).is_err() {
        tracing::warn!(tenant = log, path, code = e.code, "refusal not audited: over 50 refusal records/s");
        return;
    }
    access::audit(state, tenant, who, &format!("auth.denied {plane}"), path, e.code, e.status.as_u16(), peer, request_id).await;
}

/// A socket to serve: plain HTTP (HTTP/1.1 + h2c) or HTTPS (TLS with ALPN h2/http1.1).
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<tls::ReloadingTls>>,
}

/// Serve every listener until `shutdown` resolves, then drain connections (10 s).
pub async fn serve(
    listeners: Vec<Listener>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Accept on every socket in its own task; connections come here, where the one
    // GracefulShutdown hands each a watcher.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let mut accepting = tokio::task::JoinSet::new();
    for l in listeners {
        accepting.spawn(accept_loop(l, tx.clone()));
    }
    drop(tx);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = rx.recv() => {
                let Some((stream, peer, tls)) = accepted else { break };
                serve_connection(stream, peer, tls, state.clone(), graceful.watcher());
            }
            _ = &mut shutdown => break,
        }
    }
    // Stop accepting (drops the listeners), then let open connections finish.
    accepting.abort_all();
    while accepting.join_next().await.is_some() {}
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing");
        }
    }
}

type Accepted = (
    tokio::net::TcpStream,
    SocketAddr,
    Option<Arc<tls::ReloadingTls>>,
);

async fn accept_loop(l: Listener, tx: tokio::sync::mpsc::Sender<Accepted>) {
    loop {
        match l.tcp.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if tx.send((stream, peer, l.tls.clone())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<tls::ReloadingTls>>,
    state: Arc<AppState>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let service = move |client_cert: bool| {
        let state = state.clone();
        hyper::service::service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(state, req, peer, client_cert).await) }
        })
    };
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    tokio::spawn(async move {
        let result = match tls {
            None => {
                let service = service(false);
                watcher
                    .watch(
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned(),
                    )
                    .await
            }
            Some(tls) => {
                let handshake = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    tls.acceptor().accept(stream),
                );
                let stream = match handshake.await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                // Verified against client_ca by rustls when it is configured.
                let service = service(stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty()));
                watcher
                    .watch(
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .into_owned(),
                    )
                    .await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}
