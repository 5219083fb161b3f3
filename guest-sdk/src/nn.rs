//! Typed helpers over `wasi:nn@0.2.0-rc-2024-10-28` (the host runs the model on ONNX
//! Runtime; the guest names a model from the registry and moves tensors).
//!
//! ```ignore
//! use helixflow_guest_sdk::nn::{Graph, Tensor};
//!
//! let graph = Graph::load_by_name("all-minilm-l6-v2")?;
//! let ctx = graph.context()?;
//! let out = ctx.compute(vec![
//!     ("input_ids", Tensor::from_i64(&[1, 4], &[101, 7592, 2088, 102])),
//!     ("attention_mask", Tensor::from_i64(&[1, 4], &[1, 1, 1, 1])),
//! ])?;
//! let hidden: Vec<f32> = out.get("last_hidden_state")?.to_f32()?;
//! ```

use crate::nn_bindings::wasi::nn::{errors, graph, inference, tensor};

pub use tensor::TensorType;

/// A wasi:nn error: the host's code and message.
#[derive(Debug, Clone)]
pub struct Error {
    /// The WIT error code, e.g. `"invalid-argument"`.
    pub code: &'static str,
    /// The host's explanation.
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<errors::Error> for Error {
    fn from(e: errors::Error) -> Error {
        use errors::ErrorCode as C;
        let code = match e.code() {
            C::InvalidArgument => "invalid-argument",
            C::InvalidEncoding => "invalid-encoding",
            C::Timeout => "timeout",
            C::RuntimeError => "runtime-error",
            C::UnsupportedOperation => "unsupported-operation",
            C::TooLarge => "too-large",
            C::NotFound => "not-found",
            C::Security => "security",
            C::Unknown => "unknown",
        };
        Error {
            code,
            message: e.data(),
        }
    }
}

/// A tensor on the guest side: type, dimensions, row-major little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Element type.
    pub ty: TensorType,
    /// Dimensions.
    pub dims: Vec<u32>,
    /// Row-major little-endian element bytes.
    pub data: Vec<u8>,
}

macro_rules! typed {
    ($from:ident, $to:ident, $t:ty, $ty:expr) => {
        /// A tensor of these elements (little-endian on the wire).
        pub fn $from(dims: &[u32], values: &[$t]) -> Tensor {
            let mut data = Vec::with_capacity(values.len() * std::mem::size_of::<$t>());
            for v in values {
                data.extend_from_slice(&v.to_le_bytes());
            }
            Tensor {
                ty: $ty,
                dims: dims.to_vec(),
                data,
            }
        }
        /// The elements, when the tensor has this type.
        pub fn $to(&self) -> Result<Vec<$t>, Error> {
            if self.ty != $ty {
                return Err(Error {
                    code: "invalid-argument",
                    message: format!("tensor is {:?}, not {:?}", self.ty, $ty),
                });
            }
            const N: usize = std::mem::size_of::<$t>();
            Ok(self
                .data
                .chunks_exact(N)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of N bytes")))
                .collect())
        }
    };
}

impl Tensor {
    /// A tensor from raw bytes (any type, e.g. FP16/BF16 bit patterns).
    pub fn from_bytes(ty: TensorType, dims: &[u32], data: Vec<u8>) -> Tensor {
        Tensor {
            ty,
            dims: dims.to_vec(),
            data,
        }
    }
    typed!(from_f32, to_f32, f32, TensorType::Fp32);
    typed!(from_f64, to_f64, f64, TensorType::Fp64);
    typed!(from_i32, to_i32, i32, TensorType::I32);
    typed!(from_i64, to_i64, i64, TensorType::I64);
    typed!(from_u8, to_u8, u8, TensorType::U8);
}

/// A loaded model.
pub struct Graph(graph::Graph);

impl Graph {
    /// A model from the registry: the caller's tenant's, else a public one.
    /// `name` may pin a version: `minilm@3`.
    pub fn load_by_name(name: &str) -> Result<Graph, Error> {
        Ok(Graph(graph::load_by_name(name)?))
    }

    /// Model bytes shipped by the guest (only where the host's policy allows it).
    pub fn load_onnx(bytes: Vec<u8>) -> Result<Graph, Error> {
        Ok(Graph(graph::load(
            &[bytes],
            graph::GraphEncoding::Onnx,
            graph::ExecutionTarget::Cpu,
        )?))
    }

    /// An execution context (cheap; one per request is fine).
    pub fn context(&self) -> Result<Context, Error> {
        Ok(Context(self.0.init_execution_context()?))
    }
}

/// An execution context of a [`Graph`].
pub struct Context(inference::GraphExecutionContext);

/// Named outputs of one compute.
#[derive(Debug, Clone)]
pub struct Outputs(pub Vec<(String, Tensor)>);

impl Outputs {
    /// The output called `name`.
    pub fn get(&self, name: &str) -> Result<&Tensor, Error> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| Error {
                code: "not-found",
                message: format!("no output named {name:?}"),
            })
    }
}

impl Context {
    /// Runs the model on named inputs.
    pub fn compute<S: Into<String>>(&self, inputs: Vec<(S, Tensor)>) -> Result<Outputs, Error> {
        let named: Vec<(String, tensor::Tensor)> = inputs
            .into_iter()
            .map(|(n, t)| (n.into(), tensor::Tensor::new(&t.dims, t.ty, &t.data)))
            .collect();
        let out = self.0.compute(named)?;
        Ok(Outputs(
            out.into_iter()
                .map(|(n, t)| {
                    (
                        n,
                        Tensor {
                            ty: t.ty(),
                            dims: t.dimensions(),
                            data: t.data(),
                        },
                    )
                })
                .collect(),
        ))
    }
}
