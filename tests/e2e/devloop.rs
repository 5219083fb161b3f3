//! The local loop for Rust functions through the CLI, as a user types it: `helixflow
//! new` for each template, `build` (a real `cargo build --target wasm32-wasip2`),
//! `deploy` and invoke on a real node; bad input; `doctor`; and `dev` end to end (it
//! starts its own node, redeploys on an edit, keeps serving through a broken build and
//! stops its node on SIGINT).
//!
//! Each test builds crates of its own names: the shared target dir holds one
//! `wasm32-wasip2/release/NAME.wasm` per name, which concurrent tests must not swap.
//!
//! The template projects build in one shared target dir,
//! `$CARGO_TARGET_DIR/devloop-templates`, so they reuse compiled dependencies.

use helixflow_e2e::{Api, Http, Node, helixflow_bin, workspace_root};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn templates_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("devloop-templates")
}

/// `helixflow ARGS` against `url` as the platform admin, in `cwd`.
fn hf(cwd: &Path, url: &str, args: &[&str]) -> Output {
    helixflow_e2e::helixflow_cli(cwd, url, args)
        .env("CARGO_TARGET_DIR", templates_target())
        .output()
        .expect("run helixflow")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn both(o: &Output) -> String {
    helixflow_e2e::output_text(o)
}

/// `helixflow new NAME --template T --dir DIR/NAME`, asserting success and the files.
fn new_project(dir: &Path, name: &str, template: &str) -> PathBuf {
    let proj = dir.join(name);
    let o = hf(
        dir,
        "http://127.0.0.1:9",
        &[
            "new",
            name,
            "--template",
            template,
            "--dir",
            proj.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "new {template}: {}", both(&o));
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "src/tests.rs",
        "README.md",
        ".gitignore",
    ] {
        assert!(proj.join(f).is_file(), "{template}: no {f}");
    }
    let toml = std::fs::read_to_string(proj.join("Cargo.toml")).unwrap();
    let sdk = workspace_root().join("guest-sdk").canonicalize().unwrap();
    assert!(toml.contains("[workspace]"), "{toml}");
    assert!(toml.contains(&format!("name = \"{name}\"")), "{toml}");
    assert!(
        toml.contains(&format!("path = \"{}\"", sdk.display())),
        "{toml}"
    );
    proj
}

/// `helixflow build --dir PROJ`: the component's path (asserted to exist).
fn build(proj: &Path) -> PathBuf {
    let t = Instant::now();
    let o = hf(
        proj,
        "http://127.0.0.1:9",
        &["build", "--dir", proj.to_str().unwrap()],
    );
    assert!(o.status.success(), "build {}: {}", proj.display(), both(&o));
    let out = stdout(&o);
    let path = PathBuf::from(out.lines().last().unwrap_or_default());
    let crate_name = proj
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .replace('-', "_");
    assert_eq!(
        path,
        templates_target().join(format!("wasm32-wasip2/release/{crate_name}.wasm")),
        "{out}"
    );
    assert!(path.is_file(), "{}", path.display());
    println!(
        "built {} in {:.1} s",
        proj.display(),
        t.elapsed().as_secs_f64()
    );
    path
}

fn deploy(node: &Node, tenant: &str, name: &str, wasm: &Path) {
    let o = hf(
        Path::new("."),
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
    );
    assert!(o.status.success(), "deploy {name}: {}", both(&o));
    assert!(
        stdout(&o).contains("alias live -> version 1"),
        "{}",
        both(&o)
    );
}

fn invoke(node: &Node, tenant: &str, name: &str, data: &str) -> Value {
    let o = hf(
        Path::new("."),
        &node.url,
        &["invoke", "-t", tenant, "-f", name, "-d", data],
    );
    assert!(o.status.success(), "invoke {name}: {}", both(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", both(&o)))
}

#[tokio::test(flavor = "multi_thread")]
async fn devloop_templates_new_build_deploy_and_invoke() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;

    // rust-http: served over HTTP through the alias.
    let proj = new_project(dir.path(), "hello-dev", "rust-http");
    deploy(&node, "acme", "hello-dev", &build(&proj));
    let r = api.http.get(&api.url("/acme/hello-dev/x?name=Ada")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Hello, Ada!\n");

    // rust-event: `helixflow invoke`.
    let proj = new_project(dir.path(), "event-dev", "rust-event");
    deploy(&node, "acme", "event-dev", &build(&proj));
    let v = invoke(&node, "acme", "event-dev", r#"{"name":"Ada"}"#);
    assert_eq!(v["message"], "Hello, Ada!", "{v}");
    assert!(
        v["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{v}"
    );

    // rust-embeddings: MiniLM pushed under the name the template loads; its vectors
    // must match those of the repository's embed-minilm function on the same model.
    let proj = new_project(dir.path(), "embed-dev", "rust-embeddings");
    deploy(&node, "acme", "embed-dev", &build(&proj));
    let r = crate::nn::push(
        &api,
        "acme",
        "all-minilm-l6-v2",
        "minilm-int8.onnx",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let texts = json!([
        "The quick brown fox jumps over the lazy dog.",
        "Hello, world!"
    ]);
    let v = invoke(
        &node,
        "acme",
        "embed-dev",
        &json!({"input": texts}).to_string(),
    );
    let data = v["data"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(data.len(), 2, "{v}");
    let vec = |d: &Value| -> Vec<f64> {
        d.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    for d in data {
        let d = vec(d);
        assert_eq!(d.len(), 384);
        let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(vec(&data[0]) != vec(&data[1]), "two texts, one vector");
    api.deploy("acme", "embed-minilm", "embed-minilm", "").await;
    let reference = invoke(
        &node,
        "acme",
        "embed-minilm",
        &json!({"model": "all-minilm-l6-v2", "input": texts}).to_string(),
    );
    for (ours, theirs) in data.iter().zip(reference["data"].as_array().unwrap()) {
        let diff = vec(ours)
            .iter()
            .zip(vec(theirs))
            .map(|(a, b)| (a - b).abs())
            .fold(0f64, f64::max);
        assert!(diff < 1e-5, "max difference from embed-minilm: {diff}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn devloop_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let url = "http://127.0.0.1:9";

    let o = hf(here, url, &["new", "x", "--template", "cobol-http"]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for t in [
        "rust-http",
        "rust-event",
        "rust-embeddings",
        "python-http",
        "python-event",
    ] {
        assert!(err.contains(t), "{err}");
    }

    let o = hf(here, url, &["new", "Bad_Name", "--template", "rust-http"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(both(&o).contains("is invalid"), "{}", both(&o));

    let o = Command::new(helixflow_bin())
        .args([
            "new",
            "nosdk",
            "--template",
            "rust-http",
            "--sdk",
            "/nonexistent",
        ])
        .current_dir(here)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(both(&o).contains("--sdk"), "{}", both(&o));
    assert!(!here.join("nosdk").exists());

    // A syntax error: exit 1, the compiler's error on stderr, no component.
    let proj = new_project(here, "broken-dev", "rust-http");
    let o = hf(
        here,
        url,
        &["new", "broken-dev", "--template", "rust-event"],
    );
    assert_eq!(o.status.code(), Some(1), "non-empty dir: {}", both(&o));
    assert!(both(&o).contains("--force"), "{}", both(&o));
    let lib = proj.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        src.replace("fn handle(req: Request)", "fn handle(req: Request"),
    )
    .unwrap();
    let artifact = templates_target().join("wasm32-wasip2/release/broken_dev.wasm");
    let _ = std::fs::remove_file(&artifact);
    let o = hf(&proj, url, &["build"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("error") && err.contains("src/lib.rs"), "{err}");
    assert!(err.contains("the build of broken-dev failed"), "{err}");
    assert!(stdout(&o).trim().is_empty(), "{}", both(&o));
    assert!(!artifact.exists());

    let o = hf(here, url, &["build", "--dir", here.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(both(&o).contains("no Cargo.toml"), "{}", both(&o));
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn devloop_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let o = hf(dir.path(), &node.url, &["doctor"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    for check in [
        "cargo",
        "rustc",
        "target",
        "guest SDK",
        "ONNX Runtime",
        "node",
        "credentials",
    ] {
        assert!(out.contains(&format!("OK   {check}: ")), "{check}: {out}");
    }
    assert!(out.contains("role admin"), "{out}");

    let (key, _) = api.create_key("acme", "developer").await;
    let o = Command::new(helixflow_bin())
        .args(["doctor", "--url", &node.url, "--token", &key])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", both(&o));
    assert!(
        stdout(&o).contains("tenant acme, role developer"),
        "{}",
        both(&o)
    );

    let o = Command::new(helixflow_bin())
        .args(["doctor", "--url", &node.url, "--token", "hf_not_a_key"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(stdout(&o).contains("FAIL credentials"), "{}", both(&o));

    let dead = format!("http://127.0.0.1:{}", dead_port());
    let o = hf(dir.path(), &dead, &["doctor"]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    assert!(stdout(&o).contains("FAIL node"), "{}", both(&o));
    assert!(stdout(&o).contains("OK   cargo"), "{}", both(&o));
}

/// Lines of a child's stdout, as they come.
struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    /// The first line (from now on) `f` accepts; panics after `secs`.
    fn wait(&mut self, secs: u64, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if f(&l) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no {what} within {secs} s; dev said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

/// GET `url` until its body contains `want`; the time it took.
async fn until_served(http: &Http, url: &str, want: &str, secs: u64) -> Duration {
    let t = Instant::now();
    loop {
        if let Ok(r) = http.try_request("GET", url, bytes::Bytes::new()).await
            && r.status == 200
            && r.text().contains(want)
        {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{url} never served {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Send `sig` (e.g. "-INT") to `pid`.
fn kill(sig: &str, pid: u32) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running `helixflow dev`: whatever happens to the test (a failed assert included),
/// it and its node are gone afterwards. Drop: SIGINT, 5 s to stop, then SIGKILL; then
/// SIGKILL to the node if it is still there.
struct DevProcess {
    child: std::process::Child,
    node_pid: Option<u32>,
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill("-INT", self.child.id());
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(pid) = self.node_pid
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            kill("-KILL", pid);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn devloop_dev_redeploys_on_change_and_stops_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let proj = new_project(dir.path(), "watch-dev", "rust-http");
    let url = format!("http://127.0.0.1:{}", dead_port());
    let stderr_path = dir.path().join("dev.stderr");
    let child = Command::new(helixflow_bin())
        .args(["dev", "--url", &url, "--dir", proj.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", templates_target())
        .env_remove("HELIXFLOW_TOKEN")
        .env_remove("HELIXFLOW_URL")
        // The caller's HELIXFLOW_* settings must not reach the dev node: an empty
        // secrets key would stop it from starting.
        .env("HELIXFLOW_SECRETS_KEY", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut dev = DevProcess {
        child,
        node_pid: None,
    };
    let out = dev.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            println!("dev| {l}");
            let _ = tx.send(l);
        }
    });
    let mut lines = Lines { rx, seen: vec![] };
    let started = lines.wait(60, "node start", |l| l.starts_with("started a dev node at"));
    let node_pid: u32 = started
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{started}"));
    dev.node_pid = Some(node_pid);
    // The key is in a file only its owner reads, not on the terminal.
    let key_path = proj.join("target/helixflow-dev/admin.key");
    lines.wait(10, "admin key", |l| {
        l == format!(
            "its admin key (this dev node only) is in {}",
            key_path.display()
        )
    });
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(key.len() >= 32, "{key}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    lines.wait(600, "first deploy", |l| {
        l.starts_with("deployed dev/watch-dev version 1")
    });
    lines.wait(10, "function URL", |l| {
        l == format!("function URL: {url}/dev/watch-dev/")
    });
    lines.wait(10, "curl line", |l| {
        l.starts_with("try: curl") && l.contains(&format!("$(cat {})", key_path.display()))
    });
    lines.wait(10, "watching", |l| l.starts_with("watching"));
    assert!(
        lines.seen.iter().all(|l| !l.contains(&key)),
        "dev printed the admin key:\n{}",
        lines.seen.join("\n")
    );

    let http = Http::with_token(Some(&key));
    let fn_url = format!("{url}/dev/watch-dev/?name=Ada");
    until_served(&http, &fn_url, "Hello, Ada!", 10).await;
    // dev prints the function's logs as they come.
    lines.wait(20, "the request's log", |l| l.contains("GET / name=Ada"));

    // Edit: the new text is served, as version 2 behind alias live.
    let lib = proj.join("src/lib.rs");
    let src = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, src.replace("Hello, {name}!", "Howdy, {name}!")).unwrap();
    let took = until_served(&http, &fn_url, "Howdy, Ada!", 300).await;
    println!(
        "devloop: change-to-served (Rust edit, HTTP function) {:.2} s",
        took.as_secs_f64()
    );
    lines.wait(10, "dev's measurement", |l| {
        l.starts_with("change-to-served:")
    });
    let f = http
        .get(&format!("{url}/api/v1/tenants/dev/functions/watch-dev"))
        .await;
    assert_eq!(f.status, 200, "{}", f.text());
    let f = f.json();
    let versions: Vec<u64> = f["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{f}");
    let live = f["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "live")
        .unwrap_or_else(|| panic!("no alias live: {f}"));
    assert_eq!(live["version"], 2, "{f}");

    // A broken edit: the errors are printed and version 2 keeps serving.
    std::fs::write(&lib, src.replace("Hello, {name}!", "Howdy, {name}!\"")).unwrap();
    lines.wait(300, "the rebuild", |l| l == "change detected");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !std::fs::read_to_string(&stderr_path)
        .unwrap()
        .contains("build failed (errors above): version 2 keeps serving")
    {
        assert!(Instant::now() < deadline, "no build failure reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(err.contains("error"), "{err}");
    until_served(&http, &fn_url, "Howdy, Ada!", 5).await;

    // SIGINT: dev ends and takes its node with it.
    assert!(kill("-INT", dev.child.id()), "kill -INT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = dev.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dev did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "dev exited with {status}");
    lines.wait(5, "the stop", |l| l.starts_with("stopping the dev node"));
    assert!(
        !Path::new(&format!("/proc/{node_pid}")).exists(),
        "the dev node (pid {node_pid}) is still running"
    );
    assert!(
        http.try_request("GET", &format!("{url}/healthz"), bytes::Bytes::new())
            .await
            .is_err(),
        "something still answers at {url}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn devloop_dev_refuses_a_foreign_node_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("node"), None);
    let proj = new_project(dir.path(), "foreign-dev", "rust-http");
    let o = Command::new(helixflow_bin())
        .args(["dev", "--url", &node.url, "--dir", proj.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", templates_target())
        .env_remove("HELIXFLOW_TOKEN")
        .env_remove("HELIXFLOW_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "the node at {} was not started by this dev",
            node.url
        )) && err.contains("HELIXFLOW_TOKEN/--token"),
        "{}",
        both(&o)
    );
}
