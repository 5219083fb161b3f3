//! `llm-loop`: greedy decoding for benchmarks, the same loop two ways.
//!
//! Event: `{"model": "...", "prompt": [ids], "max_tokens": n, "mode": "wasi-nn" | "sequence"}`
//! -> `{"tokens": [ids], "prefill_ms": f, "decode_ms": f}` (time measured in the guest).
//!
//! * `wasi-nn`: plain wasi:nn; the guest holds the KV cache and passes all
//!   `past_key_values.*` in and gets all `present.*` back every step (what a function
//!   must do without `helixflow:llm`).
//! * `sequence`: `helixflow:llm/sequence`; the cache stays in the host.

use helixflow_guest_sdk::event::{Context, FunctionError};
use helixflow_guest_sdk::llm::Sequence;
use helixflow_guest_sdk::nn::{Graph, Tensor, TensorType};
use serde_json::{Value, json};
use std::time::Instant;

const EOS: [u32; 2] = [0, 2];

fn argmax(l: &[f32]) -> u32 {
    let mut b = 0;
    for (i, v) in l.iter().enumerate() {
        if *v > l[b] {
            b = i;
        }
    }
    b as u32
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn handle(event: Vec<u8>, _ctx: Context) -> Result<Vec<u8>, FunctionError> {
    let bad = |m: String| FunctionError::new("bad_request", m);
    let v: Value = serde_json::from_slice(&event).map_err(|e| bad(e.to_string()))?;
    let model = v["model"].as_str().ok_or_else(|| bad("model".into()))?;
    let prompt: Vec<u32> = v["prompt"]
        .as_array()
        .ok_or_else(|| bad("prompt".into()))?
        .iter()
        .filter_map(|x| x.as_u64().map(|x| x as u32))
        .collect();
    let max_tokens = v["max_tokens"].as_u64().unwrap_or(32) as usize;
    let mut tokens = Vec::new();
    let t0 = Instant::now();
    let mut prefill_ms = 0.0;
    match v["mode"].as_str() {
        Some("sequence") => {
            let mut seq =
                Sequence::open(model).map_err(|e| FunctionError::new(e.code, e.message))?;
            let mut logits = seq
                .feed(&prompt)
                .map_err(|e| FunctionError::new(e.code, e.message))?;
            prefill_ms = ms(t0);
            while tokens.len() < max_tokens {
                let next = argmax(&logits);
                if EOS.contains(&next) {
                    break;
                }
                tokens.push(next);
                if tokens.len() == max_tokens {
                    break;
                }
                logits = seq
                    .feed(&[next])
                    .map_err(|e| FunctionError::new(e.code, e.message))?;
            }
        }
        Some("wasi-nn") => {
            let err = |e: helixflow_guest_sdk::nn::Error| FunctionError::new(e.code, e.message);
            let g = Graph::load_by_name(model).map_err(err)?;
            let ctx = g.context().map_err(err)?;
            let layers = v["layers"].as_u64().unwrap_or(30) as usize;
            let mut past: Vec<(String, Tensor)> = (0..layers)
                .flat_map(|l| {
                    ["key", "value"].map(|k| {
                        (
                            format!("past_key_values.{l}.{k}"),
                            Tensor::from_bytes(TensorType::Fp32, &[1, 3, 0, 64], vec![]),
                        )
                    })
                })
                .collect();
            let mut len = 0usize;
            let mut feed: Vec<i64> = prompt.iter().map(|t| i64::from(*t)).collect();
            loop {
                let n = feed.len();
                let mut inputs = vec![
                    (
                        "input_ids".to_string(),
                        Tensor::from_bytes(TensorType::I64, &[1, n as u32], i64s(&feed)),
                    ),
                    (
                        "attention_mask".to_string(),
                        Tensor::from_bytes(
                            TensorType::I64,
                            &[1, (len + n) as u32],
                            i64s(&vec![1; len + n]),
                        ),
                    ),
                    (
                        "position_ids".to_string(),
                        Tensor::from_bytes(
                            TensorType::I64,
                            &[1, n as u32],
                            i64s(&(len as i64..(len + n) as i64).collect::<Vec<_>>()),
                        ),
                    ),
                ];
                inputs.append(&mut past);
                let out = ctx.compute(inputs).map_err(err)?;
                len += n;
                let logits = out.get("logits").map_err(err)?.to_f32().map_err(err)?;
                let vocab = logits.len() / n;
                let next = argmax(&logits[(n - 1) * vocab..]);
                past = out
                    .0
                    .into_iter()
                    .filter(|(name, _)| name.starts_with("present."))
                    .map(|(name, t)| (name.replacen("present.", "past_key_values.", 1), t))
                    .collect();
                if tokens.is_empty() && prefill_ms == 0.0 {
                    prefill_ms = ms(t0);
                }
                if EOS.contains(&next) {
                    break;
                }
                tokens.push(next);
                if tokens.len() == max_tokens {
                    break;
                }
                feed = vec![i64::from(next)];
            }
        }
        _ => return Err(bad("mode must be wasi-nn or sequence".into())),
    }
    let total = ms(t0);
    Ok(
        json!({"tokens": tokens, "prefill_ms": prefill_ms, "decode_ms": total - prefill_ms})
            .to_string()
            .into_bytes(),
    )
}

helixflow_guest_sdk::event_handler!(handle);
