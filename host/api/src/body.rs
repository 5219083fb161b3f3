//! Response body type shared by every route.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn json_response(status: http::StatusCode, value: &serde_json::Value) -> http::Response<Body> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(value).unwrap_or_default()))
        .unwrap_or_else(|_| http::Response::new(full(Vec::new())))
}

/// A response body that stops with an error past `cap` bytes (the function's response
/// size limit): the client sees the response cut off, the guest's writes start failing
/// and it ends.
pub struct Capped {
    inner: Body,
    cap: u64,
    seen: u64,
    what: String,
}

impl Capped {
    pub fn new(inner: Body, cap: u64, what: String) -> Capped {
        Capped {
            inner,
            cap,
            seen: 0,
            what,
        }
    }
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.seen += d.len() as u64;
                    if this.seen > this.cap {
                        tracing::warn!(function = %this.what, cap = this.cap, "response cut off: over the response size limit");
                        return std::task::Poll::Ready(Some(Err(format!(
                            "response of {} over its {} byte limit",
                            this.what, this.cap
                        )
                        .into())));
                    }
                }
                std::task::Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
