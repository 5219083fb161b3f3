//! `hello`: the HTTP example function.
//!
//! `GET /{tenant}/hello/anything?name=Ada` -> `Hello, Ada! (GET /anything)`.
//! It also reports the `GREETING` environment variable when the function's config sets one.

use helixflow_guest_sdk::http::{Request, Response};

fn hello(req: Request) -> Response {
    let name = req
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .filter(|n| !n.is_empty())
        .unwrap_or("world");
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_string());
    Response::text(
        200,
        format!("{greeting}, {name}! ({} {})\n", req.method(), req.path()),
    )
    .with_header("x-helixflow-example", "hello")
}

helixflow_guest_sdk::http_handler!(hello);
