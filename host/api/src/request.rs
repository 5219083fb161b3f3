//! Reading requests: bodies with limits (declared and actual length), JSON bodies and
//! query strings. Every route reads its request through here.

use crate::error::ApiError;
use crate::tracked::TrackedBody;
use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use std::collections::HashMap;

/// Largest JSON body of a control-plane request.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// A request's path, split into segments once (no leading or trailing `/`).
pub struct Segments<'a>(pub Vec<&'a str>);

impl<'a> Segments<'a> {
    pub fn of(path: &'a str) -> Self {
        Segments(
            path.trim_start_matches('/')
                .trim_end_matches('/')
                .split('/')
                .collect(),
        )
    }
}

pub fn too_big(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body exceeds the limit of {limit} bytes"),
    )
}

/// Refuse a request whose declared `Content-Length` is over `limit` (before reading it).
pub fn check_declared_length(headers: &http::HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit as u64 => Err(too_big(limit)),
        _ => Ok(()),
    }
}

/// Read a whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(
    body: TrackedBody,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, ApiError> {
    check_declared_length(headers, limit)?;
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_big(limit))
        }
        Err(e) => Err(ApiError::bad_request(
            "bad_body",
            format!("reading the request body: {e}"),
        )),
    }
}

pub async fn read_json<T: for<'de> Deserialize<'de>>(
    req: http::Request<TrackedBody>,
) -> Result<T, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, &parts.headers, MAX_JSON_BODY).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("invalid JSON body: {e}")))
}

/// The query string's parameters, percent-decoded (`+` is a space); later ones win.
pub fn query(req: &http::Request<TrackedBody>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| url_pairs(q).into_iter().collect::<HashMap<_, _>>())
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}
