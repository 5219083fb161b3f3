//! Alert rules: what a tenant wants to be told about, checked against its usage.
//!
//! Two kinds, named like the dashboard vocabulary (`dashboard::ALERTS`):
//!
//! | kind                      | fires while                                              |
//! |---------------------------|----------------------------------------------------------|
//! | `cost_threshold`          | the cost over `window` is above `threshold_usd`          |
//! | `performance_degradation` | `metric` (`latency_p95_ms` or `error_rate`) over `window` is above `threshold`, with at least `min_requests` requests |
//!
//! A `window` is whole minutes (`"5m"`, `"1h"`, `"1d"`; at most [`MAX_WINDOW_MINUTES`]):
//! the current minute and the ones before it (usage is metered per minute), so a `1m`
//! window is the current minute alone. An optional `filter` narrows the usage to one
//! `function`, `model` and/or `location` (node). Rules are pure data here:
//! [`AlertSpec::validate`] turns the wire form into a [`Rule`] (or an [`AlertError`] with
//! a machine-readable code), and [`Rule::evaluate`] judges usage rows with the usage
//! query engine ([`crate::query::Query`]), so an alert's value is exactly what the usage
//! API answers for the same window and filter. Storage, scheduling and notification
//! belong to the node (`helixflow_node::alerts`).

use crate::PriceBook;
use crate::query::Query;
use helixflow_store::usage::UsageRow;
use serde::{Deserialize, Serialize};

/// The alert kinds.
pub const KINDS: &[&str] = &["cost_threshold", "performance_degradation"];
/// The metrics a `performance_degradation` rule may watch.
pub const PERFORMANCE_METRICS: &[&str] = &["latency_p95_ms", "error_rate"];
/// Longest window (one day): every evaluation reads this much usage at most.
pub const MAX_WINDOW_MINUTES: u64 = 1440;
/// Longest rule name.
pub const MAX_NAME_LEN: usize = 200;

/// The dimensions a rule may filter on, with the usage dimension each one is.
const FILTER_DIMENSIONS: &[&str] = &["function", "model", "location"];

/// A rule as a tenant writes it (the body of `POST .../alerts`), and as it is stored.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `cost_threshold`: fires when the window's cost exceeds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_usd: Option<f64>,
    /// `performance_degradation`: `latency_p95_ms` or `error_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `performance_degradation`: fires when the metric exceeds it (ms, or a fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// `performance_degradation`: fewer requests in the window never fire (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// `"5m"`, `"1h"`, `"1d"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub filter: Filter,
    /// Where transitions are sent (none: state and history only).
    #[serde(default, skip_serializing_if = "Notify::is_empty")]
    pub notify: Notify,
    /// A disabled rule is not evaluated (its state stays as it was).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Which usage a rule looks at (unset: all of the tenant's).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A node id (the `location` usage dimension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.function.is_none() && self.model.is_none() && self.location.is_none()
    }

    /// (dimension, value) pairs that are set, in [`FILTER_DIMENSIONS`] order.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        FILTER_DIMENSIONS
            .iter()
            .zip([&self.function, &self.model, &self.location])
            .filter_map(|(d, v)| v.as_deref().map(|v| (*d, v)))
            .collect()
    }
}

/// Where a rule's transitions go. Checked by the node (URL policy, the function exists).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// An HTTPS URL that receives each transition as a signed JSON POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// One of the tenant's functions, invoked asynchronously (Event) with the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.function.is_none()
    }
}

/// A rule that cannot be stored as written. [`AlertError::code`] is the API's
/// machine-readable code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("a rule needs a kind: use {}", KINDS.join(" or "))]
    MissingKind,
    #[error("unknown alert kind {0:?}: use {kinds}", kinds = KINDS.join(" or "))]
    UnknownKind(String),
    #[error("a {kind} rule needs {field}")]
    MissingThreshold {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{field} must be {what}, not {value}")]
    InvalidThreshold {
        field: &'static str,
        what: &'static str,
        value: f64,
    },
    #[error("a performance_degradation rule needs a metric: use {}", PERFORMANCE_METRICS.join(" or "))]
    MissingMetric,
    #[error("unknown metric {0:?}: use {metrics}", metrics = PERFORMANCE_METRICS.join(" or "))]
    UnknownMetric(String),
    #[error("window {0:?}: use whole minutes, hours or days (\"5m\", \"1h\", \"1d\"), at most 1d")]
    InvalidWindow(String),
    #[error("a rule needs a window (\"5m\", \"1h\", \"1d\")")]
    MissingWindow,
    #[error("{0}")]
    InvalidFilter(String),
    /// A field that does not belong to the rule's kind, or a bad name.
    #[error("{0}")]
    InvalidRule(String),
}

impl AlertError {
    pub fn code(&self) -> &'static str {
        match self {
            AlertError::MissingKind => "missing_kind",
            AlertError::UnknownKind(_) => "unknown_kind",
            AlertError::MissingThreshold { .. } => "missing_threshold",
            AlertError::InvalidThreshold { .. } => "invalid_threshold",
            AlertError::MissingMetric => "missing_metric",
            AlertError::UnknownMetric(_) => "unknown_metric",
            AlertError::InvalidWindow(_) | AlertError::MissingWindow => "invalid_window",
            AlertError::InvalidFilter(_) => "invalid_filter",
            AlertError::InvalidRule(_) => "invalid_rule",
        }
    }
}

/// What a `performance_degradation` rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerformanceMetric {
    /// The 95th percentile of invocation latency, ms (a histogram bucket's upper bound).
    LatencyP95Ms,
    /// Errors / requests.
    ErrorRate,
}

impl PerformanceMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            PerformanceMetric::LatencyP95Ms => "latency_p95_ms",
            PerformanceMetric::ErrorRate => "error_rate",
        }
    }
}

/// What makes a rule fire.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The window's cost is above `threshold_usd`.
    Cost { threshold_usd: f64 },
    /// `metric` over the window is above `threshold`, with at least `min_requests`.
    Performance {
        metric: PerformanceMetric,
        threshold: f64,
        min_requests: u64,
    },
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub condition: Condition,
    pub window_minutes: u64,
    pub filter: Filter,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The watched value: cost, p95 latency (ms) or error rate (0 when no requests).
    pub value: f64,
    /// The rule's threshold, for messages.
    pub threshold: f64,
    /// Requests in the window (after the filter).
    pub requests: u64,
    /// Whether the rule's condition holds.
    pub breached: bool,
    /// The window, Unix minutes `[from, to)`.
    pub from_minute: u64,
    pub to_minute: u64,
}

/// The `minutes`-long window ending with minute `now_minute` (included): `[from, to)`.
/// The minute in progress is in it: a cost only grows, and a rate judged on it is
/// guarded by the rule's `min_requests`.
pub fn window_of(minutes: u64, now_minute: u64) -> (u64, u64) {
    let to = now_minute + 1;
    (to.saturating_sub(minutes), to)
}

/// Parses `"5m"`, `"2h"`, `"1d"` into minutes (1 ..= [`MAX_WINDOW_MINUTES`]).
pub fn parse_window(w: &str) -> Result<u64, AlertError> {
    let bad = || AlertError::InvalidWindow(w.to_string());
    let w = w.trim();
    if w.len() < 2 || w.len() > 8 {
        return Err(bad());
    }
    let (n, unit) = w.split_at(w.len() - 1);
    let per = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 1440,
        _ => return Err(bad()),
    };
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    match n.checked_mul(per) {
        Some(m) if (1..=MAX_WINDOW_MINUTES).contains(&m) => Ok(m),
        _ => Err(bad()),
    }
}

fn finite_positive(field: &'static str, v: f64) -> Result<f64, AlertError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(AlertError::InvalidThreshold {
            field,
            what: "a positive number",
            value: v,
        })
    }
}

fn not_for(kind: &str, field: &str) -> AlertError {
    AlertError::InvalidRule(format!("{field} does not apply to a {kind} rule"))
}

impl AlertSpec {
    /// Checks the rule and turns it into a [`Rule`]. Fields of the other kind are refused
    /// (a `threshold` on a cost rule is a mistake, not something to ignore).
    pub fn validate(&self) -> Result<Rule, AlertError> {
        if self.name.len() > MAX_NAME_LEN || self.name.chars().any(char::is_control) {
            return Err(AlertError::InvalidRule(format!(
                "name: up to {MAX_NAME_LEN} characters, no control characters"
            )));
        }
        let kind = self.kind.as_deref().ok_or(AlertError::MissingKind)?;
        let condition = match kind {
            "cost_threshold" => {
                for (field, set) in [
                    ("metric", self.metric.is_some()),
                    ("threshold", self.threshold.is_some()),
                    ("min_requests", self.min_requests.is_some()),
                ] {
                    if set {
                        return Err(not_for(kind, field));
                    }
                }
                let t = self.threshold_usd.ok_or(AlertError::MissingThreshold {
                    kind: "cost_threshold",
                    field: "threshold_usd",
                })?;
                Condition::Cost {
                    threshold_usd: finite_positive("threshold_usd", t)?,
                }
            }
            "performance_degradation" => {
                if self.threshold_usd.is_some() {
                    return Err(not_for(kind, "threshold_usd"));
                }
                let metric = match self.metric.as_deref() {
                    None => return Err(AlertError::MissingMetric),
                    Some("latency_p95_ms") => PerformanceMetric::LatencyP95Ms,
                    Some("error_rate") => PerformanceMetric::ErrorRate,
                    Some(m) => return Err(AlertError::UnknownMetric(m.to_string())),
                };
                let t = self.threshold.ok_or(AlertError::MissingThreshold {
                    kind: "performance_degradation",
                    field: "threshold",
                })?;
                let threshold = finite_positive("threshold", t)?;
                if metric == PerformanceMetric::ErrorRate && threshold >= 1.0 {
                    return Err(AlertError::InvalidThreshold {
                        field: "threshold",
                        what: "a fraction below 1 for error_rate (0.05 = 5%)",
                        value: threshold,
                    });
                }
                let min_requests = self.min_requests.unwrap_or(1);
                if min_requests == 0 || min_requests > 1_000_000_000 {
                    return Err(AlertError::InvalidRule(
                        "min_requests: 1 to 1000000000".into(),
                    ));
                }
                Condition::Performance {
                    metric,
                    threshold,
                    min_requests,
                }
            }
            other => return Err(AlertError::UnknownKind(other.to_string())),
        };
        let window_minutes =
            parse_window(self.window.as_deref().ok_or(AlertError::MissingWindow)?)?;
        for (d, v) in self.filter.pairs() {
            if v.is_empty() || v.len() > 200 || v.chars().any(char::is_control) {
                return Err(AlertError::InvalidFilter(format!(
                    "filter.{d}: 1 to 200 characters, no control characters"
                )));
            }
        }
        Ok(Rule {
            condition,
            window_minutes,
            filter: self.filter.clone(),
        })
    }
}

impl Rule {
    /// The threshold, whatever the kind.
    pub fn threshold(&self) -> f64 {
        match self.condition {
            Condition::Cost { threshold_usd } => threshold_usd,
            Condition::Performance { threshold, .. } => threshold,
        }
    }

    /// The window ending with minute `now_minute` (included): `[from, to)`.
    pub fn window(&self, now_minute: u64) -> (u64, u64) {
        window_of(self.window_minutes, now_minute)
    }

    /// Judges `rows` (the tenant's usage: any minutes, nodes and dimensions; those
    /// outside the window or the filter are ignored) at `now` (Unix seconds), costed with
    /// `prices`. The usage query engine computes the value, grouped by the filtered
    /// dimensions; the series matching the filter is the rule's.
    pub fn evaluate(&self, rows: &[UsageRow], prices: &PriceBook, now: u64) -> Evaluation {
        let (from, to) = self.window(now / 60);
        let filter = self.filter.pairs();
        let q = Query {
            from,
            to,
            // Only totals matter; a day step keeps the per-point buckets to two at most.
            step: 1440,
            group_by: filter.iter().map(|(d, _)| d.to_string()).collect(),
            metrics: ["requests", "error_rate", "latency_p95", "cost"]
                .map(String::from)
                .to_vec(),
        };
        let out = q.run(rows, prices);
        let total = out["series"].as_array().and_then(|series| {
            series
                .iter()
                .find(|s| filter.iter().all(|(d, v)| s["group"][*d] == *v))
                .map(|s| &s["total"])
        });
        let num = |k: &str| total.and_then(|t| t[k].as_f64()).unwrap_or(0.0);
        let requests = total.and_then(|t| t["requests"].as_u64()).unwrap_or(0);
        let (value, breached) = match &self.condition {
            Condition::Cost { threshold_usd } => {
                let cost = num("cost");
                (cost, cost > *threshold_usd)
            }
            Condition::Performance {
                metric,
                threshold,
                min_requests,
            } => {
                let v = match metric {
                    PerformanceMetric::LatencyP95Ms => num("latency_p95"),
                    PerformanceMetric::ErrorRate => num("error_rate"),
                };
                (v, requests >= *min_requests && v > *threshold)
            }
        };
        Evaluation {
            value,
            threshold: self.threshold(),
            requests,
            breached,
            from_minute: from,
            to_minute: to,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Histogram, Price};
    use serde_json::json;

    fn spec(v: serde_json::Value) -> AlertSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn windows_are_whole_minutes_up_to_a_day() {
        assert_eq!(parse_window("1m"), Ok(1));
        assert_eq!(parse_window("90m"), Ok(90));
        assert_eq!(parse_window("2h"), Ok(120));
        assert_eq!(parse_window("1d"), Ok(1440));
        for bad in [
            "",
            "m",
            "0m",
            "2d",
            "1441m",
            "5s",
            "-1m",
            "1.5h",
            "+5m",
            "5 m",
            "99999999999999m",
        ] {
            assert_eq!(
                parse_window(bad).map_err(|e| e.code()),
                Err("invalid_window"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_rules_are_refused_with_a_code() {
        let code = |v: serde_json::Value| spec(v).validate().unwrap_err().code();
        assert_eq!(code(json!({"window": "5m"})), "missing_kind");
        assert_eq!(
            code(json!({"kind": "vibes", "window": "5m"})),
            "unknown_kind"
        );
        assert_eq!(
            code(json!({"kind": "cost_threshold", "window": "5m"})),
            "missing_threshold"
        );
        assert_eq!(
            code(
                json!({"kind": "performance_degradation", "metric": "error_rate", "window": "5m"})
            ),
            "missing_threshold"
        );
        assert_eq!(
            code(json!({"kind": "performance_degradation", "threshold": 1, "window": "5m"})),
            "missing_metric"
        );
        assert_eq!(
            code(
                json!({"kind": "performance_degradation", "metric": "latency_p42", "threshold": 1, "window": "5m"})
            ),
            "unknown_metric"
        );
        assert_eq!(
            code(json!({"kind": "cost_threshold", "threshold_usd": -1, "window": "5m"})),
            "invalid_threshold"
        );
        assert_eq!(
            code(
                json!({"kind": "performance_degradation", "metric": "error_rate", "threshold": 5, "window": "5m"})
            ),
            "invalid_threshold"
        );
        assert_eq!(
            code(json!({"kind": "cost_threshold", "threshold_usd": 1})),
            "invalid_window"
        );
        assert_eq!(
            code(json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "1w"})),
            "invalid_window"
        );
        assert_eq!(
            code(
                json!({"kind": "cost_threshold", "threshold_usd": 1, "threshold": 2, "window": "5m"})
            ),
            "invalid_rule"
        );
        assert_eq!(
            code(
                json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "5m", "filter": {"function": ""}})
            ),
            "invalid_filter"
        );
        assert!(
            serde_json::from_value::<AlertSpec>(json!({"kind": "cost_threshold", "bogus": 1}))
                .is_err(),
            "unknown fields are refused"
        );
        let r = spec(json!({"kind": "performance_degradation", "metric": "latency_p95_ms", "threshold": 250, "window": "1h", "filter": {"function": "f"}}))
            .validate()
            .unwrap();
        assert_eq!(r.window_minutes, 60);
        assert_eq!(
            r.condition,
            Condition::Performance {
                metric: PerformanceMetric::LatencyP95Ms,
                threshold: 250.0,
                min_requests: 1
            }
        );
        assert!(
            spec(json!({"kind": "cost_threshold", "threshold_usd": 1, "window": "5m"})).enabled
        );
    }

    fn row(minute: u64, f: &str, requests: u64, errors: u64, latency_ms: u64) -> UsageRow {
        let mut h = Histogram::default();
        for _ in 0..requests {
            h.observe_us(latency_ms * 1000);
        }
        UsageRow {
            tenant: "acme".into(),
            minute,
            node: "fra".into(),
            dims: [
                ("function".to_string(), f.to_string()),
                ("location".to_string(), "fra".to_string()),
            ]
            .into(),
            counters: [
                ("requests".to_string(), requests),
                ("errors".to_string(), errors),
            ]
            .into(),
            latency: h.0,
        }
    }

    #[test]
    fn performance_rules_judge_the_filtered_window() {
        let now_min = 28_000_000;
        let now = now_min * 60 + 30;
        let rule = spec(json!({"kind": "performance_degradation", "metric": "latency_p95_ms", "threshold": 100, "window": "2m", "min_requests": 3, "filter": {"function": "slow"}}))
            .validate()
            .unwrap();
        let book = PriceBook::default();
        // Slow calls of `slow` in the window, fast ones of another function.
        let rows = vec![
            row(now_min, "slow", 5, 0, 400),
            row(now_min, "fast", 100, 0, 1),
            row(now_min - 5, "slow", 100, 0, 1),
        ];
        let e = rule.evaluate(&rows, &book, now);
        assert!(e.breached, "{e:?}");
        assert_eq!(e.requests, 5);
        assert!(e.value >= 400.0, "{e:?}");
        assert_eq!((e.from_minute, e.to_minute), (now_min - 1, now_min + 1));
        // Too few requests: not breached, whatever the latency.
        let e = rule.evaluate(&[row(now_min, "slow", 2, 0, 900)], &book, now);
        assert!(!e.breached);
        // Once the slow minute is out of the window, fast calls resolve it.
        let later = (now_min + 2) * 60;
        let e = rule.evaluate(
            &[
                row(now_min, "slow", 5, 0, 400),
                row(now_min + 2, "slow", 5, 0, 2),
            ],
            &book,
            later,
        );
        assert!(!e.breached, "{e:?}");
        assert!(e.value < 100.0);
        // Nothing at all: not breached, value 0.
        let e = rule.evaluate(&[], &book, now);
        assert_eq!((e.breached, e.value, e.requests), (false, 0.0, 0));

        let errors = spec(json!({"kind": "performance_degradation", "metric": "error_rate", "threshold": 0.1, "window": "1m"}))
            .validate()
            .unwrap();
        let e = errors.evaluate(&[row(now_min, "a", 10, 2, 1)], &book, now);
        assert!(e.breached && (e.value - 0.2).abs() < 1e-9, "{e:?}");
        let e = errors.evaluate(&[row(now_min, "a", 10, 1, 1)], &book, now);
        assert!(!e.breached, "exactly the threshold does not fire: {e:?}");
    }

    #[test]
    fn cost_rules_use_the_price_in_force() {
        let now_min = 28_000_000;
        let now = now_min * 60;
        let rule = spec(json!({"kind": "cost_threshold", "threshold_usd": 1.0, "window": "1h"}))
            .validate()
            .unwrap();
        let book = PriceBook(vec![Price {
            per_1m_requests: 100_000.0,
            ..Default::default()
        }]);
        // 0.1 per request.
        let e = rule.evaluate(&[row(now_min, "a", 5, 0, 1)], &book, now);
        assert!(!e.breached && (e.value - 0.5).abs() < 1e-9, "{e:?}");
        let e = rule.evaluate(
            &[row(now_min, "a", 5, 0, 1), row(now_min - 59, "b", 6, 0, 1)],
            &book,
            now,
        );
        assert!(e.breached && (e.value - 1.1).abs() < 1e-9, "{e:?}");
        // Usage just outside the hour does not count.
        let e = rule.evaluate(&[row(now_min - 60, "b", 60, 0, 1)], &book, now);
        assert!(!e.breached, "{e:?}");
        // A filter on a location no row has matches nothing.
        let mut s = spec(json!({"kind": "cost_threshold", "threshold_usd": 1.0, "window": "1h"}));
        s.filter.location = Some("iad".into());
        let e = s
            .validate()
            .unwrap()
            .evaluate(&[row(now_min, "a", 50, 0, 1)], &book, now);
        assert_eq!((e.breached, e.requests), (false, 0));
    }
}
