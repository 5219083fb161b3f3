//! A wasi:http component written against the plain `wasi` crate, without the HelixFlow
//! SDK: proof that any standard `wasi:http/proxy` component runs unmodified, and the
//! guest the benchmark serves with both HelixFlow and `wasmtime serve`. `/stream?mb=N`
//! streams N MiB (the response-size cap test).

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
        if let Some(mb) = path
            .strip_prefix("/stream?mb=")
            .and_then(|v| v.parse::<usize>().ok())
        {
            // A hostile response: stream `mb` MiB, 4 KiB (the most one blocking write may
            // carry) at a time, until the host says stop.
            let chunk = vec![b'x'; 4 << 10];
            for _ in 0..mb * 256 {
                if stream.blocking_write_and_flush(&chunk).is_err() {
                    break;
                }
            }
            drop(stream);
            let _ = OutgoingBody::finish(body, None);
            return;
        }
        let msg = format!("raw hello {path}\n");
        let _ = stream.blocking_write_and_flush(msg.as_bytes());
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasi::http::proxy::export!(Raw);
