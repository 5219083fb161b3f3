//! Autoregressive generation with the KV cache kept in the host
//! (`helixflow:llm/sequence@0.1.0`, see `wit/llm/llm.wit`).
//!
//! ```ignore
//! use helixflow_guest_sdk::llm::Sequence;
//!
//! let mut seq = Sequence::open("smollm2-135m-instruct")?;
//! let mut logits = seq.feed(&prompt_ids)?;
//! loop {
//!     let next = argmax(&logits);
//!     if next == EOS { break; }
//!     logits = seq.feed(&[next])?;
//! }
//! ```
//!
//! The host batches the decode steps of concurrent sequences on the same model; the
//! guest keeps tokenization, sampling and stopping.

use crate::llm_bindings::helixflow::llm::sequence as wit;

/// A sequence error: the host's code (`not-found`, `invalid-argument`, `too-large`,
/// `unsupported`, `runtime-error`) and message; the same type as wasi:nn's errors.
pub use crate::nn::Error;

impl From<wit::Error> for Error {
    fn from(e: wit::Error) -> Error {
        let code = match e.code {
            wit::ErrorCode::NotFound => "not-found",
            wit::ErrorCode::InvalidArgument => "invalid-argument",
            wit::ErrorCode::TooLarge => "too-large",
            wit::ErrorCode::Unsupported => "unsupported",
            wit::ErrorCode::RuntimeError => "runtime-error",
        };
        Error {
            code,
            message: e.message,
        }
    }
}

/// A token sequence whose KV cache lives in the host.
pub struct Sequence(wit::Sequence);

impl Sequence {
    /// Opens an empty sequence on a registry model (this tenant's or a public one).
    pub fn open(model: &str) -> Result<Sequence, Error> {
        Ok(Sequence(wit::Sequence::open(model)?))
    }
    /// The model's context window in tokens.
    pub fn context_length(&self) -> usize {
        self.0.context_length() as usize
    }
    /// Number of logits per step.
    pub fn vocab_size(&self) -> usize {
        self.0.vocab_size() as usize
    }
    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.0.len() as usize
    }
    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends `tokens`, runs the model over them, returns the next-token logits.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, Error> {
        Ok(self.0.feed(tokens)?)
    }
}
