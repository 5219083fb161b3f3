//! Function triggers over HTTP: a function's own HTTP endpoint
//! (`ANY /{tenant}/{function}[@qualifier]/...`, through its wasi:http handler) and the
//! event-invoke route (`POST /invoke/...`). Resolution, quotas and the invocation itself
//! are `helixflow_node::invoke`.

use crate::AppState;
use crate::body::{Body, BoxError, json_response};
use crate::error::ApiError;
use crate::request::read_body;
use crate::tracked::TrackedBody;
use helixflow_node::Who;
use helixflow_node::invoke::{self, Caller, authorized_target, call_event};
use helixflow_node::resolve::{Target, split_qualifier};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;

fn version_header(resp: &mut Response<Body>, target: &Target) {
    if let Ok(v) = http::HeaderValue::from_str(&target.version.version.to_string()) {
        resp.headers_mut().insert("x-helixflow-version", v);
    }
}

/// `ANY /{tenant}/{function}[@qualifier]/{path...}`; `segs`: the path's segments.
pub async fn http_trigger_route(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    who: &Who,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    match http_trigger(state, req, request_id, who).await {
        Ok(r) => r,
        Err(e) => {
            // `/{tenant}/{function}/...`: refusals are audited in `tenant`.
            let tenant = segs.first().copied();
            refused(state, tenant, who, "http", &path, peer, request_id, e).await
        }
    }
}

/// The response to a failed data-plane request; refusals (401/403) are audited in the
/// tenant the path named.
#[allow(clippy::too_many_arguments)]
async fn refused(
    state: &AppState,
    tenant: Option<&str>,
    who: &Who,
    plane: &str,
    path: &str,
    peer: std::net::SocketAddr,
    request_id: &str,
    e: ApiError,
) -> Response<Body> {
    if e.status == StatusCode::UNAUTHORIZED || e.status == StatusCode::FORBIDDEN {
        crate::denied(state, tenant, who, plane, path, &e, peer, request_id).await;
    }
    e.into_response()
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
    let target = authorized_target(
        &state.node,
        &tenant,
        function,
        qualifier.as_deref(),
        who,
        true,
    )
    .await?;
    if !target.loaded.exports().http {
        return Err(ApiError::bad_request(
            "wrong_trigger",
            format!(
                "{tenant}/{function} version {} has no HTTP handler; invoke it with POST /invoke/{tenant}/{func_q}",
                target.version.version
            ),
        ));
    }

    helixflow_node::budget::admit_spend(&state.node, &tenant, &Caller::of(who, "http").principal)
        .await?;
    let held = state.node.quotas.admit(
        &tenant,
        &target.function.name,
        &target.tenant.limits,
        target.function.config.max_concurrency,
    )?;
    let limit = state.settings.max_request_body_bytes;
    crate::request::check_declared_length(req.headers(), limit)?;
    // The guest sees the path below its function, the original query, method and headers.
    let (mut head, body) = req.into_parts();
    head.uri = inner;
    crate::access::strip_credential(who, &mut head.headers);
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
    match run_http(
        state,
        &target,
        held,
        req,
        request_id,
        Caller::of(who, "http"),
    )
    .await
    {
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
    caller: Caller,
) -> Result<Response<Body>, ApiError>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<helixflow_runtime::HttpBodyError>,
    H: Send + 'static,
{
    let response = invoke::invoke_http(&state.node, target, held, req, request_id, caller).await;
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
        Err(e) => Err(e.into()),
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

/// `POST /invoke/{tenant}/{function}[@qualifier]` with the event as the body; `segs`:
/// the path's segments.
pub async fn invoke_event_route(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    who: &Who,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    match invoke_event(state, req, segs, request_id, who).await {
        Ok(r) => r,
        Err(e) => {
            // `/invoke/{tenant}/{function}`: refusals are audited in `tenant`.
            let tenant = segs.get(1).copied();
            refused(state, tenant, who, "invoke", &path, peer, request_id, e).await
        }
    }
}

async fn invoke_event(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    who: &Who,
) -> Result<Response<Body>, ApiError> {
    let [_, tenant, func_q] = segs else {
        return Err(ApiError::not_found(
            "use POST /invoke/{tenant}/{function}[@version|@alias]",
        ));
    };
    if req.method() != http::Method::POST {
        return Err(ApiError::method_not_allowed());
    }
    let (function, qualifier) = split_qualifier(func_q);
    let target = authorized_target(&state.node, tenant, function, qualifier, who, false).await?;
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
    let result = call_event(
        &state.node,
        &target,
        payload.to_vec(),
        request_id,
        client_context,
        &Caller::of(who, "invoke"),
    )
    .await;
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
        Err(e) => ApiError::from(helixflow_node::NodeError::from(e)).into_response(),
    };
    version_header(&mut resp, &target);
    Ok(resp)
}
