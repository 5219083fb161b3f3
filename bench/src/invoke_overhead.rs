//! Per-invocation overhead of the HelixFlow runtime: fresh store + instance from the
//! cached `InstancePre` (pooling allocator), call, drop.
//!
//! usage: invoke-overhead GUEST_DIR [ITERATIONS]
//!
//! Prints, for the event trigger (echo-event with an empty payload) and the HTTP
//! trigger (hello, in-process: no sockets), the median / p90 / p99 / mean latency.

use anyhow::{Context, Result};
use bytes::Bytes;
use helixflow_runtime::{EventContext, InvocationEnv, Limits, Runtime, RuntimeConfig};
use http_body_util::{BodyExt, Empty};
// `Empty`'s error is `Infallible`, which converts into the runtime's body error.
use sha2::Digest;
use std::time::{Duration, Instant};

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    println!(
        "{name:<44} n={:<6} median={:>7.2}us p90={:>7.2}us p99={:>7.2}us mean={:>7.2}us",
        v.len(),
        pct(0.5).as_secs_f64() * 1e6,
        pct(0.9).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        mean.as_secs_f64() * 1e6
    );
}

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .context("usage: invoke-overhead GUEST_DIR [ITERATIONS]")?;
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let runtime = Runtime::new(RuntimeConfig::default())?;
        let limits = Limits {
            memory_bytes: 128 << 20,
            timeout: Duration::from_secs(10),
            max_log_bytes: 64 << 10,
        };

        let echo = std::fs::read(format!("{dir}/echo_event.wasm"))?;
        let sha = hex::encode(sha2::Sha256::digest(&echo));
        let f = runtime.load(&sha, &echo).await?;
        let mut times = Vec::with_capacity(n);
        for i in 0..(n + n / 10) {
            let t = Instant::now();
            let out = runtime
                .invoke_event(
                    &f,
                    limits.clone(),
                    InvocationEnv::default(),
                    EventContext::default(),
                    Vec::new(),
                )
                .await;
            let el = t.elapsed();
            anyhow::ensure!(
                matches!(out.result, Ok(Ok(_))),
                "echo-event failed: {:?}",
                out.result
            );
            if i >= n / 10 {
                times.push(el);
            }
        }
        stats("event: instantiate+call+drop (echo-event)", times);

        let hello = std::fs::read(format!("{dir}/hello.wasm"))?;
        let sha = hex::encode(sha2::Sha256::digest(&hello));
        let f = runtime.load(&sha, &hello).await?;
        let mut times = Vec::with_capacity(n);
        for i in 0..(n + n / 10) {
            let req = http::Request::builder()
                .uri("/bench")
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())?;
            let t = Instant::now();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let on_report: helixflow_runtime::ReportSink = Box::new(move |r| {
                let _ = tx.send(r);
            });
            let resp = runtime
                .invoke_http(&f, limits.clone(), InvocationEnv::default(), req, on_report)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .to_bytes();
            let report = rx.await?;
            let el = t.elapsed();
            anyhow::ensure!(
                report.result.is_ok() && body.starts_with(b"Hello"),
                "hello failed"
            );
            if i >= n / 10 {
                times.push(el);
            }
        }
        stats("http: instantiate+handle+body+drop (hello)", times);
        Ok(())
    })
}
