//! Budgets: a monthly spend cap blocks new invocations (HelixFlow's 429
//! `budget_exceeded`, OpenAI's `insufficient_quota` on `/v1`, Lambda's
//! `TooManyRequestsException`), per tenant and per caller; a soft cap is noted in the
//! audit log; raising the cap lets calls through again. OpenAI-API rate limits answer
//! with OpenAI's `x-ratelimit-*` headers and `retry-after`, which the official Python
//! client's backoff follows; and two nodes sharing a store hold a rate fleet-wide.

use helixflow_e2e::{Api, Http, Node, required_env};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every request costs 1 (the price of a million requests is a million).
const CONFIG: &str = "[usage]\nflush_interval_ms = 200\nbudget_refresh_ms = 200\n\n[[usage.prices]]\nper_1m_requests = 1000000.0\n";

async fn put_budget(api: &Api<'_>, tenant: &str, budget: Value) -> Value {
    let r = api
        .http
        .put_json(
            &api.url(&format!("/api/v1/tenants/{tenant}/budget")),
            budget,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Calls `url` until it is refused (at most `max` times); the successes before it and
/// the refusal.
async fn until_refused(http: &Http, url: &str, max: usize) -> (usize, helixflow_e2e::Resp) {
    for i in 0..max {
        let r = http.get(url).await;
        if r.status != 200 {
            return (i, r);
        }
    }
    panic!("{url}: never refused in {max} calls");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spend_cap_blocks_new_invocations_until_it_is_raised() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("capped").await;
    api.deploy("capped", "hello", "hello", "").await;
    api.deploy("capped", "echo", "echo-event", "").await;
    let (dev, _) = api.create_key("capped", "developer").await;
    let (admin, _) = api.create_key("capped", "admin").await;
    let url = api.url("/capped/hello/");

    // Bad budgets are refused with a code; only the tenant's admins set one.
    for bad in [
        json!({"tenant": {"monthly_spend": -1}}),
        json!({"tenant": {"rpm": 0}}),
        json!({"callers": {"hfk_x": {"rpm": 1}}}),
        json!({"tenant": {"monthly_spend": 1}, "extra": 1}),
    ] {
        let r = api
            .http
            .put_json(&api.url("/api/v1/tenants/capped/budget"), bad.clone())
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(
            ["invalid_budget", "invalid_json"].contains(&r.code().as_str()),
            "{bad}: {}",
            r.text()
        );
    }
    let r = Http::with_token(Some(&dev))
        .put_json(
            &api.url("/api/v1/tenants/capped/budget"),
            json!({"tenant": {"monthly_spend": 100}}),
        )
        .await;
    assert_eq!(
        r.status,
        403,
        "a developer cannot set the budget: {}",
        r.text()
    );

    let as_admin = Http::with_token(Some(&admin));
    let r = as_admin
        .put_json(
            &api.url("/api/v1/tenants/capped/budget"),
            json!({"tenant": {"monthly_spend": 3.0, "soft_spend": 2.0}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let (served, refused) = until_refused(&api.http, &url, 20).await;
    println!("served {served} before the cap: {}", refused.text());
    // One node overshoots by at most the invocations running when the cap was reached
    // (here: one, recorded just after its answer).
    assert!(
        (3..=4).contains(&served),
        "{served} invocations at 1 each under a cap of 3"
    );
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.code(), "budget_exceeded", "{}", refused.text());
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after until the month ends");
    assert!(retry > 0 && retry <= 31 * 86_400, "retry-after {retry}");
    // Every door is shut: the Invoke route and the events queue too.
    let r = api
        .http
        .post(&api.url("/invoke/capped/echo"), &b"{}"[..])
        .await;
    assert_eq!(
        (r.status, r.code()),
        (429, "budget_exceeded".to_string()),
        "{}",
        r.text()
    );

    // The status: the month's spend, and the soft cap noted once in the audit log.
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/capped/budget"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let status = r.json();
    println!("budget: {status}");
    let spent = status["spend"]["tenant"].as_f64().unwrap();
    assert!((3.0..=4.0).contains(&spent), "{status}");
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/capped/audit?limit=100"))
        .await;
    let audit = r.json();
    let soft: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "budget.soft_limit")
        .collect();
    assert_eq!(soft.len(), 1, "the soft cap is noted once: {}", r.text());

    // Raised: calls go through again at once (the budget is re-read after a write).
    let r = as_admin
        .put_json(
            &api.url("/api/v1/tenants/capped/budget"),
            json!({"tenant": {"monthly_spend": 6.0}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (served, refused) = until_refused(&api.http, &url, 20).await;
    assert!(
        (1..=3).contains(&served),
        "{served} more under the raised cap"
    );
    assert_eq!(refused.code(), "budget_exceeded");
    // Removed: no cap at all.
    let r = as_admin
        .request(
            "DELETE",
            &api.url("/api/v1/tenants/capped/budget"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["budget"], Value::Null);
    let r = api.http.get(&url).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callers_cap_blocks_that_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("team").await;
    api.deploy("team", "hello", "hello", "").await;
    let (a, a_prefix) = api.create_key("team", "invoker").await;
    let (b, _) = api.create_key("team", "invoker").await;
    put_budget(
        &api,
        "team",
        json!({"callers": {format!("key:{a_prefix}"): {"monthly_spend": 2.0}}}),
    )
    .await;
    let url = api.url("/team/hello/");
    let (served, refused) = until_refused(&Http::with_token(Some(&a)), &url, 20).await;
    assert!((2..=3).contains(&served), "{served}");
    assert_eq!(refused.code(), "budget_exceeded", "{}", refused.text());
    assert!(
        refused.text().contains("caller"),
        "the message says whose budget: {}",
        refused.text()
    );
    let as_b = Http::with_token(Some(&b));
    for _ in 0..5 {
        let r = as_b.get(&url).await;
        assert_eq!(r.status, 200, "another key is not capped: {}", r.text());
    }
    let status = api
        .http
        .get(&api.url("/api/v1/tenants/team/budget"))
        .await
        .json();
    let spent_a = status["spend"]["callers"][format!("key:{a_prefix}")]
        .as_f64()
        .unwrap();
    assert!((2.0..=3.0).contains(&spent_a), "{status}");
    assert!(
        status["spend"]["tenant"].as_f64().unwrap() >= spent_a + 5.0,
        "{status}"
    );
}

/// An Event queued through the Lambda Invoke API runs as its caller: held to that
/// caller's cap when it is accepted, and metered under that caller's key.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_is_held_to_and_metered_as_the_caller_that_queued_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("evq").await;
    api.deploy("evq", "echo", "echo-event", "").await;
    let (a, a_prefix) = api.create_key("evq", "invoker").await;
    let (b, _) = api.create_key("evq", "invoker").await;
    put_budget(
        &api,
        "evq",
        json!({"callers": {format!("key:{a_prefix}"): {"monthly_spend": 2.0}}}),
    )
    .await;
    let url = api.url("/2015-03-31/functions/evq:function:echo/invocations");
    let queue = |http: Http| {
        let url = url.clone();
        async move {
            http.request(
                "POST",
                &url,
                &[("x-amz-invocation-type", "Event")],
                b"{}".to_vec(),
            )
            .await
        }
    };
    // Accepted while key A's spend (the events it queued, as they run) is under 2.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut accepted = 0;
    let refused = loop {
        let r = queue(Http::with_token(Some(&a))).await;
        if r.status != 202 {
            break r;
        }
        accepted += 1;
        assert!(
            Instant::now() < deadline,
            "key A was never held to its cap ({accepted} events accepted)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "key A queued {accepted} events before its cap: {}",
        refused.text()
    );
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(
        refused.header("x-amzn-errortype"),
        Some("TooManyRequestsException"),
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("caller"), "{}", refused.text());
    assert!(accepted >= 2, "{accepted}");
    // Key B is not capped.
    let r = queue(Http::with_token(Some(&b))).await;
    assert_eq!(r.status, 202, "another caller is not held: {}", r.text());
    // What key A queued is metered as key A.
    let q = "/api/v1/tenants/evq/usage?group_by=key,trigger&metrics=requests";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let u = api.http.get(&api.url(q)).await.json();
        let of_a = u["series"].as_array().unwrap().iter().find(|s| {
            s["group"]["key"] == format!("key:{a_prefix}") && s["group"]["trigger"] == "async"
        });
        if let Some(s) = of_a.filter(|s| s["total"]["requests"].as_u64() >= Some(2)) {
            println!("key A's events metered: {s}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "key A's events not metered as key A: {u}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deploys the MiniLM embeddings model (served at `/v1/embeddings`) in `tenant`.
async fn serve_embeddings(api: &Api<'_>, tenant: &str) {
    api.deploy(tenant, "embed-minilm", "embed-minilm", "").await;
    let r = crate::nn::push(
        api,
        tenant,
        "all-minilm-l6-v2",
        "minilm-int8.onnx",
        json!({"serve": {"kind": "embeddings", "function": "embed-minilm"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn embed(http: &Http, api: &Api<'_>, input: &str) -> helixflow_e2e::Resp {
    http.post_json(
        &api.url("/v1/embeddings"),
        json!({"model": "all-minilm-l6-v2", "input": input}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_rate_limits_use_openai_headers_and_the_official_client_backs_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("rl").await;
    serve_embeddings(&api, "rl").await;
    let (key, prefix) = api.create_key("rl", "invoker").await;
    let http = Http::with_token(Some(&key));
    // 30 requests a minute (one every 2 s) for this key; tokens for the tenant.
    put_budget(
        &api,
        "rl",
        json!({"tenant": {"tpm": 100000}, "callers": {format!("key:{prefix}"): {"rpm": 30}}}),
    )
    .await;
    let mut remaining = Vec::new();
    let refused = loop {
        let r = embed(&http, &api, "hello world").await;
        if r.status != 200 {
            break r;
        }
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("30"));
        remaining.push(
            r.header("x-ratelimit-remaining-requests")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap(),
        );
        assert!(r.header("x-ratelimit-reset-requests").is_some());
        assert!(
            remaining.len() <= 31,
            "never refused: remaining {remaining:?}"
        );
    };
    println!("remaining-requests: {remaining:?}; then {}", refused.text());
    assert!(
        remaining.len() >= 30,
        "the full minute's burst: {remaining:?}"
    );
    assert!(
        remaining.windows(2).all(|w| w[1] <= w[0] + 1),
        "remaining counts down: {remaining:?}"
    );
    assert_eq!(refused.status, 429, "{}", refused.text());
    let err = &refused.json()["error"];
    assert_eq!(err["code"], "rate_limit_exceeded", "{err}");
    assert_eq!(err["type"], "requests", "{err}");
    assert_eq!(refused.header("x-ratelimit-remaining-requests"), Some("0"));
    let retry: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    // The tenant's token limit has its headers too (the key's limits are shown first,
    // the tokens trio comes from whichever scope limits tokens: here none of the key's).
    // Another key of the tenant is not held to this key's rpm.
    let (other, _) = api.create_key("rl", "invoker").await;
    let r = embed(&Http::with_token(Some(&other)), &api, "hello").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("100000"));
    assert!(r.header("x-ratelimit-limit-requests").is_none());

    // The official client, unmodified, at its default retries: it reads retry-after,
    // waits, and every call succeeds, slower than the limit allows at once.
    let script = r#"
import sys, time, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
t = time.time()
for i in range(3):
    r = client.embeddings.with_raw_response.create(model="all-minilm-l6-v2", input="hello")
    print("call", i, "remaining", r.headers.get("x-ratelimit-remaining-requests"), "after", round(time.time() - t, 2))
    assert len(r.parse().data) == 1
print("elapsed", time.time() - t)
"#;
    let t = Instant::now();
    let out = tokio::process::Command::new(required_env("HELIXFLOW_NN_PYTHON"))
        .arg("-c")
        .arg(script)
        .arg(&node.url)
        .arg(&key)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the client's retries succeeded");
    // Three calls at one per 2 s need ~4 s after the burst was spent.
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "the client waited for the limit: {:?}",
        t.elapsed()
    );
    let metrics = api.http.get(&api.url("/metrics")).await.text();
    let refusals: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("helixflow_api_requests_total")
                && l.contains("plane=\"openai\"")
                && l.contains("status=\"429\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        refusals >= 2.0,
        "the client was refused, then backed off: {refusals} 429s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_budget_is_insufficient_quota_on_v1() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("oq").await;
    serve_embeddings(&api, "oq").await;
    let (key, _) = api.create_key("oq", "invoker").await;
    put_budget(&api, "oq", json!({"tenant": {"monthly_spend": 2.0}})).await;
    let http = Http::with_token(Some(&key));
    let mut served = 0;
    let refused = loop {
        let r = embed(&http, &api, "hello").await;
        if r.status != 200 {
            break r;
        }
        served += 1;
        assert!(served <= 4, "never refused");
    };
    assert!((2..=3).contains(&served), "{served}");
    assert_eq!(refused.status, 429, "{}", refused.text());
    let err = &refused.json()["error"];
    assert_eq!(err["code"], "insufficient_quota", "{err}");
    assert_eq!(err["type"], "insufficient_quota", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("You exceeded your current quota"),
        "{err}"
    );
}

/// Two nodes sharing one store: requests through one drain the other's bucket once its
/// usage is flushed and read (the stated tolerance: flush interval + refresh interval).
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_hold_a_rate_limit_fleet_wide() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = crate::fleet::two_nodes_on_one_store(dir.path(), CONFIG).await;
    let api_a = Api::new(&a);
    let api_b = Api::new(&b);
    api_a.create_tenant("fw").await;
    serve_embeddings(&api_a, "fw").await;
    let (key, prefix) = api_a.create_key("fw", "invoker").await;
    put_budget(
        &api_a,
        "fw",
        json!({"callers": {format!("key:{prefix}"): {"rpm": 20}}}),
    )
    .await;
    let http = Http::with_token(Some(&key));
    // 15 through node A, then a pause longer than flush + refresh.
    for _ in 0..15 {
        let r = embed(&http, &api_a, "hi").await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Node B knows of them: far fewer than 20 are left there.
    let mut through_b = 0;
    loop {
        let r = embed(&http, &api_b, "hi").await;
        if r.status == 429 {
            assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        through_b += 1;
        assert!(through_b <= 20, "node B never refused");
    }
    println!("node B served {through_b} after node A served 15 of 20/min");
    assert!(
        through_b <= 8,
        "node B served {through_b}: it did not count node A's 15"
    );

    // A limit raised through node A holds on node B too, once B re-reads the budget:
    // B's buckets follow the new limit (not just a refill of the old one).
    put_budget(
        &api_a,
        "fw",
        json!({"callers": {format!("key:{prefix}"): {"rpm": 600}}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = embed(&http, &api_b, "hi").await;
        if r.status == 200 && r.header("x-ratelimit-limit-requests") == Some("600") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "node B still holds the old limit: {} {:?}",
            r.status,
            r.header("x-ratelimit-limit-requests")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let left: u64 = r
        .header("x-ratelimit-remaining-requests")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        left >= 500,
        "the raised limit leaves room on node B: {left} of 600 remaining"
    );
}
