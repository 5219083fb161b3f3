//! `echo-event`: the event example function.
//!
//! Returns a JSON document with the event it received (as a UTF-8 string) and the
//! invocation context. An event whose body is exactly `fail` returns a handled
//! error, so callers can see how function errors look.

use helixflow_guest_sdk::event::{Context, FunctionError};

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn handle(event: Vec<u8>, ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let text = String::from_utf8(event)
        .map_err(|_| FunctionError::new("InvalidEvent", "event is not UTF-8"))?;
    if text.trim() == "fail" {
        return Err(FunctionError::new(
            "RequestedFailure",
            "the event asked to fail",
        ));
    }
    eprintln!(
        "echo-event: {} bytes, request {}",
        text.len(),
        ctx.request_id
    );
    let body = format!(
        "{{\"echo\":\"{}\",\"request_id\":\"{}\",\"function\":\"{}\",\"version\":{},\"memory_limit_mb\":{}}}",
        json_escape(&text),
        json_escape(&ctx.request_id),
        json_escape(&ctx.function_name),
        ctx.function_version,
        ctx.memory_limit_mb,
    );
    Ok(body.into_bytes())
}

helixflow_guest_sdk::event_handler!(handle);
