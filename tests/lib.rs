//! Test harness for end-to-end tests: real `helixflow` processes on loopback, real
//! HTTP over real sockets, real guest components built for wasm32-wasip2.
//!
//! Inputs (set by `scripts/test.sh`; defaults fit a plain `cargo` checkout):
//! * `HELIXFLOW_BIN`: the `helixflow` binary (default `target/ci/helixflow`, the test profile).
//! * `HELIXFLOW_GUEST_DIR`: the built guests (default `target/wasm32-wasip2/guest`).
//!
//! Missing inputs fail the test with a message saying how to build them: nothing is
//! skipped silently.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn helixflow_bin() -> PathBuf {
    let p = std::env::var_os("HELIXFLOW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/ci/helixflow"));
    assert!(
        p.exists(),
        "{} is missing: build it with `cargo build --profile ci -p helixflow` (or run scripts/test.sh)",
        p.display()
    );
    p
}

/// Bytes of a built guest component, e.g. `guest("hello")`.
pub fn guest(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("HELIXFLOW_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip2/guest"));
    let p = dir.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the guests with scripts/build-functions.sh (or run scripts/test.sh)",
            p.display()
        )
    })
}

/// A WASI preview1 command module built from the workspace (`wasm32-wasip1`, e.g.
/// `classify-wasi-nn`), by its file name.
pub fn guest_module(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("HELIXFLOW_MODULE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip1/guest"));
    let p = dir.join(format!("{name}.wasm"));
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the guests with scripts/build-functions.sh (or run scripts/test.sh)",
            p.display()
        )
    })
}

/// `helixflow ARGS` run in `cwd` against `url` as the platform admin, without the
/// caller's guest-SDK override: a command to add environment to, then run.
pub fn helixflow_cli(cwd: &Path, url: &str, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(helixflow_bin());
    cmd.args(args)
        .current_dir(cwd)
        .env("HELIXFLOW_URL", url)
        .env("HELIXFLOW_TOKEN", admin_key())
        .env_remove("HELIXFLOW_GUEST_SDK")
        .stdin(std::process::Stdio::null());
    cmd
}

/// A finished command's exit code, stdout and stderr, for assertion messages.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "rc {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A running `helixflow serve` child process. Killed (SIGKILL) on drop.
pub struct Node {
    pub url: String,
    /// The HTTPS listener, when the config has one.
    pub https_url: Option<String>,
    pub data_dir: PathBuf,
    child: Child,
    pub log_path: PathBuf,
}

impl Node {
    /// Start a node on a fresh port with `data_dir` and optional config TOML.
    pub fn start(data_dir: &Path, config_toml: Option<&str>) -> Node {
        Self::start_with_env(data_dir, config_toml, &[])
    }

    /// Like `start`, with extra environment variables for the node process.
    pub fn start_with_env(
        data_dir: &Path,
        config_toml: Option<&str>,
        env: &[(&str, &str)],
    ) -> Node {
        std::fs::create_dir_all(data_dir).unwrap();
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log_path = data_dir.join(format!("serve-{n}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(helixflow_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .env("HELIXFLOW_ADMIN_KEY", admin_key())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(toml) = config_toml {
            let cfg = data_dir.join("node.toml");
            std::fs::write(&cfg, toml).unwrap();
            cmd.arg("--config").arg(cfg);
        }
        let mut child = cmd.spawn().expect("spawn helixflow serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("helixflow listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let wants_https = config_toml.is_some_and(|t| t.contains("https ="));
        let mut urls = Vec::new();
        while urls.len() < 1 + wants_https as usize {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(u) => urls.push(u),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "helixflow serve did not start; its log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
            }
        }
        let url = urls
            .iter()
            .find(|u| u.starts_with("http://"))
            .cloned()
            .unwrap_or_default();
        let https_url = urls.iter().find(|u| u.starts_with("https://")).cloned();
        Node {
            url,
            https_url,
            data_dir: data_dir.to_path_buf(),
            child,
            log_path,
        }
    }

    /// kill -9 the process (no graceful shutdown).
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `error.code` of an error response.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP client over real sockets.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    /// Sent as `Authorization: Bearer ...` unless a request sets its own.
    token: Option<String>,
}

/// The platform admin key of every node this test process starts (a fresh random one
/// per process; nodes get it as `HELIXFLOW_ADMIN_KEY`).
pub fn admin_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        use sha2::Digest;
        let seed = format!(
            "{:?}{}{:?}",
            std::time::SystemTime::now(),
            std::process::id(),
            std::thread::current().id()
        );
        format!(
            "hfadmin_test{}",
            hex::encode(sha2::Sha256::digest(seed.as_bytes()))
        )
    })
}

impl Default for Http {
    fn default() -> Self {
        Self::new()
    }
}

impl Http {
    /// A client that authenticates as the platform admin (see [`admin_key`]).
    pub fn new() -> Self {
        Self::with_token(Some(admin_key()))
    }

    /// A client with no credentials.
    pub fn anonymous() -> Self {
        Self::with_token(None)
    }

    /// A client sending `token` as its bearer credential.
    pub fn with_token(token: Option<&str>) -> Self {
        let mut c = HttpConnector::new();
        c.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(c),
            token: token.map(str::to_string),
        }
    }

    /// An HTTP/2 (prior knowledge, h2c) client, as the platform admin.
    pub fn new_h2() -> Self {
        let mut c = HttpConnector::new();
        c.set_nodelay(true);
        Http {
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(c),
            token: Some(admin_key().to_string()),
        }
    }

    pub async fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        let mut b = http::Request::builder().method(method).uri(url);
        if let Some(t) = &self.token
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body.into())).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(60), self.client.request(req))
            .await
            .unwrap_or_else(|_| panic!("{method} {url} timed out"))
            .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Like `request`, but a transport error is returned instead of failing the test.
    pub async fn try_request(
        &self,
        method: &str,
        url: &str,
        body: impl Into<Bytes>,
    ) -> Result<Resp, String> {
        let mut b = http::Request::builder().method(method).uri(url);
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b.body(Full::new(body.into())).map_err(|e| e.to_string())?;
        let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, url: &str) -> Resp {
        self.request("GET", url, &[], Bytes::new()).await
    }
    pub async fn post(&self, url: &str, body: impl Into<Bytes>) -> Resp {
        self.request("POST", url, &[], body).await
    }
    pub async fn put_json(&self, url: &str, v: serde_json::Value) -> Resp {
        self.request(
            "PUT",
            url,
            &[("content-type", "application/json")],
            serde_json::to_vec(&v).unwrap(),
        )
        .await
    }
    pub async fn post_json(&self, url: &str, v: serde_json::Value) -> Resp {
        self.request(
            "POST",
            url,
            &[("content-type", "application/json")],
            serde_json::to_vec(&v).unwrap(),
        )
        .await
    }
}

/// Convenience control-plane calls against a node.
pub struct Api<'a> {
    pub node: &'a Node,
    pub http: Http,
}

impl<'a> Api<'a> {
    pub fn new(node: &'a Node) -> Self {
        Api {
            node,
            http: Http::new(),
        }
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url)
    }
    pub async fn create_tenant(&self, name: &str) {
        let r = self
            .http
            .post_json(
                &self.url("/api/v1/tenants"),
                serde_json::json!({"name": name}),
            )
            .await;
        assert_eq!(r.status, 201, "create tenant: {}", r.text());
    }
    /// A new API key of `tenant` with `role`: (the key, its prefix).
    pub async fn create_key(&self, tenant: &str, role: &str) -> (String, String) {
        let r = self
            .http
            .post_json(
                &self.url(&format!("/api/v1/tenants/{tenant}/keys")),
                serde_json::json!({"name": format!("{role}-key"), "role": role}),
            )
            .await;
        assert_eq!(r.status, 201, "create key: {}", r.text());
        let v = r.json();
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        (field("key"), field("prefix"))
    }
    /// Deploy and return the response (status asserted by the caller).
    pub async fn deploy_raw(
        &self,
        tenant: &str,
        function: &str,
        bytes: Vec<u8>,
        query: &str,
    ) -> Resp {
        self.http
            .post(
                &self.url(&format!(
                    "/api/v1/tenants/{tenant}/functions/{function}/versions{query}"
                )),
                bytes,
            )
            .await
    }
    /// Deploy, assert 201, return the version number.
    pub async fn deploy(&self, tenant: &str, function: &str, guest_name: &str, query: &str) -> u64 {
        let r = self
            .deploy_raw(tenant, function, guest(guest_name), query)
            .await;
        assert_eq!(r.status, 201, "deploy {tenant}/{function}: {}", r.text());
        r.json()["version"]["version"].as_u64().unwrap()
    }
}

/// Send a request head with a large declared body but only `send_body` bytes of it, then
/// read whatever the server answers (used to test early 413s the way curl sees them).
pub async fn early_response(
    url: &str,
    method: &str,
    path: &str,
    declared_len: usize,
    send_body: usize,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-length: {declared_len}\r\n\r\n",
        admin_key()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&vec![0u8; send_body]).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// A TCP forwarder on loopback that a test can cut and restore, to take a real server
/// (DynamoDB Local, ministack) away from a node and give it back, without stopping the
/// server other tests share. Cutting closes the listener (new connections are refused)
/// and drops every open connection.
pub struct CutProxy {
    pub addr: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<tokio::task::JoinSet<()>>>,
}

impl CutProxy {
    /// Forward a fresh loopback port to `upstream` (e.g. "127.0.0.1:18000").
    pub async fn start(upstream: &str) -> CutProxy {
        let upstream: std::net::SocketAddr = upstream.parse().expect("upstream host:port");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let p = CutProxy {
            addr,
            upstream,
            tasks: Default::default(),
        };
        p.serve(listener);
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let upstream = self.upstream;
        let tasks = self.tasks.clone();
        let accept_tasks = self.tasks.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                accept_tasks.lock().unwrap().spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }

    /// Refuse new connections and drop open ones.
    pub fn cut(&self) {
        self.tasks.lock().unwrap().abort_all();
    }

    /// Accept again on the same port.
    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the proxy port");
        self.serve(listener);
    }
}

/// The same component with a custom section appended, so its SHA-256 differs (a
/// distinct artifact that behaves identically).
pub fn with_nonce(mut component: Vec<u8>, nonce: u64) -> Vec<u8> {
    fn leb(mut n: u32, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let name = b"helixflow-test-nonce";
    let payload = nonce.to_le_bytes();
    let mut body = Vec::new();
    leb(name.len() as u32, &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    component.push(0); // custom section
    leb(body.len() as u32, &mut component);
    component.extend_from_slice(&body);
    component
}

/// What a `ThrottleProxy` answers while it is failing requests.
#[derive(Clone, Copy, Debug)]
pub enum Throttle {
    /// DynamoDB: 400 `ProvisionedThroughputExceededException`.
    DynamoDb,
    /// S3: 503 `SlowDown`.
    S3,
}

/// An HTTP forwarder to a real server that can answer the next N requests with the
/// service's throttling error instead of forwarding them.
pub struct ThrottleProxy {
    pub addr: std::net::SocketAddr,
    fail_next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    throttled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ThrottleProxy {
    pub async fn start(upstream_url: &str, kind: Throttle) -> ThrottleProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let p = ThrottleProxy {
            addr,
            fail_next: Default::default(),
            throttled: Default::default(),
            forwarded: Default::default(),
        };
        let upstream = upstream_url.trim_end_matches('/').to_string();
        let client: Client<HttpConnector, hyper::body::Incoming> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let (fail_next, throttled, forwarded) = (
            p.fail_next.clone(),
            p.throttled.clone(),
            p.forwarded.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (client, upstream) = (client.clone(), upstream.clone());
                let (fail_next, throttled, forwarded) =
                    (fail_next.clone(), throttled.clone(), forwarded.clone());
                let svc = hyper::service::service_fn(
                    move |mut req: http::Request<hyper::body::Incoming>| {
                        let (client, upstream) = (client.clone(), upstream.clone());
                        let (fail_next, throttled, forwarded) =
                            (fail_next.clone(), throttled.clone(), forwarded.clone());
                        async move {
                            let fail = fail_next
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            type B = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;
                            let resp: http::Response<B> = if fail {
                                throttled.fetch_add(1, Ordering::SeqCst);
                                let (status, ctype, body, error_type) = match kind {
                                Throttle::DynamoDb => (
                                    400,
                                    "application/x-amz-json-1.0",
                                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"throttled by the test"}"#.to_string(),
                                    Some("ProvisionedThroughputExceededException"),
                                ),
                                Throttle::S3 => (
                                    503,
                                    "application/xml",
                                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>".to_string(),
                                    None,
                                ),
                            };
                                let mut b = http::Response::builder()
                                    .status(status)
                                    .header("content-type", ctype);
                                if let Some(t) = error_type {
                                    b = b.header("x-amzn-errortype", t);
                                }
                                b.body(
                                    Full::new(Bytes::from(body))
                                        .map_err(|never| match never {})
                                        .boxed(),
                                )
                                .unwrap()
                            } else {
                                forwarded.fetch_add(1, Ordering::SeqCst);
                                let pq = req
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.as_str().to_string())
                                    .unwrap_or_default();
                                *req.uri_mut() = format!("{upstream}{pq}").parse().unwrap();
                                match client.request(req).await {
                                    Ok(r) => r.map(|b| b.boxed()),
                                    Err(e) => http::Response::builder()
                                        .status(502)
                                        .body(
                                            Full::new(Bytes::from(e.to_string()))
                                                .map_err(|never| match never {})
                                                .boxed(),
                                        )
                                        .unwrap(),
                                }
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        p
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Answer the next `n` requests with the throttling error.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn throttled(&self) -> usize {
        self.throttled.load(std::sync::atomic::Ordering::SeqCst)
    }
    pub fn forwarded(&self) -> usize {
        self.forwarded.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An environment variable the test command (scripts/test.sh) sets; a clear failure,
/// never a skip, when it is missing.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with scripts/test.sh, which starts DynamoDB Local, ministack and Azurite")
    })
}

/// A name unique to this test process and temp dir (for tables, buckets' prefixes).
pub fn unique_tag(dir: &Path) -> String {
    format!(
        "{}-{}",
        std::process::id(),
        dir.file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    )
}

/// Runs a Python script of the official-client tests (off the async runtime) and asserts
/// it succeeded and printed `OK` last; its stdout is printed. `cmd` is a prepared
/// command (interpreter, script, arguments, environment); the node's log is shown on
/// failure.
pub async fn run_python_ok(mut cmd: Command, node: &Node) -> String {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run python"))
        .await
        .expect("python task");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "python failed:\n{stdout}\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    stdout
}
