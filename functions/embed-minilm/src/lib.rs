//! `embed-minilm`: OpenAI-style sentence embeddings with all-MiniLM-L6-v2.
//!
//! Event in: `{"model": "<registry model name>", "input": ["text", ...]}`.
//! Event out: `{"data": [[f32; 384], ...], "usage": {"prompt_tokens": n}}`.
//! `{"tokenize": ["text", ...]}` returns the token ids instead (used to test the
//! tokenizer against the reference implementation).
//!
//! Everything but the transformer runs here in the sandbox: WordPiece tokenization
//! (vocab compiled in as a sorted table: nothing to build per instance), padding, then wasi:nn compute on the host's ONNX Runtime, then
//! masked mean pooling and L2 normalisation.

pub mod wordpiece;

use helixflow_guest_sdk::event::{Context, FunctionError};
use helixflow_guest_sdk::nn::{Graph, Tensor};
use std::sync::OnceLock;

/// sentence-transformers' max_seq_length for this model.
const MAX_TOKENS: usize = 256;

fn tokenizer() -> &'static wordpiece::WordPiece {
    static T: OnceLock<wordpiece::WordPiece> = OnceLock::new();
    T.get_or_init(wordpiece::WordPiece::new)
}

#[derive(serde::Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input: Vec<String>,
    #[serde(default)]
    tokenize: Option<Vec<String>>,
}

fn bad(t: &str, m: impl Into<String>) -> FunctionError {
    FunctionError::new(t, m)
}

fn handle(event: Vec<u8>, _ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let req: Request = serde_json::from_slice(&event)
        .map_err(|e| bad("invalid_request", format!("bad request JSON: {e}")))?;
    let tok = tokenizer();
    if let Some(texts) = req.tokenize {
        let ids: Vec<Vec<i64>> = texts.iter().map(|t| tok.encode(t, usize::MAX)).collect();
        return Ok(serde_json::to_vec(&serde_json::json!({ "ids": ids })).unwrap_or_default());
    }
    let model = req
        .model
        .ok_or_else(|| bad("invalid_request", "missing model"))?;
    if req.input.is_empty() {
        return Err(bad("invalid_request", "input must not be empty"));
    }
    let encoded: Vec<Vec<i64>> = req
        .input
        .iter()
        .map(|t| tok.encode(t, MAX_TOKENS))
        .collect();
    let prompt_tokens: usize = encoded.iter().map(Vec::len).sum();
    let batch = encoded.len();
    let seq = encoded.iter().map(Vec::len).max().unwrap_or(2);
    let mut ids = vec![0i64; batch * seq];
    let mut mask = vec![0i64; batch * seq];
    for (b, e) in encoded.iter().enumerate() {
        ids[b * seq..b * seq + e.len()].copy_from_slice(e);
        mask[b * seq..b * seq + e.len()]
            .iter_mut()
            .for_each(|m| *m = 1);
    }
    let dims = [batch as u32, seq as u32];
    let graph = Graph::load_by_name(&model).map_err(|e| bad("model_unavailable", e.to_string()))?;
    let ctx = graph
        .context()
        .map_err(|e| bad("model_unavailable", e.to_string()))?;
    let out = ctx
        .compute(vec![
            ("input_ids", Tensor::from_i64(&dims, &ids)),
            ("attention_mask", Tensor::from_i64(&dims, &mask)),
            (
                "token_type_ids",
                Tensor::from_i64(&dims, &vec![0i64; batch * seq]),
            ),
        ])
        .map_err(|e| bad("inference_failed", e.to_string()))?;
    let hidden_t = out
        .get("last_hidden_state")
        .map_err(|e| bad("inference_failed", e.to_string()))?;
    let hidden = hidden_t
        .to_f32()
        .map_err(|e| bad("inference_failed", e.to_string()))?;
    let dim = *hidden_t.dims.last().unwrap_or(&0) as usize;
    if dim == 0 || hidden.len() != batch * seq * dim {
        return Err(bad(
            "inference_failed",
            format!("unexpected output shape {:?}", hidden_t.dims),
        ));
    }
    let mut data = Vec::with_capacity(batch);
    for b in 0..batch {
        let mut v = vec![0f32; dim];
        let mut n = 0f32;
        for s in 0..seq {
            if mask[b * seq + s] == 1 {
                let row = &hidden[(b * seq + s) * dim..(b * seq + s + 1) * dim];
                v.iter_mut().zip(row).for_each(|(a, x)| *a += x);
                n += 1.0;
            }
        }
        v.iter_mut().for_each(|a| *a /= n.max(1e-9));
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|a| *a /= norm);
        data.push(v);
    }
    Ok(serde_json::to_vec(
        &serde_json::json!({ "data": data, "usage": { "prompt_tokens": prompt_tokens } }),
    )
    .unwrap_or_default())
}

helixflow_guest_sdk::event_handler!(handle);
