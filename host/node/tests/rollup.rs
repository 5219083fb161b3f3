//! Hourly roll-ups answer a usage query exactly as the minute rows they sum: same
//! requests, cost (prices that change on a whole hour included), GB-seconds and latency
//! percentiles, per function and model, for rows written by several nodes.

use helixflow_store::registry::Registry;
use helixflow_store::usage::UsageRow;
use helixflow_usage::query::Query;
use helixflow_usage::{Histogram, Price, PriceBook};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

fn minute_row(writer: &str, minute: u64, function: &str, seed: u64) -> UsageRow {
    let mut h = Histogram::default();
    for i in 0..(seed % 7 + 1) {
        h.observe_us(100 + (seed * 37 + i * 911) % 50_000);
    }
    let requests = seed % 7 + 1;
    let mut dims = BTreeMap::from([("function".to_string(), function.to_string())]);
    if function == "chat" {
        dims.insert("model".into(), "smol".into());
    }
    UsageRow {
        tenant: "acme".into(),
        minute,
        node: writer.into(),
        dims,
        counters: BTreeMap::from([
            ("requests".to_string(), requests),
            ("errors".to_string(), seed % 3 / 2),
            ("mb_ms".to_string(), 128 * (seed % 50 + 1)),
            ("prompt_tokens".to_string(), seed % 11 * 10),
        ]),
        latency: h.0,
    }
}

#[tokio::test]
async fn a_query_reads_the_same_from_hourly_rollups_as_from_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        helixflow_store_redb::RedbMetadataStore::open(dir.path().join("meta.redb")).unwrap();
    let registry = Registry::new(Arc::new(store));
    registry
        .create_tenant("acme", Default::default())
        .await
        .unwrap();
    let now_hour = helixflow_store::now_unix() / 3600;
    let (h0, hours) = (now_hour - 5, 3);
    let mut rows = Vec::new();
    let mut seed = 1u64;
    for minute in h0 * 60..(h0 + hours) * 60 {
        for writer in ["fra~1", "iad~2"] {
            for function in ["embed", "chat", "hello"] {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407)
                    >> 1;
                if !seed.is_multiple_of(4) {
                    rows.push(minute_row(writer, minute, function, seed % 1000));
                }
            }
        }
    }
    registry.put_usage(&rows, 86_400 * 30).await.unwrap();
    let next = helixflow_node::usage::rollup_hours(&registry, "acme", h0, h0 + hours, 86_400 * 30)
        .await
        .unwrap();
    assert_eq!(next, h0 + hours);
    let rolled = registry.hour_rollups("acme", h0, h0 + hours).await.unwrap();
    assert_eq!(rolled.len(), 3 * 3, "one row per hour and function");

    // A price change on the second hour, and a model price.
    let prices = PriceBook(vec![
        Price {
            per_1m_requests: 1_000_000.0,
            per_gb_second: 2.0,
            ..Default::default()
        },
        Price {
            from: (h0 + 1) * 3600,
            per_1m_requests: 3_000_000.0,
            ..Default::default()
        },
        Price {
            model: Some("smol".into()),
            per_1m_prompt_tokens: 500_000.0,
            ..Default::default()
        },
    ]);
    let params: HashMap<String, String> = [
        ("from", (h0 * 3600).to_string()),
        ("to", ((h0 + hours) * 3600).to_string()),
        ("step", "1h".to_string()),
        ("group_by", "function,model".to_string()),
        (
            "metrics",
            "requests,errors,cost,gb_seconds,prompt_tokens,latency_p50,latency_p95,latency_p99"
                .to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let q = Query::parse(&params, helixflow_store::now_unix()).unwrap();
    let minutes = registry
        .usage("acme", h0 * 60, (h0 + hours) * 60)
        .await
        .unwrap();
    assert_eq!(minutes.len(), rows.len());
    let from_minutes = q.run(&minutes, &prices);
    let from_rollups = q.run(&rolled, &prices);
    assert!(
        same(&from_minutes, &from_rollups),
        "roll-ups answer as the minutes do:\n{from_minutes}\n{from_rollups}"
    );
    let total: f64 = from_minutes["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["total"]["cost"].as_f64().unwrap())
        .sum();
    assert!(total > 0.0, "{from_minutes}");
    // Rolling an hour up again rewrites the same rows (idempotent).
    helixflow_node::usage::rollup_hours(&registry, "acme", h0, h0 + 1, 86_400 * 30)
        .await
        .unwrap();
    let again = registry.hour_rollups("acme", h0, h0 + hours).await.unwrap();
    assert_eq!(q.run(&again, &prices), from_rollups);
}

/// Equal JSON, numbers within a relative 1e-9 (a sum of costs and the cost of a sum
/// differ in the last bits).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Object(x), Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Days rolled up from hours answer a daily query as the minutes do.
#[tokio::test]
async fn daily_rollups_answer_a_daily_query_as_the_minutes_do() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        helixflow_store_redb::RedbMetadataStore::open(dir.path().join("meta.redb")).unwrap();
    let registry = Registry::new(Arc::new(store));
    registry
        .create_tenant("acme", Default::default())
        .await
        .unwrap();
    let today = helixflow_store::now_unix() / 86_400;
    let (d0, days) = (today - 3, 2);
    let mut rows = Vec::new();
    for minute in (d0 * 1440..(d0 + days) * 1440).step_by(7) {
        for (i, function) in ["embed", "chat"].iter().enumerate() {
            rows.push(minute_row(
                if minute % 2 == 0 { "fra~1" } else { "iad~2" },
                minute,
                function,
                (minute * 13 + i as u64) % 1000,
            ));
        }
    }
    registry.put_usage(&rows, 86_400 * 30).await.unwrap();
    let retention = 86_400 * 30;
    helixflow_node::usage::rollup_hours(&registry, "acme", d0 * 24, (d0 + days) * 24, retention)
        .await
        .unwrap();
    let next = helixflow_node::usage::rollup_days(&registry, "acme", d0, d0 + days, retention)
        .await
        .unwrap();
    assert_eq!(next, d0 + days);
    let daily = registry.day_rollups("acme", d0, d0 + days).await.unwrap();
    assert_eq!(daily.len(), 2 * 2, "one row per day and function");
    let prices = PriceBook(vec![Price {
        per_1m_requests: 0.2,
        per_gb_second: 0.0000166667,
        ..Default::default()
    }]);
    let params: HashMap<String, String> = [
        ("from", (d0 * 86_400).to_string()),
        ("to", ((d0 + days) * 86_400).to_string()),
        ("step", "1d".to_string()),
        ("group_by", "function".to_string()),
        ("metrics", "requests,errors,cost,latency_p95".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let q = Query::parse(&params, helixflow_store::now_unix()).unwrap();
    let minutes = registry
        .usage("acme", d0 * 1440, (d0 + days) * 1440)
        .await
        .unwrap();
    assert!(
        same(&q.run(&minutes, &prices), &q.run(&daily, &prices)),
        "days answer as the minutes do"
    );
}
