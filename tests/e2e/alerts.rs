//! Alerts: a loop over a slow function fires `performance_degradation` and fast calls
//! resolve it; a spend cap fires `cost_threshold`; notifications reach a webhook (signed
//! with the rule's secret, verified here with an HMAC of our own; a failing receiver is
//! retried) and a function (an Event invocation carrying the alert); bad rules are 400s
//! with a code and lose nothing; tenants cannot see or touch each other's rules.

use helixflow_e2e::{Api, Http, Node};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Loopback receivers allowed; usage flushed and rules evaluated often; quick retries.
const CONFIG: &str = "[sandbox]\nallow_private = [\"127.0.0.0/8\"]\n\
[usage]\nflush_interval_ms = 200\n\
[alerts]\nevaluation_interval_ms = 300\nwebhook_timeout_ms = 2000\nwebhook_max_attempts = 4\nwebhook_retry_initial_ms = 100\n";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    signature: String,
    timestamp: String,
    delivery_id: String,
    content_type: String,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on loopback: records every request; answers 500 to the first
/// `fail_first` of them, 200 after.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let failures = Arc::new(AtomicUsize::new(fail_first));
        let g = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (g, failures) = (g.clone(), failures.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (g, failures) = (g.clone(), failures.clone());
                            async move {
                                use http_body_util::BodyExt;
                                let h = |k: &str| {
                                    req.headers()
                                        .get(k)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_string()
                                };
                                let (signature, timestamp, delivery_id, content_type) = (
                                    h("x-helixflow-signature"),
                                    h("x-helixflow-timestamp"),
                                    h("x-helixflow-delivery"),
                                    h("content-type"),
                                );
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                let fail = failures
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok();
                                let status = if fail { 500 } else { 200 };
                                g.lock().unwrap().push(Delivery {
                                    signature,
                                    timestamp,
                                    delivery_id,
                                    content_type,
                                    body: body.to_vec(),
                                    status,
                                });
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                            b"noted",
                                        )))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/alerts"),
            got,
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// The requests for transitions with `status` (firing/resolved).
    fn with_status(&self, status: &str) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.json()["status"] == status)
            .collect()
    }
}

/// HMAC-SHA256 (RFC 2104) over SHA-256, written here independently of the node's.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let ih = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize().into()
}

/// What a receiver does: the signature is HMAC-SHA256 of `{timestamp}.{body}` under the
/// secret, and the timestamp is recent.
fn verifies(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Ok(ts) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(ts) > 300 {
        return false;
    }
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    let expected = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &msg))
    );
    // (A receiver compares in constant time; equality is enough for a test.)
    expected == signature
}

fn assert_signed(secret: &str, d: &Delivery) {
    assert!(
        verifies(secret, &d.timestamp, &d.body, &d.signature),
        "a delivery that does not verify: {d:?}"
    );
    assert_eq!(d.content_type, "application/json");
    let mut tampered = d.body.clone();
    tampered.push(b' ');
    assert!(
        !verifies(secret, &d.timestamp, &tampered, &d.signature),
        "a changed body must not verify"
    );
    let other_ts = (d.timestamp.parse::<u64>().unwrap() + 1).to_string();
    assert!(
        !verifies(secret, &other_ts, &d.body, &d.signature),
        "the timestamp is part of the signed material"
    );
    assert!(
        !verifies("whsec_wrong", &d.timestamp, &d.body, &d.signature),
        "another secret must not verify"
    );
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `secs`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rule(api: &Api<'_>, tenant: &str, id: &str) -> Value {
    let r = api
        .http
        .get(&api.url(&format!("/api/v1/tenants/{tenant}/alerts/{id}")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn history(api: &Api<'_>, tenant: &str, id: &str) -> Vec<Value> {
    let r = api
        .http
        .get(&api.url(&format!("/api/v1/tenants/{tenant}/alerts/{id}/history")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["transitions"].as_array().unwrap().clone()
}

async fn create(api: &Api<'_>, tenant: &str, body: Value) -> Value {
    let r = api
        .http
        .post_json(&api.url(&format!("/api/v1/tenants/{tenant}/alerts")), body)
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_performance_degradation_fires_on_a_slow_loop_and_resolves_when_fast() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "slow", "chaos", "").await;
    // The first two deliveries fail: the firing notification needs three attempts.
    let hook = Receiver::start(2).await;
    let created = create(
        &api,
        "acme",
        json!({
            "name": "slow p95",
            "kind": "performance_degradation",
            "metric": "latency_p95_ms",
            "threshold": 150,
            "window": "1m",
            "min_requests": 3,
            "filter": {"function": "slow"},
            "notify": {"webhook": hook.url},
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["webhook_secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{created}"
    );
    assert_eq!(created["state"]["status"], "ok");
    // The secret is shown once: never in a read, never stored in the clear.
    let got = rule(&api, "acme", &id).await;
    assert_eq!(got["kind"], "performance_degradation");
    assert_eq!(got["notify"]["webhook"], hook.url);
    assert!(!got.to_string().contains(&secret), "{got}");
    assert!(got.get("webhook_secret").is_none(), "{got}");
    let list = api
        .http
        .get(&api.url("/api/v1/tenants/acme/alerts"))
        .await
        .json();
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list["alerts"].as_array().unwrap().len(), 1);

    // A loop over the slow function (400 ms per call, threshold 150 ms) fires it.
    let http = Http::new();
    let started = Instant::now();
    let firing = loop {
        let r = http.get(&api.url("/acme/slow/sleep?ms=400")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let s = rule(&api, "acme", &id).await;
        if s["state"]["status"] == "firing" {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never fired: {s}"
        );
    };
    assert!(
        firing["state"]["value"].as_f64().unwrap() > 150.0,
        "{firing}"
    );
    assert!(firing["state"]["requests"].as_u64().unwrap() >= 3);

    // The webhook got it after two failed attempts, signed each time, same delivery id.
    let attempts = wait_for("the firing webhook (3 attempts)", 20, || async {
        let f = hook.with_status("firing");
        (f.iter().any(|d| d.status == 200)).then_some(f)
    })
    .await;
    assert_eq!(
        attempts.iter().map(|d| d.status).collect::<Vec<_>>(),
        vec![500, 500, 200],
        "retried after each failure"
    );
    for d in &attempts {
        assert_signed(&secret, d);
        assert_eq!(d.delivery_id, attempts[0].delivery_id);
    }
    let n = attempts[2].json();
    assert_eq!(n["type"], "helixflow.alert");
    assert_eq!(n["tenant"], "acme");
    assert_eq!(n["alert"]["id"], id.as_str());
    assert_eq!(n["alert"]["kind"], "performance_degradation");
    assert_eq!(n["alert"]["filter"]["function"], "slow");
    assert!(n["alert"].get("notify").is_none(), "{n}");
    assert!(n["value"].as_f64().unwrap() > 150.0, "{n}");
    assert_eq!(n["threshold"], 150.0);
    assert_eq!(n["id"], attempts[0].delivery_id.as_str());
    // The outcome is on the rule's state.
    let s = wait_for("the webhook outcome on the state", 10, || async {
        let s = rule(&api, "acme", &id).await;
        let ok = s["state"]["notifications"]
            .as_array()
            .is_some_and(|a| a.iter().any(|o| o["channel"] == "webhook"));
        ok.then_some(s)
    })
    .await;
    let o = &s["state"]["notifications"][0];
    assert_eq!(
        (o["delivered"].clone(), o["attempts"].clone()),
        (json!(true), json!(3)),
        "{s}"
    );
    let h = history(&api, "acme", &id).await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["status"], "firing");

    // Fast calls from now on: once the slow minute leaves the window, it resolves.
    let resolved = loop {
        let r = http.get(&api.url("/acme/slow/ok")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s = rule(&api, "acme", &id).await;
        if s["state"]["status"] == "ok" {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(200),
            "never resolved: {s}"
        );
    };
    println!("resolved: {resolved}");
    let d = wait_for("the resolved webhook", 20, || async {
        hook.with_status("resolved").into_iter().next()
    })
    .await;
    assert_eq!(d.status, 200, "the receiver has stopped failing");
    assert_signed(&secret, &d);
    let n = d.json();
    assert_eq!(n["alert"]["id"], id.as_str());
    assert!(n["value"].as_f64().unwrap() <= 150.0, "{n}");
    assert!(n["firing_since"].is_string(), "{n}");
    assert_ne!(d.delivery_id, attempts[0].delivery_id);
    let h = history(&api, "acme", &id).await;
    assert_eq!(
        h.iter().map(|t| t["status"].clone()).collect::<Vec<_>>(),
        vec![json!("resolved"), json!("firing")],
        "newest first"
    );
    // Exactly one notification per transition reached the receiver successfully.
    assert_eq!(
        hook.deliveries().iter().filter(|d| d.status == 200).count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_cost_threshold_fires_and_the_tenants_function_gets_the_alert_as_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "worker", "chaos", "").await;
    api.deploy("acme", "on-alert", "chaos", "").await;
    // The alert function's successful runs are recorded where the test can read them.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/acme/functions/on-alert/config"),
            json!({"async_invoke": {"on_success": {"object_prefix": "alerts"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // 0.10 per request.
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/admin/tenants/acme/prices"),
            json!({"prices": [{"per_1m_requests": 100000.0}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hook = Receiver::start(0).await;
    let created = create(
        &api,
        "acme",
        json!({
            "name": "spend cap",
            "kind": "cost_threshold",
            "threshold_usd": 0.25,
            "window": "1h",
            "filter": {"function": "worker"},
            "notify": {"webhook": hook.url, "function": "on-alert"},
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["webhook_secret"].as_str().unwrap().to_string();
    // Evaluated and under the cap before any spend.
    let s = wait_for("a first evaluation", 10, || async {
        let s = rule(&api, "acme", &id).await;
        s["state"]["evaluated_at"].is_string().then_some(s)
    })
    .await;
    assert_eq!(s["state"]["status"], "ok", "{s}");
    assert_eq!(s["state"]["value"], 0.0, "{s}");

    // Two calls (0.20) stay under the cap; the third (0.30) is over it.
    let http = Http::new();
    for _ in 0..2 {
        assert_eq!(http.get(&api.url("/acme/worker/ok")).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = rule(&api, "acme", &id).await;
    assert_eq!(s["state"]["status"], "ok", "0.20 is under 0.25: {s}");
    assert!(
        (s["state"]["value"].as_f64().unwrap() - 0.2).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(http.get(&api.url("/acme/worker/ok")).await.status, 200);
    let s = wait_for("cost_threshold to fire", 15, || async {
        let s = rule(&api, "acme", &id).await;
        (s["state"]["status"] == "firing").then_some(s)
    })
    .await;
    assert!(
        (s["state"]["value"].as_f64().unwrap() - 0.3).abs() < 1e-9,
        "{s}"
    );

    // The webhook, signed.
    let d = wait_for("the firing webhook", 15, || async {
        hook.with_status("firing").into_iter().next()
    })
    .await;
    assert_signed(&secret, &d);
    let n = d.json();
    assert_eq!(n["alert"]["kind"], "cost_threshold");
    assert_eq!(n["alert"]["threshold_usd"], 0.25);

    // The function: an Event invocation whose payload is the same alert.
    let done = dir
        .path()
        .join("artifacts/records/events/acme/alerts/on-alert");
    let record: Value = wait_for("the alert function's invocation record", 20, || {
        let done = done.clone();
        async move {
            let entry = std::fs::read_dir(&done).ok()?.flatten().next()?;
            serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
        }
    })
    .await;
    assert_eq!(record["requestContext"]["condition"], "Success", "{record}");
    let p = &record["requestPayload"];
    assert_eq!(p["type"], "helixflow.alert", "{record}");
    assert_eq!(p["status"], "firing");
    assert_eq!(p["tenant"], "acme");
    assert_eq!(p["alert"]["id"], id.as_str());
    assert_eq!(p["alert"]["kind"], "cost_threshold");
    assert_eq!(p["id"], n["id"], "one transition, one id on both channels");
    let h = history(&api, "acme", &id).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "firing");
    assert_eq!(h[0]["id"], n["id"]);
    let s = rule(&api, "acme", &id).await;
    let f = s["state"]["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["channel"] == "function")
        .cloned()
        .unwrap_or_else(|| panic!("no function outcome: {s}"));
    assert_eq!(f["delivered"], true, "{s}");

    // Deleting the rule removes its state and history.
    let r = api
        .http
        .request(
            "DELETE",
            &api.url(&format!("/api/v1/tenants/acme/alerts/{id}")),
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for path in [
        format!("/api/v1/tenants/acme/alerts/{id}"),
        format!("/api/v1/tenants/acme/alerts/{id}/history"),
    ] {
        let r = api.http.get(&api.url(&path)).await;
        assert_eq!((r.status, r.code().as_str()), (404, "not_found"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_bad_rules_are_400s_and_tenants_cannot_reach_each_others_rules() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(CONFIG));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("beta").await;
    api.deploy("acme", "f", "chaos", "").await;
    let good = json!({"name": "p95", "kind": "performance_degradation", "metric": "error_rate", "threshold": 0.1, "window": "5m"});
    let kept = create(&api, "acme", good.clone()).await;
    let id = kept["id"].as_str().unwrap().to_string();
    assert!(
        kept.get("webhook_secret").is_none(),
        "no webhook, no secret"
    );

    let url = api.url("/api/v1/tenants/acme/alerts");
    for (body, code) in [
        (
            json!({"kind": "cost_threshold", "window": "1h"}),
            "missing_threshold",
        ),
        (
            json!({"kind": "performance_degradation", "metric": "latency_p95_ms", "window": "1h"}),
            "missing_threshold",
        ),
        (
            json!({"kind": "budget_vibes", "threshold": 1, "window": "1h"}),
            "unknown_kind",
        ),
        (json!({"threshold": 1, "window": "1h"}), "missing_kind"),
        (
            json!({"kind": "performance_degradation", "metric": "latency_p42", "threshold": 1, "window": "1h"}),
            "unknown_metric",
        ),
        (
            json!({"kind": "performance_degradation", "threshold": 1, "window": "1h"}),
            "missing_metric",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "3w"}),
            "invalid_window",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": -5, "window": "1h"}),
            "invalid_threshold",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "colour": "red"}),
            "invalid_rule",
        ),
        (json!(["not", "an", "object"]), "invalid_rule"),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "notify": {"webhook": "ftp://example.com/x"}}),
            "invalid_webhook",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "notify": {"webhook": "http://8.8.8.8/x"}}),
            "invalid_webhook",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "notify": {"webhook": "https://user:pw@example.com/x"}}),
            "invalid_webhook",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "notify": {"webhook": "https://169.254.169.254/latest"}}),
            "webhook_not_allowed",
        ),
        (
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "notify": {"function": "nope"}}),
            "unknown_function",
        ),
    ] {
        let r = api.http.post_json(&url, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.code(), code, "{body}: {}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            r.text()
        );
    }
    let r = api.http.post(&url, "{not json").await;
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_json"));
    // A bad replacement leaves the stored rule as it was.
    let r = api
        .http
        .put_json(
            &api.url(&format!("/api/v1/tenants/acme/alerts/{id}")),
            json!({"kind": "performance_degradation", "metric": "error_rate", "window": "5m"}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "missing_threshold"));
    let list = api.http.get(&url).await.json();
    let alerts = list["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "nothing stored, nothing lost: {list}");
    assert_eq!(alerts[0]["id"], id.as_str());
    assert_eq!(alerts[0]["threshold"], 0.1);

    // Roles: viewers read, developers write.
    let (viewer, _) = api.create_key("acme", "viewer").await;
    let (developer, _) = api.create_key("acme", "developer").await;
    let as_viewer = Http::with_token(Some(&viewer));
    let as_dev = Http::with_token(Some(&developer));
    assert_eq!(as_viewer.get(&url).await.status, 200);
    assert_eq!(
        as_viewer
            .get(&api.url(&format!("/api/v1/tenants/acme/alerts/{id}/history")))
            .await
            .status,
        200
    );
    assert_eq!(as_viewer.post_json(&url, good.clone()).await.status, 403);
    let mut changed = good.clone();
    changed["threshold"] = json!(0.2);
    let rule_url = api.url(&format!("/api/v1/tenants/acme/alerts/{id}"));
    assert_eq!(
        as_viewer.put_json(&rule_url, changed.clone()).await.status,
        403
    );
    let r = as_dev.put_json(&rule_url, changed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["threshold"], 0.2);
    assert_eq!(r.json()["created_at"], kept["created_at"]);

    // Another tenant's credentials: 403 on acme's rules; acme's ids are 404 under beta.
    let (beta_admin, _) = api.create_key("beta", "admin").await;
    let as_beta = Http::with_token(Some(&beta_admin));
    assert_eq!(as_beta.get(&url).await.status, 403);
    assert_eq!(as_beta.get(&rule_url).await.status, 403);
    assert_eq!(as_beta.post_json(&url, good.clone()).await.status, 403);
    assert_eq!(
        as_beta.request("DELETE", &rule_url, &[], "").await.status,
        403
    );
    let beta_rule = api.url(&format!("/api/v1/tenants/beta/alerts/{id}"));
    for method in ["GET", "DELETE"] {
        let r = as_beta.request(method, &beta_rule, &[], "").await;
        assert_eq!(r.status, 404, "{method}: {}", r.text());
    }
    let r = as_beta.put_json(&beta_rule, good.clone()).await;
    assert_eq!(r.status, 404, "{}", r.text());
    let beta_list = as_beta
        .get(&api.url("/api/v1/tenants/beta/alerts"))
        .await
        .json();
    assert_eq!(beta_list["alerts"], json!([]));
    assert_eq!(rule(&api, "acme", &id).await["threshold"], 0.2, "untouched");
    // A rule in beta cannot notify acme's function.
    let r = as_beta
        .post_json(
            &api.url("/api/v1/tenants/beta/alerts"),
            json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1h", "notify": {"function": "f"}}),
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "unknown_function"));

    // At most 100 rules per tenant.
    for i in 1..100 {
        let r = as_dev.post_json(&url, good.clone()).await;
        assert_eq!(r.status, 201, "rule {i}: {}", r.text());
    }
    let r = as_dev.post_json(&url, good.clone()).await;
    assert_eq!((r.status, r.code().as_str()), (409, "too_many_alerts"));
    assert_eq!(
        api.http.get(&url).await.json()["alerts"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    // Unknown ids and routes.
    let r = api
        .http
        .get(&api.url("/api/v1/tenants/acme/alerts/0123456789abcdef0123456789abcdef"))
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    let r = api
        .http
        .get(&api.url(&format!("/api/v1/tenants/acme/alerts/{id}/nonsense")))
        .await;
    assert_eq!(r.status, 404);
}
