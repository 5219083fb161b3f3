//! The `helixflow:llm/sequence` host (bindings from the repository's `wit/llm/`, async
//! host calls): a guest's [`generate::Sequence`]s live in the invocation's resource table,
//! so a finished, trapped or killed invocation drops them and frees their caches.

use crate::generate;
use crate::host::NnView;
use crate::{ErrorCode, NnError};
use wasmtime::component::{HasData, Linker, Resource};

mod generated {
    wasmtime::component::bindgen!({
        world: "llm",
        path: "../../wit/llm",
        imports: { default: async | trappable },
        with: {
            "helixflow:llm/sequence.sequence": crate::generate::Sequence,
        },
    });
}
use generated::helixflow::llm::sequence as wit;

struct HasLlm;
impl HasData for HasLlm {
    type Data<'a> = NnView<'a>;
}

/// Adds `helixflow:llm/sequence` to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> NnView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasLlm>(linker, get)
}

fn to_wit(e: NnError) -> wit::Error {
    let code = match e.code {
        ErrorCode::NotFound => wit::ErrorCode::NotFound,
        ErrorCode::InvalidArgument | ErrorCode::InvalidEncoding => wit::ErrorCode::InvalidArgument,
        ErrorCode::TooLarge => wit::ErrorCode::TooLarge,
        ErrorCode::UnsupportedOperation | ErrorCode::Security => wit::ErrorCode::Unsupported,
        ErrorCode::Timeout | ErrorCode::RuntimeError | ErrorCode::Unknown => {
            wit::ErrorCode::RuntimeError
        }
    };
    wit::Error {
        code,
        message: e.message,
    }
}

impl wit::Host for NnView<'_> {}

impl wit::HostSequence for NnView<'_> {
    async fn open(
        &mut self,
        model: String,
    ) -> wasmtime::Result<Result<Resource<generate::Sequence>, wit::Error>> {
        let inf = match self.count() {
            Ok(i) => i,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        if self.ctx.sequences >= inf.config().max_sequences_per_invocation {
            return Ok(Err(to_wit(NnError::new(
                ErrorCode::UnsupportedOperation,
                format!(
                    "at most {} sequences may be open at once in one invocation",
                    inf.config().max_sequences_per_invocation
                ),
            ))));
        }
        let lm = match inf.causal_lm(&self.ctx.tenant, &model).await {
            Ok(lm) => lm,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        self.ctx.sequences += 1;
        Ok(Ok(self.table.push(lm.open(&self.ctx.tenant))?))
    }

    async fn context_length(&mut self, s: Resource<generate::Sequence>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&s)?.model().context as u32)
    }

    async fn vocab_size(&mut self, s: Resource<generate::Sequence>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&s)?.model().vocab as u32)
    }

    async fn len(&mut self, s: Resource<generate::Sequence>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&s)?.len() as u32)
    }

    async fn feed(
        &mut self,
        s: Resource<generate::Sequence>,
        tokens: Vec<u32>,
    ) -> wasmtime::Result<Result<Vec<f32>, wit::Error>> {
        if let Err(e) = self.count() {
            return Ok(Err(to_wit(e)));
        }
        let seq = self.table.get_mut(&s)?;
        let first = seq.is_empty();
        // One span per feed (a prompt chunk or one decode step), none per inner loop.
        let span = tracing::info_span!(
            "llm.feed",
            tenant = %self.ctx.tenant,
            model = %seq.model().display,
            tokens = tokens.len(),
            prompt = first,
        );
        let out = tracing::Instrument::instrument(seq.feed(&tokens), span)
            .await
            .map_err(to_wit);
        if out.is_ok() {
            let n = tokens.len() as u64;
            let u = &mut self.ctx.usage;
            u.prompt_tokens += if first { n } else { n.saturating_sub(1) };
            u.completion_tokens += 1;
        }
        Ok(out)
    }

    async fn drop(&mut self, s: Resource<generate::Sequence>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        self.ctx.sequences = self.ctx.sequences.saturating_sub(1);
        Ok(())
    }
}
