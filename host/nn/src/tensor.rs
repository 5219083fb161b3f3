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
        if self == TensorType::Bool {
            TensorType::U8
        } else {
            self
        }
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
    pub fn new(
        dims: Vec<u32>,
        ty: TensorType,
        data: Vec<u8>,
        max_bytes: usize,
    ) -> Result<Tensor, NnError> {
        let t = Tensor { ty, dims, data };
        t.check(max_bytes)?;
        Ok(t)
    }

    /// Checks the byte length against dimensions x element size, and the size limit.
    pub fn check(&self, max_bytes: usize) -> Result<(), NnError> {
        let dims = &self.dims;
        let need = self.ty.byte_len(&self.shape()).ok_or_else(|| {
            NnError::new(
                ErrorCode::InvalidArgument,
                format!("dimensions {dims:?} overflow"),
            )
        })?;
        if need > max_bytes {
            return Err(NnError::new(
                ErrorCode::TooLarge,
                format!("tensor of {need} bytes exceeds this host's limit of {max_bytes} bytes"),
            ));
        }
        if need != self.data.len() {
            return Err(NnError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "tensor data is {} bytes but dimensions {dims:?} of {} need {need}",
                    self.data.len(),
                    self.ty.name()
                ),
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
        let e = Tensor::new(
            vec![u32::MAX, u32::MAX, u32::MAX],
            TensorType::I64,
            vec![],
            usize::MAX,
        )
        .unwrap_err();
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

    /// Bounded random-input run over the validation of guest-built tensors (WIT values:
    /// dimensions, element type, bytes): never a panic or an overflow; accepted exactly
    /// when the bytes match dims x element size within the limit.
    #[test]
    fn random_guest_tensors_are_checked_without_panics() {
        let mut x: u64 = 0xda942042e4dd58b5;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let types = [
            TensorType::Fp16,
            TensorType::Fp32,
            TensorType::Fp64,
            TensorType::Bf16,
            TensorType::U8,
            TensorType::I32,
            TensorType::I64,
        ];
        let max = 1 << 16;
        let mut accepted = 0;
        for _ in 0..50_000 {
            let rank = (next() % 6) as usize;
            let dims: Vec<u32> = (0..rank)
                .map(|_| match next() % 4 {
                    0 => 0,
                    1 => u32::MAX - (next() % 3) as u32,
                    _ => (next() % 40) as u32,
                })
                .collect();
            let ty = types[(next() as usize) % types.len()];
            // Shapes whose running product overflows are refused even when a later
            // dimension is 0 (ONNX Runtime multiplies them too): a deliberate policy.
            let want: Option<u128> = dims.iter().try_fold(ty.size() as u128, |acc, d| {
                acc.checked_mul(u128::from(*d))
                    .filter(|p| *p <= usize::MAX as u128)
            });
            let len = match (want, next() % 3) {
                (Some(w), 0) if w <= 1 << 20 => w as usize,
                (Some(w), 1) if w > 0 && w <= 1 << 20 => w as usize - 1,
                _ => (next() % 512) as usize,
            };
            let t = Tensor {
                ty,
                dims: dims.clone(),
                data: vec![0; len],
            };
            let ok = t.check(max).is_ok();
            let expected = want.is_some_and(|w| w == len as u128 && w <= max as u128);
            assert_eq!(ok, expected, "{dims:?} {ty:?} {len}");
            accepted += ok as usize;
        }
        assert!(
            accepted > 1000,
            "the run exercised valid tensors too: {accepted}"
        );
    }
}
