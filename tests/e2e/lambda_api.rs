//! The Lambda-compatible Invoke API with boto3 and the AWS CLI (tests/python/lambda_invoke.py),
//! and durable Event invocations: retries, dead letters, destinations, replay, kill -9.

use helixflow_e2e::{Api, Http, Node, required_env};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Creates an access key pair; returns (id, secret, account id).
pub async fn access_key(api: &Api<'_>, tenant: &str, role: &str) -> (String, String, String) {
    let r = api
        .http
        .post_json(
            &api.url(&format!("/api/v1/tenants/{tenant}/access-keys")),
            json!({"name": "test", "role": role}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["access_key_id"].as_str().unwrap().into(),
        v["secret_access_key"].as_str().unwrap().into(),
        v["account_id"].as_str().unwrap().into(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_and_the_aws_cli_invoke_functions_with_sigv4() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.create_tenant("other").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    api.deploy("acme", "echo", "echo-event", "").await;
    let r = api
        .http
        .put_json(
            &api.url("/api/v1/tenants/acme/functions/echo/aliases/live"),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    api.deploy("acme", "chaos", "chaos", "").await;
    api.deploy("other", "echo", "echo-event", "").await;
    let (akid, secret, account) = access_key(&api, "acme", "invoker").await;
    let (vkid, vsecret, _) = access_key(&api, "acme", "viewer").await;
    let (_, _, other_account) = access_key(&api, "other", "invoker").await;
    assert_ne!(account, other_account);
    // The secret is never shown again.
    let listed = api
        .http
        .get(&api.url("/api/v1/tenants/acme/access-keys"))
        .await;
    assert_eq!(listed.status, 200);
    assert!(
        !listed.text().contains(&secret) && listed.text().contains(&akid),
        "{}",
        listed.text()
    );

    let aws_venv_python = required_env("HELIXFLOW_AWS_PYTHON");
    let aws_cli = required_env("HELIXFLOW_AWS_CLI");
    let script = helixflow_e2e::workspace_root().join("tests/python/lambda_invoke.py");
    let mut cmd = std::process::Command::new(aws_venv_python);
    cmd.arg(script)
        .env("HELIXFLOW_URL", &node.url)
        .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
        .env("AWS_CLI", aws_cli)
        .env("ACME_AKID", akid)
        .env("ACME_SECRET", secret)
        .env("ACME_VIEWER_AKID", vkid)
        .env("ACME_VIEWER_SECRET", vsecret)
        .env("ACME_ACCOUNT", account)
        .env("OTHER_ACCOUNT", other_account)
        // No ambient AWS settings may leak in (the test command exports some).
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    helixflow_e2e::run_python_ok(cmd, &node).await;
    // Refusals went to the tenant's audit log.
    let audit = api
        .http
        .get(&api.url("/api/v1/tenants/acme/audit?limit=200"))
        .await
        .text();
    assert!(audit.contains("auth.denied lambda"), "{audit}");
}

/// Node config for tests whose functions call a loopback server ([`Counter`]): guests
/// reach non-public addresses only in ranges the node opts in.
pub const LOOPBACK_EGRESS: &str = "[sandbox]\nallow_private = [\"127.0.0.0/8\"]\n";

/// A loopback HTTP server that counts the paths (with query) it was asked for,
/// answering after `delay`.
pub struct Counter {
    pub port: u16,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Counter {
    pub async fn start(delay: std::time::Duration) -> Counter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let h = h.clone();
                            async move {
                                let key = req
                                    .uri()
                                    .path_and_query()
                                    .map(|p| p.as_str().to_string())
                                    .unwrap_or_default();
                                *h.lock().unwrap().entry(key).or_default() += 1;
                                tokio::time::sleep(delay).await;
                                Ok::<_, std::convert::Infallible>(http::Response::new(
                                    http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Counter { port, hits }
    }
    pub fn count(&self, key: &str) -> usize {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }
    pub fn total(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
    pub fn distinct(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

async fn event(
    http: &Http,
    node: &Node,
    tenant: &str,
    function: &str,
    payload: serde_json::Value,
) -> String {
    let r = http
        .request(
            "POST",
            &format!(
                "{}/2015-03-31/functions/{tenant}:function:{function}/invocations",
                node.url
            ),
            &[("x-amz-invocation-type", "Event")],
            serde_json::to_vec(&payload).unwrap(),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.header("x-amzn-requestid").unwrap().to_string()
}

async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_event_is_retried_then_dead_lettered_and_can_be_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "flaky", "chaos", "").await;
    api.deploy("acme", "sink", "chaos", "").await;
    let counter = Counter::start(std::time::Duration::ZERO).await;
    let cfg = json!({
        "timeout_ms": 2000,
        "allow_outbound": [format!("127.0.0.1:{}", counter.port)],
        "async_invoke": {
            "max_retries": 2, "retry_delay_ms": 200,
            "on_failure": {"object_prefix": "dead-letters", "function": "sink"},
            "on_success": {"object_prefix": "done"}
        }
    });
    let r = api
        .http
        .put_json(&api.url("/api/v1/tenants/acme/functions/flaky/config"), cfg)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Bad async settings are refused with a reason.
    for bad in [
        json!({"async_invoke": {"max_retries": 3}}),
        json!({"async_invoke": {"on_failure": {"object_prefix": "../x"}}}),
        json!({"schedules": [{"name": "a", "cron": "nope"}]}),
    ] {
        let r = api
            .http
            .put_json(
                &api.url("/api/v1/tenants/acme/functions/flaky/config"),
                bad.clone(),
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "invalid_config"),
            "{bad}: {}",
            r.text()
        );
    }

    let url = format!("http://127.0.0.1:{}/fail", counter.port);
    let http = Http::new();
    let started = std::time::Instant::now();
    let id = event(
        &http,
        &node,
        "acme",
        "flaky",
        json!(format!("fail-fetch {url}")),
    )
    .await;
    // Exactly 1 + 2 attempts, 200 ms then 400 ms apart, then the dead letter.
    let failed_url = format!("{}/api/v1/tenants/acme/events/{id}", node.url);
    let mut failed = json!(null);
    for _ in 0..200 {
        let r = http.get(&failed_url).await;
        if r.status == 200 && r.json()["status"] == "failed" {
            failed = r.json();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("failed event after {:?}: {failed}", started.elapsed());
    assert_eq!(failed["condition"], "RetriesExhausted", "{failed}");
    assert_eq!(failed["last_error"]["error_type"], "ChaosError");
    assert_eq!(counter.count("/fail"), 3, "1 attempt + 2 retries");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(600),
        "retries waited their backoff"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(counter.count("/fail"), 3, "no attempt after the last retry");

    // The dead letter in the object store holds the payload and the last error.
    let dlq = dir.path().join(format!(
        "artifacts/records/events/acme/dead-letters/flaky/{id}.json"
    ));
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&dlq).unwrap_or_else(|e| panic!("{}: {e}", dlq.display())),
    )
    .unwrap();
    println!("dead letter: {record}");
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestPayload"], json!(format!("fail-fetch {url}")));
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    assert_eq!(record["responsePayload"]["errorType"], "ChaosError");
    // ... and the failure destination function got the same record as its event.
    let mut sink_runs = 0;
    for _ in 0..200 {
        let logs = http
            .get(&format!(
                "{}/api/v1/tenants/acme/functions/sink/logs",
                node.url
            ))
            .await
            .json();
        sink_runs = logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["outcome"] == "ok" && l["trigger"] == "event")
            .count();
        if sink_runs > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sink_runs, 1,
        "the on_failure function ran once with the record"
    );

    // Listed as failed; replay runs it again (3 more attempts), once.
    let list = http
        .get(&format!(
            "{}/api/v1/tenants/acme/events?status=failed",
            node.url
        ))
        .await
        .json();
    assert_eq!(list["events"].as_array().unwrap().len(), 1, "{list}");
    let r = http
        .post(
            &format!("{}/api/v1/tenants/acme/events/{id}/replay", node.url),
            "",
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let again = r.json()["id"].as_str().unwrap().to_string();
    let r = http
        .post(
            &format!("{}/api/v1/tenants/acme/events/{id}/replay", node.url),
            "",
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_replayed"));
    wait_for("the replay's three attempts", 20, || {
        counter.count("/fail") == 6
    })
    .await;
    let mut replayed = json!(null);
    for _ in 0..100 {
        let r = http
            .get(&format!("{}/api/v1/tenants/acme/events/{again}", node.url))
            .await;
        if r.status == 200 && r.json()["status"] == "failed" {
            replayed = r.json();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(replayed["source"], format!("replay:{id}"), "{replayed}");

    // A succeeding event lands in the success destination.
    let ok_url = format!("http://127.0.0.1:{}/ok", counter.port);
    let id = event(
        &http,
        &node,
        "acme",
        "flaky",
        json!(format!("fetch {ok_url}")),
    )
    .await;
    let done = dir.path().join(format!(
        "artifacts/records/events/acme/done/flaky/{id}.json"
    ));
    wait_for("the success record", 10, || done.exists()).await;
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&done).unwrap()).unwrap();
    assert_eq!(record["requestContext"]["condition"], "Success");
    assert_eq!(counter.count("/ok"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_events_survive_kill_9_and_all_run() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Counter::start(std::time::Duration::from_millis(40)).await;
    let mut node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    {
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        api.deploy("acme", "worker", "chaos", "").await;
        let cfg = json!({"timeout_ms": 1000, "allow_outbound": [format!("127.0.0.1:{}", counter.port)], "async_invoke": {"max_retries": 2, "retry_delay_ms": 100}});
        let r = api
            .http
            .put_json(
                &api.url("/api/v1/tenants/acme/functions/worker/config"),
                cfg,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let http = Http::new();
    let mut accepted = Vec::new();
    for round in 0..3 {
        // Accept a burst, kill -9 while most of it is still queued or running.
        let mut ids = Vec::new();
        for i in 0..120 {
            let path = format!("/hit/{round}/{i}");
            let url = format!("http://127.0.0.1:{}{path}", counter.port);
            ids.push((
                event(
                    &http,
                    &node,
                    "acme",
                    "worker",
                    json!(format!("fetch {url}")),
                )
                .await,
                path,
            ));
        }
        let done_before_kill = ids.iter().filter(|(_, p)| counter.count(p) > 0).count();
        println!(
            "round {round}: 120 accepted, {done_before_kill} had run when the node was killed"
        );
        node.kill9();
        accepted.extend(ids);
        node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    }
    // Every accepted event runs (leases of the killed processes lapse after the
    // function timeout + 5 s, then the restarted node takes them over).
    let started = std::time::Instant::now();
    wait_for("every accepted event to run", 60, || {
        accepted.iter().all(|(_, p)| counter.count(p) > 0)
    })
    .await;
    let dups: usize = accepted.iter().map(|(_, p)| counter.count(p) - 1).sum();
    println!(
        "all {} accepted events ran ({} runs in total; {dups} duplicate runs, allowed by at-least-once) within {:?} of the last restart",
        accepted.len(),
        counter.total(),
        started.elapsed()
    );
    assert_eq!(counter.distinct(), accepted.len());
    // Nothing is left pending.
    let pending = http
        .get(&format!(
            "{}/api/v1/tenants/acme/events?status=pending",
            node.url
        ))
        .await
        .json();
    let mut left = pending["events"].as_array().unwrap().len();
    for _ in 0..100 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = http
            .get(&format!(
                "{}/api/v1/tenants/acme/events?status=pending",
                node.url
            ))
            .await
            .json()["events"]
            .as_array()
            .unwrap()
            .len();
    }
    assert_eq!(left, 0, "events left pending");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A queued event of `acme/{function}` version 1 whose payload makes chaos GET `url`, as a
/// node would have left it in the store (accepted at `accepted`, due at `due`, leased
/// until `lease_until` by a node that is gone).
fn left_in_queue(
    id: &str,
    function: &str,
    url: &str,
    accepted: u64,
    due: u64,
    lease_until: u64,
) -> helixflow_store::events::QueuedEvent {
    use base64::Engine as _;
    helixflow_store::events::QueuedEvent {
        id: id.to_string(),
        tenant: "acme".into(),
        function: function.into(),
        version: 1,
        payload_b64: base64::engine::general_purpose::STANDARD.encode(format!("\"fetch {url}\"")),
        client_context: None,
        accepted_at_ms: accepted,
        attempts: 1,
        failures: 0,
        timeout_ms: 1000,
        due_at_ms: due,
        lease_owner: "dead-node/0".into(),
        lease_until_ms: lease_until,
        last_error: None,
        source: "invoke".into(),
    }
}

/// The registry of a stopped node's embedded store.
fn offline_registry(dir: &std::path::Path) -> helixflow_store::registry::Registry {
    let store = std::sync::Arc::new(
        helixflow_store_redb::RedbMetadataStore::open(dir.join("metadata.redb")).unwrap(),
    );
    helixflow_store::registry::Registry::new(store)
}

/// An event older than the function's `max_event_age_s` when a worker gets to it (here:
/// left in the queue while every node was down) is not run: it fails as
/// `EventAgeExceeded` and goes to the failure destination.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_past_its_maximum_age_is_dead_lettered_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Counter::start(std::time::Duration::ZERO).await;
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    {
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        api.deploy("acme", "late", "chaos", "").await;
        let cfg = json!({"allow_outbound": [format!("127.0.0.1:{}", counter.port)], "async_invoke": {"max_event_age_s": 60, "on_failure": {"object_prefix": "expired"}}});
        assert_eq!(
            api.http
                .put_json(&api.url("/api/v1/tenants/acme/functions/late/config"), cfg)
                .await
                .status,
            200
        );
    }
    node.kill9();
    // While no node runs, an event accepted two minutes ago sits in the queue (written
    // straight into the node's embedded store, as a crashed node would have left it).
    let id = "01a00000-0000-7000-8000-00000000a9e0".to_string();
    {
        let reg = offline_registry(dir.path());
        let old = now_ms() - 120_000;
        let url = format!("http://127.0.0.1:{}/late", counter.port);
        reg.enqueue_event(&left_in_queue(&id, "late", &url, old, old, old + 20_000))
            .await
            .unwrap();
    }
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    let http = Http::new();
    let mut failed = json!(null);
    for _ in 0..200 {
        let r = http
            .get(&format!("{}/api/v1/tenants/acme/events/{id}", node.url))
            .await;
        if r.status == 200 && r.json()["status"] == "failed" {
            failed = r.json();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!("{failed}");
    assert_eq!(failed["condition"], "EventAgeExceeded", "{failed}");
    assert_eq!(counter.total(), 0, "the expired event never ran");
    let dlq = dir.path().join(format!(
        "artifacts/records/events/acme/expired/late/{id}.json"
    ));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&dlq).unwrap()).unwrap();
    assert_eq!(record["requestContext"]["condition"], "EventAgeExceeded");
}

/// The poller reaches a lapsed event even behind hundreds of delayed retries in the same
/// queue shard (it pages through each shard across polls).
#[tokio::test(flavor = "multi_thread")]
async fn a_lapsed_event_behind_many_delayed_retries_is_still_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Counter::start(std::time::Duration::ZERO).await;
    let node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    {
        let api = Api::new(&node);
        api.create_tenant("acme").await;
        api.deploy("acme", "w", "chaos", "").await;
        let cfg = json!({"allow_outbound": [format!("127.0.0.1:{}", counter.port)]});
        assert_eq!(
            api.http
                .put_json(&api.url("/api/v1/tenants/acme/functions/w/config"), cfg)
                .await
                .status,
            200
        );
    }
    node.kill9();
    let now = now_ms();
    let reg = offline_registry(dir.path());
    // 450 events of shard 0 whose retry is an hour away, then one that is due now.
    let ids: Vec<String> = (0u64..)
        .map(|n| format!("01a10000-0000-7000-8000-{n:012}"))
        .filter(|id| helixflow_store::events::shard_of(id) == 0)
        .take(451)
        .collect();
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", counter.port);
    for id in &ids[..450] {
        reg.enqueue_event(&left_in_queue(
            id,
            "w",
            &url("/delayed"),
            now,
            now + 3_600_000,
            0,
        ))
        .await
        .unwrap();
    }
    reg.enqueue_event(&left_in_queue(
        &ids[450],
        "w",
        &url("/due"),
        now,
        now - 1000,
        now - 1000,
    ))
    .await
    .unwrap();
    drop(reg);
    let _node = Node::start(dir.path(), Some(LOOPBACK_EGRESS));
    wait_for("the due event behind 450 delayed ones", 20, || {
        counter.count("/due") == 1
    })
    .await;
    assert_eq!(
        counter.count("/delayed"),
        0,
        "delayed retries wait for their time"
    );
}
