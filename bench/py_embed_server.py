"""The comparison server for bench/embeddings.sh: /v1/embeddings in Python with
onnxruntime (same ONNX file, same intra-op threads as HelixFlow's pool), HF tokenizers
(Rust-backed), numpy pooling, and the stdlib threading HTTP server (onnxruntime releases
the GIL while it runs, so concurrent requests overlap in the model).

Usage: py_embed_server.py PORT MODEL.onnx TOKENIZER.json THREADS
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

port, model, tokenizer, threads = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
tok = Tokenizer.from_file(tokenizer)
tok.enable_truncation(256)
tok.enable_padding(pad_id=0)


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        enc = tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        h = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        out = json.dumps({
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v[i].tolist()} for i in range(len(texts))],
            "model": body["model"],
            "usage": {"prompt_tokens": int(mask.sum()), "total_tokens": int(mask.sum())},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


print(f"python embeddings server on {port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
