//! Usage query latency over 30 days x 100 functions: the same query (daily points per
//! function: requests, cost, p95 latency) answered from minute rows, from hourly
//! roll-ups and from daily roll-ups, on one store (redb, the embedded default), in one
//! run. (The API uses daily roll-ups for `step=1d`.)
//!
//! Data: 100 functions over 30 days from two nodes, each function active in one minute
//! of every `EVERY` (default 30) on each node: the minute rows a busy tenant's quieter
//! functions leave. Prints the rows each path reads and its median latency.

use anyhow::Result;
use helixflow_store::registry::Registry;
use helixflow_store::usage::UsageRow;
use helixflow_usage::query::Query;
use helixflow_usage::{Histogram, Price, PriceBook};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DAYS: u64 = 30;
const FUNCTIONS: u64 = 100;

fn row(writer: &str, minute: u64, f: u64, seed: u64) -> UsageRow {
    let mut h = Histogram::default();
    for i in 0..3 {
        h.observe_us(200 + (seed * 31 + i * 997) % 80_000);
    }
    UsageRow {
        tenant: "acme".into(),
        minute,
        node: writer.into(),
        dims: BTreeMap::from([
            ("function".to_string(), format!("fn-{f:03}")),
            ("trigger".to_string(), "http".to_string()),
        ]),
        counters: BTreeMap::from([
            ("requests".to_string(), seed % 20 + 1),
            ("mb_ms".to_string(), 128 * (seed % 90 + 10)),
            ("wall_ms".to_string(), seed % 90 + 10),
        ]),
        latency: h.0,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<()> {
    let every: u64 = std::env::var("EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let store = helixflow_store_redb::RedbMetadataStore::open(dir.path().join("meta.redb"))?;
    let registry = Registry::new(Arc::new(store));
    registry.create_tenant("acme", Default::default()).await?;
    let end_hour = helixflow_store::now_unix() / 3600 / 24 * 24;
    let start_hour = end_hour - DAYS * 24;

    let t = Instant::now();
    let mut batch = Vec::new();
    let mut written = 0usize;
    for minute in start_hour * 60..end_hour * 60 {
        for (w, writer) in ["fra~1", "iad~2"].iter().enumerate() {
            for f in 0..FUNCTIONS {
                if (minute + f * 7 + w as u64 * 13).is_multiple_of(every) {
                    batch.push(row(writer, minute, f, minute ^ f));
                }
            }
        }
        if batch.len() >= 2000 {
            registry.put_usage(&batch, 86_400 * 400).await?;
            written += batch.len();
            batch.clear();
        }
    }
    registry.put_usage(&batch, 86_400 * 400).await?;
    written += batch.len();
    println!(
        "data: {DAYS} days x {FUNCTIONS} functions x 2 nodes, one minute in {every}: {written} minute rows (written in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    helixflow_node::usage::rollup_hours(&registry, "acme", start_hour, end_hour, 86_400 * 400)
        .await?;
    helixflow_node::usage::rollup_days(
        &registry,
        "acme",
        start_hour / 24,
        end_hour / 24,
        86_400 * 400,
    )
    .await?;
    let rollup_secs = t.elapsed().as_secs_f64();
    println!(
        "roll-up job: {} hours in {rollup_secs:.1} s ({:.1} ms per hour of data)",
        end_hour - start_hour,
        rollup_secs * 1000.0 / (end_hour - start_hour) as f64
    );

    let prices = PriceBook(vec![Price {
        per_1m_requests: 0.2,
        per_gb_second: 0.0000166667,
        ..Default::default()
    }]);
    let params: HashMap<String, String> = [
        ("from", (start_hour * 3600).to_string()),
        ("to", (end_hour * 3600).to_string()),
        ("step", "1d".to_string()),
        ("group_by", "function".to_string()),
        ("metrics", "requests,cost,latency_p95".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let q =
        Query::parse(&params, helixflow_store::now_unix()).map_err(|e| anyhow::anyhow!("{e}"))?;

    let (mut minute_times, mut rollup_times, mut day_times) = (Vec::new(), Vec::new(), Vec::new());
    let (mut minute_rows, mut rollup_rows, mut day_rows) = (0, 0, 0);
    let (mut a, mut b, mut c) = (
        serde_json::Value::Null,
        serde_json::Value::Null,
        serde_json::Value::Null,
    );
    for _ in 0..runs {
        // Alternating, so neither path gets a warmer cache.
        let t = Instant::now();
        let rows = registry
            .usage("acme", start_hour * 60, end_hour * 60)
            .await?;
        a = q.run(&rows, &prices);
        minute_times.push(t.elapsed());
        minute_rows = rows.len();

        let t = Instant::now();
        let rows = registry.hour_rollups("acme", start_hour, end_hour).await?;
        let read = t.elapsed();
        b = q.run(&rows, &prices);
        rollup_times.push(t.elapsed());
        rollup_rows = rows.len();
        if std::env::var_os("SPLIT").is_some() {
            println!("  roll-ups: read {read:?}, run {:?}", t.elapsed() - read);
        }

        let t = Instant::now();
        let rows = registry
            .day_rollups("acme", start_hour / 24, end_hour / 24)
            .await?;
        c = q.run(&rows, &prices);
        day_times.push(t.elapsed());
        day_rows = day_rows.max(rows.len());
    }
    let series = |v: &serde_json::Value| v["series"].as_array().map_or(0, Vec::len);
    let requests = |v: &serde_json::Value| -> u64 {
        v["series"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["total"]["requests"].as_u64())
            .sum()
    };
    anyhow::ensure!(
        series(&a) == FUNCTIONS as usize
            && requests(&a) == requests(&b)
            && requests(&a) == requests(&c),
        "the paths disagree: {}/{}/{} series, {}/{}/{} requests",
        series(&a),
        series(&b),
        series(&c),
        requests(&a),
        requests(&b),
        requests(&c)
    );
    let (m, r, d) = (
        median(minute_times),
        median(rollup_times),
        median(day_times),
    );
    println!(
        "query (30 daily points x {FUNCTIONS} functions: requests, cost, p95), median of {runs}:"
    );
    println!("  from minute rows:    {minute_rows:>8} rows read, {m:>10.1?}");
    println!("  from hourly roll-ups:{rollup_rows:>8} rows read, {r:>10.1?}");
    println!("  from daily roll-ups: {day_rows:>8} rows read, {d:>10.1?}");
    println!(
        "  hourly roll-ups answer {:.1}x faster than minutes, daily ones {:.0}x",
        m.as_secs_f64() / r.as_secs_f64().max(1e-9),
        m.as_secs_f64() / d.as_secs_f64().max(1e-9)
    );
    Ok(())
}
