//! The `wasi:nn@0.2.0-rc-2024-10-28` host: bindings generated from the repository's
//! `wit/wasi-nn/` (async host calls), resources kept in the invocation's `ResourceTable`.

use crate::tensor::{Tensor, TensorType};
use crate::{ErrorCode, Inference, LoadedGraph, NnError};
use std::sync::Arc;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod generated {
    wasmtime::component::bindgen!({
        world: "ml",
        path: "../../wit/wasi-nn",
        imports: { default: async | trappable },
        with: {
            "wasi:nn/graph.graph": super::GraphResource,
            "wasi:nn/tensor.tensor": crate::tensor::Tensor,
            "wasi:nn/inference.graph-execution-context": super::ContextResource,
            "wasi:nn/errors.error": crate::NnError,
        },
    });
}
use generated::wasi::nn as wit;

/// A `graph` resource: a shared, loaded model.
pub struct GraphResource(Arc<LoadedGraph>);
/// A `graph-execution-context` resource.
pub struct ContextResource(Arc<LoadedGraph>);

/// Per-invocation wasi:nn state.
pub struct NnCtx {
    inference: Option<Arc<Inference>>,
    pub(crate) tenant: String,
    calls: u32,
    /// Bytes of tensors this invocation holds in the host.
    pub(crate) live_bytes: usize,
    /// `helixflow:llm` sequences open now.
    pub(crate) sequences: u32,
    /// What this invocation used (tokens), for usage metering.
    pub(crate) usage: InferenceUsage,
}

/// Tokens one invocation ran through `helixflow:llm`, counted by the host: a sequence's
/// first `feed` is its prompt; every successful `feed` returns the logits of one sampled
/// token (a completion token); tokens fed after the first beyond the one sampled token
/// count as prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InferenceUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl NnCtx {
    /// `inference: None` = wasi:nn is not enabled on this node (every call errors).
    pub fn new(inference: Option<Arc<Inference>>, tenant: impl Into<String>) -> NnCtx {
        NnCtx {
            inference,
            tenant: tenant.into(),
            calls: 0,
            live_bytes: 0,
            sequences: 0,
            usage: InferenceUsage::default(),
        }
    }

    /// What this invocation used so far.
    pub fn usage(&self) -> InferenceUsage {
        self.usage
    }

    /// Counts a call against the invocation's budget: the inference service, or why not
    /// (not enabled here, or over `max_calls_per_invocation`).
    pub(crate) fn admit(&mut self) -> Result<Arc<Inference>, NnError> {
        let inf = self.inference.clone().ok_or_else(|| {
            NnError::new(
                ErrorCode::UnsupportedOperation,
                "wasi:nn is not enabled on this node",
            )
        })?;
        self.calls += 1;
        if self.calls > inf.config().max_calls_per_invocation {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!(
                    "more than {} wasi:nn calls in one invocation",
                    inf.config().max_calls_per_invocation
                ),
            ));
        }
        Ok(inf)
    }

    /// The largest tensor this node accepts, bytes.
    pub(crate) fn max_tensor_bytes(&self) -> usize {
        self.inference
            .as_ref()
            .map(|i| i.config().max_tensor_bytes)
            .unwrap_or(64 << 20)
    }
}

/// What the host functions borrow from the store.
pub struct NnView<'a> {
    pub ctx: &'a mut NnCtx,
    pub table: &'a mut ResourceTable,
}

struct HasNn;
impl HasData for HasNn {
    type Data<'a> = NnView<'a>;
}

/// Adds wasi:nn to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> NnView<'_>,
) -> wasmtime::Result<()> {
    wit::graph::add_to_linker::<T, HasNn>(linker, get)?;
    wit::tensor::add_to_linker::<T, HasNn>(linker, get)?;
    wit::inference::add_to_linker::<T, HasNn>(linker, get)?;
    wit::errors::add_to_linker::<T, HasNn>(linker, get)?;
    crate::llm_host::add_to_linker(linker, get)?;
    Ok(())
}

type Res<T> = wasmtime::Result<Result<T, Resource<NnError>>>;

impl NnView<'_> {
    fn fail<T>(&mut self, e: NnError) -> Res<T> {
        tracing::debug!(tenant = %self.ctx.tenant, error = %e, "wasi:nn call failed");
        Ok(Err(self.table.push(e)?))
    }

    /// Counts a call against the invocation's budget; `Err` = over it.
    pub(crate) fn count(&mut self) -> Result<Arc<Inference>, NnError> {
        self.ctx.admit()
    }

    fn max_tensor_bytes(&self) -> usize {
        self.ctx.max_tensor_bytes()
    }
}

impl wit::graph::Host for NnView<'_> {
    async fn load(
        &mut self,
        builder: Vec<wit::graph::GraphBuilder>,
        encoding: wit::graph::GraphEncoding,
        _target: wit::graph::ExecutionTarget,
    ) -> Res<Resource<GraphResource>> {
        let inf = match self.count() {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        if !matches!(
            encoding,
            wit::graph::GraphEncoding::Onnx | wit::graph::GraphEncoding::Autodetect
        ) {
            return self.fail(NnError::new(
                ErrorCode::InvalidEncoding,
                format!("this host runs ONNX models only (got {encoding:?})"),
            ));
        }
        let [bytes]: [Vec<u8>; 1] = match builder.try_into() {
            Ok(b) => b,
            Err(v) => {
                let v: Vec<Vec<u8>> = v;
                return self.fail(NnError::new(
                    ErrorCode::InvalidArgument,
                    format!("an ONNX graph is one buffer, got {}", v.len()),
                ));
            }
        };
        match inf.graph_from_bytes(bytes).await {
            Ok(g) => Ok(Ok(self.table.push(GraphResource(g))?)),
            Err(e) => self.fail(e),
        }
    }

    async fn load_by_name(&mut self, name: String) -> Res<Resource<GraphResource>> {
        let inf = match self.count() {
            Ok(i) => i,
            Err(e) => return self.fail(e),
        };
        if name.is_empty() || name.len() > 256 {
            return self.fail(NnError::new(
                ErrorCode::InvalidArgument,
                "model name must be 1 to 256 bytes",
            ));
        }
        let tenant = self.ctx.tenant.clone();
        match inf.graph_by_name(&tenant, &name).await {
            Ok(g) => Ok(Ok(self.table.push(GraphResource(g))?)),
            Err(e) => self.fail(e),
        }
    }
}

impl wit::graph::HostGraph for NnView<'_> {
    async fn init_execution_context(
        &mut self,
        graph: Resource<GraphResource>,
    ) -> Res<Resource<ContextResource>> {
        let g = self.table.get(&graph)?.0.clone();
        Ok(Ok(self.table.push(ContextResource(g))?))
    }

    async fn drop(&mut self, graph: Resource<GraphResource>) -> wasmtime::Result<()> {
        self.table.delete(graph)?;
        Ok(())
    }
}

impl wit::inference::HostGraphExecutionContext for NnView<'_> {
    async fn compute(
        &mut self,
        ctx: Resource<ContextResource>,
        inputs: Vec<(String, Resource<Tensor>)>,
    ) -> Res<Vec<(String, Resource<Tensor>)>> {
        // The named tensors are owned by the call: take them out of the table (no copy).
        let mut owned = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let t = self.table.delete(t)?;
            self.ctx.live_bytes = self.ctx.live_bytes.saturating_sub(t.data.len());
            owned.push((name, t));
        }
        if let Err(e) = self.count() {
            return self.fail(e);
        }
        let max = self.max_tensor_bytes();
        for (name, t) in &owned {
            if let Err(mut e) = t.check(max) {
                e.message = format!("input '{name}': {}", e.message);
                return self.fail(e);
            }
        }
        let graph = self.table.get(&ctx)?.0.clone();
        // One span per compute call (the model run, batching wait included).
        let span = tracing::info_span!(
            "wasi_nn.compute",
            tenant = %self.ctx.tenant,
            model = %graph.core.display,
            provider = graph.core.provider.as_str(),
        );
        match tracing::Instrument::instrument(graph.compute(owned), span).await {
            Ok(outs) => {
                if let Some((n, t)) = outs.iter().find(|(_, t)| t.data.len() > max) {
                    let e = NnError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "output '{n}' is {} bytes, over this host's tensor limit of {max}",
                            t.data.len()
                        ),
                    );
                    return self.fail(e);
                }
                let mut res = Vec::with_capacity(outs.len());
                for (name, t) in outs {
                    self.ctx.live_bytes = self.ctx.live_bytes.saturating_add(t.data.len());
                    res.push((name, self.table.push(t)?));
                }
                Ok(Ok(res))
            }
            Err(e) => self.fail(e),
        }
    }

    async fn drop(&mut self, ctx: Resource<ContextResource>) -> wasmtime::Result<()> {
        self.table.delete(ctx)?;
        Ok(())
    }
}

fn to_wit(t: TensorType) -> wit::tensor::TensorType {
    use wit::tensor::TensorType as W;
    match t {
        TensorType::Fp16 => W::Fp16,
        TensorType::Fp32 => W::Fp32,
        TensorType::Fp64 => W::Fp64,
        TensorType::Bf16 => W::Bf16,
        TensorType::U8 | TensorType::Bool => W::U8,
        TensorType::I32 => W::I32,
        TensorType::I64 => W::I64,
    }
}

fn from_wit(t: wit::tensor::TensorType) -> TensorType {
    use wit::tensor::TensorType as W;
    match t {
        W::Fp16 => TensorType::Fp16,
        W::Fp32 => TensorType::Fp32,
        W::Fp64 => TensorType::Fp64,
        W::Bf16 => TensorType::Bf16,
        W::U8 => TensorType::U8,
        W::I32 => TensorType::I32,
        W::I64 => TensorType::I64,
    }
}

impl wit::tensor::HostTensor for NnView<'_> {
    async fn new(
        &mut self,
        dimensions: Vec<u32>,
        ty: wit::tensor::TensorType,
        data: Vec<u8>,
    ) -> wasmtime::Result<Resource<Tensor>> {
        // The WIT constructor cannot return an error, so a tensor whose bytes do not
        // match its dimensions, or that is over the size limit, is kept as given and
        // rejected by `compute` with an error the guest can read. What a guest can hold
        // in host memory at once is bounded, though: past that it is trapped.
        let live = self.ctx.live_bytes.saturating_add(data.len());
        let budget = self.max_tensor_bytes().saturating_mul(4);
        if live > budget {
            return Err(wasmtime::format_err!(
                "wasi:nn: this invocation holds more than {budget} bytes of tensors"
            ));
        }
        self.ctx.live_bytes = live;
        Ok(self.table.push(Tensor {
            ty: from_wit(ty),
            dims: dimensions,
            data,
        })?)
    }

    async fn dimensions(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Vec<u32>> {
        Ok(self.table.get(&t)?.dims.clone())
    }

    async fn ty(&mut self, t: Resource<Tensor>) -> wasmtime::Result<wit::tensor::TensorType> {
        Ok(to_wit(self.table.get(&t)?.ty))
    }

    async fn data(&mut self, t: Resource<Tensor>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&t)?.data.clone())
    }

    async fn drop(&mut self, t: Resource<Tensor>) -> wasmtime::Result<()> {
        let t = self.table.delete(t)?;
        self.ctx.live_bytes = self.ctx.live_bytes.saturating_sub(t.data.len());
        Ok(())
    }
}

impl wit::errors::HostError for NnView<'_> {
    async fn code(&mut self, e: Resource<NnError>) -> wasmtime::Result<wit::errors::ErrorCode> {
        use wit::errors::ErrorCode as W;
        Ok(match self.table.get(&e)?.code {
            ErrorCode::InvalidArgument => W::InvalidArgument,
            ErrorCode::InvalidEncoding => W::InvalidEncoding,
            ErrorCode::Timeout => W::Timeout,
            ErrorCode::RuntimeError => W::RuntimeError,
            ErrorCode::UnsupportedOperation => W::UnsupportedOperation,
            ErrorCode::TooLarge => W::TooLarge,
            ErrorCode::NotFound => W::NotFound,
            ErrorCode::Security => W::Security,
            ErrorCode::Unknown => W::Unknown,
        })
    }

    async fn data(&mut self, e: Resource<NnError>) -> wasmtime::Result<String> {
        Ok(self.table.get(&e)?.message.clone())
    }

    async fn drop(&mut self, e: Resource<NnError>) -> wasmtime::Result<()> {
        self.table.delete(e)?;
        Ok(())
    }
}

impl wit::errors::Host for NnView<'_> {}
impl wit::tensor::Host for NnView<'_> {}
impl wit::inference::Host for NnView<'_> {}
