//! Prefix caching: the KV cache of a prompt's beginning, computed once and reused by
//! new sequences of the same model and tenant.
//!
//! Chat prompts of one tenant start alike (the default system prompt, the tenant's
//! fixed instructions, the earlier turns of a conversation). When a sequence's prompt
//! has been run, its cache (up to [`MAX_PREFIX`] positions) is copied into this
//! model's prefix cache under its tenant and tokens. A new sequence whose prompt shares
//! at least [`MIN_PREFIX`] leading tokens with an entry of the same tenant starts with
//! a copy of those positions and runs only the rest of its prompt.
//!
//! Invariants:
//! * Entries are per tenant: a lookup only ever sees its own tenant's entries, so no
//!   tenant can learn (from timings or results) what another tenant's prompts were.
//! * Reuse is exact: the cache at position `i` of a causal model depends only on tokens
//!   `0..=i`, and runs are row-independent, so what matters is that every position goes
//!   through the same kind of run as in an unshared prompt: prompts run in chunks that
//!   end at multiples of [`PREFILL_CHUNK`] counted from position 0 (a reusing prompt
//!   runs the rest of its first chunk), the first run after the reused positions holds
//!   at least two rows, the prompt's last run too ([`MIN_SUFFIX`]), and a position an
//!   unshared prompt computed in a one-row run (its last, when the last chunk holds one
//!   token) is never kept (one-row runs take ONNX Runtime's matrix-vector paths, whose
//!   rounding differs). Models whose rows depend on each other within a run (per-tensor
//!   activation quantisation: `DynamicQuantize*`, `QAttention`) get no prefix cache.
//! * Every byte an entry holds is charged to its tenant against the node's KV budget
//!   ([`super::KvBudget`]) as long as the entry lives; the cache also keeps its own
//!   byte limit (LRU eviction; a tenant holding over half of it evicts its own entries
//!   first). Entries are only a cache: when a run cannot reserve its bytes, the
//!   scheduler sheds the tenant's entries in every model (everyone's when the node-wide
//!   limit refused; [`super::KvBudget::shed_prefixes`]) before it makes the run wait.
//! * What a tenant can observe of others: only that the cache is shared in size (an
//!   entry of its own may be evicted by others' use, as in any shared cache), never
//!   which prompts they ran.

use super::{Charge, Kv, KvBudget, KvStorage, PREFILL_CHUNK};
use std::sync::{Arc, Mutex};

/// Shortest shared beginning worth reusing.
pub const MIN_PREFIX: usize = 16;
/// Positions of one prompt kept at most (a longer prompt keeps its first ones).
pub const MAX_PREFIX: usize = 1024;
/// Prompt tokens a reusing sequence still runs itself (see the module's invariants).
pub const MIN_SUFFIX: usize = 2;

/// One model's prefix cache (see the module documentation).
pub(crate) struct PrefixCache {
    /// Bytes all entries may hold together; 0 disables the cache.
    limit: u64,
    budget: Arc<KvBudget>,
    /// Cache tensors (2 per layer), heads per tensor, bytes per (head, position).
    tensors: usize,
    heads: usize,
    row_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    bytes: u64,
    clock: u64,
}

struct Entry {
    tenant: Arc<str>,
    tokens: Vec<u32>,
    /// Per cache tensor: `[heads, tokens.len(), head_dim]` f32, head-major.
    kv: Arc<Vec<Vec<u8>>>,
    last_used: u64,
    /// What the entry holds, against its tenant's share of the KV budget.
    charge: Charge,
}

/// Leading tokens `a` and `b` share.
fn common(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixCache {
    pub(crate) fn new(
        limit: u64,
        budget: Arc<KvBudget>,
        tensors: usize,
        heads: usize,
        row_bytes: usize,
    ) -> PrefixCache {
        PrefixCache {
            limit,
            budget,
            tensors,
            heads,
            row_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn enabled(&self) -> bool {
        self.limit > 0
    }

    fn per_position(&self) -> u64 {
        (self.tensors * self.heads * self.row_bytes) as u64
    }

    /// Bytes the entries hold.
    pub(crate) fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// A cache for a new sequence of `tenant` about to run `tokens`: the positions it
    /// shares with the best entry of that tenant (at most `tokens.len() - MIN_SUFFIX`),
    /// copied and charged to the tenant; `None` when no entry shares [`MIN_PREFIX`]
    /// tokens or the budget cannot take the copy.
    pub(crate) fn lookup(&self, tenant: &Arc<str>, tokens: &[u32]) -> Option<Kv> {
        if !self.enabled() || tokens.len() < MIN_PREFIX + MIN_SUFFIX {
            return None;
        }
        let most = tokens.len() - MIN_SUFFIX;
        let (kv, entry_len, n) = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            let (i, mut n) = inner
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.tenant == *tenant)
                .map(|(i, e)| (i, common(&e.tokens, tokens).min(most)))
                .max_by_key(|&(i, n)| (n, i))?;
            // The rest of the chunk the reuse ends in must be two rows or more.
            if n % PREFILL_CHUNK == PREFILL_CHUNK - 1 {
                n -= 1;
            }
            if n < MIN_PREFIX {
                return None;
            }
            let e = &mut inner.entries[i];
            e.last_used = now;
            (e.kv.clone(), e.tokens.len(), n)
        };
        let charge = self
            .budget
            .reserve(tenant, self.per_position() * n as u64, 0)
            .ok()?;
        let rb = self.row_bytes;
        let tensors = kv
            .iter()
            .map(|t| {
                let mut out = Vec::with_capacity(self.heads * n * rb);
                for h in 0..self.heads {
                    let start = h * entry_len * rb;
                    out.extend_from_slice(&t[start..start + n * rb]);
                }
                out
            })
            .collect();
        Some(Kv {
            len: n,
            storage: KvStorage::Host(tensors, charge),
            tenant: tenant.clone(),
        })
    }

    /// Keeps the cache of a prompt a sequence of `tenant` just ran (`kv` holds at least
    /// `tokens.len()` positions: the prompt's), unless an entry of the tenant already
    /// covers it. Entries the prompt extends (an earlier turn of the same conversation)
    /// are replaced by it.
    pub(crate) fn insert(&self, tenant: &Arc<str>, tokens: &[u32], kv: &Kv) {
        // A last chunk of one token ran alone in a one-row run: not kept.
        let computed = if tokens.len() % PREFILL_CHUNK == 1 && tokens.len() > 1 {
            tokens.len() - 1
        } else {
            tokens.len()
        };
        let n = computed.min(MAX_PREFIX).min(kv.len);
        if !self.enabled() || n < MIN_PREFIX {
            return;
        }
        let tokens = &tokens[..n];
        let bytes = self.per_position() * n as u64;
        if bytes > self.limit {
            return;
        }
        {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(e) = inner
                .entries
                .iter_mut()
                .find(|e| e.tenant == *tenant && common(&e.tokens, tokens) == n)
            {
                e.last_used = now;
                return;
            }
        }
        // Charged before the copy is made (so the budget bounds it), and for good once kept.
        let Ok(charge) = self.budget.reserve(tenant, bytes, 0) else {
            return;
        };
        let rb = self.row_bytes;
        let copy: Vec<Vec<u8>> = (0..self.tensors)
            .map(|l| {
                let mut out = Vec::with_capacity(self.heads * n * rb);
                for h in 0..self.heads {
                    out.extend_from_slice(&kv.head(l, h, self.heads, rb)[..n * rb]);
                }
                out
            })
            .collect();
        let mut inner = self.lock();
        if inner
            .entries
            .iter()
            .any(|e| e.tenant == *tenant && e.tokens.len() > n && common(&e.tokens, tokens) == n)
        {
            return; // covered by an entry another sequence kept meanwhile
        }
        // Extended by this prompt (or the same): the new entry covers them.
        let mut freed = 0;
        inner.entries.retain(|e| {
            let extended = e.tenant == *tenant && tokens.starts_with(&e.tokens);
            if extended {
                freed += e.charge.bytes;
            }
            !extended
        });
        inner.bytes -= freed;
        while inner.bytes + bytes > self.limit && !inner.entries.is_empty() {
            let mine: u64 = inner
                .entries
                .iter()
                .filter(|e| e.tenant == *tenant)
                .map(|e| e.charge.bytes)
                .sum();
            let own_first = mine > self.limit / 2;
            let victim = inner
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !own_first || e.tenant == *tenant)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i);
            let Some(v) = victim else { break };
            let e = inner.entries.swap_remove(v);
            inner.bytes -= e.charge.bytes;
        }
        inner.clock += 1;
        let now = inner.clock;
        inner.bytes += bytes;
        inner.entries.push(Entry {
            tenant: tenant.clone(),
            tokens: tokens.to_vec(),
            kv: Arc::new(copy),
            last_used: now,
            charge,
        });
    }

    /// Frees entries for a run the budget refused: `tenant`'s, and everyone's when
    /// `everyone` (the node-wide limit refused). Whether anything was freed.
    pub(crate) fn shed(&self, tenant: &Arc<str>, everyone: bool) -> bool {
        let mut inner = self.lock();
        let before = inner.entries.len();
        inner.entries.retain(|e| !everyone && e.tenant != *tenant);
        inner.bytes = inner.entries.iter().map(|e| e.charge.bytes).sum();
        inner.entries.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADS: usize = 2;
    const ROW: usize = 8; // bytes per (head, position)
    const TENSORS: usize = 2;
    const PER_POS: u64 = (TENSORS * HEADS * ROW) as u64;

    /// A cache of `tokens.len()` positions whose every byte says (tensor, head, position).
    fn kv(budget: &Arc<KvBudget>, tenant: &str, n: usize) -> Kv {
        let t: Vec<Vec<u8>> = (0..TENSORS)
            .map(|l| {
                (0..HEADS)
                    .flat_map(|h| (0..n).flat_map(move |p| [(l * 100 + h * 50 + p) as u8; ROW]))
                    .collect()
            })
            .collect();
        let tenant: Arc<str> = Arc::from(tenant);
        let charge = budget.reserve(&tenant, PER_POS * n as u64, 0).unwrap();
        Kv {
            len: n,
            storage: KvStorage::Host(t, charge),
            tenant,
        }
    }

    fn prompt(shared: usize, tail: u32, n: usize) -> Vec<u32> {
        (0..n as u32)
            .map(|i| {
                if (i as usize) < shared {
                    i
                } else {
                    1000 + tail * 100 + i
                }
            })
            .collect()
    }

    #[test]
    fn a_prompt_reuses_the_shared_beginning_of_its_own_tenants_entries_only() {
        let budget = KvBudget::new(1 << 20, 1 << 20);
        let cache = PrefixCache::new(1 << 20, budget.clone(), TENSORS, HEADS, ROW);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let first = prompt(30, 1, 40);
        let seq = kv(&budget, "a", 40);
        cache.insert(&a, &first, &seq);
        drop(seq);
        assert_eq!(cache.bytes(), PER_POS * 40);
        assert_eq!(
            budget.tenant_used("a"),
            PER_POS * 40,
            "the entry is charged to its tenant"
        );

        // 30 shared tokens: the copy holds exactly those positions of every head.
        let hit = cache.lookup(&a, &prompt(30, 2, 45)).expect("a hit");
        assert_eq!(hit.len, 30);
        for l in 0..TENSORS {
            for h in 0..HEADS {
                let want: Vec<u8> = (0..30)
                    .flat_map(|p| [(l * 100 + h * 50 + p) as u8; ROW])
                    .collect();
                assert_eq!(hit.head(l, h, HEADS, ROW), &want[..], "tensor {l} head {h}");
            }
        }
        assert_eq!(
            budget.tenant_used("a"),
            PER_POS * 70,
            "the copy is charged too"
        );
        drop(hit);
        // Never another tenant's; never fewer than MIN_PREFIX shared tokens.
        assert!(cache.lookup(&b, &first).is_none());
        assert!(cache.lookup(&a, &prompt(MIN_PREFIX - 1, 3, 40)).is_none());
        // The same prompt again: all but MIN_SUFFIX positions.
        assert_eq!(
            cache.lookup(&a, &first).map(|k| k.len),
            Some(40 - MIN_SUFFIX)
        );
        // A prompt that extends the entry replaces it; one it covers adds nothing.
        let mut longer = first.clone();
        longer.extend(5000..5010);
        cache.insert(&a, &longer, &kv(&budget, "a", 50));
        assert_eq!(cache.bytes(), PER_POS * 50);
        cache.insert(&a, &first, &kv(&budget, "a", 40));
        assert_eq!(cache.bytes(), PER_POS * 50);
        assert_eq!(budget.tenant_used("a"), PER_POS * 50);
        // Shedding for a refused run frees the tenant's entries and their charge.
        cache.insert(&b, &first, &kv(&budget, "b", 40));
        assert!(cache.shed(&a, false));
        assert_eq!(
            (cache.bytes(), budget.tenant_used("a")),
            (PER_POS * 40, 0),
            "b's entry stays"
        );
        assert!(!cache.shed(&a, false), "nothing left of a's");
        assert!(cache.shed(&a, true), "the node-wide limit sheds everyone's");
        assert_eq!((cache.bytes(), budget.tenant_used("b")), (0, 0));
    }

    /// Positions are reused and kept only where an unshared prompt computes them in the
    /// same kind of run: never ending a reuse one token short of a chunk boundary (the
    /// rest of that chunk would be a one-row run), never keeping a prompt's last position
    /// when it ran alone.
    #[test]
    fn reuse_and_entries_follow_the_prompt_chunks() {
        let budget = KvBudget::new(1 << 30, 1 << 30);
        let cache = PrefixCache::new(1 << 30, budget.clone(), TENSORS, HEADS, ROW);
        let a: Arc<str> = Arc::from("a");
        let c = PREFILL_CHUNK;
        // 129 tokens: the last chunk is one token, run alone: 128 positions kept.
        let long = prompt(0, 1, c + 1);
        cache.insert(&a, &long, &kv(&budget, "a", c + 1));
        assert_eq!(cache.bytes(), PER_POS * c as u64);
        // Sharing 127 (= chunk - 1) tokens: 126 reused, so the first run holds 2 rows.
        let mut other = long[..c - 1].to_vec();
        other.extend(9000..9010);
        assert_eq!(cache.lookup(&a, &other).map(|k| k.len), Some(c - 2));
        // Sharing all 128: reused up to the boundary.
        let mut other = long[..c].to_vec();
        other.extend(9000..9010);
        assert_eq!(cache.lookup(&a, &other).map(|k| k.len), Some(c));
    }

    #[test]
    fn entries_stay_within_the_limit_and_a_greedy_tenant_evicts_its_own_first() {
        let budget = KvBudget::new(1 << 20, 1 << 20);
        let limit = PER_POS * 100;
        let cache = PrefixCache::new(limit, budget.clone(), TENSORS, HEADS, ROW);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        cache.insert(&b, &prompt(0, 9, 30), &kv(&budget, "b", 30));
        for i in 0..6 {
            cache.insert(&a, &prompt(0, i, 20), &kv(&budget, "a", 20));
            assert!(cache.bytes() <= limit, "{} > {limit}", cache.bytes());
        }
        assert!(
            cache.lookup(&b, &prompt(0, 9, 30)).is_some(),
            "b's entry survived a's churn"
        );
        assert_eq!(
            budget.used.load(std::sync::atomic::Ordering::Relaxed),
            cache.bytes()
        );
        // Too large for the limit: not kept.
        cache.insert(&a, &prompt(0, 7, 101), &kv(&budget, "a", 101));
        assert!(cache.lookup(&a, &prompt(0, 7, 101)).is_none());
        // A disabled cache keeps nothing.
        let off = PrefixCache::new(0, budget.clone(), TENSORS, HEADS, ROW);
        off.insert(&a, &prompt(0, 1, 40), &kv(&budget, "a", 40));
        assert!(off.lookup(&a, &prompt(0, 1, 40)).is_none());
    }
}
