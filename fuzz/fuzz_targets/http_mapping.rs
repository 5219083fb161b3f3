//! HTTP request -> invocation mapping: trigger paths, control-plane route requirements,
//! Lambda function names, and AWS Lambda events -> HTTP requests. Never a panic.
#![no_main]
use helixflow_api::fuzzing::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    if let Ok(t) = parse_trigger_path(path, query) {
        // The guest's URI is rooted; the tenant and function are single path segments.
        assert!(t.inner.path().starts_with('/'));
        assert!(!t.tenant.is_empty() && !t.function.contains('/'));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for m in [http::Method::GET, http::Method::POST, http::Method::PUT, http::Method::DELETE] {
        let _ = requirement(&m, &segs);
    }
    let _ = split_qualifier(s);
    if let Ok(f) = parse_function_name(s) {
        assert!(!f.name.contains(':'));
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let kind = classify(&v);
        let _ = http_request(&v, kind);
    }
});
