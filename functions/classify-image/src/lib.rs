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

const LABELS: &str = include_str!("../imagenet_labels.txt");
const SIZE: u32 = 224;
/// Largest accepted image, pixels (decoding cost and memory stay bounded).
const MAX_PIXELS: u64 = 40_000_000;

fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message.into()}});
    Response::json(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// NCHW float32 input for the model.
pub fn preprocess(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        _ => return Err("not a JPEG or PNG image".into()),
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| format!("unreadable image: {e}"))?;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "image of {w}x{h} pixels is empty or larger than {MAX_PIXELS} pixels"
        ));
    }
    let img = image::load_from_memory(bytes)
        .map_err(|e| format!("cannot decode image: {e}"))?
        .to_rgb8();
    let scale = 256.0 / f64::from(w.min(h));
    let (nw, nh) = (
        ((f64::from(w) * scale).round() as u32).max(SIZE),
        ((f64::from(h) * scale).round() as u32).max(SIZE),
    );
    let resized = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((nw - SIZE) / 2, (nh - SIZE) / 2);
    let plane = (SIZE * SIZE) as usize;
    let mut out = vec![0f32; 3 * plane];
    for y in 0..SIZE {
        for x in 0..SIZE {
            let p = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                out[c * plane + (y * SIZE + x) as usize] = (f32::from(p[c]) - 127.0) / 128.0;
            }
        }
    }
    Ok(out)
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
    let max = logits.iter().cloned().fold(f32::MIN, f32::max);
    let exps: Vec<f64> = logits.iter().map(|l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    let mut idx: Vec<usize> = (0..exps.len()).collect();
    idx.sort_by(|a, b| exps[*b].total_cmp(&exps[*a]));
    let labels: Vec<&str> = LABELS.lines().collect();
    let top5: Vec<serde_json::Value> = idx[..5]
        .iter()
        .map(|i| serde_json::json!({"label": labels.get(*i).copied().unwrap_or("?"), "index": i, "probability": exps[*i] / sum}))
        .collect();
    Response::json(
        200,
        serde_json::to_vec(&serde_json::json!({"model": model, "top5": top5})).unwrap_or_default(),
    )
}

helixflow_guest_sdk::http_handler!(classify);
