//! The JavaScript/TypeScript SDK (`sdk/js`, npm package `helixflow`) against a real
//! node: its `node --test` suite (deploy with upload progress, invoke sync and as an
//! Event, aliases, config, logs, a model pushed and served for embeddings, a streamed
//! chat completion with SmolLM2, keys and access keys, tenants, a failed event replayed,
//! usage and dashboards, typed errors from the node; retries, backoff and timeouts
//! against a scripted loopback server; `require('helixflow')` from CommonJS; the
//! `.d.ts` checked with `tsc --noEmit`; every JavaScript block of README.md's "Clients"
//! section run as written). `ensure_sdk_js` (scripts/lib.sh) installs and builds the
//! package and sets `HELIXFLOW_SDK_JS` and `HELIXFLOW_NODEJS`.

use helixflow_e2e::{Api, Node, admin_key, required_env};
use std::path::PathBuf;

const CHAT_MODEL: &str = "smollm2-135m-instruct";

fn env_or_panic(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `source scripts/lib.sh && ensure_sdk_js` (scripts/test.sh \
             does), which installs the JavaScript SDK's npm packages and builds it"
        )
    })
}

/// `# name N` from node's TAP summary.
fn tap_count(out: &str, name: &str) -> Option<usize> {
    out.lines()
        .rev()
        .find_map(|l| l.strip_prefix(&format!("# {name} ")))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_js_suite_passes_against_a_real_node() {
    let sdk = PathBuf::from(env_or_panic("HELIXFLOW_SDK_JS"));
    let node_bin = env_or_panic("HELIXFLOW_NODEJS");
    assert!(
        sdk.join("dist/esm/index.js").exists() && sdk.join("dist/cjs/index.js").exists(),
        "{}: the SDK is not built (ensure_sdk_js builds it)",
        sdk.display()
    );
    let dir = tempfile::tempdir().unwrap();
    // Usage is flushed often so the suite reads back its own invocations quickly.
    let node = Node::start(dir.path(), Some("[usage]\nflush_interval_ms = 200\n"));
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    // The chat function and SmolLM2 served by it, as tests/e2e/chat.rs deploys them; the
    // suite deploys and pushes everything else itself, through the SDK.
    api.deploy("demo", "chat", "chat", "").await;
    crate::chat::push_chat_model(&api, "demo", CHAT_MODEL, &format!("{CHAT_MODEL}.onnx")).await;
    let (tenant_admin_key, _) = api.create_key("demo", "admin").await;

    let mut cmd = std::process::Command::new(&node_bin);
    cmd.current_dir(&sdk)
        .args(["--test", "--test-reporter=tap"])
        .args(test_files(&sdk))
        .env("HELIXFLOW_BASE_URL", &node.url)
        .env("HELIXFLOW_TEST_TENANT", "demo")
        .env("HELIXFLOW_TEST_KEY", &tenant_admin_key)
        .env("HELIXFLOW_TEST_ADMIN_KEY", admin_key())
        .env("HELIXFLOW_GUEST_DIR", guest_dir())
        .env("HELIXFLOW_MODELS_DIR", required_env("HELIXFLOW_MODELS_DIR"))
        .env_remove("HELIXFLOW_API_KEY")
        .env_remove("HELIXFLOW_TENANT")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_ORG_ID")
        .env_remove("NODE_OPTIONS");
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run node --test"))
        .await
        .expect("node task");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}");
    println!("node --test took {:?}", started.elapsed());
    let passed = tap_count(&stdout, "pass").unwrap_or(0);
    let counts: Vec<(&str, Option<usize>)> = ["fail", "cancelled", "skipped", "todo"]
        .into_iter()
        .map(|k| (k, tap_count(&stdout, k)))
        .collect();
    assert!(
        out.status.success() && passed >= 24 && counts.iter().all(|(_, n)| *n == Some(0)),
        "the JavaScript SDK suite failed ({:?}; passed {passed}, {counts:?}):\n{stdout}\n{}\nnode log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
}

/// `test/*.test.mjs` and `test/*.test.cjs` (Node 20's `--test` takes files, not globs).
fn test_files(sdk: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sdk.join("test"))
        .expect("sdk/js/test")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".test.mjs") || name.ends_with(".test.cjs")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 9,
        "sdk/js/test has too few test files: {files:?}"
    );
    files
}

/// The built guests the suite deploys (echo-event, chaos, embed-minilm, hello).
fn guest_dir() -> PathBuf {
    let dir = PathBuf::from(required_env("HELIXFLOW_GUEST_DIR"));
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
