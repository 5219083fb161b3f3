//! wasi:nn values a guest builds: tensor dimensions, element types and data lengths
//! are validated before anything else sees them. Never a panic; accepted tensors are
//! exactly as long as their dimensions say.
#![no_main]
use helixflow_nn::{Tensor, TensorType};
use libfuzzer_sys::fuzz_target;

const TYPES: [TensorType; 8] = [
    TensorType::Fp16,
    TensorType::Fp32,
    TensorType::Fp64,
    TensorType::Bf16,
    TensorType::U8,
    TensorType::I32,
    TensorType::I64,
    TensorType::Bool,
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let ty = TYPES[data[0] as usize % TYPES.len()];
    let ndims = (data[1] % 8) as usize;
    let rest = &data[2..];
    let dims: Vec<u32> = rest.chunks(4).take(ndims).map(|c| c.iter().fold(0u32, |a, b| (a << 8) | *b as u32)).collect();
    let payload = rest.get(ndims * 4..).unwrap_or(&[]).to_vec();
    let len = payload.len();
    match Tensor::new(dims.clone(), ty, payload, 1 << 20) {
        Ok(t) => {
            let n: u64 = dims.iter().map(|d| *d as u64).product();
            assert_eq!(n as usize * ty.size(), len, "accepted a tensor whose data does not match {dims:?}");
            assert!(t.check(1 << 20).is_ok());
        }
        Err(_) => {}
    }
});
