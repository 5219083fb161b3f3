//! Quotas: per-tenant request rate (token bucket) and concurrent invocations per tenant
//! and per function. Over a limit, the caller gets 429 with `Retry-After`; nothing
//! queues (a hostile tenant cannot build a backlog that delays others).

use crate::error::{ErrorKind, NodeError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Invariant: both maps are bounded. Their keys are existing tenants and functions
/// (callers resolve before they admit) or fixed internal names, and eviction never
/// loosens a limit: a bucket is dropped least recently used first (one idle for a
/// second is full again anyway), and only semaphores no invocation holds are dropped
/// (an unheld one is the same as a fresh one).
pub struct Quotas {
    buckets: Mutex<lru::LruCache<String, (f64, Instant)>>,
    slots: Mutex<HashMap<(String, u32), Arc<Semaphore>>>,
}

/// Most token buckets kept.
const MAX_BUCKETS: usize = 65_536;
/// Past this many concurrency semaphores, the unheld ones are dropped.
const MAX_SLOTS: usize = 65_536;

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            buckets: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(MAX_BUCKETS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            slots: Mutex::default(),
        }
    }
}

/// Permits held while an invocation runs.
pub struct Held(#[allow(dead_code)] Vec<OwnedSemaphorePermit>);

impl Quotas {
    /// Takes one token from `tenant`'s bucket (refilled at `rps`, holding at most `rps`).
    pub fn rate(&self, tenant: &str, rps: u32) -> Result<(), NodeError> {
        let rate = f64::from(rps.max(1));
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, last) = m.get_or_insert_mut_ref(tenant, || (rate, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - *tokens) / rate).ceil().max(1.0) as u32;
        let mut e = NodeError::new(
            ErrorKind::Limited,
            "rate_limited",
            format!("tenant {tenant:?} is over its rate of {rps} requests/s"),
        );
        e.retry_after = Some(wait);
        Err(e)
    }

    /// One concurrency slot of `key` (at most `max` at once), without waiting.
    fn slot(&self, key: &str, max: u32) -> Result<OwnedSemaphorePermit, NodeError> {
        let sem = {
            let mut m = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if m.len() >= MAX_SLOTS {
                // Held permits keep their semaphore alive: count > 1 means in use.
                m.retain(|_, s| Arc::strong_count(s) > 1);
            }
            m.entry((key.to_string(), max))
                .or_insert_with(|| Arc::new(Semaphore::new(max as usize)))
                .clone()
        };
        sem.try_acquire_owned().map_err(|_| {
            let mut e = NodeError::new(
                ErrorKind::Limited,
                "concurrency_limited",
                format!("{key} already runs {max} invocations at once"),
            );
            e.retry_after = Some(1);
            e
        })
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (
            self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len(),
            self.slots.lock().unwrap_or_else(|p| p.into_inner()).len(),
        )
    }

    /// Rate and concurrency checks for one invocation of `tenant/function`.
    pub fn admit(
        &self,
        tenant: &str,
        function: &str,
        limits: &helixflow_store::registry::TenantLimits,
        function_max: Option<u32>,
    ) -> Result<Held, NodeError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_stay_bounded_and_held_slots_survive() {
        let q = Quotas::default();
        let held = q.slot("function acme/busy", 1).expect("first slot");
        for i in 0..(MAX_SLOTS + 10) {
            let _ = q.rate(&format!("t{i}"), 5);
            drop(q.slot(&format!("function t{i}/f"), 3));
        }
        let (buckets, slots) = q.sizes();
        assert!(
            buckets <= MAX_BUCKETS && slots <= MAX_SLOTS,
            "{buckets} buckets, {slots} slots"
        );
        assert!(
            q.slot("function acme/busy", 1).is_err(),
            "a held semaphore is never dropped"
        );
        drop(held);
        assert!(q.slot("function acme/busy", 1).is_ok());
    }
}
