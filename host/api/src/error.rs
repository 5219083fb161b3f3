//! The API's error shape: an HTTP status + `{"error":{"code","message"}}`.

use crate::body::{Body, full};
use helixflow_node::{ErrorKind, NodeError};
use helixflow_runtime::{InvokeError, LoadError};
use helixflow_store::StoreError;
use helixflow_store::registry::RegistryError;
use http::{Response, StatusCode};

/// Every `code` an error body of the API can carry (`{"error": {"code", ...}}`, and
/// `code` in the OpenAI routes' errors), sorted. The OpenAPI document's `ErrorCode` enum
/// is this list; the unit test below reads the sources of the crates whose errors reach
/// the API and fails when a code is missing here (or listed but no longer produced).
pub const ERROR_CODES: &[&str] = &[
    "already_replayed",
    "bad_body",
    "bad_function",
    "bad_function_output",
    "budget_exceeded",
    "capacity_exhausted",
    "client_certificate_required",
    "compile_error",
    "concurrency_limited",
    "conflict",
    "credentials_not_yet_valid",
    "empty_body",
    "empty_messages",
    "expired_credentials",
    "forbidden",
    "function_bad_response",
    "function_error",
    "function_memory_limit",
    "function_no_response",
    "function_stack_overflow",
    "function_timeout",
    "function_trap",
    "inference_disabled",
    "insufficient_quota",
    "internal",
    "internal_error",
    "invalid_alert",
    "invalid_api_key",
    "invalid_budget",
    "invalid_config",
    "invalid_credentials",
    "invalid_dashboard",
    "invalid_dimension",
    "invalid_dimensions",
    "invalid_encoding_format",
    "invalid_filter",
    "invalid_input",
    "invalid_json",
    "invalid_messages",
    "invalid_metric",
    "invalid_model",
    "invalid_price",
    "invalid_range",
    "invalid_request",
    "invalid_role",
    "invalid_rule",
    "invalid_step",
    "invalid_tenant",
    "invalid_threshold",
    "invalid_time",
    "invalid_version",
    "invalid_webhook",
    "invalid_window",
    "malformed_credentials",
    "method_not_allowed",
    "missing_credentials",
    "missing_input",
    "missing_kind",
    "missing_messages",
    "missing_metric",
    "missing_model",
    "missing_tenant",
    "missing_threshold",
    "model_load_failed",
    "model_not_found",
    "no_event_handler",
    "no_supported_export",
    "not_a_component",
    "not_found",
    "payload_too_large",
    "rate_limit_exceeded",
    "rate_limited",
    "response_too_large",
    "revoked_credentials",
    "secrets_unavailable",
    "service_worker_refused",
    "step_too_fine",
    "store_corrupt",
    "store_unavailable",
    "tenant_not_served",
    "too_many_alerts",
    "too_many_dashboards",
    "too_many_inputs",
    "unknown_function",
    "unknown_kind",
    "unknown_metric",
    "unknown_url",
    "unsupported_import",
    "unsupported_input",
    "webhook_not_allowed",
    "wrong_model_kind",
    "wrong_trigger",
];

/// An API error: status, stable machine-readable code, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After`, when retrying later can help.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut b = Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json");
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was not read: the connection cannot be reused.
            b = b.header(http::header::CONNECTION, "close");
        }
        if let Some(s) = self.retry_after {
            b = b.header(http::header::RETRY_AFTER, s.to_string());
        }
        b.body(full(serde_json::to_vec(&body).unwrap_or_default()))
            .unwrap_or_else(|_| Response::new(full(Vec::new())))
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match e.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Limited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        };
        ApiError {
            status,
            code: e.code,
            message: e.message,
            retry_after: e.retry_after,
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        NodeError::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        NodeError::from(e).into()
    }
}

impl From<LoadError> for ApiError {
    fn from(e: LoadError) -> Self {
        NodeError::from(e).into()
    }
}

impl From<&InvokeError> for ApiError {
    fn from(e: &InvokeError) -> Self {
        NodeError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::ERROR_CODES;
    use std::collections::BTreeSet;

    /// The crates whose error codes reach the API's error bodies.
    const CRATES: &[&str] = &["api", "node", "runtime", "usage", "auth", "store", "nn"];

    /// The argument texts of the call whose `(` ends at `at` (up to the closing `)`).
    fn arguments(s: &str, at: usize) -> Vec<&str> {
        let (mut out, mut depth, mut start, mut in_str) = (Vec::new(), 0usize, at, false);
        let b = s.as_bytes();
        let mut i = at;
        while i < b.len() {
            match b[i] {
                b'\\' if in_str => i += 1,
                b'"' => in_str = !in_str,
                _ if in_str => {}
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => {
                    out.push(s[start..i].trim());
                    return out;
                }
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => {
                    out.push(s[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    /// `"snake_case"` -> `snake_case`.
    fn code_literal(arg: &str) -> Option<&str> {
        let c = arg.strip_prefix('"')?.strip_suffix('"')?;
        let ok = c.starts_with(|ch: char| ch.is_ascii_lowercase())
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        ok.then_some(c)
    }

    /// The error codes written in `src`: the code argument of the error constructors,
    /// `code: "..."` fields, `"code": "..."` in `json!` bodies, and the arms of `fn code(&self) -> &'static str` and of
    /// `let code = match`.
    fn codes_in(src: &str, out: &mut BTreeSet<String>) {
        // Constructors whose code is the first string-literal argument among the first
        // two (`ApiError::new(status, code, ..)`, `UsageError::new(code, ..)`), or the
        // first argument.
        let two = [
            "ApiError::new(",
            "NodeError::new(",
            "UsageError::new(",
            "Self::new(",
        ];
        let one = ["bad_request(", "::invalid(", "::internal("];
        for (pats, n) in [(&two[..], 2), (&one[..], 1)] {
            for p in pats {
                for (at, _) in src.match_indices(p) {
                    let args = arguments(src, at + p.len());
                    if let Some(c) = args.iter().take(n).find_map(|a| code_literal(a)) {
                        out.insert(c.to_string());
                    }
                }
            }
        }
        for (at, p) in src
            .match_indices("code: \"")
            .chain(src.match_indices("\"code\": \""))
        {
            let rest = &src[at + p.len() - 1..];
            if let Some(end) = rest[1..].find('"')
                && let Some(c) = code_literal(&rest[..end + 2])
            {
                out.insert(c.to_string());
            }
        }
        for p in ["fn code(&self) -> &'static str {", "let code = match"] {
            for (at, _) in src.match_indices(p) {
                let body = &src[at..];
                let body = &body[..body.find("\n    }\n").unwrap_or(body.len())];
                for (arm, _) in body.match_indices("=> \"") {
                    let rest = &body[arm + 3..];
                    if let Some(end) = rest[1..].find('"')
                        && let Some(c) = code_literal(&rest[..end + 2])
                    {
                        out.insert(c.to_string());
                    }
                }
            }
        }
    }

    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// `ERROR_CODES` is exactly the set of codes the sources produce: a new code must be
    /// listed (it becomes part of the OpenAPI document's `ErrorCode` enum), and a code no
    /// longer produced must go.
    #[test]
    fn error_codes_are_the_codes_the_sources_produce() {
        let host = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for c in CRATES {
            rust_files(&host.join(c).join("src"), &mut files);
        }
        assert!(
            files.len() > 20,
            "found the sources ({} files)",
            files.len()
        );
        let mut found = BTreeSet::new();
        for f in &files {
            let src = std::fs::read_to_string(f).unwrap_or_default();
            // Unit tests (at the end of a file) produce no API errors.
            let code = src.split("\n#[cfg(test)]").next().unwrap_or_default();
            codes_in(code, &mut found);
        }
        let listed: BTreeSet<String> = ERROR_CODES.iter().map(|c| c.to_string()).collect();
        let missing: Vec<_> = found.difference(&listed).collect();
        let stale: Vec<_> = listed.difference(&found).collect();
        assert!(
            missing.is_empty() && stale.is_empty(),
            "host/api/src/error.rs ERROR_CODES: add {missing:?}, remove {stale:?} \
             (then regenerate host/api/openapi.json)"
        );
        let mut sorted = ERROR_CODES.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, ERROR_CODES, "ERROR_CODES is sorted");
    }

    /// The scanner sees the constructors' codes.
    #[test]
    fn the_code_scanner_reads_constructors() {
        let mut out = BTreeSet::new();
        codes_in(
            r#"ApiError::new(StatusCode::GONE, "gone_away", format!("x, {y}"));
               NodeError::invalid(e.code(), "not_a_code");
               ApiError::bad_request("bad_thing", "m");
               OaiError { code: "oai_code".into() };
               json!({"error": {"code": "json_code", "message": m}});"#,
            &mut out,
        );
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            ["bad_thing", "gone_away", "json_code", "oai_code"]
        );
    }
}
