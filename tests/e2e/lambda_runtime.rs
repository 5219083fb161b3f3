//! `helixflow lambda` as a real `lambda_runtime` binary against a Runtime API server on
//! loopback that follows AWS's documented protocol (next / response / error):
//! HTTP events (Function URL payload 2.0, REST payload 1.0), plain events, a function
//! error, a deadline, and malformed events; the runtime keeps serving after each.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Api {
    queue: Mutex<VecDeque<(String, u64, String)>>,
    /// request id -> ("response" | "error", body, error-type header)
    results: Mutex<HashMap<String, (String, String, String)>>,
    /// When each result arrived (ms since epoch).
    at: Mutex<HashMap<String, u64>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn serve(api: Arc<Api>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let api = api.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| {
                        let api = api.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let path = req.uri().path().to_string();
                            let err_type = req
                                .headers()
                                .get("lambda-runtime-function-error-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = String::from_utf8_lossy(
                                &req.into_body().collect().await.unwrap().to_bytes(),
                            )
                            .into_owned();
                            let resp = |status: u16, headers: Vec<(&str, String)>, body: String| {
                                let mut b = http::Response::builder().status(status);
                                for (k, v) in headers {
                                    b = b.header(k, v);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    b.body(http_body_util::Full::new(bytes::Bytes::from(body)))
                                        .unwrap(),
                                )
                            };
                            if path == "/2018-06-01/runtime/invocation/next" {
                                loop {
                                    let next = api.queue.lock().unwrap().pop_front();
                                    if let Some((id, deadline, event)) = next {
                                        return resp(
                                        200,
                                        vec![
                                            ("lambda-runtime-aws-request-id", id),
                                            ("lambda-runtime-deadline-ms", deadline.to_string()),
                                            ("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:hf".into()),
                                            ("lambda-runtime-trace-id", "Root=1-5e1b4151-5ac6c58f5ca0f5a1c8b6e1b2".into()),
                                            ("content-type", "application/json".into()),
                                        ],
                                        event,
                                    );
                                    }
                                    tokio::time::sleep(Duration::from_millis(10)).await;
                                }
                            }
                            let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                            match segs.as_slice() {
                                [
                                    "2018-06-01",
                                    "runtime",
                                    "invocation",
                                    id,
                                    kind @ ("response" | "error"),
                                ] => {
                                    api.results
                                        .lock()
                                        .unwrap()
                                        .insert(id.to_string(), (kind.to_string(), body, err_type));
                                    api.at.lock().unwrap().insert(id.to_string(), now_ms());
                                    resp(202, vec![], r#"{"status":"OK"}"#.into())
                                }
                                ["2018-06-01", "runtime", "init", "error"] => {
                                    api.results
                                        .lock()
                                        .unwrap()
                                        .insert("init".into(), ("error".into(), body, err_type));
                                    resp(202, vec![], r#"{"status":"OK"}"#.into())
                                }
                                _ => resp(404, vec![], "{}".into()),
                            }
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

async fn result_of(api: &Api, id: &str, secs: u64) -> (String, serde_json::Value, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some((kind, body, t)) = api.results.lock().unwrap().get(id).cloned() {
            let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
            return (kind, v, t);
        }
        assert!(std::time::Instant::now() < deadline, "no result for {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the runtime process when the test ends.
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// `helixflow lambda` with the Lambda environment pointing at the Runtime API on `port`,
/// `LAMBDA_TASK_ROOT` = `root`, output in `root/lambda.log`.
fn spawn(root: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Kill {
    let log = std::fs::File::create(root.join("lambda.log")).unwrap();
    Kill(
        std::process::Command::new(helixflow_e2e::helixflow_bin())
            .arg("lambda")
            .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "hf")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("LAMBDA_TASK_ROOT", root)
            .env_remove("ORT_DYLIB_PATH")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn helixflow_runs_as_a_lambda_custom_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("function.wasm");
    std::fs::write(&component, helixflow_e2e::guest("chaos")).unwrap();
    let api = Arc::new(Api::default());
    let port = serve(api.clone()).await;
    let far = || now_ms() + 30_000;
    let push = |id: &str, deadline: u64, ev: serde_json::Value| {
        api.queue
            .lock()
            .unwrap()
            .push_back((id.into(), deadline, ev.to_string()))
    };

    // Without the Lambda environment it refuses clearly instead of panicking.
    let out = std::process::Command::new(helixflow_e2e::helixflow_bin())
        .arg("lambda")
        .env("LAMBDA_TASK_ROOT", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("AWS_LAMBDA_RUNTIME_API")
            && !stderr.contains("panicked"),
        "{stderr}"
    );

    let mut child = spawn(dir.path(), port, &[]);
    let log = || std::fs::read_to_string(dir.path().join("lambda.log")).unwrap_or_default();

    // A Function URL (payload 2.0) HTTP event -> the wasi:http handler.
    push(
        "http-v2",
        far(),
        serde_json::json!({
            "version": "2.0", "rawPath": "/echo", "rawQueryString": "",
            "headers": {"content-type": "text/plain"},
            "requestContext": {"http": {"method": "POST", "path": "/echo"}, "domainName": "x.lambda-url.us-east-1.on.aws"},
            "body": "hello from a function url", "isBase64Encoded": false
        }),
    );
    let (kind, v, _) = result_of(&api, "http-v2", 60).await;
    assert_eq!(kind, "response", "{v}\n{}", log());
    assert_eq!(v["statusCode"], 200, "{v}");
    assert_eq!(v["body"], "hello from a function url", "{v}");
    // A REST API (payload 1.0) event.
    push(
        "http-v1",
        far(),
        serde_json::json!({"httpMethod": "GET", "path": "/env", "queryStringParameters": {"k": "NOPE"}, "requestContext": {}, "headers": {}, "body": null}),
    );
    let (kind, v, _) = result_of(&api, "http-v1", 20).await;
    assert_eq!(
        (kind.as_str(), &v["statusCode"]),
        ("response", &serde_json::json!(200)),
        "{v}"
    );
    assert!(v.get("multiValueHeaders").is_some(), "{v}");
    // Any other event -> the event handler (JSON in, JSON out).
    push("plain", far(), serde_json::json!({"order": 42}));
    let (kind, v, _) = result_of(&api, "plain", 20).await;
    assert_eq!(
        (kind.as_str(), v),
        ("response", serde_json::json!({"order": 42}))
    );
    // A function error -> /error with its type.
    push("fails", far(), serde_json::json!("error"));
    let (kind, v, t) = result_of(&api, "fails", 20).await;
    assert_eq!(
        (kind.as_str(), &v["errorType"]),
        ("error", &serde_json::json!("ChaosError")),
        "{v} (error-type header {t})"
    );
    // A deadline: an endless loop is stopped before Lambda's deadline and reported.
    let deadline = now_ms() + 1500;
    push("loops", deadline, serde_json::json!("loop"));
    let (kind, v, _) = result_of(&api, "loops", 20).await;
    let at = api.at.lock().unwrap()["loops"];
    println!(
        "timeout reported {} ms before the deadline: {v}",
        deadline as i64 - at as i64
    );
    assert_eq!(
        (kind.as_str(), &v["errorType"]),
        ("error", &serde_json::json!("Sandbox.Timedout")),
        "{v}"
    );
    // The guest is stopped 100 ms before the deadline; allow a loaded machine 150 ms
    // more to post the error.
    assert!(
        at <= deadline + 150,
        "reported {} ms after the deadline",
        at as i64 - deadline as i64
    );
    // Malformed events: an HTTP event with a bad method, and a body that is not JSON.
    push(
        "bad-http",
        far(),
        serde_json::json!({"httpMethod": "G E T", "path": "/", "requestContext": {}}),
    );
    let (kind, v, _) = result_of(&api, "bad-http", 20).await;
    assert_eq!(
        (kind.as_str(), &v["errorType"]),
        ("error", &serde_json::json!("Runtime.InvalidHttpEvent")),
        "{v}"
    );
    api.queue
        .lock()
        .unwrap()
        .push_back(("not-json".into(), far(), "{not json".into()));
    let (kind, v, _) = result_of(&api, "not-json", 20).await;
    assert_eq!(kind, "error", "{v}");
    // ... and it still serves.
    push("after", far(), serde_json::json!({"still": "alive"}));
    let (kind, v, _) = result_of(&api, "after", 20).await;
    assert_eq!(
        (kind.as_str(), v),
        ("response", serde_json::json!({"still": "alive"})),
        "{}",
        log()
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the runtime exited:\n{}",
        log()
    );
}

/// wasi:nn inside Lambda: `embed-minilm` with its model from the package's `models/`
/// directory, on ONNX Runtime.
#[tokio::test(flavor = "multi_thread")]
async fn the_lambda_runtime_serves_wasi_nn_models_from_the_package() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("function.wasm"),
        helixflow_e2e::guest("embed-minilm"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    let models = helixflow_e2e::required_env("HELIXFLOW_MODELS_DIR");
    std::fs::copy(
        format!("{models}/minilm-int8.onnx"),
        dir.path().join("models/all-minilm-l6-v2.onnx"),
    )
    .unwrap();
    let ort = helixflow_e2e::required_env("ORT_DYLIB_PATH");
    let api = Arc::new(Api::default());
    let port = serve(api.clone()).await;
    let mut child = spawn(
        dir.path(),
        port,
        &[
            ("ORT_DYLIB_PATH", ort.as_str()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ],
    );
    let log = || std::fs::read_to_string(dir.path().join("lambda.log")).unwrap_or_default();
    let push = |id: &str, ev: serde_json::Value| {
        api.queue
            .lock()
            .unwrap()
            .push_back((id.into(), now_ms() + 30_000, ev.to_string()))
    };
    push(
        "embed",
        serde_json::json!({"model": "all-minilm-l6-v2", "input": ["edge inference in a sandbox", "hello"]}),
    );
    let (kind, v, _) = result_of(&api, "embed", 60).await;
    assert_eq!(kind, "response", "{v}\n{}", log());
    let data = v["data"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(data.len(), 2, "{v}");
    let e: Vec<f64> = data[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    println!(
        "embedding of {} dims, norm {norm:.6}, usage {}",
        e.len(),
        v["usage"]
    );
    assert_eq!(e.len(), 384);
    assert!((norm - 1.0).abs() < 1e-3, "L2-normalised: {norm}");
    // A model the package does not have is the function's error, and the runtime goes on.
    push(
        "missing",
        serde_json::json!({"model": "no-such-model", "input": ["x"]}),
    );
    let (kind, v, _) = result_of(&api, "missing", 20).await;
    assert_eq!(kind, "error", "{v}");
    println!("missing model -> {v}");
    push(
        "again",
        serde_json::json!({"model": "all-minilm-l6-v2", "input": ["again"]}),
    );
    assert_eq!(result_of(&api, "again", 20).await.0, "response");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the runtime exited:\n{}",
        log()
    );
}
