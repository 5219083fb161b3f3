//! Image preprocessing and the softmax top-5, shared by `classify-image` and the guests
//! built for the witx wasi-nn ABI (`functions/classify-wasi-nn`, `classify-wasmedge`,
//! which include this file by path), so all three answer the same for the same image.

/// The model's input side, pixels.
pub const SIZE: u32 = 224;
/// Largest accepted image, pixels (decoding cost and memory stay bounded).
pub const MAX_PIXELS: u64 = 40_000_000;
/// ImageNet class names, one per line, by index.
pub const LABELS: &str = include_str!("../imagenet_labels.txt");

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

/// Softmax over `logits`, the five most probable classes: (label, index, probability).
pub fn top5(logits: &[f32]) -> Vec<(&'static str, usize, f64)> {
    let max = logits.iter().cloned().fold(f32::MIN, f32::max);
    let exps: Vec<f64> = logits.iter().map(|l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    let mut idx: Vec<usize> = (0..exps.len()).collect();
    idx.sort_by(|a, b| exps[*b].total_cmp(&exps[*a]));
    let labels: Vec<&'static str> = LABELS.lines().collect();
    idx.into_iter()
        .take(5)
        .map(|i| (labels.get(i).copied().unwrap_or("?"), i, exps[i] / sum))
        .collect()
}
