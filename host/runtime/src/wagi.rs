//! Core WASI preview1 command modules as functions, run the way Spin's WAGI executor runs
//! them: one fresh instance of the module per invocation, `_start` called once.
//!
//! * HTTP: the request body is the module's stdin; the request is described by CGI
//!   variables in its environment (`REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`,
//!   `CONTENT_TYPE`, `HTTP_*`, ...); its stdout is a CGI response: header lines
//!   (`Status: 404 Not Found`, `Content-Type: ...`, `Location: ...`), an empty line, the
//!   body. A `Location` without a `Status` is a 302.
//! * Event: the payload is stdin and stdout is the result; exit status 0 is success, any
//!   other a function error (type `NonZeroExit`, message from the last stderr line).
//! * wasi-nn through the witx ABI (`wasi_ephemeral_nn`, [`helixflow_nn::witx`]) on the
//!   node's inference service: same registry, providers, limits, batching.
//!
//! The sandbox is the components': the invocation's memory limit, CPU/wall deadline,
//! captured and capped stderr, no files, no sockets, no inherited environment. Stdout
//! is capped too ([`MAX_STDOUT`]): past it the answer is `function_bad_response`.

use crate::engine::{Inner, classify};
use crate::http::InvocationReport;
use crate::state::{CappedOutput, Capture, CpuBudget, Logs, MemoryLimiter};
use crate::{EventContext, EventOutput, InvocationEnv, InvokeError, Limits, ReportSink};
use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::{InstancePre, Module};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The most a module may write to stdout in one invocation (its response or result).
pub const MAX_STDOUT: usize = 16 << 20;
/// Header lines a CGI response may have, and their total bytes.
const MAX_HEADERS: usize = 100;
const MAX_HEADER_BYTES: usize = 64 << 10;

/// Headers a module may not set: the connection's framing and hop-by-hop headers belong
/// to the node (hyper frames the body by its real length).
fn reserved_header(name: &http::header::HeaderName) -> bool {
    use http::header;
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
        || name.as_str().starts_with("proxy-")
}

/// Store data of a module invocation.
pub(crate) struct WagiState {
    pub wasi: WasiP1Ctx,
    pub nn: helixflow_nn::witx::WitxNn,
    pub limiter: MemoryLimiter,
    pub budget: CpuBudget,
}

impl crate::engine::Sandboxed for WagiState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
    fn budget(&mut self) -> &mut CpuBudget {
        &mut self.budget
    }
}

/// Adds what a module may import: WASI preview1 and `wasi_ephemeral_nn`.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<wasmtime::Linker<WagiState>> {
    let mut linker = wasmtime::Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut WagiState| &mut s.wasi)?;
    helixflow_nn::witx::add_to_linker(&mut linker, |s: &mut WagiState| &mut s.nn)?;
    Ok(linker)
}

/// A module must be a WASI command: `_start: () -> ()` and a memory named `memory`.
pub(crate) fn check_exports(module: &Module) -> Result<(), crate::LoadError> {
    use wasmtime::ExternType;
    let no_start = |why: &str| {
        crate::LoadError::NoStart(format!(
            "{why}: a core module runs as a WASI command (build a binary with `fn main` for wasm32-wasip1, not a library), or build a component for wasm32-wasip2"
        ))
    };
    match module.get_export("_start") {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => {}
        Some(_) => {
            return Err(no_start(
                "its `_start` export is not a function of no arguments",
            ));
        }
        None => return Err(no_start("the module exports no `_start`")),
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => Ok(()),
        _ => Err(no_start("the module exports no memory named `memory`")),
    }
}

/// What a module may write to stdout: [`MAX_STDOUT`], and never more than its own
/// memory limit (the host buffers it).
fn stdout_cap(limits: &Limits) -> usize {
    MAX_STDOUT.min(limits.memory_bytes)
}

/// What one run of `_start` left behind.
struct Run {
    /// `Ok(exit status)` or how it failed.
    exit: Result<i32, InvokeError>,
    /// The module's own last non-empty stderr line (not the host's notes).
    last_line: Option<String>,
    stdout: (Bytes, bool),
    logs: Logs,
    inference: helixflow_nn::host::InferenceUsage,
}

async fn run(
    inner: &Arc<Inner>,
    pre: &InstancePre<WagiState>,
    limits: &Limits,
    env: &InvocationEnv,
    args: &[String],
    vars: Vec<(String, String)>,
    stdin: Bytes,
) -> Run {
    let capture = Capture::new(limits.max_log_bytes);
    let stdout = CappedOutput::new(stdout_cap(limits));
    // The function's own variables, except those the executor sets (`HTTP_*` ones it
    // configured were left out of `vars`, so they stay).
    let mut all: Vec<(String, String)> = env
        .env
        .iter()
        .filter(|(k, _)| !vars.iter().any(|(v, _)| v == k))
        .cloned()
        .collect();
    all.extend(vars);
    let mut wasi = wasmtime_wasi::WasiCtx::builder();
    wasi.stdin(MemoryInputPipe::new(stdin))
        .stdout(stdout.clone())
        .stderr(capture.stderr.clone())
        .envs(&all)
        .args(args);
    let nn = helixflow_nn::host::NnCtx::new(inner.inference.clone(), env.tenant.clone());
    let (budget, slice_ticks) = inner.budget(limits);
    let state = WagiState {
        wasi: wasi.build_p1(),
        nn: helixflow_nn::witx::WitxNn::new(nn),
        limiter: MemoryLimiter {
            limit: limits.memory_bytes,
            exceeded: false,
        },
        budget,
    };
    let mut store = wasmtime::Store::new(&inner.engine, state);
    crate::engine::arm(&mut store, slice_ticks);
    let call = async {
        let instance = pre.instantiate_async(&mut store).await?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        start.call_async(&mut store, ()).await
    };
    let exit = match tokio::time::timeout(limits.timeout, call).await {
        Ok(Ok(())) => Ok(0),
        Ok(Err(e)) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(code) => Ok(code.0),
            None => Err(classify(e, store.data().limiter.exceeded, limits)),
        },
        Err(_) => Err(InvokeError::Timeout(limits.timeout)),
    };
    let inference = store.data().nn.usage();
    let messages = store.data_mut().nn.take_messages();
    drop(store);
    let mut logs = capture.logs();
    let last_line = last_stderr_line(&logs);
    if !messages.is_empty() {
        // The witx ABI only returns errnos: the reasons go to the function's log.
        let mut err = logs.stderr.to_vec();
        for m in messages {
            let m: String = m.chars().take(512).collect();
            err.extend_from_slice(m.as_bytes());
            err.push(b'\n');
        }
        logs.stderr = Bytes::from(err);
    }
    let exit = exit.map_err(|e| crate::engine::enrich(e, &logs));
    Run {
        exit,
        last_line,
        stdout: stdout.take(),
        logs,
        inference,
    }
}

/// The last non-empty line the module wrote to stderr (for error messages).
fn last_stderr_line(logs: &Logs) -> Option<String> {
    String::from_utf8_lossy(&logs.stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().chars().take(512).collect())
}

/// CGI/1.1 variables for `head` (plus the `X_*` ones WAGI adds).
fn cgi_vars(
    head: &http::request::Parts,
    body_len: usize,
    env: &InvocationEnv,
) -> Vec<(String, String)> {
    let header = |name: http::header::HeaderName| {
        head.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    let host = header(http::header::HOST);
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty()
                && !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || (h.starts_with('[') && h.ends_with(']'))) =>
        {
            (h.to_string(), p.to_string())
        }
        _ => (host.clone(), "80".to_string()),
    };
    let script = format!("/{}/{}", env.tenant, env.function);
    let path = head.uri.path().to_string();
    let query = head.uri.query().unwrap_or_default().to_string();
    let full_url = if query.is_empty() {
        format!("http://{host}{script}{path}")
    } else {
        format!("http://{host}{script}{path}?{query}")
    };
    let protocol = match head.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    };
    let mut vars = vec![
        ("AUTH_TYPE".into(), String::new()),
        ("CONTENT_LENGTH".into(), body_len.to_string()),
        ("CONTENT_TYPE".into(), header(http::header::CONTENT_TYPE)),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("PATH_INFO".into(), path.clone()),
        ("PATH_TRANSLATED".into(), path.clone()),
        ("QUERY_STRING".into(), query),
        ("REMOTE_ADDR".into(), String::new()),
        ("REMOTE_HOST".into(), String::new()),
        ("REMOTE_USER".into(), String::new()),
        ("REQUEST_METHOD".into(), head.method.as_str().to_string()),
        ("SCRIPT_NAME".into(), script.clone()),
        ("SERVER_NAME".into(), server_name),
        ("SERVER_PORT".into(), server_port),
        ("SERVER_PROTOCOL".into(), protocol.into()),
        (
            "SERVER_SOFTWARE".into(),
            concat!("HelixFlow/", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("X_FULL_URL".into(), full_url),
        ("X_MATCHED_ROUTE".into(), format!("{script}/...")),
        ("X_RAW_PATH_INFO".into(), path),
    ];
    // Every request header as HTTP_<NAME> (CONTENT_TYPE/LENGTH have their own).
    let mut seen: Vec<String> = Vec::new();
    for name in head.headers.keys() {
        if name == http::header::CONTENT_TYPE || name == http::header::CONTENT_LENGTH {
            continue;
        }
        // `X_User` and `X-User` would be one variable: names with `_` are dropped (as
        // nginx and Apache do), so a client cannot shadow a header a proxy sets.
        if name.as_str().contains('_') {
            continue;
        }
        let var = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        // The function's own configuration wins over what a client sends.
        if seen.contains(&var) || env.env.iter().any(|(k, _)| *k == var) {
            continue;
        }
        let value = head
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        seen.push(var.clone());
        vars.push((var, value));
    }
    vars
}

/// A CGI response: header lines, an empty line, the body.
fn parse_cgi(out: Bytes) -> Result<(http::StatusCode, http::HeaderMap, Bytes), String> {
    let mut headers = http::HeaderMap::new();
    let mut status = None;
    let mut pos = 0;
    let mut lines = 0;
    loop {
        lines += 1;
        if lines > MAX_HEADERS || pos > MAX_HEADER_BYTES {
            return Err(format!(
                "the module's CGI headers exceed {MAX_HEADERS} lines or {MAX_HEADER_BYTES} bytes"
            ));
        }
        let Some(nl) = out[pos..].iter().position(|b| *b == b'\n') else {
            return Err(if out.is_empty() {
                "the module wrote nothing to stdout (a CGI response is header lines, an empty line, then the body)".into()
            } else {
                "the module's output has no empty line after its headers (a CGI response is header lines such as `Content-Type: text/plain`, an empty line, then the body)".into()
            });
        };
        let line = &out[pos..pos + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(format!(
                "output line `{}` is not a header (`Name: value`); a CGI response starts with its headers, then an empty line",
                text.chars().take(80).collect::<String>()
            ));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status = Some(
                code.parse::<u16>()
                    .ok()
                    .filter(|c| (200..=599).contains(c))
                    .and_then(|c| http::StatusCode::from_u16(c).ok())
                    .ok_or_else(|| {
                        format!("`Status: {value}` is not a final HTTP status (200-599)")
                    })?,
            );
            continue;
        }
        let name = http::header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not valid"))?;
        if reserved_header(&name) {
            // Framing and hop-by-hop headers are the node's (dropped, not an error: CGI
            // scripts commonly print Content-Length).
            continue;
        }
        headers
            .try_append(name, value)
            .map_err(|_| "too many CGI headers".to_string())?;
    }
    let status = status.unwrap_or(if headers.contains_key(http::header::LOCATION) {
        http::StatusCode::FOUND
    } else {
        http::StatusCode::OK
    });
    Ok((status, headers, out.slice(pos..)))
}

/// The request body as the module executor takes it.
pub(crate) type RequestBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

pub(crate) async fn invoke_http(
    inner: &Arc<Inner>,
    pre: &InstancePre<WagiState>,
    limits: Limits,
    env: InvocationEnv,
    req: hyper::Request<RequestBody>,
    on_report: ReportSink,
) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError> {
    let started = Instant::now();
    let report = |result: Result<(), InvokeError>, logs: Logs, inference| InvocationReport {
        result,
        logs,
        duration: started.elapsed(),
        inference,
    };
    let (head, body) = req.into_parts();
    // CGI hands the module the whole body on stdin (bounded by the caller's limit).
    let body = match tokio::time::timeout(limits.timeout, body.collect()).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            let err = match e {
                wasmtime_wasi_http::Error::HttpRequestBodySize(limit) => {
                    InvokeError::RequestTooLarge(limit.unwrap_or_default())
                }
                other => InvokeError::RequestBody(format!("{other:?}")),
            };
            on_report(report(
                Err(err.clone()),
                Logs::default(),
                Default::default(),
            ));
            return Err(err);
        }
        Err(_) => {
            let err = InvokeError::Timeout(limits.timeout);
            on_report(report(
                Err(err.clone()),
                Logs::default(),
                Default::default(),
            ));
            return Err(err);
        }
    };
    let vars = cgi_vars(&head, body.len(), &env);
    let args = vec![env.function.clone()];
    // One deadline for the whole invocation: reading the body counted.
    let mut run_limits = limits.clone();
    run_limits.timeout = limits
        .timeout
        .saturating_sub(started.elapsed())
        .max(std::time::Duration::from_millis(1));
    let mut r = run(inner, pre, &run_limits, &env, &args, vars, body).await;
    if let Err(InvokeError::Timeout(_)) = r.exit {
        r.exit = Err(InvokeError::Timeout(limits.timeout));
    }
    let answer = r.exit.and_then(|code| {
        if code != 0 {
            let why = r
                .last_line
                .as_ref()
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            return Err(InvokeError::Trap(format!(
                "the module exited with status {code}{why}"
            )));
        }
        if r.stdout.1 {
            return Err(InvokeError::BadResponse(format!(
                "the module wrote more than {} bytes to stdout",
                stdout_cap(&limits)
            )));
        }
        parse_cgi(r.stdout.0.clone()).map_err(InvokeError::BadResponse)
    });
    match answer {
        Ok((status, headers, body)) => {
            on_report(report(Ok(()), r.logs, r.inference));
            let mut resp = hyper::Response::new(
                http_body_util::Full::new(body)
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
        Err(e) => {
            on_report(report(Err(e.clone()), r.logs, r.inference));
            Err(e)
        }
    }
}

pub(crate) async fn invoke_event(
    inner: &Arc<Inner>,
    pre: &InstancePre<WagiState>,
    limits: Limits,
    env: InvocationEnv,
    ctx: EventContext,
    payload: Vec<u8>,
) -> EventOutput {
    let started = Instant::now();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(limits.timeout);
    let mut vars = vec![
        ("HELIXFLOW_REQUEST_ID".to_string(), ctx.request_id),
        ("HELIXFLOW_TENANT".to_string(), ctx.tenant),
        (
            "HELIXFLOW_FUNCTION_NAME".to_string(),
            ctx.function_name.clone(),
        ),
        (
            "HELIXFLOW_FUNCTION_VERSION".to_string(),
            ctx.function_version.to_string(),
        ),
        (
            "HELIXFLOW_DEADLINE_MS".to_string(),
            deadline.as_millis().to_string(),
        ),
        (
            "HELIXFLOW_MEMORY_LIMIT_MB".to_string(),
            (limits.memory_bytes >> 20).to_string(),
        ),
    ];
    if let Some(cc) = ctx.client_context {
        vars.push(("HELIXFLOW_CLIENT_CONTEXT".to_string(), cc));
    }
    let args = vec![ctx.function_name];
    let r = run(inner, pre, &limits, &env, &args, vars, Bytes::from(payload)).await;
    let result = match r.exit {
        Ok(0) if r.stdout.1 => Err(InvokeError::BadResponse(format!(
            "the module wrote more than {} bytes to stdout",
            stdout_cap(&limits)
        ))),
        Ok(0) => Ok(Ok(r.stdout.0.to_vec())),
        Ok(code) => Ok(Err((
            "NonZeroExit".to_string(),
            match &r.last_line {
                Some(line) => format!("exit status {code}: {line}"),
                None => format!("exit status {code}"),
            },
        ))),
        Err(e) => Err(e),
    };
    EventOutput {
        report: InvocationReport {
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
            logs: r.logs,
            duration: started.elapsed(),
            inference: r.inference,
        },
        result,
    }
}

/// Compile-time check: the executor's futures are `Send` for any borrow (a node serves
/// them from hyper connections on a multi-threaded runtime).
#[cfg(test)]
#[allow(dead_code)]
fn assert_send(inner: Arc<Inner>, pre: InstancePre<WagiState>, limits: Limits, env: InvocationEnv) {
    fn is_send<T: Send>(_: T) {}
    let (i2, p2, l2, e2) = (inner.clone(), pre.clone(), limits.clone(), env.clone());
    is_send(async move {
        run(&inner, &pre, &limits, &env, &[], Vec::new(), Bytes::new()).await;
    });
    let (i3, p3, l3, e3) = (i2.clone(), p2.clone(), l2.clone(), e2.clone());
    is_send(async move {
        invoke_event(&i2, &p2, l2, e2, EventContext::default(), Vec::new()).await;
    });
    is_send(async move {
        let req = hyper::Request::new(RequestBody::default());
        let _ = invoke_http(&i3, &p3, l3, e3, req, Box::new(|_| {})).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_responses_parse_status_headers_and_body() {
        let (s, h, b) = parse_cgi(Bytes::from_static(
            b"Content-Type: application/json\r\nStatus: 201 Created\r\nX-A: 1\r\n\r\n{\"ok\":true}\n",
        ))
        .unwrap();
        assert_eq!(s, 201);
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-a"], "1");
        assert_eq!(&b[..], b"{\"ok\":true}\n");

        let (s, h, b) = parse_cgi(Bytes::from_static(b"Location: /elsewhere\n\n")).unwrap();
        assert_eq!(
            (s, &h["location"], b.len()),
            (
                http::StatusCode::FOUND,
                &"/elsewhere".parse::<http::HeaderValue>().unwrap(),
                0
            )
        );

        let (s, _, b) = parse_cgi(Bytes::from_static(b"\nbody only")).unwrap();
        assert_eq!((s, &b[..]), (http::StatusCode::OK, &b"body only"[..]));

        // Framing/hop-by-hop headers are the node's: dropped, never passed on.
        let (_, h, b) = parse_cgi(Bytes::from_static(
            b"Content-Length: 0\nTransfer-Encoding: chunked\nConnection: keep-alive\nKeep-Alive: 5\nProxy-Foo: 1\nX-Ok: 1\n\nHTTP/1.1 200 OK\r\n\r\nsmuggled",
        ))
        .unwrap();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-ok"], "1");
        assert_eq!(
            &b[..],
            b"HTTP/1.1 200 OK\r\n\r\nsmuggled",
            "the body is only a body"
        );
        let many: String = (0..200).map(|i| format!("X-{i}: v\n")).collect::<String>() + "\n";
        assert!(parse_cgi(Bytes::from(many)).unwrap_err().contains("exceed"));
        for bad in [
            &b""[..],
            b"Status: 101 Switching Protocols\n\n",
            b"Status: 999\n\n",
            b"hello world",
            b"Content-Type: text/plain\nno blank line",
            b"not a header\n\nbody",
            b"Status: teapot\n\n",
            b"Bad Name: x\n\n",
        ] {
            assert!(
                parse_cgi(Bytes::copy_from_slice(bad)).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn cgi_variables_describe_the_request() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/a/b?x=1&y=2")
            .header("host", "edge.example:8443")
            .header("content-type", "image/jpeg")
            .header("x-trace", "t1")
            .header("accept", "a")
            .header("accept", "b")
            .header("x_trace", "spoofed")
            .header("x-configured", "client")
            .body(())
            .unwrap();
        let (head, ()) = req.into_parts();
        let env = InvocationEnv {
            tenant: "acme".into(),
            function: "classify".into(),
            env: vec![("HTTP_X_CONFIGURED".into(), "config".into())],
            ..Default::default()
        };
        let vars: std::collections::HashMap<String, String> =
            cgi_vars(&head, 42, &env).into_iter().collect();
        assert_eq!(vars["REQUEST_METHOD"], "POST");
        assert_eq!(vars["PATH_INFO"], "/a/b");
        assert_eq!(vars["QUERY_STRING"], "x=1&y=2");
        assert_eq!(vars["CONTENT_TYPE"], "image/jpeg");
        assert_eq!(vars["CONTENT_LENGTH"], "42");
        assert_eq!(vars["SCRIPT_NAME"], "/acme/classify");
        assert_eq!(vars["SERVER_NAME"], "edge.example");
        assert_eq!(vars["SERVER_PORT"], "8443");
        assert_eq!(vars["HTTP_X_TRACE"], "t1");
        assert_eq!(vars["HTTP_ACCEPT"], "a, b");
        assert_eq!(
            vars["X_FULL_URL"],
            "http://edge.example:8443/acme/classify/a/b?x=1&y=2"
        );
        assert!(!vars.contains_key("HTTP_CONTENT_TYPE"));
        assert_eq!(
            vars["HTTP_X_TRACE"], "t1",
            "`x_trace` cannot shadow `x-trace`"
        );
        assert!(
            !vars.contains_key("HTTP_X_CONFIGURED"),
            "a client header never replaces the function's configured variable"
        );
    }
}
