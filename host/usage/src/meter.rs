//! The in-memory side of metering: running totals per (tenant, minute, dimensions).

use crate::Histogram;
use helixflow_store::usage::UsageRow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The dimensions of a sample: `function`, `version`, `trigger`, `location`, `key` (the
/// caller: key prefix, access key id or token subject; never a secret), `model`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dims(pub BTreeMap<&'static str, String>);

impl Dims {
    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.0.insert(name, value.into());
        self
    }
}

/// One finished invocation.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub wall: Duration,
    /// The invocation's memory ceiling (what GB-seconds are billed on).
    pub memory_mb: u64,
    pub error: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Tokens through `helixflow:llm` (host-counted).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The counters every invocation adds to (in this order in [`Totals::fixed`]).
const INVOCATION_COUNTERS: [&str; 8] = [
    "requests",
    "errors",
    "wall_ms",
    "mb_ms",
    "bytes_in",
    "bytes_out",
    "prompt_tokens",
    "completion_tokens",
];

impl Sample {
    /// What the sample adds to its series' counters, in [`INVOCATION_COUNTERS`] order.
    fn counter_values(&self) -> [u64; 8] {
        // Billed per started millisecond, as Lambda bills GB-seconds.
        let billed_ms = (self.wall.as_micros() as u64).div_ceil(1000).max(1);
        [
            1,
            u64::from(self.error),
            self.wall.as_millis() as u64,
            // MB x ms; GB-seconds = mb_ms / 1024 / 1000.
            self.memory_mb * billed_ms,
            self.bytes_in,
            self.bytes_out,
            self.prompt_tokens,
            self.completion_tokens,
        ]
    }

    /// The sample's counters, as a usage row holds them (for pricing one invocation).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        INVOCATION_COUNTERS
            .iter()
            .zip(self.counter_values())
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect()
    }
}

/// Running totals of one series. The counters every invocation touches are a fixed
/// array (no map lookups on the hot path); others (`add`) go to `extra`.
#[derive(Default)]
struct Totals {
    fixed: [u64; 8],
    extra: BTreeMap<&'static str, u64>,
    latency: Histogram,
}

impl Totals {
    fn add(&mut self, name: &'static str, n: u64) {
        match INVOCATION_COUNTERS.iter().position(|c| *c == name) {
            Some(i) => self.fixed[i] += n,
            None => *self.extra.entry(name).or_default() += n,
        }
    }

    /// The counters as a row holds them: only those that are not zero.
    fn counters(&self) -> BTreeMap<String, u64> {
        INVOCATION_COUNTERS
            .iter()
            .zip(self.fixed)
            .chain(self.extra.iter().map(|(k, v)| (k, *v)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.to_string(), n))
            .collect()
    }
}

/// A series of one tenant: (minute, dimensions).
type Series = (u64, Dims);

/// Per-minute usage totals of one node process, waiting to be flushed.
///
/// Invariant: bounded per tenant. Past `max_series` series of one tenant, its new
/// series fold into one `overflow` series per minute (keeping the `model` dimension, so
/// model prices still apply), counted in [`Meter::overflowed`]; past
/// `max_series + OVERFLOW_HEADROOM` (a long store outage: nothing can be forgotten)
/// samples are dropped and counted in [`Meter::dropped`]. Tenants are real tenants (an
/// invocation needs one), so the whole meter is bounded too.
pub struct Meter {
    /// Who writes these totals: the node id plus a per-process suffix, so a restarted
    /// node (or two nodes given the same id) never overwrites totals written before.
    writer: String,
    max_series: usize,
    /// Tenant -> its series (looked up by `&str`: no allocation for a known tenant). A
    /// known series costs one hash of its dimensions per sample. The hasher is std's
    /// randomly keyed SipHash: dimension values come from tenants (function names, a
    /// JWT's `sub`), so colliding keys must not be craftable.
    series: Mutex<HashMap<String, HashMap<Series, Totals>>>,
    /// Series held, across tenants.
    count: AtomicU64,
    overflowed: AtomicU64,
    dropped: AtomicU64,
}

/// Overflow series a tenant may add past its cap (one per minute while nothing can be
/// flushed) before samples are dropped.
const OVERFLOW_HEADROOM: usize = 240;

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Meter {
    /// `writer`: unique per process (e.g. `{node id}~{random}`).
    pub fn new(writer: &str, max_series: usize) -> Self {
        Meter {
            writer: writer.to_string(),
            max_series: max_series.max(1),
            series: Mutex::default(),
            count: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Samples folded into an overflow series since start.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }

    /// Samples dropped since start (a tenant past its cap and headroom).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Who writes this meter's totals (the `node` of its rows).
    pub fn writer(&self) -> &str {
        &self.writer
    }

    fn with_totals(&self, tenant: &str, dims: Dims, f: impl FnOnce(&mut Totals)) {
        let minute = now_unix() / 60;
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mine = match m.get_mut(tenant) {
            Some(t) => t,
            None => m.entry(tenant.to_string()).or_default(),
        };
        let mut key = (minute, dims);
        // The common case: a known series, one lookup.
        if let Some(t) = mine.get_mut(&key) {
            f(t);
            return;
        }
        if mine.len() >= self.max_series {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
            let mut overflow = Dims::default().with("overflow", "true");
            if let Some(model) = key.1.0.get("model") {
                overflow = overflow.with("model", model.clone());
            }
            key.1 = overflow;
            if let Some(t) = mine.get_mut(&key) {
                f(t);
                return;
            }
            if mine.len() >= self.max_series + OVERFLOW_HEADROOM {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        f(mine.entry(key).or_default());
    }

    /// Adds one finished invocation.
    pub fn invocation(&self, tenant: &str, dims: Dims, s: &Sample) {
        self.with_totals(tenant, dims, |t| {
            for (total, n) in t.fixed.iter_mut().zip(s.counter_values()) {
                *total += n;
            }
            t.latency.observe_us(s.wall.as_micros() as u64);
        });
    }

    /// Adds `n` to a counter (tokens, images) of a series.
    pub fn add(&self, tenant: &str, dims: Dims, counter: &'static str, n: u64) {
        self.with_totals(tenant, dims, |t| t.add(counter, n));
    }

    /// The totals to write now: every series, as rows. Series of minutes before the last
    /// complete one are `closed`: once written they can be forgotten ([`Meter::forget`]).
    pub fn snapshot(&self) -> (Vec<UsageRow>, Vec<(String, u64, Dims)>) {
        let now_minute = now_unix() / 60;
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows = Vec::new();
        let mut closed = Vec::new();
        for (tenant, series) in m.iter() {
            for ((minute, dims), t) in series {
                rows.push(self.row(tenant, *minute, dims, t));
                // One minute of grace: a sample stamped just before a minute ended may
                // land after the snapshot; it is written by the next flush.
                if minute + 1 < now_minute {
                    closed.push((tenant.clone(), *minute, dims.clone()));
                }
            }
        }
        (rows, closed)
    }

    fn row(&self, tenant: &str, minute: u64, dims: &Dims, t: &Totals) -> UsageRow {
        UsageRow {
            tenant: tenant.to_string(),
            minute,
            node: self.writer.clone(),
            dims: dims
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            counters: t.counters(),
            latency: t.latency.0.clone(),
        }
    }

    /// One tenant's series as rows (for answering a query; nothing is forgotten).
    pub fn tenant_rows(&self, tenant: &str) -> Vec<UsageRow> {
        let m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        m.get(tenant)
            .into_iter()
            .flatten()
            .map(|((minute, dims), t)| self.row(tenant, *minute, dims, t))
            .collect()
    }

    /// Forgets series that were written and are closed.
    pub fn forget(&self, closed: Vec<(String, u64, Dims)>) {
        let mut m = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (tenant, minute, dims) in closed {
            if let Some(series) = m.get_mut(&tenant) {
                if series.remove(&(minute, dims)).is_some() {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
                if series.is_empty() {
                    m.remove(&tenant);
                }
            }
        }
    }

    /// Series held in memory.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_add_up_per_series_and_stay_bounded() {
        let m = Meter::new("fra", 3);
        let dims = |f: &str| Dims::default().with("function", f.to_string());
        let s = Sample {
            wall: Duration::from_millis(20),
            memory_mb: 128,
            error: false,
            bytes_in: 10,
            bytes_out: 5,
            ..Default::default()
        };
        for _ in 0..4 {
            m.invocation("acme", dims("a"), &s);
        }
        m.invocation(
            "acme",
            dims("b"),
            &Sample {
                error: true,
                ..s.clone()
            },
        );
        m.add("acme", dims("a"), "prompt_tokens", 7);
        m.add("acme", dims("a"), "images", 2);
        for i in 0..100 {
            m.invocation("acme", dims(&format!("bogus{i}")), &s);
        }
        assert!(m.len() <= 4, "3 series + one overflow series: {}", m.len());
        assert_eq!(m.dropped(), 0);
        assert!(m.overflowed() >= 99);
        let (rows, _) = m.snapshot();
        let a = rows
            .iter()
            .find(|r| r.dims.get("function").map(String::as_str) == Some("a"))
            .unwrap();
        assert_eq!(a.counters["requests"], 4);
        assert_eq!(a.counters["prompt_tokens"], 7);
        assert_eq!(a.counters["images"], 2);
        // Counters that stayed zero are not written (absent reads as zero).
        assert!(
            !a.counters.contains_key("errors") && !a.counters.contains_key("completion_tokens")
        );
        assert_eq!(a.counters["mb_ms"], 4 * 128 * 20);
        assert_eq!(a.counters["bytes_in"], 40);
        assert_eq!(a.node, "fra");
        // Another tenant is not affected by acme's overflow.
        m.invocation("globex", dims("g"), &s);
        let (rows, _) = m.snapshot();
        assert!(rows.iter().any(
            |r| r.tenant == "globex" && r.dims.get("function").map(String::as_str) == Some("g")
        ));
        let b = rows
            .iter()
            .find(|r| r.dims.get("function").map(String::as_str) == Some("b"))
            .unwrap();
        assert_eq!(b.counters["errors"], 1);
    }
}
