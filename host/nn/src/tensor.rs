//! Tensors as the host keeps them: element type, dimensions, row-major bytes.

use crate::{ErrorCode, NnError};

/// Element types that cross wasi:nn (the WIT's seven) plus ONNX `bool`, which crosses
/// as `U8` (one byte per element, 0 or 1): the WIT has no boolean type and comparison
/// operators produce them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    Fp16,
    Fp32,
    Fp64,
    Bf16,
    U8,
    I32,
    I64,
    Bool,
}

impl TensorType {
    pub fn size(self) -> usize {
        match self {
            TensorType::U8 | TensorType::Bool => 1,
            TensorType::Fp16 | TensorType::Bf16 => 2,
            TensorType::Fp32 | TensorType::I32 => 4,
            TensorType::Fp64 | TensorType::I64 => 8,
        }
    }

    /// What the guest sees (`Bool` is `U8` on the wire).
    pub fn wire(self) -> TensorType {
        if self == TensorType::Bool { TensorType::U8 } else { self }
    }

    pub fn name(self) -> &'static str {
        match self {
            TensorType::Fp16 => "FP16",
            TensorType::Fp32 => "FP32",
            TensorType::Fp64 => "FP64",
            TensorType::Bf16 => "BF16",
            TensorType::U8 => "U8",
            TensorType::I32 => "I32",
            TensorType::I64 => "I64",
            TensorType::Bool => "BOOL",
        }
    }

    /// Bytes of a tensor of this type and shape; `None` for negative dims or overflow.
    pub fn byte_len(self, shape: &[i64]) -> Option<usize> {
        let mut n: usize = self.size();
        for d in shape {
            let d = usize::try_from(*d).ok()?;
            n = n.checked_mul(d)?;
        }
        Some(n)
    }

    pub(crate) fn from_ort(t: &ort::value::TensorElementType) -> Option<TensorType> {
        use ort::value::TensorElementType as E;
        Some(match t {
            E::Float16 => TensorType::Fp16,
            E::Float32 => TensorType::Fp32,
            E::Float64 => TensorType::Fp64,
            E::Bfloat16 => TensorType::Bf16,
            E::Uint8 => TensorType::U8,
            E::Int32 => TensorType::I32,
            E::Int64 => TensorType::I64,
            E::Bool => TensorType::Bool,
            _ => return None,
        })
    }
}

/// A tensor held by the host for a guest (a `wasi:nn/tensor.tensor` resource).
#[derive(Debug, Clone)]
pub struct Tensor {
    pub ty: TensorType,
    pub dims: Vec<u32>,
    pub data: Vec<u8>,
}

impl Tensor {
    /// Builds a tensor, checking `data` holds exactly dims x element size bytes.
    pub fn new(dims: Vec<u32>, ty: TensorType, data: Vec<u8>, max_bytes: usize) -> Result<Tensor, NnError> {
        let t = Tensor { ty, dims, data };
        t.check(max_bytes)?;
        Ok(t)
    }

    /// Checks the byte length against dimensions x element size, and the size limit.
    pub fn check(&self, max_bytes: usize) -> Result<(), NnError> {
        let dims = &self.dims;
        let need = self
            .ty
            .byte_len(&self.shape())
            .ok_or_else(|| NnError::new(ErrorCode::InvalidArgument, format!("dimensions {dims:?} overflow")))?;
        if need > max_bytes {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!("tensor of {need} bytes exceeds this host's limit of {max_bytes} bytes"),
            ));
        }
        if need != self.data.len() {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                format!("tensor data is {} bytes but dimensions {dims:?} of {} need {need}", self.data.len(), self.ty.name()),
            ));
        }
        Ok(())
    }

    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().map(|d| i64::from(*d)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_sizes_are_checked_against_dimensions() {
        assert!(Tensor::new(vec![2, 2], TensorType::Fp32, vec![0; 16], 1 << 20).is_ok());
        let e = Tensor::new(vec![2, 2], TensorType::Fp32, vec![0; 15], 1 << 20).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("need 16"), "{}", e.message);
        let e = Tensor::new(vec![1 << 20, 1 << 20], TensorType::I64, vec![], 1 << 30).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        let e = Tensor::new(vec![u32::MAX, u32::MAX, u32::MAX], TensorType::I64, vec![], usize::MAX).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn every_type_has_its_width() {
        for (t, w) in [
            (TensorType::Fp16, 2),
            (TensorType::Bf16, 2),
            (TensorType::Fp32, 4),
            (TensorType::I32, 4),
            (TensorType::Fp64, 8),
            (TensorType::I64, 8),
            (TensorType::U8, 1),
        ] {
            assert_eq!(t.byte_len(&[3, 5]), Some(15 * w));
        }
        assert_eq!(TensorType::Fp32.byte_len(&[-1]), None);
    }
}
