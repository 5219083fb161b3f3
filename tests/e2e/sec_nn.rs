//! Security hardening (issue 13): attack tests.
//!
//! Inference (items 7, 8 and 11): a tenant flooding long generations stays inside its
//! share of the node's KV budget and the process inside budget + a fixed overhead; bool
//! tensors that are not 0/1 and empty tensors are handled before/inside ONNX Runtime
//! cleanly; requests are batched together only for models declared row-independent,
//! and then a batched row equals the row alone up to floating-point summation order.

use base64::Engine as _;
use helixflow_e2e::{Api, Node, Resp, required_env};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

async fn push_model(api: &Api<'_>, tenant: &str, name: &str, path: &std::path::Path, cfg: Value) {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", path.display()));
    let r = api
        .http
        .request(
            "POST",
            &api.url(&format!("/api/v1/tenants/{tenant}/models/{name}/versions")),
            &[("x-helixflow-model-config", &cfg.to_string())],
            bytes,
        )
        .await;
    assert_eq!(r.status, 201, "push {tenant}/{name}: {}", r.text());
}

fn models_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(required_env("HELIXFLOW_MODELS_DIR"))
}

async fn inference(api: &Api<'_>) -> Value {
    let r = api.http.get(&api.url("/api/v1/admin/inference")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn session<'a>(inf: &'a Value, model: &str) -> &'a Value {
    inf["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["model"].as_str().is_some_and(|m| m.starts_with(model)))
        .unwrap_or_else(|| panic!("no session {model}: {inf}"))
}

/// Item 8: a bool tensor byte that is not 0/1 never reaches ONNX Runtime (it would be
/// an invalid C++ `bool` inside its kernels); a tensor with no elements runs cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn sec_nn_bool_bytes_are_checked_and_empty_tensors_run() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "nn-probe", "nn-probe", "").await;
    push_model(
        &api,
        "acme",
        "not",
        &models_dir().join("not_bool.onnx"),
        json!({}),
    )
    .await;
    push_model(
        &api,
        "acme",
        "id",
        &models_dir().join("identity_fp32.onnx"),
        json!({}),
    )
    .await;
    let probe = |spec: Value| {
        let api = &api;
        async move {
            api.http
                .post(&api.url("/invoke/acme/nn-probe"), spec.to_string())
                .await
        }
    };
    let x = |data: &[u8]| json!({"model": "not", "inputs": [{"name": "x", "type": "U8", "dims": [1, 4], "data_b64": b64(data)}]});
    let r = probe(x(&[0, 7, 1, 0])).await;
    assert_eq!(
        r.status,
        422,
        "a bool byte of 7 must be refused: {}",
        r.text()
    );
    let e = &r.json()["error"];
    println!("bool 7 -> {}: {}", e["error_type"], e["message"]);
    assert_eq!(e["error_type"], "invalid-argument", "{}", r.text());
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("element 1 is 7 (bool elements must be 0 or 1)"),
        "{}",
        r.text()
    );
    let r = probe(x(&[0, 1, 1, 0])).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["outputs"][0]["data_b64"], b64(&[1, 0, 0, 1]));
    // No elements: [0, 3] with no bytes, several times (the data pointer must stay valid).
    for _ in 0..3 {
        let r = probe(json!({"model": "id", "inputs": [{"name": "x", "type": "FP32", "dims": [0, 3], "data_b64": ""}]})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let outs = r.json()["outputs"].clone();
        let y = outs
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "y")
            .unwrap()
            .clone();
        assert_eq!(
            (y["dims"].clone(), y["data_b64"].clone()),
            (json!([0, 3]), json!("")),
            "{outs}"
        );
    }
    assert_eq!(api.http.get(&api.url("/healthz")).await.status, 200);
}

/// Item 11: requests are batched together only for a model declared row-independent;
/// the same model without the declaration runs one request per run under the same
/// concurrent load. For all-MiniLM-L6-v2 (declared), a batched row equals the same
/// request alone up to floating-point summation order: the largest difference is
/// printed and must stay below 1e-5.
#[tokio::test(flavor = "multi_thread")]
async fn sec_nn_only_row_independent_models_are_batched_and_minilm_rows_match() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "embed-minilm", "embed-minilm", "").await;
    let serve = json!({"kind": "embeddings", "function": "embed-minilm"});
    let minilm = models_dir().join("minilm-int8.onnx");
    push_model(
        &api,
        "acme",
        "minilm-rows",
        &minilm,
        json!({"serve": serve, "max_batch": 32, "max_delay_us": 30000, "row_independent": true}),
    )
    .await;
    push_model(
        &api,
        "acme",
        "minilm-undeclared",
        &minilm,
        json!({"serve": serve, "max_batch": 32, "max_delay_us": 30000}),
    )
    .await;
    // Same token count for every text ([CLS] + 4 words + [SEP]), so all can share a run.
    let colors = [
        "red", "blue", "green", "black", "white", "brown", "yellow", "gray",
    ];
    let things = ["house", "car", "dog", "tree"];
    let texts: Vec<String> = (0..16)
        .map(|i| format!("the {} {} is here", colors[i % 8], things[i / 4]))
        .collect();
    let embed = |model: &'static str, text: String| {
        let api = Api::new(&node);
        async move {
            let r = api
                .http
                .request(
                    "POST",
                    &api.url("/v1/embeddings"),
                    &[
                        ("openai-organization", "acme"),
                        ("content-type", "application/json"),
                    ],
                    json!({"model": model, "input": text}).to_string(),
                )
                .await;
            assert_eq!(r.status, 200, "{model}: {}", r.text());
            r.json()["data"][0]["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect::<Vec<f32>>()
        }
    };
    // Alone: one request at a time (each its own run).
    let mut alone = Vec::new();
    for t in &texts {
        alone.push(embed("minilm-rows", t.clone()).await);
    }
    let before = inference(&api).await;
    let runs_alone = session(&before, "acme/minilm-rows@").clone();
    assert_eq!(runs_alone["batched_requests"], 0, "{runs_alone}");
    // Together: all 16 at once, twice (the batcher coalesces what arrives within 30 ms).
    let mut batched = Vec::new();
    for _ in 0..2 {
        batched =
            futures::future::join_all(texts.iter().map(|t| embed("minilm-rows", t.clone()))).await;
    }
    let after = inference(&api).await;
    let rows = session(&after, "acme/minilm-rows@");
    println!("row-independent: {rows}");
    assert!(
        rows["batched_requests"].as_u64().unwrap() >= 4,
        "concurrent requests shared runs: {rows}"
    );
    assert!(
        rows["runs"].as_u64().unwrap() < rows["computes"].as_u64().unwrap(),
        "{rows}"
    );
    let mut max_diff = 0f32;
    for (a, b) in alone.iter().zip(&batched) {
        assert_eq!(a.len(), 384);
        for (x, y) in a.iter().zip(b) {
            max_diff = max_diff.max((x - y).abs());
        }
    }
    println!(
        "all-MiniLM-L6-v2, batched vs alone: max abs diff {max_diff:e} over {} values",
        16 * 384
    );
    assert!(
        max_diff < 1e-5,
        "batched rows differ from the rows alone by {max_diff}"
    );
    // Not declared: the same concurrent load never shares a run.
    for _ in 0..2 {
        let got =
            futures::future::join_all(texts.iter().map(|t| embed("minilm-undeclared", t.clone())))
                .await;
        assert_eq!(got.len(), 16);
    }
    let inf = inference(&api).await;
    let und = session(&inf, "acme/minilm-undeclared@");
    println!("undeclared: {und}");
    assert_eq!(und["computes"], 32, "{und}");
    assert_eq!(
        und["batched_requests"], 0,
        "a model not declared row-independent is never batched: {und}"
    );
    assert_eq!(und["runs"], 32, "one run per request: {und}");
    assert_eq!(und["batching"]["row_independent"], false, "{und}");
}

/// Resident memory of a process, in bytes (`VmRSS` from /proc).
fn rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    kb << 10
}

async fn chat(api: &Api<'_>, tenant: &str, model: &str, prompt: &str, max_tokens: u32) -> Resp {
    api.http
        .request(
            "POST",
            &api.url("/v1/chat/completions"),
            &[("openai-organization", tenant), ("content-type", "application/json")],
            json!({"model": model, "temperature": 0, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}).to_string(),
        )
        .await
}

/// KV bytes budgets of the node below, and the fixed overhead the process may grow by
/// beyond them under the flood (ONNX Runtime's arena for activations of the largest run
/// shapes, the allocator's fragmentation, the requests' own buffers).
const KV_MB: u64 = 64;
const KV_TENANT_MB: u64 = 32;
const OVERHEAD_MB: u64 = 96;

/// Item 7: tenant `flood` runs many long generations at once; it is held to its share
/// of the KV budget (its requests get 503 capacity_exhausted) while tenant `calm`'s
/// requests, running at the same time, all succeed. The admin counters never show more
/// KV bytes than the budget, and the process's RSS stays under its idle-after-warm-up
/// level + the budget + a fixed overhead.
#[tokio::test(flavor = "multi_thread")]
async fn sec_nn_kv_budget_holds_per_tenant_and_in_process_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        Some(&format!(
            "[inference]\nmax_kv_cache_mb = {KV_MB}\nmax_kv_cache_mb_per_tenant = {KV_TENANT_MB}\n"
        )),
    );
    let api = Api::new(&node);
    let llm = std::path::PathBuf::from(required_env("HELIXFLOW_LLM_DIR"))
        .join("smollm2-135m-instruct-int8.onnx");
    const MODEL: &str = "smol";
    for t in ["flood", "calm"] {
        api.create_tenant(t).await;
        api.deploy(t, "chat", "chat", "").await;
        let r = api
            .http
            .put_json(
                &api.url(&format!("/api/v1/tenants/{t}/functions/chat/config")),
                json!({"timeout_ms": 30000}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        // The same bytes in both tenants: one session, one scheduler, shared batches.
        push_model(
            &api,
            t,
            MODEL,
            &llm,
            json!({"serve": {"kind": "chat", "function": "chat"}}),
        )
        .await;
    }
    const FLOOD: usize = 8;
    const CALM: usize = 2;
    let long = "Count from 1 to 1000, one number per line.";
    // Warm-up at the same concurrency (instances, the session, ONNX Runtime's buffers),
    // then the idle baseline.
    let warm = (0..FLOOD + CALM).map(|i| {
        chat(
            &api,
            if i < FLOOD { "flood" } else { "calm" },
            MODEL,
            long,
            16,
        )
    });
    for r in futures::future::join_all(warm).await {
        assert_eq!(r.status, 200, "{}", r.text());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = inference(&api).await;
    assert_eq!(idle["kv_cache_bytes"], 0, "{idle}");
    let baseline = rss(node.pid());
    // Watch RSS and the KV counter while the flood runs.
    let done = Arc::new(AtomicBool::new(false));
    let (max_rss, max_kv) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let watcher = {
        let (done, max_rss, max_kv) = (done.clone(), max_rss.clone(), max_kv.clone());
        let (pid, url) = (node.pid(), node.url.clone());
        tokio::spawn(async move {
            let http = helixflow_e2e::Http::new();
            while !done.load(Ordering::Relaxed) {
                max_rss.fetch_max(rss(pid), Ordering::Relaxed);
                let r = http.get(&format!("{url}/api/v1/admin/inference")).await;
                if let Some(kv) = r.json()["kv_cache_bytes"].as_u64() {
                    max_kv.fetch_max(kv, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let t0 = Instant::now();
    let flood =
        futures::future::join_all((0..FLOOD).map(|_| chat(&api, "flood", MODEL, long, 300)));
    let calm = async {
        // calm starts once the flood is under way, and runs its requests one after another.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut out = Vec::new();
        for _ in 0..2 {
            out.extend(
                futures::future::join_all(
                    (0..CALM).map(|_| chat(&api, "calm", MODEL, "Name three primary colors.", 48)),
                )
                .await,
            );
        }
        out
    };
    let (flood, calm) = tokio::join!(flood, calm);
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let elapsed = t0.elapsed();
    let refused: Vec<&Resp> = flood.iter().filter(|r| r.status == 503).collect();
    let served = flood.iter().filter(|r| r.status == 200).count();
    for r in &flood {
        assert!(
            r.status == 200 || r.status == 503,
            "{}: {}",
            r.status,
            r.text()
        );
    }
    for r in &refused {
        assert_eq!(
            r.json()["error"]["code"],
            "capacity_exhausted",
            "{}",
            r.text()
        );
    }
    let peak_rss = max_rss.load(Ordering::Relaxed);
    let peak_kv = max_kv.load(Ordering::Relaxed);
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "flood: {served} served, {} refused (e.g. {}); calm: {:?}; {:.1} s",
        refused.len(),
        refused
            .first()
            .map(|r| r.json()["error"]["message"].to_string())
            .unwrap_or_default(),
        calm.iter().map(|r| r.status).collect::<Vec<_>>(),
        elapsed.as_secs_f32()
    );
    println!(
        "RSS: idle {:.1} MiB, peak {:.1} MiB (+{:.1}; bound +{KV_MB} budget +{OVERHEAD_MB} overhead); KV counter peak {:.1} MiB of {KV_MB}",
        mb(baseline),
        mb(peak_rss),
        mb(peak_rss.saturating_sub(baseline)),
        mb(peak_kv)
    );
    assert!(
        !refused.is_empty(),
        "the flood is held to its share: some of its requests are refused"
    );
    for r in &calm {
        assert_eq!(
            r.status,
            200,
            "the calm tenant keeps its share while the flood runs: {}",
            r.text()
        );
        assert!(
            r.json()["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
            "{}",
            r.text()
        );
    }
    assert!(
        peak_kv > 0 && peak_kv <= KV_MB << 20,
        "KV counter peaked at {peak_kv}"
    );
    assert!(
        peak_rss <= baseline + ((KV_MB + OVERHEAD_MB) << 20),
        "RSS grew by {:.1} MiB, over the {KV_MB} MiB budget + {OVERHEAD_MB} MiB overhead",
        mb(peak_rss.saturating_sub(baseline))
    );
    let after = inference(&api).await;
    assert_eq!(
        after["kv_cache_bytes"], 0,
        "every byte is given back: {after}"
    );
}
