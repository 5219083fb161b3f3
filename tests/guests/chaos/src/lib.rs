//! `chaos`: a deliberately misbehaving guest used by the end-to-end tests.
//!
//! HTTP paths: `/ok`, `/echo` (body back), `/trap`, `/loop` (infinite loop),
//! `/grow` (allocates until the memory limit), `/sleep?ms=N`, `/log?n=N` (prints N lines),
//! `/env?k=NAME`, `/id?v=X` (echoes X after a little work; used for the concurrency test).
//! Event: the event body selects the same behaviours (`trap`, `loop`, `grow`, else echo).

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

fn http(req: Request) -> Response {
    match req.path() {
        "/ok" => Response::text(200, "ok"),
        "/echo" => Response::new(200, req.body().to_vec()),
        "/trap" => panic!("chaos: deliberate trap"),
        "/loop" => Response::text(200, format!("{}", spin())),
        "/grow" => Response::text(200, format!("{}", grow())),
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

fn event(ev: Vec<u8>, _ctx: Context) -> Result<Vec<u8>, FunctionError> {
    match ev.as_slice() {
        b"trap" => panic!("chaos: deliberate trap"),
        b"loop" => Ok(spin().to_le_bytes().to_vec()),
        b"grow" => Ok(grow().to_le_bytes().to_vec()),
        b"error" => Err(FunctionError::new("ChaosError", "deliberate handled error")),
        _ => Ok(ev),
    }
}

helixflow_guest_sdk::http_handler!(http);
helixflow_guest_sdk::event_handler!(event);
