//! The engine, its configuration, the epoch ticker and the loaded-function cache.

use crate::state::{Capture, CpuBudget, HostState, MemoryLimiter, SandboxHooks};
use crate::{ExportKinds, InvocationEnv, InvokeError, Limits, LoadError, LoadedFunction};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

/// Node-wide runtime settings (from the edge config).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (`None`: no disk cache).
    pub cache_dir: Option<PathBuf>,
    /// Size budget of that cache; least recently used entries are evicted past it.
    pub cache_max_bytes: u64,
    /// Authenticates that cache's entries (compiled code is only loaded when its MAC
    /// verifies). `None` with a `cache_dir`: the disk cache is not used.
    pub cache_key: Option<crate::cache::CompileCacheKey>,
    /// Instances that can be live at once (pooling allocator slots).
    pub max_instances: u32,
    /// Largest linear memory any instance may have (per-invocation limits sit below it).
    pub max_memory_bytes: usize,
    /// Epoch tick: the granularity of CPU deadlines.
    pub epoch_tick: Duration,
    /// Guest stack limit.
    pub max_wasm_stack: usize,
    /// Non-public address ranges (network address, prefix length) that guests'
    /// outbound HTTP may connect to, from the node's `[sandbox] allow_private`.
    /// Default: none (public addresses only). Never set from a tenant's config.
    pub allow_private: Vec<(std::net::IpAddr, u8)>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            cache_max_bytes: 2 << 30,
            cache_key: None,
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(1),
            max_wasm_stack: 1 << 20,
            allow_private: Vec::new(),
        }
    }
}

type Slot = Arc<OnceCell<Arc<LoadedFunction>>>;

/// Store data with the sandbox's memory limiter and CPU budget (components' and modules').
pub(crate) trait Sandboxed: Send + 'static {
    fn limiter(&mut self) -> &mut MemoryLimiter;
    fn budget(&mut self) -> &mut CpuBudget;
}

impl Sandboxed for HostState {
    fn limiter(&mut self) -> &mut MemoryLimiter {
        &mut self.limiter
    }
    fn budget(&mut self) -> &mut CpuBudget {
        &mut self.budget
    }
}

/// Applies the memory limiter and the CPU budget to a fresh store: every `slice_ticks`
/// epochs the guest yields to the executor and one slice is charged; at zero, or past
/// the wall deadline, it is interrupted.
pub(crate) fn arm<T: Sandboxed>(store: &mut Store<T>, slice_ticks: u64) {
    store.limiter(|s| s.limiter());
    store.set_epoch_deadline(slice_ticks);
    store.epoch_deadline_callback(move |mut ctx| {
        let b = ctx.data_mut().budget();
        if b.slices_left <= 1 || std::time::Instant::now() >= b.wall_deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        b.slices_left -= 1;
        // tokio's yield_now puts the task at the back of the queue, behind every
        // other ready task (a plain self-wake could be re-polled at once).
        Ok(UpdateDeadline::YieldCustom(
            slice_ticks,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}

pub(crate) struct Inner {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    /// Links core WASI preview1 modules (WAGI-style functions).
    module_linker: wasmtime::Linker<crate::wagi::WagiState>,
    pub config: RuntimeConfig,
    engine_hash: String,
    loaded: Mutex<HashMap<String, Slot>>,
    stop: Arc<AtomicBool>,
    /// wasi:nn service (`None`: every wasi:nn call answers "not enabled").
    pub inference: Option<Arc<helixflow_nn::Inference>>,
    /// Where guests' outbound HTTP may connect (node policy + refusal counters).
    pub egress: Arc<crate::egress::Egress>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn internal(e: impl std::fmt::Display) -> LoadError {
    LoadError::Internal(e.to_string())
}

impl Inner {
    pub fn new(
        config: RuntimeConfig,
        inference: Option<Arc<helixflow_nn::Inference>>,
    ) -> Result<Arc<Self>, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        let n = config.max_instances.max(1);
        pool.total_component_instances(n)
            // Rust wasip2 components hold a few core instances (main module + shims),
            // componentize-py ones 14: 8 per slot lets ~n/2 Python instances run at once
            // (each slot reserves max_core_instance_size of address space, not memory).
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            // A componentize-py (CPython) component instantiates 14 core modules (libc,
            // libpython, its bindings, shims, adapters; each native extension module
            // adds one): the room is for those, still a bound per component.
            .max_core_instances_per_component(32)
            .max_memory_size(config.max_memory_bytes)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            .table_elements(100_000)
            // Reset a slot by rewriting only its dirty pages (PAGEMAP_SCAN, Linux >= 6.7)
            // up to this many bytes, instead of madvise + page faults on every reuse.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 * 1024);

        let mut cfg = Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Small guards/reservations: thousands of slots must fit the address space.
        cfg.memory_reservation(config.max_memory_bytes as u64)
            .memory_guard_size(64 << 20);
        let engine = Engine::new(&cfg)
            .map_err(|e| LoadError::Internal(format!("creating the engine: {e:#}")))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(internal)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(internal)?;
        helixflow_nn::host::add_to_linker(&mut linker, |s: &mut HostState| {
            helixflow_nn::host::NnView {
                ctx: &mut s.nn,
                table: &mut s.table,
            }
        })
        .map_err(internal)?;
        let module_linker = crate::wagi::linker(&engine).map_err(internal)?;

        let engine_hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        if config.cache_dir.is_some() && config.cache_key.is_none() {
            tracing::warn!(
                "compile cache disabled: it needs a cache key to authenticate its entries"
            );
        }

        let egress = crate::egress::Egress::new(&config.allow_private)
            .map_err(|e| LoadError::Internal(format!("[sandbox] allow_private: {e}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        {
            let weak = engine.weak();
            let stop = stop.clone();
            let tick = config.epoch_tick;
            std::thread::Builder::new()
                .name("helixflow-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        match weak.upgrade() {
                            Some(e) => e.increment_epoch(),
                            None => return,
                        }
                    }
                })
                .map_err(internal)?;
        }

        Ok(Arc::new(Inner {
            engine,
            linker,
            module_linker,
            config,
            engine_hash,
            loaded: Mutex::new(HashMap::new()),
            stop,
            inference,
            egress: Arc::new(egress),
        }))
    }

    pub fn loaded(&self, sha256: &str) -> Option<Arc<LoadedFunction>> {
        let map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        map.get(sha256).and_then(|slot| slot.get().cloned())
    }

    pub fn evict(&self, sha256: &str) {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sha256);
    }

    pub async fn load(
        self: &Arc<Self>,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Arc<LoadedFunction>, LoadError> {
        let slot = {
            let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(sha256.to_string()).or_default().clone()
        };
        // Single flight: concurrent loads of one component compile it once.
        let result = slot
            .get_or_try_init(|| {
                let this = self.clone();
                let sha = sha256.to_string();
                let bytes = bytes.to_vec();
                async move {
                    tokio::task::spawn_blocking(move || this.load_blocking(&sha, &bytes))
                        .await
                        .map_err(internal)?
                }
            })
            .await
            .cloned();
        if result.is_err() {
            // Do not remember failures: a later load may succeed (e.g. disk was full).
            let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if map.get(sha256).is_some_and(|s| s.get().is_none()) {
                map.remove(sha256);
            }
        }
        result
    }

    fn load_blocking(&self, sha256: &str, bytes: &[u8]) -> Result<Arc<LoadedFunction>, LoadError> {
        if check_header(bytes)? == Kind::Module {
            return self.load_module(sha256, bytes);
        }
        let component = self.compile(sha256, bytes)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::UnsupportedImport(format!("{e:#}")))?;
        let proxy_pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre.clone()).ok();
        let event_pre = crate::event::EventFunctionPre::new(pre).ok();
        let exports = ExportKinds {
            http: proxy_pre.is_some(),
            event: event_pre.is_some(),
            module: false,
        };
        if !exports.http && !exports.event {
            return Err(LoadError::NoSupportedExport);
        }
        Ok(Arc::new(LoadedFunction {
            sha256: sha256.to_string(),
            exports,
            proxy_pre,
            event_pre,
            module_pre: None,
        }))
    }

    /// A WASI preview1 command module: compiled (and cached) like a component, checked
    /// for `_start` + `memory`, linked against WASI preview1 and `wasi_ephemeral_nn`.
    fn load_module(&self, sha256: &str, bytes: &[u8]) -> Result<Arc<LoadedFunction>, LoadError> {
        let module = self.compile_code(
            sha256,
            bytes,
            |engine, bytes| wasmtime::Module::new(engine, bytes),
            |m| m.serialize(),
            // SAFETY: see `load_cached`: only authenticated output of `serialize`.
            |engine, code| unsafe { wasmtime::Module::deserialize(engine, code) },
        )?;
        crate::wagi::check_exports(&module)?;
        let pre = self
            .module_linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::UnsupportedImport(format!("{e:#}")))?;
        Ok(Arc::new(LoadedFunction {
            sha256: sha256.to_string(),
            exports: ExportKinds {
                http: true,
                event: true,
                module: true,
            },
            proxy_pre: None,
            event_pre: None,
            module_pre: Some(pre),
        }))
    }

    /// Compile, or load from the disk cache. **Invariant**: cached native code reaches
    /// `Component::deserialize` only after its MAC verified (`cache::open`, keyed with
    /// the node's cache key); an entry that was modified, carries no MAC (older
    /// versions) or belongs to another component or engine is logged, deleted and
    /// replaced by a fresh compile. Without a cache key the disk cache is not used.
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<Component, LoadError> {
        self.compile_code(
            sha256,
            bytes,
            |engine, bytes| Component::new(engine, bytes),
            |c| c.serialize(),
            // SAFETY: `load_cached` hands over only what `Component::serialize` produced
            // on a node holding the cache key, for this code and an engine with this
            // compatibility hash (all covered by the MAC that verified); wasmtime
            // re-checks the header on load.
            |engine, code| unsafe { Component::deserialize(engine, code) },
        )
    }

    /// [`Inner::compile`] for any kind of code (components, core modules).
    fn compile_code<C>(
        &self,
        sha256: &str,
        bytes: &[u8],
        new: impl Fn(&Engine, &[u8]) -> wasmtime::Result<C>,
        serialize: impl Fn(&C) -> wasmtime::Result<Vec<u8>>,
        deserialize: impl Fn(&Engine, &[u8]) -> wasmtime::Result<C>,
    ) -> Result<C, LoadError> {
        let cache = match (&self.config.cache_dir, &self.config.cache_key) {
            (Some(dir), Some(key)) => {
                Some((crate::cache::path(dir, &self.engine_hash, sha256), key))
            }
            _ => None,
        };
        if let Some((path, key)) = &cache
            && let Some(code) = self.load_cached(path, key, sha256, &deserialize)
        {
            return Ok(code);
        }
        let started = std::time::Instant::now();
        let component =
            new(&self.engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        tracing::info!(
            sha256,
            ms = started.elapsed().as_millis() as u64,
            "compiled component"
        );
        if let Some((path, key)) = &cache {
            match serialize(&component) {
                Ok(blob) => {
                    let file = crate::cache::seal(key, &self.engine_hash, sha256, blob);
                    if let Err(e) = helixflow_disk_cache::write_atomic(path, &file) {
                        tracing::warn!(path = %path.display(), error = %e, "could not write compile cache");
                    }
                    if let Some(dir) = &self.config.cache_dir {
                        let swept = helixflow_disk_cache::sweep(dir, self.config.cache_max_bytes);
                        if swept.removed_files > 0 {
                            tracing::info!(
                                removed = swept.removed_files,
                                bytes = swept.removed_bytes,
                                "compile cache: evicted least recently used"
                            );
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not serialize component"),
            }
        }
        Ok(component)
    }

    /// The cached compilation of `sha256` at `path`, if there is one and its MAC verifies.
    /// A rejected or unusable entry is deleted (the caller recompiles and rewrites it).
    fn load_cached<C>(
        &self,
        path: &std::path::Path,
        key: &crate::cache::CompileCacheKey,
        sha256: &str,
        deserialize: impl Fn(&Engine, &[u8]) -> wasmtime::Result<C>,
    ) -> Option<C> {
        let file = match std::fs::read(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(sha256, path = %path.display(), error = %e, "unreadable compile-cache entry; recompiling");
                let _ = std::fs::remove_file(path);
                return None;
            }
        };
        let code = match crate::cache::open(key, &self.engine_hash, sha256, file) {
            Ok(code) => code,
            Err(why) => {
                tracing::warn!(
                    sha256,
                    path = %path.display(),
                    reason = %why,
                    "compile-cache entry failed authentication; deleting it and recompiling"
                );
                let _ = std::fs::remove_file(path);
                return None;
            }
        };
        // `code` verified: it is what `serialize` wrote for this code and engine.
        match deserialize(&self.engine, &code) {
            Ok(component) => {
                helixflow_disk_cache::touch(path);
                Some(component)
            }
            Err(e) => {
                tracing::warn!(sha256, path = %path.display(), error = %e, "ignoring unusable compile-cache entry");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    /// Remove compile-cache entries not in `keep` (SHA-256s), and the entries of other
    /// engines (older wasmtime builds or settings). Returns how many files were removed.
    pub fn prune_compile_cache(&self, keep: &std::collections::HashSet<String>) -> usize {
        let Some(dir) = &self.config.cache_dir else {
            return 0;
        };
        let mut removed = 0;
        let Ok(engines) = std::fs::read_dir(dir) else {
            return 0;
        };
        for engine_dir in engines.flatten() {
            let path = engine_dir.path();
            if !path.is_dir() {
                continue;
            }
            let ours = engine_dir.file_name().to_str() == Some(self.engine_hash.as_str());
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let sha = name.strip_suffix(".cwasm").unwrap_or(&name);
                if (!ours || !keep.contains(sha)) && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            if !ours {
                let _ = std::fs::remove_dir(&path);
            }
        }
        removed
    }

    /// A fresh store for one invocation, with its limits applied.
    pub fn new_store(
        &self,
        limits: &Limits,
        env: &InvocationEnv,
        capture: &Capture,
    ) -> Store<HostState> {
        let mut wasi = WasiCtx::builder();
        wasi.stdout(capture.stdout.clone())
            .stderr(capture.stderr.clone());
        wasi.envs(&env.env);
        let (budget, slice_ticks) = self.budget(limits);
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            hooks: SandboxHooks {
                allow: env.allow_outbound.clone(),
                egress: self.egress.clone(),
                caller: crate::egress::Caller {
                    tenant: env.tenant.clone(),
                    function: env.function.clone(),
                },
            },
            nn: helixflow_nn::host::NnCtx::new(self.inference.clone(), env.tenant.clone()),
            limiter: MemoryLimiter {
                limit: limits.memory_bytes,
                exceeded: false,
            },
            budget,
        };
        let mut store = Store::new(&self.engine, state);
        arm(&mut store, slice_ticks);
        store
    }

    /// The CPU budget of an invocation with `limits`, and the epoch ticks of one slice
    /// (~2 ms of guest execution between yields).
    pub fn budget(&self, limits: &Limits) -> (CpuBudget, u64) {
        let tick = self.config.epoch_tick.max(Duration::from_millis(1));
        let slice_ticks = (Duration::from_millis(2).as_nanos() / tick.as_nanos()).max(1) as u64;
        let slice = tick * slice_ticks as u32;
        let slices = (limits.timeout.as_nanos().div_ceil(slice.as_nanos())).max(1) as u64;
        (
            CpuBudget {
                slices_left: slices,
                wall_deadline: std::time::Instant::now() + limits.timeout,
            },
            slice_ticks,
        )
    }
}

/// What the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Component,
    Module,
}

fn check_header(bytes: &[u8]) -> Result<Kind, LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotAComponent(
            "the file does not start with the WebAssembly magic bytes".into(),
        ));
    }
    match &bytes[4..8] {
        [0x0d, 0x00, 0x01, 0x00] => Ok(Kind::Component),
        [0x01, 0x00, 0x00, 0x00] => Ok(Kind::Module),
        other => Err(LoadError::NotAComponent(format!(
            "unknown WebAssembly version/layer bytes {other:02x?}"
        ))),
    }
}

/// Map a failed call to an `InvokeError`, using what the store saw.
pub(crate) fn classify(
    err: wasmtime::Error,
    memory_exceeded: bool,
    limits: &Limits,
) -> InvokeError {
    if memory_exceeded {
        return InvokeError::MemoryLimit(limits.memory_bytes >> 20);
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        if *trap == wasmtime::Trap::Interrupt {
            return InvokeError::Timeout(limits.timeout);
        }
        if *trap == wasmtime::Trap::StackOverflow {
            return InvokeError::StackOverflow;
        }
    }
    let text = format!("{err:#}");
    if text.contains("maximum concurrent") || text.contains("pooling allocator") {
        return InvokeError::Capacity(text);
    }
    tracing::debug!(error = %text, "guest trap with backtrace");
    // The root cause (e.g. "wasm trap: wasm `unreachable` instruction executed") without
    // the wasm backtrace, which means nothing to the caller.
    InvokeError::Trap(err.root_cause().to_string())
}

/// Add the guest's own panic message (Rust guests print it to stderr) to a trap.
pub(crate) fn enrich(err: InvokeError, logs: &crate::state::Logs) -> InvokeError {
    match err {
        InvokeError::Trap(msg) => {
            let stderr = String::from_utf8_lossy(&logs.stderr);
            let mut lines = stderr.lines();
            let panic = lines
                .by_ref()
                .find(|l| l.contains("panicked at"))
                .and_then(|_| lines.next())
                .map(|l| l.trim().chars().take(512).collect::<String>());
            InvokeError::Trap(match panic {
                Some(p) if !p.is_empty() => format!("{msg} (guest panic: {p})"),
                _ => msg,
            })
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_distinguish_components_modules_and_garbage() {
        assert_eq!(check_header(b"\0asm\x0d\0\x01\0").unwrap(), Kind::Component);
        assert_eq!(check_header(b"\0asm\x01\0\0\0").unwrap(), Kind::Module);
        assert!(
            check_header(b"GIF89a..")
                .unwrap_err()
                .to_string()
                .contains("magic")
        );
        assert!(check_header(b"\0asm").is_err());
    }

    /// Cached native code is loaded only when its MAC verifies; anything else is
    /// recompiled and the entry rewritten (a new file: temp + rename).
    #[test]
    fn compile_cache_entries_load_only_when_their_mac_verifies() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let key_a = crate::CompileCacheKey::new([1; 32]);
        let rt = |key: &crate::CompileCacheKey| {
            Inner::new(
                RuntimeConfig {
                    cache_dir: Some(dir.path().to_path_buf()),
                    cache_key: Some(key.clone()),
                    max_instances: 2,
                    ..Default::default()
                },
                None,
            )
            .unwrap()
        };
        let wasm = wat::parse_str(r#"(component (core module (func (export "f"))))"#).unwrap();
        let other = wat::parse_str(r#"(component (core module (func (export "g"))))"#).unwrap();
        let inner = rt(&key_a);
        let path = crate::cache::path(dir.path(), &inner.engine_hash, "aa");
        // A hard link keeps the entry's current inode alive (so it cannot be reused):
        // the entry is the same file afterwards exactly when it was not rewritten.
        let pin = dir.path().join("pinned");
        let pin_entry = || {
            let _ = std::fs::remove_file(&pin);
            std::fs::hard_link(&path, &pin).unwrap();
        };
        let rewritten =
            || std::fs::metadata(&path).unwrap().ino() != std::fs::metadata(&pin).unwrap().ino();
        let opens = |key: &crate::CompileCacheKey, sha: &str| {
            crate::cache::open(key, &inner.engine_hash, sha, std::fs::read(&path).unwrap()).is_ok()
        };

        inner.compile("aa", &wasm).unwrap();
        assert!(opens(&key_a, "aa"), "the entry is written with its MAC");
        // A fresh runtime with the same key loads the entry as it is (no rewrite).
        pin_entry();
        rt(&key_a).compile("aa", &wasm).unwrap();
        assert!(!rewritten(), "a verified entry is used, not rewritten");

        // A flipped byte in the middle of the native code: refused, recompiled, rewritten.
        let mut flipped = std::fs::read(&path).unwrap();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        pin_entry();
        let c = rt(&key_a).compile("aa", &wasm).unwrap();
        assert!(c.serialize().is_ok());
        assert!(rewritten(), "the tampered entry was replaced");
        assert!(opens(&key_a, "aa"));
        assert_ne!(std::fs::read(&path).unwrap(), flipped);

        // An entry written by another node's key is not trusted.
        let key_b = crate::CompileCacheKey::new([2; 32]);
        pin_entry();
        rt(&key_b).compile("aa", &wasm).unwrap();
        assert!(rewritten());
        assert!(opens(&key_b, "aa") && !opens(&key_a, "aa"));

        // Another component's valid entry copied over this one's name is refused.
        let inner2 = rt(&key_a);
        inner2.compile("bb", &other).unwrap();
        let path_b = crate::cache::path(dir.path(), &inner2.engine_hash, "bb");
        std::fs::copy(&path_b, &path).unwrap();
        assert!(!opens(&key_a, "aa"));
        pin_entry();
        inner2.compile("aa", &wasm).unwrap();
        assert!(rewritten(), "a swapped-in entry is rewritten");
        assert!(opens(&key_a, "aa"));

        // An entry from before authentication (bare `serialize` output) is recompiled.
        std::fs::write(
            &path,
            inner2.compile("aa", &wasm).unwrap().serialize().unwrap(),
        )
        .unwrap();
        pin_entry();
        inner2.compile("aa", &wasm).unwrap();
        assert!(rewritten());
        assert!(opens(&key_a, "aa"));

        // Without a key the disk cache is not used at all.
        let nokey = Inner::new(
            RuntimeConfig {
                cache_dir: Some(dir.path().join("nokey")),
                max_instances: 2,
                ..Default::default()
            },
            None,
        )
        .unwrap();
        nokey.compile("aa", &wasm).unwrap();
        assert!(!dir.path().join("nokey").exists());
    }

    #[tokio::test]
    async fn loading_rejects_bad_components_with_typed_errors() {
        let rt = crate::Runtime::new(RuntimeConfig {
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        assert!(matches!(
            rt.load("a", b"\0asm\x01\0\0\0").await,
            Err(LoadError::NoStart(m)) if m.contains("no `_start`")
        ));
        // A reactor-style module (memory, no `_start`), and one whose `_start` takes
        // arguments: refused, naming the fix.
        let reactor =
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "f")))"#).unwrap();
        assert!(matches!(
            rt.load("a2", &reactor).await,
            Err(LoadError::NoStart(_))
        ));
        let odd = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "_start") (param i32)))"#,
        )
        .unwrap();
        assert!(
            matches!(rt.load("a3", &odd).await, Err(LoadError::NoStart(m)) if m.contains("no arguments"))
        );
        // A command module importing what the host lacks.
        let alien = wat::parse_str(r#"(module (import "acme" "backdoor" (func)) (memory (export "memory") 1) (func (export "_start")))"#).unwrap();
        assert!(matches!(
            rt.load("a4", &alien).await,
            Err(LoadError::UnsupportedImport(_))
        ));
        // A proper command module importing WASI and wasi_ephemeral_nn.
        let ok = wat::parse_str(
            r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "wasi_ephemeral_nn" "load_by_name" (func (param i32 i32 i32) (result i32)))
            (memory (export "memory") 1) (func (export "_start")))"#,
        )
        .unwrap();
        let f = rt.load("a5", &ok).await.unwrap();
        assert_eq!(
            f.exports(),
            crate::ExportKinds {
                http: true,
                event: true,
                module: true
            }
        );
        assert!(matches!(
            rt.load("b", b"\0asm\x0d\0\x01\0").await,
            Err(LoadError::NoSupportedExport)
        ));
        assert!(matches!(
            rt.load("c", b"\0asm\x0d\0\x01\0\x01\xff").await,
            Err(LoadError::Compile(_))
        ));
        // A component importing an interface the host does not provide.
        let wat = r#"(component (import "acme:evil/backdoor" (instance (export "open" (func)))))"#;
        let bytes = wat::parse_str(wat).unwrap();
        assert!(
            matches!(
                rt.load("d", &bytes).await,
                Err(LoadError::UnsupportedImport(_))
            ),
            "{:?}",
            rt.load("d", &bytes).await.err()
        );
        assert!(rt.loaded("a").is_none(), "failures are not cached");
    }
}
