//! HelixFlow inside AWS Lambda: one Lambda event -> one invocation of a component.
//!
//! API Gateway (REST, payload 1.0; HTTP API and Function URLs, payload 2.0) events go
//! to the component's wasi:http handler and its response comes back in the shape that
//! event source expects; any other event goes to the event handler as JSON. The binary
//! (`helixflow lambda`) owns the Runtime API loop (`lambda_runtime`); this module only
//! knows the event and response wire formats (which is why it lives in the api crate).

use base64::Engine as _;
use helixflow_runtime::{EventContext, InvocationEnv, Limits, LoadedFunction, Runtime};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Largest response a Lambda function may return (AWS: 6 MB).
pub const MAX_LAMBDA_RESPONSE: usize = 6 * 1024 * 1024;
/// Kept back from the Lambda deadline so the answer still gets posted in time.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// What Lambda tells us about one invocation.
#[derive(Debug, Clone)]
pub struct LambdaInvocation {
    pub request_id: String,
    pub deadline: SystemTime,
    pub function_arn: String,
    pub function_name: String,
    pub function_version: u32,
    /// JSON of the client context, if the caller sent one.
    pub client_context: Option<String>,
}

/// A failed invocation: Lambda's `errorType` and `errorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaFailure {
    pub error_type: String,
    pub message: String,
}

impl LambdaFailure {
    fn new(t: &str, m: impl Into<String>) -> Self {
        LambdaFailure {
            error_type: t.into(),
            message: m.into(),
        }
    }
}

/// The kind of an incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// API Gateway REST API (payload format 1.0).
    HttpV1,
    /// HTTP API / Function URL (payload format 2.0).
    HttpV2,
    Other,
}

pub fn classify(event: &Value) -> EventKind {
    if event
        .get("requestContext")
        .and_then(|c| c.get("http"))
        .and_then(|h| h.get("method"))
        .is_some_and(Value::is_string)
    {
        EventKind::HttpV2
    } else if event.get("httpMethod").is_some_and(Value::is_string)
        && event.get("requestContext").is_some()
    {
        EventKind::HttpV1
    } else {
        EventKind::Other
    }
}

fn limits_for(base: &Limits, inv: &LambdaInvocation) -> Result<Limits, LambdaFailure> {
    let left = inv
        .deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(DEADLINE_MARGIN);
    if left.is_zero() {
        return Err(LambdaFailure::new(
            "Sandbox.Timedout",
            "the invocation's deadline had passed before it started",
        ));
    }
    let mut l = base.clone();
    l.timeout = l.timeout.min(left);
    Ok(l)
}

fn print_logs(request_id: &str, logs: &helixflow_runtime::Logs) {
    // Lambda sends the process's output to CloudWatch Logs.
    for (stream, bytes) in [("stdout", &logs.stdout), ("stderr", &logs.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            println!("{request_id}\t{stream}\t{line}");
        }
    }
}

/// Runs one Lambda event through `func`.
pub async fn handle(
    runtime: &Runtime,
    func: &Arc<LoadedFunction>,
    base: &Limits,
    env: &InvocationEnv,
    event: Value,
    inv: LambdaInvocation,
) -> Result<Value, LambdaFailure> {
    let limits = limits_for(base, &inv)?;
    match classify(&event) {
        EventKind::Other => {
            let payload = serde_json::to_vec(&event).unwrap_or_default();
            let ctx = EventContext {
                request_id: inv.request_id.clone(),
                tenant: String::new(),
                function_name: inv.function_name.clone(),
                function_version: inv.function_version,
                client_context: inv.client_context.clone(),
            };
            let out = runtime
                .invoke_event(func, limits, env.clone(), ctx, payload)
                .await;
            print_logs(&inv.request_id, &out.report.logs);
            match out.result {
                Ok(Ok(bytes)) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&bytes).into_owned())
                })),
                Ok(Err((t, m))) => Err(LambdaFailure::new(&t, m)),
                Err(e) => Err(LambdaFailure::new(
                    helixflow_node::lambda::runtime_error_type(&e).unwrap_or(e.code()),
                    e.to_string(),
                )),
            }
        }
        kind => {
            if !func.exports().http {
                return Err(LambdaFailure::new(
                    "Runtime.WrongTrigger",
                    "an HTTP event came in, but the component has no wasi:http handler",
                ));
            }
            let req = http_request(&event, kind)?;
            let request_id = inv.request_id.clone();
            let sink: helixflow_runtime::ReportSink =
                Box::new(move |r| print_logs(&request_id, &r.logs));
            let resp = runtime
                .invoke_http(func, limits, env.clone(), req, sink)
                .await
                .map_err(|e| {
                    LambdaFailure::new(
                        helixflow_node::lambda::runtime_error_type(&e).unwrap_or(e.code()),
                        e.to_string(),
                    )
                })?;
            let (parts, body) = resp.into_parts();
            let body = http_body_util::Limited::new(body, MAX_LAMBDA_RESPONSE)
                .collect()
                .await
                .map_err(|e| {
                    LambdaFailure::new(
                        "Function.ResponseSizeTooLarge",
                        format!(
                            "the response body failed or exceeded {MAX_LAMBDA_RESPONSE} bytes: {e}"
                        ),
                    )
                })?
                .to_bytes();
            Ok(http_response(kind, &parts, &body))
        }
    }
}

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The HTTP request an API Gateway / Function URL event describes.
pub fn http_request(
    event: &Value,
    kind: EventKind,
) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, LambdaFailure> {
    let bad = |m: String| LambdaFailure::new("Runtime.InvalidHttpEvent", m);
    let (method, path, query) = match kind {
        EventKind::HttpV2 => (
            str_field(event, &["requestContext", "http", "method"])
                .unwrap_or("GET")
                .to_string(),
            event
                .get("rawPath")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
            event
                .get("rawQueryString")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ),
        _ => {
            let mut q = Vec::new();
            if let Some(m) = event
                .get("multiValueQueryStringParameters")
                .and_then(Value::as_object)
            {
                for (k, vs) in m {
                    for v in vs
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        q.push(format!("{}={}", enc(k), enc(v)));
                    }
                }
            } else if let Some(m) = event
                .get("queryStringParameters")
                .and_then(Value::as_object)
            {
                for (k, v) in m {
                    q.push(format!(
                        "{}={}",
                        enc(k),
                        enc(v.as_str().unwrap_or_default())
                    ));
                }
            }
            (
                event
                    .get("httpMethod")
                    .and_then(Value::as_str)
                    .unwrap_or("GET")
                    .to_string(),
                event
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string(),
                q.join("&"),
            )
        }
    };
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| bad(format!("invalid HTTP method {method:?}")))?;
    if !path.starts_with('/') {
        return Err(bad(format!("the path {path:?} must start with '/'")));
    }
    let pq = if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    };
    let uri: http::Uri = pq
        .parse()
        .map_err(|e| bad(format!("invalid path or query: {e}")))?;
    let mut b = http::Request::builder().method(method).uri(uri);
    let mut has_host = false;
    if let Some(h) = event
        .get("multiValueHeaders")
        .and_then(Value::as_object)
        .filter(|_| kind == EventKind::HttpV1)
    {
        for (k, vs) in h {
            for v in vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                has_host |= k.eq_ignore_ascii_case("host");
                b = b.header(k.as_str(), v);
            }
        }
    } else if let Some(h) = event.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            let v = v
                .as_str()
                .ok_or_else(|| bad(format!("header {k:?} is not a string")))?;
            has_host |= k.eq_ignore_ascii_case("host");
            b = b.header(k.as_str(), v);
        }
    }
    if let Some(c) = event.get("cookies").and_then(Value::as_array) {
        let joined: Vec<&str> = c.iter().filter_map(Value::as_str).collect();
        if !joined.is_empty() {
            b = b.header(http::header::COOKIE, joined.join("; "));
        }
    }
    if !has_host {
        let host = str_field(event, &["requestContext", "domainName"]).unwrap_or("localhost");
        b = b.header(http::header::HOST, host);
    }
    let body = match event.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s))
            if event
                .get("isBase64Encoded")
                .and_then(Value::as_bool)
                .unwrap_or(false) =>
        {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| {
                    bad(format!(
                        "isBase64Encoded is set but the body is not base64: {e}"
                    ))
                })?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(_) => return Err(bad("the body must be a string".into())),
    };
    b.body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| bad(format!("invalid request: {e}")))
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn is_text(parts: &http::response::Parts) -> bool {
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.contains("x-www-form-urlencoded")
}

/// The response object API Gateway / Function URLs expect.
pub fn http_response(kind: EventKind, parts: &http::response::Parts, body: &[u8]) -> Value {
    let (body_value, b64) = match std::str::from_utf8(body) {
        Ok(s) if is_text(parts) || parts.headers.get(http::header::CONTENT_TYPE).is_none() => {
            (s.to_string(), false)
        }
        _ => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let mut headers = Map::new();
    let mut multi = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if name == http::header::SET_COOKIE && kind == EventKind::HttpV2 {
            cookies.extend(values);
            continue;
        }
        headers.insert(name.as_str().to_string(), Value::String(values.join(",")));
        multi.insert(name.as_str().to_string(), json!(values));
    }
    let mut out = json!({
        "statusCode": parts.status.as_u16(),
        "headers": headers,
        "body": body_value,
        "isBase64Encoded": b64,
    });
    match kind {
        EventKind::HttpV2 if !cookies.is_empty() => out["cookies"] = json!(cookies),
        EventKind::HttpV1 => out["multiValueHeaders"] = Value::Object(multi),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_http_events_both_ways() {
        let v2 = json!({
            "version": "2.0", "rawPath": "/hello/world", "rawQueryString": "a=1&b=two",
            "headers": {"content-type": "text/plain", "x-one": "1"}, "cookies": ["c=1", "d=2"],
            "requestContext": {"http": {"method": "POST"}, "domainName": "abc.lambda-url.us-east-1.on.aws"},
            "body": "aGk=", "isBase64Encoded": true
        });
        assert_eq!(classify(&v2), EventKind::HttpV2);
        let r = http_request(&v2, EventKind::HttpV2).unwrap();
        assert_eq!(r.method(), "POST");
        assert_eq!(
            r.uri().path_and_query().unwrap().as_str(),
            "/hello/world?a=1&b=two"
        );
        assert_eq!(r.headers()["cookie"], "c=1; d=2");
        assert_eq!(r.headers()["host"], "abc.lambda-url.us-east-1.on.aws");
        let v1 = json!({"httpMethod": "GET", "path": "/p", "requestContext": {}, "queryStringParameters": {"q": "a b"}, "headers": {"Host": "x"}, "body": null});
        assert_eq!(classify(&v1), EventKind::HttpV1);
        assert_eq!(
            http_request(&v1, EventKind::HttpV1)
                .unwrap()
                .uri()
                .to_string(),
            "/p?q=a%20b"
        );
        assert_eq!(
            classify(&json!({"detail-type": "Scheduled Event"})),
            EventKind::Other
        );
        for bad in [
            json!({"httpMethod": "G E T", "path": "/", "requestContext": {}}),
            json!({"httpMethod": "GET", "path": "no-slash", "requestContext": {}}),
            json!({"httpMethod": "GET", "path": "/", "requestContext": {}, "body": "%%%", "isBase64Encoded": true}),
            json!({"httpMethod": "GET", "path": "/", "requestContext": {}, "body": 5}),
        ] {
            assert_eq!(
                http_request(&bad, EventKind::HttpV1)
                    .unwrap_err()
                    .error_type,
                "Runtime.InvalidHttpEvent",
                "{bad}"
            );
        }
        let (parts, _) = http::Response::builder()
            .status(201)
            .header("content-type", "image/png")
            .header("set-cookie", "a=1")
            .body(())
            .unwrap()
            .into_parts();
        let out = http_response(EventKind::HttpV2, &parts, &[0xff, 0x00]);
        assert_eq!(out["statusCode"], 201);
        assert_eq!(out["isBase64Encoded"], true);
        assert_eq!(out["body"], "/wA=");
        assert_eq!(out["cookies"], json!(["a=1"]));
    }
}
