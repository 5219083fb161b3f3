//! Quotas: per-tenant request rate (token bucket) and concurrent invocations per tenant
//! and per function. Over a limit, the caller gets 429 with `Retry-After`; nothing
//! queues (a hostile tenant cannot build a backlog that delays others).

use crate::error::ApiError;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Default)]
pub struct Quotas {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    slots: Mutex<HashMap<(String, u32), Arc<Semaphore>>>,
}

/// Permits held while an invocation runs.
pub struct Held(#[allow(dead_code)] Vec<OwnedSemaphorePermit>);

impl Quotas {
    /// Takes one token from `tenant`'s bucket (refilled at `rps`, holding at most `rps`).
    pub fn rate(&self, tenant: &str, rps: u32) -> Result<(), ApiError> {
        let rate = f64::from(rps.max(1));
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = m.entry(tenant.to_string()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - *tokens) / rate).ceil().max(1.0) as u32;
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("tenant {tenant:?} is over its rate of {rps} requests/s"),
        );
        e.retry_after = Some(wait);
        Err(e)
    }

    /// One concurrency slot of `key` (at most `max` at once), without waiting.
    fn slot(&self, key: &str, max: u32) -> Result<OwnedSemaphorePermit, ApiError> {
        let sem = {
            let mut m = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            m.entry((key.to_string(), max)).or_insert_with(|| Arc::new(Semaphore::new(max as usize))).clone()
        };
        sem.try_acquire_owned().map_err(|_| {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "concurrency_limited",
                format!("{key} already runs {max} invocations at once"),
            );
            e.retry_after = Some(1);
            e
        })
    }

    /// Rate and concurrency checks for one invocation of `tenant/function`.
    pub fn admit(
        &self,
        tenant: &str,
        function: &str,
        limits: &helixflow_store::registry::TenantLimits,
        function_max: Option<u32>,
    ) -> Result<Held, ApiError> {
        if let Some(rps) = limits.max_rps {
            self.rate(tenant, rps)?;
        }
        let mut held = Vec::new();
        if let Some(max) = limits.max_concurrency {
            held.push(self.slot(&format!("tenant {tenant}"), max)?);
        }
        if let Some(max) = function_max {
            held.push(self.slot(&format!("function {tenant}/{function}"), max)?);
        }
        Ok(Held(held))
    }
}
