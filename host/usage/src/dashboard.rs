//! Dashboards: stored definitions of what to chart (`metrics`), along what
//! (`dimensions`), and which alerts belong with them, turned into usage queries.
//!
//! Named metrics and dimensions are the analytics vocabulary; any usage metric or
//! dimension may be used as well:
//!
//! | name                 | is                                                        |
//! |----------------------|-----------------------------------------------------------|
//! | `cost_per_token`     | `cost`, `cost_per_1k_tokens`                              |
//! | `latency_by_region`  | `latency_p50`, `latency_p95`, `latency_p99` by `location` |
//! | `model_usage`        | requests and tokens by `model`                            |
//! | `error_rate`         | `requests`, `errors`, `error_rate`                        |
//! | `time` (dimension)   | points per step (without it: totals only)                 |
//! | `user_segment`       | `key` (the caller)                                        |
//! | `geography`          | `location`                                                |

use crate::UsageError;
use crate::query::{DIMENSIONS, METRICS};
use serde::{Deserialize, Serialize};

/// Alert kinds a dashboard may carry: labels, stored with the dashboard. The rules
/// themselves are created with `POST /api/v1/tenants/{t}/alerts`, whose `kind` takes
/// these same names ([`crate::alert::KINDS`]).
pub const ALERTS: &[&str] = &["cost_threshold", "performance_degradation"];

/// What a tenant asks to chart (the body of `POST .../dashboards`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardSpec {
    #[serde(default)]
    pub name: String,
    pub metrics: Vec<String>,
    #[serde(default)]
    pub dimensions: Vec<String>,
    #[serde(default)]
    pub alerts: Vec<String>,
}

/// One chart of a dashboard: a usage query.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The metric as the dashboard names it.
    pub name: String,
    pub metrics: Vec<String>,
    pub group_by: Vec<String>,
    /// Points per step (the `time` dimension), else totals only.
    pub over_time: bool,
}

fn named_metric(m: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match m {
        "cost_per_token" => (&["cost", "cost_per_1k_tokens"], &[]),
        "latency_by_region" => (
            &["latency_p50", "latency_p95", "latency_p99"],
            &["location"],
        ),
        "model_usage" => (
            &[
                "requests",
                "prompt_tokens",
                "completion_tokens",
                "embedding_tokens",
            ],
            &["model"],
        ),
        "error_rate" => (&["requests", "errors", "error_rate"], &[]),
        _ => return None,
    })
}

fn dimension(d: &str) -> Option<Option<&str>> {
    match d {
        "time" => Some(None),
        "user_segment" => Some(Some("key")),
        "geography" => Some(Some("location")),
        d => DIMENSIONS.iter().find(|x| **x == d).map(|x| Some(*x)),
    }
}

impl DashboardSpec {
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.metrics.is_empty() || self.metrics.len() > 20 {
            return Err(UsageError::new(
                "invalid_dashboard",
                "a dashboard charts 1 to 20 metrics",
            ));
        }
        if self.name.len() > 200 || self.dimensions.len() > 8 || self.alerts.len() > 8 {
            return Err(UsageError::new(
                "invalid_dashboard",
                "name up to 200 characters, at most 8 dimensions and 8 alerts",
            ));
        }
        for m in &self.metrics {
            if named_metric(m).is_none() && !METRICS.contains(&m.as_str()) {
                return Err(UsageError::new(
                    "invalid_metric",
                    format!(
                        "unknown metric {m:?}: use cost_per_token, latency_by_region, model_usage, error_rate or one of {}",
                        METRICS.join(", ")
                    ),
                ));
            }
        }
        for d in &self.dimensions {
            if dimension(d).is_none() {
                return Err(UsageError::new(
                    "invalid_dimension",
                    format!(
                        "unknown dimension {d:?}: use time, user_segment, geography or one of {}",
                        DIMENSIONS.join(", ")
                    ),
                ));
            }
        }
        if let Some(a) = self.alerts.iter().find(|a| !ALERTS.contains(&a.as_str())) {
            return Err(UsageError::new(
                "invalid_alert",
                format!("unknown alert {a:?}: use {}", ALERTS.join(", ")),
            ));
        }
        Ok(())
    }

    /// The charts: one per metric, grouped by the dashboard's dimensions plus what the
    /// metric itself is by (latency by region: location).
    pub fn panels(&self) -> Vec<Panel> {
        let dims: Vec<&str> = self
            .dimensions
            .iter()
            .filter_map(|d| dimension(d).flatten())
            .collect();
        let over_time = self.dimensions.iter().any(|d| d == "time");
        self.metrics
            .iter()
            .map(|m| {
                let (metrics, by): (Vec<String>, &[&str]) = match named_metric(m) {
                    Some((ms, by)) => (ms.iter().map(|s| s.to_string()).collect(), by),
                    None => (vec![m.clone()], &[]),
                };
                let mut group_by: Vec<String> = Vec::new();
                for d in by.iter().chain(dims.iter()) {
                    if !group_by.iter().any(|g| g == d) {
                        group_by.push(d.to_string());
                    }
                }
                Panel {
                    name: m.clone(),
                    metrics,
                    group_by,
                    over_time,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metrics: &[&str], dims: &[&str], alerts: &[&str]) -> DashboardSpec {
        DashboardSpec {
            name: "ops".into(),
            metrics: metrics.iter().map(|s| s.to_string()).collect(),
            dimensions: dims.iter().map(|s| s.to_string()).collect(),
            alerts: alerts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_analytics_vocabulary_maps_to_usage_queries() {
        let s = spec(
            &["cost_per_token", "latency_by_region", "model_usage"],
            &["time", "user_segment", "geography"],
            &["cost_threshold", "performance_degradation"],
        );
        s.validate().unwrap();
        let p = s.panels();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].metrics, ["cost", "cost_per_1k_tokens"]);
        assert_eq!(p[0].group_by, ["key", "location"]);
        assert_eq!(
            p[1].group_by,
            ["location", "key"],
            "by region once, then the dashboard's"
        );
        assert_eq!(p[2].group_by, ["model", "key", "location"]);
        assert!(p.iter().all(|p| p.over_time));
        assert!(!spec(&["requests"], &["function"], &[]).panels()[0].over_time);
        let code = |s: DashboardSpec| s.validate().unwrap_err().code;
        assert_eq!(code(spec(&["vibes"], &[], &[])), "invalid_metric");
        assert_eq!(
            code(spec(&["requests"], &["planet"], &[])),
            "invalid_dimension"
        );
        assert_eq!(code(spec(&["requests"], &[], &["panic"])), "invalid_alert");
        assert_eq!(code(spec(&[], &[], &[])), "invalid_dashboard");
    }
}
