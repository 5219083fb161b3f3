//! The web console in a real browser: headless Chromium (Debian's `chromium` +
//! `chromium-driver`) driven by Selenium, the Python suite in tests/console, against a
//! real node seeded here through the API. `scripts/test.sh` installs both
//! (scripts/lib.sh `ensure_browser`, `ensure_selenium`).
//!
//! * `console_browser_flows`: sign in with a key, deploy through the upload form and
//!   invoke, stream a chat answer (SmolLM2), create a key (shown once) and revoke it,
//!   replay a failed event, a viewer sees no write action, markup a function printed
//!   into its logs shows as text, the embeddings playground's similarity matrix
//!   (all-MiniLM-L6-v2), the image classification playground (EfficientNet-Lite0 on
//!   coffee.png), every main page renders; the suite fails on any
//!   console error or failed request but the one-shot failures a test declares (and
//!   first proves it would: a `console.error` and a 404 made on purpose at start-up
//!   must be reported). Screenshots of each page land in
//!   `$CARGO_TARGET_DIR/console-screenshots` (printed).
//! * `console_pages_load_fast_with_100_functions`: full page loads (navigationStart to
//!   `<html data-ready>`) of every main page with 100 functions in the tenant, printed
//!   as a table and held to the 1 s (median of 3 loads).

use helixflow_e2e::{Api, Http, Node, admin_key, guest, required_env, workspace_root};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const TENANT: &str = "acme";
const CHAT_MODEL: &str = "smollm2-135m-instruct";
/// The embeddings model the embeddings playground runs (served by `embed-minilm`).
const EMBED_MODEL: &str = "all-minilm-l6-v2";
/// The model `classify-image` loads (its default `MODEL`), from the `public` tenant.
const CLASSIFY_MODEL: &str = "efficientnet-lite0";
/// What the `chaos` function prints into its logs (and the failed event carries).
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "<img src=x onerror=alert(1)>";
/// The bound on a page load (navigationStart to `<html data-ready>`), held by the
/// median of 3 full loads of each page.
const LOAD_LIMIT_MS: u64 = 1000;

/// One of these tests at a time per machine (held for the whole test): two headless
/// Chromiums, or the chat model loading, would skew the other's page-load figures.
fn browser_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("helixflow-console-browser.lock");
    let f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.lock().expect("lock the browser lock file");
    f
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/console-screenshots` (or target/).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("console-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python suite (`python -m console MODE`) with the fixture; asserts it printed OK.
async fn run_suite(
    node: &Node,
    mode: &str,
    fixture: &Value,
    screenshots: Option<&PathBuf>,
) -> String {
    let python = required_env("HELIXFLOW_SELENIUM_PYTHON");
    for var in ["HELIXFLOW_CHROMIUM", "HELIXFLOW_CHROMEDRIVER"] {
        let p = required_env(var);
        assert!(
            std::path::Path::new(&p).exists(),
            "{var}={p} does not exist: run scripts/test.sh (scripts/lib.sh ensure_browser)"
        );
    }
    let mut cmd = Command::new(python);
    // tests/ (the directory of the `console` package): this crate's own directory.
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-u", "-m", "console", mode])
        .env("HELIXFLOW_CONSOLE_FIXTURE", fixture.to_string())
        .env_remove("HELIXFLOW_CONSOLE_SCREENSHOTS");
    if let Some(dir) = screenshots {
        cmd.env("HELIXFLOW_CONSOLE_SCREENSHOTS", dir);
    }
    helixflow_e2e::run_python_ok(cmd, node).await
}

/// A tenant with admin, developer and viewer keys and `hello` deployed (alias `live`).
async fn seed_tenant(api: &Api<'_>) -> Value {
    api.create_tenant(TENANT).await;
    let mut keys = serde_json::Map::new();
    for role in ["admin", "developer", "viewer"] {
        keys.insert(role.into(), api.create_key(TENANT, role).await.0.into());
    }
    api.deploy(TENANT, "hello", "hello", "?alias=live").await;
    Value::Object(keys)
}

async fn put_config(api: &Api<'_>, function: &str, cfg: Value) {
    let url = api.url(&format!(
        "/api/v1/tenants/{TENANT}/functions/{function}/config"
    ));
    let r = api.http.put_json(&url, cfg).await;
    assert_eq!(r.status, 200, "config of {function}: {}", r.text());
}

/// An Event invocation of `flaky` (no retries) that fails, its payload carrying markup:
/// waits until it is listed as failed; returns its id.
async fn failed_event(api: &Api<'_>) -> String {
    api.deploy(TENANT, "flaky", "chaos", "").await;
    put_config(api, "flaky", json!({"async_invoke": {"max_retries": 0}})).await;
    let r = api
        .http
        .request(
            "POST",
            &api.url(&format!(
                "/2015-03-31/functions/{TENANT}:function:flaky/invocations"
            )),
            &[("x-amz-invocation-type", "Event")],
            json!(format!("fail-fetch {IMG}")).to_string(),
        )
        .await;
    assert_eq!(r.status, 202, "queue the event: {}", r.text());
    let id = r.header("x-amzn-requestid").expect("event id").to_string();
    let url = api.url(&format!("/api/v1/tenants/{TENANT}/events/{id}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = api.http.get(&url).await;
        if r.status == 200 && r.json()["status"] == "failed" {
            assert_eq!(
                r.json()["last_error"]["error_type"],
                "ChaosError",
                "{}",
                r.text()
            );
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "the event did not fail in 30 s: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `chat` function serving SmolLM2 (as tests/e2e/chat.rs), warmed up with one
/// completion so the browser test streams from a loaded model.
async fn seed_chat(api: &Api<'_>, key: &str) {
    api.deploy(TENANT, "chat", "chat", "").await;
    // Loading the model is the first request's work: give it the tenant's longest deadline.
    put_config(api, "chat", json!({"timeout_ms": 30000})).await;
    crate::chat::push_chat_model(api, TENANT, CHAT_MODEL, &format!("{CHAT_MODEL}.onnx")).await;
    let started = Instant::now();
    let r = Http::with_token(Some(key))
        .post_json(
            &api.url("/v1/chat/completions"),
            json!({"model": CHAT_MODEL, "max_tokens": 2,
                   "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "warm-up completion: {}", r.text());
    println!("chat model loaded and answered in {:?}", started.elapsed());
}

/// `embed-minilm` serving all-MiniLM-L6-v2 on /v1/embeddings (as tests/e2e/openai.rs).
async fn seed_embeddings(api: &Api<'_>) {
    api.deploy(TENANT, "embed-minilm", "embed-minilm", "").await;
    let r = crate::nn::push(
        api,
        TENANT,
        EMBED_MODEL,
        "minilm-int8.onnx",
        json!({"serve": {"kind": "embeddings", "function": "embed-minilm"}}),
    )
    .await;
    assert_eq!(r.status, 201, "push {EMBED_MODEL}: {}", r.text());
}

/// `classify-image` and the model it loads, pushed to `public` (as scripts/run.sh);
/// returns the picture the browser uploads.
async fn seed_classify(api: &Api<'_>) -> PathBuf {
    api.deploy(TENANT, "classify-image", "classify-image", "")
        .await;
    let file = format!("{CLASSIFY_MODEL}.onnx");
    let r = crate::nn::push(api, "public", CLASSIFY_MODEL, &file, json!({})).await;
    assert_eq!(r.status, 201, "push public/{CLASSIFY_MODEL}: {}", r.text());
    let image = PathBuf::from(required_env("HELIXFLOW_MODELS_DIR")).join("coffee.png");
    assert!(
        image.exists(),
        "{} is missing: run scripts/test.sh",
        image.display()
    );
    image
}

#[tokio::test(flavor = "multi_thread")]
async fn console_browser_flows() {
    let _lock = browser_lock();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let keys = seed_tenant(&api).await;

    // `chaos` prints markup into its logs (HTTP /print: stdout and stderr).
    api.deploy(TENANT, "chaos", "chaos", "").await;
    let r = api
        .http
        .post(
            &api.url(&format!("/{TENANT}/chaos/print")),
            format!("{SCRIPT} {IMG}"),
        )
        .await;
    assert_eq!((r.status, r.text()), (200, "printed".to_string()));
    let event_id = failed_event(&api).await;
    seed_chat(&api, keys["developer"].as_str().unwrap()).await;
    seed_embeddings(&api).await;
    let picture = seed_classify(&api).await;

    let upload = std::env::var_os("HELIXFLOW_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip2/guest"))
        .join("hello.wasm");
    assert!(
        upload.exists(),
        "{} is missing: build the guests with scripts/build-functions.sh (or run scripts/test.sh)",
        upload.display()
    );
    let fixture = json!({
        "url": node.url,
        "tenant": TENANT,
        "platform_key": admin_key(),
        "keys": keys,
        "upload": upload,
        "deployed": "hello",
        "xss_function": "chaos",
        "xss_texts": [SCRIPT, IMG],
        "failed_event": {"id": event_id, "function": "flaky", "payload_contains": [IMG]},
        "chat_model": CHAT_MODEL,
        "embed_model": EMBED_MODEL,
        "classify": {"function": "classify-image", "model": CLASSIFY_MODEL,
                     "image": picture, "top": "espresso"},
    });
    let shots = screenshot_dir();
    println!("console screenshots: {}", shots.display());
    let started = Instant::now();
    let out = run_suite(&node, "suite", &fixture, Some(&shots)).await;
    println!(
        "browser suite took {:?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
    for page in [
        "login",
        "functions-deployed",
        "playground-chat",
        "keys-created",
        "events-failed",
        "playground-embeddings",
        "playground-classify",
    ] {
        let png = shots.join(format!("{page}.png"));
        let len = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 10_000,
            "{}: missing or empty ({len} bytes)\n{out}",
            png.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_pages_load_fast_with_100_functions() {
    let _lock = browser_lock();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let keys = seed_tenant(&api).await;
    // 100 functions in all (the compile cache makes the other 99 deploys cheap).
    let wasm = guest("hello");
    for i in 1..100 {
        let r = api
            .deploy_raw(TENANT, &format!("fn-{i:03}"), wasm.clone(), "")
            .await;
        assert_eq!(r.status, 201, "deploy fn-{i:03}: {}", r.text());
    }
    let listed = api
        .http
        .get(&api.url(&format!("/api/v1/tenants/{TENANT}/functions")))
        .await
        .json()["functions"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(listed, 100);
    let fixture = json!({
        "url": node.url,
        "tenant": TENANT,
        "platform_key": admin_key(),
        "keys": keys,
        "deployed": "hello",
        "functions": 100,
        "load_limit_ms": LOAD_LIMIT_MS,
        "load_rounds": 3,
    });
    let out = run_suite(&node, "loadtime", &fixture, None).await;
    assert!(out.contains("#/functions "), "{out}");
}
