//! # helixflow-runtime: runs tenants' components, one fresh instance per invocation
//!
//! * One [`wasmtime::Engine`] per process: component model, WASI 0.2, async, the pooling
//!   instance allocator, epoch interruption driven by a ticker thread.
//! * [`Runtime::load`] turns component bytes into a [`LoadedFunction`]: compiled once
//!   (and cached on disk keyed by the engine's compatibility hash + the component's
//!   SHA-256), linked once into an `InstancePre`, kept in memory by SHA-256.
//! * [`Runtime::invoke_http`] / [`Runtime::invoke_event`] create a fresh `Store` and
//!   instance per call with the invocation's [`Limits`] (memory via a `ResourceLimiter`,
//!   CPU via an epoch deadline, wall time via a timer), capture stdout/stderr (capped),
//!   and classify failures ([`InvokeError`]).
//!
//! Architecture invariants:
//! * The runtime knows nothing about where bytes come from (object stores, registries)
//!   or about the API's wire formats: callers hand it bytes and get typed results.
//! * Guests get no filesystem, no sockets, no inherited environment (only the env vars
//!   and stdio the invocation is given), and no outbound HTTP except to the hosts the
//!   invocation's `allow_outbound` names, and then only to public addresses or to the
//!   ranges the node's [`RuntimeConfig::allow_private`] opts in ([`egress`]).
//! * A guest can never take the host down: every failure is an `InvokeError`.

mod cache;
pub mod egress;
mod engine;
mod event;
mod http;
mod state;
mod wagi;

pub use cache::CompileCacheKey;
pub use egress::EgressStats;
pub use engine::RuntimeConfig;
pub use event::{EventContext, EventOutput};
pub use http::{InvocationReport, ReportSink};
pub use state::Logs;
pub use wagi::MAX_STDOUT as MAX_MODULE_STDOUT;
/// The error type of request bodies handed to [`Runtime::invoke_http`].
pub use wasmtime_wasi_http::Error as HttpBodyError;
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use std::sync::Arc;
use std::time::Duration;

/// What a component exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportKinds {
    /// `wasi:http/incoming-handler@0.2.x`
    pub http: bool,
    /// `helixflow:function/event-handler@0.1.0`
    pub event: bool,
    /// A WASI preview1 command module run WAGI-style (CGI over stdio): serves both
    /// triggers, wasi-nn through the witx ABI.
    pub module: bool,
}

/// Limits of one invocation.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Linear-memory ceiling of the whole instance, bytes.
    pub memory_bytes: usize,
    /// Deadline for the whole invocation (CPU via epochs, and wall clock).
    pub timeout: Duration,
    /// Cap on captured stdout + stderr, bytes each.
    pub max_log_bytes: usize,
}

/// Per-invocation inputs besides the payload.
#[derive(Debug, Clone, Default)]
pub struct InvocationEnv {
    /// Environment variables the function's config gives it (nothing else is visible).
    pub env: Vec<(String, String)>,
    /// The calling tenant: wasi:nn resolves model names in its namespace.
    pub tenant: String,
    /// The function's name (named in the log line of a refused outbound request).
    pub function: String,
    /// Hosts the guest may reach over outbound wasi:http (`host`, `host:port`,
    /// `*.domain`); empty: no outbound requests at all.
    pub allow_outbound: Vec<String>,
}

/// Why a deploy-time check rejected a component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not compile: {0}")]
    Compile(String),
    #[error("the component imports something this host does not provide: {0}")]
    UnsupportedImport(String),
    #[error("{0}")]
    NoStart(String),
    #[error(
        "the component exports no supported interface (expected wasi:http/incoming-handler@0.2.x and/or helixflow:function/event-handler@0.1.0)"
    )]
    NoSupportedExport,
    #[error("runtime internal error: {0}")]
    Internal(String),
}

/// Why an invocation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// The guest trapped (panic, unreachable, stack overflow, ...).
    #[error("the function trapped: {0}")]
    Trap(String),
    /// The guest recursed past its stack limit.
    #[error("the function overflowed its call stack ([runtime] max_wasm_stack_kb)")]
    StackOverflow,
    /// The guest ran past its deadline and was interrupted.
    #[error("the function exceeded its {0:?} deadline")]
    Timeout(Duration),
    /// The guest tried to grow memory past its limit.
    #[error("the function exceeded its memory limit of {0} MiB")]
    MemoryLimit(usize),
    /// The guest returned without producing a response.
    #[error("the function returned no response")]
    NoResponse,
    /// The component does not export what this trigger needs.
    #[error("the function does not export the {0} interface")]
    WrongTrigger(&'static str),
    /// No instance slot free (pooling allocator exhausted).
    #[error("no capacity to run the function right now: {0}")]
    Capacity(String),
    /// The request body was over the caller's limit (bytes).
    #[error("the request body exceeds the limit of {0} bytes")]
    RequestTooLarge(u64),
    /// The request body could not be read.
    #[error("the request body could not be read: {0}")]
    RequestBody(String),
    /// The function's answer is unusable (e.g. a module's stdout is not a CGI response).
    #[error("the function's response is unusable: {0}")]
    BadResponse(String),
    /// Host-side failure preparing the call.
    #[error("runtime internal error: {0}")]
    Internal(String),
}

impl InvokeError {
    /// Stable machine-readable code (`function_trap`, `function_timeout`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            InvokeError::Trap(_) => "function_trap",
            InvokeError::Timeout(_) => "function_timeout",
            InvokeError::MemoryLimit(_) => "function_memory_limit",
            InvokeError::StackOverflow => "function_stack_overflow",
            InvokeError::NoResponse => "function_no_response",
            InvokeError::WrongTrigger(_) => "wrong_trigger",
            InvokeError::Capacity(_) => "capacity_exhausted",
            InvokeError::RequestTooLarge(_) => "payload_too_large",
            InvokeError::RequestBody(_) => "invalid_request",
            InvokeError::BadResponse(_) => "function_bad_response",
            InvokeError::Internal(_) => "internal_error",
        }
    }
}

/// A compiled, linked component, ready to instantiate. Shared by all invocations
/// of every function version with the same SHA-256.
pub struct LoadedFunction {
    sha256: String,
    exports: ExportKinds,
    proxy_pre: Option<wasmtime_wasi_http::p2::bindings::ProxyPre<state::HostState>>,
    event_pre: Option<event::EventFunctionPre<state::HostState>>,
    /// Set for core modules (then the two above are `None`).
    module_pre: Option<wasmtime::InstancePre<wagi::WagiState>>,
}

impl LoadedFunction {
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    pub fn exports(&self) -> ExportKinds {
        self.exports
    }
}

/// The runtime. Cheap to share (`Arc`).
pub struct Runtime {
    inner: Arc<engine::Inner>,
}

impl Runtime {
    /// Build the engine (pooling allocator, epochs) and start the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, LoadError> {
        Self::with_inference(config, None)
    }

    /// Like [`Runtime::new`], with wasi:nn served by `inference`.
    pub fn with_inference(
        config: RuntimeConfig,
        inference: Option<Arc<helixflow_nn::Inference>>,
    ) -> Result<Self, LoadError> {
        Ok(Runtime {
            inner: engine::Inner::new(config, inference)?,
        })
    }

    /// The wasi:nn service, if this runtime has one.
    pub fn inference(&self) -> Option<&Arc<helixflow_nn::Inference>> {
        self.inner.inference.as_ref()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Counts of guests' outbound requests refused so far (for `/metrics`).
    pub fn egress_stats(&self) -> Arc<EgressStats> {
        self.inner.egress.stats.clone()
    }

    /// Validate + compile `bytes` (SHA-256 `sha256`), link it, and keep it in memory.
    /// `bytes` is a component, or a WASI preview1 command module (run WAGI-style).
    /// Uses the on-disk compile cache when it has this code for this engine.
    pub async fn load(&self, sha256: &str, bytes: &[u8]) -> Result<Arc<LoadedFunction>, LoadError> {
        self.inner.load(sha256, bytes).await
    }

    /// The already-loaded function for `sha256`, if any.
    pub fn loaded(&self, sha256: &str) -> Option<Arc<LoadedFunction>> {
        self.inner.loaded(sha256)
    }

    /// Remove on-disk compiled components whose SHA-256 is not in `keep` (and those of
    /// other engines). Returns how many were removed.
    pub fn prune_compile_cache(&self, keep: &std::collections::HashSet<String>) -> usize {
        self.inner.prune_compile_cache(keep)
    }

    /// Forget a loaded function (its version was deleted). The disk cache stays.
    pub fn evict(&self, sha256: &str) {
        self.inner.evict(sha256)
    }

    /// Run the function's wasi:http handler on `req`. Returns the response as soon as
    /// the guest sets it (its body may still be streaming); `on_report` receives how the
    /// invocation ended once the guest is done, exactly once, on every path.
    pub async fn invoke_http<B>(
        &self,
        func: &Arc<LoadedFunction>,
        limits: Limits,
        env: InvocationEnv,
        req: hyper::Request<B>,
        on_report: ReportSink,
    ) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        match &func.module_pre {
            Some(pre) => {
                // A boxed body: the module's future then holds no caller-specific type.
                let req = req.map(|b| {
                    http_body_util::BodyExt::boxed_unsync(http_body_util::BodyExt::map_err(
                        b,
                        Into::into,
                    ))
                });
                // Its own task (as components' guests have): a client that goes away does
                // not cut the run short of its report (usage, logs, metering).
                let (inner, pre) = (self.inner.clone(), pre.clone());
                let run = async move {
                    wagi::invoke_http(&inner, &pre, limits, env, req, on_report).await
                };
                match tokio::spawn(tracing::Instrument::in_current_span(run)).await {
                    Ok(r) => r,
                    Err(e) => Err(InvokeError::Internal(format!(
                        "invocation task failed: {e}"
                    ))),
                }
            }
            None => http::invoke(&self.inner, func, limits, env, req, on_report).await,
        }
    }

    /// Run the function's event handler on `payload`.
    pub async fn invoke_event(
        &self,
        func: &Arc<LoadedFunction>,
        limits: Limits,
        env: InvocationEnv,
        ctx: EventContext,
        payload: Vec<u8>,
    ) -> EventOutput {
        match &func.module_pre {
            Some(pre) => wagi::invoke_event(&self.inner, pre, limits, env, ctx, payload).await,
            None => event::invoke(&self.inner, func, limits, env, ctx, payload).await,
        }
    }
}
