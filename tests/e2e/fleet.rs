//! Several locations sharing one state: DynamoDB (AWS's DynamoDB Local) for metadata and
//! S3 (ministack) for artifacts, both started by scripts/test.sh.

use helixflow_e2e::{Api, Http, Node, helixflow_bin, required_env, unique_tag};
use serde_json::json;
use std::time::{Duration, Instant};

fn shared_config(node: &str, table: &str, bucket: &str, prefix: &str) -> String {
    format!(
        "[node]\nid = \"{node}\"\n[state]\nmetadata = \"dynamodb://{table}\"\nartifacts = \"s3://{bucket}/{prefix}\"\nresolve_cache_ttl_ms = 500\n"
    )
}

/// Two nodes (`a`, `b`) sharing a fresh DynamoDB table and S3 prefix, each also given
/// `extra` (more TOML sections).
pub(crate) async fn two_nodes_on_one_store(root: &std::path::Path, extra: &str) -> (Node, Node) {
    required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let bucket = required_env("HELIXFLOW_TEST_S3_BUCKET");
    let tag = unique_tag(root);
    let table = format!("hf-e2e-{tag}");
    let prefix = format!("pair-{tag}");
    let init_cfg = root.join("init.toml");
    std::fs::write(&init_cfg, shared_config("init", &table, &bucket, &prefix)).unwrap();
    state_init(&init_cfg, &[]);
    let start = |n: &str| {
        Node::start(
            &root.join(n),
            Some(&format!(
                "{}\n{extra}",
                shared_config(n, &table, &bucket, &prefix)
            )),
        )
    };
    (start("a"), start("b"))
}

/// `helixflow state init --config FILE` (with extra environment), asserting success.
fn state_init(config_file: &std::path::Path, env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(helixflow_bin())
        .env("HELIXFLOW_TOKEN", helixflow_e2e::admin_key())
        .args(["state", "init", "--config"])
        .arg(config_file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "state init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_locations_share_state_see_alias_flips_and_survive_a_lost_node() {
    required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let bucket = required_env("HELIXFLOW_TEST_S3_BUCKET");
    let root = tempfile::tempdir().unwrap();
    let tag = unique_tag(root.path());
    let table = format!("hf-e2e-{tag}");
    let prefix = format!("fleet-{tag}");

    // `helixflow state init` creates the table the config names.
    let init_cfg = root.path().join("init.toml");
    std::fs::write(&init_cfg, shared_config("init", &table, &bucket, &prefix)).unwrap();
    assert!(state_init(&init_cfg, &[]).contains(&format!("table {table} is ready")));

    let names = ["fra", "iad", "sin"];
    let mut nodes: Vec<Option<Node>> = names
        .iter()
        .map(|n| {
            Some(Node::start(
                &root.path().join(n),
                Some(&shared_config(n, &table, &bucket, &prefix)),
            ))
        })
        .collect();
    let url = |i: usize, nodes: &Vec<Option<Node>>| nodes[i].as_ref().unwrap().url.clone();

    // Deploy through fra.
    {
        let fra = Api::new(nodes[0].as_ref().unwrap());
        fra.create_tenant("acme").await;
        assert_eq!(fra.deploy("acme", "f", "hello", "?alias=live").await, 1);
        assert_eq!(fra.deploy("acme", "f", "raw-http", "").await, 2);
    }
    // Invoke through all three; each answers as itself.
    let http = Http::new();
    for (i, name) in names.iter().enumerate() {
        let r = http.get(&format!("{}/acme/f/x", url(i, &nodes))).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert!(r.text().starts_with("Hello"), "{name} serves live = v1");
        assert_eq!(r.header("x-helixflow-location"), Some(*name));
    }

    // The fleet's roll call: any node lists all three (each process's heartbeat), and
    // knows which one it is.
    let listed = http
        .get(&format!("{}/api/v1/admin/nodes", url(1, &nodes)))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json()["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let locations: Vec<&str> = listed
        .iter()
        .filter_map(|n| n["location"].as_str())
        .collect();
    assert_eq!(locations, names, "{listed:?}");
    for n in &listed {
        assert_eq!(n["this_node"] == true, n["location"] == "iad", "{n}");
        assert_eq!(n["stale"], false, "{n}");
        assert!(
            n["instance"]
                .as_str()
                .is_some_and(|i| i.starts_with(n["location"].as_str().unwrap_or("?"))),
            "{n}"
        );
        assert!(n["version"].is_string() && n["providers"].is_array(), "{n}");
    }

    // Flip the alias through fra; measure how long until iad and sin serve v2.
    let flip = Instant::now();
    let r = http
        .put_json(
            &format!(
                "{}/api/v1/tenants/acme/functions/f/aliases/live",
                url(0, &nodes)
            ),
            json!({"version": 2}),
        )
        .await;
    assert_eq!(r.status, 200);
    for (i, name) in names.iter().enumerate().take(3).skip(1) {
        loop {
            let r = http.get(&format!("{}/acme/f/x", url(i, &nodes))).await;
            if r.text().starts_with("raw hello") {
                break;
            }
            assert!(
                flip.elapsed() < Duration::from_secs(5),
                "{} never saw the flip",
                name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let propagation = flip.elapsed();
    println!("alias flip made at fra served at iad and sin after {propagation:?} (target <= 2 s)");
    assert!(propagation <= Duration::from_secs(2), "{propagation:?}");

    // Lose fra: the others keep serving.
    nodes[0].take().unwrap().kill9();
    for (i, name) in names.iter().enumerate().take(3).skip(1) {
        for _ in 0..10 {
            let r = http.get(&format!("{}/acme/f/y", url(i, &nodes))).await;
            assert_eq!(r.status, 200, "{} after fra died: {}", name, r.text());
        }
        let m = http
            .get(&format!("{}/metrics", url(i, &nodes)))
            .await
            .text();
        assert!(
            m.contains(&format!("location=\"{}\"", name)),
            "metrics carry the location"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn store_outage_keeps_cached_functions_serving_fails_deploys_fast_and_recovers() {
    let ddb = required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let s3 = required_env("AWS_ENDPOINT_URL_S3");
    let bucket = required_env("HELIXFLOW_TEST_S3_BUCKET");
    let ddb_proxy = helixflow_e2e::CutProxy::start(ddb.trim_start_matches("http://")).await;
    let s3_proxy = helixflow_e2e::CutProxy::start(s3.trim_start_matches("http://")).await;
    let root = tempfile::tempdir().unwrap();
    let tag = unique_tag(root.path());
    let table = format!("hf-outage-{tag}");
    let config = shared_config("fra", &table, &bucket, &format!("outage-{tag}"))
        .replace("resolve_cache_ttl_ms = 500", "resolve_cache_ttl_ms = 100");
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", ddb_proxy.url()),
        ("AWS_ENDPOINT_URL_S3", s3_proxy.url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let cfg_path = root.path().join("init.toml");
    std::fs::write(&cfg_path, &config).unwrap();
    state_init(&cfg_path, &env);

    let node = Node::start_with_env(&root.path().join("fra"), Some(&config), &env);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    api.deploy("acme", "hello", "hello", "?alias=live").await;
    assert_eq!(api.http.get(&api.url("/acme/hello/")).await.status, 200);

    // Outage: both stores gone.
    ddb_proxy.cut();
    s3_proxy.cut();
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let r = api.http.get(&api.url("/acme/hello/during-outage")).await;
        assert_eq!(
            r.status,
            200,
            "a cached function keeps serving during the outage: {}",
            r.text()
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    let r = api
        .deploy_raw("acme", "hello", helixflow_e2e::guest("raw-http"), "")
        .await;
    let took = t.elapsed();
    println!(
        "outage: {served}/{served} requests served from cache; deploy refused in {took:?} with {}",
        r.status
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "store_unavailable"),
        "{}",
        r.text()
    );
    assert!(
        took < Duration::from_secs(15),
        "deploys fail fast: {took:?}"
    );

    // The stores return: everything resumes without restarting the node.
    ddb_proxy.restore().await;
    s3_proxy.restore().await;
    let mut deployed = false;
    for _ in 0..50 {
        let r = api
            .deploy_raw(
                "acme",
                "hello",
                helixflow_e2e::guest("raw-http"),
                "?alias=live",
            )
            .await;
        if r.status == 201 {
            deployed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(deployed, "deploys work again after the outage");
    let r = api.http.get(&api.url("/acme/hello/after")).await;
    assert_eq!((r.status, r.text().as_str()), (200, "raw hello /after\n"));
}

/// Waits until the node's heartbeat is stored (it lists itself in the fleet); the next
/// one is `HEARTBEAT_EVERY` (10 s) away.
async fn first_heartbeat(api: &Api<'_>) {
    let started = Instant::now();
    loop {
        let r = api.http.get(&api.url("/api/v1/admin/nodes")).await;
        let listed = r.status == 200
            && r.json()["nodes"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["this_node"] == true));
        if listed {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no heartbeat: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_with_backoff_up_to_the_configured_attempts() {
    use helixflow_e2e::{Throttle, ThrottleProxy};
    let ddb = required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let s3 = required_env("AWS_ENDPOINT_URL_S3");
    let bucket = required_env("HELIXFLOW_TEST_S3_BUCKET");
    let ddb_proxy = ThrottleProxy::start(&ddb, Throttle::DynamoDb).await;
    let s3_proxy = ThrottleProxy::start(&s3, Throttle::S3).await;
    let root = tempfile::tempdir().unwrap();
    let tag = unique_tag(root.path());
    let table = format!("hf-throttle-{tag}");
    let base = shared_config("fra", &table, &bucket, &format!("throttle-{tag}"));
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", ddb_proxy.url()),
        ("AWS_ENDPOINT_URL_S3", s3_proxy.url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cfg_path = root.path().join("init.toml");
    std::fs::write(&cfg_path, &base).unwrap();
    state_init(&cfg_path, &env);

    // 4 attempts: 3 throttled answers in a row are absorbed.
    let retrying = base.clone()
        + "retry_max_attempts = 4\nretry_initial_backoff_ms = 10\nretry_max_backoff_ms = 200\n";
    let node = Node::start_with_env(&root.path().join("a"), Some(&retrying), &env);
    let api = Api::new(&node);
    api.create_tenant("acme").await;
    ddb_proxy.fail_next(3);
    s3_proxy.fail_next(3);
    let r = api
        .deploy_raw("acme", "hello", helixflow_e2e::guest("hello"), "")
        .await;
    assert_eq!(r.status, 201, "throttling is retried: {}", r.text());
    println!(
        "DynamoDB: {} throttled, {} forwarded; S3: {} throttled, {} forwarded",
        ddb_proxy.throttled(),
        ddb_proxy.forwarded(),
        s3_proxy.throttled(),
        s3_proxy.forwarded()
    );
    assert_eq!((ddb_proxy.throttled(), s3_proxy.throttled()), (3, 3));
    assert_eq!(api.http.get(&api.url("/acme/hello/")).await.status, 200);
    node.kill9();

    // 1 attempt: no retries, so one throttled answer fails the call with a clear 503.
    let strict = base
        + "retry_max_attempts = 1\nretry_initial_backoff_ms = 10\nretry_max_backoff_ms = 200\n";
    let node = Node::start_with_env(&root.path().join("b"), Some(&strict), &env);
    let api = Api::new(&node);
    // The node's first heartbeat is a DynamoDB write of its own: armed before it landed,
    // the throttle could hit it instead of the request under test.
    first_heartbeat(&api).await;
    ddb_proxy.fail_next(1);
    let r = api
        .http
        .post_json(&api.url("/api/v1/tenants"), json!({"name": "beta"}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "store_unavailable"),
        "{}",
        r.text()
    );
    assert!(
        r.text().contains("ProvisionedThroughputExceeded"),
        "{}",
        r.text()
    );
    // Nothing half-done: the next attempt creates it.
    api.create_tenant("beta").await;
}

/// A schedule fires each tick exactly once across three nodes sharing DynamoDB, and
/// keeps firing when one of them is killed.
#[tokio::test(flavor = "multi_thread")]
async fn cron_ticks_fire_once_across_the_fleet() {
    required_env("AWS_ENDPOINT_URL_DYNAMODB");
    let bucket = required_env("HELIXFLOW_TEST_S3_BUCKET");
    let root = tempfile::tempdir().unwrap();
    let tag = unique_tag(root.path());
    let table = format!("hf-cron-{tag}");
    let prefix = format!("cron-{tag}");
    let init_cfg = root.path().join("init.toml");
    std::fs::write(&init_cfg, shared_config("init", &table, &bucket, &prefix)).unwrap();
    state_init(&init_cfg, &[]);
    let mut nodes: Vec<Option<Node>> = ["fra", "iad", "sin"]
        .iter()
        // The schedule calls a loopback counter: the nodes opt loopback in.
        .map(|n| {
            Some(Node::start(
                &root.path().join(n),
                Some(&format!(
                    "{}{}",
                    shared_config(n, &table, &bucket, &prefix),
                    crate::lambda_api::LOOPBACK_EGRESS
                )),
            ))
        })
        .collect();
    let counter = crate::lambda_api::Counter::start(Duration::ZERO).await;
    {
        let fra = Api::new(nodes[0].as_ref().unwrap());
        fra.create_tenant("acme").await;
        fra.deploy("acme", "ticker", "chaos", "").await;
        // A short timeout keeps the lease short: a tick the killed node had taken is
        // taken over ~6 s later.
        let cfg = json!({
            "timeout_ms": 1000,
            "allow_outbound": [format!("127.0.0.1:{}", counter.port)],
            "schedules": [{"name": "every-second", "cron": "* * * * * *", "payload": {"fetch": format!("http://127.0.0.1:{}/tick", counter.port)}}]
        });
        let r = fra
            .http
            .put_json(
                &fra.url("/api/v1/tenants/acme/functions/ticker/config"),
                cfg,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Nodes reload their schedule lists every 5 s: wait for the first tick.
    let first = Instant::now();
    while counter.total() == 0 {
        assert!(
            first.elapsed() < Duration::from_secs(30),
            "no tick within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "first tick {:?} after the schedule was set",
        first.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    nodes[1].take().unwrap().kill9();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Stop the schedule, let the last ticks finish.
    {
        let fra = Api::new(nodes[0].as_ref().unwrap());
        let r = fra
            .http
            .put_json(
                &fra.url("/api/v1/tenants/acme/functions/ticker/config"),
                json!({"allow_outbound": [format!("127.0.0.1:{}", counter.port)]}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let hits = counter.hits.lock().unwrap().clone();
    let mut ticks: Vec<(&String, &usize)> = hits.iter().collect();
    ticks.sort();
    println!(
        "ticks seen: {} ({:?} ...)",
        ticks.len(),
        ticks.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        ticks.len() >= 9,
        "expected a tick a second for 9+ s, got {}",
        ticks.len()
    );
    let twice: Vec<_> = ticks.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "ticks fired more than once: {twice:?}");
    // Consecutive seconds: none lost while a node died (gaps of 1 s only, allowing the
    // start and end boundaries).
    let secs: Vec<i64> = ticks
        .iter()
        .filter_map(|(k, _)| k.split("t=").nth(1))
        .filter_map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp())
        .collect();
    let gaps: Vec<i64> = secs
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|g| *g != 1)
        .collect();
    assert!(gaps.is_empty(), "missing ticks: gaps {gaps:?} in {secs:?}");
    for n in nodes.iter().flatten() {
        let m = Http::new().get(&format!("{}/metrics", n.url)).await.text();
        let fired = m
            .lines()
            .find(|l| l.starts_with("helixflow_schedule_ticks_total"))
            .unwrap_or("none")
            .to_string();
        println!("{}: {fired}", n.url);
    }
}
