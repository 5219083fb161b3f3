//! Per-invocation store state: WASI context, resource table, wasi:http context,
//! the memory limiter and captured stdout/stderr.

use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub hooks: SandboxHooks,
    pub nn: helixflow_nn::host::NnCtx,
    pub limiter: MemoryLimiter,
    pub budget: CpuBudget,
}

/// The invocation's CPU budget, spent in epoch slices. Each time the guest has run
/// for a slice it yields to the executor (so a spinning guest never holds a worker
/// thread hostage) and one slice is charged; at zero, or past the wall deadline, it is
/// interrupted.
pub struct CpuBudget {
    pub slices_left: u64,
    pub wall_deadline: std::time::Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// wasi:http policy for guests: outbound requests are denied unless the function's
/// config allows the host (no egress by default), and then connect only to addresses
/// the node's egress policy allows (public ones, plus the ranges the node opts in):
/// see [`crate::egress`].
pub struct SandboxHooks {
    /// `host` (any port), `host:port`, or `*.domain` (any subdomain, any port).
    pub allow: Vec<String>,
    /// The node's egress policy (shared by every invocation).
    pub egress: Arc<crate::egress::Egress>,
    /// Who is calling out, for the log line of a refusal.
    pub caller: crate::egress::Caller,
}

/// `host[:port]` -> (host, port), lowercased; a bracketed IPv6 literal keeps its brackets.
fn split_port(s: &str) -> (String, Option<String>) {
    let s = s.to_ascii_lowercase();
    match s.rsplit_once(':') {
        Some((h, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']')) =>
        {
            (h.to_string(), Some(p.to_string()))
        }
        _ => (s, None),
    }
}

/// Is `authority` (`host[:port]`) on the allow-list? A rule without a port allows any
/// port of that host; `*.domain` allows its subdomains (not the domain itself).
pub fn outbound_allowed(allow: &[String], authority: &str) -> bool {
    let (host, port) = split_port(authority);
    allow.iter().any(|rule| {
        let (rule_host, rule_port) = split_port(rule);
        let host_ok = match rule_host.strip_prefix("*.") {
            // Wildcards name DNS subdomains, never IP literals (`*.0.0.1` must not
            // allow 127.0.0.1).
            Some(suffix) => {
                host.parse::<std::net::IpAddr>().is_err()
                    && !host.starts_with('[')
                    && host.ends_with(&format!(".{suffix}"))
            }
            None => rule_host == host,
        };
        host_ok && (rule_port.is_none() || rule_port == port)
    })
}

impl WasiHttpHooks for SandboxHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        // Userinfo (`user@host`) would make the allow-list see one host and the
        // connection another: refuse it outright.
        if authority.contains('@') {
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid) });
        }
        if authority.is_empty() || !outbound_allowed(&self.allow, &authority) {
            self.egress.stats.count_not_allowed();
            tracing::info!(
                tenant = %self.caller.tenant,
                function = %self.caller.function,
                %authority,
                "outbound request denied (not on the function's allow-list)"
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // Trace context goes on with the request unless the guest set its own.
        if !request
            .headers()
            .contains_key(helixflow_telemetry::TRACEPARENT)
            && let Some(tc) = helixflow_telemetry::current()
        {
            tc.inject(request.headers_mut());
        }
        // On the allow-list: now check where the name really leads, and connect there.
        Box::new(crate::egress::send(
            self.egress.clone(),
            self.caller.clone(),
            request,
            options,
        ))
    }
}

/// Enforces the invocation's memory ceiling and remembers whether the guest hit it,
/// so a resulting trap is reported as `function_memory_limit`, not a generic trap.
pub struct MemoryLimiter {
    pub limit: usize,
    pub exceeded: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Captured output of one invocation.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub stdout: Bytes,
    pub stderr: Bytes,
    /// True when the guest wrote more than the cap (the rest was dropped).
    pub truncated: bool,
}

/// A stdout/stderr sink that keeps the first `cap` bytes and silently drops the rest
/// (unlike wasmtime's `MemoryOutputPipe`, which traps the guest when full).
#[derive(Clone)]
pub struct CappedOutput {
    inner: Arc<Mutex<(BytesMut, bool)>>,
    cap: usize,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        CappedOutput {
            inner: Arc::new(Mutex::new((BytesMut::new(), false))),
            cap,
        }
    }
    pub fn take(&self) -> (Bytes, bool) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = std::mem::take(&mut g.0).freeze();
        (bytes, g.1)
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(g.0.len());
        let n = room.min(buf.len());
        g.0.extend_from_slice(&buf[..n]);
        if n < buf.len() {
            g.1 = true;
        }
        // Accept everything: the guest must not block or fail because logs are full.
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The stdio pair of one invocation.
pub struct Capture {
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
}

impl Capture {
    pub fn new(cap: usize) -> Self {
        Capture {
            stdout: CappedOutput::new(cap),
            stderr: CappedOutput::new(cap),
        }
    }
    pub fn logs(&self) -> Logs {
        let (stdout, t1) = self.stdout.take();
        let (stderr, t2) = self.stderr.take();
        Logs {
            stdout,
            stderr,
            truncated: t1 || t2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn capped_output_keeps_the_head_and_flags_truncation_without_failing_writes() {
        let out = CappedOutput::new(10);
        let mut w = out.clone();
        w.write_all(b"hello ").await.unwrap();
        w.write_all(b"world, this is long").await.unwrap();
        let (bytes, truncated) = out.take();
        assert_eq!(&bytes[..], b"hello worl");
        assert!(truncated);
    }

    #[test]
    fn outbound_allow_list_matches_hosts_ports_and_subdomains() {
        let allow = vec![
            "api.example.com".to_string(),
            "127.0.0.1:8080".to_string(),
            "*.internal.test".to_string(),
        ];
        assert!(outbound_allowed(&allow, "api.example.com"));
        assert!(outbound_allowed(&allow, "API.example.com:443"));
        assert!(outbound_allowed(&allow, "127.0.0.1:8080"));
        assert!(!outbound_allowed(&allow, "127.0.0.1:8081"));
        assert!(!outbound_allowed(&allow, "127.0.0.1"));
        assert!(outbound_allowed(&allow, "a.b.internal.test:9000"));
        assert!(!outbound_allowed(&allow, "internal.test"));
        assert!(!outbound_allowed(&allow, "evil-example.com"));
        assert!(!outbound_allowed(&allow, "api.example.com.evil.net"));
        assert!(!outbound_allowed(&[], "api.example.com"));
        assert!(
            !outbound_allowed(&["*.0.0.1".to_string()], "127.0.0.1:80"),
            "wildcards never match IP literals"
        );
    }

    #[test]
    fn memory_limiter_refuses_growth_past_the_limit_and_remembers_it() {
        let mut l = MemoryLimiter {
            limit: 1 << 20,
            exceeded: false,
        };
        assert!(l.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!l.exceeded);
        assert!(!l.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert!(l.exceeded);
    }
}
