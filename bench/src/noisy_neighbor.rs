//! Hostile guests next to a victim: the victim tenant's `hello` latency alone, then
//! while a hostile tenant keeps running infinite loops, memory growth to the limit,
//! traps, deep recursion, outbound HTTP to a forbidden host and floods of wasi:nn calls. Prints what each hostile call got (its error
//! code) and the victim's p50/p99 before and during, with the ratio (target <= 2x).
//!
//! usage (through bench/noisy-neighbor.sh): noisy-neighbor [SECONDS]

use anyhow::Result;
use helixflow_e2e::{Api, Http, Node};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1e3
}

async fn victim_load(url: &str, clients: usize, per_client: usize) -> Vec<Duration> {
    let futs = (0..clients).map(|_| {
        let url = url.to_string();
        async move {
            let http = Http::new();
            let mut v = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                let r = http.get(&url).await;
                assert_eq!(r.status, 200, "victim request failed: {}", r.text());
                v.push(t.elapsed());
            }
            v
        }
    });
    futures::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), None);
    let api = Api::new(&node);
    api.create_tenant("victim").await;
    // The hostile tenant may run 3 invocations at once: the bench keeps all 3 busy.
    let r = api
        .http
        .post_json(&api.url("/api/v1/tenants"), json!({"name": "hostile", "limits": {"max_memory_mb": 256, "max_timeout_ms": 30000, "max_concurrency": 3}}))
        .await;
    anyhow::ensure!(r.status == 201, "{}", r.text());
    api.deploy("victim", "hello", "hello", "").await;
    let cfg = json!({"timeout_ms": 1000, "memory_mb": 64}).to_string();
    let r = api
        .http
        .request(
            "POST",
            &api.url("/api/v1/tenants/hostile/functions/chaos/versions"),
            &[("x-helixflow-config", &cfg)],
            helixflow_e2e::guest("chaos"),
        )
        .await;
    anyhow::ensure!(r.status == 201, "{}", r.text());
    let nn = std::env::var("HELIXFLOW_MODELS_DIR").ok();
    if let Some(models) = &nn {
        api.deploy("hostile", "nn-probe", "nn-probe", "").await;
        let bytes = std::fs::read(format!("{models}/matmul_f32.onnx"))?;
        let r = api
            .http
            .post(
                &api.url("/api/v1/tenants/hostile/models/mm/versions"),
                bytes,
            )
            .await;
        anyhow::ensure!(r.status == 201, "{}", r.text());
    }
    let victim = api.url("/victim/hello/?name=v");
    victim_load(&victim, 4, 50).await; // warm-up
    let mut base = victim_load(&victim, 4, 1000).await;

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let x: String = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(
            (0..64)
                .flat_map(|i| (i as f32).to_le_bytes())
                .collect::<Vec<u8>>(),
        )
    };
    let mut attackers = Vec::new();
    for k in 0..3 {
        let (stop, outcomes, url, x, nn) = (
            stop.clone(),
            outcomes.clone(),
            node.url.clone(),
            x.clone(),
            nn.is_some(),
        );
        attackers.push(tokio::spawn(async move {
            let http = Http::new();
            let mut i = k * 2;
            while !stop.load(Ordering::Relaxed) {
                let (what, r) = match i % 7 {
                    0 => ("infinite loop", http.get(&format!("{url}/hostile/chaos/loop")).await),
                    1 => ("memory growth", http.get(&format!("{url}/hostile/chaos/grow")).await),
                    2 => ("trap", http.get(&format!("{url}/hostile/chaos/trap")).await),
                    3 if nn => (
                        "10,001 wasi:nn computes",
                        http.post(
                            &format!("{url}/invoke/hostile/nn-probe"),
                            json!({"model": "mm", "inputs": [{"name": "x", "type": "FP32", "dims": [1, 64], "data_b64": x}], "repeat": 10_001}).to_string(),
                        )
                        .await,
                    ),
                    5 => ("deep recursion", http.get(&format!("{url}/hostile/chaos/recurse")).await),
                    6 => (
                        "outbound HTTP to a forbidden host",
                        http.get(&format!("{url}/hostile/chaos/fetch?url=http://169.254.169.254/latest/meta-data/")).await,
                    ),
                    _ => ("40 MB of logs", http.get(&format!("{url}/hostile/chaos/log?n=1000000")).await),
                };
                // API errors are JSON; a guest's own answer (e.g. the denied outbound call) is text.
                let parsed: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
                let detail = match &parsed {
                    Some(v) => v["error"]["code"].as_str().filter(|c| !c.is_empty()).or(v["error"]["error_type"].as_str()).unwrap_or("").to_string(),
                    None => r.text().chars().take(60).collect(),
                };
                let code = if r.status < 300 { format!("{} ok", r.status) } else { format!("{} {detail}", r.status) };
                *outcomes.lock().unwrap().entry(format!("{what}: {code}")).or_default() += 1;
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut during = victim_load(&victim, 4, 1000).await;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    anyhow::ensure!(
        api.http.get(&api.url("/healthz")).await.status == 200,
        "the host died"
    );
    println!("hostile calls while the victim ran (what -> status code: count):");
    for (k, n) in outcomes.lock().unwrap().iter() {
        println!("  {k}: {n}");
    }
    let (b50, b99) = (pct(&mut base, 0.5), pct(&mut base, 0.99));
    let (d50, d99) = (pct(&mut during, 0.5), pct(&mut during, 0.99));
    println!("victim hello, 4 clients x 1000 requests");
    println!("  alone:              p50 {b50:.2} ms  p99 {b99:.2} ms");
    println!("  next to hostiles:   p50 {d50:.2} ms  p99 {d99:.2} ms");
    println!(
        "  p99 ratio {:.2}x (target <= 2x): {}",
        d99 / b99,
        if d99 <= 2.0 * b99 { "met" } else { "NOT met" }
    );
    Ok(())
}
