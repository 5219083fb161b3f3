//! The ONNX backend node tests (1765 cases shipped by onnx==1.22.0) through the whole
//! wasi:nn path (guest -> host -> ONNX Runtime -> guest), next to Python onnxruntime on
//! the same cases: same pass set, every difference classified (tests/conformance/).

use helixflow_e2e::{Api, Node, required_env};

#[tokio::test(flavor = "multi_thread")]
async fn onnx_node_tests_pass_through_wasi_nn_like_python_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        Some(
            "[inference]\nallow_guest_load = true\nmax_guest_model_mb = 16\nsession_budget_mb = 256\n[limits]\nmax_request_body_mb = 32\n",
        ),
    );
    let api = Api::new(&node);
    api.create_tenant("conf").await;
    api.deploy("conf", "nn-probe", "nn-probe", "").await;
    let report = dir.path().join("onnx-node-report.json");
    let script = helixflow_e2e::workspace_root().join("tests/conformance/onnx_node.py");
    let (url, rep) = (node.url.clone(), report.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(required_env("HELIXFLOW_NN_PYTHON"))
            .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
            .arg(script)
            .arg(url)
            .arg("conf")
            .arg(rep)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let s = &r["summary"];
    assert_eq!(s["cases"], 1765, "all cases ran");
    assert_eq!(
        s["unexplained"], 0,
        "every difference from Python onnxruntime has a reason: {s}"
    );
    let n = |k: &str| s[k].as_u64().unwrap();
    assert!(n("helixflow_wasi_nn_pass") >= 1300, "{s}");
    // Every case Python onnxruntime passes and that wasi:nn can express passes here too.
    assert_eq!(
        n("both_pass") + n("only_onnxruntime"),
        n("python_onnxruntime_pass")
    );
    assert_eq!(
        api.http.get(&api.url("/healthz")).await.status,
        200,
        "the host survived 1765 models"
    );
}
