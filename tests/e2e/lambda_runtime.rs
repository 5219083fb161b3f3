//! `helixflow lambda` as a real `lambda_runtime` binary against a Runtime API server on
//! loopback that follows AWS's documented protocol (next / response / error), for what
//! a real Lambda cannot be made to send. Everything else (HTTP and plain events, sync
//! and Event, function errors, the deadline, memory, malformed HTTP events, wasi:nn
//! from the package) runs in ministack's Lambda from a `helixflow package --lambda` zip:
//! tests/e2e/lambda_package.rs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Api {
    queue: Mutex<VecDeque<(String, u64, String)>>,
    /// request id -> ("response" | "error", body, error-type header)
    results: Mutex<HashMap<String, (String, String, String)>>,
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

/// Faults ministack's Lambda cannot produce: started without the Lambda environment;
/// an event that is not JSON (ministack, like AWS, refuses or rewrites such payloads
/// before a runtime sees them); an event whose deadline passed before it was handed
/// out (ministack's deadline is always the function's Timeout from now). The runtime
/// answers each with an error and goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn helixflow_lambda_survives_what_no_lambda_service_sends() {
    let dir = tempfile::tempdir().unwrap();
    let component = dir.path().join("function.wasm");
    std::fs::write(&component, helixflow_e2e::guest("chaos")).unwrap();
    let api = Arc::new(Api::default());
    let port = serve(api.clone()).await;
    let far = || now_ms() + 30_000;
    let push = |id: &str, deadline: u64, ev: &str| {
        api.queue
            .lock()
            .unwrap()
            .push_back((id.into(), deadline, ev.to_string()))
    };

    // Without the Lambda environment it refuses clearly instead of panicking.
    let out = std::process::Command::new(helixflow_e2e::helixflow_bin())
        .arg("lambda")
        .env("LAMBDA_TASK_ROOT", dir.path())
        .env_remove("AWS_LAMBDA_RUNTIME_API")
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
    push("first", far(), r#"{"order": 42}"#);
    let (kind, v, _) = result_of(&api, "first", 60).await;
    assert_eq!(
        (kind.as_str(), v),
        ("response", serde_json::json!({"order": 42})),
        "{}",
        log()
    );
    // A body that is not JSON.
    push("not-json", far(), "{not json");
    let (kind, v, _) = result_of(&api, "not-json", 20).await;
    assert_eq!(kind, "error", "{v}");
    // A deadline already past: refused without running the guest.
    push("late", now_ms() - 1_000, r#""print late guest ran""#);
    let (kind, v, _) = result_of(&api, "late", 20).await;
    assert_eq!(
        (kind.as_str(), &v["errorType"]),
        ("error", &serde_json::json!("Sandbox.Timedout")),
        "{v}"
    );
    assert!(!log().contains("late guest ran"), "{}", log());
    // ... and it still serves.
    push("after", far(), r#"{"still": "alive"}"#);
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
