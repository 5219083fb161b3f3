"""``embed-py``: OpenAI-style sentence embeddings with all-MiniLM-L6-v2, in Python.

Event in: ``{"model": "<registry model name>", "input": ["text", ...]}``.
Event out: ``{"data": [[384 floats], ...], "usage": {"prompt_tokens": n}}``.
``{"tokenize": ["text", ...]}`` returns the token ids instead.

The same function as ``functions/embed-minilm`` (Rust): WordPiece tokenization in the
guest (pure Python), padding, wasi:nn compute on the host's ONNX Runtime, then masked
mean pooling and L2 normalisation. The vocabulary is read when the module is imported,
i.e. while componentize-py pre-initialises the component: every instance starts with
the tokenizer built.
"""

import json
import math

from helixflow import event
from helixflow.event import FunctionError
from helixflow.nn import Graph, NnError, Tensor

import wordpiece

#: sentence-transformers' max_seq_length for this model.
MAX_TOKENS = 256

TOKENIZER = wordpiece.default()


def embed(req: dict) -> dict:
    tok = TOKENIZER
    if req.get("tokenize") is not None:
        return {"ids": [tok.encode(t, 1 << 62) for t in req["tokenize"]]}
    model = req.get("model")
    if not model:
        raise FunctionError("invalid_request", "missing model")
    texts = req.get("input") or []
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise FunctionError("invalid_request", "input must be a list of strings")
    if not texts:
        raise FunctionError("invalid_request", "input must not be empty")
    encoded = [tok.encode(t, MAX_TOKENS) for t in texts]
    prompt_tokens = sum(len(e) for e in encoded)
    batch = len(encoded)
    seq = max(len(e) for e in encoded)
    ids, mask = [], []
    for e in encoded:
        pad = seq - len(e)
        ids += e + [0] * pad
        mask += [1] * len(e) + [0] * pad
    dims = [batch, seq]
    try:
        graph = Graph.load_by_name(model)
        ctx = graph.context()
    except NnError as e:
        raise FunctionError("model_unavailable", str(e))
    try:
        out = ctx.compute(
            {
                "input_ids": Tensor.from_i64(dims, ids),
                "attention_mask": Tensor.from_i64(dims, mask),
                "token_type_ids": Tensor.from_i64(dims, [0] * (batch * seq)),
            }
        )
        hidden_t = out.get("last_hidden_state")
        if hidden_t is None:
            raise NnError("not-found", "no output named 'last_hidden_state'")
        hidden = hidden_t.view()  # float32 view of the output bytes, no copy
    except NnError as e:
        raise FunctionError("inference_failed", str(e))
    dim = hidden_t.dims[-1] if hidden_t.dims else 0
    if dim == 0 or len(hidden) != batch * seq * dim:
        raise FunctionError("inference_failed", f"unexpected output shape {hidden_t.dims}")
    data = []
    for b in range(batch):
        v = [0.0] * dim
        n = 0
        for s in range(seq):
            if mask[b * seq + s]:
                base = (b * seq + s) * dim
                row = hidden[base : base + dim]
                v = [a + x for a, x in zip(v, row)]
                n += 1
        v = [a / max(n, 1e-9) for a in v]
        norm = max(math.sqrt(sum(a * a for a in v)), 1e-12)
        data.append([a / norm for a in v])
    return {"data": data, "usage": {"prompt_tokens": prompt_tokens}}


def handle(raw: bytes, ctx: event.Context) -> bytes:
    try:
        req = json.loads(raw)
    except ValueError as e:
        raise FunctionError("invalid_request", f"bad request JSON: {e}")
    if not isinstance(req, dict):
        raise FunctionError("invalid_request", "the request must be a JSON object")
    return json.dumps(embed(req), separators=(",", ":")).encode()


# componentize-py exports the class of this name as helixflow:function/event-handler.
EventHandler = event.event_handler(handle)
