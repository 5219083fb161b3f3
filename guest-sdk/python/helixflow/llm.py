"""Autoregressive generation with the KV cache kept in the host
(``helixflow:llm/sequence@0.1.0``, see ``wit/llm/llm.wit``)::

    from helixflow.llm import Sequence

    seq = Sequence.open("smollm2-135m-instruct")
    logits = seq.feed(prompt_ids)
    while True:
        nxt = max(range(len(logits)), key=logits.__getitem__)
        if nxt == EOS:
            break
        logits = seq.feed([nxt])

The host batches the decode steps of concurrent sequences on the same model; the guest
keeps tokenization, sampling and stopping. Errors are ``helixflow.nn.NnError`` with
the host's code (``not-found``, ``invalid-argument``, ``too-large``, ``unsupported``,
``runtime-error``).
"""

from __future__ import annotations

from typing import Any, Iterable, List

from . import _wit
from .nn import NnError


def _llm_error(e: Any) -> NnError:
    v = getattr(e, "value", e)
    code = getattr(getattr(v, "code", None), "name", "UNKNOWN").lower().replace("_", "-")
    return NnError(code, getattr(v, "message", str(v)))


class Sequence:
    """A token sequence whose KV cache lives in the host."""

    def __init__(self, seq: Any):
        self._seq = seq

    @classmethod
    def open(cls, model: str) -> "Sequence":
        """Opens an empty sequence on a registry model (this tenant's or a public one)."""
        _wit.require()
        try:
            return cls(_wit.sequence.Sequence.open(model))
        except _wit.Err as e:
            raise _llm_error(e) from None

    def context_length(self) -> int:
        """The model's context window in tokens."""
        return self._seq.context_length()

    def vocab_size(self) -> int:
        """Number of logits per step."""
        return self._seq.vocab_size()

    def __len__(self) -> int:
        """Tokens cached so far."""
        return self._seq.len()

    def feed(self, tokens: Iterable[int]) -> List[float]:
        """Appends ``tokens``, runs the model over them, returns the next-token logits."""
        try:
            return self._seq.feed(list(tokens))
        except _wit.Err as e:
            raise _llm_error(e) from None

    def close(self) -> None:
        """Frees the host's KV cache now (else when the invocation ends)."""
        self._seq.__exit__(None, None, None)
