//! Budgets: monthly spend caps and OpenAI-style rate limits (requests and tokens per
//! minute), per tenant and per caller; the calendar month a cap covers; and the token
//! bucket the rate limits are enforced with.
//!
//! What is pure lives here (the model, its validation, the arithmetic); the node keeps
//! the live state (`helixflow_node::budget`).

use crate::UsageError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most per-caller entries one budget holds.
pub const MAX_CALLERS: usize = 1000;

/// Limits of one scope (the tenant, or one caller in it). Absent: no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Hard cap on the calendar month's spend (UTC; in the price table's currency).
    /// Reached: new invocations are refused (HTTP 429) until the month ends or the cap
    /// is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_spend: Option<f64>,
    /// Soft cap: crossing it notifies (an audit record, a log line, a metric); nothing
    /// is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_spend: Option<f64>,
    /// Requests per minute on the OpenAI-compatible API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens per minute on the OpenAI-compatible API (prompt + completion + embedding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

impl Limits {
    fn validate(&self, at: &str) -> Result<(), UsageError> {
        for (name, v) in [
            ("monthly_spend", self.monthly_spend),
            ("soft_spend", self.soft_spend),
        ] {
            if let Some(v) = v
                && (!v.is_finite() || v < 0.0)
            {
                return Err(UsageError::new(
                    "invalid_budget",
                    format!("{at}.{name} must be a non-negative number, not {v}"),
                ));
            }
        }
        if self.rpm == Some(0) || self.tpm == Some(0) {
            return Err(UsageError::new(
                "invalid_budget",
                format!("{at}: rpm and tpm must be at least 1 (leave them out for no limit)"),
            ));
        }
        Ok(())
    }

    /// Whether any spend cap is set.
    pub fn caps_spend(&self) -> bool {
        self.monthly_spend.is_some() || self.soft_spend.is_some()
    }

    /// Whether any rate limit is set.
    pub fn limits_rate(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }
}

/// A tenant's budget: its own limits and those of single callers (`key:{prefix}`,
/// `jwt:{sub}`, `ak:{access key id}`: the `key` dimension of usage).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default)]
    pub tenant: Limits,
    #[serde(default)]
    pub callers: BTreeMap<String, Limits>,
}

impl Budget {
    pub fn validate(&self) -> Result<(), UsageError> {
        self.tenant.validate("tenant")?;
        if self.callers.len() > MAX_CALLERS {
            return Err(UsageError::new(
                "invalid_budget",
                format!(
                    "at most {MAX_CALLERS} callers per budget, not {}",
                    self.callers.len()
                ),
            ));
        }
        for (who, l) in &self.callers {
            let known = ["key:", "jwt:", "ak:"].iter().any(|p| who.starts_with(p));
            if !known || who.len() > 256 || who.chars().any(char::is_control) {
                return Err(UsageError::new(
                    "invalid_budget",
                    format!(
                        "callers: {who:?} is not a caller: use key:{{prefix}}, jwt:{{subject}} or ak:{{access key id}}"
                    ),
                ));
            }
            l.validate(&format!("callers[{who:?}]"))?;
        }
        Ok(())
    }

    /// The limits that apply to `caller` besides the tenant's, if any.
    pub fn caller(&self, caller: &str) -> Option<&Limits> {
        self.callers.get(caller)
    }

    pub fn caps_spend(&self) -> bool {
        self.tenant.caps_spend() || self.callers.values().any(Limits::caps_spend)
    }

    pub fn limits_rate(&self) -> bool {
        self.tenant.limits_rate() || self.callers.values().any(Limits::limits_rate)
    }
}

/// The calendar month (UTC) holding `unix`: `(yyyymm, first minute, first second of
/// the next month)`.
pub fn month_of(unix: u64) -> (u32, u64, u64) {
    let t = time::OffsetDateTime::from_unix_timestamp(unix.min(253_402_300_799) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m) = (t.year(), t.month());
    let start = time::Date::from_calendar_date(y, m, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(0);
    let (ny, nm) = if m == time::Month::December {
        (y + 1, time::Month::January)
    } else {
        (y, m.next())
    };
    let next = time::Date::from_calendar_date(ny, nm, 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(start + 31 * 86_400);
    (
        (y as u32) * 100 + m as u32,
        start.max(0) as u64 / 60,
        next.max(0) as u64,
    )
}

/// A token bucket holding at most `capacity` (a per-minute limit), refilled
/// continuously at `capacity` per minute, as OpenAI's limits replenish. Times are
/// seconds on any monotonic clock.
///
/// Its level may go below zero: usage the node learns of after the fact (other nodes'
/// requests, a generation longer than reserved) is still owed, and delays what follows.
#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    level: f64,
    at: f64,
}

impl Bucket {
    pub fn new(per_minute: u64, now: f64) -> Bucket {
        let capacity = per_minute.max(1) as f64;
        Bucket {
            capacity,
            level: capacity,
            at: now,
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity as u64
    }

    fn refill(&mut self, now: f64) {
        if now > self.at {
            self.level = (self.level + (now - self.at) * self.capacity / 60.0).min(self.capacity);
            self.at = now;
        }
    }

    /// Seconds until `n` (at most the capacity) is available; 0 when it is now.
    pub fn wait_for(&mut self, n: u64, now: f64) -> f64 {
        self.refill(now);
        let n = (n as f64).min(self.capacity);
        if self.level >= n {
            0.0
        } else {
            (n - self.level) * 60.0 / self.capacity
        }
    }

    /// Takes `n`, even past zero (check [`Bucket::wait_for`] first to refuse instead).
    pub fn take(&mut self, n: u64, now: f64) {
        self.refill(now);
        self.level -= n as f64;
    }

    /// Gives back `n` taken earlier (a reservation larger than the use); never past the capacity.
    pub fn give_back(&mut self, n: u64, now: f64) {
        self.refill(now);
        self.level = (self.level + n as f64).min(self.capacity);
    }

    /// What may be taken now.
    pub fn remaining(&mut self, now: f64) -> u64 {
        self.refill(now);
        self.level.max(0.0) as u64
    }

    /// Seconds until the bucket is full again.
    pub fn reset_secs(&mut self, now: f64) -> f64 {
        self.refill(now);
        (self.capacity - self.level).max(0.0) * 60.0 / self.capacity
    }
}

/// A duration as OpenAI writes `x-ratelimit-reset-*`: `20ms`, `1s`, `6m0s`.
pub fn openai_duration(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).ceil() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms.div_ceil(1000);
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_validated_with_a_code() {
        let bad: Vec<serde_json::Value> = vec![
            serde_json::json!({"tenant": {"monthly_spend": -1.0}}),
            serde_json::json!({"tenant": {"rpm": 0}}),
            serde_json::json!({"callers": {"hfk_ab": {"rpm": 5}}}),
            serde_json::json!({"callers": {"key:ab": {"tpm": 0}}}),
        ];
        for b in bad {
            let budget: Budget = serde_json::from_value(b.clone()).unwrap();
            let e = budget.validate().unwrap_err();
            assert_eq!(e.code, "invalid_budget", "{b}");
        }
        assert!(
            serde_json::from_value::<Budget>(serde_json::json!({"tenant": {"monthy_spend": 5}}))
                .is_err(),
            "unknown fields are refused"
        );
        let ok: Budget = serde_json::from_value(serde_json::json!({
            "tenant": {"monthly_spend": 10.0, "soft_spend": 8.0, "rpm": 60, "tpm": 1000},
            "callers": {"key:hfk_ab": {"monthly_spend": 1.0}}
        }))
        .unwrap();
        ok.validate().unwrap();
        assert!(ok.caps_spend() && ok.limits_rate());
        assert_eq!(ok.caller("key:hfk_ab").unwrap().monthly_spend, Some(1.0));
    }

    #[test]
    fn months_start_on_the_first_at_midnight_utc() {
        // 2026-12-15T10:00:00Z
        let (ym, start, next) = month_of(1_797_328_800);
        assert_eq!(ym, 202612);
        assert_eq!(start * 60, 1_796_083_200, "2026-12-01T00:00:00Z");
        assert_eq!(next, 1_798_761_600, "2027-01-01T00:00:00Z");
        let (ym, start, _) = month_of(next);
        assert_eq!((ym, start * 60), (202701, next));
    }

    #[test]
    fn the_bucket_refills_per_minute_and_owes_late_usage() {
        let mut b = Bucket::new(60, 0.0);
        assert_eq!(b.wait_for(1, 0.0), 0.0);
        for _ in 0..60 {
            b.take(1, 0.0);
        }
        assert_eq!(b.remaining(0.0), 0);
        assert!((b.wait_for(1, 0.0) - 1.0).abs() < 1e-9, "one per second");
        assert_eq!(b.remaining(10.0), 10);
        // Usage learnt late (another node) is owed.
        b.take(30, 10.0);
        assert!((b.wait_for(1, 10.0) - 21.0).abs() < 1e-9);
        b.give_back(100, 10.0);
        assert_eq!(b.remaining(10.0), 60, "never past the capacity");
        assert!((b.reset_secs(10.0)).abs() < 1e-9);
        // A request larger than the limit waits for a full bucket, not forever.
        let mut b = Bucket::new(100, 0.0);
        assert_eq!(b.wait_for(1000, 0.0), 0.0);
    }

    #[test]
    fn durations_are_written_as_openai_does() {
        assert_eq!(openai_duration(0.017), "17ms");
        assert_eq!(openai_duration(1.0), "1s");
        assert_eq!(openai_duration(1.2), "2s");
        assert_eq!(openai_duration(360.0), "6m0s");
        assert_eq!(openai_duration(-3.0), "0ms");
    }
}
