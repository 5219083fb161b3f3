//! The AWS Lambda Invoke API: `POST /2015-03-31/functions/{FunctionName}/invocations`,
//! so boto3's `lambda` client and the AWS CLI work unmodified (with `--endpoint-url`).
//!
//! * Authentication: AWS Signature V4 with a tenant's access key pair (the key decides
//!   the tenant and the role), or a HelixFlow bearer credential. The whole body is read
//!   and the signature verified over its own SHA-256 before anything runs or is queued
//!   (`sigv4::payload_hash`: a mismatching `x-amz-content-sha256` or `UNSIGNED-PAYLOAD`
//!   is 403 `InvalidSignatureException`).
//! * `FunctionName`: `name`, `name:qualifier`, `account:function:name[:qualifier]` or
//!   `arn:aws:lambda:region:account:function:name[:qualifier]` (percent-encoded or not);
//!   the account is the tenant name or its 12-digit account id ([`account_id`]).
//! * `X-Amz-Invocation-Type`: `RequestResponse` (default), `Event` (stored durably,
//!   then 202; see `events.rs`), `DryRun` (204).
//! * Errors use AWS's shape: `x-amzn-ErrorType` + `{"Type","message"}`; a function
//!   error is 200 with `X-Amz-Function-Error: Unhandled`.

use crate::AppState;
use crate::body::{Body, full};
use crate::error::ApiError;
use crate::tracked::TrackedBody;
use base64::Engine as _;
use helixflow_auth::sigv4::{self, SigV4Error};
use helixflow_auth::{Action, Principal, Role};
use helixflow_node::Who;
use helixflow_node::invoke::CallError;
use helixflow_node::lambda::{account_id, function_arn, runtime_error_type};
use http::{Response, StatusCode};
use std::sync::Arc;

/// Largest synchronous request payload (AWS: 6 MB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Largest `X-Amz-Log-Result` tail (AWS: the last 4 KB).
const LOG_TAIL: usize = 4096;

/// An AWS-shaped API error.
#[derive(Debug)]
pub struct AwsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub retry_after: Option<u32>,
    pub reason: Option<&'static str>,
}

impl AwsError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
            reason: None,
        }
    }
    fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let typ = if self.status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let mut body = serde_json::json!({"Type": typ, "message": self.message});
        if let Some(r) = self.reason {
            body["Reason"] = r.into();
        }
        let mut b = Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-amzn-errortype", self.kind)
            .header("x-amzn-requestid", request_id);
        if let Some(s) = self.retry_after {
            b = b.header(http::header::RETRY_AFTER, s.to_string());
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            b = b.header(http::header::CONNECTION, "close");
        }
        b.body(full(serde_json::to_vec(&body).unwrap_or_default()))
            .unwrap_or_else(|_| Response::new(full(Vec::new())))
    }
}

impl From<ApiError> for AwsError {
    fn from(e: ApiError) -> Self {
        let kind = match e.status {
            StatusCode::NOT_FOUND => "ResourceNotFoundException",
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequestsException",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeException",
            StatusCode::UNAUTHORIZED => "UnrecognizedClientException",
            StatusCode::FORBIDDEN => "AccessDeniedException",
            StatusCode::CONFLICT => "ResourceConflictException",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceException",
            s if s.is_client_error() => "InvalidRequestContentException",
            _ => "ServiceException",
        };
        let status = match e.status {
            StatusCode::UNAUTHORIZED => StatusCode::FORBIDDEN,
            StatusCode::SERVICE_UNAVAILABLE => StatusCode::INTERNAL_SERVER_ERROR,
            s => s,
        };
        let mut out = AwsError::new(status, kind, e.message);
        out.retry_after = e.retry_after;
        if e.status == StatusCode::TOO_MANY_REQUESTS {
            out.reason = Some(if e.code == "rate_limited" || e.code == "budget_exceeded" {
                "CallerRateLimitExceeded"
            } else {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            });
        }
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            out.message = format!(
                "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
            );
        }
        out
    }
}

impl From<SigV4Error> for AwsError {
    fn from(e: SigV4Error) -> Self {
        AwsError::new(StatusCode::FORBIDDEN, e.aws_type(), e.to_string())
    }
}

/// A parsed `FunctionName`.
#[derive(Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub account: Option<String>,
    pub name: String,
    pub qualifier: Option<String>,
}

/// Parses a (percent-decoded) `FunctionName`.
pub fn parse_function_name(s: &str) -> Result<FunctionRef, String> {
    if s.is_empty() || s.len() > 170 {
        return Err("FunctionName must be 1-170 characters".into());
    }
    let parts: Vec<&str> = s.split(':').collect();
    let (account, name, qualifier) = match parts.as_slice() {
        [name] => (None, *name, None),
        [name, q] => (None, *name, Some(*q)),
        [acct, "function", name] => (Some(*acct), *name, None),
        [acct, "function", name, q] => (Some(*acct), *name, Some(*q)),
        ["arn", "aws", "lambda", _region, acct, "function", name] => (Some(*acct), *name, None),
        ["arn", "aws", "lambda", _region, acct, "function", name, q] => {
            (Some(*acct), *name, Some(*q))
        }
        _ => return Err(format!("{s:?} is not a function name, partial ARN or ARN")),
    };
    if let Some(q) = qualifier
        && (q.is_empty() || q.len() > 128)
    {
        return Err("the qualifier must be 1-128 characters".into());
    }
    Ok(FunctionRef {
        account: account.map(str::to_string),
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
    })
}

/// Authenticates the request: SigV4 (tenant access keys) or a HelixFlow bearer.
async fn principal(
    state: &AppState,
    parts: &http::request::Parts,
    body: &[u8],
    bearer: &Who,
) -> Result<Principal, AwsError> {
    let auth = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !state.node.auth.enforce {
        return Ok(Principal::platform_admin());
    }
    if !sigv4::is_sigv4(auth) {
        return match bearer {
            Ok(Some(p)) => Ok(p.clone()),
            Ok(None) => Err(SigV4Error::Missing.into()),
            Err(e) => Err(AwsError::new(
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                e.to_string(),
            )),
        };
    }
    let parsed = sigv4::parse_authorization(auth)?;
    let rec = if sigv4::AccessKey::valid_id(&parsed.access_key_id) {
        helixflow_node::credentials::lookup_access_key(&state.node, &parsed.access_key_id)
            .await
            .map_err(|e| {
                AwsError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    e.message,
                )
            })?
    } else {
        None
    };
    let now = std::time::SystemTime::now();
    let now_secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let usable = rec.filter(|r| !r.revoked && r.valid_until.is_none_or(|t| t > now_secs));
    let mut headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    // HTTP/2 carries the host as :authority.
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(a) = parts.uri.authority()
    {
        headers.push(("host", a.as_str().as_bytes()));
    }
    let req = sigv4::SignedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body,
    };
    let secret = match usable.as_ref() {
        Some(r) => Some(state.node.auth.secrets.open(&r.secret, &format!("access-key:{}:{}", r.tenant, r.access_key_id)).map_err(|e| {
            tracing::error!(access_key_id = %r.access_key_id, error = %e, "cannot open a stored access-key secret");
            AwsError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", "this node cannot verify the credentials (secrets key mismatch); see its log")
        })?),
        None => None,
    };
    sigv4::verify(&req, "lambda", now, |_| secret)?;
    let rec = usable.ok_or(SigV4Error::UnknownKey)?;
    let role = Role::parse(&rec.role).ok_or(SigV4Error::UnknownKey)?;
    Ok(Principal {
        tenant: Some(rec.tenant),
        role,
        subject: format!("ak:{}", rec.access_key_id),
        via: "sigv4",
    })
}

/// `POST /2015-03-31/functions/{FunctionName}/invocations`
pub async fn route(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    bearer: &Who,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    match invoke(state, req, segs, request_id, bearer).await {
        Ok(r) => r,
        Err((e, tenant)) => {
            if e.status == StatusCode::FORBIDDEN {
                let api = ApiError::new(StatusCode::FORBIDDEN, e.kind, e.message.clone());
                crate::denied(
                    state,
                    tenant.as_deref(),
                    bearer,
                    "lambda",
                    &path,
                    &api,
                    peer,
                    request_id,
                )
                .await;
            }
            e.into_response(request_id)
        }
    }
}

type Failure = (AwsError, Option<String>);

async fn invoke(
    state: &Arc<AppState>,
    req: http::Request<TrackedBody>,
    segs: &[&str],
    request_id: &str,
    bearer: &Who,
) -> Result<Response<Body>, Failure> {
    let ["2015-03-31", "functions", raw_name, "invocations"] = segs else {
        return Err((
            AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "only the Invoke operation (POST /2015-03-31/functions/{FunctionName}/invocations) is served here",
            ),
            None,
        ));
    };
    if req.method() != http::Method::POST {
        return Err((
            AwsError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "UnknownOperationException",
                "Invoke is POST",
            ),
            None,
        ));
    }
    let raw_name = raw_name.to_string();
    let (parts, body) = req.into_parts();
    let payload = crate::request::read_body(body, &parts.headers, MAX_SYNC_PAYLOAD)
        .await
        .map_err(|e| (AwsError::from(e), None))?;
    let who = principal(state, &parts, &payload, bearer)
        .await
        .map_err(|e| (e, None))?;

    let decoded = percent_encoding::percent_decode_str(&raw_name)
        .decode_utf8_lossy()
        .to_string();
    let f = parse_function_name(&decoded)
        .map_err(|m| (AwsError::invalid_parameter(m), who.tenant.clone()))?;
    let tenant = match (&who.tenant, &f.account) {
        (Some(t), Some(a)) if a != t && *a != account_id(t) => {
            // Another account's function: the same answer whether or not it exists.
            return Err((
                AwsError::new(
                    StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    format!(
                        "{} is not authorized to invoke functions of account {a}",
                        who.subject
                    ),
                ),
                Some(t.clone()),
            ));
        }
        (Some(t), _) => t.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => {
            return Err((
                AwsError::invalid_parameter(
                    "the platform admin must name the tenant: use account:function:name or an ARN",
                ),
                None,
            ));
        }
    };
    if !who.allows(&tenant, Action::Invoke) {
        return Err((
            AwsError::new(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                format!("{} may not invoke functions", who.subject),
            ),
            Some(tenant),
        ));
    }
    let query_q = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("Qualifier="))
        .map(|q| {
            percent_encoding::percent_decode_str(q)
                .decode_utf8_lossy()
                .to_string()
        });
    let qualifier = match (f.qualifier.clone(), query_q) {
        (Some(a), Some(b)) if a != b => {
            return Err((
                AwsError::invalid_parameter("the qualifier in FunctionName and ?Qualifier= differ"),
                Some(tenant),
            ));
        }
        (a, b) => a.or(b),
    };
    let fail = |e: ApiError| (AwsError::from(e), Some(tenant.clone()));
    let qualifier = match qualifier.as_deref() {
        Some("$LATEST") => Some(
            state
                .node
                .registry
                .function(&tenant, &f.name)
                .await
                .map_err(|e| fail(e.into()))?
                .latest_version
                .to_string(),
        ),
        other => other.map(str::to_string),
    };
    let region = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| sigv4::parse_authorization(a).ok())
        .map(|a| a.region)
        .unwrap_or_else(|| "us-east-1".into());
    let target =
        helixflow_node::resolve::resolve(&state.node, &tenant, &f.name, qualifier.as_deref())
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    fail(ApiError::not_found(format!(
                        "Function not found: {}",
                        function_arn(&region, &tenant, &f.name, qualifier.as_deref())
                    )))
                } else {
                    fail(e.into())
                }
            })?;
    if !target.loaded.exports().event {
        let msg = format!(
            "{tenant}/{} version {} has no event handler (only HTTP): call it at /{tenant}/{}/",
            f.name, target.version.version, f.name
        );
        return Err((AwsError::invalid_parameter(msg), Some(tenant)));
    }
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let client_context = match header("x-amz-client-context") {
        None => None,
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .filter(|b| b.len() <= 3583);
            let json = bytes
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter(|v| v.is_object());
            match json {
                Some(v) => Some(v.to_string()),
                None => {
                    return Err((
                        AwsError::new(
                            StatusCode::BAD_REQUEST,
                            "InvalidRequestContentException",
                            "Client context must be a valid Base64-encoded JSON object (at most 3583 bytes)",
                        ),
                        Some(tenant),
                    ));
                }
            }
        }
    };
    if !payload.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(&payload).is_err() {
        return Err((
            AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                "Could not parse request body into json: the payload must be JSON",
            ),
            Some(tenant),
        ));
    }
    let version = target.version.version.to_string();
    let with_version = |mut r: Response<Body>| {
        if let Ok(v) = http::HeaderValue::from_str(&version) {
            r.headers_mut().insert("x-amz-executed-version", v);
        }
        if let Ok(v) = http::HeaderValue::from_str(request_id) {
            r.headers_mut().insert("x-amzn-requestid", v);
        }
        r
    };
    match header("x-amz-invocation-type")
        .as_deref()
        .unwrap_or("RequestResponse")
    {
        "DryRun" => Ok(with_version(empty(StatusCode::NO_CONTENT))),
        "Event" => {
            if payload.len() > helixflow_store::events::MAX_EVENT_PAYLOAD {
                return Err((
                    AwsError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestTooLargeException",
                        format!(
                            "Request must be smaller than {} bytes for an Event invocation",
                            helixflow_store::events::MAX_EVENT_PAYLOAD
                        ),
                    ),
                    Some(tenant),
                ));
            }
            let id = helixflow_node::async_invoke::accept(
                &state.node,
                &target,
                payload.to_vec(),
                client_context,
                // Who queued it: its spend cap applies when it runs.
                format!("invoke:{}", who.subject),
            )
            .await
            .map_err(|e| fail(e.into()))?;
            let mut r = with_version(empty(StatusCode::ACCEPTED));
            if let Ok(v) = http::HeaderValue::from_str(&id) {
                r.headers_mut().insert("x-amzn-requestid", v);
            }
            Ok(r)
        }
        "RequestResponse" => {
            let caller = helixflow_node::invoke::Caller::of(&Ok(Some(who.clone())), "lambda");
            let call = helixflow_node::invoke::call_event_logged(
                &state.node,
                &target,
                payload.to_vec(),
                request_id,
                client_context,
                &caller,
            )
            .await;
            let tail = header("x-amz-log-type").filter(|t| t == "Tail").map(|_| {
                let mut all = call.logs.stdout.to_vec();
                all.extend_from_slice(&call.logs.stderr);
                let start = all.len().saturating_sub(LOG_TAIL);
                base64::engine::general_purpose::STANDARD.encode(&all[start..])
            });
            let mut resp = match call.result {
                Ok(Ok(bytes)) => ok_body(bytes),
                Ok(Err((error_type, message))) => function_error(&error_type, &message),
                Err(CallError::Quota(e)) => return Err(fail(e.into())),
                Err(CallError::Invoke(e)) => match runtime_error_type(&e) {
                    Some(t) => function_error(t, &e.to_string()),
                    None => return Err(fail(ApiError::from(&e))),
                },
            };
            if let Some(t) = tail.and_then(|t| http::HeaderValue::from_str(&t).ok()) {
                resp.headers_mut().insert("x-amz-log-result", t);
            }
            Ok(with_version(resp))
        }
        other => Err((
            AwsError::invalid_parameter(format!(
                "X-Amz-Invocation-Type {other:?}: use RequestResponse, Event or DryRun"
            )),
            Some(tenant),
        )),
    }
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(full(Vec::new()))
        .unwrap_or_else(|_| Response::new(full(Vec::new())))
}

fn ok_body(bytes: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(bytes))
        .unwrap_or_else(|_| Response::new(full(Vec::new())))
}

fn function_error(error_type: &str, message: &str) -> Response<Body> {
    let body =
        serde_json::json!({"errorMessage": message, "errorType": error_type, "stackTrace": []});
    let mut r = ok_body(serde_json::to_vec(&body).unwrap_or_default());
    r.headers_mut().insert(
        "x-amz-function-error",
        http::HeaderValue::from_static("Unhandled"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names() {
        let p = |s| parse_function_name(s).unwrap();
        assert_eq!(
            p("hello"),
            FunctionRef {
                account: None,
                name: "hello".into(),
                qualifier: None
            }
        );
        assert_eq!(p("hello:live").qualifier.as_deref(), Some("live"));
        assert_eq!(p("acme:function:hello").account.as_deref(), Some("acme"));
        let arn = p("arn:aws:lambda:us-east-1:123456789012:function:hello:7");
        assert_eq!(
            (
                arn.account.as_deref(),
                arn.name.as_str(),
                arn.qualifier.as_deref()
            ),
            (Some("123456789012"), "hello", Some("7"))
        );
        for bad in [
            "",
            "a:b:c",
            "arn:aws:s3:::bucket",
            "hello:",
            &"x".repeat(171),
            "arn:aws:lambda:r:a:layer:x",
        ] {
            assert!(parse_function_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(account_id("acme").len(), 12);
        assert_ne!(account_id("acme"), account_id("globex"));
    }
}
