//! Shared-state benchmarks (needs DynamoDB Local + S3; run through bench/fleet.sh):
//!
//! 1. cold invoke on a node whose caches are empty (fetch from S3 + verify + compile +
//!    run) vs warm, for a ~2 MB component;
//! 2. deploy / alias flip at one location -> served at two others (default TTL);
//! 3. invoke latency with DynamoDB-backed metadata vs embedded (the resolution cache
//!    should make them equal).

use anyhow::{Context, Result};
use helixflow_e2e::{Api, Http, Node};
use std::time::{Duration, Instant};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn shared(node: &str, table: &str, bucket: &str, prefix: &str) -> String {
    format!(
        "[node]\nid = \"{node}\"\n[state]\nmetadata = \"dynamodb://{table}\"\nartifacts = \"s3://{bucket}/{prefix}\"\n"
    )
}

async fn latencies(http: &Http, url: &str, n: usize) -> Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(url).await;
        anyhow::ensure!(r.status == 200, "{url}: {}", r.text());
        v.push(t.elapsed());
    }
    Ok(v)
}

#[tokio::main]
async fn main() -> Result<()> {
    let bucket = std::env::var("HELIXFLOW_TEST_S3_BUCKET").context("run through bench/fleet.sh")?;
    let root = tempfile::tempdir()?;
    let tag = format!("{}", std::process::id());
    let table = format!("hf-bench-{tag}");
    let prefix = format!("bench-{tag}");
    let http = Http::new();

    // The origin node creates the table (state init) and deploys.
    let init = root.path().join("init.toml");
    std::fs::write(&init, shared("init", &table, &bucket, &prefix))?;
    let st = std::process::Command::new(helixflow_e2e::helixflow_bin())
        .args(["state", "init", "--config"])
        .arg(&init)
        .status()?;
    anyhow::ensure!(st.success(), "state init failed");
    let origin = Node::start(
        &root.path().join("origin"),
        Some(&shared("fra", &table, &bucket, &prefix)),
    );
    let api = Api::new(&origin);
    api.create_tenant("bench").await;
    let big = helixflow_e2e::guest("big");
    let r = api
        .deploy_raw("bench", "big", big.clone(), "?alias=live")
        .await;
    anyhow::ensure!(r.status == 201, "deploy: {}", r.text());
    api.deploy("bench", "hello", "hello", "?alias=live").await;

    // 1. Cold vs warm, on fresh nodes with empty caches.
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for i in 0..5 {
        let node = Node::start(
            &root.path().join(format!("cold{i}")),
            Some(&shared("iad", &table, &bucket, &prefix)),
        );
        let url = format!("{}/bench/big/x", node.url);
        let t = Instant::now();
        let r = http.get(&url).await;
        anyhow::ensure!(r.status == 200, "cold: {}", r.text());
        cold.push(t.elapsed());
        warm.extend(latencies(&http, &url, 100).await?);
    }
    println!(
        "== 1. cold vs warm invoke, {} KiB component (big), S3 + DynamoDB Local, empty node caches ==",
        big.len() / 1024
    );
    println!(
        "cold (fetch + verify + compile + run): median {:.1} ms, max {:.1} ms (n={})",
        ms(pct(&mut cold, 0.5)),
        ms(pct(&mut cold, 1.0)),
        cold.len()
    );
    println!(
        "warm: p50 {:.3} ms, p99 {:.3} ms (n={})",
        ms(pct(&mut warm, 0.5)),
        ms(pct(&mut warm, 0.99)),
        warm.len()
    );

    // 2. Alias flip at fra -> served at iad and sin (default resolve_cache_ttl_ms = 1000).
    let iad = Node::start(
        &root.path().join("iad"),
        Some(&shared("iad", &table, &bucket, &prefix)),
    );
    let sin = Node::start(
        &root.path().join("sin"),
        Some(&shared("sin", &table, &bucket, &prefix)),
    );
    let v2 = api.deploy("bench", "hello", "raw-http", "").await;
    let mut flips = Vec::new();
    for round in 0..6 {
        let target = if round % 2 == 0 { v2 } else { 1 };
        let expect = if target == v2 { "raw hello" } else { "Hello" };
        for n in [&iad, &sin] {
            // Warm both nodes on the current version first.
            http.get(&format!("{}/bench/hello/", n.url)).await;
        }
        let t = Instant::now();
        let r = http
            .put_json(
                &api.url("/api/v1/tenants/bench/functions/hello/aliases/live"),
                serde_json::json!({"version": target}),
            )
            .await;
        anyhow::ensure!(r.status == 200, "flip: {}", r.text());
        for n in [&iad, &sin] {
            loop {
                if http
                    .get(&format!("{}/bench/hello/", n.url))
                    .await
                    .text()
                    .starts_with(expect)
                {
                    break;
                }
                anyhow::ensure!(t.elapsed() < Duration::from_secs(10), "flip never arrived");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        flips.push(t.elapsed());
    }
    println!("== 2. alias flip at fra -> served at iad and sin (resolve_cache_ttl_ms = 1000) ==");
    println!(
        "visible everywhere after: median {:.0} ms, max {:.0} ms (n={}; target <= 2000 ms)",
        ms(pct(&mut flips, 0.5)),
        ms(pct(&mut flips, 1.0)),
        flips.len()
    );

    // 3. Embedded vs DynamoDB-backed metadata, same function, sequential requests.
    let embedded = Node::start(&root.path().join("embedded"), None);
    let eapi = Api::new(&embedded);
    eapi.create_tenant("bench").await;
    eapi.deploy("bench", "hello", "hello", "").await;
    let e_url = format!("{}/bench/hello/", embedded.url);
    let d_url = format!("{}/bench/hello/", iad.url);
    latencies(&http, &e_url, 200).await?;
    latencies(&http, &d_url, 200).await?;
    let (mut e, mut d) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        e.extend(latencies(&http, &e_url, 200).await?);
        d.extend(latencies(&http, &d_url, 200).await?);
    }
    println!(
        "== 3. invoke latency, embedded (redb) vs DynamoDB-backed metadata (n={} each, interleaved) ==",
        e.len()
    );
    println!(
        "embedded: p50 {:.3} ms, p99 {:.3} ms",
        ms(pct(&mut e, 0.5)),
        ms(pct(&mut e, 0.99))
    );
    println!(
        "dynamodb: p50 {:.3} ms, p99 {:.3} ms",
        ms(pct(&mut d, 0.5)),
        ms(pct(&mut d, 0.99))
    );
    Ok(())
}
