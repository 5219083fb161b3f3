//! `nn-probe`: a test guest that drives wasi:nn from a JSON event.
//!
//! ```json
//! {"model": "name"            // load-by-name, or
//!  "model_b64": "...",        // guest-supplied bytes (load)
//!  "inputs": [{"name": "x", "type": "FP32", "dims": [2, 3], "data_b64": "..."}],
//!  "repeat": 1,               // compute this many times (call floods)
//!  "loads": 1}                // load this many times
//! ```
//! Answers `{"outputs": [{"name", "type", "dims", "data_b64"}]}`; a wasi:nn error comes
//! back as a function error whose type is the wasi:nn error code.

use base64::Engine as _;
use helixflow_guest_sdk::event::{Context, FunctionError};
use helixflow_guest_sdk::nn::{Graph, Tensor, TensorType};

#[derive(serde::Deserialize)]
struct Input {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    dims: Vec<u32>,
    data_b64: String,
}

#[derive(serde::Deserialize)]
struct Spec {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    model_b64: Option<String>,
    #[serde(default)]
    inputs: Vec<Input>,
    #[serde(default)]
    repeat: Option<u32>,
    #[serde(default)]
    loads: Option<u32>,
}

fn ty_of(s: &str) -> Option<TensorType> {
    Some(match s {
        "FP16" => TensorType::Fp16,
        "FP32" => TensorType::Fp32,
        "FP64" => TensorType::Fp64,
        "BF16" => TensorType::Bf16,
        "U8" => TensorType::U8,
        "I32" => TensorType::I32,
        "I64" => TensorType::I64,
        _ => return None,
    })
}

fn name_of(t: TensorType) -> &'static str {
    match t {
        TensorType::Fp16 => "FP16",
        TensorType::Fp32 => "FP32",
        TensorType::Fp64 => "FP64",
        TensorType::Bf16 => "BF16",
        TensorType::U8 => "U8",
        TensorType::I32 => "I32",
        TensorType::I64 => "I64",
    }
}

fn nn_err(e: helixflow_guest_sdk::nn::Error) -> FunctionError {
    FunctionError::new(e.code, e.message)
}

fn handle(event: Vec<u8>, _ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let spec: Spec = serde_json::from_slice(&event)
        .map_err(|e| FunctionError::new("bad_spec", e.to_string()))?;
    let mut graph = None;
    for _ in 0..spec.loads.unwrap_or(1).max(1) {
        graph = Some(match (&spec.model, &spec.model_b64) {
            (Some(name), _) => Graph::load_by_name(name).map_err(nn_err)?,
            (None, Some(m)) => {
                let bytes = b64
                    .decode(m)
                    .map_err(|e| FunctionError::new("bad_spec", e.to_string()))?;
                Graph::load_onnx(bytes).map_err(nn_err)?
            }
            (None, None) => return Err(FunctionError::new("bad_spec", "model or model_b64")),
        });
    }
    let graph = graph.expect("at least one load");
    let ctx = graph.context().map_err(nn_err)?;
    let mut outputs = None;
    for _ in 0..spec.repeat.unwrap_or(1).max(1) {
        let mut inputs = Vec::new();
        for i in &spec.inputs {
            let ty = ty_of(&i.ty)
                .ok_or_else(|| FunctionError::new("bad_spec", format!("type {}", i.ty)))?;
            let data = b64
                .decode(&i.data_b64)
                .map_err(|e| FunctionError::new("bad_spec", e.to_string()))?;
            inputs.push((i.name.clone(), Tensor::from_bytes(ty, &i.dims, data)));
        }
        outputs = Some(ctx.compute(inputs).map_err(nn_err)?);
    }
    let outs: Vec<serde_json::Value> = outputs
        .expect("at least one compute")
        .0
        .into_iter()
        .map(|(n, t)| serde_json::json!({"name": n, "type": name_of(t.ty), "dims": t.dims, "data_b64": b64.encode(&t.data)}))
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({ "outputs": outs })).unwrap_or_default())
}

helixflow_guest_sdk::event_handler!(handle);
