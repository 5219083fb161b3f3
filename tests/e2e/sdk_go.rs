//! The Go SDK (`sdk/go`, module `helixflow`) against a real node: `go vet`, then its
//! `go test` suite with `HELIXFLOW_SDK_E2E=1` against a node serving the chat model
//! (deploy, invoke sync and async, push models, chat whole and streamed, embeddings,
//! keys, a failed event replayed, usage, dashboards, typed errors, retries, and the
//! README's Go example). Go 1.19 comes from scripts/test.sh (`ensure_go`,
//! `HELIXFLOW_GO`).

use helixflow_e2e::{Api, Node, admin_key, required_env, workspace_root};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const TENANT: &str = "sdk";
const CHAT_MODEL: &str = "smollm2-135m-instruct";

/// `go` with its caches under ~/.cache/helixflow (as `ensure_go` exports them), run in
/// sdk/go, never reaching for the network (the SDK is standard library only).
fn go(args: &[&str]) -> Command {
    let bin = std::env::var("HELIXFLOW_GO").unwrap_or_else(|_| {
        panic!("HELIXFLOW_GO is not set: run the tests with scripts/test.sh (ensure_go installs Go 1.19 from Debian)")
    });
    assert!(
        Path::new(&bin).exists(),
        "HELIXFLOW_GO={bin} does not exist: run scripts/test.sh (ensure_go)"
    );
    let cache = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
        .join(".cache/helixflow/go-1.19");
    let var = |name: &str, default: PathBuf| {
        std::env::var(name).unwrap_or_else(|_| default.to_string_lossy().into_owned())
    };
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .current_dir(workspace_root().join("sdk/go"))
        .env("GOCACHE", var("GOCACHE", cache.join("build")))
        .env("GOPATH", var("GOPATH", cache.join("path")))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("HELIXFLOW_GO", &bin);
    cmd
}

/// Runs `cmd` off the async runtime: (success, stdout + stderr).
async fn output(mut cmd: Command) -> (bool, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run go"))
        .await
        .expect("go task");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `func TestXxx(` names of sdk/go's test files.
fn go_test_names() -> Vec<String> {
    let dir = workspace_root().join("sdk/go");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with("_test.go") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if let Some(rest) = line.strip_prefix("func Test")
                && let Some((name, _)) = rest.split_once('(')
            {
                names.push(format!("Test{name}"));
            }
        }
    }
    assert!(names.len() >= 10, "too few Go tests found: {names:?}");
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_go_vet_is_clean() {
    let (ok, out) = output(go(&["vet", "./..."])).await;
    assert!(ok, "go vet ./... failed:\n{out}");
}

/// A node like the demo's: tenant `sdk` serving SmolLM2 through the `chat` function
/// (preloaded, with a timeout a loaded CI machine meets), `hello` deployed, an admin key
/// of the tenant; the Go suite gets the rest of its guests and models by path.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_go_suite_passes_against_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[usage]\nflush_interval_ms = 200\n"));
    let api = Api::new(&node);
    let r = api
        .http
        .post_json(
            &api.url("/api/v1/tenants"),
            json!({"name": TENANT, "limits": {"max_memory_mb": 256, "max_timeout_ms": 300000}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = api
        .http
        .request(
            "POST",
            &api.url(&format!(
                "/api/v1/tenants/{TENANT}/functions/chat/versions?alias=live"
            )),
            &[("x-helixflow-config", r#"{"timeout_ms": 120000}"#)],
            helixflow_e2e::guest("chat"),
        )
        .await;
    assert_eq!(r.status, 201, "deploy chat: {}", r.text());
    crate::chat::push_chat_model(&api, TENANT, CHAT_MODEL, &format!("{CHAT_MODEL}.onnx")).await;
    let r = api
        .http
        .post(
            &api.url(&format!(
                "/api/v1/tenants/{TENANT}/models/{CHAT_MODEL}/preload"
            )),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "preload: {}", r.text());
    api.deploy(TENANT, "hello", "hello", "?alias=live").await;
    let (key, _) = api.create_key(TENANT, "admin").await;

    let guests = std::env::var("HELIXFLOW_GUEST_DIR").unwrap_or_else(|_| {
        workspace_root()
            .join("target/wasm32-wasip2/guest")
            .to_string_lossy()
            .into_owned()
    });
    let mut cmd = go(&["test", "-v", "-count=1", "-timeout", "20m", "./..."]);
    cmd.env("HELIXFLOW_SDK_E2E", "1")
        .env("HELIXFLOW_BASE_URL", &node.url)
        .env("HELIXFLOW_ADMIN_KEY", admin_key())
        .env("HELIXFLOW_TEST_TENANT", TENANT)
        .env("HELIXFLOW_TEST_KEY", &key)
        .env("HELIXFLOW_GUEST_DIR", guests)
        .env("HELIXFLOW_MODELS_DIR", required_env("HELIXFLOW_MODELS_DIR"));
    let (ok, out) = output(cmd).await;
    println!("{out}");
    let fail = |why: &str| -> ! {
        let log = node.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        panic!("go test: {why}\n{out}\nnode log (tail):\n{tail}")
    };
    if !ok {
        fail("exited with an error");
    }
    if out.contains("--- FAIL") {
        fail("a test failed");
    }
    if out.contains("--- SKIP") {
        fail("a test was skipped (every test must run against the node)");
    }
    for name in go_test_names() {
        if !out.contains(&format!("--- PASS: {name} ")) {
            fail(&format!("{name} did not pass"));
        }
    }
}
