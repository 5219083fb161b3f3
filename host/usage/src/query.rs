//! The usage query: `from`, `to`, `step`, `group_by`, `metrics` -> series.

use crate::{Histogram, PriceBook, UsageError};
use helixflow_store::usage::UsageRow;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// Dimensions a query may group by.
pub const DIMENSIONS: &[&str] = &["function", "version", "trigger", "location", "key", "model"];

/// Metrics a query may ask for.
pub const METRICS: &[&str] = &[
    "requests",
    "errors",
    "error_rate",
    "gb_seconds",
    "bytes_in",
    "bytes_out",
    "prompt_tokens",
    "completion_tokens",
    "embedding_tokens",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "cost",
    "cost_per_1k_tokens",
];

/// Most points one series may have (a finer step over a longer range is refused).
pub const MAX_POINTS: u64 = 1440;

/// A validated usage query. Times are Unix minutes, `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub from: u64,
    pub to: u64,
    /// Minutes per point: 1, 60 or 1440.
    pub step: u64,
    pub group_by: Vec<String>,
    pub metrics: Vec<String>,
}

fn parse_time(name: &str, v: &str) -> Result<u64, UsageError> {
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp().max(0) as u64)
        .map_err(|_| {
            UsageError::new(
                "invalid_time",
                format!("{name} {v:?}: use RFC 3339 (2026-12-01T10:00:00Z) or Unix seconds"),
            )
        })
}

fn list(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl Query {
    /// From query parameters; `now`: Unix seconds. Defaults: the last hour, a step that
    /// gives at most [`MAX_POINTS`] points, no grouping, requests and errors.
    pub fn parse(p: &HashMap<String, String>, now: u64) -> Result<Query, UsageError> {
        let to = match p.get("to") {
            Some(v) => parse_time("to", v)?,
            None => now,
        };
        let from = match p.get("from") {
            Some(v) => parse_time("from", v)?,
            None => to.saturating_sub(3600),
        };
        if from >= to {
            return Err(UsageError::new(
                "invalid_range",
                format!("from ({from}) must be before to ({to})"),
            ));
        }
        // Whole minutes: from rounds down, to rounds up.
        let (from, to) = (from / 60, to.div_ceil(60));
        let span = to - from;
        let step = match p.get("step").map(String::as_str) {
            None if span <= MAX_POINTS => 1,
            None if span <= MAX_POINTS * 60 => 60,
            None => 1440,
            Some("1m") => 1,
            Some("1h") => 60,
            Some("1d") => 1440,
            Some(s) => {
                return Err(UsageError::new(
                    "invalid_step",
                    format!("step {s:?}: use 1m, 1h or 1d"),
                ));
            }
        };
        if span.div_ceil(step) > MAX_POINTS {
            return Err(UsageError::new(
                "step_too_fine",
                format!(
                    "{} points of {step} min for this range; at most {MAX_POINTS}: use a coarser step",
                    span.div_ceil(step)
                ),
            ));
        }
        let group_by = list(p.get("group_by"));
        if let Some(d) = group_by.iter().find(|d| !DIMENSIONS.contains(&d.as_str())) {
            return Err(UsageError::new(
                "invalid_dimension",
                format!("cannot group by {d:?}; use {}", DIMENSIONS.join(", ")),
            ));
        }
        let mut metrics = list(p.get("metrics"));
        if metrics.is_empty() {
            metrics = vec!["requests".into(), "errors".into()];
        }
        if let Some(m) = metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
            return Err(UsageError::new(
                "invalid_metric",
                format!("unknown metric {m:?}; use {}", METRICS.join(", ")),
            ));
        }
        Ok(Query {
            from,
            to,
            step,
            group_by,
            metrics,
        })
    }

    fn step_name(&self) -> &'static str {
        match self.step {
            1 => "1m",
            60 => "1h",
            _ => "1d",
        }
    }

    /// The series of `rows` (any nodes, any minutes: those outside the range are
    /// ignored), one per distinct group, points in time order, only where there was use.
    /// Cost is each row's usage at the price in force at its minute for its model.
    pub fn run(&self, rows: &[UsageRow], prices: &PriceBook) -> Value {
        #[derive(Default)]
        struct Acc {
            counters: BTreeMap<String, u64>,
            latency: Histogram,
            cost: f64,
        }
        let mut groups: BTreeMap<Vec<String>, BTreeMap<u64, Acc>> = BTreeMap::new();
        let mut totals: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
        for r in rows
            .iter()
            .filter(|r| (self.from..self.to).contains(&r.minute))
        {
            let group: Vec<String> = self
                .group_by
                .iter()
                .map(|d| r.dims.get(d).cloned().unwrap_or_default())
                .collect();
            // Points start on whole steps (hours, UTC days), whatever `from` is.
            let bucket = r.minute / self.step * self.step;
            let cost = prices.cost(
                r.minute * 60,
                r.dims.get("model").map(String::as_str),
                &r.counters,
            );
            for acc in [
                groups
                    .entry(group.clone())
                    .or_default()
                    .entry(bucket)
                    .or_default(),
                totals.entry(group).or_default(),
            ] {
                for (k, v) in &r.counters {
                    *acc.counters.entry(k.clone()).or_default() += v;
                }
                acc.latency.merge(&r.latency);
                acc.cost += cost;
            }
        }
        let values = |acc: &Acc| -> Map<String, Value> {
            let c = |k: &str| acc.counters.get(k).copied().unwrap_or(0);
            self.metrics
                .iter()
                .map(|m| {
                    let v = match m.as_str() {
                        "error_rate" => {
                            let n = c("requests");
                            if n == 0 {
                                json!(0.0)
                            } else {
                                json!(c("errors") as f64 / n as f64)
                            }
                        }
                        "gb_seconds" => json!(c("mb_ms") as f64 / 1024.0 / 1000.0),
                        "latency_p50" => json!(acc.latency.quantile_ms(0.5)),
                        "latency_p95" => json!(acc.latency.quantile_ms(0.95)),
                        "latency_p99" => json!(acc.latency.quantile_ms(0.99)),
                        "cost" => json!(acc.cost),
                        "cost_per_1k_tokens" => {
                            let tokens =
                                c("prompt_tokens") + c("completion_tokens") + c("embedding_tokens");
                            if tokens == 0 {
                                Value::Null
                            } else {
                                json!(acc.cost * 1000.0 / tokens as f64)
                            }
                        }
                        other => json!(c(other)),
                    };
                    (m.clone(), v)
                })
                .collect()
        };
        let rfc3339 = |minute: u64| {
            time::OffsetDateTime::from_unix_timestamp((minute * 60) as i64)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default()
        };
        let series: Vec<Value> = groups
            .iter()
            .map(|(group, points)| {
                let g: Map<String, Value> = self
                    .group_by
                    .iter()
                    .cloned()
                    .zip(group.iter().map(|v| json!(v)))
                    .collect();
                let points: Vec<Value> = points
                    .iter()
                    .map(|(minute, acc)| {
                        let mut p = values(acc);
                        p.insert("time".into(), json!(rfc3339(*minute)));
                        Value::Object(p)
                    })
                    .collect();
                json!({"group": g, "points": points, "total": values(&totals[group])})
            })
            .collect();
        json!({
            "from": rfc3339(self.from),
            "to": rfc3339(self.to),
            "step": self.step_name(),
            "group_by": self.group_by,
            "metrics": self.metrics,
            "series": series,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_parameters_are_refused_with_a_code() {
        let now = 1_800_000_000;
        let code = |kv: &[(&str, &str)]| Query::parse(&params(kv), now).unwrap_err().code;
        assert_eq!(
            code(&[("metrics", "requests,cost_per_vibe")]),
            "invalid_metric"
        );
        assert_eq!(code(&[("group_by", "planet")]), "invalid_dimension");
        assert_eq!(
            code(&[("from", "1800000100"), ("to", "1800000000")]),
            "invalid_range"
        );
        assert_eq!(code(&[("step", "5s")]), "invalid_step");
        assert_eq!(
            code(&[("from", "1700000000"), ("step", "1m")]),
            "step_too_fine"
        );
        assert_eq!(code(&[("from", "yesterday")]), "invalid_time");
        let q = Query::parse(
            &params(&[
                ("from", "2027-01-15T08:00:00Z"),
                ("to", "2027-01-15T10:00:00Z"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!((q.to - q.from, q.step), (120, 1));
        assert_eq!(
            Query::parse(&params(&[("from", "1700000000")]), now)
                .unwrap()
                .step,
            1440
        );
    }

    #[test]
    fn rows_of_many_nodes_merge_into_grouped_series() {
        let row = |minute: u64, node: &str, f: &str, n: u64, lat_bucket: usize| UsageRow {
            tenant: "acme".into(),
            minute,
            node: node.into(),
            dims: [("function".to_string(), f.to_string())].into(),
            counters: [
                ("requests".to_string(), n),
                ("errors".to_string(), 1),
                ("mb_ms".to_string(), 1024 * 1000),
            ]
            .into(),
            latency: {
                let mut h = vec![0; 30];
                h[lat_bucket] = n;
                h
            },
        };
        let rows = vec![
            row(100, "fra", "a", 3, 10),
            row(100, "iad", "a", 2, 20),
            row(161, "fra", "a", 5, 10),
            row(100, "fra", "b", 1, 5),
            row(9999, "fra", "a", 100, 1),
        ];
        let q = Query {
            from: 100,
            to: 220,
            step: 60,
            group_by: vec!["function".into()],
            metrics: vec![
                "requests".into(),
                "error_rate".into(),
                "gb_seconds".into(),
                "latency_p50".into(),
                "cost".into(),
            ],
        };
        let prices = PriceBook(vec![crate::Price {
            per_gb_second: 2.0,
            ..Default::default()
        }]);
        let out = q.run(&rows, &prices);
        let series = out["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        let a = &series[0];
        assert_eq!(a["group"]["function"], "a");
        assert_eq!(a["points"].as_array().unwrap().len(), 2, "{a}");
        assert_eq!(a["points"][0]["requests"], 5, "fra + iad in the first hour");
        assert_eq!(
            a["total"]["requests"], 10,
            "the row outside the range is ignored"
        );
        assert_eq!(a["total"]["gb_seconds"], 3.0);
        assert_eq!(a["total"]["cost"], 6.0, "3 GB-s at 2.0");
        assert!((a["total"]["error_rate"].as_f64().unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(
            a["total"]["latency_p50"].as_f64().unwrap(),
            Histogram::upper_ms(10)
        );
        assert_eq!(out["step"], "1h");
    }
}
