//! HTTP handlers over `wasi:http/incoming-handler`, with buffered request/response types.
//!
//! Functions that stream their body use [`crate::http_streaming_handler!`] and a
//! [`Responder`]; the component is a plain `wasi:http/proxy` component either way.

use crate::wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// Largest request body the buffered API reads (bigger bodies get a 413 from the SDK).
pub const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;

/// A buffered HTTP request.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    path_with_query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Request {
    /// The method, e.g. `"GET"`.
    pub fn method(&self) -> &str {
        &self.method
    }
    /// Path and query as the function sees it (the host strips `/{tenant}/{function}`).
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_with_query
            .split_once('?')
            .map_or(self.path_with_query.as_str(), |(p, _)| p)
    }
    /// The raw query string, if any.
    pub fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, q)| q)
    }
    /// First value of a header (case-insensitive), if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
    /// All headers in arrival order.
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }
    /// The request body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// A buffered HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body and no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, body.into().into_bytes())
            .with_header("content-type", "text/plain; charset=utf-8")
    }
    /// An `application/json` response from already-serialised JSON.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::new(status, body).with_header("content-type", "application/json")
    }
    /// Add a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }
}

fn method_str(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

fn read_request(req: IncomingRequest) -> Result<Request, Response> {
    let method = method_str(&req.method());
    let path_with_query = req.path_with_query().unwrap_or_else(|| "/".into());
    let headers = req.headers().entries();
    let mut body = Vec::new();
    let incoming = req
        .consume()
        .map_err(|_| Response::text(500, "request body already consumed"))?;
    {
        let stream = incoming
            .stream()
            .map_err(|_| Response::text(500, "request body stream unavailable"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    if body.len() + chunk.len() > MAX_BUFFERED_BODY {
                        return Err(Response::text(413, "request body too large"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(crate::wasi::io::streams::StreamError::Closed) => break,
                Err(e) => return Err(Response::text(400, format!("reading request body: {e:?}"))),
            }
        }
    }
    Ok(Request {
        method,
        path_with_query,
        headers,
        body,
    })
}

fn write_response(resp: Response, out: ResponseOutparam) {
    let fields = Fields::new();
    for (k, v) in &resp.headers {
        // Invalid or forbidden headers are dropped rather than failing the response.
        let _ = fields.append(k, v);
    }
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(resp.status);
    let body = match outgoing.body() {
        Ok(b) => b,
        Err(()) => return,
    };
    ResponseOutparam::set(out, Ok(outgoing));
    if let Ok(stream) = body.write() {
        for chunk in resp.body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}

#[doc(hidden)]
pub fn __serve(req: IncomingRequest, out: ResponseOutparam, handler: fn(Request) -> Response) {
    let resp = match read_request(req) {
        Ok(req) => handler(req),
        Err(resp) => resp,
    };
    write_response(resp, out);
}

/// Export `$handler` (a `fn(Request) -> Response`) as this component's
/// `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! http_handler {
    ($handler:path) => {
        $crate::__export_incoming_handler!($crate::http::__serve, $handler);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_incoming_handler {
    ($serve:path, $handler:path) => {
        #[doc(hidden)]
        struct __HelixflowHttpHandler;

        impl $crate::wasi::exports::http::incoming_handler::Guest for __HelixflowHttpHandler {
            fn handle(
                request: $crate::wasi::http::types::IncomingRequest,
                response_out: $crate::wasi::http::types::ResponseOutparam,
            ) {
                $serve(request, response_out, $handler)
            }
        }

        $crate::wasi::http::proxy::export!(__HelixflowHttpHandler);
    };
}

/// How a streaming handler answers: once, buffered ([`Responder::send`]) or as a body
/// written over time ([`Responder::stream`]).
pub struct Responder {
    out: Option<ResponseOutparam>,
}

/// The client went away (or the host refused more bytes): stop producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

impl Responder {
    /// Answer with a buffered response.
    pub fn send(mut self, resp: Response) {
        if let Some(out) = self.out.take() {
            write_response(resp, out);
        }
    }

    /// Send the status and headers now; write the body through the returned stream.
    pub fn stream(
        mut self,
        status: u16,
        headers: &[(&str, &str)],
    ) -> Result<BodyStream, Disconnected> {
        let out = self.out.take().ok_or(Disconnected)?;
        let fields = Fields::new();
        for (k, v) in headers {
            let _ = fields.append(k.as_ref(), v.as_bytes());
        }
        let outgoing = OutgoingResponse::new(fields);
        let _ = outgoing.set_status_code(status);
        let body = outgoing.body().map_err(|_| Disconnected)?;
        ResponseOutparam::set(out, Ok(outgoing));
        let stream = body.write().map_err(|_| Disconnected)?;
        Ok(BodyStream {
            stream: Some(stream),
            body: Some(body),
        })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(out) = self.out.take() {
            write_response(Response::text(500, "the handler did not answer"), out);
        }
    }
}

/// A response body being written; [`BodyStream::finish`] ends it (dropping it does too).
pub struct BodyStream {
    stream: Option<crate::wasi::io::streams::OutputStream>,
    body: Option<OutgoingBody>,
}

impl BodyStream {
    /// Writes and flushes `bytes` (blocking until the host took them).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Disconnected> {
        let stream = self.stream.as_ref().ok_or(Disconnected)?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|_| Disconnected)?;
        }
        Ok(())
    }

    /// Ends the body.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        drop(self.stream.take());
        if let Some(body) = self.body.take() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.close();
    }
}

#[doc(hidden)]
pub fn __serve_streaming(
    req: IncomingRequest,
    out: ResponseOutparam,
    handler: fn(Request, Responder),
) {
    match read_request(req) {
        Ok(req) => handler(req, Responder { out: Some(out) }),
        Err(resp) => write_response(resp, out),
    }
}

/// Export `$handler` (a `fn(Request, Responder)`) as this component's
/// `wasi:http/incoming-handler`; the handler may stream its response body.
#[macro_export]
macro_rules! http_streaming_handler {
    ($handler:path) => {
        $crate::__export_incoming_handler!($crate::http::__serve_streaming, $handler);
    };
}
