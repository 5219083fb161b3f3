//! The official `openai` Python package against `/v1` (embeddings, models, errors),
//! compared with Python onnxruntime on the same model; and the guest tokenizer against
//! HF `tokenizers`. Python and the models come from scripts/test.sh.

use helixflow_e2e::{Api, Node, required_env};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_client_gets_reference_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    api.deploy("demo", "embed-minilm", "embed-minilm", "").await;
    let r = crate::nn::push(&api, "demo", "all-minilm-l6-v2", "minilm-int8.onnx", json!({"serve": {"kind": "embeddings", "function": "embed-minilm"}})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let python = required_env("HELIXFLOW_NN_PYTHON");
    let script = helixflow_e2e::workspace_root().join("tests/python/openai_embeddings.py");
    let node_url = node.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
            .arg(script)
            .arg(node_url)
            .arg("demo")
            .arg(required_env("HELIXFLOW_MODELS_DIR"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success() && stdout.trim_end().ends_with("OK"), "python failed:\n{stdout}\n{stderr}\nnode log:\n{}", node.log());
}

/// classify-image (decode, resize, crop in the guest; EfficientNet-Lite0 through wasi:nn)
/// on real photos, against PIL + onnxruntime in Python.
#[tokio::test(flavor = "multi_thread")]
async fn classify_image_matches_a_python_reference_on_real_photos() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    api.deploy("demo", "classify-image", "classify-image", "").await;
    let r = crate::nn::push(&api, "public", "efficientnet-lite0", "efficientnet-lite0.onnx", json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let root = helixflow_e2e::workspace_root();
    let (url, models) = (node.url.clone(), required_env("HELIXFLOW_MODELS_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(required_env("HELIXFLOW_NN_PYTHON"))
            .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
            .arg(root.join("tests/python/classify_images.py"))
            .arg(url)
            .arg("demo")
            .arg(models)
            .arg(root.join("functions/classify-image/imagenet_labels.txt"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "python failed:\n{stdout}\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
}
