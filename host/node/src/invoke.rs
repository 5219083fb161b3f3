//! One invoke service: who may call a function, running it (wasi:http or event
//! handler) under its tenant's quotas, and recording how it went (metrics, recent logs).

use crate::Node;
use crate::access::{Need, check};
use crate::error::NodeError;
use crate::logs::LogRecord;
use crate::resolve::{Target, resolve};
use helixflow_runtime::{EventContext, InvokeError};
use helixflow_usage::{Dims, Sample};
use std::sync::Arc;
use tracing::Instrument;

/// Who is calling: a principal, no credentials (`Ok(None)`), or credentials that failed.
pub type Who = Result<Option<helixflow_auth::Principal>, helixflow_auth::AuthError>;

/// Resolves a function for a caller. The caller needs the invoker role (or better) in
/// the tenant, except for a public function's HTTP endpoint. A caller who may not
/// invoke in that tenant gets 401/403 whether or not the function exists (no probing).
///
/// Invariant: authorization comes before work. For a caller who may not invoke in the
/// tenant, only the function's metadata is read (cached: `resolve::is_public`); its
/// versions are resolved, its artifact fetched and its component loaded only when it
/// is public and this is its HTTP trigger.
pub async fn authorized_target(
    node: &Arc<Node>,
    tenant: &str,
    function: &str,
    qualifier: Option<&str>,
    who: &Who,
    http_trigger: bool,
) -> Result<Target, NodeError> {
    let need = Need::Tenant(tenant.to_string(), helixflow_auth::Action::Invoke);
    match check(who, &need) {
        Ok(_) => resolve(node, tenant, function, qualifier).await,
        Err(refused) => {
            if !(http_trigger && crate::resolve::is_public(node, tenant, function, qualifier).await)
            {
                return Err(refused);
            }
            let target = resolve(node, tenant, function, qualifier).await?;
            // The function may have been made private since its metadata was cached.
            if target.function.config.public {
                Ok(target)
            } else {
                Err(refused)
            }
        }
    }
}

/// Who asked for an invocation and through which door: what usage is metered by.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `key:{prefix}`, `ak:{access key id}`, a token's subject, `admin`, `anonymous`
    /// (a public function), or what queued the invocation. Never a secret.
    pub principal: String,
    /// `http` (a function's endpoint), `invoke`, `lambda`, `openai`, `async` (a queued
    /// invocation, a schedule tick or a destination).
    pub via: &'static str,
    /// The model an OpenAI route served.
    pub model: Option<String>,
    /// Tokens reserved against the caller's OpenAI rate limits, settled against the
    /// tokens the invocation used when it is recorded ([`crate::budget`]).
    pub reserved_tokens: u64,
}

impl Caller {
    pub fn of(who: &Who, via: &'static str) -> Caller {
        let principal = match who {
            Ok(Some(p)) => p.subject.clone(),
            _ => "anonymous".to_string(),
        };
        Caller {
            principal,
            via,
            model: None,
            reserved_tokens: 0,
        }
    }

    pub fn with_model(mut self, model: &str) -> Caller {
        self.model = Some(model.to_string());
        self
    }

    pub fn with_reserved_tokens(mut self, tokens: u64) -> Caller {
        self.reserved_tokens = tokens;
        self
    }

    /// The usage dimensions of an invocation of `target` by this caller on `node`.
    pub fn dims(&self, node: &Node, target: &Target) -> Dims {
        let d = Dims::default()
            .with("function", target.function.name.clone())
            .with("version", target.version.version.to_string())
            .with("trigger", self.via)
            .with("location", node.settings.node_id.clone())
            .with("key", self.principal.clone());
        match &self.model {
            Some(m) => d.with("model", m.clone()),
            None => d,
        }
    }
}

/// Record metrics, logs and usage of a finished invocation.
#[allow(clippy::too_many_arguments)]
fn record(
    node: &Node,
    target: &Target,
    trigger: &'static str,
    request_id: &str,
    caller: &Caller,
    report: &helixflow_runtime::InvocationReport,
    handled_error: bool,
    bytes: (u64, u64),
) {
    let (result, duration) = (&report.result, report.duration);
    let outcome = match result {
        Ok(()) if handled_error => "function_error",
        Ok(()) => "ok",
        Err(e) => e.code(),
    };
    let tenant = &target.tenant.name;
    let function = &target.function.name;
    let m = &target.metrics;
    match (outcome, trigger) {
        ("ok", "http") => m.http_ok.inc(),
        ("ok", _) => m.event_ok.inc(),
        _ => node
            .metrics
            .invocation(tenant, function, trigger, outcome)
            .inc(),
    };
    if trigger == "http" {
        &m.http_latency
    } else {
        &m.event_latency
    }
    .observe(duration.as_secs_f64());
    if let Err(e) = result {
        tracing::warn!(%request_id, %tenant, %function, version = target.version.version, code = e.code(), error = %e, "invocation failed");
    }
    let (prompt_tokens, completion_tokens) = (
        report.inference.prompt_tokens,
        report.inference.completion_tokens,
    );
    if node.settings.usage_enabled {
        let sample = Sample {
            wall: duration,
            memory_mb: (target.limits.memory_bytes >> 20) as u64,
            error: outcome != "ok",
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            prompt_tokens,
            completion_tokens,
        };
        node.meter
            .invocation(tenant, caller.dims(node, target), &sample);
        node.metrics.observe_meter(&node.meter);
        node.metrics.usage_tokens(
            tenant,
            caller.model.as_deref().unwrap_or("none"),
            prompt_tokens,
            completion_tokens,
        );
        crate::budget::charge(
            node,
            tenant,
            &caller.principal,
            caller.model.as_deref(),
            || sample.counters(),
        );
    }
    // Only OpenAI-API requests count against rpm/tpm (other triggers' tokens are not
    // seen by other nodes' buckets either).
    if caller.via == "openai" {
        crate::budget::settle_tokens(
            node,
            tenant,
            &caller.principal,
            caller.reserved_tokens,
            prompt_tokens + completion_tokens,
        );
    }
    node.logs.push(
        tenant,
        function,
        LogRecord {
            request_id: request_id.to_string(),
            version: target.version.version,
            trigger,
            outcome,
            duration,
            at: std::time::SystemTime::now(),
            stdout: report.logs.stdout.clone(),
            stderr: report.logs.stderr.clone(),
            truncated: report.logs.truncated,
        },
    );
}

/// The span of one invocation (a child of the request's span, so of an incoming W3C
/// `traceparent`; exported over OTLP when configured). `model` is recorded when the
/// caller names one (OpenAI routes). Never a key or secret.
pub fn invocation_span(target: &Target, trigger: &'static str) -> tracing::Span {
    tracing::info_span!(
        "invocation",
        tenant = %target.tenant.name,
        function = %target.function.name,
        version = target.version.version,
        trigger,
        model = tracing::field::Empty,
    )
}

fn invocation_span_of(target: &Target, trigger: &'static str, caller: &Caller) -> tracing::Span {
    let span = invocation_span(target, trigger);
    if let Some(m) = &caller.model {
        span.record("model", m.as_str());
    }
    span
}

/// Runs `target`'s wasi:http handler on `req`; `held` (quota slots) is released, and the
/// invocation recorded, once the guest is done (its body streamed too). Returns the
/// guest's response head as soon as it sets it; `Err` when the invocation failed before
/// it answered.
pub async fn invoke_http<B, H>(
    node: &Arc<Node>,
    target: &Target,
    held: H,
    req: http::Request<B>,
    request_id: &str,
    caller: Caller,
) -> Result<http::Response<helixflow_runtime::HyperOutgoingBody>, NodeError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<helixflow_runtime::HttpBodyError>,
    H: Send + 'static,
{
    let span = invocation_span_of(target, "http", &caller);
    let on_report: helixflow_runtime::ReportSink = {
        let node = node.clone();
        let target = target.clone();
        let request_id = request_id.to_string();
        Box::new(move |r| {
            let _held = held;
            record(
                &node,
                &target,
                "http",
                &request_id,
                &caller,
                &r,
                false,
                (0, 0),
            )
        })
    };
    node.runtime
        .invoke_http(
            &target.loaded,
            target.limits.clone(),
            target.invocation.clone(),
            req,
            on_report,
        )
        .instrument(span)
        .await
        .map_err(|e| NodeError::from(&e))
}

/// Runs `target`'s event handler on `payload` and records the invocation (metrics,
/// logs). `Ok(Err((type, message)))` is an error the function returned.
pub async fn call_event(
    node: &Node,
    target: &Target,
    payload: Vec<u8>,
    request_id: &str,
    client_context: Option<String>,
    caller: &Caller,
) -> Result<Result<Vec<u8>, (String, String)>, CallError> {
    call_event_logged(node, target, payload, request_id, client_context, caller)
        .await
        .result
}

/// An event invocation's result and its captured stdout/stderr.
pub struct EventCall {
    pub result: Result<Result<Vec<u8>, (String, String)>, CallError>,
    pub logs: helixflow_runtime::Logs,
}

/// `call_event`, keeping the invocation's logs (for `X-Amz-Log-Type: Tail`).
pub async fn call_event_logged(
    node: &Node,
    target: &Target,
    payload: Vec<u8>,
    request_id: &str,
    client_context: Option<String>,
    caller: &Caller,
) -> EventCall {
    if let Err(e) = crate::budget::admit_spend(node, &target.tenant.name, &caller.principal).await {
        return EventCall {
            result: Err(CallError::Quota(e)),
            logs: Default::default(),
        };
    }
    let held = node.quotas.admit(
        &target.tenant.name,
        &target.function.name,
        &target.tenant.limits,
        target.function.config.max_concurrency,
    );
    let _held = match held {
        Ok(h) => h,
        Err(e) => {
            return EventCall {
                result: Err(CallError::Quota(e)),
                logs: Default::default(),
            };
        }
    };
    let bytes_in = payload.len() as u64;
    let out = node
        .runtime
        .invoke_event(
            &target.loaded,
            target.limits.clone(),
            target.invocation.clone(),
            EventContext {
                request_id: request_id.to_string(),
                tenant: target.tenant.name.clone(),
                function_name: target.function.name.clone(),
                function_version: target.version.version,
                client_context,
            },
            payload,
        )
        .instrument(invocation_span_of(target, "event", caller))
        .await;
    let bytes_out = match &out.result {
        Ok(Ok(b)) => b.len() as u64,
        _ => 0,
    };
    let handled = matches!(out.result, Ok(Err(_)));
    record(
        node,
        target,
        "event",
        request_id,
        caller,
        &out.report,
        handled,
        (bytes_in, bytes_out),
    );
    EventCall {
        result: out.result.map_err(CallError::Invoke),
        logs: out.report.logs,
    }
}

/// Why `call_event` did not run the function, or how it failed.
pub enum CallError {
    Quota(NodeError),
    Invoke(InvokeError),
}

impl From<CallError> for NodeError {
    fn from(e: CallError) -> NodeError {
        match e {
            CallError::Quota(e) => e,
            CallError::Invoke(e) => NodeError::from(&e),
        }
    }
}
