use helixflow_e2e::{Api, Node};
use std::collections::HashSet;

#[tokio::test(flavor = "multi_thread")]
async fn http_trigger_passes_method_path_query_headers_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    assert_eq!(api.deploy("acme", "hello", "hello", "?alias=live").await, 1);

    let r = api
        .http
        .get(&api.url("/acme/hello/some/path?name=Ada&x=1"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Hello, Ada! (GET /some/path)\n");
    assert_eq!(
        r.header("x-helixflow-example"),
        Some("hello"),
        "guest headers pass through"
    );
    assert_eq!(r.header("x-helixflow-version"), Some("1"));
    assert_eq!(r.header("x-helixflow-location"), Some("local"));
    assert!(
        r.header("x-helixflow-request-id")
            .is_some_and(|id| id.len() == 32)
    );

    // POST with a body through the chaos guest's echo: 1 MiB round-trips byte for byte.
    api.deploy("acme", "chaos", "chaos", "").await;
    let body: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let r = api
        .http
        .request(
            "POST",
            &api.url("/acme/chaos/echo"),
            &[("content-type", "application/octet-stream")],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body.as_ref() == body.as_slice(), "echoed body differs");

    // HTTP/2 (h2c) reaches the same function.
    let h2 = helixflow_e2e::Http::new_h2();
    let r = h2.get(&api.url("/acme/hello/over-h2?name=H2")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Hello, H2! (GET /over-h2)\n")
    );

    // A plain wasi:http component built without the HelixFlow SDK runs unmodified.
    api.deploy("acme", "raw", "raw-http", "").await;
    let r = api.http.get(&api.url("/acme/raw/a/b?c=d")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "raw hello /a/b?c=d\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn event_invoke_returns_output_handled_errors_and_wrong_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    api.deploy("acme", "hello", "hello", "").await;

    let r = api
        .http
        .post(&api.url("/invoke/acme/echo"), r#"{"k":"v"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["echo"], r#"{"k":"v"}"#);
    assert_eq!(v["function"], "echo");
    assert_eq!(v["version"], 1);
    assert_eq!(
        v["memory_limit_mb"], 128,
        "the context carries the effective memory limit"
    );
    assert_eq!(
        v["request_id"].as_str(),
        r.header("x-helixflow-request-id"),
        "the guest sees the same request id"
    );

    let r = api.http.post(&api.url("/invoke/acme/echo"), "fail").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "function_error");
    assert_eq!(r.json()["error"]["error_type"], "RequestedFailure");

    let r = api.http.post(&api.url("/invoke/acme/hello"), "x").await;
    assert_eq!((r.status, r.code().as_str()), (400, "wrong_trigger"));
    let r = api.http.get(&api.url("/acme/echo/")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "wrong_trigger"));
    let r = api.http.get(&api.url("/invoke/acme/echo")).await;
    assert_eq!(r.status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_invocations_across_functions_are_correct_and_uncrossed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("beta").await;
    api.deploy("acme", "hello", "hello", "").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    api.deploy("beta", "echo", "echo-event", "").await;

    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let http = api.http.clone();
        let base = node.url.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => {
                    let r = http.get(&format!("{base}/acme/hello/p{i}?name=n{i}")).await;
                    assert_eq!(r.status, 200);
                    assert_eq!(r.text(), format!("Hello, n{i}! (GET /p{i})\n"));
                }
                1 => {
                    let r = http.get(&format!("{base}/acme/chaos/id?v=req{i}")).await;
                    assert_eq!(r.status, 200);
                    assert!(
                        r.text().starts_with(&format!("req{i}:")),
                        "{i}: {}",
                        r.text()
                    );
                }
                _ => {
                    let r = http
                        .post(&format!("{base}/invoke/beta/echo"), format!("event-{i}"))
                        .await;
                    assert_eq!(r.status, 200, "{}", r.text());
                    assert_eq!(r.json()["echo"], format!("event-{i}"));
                }
            }
            i
        }));
    }
    let mut done = HashSet::new();
    for t in tasks {
        done.insert(t.await.expect("task panicked"));
    }
    assert_eq!(done.len(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_capture_stdout_and_stderr_and_cap_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[limits]\nmax_log_kb = 1\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    assert_eq!(
        api.http.get(&api.url("/acme/chaos/log?n=3")).await.status,
        200
    );
    assert_eq!(
        api.http.get(&api.url("/acme/chaos/log?n=500")).await.status,
        200,
        "a guest is never failed for logging too much"
    );

    // Records are written when each invocation's report arrives: poll briefly.
    let mut logs = Vec::new();
    for _ in 0..100 {
        let r = api
            .http
            .get(&api.url("/api/v1/tenants/acme/functions/chaos/logs?limit=10"))
            .await;
        assert_eq!(r.status, 200);
        logs = r.json()["logs"].as_array().unwrap().clone();
        if logs.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(logs.len(), 2);
    // Records land when each guest finishes (after its response), so find them by content.
    let long = logs
        .iter()
        .find(|l| l["truncated"] == true)
        .expect("the 500-line invocation is truncated");
    assert!(long["stdout"].as_str().unwrap().len() <= 1024);
    assert!(
        long["stdout"]
            .as_str()
            .unwrap()
            .starts_with("chaos log line 0\n")
    );
    let short = logs
        .iter()
        .find(|l| l["truncated"] == false)
        .expect("the 3-line invocation is whole");
    assert_eq!(
        short["stdout"],
        "chaos log line 0\nchaos log line 1\nchaos log line 2\n"
    );
    assert_eq!(short["stderr"], "chaos stderr\n");
    assert_eq!(short["outcome"], "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_invocations_and_latency_by_tenant_and_function() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    for _ in 0..3 {
        assert_eq!(api.http.get(&api.url("/acme/hello/")).await.status, 200);
    }
    assert_eq!(api.http.get(&api.url("/acme/chaos/trap")).await.status, 500);
    // Metrics are recorded when the invocation's report arrives; poll briefly.
    let mut text = String::new();
    for _ in 0..50 {
        let r = api.http.get(&api.url("/metrics")).await;
        assert_eq!(r.status, 200);
        text = r.text();
        if text.contains(r#"outcome="function_trap""#)
            && text.contains(r#"function="hello",trigger="http",outcome="ok"} 3"#)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        text.contains(r#"helixflow_invocations_total{location="local",tenant="acme",function="hello",trigger="http",outcome="ok"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tenant="acme",function="chaos",trigger="http",outcome="function_trap"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"helixflow_invocation_duration_seconds_count{location="local",tenant="acme",function="hello",trigger="http"} 3"#), "{text}");
    assert!(text.contains("helixflow_deploys_total"), "{text}");

    let r = api.http.get(&api.url("/healthz")).await;
    assert_eq!(r.json()["status"], "ok");
}
