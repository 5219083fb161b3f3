//! Recent invocation logs per function (captured stdout/stderr, size-capped), kept in
//! memory on this node.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One invocation as kept in memory (cheap to record: no formatting on the hot path).
#[derive(Debug, Clone)]
pub struct LogRecord {
    pub request_id: String,
    pub version: u32,
    pub trigger: &'static str,
    pub outcome: &'static str,
    pub duration: std::time::Duration,
    pub at: std::time::SystemTime,
    pub stdout: bytes::Bytes,
    pub stderr: bytes::Bytes,
    pub truncated: bool,
}

/// The JSON view of a record.
#[derive(Debug, Serialize)]
pub struct LogView {
    pub request_id: String,
    pub version: u32,
    pub trigger: &'static str,
    pub outcome: &'static str,
    pub duration_us: u64,
    pub at: String,
    pub stdout: String,
    pub stderr: String,
    pub truncated: bool,
}

impl From<&LogRecord> for LogView {
    fn from(r: &LogRecord) -> Self {
        LogView {
            request_id: r.request_id.clone(),
            version: r.version,
            trigger: r.trigger,
            outcome: r.outcome,
            duration_us: r.duration.as_micros() as u64,
            at: time::OffsetDateTime::from(r.at)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
            truncated: r.truncated,
        }
    }
}

pub struct LogBook {
    per_function: usize,
    inner: Mutex<HashMap<(String, String), VecDeque<LogRecord>>>,
}

impl LogBook {
    pub fn new(per_function: usize) -> Self {
        LogBook {
            per_function: per_function.max(1),
            inner: Mutex::new(HashMap::new()),
        }
    }

    pub fn push(&self, tenant: &str, function: &str, rec: LogRecord) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let q = g
            .entry((tenant.to_string(), function.to_string()))
            .or_default();
        if q.len() == self.per_function {
            q.pop_front();
        }
        q.push_back(rec);
    }

    /// Newest first.
    pub fn recent(&self, tenant: &str, function: &str, limit: usize) -> Vec<LogView> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&(tenant.to_string(), function.to_string()))
            .map(|q| q.iter().rev().take(limit).map(LogView::from).collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, tenant: &str, function: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.to_string(), function.to_string()));
    }
}
