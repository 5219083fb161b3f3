//! Usage metering: every invocation is counted per function, trigger and caller, the
//! totals reach the metadata store on the flush interval (a kill -9 after a flush loses
//! nothing), the query validates its parameters, and tenants read only their own usage.

use helixflow_e2e::{Api, Http, Node};
use serde_json::{Value, json};
use std::time::Duration;

const CONFIG: &str = "[usage]\nflush_interval_ms = 200\n";

async fn key(api: &Api<'_>, tenant: &str, role: &str) -> (String, String) {
    api.create_key(tenant, role).await
}

/// The series of `usage` whose group has these values.
fn series<'a>(usage: &'a Value, group: &[(&str, &str)]) -> Option<&'a Value> {
    usage["series"]
        .as_array()?
        .iter()
        .find(|s| group.iter().all(|(k, v)| s["group"][*k] == *v))
}

/// The usage at `query` once its series count `total` requests (or after 5 s, as it is).
async fn settled(api: &Api<'_>, query: &str, total: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = api.http.get(&api.url(query)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let n: u64 = v["series"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["total"]["requests"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        if n >= total || std::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn invocations_are_metered_by_function_trigger_and_key_and_survive_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let (invoker, prefix) = key(&api, "acme", "invoker").await;
    let as_key = Http::with_token(Some(&invoker));
    for _ in 0..5 {
        let r = as_key.get(&api.url("/acme/hello/")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let payload = br#"{"n":1}"#;
    for _ in 0..3 {
        let r = as_key
            .post(&api.url("/invoke/acme/echo"), &payload[..])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    for _ in 0..2 {
        let r = api
            .http
            .post(&api.url("/invoke/acme/echo"), &payload[..])
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let query = "/api/v1/tenants/acme/usage?group_by=function,trigger,key&metrics=requests,errors,gb_seconds,bytes_in,latency_p50,latency_p99";
    let check = |usage: &Value, when: &str| {
        println!("usage {when}: {usage}");
        let k = format!("key:{prefix}");
        let hello = series(
            usage,
            &[("function", "hello"), ("trigger", "http"), ("key", &k)],
        )
        .unwrap_or_else(|| panic!("{when}: no hello/http/{k} series in {usage}"));
        assert_eq!(hello["total"]["requests"], 5, "{when}");
        assert_eq!(hello["total"]["errors"], 0, "{when}");
        assert!(
            hello["total"]["gb_seconds"].as_f64().unwrap() > 0.0,
            "{when}"
        );
        assert!(
            hello["total"]["latency_p50"].as_f64().unwrap() > 0.0,
            "{when}"
        );
        let echo = series(
            usage,
            &[("function", "echo"), ("trigger", "invoke"), ("key", &k)],
        )
        .unwrap_or_else(|| panic!("{when}: no echo/invoke/{k} series"));
        assert_eq!(echo["total"]["requests"], 3, "{when}");
        assert_eq!(
            echo["total"]["bytes_in"],
            3 * payload.len() as u64,
            "{when}"
        );
        let admin = series(usage, &[("function", "echo"), ("key", "platform-admin")])
            .unwrap_or_else(|| panic!("{when}: no echo/platform-admin series"));
        assert_eq!(admin["total"]["requests"], 2, "{when}");
        let all: u64 = usage["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["total"]["requests"].as_u64().unwrap())
            .sum();
        assert_eq!(all, 10, "{when}: every invocation once, nothing else");
    };
    // An HTTP invocation is recorded when its guest is done, which can be just after the
    // client has its response: wait (briefly) for all ten.
    let v = settled(&api, query, 10).await;
    check(&v, "live (this node's memory)");

    // Past a flush interval the totals are in the store: kill -9 loses none of them.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    node.kill9();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    let r = api.http.get(&api.url(query)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    check(&r.json(), "after kill -9 and a restart (the store)");

    // The restarted node meters on without overwriting what its predecessor wrote for
    // the same minute (each process writes its own rows), now and after its next flush.
    let as_key = Http::with_token(Some(&invoker));
    for _ in 0..2 {
        assert_eq!(as_key.get(&api.url("/acme/hello/")).await.status, 200);
    }
    for when in ["right after", "after the next flush"] {
        let v = settled(&api, query, 12).await;
        let k = format!("key:{prefix}");
        let hello = series(
            &v,
            &[("function", "hello"), ("trigger", "http"), ("key", &k)],
        )
        .unwrap();
        assert_eq!(
            hello["total"]["requests"], 7,
            "{when}: 5 before the restart + 2 after: {v}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    // Hourly points of the same data add up to the same totals.
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/usage?step=1h&group_by=function&metrics=requests"))
        .await;
    let v = r.json();
    let hello = series(&v, &[("function", "hello")]).unwrap();
    let points: u64 = hello["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(points, 7, "{v}");
    assert_eq!(v["step"], "1h");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_queries_are_validated_and_scoped_to_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("globex").await;
    for (q, code) in [
        ("metrics=requests,vibes", "invalid_metric"),
        ("group_by=planet", "invalid_dimension"),
        (
            "from=2026-12-01T10:00:00Z&to=2026-12-01T09:00:00Z",
            "invalid_range",
        ),
        (
            "from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z&step=1m",
            "step_too_fine",
        ),
        ("step=5s", "invalid_step"),
        ("from=yesterday", "invalid_time"),
    ] {
        let r = api
            .http
            .get(&api.url(&format!("/api/v1/tenants/acme/usage?{q}")))
            .await;
        println!("usage?{q} -> {} {}", r.status, r.text());
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.json()["error"]["code"], code, "{q}");
    }
    // A range far into the future is answered (no partition past now is read).
    let r = api
        .http
        .get(&api.url(
            "/api/v1/tenants/acme/usage?from=2026-01-01T00:00:00Z&to=2029-12-01T00:00:00Z&step=1d",
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["series"], json!([]));
    let (viewer, _) = key(&api, "acme", "viewer").await;
    let (other, _) = key(&api, "globex", "admin").await;
    let url = api.url("/api/v1/tenants/acme/usage");
    let r = Http::with_token(Some(&viewer)).get(&url).await;
    assert_eq!(
        r.status,
        200,
        "a viewer reads its tenant's usage: {}",
        r.text()
    );
    assert_eq!(r.json()["series"], json!([]), "nothing used yet");
    let r = Http::with_token(Some(&other)).get(&url).await;
    assert_eq!(r.status, 403, "another tenant's admin: {}", r.text());
    let r = Http::anonymous().get(&url).await;
    assert_eq!(r.status, 401);
    let r = api.http.get(&api.url("/api/v1/tenants/nosuch/usage")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn cost_is_usage_at_the_price_in_force_and_tenants_can_have_their_own_prices() {
    let dir = tempfile::tempdir().unwrap();
    // The node's table: 1.0 per request (1M per 1M requests).
    let config = format!("{CONFIG}\n[[usage.prices]]\nper_1m_requests = 1000000.0\n");
    let node = Node::start(dir.path(), Some(&config));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "").await;
    for _ in 0..4 {
        let r = api.http.get(&api.url("/acme/hello/")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let cost = |v: &Value| {
        series(v, &[("function", "hello")]).unwrap()["total"]["cost"]
            .as_f64()
            .unwrap()
    };
    let usage =
        "/api/v1/tenants/acme/usage?group_by=function&metrics=requests,cost,cost_per_1k_tokens";
    let v = settled(&api, usage, 4).await;
    println!("node prices: {v}");
    assert!((cost(&v) - 4.0).abs() < 1e-9, "{v}");
    assert_eq!(
        series(&v, &[("function", "hello")]).unwrap()["total"]["cost_per_1k_tokens"],
        Value::Null,
        "no tokens"
    );

    // A tenant's own table replaces the node's; an entry from the future changes nothing yet.
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 2)
        * 3600;
    let prices = json!({"prices": [
        {"per_1m_requests": 2_000_000.0},
        {"from": later, "per_1m_requests": 9_000_000.0},
    ]});
    let (viewer, _) = key(&api, "acme", "viewer").await;
    let (tenant_admin, _) = key(&api, "acme", "admin").await;
    let set = api.url("/api/v1/admin/tenants/acme/prices");
    let r = Http::with_token(Some(&tenant_admin))
        .put_json(&set, prices.clone())
        .await;
    assert_eq!(
        r.status,
        403,
        "only the platform admin sets prices: {}",
        r.text()
    );
    let r = api
        .http
        .put_json(&set, json!({"prices": [{"per_gb_second": -1.0}]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_price");
    // Prices change on whole hours (hourly roll-ups are priced at one price).
    let r = api
        .http
        .put_json(
            &set,
            json!({"prices": [{"from": later + 60, "per_1m_requests": 1.0}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "invalid_price");
    let r = api.http.put_json(&set, prices).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = Http::with_token(Some(&viewer))
        .get(&api.url("/api/v1/tenants/acme/prices"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["source"], "tenant");
    let v = Http::with_token(Some(&viewer))
        .get(&api.url(usage))
        .await
        .json();
    println!("tenant prices: {v}");
    assert!((cost(&v) - 8.0).abs() < 1e-9, "{v}");
    // Removing the tenant's table brings the node's back.
    let r = api.http.put_json(&set, json!({"prices": []})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["source"], "node");
    let v = api.http.get(&api.url(usage)).await.json();
    assert!((cost(&v) - 4.0).abs() < 1e-9, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_store_the_analytics_call_and_answer_its_series() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{CONFIG}\n[[usage.prices]]\nper_1m_requests = 1000000.0\n");
    let node = Node::start(dir.path(), Some(&config));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("globex").await;
    api.deploy("acme", "hello", "hello", "").await;
    for _ in 0..3 {
        assert_eq!(api.http.get(&api.url("/acme/hello/")).await.status, 200);
    }
    settled(&api, "/api/v1/tenants/acme/usage", 3).await;
    let (viewer, _) = key(&api, "acme", "viewer").await;
    let (developer, _) = key(&api, "acme", "developer").await;
    let (stranger, _) = key(&api, "globex", "admin").await;
    let base = api.url("/api/v1/tenants/acme/dashboards");
    // The body of `client.analytics.create_dashboard(...)`.
    let spec = json!({
        "name": "ops",
        "metrics": ["cost_per_token", "latency_by_region", "model_usage"],
        "dimensions": ["time", "user_segment", "geography"],
        "alerts": ["cost_threshold", "performance_degradation"],
    });
    let r = Http::with_token(Some(&viewer))
        .post_json(&base, spec.clone())
        .await;
    assert_eq!(
        r.status,
        403,
        "a viewer cannot create dashboards: {}",
        r.text()
    );
    for (bad, code) in [
        (json!({"metrics": ["vibes"]}), "invalid_metric"),
        (
            json!({"metrics": ["requests"], "dimensions": ["planet"]}),
            "invalid_dimension",
        ),
        (
            json!({"metrics": ["requests"], "alerts": ["panic"]}),
            "invalid_alert",
        ),
        (json!({"metrics": []}), "invalid_dashboard"),
    ] {
        let r = Http::with_token(Some(&developer))
            .post_json(&base, bad.clone())
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], code, "{bad}");
    }
    let r = Http::with_token(Some(&developer))
        .post_json(&base, spec)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let r = Http::with_token(Some(&viewer)).get(&base).await;
    assert_eq!(
        r.json()["dashboards"].as_array().unwrap().len(),
        1,
        "{}",
        r.text()
    );

    let data_url = format!("{base}/{id}/data?step=1m");
    let r = Http::with_token(Some(&viewer)).get(&data_url).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    println!("dashboard data: {v}");
    let panels = v["panels"].as_array().unwrap();
    assert_eq!(panels.len(), 3);
    let latency = &panels[1];
    assert_eq!(latency["name"], "latency_by_region");
    assert_eq!(latency["group_by"], json!(["location", "key"]));
    let s = &latency["series"][0];
    assert_eq!(s["group"]["location"], "local", "the node's location");
    assert_eq!(s["group"]["key"], "platform-admin");
    assert!(s["points"][0]["latency_p95"].as_f64().unwrap() > 0.0);
    let cost = &panels[0]["series"][0]["total"];
    assert!(
        (cost["cost"].as_f64().unwrap() - 3.0).abs() < 1e-9,
        "{cost}"
    );

    let r = Http::with_token(Some(&stranger)).get(&data_url).await;
    assert_eq!(r.status, 403, "another tenant: {}", r.text());
    let r = api
        .http
        .get(&api.url(&format!("/api/v1/tenants/globex/dashboards/{id}")))
        .await;
    assert_eq!(r.status, 404, "dashboards are per tenant: {}", r.text());
    let r = Http::with_token(Some(&developer))
        .request("DELETE", &format!("{base}/{id}"), &[], Vec::new())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(api.http.get(&format!("{base}/{id}")).await.status, 404);
}

/// With the roll-up job running (every 200 ms here), an hourly query over the last
/// hours reads roll-ups for the hours before the mark and minutes for the current one:
/// what was just used is there, counted once.
#[tokio::test(flavor = "multi_thread")]
async fn hourly_queries_count_the_current_hour_once_while_rollups_run() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        dir.path(),
        Some(&format!("{CONFIG}rollup_interval_ms = 200\n")),
    );
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "").await;
    for _ in 0..3 {
        let r = api.http.get(&api.url("/acme/hello/")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Several roll-up rounds.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let q = format!(
        "/api/v1/tenants/acme/usage?from={}&to={}&step=1h&group_by=function&metrics=requests",
        now - 3 * 3600,
        now + 60
    );
    let v = settled(&api, &q, 3).await;
    println!("{v}");
    let s = series(&v, &[("function", "hello")]).expect("a series for hello");
    assert_eq!(s["total"]["requests"], 3, "{v}");
    assert_eq!(v["step"], "1h");
}
