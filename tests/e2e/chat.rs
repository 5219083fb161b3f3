//! Chat completions end to end: SmolLM2-135M-Instruct (built into ONNX by
//! tests/models/smollm2.py, in $HELIXFLOW_LLM_DIR) served by the `chat` function over
//! helixflow:llm sequences; the official `openai` package against it, compared token
//! for token with Python onnxruntime; client disconnects; continuous batching.

use helixflow_e2e::{Api, Node, Resp, required_env};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const FP32: &str = "smollm2-135m-instruct";
pub const INT8: &str = "smollm2-135m-instruct-int8";
pub const Q4: &str = "smollm2-135m-instruct-q4";

fn llm_dir() -> PathBuf {
    PathBuf::from(required_env("HELIXFLOW_LLM_DIR"))
}

async fn push_llm(api: &Api<'_>, tenant: &str, name: &str, file: &str, cfg: Value) -> Resp {
    let p = llm_dir().join(file);
    let bytes =
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", p.display()));
    api.http
        .request(
            "POST",
            &api.url(&format!("/api/v1/tenants/{tenant}/models/{name}/versions")),
            &[("x-helixflow-model-config", &cfg.to_string())],
            bytes,
        )
        .await
}

/// Pushes `{file}` of the LLM dir as model `name` of `tenant`, served for chat by its
/// `chat` function (which the caller deployed); asserts it was stored.
pub async fn push_chat_model(api: &Api<'_>, tenant: &str, name: &str, file: &str) {
    let cfg = json!({"serve": {"kind": "chat", "function": "chat"}});
    let r = push_llm(api, tenant, name, file, cfg).await;
    assert_eq!(r.status, 201, "push {tenant}/{name}: {}", r.text());
}

/// A node with tenant `demo`, the `chat` function and both SmolLM2 models served by it.
async fn chat_node(dir: &std::path::Path, models: &[(&str, &str, Value)]) -> Node {
    let node = Node::start(dir, None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    // These tests check answers, not latency: a first request that loads a 650 MB model
    // on a busy 2-core CI machine gets the tenant's longest deadline, not the 10 s default.
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/demo/functions/chat/versions"),
            &[("x-helixflow-config", r#"{"timeout_ms": 30000}"#)],
            helixflow_e2e::guest("chat"),
        )
        .await;
    assert_eq!(r.status, 201, "deploy chat: {}", r.text());
    for (name, file, extra) in models {
        let mut cfg = json!({"serve": {"kind": "chat", "function": "chat"}});
        if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        let r = push_llm(&api, "demo", name, file, cfg).await;
        assert_eq!(r.status, 201, "push {name}: {}", r.text());
    }
    node
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_python_chat_matches_onnxruntime_reference() {
    let dir = tempfile::tempdir().unwrap();
    let node = chat_node(
        dir.path(),
        &[
            (FP32, "smollm2-135m-instruct.onnx", json!({})),
            (INT8, "smollm2-135m-instruct-int8.onnx", json!({})),
            (Q4, "smollm2-135m-instruct-q4.onnx", json!({})),
        ],
    )
    .await;
    // An embeddings model in the same tenant, for the wrong-kind check.
    let api = Api::new(&node);
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
        .arg(helixflow_e2e::workspace_root().join("tests/python/openai_chat.py"))
        .arg(&node.url)
        .arg("demo")
        .arg(llm_dir());
    let out = helixflow_e2e::run_python_ok(cmd, &node).await;
    assert!(out.contains("all chat checks passed"), "{out}");
    // Those exact answers included prompts that started from the prefix cache: every
    // fp32/q4 prompt after the first shares the default system prompt, and the second
    // turns extend the first. int8 has no prefix cache (per-tensor activation scales).
    let inf = inference(&api).await;
    for m in [FP32, Q4] {
        let lm = lm_of(&inf, m);
        let hits = lm["prefix_hits"].as_u64().unwrap_or(0);
        assert!(hits >= 2, "{m}: {hits} prefix-cache hits: {lm}");
        // The model's first prompt found nothing cached.
        assert!(
            lm["prefix_lookups"].as_u64().unwrap_or(0) > hits,
            "{m}: {lm}"
        );
        assert!(
            lm["prefix_cache_bytes"].as_u64().unwrap_or(0) > 0,
            "{m}: {lm}"
        );
    }
    let lm = lm_of(&inf, INT8);
    assert_eq!(
        lm["prefix_lookups"], 0,
        "int8 never looks up a prefix: {lm}"
    );
    let metrics = api.http.get(&api.url("/metrics")).await.text();
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("helixflow_llm_prefix_cache_hits_total") && l.contains(Q4))
        .unwrap_or_else(|| panic!("no prefix-cache hits for {Q4} in /metrics:\n{metrics}"));
    assert!(!hits.ends_with(" 0"), "{hits}");
}

async fn inference(api: &Api<'_>) -> Value {
    let r = api.http.get(&api.url("/api/v1/admin/inference")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn lm_of(inf: &Value, model: &str) -> Value {
    inf["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["model"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("demo/{model}@")))
        })
        .map(|s| s["lm"].clone())
        .unwrap_or(Value::Null)
}

/// Opens a raw streaming request and returns the socket after the response head and
/// `chunks` SSE events with content have arrived.
async fn open_stream(node: &Node, body: &Value, chunks: usize) -> (tokio::net::TcpStream, String) {
    let addr = node.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = body.to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nOpenAI-Organization: demo\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        helixflow_e2e::admin_key(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.matches("\"content\":\"").filter(|_| true).count() < chunks + 1 {
        assert!(Instant::now() < deadline, "no stream within 60 s: {seen}");
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    (s, seen)
}

/// A client that goes away mid-stream stops its generation: the sequence closes, its
/// KV cache is freed, no more tokens are decoded for it.
#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_stops_generation_and_frees_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let node = chat_node(
        dir.path(),
        &[(INT8, "smollm2-135m-instruct-int8.onnx", json!({}))],
    )
    .await;
    let api = Api::new(&node);
    // Greedy, this prompt counts on well past 300 tokens (checked against the reference
    // in tests/python/openai_chat.py's model; here it only has to outlast the disconnect).
    let body = json!({
        "model": INT8, "stream": true, "temperature": 0, "max_tokens": 1500,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
    });
    let (sock, seen) = open_stream(&node, &body, 5).await;
    let during = inference(&api).await;
    let lm = lm_of(&during, INT8);
    assert_eq!(
        lm["open_sequences"], 1,
        "one sequence while streaming: {during}"
    );
    assert!(during["kv_cache_bytes"].as_u64().unwrap() > 0, "{during}");
    drop(sock);
    let t0 = Instant::now();
    let mut after = during.clone();
    while t0.elapsed() < Duration::from_secs(10) {
        after = inference(&api).await;
        if lm_of(&after, INT8)["open_sequences"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lm = lm_of(&after, INT8);
    assert_eq!(
        lm["open_sequences"], 0,
        "the sequence closed after the disconnect: {after}"
    );
    assert_eq!(
        after["kv_cache_bytes"], 0,
        "its KV cache was freed: {after}"
    );
    let decoded = lm["decode_rows"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = lm_of(&inference(&api).await, INT8);
    assert_eq!(
        later["decode_rows"].as_u64().unwrap(),
        decoded,
        "no decoding after the sequence closed"
    );
    assert!(
        decoded < 200,
        "generation stopped soon after the disconnect ({decoded} tokens decoded of 1500; {} s after)",
        t0.elapsed().as_secs_f32()
    );
    println!(
        "disconnect: {} chars streamed, {decoded} tokens decoded in all, closed {:?} after the socket",
        seen.len(),
        t0.elapsed()
    );
    // The node keeps serving.
    let r = api
        .http
        .post_json(
            &api.url("/v1/chat/completions"),
            json!({"model": INT8, "temperature": 0, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert_eq!(r.status, 401, "no tenant named: {}", r.text());
    assert_eq!(
        complete(&api, INT8, "Hi", 4).await["usage"]["completion_tokens"],
        4
    );

    // A generation that outlives the function's timeout: the guest is stopped, the
    // answer is OpenAI-shaped, and its sequence is freed with the instance.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/demo/functions/chat/config"),
            json!({"timeout_ms": 400}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_chat(
        &api,
        INT8,
        "Count from 1 to 1000, one number per line.",
        1500,
    )
    .await;
    assert_eq!(r.status, 504, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("server_error"), Some("function_timeout")),
        "{}",
        r.text()
    );
    assert!(
        e.get("param").is_some() && e["message"].is_string(),
        "{}",
        r.text()
    );
    let t0 = Instant::now();
    loop {
        let inf = inference(&api).await;
        if lm_of(&inf, INT8)["open_sequences"] == 0 && inf["kv_cache_bytes"] == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the timed-out guest's sequence was not freed: {inf}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A greedy, non-streamed completion as tenant `demo` (the platform admin names it).
async fn post_chat(api: &Api<'_>, model: &str, prompt: &str, max_tokens: u32) -> Resp {
    api.http
        .request(
            "POST",
            &api.url("/v1/chat/completions"),
            &[("openai-organization", "demo"), ("content-type", "application/json")],
            json!({"model": model, "temperature": 0, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}).to_string(),
        )
        .await
}

async fn complete(api: &Api<'_>, model: &str, prompt: &str, max_tokens: u32) -> Value {
    let r = post_chat(api, model, prompt, max_tokens).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Concurrent requests share decode runs (continuous batching), and with fp32 weights a
/// batched answer is the answer the request gets alone (rows differ from solo runs only
/// in floating-point summation order; the quantised variants quantise activations per
/// run, so they are only checked to batch).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_streams_share_decode_steps() {
    let dir = tempfile::tempdir().unwrap();
    let node = chat_node(
        dir.path(),
        &[
            (FP32, "smollm2-135m-instruct.onnx", json!({})),
            (Q4, "smollm2-135m-instruct-q4.onnx", json!({})),
        ],
    )
    .await;
    let api = Api::new(&node);
    let prompts = [
        "What is the capital of France?",
        "Name three primary colors.",
        "Why is the sky blue?",
        "What is 2 + 2?",
    ];
    for model in [FP32, Q4] {
        let mut alone = Vec::new();
        for p in prompts {
            alone.push(
                complete(&api, model, p, 24).await["choices"][0]["message"]["content"].clone(),
            );
        }
        let before = lm_of(&inference(&api).await, model);
        assert_eq!(
            before["batched_runs"], 0,
            "sequential requests never share a run: {before}"
        );
        let together =
            futures::future::join_all(prompts.iter().map(|p| complete(&api, model, p, 24))).await;
        let after = lm_of(&inference(&api).await, model);
        println!("{model} alone: {alone:?}\nscheduler: {after}");
        assert!(
            after["batched_runs"].as_u64().unwrap() > 0,
            "concurrent requests shared decode runs: {after}"
        );
        assert!(after["max_rows"].as_u64().unwrap() >= 2, "{after}");
        // Steps where the same rows came back fed the last run's outputs straight back in
        // (no cache copies); their answers are checked below like the rest.
        assert!(after["sticky_runs"].as_u64().unwrap() > 0, "{after}");
        for (i, t) in together.iter().enumerate() {
            if model == FP32 {
                assert_eq!(
                    t["choices"][0]["message"]["content"], alone[i],
                    "{model}, prompt {i}: batched answer equals the answer alone"
                );
            } else {
                assert_eq!(
                    t["usage"]["completion_tokens"].as_u64().map(|n| n >= 1),
                    Some(true),
                    "{t}"
                );
            }
        }
        // The scheduler's counters are in /metrics.
        let m = api.http.get(&api.url("/metrics")).await.text();
        let decoded = m
            .lines()
            .find(|l| {
                l.starts_with("helixflow_llm_decoded_tokens_total{")
                    && l.contains(&format!("{model}@"))
            })
            .unwrap_or_else(|| panic!("no decoded-token counter in /metrics:\n{m}"));
        assert_eq!(
            decoded.rsplit(' ').next().unwrap().parse::<u64>().unwrap(),
            after["decode_rows"].as_u64().unwrap()
        );
        assert!(m.contains("helixflow_llm_kv_cache_bytes{"), "{m}");
    }
}

/// A tenant never reaches another tenant's chat model, through the API or from its own
/// function; and the node's KV-cache budget turns into a clear 503, not memory growth.
#[tokio::test(flavor = "multi_thread")]
async fn chat_models_are_tenant_scoped_and_the_kv_budget_holds() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB of KV cache: ~22 positions of SmolLM2, less than any chat prompt.
    let node = Node::start(dir.path(), Some("[inference]\nmax_kv_cache_mb = 1\n"));
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    api.create_tenant("other").await;
    api.deploy("demo", "chat", "chat", "").await;
    api.deploy("other", "chat", "chat", "").await;
    let r = push_llm(
        &api,
        "demo",
        INT8,
        "smollm2-135m-instruct-int8.onnx",
        json!({"serve": {"kind": "chat", "function": "chat"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let body =
        json!({"model": INT8, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
            .to_string();
    let post = |org: &'static str, path: &'static str| {
        let body = body.clone();
        let api = &api;
        async move {
            api.http
                .request(
                    "POST",
                    &api.url(path),
                    &[
                        ("openai-organization", org),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await
        }
    };
    // Through the API, as tenant `other`: demo's model does not exist for it.
    let r = post("other", "/v1/chat/completions").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    // From other's own chat function: the host resolves the name in `other` only.
    let r = post("other", "/other/chat/").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "model_not_found", "{}", r.text());
    // demo's own request: the prompt does not fit the node's KV budget.
    for path in ["/v1/chat/completions", "/demo/chat/"] {
        let r = post("demo", path).await;
        assert_eq!(r.status, 503, "{path}: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            "capacity_exhausted",
            "{}",
            r.text()
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("KV-cache budget"),
            "{}",
            r.text()
        );
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let inf = inference(&api).await;
    assert_eq!(
        inf["kv_cache_bytes"], 0,
        "nothing held after the refusals: {inf}"
    );
    assert_eq!(inf["kv_cache_limit_bytes"], 1 << 20);
}

/// The host counts a chat's tokens itself (helixflow:llm feeds), and they are what the
/// function reports to the client, metered per model under the `openai` trigger.
#[tokio::test(flavor = "multi_thread")]
async fn chat_tokens_are_counted_by_the_host_and_metered_per_model() {
    let dir = tempfile::tempdir().unwrap();
    let node = chat_node(
        dir.path(),
        &[(INT8, "smollm2-135m-instruct-int8.onnx", json!({}))],
    )
    .await;
    let api = Api::new(&node);
    let v = complete(&api, INT8, "What is the capital of France?", 8).await;
    let reported = &v["usage"];
    // The invocation is recorded when the guest is done, possibly just after the client
    // has its answer: ask until it is there (5 s at most).
    let query = "/api/v1/tenants/demo/usage?group_by=model,trigger&metrics=requests,prompt_tokens,completion_tokens";
    let deadline = Instant::now() + Duration::from_secs(5);
    let u = loop {
        let u = api.http.get(&api.url(query)).await.json();
        if u["series"].as_array().is_some_and(|a| !a.is_empty()) || Instant::now() > deadline {
            break u;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("function reported {reported}; metered {u}");
    let s = u["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["group"]["model"] == INT8 && s["group"]["trigger"] == "openai")
        .unwrap_or_else(|| panic!("no {INT8}/openai series: {u}"));
    assert_eq!(s["total"]["requests"], 1);
    assert_eq!(s["total"]["prompt_tokens"], reported["prompt_tokens"]);
    assert_eq!(
        s["total"]["completion_tokens"],
        reported["completion_tokens"]
    );
    assert!(reported["completion_tokens"].as_u64().unwrap() >= 1);

    // A token limit: a request that may use more than it (input + max_tokens) can never
    // be admitted and is refused at once, OpenAI's way; a max_tokens near u64::MAX does
    // not overflow the reservation; the tokens of refused requests are not kept.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/demo/budget"),
            json!({"tenant": {"tpm": 2000}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for max_tokens in [json!(5000), json!(u64::MAX)] {
        let r = api
            .http
            .request(
                "POST",
                &api.url("/v1/chat/completions"),
                &[
                    ("openai-organization", "demo"),
                    ("content-type", "application/json"),
                ],
                json!({"model": INT8, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "Hi"}]})
                .to_string(),
            )
            .await;
        assert_eq!(r.status, 429, "max_tokens {max_tokens}: {}", r.text());
        assert_eq!(r.code(), "rate_limit_exceeded", "{}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Request too large"),
            "{}",
            r.text()
        );
    }
    let v = complete(&api, INT8, "Hi", 4).await;
    assert!(
        v["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
        "a request within the limit is served after the refusals: {v}"
    );
}

/// Prefix-cache entries are never shared between tenants. `demo` and `other` serve the
/// same q4 bytes (one session, one scheduler, one prefix cache); `other` sends exactly
/// the prompt `demo` just ran and must find nothing cached (a hit would let it learn,
/// from timing, what `demo` asked); `demo`'s own repeat does hit.
#[tokio::test(flavor = "multi_thread")]
async fn prefix_cache_entries_are_never_shared_between_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    for t in ["demo", "other"] {
        api.create_tenant(t).await;
        let r = api
            .http
            .request(
                "POST",
                &api.url(&format!("/api/v1/tenants/{t}/functions/chat/versions")),
                &[("x-helixflow-config", r#"{"timeout_ms": 30000}"#)],
                helixflow_e2e::guest("chat"),
            )
            .await;
        assert_eq!(r.status, 201, "deploy chat in {t}: {}", r.text());
        push_chat_model(&api, t, Q4, "smollm2-135m-instruct-q4.onnx").await;
    }
    let body = json!({"model": Q4, "temperature": 0, "max_tokens": 4,
        "messages": [{"role": "user", "content": "What is the secret launch code of project Falcon?"}]})
    .to_string();
    let ask = |org: &'static str| {
        let body = body.clone();
        let api = &api;
        async move {
            let r = api
                .http
                .request(
                    "POST",
                    &api.url("/v1/chat/completions"),
                    &[
                        ("openai-organization", org),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await;
            assert_eq!(r.status, 200, "{org}: {}", r.text());
        }
    };
    // (lookups, hits) of the one q4 session, whichever tenant's name it carries.
    let counters = || async {
        let inf = inference(&api).await;
        let lms: Vec<Value> = inf["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| {
                s["model"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("/{Q4}@")))
            })
            .map(|s| s["lm"].clone())
            .filter(|lm| !lm.is_null())
            .collect();
        assert_eq!(lms.len(), 1, "one session serves both tenants: {inf}");
        (
            lms[0]["prefix_lookups"].as_u64().unwrap(),
            lms[0]["prefix_hits"].as_u64().unwrap(),
        )
    };
    ask("demo").await;
    assert_eq!(
        counters().await,
        (1, 0),
        "demo's first prompt: nothing cached"
    );
    ask("other").await;
    assert_eq!(
        counters().await,
        (2, 0),
        "other's identical prompt never starts from demo's entry"
    );
    ask("demo").await;
    assert_eq!(counters().await, (3, 1), "demo's own repeat does");
    ask("other").await;
    assert_eq!(
        counters().await,
        (4, 2),
        "and other's own repeat, from its own entry"
    );
}
