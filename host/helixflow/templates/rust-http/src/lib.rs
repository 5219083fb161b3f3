//! `{{name}}`: an HTTP function for HelixFlow (wasi:http).
//!
//! `GET /{tenant}/{{name}}/anything?name=Ada` answers `Hello, Ada!`. What it prints
//! goes to the function's logs (`helixflow logs`, and `helixflow dev` shows them).

use helixflow_guest_sdk::http::{Request, Response};

/// The answer's text: edit it and `helixflow dev` rebuilds and redeploys.
pub fn greeting(name: &str) -> String {
    format!("Hello, {name}!\n")
}

/// The `name` query parameter, `world` when there is none.
pub fn name_of(query: Option<&str>) -> &str {
    query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("name=")))
        .filter(|n| !n.is_empty())
        .unwrap_or("world")
}

fn handle(req: Request) -> Response {
    let name = name_of(req.query());
    println!("{} {} name={name}", req.method(), req.path());
    Response::text(200, greeting(name))
}

helixflow_guest_sdk::http_handler!(handle);

#[cfg(test)]
mod tests;
