//! The witx ABI of wasi-nn, `wasi_ephemeral_nn`, for core WASI preview1 modules: what the
//! `wasi-nn` crate (0.6) and WasmEdge's `wasmedge-wasi-nn` (0.8) import, and what
//! wasmtime's and WasmEdge's published image-classification examples are built against.
//!
//! It runs on the same backend as the component interface ([`crate::host`]): models by
//! name from the caller's tenant namespace in the registry (`load_by_name`), the node's
//! execution providers, its limits (tensor sizes, calls per invocation, bytes held in the
//! host) and dynamic batching. Graphs and execution contexts are small integer handles,
//! private to one invocation. Every function returns an `nn_errno`; a pointer outside the
//! module's memory is `invalid_argument`, never a host fault. The ABI carries no error
//! messages, so the invocation keeps the failures' messages for its log
//! ([`WitxNn::take_messages`]).
//!
//! Layouts (wasm32, little-endian): a graph builder array is `len` pairs of
//! `(ptr: u32, len: u32)`; a tensor is `dimensions (ptr: u32, len: u32)` at 0,
//! `type: u8` at 8 (f16, f32, f64, u8, i32, i64 = 0..5), `data (ptr: u32, len: u32)` at 12.

use crate::host::{InferenceUsage, NnCtx};
use crate::tensor::{Tensor, TensorType};
use crate::{ErrorCode, LoadedGraph, NnError};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::{Caller, Extern, Linker, Memory};

/// The import module name.
pub const MODULE: &str = "wasi_ephemeral_nn";
/// Graphs plus execution contexts one invocation may hold at once.
const MAX_HANDLES: usize = 64;
/// Highest tensor rank accepted.
const MAX_RANK: u32 = 16;
/// Failure messages kept for the invocation's log.
const MAX_MESSAGES: usize = 16;

/// `nn_errno` of the witx specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Errno {
    Success = 0,
    InvalidArgument = 1,
    InvalidEncoding = 2,
    MissingMemory = 3,
    Busy = 4,
    RuntimeError = 5,
    UnsupportedOperation = 6,
    TooLarge = 7,
    NotFound = 8,
}

impl From<ErrorCode> for Errno {
    fn from(c: ErrorCode) -> Errno {
        match c {
            ErrorCode::InvalidArgument => Errno::InvalidArgument,
            ErrorCode::InvalidEncoding => Errno::InvalidEncoding,
            // No timeout in the witx enum: "busy" is the one that says "try again".
            ErrorCode::Timeout => Errno::Busy,
            ErrorCode::RuntimeError | ErrorCode::Unknown => Errno::RuntimeError,
            // e.g. loading model bytes from a guest where the node forbids it.
            ErrorCode::UnsupportedOperation | ErrorCode::Security => Errno::UnsupportedOperation,
            ErrorCode::TooLarge => Errno::TooLarge,
            ErrorCode::NotFound => Errno::NotFound,
        }
    }
}

/// Per-invocation state of the witx interface.
pub struct WitxNn {
    nn: NnCtx,
    graphs: HashMap<u32, Arc<LoadedGraph>>,
    contexts: HashMap<u32, ExecContext>,
    next_handle: u32,
    messages: Vec<String>,
}

struct ExecContext {
    graph: Arc<LoadedGraph>,
    /// By the model's input index; set by `set_input`, taken by `compute`.
    inputs: Vec<Option<Tensor>>,
    /// The last `compute`'s outputs, in the model's output order.
    outputs: Vec<Tensor>,
}

impl WitxNn {
    /// `nn` carries the inference service (or none), the tenant and the call budget.
    pub fn new(nn: NnCtx) -> WitxNn {
        WitxNn {
            nn,
            graphs: HashMap::new(),
            contexts: HashMap::new(),
            next_handle: 0,
            messages: Vec::new(),
        }
    }

    /// What this invocation used (token counts stay zero: the witx ABI has no LLM calls).
    pub fn usage(&self) -> InferenceUsage {
        self.nn.usage()
    }

    /// The messages of the calls that failed (the guest only saw an errno), oldest first.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    fn errno(&mut self, call: &str, r: Result<(), NnError>) -> i32 {
        match r {
            Ok(()) => Errno::Success as i32,
            Err(e) => {
                tracing::debug!(tenant = %self.nn.tenant, call, error = %e, "wasi_ephemeral_nn call failed");
                if self.messages.len() < MAX_MESSAGES {
                    self.messages
                        .push(format!("wasi_ephemeral_nn.{call}: {}", e.message));
                }
                Errno::from(e.code) as i32
            }
        }
    }

    fn new_handle(&mut self) -> Result<u32, NnError> {
        if self.graphs.len() + self.contexts.len() >= MAX_HANDLES {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!("more than {MAX_HANDLES} graphs and execution contexts in one invocation"),
            ));
        }
        self.next_handle = self.next_handle.wrapping_add(1);
        Ok(self.next_handle)
    }

    fn context(&mut self, handle: i32) -> Result<&mut ExecContext, NnError> {
        self.contexts.get_mut(&(handle as u32)).ok_or_else(|| {
            NnError::new(
                ErrorCode::InvalidArgument,
                format!("no execution context {handle}"),
            )
        })
    }

    /// Takes `bytes` more of host memory for tensors (and gives back `freed`), within the
    /// same per-invocation budget as the component interface.
    fn hold(&mut self, bytes: usize, freed: usize) -> Result<(), NnError> {
        let live = self
            .nn
            .live_bytes
            .saturating_sub(freed)
            .saturating_add(bytes);
        let budget = self.nn.max_tensor_bytes().saturating_mul(4);
        if live > budget {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!("this invocation would hold more than {budget} bytes of tensors"),
            ));
        }
        self.nn.live_bytes = live;
        Ok(())
    }
}

fn bad(message: impl Into<String>) -> NnError {
    NnError::new(ErrorCode::InvalidArgument, message)
}

fn memory<T>(caller: &mut Caller<'_, T>) -> Result<Memory, NnError> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(NnError::new(
            ErrorCode::InvalidArgument,
            "the module exports no memory named `memory`",
        )),
    }
}

fn slice(data: &[u8], ptr: u32, len: u32) -> Result<&[u8], NnError> {
    (ptr as usize)
        .checked_add(len as usize)
        .and_then(|end| data.get(ptr as usize..end))
        .ok_or_else(|| {
            bad(format!(
                "{len} bytes at {ptr:#x} are outside the module's memory"
            ))
        })
}

fn u32_at(data: &[u8], ptr: u32) -> Result<u32, NnError> {
    let b = slice(data, ptr, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn write<T>(
    caller: &mut Caller<'_, T>,
    mem: Memory,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), NnError> {
    (ptr as usize)
        .checked_add(bytes.len())
        .and_then(|end| mem.data_mut(caller).get_mut(ptr as usize..end))
        .ok_or_else(|| {
            bad(format!(
                "{} bytes at {ptr:#x} are outside the module's memory",
                bytes.len()
            ))
        })?
        .copy_from_slice(bytes);
    Ok(())
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, NnError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
}

fn tensor_type(raw: u8) -> Result<TensorType, NnError> {
    Ok(match raw {
        0 => TensorType::Fp16,
        1 => TensorType::Fp32,
        2 => TensorType::Fp64,
        3 => TensorType::U8,
        4 => TensorType::I32,
        5 => TensorType::I64,
        other => return Err(bad(format!("unknown tensor type {other}"))),
    })
}

type Get<T> = fn(&mut T) -> &mut WitxNn;

async fn load<T>(
    caller: &mut Caller<'_, T>,
    get: Get<T>,
    (builders, count, encoding, target, out): (i32, i32, i32, i32, i32),
) -> Result<(), NnError> {
    let inf = get(caller.data_mut()).nn.admit()?;
    // ONNX, or autodetect (which is ONNX here).
    if !matches!(encoding, 1 | 5) {
        return Err(NnError::new(
            ErrorCode::InvalidEncoding,
            format!("this host runs ONNX models only (graph encoding {encoding}; ONNX is 1)"),
        ));
    }
    // cpu, gpu, tpu, and WasmEdge's auto: the node's provider configuration decides.
    if !(0..=3).contains(&target) {
        return Err(bad(format!("unknown execution target {target}")));
    }
    if count != 1 {
        return Err(bad(format!("an ONNX graph is one buffer, got {count}")));
    }
    if !inf.config().allow_guest_load {
        // Refused before any copy of the guest's bytes.
        return Err(NnError::new(
            ErrorCode::Security,
            "loading model bytes from a guest is disabled on this host; upload the model to the registry and use load_by_name",
        ));
    }
    let mem = memory(caller)?;
    let model = {
        let data = mem.data(&*caller);
        let ptr = u32_at(data, builders as u32)?;
        let len = u32_at(data, (builders as u32).wrapping_add(4))?;
        let max = inf.config().max_guest_model_bytes;
        if len as usize > max {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!("model of {len} bytes exceeds the guest-load limit of {max} bytes"),
            ));
        }
        slice(data, ptr, len)?.to_vec()
    };
    let graph = inf.graph_from_bytes(model).await?;
    let state = get(caller.data_mut());
    let handle = state.new_handle()?;
    write(caller, mem, out as u32, &handle.to_le_bytes())?;
    get(caller.data_mut()).graphs.insert(handle, graph);
    Ok(())
}

async fn load_by_name<T>(
    caller: &mut Caller<'_, T>,
    get: Get<T>,
    (name_ptr, name_len, out): (i32, i32, i32),
) -> Result<(), NnError> {
    let inf = get(caller.data_mut()).nn.admit()?;
    let mem = memory(caller)?;
    let name = utf8(
        slice(mem.data(&*caller), name_ptr as u32, name_len as u32)?,
        "the model name",
    )?;
    if name.is_empty() || name.len() > 256 {
        return Err(bad("model name must be 1 to 256 bytes"));
    }
    let tenant = get(caller.data_mut()).nn.tenant.clone();
    let graph = inf.graph_by_name(&tenant, &name).await?;
    let handle = get(caller.data_mut()).new_handle()?;
    write(caller, mem, out as u32, &handle.to_le_bytes())?;
    get(caller.data_mut()).graphs.insert(handle, graph);
    Ok(())
}

fn init_execution_context<T>(
    caller: &mut Caller<'_, T>,
    get: Get<T>,
    (graph, out): (i32, i32),
) -> Result<(), NnError> {
    let state = get(caller.data_mut());
    let graph = state
        .graphs
        .get(&(graph as u32))
        .cloned()
        .ok_or_else(|| bad(format!("no graph {graph}")))?;
    let handle = state.new_handle()?;
    let mem = memory(caller)?;
    write(caller, mem, out as u32, &handle.to_le_bytes())?;
    let inputs = (0..graph.core.inputs.len()).map(|_| None).collect();
    get(caller.data_mut()).contexts.insert(
        handle,
        ExecContext {
            graph,
            inputs,
            outputs: Vec::new(),
        },
    );
    Ok(())
}

fn set_input<T>(
    caller: &mut Caller<'_, T>,
    get: Get<T>,
    (ctx, index, tensor): (i32, i32, i32),
) -> Result<(), NnError> {
    get(caller.data_mut()).nn.admit()?;
    let max = get(caller.data_mut()).nn.max_tensor_bytes();
    let mem = memory(caller)?;
    let t = {
        let data = mem.data(&*caller);
        let base = tensor as u32;
        let header = slice(data, base, 20)?;
        let word =
            |o: usize| u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]);
        let (dims_ptr, rank, ty, data_ptr, data_len) =
            (word(0), word(4), header[8], word(12), word(16));
        if rank > MAX_RANK {
            return Err(bad(format!("tensor rank {rank} is over {MAX_RANK}")));
        }
        if data_len as usize > max {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!("tensor of {data_len} bytes is over this host's limit of {max}"),
            ));
        }
        let dims = slice(data, dims_ptr, rank * 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Tensor {
            ty: tensor_type(ty)?,
            dims,
            data: slice(data, data_ptr, data_len)?.to_vec(),
        }
    };
    t.check(max)?;
    let state = get(caller.data_mut());
    let index = index as u32 as usize;
    let freed = {
        let c = state.context(ctx)?;
        let n = c.inputs.len();
        match c.inputs.get(index) {
            Some(slot) => slot.as_ref().map_or(0, |old| old.data.len()),
            None => {
                return Err(bad(format!(
                    "input index {index} is out of range: model {} has {n} input(s)",
                    c.graph.core.display
                )));
            }
        }
    };
    state.hold(t.data.len(), freed)?;
    state.context(ctx)?.inputs[index] = Some(t);
    Ok(())
}

async fn compute<T>(caller: &mut Caller<'_, T>, get: Get<T>, ctx: i32) -> Result<(), NnError> {
    get(caller.data_mut()).nn.admit()?;
    let state = get(caller.data_mut());
    let c = state.context(ctx)?;
    let graph = c.graph.clone();
    if let Some(i) = c.inputs.iter().position(Option::is_none) {
        return Err(bad(format!(
            "input {i} ('{}') of model {} is not set",
            graph.core.inputs[i].name, graph.core.display
        )));
    }
    let inputs: Vec<(String, Tensor)> = graph
        .core
        .inputs
        .iter()
        .zip(c.inputs.iter_mut())
        .filter_map(|(spec, t)| t.take().map(|t| (spec.name.clone(), t)))
        .collect();
    let old_outputs: usize = c.outputs.iter().map(|t| t.data.len()).sum();
    c.outputs.clear();
    let taken: usize = inputs.iter().map(|(_, t)| t.data.len()).sum();
    state.nn.live_bytes = state
        .nn
        .live_bytes
        .saturating_sub(taken)
        .saturating_sub(old_outputs);
    let tenant = state.nn.tenant.clone();
    let span = tracing::info_span!(
        "wasi_nn.compute",
        tenant = %tenant,
        model = %graph.core.display,
        provider = graph.core.provider.as_str(),
        abi = "witx",
    );
    let outputs = tracing::Instrument::instrument(graph.compute(inputs), span).await?;
    let state = get(caller.data_mut());
    let max = state.nn.max_tensor_bytes();
    if let Some((name, t)) = outputs.iter().find(|(_, t)| t.data.len() > max) {
        return Err(NnError::new(
            ErrorCode::TooLarge,
            format!(
                "output '{name}' is {} bytes, over this host's tensor limit of {max}",
                t.data.len()
            ),
        ));
    }
    let bytes = outputs.iter().map(|(_, t)| t.data.len()).sum();
    state.hold(bytes, 0)?;
    state.context(ctx)?.outputs = outputs.into_iter().map(|(_, t)| t).collect();
    Ok(())
}

fn get_output<T>(
    caller: &mut Caller<'_, T>,
    get: Get<T>,
    (ctx, index, buf, max, written): (i32, i32, i32, i32, i32),
) -> Result<(), NnError> {
    let state = get(caller.data_mut());
    let c = state.context(ctx)?;
    if c.outputs.is_empty() {
        return Err(bad("no outputs yet: call compute first"));
    }
    let n = c.outputs.len();
    let out = c.outputs.get(index as u32 as usize).ok_or_else(|| {
        bad(format!(
            "output index {index} is out of range: the model has {n} output(s)"
        ))
    })?;
    let data = out.data.clone();
    if data.len() > max as u32 as usize {
        return Err(NnError::new(
            ErrorCode::TooLarge,
            format!(
                "output {index} is {} bytes; the buffer holds {}",
                data.len(),
                max as u32
            ),
        ));
    }
    let mem = memory(caller)?;
    write(caller, mem, buf as u32, &data)?;
    write(
        caller,
        mem,
        written as u32,
        &(data.len() as u32).to_le_bytes(),
    )?;
    Ok(())
}

/// Adds `wasi_ephemeral_nn` to a core-module linker.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: Get<T>,
) -> wasmtime::Result<()> {
    linker.func_wrap_async(
        MODULE,
        "load",
        move |mut caller: Caller<'_, T>, args: (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let r = load(&mut caller, get, args).await;
                Ok(get(caller.data_mut()).errno("load", r))
            })
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "load_by_name",
        move |mut caller: Caller<'_, T>, args: (i32, i32, i32)| {
            Box::new(async move {
                let r = load_by_name(&mut caller, get, args).await;
                Ok(get(caller.data_mut()).errno("load_by_name", r))
            })
        },
    )?;
    // WasmEdge's variant with a JSON config (used by its LLM plugins): the config is not
    // read here; the node's model config applies.
    linker.func_wrap_async(
        MODULE,
        "load_by_name_with_config",
        move |mut caller: Caller<'_, T>,
              (name, len, _cfg, _cfg_len, out): (i32, i32, i32, i32, i32)| {
            Box::new(async move {
                let r = load_by_name(&mut caller, get, (name, len, out)).await;
                Ok(get(caller.data_mut()).errno("load_by_name_with_config", r))
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "init_execution_context",
        move |mut caller: Caller<'_, T>, graph: i32, out: i32| -> i32 {
            let r = init_execution_context(&mut caller, get, (graph, out));
            get(caller.data_mut()).errno("init_execution_context", r)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "set_input",
        move |mut caller: Caller<'_, T>, ctx: i32, index: i32, tensor: i32| -> i32 {
            let r = set_input(&mut caller, get, (ctx, index, tensor));
            get(caller.data_mut()).errno("set_input", r)
        },
    )?;
    linker.func_wrap_async(
        MODULE,
        "compute",
        move |mut caller: Caller<'_, T>, (ctx,): (i32,)| {
            Box::new(async move {
                let r = compute(&mut caller, get, ctx).await;
                Ok(get(caller.data_mut()).errno("compute", r))
            })
        },
    )?;
    linker.func_wrap(
        MODULE,
        "get_output",
        move |mut caller: Caller<'_, T>,
              ctx: i32,
              index: i32,
              buf: i32,
              max: i32,
              written: i32|
              -> i32 {
            let r = get_output(&mut caller, get, (ctx, index, buf, max, written));
            get(caller.data_mut()).errno("get_output", r)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "unload",
        move |mut caller: Caller<'_, T>, graph: i32| -> i32 {
            let state = get(caller.data_mut());
            let r = match state.graphs.remove(&(graph as u32)) {
                Some(_) => Ok(()),
                None => Err(bad(format!("no graph {graph}"))),
            };
            state.errno("unload", r)
        },
    )?;
    // WasmEdge's token streaming for its LLM plugins: not served (HelixFlow's LLM
    // interface is `helixflow:llm`); a module that calls them gets a clear errno + log.
    for name in ["compute_single", "fini_single"] {
        linker.func_wrap(
            MODULE,
            name,
            move |mut caller: Caller<'_, T>, _ctx: i32| -> i32 {
                let r = Err(NnError::new(
                    ErrorCode::UnsupportedOperation,
                    "token streaming is not served here; use helixflow:llm from a component",
                ));
                get(caller.data_mut()).errno(name, r)
            },
        )?;
    }
    linker.func_wrap(
        MODULE,
        "get_output_single",
        move |mut caller: Caller<'_, T>, _c: i32, _i: i32, _b: i32, _m: i32, _w: i32| -> i32 {
            let r = Err(NnError::new(
                ErrorCode::UnsupportedOperation,
                "token streaming is not served here; use helixflow:llm from a component",
            ));
            get(caller.data_mut()).errno("get_output_single", r)
        },
    )?;
    Ok(())
}
