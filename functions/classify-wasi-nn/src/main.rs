//! `classify-wasi-nn`: a JPEG/PNG in, the ImageNet top-5 out, with EfficientNet-Lite0 —
//! written only against the public API of the `wasi-nn` crate (0.6, the witx ABI
//! `wasi_ephemeral_nn`) and built the way that crate's users build (`cargo build --target
//! wasm32-wasip1`): a WASI command module, deployed unchanged. HelixFlow runs it
//! WAGI-style: the image arrives on stdin (HTTP body or event payload), the answer goes
//! to stdout (a CGI response over HTTP), and `build_from_cache` is `load_by_name` in the
//! tenant's model registry.
//!
//! ```text
//! curl --data-binary @coffee.jpg http://HOST/TENANT/classify-wasi-nn/
//! {"model":"efficientnet-lite0","top5":[{"label":"espresso","index":967,"probability":0.8},...]}
//! ```

use wasi_nn::{ExecutionTarget, GraphBuilder, GraphEncoding, TensorType};

mod cgi;
#[path = "../../classify-image/src/preprocess.rs"]
mod preprocess;

fn classify(image: &[u8]) -> Result<String, (u16, &'static str, String)> {
    let input = preprocess::preprocess(image).map_err(|e| (400, "invalid_image", e))?;
    let model = std::env::var("MODEL").unwrap_or_else(|_| "efficientnet-lite0".into());
    let nn = |e: wasi_nn::Error| (503, "inference_failed", e.to_string());
    let graph = GraphBuilder::new(GraphEncoding::Onnx, ExecutionTarget::CPU)
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
    Ok(cgi::top5_json(&model, &preprocess::top5(&logits)))
}

fn main() {
    let image = cgi::input();
    cgi::answer(classify(&image));
}
