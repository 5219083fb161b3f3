//! Quotas: a tenant over its request rate or concurrency gets 429 + Retry-After; other
//! tenants do not notice.

use helixflow_e2e::{Api, Node};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn rate_and_concurrency_limits_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    let r = api
        .http
        .post_json(&api.url("/api/v1/tenants"), json!({"name": "capped", "limits": {"max_memory_mb": 128, "max_timeout_ms": 10000, "max_rps": 5}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    api.create_tenant("free").await;
    for t in ["capped", "free"] {
        api.deploy(t, "chaos", "chaos", "").await;
    }
    let burst = |tenant: &'static str| {
        let api = Api::new(&node);
        async move {
            let futs = (0..30).map(|_| {
                let url = api.url(&format!("/{tenant}/chaos/ok"));
                let http = &api.http;
                async move { http.get(&url).await }
            });
            futures::future::join_all(futs).await
        }
    };
    let capped = burst("capped").await;
    let limited: Vec<_> = capped.iter().filter(|r| r.status == 429).collect();
    let ok = capped.iter().filter(|r| r.status == 200).count();
    println!(
        "capped tenant (5 rps), 30 requests at once: {ok} ok, {} limited",
        limited.len()
    );
    assert!(
        (5..=10).contains(&ok),
        "the bucket holds 5 tokens (+5/s while the burst lasts): {ok}"
    );
    assert!(limited.iter().all(|r| {
        r.code() == "rate_limited"
            && r.header("retry-after")
                .is_some_and(|v| v.parse::<u32>().is_ok_and(|s| s >= 1))
    }));
    let free = burst("free").await;
    assert!(
        free.iter().all(|r| r.status == 200),
        "the other tenant is not limited"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        api.http.get(&api.url("/capped/chaos/ok")).await.status,
        200,
        "tokens come back"
    );

    // Per-function concurrency: two at a time, no queueing.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/free/functions/chaos/config"),
            json!({"max_concurrency": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let futs = (0..6).map(|_| {
        let url = api.url("/free/chaos/sleep?ms=1500");
        let http = &api.http;
        async move { http.get(&url).await }
    });
    let res = futures::future::join_all(futs).await;
    let ok = res.iter().filter(|r| r.status == 200).count();
    let limited = res
        .iter()
        .filter(|r| r.status == 429 && r.code() == "concurrency_limited")
        .count();
    println!("max_concurrency 2, 6 concurrent 1.5 s calls: {ok} ran, {limited} limited");
    assert_eq!((ok, limited), (2, 4));
    // Events count too.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/free/functions/chaos/config"),
            json!({"max_concurrency": 0}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_config".to_string()));
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "security headers on API responses"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}
