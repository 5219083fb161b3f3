//! `helixflow doctor`: is this machine ready for the local loop? One line per check,
//! `OK`/`FAIL` (or `WARN` for optional ones) with the fix: cargo, rustc (the guest
//! SDK's rust-version or later), the wasm32-wasip2 target, the guest SDK `helixflow new`
//! depends on, componentize-py and node/npm (optional: Python and JS functions), ONNX Runtime (optional: only wasi:nn functions need it), the node at
//! --url (`GET /healthz`) and the credentials (`GET /api/v1/whoami`).

use super::dev::{
    ADD_TARGET, COMPONENTIZE_PY_PIN, NPM_FIX, TARGET, componentize_py, componentize_py_fix, output,
    target_installed,
};
use super::scaffold::guest_sdk;
use crate::client::Client;
use crate::routes;
use anyhow::{Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};

// `helixflow doctor` (the node is the global --url, the credentials --token).
#[derive(Args)]
pub struct DoctorArgs {}

pub async fn doctor(url: &str, token: Option<String>) -> Result<()> {
    let mut failed = 0;
    let mut line = |ok: bool, required: bool, what: &str, detail: String| {
        let tag = match (ok, required) {
            (true, _) => "OK  ",
            (false, true) => "FAIL",
            (false, false) => "WARN",
        };
        if !ok && required {
            failed += 1;
        }
        println!("{tag} {what}: {detail}");
    };
    match output("cargo", &["--version"]) {
        Ok(v) => line(true, true, "cargo", v),
        Err(e) => line(
            false,
            true,
            "cargo",
            format!("{e}; fix: install Rust from https://rustup.rs"),
        ),
    }
    match output("rustc", &["--version"]) {
        Ok(v) => {
            // The guest SDK's (and so every template's) rust-version: this workspace's.
            let need = env!("CARGO_PKG_RUST_VERSION");
            let version = |s: &str| -> Option<(u32, u32)> {
                let mut it = s.split('.').map(|n| n.parse::<u32>().ok());
                Some((it.next()??, it.next()??))
            };
            let have = v.split_whitespace().nth(1).and_then(version);
            match (have, version(need)) {
                (Some(h), Some(n)) if h >= n => line(true, true, "rustc", v),
                _ => line(
                    false,
                    true,
                    "rustc",
                    format!(
                        "{v}: {need} or later needed (the guest SDK's rust-version); fix: rustup update"
                    ),
                ),
            }
        }
        Err(e) => line(
            false,
            true,
            "rustc",
            format!("{e}; fix: install Rust from https://rustup.rs"),
        ),
    }
    match target_installed() {
        Ok(true) => line(true, true, "target", format!("{TARGET} installed")),
        Ok(false) => line(
            false,
            true,
            "target",
            format!("{TARGET} missing; fix: {ADD_TARGET}"),
        ),
        Err(e) => line(
            false,
            true,
            "target",
            format!("{e}; fix: install Rust from https://rustup.rs"),
        ),
    }
    // Where `helixflow new` finds the guest SDK (HELIXFLOW_GUEST_SDK, else this build's
    // source tree).
    let sdk_env = std::env::var_os("HELIXFLOW_GUEST_SDK").map(PathBuf::from);
    match guest_sdk(sdk_env.as_deref()) {
        Ok(p) => line(true, true, "guest SDK", p.display().to_string()),
        Err(e) => line(
            false,
            true,
            "guest SDK",
            format!(
                "{e:#}; fix: pass `helixflow new --sdk PATH` or export HELIXFLOW_GUEST_SDK=PATH (the guest-sdk/ directory of a HelixFlow checkout)"
            ),
        ),
    }
    // Optional: only Python functions need componentize-py, only JS ones node and npm.
    match output(&componentize_py(), &["--version"]) {
        Ok(v) if v.ends_with(COMPONENTIZE_PY_PIN) => line(true, false, "componentize-py", v),
        Ok(v) => line(
            false,
            false,
            "componentize-py",
            format!(
                "{v}: HelixFlow is tested with {COMPONENTIZE_PY_PIN}; fix: {}",
                componentize_py_fix()
            ),
        ),
        Err(e) => line(
            false,
            false,
            "componentize-py",
            format!(
                "{e} (only Python functions need it); fix: {}",
                componentize_py_fix()
            ),
        ),
    }
    for tool in ["node", "npm"] {
        match output(tool, &["--version"]) {
            Ok(v) => line(true, false, tool, v),
            Err(e) => line(
                false,
                false,
                tool,
                format!("{e} (only JavaScript functions need it); fix: {NPM_FIX}"),
            ),
        }
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if Path::new(&p).is_file() => {
            line(true, false, "ONNX Runtime", format!("ORT_DYLIB_PATH={}", p.to_string_lossy()))
        }
        Some(p) => line(false, false, "ONNX Runtime", format!(
            "ORT_DYLIB_PATH={} does not exist; fix: point it at libonnxruntime.so (only wasi:nn functions need it)",
            p.to_string_lossy()
        )),
        None => line(false, false, "ONNX Runtime", "ORT_DYLIB_PATH is not set; fix: point it at libonnxruntime.so (only wasi:nn functions need it)".to_string()),
    }
    let anonymous = Client::new(url, None);
    let up = anonymous.json(http::Method::GET, "/healthz", None).await;
    match &up {
        Ok(v) => line(
            true,
            true,
            "node",
            format!(
                "{url} is up (location {})",
                v["location"].as_str().unwrap_or("?")
            ),
        ),
        Err(e) => line(
            false,
            true,
            "node",
            format!(
                "{e:#}; fix: start one (`helixflow serve`, or `helixflow dev` starts one) or set --url / HELIXFLOW_URL"
            ),
        ),
    }
    match (&token, &up) {
        (None, _) => line(
            false,
            true,
            "credentials",
            "HELIXFLOW_TOKEN is not set; fix: export HELIXFLOW_TOKEN=<API key, JWT or admin key>"
                .to_string(),
        ),
        (Some(_), Err(_)) => line(
            false,
            true,
            "credentials",
            "not checked: the node is not reachable".to_string(),
        ),
        (Some(_), Ok(_)) => {
            let c = Client::new(url, token.clone());
            match c.json(http::Method::GET, &routes::whoami(), None).await {
                Ok(v) => line(
                    true,
                    true,
                    "credentials",
                    format!(
                        "accepted: tenant {}, role {}",
                        v["tenant"].as_str().unwrap_or("(all: platform admin)"),
                        v["role"].as_str().unwrap_or("?")
                    ),
                ),
                Err(e) => line(
                    false,
                    true,
                    "credentials",
                    format!(
                        "refused ({e:#}); fix: export HELIXFLOW_TOKEN=<a valid API key, JWT or admin key>"
                    ),
                ),
            }
        }
    }
    if failed > 0 {
        bail!("{failed} required check(s) failed");
    }
    Ok(())
}
