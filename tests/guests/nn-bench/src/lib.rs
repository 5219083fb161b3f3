//! `nn-bench`: the bare wasi:nn path for benchmarks. Event: `MODEL\n` followed by
//! little-endian i64 token ids (batch 1). Builds `input_ids`, `attention_mask` (ones)
//! and `token_type_ids` (zeros), computes, and returns the first output's raw bytes.

use helixflow_guest_sdk::event::{Context, FunctionError};
use helixflow_guest_sdk::nn::{Graph, Tensor, TensorType};

fn handle(event: Vec<u8>, _ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let nl = event
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| FunctionError::new("bad", "MODEL\\n ids"))?;
    let model = std::str::from_utf8(&event[..nl]).map_err(|_| FunctionError::new("bad", "utf8"))?;
    let ids = event[nl + 1..].to_vec();
    let n = (ids.len() / 8) as u32;
    let ones: Vec<u8> = (0..n).flat_map(|_| 1i64.to_le_bytes()).collect();
    let zeros = vec![0u8; ids.len()];
    let err = |e: helixflow_guest_sdk::nn::Error| FunctionError::new(e.code, e.message);
    let g = Graph::load_by_name(model).map_err(err)?;
    let out = g
        .context()
        .map_err(err)?
        .compute(vec![
            (
                "input_ids",
                Tensor::from_bytes(TensorType::I64, &[1, n], ids),
            ),
            (
                "attention_mask",
                Tensor::from_bytes(TensorType::I64, &[1, n], ones),
            ),
            (
                "token_type_ids",
                Tensor::from_bytes(TensorType::I64, &[1, n], zeros),
            ),
        ])
        .map_err(err)?;
    Ok(out
        .0
        .into_iter()
        .next()
        .map(|(_, t)| t.data)
        .unwrap_or_default())
}

helixflow_guest_sdk::event_handler!(handle);
