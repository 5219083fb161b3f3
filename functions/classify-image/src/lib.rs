//! `classify-image`: `POST` a JPEG or PNG, get the ImageNet top-5 as JSON.
//!
//! In the sandbox: decode, resize the shorter side to 256 (triangle/bilinear filter,
//! antialiased), centre-crop 224x224, scale to the range the EfficientNet-Lite weights
//! were trained on ((x - 127) / 128, the TF-Lite convention of these weights), NCHW f32.
//! On the host through wasi:nn: EfficientNet-Lite0 (`MODEL` env var, default
//! `efficientnet-lite0`). Back in the sandbox: softmax, top-5 with labels.
//!
//! ```text
//! curl --data-binary @cat.jpg http://HOST/TENANT/classify-image/
//! {"model":"efficientnet-lite0","top5":[{"label":"tabby","index":281,"probability":0.41},...]}
//! ```

use helixflow_guest_sdk::http::{Request, Response};
use helixflow_guest_sdk::nn::{Graph, Tensor};

mod preprocess;
pub use preprocess::{SIZE, preprocess, top5};

fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
    Response::json(status, serde_json::to_vec(&body).unwrap_or_default())
}

fn classify(req: Request) -> Response {
    if req.method() != "POST" {
        return error(405, "method_not_allowed", "POST a JPEG or PNG image");
    }
    let input = match preprocess(req.body()) {
        Ok(v) => v,
        Err(e) => return error(400, "invalid_image", e),
    };
    let model = std::env::var("MODEL").unwrap_or_else(|_| "efficientnet-lite0".into());
    let run = || -> Result<Vec<f32>, helixflow_guest_sdk::nn::Error> {
        let g = Graph::load_by_name(&model)?;
        let out = g.context()?.compute(vec![(
            "images",
            Tensor::from_f32(&[1, 3, SIZE, SIZE], &input),
        )])?;
        out.get("logits")?.to_f32()
    };
    let logits = match run() {
        Ok(l) if l.len() == 1000 => l,
        Ok(l) => {
            return error(
                502,
                "bad_model_output",
                format!("expected 1000 logits, got {}", l.len()),
            );
        }
        Err(e) => return error(503, "inference_failed", e.to_string()),
    };
    let top5: Vec<serde_json::Value> = top5(&logits)
        .into_iter()
        .map(|(label, i, p)| serde_json::json!({"label": label, "index": i, "probability": p}))
        .collect();
    Response::json(
        200,
        serde_json::to_vec(&serde_json::json!({"model": model, "top5": top5})).unwrap_or_default(),
    )
}

helixflow_guest_sdk::http_handler!(classify);
