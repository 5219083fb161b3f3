//! `chaos`: a deliberately misbehaving guest used by the end-to-end tests.
//!
//! HTTP paths: `/ok`, `/echo` (body back), `/trap`, `/loop` (infinite loop),
//! `/grow` (allocates until the memory limit), `/recurse` (until the stack runs out), `/sleep?ms=N`, `/log?n=N` (prints N lines),
//! `/env?k=NAME`, `/header?name=NAME` (the request header's value, 404 without it),
//! `/id?v=X` (echoes X after a little work; used for the concurrency test),
//! `/fetch?url=http://host:port/path` (an outbound wasi:http GET; answers its status and
//! body, or 502 with the error the host gave), `/print` (writes the request body to
//! stdout and stderr: what a function writes into its logs, e.g. markup for the console's
//! escaping test).
//! Event: the event body (raw, or a JSON string) selects the same behaviours (`trap`,
//! `loop`, `grow`, `error`), or `fetch URL` / `fail-fetch URL` (outbound GET, then
//! answer / fail), `sleep MS`, `context` (request id + client context), `print TEXT`
//! (writes TEXT to stdout and stderr, answers `"printed"`); a scheduled
//! event whose detail is `{"fetch": URL}` GETs `URL?t={tick time}`; anything else echoes.

use helixflow_guest_sdk::event::{Context, FunctionError};
use helixflow_guest_sdk::http::{Request, Response};

fn param<'a>(req: &'a Request, key: &str) -> Option<&'a str> {
    req.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[inline(never)]
fn spin() -> u64 {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x == 0 {
            return x;
        }
    }
}

/// Recurses until the (wasm) call stack runs out. Only scalars, so nothing lands on
/// the shadow stack in linear memory; not a tail call, so it stays recursion.
#[inline(never)]
fn recurse(depth: u64, stop: u64) -> u64 {
    if depth == stop {
        return 1;
    }
    let r = recurse(depth + 1, stop);
    r.wrapping_mul(31).wrapping_add(depth)
}

fn grow() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        hoard.push(std::hint::black_box(chunk));
        if hoard.len() == usize::MAX {
            return hoard.len();
        }
    }
}

/// An outbound GET through `wasi:http/outgoing-handler`.
fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    use helixflow_guest_sdk::wasi::http::outgoing_handler;
    use helixflow_guest_sdk::wasi::http::types::{Fields, OutgoingRequest, Scheme};
    use helixflow_guest_sdk::wasi::io::streams::StreamError;
    let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else {
        return Err("url must start with http:// or https://".into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&scheme)).map_err(|_| "scheme")?;
    req.set_authority(Some(authority))
        .map_err(|_| "authority")?;
    req.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let fut = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    fut.subscribe().block();
    let resp = fut
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let body = resp.consume().map_err(|_| "body")?;
    let stream = body.stream().map_err(|_| "stream")?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend(chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(format!("{e:?}")),
        }
    }
    Ok((status, out))
}

fn http(req: Request) -> Response {
    match req.path() {
        "/ok" => Response::text(200, "ok"),
        "/fetch" => match fetch(param(&req, "url").unwrap_or_default()) {
            Ok((status, body)) => {
                Response::new(200, [format!("{status} ").into_bytes(), body].concat())
            }
            Err(e) => Response::text(502, format!("outbound failed: {e}")),
        },
        "/echo" => Response::new(200, req.body().to_vec()),
        "/print" => {
            let text = String::from_utf8_lossy(req.body());
            println!("{text}");
            eprintln!("{text}");
            Response::text(200, "printed")
        }
        "/trap" => panic!("chaos: deliberate trap"),
        "/loop" => Response::text(200, format!("{}", spin())),
        "/grow" => Response::text(200, format!("{}", grow())),
        "/recurse" => Response::text(200, format!("{}", recurse(0, u64::MAX))),
        "/sleep" => {
            let ms: u64 = param(&req, "ms").and_then(|v| v.parse().ok()).unwrap_or(10);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Response::text(200, format!("slept {ms}"))
        }
        "/log" => {
            let n: usize = param(&req, "n").and_then(|v| v.parse().ok()).unwrap_or(1);
            for i in 0..n {
                println!("chaos log line {i}");
            }
            eprintln!("chaos stderr");
            Response::text(200, format!("logged {n}"))
        }
        "/env" => {
            let k = param(&req, "k").unwrap_or("");
            Response::text(200, std::env::var(k).unwrap_or_default())
        }
        "/header" => match req.header(param(&req, "name").unwrap_or("")) {
            Some(v) => Response::text(200, v.to_string()),
            None => Response::text(404, "no such header"),
        },
        "/id" => {
            let v = param(&req, "v").unwrap_or("").to_string();
            // A little work so concurrent instances overlap.
            let mut acc = 0u64;
            for i in 0..20_000u64 {
                acc = std::hint::black_box(acc.wrapping_add(i * i));
            }
            Response::text(200, format!("{v}:{}", acc % 7))
        }
        _ => Response::text(404, "chaos: unknown path"),
    }
}

/// The value of `"key":"..."` in a JSON text (no escapes; enough for tests).
fn json_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

fn event(ev: Vec<u8>, ctx: Context) -> Result<Vec<u8>, FunctionError> {
    // Through the Lambda Invoke API payloads are JSON: a JSON string carries the command.
    let cmd: &[u8] = if ev.len() >= 2 && ev[0] == b'"' && ev[ev.len() - 1] == b'"' {
        &ev[1..ev.len() - 1]
    } else {
        &ev
    };
    let text = String::from_utf8_lossy(cmd).to_string();
    if let Some(url) = text.strip_prefix("fetch ") {
        return match fetch(url) {
            Ok((status, body)) => Ok([format!("{status} ").into_bytes(), body].concat()),
            Err(e) => Err(FunctionError::new("FetchFailed", &e)),
        };
    }
    if let Some(url) = text.strip_prefix("fail-fetch ") {
        let _ = fetch(url);
        return Err(FunctionError::new(
            "ChaosError",
            "failed (after telling the counter)",
        ));
    }
    if let Some(ms) = text.strip_prefix("sleep ") {
        let ms: u64 = ms.trim().parse().unwrap_or(10);
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return Ok(format!("\"slept {ms}\"").into_bytes());
    }
    if let Some(words) = text.strip_prefix("print ") {
        println!("{words}");
        eprintln!("{words}");
        return Ok(b"\"printed\"".to_vec());
    }
    if text == "context" {
        let cc = ctx.client_context.clone().unwrap_or_else(|| "null".into());
        return Ok(format!(
            "{{\"request_id\":\"{}\",\"client_context\":{cc}}}",
            ctx.request_id
        )
        .into_bytes());
    }
    // A scheduled event whose detail says {"fetch": url}: tell url which tick this is.
    if let (Some(url), Some(time)) = (json_str(&text, "fetch"), json_str(&text, "time")) {
        return match fetch(&format!("{url}?t={time}")) {
            Ok(_) => Ok(b"\"ticked\"".to_vec()),
            Err(e) => Err(FunctionError::new("FetchFailed", &e)),
        };
    }
    match cmd {
        b"trap" => panic!("chaos: deliberate trap"),
        b"loop" => Ok(spin().to_le_bytes().to_vec()),
        b"grow" => Ok(grow().to_le_bytes().to_vec()),
        b"recurse" => Ok(recurse(0, u64::MAX).to_le_bytes().to_vec()),
        b"error" => Err(FunctionError::new("ChaosError", "deliberate handled error")),
        _ => Ok(ev),
    }
}

helixflow_guest_sdk::http_handler!(http);
helixflow_guest_sdk::event_handler!(event);
