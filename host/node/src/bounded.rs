//! Bounded in-memory maps for node that requests can create.
//!
//! Invariant: every map in this crate whose keys come from a request (a name in a path,
//! a key prefix in a header) has a fixed upper bound on its entries, so a caller cannot
//! grow the node's memory by sending many distinct names. Caches that remember *absent*
//! things are kept apart from caches of real things, so a flood of bogus names can only
//! evict other bogus names, never a real tenant's entries.

use lru::LruCache;
use std::borrow::Borrow;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A least-recently-used map of at most `cap` entries, each valid for `ttl` after it
/// was inserted (an expired entry reads as absent and is dropped).
pub struct TtlCache<K: Hash + Eq, V: Clone> {
    map: Mutex<LruCache<K, (Instant, V)>>,
    ttl: Duration,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// `cap` is raised to 1 if 0.
    pub fn new(cap: usize, ttl: Duration) -> Self {
        TtlCache {
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN),
            )),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, (Instant, V)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value for `k` if it is there and younger than the TTL.
    pub fn get<Q>(&self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut m = self.lock();
        match m.get(k) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                m.pop(k);
                None
            }
            None => None,
        }
    }

    /// Insert (or replace) `k`, evicting the least recently used entry when full.
    pub fn insert(&self, k: K, v: V) {
        self.lock().put(k, (Instant::now(), v));
    }

    pub fn remove<Q>(&self, k: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().pop(k);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Cached store lookups by a key a request names: what was found and what was not, in
/// two bounded maps, so made-up keys evict only made-up keys.
pub struct LookupCache<V: Clone> {
    found: TtlCache<String, V>,
    missing: TtlCache<String, ()>,
}

impl<V: Clone> LookupCache<V> {
    /// Up to `found_cap` found and `missing_cap` missing keys, each for `ttl`.
    pub fn new(found_cap: usize, missing_cap: usize, ttl: Duration) -> Self {
        LookupCache {
            found: TtlCache::new(found_cap, ttl),
            missing: TtlCache::new(missing_cap, ttl),
        }
    }

    /// `Some(Some(v))`: found; `Some(None)`: known to be missing; `None`: not cached.
    pub fn get(&self, k: &str) -> Option<Option<V>> {
        if let Some(v) = self.found.get(k) {
            return Some(Some(v));
        }
        self.missing.get(k).map(|()| None)
    }

    pub fn insert(&self, k: &str, v: Option<V>) {
        match v {
            Some(v) => {
                self.missing.remove(k);
                self.found.insert(k.to_string(), v);
            }
            None => {
                self.found.remove(k);
                self.missing.insert(k.to_string(), ());
            }
        }
    }

    pub fn clear(&self) {
        self.found.clear();
        self.missing.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let c = TtlCache::new(100, Duration::from_secs(60));
        for i in 0..20_000 {
            c.insert(format!("bogus-{i}"), ());
        }
        assert_eq!(c.len(), 100, "never more than the cap");
        assert!(c.get("bogus-0").is_none(), "the oldest were evicted");
        assert!(c.get("bogus-19999").is_some());
        let short = TtlCache::new(10, Duration::from_millis(1));
        short.insert("a".to_string(), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.get("a"), None, "expired entries read as absent");
        assert_eq!(short.len(), 0, "and are dropped");
    }

    #[test]
    fn bogus_keys_never_evict_found_ones() {
        let c = LookupCache::new(10, 10, Duration::from_secs(60));
        c.insert("real", Some(1));
        for i in 0..20_000 {
            c.insert(&format!("bogus-{i}"), None);
        }
        assert_eq!(c.get("real"), Some(Some(1)));
        assert_eq!(c.get("bogus-19999"), Some(None));
        assert_eq!(c.get("bogus-0"), None, "old misses are forgotten");
    }
}
