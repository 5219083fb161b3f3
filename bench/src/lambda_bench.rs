//! Lambda-style invocation benchmark. Prints:
//! * sync invoke through the Lambda Invoke API (SigV4-signed, every request verified)
//!   vs the plain HTTP trigger of the same function: p50/p99 and RPS at c=32;
//! * durable async throughput on embedded state: Event invocations accepted/s (each
//!   fsynced before its 202) and completed/s.
//!
//! usage: lambda-bench [seconds per sync run = 10] [async events = 5000]
//! (needs target/release/helixflow and the built guests, like the e2e tests)

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use helixflow_e2e::{Api, Node};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const CONCURRENCY: usize = 32;
/// Clients accepting Event invocations at once (issue 18 measures accept at c=64).
const EVENT_CONCURRENCY: usize = 64;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>;

#[derive(Clone)]
enum Mode {
    Invoke {
        url: String,
        akid: String,
        secret: String,
    },
    Http {
        url: String,
        token: String,
    },
    Event {
        url: String,
        akid: String,
        secret: String,
    },
}

fn signed(
    url: &str,
    akid: &str,
    secret: &str,
    body: &[u8],
    invocation_type: Option<&str>,
) -> http::Request<Full<bytes::Bytes>> {
    let creds = Credentials::new(akid, secret, None, None, "bench");
    let identity = creds.into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("lambda")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut headers = vec![("host", host.as_str())];
    if let Some(t) = invocation_type {
        headers.push(("x-amz-invocation-type", t));
    }
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut b = http::Request::builder().method("POST").uri(url);
    for (k, v) in &headers {
        b = b.header(*k, *v);
    }
    let mut req = b
        .body(Full::new(bytes::Bytes::copy_from_slice(body)))
        .expect("request");
    instructions.apply_to_request_http1x(&mut req);
    req
}

async fn one(client: &HttpClient, mode: &Mode, body: &[u8]) -> Result<(), String> {
    let req = match mode {
        Mode::Invoke { url, akid, secret } => signed(url, akid, secret, body, None),
        Mode::Event { url, akid, secret } => signed(url, akid, secret, body, Some("Event")),
        Mode::Http { url, token } => http::Request::builder()
            .method("POST")
            .uri(url)
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(bytes::Bytes::copy_from_slice(body)))
            .map_err(|e| e.to_string())?,
    };
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let _ = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let want = if matches!(mode, Mode::Event { .. }) {
        202
    } else {
        200
    };
    if status == want {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// Runs `mode` for `dur` (or `count` requests) with `concurrency` workers; returns
/// (requests, elapsed, sorted latencies).
async fn load(
    client: &HttpClient,
    mode: Mode,
    dur: Option<Duration>,
    count: Option<usize>,
    concurrency: usize,
) -> (usize, Duration, Vec<Duration>) {
    let start = Instant::now();
    let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, mode, issued) = (client.clone(), mode.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if count.is_some_and(|c| n >= c) || dur.is_some_and(|d| start.elapsed() >= d) {
                    return lat;
                }
                let body = format!("{{\"n\":{n}}}");
                let t = Instant::now();
                if let Err(e) = one(&client, &mode, body.as_bytes()).await {
                    panic!("request failed: {e}");
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    all.sort();
    (all.len(), elapsed, all)
}

fn pct(l: &[Duration], p: f64) -> f64 {
    if l.is_empty() {
        return 0.0;
    }
    l[((l.len() as f64 * p) as usize).min(l.len() - 1)].as_secs_f64() * 1000.0
}

async fn succeeded(client: &HttpClient, node_url: &str) -> u64 {
    let req = http::Request::builder()
        .uri(format!("{node_url}/metrics"))
        .header(
            "authorization",
            format!("Bearer {}", helixflow_e2e::admin_key()),
        )
        .body(Full::new(bytes::Bytes::new()))
        .expect("request");
    let Ok(resp) = client.request(req).await else {
        return 0;
    };
    let text = String::from_utf8_lossy(
        &resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default(),
    )
    .into_owned();
    text.lines()
        .find(|l| {
            l.starts_with("helixflow_async_events_total") && l.contains("outcome=\"succeeded\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let events: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), Some("[runtime]\nasync_workers = 32\n"));
    let api = Api::new(&node);
    api.create_tenant("bench").await;
    api.deploy("bench", "echo", "chaos", "").await;
    let r = api
        .http
        .post_json(
            &api.url("/api/v1/tenants/bench/access-keys"),
            serde_json::json!({"name": "bench"}),
        )
        .await;
    anyhow::ensure!(r.status == 201, "access key: {}", r.text());
    let (akid, secret) = (
        r.json()["access_key_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        r.json()["secret_access_key"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let r = api
        .http
        .post_json(
            &api.url("/api/v1/tenants/bench/keys"),
            serde_json::json!({"name": "bench", "role": "invoker"}),
        )
        .await;
    anyhow::ensure!(r.status == 201, "api key: {}", r.text());
    let token = r.json()["key"].as_str().unwrap_or_default().to_string();

    let mut c = hyper_util::client::legacy::connect::HttpConnector::new();
    c.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(c);
    let invoke_url = format!("{}/2015-03-31/functions/echo/invocations", node.url);
    let http_url = format!("{}/bench/echo/echo", node.url);
    let invoke = Mode::Invoke {
        url: invoke_url.clone(),
        akid: akid.clone(),
        secret: secret.clone(),
    };
    let plain = Mode::Http {
        url: http_url,
        token,
    };
    // Warm-up (compile cache, connections).
    load(
        &client,
        invoke.clone(),
        Some(Duration::from_secs(1)),
        None,
        CONCURRENCY,
    )
    .await;
    load(
        &client,
        plain.clone(),
        Some(Duration::from_secs(1)),
        None,
        CONCURRENCY,
    )
    .await;
    println!(
        "sync, c={CONCURRENCY}, {secs} s each, same component (chaos echo), same payload; load generator on the same machine"
    );
    let mut rows = Vec::new();
    for (name, mode) in [
        ("Invoke API (SigV4)", invoke.clone()),
        ("HTTP trigger (bearer key)", plain.clone()),
    ] {
        let (n, el, lat) = load(
            &client,
            mode,
            Some(Duration::from_secs(secs)),
            None,
            CONCURRENCY,
        )
        .await;
        let rps = n as f64 / el.as_secs_f64();
        println!(
            "  {name:<28} {rps:>8.0} RPS   p50 {:>6.2} ms   p99 {:>6.2} ms",
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
        rows.push(rps);
    }
    println!(
        "  Invoke API / HTTP trigger throughput: {:.2}x",
        rows[0] / rows[1]
    );

    let before = succeeded(&client, &node.url).await;
    let event = Mode::Event {
        url: invoke_url,
        akid,
        secret,
    };
    let start = Instant::now();
    let (n, el, lat) = load(&client, event, None, Some(events), EVENT_CONCURRENCY).await;
    let accepted_rps = n as f64 / el.as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = 0;
    while Instant::now() < deadline {
        done = succeeded(&client, &node.url).await - before;
        if done as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = start.elapsed();
    println!(
        "async (durable, embedded redb, group commit: each 202 after the fsync that holds it), {n} events at c={EVENT_CONCURRENCY}:"
    );
    println!(
        "  accepted {accepted_rps:>8.0} events/s   (202 p50 {:.2} ms, p99 {:.2} ms)",
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    println!(
        "  completed {:>7.0} events/s   ({done} of {n} done {:.2} s after the first accept)",
        done as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );
    anyhow::ensure!(done as usize == n, "only {done} of {n} events completed");
    Ok(())
}
