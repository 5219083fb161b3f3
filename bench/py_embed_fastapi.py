"""The issue's comparison server for bench/embeddings.sh: /v1/embeddings as a Python team
would deploy it, FastAPI under uvicorn (uvloop + httptools) with several worker
processes, each with its own onnxruntime session of a fixed thread count, HF tokenizers
(Rust-backed) and numpy pooling: the same model and math as HelixFlow's embed-minilm.

    EMBED_MODEL=minilm-int8.onnx EMBED_TOKENIZER=minilm-tokenizer.json EMBED_THREADS=1 \\
        uvicorn py_embed_fastapi:app --workers 2 --port PORT
"""
import json
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request, Response
from tokenizers import Tokenizer

so = ort.SessionOptions()
so.intra_op_num_threads = int(os.environ.get("EMBED_THREADS", "1"))
so.inter_op_num_threads = 1
sess = ort.InferenceSession(os.environ["EMBED_MODEL"], so, providers=["CPUExecutionProvider"])
tok = Tokenizer.from_file(os.environ["EMBED_TOKENIZER"])
tok.enable_truncation(256)
tok.enable_padding(pad_id=0)
app = FastAPI()


def embed(texts):
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
    m = mask[..., None].astype(np.float32)
    v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v, int(mask.sum())


@app.post("/v1/embeddings")
def embeddings(body: dict) -> Response:
    # A plain `def`: FastAPI runs it in its thread pool (onnxruntime releases the GIL).
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    v, tokens = embed(texts)
    out = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v[i].tolist()} for i in range(len(texts))],
        "model": body["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Response(content=json.dumps(out), media_type="application/json")


@app.get("/healthz")
def healthz() -> dict:
    return {"ok": True}
