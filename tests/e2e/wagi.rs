//! WASI preview1 command modules run WAGI-style (CGI over stdio), with wasi-nn through the
//! witx ABI (`wasi_ephemeral_nn`): guests written only against the `wasi-nn` crate and
//! WasmEdge's `wasmedge-wasi-nn`, built for `wasm32-wasip1` and deployed unchanged, plus
//! hand-written modules (WAT) for the CGI protocol, limits and bad uploads.

use helixflow_e2e::{Api, Node, guest_module, required_env};
use serde_json::Value;

fn image(file: &str) -> Vec<u8> {
    let p = std::path::Path::new(&required_env("HELIXFLOW_MODELS_DIR")).join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn top5(v: &Value) -> Vec<(String, f64)> {
    v["top5"]
        .as_array()
        .unwrap_or_else(|| panic!("no top5 in {v}"))
        .iter()
        .map(|c| {
            (
                c["label"].as_str().unwrap().to_string(),
                c["probability"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Modules built against the two witx crates classify real photos exactly like the
/// component built on HelixFlow's SDK (same preprocessing, same model, same backend),
/// over HTTP and as events; their failures are clear.
#[tokio::test(flavor = "multi_thread")]
async fn wagi_modules_built_for_the_wasi_nn_crates_classify_like_the_component() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("demo").await;
    api.deploy("demo", "classify-image", "classify-image", "")
        .await;
    for name in ["classify-wasi-nn", "classify-wasmedge"] {
        let r = api.deploy_raw("demo", name, guest_module(name), "").await;
        assert_eq!(r.status, 201, "deploy {name}: {}", r.text());
        let exports = &r.json()["version"]["exports"];
        assert_eq!(
            (exports["http"].as_bool(), exports["event"].as_bool()),
            (Some(true), Some(true)),
            "a command module serves both triggers: {exports}"
        );
    }
    let r = crate::nn::push(
        &api,
        "public",
        "efficientnet-lite0",
        "efficientnet-lite0.onnx",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());

    for (file, expect) in [
        ("coffee.png", "espresso"),
        ("chelsea.png", ""),
        ("grace_hopper.jpg", ""),
    ] {
        let img = image(file);
        let r = api
            .http
            .post(&api.url("/demo/classify-image/"), img.clone())
            .await;
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        let reference = top5(&r.json());
        if !expect.is_empty() {
            assert_eq!(reference[0].0, expect, "{file}");
        }
        for name in ["classify-wasi-nn", "classify-wasmedge"] {
            let r = api
                .http
                .post(&api.url(&format!("/demo/{name}/")), img.clone())
                .await;
            assert_eq!(r.status, 200, "{name} {file}: {}", r.text());
            assert_eq!(
                r.header("content-type"),
                Some("application/json"),
                "{name}: CGI header"
            );
            let got = top5(&r.json());
            assert_eq!(
                got.iter().map(|c| &c.0).collect::<Vec<_>>(),
                reference.iter().map(|c| &c.0).collect::<Vec<_>>(),
                "{name} {file}: same top-5 labels as classify-image"
            );
            for ((_, a), (_, b)) in got.iter().zip(&reference) {
                assert!((a - b).abs() < 1e-5, "{name} {file}: {a} vs {b}");
            }
        }
    }

    // As an event: the image is the payload, the JSON the result.
    let r = api
        .http
        .post(
            &api.url("/invoke/demo/classify-wasmedge"),
            image("coffee.png"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(top5(&r.json())[0].0, "espresso");

    // Bad input: the module's own errors (a CGI status over HTTP; a non-zero exit as an
    // event, with its stderr line as the message).
    let r = api
        .http
        .post(&api.url("/demo/classify-wasi-nn/"), "not an image")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_image");
    let r = api
        .http
        .post(&api.url("/invoke/demo/classify-wasmedge"), "not an image")
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (422, "function_error"),
        "{}",
        r.text()
    );
    assert_eq!(r.json()["error"]["error_type"], "NonZeroExit");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a JPEG or PNG")
    );

    // A model the tenant does not have: the crate sees NOT_FOUND; the reason is in the
    // function's log (the witx ABI returns only an errno).
    let cfg = r#"{"env":{"MODEL":"no-such-model"}}"#;
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/demo/functions/classify-wasi-nn/versions"),
            &[("x-helixflow-config", cfg)],
            guest_module("classify-wasi-nn"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = api
        .http
        .post(&api.url("/demo/classify-wasi-nn/"), image("coffee.png"))
        .await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().to_lowercase().contains("not found"),
        "the crate reports NOT_FOUND: {}",
        r.text()
    );
    let mut seen = String::new();
    for _ in 0..100 {
        let r = api
            .http
            .get(&api.url("/api/v1/tenants/demo/functions/classify-wasi-nn/logs?limit=5"))
            .await;
        seen = r.text();
        if seen.contains("wasi_ephemeral_nn.load_by_name") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        seen.contains("wasi_ephemeral_nn.load_by_name") && seen.contains("no-such-model"),
        "the log names the failed call and the model: {seen}"
    );
}

/// `fd_write(1, "<text>")` then `_start` returns (or exits with `code`).
fn module_printing(text: &str, exit: Option<i32>) -> Vec<u8> {
    let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
    let exit = exit
        .map(|c| format!("(call $exit (i32.const {c}))"))
        .unwrap_or_default();
    let wat = format!(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
            (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
            (memory (export "memory") 1)
            (data (i32.const 64) "{escaped}")
            (func (export "_start")
                (i32.store (i32.const 0) (i32.const 64))
                (i32.store (i32.const 4) (i32.const {len}))
                (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
                {exit}))"#,
        len = text.len()
    );
    wat::parse_str(wat).unwrap()
}

/// The CGI protocol and the sandbox's limits, with hand-written modules; bad uploads
/// are refused with the fix named and nothing stored.
#[tokio::test(flavor = "multi_thread")]
async fn wagi_cgi_protocol_limits_and_bad_modules() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let deploy = |name: &'static str, bytes: Vec<u8>, cfg: &'static str| {
        let api = &api;
        async move {
            let r = api
                .http
                .request(
                    "POST",
                    &api.url(&format!("/api/v1/tenants/acme/functions/{name}/versions")),
                    &[("x-helixflow-config", cfg)],
                    bytes,
                )
                .await;
            assert_eq!(r.status, 201, "deploy {name}: {}", r.text());
        }
    };
    deploy(
        "created",
        module_printing(
            "Status: 201 Created\r\nContent-Type: text/plain\r\nX-Mod: yes\r\n\r\nmade it",
            None,
        ),
        "{}",
    )
    .await;
    deploy(
        "moved",
        module_printing("Location: /elsewhere\n\n", None),
        "{}",
    )
    .await;
    deploy("garbage", module_printing("just some text", None), "{}").await;
    deploy(
        "exits",
        module_printing("Content-Type: text/plain\n\npartial", Some(3)),
        "{}",
    )
    .await;
    let spin = wat::parse_str(
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#,
    )
    .unwrap();
    deploy("spin", spin, r#"{"timeout_ms":300}"#).await;
    let hog = wat::parse_str(
        r#"(module (memory (export "memory") 1)
            (func (export "_start") (if (i32.eq (memory.grow (i32.const 2000)) (i32.const -1)) (then unreachable))))"#,
    )
    .unwrap();
    deploy("hog", hog, r#"{"memory_mb":32}"#).await;

    let r = api.http.get(&api.url("/acme/created/x?y=1")).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-mod"), Some("yes"));
    assert_eq!(r.text(), "made it");
    assert!(
        r.header("status").is_none(),
        "Status is not passed on as a header"
    );
    let r = api.http.get(&api.url("/acme/moved/")).await;
    assert_eq!((r.status, r.header("location")), (302, Some("/elsewhere")));
    let r = api.http.get(&api.url("/acme/garbage/")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (502, "function_bad_response"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("empty line"), "{}", r.text());
    let r = api.http.get(&api.url("/acme/exits/")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "function_trap"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("exited with status 3"), "{}", r.text());
    let t = std::time::Instant::now();
    let r = api.http.get(&api.url("/acme/spin/")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (504, "function_timeout"),
        "{}",
        r.text()
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    let r = api.http.get(&api.url("/acme/hog/")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "function_memory_limit"),
        "{}",
        r.text()
    );
    // As an event, an exit status is a function error; stdout is the result.
    let r = api.http.post(&api.url("/invoke/acme/exits"), "x").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (422, "function_error"),
        "{}",
        r.text()
    );
    let r = api.http.post(&api.url("/invoke/acme/moved"), "x").await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Location: /elsewhere\n\n")
    );
    // The node still serves after all of that.
    let r = api.http.get(&api.url("/acme/created/")).await;
    assert_eq!(r.status, 201);

    // Bad uploads: each refused with a message naming the fix, nothing stored.
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "no-start",
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "run")))"#)
                .unwrap(),
            "no_supported_export",
            "_start",
        ),
        (
            "no-memory",
            wat::parse_str(r#"(module (func (export "_start")))"#).unwrap(),
            "no_supported_export",
            "memory",
        ),
        (
            "alien-import",
            wat::parse_str(
                r#"(module (import "wasi_ephemeral_nn" "teleport" (func (param i32) (result i32)))
                    (memory (export "memory") 1) (func (export "_start")))"#,
            )
            .unwrap(),
            "unsupported_import",
            "teleport",
        ),
    ];
    for (name, bytes, code, names) in cases {
        let r = api.deploy_raw("acme", name, bytes, "").await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, code),
            "{name}: {}",
            r.text()
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(names), "{name}: {msg}");
        let r = api
            .http
            .get(&api.url(&format!("/api/v1/tenants/acme/functions/{name}")))
            .await;
        assert_eq!(r.status, 404, "{name}: nothing stored");
    }
}
