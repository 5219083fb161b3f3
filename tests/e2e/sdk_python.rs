//! The Python SDK (`sdk/python`) against a real node: its pytest suite (deploy, invoke
//! sync and as an Event, aliases, models, a streamed chat completion with SmolLM2,
//! embeddings, keys, access keys, a failed event replayed, usage, dashboards, budgets,
//! typed errors; retries against a scripted loopback server; every Python example of
//! README.md's "Clients" section and of sdk/python/README.md). The interpreter is the
//! venv `ensure_sdk_python` (scripts/lib.sh) builds: `HELIXFLOW_SDK_PYTHON`.

use helixflow_e2e::{Api, Node, admin_key, required_env, workspace_root};
use serde_json::json;
use std::path::PathBuf;

const CHAT_MODEL: &str = "smollm2-135m-instruct";

fn sdk_python() -> String {
    std::env::var("HELIXFLOW_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HELIXFLOW_SDK_PYTHON is not set: run `source scripts/lib.sh && ensure_sdk_python` \
             (scripts/test.sh does), which installs the SDK and pytest into a venv"
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_python_suite_passes_against_a_real_node() {
    let dir = tempfile::tempdir().unwrap();
    // Usage is flushed every second so the suite can read its own invocations.
    let node = Node::start(dir.path(), Some("[usage]\nflush_interval_ms = 1000\n"));
    let api = Api::new(&node);
    // Tenant `demo` with the chat function (300 s, as scripts/run.sh deploys it) and
    // SmolLM2 served by it, loaded before the suite starts; the suite deploys everything
    // else itself, through the SDK.
    let r = api
        .http
        .post_json(
            &api.url("/api/v1/tenants"),
            json!({"name": "demo", "limits": {"max_memory_mb": 256, "max_timeout_ms": 300_000}}),
        )
        .await;
    assert_eq!(r.status, 201, "create tenant: {}", r.text());
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/demo/functions/chat/versions?alias=live"),
            &[("x-helixflow-config", r#"{"timeout_ms": 300000}"#)],
            helixflow_e2e::guest("chat"),
        )
        .await;
    assert_eq!(r.status, 201, "deploy chat: {}", r.text());
    let llm = PathBuf::from(required_env("HELIXFLOW_LLM_DIR")).join("smollm2-135m-instruct.onnx");
    let bytes = std::fs::read(&llm)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", llm.display()));
    let cfg = json!({"serve": {"kind": "chat", "function": "chat"}}).to_string();
    let models = api.url(&format!("/api/v1/tenants/demo/models/{CHAT_MODEL}"));
    let r = api
        .http
        .request(
            "POST",
            &format!("{models}/versions"),
            &[("x-helixflow-model-config", &cfg)],
            bytes,
        )
        .await;
    assert_eq!(r.status, 201, "push {CHAT_MODEL}: {}", r.text());
    let r = api
        .http
        .post(&format!("{models}/preload"), Vec::new())
        .await;
    assert_eq!(r.status, 200, "preload {CHAT_MODEL}: {}", r.text());
    let (owner_key, _) = api.create_key("demo", "admin").await;
    let (dev_key, _) = api.create_key("demo", "developer").await;

    let sdk = workspace_root().join("sdk/python");
    let mut cmd = std::process::Command::new(sdk_python());
    cmd.current_dir(&sdk)
        .arg("-c")
        .arg(
            "import sys, pytest\n\
             rc = pytest.main(['-q', '-p', 'no:cacheprovider', '-rfEs', 'tests'])\n\
             print('OK' if rc == 0 else f'pytest exit status {rc}')\n\
             sys.exit(int(rc))",
        )
        // The checkout's sources, whatever the venv's editable install points at.
        .env("PYTHONPATH", sdk.join("src"))
        .env("HELIXFLOW_SDK_DIR", &sdk)
        .env("HELIXFLOW_BASE_URL", &node.url)
        .env("HELIXFLOW_TEST_ADMIN_KEY", admin_key())
        .env("HELIXFLOW_TEST_TENANT", "demo")
        .env("HELIXFLOW_TEST_TENANT_ADMIN_KEY", &owner_key)
        .env("HELIXFLOW_TEST_DEV_KEY", &dev_key)
        .env("HELIXFLOW_GUEST_DIR", guest_dir())
        .env("HELIXFLOW_MODELS_DIR", required_env("HELIXFLOW_MODELS_DIR"))
        .env_remove("HELIXFLOW_API_KEY")
        .env_remove("HELIXFLOW_TENANT")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_ORG_ID");
    let out = helixflow_e2e::run_python_ok(cmd, &node).await;
    // Every test ran and passed: none skipped, none deselected.
    let summary = out
        .lines()
        .rev()
        .find(|l| l.contains(" passed"))
        .unwrap_or_default()
        .to_string();
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 30 && !summary.contains("skipped") && !summary.contains("deselected"),
        "expected the whole suite to pass: {summary}"
    );
}

/// The built guests (the suite deploys hello, echo-event, chaos and embed-minilm).
fn guest_dir() -> PathBuf {
    let dir = std::env::var_os("HELIXFLOW_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip2/guest"));
    for g in ["hello", "echo_event", "chaos", "embed_minilm"] {
        let p = dir.join(format!("{g}.wasm"));
        assert!(
            p.exists(),
            "{}: build the guests with scripts/build-functions.sh (or run scripts/test.sh)",
            p.display()
        );
    }
    dir
}
