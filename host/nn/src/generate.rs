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
//! * Every cache byte is counted against [`crate::NnConfig::max_kv_bytes`] before a run
//!   grows it; over budget is a `too-large` error, never an allocation failure.

use crate::ffi::{self, RawInput};
use crate::tensor::TensorType;
use crate::{ErrorCode, NnError, SessionCore};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most prompt tokens in one run.
pub const PREFILL_CHUNK: usize = 128;
/// Decode rows per batch when the model's batching config does not say.
pub const DEFAULT_MAX_BATCH: usize = 16;
/// How long a batch waits for the sequences of the previous one, by default.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(3);
/// Largest share of a decode batch's cache positions that may be padding.
pub const MAX_PADDING: f64 = 0.5;

/// The node-wide KV-cache byte budget, shared by every model.
#[derive(Debug)]
pub struct KvBudget {
    pub limit: u64,
    pub used: AtomicU64,
}

impl KvBudget {
    pub fn new(limit: u64) -> Arc<KvBudget> {
        Arc::new(KvBudget { limit, used: AtomicU64::new(0) })
    }
    fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_add(bytes).filter(|n| *n <= self.limit))
            .is_ok()
    }
    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One sequence's cache (per layer key then value, f32), wherever its bytes are.
struct Kv {
    len: usize,
    store: Store,
    reserved: u64,
    budget: Arc<KvBudget>,
}

/// Where a cache's bytes live. Steps keep the cache in the memory ORT wrote it to (no
/// copy out); a batch shares its outputs among its rows, so when the same sequences
/// come back together the outputs are fed straight back in.
enum Store {
    /// Empty (nothing fed yet).
    Empty,
    /// The outputs of a run this sequence had alone: `[1, heads, len, head_dim]` each.
    Solo(Vec<ffi::OrtTensor>),
    /// Row `row` of a batch's outputs `[rows, heads, t, head_dim]`; the sequence's
    /// positions are the last `len` of `t` (rows are left-padded).
    Batch(Arc<BatchKv>, usize),
}

struct BatchKv {
    tensors: Vec<ffi::OrtTensor>,
    /// Sequence id of each row.
    rows: Vec<u64>,
    t: usize,
}

impl Kv {
    /// Bytes of head `h` of layer tensor `l`: `len` rows of `row_bytes`.
    fn head(&self, l: usize, h: usize, heads: usize, row_bytes: usize) -> &[u8] {
        let n = self.len * row_bytes;
        match &self.store {
            Store::Empty => &[],
            Store::Solo(t) => &t[l].bytes()[h * n..(h + 1) * n],
            Store::Batch(b, row) => {
                let s = ((row * heads + h) * b.t + (b.t - self.len)) * row_bytes;
                &b.tensors[l].bytes()[s..s + n]
            }
        }
    }
}

impl Drop for Kv {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

struct Job {
    seq: u64,
    kv: Kv,
    tokens: Vec<i64>,
    reply: tokio::sync::oneshot::Sender<(Kv, Result<Vec<f32>, NnError>)>,
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
}

/// A loaded causal language model with its scheduler.
pub struct CausalLm {
    pub display: String,
    pub vocab: usize,
    pub context: usize,
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Msg>>,
    next_id: AtomicU64,
    budget: Arc<KvBudget>,
    pub stats: Arc<LmStats>,
}

/// What the scheduler thread needs (it must not keep the [`CausalLm`] alive).
struct Engine {
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
    /// limit (from its `helixflow.context_length` metadata), capped by the node.
    pub(crate) fn start(
        core: Arc<SessionCore>,
        context: usize,
        max_batch: usize,
        max_delay: Duration,
        budget: Arc<KvBudget>,
    ) -> Result<CausalLm, NnError> {
        let find = |name: &str| core.inputs.iter().find(|i| i.name == name);
        for (name, ty) in [("input_ids", TensorType::I64), ("attention_mask", TensorType::I64), ("position_ids", TensorType::I64)] {
            let i = find(name).ok_or_else(|| not_lm(&core, format!("no input {name}")))?;
            if i.ty != Some(ty) || i.shape.len() != 2 {
                return Err(not_lm(&core, format!("input {name} must be int64 [batch, n]")));
            }
        }
        let layers = core.inputs.iter().filter(|i| i.name.starts_with("past_key_values.") && i.name.ends_with(".key")).count();
        if layers == 0 {
            return Err(not_lm(&core, "no past_key_values inputs"));
        }
        let mut geometry = None;
        let mut outputs = vec!["logits".to_string()];
        for l in 0..layers {
            for kv in ["key", "value"] {
                let i = find(&format!("past_key_values.{l}.{kv}")).ok_or_else(|| not_lm(&core, format!("no input past_key_values.{l}.{kv}")))?;
                let (h, d) = match i.shape.as_slice() {
                    [_, h, _, d] if *h > 0 && *d > 0 && i.ty == Some(TensorType::Fp32) => (*h as usize, *d as usize),
                    _ => return Err(not_lm(&core, format!("past_key_values.{l}.{kv} must be float32 [batch, heads, past, head_dim] with fixed heads and head_dim"))),
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
        let logits = core.outputs.iter().find(|o| o.name == "logits").ok_or_else(|| not_lm(&core, "no output logits"))?;
        let vocab = match logits.shape.as_slice() {
            [_, _, v] if *v > 0 && logits.ty == Some(TensorType::Fp32) => *v as usize,
            _ => return Err(not_lm(&core, "logits must be float32 [batch, seq, vocab] with a fixed vocab")),
        };
        let stats = Arc::new(LmStats::default());
        let engine = Engine {
            core: core.clone(),
            layers,
            kv_heads,
            head_dim,
            vocab,
            max_batch: max_batch.max(1),
            max_delay,
            budget: budget.clone(),
            stats: stats.clone(),
            outputs,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("helixflow-lm".into())
            .spawn(move || engine.run(rx))
            .map_err(|e| NnError::new(ErrorCode::RuntimeError, format!("cannot start the decode scheduler: {e}")))?;
        tracing::info!(model = %core.display, layers, kv_heads, head_dim, vocab, context, max_batch, "causal LM scheduler started");
        Ok(CausalLm {
            display: core.display.clone(),
            vocab,
            context,
            layers,
            kv_heads,
            head_dim,
            tx: std::sync::Mutex::new(tx),
            next_id: AtomicU64::new(1),
            budget,
            stats,
        })
    }

    /// KV-cache bytes per cached position.
    pub fn bytes_per_position(&self) -> u64 {
        (2 * self.layers * self.kv_heads * self.head_dim * 4) as u64
    }

    /// A new, empty sequence.
    pub fn open(self: &Arc<Self>) -> Sequence {
        self.stats.open_sequences.fetch_add(1, Ordering::Relaxed);
        Sequence {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            lm: self.clone(),
            kv: Some(Kv { len: 0, store: Store::Empty, reserved: 0, budget: self.budget.clone() }),
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
            return Err(NnError::new(ErrorCode::InvalidArgument, "feed needs at least one token"));
        }
        if let Some(bad) = tokens.iter().find(|t| **t as usize >= self.lm.vocab) {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                format!("token id {bad} is outside the vocabulary of {} ({} tokens)", self.lm.display, self.lm.vocab),
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
        let mut logits = Vec::new();
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            let kv = self
                .kv
                .take()
                .ok_or_else(|| NnError::new(ErrorCode::RuntimeError, "this sequence lost its cache in an earlier failure; open a new one"))?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            let job = Job { seq: self.id, kv, tokens: chunk.iter().map(|t| i64::from(*t)).collect(), reply };
            if !self.lm.send(Msg::Step(job)) {
                return Err(NnError::new(ErrorCode::RuntimeError, "the decode scheduler has stopped"));
            }
            let (kv, r) = rx.await.map_err(|_| NnError::new(ErrorCode::RuntimeError, "the decode scheduler dropped the step"))?;
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

impl Engine {
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
                let waiting = expected.iter().any(|id| !pending.iter().any(|j| j.seq == *id));
                let now = Instant::now();
                if !waiting || now >= deadline || pending.iter().filter(|j| j.tokens.len() == 1).count() >= self.max_batch {
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
            if !decode.is_empty() {
                self.run_jobs(decode);
            }
            if let Some(pos) = pending.iter().position(|j| j.tokens.len() > 1) {
                if let Some(j) = pending.remove(pos) {
                    self.run_jobs(vec![j]);
                }
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

    fn run_jobs(&self, jobs: Vec<Job>) {
        let per_pos = self.per_position();
        // Reserve the cache growth first; a job over the budget fails alone.
        let mut ok = Vec::with_capacity(jobs.len());
        for mut j in jobs {
            let grow = per_pos * j.tokens.len() as u64;
            if self.budget.reserve(grow) {
                j.kv.reserved += grow;
                ok.push(j);
            } else {
                let e = NnError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "this node's KV-cache budget ({} MiB) is in use by other sequences; retry later",
                        self.budget.limit >> 20
                    ),
                );
                let _ = j.reply.send((j.kv, Err(e)));
            }
        }
        if ok.is_empty() {
            return;
        }
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        let result = if ok.len() == 1 { self.run_one(&mut ok[0]) } else { self.run_batch(&mut ok) };
        match result {
            Ok(logits) => {
                for (j, l) in ok.into_iter().zip(logits) {
                    let _ = j.reply.send((j.kv, Ok(l)));
                }
            }
            Err(e) => {
                self.core.stats.errors.fetch_add(1, Ordering::Relaxed);
                for j in ok {
                    let _ = j.reply.send((j.kv, Err(e.clone())));
                }
            }
        }
    }

    fn per_position(&self) -> u64 {
        (2 * self.layers * self.kv_heads * self.head_dim * 4) as u64
    }

    fn kv_names(&self) -> Vec<String> {
        (0..self.layers).flat_map(|l| [format!("past_key_values.{l}.key"), format!("past_key_values.{l}.value")]).collect()
    }

    /// One sequence alone (a prompt chunk, or a decode step with nobody to share it):
    /// a cache ORT wrote goes back in as is.
    fn run_one(&self, j: &mut Job) -> Result<Vec<Vec<f32>>, NnError> {
        let n = j.tokens.len();
        let past = j.kv.len;
        let (h, d) = (self.kv_heads, self.head_dim);
        if n == 1 {
            self.stats.decode_rows.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.prefill_tokens.fetch_add(n as u64, Ordering::Relaxed);
        }
        let ids = bytes_i64(&j.tokens);
        let mask = bytes_i64(&vec![1i64; past + n]);
        let pos = bytes_i64(&(past as i64..(past + n) as i64).collect::<Vec<_>>());
        let names = self.kv_names();
        let ids_shape = [1, n as i64];
        let mask_shape = [1, (past + n) as i64];
        let kv_shape = [1, h as i64, past as i64, d as i64];
        // A row of a batch is copied out; a solo cache is used in place.
        let copied: Vec<Vec<u8>> = match &j.kv.store {
            Store::Batch(..) => (0..2 * self.layers)
                .map(|l| (0..h).flat_map(|hi| j.kv.head(l, hi, h, d * 4).iter().copied()).collect())
                .collect(),
            _ => Vec::new(),
        };
        let mut inputs = vec![
            RawInput { name: "input_ids", ty: TensorType::I64, shape: &ids_shape, data: &ids },
            RawInput { name: "attention_mask", ty: TensorType::I64, shape: &mask_shape, data: &mask },
            RawInput { name: "position_ids", ty: TensorType::I64, shape: &ids_shape, data: &pos },
        ];
        for (l, name) in names.iter().enumerate() {
            let data: &[u8] = match &j.kv.store {
                Store::Empty => &[],
                Store::Solo(t) => t[l].bytes(),
                Store::Batch(..) => &copied[l],
            };
            inputs.push(RawInput { name, ty: TensorType::Fp32, shape: &kv_shape, data });
        }
        let out_names: Vec<&str> = self.outputs.iter().map(String::as_str).collect();
        let mut outs = ffi::run_keep(&self.core.session, &inputs, &out_names)?;
        drop(copied);
        let presents = outs.split_off(1);
        let logits = outs.pop().ok_or_else(|| NnError::new(ErrorCode::RuntimeError, "no logits"))?;
        let want = [1, n as i64, self.vocab as i64];
        if logits.shape != want || logits.ty != TensorType::Fp32 {
            return Err(NnError::new(ErrorCode::RuntimeError, format!("logits came back {:?}, expected {want:?}", logits.shape)));
        }
        let last = f32s(&logits.bytes()[(n - 1) * self.vocab * 4..]);
        let want_kv = [1, h as i64, (past + n) as i64, d as i64];
        if let Some(o) = presents.iter().find(|o| o.shape != want_kv || o.ty != TensorType::Fp32) {
            return Err(NnError::new(ErrorCode::RuntimeError, format!("present came back {:?}, expected {want_kv:?}", o.shape)));
        }
        j.kv.store = Store::Solo(presents);
        j.kv.len = past + n;
        Ok(vec![last])
    }

    /// Single-token steps of several sequences in one run, each row at its own
    /// position with its padding masked out. When the same sequences come back together
    /// their shared cache (the last run's outputs) goes straight back in; otherwise the
    /// caches are assembled, left-padded to the longest.
    fn run_batch(&self, jobs: &mut Vec<Job>) -> Result<Vec<Vec<f32>>, NnError> {
        let b = jobs.len();
        let (h, d) = (self.kv_heads, self.head_dim);
        let row = d * 4; // bytes per (head, position)
        self.stats.decode_rows.fetch_add(b as u64, Ordering::Relaxed);
        self.stats.batched_runs.fetch_add(1, Ordering::Relaxed);
        self.stats.max_rows.fetch_max(b as u64, Ordering::Relaxed);
        self.core.stats.batched_requests.fetch_add(b as u64, Ordering::Relaxed);
        // Same batch as last time (every row back, nobody new)? Then keep its row order.
        let shared: Option<Arc<BatchKv>> = match &jobs[0].kv.store {
            Store::Batch(s, _) if s.rows.len() == b => Some(s.clone()),
            _ => None,
        };
        let sticky = shared.as_ref().is_some_and(|s| {
            jobs.iter().all(|j| matches!(&j.kv.store, Store::Batch(o, _) if Arc::ptr_eq(o, s)))
        });
        if let (true, Some(s)) = (sticky, &shared) {
            jobs.sort_by_key(|j| match &j.kv.store {
                Store::Batch(_, r) => *r,
                _ => 0,
            });
            debug_assert!(jobs.iter().zip(&s.rows).all(|(j, id)| j.seq == *id));
            self.stats.sticky_runs.fetch_add(1, Ordering::Relaxed);
        }
        let tmax = match (&shared, sticky) {
            (Some(s), true) => s.t,
            _ => jobs.iter().map(|j| j.kv.len).max().unwrap_or(0),
        };
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
            RawInput { name: "input_ids", ty: TensorType::I64, shape: &ids_shape, data: &ids },
            RawInput { name: "attention_mask", ty: TensorType::I64, shape: &mask_shape, data: &mask },
            RawInput { name: "position_ids", ty: TensorType::I64, shape: &ids_shape, data: &pos },
        ];
        for (l, name) in names.iter().enumerate() {
            let data: &[u8] = match (&shared, sticky) {
                (Some(s), true) => s.tensors[l].bytes(),
                _ => &assembled[l],
            };
            inputs.push(RawInput { name, ty: TensorType::Fp32, shape: &kv_shape, data });
        }
        let out_names: Vec<&str> = self.outputs.iter().map(String::as_str).collect();
        let mut outs = ffi::run_keep(&self.core.session, &inputs, &out_names)?;
        drop(assembled);
        let presents = outs.split_off(1);
        let logits = outs.pop().ok_or_else(|| NnError::new(ErrorCode::RuntimeError, "no logits"))?;
        let want = [b as i64, 1, self.vocab as i64];
        if logits.shape != want || logits.ty != TensorType::Fp32 {
            return Err(NnError::new(ErrorCode::RuntimeError, format!("logits came back {:?}, expected {want:?}", logits.shape)));
        }
        let want_kv = [b as i64, h as i64, (tmax + 1) as i64, d as i64];
        if let Some(o) = presents.iter().find(|o| o.shape != want_kv || o.ty != TensorType::Fp32) {
            return Err(NnError::new(ErrorCode::RuntimeError, format!("present came back {:?}, expected {want_kv:?}", o.shape)));
        }
        let batch = Arc::new(BatchKv { tensors: presents, rows: jobs.iter().map(|j| j.seq).collect(), t: tmax + 1 });
        for (bi, j) in jobs.iter_mut().enumerate() {
            j.kv.store = Store::Batch(batch.clone(), bi);
            j.kv.len += 1;
        }
        let v = self.vocab * 4;
        Ok((0..b).map(|bi| f32s(&logits.bytes()[bi * v..(bi + 1) * v])).collect())
    }
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
        let fits = batch.is_empty() || (t * (batch.len() + 1)) as f64 * (1.0 - MAX_PADDING) <= (sum + len) as f64;
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
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64, len: usize, tokens: usize, budget: &Arc<KvBudget>) -> Job {
        let (reply, _rx) = tokio::sync::oneshot::channel();
        Job { seq, kv: Kv { len, store: Store::Empty, reserved: 0, budget: budget.clone() }, tokens: vec![7; tokens], reply }
    }

    #[test]
    fn batches_keep_padding_bounded_and_serve_the_oldest_first() {
        let b = KvBudget::new(1 << 30);
        // A long sequence first, then short ones: only as many join its batch as keep
        // padding at most half of the positions; a prompt chunk never joins a batch.
        let mut p: VecDeque<Job> = [job(1, 1000, 1, &b), job(2, 10, 1, &b), job(3, 900, 1, &b), job(4, 12, 40, &b), job(5, 8, 1, &b), job(6, 12, 1, &b)].into();
        let first = pick_decode_batch(&mut p, 16);
        assert_eq!(first.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let second = pick_decode_batch(&mut p, 16);
        assert_eq!(second.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![5, 6]);
        for batch in [&first, &second] {
            let tmax = batch.iter().map(|j| j.kv.len + 1).max().unwrap();
            let real: usize = batch.iter().map(|j| j.kv.len + 1).sum();
            assert!((tmax * batch.len()) as f64 * (1.0 - MAX_PADDING) <= real as f64);
        }
        assert_eq!(p.iter().map(|j| j.seq).collect::<Vec<_>>(), vec![4]);
        // max_batch caps the rows.
        let mut p: VecDeque<Job> = (0..10).map(|i| job(i, 50, 1, &b)).collect();
        assert_eq!(pick_decode_batch(&mut p, 4).len(), 4);
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn the_budget_refuses_growth_past_its_limit_and_frees_on_drop() {
        let b = KvBudget::new(100);
        assert!(b.reserve(60));
        assert!(!b.reserve(41));
        {
            let _kv = Kv { len: 1, store: Store::Empty, reserved: 60, budget: b.clone() };
        }
        assert_eq!(b.used.load(Ordering::Relaxed), 0);
        assert!(b.reserve(100));
    }
}
