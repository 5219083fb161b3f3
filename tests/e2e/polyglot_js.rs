//! JavaScript functions (componentize-js / StarlingMonkey components built against
//! `wit/guest`, with the guest SDK `guest-sdk/js`) on a real node, on the node's default
//! runtime settings:
//! * `classify-js` (PNG/JPEG decode, resize and crop in JavaScript; EfficientNet-Lite0
//!   through wasi:nn `load-by-name`) against the Rust `classify-image` on real photos;
//! * `hello-js` over HTTP (bodies larger than one stream read, headers) and as an event
//!   function (context fields), with the compile, cold and warm latencies printed;
//! * a handler that throws: a JSON 500 over HTTP, a typed function error for events;
//! * the `js-http` and `js-event` templates: `helixflow new`, `npm install`, `npm test`
//!   (node --test), `npm run build`, `helixflow deploy`, invoke.
//!
//! `build_js_functions` (scripts/lib.sh, run by scripts/test.sh) builds the example
//! functions into `HELIXFLOW_GUEST_DIR` (hello-js -> hello_js.wasm) and installs jco and
//! componentize-js (`HELIXFLOW_JCO`).

use helixflow_e2e::{Api, Node, required_env};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The built JavaScript guest `name` (e.g. `hello-js`), written where the CLI can read it.
fn js_guest(dir: &Path, name: &str) -> PathBuf {
    let guests = PathBuf::from(required_env("HELIXFLOW_GUEST_DIR"));
    let src = guests.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        src.exists(),
        "{}: missing: build the JavaScript functions with `source scripts/lib.sh && build_js_functions` (scripts/test.sh does)",
        src.display()
    );
    let dst = dir.join(format!("{name}.wasm"));
    std::fs::copy(&src, &dst).unwrap();
    dst
}

/// `helixflow ARGS` against `url` as the platform admin, in `cwd`.
fn hf(cwd: &Path, url: &str, args: &[&str]) -> Output {
    helixflow_e2e::helixflow_cli(cwd, url, args)
        .output()
        .expect("run helixflow")
}

fn both(o: &Output) -> String {
    helixflow_e2e::output_text(o)
}

/// `helixflow deploy` (the CLI has no request timeout: a StarlingMonkey component takes
/// tens of seconds to compile on a busy 2-core machine). Returns the time it took.
async fn deploy(url: &str, function: &str, wasm: &Path) -> Duration {
    let (url, function, wasm) = (url.to_string(), function.to_string(), wasm.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let o = hf(
            wasm.parent().unwrap(),
            &url,
            &[
                "deploy",
                "-t",
                "demo",
                "-f",
                &function,
                // StarlingMonkey interprets (no JIT in wasm): classify-js decodes a JPEG
                // in 4-8 s on a quiet 2-core machine, more while other tests run.
                "--timeout-ms",
                "30000",
                wasm.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "deploy {function}: {}", both(&o));
        t.elapsed()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn js_classify_matches_classify_image_on_real_photos() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    api.deploy("demo", "classify-image", "classify-image", "")
        .await;
    let r = crate::nn::push(
        &api,
        "public",
        "efficientnet-lite0",
        "efficientnet-lite0.onnx",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    deploy(
        &node.url,
        "classify-js",
        &js_guest(dir.path(), "classify-js"),
    )
    .await;

    let models = PathBuf::from(required_env("HELIXFLOW_MODELS_DIR"));
    // PNG decoding is lossless and the resize is a port of the `image` crate's, so the
    // input tensor is the same to the bit and so are the probabilities. jpeg-js's IDCT and
    // chroma upsampling differ slightly from zune-jpeg's: the same top-5, probabilities
    // close (0.007 apart on grace_hopper.jpg).
    for (image, tolerance, expected_top) in [
        ("coffee.png", 1e-6, "espresso"),
        ("chelsea.png", 1e-6, "tiger cat"),
        ("grace_hopper.jpg", 0.02, "academic gown"),
    ] {
        let bytes = std::fs::read(models.join(image)).unwrap();
        let rust = api
            .http
            .post(&api.url("/demo/classify-image/"), bytes.clone())
            .await;
        let t = Instant::now();
        let js = api.http.post(&api.url("/demo/classify-js/"), bytes).await;
        let js_time = t.elapsed();
        assert_eq!(rust.status, 200, "classify-image {image}: {}", rust.text());
        assert_eq!(js.status, 200, "classify-js {image}: {}", js.text());
        let (rust, js) = (rust.json(), js.json());
        assert_eq!(js["model"], "efficientnet-lite0");
        let top = |v: &Value| -> Vec<(String, u64, f64)> {
            v["top5"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["label"].as_str().unwrap().to_string(),
                        t["index"].as_u64().unwrap(),
                        t["probability"].as_f64().unwrap(),
                    )
                })
                .collect()
        };
        let (r5, j5) = (top(&rust), top(&js));
        assert_eq!(r5.len(), 5);
        assert_eq!(
            r5.iter().map(|t| (&t.0, t.1)).collect::<Vec<_>>(),
            j5.iter().map(|t| (&t.0, t.1)).collect::<Vec<_>>(),
            "{image}: the top-5 labels differ: rust {r5:?} js {j5:?}"
        );
        assert_eq!(j5[0].0, expected_top, "{image}: {j5:?}");
        let worst = r5
            .iter()
            .zip(&j5)
            .map(|(r, j)| (r.2 - j.2).abs())
            .fold(0.0, f64::max);
        println!(
            "{image}: top-1 {} rust {:.6} js {:.6}, largest probability difference {worst:.2e} (JS request {js_time:?})",
            j5[0].0, r5[0].2, j5[0].2
        );
        assert!(
            worst <= tolerance,
            "{image}: probabilities differ by {worst} (> {tolerance}): rust {r5:?} js {j5:?}"
        );
    }

    // Bad input: clear errors, like classify-image's.
    let r = api
        .http
        .post(&api.url("/demo/classify-js/"), "hello, I am text")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), "invalid_image");
    assert!(r.text().contains("not a JPEG or PNG"), "{}", r.text());
    let coffee = std::fs::read(models.join("coffee.png")).unwrap();
    let r = api
        .http
        .post(&api.url("/demo/classify-js/"), coffee[..2000].to_vec())
        .await;
    assert_eq!(r.status, 400, "truncated PNG: {}", r.text());
    assert_eq!(r.code(), "invalid_image");
    let r = api.http.get(&api.url("/demo/classify-js/")).await;
    assert_eq!(r.status, 405, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn js_hello_http_and_event_with_latencies() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    let compile = deploy(&node.url, "hello-js", &js_guest(dir.path(), "hello-js")).await;
    let size = std::fs::metadata(dir.path().join("hello-js.wasm"))
        .unwrap()
        .len();

    let url = api.url("/demo/hello-js/greet/there?name=Ada");
    let t = Instant::now();
    let r = api.http.get(&url).await;
    let cold = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello, Ada, from JavaScript at /greet/there\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let r = api.http.get(&url).await;
        warm.push(t.elapsed());
        assert_eq!(r.status, 200);
    }
    warm.sort();

    // The Rust hello beside it, on the same node.
    let t = Instant::now();
    api.deploy("demo", "hello", "hello", "").await;
    let rust_compile = t.elapsed();
    let t = Instant::now();
    assert_eq!(api.http.get(&api.url("/demo/hello/")).await.status, 200);
    let rust_cold = t.elapsed();
    let mut rust_warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(api.http.get(&api.url("/demo/hello/")).await.status, 200);
        rust_warm.push(t.elapsed());
    }
    rust_warm.sort();
    println!(
        "hello-js ({:.1} MB): deploy (compile) {compile:?}, cold {cold:?}, warm median {:?} (p95 {:?}); \
         Rust hello: deploy {rust_compile:?}, cold {rust_cold:?}, warm median {:?}",
        size as f64 / 1e6,
        warm[10],
        warm[18],
        rust_warm[10]
    );

    // A body over several 64 KiB stream reads and 4 KiB writes comes back byte for byte.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = api
        .http
        .request(
            "POST",
            &api.url("/demo/hello-js/"),
            &[("content-type", "application/x-test")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-test"));
    assert!(r.body == body, "the echoed body differs");

    // The event function: JSON in, JSON out, the invocation context from the host.
    deploy(
        &node.url,
        "hello-js-event",
        &js_guest(dir.path(), "hello-js-event"),
    )
    .await;
    let r = api
        .http
        .post(&api.url("/invoke/demo/hello-js-event"), r#"{"name":"Ada"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["greeting"], "hello, Ada");
    assert_eq!(v["function"], "demo/hello-js-event@1");
    let rid = r
        .header("x-helixflow-request-id")
        .expect("request id header");
    assert_eq!(v["requestId"], rid);
    // Through the CLI too.
    let url = node.url.clone();
    let o = tokio::task::spawn_blocking(move || {
        hf(
            Path::new("."),
            &url,
            &[
                "invoke",
                "-t",
                "demo",
                "-f",
                "hello-js-event",
                "-d",
                r#"{"name":"Grace"}"#,
            ],
        )
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("hello, Grace"),
        "{}",
        both(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn js_handler_that_throws_is_a_clear_function_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    deploy(&node.url, "hello-js", &js_guest(dir.path(), "hello-js")).await;
    deploy(
        &node.url,
        "hello-js-event",
        &js_guest(dir.path(), "hello-js-event"),
    )
    .await;

    // HTTP: the SDK turns the exception into a JSON 500 naming its type and message.
    let r = api.http.get(&api.url("/demo/hello-js/fail")).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["error"]["code"], "function_error", "{v}");
    assert_eq!(v["error"]["error_type"], "RangeError", "{v}");
    assert_eq!(v["error"]["message"], "asked to fail", "{v}");
    // ... and the function keeps serving.
    assert_eq!(api.http.get(&api.url("/demo/hello-js/")).await.status, 200);

    // Events: the host's function error (422) with the thrown type and message.
    for (event, error_type, message) in [
        (r#"{"fail":"bad input"}"#, "ValidationError", "bad input"),
        (r#"{"throw":"oops"}"#, "TypeError", "oops"),
        ("not json", "InvalidJson", "the event is not JSON"),
    ] {
        let r = api
            .http
            .post(&api.url("/invoke/demo/hello-js-event"), event)
            .await;
        assert_eq!(r.status, 422, "{event}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], "function_error", "{event}: {v}");
        assert_eq!(v["error"]["error_type"], error_type, "{event}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with(message),
            "{event}: {v}"
        );
    }
}

/// `npm ARGS` in `dir` (npm's download cache shared with scripts/lib.sh).
fn npm(dir: &Path, args: &[&str]) -> Output {
    let cache = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/helixflow/npm"))
        .unwrap();
    Command::new("npm")
        .args(args)
        .arg("--cache")
        .arg(cache)
        .current_dir(dir)
        .env_remove("HELIXFLOW_JCO")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("npm: {e}: install Node.js 20+ and npm (scripts/lib.sh ensure_jco does)")
        })
}

/// `helixflow new` -> npm install -> npm test -> npm run build -> helixflow deploy.
async fn template_project(dir: &Path, url: &str, name: &str, template: &str) {
    let (dir, url, name, template) = (
        dir.to_path_buf(),
        url.to_string(),
        name.to_string(),
        template.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        let proj = dir.join(&name);
        let o = hf(
            &dir,
            &url,
            &[
                "new",
                &name,
                "--template",
                &template,
                "--dir",
                proj.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "new: {}", both(&o));
        for f in [
            "package.json",
            "src/index.js",
            "src/handler.js",
            "test/handler.test.js",
            "README.md",
            ".gitignore",
        ] {
            assert!(proj.join(f).is_file(), "{template}: {f} missing");
        }
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(proj.join("package.json")).unwrap()).unwrap();
        let sdk = manifest["dependencies"]["@helixflow/guest"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            sdk.starts_with("file:") && Path::new(&sdk[5..]).join("src/index.js").is_file(),
            "the SDK dependency {sdk} is not this checkout's guest-sdk/js"
        );
        let o = npm(
            &proj,
            &["install", "--no-audit", "--no-fund", "--prefer-offline"],
        );
        assert!(o.status.success(), "npm install: {}", both(&o));
        let o = npm(&proj, &["test"]);
        assert!(o.status.success(), "npm test: {}", both(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.lines().any(|l| l.trim() == "# fail 0") && !out.contains("# pass 0"),
            "{template}: node --test ran no passing test: {}",
            both(&o)
        );
        let o = npm(&proj, &["run", "build"]);
        assert!(o.status.success(), "npm run build: {}", both(&o));
        let component = proj.join(manifest["helixflow"]["component"].as_str().unwrap());
        assert!(
            component.is_file(),
            "{}: not built: {}",
            component.display(),
            both(&o)
        );
        let o = hf(
            &proj,
            &url,
            &[
                "deploy",
                "-t",
                "demo",
                "-f",
                &name,
                "--alias",
                "live",
                component.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "deploy: {}", both(&o));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn js_templates_new_build_deploy_invoke() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;

    template_project(dir.path(), &node.url, "web-js", "js-http").await;
    let r = api.http.get(&api.url("/demo/web-js/a/b?name=Ada")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "hello, Ada, from web-js at /a/b\n");
    let r = api
        .http
        .post(&api.url("/demo/web-js/"), r#"{"n":[1,2]}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"received": {"n": [1, 2]}}));
    let r = api.http.post(&api.url("/demo/web-js/"), "nope").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.code(), "invalid_json");

    template_project(dir.path(), &node.url, "ev-js", "js-event").await;
    let url = node.url.clone();
    let o = tokio::task::spawn_blocking(move || {
        hf(
            Path::new("."),
            &url,
            &[
                "invoke",
                "-t",
                "demo",
                "-f",
                "ev-js",
                "-q",
                "live",
                "-d",
                r#"{"name":"Ada"}"#,
            ],
        )
    })
    .await
    .unwrap();
    assert!(o.status.success(), "invoke: {}", both(&o));
    let out: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("invoke output is not JSON ({e}): {}", both(&o)));
    assert_eq!(out["greeting"], "hello, Ada", "{out}");
    assert!(
        out["requestId"].as_str().is_some_and(|s| !s.is_empty()),
        "{out}"
    );
    let r = api
        .http
        .post(&api.url("/invoke/demo/ev-js@live"), "{}")
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["error"]["error_type"], "ValidationError");
}

/// The SDK's own unit tests (its WASI-free core) with `node --test`.
#[test]
fn js_guest_sdk_unit_tests_pass() {
    // This checkout's SDK (the test crate's own manifest dir: the shared lib crate's
    // `workspace_root` may be another worktree's when target dirs are shared).
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/js");
    let o = Command::new("node")
        .args(["--test", "--test-reporter=tap", "test/"])
        .current_dir(&sdk)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "node --test in {}: {e}: install Node.js 20+ (scripts/lib.sh ensure_jco does)",
                sdk.display()
            )
        });
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        out.lines().any(|l| l.trim() == "# fail 0")
            && out
                .lines()
                .any(|l| l.strip_prefix("# pass ").is_some_and(|n| n.trim() != "0")),
        "no passing test: {}",
        both(&o)
    );
}
