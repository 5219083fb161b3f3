//! What the two witx-ABI guests share besides the preprocessing: reading the input and
//! writing the answer the WAGI way (a CGI response on stdout for an HTTP request, the
//! bare JSON for an event), in plain `std` (no HelixFlow SDK).

use std::io::{Read, Write};

/// The image: the request body or the event payload, both on stdin.
pub fn input() -> Vec<u8> {
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("reading stdin: {e}");
        std::process::exit(1);
    }
    body
}

/// Whether this run serves an HTTP request (the executor sets CGI variables) or an event.
pub fn is_http() -> bool {
    std::env::var_os("REQUEST_METHOD").is_some()
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `{"model": ..., "top5": [{"label", "index", "probability"}...]}`
pub fn top5_json(model: &str, top5: &[(&str, usize, f64)]) -> String {
    let items: Vec<String> = top5
        .iter()
        .map(|(label, i, p)| {
            format!(
                "{{\"label\":\"{}\",\"index\":{i},\"probability\":{p}}}",
                escape(label)
            )
        })
        .collect();
    format!(
        "{{\"model\":\"{}\",\"top5\":[{}]}}",
        escape(model),
        items.join(",")
    )
}

/// Writes the answer; an error is a JSON error with `status` over HTTP, and for an event
/// a message on stderr and exit status 1 (the platform reports a function error).
pub fn answer(result: Result<String, (u16, &str, String)>) {
    let mut out = std::io::stdout().lock();
    let written = match (result, is_http()) {
        (Ok(json), true) => write!(out, "Content-Type: application/json\n\n{json}"),
        (Ok(json), false) => write!(out, "{json}"),
        (Err((status, code, message)), true) => write!(
            out,
            "Status: {status}\nContent-Type: application/json\n\n{{\"error\":{{\"code\":\"{code}\",\"message\":\"{}\"}}}}",
            escape(&message)
        ),
        (Err((_, code, message)), false) => {
            eprintln!("{code}: {message}");
            std::process::exit(1);
        }
    };
    if written.and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}
