use helixflow_e2e::{Api, Node};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn trap_timeout_and_memory_limit_are_contained_with_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    let cfg = r#"{"timeout_ms":500,"memory_mb":32}"#;
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/acme/functions/chaos/versions"),
            &[("x-helixflow-config", cfg)],
            helixflow_e2e::guest("chaos"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    api.deploy("acme", "hello", "hello", "").await;

    let r = api.http.get(&api.url("/acme/chaos/trap")).await;
    assert_eq!((r.status, r.code().as_str()), (500, "function_trap"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("unreachable") && msg.contains("chaos: deliberate trap"),
        "{msg}"
    );
    assert!(
        !msg.contains("wasm backtrace"),
        "no backtrace noise for callers: {msg}"
    );

    let t = Instant::now();
    let r = api.http.get(&api.url("/acme/chaos/loop")).await;
    let took = t.elapsed();
    assert_eq!((r.status, r.code().as_str()), (504, "function_timeout"));
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "stopped near its 500 ms deadline: {took:?}"
    );

    let r = api.http.get(&api.url("/acme/chaos/grow")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "function_memory_limit"),
        "{}",
        r.text()
    );
    assert!(r.text().contains("32 MiB"));

    let r = api.http.get(&api.url("/acme/chaos/recurse")).await;
    println!("deep recursion -> {} {}", r.status, r.text());
    assert_eq!(
        (r.status, r.code().as_str()),
        (500, "function_stack_overflow"),
        "{}",
        r.text()
    );

    // Event trigger: same codes.
    let r = api.http.post(&api.url("/invoke/acme/chaos"), "loop").await;
    assert_eq!((r.status, r.code().as_str()), (504, "function_timeout"));
    let r = api.http.post(&api.url("/invoke/acme/chaos"), "grow").await;
    assert_eq!(r.code(), "function_memory_limit");
    let r = api.http.post(&api.url("/invoke/acme/chaos"), "trap").await;
    assert_eq!(r.code(), "function_trap");
    let r = api
        .http
        .post(&api.url("/invoke/acme/chaos"), "recurse")
        .await;
    assert_eq!(r.code(), "function_stack_overflow");

    // The host keeps serving.
    let r = api.http.get(&api.url("/acme/hello/")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn runaway_guests_do_not_starve_other_functions() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("evil").await;
    api.create_tenant("good").await;
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/evil/functions/chaos/versions"),
            &[(
                "x-helixflow-config",
                r#"{"timeout_ms":3000,"memory_mb":64}"#,
            )],
            helixflow_e2e::guest("chaos"),
        )
        .await;
    assert_eq!(r.status, 201);
    api.deploy("good", "hello", "hello", "").await;
    assert_eq!(api.http.get(&api.url("/good/hello/")).await.status, 200);

    // More spinning guests than this machine has cores, plus memory hogs.
    let mut hostile = Vec::new();
    for i in 0..6 {
        let http = api.http.clone();
        let url = api.url(if i % 3 == 2 {
            "/evil/chaos/grow"
        } else {
            "/evil/chaos/loop"
        });
        hostile.push(tokio::spawn(async move { http.get(&url).await }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let s = Instant::now();
        let r = api.http.get(&api.url("/good/hello/")).await;
        assert_eq!(r.status, 200, "victim request failed: {}", r.text());
        worst = worst.max(s.elapsed());
    }
    let victim_total = t.elapsed();
    println!(
        "victim: 40 requests in {victim_total:?}, worst {worst:?}, while 6 hostile guests ran"
    );
    assert!(
        victim_total < Duration::from_millis(2500),
        "victims finished before the hostile guests' 3 s deadline: {victim_total:?}"
    );
    for h in hostile {
        let r = h.await.unwrap();
        assert!(
            matches!(
                r.code().as_str(),
                "function_timeout" | "function_memory_limit"
            ),
            "{}",
            r.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_pool_exhaustion_is_a_503_with_retry_after_not_a_failure_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[runtime]\nmax_instances = 2\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let http = api.http.clone();
        let url = api.url("/acme/chaos/sleep?ms=400");
        tasks.push(tokio::spawn(async move { http.get(&url).await }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        let code = if r.status == 200 {
            String::new()
        } else {
            r.code()
        };
        match (r.status, code.as_str()) {
            (200, _) => ok += 1,
            (503, "capacity_exhausted") => {
                assert_eq!(r.header("retry-after"), Some("1"));
                busy += 1;
            }
            other => panic!("unexpected {other:?}: {}", r.text()),
        }
    }
    println!("6 concurrent sleeps on a 2-instance pool: {ok} served, {busy} refused with 503");
    assert!(ok >= 2 && busy >= 1, "ok={ok} busy={busy}");
    // Capacity comes back once the sleepers are done.
    assert_eq!(api.http.get(&api.url("/acme/chaos/ok")).await.status, 200);
}

/// Outbound HTTP: denied unless the function's config allows the host; allowed hosts
/// are reached for real. The target is on loopback, which guests may reach only because
/// this node opts it in (`[sandbox] allow_private`; see sec_egress.rs for the default).
#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_follows_the_functions_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        Some("[sandbox]\nallow_private = [\"127.0.0.0/8\"]\n"),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "chaos", "chaos", "").await;
    // The node's own public health endpoint is the outside world here.
    let authority = node.url.trim_start_matches("http://").to_string();
    let target = format!("http://{authority}/healthz");
    let fetch_url = api.url(&format!("/acme/chaos/fetch?url={target}"));
    let r = api.http.get(&fetch_url).await;
    println!("no allow-list        -> {} {}", r.status, r.text());
    assert_eq!(r.status, 502);
    assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
    let port = authority.rsplit(':').next().unwrap().to_string();
    for (allow, expect_ok) in [
        (vec!["example.com".to_string()], false),
        (
            vec![format!("127.0.0.1:{}", port.parse::<u32>().unwrap() + 1)],
            false,
        ),
        (vec!["*.0.0.1".to_string()], false),
        (vec![authority.clone()], true),
        (vec!["127.0.0.1".to_string()], true),
    ] {
        let r = api
            .http
            .put_json(
                &api.url("/api/v1/tenants/acme/functions/chaos/config"),
                json!({"allow_outbound": allow}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = api.http.get(&fetch_url).await;
        println!("allow {allow:?} -> {} {}", r.status, r.text().trim());
        if expect_ok {
            assert_eq!(r.status, 200, "{}", r.text());
            assert!(
                r.text().starts_with("200 ") && r.text().contains("\"status\":\"ok\""),
                "{}",
                r.text()
            );
        } else {
            assert_eq!(r.status, 502, "{}", r.text());
            assert!(r.text().contains("HttpRequestDenied"), "{}", r.text());
        }
    }
    for bad in ["http://x.com", "x.com/path", "*", "a*.b", ""] {
        let r = api
            .http
            .put_json(
                &api.url("/api/v1/tenants/acme/functions/chaos/config"),
                json!({"allow_outbound": [bad]}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_config".to_string()),
            "{bad:?}"
        );
    }
}

/// A guest streaming 1 GiB is cut off at the node's response limit; the node serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_one_gigabyte_response_is_cut_off_at_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some("[limits]\nmax_response_mb = 8\n"));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "raw", "raw-http", "").await;
    let t = Instant::now();
    let r = api
        .http
        .try_request("GET", &api.url("/acme/raw/stream?mb=1024"), Vec::new())
        .await;
    let took = t.elapsed();
    match &r {
        Ok(resp) => println!(
            "1 GiB attempt -> {} with {} bytes in {took:?}",
            resp.status,
            resp.body.len()
        ),
        Err(e) => println!("1 GiB attempt -> cut off ({e}) in {took:?}"),
    }
    assert!(
        r.as_ref().map_or(true, |resp| resp.body.len() <= 8 << 20),
        "more than the limit went out"
    );
    assert!(
        r.is_err(),
        "the client must see the response cut off, not a short 'complete' body"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    let ok = api.http.get(&api.url("/acme/raw/stream?mb=4")).await;
    assert_eq!(
        (ok.status, ok.body.len()),
        (200, 4 << 20),
        "under the limit streams whole"
    );
    assert_eq!(api.http.get(&api.url("/healthz")).await.status, 200);
}
