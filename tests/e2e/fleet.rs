//! Several locations sharing one state: DynamoDB (AWS's DynamoDB Local) for metadata and
//! S3 (ministack) for artifacts, both started by scripts/test.sh.

use helixflow_e2e::{Api, Http, Node, helixflow_bin};
use serde_json::json;
use std::time::{Duration, Instant};

fn shared_config(node: &str, table: &str, bucket: &str, prefix: &str) -> String {
    format!(
        "[node]\nid = \"{node}\"\n[state]\nmetadata = \"dynamodb://{table}\"\nartifacts = \"s3://{bucket}/{prefix}\"\nresolve_cache_ttl_ms = 500\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn three_locations_share_state_see_alias_flips_and_survive_a_lost_node() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/test.sh, which starts DynamoDB Local and ministack"
    );
    let bucket = std::env::var("HELIXFLOW_TEST_S3_BUCKET")
        .expect("HELIXFLOW_TEST_S3_BUCKET (set by scripts/test.sh)");
    let root = tempfile::tempdir().unwrap();
    let tag = format!(
        "{}-{}",
        std::process::id(),
        root.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_lowercase()
    );
    let table = format!("hf-e2e-{tag}");
    let prefix = format!("fleet-{tag}");

    // `helixflow state init` creates the table the config names.
    let init_cfg = root.path().join("init.toml");
    std::fs::write(&init_cfg, shared_config("init", &table, &bucket, &prefix)).unwrap();
    let out = std::process::Command::new(helixflow_bin())
        .args(["state", "init", "--config"])
        .arg(&init_cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "state init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("table {table} is ready")));

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
    for i in 1..3 {
        loop {
            let r = http.get(&format!("{}/acme/f/x", url(i, &nodes))).await;
            if r.text().starts_with("raw hello") {
                break;
            }
            assert!(
                flip.elapsed() < Duration::from_secs(5),
                "{} never saw the flip",
                names[i]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let propagation = flip.elapsed();
    println!("alias flip made at fra served at iad and sin after {propagation:?} (target <= 2 s)");
    assert!(propagation <= Duration::from_secs(2), "{propagation:?}");

    // Lose fra: the others keep serving.
    nodes[0].take().unwrap().kill9();
    for i in 1..3 {
        for _ in 0..10 {
            let r = http.get(&format!("{}/acme/f/y", url(i, &nodes))).await;
            assert_eq!(r.status, 200, "{} after fra died: {}", names[i], r.text());
        }
        let m = http
            .get(&format!("{}/metrics", url(i, &nodes)))
            .await
            .text();
        assert!(
            m.contains(&format!("location=\"{}\"", names[i])),
            "metrics carry the location"
        );
    }
}
