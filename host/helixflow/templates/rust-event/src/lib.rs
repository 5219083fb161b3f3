//! `{{name}}`: an event function for HelixFlow (Lambda-style: bytes in, bytes out).
//!
//! Invoke it with `helixflow invoke -t TENANT -f {{name}} -d '{"name":"Ada"}'`: it
//! answers `{"message":"Hello, Ada!","request_id":...}`. An event that is not JSON is a
//! handled error (`InvalidEvent`). What it prints goes to the function's logs.

use helixflow_guest_sdk::event::{Context, FunctionError};
use serde_json::{Value, json};

/// The answer to one event: edit it and `helixflow dev` rebuilds and redeploys.
pub fn reply(event: &Value) -> Value {
    let name = event["name"].as_str().unwrap_or("world");
    json!({ "message": format!("Hello, {name}!") })
}

fn handle(event: Vec<u8>, ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let event: Value = serde_json::from_slice(&event)
        .map_err(|e| FunctionError::new("InvalidEvent", format!("the event is not JSON: {e}")))?;
    eprintln!("{} v{}: request {}", ctx.function_name, ctx.function_version, ctx.request_id);
    let mut out = reply(&event);
    out["request_id"] = ctx.request_id.into();
    Ok(out.to_string().into_bytes())
}

helixflow_guest_sdk::event_handler!(handle);

#[cfg(test)]
mod tests;
