//! Python functions (componentize-py) end to end on a real node: `embed-py` (WordPiece
//! in pure Python, MiniLM through wasi:nn) against `embed-minilm` (Rust), `hello-py`
//! over HTTP and as an event, the `python-http` / `python-event` templates through the
//! CLI as a user types them (new -> build -> deploy -> invoke), a failing Python build,
//! and `helixflow dev` serving Python edits (HTTP and event functions) through its dev
//! runner without a build: an edit, a new module, a deleted module still imported and
//! a syntax error (both refused, the alias kept), a non-.py change (a full build).
//!
//! Needs componentize-py (`HELIXFLOW_COMPONENTIZE_PY`) and the Python example
//! functions built into `HELIXFLOW_GUEST_DIR` (scripts/lib.sh `ensure_componentize_py`
//! and `build_py_functions`, run by scripts/test.sh).

use helixflow_e2e::{Api, Http, Node, guest, helixflow_bin};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// componentize-py, as scripts/lib.sh installs it; a clear failure when missing.
fn componentize_py() -> PathBuf {
    let p = std::env::var_os("HELIXFLOW_COMPONENTIZE_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "HELIXFLOW_COMPONENTIZE_PY is not set: run the tests with scripts/test.sh (or `source scripts/lib.sh; ensure_componentize_py; build_py_functions`)"
            )
        });
    assert!(p.is_file(), "{}: no componentize-py there", p.display());
    p
}

/// `helixflow ARGS` against `url` as the platform admin, in `cwd`.
fn hf(cwd: &Path, url: &str, args: &[&str]) -> Output {
    helixflow_e2e::helixflow_cli(cwd, url, args)
        .env("HELIXFLOW_COMPONENTIZE_PY", componentize_py())
        .output()
        .expect("run helixflow")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn both(o: &Output) -> String {
    helixflow_e2e::output_text(o)
}

fn invoke(node: &Node, tenant: &str, name: &str, data: &str) -> Output {
    hf(
        Path::new("."),
        &node.url,
        &["invoke", "-t", tenant, "-f", name, "-d", data],
    )
}

fn invoke_ok(node: &Node, tenant: &str, name: &str, data: &str) -> Value {
    let o = invoke(node, tenant, name, data);
    assert!(o.status.success(), "invoke {name}: {}", both(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", both(&o)))
}

fn floats(d: &Value) -> Vec<f64> {
    d.as_array()
        .unwrap_or_else(|| panic!("not an array: {d}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn py_embed_and_hello_run_on_node_defaults() {
    let dir = tempfile::tempdir().unwrap();
    // The node's defaults: no config at all (pooling allocator, memory limits).
    let node = Node::start(&dir.path().join("node"), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;

    // hello-py: deploy (the node compiles it: cold, nothing cached), first request
    // (instantiation of the pre-initialised CPython), then warm requests.
    let t = Instant::now();
    let v = api
        .deploy("acme", "hello-py", "hello-py", "?alias=live")
        .await;
    let compile = t.elapsed();
    assert_eq!(v, 1);
    let http = Http::new();
    let url = format!("{}/acme/hello-py/greet?name=Ada", node.url);
    let t = Instant::now();
    let r = http.get(&url).await;
    let first = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Hello, Ada! (GET /greet)\n");
    assert_eq!(r.header("x-helixflow-example"), Some("hello-py"));
    let mut warm = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let r = http
            .get(&format!("{}/acme/hello-py/?name=n{i}", node.url))
            .await;
        warm.push(t.elapsed());
        assert_eq!(r.text(), format!("Hello, n{i}! (GET /)\n"));
    }
    let size = guest("hello-py").len();
    println!(
        "py: hello-py ({:.1} MB component): deploy incl. compile {:.2} s, first request {:.1} ms, warm median {:.2} ms",
        size as f64 / 1e6,
        compile.as_secs_f64(),
        first.as_secs_f64() * 1e3,
        median(warm).as_secs_f64() * 1e3
    );

    // hello-py's event export: context, JSON out; a handled error is a function error.
    let v = invoke_ok(&node, "acme", "hello-py", r#"{"name":"Grace"}"#);
    assert_eq!(v["greeting"], "Hello, Grace!", "{v}");
    assert_eq!(v["function"], "hello-py", "{v}");
    assert_eq!(v["version"], 1, "{v}");
    assert!(v["request_id"].as_str().is_some_and(|s| s.len() > 8), "{v}");
    assert!(v["memory_limit_mb"].as_u64().is_some_and(|m| m > 0), "{v}");
    let r = http
        .post(&format!("{}/invoke/acme/hello-py", node.url), "fail")
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("RequestedFailure"), "{}", r.text());
    let r = http
        .post(&format!("{}/invoke/acme/hello-py", node.url), "{not json")
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("InvalidEvent"), "{}", r.text());

    // embed-py against embed-minilm on the same model.
    let r = crate::nn::push(
        &api,
        "acme",
        "all-minilm-l6-v2",
        "minilm-int8.onnx",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    api.deploy("acme", "embed-py", "embed-py", "?alias=live")
        .await;
    api.deploy("acme", "embed-minilm", "embed-minilm", "?alias=live")
        .await;
    let long = (0..400)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ");
    let texts = json!([
        "The quick brown fox jumps over the lazy dog.",
        "Hello, world!",
        "Ünïcödé: naïve café, ΣΑΣ ὀδυσσεύς, 你好世界, emoji 🙂, Straße [SEP] İstanbul",
        "tabs\tand\nnewlines\r\n and \u{200b}zero-width \u{00a0}spaces",
        long,
    ]);
    // The tokenizers first: the same ids (the long text untruncated here).
    let ours = invoke_ok(
        &node,
        "acme",
        "embed-py",
        &json!({ "tokenize": texts }).to_string(),
    );
    let theirs = invoke_ok(
        &node,
        "acme",
        "embed-minilm",
        &json!({ "tokenize": texts }).to_string(),
    );
    assert_eq!(ours["ids"], theirs["ids"], "token ids differ");
    assert!(
        ours["ids"][4].as_array().unwrap().len() > 256,
        "the long text is not long"
    );
    let req = json!({"model": "all-minilm-l6-v2", "input": texts}).to_string();
    let t = Instant::now();
    let ours = invoke_ok(&node, "acme", "embed-py", &req);
    let py_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let theirs = invoke_ok(&node, "acme", "embed-minilm", &req);
    let rust_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "py: embed 5 texts: embed-py {py_ms:.0} ms, embed-minilm {rust_ms:.0} ms (CLI round trip)"
    );
    assert_eq!(ours["usage"], theirs["usage"], "{}", ours["usage"]);
    // Truncated to 256 tokens like the Rust function.
    let tokens = ours["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 256 && tokens < 5 * 256, "{tokens}");
    let (a, b) = (
        ours["data"].as_array().unwrap(),
        theirs["data"].as_array().unwrap(),
    );
    assert_eq!(a.len(), 5);
    assert_eq!(b.len(), 5);
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (floats(x), floats(y));
        assert_eq!(x.len(), 384);
        assert_eq!(y.len(), 384);
        let diff = x
            .iter()
            .zip(&y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f64, f64::max);
        worst = worst.max(diff);
    }
    println!("py: embed-py vs embed-minilm: max |difference| {worst:e}");
    assert!(worst < 1e-5, "max difference from embed-minilm: {worst}");
    // Bad input is a typed error, as in the Rust function.
    let o = invoke(&node, "acme", "embed-py", r#"{"input": ["x"]}"#);
    assert!(!o.status.success(), "{}", both(&o));
    assert!(both(&o).contains("missing model"), "{}", both(&o));
    let r = http
        .post(
            &format!("{}/invoke/acme/embed-py", node.url),
            r#"{"model": "no-such-model", "input": ["x"]}"#,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("model_unavailable"), "{}", r.text());
    assert!(r.text().contains("not-found"), "{}", r.text());
}

/// `helixflow new NAME --template T`, then the template's own unit tests
/// (`python -m unittest`) with the Python componentize-py runs on.
fn new_py_project(dir: &Path, name: &str, template: &str) -> PathBuf {
    let proj = dir.join(name);
    let o = hf(
        dir,
        "http://127.0.0.1:9",
        &["new", name, "--template", template],
    );
    assert!(o.status.success(), "new {template}: {}", both(&o));
    for f in [
        "pyproject.toml",
        "src/app.py",
        "tests/test_app.py",
        "README.md",
        ".gitignore",
    ] {
        assert!(proj.join(f).is_file(), "{template}: no {f}");
    }
    let toml = std::fs::read_to_string(proj.join("pyproject.toml")).unwrap();
    assert!(toml.contains(&format!("name = \"{name}\"")), "{toml}");
    assert!(!toml.contains("{{"), "{toml}");
    let python = componentize_py().with_file_name("python");
    let o = Command::new(&python)
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .current_dir(&proj)
        .output()
        .unwrap();
    assert!(o.status.success(), "{template}'s unit tests: {}", both(&o));
    proj
}

/// `helixflow build` in `proj` (as typed: no flags): the component's path.
fn build_py(proj: &Path) -> PathBuf {
    let t = Instant::now();
    let o = hf(proj, "http://127.0.0.1:9", &["build"]);
    assert!(o.status.success(), "build {}: {}", proj.display(), both(&o));
    let name = proj.file_name().unwrap().to_str().unwrap();
    let path = PathBuf::from(stdout(&o).lines().last().unwrap_or_default());
    assert_eq!(
        path,
        proj.canonicalize()
            .unwrap()
            .join(format!("target/helixflow/{name}.wasm"))
    );
    assert!(path.is_file(), "{}", path.display());
    println!("py: built {name} in {:.1} s", t.elapsed().as_secs_f64());
    path
}

fn deploy(node: &Node, proj: &Path, tenant: &str, name: &str, wasm: &Path) -> Output {
    hf(
        proj,
        &node.url,
        &[
            "deploy",
            "-t",
            tenant,
            "-f",
            name,
            wasm.to_str().unwrap(),
            "--alias",
            "live",
        ],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn py_templates_new_build_deploy_invoke_and_a_failing_build() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let http = Http::new();

    // The guest SDK's own unit tests (its pure-Python parts).
    let o = Command::new(componentize_py().with_file_name("python"))
        .args(["-m", "unittest", "discover", "-s", "guest-sdk/python/tests"])
        .current_dir(helixflow_e2e::workspace_root())
        .output()
        .unwrap();
    assert!(o.status.success(), "guest SDK unit tests: {}", both(&o));

    // python-http.
    let proj = new_py_project(dir.path(), "web-py", "python-http");
    let wasm = build_py(&proj);
    let o = deploy(&node, &proj, "acme", "web-py", &wasm);
    assert!(o.status.success(), "deploy: {}", both(&o));
    assert!(stdout(&o).contains("http=true"), "{}", both(&o));
    let r = http
        .get(&format!("{}/acme/web-py/?name=Ada", node.url))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Hello, Ada!\n");

    // python-event.
    let proj = new_py_project(dir.path(), "job-py", "python-event");
    let wasm = build_py(&proj);
    let o = deploy(&node, &proj, "acme", "job-py", &wasm);
    assert!(o.status.success(), "deploy: {}", both(&o));
    assert!(stdout(&o).contains("event=true"), "{}", both(&o));
    let v = invoke_ok(&node, "acme", "job-py", r#"{"name":"Ada"}"#);
    assert_eq!(v["message"], "Hello, Ada!", "{v}");
    assert!(
        v["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );
    let o = invoke(&node, "acme", "job-py", "not json");
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(both(&o).contains("the event is not JSON"), "{}", both(&o));

    // A syntax error: exit 1, Python's message, no component, nothing deployed.
    let proj = new_py_project(dir.path(), "broken-py", "python-http");
    let app = proj.join("src/app.py");
    let src = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, src.replace("def greeting(", "def greeting((")).unwrap();
    let o = hf(&proj, "http://127.0.0.1:9", &["build"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let out = both(&o);
    assert!(out.contains("SyntaxError"), "{out}");
    assert!(out.contains("app.py"), "{out}");
    assert!(out.contains("the build of broken-py failed"), "{out}");
    assert!(!out.contains("Stack backtrace"), "{out}");
    assert!(!proj.join("target/helixflow/broken-py.wasm").exists());
    let r = http
        .get(&format!("{}/api/v1/tenants/acme/functions", node.url))
        .await;
    assert!(!r.text().contains("broken-py"), "{}", r.text());

    // No componentize-py: the one-line fix.
    let o = Command::new(helixflow_bin())
        .args(["build", "--dir", proj.to_str().unwrap()])
        .env("HELIXFLOW_COMPONENTIZE_PY", dir.path().join("no-such-tool"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        both(&o).contains("pip install componentize-py==0.25.1"),
        "{}",
        both(&o)
    );
    // A pyproject.toml that is not a HelixFlow function.
    let other = dir.path().join("plain");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("pyproject.toml"), "[project]\nname = \"x\"\n").unwrap();
    let o = hf(&other, "http://127.0.0.1:9", &["build"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(
        both(&o).contains("no [tool.helixflow] table"),
        "{}",
        both(&o)
    );
}

struct Dev(std::process::Child);

impl Drop for Dev {
    /// SIGINT (dev stops its node), 10 s, then SIGKILL.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `helixflow dev` on a project, as typed, on a node it starts: its stdout lines, its
/// stderr file, the node's URL and the dev node's admin key.
struct DevRun {
    _dev: Dev,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: PathBuf,
    url: String,
    http: Http,
}

impl DevRun {
    /// Start it and wait for its first deploy.
    fn start(dir: &Path, proj: &Path, name: &str) -> DevRun {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let stderr = dir.join(format!("{name}.dev.stderr"));
        let child = Command::new(helixflow_bin())
            .args(["dev", "--url", &url, "--dir", proj.to_str().unwrap()])
            .env("HELIXFLOW_COMPONENTIZE_PY", componentize_py())
            .env_remove("HELIXFLOW_TOKEN")
            .env_remove("HELIXFLOW_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut dev = Dev(child);
        let out = dev.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                println!("dev| {l}");
                let _ = tx.send(l);
            }
        });
        let mut d = DevRun {
            _dev: dev,
            lines: rx,
            stderr,
            url,
            http: Http::new(),
        };
        d.wait(300, "first deploy", &|l| {
            l.starts_with(&format!("deployed dev/{name} version 1"))
        });
        d.wait(60, "watching", &|l| l.starts_with("watching"));
        let key = std::fs::read_to_string(proj.join("target/helixflow-dev/admin.key")).unwrap();
        d.http = Http::with_token(Some(&key));
        d
    }

    /// The next stdout line that `f` accepts.
    fn wait(&self, secs: u64, what: &str, f: &dyn Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if f(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!("no {what} within {secs} s"),
            }
        }
    }

    /// Which way dev took for the change just made: its "reloaded ..." or
    /// "rebuilding ..." line.
    fn path_taken(&self) -> String {
        self.wait(120, "reload or rebuild", &|l| {
            l.starts_with("reloaded ") || l.starts_with("rebuilding ")
        })
    }

    /// Wait until dev's stderr holds `needle` `n` times; the stderr.
    async fn stderr_has(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let err = std::fs::read_to_string(&self.stderr).unwrap();
            if err.matches(needle).count() >= n {
                return err;
            }
            assert!(Instant::now() < deadline, "no {needle:?} (x{n}) in:\n{err}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Write `text` to `path` and poll `get` until it answers `want`: the seconds it took.
async fn edit_until<F, Fut>(path: &Path, text: &str, want: &str, get: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let t = Instant::now();
    std::fs::write(path, text).unwrap();
    loop {
        if get().await.as_deref() == Some(want) {
            return t.elapsed().as_secs_f64();
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{want:?} was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn py_dev_redeploys_a_python_edit() {
    let dir = tempfile::tempdir().unwrap();
    let proj = new_py_project(dir.path(), "watch-py", "python-http");
    let d = DevRun::start(dir.path(), &proj, "watch-py");
    let fn_url = format!("{}/dev/watch-py/?name=Ada", d.url);
    let r = d.http.get(&fn_url).await;
    assert_eq!(r.text(), "Hello, Ada!\n");
    let get = || {
        let (http, url) = (&d.http, &fn_url);
        async move {
            let r = http.try_request("GET", url, bytes::Bytes::new()).await;
            r.ok().map(|r| r.text())
        }
    };

    // A Python edit: served as version 2, without a build (the dev runner).
    let app = proj.join("src/app.py");
    let src = std::fs::read_to_string(&app).unwrap();
    let edited = src.replace("Hello, {name}!", "Howdy, {name}!");
    let took = edit_until(&app, &edited, "Howdy, Ada!\n", get).await;
    println!(
        "py: change-to-served (Python edit, HTTP function, helixflow dev) {took:.2} s (target 2 s)"
    );
    assert_eq!(d.path_taken(), "reloaded 1 module (no rebuild)");
    let line = d.wait(30, "dev's measurement", &|l| {
        l.starts_with("change-to-served:")
    });
    assert!(line.contains("(version 2)"), "{line}");

    // A new module, imported by the app: version 3, still no build.
    std::fs::write(
        proj.join("src/helper.py"),
        "def greeting(name: str) -> str:\n    return f\"Hi {name}, from a new module\\n\"\n",
    )
    .unwrap();
    let with_helper = edited
        .replace(
            "from helixflow import http\n",
            "from helixflow import http\n\nimport helper\n",
        )
        .replace(
            "return f\"Howdy, {name}!\\n\"",
            "return helper.greeting(name)",
        );
    assert_ne!(
        with_helper, edited,
        "the template changed: update this test"
    );
    edit_until(&app, &with_helper, "Hi Ada, from a new module\n", get).await;
    assert_eq!(d.path_taken(), "reloaded 2 modules (no rebuild)");
    let line = d.wait(30, "dev's measurement", &|l| {
        l.starts_with("change-to-served:")
    });
    assert!(line.contains("(version 3)"), "{line}");

    // The module deleted while the app still imports it: Python's error, as a fresh
    // build would fail, and version 3 keeps serving.
    std::fs::remove_file(proj.join("src/helper.py")).unwrap();
    d.wait(60, "the change", &|l| l == "change detected");
    let err = d
        .stderr_has("build failed (errors above): version 3 keeps serving", 1)
        .await;
    assert!(
        err.contains("ModuleNotFoundError: No module named 'helper'"),
        "{err}"
    );
    assert!(err.contains("app.py"), "{err}");
    assert_eq!(get().await.as_deref(), Some("Hi Ada, from a new module\n"));

    // A syntax error (helper.py still gone): Python's error, version 3 keeps serving.
    std::fs::write(&app, src.replace("def greeting(", "def greeting((")).unwrap();
    d.wait(60, "the change", &|l| l == "change detected");
    let err = d
        .stderr_has("build failed (errors above): version 3 keeps serving", 2)
        .await;
    assert!(err.contains("SyntaxError"), "{err}");
    assert!(
        err.contains(&format!("{}", proj.join("src/app.py").display())),
        "the error names the file as the user has it: {err}"
    );
    assert_eq!(get().await.as_deref(), Some("Hi Ada, from a new module\n"));
    let f = d
        .http
        .get(&format!("{}/api/v1/tenants/dev/functions/watch-py", d.url))
        .await
        .json();
    assert_eq!(f["versions"].as_array().map(Vec::len), Some(3), "{f}");

    // Fixed again: served from the original sources, without a build.
    edit_until(&app, &src, "Hello, Ada!\n", get).await;
    assert_eq!(d.path_taken(), "reloaded 1 module (no rebuild)");
}

#[tokio::test(flavor = "multi_thread")]
async fn py_dev_reloads_an_event_function_edit() {
    let dir = tempfile::tempdir().unwrap();
    let proj = new_py_project(dir.path(), "watch-ev", "python-event");
    let d = DevRun::start(dir.path(), &proj, "watch-ev");
    let invoke_url = format!("{}/invoke/dev/watch-ev", d.url);
    let invoke = || {
        let (http, url) = (&d.http, &invoke_url);
        async move {
            let body = bytes::Bytes::from_static(br#"{"name":"Ada"}"#);
            let r = http.try_request("POST", url, body).await.ok()?;
            let v: Value = serde_json::from_slice(&r.body).ok()?;
            v["message"].as_str().map(str::to_string)
        }
    };
    assert_eq!(invoke().await.as_deref(), Some("Hello, Ada!"));

    let app = proj.join("src/app.py");
    let src = std::fs::read_to_string(&app).unwrap();
    let edited = src.replace("f\"Hello, {name}!\"", "f\"Good day, {name}!\"");
    assert_ne!(edited, src, "the template changed: update this test");
    let took = edit_until(&app, &edited, "Good day, Ada!", invoke).await;
    println!("py: change-to-served (Python edit, event function, helixflow dev) {took:.2} s");
    assert_eq!(d.path_taken(), "reloaded 1 module (no rebuild)");
    // The function's own error handling still works through the runner.
    let r = d
        .http
        .post(&invoke_url, bytes::Bytes::from_static(b"not json"))
        .await;
    assert!(r.text().contains("the event is not JSON"), "{}", r.text());
    // The check function (it held a copy of the env) is gone after the check.
    let check_url = format!("{}/api/v1/tenants/dev/functions/watch-ev-dev-check", d.url);
    let r = d
        .http
        .try_request("GET", &check_url, bytes::Bytes::new())
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    // A change other than a .py file under src: a full build, said so.
    let toml = proj.join("pyproject.toml");
    let manifest = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{manifest}\n# edited\n")).unwrap();
    let line = d.path_taken();
    assert!(
        line.starts_with("rebuilding watch-ev (pyproject.toml changed)"),
        "{line}"
    );
    d.wait(300, "the rebuilt version", &|l| {
        l.starts_with("deployed dev/watch-ev version 3")
    });
    // The rebuilt runner holds the edit itself.
    assert_eq!(invoke().await.as_deref(), Some("Good day, Ada!"));

    // A function named like the check function that dev did not create is never
    // touched: the next edit is rebuilt instead, and that function keeps its version.
    let r = d
        .http
        .post(&format!("{check_url}/versions"), guest("hello"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let evening = edited.replace("Good day", "Good evening");
    std::fs::write(&app, &evening).unwrap();
    let line = d.path_taken();
    assert!(
        line.starts_with("rebuilding watch-ev")
            && line.contains("dev/watch-ev-dev-check exists and was not created by helixflow dev"),
        "{line}"
    );
    d.wait(300, "the rebuilt version", &|l| {
        l.starts_with("deployed dev/watch-ev version 4")
    });
    assert_eq!(invoke().await.as_deref(), Some("Good evening, Ada!"));
    let r = d.http.get(&check_url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let f = r.json();
    assert_eq!(f["versions"].as_array().map(Vec::len), Some(1), "{f}");
    assert!(
        f["function"]["config"]["env"]
            .get("HELIXFLOW_DEV_CHECK")
            .is_none(),
        "{f}"
    );
}
