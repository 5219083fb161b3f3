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
    let r = crate::nn::push(
        &api,
        "demo",
        "all-minilm-l6-v2",
        "minilm-int8.onnx",
        json!({"serve": {"kind": "embeddings", "function": "embed-minilm"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut cmd = std::process::Command::new(required_env("HELIXFLOW_NN_PYTHON"));
    cmd.env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
        .arg(helixflow_e2e::workspace_root().join("tests/python/openai_embeddings.py"))
        .arg(&node.url)
        .arg("demo")
        .arg(required_env("HELIXFLOW_MODELS_DIR"));
    helixflow_e2e::run_python_ok(cmd, &node).await;
}

/// classify-image (decode, resize, crop in the guest; EfficientNet-Lite0 through wasi:nn)
/// on real photos, against PIL + onnxruntime in Python.
#[tokio::test(flavor = "multi_thread")]
async fn classify_image_matches_a_python_reference_on_real_photos() {
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
    let root = helixflow_e2e::workspace_root();
    let mut cmd = std::process::Command::new(required_env("HELIXFLOW_NN_PYTHON"));
    cmd.env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
        .arg(root.join("tests/python/classify_images.py"))
        .arg(&node.url)
        .arg("demo")
        .arg(required_env("HELIXFLOW_MODELS_DIR"))
        .arg(root.join("functions/classify-image/imagenet_labels.txt"));
    helixflow_e2e::run_python_ok(cmd, &node).await;
}
