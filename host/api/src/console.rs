//! `/console`: the web console's embedded assets ([`helixflow_console`]).
//!
//! Public (the assets hold no data: every view fetches through the API with the user's
//! credential), GET/HEAD only, revalidated by ETag, and served under the console's
//! Content-Security-Policy. `/console` and `/console/` are the page; the views are
//! chosen by the URL fragment, which the server never sees.

use crate::body::{Body, full};
use crate::error::ApiError;
use http::{HeaderValue, Method, Response, StatusCode, header};

pub fn route<B>(req: &http::Request<B>, rest: &[&str]) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = ApiError::method_not_allowed().into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // Only exact table entries are served: nothing is resolved against a file system, so
    // `..`, `%2e%2e` or an empty segment simply name no asset.
    let path = rest.join("/");
    let Some(asset) = helixflow_console::get(&path) else {
        return ApiError::not_found(format!("no console asset /console/{path}")).into_response();
    };
    if let Some(bytes) = helixflow_console::dev_bytes(asset) {
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, asset.content_type)
            .header(header::CACHE_CONTROL, "no-store")
            .header(
                header::CONTENT_SECURITY_POLICY,
                helixflow_console::CONTENT_SECURITY_POLICY,
            )
            .body(full(bytes))
            .unwrap_or_else(|_| Response::new(full(Vec::new())));
    }
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        // Weak comparison (RFC 9110 13.1.2): a proxy may have weakened the tag (`W/"..."`).
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == asset.etag)
        });
    let mut b = Response::builder()
        .header(header::ETAG, asset.etag)
        .header(header::CACHE_CONTROL, "no-cache")
        .header(
            header::CONTENT_SECURITY_POLICY,
            helixflow_console::CONTENT_SECURITY_POLICY,
        )
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("cross-origin-opener-policy", "same-origin")
        .header("cross-origin-resource-policy", "same-origin")
        .header(
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        );
    let body = if fresh {
        b = b.status(StatusCode::NOT_MODIFIED);
        full(Vec::new())
    } else {
        b = b
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, asset.content_type)
            .header(header::CONTENT_LENGTH, asset.bytes.len());
        if req.method() == Method::HEAD {
            full(Vec::new())
        } else {
            full(asset.bytes)
        }
    };
    b.body(body)
        .unwrap_or_else(|_| Response::new(full(Vec::new())))
}
