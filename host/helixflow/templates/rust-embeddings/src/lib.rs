//! `{{name}}`: sentence embeddings through wasi:nn, for HelixFlow.
//!
//! Event in: `{"input": ["text", ...]}` (or one string), optionally `"model": "name"`.
//! Event out: `{"model": ..., "data": [[f32; 384], ...], "usage": {"prompt_tokens": n}}`.
//!
//! The model is an ONNX sentence-transformer (all-MiniLM-L6-v2 by default) that the
//! tenant pushes to the node's registry: `helixflow models push` under [`MODEL`]. The
//! function tokenizes (WordPiece, `src/wordpiece.rs`, vocabulary compiled in by
//! `build.rs`), runs the transformer on the host's ONNX Runtime through wasi:nn
//! (`Graph::load_by_name`), then mean-pools and L2-normalises.

pub mod wordpiece;

use helixflow_guest_sdk::event::{Context, FunctionError};
use helixflow_guest_sdk::nn::{Graph, Tensor};
use serde_json::{Value, json};
use std::sync::OnceLock;

/// The registry model this function loads unless the event names another.
pub const MODEL: &str = "all-minilm-l6-v2";

/// sentence-transformers' max_seq_length for all-MiniLM-L6-v2.
const MAX_TOKENS: usize = 256;

fn tokenizer() -> &'static wordpiece::WordPiece {
    static T: OnceLock<wordpiece::WordPiece> = OnceLock::new();
    T.get_or_init(wordpiece::WordPiece::new)
}

fn bad(kind: &str, e: impl ToString) -> FunctionError {
    FunctionError::new(kind, e.to_string())
}

/// The texts of an event: `"input"` as one string or an array of strings.
pub fn inputs(event: &Value) -> Result<Vec<String>, String> {
    match &event["input"] {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or("input: strings only".to_string()))
            .collect(),
        _ => Err("input: a string or a non-empty array of strings".to_string()),
    }
}

/// Masked mean over the sequence, then L2 normalisation: one vector per batch row.
/// `hidden` is `[batch, seq, dim]`, `mask` `[batch, seq]` (1 for real tokens).
pub fn pool(hidden: &[f32], mask: &[i64], batch: usize, seq: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|b| {
            let mut v = vec![0f32; dim];
            let mut n = 0f32;
            for s in (0..seq).filter(|s| mask[b * seq + s] == 1) {
                let row = &hidden[(b * seq + s) * dim..(b * seq + s + 1) * dim];
                v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                n += 1.0;
            }
            v.iter_mut().for_each(|a| *a /= n.max(1e-9));
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            v
        })
        .collect()
}

fn handle(event: Vec<u8>, _ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let event: Value = serde_json::from_slice(&event).map_err(|e| bad("InvalidEvent", e))?;
    let texts = inputs(&event).map_err(|e| bad("InvalidEvent", e))?;
    let model = event["model"].as_str().unwrap_or(MODEL);
    let encoded: Vec<Vec<i64>> = texts.iter().map(|t| tokenizer().encode(t, MAX_TOKENS)).collect();
    let (batch, seq) = (encoded.len(), encoded.iter().map(Vec::len).max().unwrap_or(2));
    let mut ids = vec![0i64; batch * seq];
    let mut mask = vec![0i64; batch * seq];
    for (b, e) in encoded.iter().enumerate() {
        ids[b * seq..b * seq + e.len()].copy_from_slice(e);
        mask[b * seq..b * seq + e.len()].fill(1);
    }
    let dims = [batch as u32, seq as u32];
    let graph = Graph::load_by_name(model).map_err(|e| bad("ModelUnavailable", e))?;
    let ctx = graph.context().map_err(|e| bad("ModelUnavailable", e))?;
    let out = ctx
        .compute(vec![
            ("input_ids", Tensor::from_i64(&dims, &ids)),
            ("attention_mask", Tensor::from_i64(&dims, &mask)),
            ("token_type_ids", Tensor::from_i64(&dims, &vec![0i64; batch * seq])),
        ])
        .map_err(|e| bad("InferenceFailed", e))?;
    let hidden_t = out.get("last_hidden_state").map_err(|e| bad("InferenceFailed", e))?;
    let hidden = hidden_t.to_f32().map_err(|e| bad("InferenceFailed", e))?;
    let dim = *hidden_t.dims.last().unwrap_or(&0) as usize;
    if dim == 0 || hidden.len() != batch * seq * dim {
        return Err(bad("InferenceFailed", format!("unexpected output shape {:?}", hidden_t.dims)));
    }
    let prompt_tokens: usize = encoded.iter().map(Vec::len).sum();
    let data = pool(&hidden, &mask, batch, seq, dim);
    Ok(json!({"model": model, "data": data, "usage": {"prompt_tokens": prompt_tokens}})
        .to_string()
        .into_bytes())
}

helixflow_guest_sdk::event_handler!(handle);

#[cfg(test)]
mod tests;
