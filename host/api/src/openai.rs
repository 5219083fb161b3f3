//! OpenAI-compatible API: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/embeddings`,
//! `POST /v1/chat/completions`.
//!
//! Chat: a model served with `serve = {kind = "chat", function}` answers through that
//! function's wasi:http handler, which gets the client's body as is and answers in
//! OpenAI's shapes itself (JSON, or server-sent events streamed as tokens are produced;
//! the response streams through unbuffered). This layer authenticates, routes by model
//! and rejects what it can without running the function (invalid JSON, no model, no
//! messages, unknown model).
//!
//! A model is served when its registry config has `serve = {kind, function}`: requests
//! for it run that function (same tenant) as an event with
//! `{"model": "<name>", "input": ["..."]}` and the function answers
//! `{"data": [[f32, ...], ...], "usage": {"prompt_tokens": n}}`. The function does the
//! tokenization and pooling in its sandbox and the model compute through wasi:nn.
//!
//! The caller's tenant is the OpenAI organization (`OpenAI-Organization` header, which
//! the official clients send when `organization=` is set) until API keys exist.
//! Errors use OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

use crate::AppState;
use crate::body::{Body, json_response};
use crate::error::ApiError;
use crate::request::read_body;
use crate::tracked::TrackedBody;
use base64::Engine as _;
use helixflow_node::Who;
use helixflow_node::invoke::Caller;
use helixflow_store::models::ServeKind;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

struct OaiError {
    status: StatusCode,
    kind: &'static str,
    code: String,
    param: Option<&'static str>,
    message: String,
}

impl OaiError {
    fn invalid(code: &str, param: Option<&'static str>, message: impl Into<String>) -> OaiError {
        OaiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: code.into(),
            param,
            message: message.into(),
        }
    }
    fn into_response(self) -> Response<Body> {
        json_response(
            self.status,
            &json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}),
        )
    }
}

impl From<helixflow_node::NodeError> for OaiError {
    fn from(e: helixflow_node::NodeError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for OaiError {
    fn from(e: ApiError) -> OaiError {
        let kind = match e.status.as_u16() {
            401 | 403 => "authentication_error",
            404 | 400 | 413 | 422 => "invalid_request_error",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        match e.code {
            // OpenAI's shape for a spent quota (its `retry-after` is the month's end:
            // the official clients retry only waits up to a minute, and then stop).
            "budget_exceeded" => OaiError {
                status: e.status,
                kind: "insufficient_quota",
                code: "insufficient_quota".into(),
                param: None,
                message: format!(
                    "You exceeded your current quota, please check your plan and billing details. ({})",
                    e.message
                ),
            },
            // OpenAI names the limit that was hit as the type: `requests` or `tokens`.
            "rate_limit_exceeded" => OaiError {
                status: e.status,
                kind: if e.message.contains(" tokens per minute") {
                    "tokens"
                } else {
                    "requests"
                },
                code: e.code.to_string(),
                param: None,
                message: e.message,
            },
            _ => OaiError {
                status: e.status,
                kind,
                code: e.code.to_string(),
                param: None,
                message: e.message,
            },
        }
    }
}

/// What the rate limits said about a request: OpenAI's `x-ratelimit-*` headers, and
/// `retry-after` on a 429 (the official clients wait that long before retrying).
#[derive(Default)]
struct RateCtx {
    info: helixflow_node::budget::RateInfo,
    retry_after: Option<u32>,
}

impl RateCtx {
    /// Takes one request and `reserved` tokens from `caller`'s rate limits (the
    /// headers are kept either way).
    async fn admit(
        &mut self,
        state: &AppState,
        tenant: &str,
        caller: &str,
        reserved: u64,
    ) -> Result<(), OaiError> {
        match helixflow_node::budget::admit_rate(&state.node, tenant, caller, reserved).await {
            Ok(info) => {
                self.info = info;
                Ok(())
            }
            Err((e, info)) => {
                self.info = info;
                Err(self.refused(e))
            }
        }
    }

    /// Keeps a refusal's wait for the `retry-after` header.
    fn refused(&mut self, e: helixflow_node::NodeError) -> OaiError {
        self.retry_after = e.retry_after;
        OaiError::from(e)
    }

    fn apply(&self, resp: &mut Response<Body>) {
        use helixflow_usage::budget::openai_duration;
        let h = resp.headers_mut();
        let mut put = |name: &'static str, v: String| {
            if let Ok(v) = http::HeaderValue::from_str(&v) {
                h.insert(name, v);
            }
        };
        if let Some((limit, remaining, reset)) = self.info.requests {
            put("x-ratelimit-limit-requests", limit.to_string());
            put("x-ratelimit-remaining-requests", remaining.to_string());
            put("x-ratelimit-reset-requests", openai_duration(reset));
        }
        if let Some((limit, remaining, reset)) = self.info.tokens {
            put("x-ratelimit-limit-tokens", limit.to_string());
            put("x-ratelimit-remaining-tokens", remaining.to_string());
            put("x-ratelimit-reset-tokens", openai_duration(reset));
        }
        if let Some(s) = self.retry_after {
            put("retry-after", s.to_string());
            put("retry-after-ms", (u64::from(s) * 1000).to_string());
        }
    }
}

/// Tokens a request reserves against `tpm` before it runs: its text at ~4 bytes a token,
/// plus the completion it may generate (`max_tokens`, else [`DEFAULT_RESERVED_COMPLETION`]).
/// Settled against the tokens it used when it ends.
fn estimate_tokens(text_bytes: usize, max_tokens: Option<u64>) -> u64 {
    (text_bytes as u64)
        .div_ceil(4)
        .saturating_add(max_tokens.unwrap_or(0))
}

/// Completion tokens reserved for a chat request without `max_tokens`.
const DEFAULT_RESERVED_COMPLETION: u64 = 256;

/// `segs`: the path's segments after `/v1`.
pub async fn route(
    state: &std::sync::Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    who: &Who,
) -> Response<Body> {
    let mut rate = RateCtx::default();
    let mut resp = match route_inner(state, req, segs, request_id, who, &mut rate).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    rate.apply(&mut resp);
    resp
}

/// The caller's tenant: the one its key or token belongs to. The platform admin names
/// one as the OpenAI organization (`OpenAI-Organization`, `organization=` in clients).
fn tenant_of(req: &http::Request<TrackedBody>, who: &Who) -> Result<String, OaiError> {
    let p = match who {
        Ok(Some(p)) => p,
        Ok(None) => return Err(auth_err(&helixflow_auth::AuthError::Missing)),
        Err(e) => return Err(auth_err(e)),
    };
    if !p.role.can(helixflow_auth::Action::Invoke) {
        return Err(OaiError {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "forbidden".into(),
            param: None,
            message: "this key cannot invoke models".into(),
        });
    }
    if let Some(t) = &p.tenant {
        return Ok(t.clone());
    }
    let t = req
        .headers()
        .get("openai-organization")
        .or_else(|| req.headers().get("x-helixflow-tenant"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OaiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "invalid_request_error",
            code: "missing_tenant".into(),
            param: None,
            message: "the platform admin key must name a tenant as the OpenAI organization (OpenAI-Organization header, `organization=` in the client)".into(),
        })?;
    helixflow_store::registry::validate_name("tenant", t)
        .map_err(|e| OaiError::invalid("invalid_tenant", None, e.to_string()))?;
    Ok(t.to_string())
}

fn auth_err(e: &helixflow_auth::AuthError) -> OaiError {
    OaiError {
        status: StatusCode::UNAUTHORIZED,
        kind: "invalid_request_error",
        code: "invalid_api_key".into(),
        param: None,
        message: format!("{e}: pass your HelixFlow API key as the OpenAI API key"),
    }
}

async fn route_inner(
    state: &std::sync::Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    who: &Who,
    rate: &mut RateCtx,
) -> Result<Response<Body>, OaiError> {
    let method = req.method().clone();
    match (&method, segs) {
        (&Method::GET, ["models"]) => {
            let tenant = tenant_of(&req, who)?;
            let models = state
                .node
                .registry
                .models(&tenant)
                .await
                .map_err(ApiError::from)?;
            let data: Vec<Value> = models
                .iter()
                .filter(|m| m.config.serve.is_some())
                .map(model_json)
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": data}),
            ))
        }
        (&Method::GET, ["models", id]) => {
            let tenant = tenant_of(&req, who)?;
            let m = served_model(state, &tenant, id).await?;
            Ok(json_response(StatusCode::OK, &model_json(&m)))
        }
        (&Method::POST, ["embeddings"]) => embeddings(state, req, request_id, who, rate).await,
        (&Method::POST, ["chat", "completions"]) => chat(state, req, request_id, who, rate).await,
        (_, ["models"] | ["models", _] | ["embeddings"] | ["chat", "completions"]) => {
            Err(OaiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                kind: "invalid_request_error",
                code: "method_not_allowed".into(),
                param: None,
                message: format!("{method} is not allowed here"),
            })
        }
        _ => Err(OaiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "unknown_url".into(),
            param: None,
            message: format!(
                "unknown endpoint {}: this node serves /v1/models, /v1/embeddings and /v1/chat/completions",
                req.uri().path().trim_end_matches('/')
            ),
        }),
    }
}

fn model_json(m: &helixflow_store::models::Model) -> Value {
    let created = time::OffsetDateTime::parse(
        &m.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| t.unix_timestamp())
    .unwrap_or(0);
    json!({"id": m.name, "object": "model", "created": created, "owned_by": m.tenant})
}

async fn served_model(
    state: &AppState,
    tenant: &str,
    id: &str,
) -> Result<helixflow_store::models::Model, OaiError> {
    let not_found = || OaiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: "model_not_found".into(),
        param: Some("model"),
        message: format!("The model `{id}` does not exist or you do not have access to it."),
    };
    if helixflow_store::registry::validate_name("model", id).is_err() {
        return Err(not_found());
    }
    match state.node.registry.model(tenant, id).await {
        Ok(m) if m.config.serve.is_some() => Ok(m),
        Ok(_) => Err(not_found()),
        Err(helixflow_store::registry::RegistryError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(ApiError::from(e).into()),
    }
}

const MAX_INPUTS: usize = 2048;

/// A POST body to an OpenAI route: the caller's tenant, the raw bytes, the JSON, and
/// its `model`.
struct OaiRequest {
    tenant: String,
    bytes: bytes::Bytes,
    body: Value,
    model: String,
}

async fn read_request(
    state: &AppState,
    req: http::Request<TrackedBody>,
    who: &Who,
) -> Result<OaiRequest, OaiError> {
    let tenant = tenant_of(&req, who)?;
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, &parts.headers, state.settings.max_request_body_bytes).await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        OaiError::invalid(
            "invalid_json",
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            OaiError::invalid(
                "missing_model",
                Some("model"),
                "you must provide a model parameter (a string)",
            )
        })?
        .to_string();
    Ok(OaiRequest {
        tenant,
        bytes,
        body,
        model,
    })
}

async fn embeddings(
    state: &std::sync::Arc<AppState>,
    req: http::Request<TrackedBody>,
    request_id: &str,
    who: &Who,
    rate: &mut RateCtx,
) -> Result<Response<Body>, OaiError> {
    let OaiRequest {
        tenant,
        body,
        model,
        ..
    } = read_request(state, req, who).await?;
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::Array(a))
            if !a.is_empty() && a.iter().all(|v| v.is_number() || v.is_array()) =>
        {
            return Err(OaiError::invalid(
                "unsupported_input",
                Some("input"),
                "token-id input is not supported by this model's function; send text",
            ));
        }
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(OaiError::invalid(
                "invalid_input",
                Some("input"),
                "'input' must not be empty",
            ));
        }
        None => {
            return Err(OaiError::invalid(
                "missing_input",
                Some("input"),
                "you must provide an input parameter",
            ));
        }
        _ => {
            return Err(OaiError::invalid(
                "invalid_input",
                Some("input"),
                "'input' must be a string or an array of strings",
            ));
        }
    };
    if inputs.len() > MAX_INPUTS {
        return Err(OaiError::invalid(
            "too_many_inputs",
            Some("input"),
            format!("at most {MAX_INPUTS} inputs per request"),
        ));
    }
    if inputs.iter().any(|s| s.is_empty()) {
        return Err(OaiError::invalid(
            "invalid_input",
            Some("input"),
            "'input' strings must not be empty",
        ));
    }
    let base64 = match body.get("encoding_format") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "float" => false,
        Some(Value::String(s)) if s == "base64" => true,
        _ => {
            return Err(OaiError::invalid(
                "invalid_encoding_format",
                Some("encoding_format"),
                "encoding_format must be \"float\" or \"base64\"",
            ));
        }
    };
    let dimensions = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(d) if d >= 1 => Some(d as usize),
            _ => {
                return Err(OaiError::invalid(
                    "invalid_dimensions",
                    Some("dimensions"),
                    "dimensions must be a positive integer",
                ));
            }
        },
    };
    let m = served_model(state, &tenant, &model).await?;
    let serve = m
        .config
        .serve
        .clone()
        .ok_or_else(|| OaiError::invalid("model_not_found", Some("model"), "not served"))?;
    if serve.kind != ServeKind::Embeddings {
        return Err(OaiError::invalid(
            "wrong_model_kind",
            Some("model"),
            format!("`{model}` is not an embeddings model"),
        ));
    }
    let target =
        // `tenant_of` authorized the caller to invoke in `tenant` (the only check).
        helixflow_node::resolve::resolve(&state.node, &tenant, &serve.function, None).await?;
    let payload = serde_json::to_vec(&json!({"model": model, "input": inputs})).unwrap_or_default();
    let caller = Caller::of(who, "openai").with_model(&model);
    let reserved = estimate_tokens(inputs.iter().map(|s| s.len() + 4).sum(), None);
    rate.admit(state, &tenant, &caller.principal, reserved)
        .await?;
    let out = helixflow_node::invoke::call_event(
        &state.node,
        &target,
        payload,
        request_id,
        None,
        &caller,
    )
    .await;
    // The reservation becomes the tokens used (none when it failed).
    let used = match &out {
        Ok(Ok(raw)) => serde_json::from_slice::<Value>(raw)
            .ok()
            .and_then(|v| v.pointer("/usage/prompt_tokens").and_then(Value::as_u64))
            .unwrap_or(0),
        _ => 0,
    };
    helixflow_node::budget::settle_tokens(&state.node, &tenant, &caller.principal, reserved, used);
    let raw = match out {
        Ok(Ok(b)) => b,
        Ok(Err((ty, message))) => {
            return Err(OaiError::invalid(&ty, Some("input"), message));
        }
        Err(helixflow_node::invoke::CallError::Quota(e)) => return Err(rate.refused(e)),
        Err(e) => return Err(ApiError::from(helixflow_node::NodeError::from(e)).into()),
    };
    #[derive(serde::Deserialize)]
    struct FnOut {
        data: Vec<Vec<f32>>,
        usage: FnUsage,
    }
    #[derive(serde::Deserialize)]
    struct FnUsage {
        prompt_tokens: u64,
    }
    let mut fo: FnOut = serde_json::from_slice(&raw).map_err(|e| OaiError {
        status: StatusCode::BAD_GATEWAY,
        kind: "server_error",
        code: "bad_function_output".into(),
        param: None,
        message: format!("the embeddings function returned malformed output: {e}"),
    })?;
    if fo.data.len() != inputs.len() {
        return Err(OaiError {
            status: StatusCode::BAD_GATEWAY,
            kind: "server_error",
            code: "bad_function_output".into(),
            param: None,
            message: format!(
                "the embeddings function returned {} vectors for {} inputs",
                fo.data.len(),
                inputs.len()
            ),
        });
    }
    if let Some(d) = dimensions {
        for v in &mut fo.data {
            if d > v.len() {
                return Err(OaiError::invalid(
                    "invalid_dimensions",
                    Some("dimensions"),
                    format!("`{model}` has {} dimensions; cannot return {d}", v.len()),
                ));
            }
            // Matryoshka-style shortening: truncate, then renormalise (as OpenAI does).
            v.truncate(d);
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                v.iter_mut().for_each(|x| *x /= n);
            }
        }
    }
    let data: Vec<Value> = fo
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let mut b = Vec::with_capacity(v.len() * 4);
                for x in v {
                    b.extend_from_slice(&x.to_le_bytes());
                }
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let n = fo.usage.prompt_tokens;
    if state.node.settings.usage_enabled {
        state.node.meter.add(
            &tenant,
            caller.dims(&state.node, &target),
            "embedding_tokens",
            n,
        );
        helixflow_node::budget::charge(
            &state.node,
            &tenant,
            &caller.principal,
            Some(&model),
            || std::collections::BTreeMap::from([("embedding_tokens".to_string(), n)]),
        );
        // OpenAI counts an embedding's input as prompt tokens.
        state.node.metrics.usage_tokens(&tenant, &model, n, 0);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": n, "total_tokens": n}}),
    ))
}

async fn chat(
    state: &std::sync::Arc<AppState>,
    req: http::Request<TrackedBody>,
    request_id: &str,
    who: &Who,
    rate: &mut RateCtx,
) -> Result<Response<Body>, OaiError> {
    let OaiRequest {
        tenant,
        bytes,
        body,
        model,
    } = read_request(state, req, who).await?;
    match body.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => {}
        Some(Value::Array(_)) => {
            return Err(OaiError::invalid(
                "empty_messages",
                Some("messages"),
                "'messages' must contain at least one message",
            ));
        }
        None | Some(Value::Null) => {
            return Err(OaiError::invalid(
                "missing_messages",
                Some("messages"),
                "you must provide 'messages'",
            ));
        }
        _ => {
            return Err(OaiError::invalid(
                "invalid_messages",
                Some("messages"),
                "'messages' must be an array",
            ));
        }
    }
    let m = served_model(state, &tenant, &model).await?;
    let serve = m
        .config
        .serve
        .clone()
        .ok_or_else(|| OaiError::invalid("model_not_found", Some("model"), "not served"))?;
    if serve.kind != ServeKind::Chat {
        return Err(OaiError::invalid(
            "wrong_model_kind",
            Some("model"),
            format!("`{model}` is not a chat model (it serves {})", serve.kind),
        ));
    }
    let target =
        // `tenant_of` authorized the caller to invoke in `tenant` (the only check).
        helixflow_node::resolve::resolve(&state.node, &tenant, &serve.function, None).await?;
    if !target.loaded.exports().http {
        return Err(OaiError {
            status: StatusCode::BAD_GATEWAY,
            kind: "server_error",
            code: "bad_function".into(),
            param: None,
            message: format!("the chat function {} has no HTTP handler", serve.function),
        });
    }
    let caller = Caller::of(who, "openai").with_model(&model);
    let max_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64));
    let reserved = estimate_tokens(
        bytes.len(),
        Some(max_tokens.unwrap_or(DEFAULT_RESERVED_COMPLETION)),
    );
    rate.admit(state, &tenant, &caller.principal, reserved)
        .await?;
    // From here, the reservation is settled when the invocation is recorded, or below.
    let unreserve = |e: helixflow_node::NodeError, rate: &mut RateCtx| {
        helixflow_node::budget::settle_tokens(&state.node, &tenant, &caller.principal, reserved, 0);
        rate.refused(e)
    };
    if let Err(e) =
        helixflow_node::budget::admit_spend(&state.node, &tenant, &caller.principal).await
    {
        return Err(unreserve(e, rate));
    }
    let held = match state.node.quotas.admit(
        &tenant,
        &target.function.name,
        &target.tenant.limits,
        target.function.config.max_concurrency,
    ) {
        Ok(h) => h,
        Err(e) => return Err(unreserve(e, rate)),
    };
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/v1/chat/completions")
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes).map_err(
            |never: std::convert::Infallible| -> helixflow_runtime::HttpBodyError {
                match never {}
            },
        ))
        .map_err(|e| OaiError::invalid("invalid_request", None, e.to_string()))?;
    // A failure before the function answered (trap, timeout, memory) in OpenAI's shape.
    let caller = caller.with_reserved_tokens(reserved);
    crate::trigger::run_http(state, &target, held, req, request_id, caller)
        .await
        .map_err(OaiError::from)
}
