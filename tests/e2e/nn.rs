//! wasi:nn end to end: the `nn-probe` guest drives HelixFlow's wasi:nn host on ONNX
//! Runtime over real sockets, with real ONNX files (tiny generated ones, and
//! all-MiniLM-L6-v2), prepared by scripts/test.sh into $HELIXFLOW_MODELS_DIR.

use base64::Engine as _;
use helixflow_e2e::{Api, Node, Resp, required_env};
use serde_json::{Value, json};
use std::path::PathBuf;

fn models_dir() -> PathBuf {
    PathBuf::from(required_env("HELIXFLOW_MODELS_DIR"))
}

pub fn model_bytes(file: &str) -> Vec<u8> {
    let p = models_dir().join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", p.display()))
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

pub async fn push(api: &Api<'_>, tenant: &str, name: &str, file: &str, cfg: Value) -> Resp {
    api.http
        .request(
            "POST",
            &api.url(&format!("/api/v1/tenants/{tenant}/models/{name}/versions")),
            &[("x-helixflow-model-config", &cfg.to_string())],
            model_bytes(file),
        )
        .await
}

async fn push_ok(api: &Api<'_>, tenant: &str, name: &str, file: &str, cfg: Value) {
    let r = push(api, tenant, name, file, cfg).await;
    assert_eq!(r.status, 201, "push {tenant}/{name}: {}", r.text());
}

async fn probe(api: &Api<'_>, tenant: &str, spec: Value) -> Resp {
    api.http
        .post(
            &api.url(&format!("/invoke/{tenant}/nn-probe")),
            spec.to_string(),
        )
        .await
}

fn input(name: &str, ty: &str, dims: &[u32], data: &[u8]) -> Value {
    json!({"name": name, "type": ty, "dims": dims, "data_b64": b64(data)})
}

/// The wasi:nn error the guest saw: (code, message).
fn nn_error(r: &Resp) -> (String, String) {
    assert_eq!(
        r.status,
        422,
        "expected a function error, got {}: {}",
        r.status,
        r.text()
    );
    let e = &r.json()["error"];
    (
        e["error_type"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn output<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name}: {r}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tensor_type_crosses_wasi_nn_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    for (ty, short, width) in [
        ("FP16", "fp16", 2),
        ("FP32", "fp32", 4),
        ("FP64", "fp64", 8),
        ("BF16", "bf16", 2),
        ("U8", "u8", 1),
        ("I32", "i32", 4),
        ("I64", "i64", 8),
    ] {
        push_ok(
            &api,
            "acme",
            &format!("id-{short}"),
            &format!("identity_{short}.onnx"),
            json!({}),
        )
        .await;
        // Two rows of three distinct elements; bytes chosen so no float is a NaN.
        let data: Vec<u8> = (0..6 * width).map(|i| (i * 13 % 61) as u8 + 1).collect();
        let r = probe(
            &api,
            "acme",
            json!({"model": format!("id-{short}"), "inputs": [input("x", ty, &[2, 3], &data)]}),
        )
        .await;
        assert_eq!(r.status, 200, "{ty}: {}", r.text());
        let out = r.json();
        let y = output(&out, "y");
        assert_eq!(
            (y["type"].as_str(), &y["dims"]),
            (Some(ty), &json!([2, 3])),
            "{ty}"
        );
        assert_eq!(
            unb64(&y["data_b64"]),
            data,
            "{ty}: bytes changed on the way"
        );
        let n = output(&out, "n");
        assert_eq!(n["type"], "I64");
        let shape: Vec<i64> = unb64(&n["data_b64"])
            .chunks(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(shape, vec![2, 3], "{ty}: the model saw the shape");
        println!("{ty}: in and out, 6 elements, bytes identical");
    }
    // ONNX bool crosses as U8 (the WIT has no bool): Not([0,1,1,0]) = [1,0,0,1].
    push_ok(&api, "acme", "not", "not_bool.onnx", json!({})).await;
    let r = probe(
        &api,
        "acme",
        json!({"model": "not", "inputs": [input("x", "U8", &[1, 4], &[0, 1, 1, 0])]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(unb64(&output(&r.json(), "y")["data_b64"]), vec![1, 0, 0, 1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_wasi_nn_error_the_guest_sees_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[inference]\nmax_tensor_mb = 1\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    push_ok(&api, "acme", "mm", "matmul_f32.onnx", json!({})).await;
    push_ok(&api, "acme", "fixed", "fixed_f32.onnx", json!({})).await;
    let f32s = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect() };
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "wrong dtype",
            json!({"model": "mm", "inputs": [input("x", "I32", &[1, 64], &f32s(64))]}),
            "invalid-argument",
            "expects FP32",
        ),
        (
            "wrong rank",
            json!({"model": "mm", "inputs": [input("x", "FP32", &[64], &f32s(64))]}),
            "invalid-argument",
            "rank",
        ),
        (
            "wrong dims",
            json!({"model": "fixed", "inputs": [input("x", "FP32", &[3, 2], &f32s(6))]}),
            "invalid-argument",
            "dimension 0",
        ),
        (
            "unknown input",
            json!({"model": "mm", "inputs": [input("nope", "FP32", &[1, 64], &f32s(64))]}),
            "invalid-argument",
            "unknown input 'nope'",
        ),
        (
            "missing input",
            json!({"model": "mm", "inputs": []}),
            "invalid-argument",
            "missing input 'x'",
        ),
        (
            "data/dims mismatch",
            json!({"model": "mm", "inputs": [input("x", "FP32", &[1, 64], &f32s(63))]}),
            "invalid-argument",
            "need 256",
        ),
        (
            "unknown model",
            json!({"model": "no-such-model", "inputs": []}),
            "not-found",
            "no-such-model",
        ),
        (
            "empty model name",
            json!({"model": "", "inputs": []}),
            "invalid-argument",
            "1 to 256",
        ),
        (
            "bad model name",
            json!({"model": "../../etc/passwd", "inputs": []}),
            "invalid-argument",
            "invalid",
        ),
        (
            "oversized tensor",
            json!({"model": "mm", "inputs": [input("x", "FP32", &[4100, 64], &f32s(4100 * 64))]}),
            "too-large",
            "limit of 1048576",
        ),
        (
            "guest model bytes (off by default)",
            json!({"model_b64": b64(&model_bytes("matmul_f32.onnx")), "inputs": []}),
            "security",
            "disabled",
        ),
        (
            "a flood of 10,001 computes in one call",
            json!({"model": "mm", "inputs": [input("x", "FP32", &[1, 64], &f32s(64))], "repeat": 10_001}),
            "too-large",
            "more than 10000 wasi:nn calls",
        ),
    ];
    for (what, spec, code, needle) in cases {
        let r = probe(&api, "acme", spec).await;
        let (c, m) = nn_error(&r);
        println!("{what:38} -> {c}: {m}");
        assert_eq!(c, code, "{what}: {m}");
        assert!(
            m.contains(needle),
            "{what}: {m:?} should mention {needle:?}"
        );
    }
    // A file that is not ONNX is refused at upload (4xx, nothing recorded).
    let r = push(&api, "acme", "junk", "not_onnx.bin", json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_model".to_string()),
        "{}",
        r.text()
    );
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/models/junk"))
        .await;
    assert_eq!(r.status, 404);
    // Bad names and configs at the API.
    let r = push(&api, "acme", "Bad%FFname", "matmul_f32.onnx", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = push(
        &api,
        "acme",
        "mm2",
        "matmul_f32.onnx",
        json!({"providers": ["quantum"]}),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "invalid_config".to_string()));
    // Still serving, correctly.
    let x = f32s(64);
    let r = probe(
        &api,
        "acme",
        json!({"model": "mm", "inputs": [input("x", "FP32", &[1, 64], &x)]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(output(&r.json(), "y")["dims"], json!([1, 32]));
    assert_eq!(api.http.get(&api.url("/healthz")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_load_each_others_private_models() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    for t in ["alice", "bob"] {
        api.create_tenant(t).await;
        api.deploy(t, "nn-probe", "nn-probe", "").await;
    }
    push_ok(&api, "alice", "secret", "identity_fp32.onnx", json!({})).await;
    push_ok(&api, "public", "shared", "identity_i64.onnx", json!({})).await;
    push_ok(&api, "bob", "mine", "identity_u8.onnx", json!({})).await;
    let x = |ty: &str, w: usize| json!([input("x", ty, &[1, 3], &vec![1u8; 3 * w])]);
    // alice: her own and the public one.
    assert_eq!(
        probe(
            &api,
            "alice",
            json!({"model": "secret", "inputs": x("FP32", 4)})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        probe(
            &api,
            "alice",
            json!({"model": "shared", "inputs": x("I64", 8)})
        )
        .await
        .status,
        200
    );
    // bob: not alice's, however he names it; the public one, yes.
    for name in ["secret", "secret@1", "alice/secret", "alice#secret"] {
        let r = probe(&api, "bob", json!({"model": name, "inputs": x("FP32", 4)})).await;
        let (code, msg) = nn_error(&r);
        println!("bob load-by-name({name:?}) -> {code}: {msg}");
        assert!(
            code == "not-found" || code == "invalid-argument",
            "{name}: {code}"
        );
        if !name.contains("alice") {
            assert!(
                !msg.contains("alice"),
                "the error leaks the other tenant: {msg}"
            );
        }
    }
    assert_eq!(
        probe(
            &api,
            "bob",
            json!({"model": "shared", "inputs": x("I64", 8)})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        probe(
            &api,
            "alice",
            json!({"model": "mine", "inputs": x("U8", 1)})
        )
        .await
        .status,
        422
    );
    // Public models cannot be served through a tenant's function route.
    let r = push(
        &api,
        "public",
        "p2",
        "identity_fp32.onnx",
        json!({"serve": {"kind": "embeddings", "function": "f"}}),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_supplied_models_follow_the_node_policy() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        Some("[inference]\nallow_guest_load = true\nmax_guest_model_mb = 1\n"),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    let x: Vec<u8> = (0..64)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let r = probe(&api, "acme", json!({"model_b64": b64(&model_bytes("matmul_f32.onnx")), "inputs": [input("x", "FP32", &[1, 64], &x)]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = probe(
        &api,
        "acme",
        json!({"model_b64": b64(&model_bytes("not_onnx.bin")), "inputs": []}),
    )
    .await;
    assert_eq!(nn_error(&r).0, "invalid-encoding");
    let big = vec![0u8; (1 << 20) + 1];
    let r = probe(&api, "acme", json!({"model_b64": b64(&big), "inputs": []})).await;
    assert_eq!(nn_error(&r).0, "too-large");
}

#[tokio::test(flavor = "multi_thread")]
async fn execution_providers_fall_back_visibly_or_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    // This test runs on the CPU build of ONNX Runtime: CUDA is not there.
    push_ok(
        &api,
        "acme",
        "fb",
        "matmul_f32.onnx",
        json!({"providers": ["tensorrt", "cuda", "cpu"], "fallback": "next"}),
    )
    .await;
    push_ok(
        &api,
        "acme",
        "strict",
        "matmul_f32.onnx",
        json!({"providers": ["cuda"], "fallback": "refuse"}),
    )
    .await;
    let x: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let r = probe(
        &api,
        "acme",
        json!({"model": "fb", "inputs": [input("x", "FP32", &[1, 64], &x)]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = api
        .http
        .get(&api.url("/api/v1/tenants/acme/models/fb"))
        .await
        .json();
    assert_eq!(
        m["sessions"][0]["provider"], "cpu",
        "the API names the provider actually used: {m}"
    );
    let r = probe(
        &api,
        "acme",
        json!({"model": "strict", "inputs": [input("x", "FP32", &[1, 64], &x)]}),
    )
    .await;
    let (code, msg) = nn_error(&r);
    println!("refuse policy -> {code}: {msg}");
    assert_eq!(code, "unsupported-operation");
    assert!(msg.contains("cuda"), "{msg}");
    let r = api
        .http
        .post(&api.url("/api/v1/tenants/acme/models/strict/preload"), "")
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "model_load_failed".to_string()),
        "{}",
        r.text()
    );
    let metrics = api.http.get(&api.url("/metrics")).await.text();
    assert!(
        metrics.contains(
            "helixflow_model_session{location=\"local\",model=\"acme/fb@1\",provider=\"cpu\"} 1"
        ),
        "{metrics}"
    );
    let fallbacks = metrics
        .lines()
        .find(|l| l.starts_with("helixflow_model_provider_fallbacks_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(
        fallbacks >= 2,
        "tensorrt and cuda were skipped: {fallbacks}"
    );
    assert!(
        node.log().contains("falling back"),
        "the fallback is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_batching_coalesces_concurrent_calls_and_results_are_identical() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("beta").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    api.deploy("beta", "nn-probe", "nn-probe", "").await;
    push_ok(
        &api,
        "public",
        "mm-batched",
        "matmul_f32.onnx",
        json!({"max_batch": 16, "max_delay_us": 20000, "row_independent": true}),
    )
    .await;
    push_ok(&api, "public", "mm-plain", "matmul_f32.onnx", json!({})).await;
    let xs: Vec<Vec<u8>> = (0..32)
        .map(|k| {
            (0..64)
                .flat_map(|i| (((i * 7 + k * 13) % 17) as f32 - 8.0).to_le_bytes())
                .collect()
        })
        .collect();
    let run = |model: &'static str| {
        let xs = xs.clone();
        let api = Api::new(&node);
        async move {
            let futs = xs.iter().enumerate().map(|(k, x)| {
                // Half from each tenant: batches mix tenants.
                let tenant = if k % 2 == 0 { "acme" } else { "beta" };
                probe(
                    &api,
                    tenant,
                    json!({"model": model, "inputs": [input("x", "FP32", &[1, 64], x)]}),
                )
            });
            futures::future::join_all(futs)
                .await
                .into_iter()
                .map(|r| {
                    assert_eq!(r.status, 200, "{}", r.text());
                    unb64(&output(&r.json(), "y")["data_b64"])
                })
                .collect::<Vec<_>>()
        }
    };
    let batched = run("mm-batched").await;
    let plain = run("mm-plain").await;
    assert_eq!(
        batched, plain,
        "batched results must equal unbatched ones, bit for bit"
    );
    let s = api
        .http
        .get(&api.url("/api/v1/admin/inference"))
        .await
        .json();
    let sess = s["sessions"].as_array().unwrap();
    let b = sess
        .iter()
        .find(|x| x["model"] == "public/mm-batched@1")
        .unwrap();
    let p = sess
        .iter()
        .find(|x| x["model"] == "public/mm-plain@1")
        .unwrap();
    println!(
        "batched: computes {} runs {} batched_requests {}",
        b["computes"], b["runs"], b["batched_requests"]
    );
    println!("plain:   computes {} runs {}", p["computes"], p["runs"]);
    assert_eq!(b["computes"], 32);
    assert!(
        b["batched_requests"].as_u64().unwrap() >= 2,
        "some calls shared a run: {b}"
    );
    assert!(
        b["runs"].as_u64().unwrap() < 32,
        "fewer runs than calls: {b}"
    );
    assert_eq!(p["runs"], 32, "batching off = one run per call");
    // The batch-size histogram: every run counted once, by the calls it carried.
    let hist = |x: &serde_json::Value| -> Vec<u64> {
        x["batch_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    assert_eq!(
        hist(b).iter().sum::<u64>(),
        b["runs"].as_u64().unwrap(),
        "{b}"
    );
    assert!(
        hist(b)[1..].iter().sum::<u64>() >= 1,
        "a run carried 2+ calls: {b}"
    );
    assert_eq!(hist(p)[0], 32, "unbatched: 32 runs of one call: {p}");
    assert_eq!(b["run_requests"], 32, "{b}");
    let metrics = api.http.get(&api.url("/metrics")).await.text();
    let line = |name: &str, model: &str, le: Option<&str>| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains(&format!("model=\"{model}\""))
                    && le.is_none_or(|le| l.contains(&format!("le=\"{le}\"")))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} for {model} in /metrics:\n{metrics}"))
    };
    let label = "public/mm-plain@1";
    assert_eq!(
        line("helixflow_model_batch_size_bucket", label, Some("1.0")),
        32
    );
    assert_eq!(
        line("helixflow_model_batch_size_bucket", label, Some("+Inf")),
        32
    );
    let label = "public/mm-batched@1";
    let runs = b["runs"].as_u64().unwrap();
    assert_eq!(
        line("helixflow_model_batch_size_bucket", label, Some("+Inf")),
        runs
    );
    assert_eq!(line("helixflow_model_batch_size_count", label, None), runs);
    assert_eq!(line("helixflow_model_batch_size_sum", label, None), 32);
    assert!(line("helixflow_model_batch_size_bucket", label, Some("1.0")) < runs);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_shared_and_evicted_lru_under_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[inference]\nsession_budget_mb = 2\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    for t in ["fp32", "i32", "i64"] {
        push_ok(
            &api,
            "acme",
            &format!("id-{t}"),
            &format!("identity_{t}.onnx"),
            json!({}),
        )
        .await;
    }
    // Same bytes under two names: one session.
    push_ok(
        &api,
        "acme",
        "id-fp32-again",
        "identity_fp32.onnx",
        json!({}),
    )
    .await;
    let call = |m: &str, ty: &str, w: usize| json!({"model": m, "inputs": [input("x", ty, &[1, 3], &vec![2u8; 3 * w])]});
    assert_eq!(
        probe(&api, "acme", call("id-fp32", "FP32", 4)).await.status,
        200
    );
    assert_eq!(
        probe(&api, "acme", call("id-fp32-again", "FP32", 4))
            .await
            .status,
        200
    );
    let s = api
        .http
        .get(&api.url("/api/v1/admin/inference"))
        .await
        .json();
    assert_eq!(
        s["sessions"].as_array().unwrap().len(),
        1,
        "one session per model content: {s}"
    );
    assert_eq!(s["sessions"][0]["computes"], 2);
    assert_eq!(
        probe(&api, "acme", call("id-i32", "I32", 4)).await.status,
        200
    );
    assert_eq!(
        probe(&api, "acme", call("id-i64", "I64", 8)).await.status,
        200
    );
    let s = api
        .http
        .get(&api.url("/api/v1/admin/inference"))
        .await
        .json();
    println!("after 3 models in a 2 MiB budget: {}", s);
    assert_eq!(s["evictions"], 1, "{s}");
    let names: Vec<&str> = s["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["model"].as_str().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("acme/id-fp32")),
        "the least recently used went: {names:?}"
    );
    // An evicted model loads again on demand.
    assert_eq!(
        probe(&api, "acme", call("id-fp32", "FP32", 4)).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_onnx_runtime_path_fails_fast_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(helixflow_e2e::helixflow_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    assert!(!out.status.success());
    assert!(
        err.contains("/nonexistent/libonnxruntime.so") && err.contains("ORT_DYLIB_PATH"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn models_named_in_the_node_config_are_preloaded_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    {
        let node = Node::start(dir.path(), None);
        let api = Api::new(&node);
        push_ok(
            &api,
            "public",
            "pre",
            "matmul_f32.onnx",
            json!({"providers": ["cpu"]}),
        )
        .await;
    }
    let node = Node::start(
        dir.path(),
        Some("[inference]\npreload = [\"public/pre\", \"public/missing\"]\n"),
    );
    let api = Api::new(&node);
    let s = api
        .http
        .get(&api.url("/api/v1/admin/inference"))
        .await
        .json();
    let sessions = s["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{s}");
    assert_eq!(
        (
            sessions[0]["model"].as_str(),
            sessions[0]["provider"].as_str()
        ),
        (Some("public/pre@1"), Some("cpu"))
    );
    assert_eq!(sessions[0]["computes"], 0, "loaded before any traffic");
    assert!(
        node.log().contains("preload failed"),
        "a missing model is reported, the node still serves"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_pushes_lists_shows_and_deletes_models() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(helixflow_e2e::helixflow_bin())
            .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
            .arg("--url")
            .arg(&node.url)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let file = models_dir().join("matmul_f32.onnx");
    let (code, out, err) = cli(&[
        "models",
        "push",
        "-t",
        "acme",
        "-m",
        "mm",
        file.to_str().unwrap(),
        "--providers",
        "cuda,cpu",
        "--max-batch",
        "8",
        "--max-delay-us",
        "500",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("pushed acme/mm version 1"), "{out}");
    let (_, out, _) = cli(&[
        "models",
        "push",
        "-t",
        "acme",
        "-m",
        "mm",
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("version 2"), "{out}");
    let (code, out, _) = cli(&["models", "list", "-t", "acme"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("mm\tlatest=2"), "{out}");
    let (_, out, _) = cli(&["models", "get", "-t", "acme", "-m", "mm"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["versions"][0]["signature"]["inputs"][0]["name"], "x",
        "the signature read at upload: {v}"
    );
    // A file that is not ONNX: API error, exit code 1, nothing recorded.
    let junk = models_dir().join("not_onnx.bin");
    let (code, _, err) = cli(&[
        "models",
        "push",
        "-t",
        "acme",
        "-m",
        "junk",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("invalid_model"), "{err}");
    let (code, out, _) = cli(&["models", "delete", "-t", "acme", "-m", "mm"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("2 versions"), "{out}");
    let (code, _, err) = cli(&["models", "get", "-t", "acme", "-m", "mm"]);
    assert_eq!(code, Some(1), "{err}");
}
