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
mod alerts;
mod async_invoke;
mod body;
mod console;
mod control;
mod error;
mod keys;
pub mod lambda;
pub mod lambda_host;
mod models;
mod openai;
pub mod openapi;
mod request;
pub mod routes;
pub mod tls;
mod tracked;
mod trigger;
pub mod upload;
mod usage;
pub mod webhook;
mod wire;

pub use body::Body;

/// The pure request-mapping functions, for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::access::requirement;
    pub use crate::lambda::parse_function_name;
    pub use crate::lambda_host::{classify, http_request};
    pub use crate::trigger::{TriggerPath, parse_trigger_path};
    pub use helixflow_node::resolve::split_qualifier;
}
pub use error::ApiError;

use helixflow_node::{Node, metrics};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use request::Segments;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;
use tracked::TrackedBody;

/// The API's own settings (from the edge config): request and upload limits, the
/// control plane's mTLS requirement, connection handling.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest component upload.
    pub max_component_bytes: usize,
    /// Largest model upload.
    pub max_model_bytes: usize,
    /// Where uploads are spooled while they are checked (`None`: the system temp dir).
    /// Model uploads go to disk, not memory; this must hold `max_model_bytes` (twice,
    /// while one is stored into a `file://` artifact store on another filesystem).
    pub upload_dir: Option<std::path::PathBuf>,
    /// Largest request body passed to a function (HTTP or event).
    pub max_request_body_bytes: usize,
    /// Largest HTTP response a function may stream (cut off past it).
    pub max_response_bytes: usize,
    /// `/api` only over HTTPS with a client certificate verified against `client_ca`.
    pub control_plane_mtls: bool,
    /// Connection handling of the listeners (`[http]`).
    pub http: HttpSettings,
}

/// Connection limits of the node's listeners (`[http]` in the edge config).
///
/// Invariants: a request head (HTTP/1) must arrive within `header_read_timeout` of the
/// connection becoming ready for one (also the longest an idle HTTP/1 keep-alive
/// connection waits for its next request); a connection with no request in flight is
/// closed after `idle_timeout` (HTTP/2), or `header_read_timeout` before its first
/// request (protocol detection included); at most `max_connections` are open (more wait
/// in the kernel's backlog) and at most `max_connections_per_ip` per client address (more
/// are closed at once).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub header_read_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub h2_max_concurrent_streams: u32,
    /// Largest HTTP/1 request head (read buffer) and HTTP/2 header list, bytes.
    pub max_header_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 25_000,
            max_connections_per_ip: 1024,
            h2_max_concurrent_streams: 256,
            max_header_bytes: 64 << 10,
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_component_bytes: 50 << 20,
            max_model_bytes: 1 << 30,
            upload_dir: None,
            max_request_body_bytes: 6 << 20,
            max_response_bytes: 64 << 20,
            control_plane_mtls: false,
            http: HttpSettings::default(),
        }
    }
}

/// Everything a request handler needs: the node (application layer) and the API's own
/// settings.
pub struct AppState {
    pub node: Arc<Node>,
    pub settings: ApiSettings,
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
    pub fn new(node: Arc<Node>, settings: ApiSettings) -> Arc<Self> {
        Arc::new(AppState {
            node,
            settings,
            request_ids: RequestIds::new(),
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
    // A valid W3C `traceparent` makes this request part of the caller's trace; a missing
    // or invalid one starts a new trace (never an error).
    if let Some(parent) = helixflow_telemetry::TraceContext::from_headers(req.headers()) {
        helixflow_telemetry::set_parent(&span, &parent);
    }
    async move {
        let path = req.uri().path().to_string();
        // The path is split here, once; routes get the segments.
        let segs = Segments::of(&path);
        let segs = segs.0.as_slice();
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
                let api_segs = &segs[1..];
                let need = access::requirement(&method, api_segs);
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
                        let resp = control::route(&state, req, api_segs, &request_id, principal.as_ref()).await;
                        if method != http::Method::GET && method != http::Method::HEAD {
                            let status = resp.status().as_u16();
                            let outcome = if status < 400 { "ok" } else { "error" };
                            let tenant = tenant.or_else(|| api_segs.get(2).map(|s| s.to_string()).filter(|_| api_segs.get(1) == Some(&"tenants")));
                            let action = format!("{} {}", method, route_template(api_segs));
                            helixflow_node::audit::record(
                                &state.node,
                                helixflow_node::audit::Entry {
                                    tenant: tenant.as_deref(),
                                    who: &who,
                                    action: &action,
                                    target: &path,
                                    outcome,
                                    status,
                                    source: peer,
                                    request_id: &request_id,
                                },
                            )
                            .await;
                        }
                        ("control", resp)
                    }
                }
            }
            Some("console") => ("console", console::route(&req, &segs[1..])),
            Some("v1") => ("openai", openai::route(&state, req, &segs[1..], &request_id, &who).await),
            Some("invoke") => ("data", trigger::invoke_event_route(&state, req, segs, &request_id, &who, peer).await),
            Some("2015-03-31") => ("lambda", lambda::route(&state, req, segs, &request_id, &who, peer).await),
            // A service worker registered from a function's URL would control the whole
            // origin, which every tenant and the console share: its script is refused.
            Some(s) if !s.is_empty() && req.headers().contains_key("service-worker") => (
                "data",
                ApiError::new(
                    http::StatusCode::FORBIDDEN,
                    "service_worker_refused",
                    "functions cannot register service workers: this origin is shared by every tenant and the console",
                )
                .into_response(),
            ),
            Some(s) if !s.is_empty() => ("data", trigger::http_trigger_route(&state, req, segs, &request_id, &who, peer).await),
            _ => (
                "other",
                ApiError::not_found("no route here: see /console, /api/v1, /{tenant}/{function}/..., /invoke/..., /metrics, /healthz")
                    .into_response(),
            ),
        };
        state
            .node
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
        if let Ok(v) = http::HeaderValue::from_str(&state.node.settings.node_id) {
            resp.headers_mut().insert("x-helixflow-location", v);
        }
        // Security headers on HelixFlow's own responses (a function's response headers
        // are its own business).
        if plane == "data" {
            // A function's documents run sandboxed (an opaque origin): the origin is shared
            // by every tenant and the console, so a tenant's page must not read another's
            // storage or cookies, nor the console's credential in the same tab.
            let h = resp.headers_mut();
            h.remove("service-worker-allowed");
            h.append(http::header::CONTENT_SECURITY_POLICY, http::HeaderValue::from_static(FUNCTION_SANDBOX));
        } else {
            let h = resp.headers_mut();
            h.insert("x-content-type-options", http::HeaderValue::from_static("nosniff"));
            h.insert("x-frame-options", http::HeaderValue::from_static("DENY"));
            // The console's assets are revalidated by ETag (`no-cache`); API answers are
            // never stored.
            if plane != "console" {
                h.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
            }
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

/// The policy added to every data-plane response (a function's own policies still apply
/// too: browsers enforce each one).
pub const FUNCTION_SANDBOX: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// `POST v1/tenants/{t}/functions/{f}/versions` -> `POST tenants/*/functions/*/versions`.
fn route_template(segs: &[&str]) -> String {
    segs.iter()
        .skip(1)
        .enumerate()
        .map(|(i, s)| if i % 2 == 1 { "*" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Records a refused request in the audit log of the tenant it named (if it exists).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn denied(
    state: &AppState,
    tenant: Option<&str>,
    who: &helixflow_node::Who,
    plane: &str,
    path: &str,
    e: &ApiError,
    peer: SocketAddr,
    request_id: &str,
) {
    helixflow_node::audit::refusal(
        &state.node,
        plane,
        e.code,
        helixflow_node::audit::Entry {
            tenant,
            who,
            action: "",
            target: path,
            outcome: e.code,
            status: e.status.as_u16(),
            source: peer,
            request_id,
        },
    )
    .await;
}

/// A socket to serve: plain HTTP (HTTP/1.1 + h2c) or HTTPS (TLS with ALPN h2/http1.1).
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<tls::ReloadingTls>>,
}

/// Serve every listener until `shutdown` resolves, then drain connections (10 s).
/// Connections are held to `state.settings.http` (see [`HttpSettings`]).
pub async fn serve(
    listeners: Vec<Listener>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Accept on every socket in its own task; connections come here, where the one
    // GracefulShutdown hands each a watcher.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let limits = Arc::new(ConnLimits::new(&state.settings.http));
    let mut accepting = tokio::task::JoinSet::new();
    for l in listeners {
        accepting.spawn(accept_loop(l, tx.clone(), limits.clone(), state.clone()));
    }
    drop(tx);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = rx.recv() => {
                let Some(accepted) = accepted else { break };
                serve_connection(accepted, state.clone(), graceful.watcher());
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

struct Accepted {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<tls::ReloadingTls>>,
    /// Held while the connection is open.
    slot: ConnSlot,
}

/// Open connections, per node (a semaphore taken before `accept`, so excess
/// connections wait in the kernel's backlog) and per client IP (a count per address
/// with an open connection; an address at its limit has new connections closed at once).
/// Invariant: the per-IP map only holds addresses with open connections, so it never
/// has more than `max_connections` entries.
struct ConnLimits {
    node: Arc<tokio::sync::Semaphore>,
    per_ip: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max_per_ip: usize,
}

impl ConnLimits {
    fn new(s: &HttpSettings) -> Self {
        ConnLimits {
            node: Arc::new(tokio::sync::Semaphore::new(
                s.max_connections
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            per_ip: Default::default(),
            max_per_ip: s.max_connections_per_ip.max(1),
        }
    }

    /// A slot for a connection from `ip`, or `None` when `ip` is at its limit.
    fn admit(
        self: &Arc<Self>,
        ip: std::net::IpAddr,
        permit: tokio::sync::OwnedSemaphorePermit,
        open: &prometheus_client::metrics::gauge::Gauge,
    ) -> Option<ConnSlot> {
        let ip = ip.to_canonical();
        {
            let mut m = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return None;
            }
            *n += 1;
        }
        open.inc();
        Some(ConnSlot {
            _permit: permit,
            ip,
            limits: self.clone(),
            open: open.clone(),
        })
    }
}

/// One open connection's share of [`ConnLimits`], given back on drop.
struct ConnSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    ip: std::net::IpAddr,
    limits: Arc<ConnLimits>,
    open: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.open.dec();
        let mut m = self.limits.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop(
    l: Listener,
    tx: tokio::sync::mpsc::Sender<Accepted>,
    limits: Arc<ConnLimits>,
    state: Arc<AppState>,
) {
    loop {
        let Ok(permit) = limits.node.clone().acquire_owned().await else {
            return;
        };
        match l.tcp.accept().await {
            Ok((stream, peer)) => {
                let Some(slot) =
                    limits.admit(peer.ip(), permit, &state.node.metrics.connections_open)
                else {
                    tracing::debug!(%peer, "connection closed: over max_connections_per_ip");
                    state
                        .node
                        .metrics
                        .connections_refused
                        .get_or_create(&metrics::RefusedLabels {
                            reason: "per_ip_limit",
                        })
                        .inc();
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                if tx
                    .send(Accepted {
                        stream,
                        peer,
                        tls: l.tls.clone(),
                        slot,
                    })
                    .await
                    .is_err()
                {
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

/// Requests of one connection in flight (handler running or response body not yet
/// sent), and since when it has had none.
struct Activity {
    inflight: std::sync::atomic::AtomicUsize,
    served_any: std::sync::atomic::AtomicBool,
    idle_since: std::sync::Mutex<std::time::Instant>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            inflight: Default::default(),
            served_any: Default::default(),
            idle_since: std::sync::Mutex::new(std::time::Instant::now()),
        })
    }
}

/// Counts a request in flight until dropped (with its response body).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(a: &Arc<Activity>) -> Self {
        use std::sync::atomic::Ordering;
        a.served_any.store(true, Ordering::Relaxed);
        a.inflight.fetch_add(1, Ordering::AcqRel);
        InFlight(a.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self
            .0
            .inflight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) =
                std::time::Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct CountedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = body::BoxError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        hyper::body::Body::poll_frame(std::pin::Pin::new(&mut self.inner), cx)
    }
    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.inner)
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.inner)
    }
}

/// Resolves when the connection has had no request in flight for too long: `idle`
/// after a request, `first` before its first one.
async fn idle_deadline(a: Arc<Activity>, first: std::time::Duration, idle: std::time::Duration) {
    use std::sync::atomic::Ordering;
    loop {
        let limit = if a.served_any.load(Ordering::Relaxed) {
            idle
        } else {
            first
        };
        if a.inflight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(limit).await;
            continue;
        }
        let elapsed = a
            .idle_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed();
        if elapsed >= limit && a.inflight.load(Ordering::Acquire) == 0 {
            return;
        }
        tokio::time::sleep(
            limit
                .saturating_sub(elapsed)
                .max(std::time::Duration::from_millis(10)),
        )
        .await;
    }
}

/// One request of a connection: [`handle`], with its response body counted in flight.
///
/// `handle`'s future is boxed because hyper keeps room for one service future per
/// HTTP/1 connection for the connection's whole life, and `handle`'s is several KiB:
/// boxed, it is allocated only while a request is in flight, and an idle keep-alive
/// connection holds a pointer's worth instead.
async fn serve_request(
    state: Arc<AppState>,
    req: http::Request<Incoming>,
    peer: SocketAddr,
    client_cert: bool,
    in_flight: InFlight,
) -> Result<http::Response<CountedBody>, std::convert::Infallible> {
    let resp = Box::pin(handle(state, req, peer, client_cert)).await;
    Ok(resp.map(|inner| CountedBody {
        inner,
        _in_flight: in_flight,
    }))
}

fn serve_connection(
    accepted: Accepted,
    state: Arc<AppState>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let Accepted {
        stream,
        peer,
        tls,
        slot,
    } = accepted;
    let limits = state.settings.http.clone();
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        move |client_cert: bool| {
            let state = state.clone();
            let activity = activity.clone();
            hyper::service::service_fn(move |req| {
                serve_request(
                    state.clone(),
                    req,
                    peer,
                    client_cert,
                    InFlight::enter(&activity),
                )
            })
        }
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's floor for its read buffer is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    // Before the first request the header-read timeout applies (a little later than
    // hyper's own, which answers HTTP/1 itself): it also covers protocol detection and
    // an HTTP/2 connection that never opens a stream.
    let first = limits.header_read_timeout + std::time::Duration::from_secs(1);
    let idle = idle_deadline(activity, first, limits.idle_timeout);
    tokio::spawn(async move {
        let _slot = slot;
        let result = async move {
            match tls {
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
                            return Ok(());
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return Ok(());
                        }
                    };
                    // Verified against client_ca by rustls when it is configured.
                    let service = service(
                        stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .is_some_and(|c| !c.is_empty()),
                    );
                    watcher
                        .watch(
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .into_owned(),
                        )
                        .await
                }
            }
        };
        let result = tokio::select! {
            r = result => r,
            _ = idle => {
                tracing::debug!(%peer, "closing a connection with no request in flight");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    });
}

#[cfg(test)]
mod conn_limit_tests {
    use super::*;

    /// The size of the future `f` returns (without calling it).
    fn future_size<F, Fut>(_: &F) -> usize
    where
        F: Fn(Arc<AppState>, http::Request<Incoming>, SocketAddr, bool) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    fn serve_request_future_size<F, Fut>(_: &F) -> usize
    where
        F: Fn(Arc<AppState>, http::Request<Incoming>, SocketAddr, bool, InFlight) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// hyper reserves a service future per HTTP/1 connection for its whole life: that
    /// must stay small, whatever `handle` grows to (it is boxed per request).
    #[test]
    fn an_idle_connection_keeps_no_room_for_the_request_handler() {
        let handler = future_size(&handle);
        let per_connection = serve_request_future_size(&serve_request);
        assert!(
            per_connection <= 1024 && per_connection * 4 < handler,
            "service future {per_connection} bytes per connection (handle's: {handler})"
        );
    }

    #[tokio::test]
    async fn per_ip_limit_refuses_past_the_cap_and_forgets_closed_addresses() {
        let limits = Arc::new(ConnLimits::new(&HttpSettings {
            max_connections: 10,
            max_connections_per_ip: 2,
            ..Default::default()
        }));
        let open = prometheus_client::metrics::gauge::Gauge::default();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let permit = || {
            limits
                .node
                .clone()
                .try_acquire_owned()
                .expect("node permit")
        };
        let s1 = limits.admit(a, permit(), &open).expect("first");
        let s2 = limits.admit(a, permit(), &open).expect("second");
        assert!(
            limits.admit(a, permit(), &open).is_none(),
            "a third from one address is refused"
        );
        let s3 = limits.admit(b, permit(), &open).expect("another address");
        assert_eq!(open.get(), 3);
        assert_eq!(
            limits.node.available_permits(),
            7,
            "refused connections give their node permit back"
        );
        drop(s1);
        assert!(
            limits.admit(a, permit(), &open).is_some(),
            "a closed connection frees its place"
        );
        drop((s2, s3));
        assert!(
            limits.per_ip.lock().unwrap().is_empty(),
            "addresses without connections are forgotten"
        );
        assert_eq!(open.get(), 0);
        assert_eq!(limits.node.available_permits(), 10);
    }
}
