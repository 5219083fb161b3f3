//! A wasi:http component written against the plain `wasi` crate, without the HelixFlow
//! SDK: proof that any standard `wasi:http/proxy` component runs unmodified, and the
//! guest the benchmark serves with both HelixFlow and `wasmtime serve`.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Raw;

impl wasi::exports::http::incoming_handler::Guest for Raw {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let headers = Fields::new();
        let _ = headers.append("content-type", b"text/plain");
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().expect("fresh response has a body");
        ResponseOutparam::set(out, Ok(resp));
        let stream = body.write().expect("fresh body has a stream");
        let msg = format!("raw hello {path}\n");
        let _ = stream.blocking_write_and_flush(msg.as_bytes());
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasi::http::proxy::export!(Raw);
