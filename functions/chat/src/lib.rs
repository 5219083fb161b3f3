//! `chat`: OpenAI-style chat completions with SmolLM2-135M-Instruct (or any model with
//! its ChatML template and tokenizer) through `helixflow:llm` sequences.
//!
//! `POST` an OpenAI chat-completions body. The function applies the chat template,
//! tokenizes (byte-level BPE, [`bpe`]), feeds the prompt to a host-side sequence (the KV
//! cache stays in the host), then samples token by token ([`sample`]: greedy at
//! temperature 0, else temperature + top_p with an optional seed), stops at
//! `<|im_end|>`, `max_tokens` or a stop sequence, and detokenizes incrementally. With
//! `"stream": true` the answer is server-sent events in OpenAI's chunk format, one
//! chunk per token as it is produced, then `data: [DONE]`; otherwise one JSON body.
//! Errors are OpenAI-shaped (`{"error": {"message", "type", "param", "code"}}`). A
//! client that goes away makes the next write fail: generation stops and the sequence
//! (and its cache) is dropped.
//!
//! User text is always tokenized as text: `<|im_end|>` typed into a message is not the
//! control token (no prompt injection through the template).

// Natively (unit tests) the handler is not exported, so its helpers look unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod bpe;
pub mod sample;

use helixflow_guest_sdk::http::{BodyStream, Request, Responder, Response};
use helixflow_guest_sdk::llm::Sequence;
use serde_json::{Value, json};

const IM_START: u32 = 1;
const IM_END: u32 = 2;
const END_OF_TEXT: u32 = 0;
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
const MAX_STOP: usize = 4;
const MAX_TOP_LOGPROBS: usize = 20;

/// An OpenAI-shaped error response.
#[derive(Debug)]
pub struct ApiError {
    status: u16,
    kind: &'static str,
    code: &'static str,
    param: Option<&'static str>,
    message: String,
}

impl ApiError {
    fn invalid(
        code: &'static str,
        param: Option<&'static str>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code,
            param,
            message: message.into(),
        }
    }
    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
    fn response(&self) -> Response {
        Response::json(self.status, self.body().to_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<usize>,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub logprobs: bool,
    pub top_logprobs: usize,
}

fn num(body: &Value, key: &'static str, lo: f64, hi: f64, default: f64) -> Result<f64, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_f64() {
            Some(x) if x >= lo && x <= hi => Ok(x),
            _ => Err(ApiError::invalid(
                "invalid_value",
                Some(key),
                format!("'{key}' must be a number between {lo} and {hi}"),
            )),
        },
    }
}

/// Parses and validates an OpenAI chat-completions body.
pub fn parse_request(raw: &[u8]) -> Result<ChatRequest, ApiError> {
    let body: Value = serde_json::from_slice(raw).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            None,
            format!("We could not parse the JSON body of your request: {e}"),
        )
    })?;
    if !body.is_object() {
        return Err(ApiError::invalid(
            "invalid_json",
            None,
            "the request body must be a JSON object",
        ));
    }
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "missing_model",
                Some("model"),
                "you must provide a model parameter (a string)",
            )
        })?
        .to_string();
    let msgs = match body.get("messages") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                "missing_messages",
                Some("messages"),
                "you must provide 'messages'",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_messages",
                Some("messages"),
                "'messages' must be an array",
            ));
        }
    };
    if msgs.is_empty() {
        return Err(ApiError::invalid(
            "empty_messages",
            Some("messages"),
            "'messages' must contain at least one message",
        ));
    }
    let mut messages = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                "invalid_messages",
                Some("messages"),
                format!("messages[{i}] needs a 'role' string"),
            )
        })?;
        let role = match role {
            "system" | "user" | "assistant" => role.to_string(),
            // OpenAI's newer name for the system role.
            "developer" => "system".to_string(),
            other => {
                return Err(ApiError::invalid(
                    "unsupported_role",
                    Some("messages"),
                    format!(
                        "messages[{i}].role '{other}' is not supported by this model's chat template (system, developer, user, assistant)"
                    ),
                ));
            }
        };
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) if role == "assistant" => String::new(),
            Some(Value::Array(parts)) => {
                let mut s = String::new();
                for p in parts {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => s.push_str(t),
                        (ty, _) => {
                            return Err(ApiError::invalid(
                                "unsupported_content",
                                Some("messages"),
                                format!(
                                    "messages[{i}]: content part of type {ty:?} is not supported by this model (text only)"
                                ),
                            ));
                        }
                    }
                }
                s
            }
            _ => {
                return Err(ApiError::invalid(
                    "invalid_messages",
                    Some("messages"),
                    format!("messages[{i}].content must be a string or an array of text parts"),
                ));
            }
        };
        messages.push(Message { role, content });
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        _ => {
            return Err(ApiError::invalid(
                "invalid_value",
                Some("stream"),
                "'stream' must be a boolean",
            ));
        }
    };
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let max_tokens = match body
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| body.get("max_tokens"))
    {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n as usize),
            _ => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    Some("max_tokens"),
                    "'max_tokens' must be an integer of at least 1",
                ));
            }
        },
    };
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(1) => {}
        _ => {
            return Err(ApiError::invalid(
                "unsupported_value",
                Some("n"),
                "this model generates one choice per request (n = 1)",
            ));
        }
    }
    let temperature = num(&body, "temperature", 0.0, 2.0, 1.0)? as f32;
    let top_p = num(&body, "top_p", 0.0, 1.0, 1.0)? as f32;
    if top_p <= 0.0 {
        return Err(ApiError::invalid(
            "invalid_value",
            Some("top_p"),
            "'top_p' must be greater than 0",
        ));
    }
    // Features this model cannot honour are refused rather than silently ignored.
    for key in ["tools", "functions"] {
        if body
            .get(key)
            .is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            return Err(ApiError::invalid(
                "unsupported_value",
                Some(key),
                format!("'{key}' (function calling) is not supported by this model"),
            ));
        }
    }
    match body
        .pointer("/response_format/type")
        .and_then(Value::as_str)
    {
        None | Some("text") => {}
        Some(other) => {
            return Err(ApiError::invalid(
                "unsupported_value",
                Some("response_format"),
                format!("response_format '{other}' is not supported by this model (text only)"),
            ));
        }
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        let v = num(&body, key, -2.0, 2.0, 0.0)?;
        if v != 0.0 {
            return Err(ApiError::invalid(
                "unsupported_value",
                None,
                format!("'{key}' is not supported by this model (only 0)"),
            ));
        }
    }
    let seed = match body.get("seed") {
        None | Some(Value::Null) => None,
        Some(v) => match (v.as_i64(), v.as_u64()) {
            (Some(i), _) => Some(i as u64),
            (_, Some(u)) => Some(u),
            _ => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    Some("seed"),
                    "'seed' must be an integer",
                ));
            }
        },
    };
    let stop = match body.get("stop") {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            return Err(ApiError::invalid(
                "invalid_value",
                Some("stop"),
                "'stop' must be a string or an array of strings",
            ));
        }
    };
    if stop.len() > MAX_STOP || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "invalid_value",
            Some("stop"),
            format!("'stop' takes up to {MAX_STOP} non-empty strings"),
        ));
    }
    let logprobs = body
        .get("logprobs")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let top_logprobs = match body.get("top_logprobs") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n as usize <= MAX_TOP_LOGPROBS && logprobs => n as usize,
            Some(n) if n as usize <= MAX_TOP_LOGPROBS => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    Some("top_logprobs"),
                    "'top_logprobs' needs 'logprobs': true",
                ));
            }
            _ => {
                return Err(ApiError::invalid(
                    "invalid_value",
                    Some("top_logprobs"),
                    format!("'top_logprobs' must be 0..={MAX_TOP_LOGPROBS}"),
                ));
            }
        },
    };
    Ok(ChatRequest {
        model,
        messages,
        stream,
        include_usage,
        max_tokens,
        temperature,
        top_p,
        seed,
        stop,
        logprobs,
        top_logprobs,
    })
}

/// The ChatML prompt of SmolLM2's template (with the generation prompt), as token ids.
pub fn prompt_ids(messages: &[Message]) -> Vec<u32> {
    let mut ids = Vec::new();
    let turn = |role: &str, content: &str, ids: &mut Vec<u32>| {
        ids.push(IM_START);
        bpe::encode(&format!("{role}\n{content}"), ids);
        ids.push(IM_END);
        bpe::encode("\n", ids);
    };
    if messages.first().is_none_or(|m| m.role != "system") {
        turn("system", DEFAULT_SYSTEM, &mut ids);
    }
    for m in messages {
        turn(&m.role, &m.content, &mut ids);
    }
    ids.push(IM_START);
    bpe::encode("assistant\n", &mut ids);
    ids
}

fn random_id() -> String {
    let n = helixflow_guest_sdk::wasi::random::random::get_random_u64();
    let m = helixflow_guest_sdk::wasi::random::random::get_random_u64();
    format!("chatcmpl-{n:016x}{m:08x}")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Holds back text that may be the start of a stop sequence.
struct StopFilter {
    stops: Vec<String>,
    text: String,
    emitted: usize,
}

impl StopFilter {
    /// Adds text; returns what can be sent now and whether a stop sequence was hit.
    fn push(&mut self, piece: &str) -> (String, bool) {
        self.text.push_str(piece);
        if self.stops.is_empty() {
            let out = self.text[self.emitted..].to_string();
            self.emitted = self.text.len();
            return (out, false);
        }
        let longest = self.stops.iter().map(String::len).max().unwrap_or(0);
        let mut from = self.emitted.saturating_sub(longest);
        while !self.text.is_char_boundary(from) {
            from -= 1;
        }
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()).map(|p| from + p))
            .min();
        if let Some(p) = hit {
            let out = self.text[self.emitted.min(p)..p].to_string();
            self.text.truncate(p);
            self.emitted = p;
            return (out, true);
        }
        // Keep the longest suffix that is a prefix of some stop sequence.
        let mut keep = 0;
        for s in &self.stops {
            for k in (1..s.len().min(self.text.len() - self.emitted + 1)).rev() {
                if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                    keep = keep.max(k);
                    break;
                }
            }
        }
        let end = self.text.len() - keep;
        let out = self.text[self.emitted..end].to_string();
        self.emitted = end;
        (out, false)
    }
    fn flush(&mut self) -> String {
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

fn logprob_entry(logits: &[f32], id: u32, k: usize) -> Value {
    let (lp, top) = sample::logprobs(logits, id, k);
    let entry = |i: u32, l: f32| {
        let b = bpe::token_bytes(i);
        json!({"token": String::from_utf8_lossy(b), "logprob": l, "bytes": b})
    };
    let mut e = entry(id, lp);
    e["top_logprobs"] = Value::Array(top.iter().map(|(i, l)| entry(*i, *l)).collect());
    e
}

enum Sink {
    Buffer,
    Stream(BodyStream),
}

fn sse(stream: &mut BodyStream, v: &Value) -> Result<(), helixflow_guest_sdk::http::Disconnected> {
    stream.write(format!("data: {v}\n\n").as_bytes())
}

fn handle(req: Request, respond: Responder) {
    if req.method() != "POST" {
        respond.send(
            ApiError {
                status: 405,
                kind: "invalid_request_error",
                code: "method_not_allowed",
                param: None,
                message: "POST a chat completion request".into(),
            }
            .response(),
        );
        return;
    }
    let r = match parse_request(req.body()) {
        Ok(r) => r,
        Err(e) => return respond.send(e.response()),
    };
    let mut seq = match Sequence::open(&r.model) {
        Ok(s) => s,
        Err(e) if e.code == "not-found" => {
            return respond.send(
                ApiError {
                    status: 404,
                    kind: "invalid_request_error",
                    code: "model_not_found",
                    param: Some("model"),
                    message: format!(
                        "The model `{}` does not exist or you do not have access to it.",
                        r.model
                    ),
                }
                .response(),
            );
        }
        Err(e) => {
            return respond.send(
                ApiError::invalid(
                    "model_not_supported",
                    Some("model"),
                    format!("`{}` cannot serve chat: {e}", r.model),
                )
                .response(),
            );
        }
    };
    if seq.vocab_size() != bpe::vocab_size() {
        return respond.send(
            ApiError::invalid(
                "model_not_supported",
                Some("model"),
                format!(
                    "`{}` has {} logits per token but this function's tokenizer has {}",
                    r.model,
                    seq.vocab_size(),
                    bpe::vocab_size()
                ),
            )
            .response(),
        );
    }
    let prompt = prompt_ids(&r.messages);
    let ctx = seq.context_length();
    if prompt.len() >= ctx {
        return respond.send(
            ApiError::invalid(
                "context_length_exceeded",
                Some("messages"),
                format!("This model's maximum context length is {ctx} tokens. However, your messages resulted in {} tokens.", prompt.len()),
            )
            .response(),
        );
    }
    let room = ctx - prompt.len();
    let max_tokens = match r.max_tokens {
        Some(n) if n > room => {
            return respond.send(
                ApiError::invalid(
                    "context_length_exceeded",
                    Some("max_tokens"),
                    format!(
                        "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({} in the messages, {n} in the completion).",
                        prompt.len() + n,
                        prompt.len()
                    ),
                )
                .response(),
            );
        }
        Some(n) => n,
        None => room,
    };

    // The prompt runs before anything is sent, so a failure here (the node's KV-cache
    // budget in use, a model error) is still a proper status, streamed or not.
    let first_logits = match seq.feed(&prompt) {
        Ok(l) => l,
        Err(e) if e.code == "too-large" => {
            return respond.send(
                ApiError {
                    status: 503,
                    kind: "server_error",
                    code: "capacity_exhausted",
                    param: None,
                    message: format!("cannot start the generation now: {}", e.message),
                }
                .response()
                .with_header("retry-after", "1"),
            );
        }
        Err(e) => {
            return respond.send(
                ApiError {
                    status: 500,
                    kind: "server_error",
                    code: "generation_failed",
                    param: None,
                    message: format!("the prompt failed: {e}"),
                }
                .response(),
            );
        }
    };
    let id = random_id();
    let created = now_secs();
    let fingerprint = "helixflow-chat-0.1";
    let mut responder = Some(respond);
    let mut sink = if r.stream {
        match responder.take().map(|r| {
            r.stream(
                200,
                &[
                    ("content-type", "text/event-stream"),
                    ("cache-control", "no-cache"),
                ],
            )
        }) {
            Some(Ok(s)) => Sink::Stream(s),
            _ => return,
        }
    } else {
        Sink::Buffer
    };
    let chunk = |delta: Value, finish: Value, logprobs: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": r.model,
            "system_fingerprint": fingerprint,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        });
        if r.include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    if let Sink::Stream(s) = &mut sink
        && sse(
            s,
            &chunk(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
                Value::Null,
            ),
        )
        .is_err()
    {
        return;
    }

    let mut sampler = sample::Sampler {
        temperature: r.temperature,
        top_p: r.top_p,
        rng: sample::Rng::new(
            r.seed
                .unwrap_or_else(helixflow_guest_sdk::wasi::random::random::get_random_u64),
        ),
    };
    let mut decoder = bpe::Decoder::default();
    let mut filter = StopFilter {
        stops: r.stop.clone(),
        text: String::new(),
        emitted: 0,
    };
    let mut content = String::new();
    let mut all_logprobs = Vec::new();
    let mut completion = 0usize;
    let mut finish = "length";
    let mut stopped = false;
    let mut failure: Option<ApiError> = None;
    let mut logits = Some(first_logits);
    while let Some(l) = logits.take() {
        if completion >= max_tokens {
            break;
        }
        let next = sampler.pick(&l);
        if next == IM_END || next == END_OF_TEXT {
            finish = "stop";
            break;
        }
        completion += 1;
        let lp = if r.logprobs {
            Some(logprob_entry(&l, next, r.top_logprobs))
        } else {
            None
        };
        let piece = decoder.push(next);
        let (out, hit) = filter.push(&piece);
        content.push_str(&out);
        match &mut sink {
            Sink::Stream(s) => {
                if !out.is_empty() || lp.is_some() {
                    let lpv = lp.map(|e| json!({"content": [e]})).unwrap_or(Value::Null);
                    if sse(s, &chunk(json!({"content": out}), Value::Null, lpv)).is_err() {
                        // The client is gone: stop generating; dropping `seq` frees its cache.
                        return;
                    }
                }
            }
            Sink::Buffer => all_logprobs.extend(lp),
        }
        if hit {
            finish = "stop";
            stopped = true;
            break;
        }
        if completion >= max_tokens {
            break;
        }
        logits = match seq.feed(&[next]) {
            Ok(l) => Some(l),
            Err(e) => {
                let (status, code) = if e.code == "too-large" {
                    (503, "capacity_exhausted")
                } else {
                    (500, "generation_failed")
                };
                failure = Some(ApiError {
                    status,
                    kind: "server_error",
                    code,
                    param: None,
                    message: format!("decoding failed after {completion} tokens: {e}"),
                });
                None
            }
        };
    }
    drop(seq);
    if failure.is_none() && !stopped {
        // An incomplete character at the end, and text held back as a possible start
        // of a stop sequence that never came.
        let tail = decoder.finish();
        let (mut out, hit) = filter.push(&tail);
        if !hit {
            out.push_str(&filter.flush());
        }
        content.push_str(&out);
        if !out.is_empty()
            && let Sink::Stream(s) = &mut sink
        {
            let _ = sse(s, &chunk(json!({"content": out}), Value::Null, Value::Null));
        }
    }
    let usage = json!({"prompt_tokens": prompt.len(), "completion_tokens": completion, "total_tokens": prompt.len() + completion});
    match sink {
        Sink::Stream(mut s) => {
            if let Some(e) = failure {
                let _ = sse(&mut s, &e.body());
            } else {
                let _ = sse(&mut s, &chunk(json!({}), json!(finish), Value::Null));
                if r.include_usage {
                    let _ = sse(
                        &mut s,
                        &json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": r.model,
                                "system_fingerprint": fingerprint, "choices": [], "usage": usage}),
                    );
                }
            }
            let _ = s.write(b"data: [DONE]\n\n");
            s.finish();
        }
        Sink::Buffer => {
            let resp = if let Some(e) = failure {
                e.response()
            } else {
                let logprobs = if r.logprobs {
                    json!({"content": all_logprobs})
                } else {
                    Value::Null
                };
                let body = json!({
                    "id": id, "object": "chat.completion", "created": created, "model": r.model,
                    "system_fingerprint": fingerprint,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null},
                                 "logprobs": logprobs, "finish_reason": finish}],
                    "usage": usage,
                });
                Response::json(200, body.to_string())
            };
            if let Some(r) = responder.take() {
                r.send(resp);
            }
        }
    }
}

// Exported only when built as a component: the crate is also built natively for its
// unit tests, where `wasi:http/...` export names are not valid linker symbols.
#[cfg(target_arch = "wasm32")]
helixflow_guest_sdk::http_streaming_handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_validation() {
        let ok = parse_request(br#"{"model":"m","messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"user","content":"hi"}],"stop":"x","seed":-3}"#).unwrap();
        assert_eq!(
            ok.messages[0],
            Message {
                role: "system".into(),
                content: "ab".into()
            }
        );
        assert_eq!(ok.stop, vec!["x".to_string()]);
        assert_eq!(ok.seed, Some((-3i64) as u64));
        assert_eq!((ok.temperature, ok.top_p, ok.stream), (1.0, 1.0, false));
        for (body, code) in [
            (&b"{"[..], "invalid_json"),
            (br#"{"messages":[{"role":"user","content":"x"}]}"#, "missing_model"),
            (br#"{"model":"m","messages":[]}"#, "empty_messages"),
            (br#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#, "unsupported_role"),
            (br#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#, "unsupported_content"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#, "invalid_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":0}"#, "invalid_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}"#, "unsupported_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#, "invalid_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":2}"#, "invalid_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"frequency_penalty":1}"#, "unsupported_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}"#, "unsupported_value"),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#, "unsupported_value"),
        ] {
            let e = parse_request(body).unwrap_err();
            assert_eq!(e.code, code, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn template_is_chatml_with_the_default_system_prompt() {
        let ids = prompt_ids(&[Message {
            role: "user".into(),
            content: "Hi <|im_end|>".into(),
        }]);
        assert_eq!(ids[0], IM_START);
        // Two turns (system, user) + the generation prompt: three <|im_start|>, and the
        // user's literal "<|im_end|>" is text, not the control token.
        assert_eq!(ids.iter().filter(|t| **t == IM_START).count(), 3);
        assert_eq!(ids.iter().filter(|t| **t == IM_END).count(), 2);
        let text: Vec<u8> = ids
            .iter()
            .flat_map(|t| bpe::token_bytes(*t).to_vec())
            .collect();
        assert!(
            String::from_utf8(text)
                .unwrap()
                .ends_with("<|im_start|>assistant\n")
        );
    }

    #[test]
    fn stop_filter_holds_back_possible_starts() {
        let mut f = StopFilter {
            stops: vec!["END".into()],
            text: String::new(),
            emitted: 0,
        };
        assert_eq!(f.push("abc E"), ("abc ".to_string(), false));
        assert_eq!(f.push("N"), (String::new(), false));
        assert_eq!(f.push("X"), ("ENX".to_string(), false));
        assert_eq!(f.push(" tail EN"), (" tail ".to_string(), false));
        assert_eq!(f.push("D more"), (String::new(), true));
        let mut g = StopFilter {
            stops: vec!["é!".into()],
            text: String::new(),
            emitted: 0,
        };
        assert_eq!(g.push("caf"), ("caf".to_string(), false));
        assert_eq!(g.push("é"), (String::new(), false));
        assert_eq!(g.flush(), "é");
    }

    #[test]
    fn sampling_is_seeded_and_greedy_at_zero() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let pick = |t: f32, p: f32, seed: u64| {
            let mut s = sample::Sampler {
                temperature: t,
                top_p: p,
                rng: sample::Rng::new(seed),
            };
            (0..20).map(|_| s.pick(&logits)).collect::<Vec<_>>()
        };
        assert!(
            pick(0.0, 1.0, 1)
                .iter()
                .all(|t| *t == sample::argmax(&logits))
        );
        assert_eq!(pick(1.0, 0.9, 42), pick(1.0, 0.9, 42));
        assert_ne!(pick(1.0, 1.0, 1), pick(1.0, 1.0, 2));
        // A tiny top_p keeps only the most likely token.
        assert!(
            pick(1.0, 1e-6, 5)
                .iter()
                .all(|t| *t == sample::argmax(&logits))
        );
        let (lp, top) = sample::logprobs(&logits, 3, 3);
        assert!(lp < 0.0 && top.len() == 3 && top[0].1 >= top[1].1 && top[1].1 >= top[2].1);
    }

    #[test]
    fn decoder_waits_for_split_characters() {
        // "é" is two bytes; find tokens that split it is model-specific, so feed the
        // byte tokens directly.
        let b = |c: u8| bpe::encode_bytes_for_test(&[c]);
        let mut d = bpe::Decoder::default();
        assert_eq!(d.push(b(0xC3)), "");
        assert_eq!(d.push(b(0xA9)), "é");
        assert_eq!(d.push(b(0xC3)), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
