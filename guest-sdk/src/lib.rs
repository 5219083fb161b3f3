//! # HelixFlow guest SDK
//!
//! Write HelixFlow functions in Rust with one handler function and one macro.
//! Functions compile to `wasm32-wasip2` components:
//!
//! ```text
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! ## HTTP functions (`wasi:http/incoming-handler`)
//!
//! ```ignore
//! use helixflow_guest_sdk::http::{Request, Response};
//!
//! fn hello(req: Request) -> Response {
//!     Response::text(200, format!("hello from {}", req.path()))
//! }
//! helixflow_guest_sdk::http_handler!(hello);
//! ```
//!
//! The component this produces is a standard `wasi:http/proxy` component:
//! any wasi:http host (e.g. `wasmtime serve`) can run it too.
//!
//! ## Event functions (`helixflow:function/event-handler`)
//!
//! ```ignore
//! use helixflow_guest_sdk::event::{Context, FunctionError};
//!
//! fn handle(event: Vec<u8>, ctx: Context) -> Result<Vec<u8>, FunctionError> {
//!     Ok(event)
//! }
//! helixflow_guest_sdk::event_handler!(handle);
//! ```
//!
//! A crate may export both (call both macros).
//!
//! ## Inference (`wasi:nn`)
//!
//! [`nn`] wraps wasi:nn: load a registry model by name, build typed tensors, compute.
//! [`llm`] drives a causal language model token by token with the KV cache kept in
//! the host (`helixflow:llm/sequence`).
//!
//! ## Streaming HTTP responses
//!
//! [`http_streaming_handler!`] gives the handler a [`http::Responder`]: answer at once
//! with a buffered [`http::Response`], or start a [`http::BodyStream`] and write the
//! body as it is produced (server-sent events); a write fails once the client is gone.

#![deny(missing_docs)]

pub mod event;
pub mod http;
pub mod llm;
pub mod nn;

/// Re-exported so the macros (and advanced users) can reach the raw WASI bindings.
pub use wasi;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/function",
        world: "event-function",
        pub_export_macro: true,
        default_bindings_module: "helixflow_guest_sdk::bindings",
        export_macro_name: "__export_event_function",
    });
}

#[doc(hidden)]
pub mod llm_bindings {
    wit_bindgen::generate!({
        path: "../wit/llm",
        world: "llm",
    });
}

#[doc(hidden)]
pub mod nn_bindings {
    wit_bindgen::generate!({
        path: "../wit/wasi-nn",
        world: "ml",
    });
}
