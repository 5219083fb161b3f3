//! End-to-end tests: each starts its own `helixflow serve` on loopback with its own
//! data dir and talks to it over real sockets.

mod alerts;
mod auth;
mod bad_input;
mod budget;
mod chat;
mod cli;
mod console;
mod console_http;
mod crash;
mod devloop;
mod fleet;
mod invoke;
mod lambda_api;
mod lambda_runtime;
mod lifecycle;
mod limits;
mod nn;
mod onnx_conformance;
mod openai;
mod openapi;
mod polyglot_js;
mod prometheus;
mod quota;
mod sdk_go;
mod sdk_js;
mod sdk_python;
mod sec_api;
mod sec_auth;
mod sec_egress;
mod sec_integrity;
mod sec_nn;
mod state;
mod tls;
mod traces;
mod usage;
