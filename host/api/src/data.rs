//! Data plane: the HTTP trigger and the event-invoke route.

use crate::AppState;
use crate::body::{Body, BoxError, json_response};
use crate::control::read_body;
use crate::error::ApiError;
use crate::logs::LogRecord;
use crate::metrics::InvocationLabels;
use crate::resolve::{Target, resolve, split_qualifier};
use crate::tracked::TrackedBody;
use helixflow_runtime::{EventContext, InvocationEnv, InvokeError};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use tracing::Instrument;

pub(crate) type Who = Result<Option<helixflow_auth::Principal>, helixflow_auth::AuthError>;

/// Resolves a function for a caller. The caller needs the invoker role (or better) in
/// the tenant, except for a public function's HTTP endpoint. A caller who may not
/// invoke in that tenant gets 401/403 whether or not the function exists (no probing).
///
/// Invariant: authorization comes before work. For a caller who may not invoke in the
/// tenant, only the function's metadata is read (cached: `resolve::is_public`); its
/// versions are resolved, its artifact fetched and its component loaded only when it
/// is public and this is its HTTP trigger.
pub(crate) async fn authorized_target(
    state: &Arc<AppState>,
    tenant: &str,
    function: &str,
    qualifier: Option<&str>,
    who: &Who,
    http_trigger: bool,
) -> Result<Target, ApiError> {
    let need = crate::access::Need::Tenant(tenant.to_string(), helixflow_auth::Action::Invoke);
    match crate::access::check(who, &need) {
        Ok(_) => resolve(state, tenant, function, qualifier).await,
        Err(refused) => {
            if !(http_trigger
                && crate::resolve::is_public(state, tenant, function, qualifier).await)
            {
                return Err(refused);
            }
            let target = resolve(state, tenant, function, qualifier).await?;
            // The function may have been made private since its metadata was cached.
            if target.function.config.public {
                Ok(target)
            } else {
                Err(refused)
            }
        }
    }
}

/// Record metrics and logs of a finished invocation.
fn record(
    state: &AppState,
    target: &Target,
    trigger: &'static str,
    request_id: &str,
    result: &Result<(), InvokeError>,
    report: &helixflow_runtime::Logs,
    duration: std::time::Duration,
    handled_error: bool,
) {
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
        _ => state
            .metrics
            .invocations
            .get_or_create(&InvocationLabels {
                tenant: tenant.clone(),
                function: function.clone(),
                trigger,
                outcome,
            })
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
    state.logs.push(
        tenant,
        function,
        LogRecord {
            request_id: request_id.to_string(),
            version: target.version.version,
            trigger,
            outcome,
            duration,
            at: std::time::SystemTime::now(),
            stdout: report.stdout.clone(),
            stderr: report.stderr.clone(),
            truncated: report.truncated,
        },
    );
}

fn invocation_span(target: &Target, trigger: &'static str) -> tracing::Span {
    tracing::info_span!(
        "invocation",
        tenant = %target.tenant.name,
        function = %target.function.name,
        version = target.version.version,
        trigger
    )
}

fn version_header(resp: &mut Response<Body>, target: &Target) {
    if let Ok(v) = http::HeaderValue::from_str(&target.version.version.to_string()) {
        resp.headers_mut().insert("x-helixflow-version", v);
    }
}

/// `ANY /{tenant}/{function}[@qualifier]/{path...}`
pub async fn http_trigger_route(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    request_id: &str,
    who: &Who,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let r = http_trigger(state, req, request_id, who).await;
    // `/{tenant}/{function}/...`
    answer(state, r, who, peer, request_id, "http", &path, 0).await
}

/// The response of a data-plane route; refusals (401/403) are audited in the tenant
/// named by path segment `tenant_seg`.
#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &AppState,
    r: Result<Response<Body>, ApiError>,
    who: &Who,
    peer: std::net::SocketAddr,
    request_id: &str,
    plane: &str,
    path: &str,
    tenant_seg: usize,
) -> Response<Body> {
    match r {
        Ok(r) => r,
        Err(e) if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::FORBIDDEN => {
            let tenant = path.trim_start_matches('/').split('/').nth(tenant_seg);
            crate::denied(state, tenant, who, plane, path, &e, peer, request_id).await;
            e.into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn http_trigger(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    request_id: &str,
    who: &Who,
) -> Result<Response<Body>, ApiError> {
    let TriggerPath {
        tenant,
        function,
        qualifier,
        inner,
    } = parse_trigger_path(req.uri().path(), req.uri().query())?;
    let func_q = match &qualifier {
        Some(q) => format!("{function}@{q}"),
        None => function.clone(),
    };
    let function = function.as_str();
    let target =
        authorized_target(state, &tenant, function, qualifier.as_deref(), who, true).await?;
    if !target.loaded.exports().http {
        return Err(ApiError::bad_request(
            "wrong_trigger",
            format!(
                "{tenant}/{function} version {} has no HTTP handler; invoke it with POST /invoke/{tenant}/{func_q}",
                target.version.version
            ),
        ));
    }

    let held = state.quotas.admit(
        &tenant,
        &target.function.name,
        &target.tenant.limits,
        target.function.config.max_concurrency,
    )?;
    let limit = state.settings.max_request_body_bytes;
    crate::control::check_declared_length(req.headers(), limit)?;
    // The guest sees the path below its function, the original query, method and headers.
    let (mut head, body) = req.into_parts();
    head.uri = inner;
    if !head.headers.contains_key(http::header::HOST) {
        head.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    let body = Limited::new(body, limit).map_err(move |e: BoxError| {
        if e.is::<http_body_util::LengthLimitError>() {
            wasmtime_wasi_http_error_body_size(limit)
        } else {
            wasmtime_wasi_http_error_protocol()
        }
    });
    let req = http::Request::from_parts(head, body);
    match run_http(state, &target, held, req, request_id).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            let mut resp = e.into_response();
            version_header(&mut resp, &target);
            Ok(resp)
        }
    }
}

/// Runs `target`'s wasi:http handler on `req` (quota slots `held` are released once the
/// guest is done, body streamed too) and returns its response, streaming, capped at
/// the node's response limit; `Err` when the invocation failed before it answered (the
/// caller chooses the error's shape).
pub(crate) async fn run_http<B, H>(
    state: &Arc<AppState>,
    target: &Target,
    held: H,
    req: http::Request<B>,
    request_id: &str,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<helixflow_runtime::HttpBodyError>,
    H: Send + 'static,
{
    // Metrics and logs once the guest is done (possibly after the body has streamed).
    let on_report: helixflow_runtime::ReportSink = {
        let state = state.clone();
        let target = target.clone();
        let request_id = request_id.to_string();
        Box::new(move |r| {
            // The quota slots are released once the guest is done (body streamed too).
            let _held = held;
            record(
                &state,
                &target,
                "http",
                &request_id,
                &r.result,
                &r.logs,
                r.duration,
                false,
            )
        })
    };
    let response = state
        .runtime
        .invoke_http(
            &target.loaded,
            target.limits.clone(),
            InvocationEnv {
                env: target.env.clone(),
                tenant: target.tenant.name.clone(),
                function: target.function.name.clone(),
                allow_outbound: target.function.config.allow_outbound.clone(),
            },
            req,
            on_report,
        )
        .instrument(invocation_span(target, "http"))
        .await;

    match response {
        Ok(resp) => {
            let cap = state.settings.max_response_bytes as u64;
            let declared = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > cap) {
                // Dropping the response stops the guest's writes.
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "response_too_large",
                    format!("the function declared a response over this node's {cap} byte limit"),
                ));
            }
            let what = format!("{}/{}", target.tenant.name, target.function.name);
            let mut resp = resp.map(|b| {
                crate::body::Capped::new(
                    b.map_err(|e| Box::new(e) as BoxError).boxed_unsync(),
                    cap,
                    what,
                )
                .boxed_unsync()
            });
            version_header(&mut resp, target);
            Ok(resp)
        }
        Err(e) => Err(ApiError::from(&e)),
    }
}

/// Where an HTTP-trigger request goes: `/{tenant}/{function}[@qualifier]/{rest}`.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerPath {
    pub tenant: String,
    pub function: String,
    pub qualifier: Option<String>,
    /// What the guest sees: the path below the function, with the original query.
    pub inner: http::Uri,
}

/// Maps a request path (and query) to its function and the guest's own URI.
pub fn parse_trigger_path(path: &str, query: Option<&str>) -> Result<TriggerPath, ApiError> {
    let rest = path.trim_start_matches('/');
    let mut parts = rest.splitn(3, '/');
    let tenant = parts.next().unwrap_or_default().to_string();
    let func_q = parts.next().unwrap_or_default();
    if func_q.is_empty() || tenant.is_empty() {
        return Err(ApiError::not_found(format!(
            "no function named in {path:?}: use /{{tenant}}/{{function}}/..."
        )));
    }
    let (function, qualifier) = split_qualifier(func_q);
    let inner_path = format!("/{}", parts.next().unwrap_or_default());
    let pq = match query {
        Some(q) => format!("{inner_path}?{q}"),
        None => inner_path,
    };
    let inner = pq
        .parse()
        .map_err(|e| ApiError::bad_request("invalid_request", format!("bad path: {e}")))?;
    Ok(TriggerPath {
        tenant,
        function: function.to_string(),
        qualifier: qualifier.map(str::to_string),
        inner,
    })
}

fn wasmtime_wasi_http_error_body_size(limit: usize) -> helixflow_runtime::HttpBodyError {
    helixflow_runtime::HttpBodyError::HttpRequestBodySize(Some(limit as u64))
}

fn wasmtime_wasi_http_error_protocol() -> helixflow_runtime::HttpBodyError {
    helixflow_runtime::HttpBodyError::HttpProtocolError
}

/// `POST /invoke/{tenant}/{function}[@qualifier]` with the event as the body.
pub async fn invoke_event_route(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    request_id: &str,
    who: &Who,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let r = invoke_event(state, req, request_id, who).await;
    // `/invoke/{tenant}/{function}`
    answer(state, r, who, peer, request_id, "invoke", &path, 1).await
}

async fn invoke_event(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    request_id: &str,
    who: &Who,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let [_, tenant, func_q] = segs.as_slice() else {
        return Err(ApiError::not_found(
            "use POST /invoke/{tenant}/{function}[@version|@alias]",
        ));
    };
    if req.method() != http::Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let (function, qualifier) = split_qualifier(func_q);
    let target = authorized_target(state, tenant, function, qualifier, who, false).await?;
    if !target.loaded.exports().event {
        return Err(ApiError::bad_request(
            "wrong_trigger",
            format!(
                "{tenant}/{function} version {} has no event handler; call it over HTTP at /{tenant}/{func_q}/",
                target.version.version
            ),
        ));
    }
    let client_context = req
        .headers()
        .get("x-helixflow-client-context")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (parts, body) = req.into_parts();
    let payload = read_body(body, &parts.headers, state.settings.max_request_body_bytes).await?;
    let result = call_event(state, &target, payload.to_vec(), request_id, client_context).await;
    let mut resp = match result {
        Ok(Ok(bytes)) => {
            let ct = if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
                "application/json"
            } else {
                "application/octet-stream"
            };
            Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, ct)
                .body(crate::body::full(bytes))
                .unwrap_or_else(|_| Response::new(crate::body::full(Vec::new())))
        }
        Ok(Err((error_type, message))) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &serde_json::json!({"error": {"code": "function_error", "message": message, "error_type": error_type}}),
        ),
        Err(e) => ApiError::from(e).into_response(),
    };
    version_header(&mut resp, &target);
    Ok(resp)
}

/// Runs `target`'s event handler on `payload` and records the invocation (metrics,
/// logs). `Ok(Err((type, message)))` is an error the function returned.
pub(crate) async fn call_event(
    state: &AppState,
    target: &Target,
    payload: Vec<u8>,
    request_id: &str,
    client_context: Option<String>,
) -> Result<Result<Vec<u8>, (String, String)>, CallError> {
    call_event_logged(state, target, payload, request_id, client_context)
        .await
        .result
}

/// An event invocation's result and its captured stdout/stderr.
pub(crate) struct EventCall {
    pub result: Result<Result<Vec<u8>, (String, String)>, CallError>,
    pub logs: helixflow_runtime::Logs,
}

/// `call_event`, keeping the invocation's logs (for `X-Amz-Log-Type: Tail`).
pub(crate) async fn call_event_logged(
    state: &AppState,
    target: &Target,
    payload: Vec<u8>,
    request_id: &str,
    client_context: Option<String>,
) -> EventCall {
    let held = state.quotas.admit(
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
    let out = state
        .runtime
        .invoke_event(
            &target.loaded,
            target.limits.clone(),
            InvocationEnv {
                env: target.env.clone(),
                tenant: target.tenant.name.clone(),
                function: target.function.name.clone(),
                allow_outbound: target.function.config.allow_outbound.clone(),
            },
            EventContext {
                request_id: request_id.to_string(),
                tenant: target.tenant.name.clone(),
                function_name: target.function.name.clone(),
                function_version: target.version.version,
                client_context,
            },
            payload,
        )
        .instrument(invocation_span(target, "event"))
        .await;
    let handled = matches!(out.result, Ok(Err(_)));
    record(
        state,
        target,
        "event",
        request_id,
        &out.report.result,
        &out.report.logs,
        out.report.duration,
        handled,
    );
    EventCall {
        result: out.result.map_err(CallError::Invoke),
        logs: out.report.logs,
    }
}

/// Why `call_event` did not run the function, or how it failed.
pub(crate) enum CallError {
    Quota(ApiError),
    Invoke(InvokeError),
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> ApiError {
        match e {
            CallError::Quota(e) => e,
            CallError::Invoke(e) => ApiError::from(&e),
        }
    }
}
