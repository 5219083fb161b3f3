//! # helixflow-nn: HelixFlow's wasi:nn host on ONNX Runtime
//!
//! * [`Inference`] is the per-process service: the ONNX Runtime environment (loaded
//!   from `ORT_DYLIB_PATH`, one global intra-op thread pool sized for the machine),
//!   a cache of ORT sessions keyed by (model SHA-256, execution-provider preference,
//!   options), single-flight creation, LRU eviction under a byte budget, and per-model
//!   dynamic batching ([`batch`]).
//! * [`host`] implements `wasi:nn@0.2.0-rc-2024-10-28` (bindings generated from the
//!   repository's `wit/wasi-nn/`, async host calls) over it; the runtime links it into
//!   every sandbox with a per-invocation [`host::NnCtx`] that carries the caller's tenant.
//! * Where model bytes come from is not this crate's business: a [`ModelSource`]
//!   (implemented over the model registry by the api crate) resolves a tenant-scoped
//!   name to a [`ModelSpec`] and fetches its bytes.
//!
//! Architecture invariants:
//! * Guests never see model bytes, other tenants' model names, or host paths: a guest
//!   names a model, the [`ModelSource`] decides in the caller's tenant namespace.
//! * One ORT session per (model version, provider choice), shared by every instance
//!   and tenant, run concurrently without a lock ([`ffi::run`]).
//! * The execution provider actually used is never silent: it is logged when a session
//!   is created and reported by [`Inference::loaded`].
//! * Bad input is a [`NnError`] with a code and message, never a panic.

pub mod batch;
pub mod dir_source;
mod ffi;
pub mod generate;
pub mod host;
mod llm_host;
pub mod tensor;
pub mod upload;
pub mod witx;

use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
pub use tensor::{Tensor, TensorType};

/// wasi:nn error codes (the WIT's `error-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    InvalidEncoding,
    Timeout,
    RuntimeError,
    UnsupportedOperation,
    TooLarge,
    NotFound,
    Security,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::InvalidEncoding => "invalid-encoding",
            ErrorCode::Timeout => "timeout",
            ErrorCode::RuntimeError => "runtime-error",
            ErrorCode::UnsupportedOperation => "unsupported-operation",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Security => "security",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// An inference error as the guest sees it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct NnError {
    pub code: ErrorCode,
    pub message: String,
}

impl NnError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> NnError {
        NnError {
            code,
            message: message.into(),
        }
    }
}

/// Why the inference service could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "ONNX Runtime library not found: {0} (install it with `pip install onnxruntime==1.31.1` and set ORT_DYLIB_PATH to .../onnxruntime/capi/libonnxruntime.so.1.31.1)"
    )]
    Missing(String),
    #[error("could not load ONNX Runtime from {path}: {message}")]
    Load { path: String, message: String },
    #[error("could not create the ONNX Runtime environment: {0}")]
    Environment(String),
}

/// Execution providers, in the order a model prefers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Tensorrt,
    Cuda,
    Cpu,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Tensorrt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
    pub fn parse(s: &str) -> Option<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tensorrt" | "trt" => Some(Provider::Tensorrt),
            "cuda" => Some(Provider::Cuda),
            "cpu" => Some(Provider::Cpu),
            _ => None,
        }
    }
}

/// What to do when a preferred provider cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Try the next provider in the list (logged and reported, never silent).
    Next,
    /// Refuse to load the model.
    Refuse,
}

/// How ONNX Runtime's intra-op threads wait between parallel sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpinPolicy {
    /// They sleep: no CPU burnt while waiting, but every parallel section pays a wake-up
    /// (decode steps of small LLMs have hundreds of them).
    Off,
    /// Spin only while the model works: a CPU session gets its own pool (`intra_threads`
    /// threads) that spins during a run and stops spinning the moment the last concurrent
    /// run of that session returns (`session.force_spinning_stop`), so an idle model burns
    /// nothing and a busy one gets spinning's latency. At most [`MAX_OWN_POOLS`] sessions
    /// have their own pool at once; the rest share the global pool, which does not spin.
    #[default]
    Adaptive,
    /// One global pool whose threads always spin a while after each section (ORT's own
    /// default): CPU burnt after every run, whoever else needs it.
    Always,
}

/// Node-wide inference settings.
#[derive(Debug, Clone)]
pub struct NnConfig {
    /// The ONNX Runtime shared library; `None` = `ORT_DYLIB_PATH`.
    pub ort_dylib: Option<PathBuf>,
    /// Threads of an intra-op pool, the global one and each adaptive session's own
    /// (0 = number of CPUs).
    pub intra_threads: usize,
    /// Whether idle intra-op threads spin-wait for the next parallel section (lower
    /// latency for many small ops: LLM decode steps) or sleep (no CPU burnt that guests
    /// could use). See [`SpinPolicy`].
    pub intra_spin: SpinPolicy,
    /// Byte budget for loaded sessions (estimated as 2x the model file); LRU eviction.
    pub session_budget_bytes: u64,
    /// Provider preference for models that do not set one.
    pub default_providers: Vec<Provider>,
    pub default_fallback: Fallback,
    /// TensorRT engine cache (survives restarts); `None` = no engine cache.
    pub trt_cache_dir: Option<PathBuf>,
    /// Guests may pass model bytes to `load` (off by default: guests do not ship weights).
    pub allow_guest_load: bool,
    pub max_guest_model_bytes: usize,
    /// Largest tensor a guest may create or receive.
    pub max_tensor_bytes: usize,
    /// Most wasi:nn calls of one invocation.
    pub max_calls_per_invocation: u32,
    /// Bytes of KV cache all open `helixflow:llm` sequences may hold together (with
    /// every padded batch input and output the decode schedulers hold).
    pub max_kv_bytes: u64,
    /// Bytes of that budget one tenant's sequences may hold (capped at `max_kv_bytes`).
    pub max_kv_tenant_bytes: u64,
    /// Bytes each causal LM's prefix cache may hold (prompt beginnings reused by the
    /// same tenant's next sequences; charged to the KV budget too); 0 disables it.
    pub prefix_cache_bytes: u64,
    /// Longest context a sequence may reach (a model's own limit applies too).
    pub max_context: usize,
    /// Sequences one invocation may hold open at once.
    pub max_sequences_per_invocation: u32,
}

impl Default for NnConfig {
    fn default() -> Self {
        NnConfig {
            ort_dylib: None,
            intra_threads: 0,
            intra_spin: SpinPolicy::Adaptive,
            session_budget_bytes: 4 << 30,
            default_providers: vec![Provider::Cpu],
            default_fallback: Fallback::Next,
            trt_cache_dir: None,
            allow_guest_load: false,
            max_guest_model_bytes: 64 << 20,
            max_tensor_bytes: 64 << 20,
            max_calls_per_invocation: 10_000,
            max_kv_bytes: 2 << 30,
            max_kv_tenant_bytes: 1 << 30,
            prefix_cache_bytes: 64 << 20,
            max_context: 8192,
            max_sequences_per_invocation: 4,
        }
    }
}

/// Dynamic batching of one model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Batching {
    /// Most rows (dimension 0) in one run; 0 or 1 = batching off. (For a causal LM: the
    /// rows of a decode run, see [`generate`].)
    pub max_batch: u32,
    /// How long the first request of a batch waits for company.
    pub max_delay_us: u64,
    /// The model's owner declares every output row a function of the same input row
    /// alone (no batch-wide statistics, such as dynamic activation quantisation with one
    /// scale per tensor or batch normalisation in training mode). Invariant: the generic
    /// batcher ([`batch`]) coalesces requests only for models that declare it; others
    /// always run one request per run, whatever `max_batch` says.
    #[serde(default)]
    pub row_independent: bool,
}

/// A resolved model version, as the registry describes it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// For logs and metrics, e.g. `acme/minilm@3` or `public/minilm@1`.
    pub display: String,
    pub sha256: String,
    /// Empty = the node default.
    pub providers: Vec<Provider>,
    pub fallback: Option<Fallback>,
    pub batching: Batching,
    /// TensorRT: build fp16 engines.
    pub trt_fp16: bool,
}

/// Resolves tenant-scoped model names and fetches model bytes.
#[async_trait::async_trait]
pub trait ModelSource: Send + Sync {
    /// `name` as the guest gave it (`minilm`, `minilm@3`). Must only ever return the
    /// caller tenant's own models or public ones.
    async fn resolve(&self, tenant: &str, name: &str) -> Result<ModelSpec, NnError>;
    /// The model file, verified against `spec.sha256`.
    async fn fetch(&self, spec: &ModelSpec) -> Result<Vec<u8>, NnError>;
}

/// Input/output metadata of a loaded model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IoSpec {
    pub name: String,
    /// `None` when the type cannot cross wasi:nn.
    #[serde(serialize_with = "ser_ty")]
    pub ty: Option<TensorType>,
    /// -1 = dynamic.
    pub shape: Vec<i64>,
}

fn ser_ty<S: serde::Serializer>(t: &Option<TensorType>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.map(|t| t.name()).unwrap_or("unsupported"))
}

/// The shared, immutable part of a loaded model: what the batcher and callers run.
pub struct SessionCore {
    pub display: String,
    pub sha256: String,
    pub provider: Provider,
    pub inputs: Vec<IoSpec>,
    pub outputs: Vec<IoSpec>,
    session: ort::session::Session,
    pub stats: GraphStats,
    /// The model's `helixflow.context_length` metadata, if any.
    pub context_length: Option<usize>,
    /// Whether a row's results in a run are independent of the other rows (false when
    /// the graph quantises activations per tensor: `DynamicQuantizeLinear`). Prefix
    /// caching is exact only for such models.
    pub rows_independent: bool,
    /// Held while this session has its own (adaptive-spin) thread pool.
    _own_pool: Option<OwnPool>,
}

/// Sessions with their own intra-op pool (`SpinPolicy::Adaptive`) at once, at most: each
/// pool has `intra_threads` threads, so many busy models would oversubscribe the cores
/// with spinning threads; sessions beyond this share the global, non-spinning pool.
pub const MAX_OWN_POOLS: usize = 4;

/// One of the [`MAX_OWN_POOLS`] slots; freed when the session is dropped.
struct OwnPool(Arc<AtomicUsize>);

impl OwnPool {
    fn take(count: &Arc<AtomicUsize>) -> Option<OwnPool> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_OWN_POOLS).then_some(n + 1)
            })
            .ok()
            .map(|_| OwnPool(count.clone()))
    }
}

impl Drop for OwnPool {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Default)]
pub struct GraphStats {
    pub computes: AtomicU64,
    pub errors: AtomicU64,
    pub runs: AtomicU64,
    pub batched_requests: AtomicU64,
    /// Runs by how many compute calls they carried: `[i]` counts runs of at most
    /// [`BATCH_BUCKETS`]`[i]` calls (and more than the bucket before); the last, more.
    pub batch_sizes: [AtomicU64; BATCH_BUCKETS.len() + 1],
    /// Compute calls carried by all runs (the histogram's sum).
    pub run_requests: AtomicU64,
}

/// Upper bounds of the batch-size histogram's buckets (compute calls per run).
pub const BATCH_BUCKETS: [u64; 7] = [1, 2, 4, 8, 16, 32, 64];

impl GraphStats {
    /// Counts one run that carried `requests` compute calls.
    pub fn record_run(&self, requests: usize) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.run_requests
            .fetch_add(requests as u64, Ordering::Relaxed);
        let i = BATCH_BUCKETS
            .iter()
            .position(|b| requests as u64 <= *b)
            .unwrap_or(BATCH_BUCKETS.len());
        self.batch_sizes[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// A loaded model (a `wasi:nn` graph): shared by every caller.
pub struct LoadedGraph {
    pub core: Arc<SessionCore>,
    pub batching: Batching,
    batcher: Option<batch::Batcher>,
    pub loaded_at: Instant,
    /// Its decode scheduler, started on first use as a causal language model.
    lm: OnceLock<Result<Arc<generate::CausalLm>, NnError>>,
}

impl LoadedGraph {
    /// Whether anyone but the session cache holds this graph: a guest's graph resource,
    /// a compute in flight, or an open `helixflow:llm` sequence of its decode scheduler.
    /// Call it on the `Arc` the cache holds.
    fn in_use(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) > 1
            || matches!(self.lm.get(), Some(Ok(lm)) if Arc::strong_count(lm) > 1)
    }

    /// Runs one request: validates inputs against the model, then runs it alone or,
    /// when the model batches, together with concurrent requests.
    pub async fn compute(
        &self,
        inputs: Vec<(String, Tensor)>,
    ) -> Result<Vec<(String, Tensor)>, NnError> {
        let core = &self.core;
        core.stats.computes.fetch_add(1, Ordering::Relaxed);
        let r = async {
            let ordered = core.order_inputs(inputs)?;
            let outs = match &self.batcher {
                Some(b) if b.accepts(&ordered) => b.submit(ordered).await?,
                _ => core.run_blocking(ordered).await?,
            };
            Ok(core
                .outputs
                .iter()
                .zip(outs)
                .map(|(spec, o)| {
                    let dims = o.shape.iter().map(|d| *d as u32).collect();
                    (
                        spec.name.clone(),
                        Tensor {
                            ty: o.ty.wire(),
                            dims,
                            data: o.data,
                        },
                    )
                })
                .collect())
        }
        .await;
        if r.is_err() {
            core.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl SessionCore {
    /// Checks names, types, ranks and fixed dimensions; returns tensors in model order.
    fn order_inputs(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<Tensor>, NnError> {
        let mut by_name: HashMap<String, Tensor> = HashMap::with_capacity(inputs.len());
        for (name, t) in inputs {
            if !self.inputs.iter().any(|i| i.name == name) {
                let known: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(NnError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "unknown input '{name}'; model {} takes {known:?}",
                        self.display
                    ),
                ));
            }
            if by_name.insert(name.clone(), t).is_some() {
                return Err(NnError::new(
                    ErrorCode::InvalidArgument,
                    format!("input '{name}' given twice"),
                ));
            }
        }
        let mut out = Vec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let t = by_name.remove(&spec.name).ok_or_else(|| {
                NnError::new(
                    ErrorCode::InvalidArgument,
                    format!("missing input '{}' of model {}", spec.name, self.display),
                )
            })?;
            let Some(want) = spec.ty else {
                return Err(NnError::new(
                    ErrorCode::UnsupportedOperation,
                    format!(
                        "input '{}' has an element type wasi:nn cannot represent",
                        spec.name
                    ),
                ));
            };
            if t.ty != want.wire() {
                return Err(NnError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "input '{}' is {} but the model expects {}",
                        spec.name,
                        t.ty.name(),
                        want.wire().name()
                    ),
                ));
            }
            if t.dims.len() != spec.shape.len() {
                return Err(NnError::new(
                    ErrorCode::InvalidArgument,
                    format!(
                        "input '{}' has rank {} ({:?}) but the model expects rank {} ({:?}, -1 = any)",
                        spec.name,
                        t.dims.len(),
                        t.dims,
                        spec.shape.len(),
                        spec.shape
                    ),
                ));
            }
            for (i, (have, want)) in t.dims.iter().zip(&spec.shape).enumerate() {
                if *want >= 0 && i64::from(*have) != *want {
                    return Err(NnError::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "input '{}' dimension {i} is {have} but the model expects {want} ({:?})",
                            spec.name, spec.shape
                        ),
                    ));
                }
            }
            // ONNX bool crosses as U8: only 0 and 1 are bools (see `ffi::check_bool`).
            // Checked here too, so a bad request never joins (and fails) a batch.
            if want == TensorType::Bool {
                ffi::check_bool(&spec.name, &t.data)?;
            }
            out.push(Tensor { ty: want, ..t });
        }
        Ok(out)
    }

    /// One unbatched run on a blocking thread.
    async fn run_blocking(
        self: &Arc<Self>,
        inputs: Vec<Tensor>,
    ) -> Result<Vec<ffi::RawOutput>, NnError> {
        let core = self.clone();
        tokio::task::spawn_blocking(move || core.run_now(&inputs))
            .await
            .map_err(|e| {
                NnError::new(
                    ErrorCode::RuntimeError,
                    format!("inference task failed: {e}"),
                )
            })?
    }

    fn run_now(&self, inputs: &[Tensor]) -> Result<Vec<ffi::RawOutput>, NnError> {
        self.run_for(inputs, 1)
    }

    /// One ONNX Runtime run carrying `requests` compute calls' rows.
    fn run_for(&self, inputs: &[Tensor], requests: usize) -> Result<Vec<ffi::RawOutput>, NnError> {
        self.stats.record_run(requests);
        let shapes: Vec<Vec<i64>> = inputs.iter().map(|t| t.shape()).collect();
        let raw: Vec<ffi::RawInput<'_>> = inputs
            .iter()
            .zip(&self.inputs)
            .zip(&shapes)
            .map(|((t, spec), shape)| ffi::RawInput {
                name: &spec.name,
                ty: t.ty,
                shape,
                data: &t.data,
            })
            .collect();
        let names: Vec<&str> = self.outputs.iter().map(|o| o.name.as_str()).collect();
        ffi::run(&self.session, &raw, &names)
    }
}

/// What [`Inference::loaded`] reports per session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadedInfo {
    pub model: String,
    pub sha256: String,
    pub provider: Provider,
    pub inputs: Vec<IoSpec>,
    pub outputs: Vec<IoSpec>,
    pub batching: Batching,
    pub computes: u64,
    pub errors: u64,
    pub runs: u64,
    pub batched_requests: u64,
    /// Runs by compute calls carried, per [`BATCH_BUCKETS`] (the last: more).
    pub batch_sizes: Vec<u64>,
    pub run_requests: u64,
    /// Set once the model served `helixflow:llm` sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lm: Option<LmInfo>,
}

/// A causal LM's decode scheduler, as [`Inference::loaded`] reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LmInfo {
    pub context: usize,
    pub open_sequences: u64,
    pub runs: u64,
    pub decode_rows: u64,
    pub batched_runs: u64,
    pub max_rows: u64,
    pub prefill_tokens: u64,
    pub sticky_runs: u64,
    pub prefix_lookups: u64,
    pub prefix_hits: u64,
    pub prefix_tokens: u64,
    pub prefix_cache_bytes: u64,
}

type Slot = Arc<tokio::sync::OnceCell<Arc<LoadedGraph>>>;

struct CacheEntry {
    slot: Slot,
    bytes: u64,
    last_used: u64,
}

/// The per-process inference service.
pub struct Inference {
    env: ort::environment::Environment,
    cfg: NnConfig,
    source: Arc<dyn ModelSource>,
    sessions: Mutex<HashMap<String, CacheEntry>>,
    clock: AtomicU64,
    pub loads: AtomicU64,
    pub evictions: AtomicU64,
    pub fallbacks: AtomicU64,
    kv_budget: Arc<generate::KvBudget>,
    /// Sessions holding an [`OwnPool`] slot.
    own_pools: Arc<AtomicUsize>,
}

static ENV: OnceLock<ort::environment::Environment> = OnceLock::new();

/// Intra-op threads of a pool (0 in the config = every CPU).
fn intra_threads(cfg: &NnConfig) -> usize {
    if cfg.intra_threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        cfg.intra_threads
    }
}

fn environment(cfg: &NnConfig) -> Result<ort::environment::Environment, InitError> {
    if let Some(env) = ENV.get() {
        return Ok(env.clone());
    }
    let path = match &cfg.ort_dylib {
        Some(p) => p.clone(),
        None => match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => return Err(InitError::Missing("ORT_DYLIB_PATH is not set".into())),
        },
    };
    if !path.is_file() {
        return Err(InitError::Missing(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let builder = ort::init_from(&path).map_err(|e| InitError::Load {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let threads = intra_threads(cfg);
    let pool = ort::environment::GlobalThreadPoolOptions::default()
        .with_intra_threads(threads)
        .and_then(|p| p.with_inter_threads(1))
        .and_then(|p| p.with_spin_control(cfg.intra_spin == SpinPolicy::Always))
        .map_err(|e| InitError::Environment(e.to_string()))?;
    let env = builder
        .with_name("helixflow")
        .with_global_thread_pool(pool)
        .build()
        .map_err(|e| InitError::Environment(e.to_string()))?;
    tracing::info!(path = %path.display(), intra_threads = threads, spin = ?cfg.intra_spin, "ONNX Runtime loaded");
    Ok(ENV.get_or_init(|| env).clone())
}

impl Inference {
    /// Loads ONNX Runtime (fails fast with a clear message when it is missing).
    pub fn new(cfg: NnConfig, source: Arc<dyn ModelSource>) -> Result<Arc<Inference>, InitError> {
        let env = environment(&cfg)?;
        let kv_budget = generate::KvBudget::new(cfg.max_kv_bytes, cfg.max_kv_tenant_bytes);
        Ok(Arc::new(Inference {
            kv_budget,
            own_pools: Arc::new(AtomicUsize::new(0)),
            env,
            cfg,
            source,
            sessions: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }))
    }

    /// The process's ONNX Runtime environment (benchmarks build reference sessions on it).
    pub fn environment(&self) -> &ort::environment::Environment {
        &self.env
    }

    pub fn config(&self) -> &NnConfig {
        &self.cfg
    }

    /// `load-by-name` for `tenant`.
    pub async fn graph_by_name(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<LoadedGraph>, NnError> {
        let spec = self.source.resolve(tenant, name).await?;
        let source = self.source.clone();
        let spec2 = spec.clone();
        self.graph(&spec, move || async move { source.fetch(&spec2).await })
            .await
    }

    /// A tenant's model as a causal language model with host-resident KV caches
    /// (`helixflow:llm/sequence`); its scheduler starts on first use.
    pub async fn causal_lm(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<generate::CausalLm>, NnError> {
        let g = self.graph_by_name(tenant, name).await?;
        g.lm.get_or_init(|| {
            let context = g
                .core
                .context_length
                .unwrap_or(self.cfg.max_context)
                .min(self.cfg.max_context);
            let max_batch = match g.batching.max_batch {
                0 => generate::DEFAULT_MAX_BATCH,
                n => n as usize,
            };
            let delay = match g.batching.max_delay_us {
                0 => generate::DEFAULT_MAX_DELAY,
                us => std::time::Duration::from_micros(us),
            };
            let prefix_bytes = if g.core.rows_independent {
                self.cfg.prefix_cache_bytes
            } else {
                tracing::info!(model = %g.core.display, "no prefix cache: the model quantises activations per tensor (DynamicQuantizeLinear), so a reused prefix would change its results");
                0
            };
            generate::CausalLm::start(
                g.core.clone(),
                context,
                max_batch,
                delay,
                self.kv_budget.clone(),
                prefix_bytes,
            )
            .map(Arc::new)
        })
        .clone()
    }

    /// Bytes of KV cache held by open sequences, and the budget.
    pub fn kv_bytes(&self) -> (u64, u64) {
        (
            self.kv_budget.used.load(Ordering::Relaxed),
            self.kv_budget.limit,
        )
    }

    /// Guest-supplied bytes (`load`), when the policy allows it.
    pub async fn graph_from_bytes(&self, bytes: Vec<u8>) -> Result<Arc<LoadedGraph>, NnError> {
        if !self.cfg.allow_guest_load {
            return Err(NnError::new(
                ErrorCode::Security,
                "loading model bytes from a guest is disabled on this host; upload the model to the registry and use load-by-name",
            ));
        }
        if bytes.len() > self.cfg.max_guest_model_bytes {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!(
                    "model of {} bytes exceeds the guest-load limit of {} bytes",
                    bytes.len(),
                    self.cfg.max_guest_model_bytes
                ),
            ));
        }
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        let spec = ModelSpec {
            display: format!("guest:{}", &sha[..12]),
            sha256: sha,
            providers: vec![],
            fallback: None,
            batching: Batching::default(),
            trt_fp16: false,
        };
        self.graph(&spec, move || async move { Ok(bytes) }).await
    }

    /// Loads (or finds) the session for `spec` ahead of traffic.
    pub async fn preload(&self, tenant: &str, name: &str) -> Result<LoadedInfo, NnError> {
        let g = self.graph_by_name(tenant, name).await?;
        Ok(info(&g))
    }

    /// Loads a model's bytes into a session for validation only (CPU, not cached):
    /// the registry calls this before accepting an upload.
    pub async fn validate(&self, bytes: Vec<u8>) -> Result<(Vec<IoSpec>, Vec<IoSpec>), NnError> {
        let env = self.env.clone();
        tokio::task::spawn_blocking(move || {
            let session = build_cpu(&env, &bytes)?;
            Ok(io_specs(&session))
        })
        .await
        .map_err(|e| NnError::new(ErrorCode::RuntimeError, e.to_string()))?
    }

    fn key(&self, spec: &ModelSpec) -> String {
        let providers = self.providers_of(spec);
        format!(
            "{}|{}|{:?}|{}|{}/{}/{}",
            spec.sha256,
            providers
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(","),
            spec.fallback.unwrap_or(self.cfg.default_fallback),
            spec.trt_fp16,
            spec.batching.max_batch,
            spec.batching.max_delay_us,
            spec.batching.row_independent
        )
    }

    fn providers_of(&self, spec: &ModelSpec) -> Vec<Provider> {
        if spec.providers.is_empty() {
            self.cfg.default_providers.clone()
        } else {
            spec.providers.clone()
        }
    }

    async fn graph<F, Fut>(&self, spec: &ModelSpec, fetch: F) -> Result<Arc<LoadedGraph>, NnError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, NnError>>,
    {
        let key = self.key(spec);
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let slot = {
            let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            let e = map.entry(key.clone()).or_insert_with(|| CacheEntry {
                slot: Arc::default(),
                bytes: 0,
                last_used: tick,
            });
            e.last_used = tick;
            e.slot.clone()
        };
        let graph = slot
            .get_or_try_init(|| async {
                let bytes = fetch().await?;
                let size = bytes.len() as u64;
                let g = self.create(spec, bytes).await?;
                let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = map.get_mut(&key) {
                    e.bytes = (size * 2).max(1 << 20);
                }
                Ok::<_, NnError>(g)
            })
            .await;
        match graph {
            Ok(g) => {
                let g = g.clone();
                self.evict_over_budget(&key);
                Ok(g)
            }
            Err(e) => {
                // Do not cache failures: the next call retries (a store may come back).
                let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                if map.get(&key).is_some_and(|e| e.slot.get().is_none()) {
                    map.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// Evicts least-recently-used sessions until the cache fits its budget. Invariant:
    /// only sessions nobody else holds are evicted (see [`LoadedGraph::in_use`]). An
    /// evicted entry that a caller still held would stay in memory uncounted, and the
    /// next load of the same model would build a second session next to it; so a
    /// session in use stays cached and counted, even when that leaves the cache over
    /// its budget until it is released.
    fn evict_over_budget(&self, keep: &str) {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let total: u64 = map.values().map(|e| e.bytes).sum();
            if total <= self.cfg.session_budget_bytes {
                return;
            }
            let victim = map
                .iter()
                .filter(|(k, e)| k.as_str() != keep && e.slot.get().is_some_and(|g| !g.in_use()))
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else {
                tracing::debug!(
                    total,
                    budget = self.cfg.session_budget_bytes,
                    "session cache over budget; every other session is in use"
                );
                return;
            };
            if let Some(g) = map.remove(&victim).as_ref().and_then(|e| e.slot.get()) {
                tracing::info!(model = %g.core.display, provider = g.core.provider.as_str(), "session evicted (memory budget)");
            }
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn create(&self, spec: &ModelSpec, bytes: Vec<u8>) -> Result<Arc<LoadedGraph>, NnError> {
        let providers = self.providers_of(spec);
        let fallback = spec.fallback.unwrap_or(self.cfg.default_fallback);
        let env = self.env.clone();
        let trt_dir = self.cfg.trt_cache_dir.clone();
        let mut pool_slot = if self.cfg.intra_spin == SpinPolicy::Adaptive {
            OwnPool::take(&self.own_pools)
        } else {
            None
        };
        let own_pool = pool_slot.as_ref().map(|_| intra_threads(&self.cfg));
        let fp16 = spec.trt_fp16;
        let model_name = spec.display.clone();
        let started = Instant::now();
        let (session, provider, skipped, rows_independent) = tokio::task::spawn_blocking(move || {
            let mut skipped = Vec::new();
            let independent = rows_independent(&bytes);
            for (i, p) in providers.iter().enumerate() {
                match build(&env, &bytes, *p, fp16, trt_dir.as_deref(), own_pool) {
                    Ok(s) => return Ok((s, *p, skipped, independent)),
                    Err(e) => {
                        let last = i + 1 == providers.len();
                        if *p == Provider::Cpu || last || fallback == Fallback::Refuse {
                            let code = if *p == Provider::Cpu { e.code } else { ErrorCode::UnsupportedOperation };
                            return Err(NnError::new(
                                code,
                                format!("model {model_name}: execution provider {} failed: {}", p.as_str(), e.message),
                            ));
                        }
                        tracing::warn!(model = %model_name, provider = p.as_str(), error = %e.message, "execution provider unavailable; falling back");
                        skipped.push(*p);
                    }
                }
            }
            Err(NnError::new(ErrorCode::InvalidArgument, "no execution provider configured"))
        })
        .await
        .map_err(|e| NnError::new(ErrorCode::RuntimeError, e.to_string()))??;
        self.fallbacks
            .fetch_add(skipped.len() as u64, Ordering::Relaxed);
        let (inputs, outputs) = io_specs(&session);
        let context_length = session
            .metadata()
            .ok()
            .and_then(|m| m.custom("helixflow.context_length"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0);
        tracing::info!(
            model = %spec.display,
            provider = provider.as_str(),
            skipped = ?skipped.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            load_ms = started.elapsed().as_millis() as u64,
            "model session created"
        );
        self.loads.fetch_add(1, Ordering::Relaxed);
        if provider != Provider::Cpu {
            pool_slot = None;
        }
        let core = Arc::new(SessionCore {
            display: spec.display.clone(),
            sha256: spec.sha256.clone(),
            provider,
            inputs,
            outputs,
            session,
            stats: GraphStats::default(),
            context_length,
            rows_independent,
            _own_pool: pool_slot,
        });
        // A causal LM batches through its decode scheduler, not the generic batcher.
        let is_lm = core
            .inputs
            .iter()
            .any(|i| i.name.starts_with("past_key_values."));
        let batcher = if is_lm {
            None
        } else {
            batch::Batcher::start(&core, spec.batching)
        };
        Ok(Arc::new(LoadedGraph {
            core,
            batching: spec.batching,
            batcher,
            loaded_at: Instant::now(),
            lm: OnceLock::new(),
        }))
    }

    /// Every session in memory, with its provider and counters.
    pub fn loaded(&self) -> Vec<LoadedInfo> {
        let map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<LoadedInfo> = map
            .values()
            .filter_map(|e| e.slot.get())
            .map(|g| info(g))
            .collect();
        v.sort_by(|a, b| a.model.cmp(&b.model));
        v
    }
}

fn info(g: &LoadedGraph) -> LoadedInfo {
    let c = &g.core;
    LoadedInfo {
        model: c.display.clone(),
        sha256: c.sha256.clone(),
        provider: c.provider,
        inputs: c.inputs.clone(),
        outputs: c.outputs.clone(),
        batching: g.batching,
        computes: c.stats.computes.load(Ordering::Relaxed),
        errors: c.stats.errors.load(Ordering::Relaxed),
        runs: c.stats.runs.load(Ordering::Relaxed),
        batched_requests: c.stats.batched_requests.load(Ordering::Relaxed),
        batch_sizes: c
            .stats
            .batch_sizes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect(),
        run_requests: c.stats.run_requests.load(Ordering::Relaxed),
        lm: match g.lm.get() {
            Some(Ok(lm)) => {
                let s = &lm.stats;
                Some(LmInfo {
                    context: lm.context,
                    open_sequences: s.open_sequences.load(Ordering::Relaxed),
                    runs: s.runs.load(Ordering::Relaxed),
                    decode_rows: s.decode_rows.load(Ordering::Relaxed),
                    batched_runs: s.batched_runs.load(Ordering::Relaxed),
                    max_rows: s.max_rows.load(Ordering::Relaxed),
                    prefill_tokens: s.prefill_tokens.load(Ordering::Relaxed),
                    sticky_runs: s.sticky_runs.load(Ordering::Relaxed),
                    prefix_lookups: s.prefix_lookups.load(Ordering::Relaxed),
                    prefix_hits: s.prefix_hits.load(Ordering::Relaxed),
                    prefix_tokens: s.prefix_tokens.load(Ordering::Relaxed),
                    prefix_cache_bytes: lm.prefix_cache_bytes(),
                })
            }
            _ => None,
        },
    }
}

fn io_specs(s: &ort::session::Session) -> (Vec<IoSpec>, Vec<IoSpec>) {
    let f = |o: &ort::value::Outlet| {
        let (ty, shape) = match o.dtype() {
            ort::value::ValueType::Tensor { ty, shape, .. } => {
                (TensorType::from_ort(ty), shape.to_vec())
            }
            _ => (None, vec![]),
        };
        IoSpec {
            name: o.name().to_string(),
            ty,
            shape,
        }
    };
    (
        s.inputs().iter().map(f).collect(),
        s.outputs().iter().map(f).collect(),
    )
}

/// Whether a model's rows are independent within a run: no operator that quantises
/// activations with scales computed over the whole input (`DynamicQuantizeLinear`,
/// ORT's fused `DynamicQuantizeMatMul` / `DynamicQuantizeLSTM`, `QAttention`). An op type
/// is a plain string in the model's protobuf, so a byte search finds it (a weight that
/// happens to contain the name only turns prefix caching off).
fn rows_independent(model: &[u8]) -> bool {
    [b"DynamicQuantize".as_slice(), b"QAttention"]
        .iter()
        .all(|op| memchr::memmem::find(model, op).is_none())
}

fn ort_err(code: ErrorCode) -> impl Fn(String) -> NnError {
    move |m| NnError::new(code, m)
}

fn build_cpu(
    env: &ort::environment::Environment,
    bytes: &[u8],
) -> Result<ort::session::Session, NnError> {
    build(env, bytes, Provider::Cpu, false, None, None)
}

fn build(
    env: &ort::environment::Environment,
    bytes: &[u8],
    p: Provider,
    fp16: bool,
    trt_dir: Option<&std::path::Path>,
    own_pool: Option<usize>,
) -> Result<ort::session::Session, NnError> {
    use ort::ep;
    let b = ort::session::Session::builder(env)
        .map_err(|e| e.to_string())
        .map_err(ort_err(ErrorCode::RuntimeError))?;
    let b = b
        .with_no_environment_execution_providers()
        .map_err(|e| NnError::new(ErrorCode::RuntimeError, e.to_string()))?;
    let mut b = match (p, own_pool) {
        (Provider::Cpu, None) => b,
        // SpinPolicy::Adaptive: this session's own pool, spinning only while it runs.
        (Provider::Cpu, Some(threads)) => {
            let e = |e: ort::Error<ort::session::builder::SessionBuilder>| {
                NnError::new(ErrorCode::RuntimeError, e.to_string())
            };
            b.with_independent_thread_pool()
                .map_err(e)?
                .with_intra_threads(threads)
                .map_err(e)?
                .with_config_entry("session.intra_op.allow_spinning", "1")
                .map_err(e)?
                .with_config_entry("session.force_spinning_stop", "1")
                .map_err(e)?
        }
        (Provider::Cuda, _) => b
            .with_execution_providers([ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| NnError::new(ErrorCode::UnsupportedOperation, e.to_string()))?,
        (Provider::Tensorrt, _) => {
            let mut trt = ep::TensorRT::default().with_fp16(fp16);
            if let Some(dir) = trt_dir {
                let _ = std::fs::create_dir_all(dir);
                trt = trt
                    .with_engine_cache(true)
                    .with_engine_cache_path(dir.display())
                    .with_timing_cache(true)
                    .with_timing_cache_path(dir.display());
            }
            b.with_execution_providers([trt.build().error_on_failure()])
                .map_err(|e| NnError::new(ErrorCode::UnsupportedOperation, e.to_string()))?
        }
    };
    if bytes.len() < 2 {
        return Err(NnError::new(ErrorCode::InvalidEncoding, "model is empty"));
    }
    b.commit_from_memory(bytes).map_err(|e| {
        NnError::new(
            ErrorCode::InvalidEncoding,
            format!("not a loadable ONNX model: {e}"),
        )
    })
}

/// What the unit tests that need ONNX Runtime share: the library from `ORT_DYLIB_PATH`
/// and the models `scripts/test.sh` prepares in `HELIXFLOW_MODELS_DIR` (tests never skip:
/// a missing input fails with how to get it).
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn models_dir() -> PathBuf {
        match std::env::var_os("HELIXFLOW_MODELS_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => panic!(
                "HELIXFLOW_MODELS_DIR is not set: run scripts/test.sh, or `source` scripts/lib.sh and call ensure_nn"
            ),
        }
    }

    pub fn env() -> ort::environment::Environment {
        environment(&NnConfig::default())
            .unwrap_or_else(|e| panic!("{e} (scripts/test.sh sets ORT_DYLIB_PATH)"))
    }

    /// A CPU session of `{HELIXFLOW_MODELS_DIR}/{file}`.
    pub fn session(file: &str) -> ort::session::Session {
        let p = models_dir().join(file);
        let bytes = std::fs::read(&p)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test.sh)", p.display()));
        build_cpu(&env(), &bytes).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    pub fn inference(cfg: NnConfig) -> Arc<Inference> {
        let _ = env();
        Inference::new(cfg, Arc::new(dir_source::DirModels::new(models_dir())))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-tensor dynamic activation quantisation makes rows depend on each other (no
    /// prefix cache then); plain graphs do not.
    #[test]
    fn rows_depend_on_each_other_only_under_dynamic_activation_quantisation() {
        let plain = std::fs::read(test_support::models_dir().join("matmul_f32.onnx")).unwrap();
        assert!(rows_independent(&plain));
        for op in [
            "DynamicQuantizeLinear",
            "DynamicQuantizeMatMul",
            "QAttention",
        ] {
            let mut m = plain.clone();
            m.extend_from_slice(op.as_bytes());
            assert!(!rows_independent(&m), "{op}");
        }
    }

    /// A session someone still holds is never evicted: the cache keeps counting it, and
    /// the next load of the same model gets the same session instead of building a
    /// second copy next to it.
    #[tokio::test(flavor = "multi_thread")]
    async fn sessions_in_use_are_not_evicted() {
        // Every session counts at least 1 MiB: a 1 MiB budget holds one.
        let inf = test_support::inference(NnConfig {
            session_budget_bytes: 1 << 20,
            ..Default::default()
        });
        let held = inf.graph_by_name("t", "identity_fp32").await.unwrap();
        let other = inf.graph_by_name("t", "identity_i32").await.unwrap();
        drop(other);
        assert_eq!(
            inf.evictions.load(Ordering::Relaxed),
            0,
            "the held session was not evicted"
        );
        let again = inf.graph_by_name("t", "identity_fp32").await.unwrap();
        assert!(
            Arc::ptr_eq(&held, &again),
            "the same session, not a second one"
        );
        assert_eq!(inf.loads.load(Ordering::Relaxed), 2);
        // Loading it again put the cache over budget, and now identity_i32 is not held: it goes.
        assert_eq!(inf.evictions.load(Ordering::Relaxed), 1);
        assert_eq!(
            inf.loaded()
                .iter()
                .map(|l| l.model.as_str())
                .collect::<Vec<_>>(),
            vec!["identity_fp32"]
        );
        drop((held, again));
        // Nobody holds identity_fp32 now: loading another model evicts it.
        let _i64 = inf.graph_by_name("t", "identity_i64").await.unwrap();
        assert_eq!(inf.evictions.load(Ordering::Relaxed), 2);
    }

    /// Bool inputs must be 0 or 1: anything else is refused before the request runs (or
    /// joins a batch), with the element named.
    #[tokio::test(flavor = "multi_thread")]
    async fn bool_inputs_other_than_0_or_1_are_refused() {
        let inf = test_support::inference(NnConfig::default());
        let g = inf.graph_by_name("t", "not_bool").await.unwrap();
        let x = |data: Vec<u8>| {
            vec![(
                "x".to_string(),
                Tensor {
                    ty: TensorType::U8,
                    dims: vec![1, 4],
                    data,
                },
            )]
        };
        let out = g.compute(x(vec![0, 1, 1, 0])).await.unwrap();
        assert_eq!(out[0].1.data, vec![1, 0, 0, 1]);
        let e = g.compute(x(vec![0, 7, 1, 0])).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("element 1 is 7"), "{}", e.message);
        assert_eq!(
            g.core.stats.runs.load(Ordering::Relaxed),
            1,
            "the bad request never reached ONNX Runtime"
        );
    }
}
