//! Autoregressive decoding with the KV cache kept in the host, and continuous batching.
//!
//! A causal language model exported with explicit past tensors (optimum's I/O names:
//! `input_ids`, `attention_mask`, `position_ids`, `past_key_values.{i}.{key,value}` ->
//! `logits`, `present.{i}.{key,value}`) can be driven through plain wasi:nn, but then
//! the whole cache crosses the guest boundary twice per token (46 KB per cached
//! position for SmolLM2-135M: 14 MB each way at 300 tokens) and concurrent requests can
//! never share a run, because their caches have different lengths. Here the guest holds
//! a [`Sequence`] (the `helixflow:llm/sequence` resource): it feeds token ids and gets
//! the next-token logits back; the cache never leaves the host.
//!
//! One scheduler thread per model ([`CausalLm`]) takes the steps of every open
//! sequence (any instance, any tenant using that model version). Single-token decode
//! steps are run together as one batch of up to `max_batch` rows: caches are
//! left-padded to the longest and `attention_mask` hides the padding, `position_ids`
//! carries each row's own position; rows join a batch only while at most half of its
//! positions are padding ([`MAX_PADDING`]). Prompts are fed in chunks of [`PREFILL_CHUNK`]
//! tokens, each run alone between decode batches, so a long prompt neither blocks the
//! running streams for long nor materialises logits for thousands of positions. After a
//! batch, the scheduler waits up to `max_delay_us` for the sequences of that batch to
//! come back with their next token, so a batch does not fragment while each guest
//! samples.
//!
//! Architecture invariants:
//! * A cache is owned by exactly one place at a time: its [`Sequence`], or the job the
//!   scheduler is running. Dropping either (the guest finished, trapped, or was killed
//!   when its client went away) frees it and returns its bytes to the node's KV budget.
//! * With one sequence in flight a step is exactly the unbatched run. In a batch, a row
//!   depends on its neighbours only through what the model's kernels do with a batch:
//!   summation order for fp32; the activation quantisation of quantised variants.
//! * Every byte the scheduler keeps is counted against [`crate::NnConfig::max_kv_bytes`]
//!   and the owning tenant's share ([`crate::NnConfig::max_kv_tenant_bytes`]) before a
//!   run allocates it: the run's padded inputs, its outputs and logits at their peak,
//!   then the caches it leaves (a batch's padded outputs for as long as any row holds
//!   them). Over budget, a step waits up to [`CAPACITY_WAIT`] for bytes to come back,
//!   then fails with `too-large` (HTTP 503 `capacity_exhausted` from the chat function),
//!   never an allocation failure. Not counted: ONNX Runtime's own scratch memory for
//!   activations inside a run, bounded by the largest run's shapes.

mod prefix;

use prefix::PrefixCache;
pub use prefix::{MAX_PREFIX, MIN_PREFIX, MIN_SUFFIX};

use crate::ffi::{self, RawInput};
use crate::tensor::TensorType;
use crate::{ErrorCode, NnError, SessionCore};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most prompt tokens in one run.
pub const PREFILL_CHUNK: usize = 128;
/// Decode rows per batch when the model's batching config does not say.
pub const DEFAULT_MAX_BATCH: usize = 16;
/// How long a batch waits for the sequences of the previous one, by default.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(3);
/// Largest share of a decode batch's cache positions that may be padding.
pub const MAX_PADDING: f64 = 0.5;
/// How long a step refused for lack of KV budget waits for capacity before it fails
/// with `too-large`: bytes held for a batch until its last row steps on, or another
/// run's transient buffers, come back within a step or two; a full budget does not.
pub const CAPACITY_WAIT: Duration = Duration::from_millis(500);

/// The node-wide KV-cache byte budget, shared by every model, with each tenant's share.
///
/// Invariant: every byte the decode schedulers keep (caches in sequences, a batch's
/// padded outputs for as long as any row holds them, and a run's padded inputs, outputs
/// and logits while it runs) is held as a [`Charge`] against one tenant; `used` is the
/// sum of all charges and never exceeds `limit`. A reservation also keeps the tenant's
/// charges within `tenant_limit`; the only bytes that can take a tenant past its share
/// are those moved to it from rows that left a batch its sequences still hold (see
/// [`BatchKv`]: who keeps a batch alive pays for it), which never raise `used`, and
/// which the step that lets them go does not count against the share.
#[derive(Debug)]
pub struct KvBudget {
    pub limit: u64,
    /// One tenant's share (at most `limit`).
    pub tenant_limit: u64,
    pub used: AtomicU64,
    tenants: Mutex<HashMap<Arc<str>, u64>>,
    /// Every model's prefix cache: they hold bytes of this budget and give them back
    /// when a run is refused ([`KvBudget::shed_prefixes`]).
    prefixes: Mutex<Vec<std::sync::Weak<PrefixCache>>>,
}

impl KvBudget {
    pub fn new(limit: u64, tenant_limit: u64) -> Arc<KvBudget> {
        Arc::new(KvBudget {
            limit,
            tenant_limit: tenant_limit.min(limit),
            used: AtomicU64::new(0),
            tenants: Mutex::new(HashMap::new()),
            prefixes: Mutex::new(Vec::new()),
        })
    }

    fn register_prefix(&self, cache: &Arc<PrefixCache>) {
        let mut list = self.prefixes.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(cache));
    }

    /// Frees cached prefixes for a run of `tenant` that `bytes` more would not fit:
    /// the tenant's own entries in every model, and every tenant's when the node-wide
    /// limit is what refused. Whether anything was freed.
    fn shed_prefixes(&self, tenant: &Arc<str>, bytes: u64) -> bool {
        let everyone = self
            .used
            .load(Ordering::Acquire)
            .checked_add(bytes)
            .is_none_or(|n| n > self.limit);
        let caches: Vec<Arc<PrefixCache>> = self
            .prefixes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        let mut freed = false;
        for c in caches {
            freed |= c.shed(tenant, everyone);
        }
        freed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, u64>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Charges `bytes` to `tenant` if both the node's budget and the tenant's share
    /// allow it; otherwise a `too-large` error that says which. `credit`: bytes charged
    /// to the tenant only because the caller's sequence holds a batch other rows left
    /// (moved to it by [`BatchKv::leave`]), which the run being reserved lets go of; they
    /// do not count against the tenant's share here (they still count for the node).
    pub(crate) fn reserve(
        self: &Arc<Self>,
        tenant: &Arc<str>,
        bytes: u64,
        credit: u64,
    ) -> Result<Charge, NnError> {
        let mut map = self.lock();
        let used = self.used.load(Ordering::Acquire);
        let charged = map.get(tenant).copied().unwrap_or(0);
        let mine = charged.saturating_sub(credit);
        if used.checked_add(bytes).is_none_or(|n| n > self.limit) {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!(
                    "this node's KV-cache budget ({} MiB) is in use by other sequences; retry later",
                    self.limit >> 20
                ),
            ));
        }
        if mine
            .checked_add(bytes)
            .is_none_or(|n| n > self.tenant_limit)
        {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!(
                    "this tenant's share of the node's KV-cache budget ({} MiB) is in use by its other sequences; retry later",
                    self.tenant_limit >> 20
                ),
            ));
        }
        if bytes > 0 {
            map.insert(tenant.clone(), charged + bytes);
            self.used.store(used + bytes, Ordering::Release);
        }
        Ok(Charge {
            budget: self.clone(),
            tenant: tenant.clone(),
            bytes,
        })
    }

    /// Bytes charged to `tenant` now.
    pub fn tenant_used(&self, tenant: &str) -> u64 {
        self.lock().get(tenant).copied().unwrap_or(0)
    }

    fn release(&self, tenant: &Arc<str>, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut map = self.lock();
        if let Some(n) = map.get_mut(tenant) {
            *n = n.saturating_sub(bytes);
            if *n == 0 {
                map.remove(tenant);
            }
        }
        let used = self.used.load(Ordering::Acquire);
        self.used
            .store(used.saturating_sub(bytes), Ordering::Release);
    }

    /// Moves `bytes` already charged to `from` onto `to` (the node total is unchanged).
    fn transfer(&self, from: &Arc<str>, to: &Arc<str>, bytes: u64) {
        if bytes == 0 || from == to {
            return;
        }
        let mut map = self.lock();
        if let Some(n) = map.get_mut(from) {
            *n = n.saturating_sub(bytes);
            if *n == 0 {
                map.remove(from);
            }
        }
        *map.entry(to.clone()).or_insert(0) += bytes;
    }
}

/// Bytes charged to one tenant against the [`KvBudget`]; given back on drop.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<KvBudget>,
    tenant: Arc<str>,
    bytes: u64,
}

impl Charge {
    /// Moves `bytes` (at most what this charge holds) into a new charge of the same tenant.
    fn split(&mut self, bytes: u64) -> Charge {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Charge {
            budget: self.budget.clone(),
            tenant: self.tenant.clone(),
            bytes,
        }
    }

    /// Moves `bytes` of this charge onto `to` (whose tenant then pays for them).
    fn give(&mut self, to: &mut Charge, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.budget.transfer(&self.tenant, &to.tenant, bytes);
        self.bytes -= bytes;
        to.bytes += bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(&self.tenant, self.bytes);
    }
}

/// One sequence's cache (per layer key then value, f32), wherever its bytes are.
struct Kv {
    len: usize,
    storage: KvStorage,
    /// The tenant that opened the sequence: its runs are charged to it.
    tenant: Arc<str>,
}

/// Where a cache's bytes live. Steps keep the cache in the memory ORT wrote it to (no
/// copy out); a batch shares its outputs among its rows, so when the same sequences
/// come back together the outputs are fed straight back in. Each holds the charge for
/// exactly the bytes it keeps alive.
enum KvStorage {
    /// Empty (nothing fed yet).
    Empty,
    /// The outputs of a run this sequence had alone: `[1, heads, len, head_dim]` each,
    /// and their charge.
    Solo(
        Vec<ffi::OrtTensor>,
        #[allow(dead_code)] /* held for its release on drop */ Charge,
    ),
    /// A row of a batch's outputs.
    Batch(BatchRow),
    /// Copied from the model's prefix cache (`[1, heads, len, head_dim]` each), until the
    /// sequence's first run replaces it.
    Host(
        Vec<Vec<u8>>,
        #[allow(dead_code)] /* held for its release on drop */ Charge,
    ),
}

/// Row `row` of a batch's outputs `[rows, heads, t, head_dim]`; the sequence's
/// positions are the last `len` of `t` (rows are left-padded). Leaving the batch
/// (dropped, or replaced by the sequence's next cache) hands this row's bytes to the
/// rows still holding it.
struct BatchRow {
    batch: Arc<BatchKv>,
    row: usize,
}

impl Drop for BatchRow {
    fn drop(&mut self) {
        self.batch.leave(self.row);
    }
}

/// A decode batch's outputs, shared by its rows. Invariant: its whole size (padding
/// included) stays charged until the last row lets go of it. Each row starts charged
/// for its own padded row (`t` positions) to its tenant; when a row leaves, its bytes
/// move to the rows that still hold the batch (split evenly), so whoever keeps a
/// batch alive pays for all of it and an idle row of one tenant cannot pin another
/// tenant's share.
struct BatchKv {
    tensors: Vec<ffi::OrtTensor>,
    /// Sequence id of each row.
    rows: Vec<u64>,
    t: usize,
    /// Per row: its charge, and whether a sequence still holds the row.
    charges: Mutex<Vec<RowCharge>>,
}

struct RowCharge {
    charge: Charge,
    /// What the row was charged for itself (the rest came from rows that left).
    own: u64,
    live: bool,
}

impl RowCharge {
    fn new(charge: Charge) -> RowCharge {
        RowCharge {
            own: charge.bytes,
            charge,
            live: true,
        }
    }
}

impl BatchKv {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RowCharge>> {
        self.charges.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leave(&self, row: usize) {
        let mut charges = self.lock();
        let Some(entry) = charges.get_mut(row) else {
            return;
        };
        entry.live = false;
        let live: Vec<usize> = charges
            .iter()
            .enumerate()
            .filter(|(_, c)| c.live)
            .map(|(i, _)| i)
            .collect();
        if live.is_empty() {
            return; // the batch goes with its last holder; dropping it releases every charge
        }
        let mut left = charges[row].charge.bytes;
        let share = left / live.len() as u64;
        for (k, i) in live.iter().enumerate() {
            let n = if k + 1 == live.len() { left } else { share };
            left -= n;
            let (from, to) = pick2(&mut charges, row, *i);
            from.charge.give(&mut to.charge, n);
        }
    }

    /// Bytes row `row` holds for rows that left.
    fn inherited(&self, row: usize) -> u64 {
        self.lock()
            .get(row)
            .map(|c| c.charge.bytes.saturating_sub(c.own))
            .unwrap_or(0)
    }
}

/// Two distinct elements of a slice, mutably.
fn pick2<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}

impl Kv {
    /// Bytes charged to this sequence's tenant only because it still holds a batch that
    /// other rows left: its next run lets go of them.
    fn inherited(&self) -> u64 {
        match &self.storage {
            KvStorage::Batch(r) => r.batch.inherited(r.row),
            _ => 0,
        }
    }

    /// Bytes of head `h` of layer tensor `l`: `len` rows of `row_bytes`.
    fn head(&self, l: usize, h: usize, heads: usize, row_bytes: usize) -> &[u8] {
        let n = self.len * row_bytes;
        match &self.storage {
            KvStorage::Empty => &[],
            KvStorage::Solo(t, _) => &t[l].bytes()[h * n..(h + 1) * n],
            KvStorage::Host(t, _) => &t[l][h * n..(h + 1) * n],
            KvStorage::Batch(BatchRow { batch: b, row }) => {
                let s = ((row * heads + h) * b.t + (b.t - self.len)) * row_bytes;
                &b.tensors[l].bytes()[s..s + n]
            }
        }
    }
}

struct Job {
    seq: u64,
    kv: Kv,
    tokens: Vec<i64>,
    reply: tokio::sync::oneshot::Sender<(Kv, Result<Vec<f32>, NnError>)>,
    /// When the budget first refused this step (it is retried until [`CAPACITY_WAIT`]).
    refused_at: Option<Instant>,
}

enum Msg {
    Step(Job),
    Closed(u64),
}

/// Counters of one model's scheduler.
#[derive(Debug, Default)]
pub struct LmStats {
    pub open_sequences: AtomicU64,
    pub runs: AtomicU64,
    pub decode_rows: AtomicU64,
    pub batched_runs: AtomicU64,
    pub max_rows: AtomicU64,
    pub prefill_tokens: AtomicU64,
    /// Batched runs that fed the previous run's outputs straight back (same rows).
    pub sticky_runs: AtomicU64,
    /// Prompts of new sequences looked up in the prefix cache, those that started from
    /// an entry, and the prompt positions those took from it instead of running them.
    pub prefix_lookups: AtomicU64,
    pub prefix_hits: AtomicU64,
    pub prefix_tokens: AtomicU64,
}

/// A loaded causal language model with its scheduler.
pub struct CausalLm {
    pub display: String,
    pub vocab: usize,
    pub context: usize,
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Msg>>,
    next_id: AtomicU64,
    pub stats: Arc<LmStats>,
    prefix: Arc<PrefixCache>,
}

/// One model's decode scheduler: what its thread needs (it must not keep the
/// [`CausalLm`] alive).
struct DecodeScheduler {
    core: Arc<SessionCore>,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    max_batch: usize,
    max_delay: Duration,
    budget: Arc<KvBudget>,
    stats: Arc<LmStats>,
    outputs: Vec<String>,
}

fn not_lm(core: &SessionCore, why: impl std::fmt::Display) -> NnError {
    NnError::new(
        ErrorCode::InvalidArgument,
        format!(
            "model {} is not a causal language model with a KV cache ({why}); expected inputs input_ids, attention_mask, position_ids, past_key_values.{{i}}.key/value and outputs logits, present.{{i}}.key/value",
            core.display
        ),
    )
}

impl CausalLm {
    /// Checks the model's I/O and starts its scheduler. `context`: the model's own
    /// limit (from its `helixflow.context_length` metadata), capped by the node;
    /// `prefix_bytes`: its prefix cache's size (0: none).
    pub(crate) fn start(
        core: Arc<SessionCore>,
        context: usize,
        max_batch: usize,
        max_delay: Duration,
        budget: Arc<KvBudget>,
        prefix_bytes: u64,
    ) -> Result<CausalLm, NnError> {
        let find = |name: &str| core.inputs.iter().find(|i| i.name == name);
        for (name, ty) in [
            ("input_ids", TensorType::I64),
            ("attention_mask", TensorType::I64),
            ("position_ids", TensorType::I64),
        ] {
            let i = find(name).ok_or_else(|| not_lm(&core, format!("no input {name}")))?;
            if i.ty != Some(ty) || i.shape.len() != 2 {
                return Err(not_lm(
                    &core,
                    format!("input {name} must be int64 [batch, n]"),
                ));
            }
        }
        let layers = core
            .inputs
            .iter()
            .filter(|i| i.name.starts_with("past_key_values.") && i.name.ends_with(".key"))
            .count();
        if layers == 0 {
            return Err(not_lm(&core, "no past_key_values inputs"));
        }
        let mut geometry = None;
        let mut outputs = vec!["logits".to_string()];
        for l in 0..layers {
            for kv in ["key", "value"] {
                let i = find(&format!("past_key_values.{l}.{kv}"))
                    .ok_or_else(|| not_lm(&core, format!("no input past_key_values.{l}.{kv}")))?;
                let (h, d) = match i.shape.as_slice() {
                    [_, h, _, d] if *h > 0 && *d > 0 && i.ty == Some(TensorType::Fp32) => {
                        (*h as usize, *d as usize)
                    }
                    _ => {
                        return Err(not_lm(
                            &core,
                            format!(
                                "past_key_values.{l}.{kv} must be float32 [batch, heads, past, head_dim] with fixed heads and head_dim"
                            ),
                        ));
                    }
                };
                if *geometry.get_or_insert((h, d)) != (h, d) {
                    return Err(not_lm(&core, "layers disagree on the cache geometry"));
                }
                let out = format!("present.{l}.{kv}");
                if !core.outputs.iter().any(|o| o.name == out) {
                    return Err(not_lm(&core, format!("no output {out}")));
                }
                outputs.push(out);
            }
        }
        let (kv_heads, head_dim) = geometry.unwrap_or((1, 1));
        let logits = core
            .outputs
            .iter()
            .find(|o| o.name == "logits")
            .ok_or_else(|| not_lm(&core, "no output logits"))?;
        let vocab = match logits.shape.as_slice() {
            [_, _, v] if *v > 0 && logits.ty == Some(TensorType::Fp32) => *v as usize,
            _ => {
                return Err(not_lm(
                    &core,
                    "logits must be float32 [batch, seq, vocab] with a fixed vocab",
                ));
            }
        };
        let stats = Arc::new(LmStats::default());
        let prefix = Arc::new(PrefixCache::new(
            prefix_bytes,
            budget.clone(),
            2 * layers,
            kv_heads,
            head_dim * 4,
        ));
        budget.register_prefix(&prefix);
        let scheduler = DecodeScheduler {
            core: core.clone(),
            layers,
            kv_heads,
            head_dim,
            vocab,
            max_batch: max_batch.max(1),
            max_delay,
            budget,
            stats: stats.clone(),
            outputs,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("helixflow-lm".into())
            .spawn(move || scheduler.run(rx))
            .map_err(|e| {
                NnError::new(
                    ErrorCode::RuntimeError,
                    format!("cannot start the decode scheduler: {e}"),
                )
            })?;
        tracing::info!(model = %core.display, layers, kv_heads, head_dim, vocab, context, max_batch, prefix_cache_bytes = prefix_bytes, "causal LM scheduler started");
        Ok(CausalLm {
            display: core.display.clone(),
            vocab,
            context,
            tx: std::sync::Mutex::new(tx),
            next_id: AtomicU64::new(1),
            stats,
            prefix,
        })
    }

    /// Bytes its prefix cache holds.
    pub fn prefix_cache_bytes(&self) -> u64 {
        self.prefix.bytes()
    }

    /// A new, empty sequence of `tenant` (whose share of the KV budget its runs use).
    pub fn open(self: &Arc<Self>, tenant: &str) -> Sequence {
        self.stats.open_sequences.fetch_add(1, Ordering::Relaxed);
        Sequence {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            lm: self.clone(),
            kv: Some(Kv {
                len: 0,
                storage: KvStorage::Empty,
                tenant: Arc::from(tenant),
            }),
        }
    }

    fn send(&self, m: Msg) -> bool {
        self.tx.lock().map(|tx| tx.send(m).is_ok()).unwrap_or(false)
    }
}

/// A guest's sequence: its cache lives here between steps.
pub struct Sequence {
    id: u64,
    lm: Arc<CausalLm>,
    kv: Option<Kv>,
}

impl Sequence {
    pub fn model(&self) -> &Arc<CausalLm> {
        &self.lm
    }

    /// Positions cached so far.
    pub fn len(&self) -> usize {
        self.kv.as_ref().map(|k| k.len).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `tokens` and runs the model over them: the logits of the last one.
    pub async fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, NnError> {
        if tokens.is_empty() {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                "feed needs at least one token",
            ));
        }
        if let Some(bad) = tokens.iter().find(|t| **t as usize >= self.lm.vocab) {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "token id {bad} is outside the vocabulary of {} ({} tokens)",
                    self.lm.display, self.lm.vocab
                ),
            ));
        }
        let len = self.len();
        if len + tokens.len() > self.lm.context {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!(
                    "{} cached + {} new tokens exceed the context window of {} ({} tokens)",
                    len,
                    tokens.len(),
                    self.lm.display,
                    self.lm.context
                ),
            ));
        }
        // A new sequence's prompt may start from a cached prefix of the same tenant's.
        let fresh = len == 0 && self.lm.prefix.enabled();
        let prompt = tokens;
        let mut tokens = tokens;
        if fresh
            && tokens.len() >= MIN_PREFIX + MIN_SUFFIX
            && let Some(kv) = self.kv.as_ref()
        {
            let stats = &self.lm.stats;
            stats.prefix_lookups.fetch_add(1, Ordering::Relaxed);
            if let Some(hit) = self.lm.prefix.lookup(&kv.tenant, tokens) {
                stats.prefix_hits.fetch_add(1, Ordering::Relaxed);
                stats
                    .prefix_tokens
                    .fetch_add(hit.len as u64, Ordering::Relaxed);
                tokens = &tokens[hit.len..];
                self.kv = Some(hit);
            }
        }
        let tenant = self.kv.as_ref().map(|k| k.tenant.clone());
        match self.run_chunks(tokens).await {
            Ok(logits) => {
                if fresh && let Some(kv) = self.kv.as_ref() {
                    self.lm.prefix.insert(&kv.tenant, prompt, kv);
                }
                Ok(logits)
            }
            Err(e) => {
                // On error nothing is appended: a new sequence is empty again (without the
                // prefix it may have started from, or the chunks that did run).
                if fresh && let Some(tenant) = tenant {
                    self.kv = Some(Kv {
                        len: 0,
                        storage: KvStorage::Empty,
                        tenant,
                    });
                }
                Err(e)
            }
        }
    }

    /// Runs `tokens` in chunks that end at multiples of [`PREFILL_CHUNK`] counted from
    /// position 0, so a prompt that starts from a cached prefix runs the rest of a chunk
    /// in one run, as the same prompt does unshared: the logits of its last one.
    async fn run_chunks(&mut self, mut tokens: &[u32]) -> Result<Vec<f32>, NnError> {
        let mut logits = Vec::new();
        while !tokens.is_empty() {
            let take = (PREFILL_CHUNK - self.len() % PREFILL_CHUNK).min(tokens.len());
            let (chunk, rest) = tokens.split_at(take);
            tokens = rest;
            let kv = self.kv.take().ok_or_else(|| {
                NnError::new(
                    ErrorCode::RuntimeError,
                    "this sequence lost its cache in an earlier failure; open a new one",
                )
            })?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            let job = Job {
                seq: self.id,
                kv,
                tokens: chunk.iter().map(|t| i64::from(*t)).collect(),
                reply,
                refused_at: None,
            };
            if !self.lm.send(Msg::Step(job)) {
                return Err(NnError::new(
                    ErrorCode::RuntimeError,
                    "the decode scheduler has stopped",
                ));
            }
            let (kv, r) = rx.await.map_err(|_| {
                NnError::new(
                    ErrorCode::RuntimeError,
                    "the decode scheduler dropped the step",
                )
            })?;
            self.kv = Some(kv);
            logits = r?;
        }
        Ok(logits)
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        self.lm.stats.open_sequences.fetch_sub(1, Ordering::Relaxed);
        self.lm.send(Msg::Closed(self.id));
    }
}

impl DecodeScheduler {
    fn run(self, rx: std::sync::mpsc::Receiver<Msg>) {
        let mut pending: VecDeque<Job> = VecDeque::new();
        // Sequences of the last decode batch: worth a short wait for.
        let mut expected: HashSet<u64> = HashSet::new();
        loop {
            if pending.is_empty() {
                match rx.recv() {
                    Ok(m) => self.take(m, &mut pending, &mut expected),
                    Err(_) => return, // the model was dropped and every sequence is gone
                }
            }
            while let Ok(m) = rx.try_recv() {
                self.take(m, &mut pending, &mut expected);
            }
            // Hold the batch briefly for the sequences that were in the last one.
            let deadline = Instant::now() + self.max_delay;
            loop {
                let waiting = expected
                    .iter()
                    .any(|id| !pending.iter().any(|j| j.seq == *id));
                let now = Instant::now();
                if !waiting
                    || now >= deadline
                    || pending.iter().filter(|j| j.tokens.len() == 1).count() >= self.max_batch
                {
                    break;
                }
                match rx.recv_timeout(deadline - now) {
                    Ok(m) => self.take(m, &mut pending, &mut expected),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            // A job whose caller went away (client disconnected, guest killed) is dropped
            // here with its cache.
            pending.retain(|j| !j.reply.is_closed());
            let decode = pick_decode_batch(&mut pending, self.max_batch);
            expected = decode.iter().map(|j| j.seq).collect();
            let mut waiting = Vec::new();
            let mut ran = false;
            if !decode.is_empty() {
                ran |= self.run_jobs(decode, &mut waiting);
            }
            if let Some(pos) = pending.iter().position(|j| j.tokens.len() > 1)
                && let Some(j) = pending.remove(pos)
            {
                ran |= self.run_jobs(vec![j], &mut waiting);
            }
            // Steps waiting for capacity go first next time; when nothing could run, wait
            // a little for a release or a new step instead of spinning.
            for j in waiting.into_iter().rev() {
                pending.push_front(j);
            }
            if !ran
                && !pending.is_empty()
                && let Ok(m) = rx.recv_timeout(Duration::from_millis(2))
            {
                self.take(m, &mut pending, &mut expected);
            }
        }
    }

    fn take(&self, m: Msg, pending: &mut VecDeque<Job>, expected: &mut HashSet<u64>) {
        match m {
            Msg::Step(j) => pending.push_back(j),
            Msg::Closed(id) => {
                expected.remove(&id);
            }
        }
    }

    /// Runs a decode batch (or one job) after charging, per job and to its tenant, every
    /// byte the run will hold: the padded inputs it assembles, its outputs (the caches
    /// it keeps, padding included) and the logits. A job whose tenant share or the node
    /// budget cannot take its part leaves the batch (the others re-plan without it) and
    /// is tried alone; if it does not fit alone either, it goes to `waiting` to be
    /// retried, and fails with `too-large` once it has waited [`CAPACITY_WAIT`].
    /// Returns whether anything ran.
    fn run_jobs(&self, mut jobs: Vec<Job>, waiting: &mut Vec<Job>) -> bool {
        let mut ran = false;
        let mut alone: Vec<Job> = Vec::new();
        while jobs.len() > 1 {
            let plan = self.batch_plan(&jobs);
            let mut charges = Vec::with_capacity(jobs.len());
            let mut refused = Vec::new();
            for (i, j) in jobs.iter().enumerate() {
                match self.budget.reserve(
                    &j.kv.tenant,
                    self.batch_row_bytes(j, &plan).0,
                    j.kv.inherited(),
                ) {
                    Ok(c) => charges.push(c),
                    Err(_) => refused.push(i),
                }
            }
            if refused.is_empty() {
                self.finish(jobs, charges, |s, jobs, charges| {
                    s.run_batch(jobs, plan, charges)
                });
                jobs = Vec::new();
                ran = true;
                break;
            }
            drop(charges);
            for i in refused.into_iter().rev() {
                alone.push(jobs.remove(i));
            }
        }
        alone.extend(jobs);
        for mut j in alone {
            let reserve = |j: &Job| {
                self.budget
                    .reserve(&j.kv.tenant, self.one_bytes(j), j.kv.inherited())
            };
            // Cached prefixes give way to a run that needs their bytes.
            let reserved = match reserve(&j) {
                Err(_) if self.budget.shed_prefixes(&j.kv.tenant, self.one_bytes(&j)) => {
                    reserve(&j)
                }
                r => r,
            };
            match reserved {
                Ok(c) => {
                    self.finish(vec![j], vec![c], |s, jobs, charges| {
                        s.run_one(&mut jobs[0], charges)
                    });
                    ran = true;
                }
                Err(e) => {
                    let since = *j.refused_at.get_or_insert_with(Instant::now);
                    if since.elapsed() < CAPACITY_WAIT {
                        waiting.push(j);
                    } else {
                        let _ = j.reply.send((j.kv, Err(e)));
                    }
                }
            }
        }
        ran
    }

    /// Runs `jobs` with their charges and answers each.
    fn finish(
        &self,
        mut jobs: Vec<Job>,
        charges: Vec<Charge>,
        run: impl FnOnce(&Self, &mut Vec<Job>, Vec<Charge>) -> Result<Vec<Vec<f32>>, NnError>,
    ) {
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        match run(self, &mut jobs, charges) {
            Ok(logits) => {
                for (j, l) in jobs.into_iter().zip(logits) {
                    let _ = j.reply.send((j.kv, Ok(l)));
                }
            }
            Err(e) => {
                self.core.stats.errors.fetch_add(1, Ordering::Relaxed);
                for j in jobs {
                    let _ = j.reply.send((j.kv, Err(e.clone())));
                }
            }
        }
    }

    /// Bytes a solo run of `j` holds at its peak: the cache row copied out of a batch
    /// (if it is in one), the new cache, the logits of every fed position, and the small
    /// id/mask/position inputs. The new cache (`per_position x (past + n)`) stays.
    fn one_bytes(&self, j: &Job) -> u64 {
        let (past, n) = (j.kv.len as u64, j.tokens.len() as u64);
        let per_pos = self.per_position();
        let copied = if matches!(j.kv.storage, KvStorage::Batch(_)) {
            per_pos * past
        } else {
            0
        };
        copied + per_pos * (past + n) + n * self.vocab as u64 * 4 + (3 * n + past) * 8
    }

    /// The shape of a decode batch: whether it is the previous batch coming back whole
    /// (its outputs are fed back as they are), the padded cache length, and who pays for
    /// the padding.
    fn batch_plan(&self, jobs: &[Job]) -> BatchPlan {
        let b = jobs.len();
        let shared: Option<Arc<BatchKv>> = match &jobs[0].kv.storage {
            KvStorage::Batch(r) if r.batch.rows.len() == b => Some(r.batch.clone()),
            _ => None,
        };
        let shared = shared.filter(|s| {
            jobs.iter()
                .all(|j| matches!(&j.kv.storage, KvStorage::Batch(r) if Arc::ptr_eq(&r.batch, s)))
        });
        let tmax = match &shared {
            Some(s) => s.t,
            None => jobs.iter().map(|j| j.kv.len).max().unwrap_or(0),
        };
        let padding = jobs
            .iter()
            .map(|j| (tmax - j.kv.len.min(tmax)) as u64)
            .sum();
        // The first of the longest rows: the padding exists because of its length.
        let longest = jobs
            .iter()
            .rev()
            .max_by_key(|j| j.kv.len)
            .map(|j| j.seq)
            .unwrap_or(0);
        BatchPlan {
            shared,
            tmax,
            padding,
            longest,
        }
    }

    /// One row's part of a decode batch: (bytes at the run's peak, bytes that stay as the
    /// batch's cache). A row is charged its own positions; the padding every row gets
    /// (positions up to the longest) is charged to the longest row, whose length causes
    /// it, so a long sequence of one tenant never inflates another tenant's charge. At
    /// the peak: the assembled inputs (none when the last batch's outputs go back in),
    /// the outputs (which stay), the row's logits and its id/mask/position inputs.
    fn batch_row_bytes(&self, j: &Job, plan: &BatchPlan) -> (u64, u64) {
        let per_pos = self.per_position();
        let len = j.kv.len as u64;
        let pad = if j.seq == plan.longest {
            plan.padding
        } else {
            0
        };
        let keep = per_pos * (len + 1 + pad);
        let assembled = if plan.shared.is_some() {
            0
        } else {
            per_pos * (len + pad)
        };
        (
            keep + assembled + self.vocab as u64 * 4 + (plan.tmax as u64 + 4) * 8,
            keep,
        )
    }

    fn per_position(&self) -> u64 {
        (2 * self.layers * self.kv_heads * self.head_dim * 4) as u64
    }

    fn kv_names(&self) -> Vec<String> {
        (0..self.layers)
            .flat_map(|l| {
                [
                    format!("past_key_values.{l}.key"),
                    format!("past_key_values.{l}.value"),
                ]
            })
            .collect()
    }

    /// One sequence alone (a prompt chunk, or a decode step with nobody to share it):
    /// a cache ORT wrote goes back in as is.
    fn run_one(&self, j: &mut Job, mut charges: Vec<Charge>) -> Result<Vec<Vec<f32>>, NnError> {
        let mut charge = charges
            .pop()
            .ok_or_else(|| NnError::new(ErrorCode::RuntimeError, "a run without its KV charge"))?;
        let n = j.tokens.len();
        let past = j.kv.len;
        let (h, d) = (self.kv_heads, self.head_dim);
        if n == 1 {
            self.stats.decode_rows.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats
                .prefill_tokens
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        let ids = bytes_i64(&j.tokens);
        let mask = bytes_i64(&vec![1i64; past + n]);
        let pos = bytes_i64(&(past as i64..(past + n) as i64).collect::<Vec<_>>());
        let names = self.kv_names();
        let ids_shape = [1, n as i64];
        let mask_shape = [1, (past + n) as i64];
        let kv_shape = [1, h as i64, past as i64, d as i64];
        // A row of a batch is copied out; a solo cache is used in place.
        let copied: Vec<Vec<u8>> = match &j.kv.storage {
            KvStorage::Batch(_) => (0..2 * self.layers)
                .map(|l| {
                    (0..h)
                        .flat_map(|hi| j.kv.head(l, hi, h, d * 4).iter().copied())
                        .collect()
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut inputs = vec![
            RawInput {
                name: "input_ids",
                ty: TensorType::I64,
                shape: &ids_shape,
                data: &ids,
            },
            RawInput {
                name: "attention_mask",
                ty: TensorType::I64,
                shape: &mask_shape,
                data: &mask,
            },
            RawInput {
                name: "position_ids",
                ty: TensorType::I64,
                shape: &ids_shape,
                data: &pos,
            },
        ];
        for (l, name) in names.iter().enumerate() {
            let data: &[u8] = match &j.kv.storage {
                KvStorage::Empty => &[],
                KvStorage::Solo(t, _) => t[l].bytes(),
                KvStorage::Host(t, _) => &t[l],
                KvStorage::Batch(_) => &copied[l],
            };
            inputs.push(RawInput {
                name,
                ty: TensorType::Fp32,
                shape: &kv_shape,
                data,
            });
        }
        let out_names: Vec<&str> = self.outputs.iter().map(String::as_str).collect();
        let mut outs = ffi::run_keep(&self.core.session, &inputs, &out_names)?;
        drop(copied);
        let presents = outs.split_off(1);
        let logits = outs
            .pop()
            .ok_or_else(|| NnError::new(ErrorCode::RuntimeError, "no logits"))?;
        let want = [1, n as i64, self.vocab as i64];
        if logits.shape != want || logits.ty != TensorType::Fp32 {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("logits came back {:?}, expected {want:?}", logits.shape),
            ));
        }
        let last = f32s(&logits.bytes()[(n - 1) * self.vocab * 4..]);
        let want_kv = [1, h as i64, (past + n) as i64, d as i64];
        if let Some(o) = presents
            .iter()
            .find(|o| o.shape != want_kv || o.ty != TensorType::Fp32)
        {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("present came back {:?}, expected {want_kv:?}", o.shape),
            ));
        }
        // The new cache keeps its part of the run's charge; the old one (and the rest of
        // the charge: inputs, logits) is given back as it goes.
        let kept = charge.split(self.per_position() * (past + n) as u64);
        j.kv.storage = KvStorage::Solo(presents, kept);
        j.kv.len = past + n;
        drop(logits);
        drop(charge);
        Ok(vec![last])
    }

    /// Single-token steps of several sequences in one run, each row at its own
    /// position with its padding masked out. When the same sequences come back together
    /// their shared cache (the last run's outputs) goes straight back in; otherwise the
    /// caches are assembled, left-padded to the longest.
    fn run_batch(
        &self,
        jobs: &mut Vec<Job>,
        plan: BatchPlan,
        mut charges: Vec<Charge>,
    ) -> Result<Vec<Vec<f32>>, NnError> {
        let b = jobs.len();
        let (h, d) = (self.kv_heads, self.head_dim);
        let row = d * 4; // bytes per (head, position)
        if charges.len() != b {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                "a batch without its KV charges",
            ));
        }
        self.stats
            .decode_rows
            .fetch_add(b as u64, Ordering::Relaxed);
        self.stats.batched_runs.fetch_add(1, Ordering::Relaxed);
        self.stats.max_rows.fetch_max(b as u64, Ordering::Relaxed);
        self.core
            .stats
            .batched_requests
            .fetch_add(b as u64, Ordering::Relaxed);
        // Same batch as last time (every row back, nobody new)? Then keep its row order
        // (the charges follow their jobs).
        let shared = plan.shared.clone();
        let sticky = shared.is_some();
        // What each row keeps is computed from the plan it reserved by (before its `len`
        // moves on below).
        let plan_keep = BatchPlan {
            shared: None,
            ..plan
        };
        if let Some(s) = &shared {
            let row_of = |j: &Job| match &j.kv.storage {
                KvStorage::Batch(r) => r.row,
                _ => 0,
            };
            let mut paired: Vec<(Job, Charge)> = std::mem::take(jobs)
                .into_iter()
                .zip(std::mem::take(&mut charges))
                .collect();
            paired.sort_by_key(|(j, _)| row_of(j));
            (*jobs, charges) = paired.into_iter().unzip();
            debug_assert!(jobs.iter().zip(&s.rows).all(|(j, id)| j.seq == *id));
            self.stats.sticky_runs.fetch_add(1, Ordering::Relaxed);
        }
        let tmax = plan.tmax;
        let ids = bytes_i64(&jobs.iter().map(|j| j.tokens[0]).collect::<Vec<_>>());
        let pos = bytes_i64(&jobs.iter().map(|j| j.kv.len as i64).collect::<Vec<_>>());
        let mut mask = Vec::with_capacity(b * (tmax + 1));
        for j in jobs.iter() {
            mask.extend(std::iter::repeat_n(0i64, tmax - j.kv.len));
            mask.extend(std::iter::repeat_n(1i64, j.kv.len + 1));
        }
        let mask = bytes_i64(&mask);
        let assembled: Vec<Vec<u8>> = if sticky {
            Vec::new()
        } else {
            (0..2 * self.layers)
                .map(|l| {
                    let mut buf = vec![0u8; b * h * tmax * row];
                    for (bi, j) in jobs.iter().enumerate() {
                        let len = j.kv.len;
                        for hi in 0..h {
                            let dst0 = ((bi * h + hi) * tmax + (tmax - len)) * row;
                            buf[dst0..dst0 + len * row].copy_from_slice(j.kv.head(l, hi, h, row));
                        }
                    }
                    buf
                })
                .collect()
        };
        let names = self.kv_names();
        let ids_shape = [b as i64, 1];
        let mask_shape = [b as i64, (tmax + 1) as i64];
        let kv_shape = [b as i64, h as i64, tmax as i64, d as i64];
        let mut inputs = vec![
            RawInput {
                name: "input_ids",
                ty: TensorType::I64,
                shape: &ids_shape,
                data: &ids,
            },
            RawInput {
                name: "attention_mask",
                ty: TensorType::I64,
                shape: &mask_shape,
                data: &mask,
            },
            RawInput {
                name: "position_ids",
                ty: TensorType::I64,
                shape: &ids_shape,
                data: &pos,
            },
        ];
        for (l, name) in names.iter().enumerate() {
            let data: &[u8] = match (&shared, sticky) {
                (Some(s), true) => s.tensors[l].bytes(),
                _ => &assembled[l],
            };
            inputs.push(RawInput {
                name,
                ty: TensorType::Fp32,
                shape: &kv_shape,
                data,
            });
        }
        let out_names: Vec<&str> = self.outputs.iter().map(String::as_str).collect();
        let mut outs = ffi::run_keep(&self.core.session, &inputs, &out_names)?;
        drop(assembled);
        let presents = outs.split_off(1);
        let logits = outs
            .pop()
            .ok_or_else(|| NnError::new(ErrorCode::RuntimeError, "no logits"))?;
        let want = [b as i64, 1, self.vocab as i64];
        if logits.shape != want || logits.ty != TensorType::Fp32 {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("logits came back {:?}, expected {want:?}", logits.shape),
            ));
        }
        let want_kv = [b as i64, h as i64, (tmax + 1) as i64, d as i64];
        if let Some(o) = presents
            .iter()
            .find(|o| o.shape != want_kv || o.ty != TensorType::Fp32)
        {
            return Err(NnError::new(
                ErrorCode::RuntimeError,
                format!("present came back {:?}, expected {want_kv:?}", o.shape),
            ));
        }
        // Each row's padded part of the outputs stays charged to its tenant, with the
        // batch; the rest of each run charge (inputs, logits) goes back below.
        let row_charges = jobs
            .iter()
            .zip(charges.iter_mut())
            .map(|(j, c)| RowCharge::new(c.split(self.batch_row_bytes(j, &plan_keep).1)))
            .collect();
        let batch = Arc::new(BatchKv {
            tensors: presents,
            rows: jobs.iter().map(|j| j.seq).collect(),
            t: tmax + 1,
            charges: Mutex::new(row_charges),
        });
        for (bi, j) in jobs.iter_mut().enumerate() {
            j.kv.storage = KvStorage::Batch(BatchRow {
                batch: batch.clone(),
                row: bi,
            });
            j.kv.len += 1;
        }
        drop(shared);
        let v = self.vocab * 4;
        let out = (0..b)
            .map(|bi| f32s(&logits.bytes()[bi * v..(bi + 1) * v]))
            .collect();
        drop(logits);
        drop(charges);
        Ok(out)
    }
}

/// How a decode batch runs: `shared` is the previous batch when exactly its rows came
/// back (its outputs go back in as they are); `tmax` the padded cache length.
struct BatchPlan {
    shared: Option<Arc<BatchKv>>,
    tmax: usize,
    /// Padding positions of the whole batch (`tmax - len` summed over its rows).
    padding: u64,
    /// The row (sequence id) charged for the padding.
    longest: u64,
}

/// The next decode batch: the oldest waiting single-token step, then the others in
/// arrival order as long as the padded batch stays at most [`MAX_PADDING`] padding
/// (caches are left-padded to the longest row, so one long sequence among short
/// ones would multiply the memory a run needs). Steps left out go first next time.
fn pick_decode_batch(pending: &mut VecDeque<Job>, max_batch: usize) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let (mut tmax, mut sum) = (0usize, 0usize);
    let mut i = 0;
    while i < pending.len() && batch.len() < max_batch {
        if pending[i].tokens.len() != 1 {
            i += 1;
            continue;
        }
        let len = pending[i].kv.len + 1;
        let t = tmax.max(len);
        let fits = batch.is_empty()
            || (t * (batch.len() + 1)) as f64 * (1.0 - MAX_PADDING) <= (sum + len) as f64;
        if fits {
            tmax = t;
            sum += len;
            batch.extend(pending.remove(i));
        } else {
            i += 1;
        }
    }
    batch
}

fn bytes_i64(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64, len: usize, tokens: usize) -> Job {
        let (reply, _rx) = tokio::sync::oneshot::channel();
        Job {
            seq,
            kv: Kv {
                len,
                storage: KvStorage::Empty,
                tenant: Arc::from("t"),
            },
            tokens: vec![7; tokens],
            reply,
            refused_at: None,
        }
    }

    #[test]
    fn batches_keep_padding_bounded_and_serve_the_oldest_first() {
        // A long sequence first, then short ones: only as many join its batch as keep
        // padding at most half of the positions; a prompt chunk never joins a batch.
        let mut p: VecDeque<Job> = [
            job(1, 1000, 1),
            job(2, 10, 1),
            job(3, 900, 1),
            job(4, 12, 40),
            job(5, 8, 1),
            job(6, 12, 1),
        ]
        .into();
        let first = pick_decode_batch(&mut p, 16);
        assert_eq!(
            first.iter().map(|j| j.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let second = pick_decode_batch(&mut p, 16);
        assert_eq!(second.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![5, 6]);
        for batch in [&first, &second] {
            let tmax = batch.iter().map(|j| j.kv.len + 1).max().unwrap();
            let real: usize = batch.iter().map(|j| j.kv.len + 1).sum();
            assert!((tmax * batch.len()) as f64 * (1.0 - MAX_PADDING) <= real as f64);
        }
        assert_eq!(p.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![4]);
        // max_batch caps the rows.
        let mut p: VecDeque<Job> = (0..10).map(|i| job(i, 50, 1)).collect();
        assert_eq!(pick_decode_batch(&mut p, 4).len(), 4);
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn the_budget_refuses_growth_past_its_limit_and_frees_on_drop() {
        let b = KvBudget::new(100, 100);
        let t: Arc<str> = Arc::from("acme");
        let c = b.reserve(&t, 60, 0).unwrap();
        assert_eq!(b.reserve(&t, 41, 0).unwrap_err().code, ErrorCode::TooLarge);
        drop(c);
        assert_eq!(b.used.load(Ordering::Relaxed), 0);
        assert_eq!(b.tenant_used("acme"), 0);
        let _all = b.reserve(&t, 100, 0).unwrap();
    }

    /// A tenant cannot take more than its share, and what it holds never blocks another
    /// tenant's share; the node total is the sum of both.
    #[test]
    fn each_tenant_is_held_to_its_share_of_the_budget() {
        let b = KvBudget::new(100, 60);
        let (a, z): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("z"));
        let a1 = b.reserve(&a, 50, 0).unwrap();
        let e = b.reserve(&a, 11, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        assert!(
            e.message.contains("tenant's share") && e.message.contains("KV-cache budget"),
            "{}",
            e.message
        );
        let z1 = b.reserve(&z, 50, 0).unwrap();
        assert_eq!(b.used.load(Ordering::Relaxed), 100);
        let e = b.reserve(&z, 1, 0).unwrap_err();
        assert!(
            e.message.contains("node's KV-cache budget"),
            "{}",
            e.message
        );
        drop(a1);
        assert_eq!((b.tenant_used("a"), b.tenant_used("z")), (0, 50));
        drop(z1);
        assert_eq!(b.used.load(Ordering::Relaxed), 0);
        // A share above the node budget means all of it.
        assert_eq!(KvBudget::new(100, 1 << 40).tenant_limit, 100);
    }

    /// A batch's outputs stay charged, padding included, until its last row lets go, and
    /// the rows that keep it alive pay for the rows that left: one idle row of tenant
    /// `z` holding a batch it shared with `a` ends up charged for all of it.
    #[test]
    fn a_batch_stays_charged_until_its_last_row_and_its_holders_pay() {
        let b = KvBudget::new(1000, 1000);
        let (a, z): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("z"));
        let charges = vec![
            RowCharge::new(b.reserve(&a, 100, 0).unwrap()),
            RowCharge::new(b.reserve(&a, 100, 0).unwrap()),
            RowCharge::new(b.reserve(&z, 100, 0).unwrap()),
        ];
        let batch = Arc::new(BatchKv {
            tensors: Vec::new(),
            rows: vec![1, 2, 3],
            t: 4,
            charges: Mutex::new(charges),
        });
        let rows: Vec<BatchRow> = (0..3)
            .map(|row| BatchRow {
                batch: batch.clone(),
                row,
            })
            .collect();
        drop(batch);
        assert_eq!((b.tenant_used("a"), b.tenant_used("z")), (200, 100));
        let mut rows = rows.into_iter();
        let (r0, r1, r2) = (
            rows.next().unwrap(),
            rows.next().unwrap(),
            rows.next().unwrap(),
        );
        drop(r0);
        // Row 0's bytes went to the two rows still holding the batch.
        assert_eq!(
            b.used.load(Ordering::Relaxed),
            300,
            "nothing is freed while the batch lives"
        );
        assert_eq!((b.tenant_used("a"), b.tenant_used("z")), (150, 150));
        drop(r1);
        assert_eq!(
            (b.tenant_used("a"), b.tenant_used("z")),
            (0, 300),
            "the idle holder pays for the whole batch"
        );
        assert_eq!(b.used.load(Ordering::Relaxed), 300);
        assert_eq!(
            r2.batch.inherited(r2.row),
            200,
            "of which 200 came from the rows that left"
        );
        drop(r2);
        assert_eq!(
            b.used.load(Ordering::Relaxed),
            0,
            "the last row frees every byte"
        );
        // The credit: a tenant at its share may still run the step that lets its
        // inherited bytes go; the node still counts every byte.
        let tight = KvBudget::new(1000, 100);
        let held = tight.reserve(&z, 100, 0).unwrap();
        assert!(tight.reserve(&z, 50, 0).is_err());
        let step = tight.reserve(&z, 50, 60).unwrap();
        assert_eq!(tight.used.load(Ordering::Relaxed), 150);
        assert!(
            tight.reserve(&z, 50, 60).is_err(),
            "the credit covers what the tenant holds beyond its share, no more"
        );
        drop((held, step));
        assert_eq!((b.tenant_used("a"), b.tenant_used("z")), (0, 0));
    }
}
