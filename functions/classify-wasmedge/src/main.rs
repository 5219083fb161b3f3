//! `classify-wasmedge`: the same classification as `classify-wasi-nn`, written only
//! against the public API of WasmEdge's `wasmedge-wasi-nn` crate (0.8, the witx ABI
//! `wasi_ephemeral_nn` with WasmEdge's additions) and built for `wasm32-wasip1` as
//! WasmEdge's examples are: a WASI command module, deployed unchanged and run WAGI-style.

use wasmedge_wasi_nn::{ExecutionTarget, GraphBuilder, GraphEncoding, TensorType};

#[path = "../../classify-wasi-nn/src/cgi.rs"]
mod cgi;
#[path = "../../classify-image/src/preprocess.rs"]
mod preprocess;

fn classify(image: &[u8]) -> Result<String, (u16, &'static str, String)> {
    let input = preprocess::preprocess(image).map_err(|e| (400, "invalid_image", e))?;
    let model = std::env::var("MODEL").unwrap_or_else(|_| "efficientnet-lite0".into());
    let nn = |e: wasmedge_wasi_nn::Error| (503, "inference_failed", e.to_string());
    let graph = GraphBuilder::new(GraphEncoding::Onnx, ExecutionTarget::AUTO)
        .build_from_cache(&model)
        .map_err(nn)?;
    let mut ctx = graph.init_execution_context().map_err(nn)?;
    let side = preprocess::SIZE as usize;
    ctx.set_input(0, TensorType::F32, &[1, 3, side, side], &input)
        .map_err(nn)?;
    ctx.compute().map_err(nn)?;
    let mut logits = vec![0f32; 1000];
    let bytes = ctx.get_output(0, &mut logits).map_err(nn)?;
    if bytes != logits.len() * 4 {
        return Err((
            502,
            "bad_model_output",
            format!("expected 4000 bytes of logits, got {bytes}"),
        ));
    }
    let top5 = preprocess::top5(&logits);
    // The graph is released explicitly, as WasmEdge's examples do.
    graph.unload().map_err(nn)?;
    Ok(cgi::top5_json(&model, &top5))
}

fn main() {
    let image = cgi::input();
    cgi::answer(classify(&image));
}
