"""The official `openai` package against HelixFlow's /v1, unmodified, compared with a
reference computed here with Python onnxruntime + HF tokenizers on the same ONNX file.

Usage: openai_embeddings.py BASE_URL TENANT MODELS_DIR
"""
import base64
import json
import os
import sys
import urllib.request

import numpy as np
import onnxruntime as ort
import openai
from tokenizers import Tokenizer

base, tenant, models = sys.argv[1], sys.argv[2], sys.argv[3]
MODEL = "all-minilm-l6-v2"
TOKEN = os.environ["HELIXFLOW_TOKEN"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The platform admin key names the tenant as the OpenAI organization; a tenant key
# (tests/python/openai_keys.py) needs no organization.
client = openai.OpenAI(base_url=f"{base}/v1", api_key=TOKEN, organization=tenant, max_retries=0)

tok = Tokenizer.from_file(f"{models}/minilm-tokenizer.json")
tok.no_truncation()
tok.no_padding()
sess = ort.InferenceSession(f"{models}/minilm-int8.onnx")


def reference(text):
    ids = np.array([tok.encode(text).ids], dtype=np.int64)
    h = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})[0]
    v = h[0].mean(0)
    return v / np.linalg.norm(v)


texts = [
    "The quick brown fox jumps over the lazy dog.",
    "HelixFlow runs tenants' WebAssembly at the edge",
    "Héllo, WORLD!! naïve café résumé",
    "東京は日本の首都です",
    "don't split-words (badly) — 3.14159 and $42.00?",
    "a",
]

# /v1/models lists the served model.
ids = [m.id for m in client.models.list().data]
print("models:", ids)
assert MODEL in ids, ids
assert client.models.retrieve(MODEL).owned_by == tenant

# Float and base64 (the client's default asks for base64 and decodes it).
for fmt in ("float", "base64", None):
    kw = {} if fmt is None else {"encoding_format": fmt}
    r = client.embeddings.create(model=MODEL, input=texts, **kw)
    assert len(r.data) == len(texts)
    worst = 1.0
    for t, d in zip(texts, r.data):
        if isinstance(d.embedding, str):  # explicit base64: the client hands the string over
            e = np.frombuffer(base64.b64decode(d.embedding), dtype="<f4")
        else:
            e = np.array(d.embedding, dtype=np.float32)
        ref = reference(t)
        assert e.shape == (384,), e.shape
        cos = float(e @ ref)
        worst = min(worst, cos)
        assert np.abs(e - ref).max() < 1e-5, (t, np.abs(e - ref).max())
    tokens = sum(len(tok.encode(t).ids) for t in texts)
    assert r.usage.prompt_tokens == tokens, (r.usage, tokens)
    print(f"encoding_format={fmt}: {len(texts)} vectors, min cosine vs reference {worst:.7f}, prompt_tokens {tokens}")

# One string.
r = client.embeddings.create(model=MODEL, input="just one", encoding_format="float")
assert len(r.data) == 1 and abs(np.linalg.norm(r.data[0].embedding) - 1) < 1e-5

# Shortened vectors (dimensions): truncated and renormalised.
r = client.embeddings.create(model=MODEL, input="short", dimensions=64, encoding_format="float")
assert len(r.data[0].embedding) == 64 and abs(np.linalg.norm(r.data[0].embedding) - 1) < 1e-5

# Raw base64 on the wire is little-endian float32.
req = urllib.request.Request(
    f"{base}/v1/embeddings",
    data=json.dumps({"model": MODEL, "input": ["wire"], "encoding_format": "base64"}).encode(),
    headers={"OpenAI-Organization": tenant, "content-type": "application/json", **AUTH},
)
raw = json.load(urllib.request.urlopen(req))
v = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
assert v.shape == (384,) and np.abs(v - reference("wire")).max() < 1e-5

# OpenAI-shaped errors.
for what, call, exc in [
    ("unknown model", lambda: client.embeddings.create(model="no-such-model", input="x"), openai.NotFoundError),
    ("empty input list", lambda: client.embeddings.create(model=MODEL, input=[]), openai.BadRequestError),
    ("empty string", lambda: client.embeddings.create(model=MODEL, input=[""]), openai.BadRequestError),
    ("bad encoding_format", lambda: client.embeddings.create(model=MODEL, input="x", encoding_format="hex"), openai.BadRequestError),
    ("too many dimensions", lambda: client.embeddings.create(model=MODEL, input="x", dimensions=4096), openai.BadRequestError),
]:
    try:
        call()
        raise AssertionError(f"{what}: no error")
    except exc as e:
        body = e.body if isinstance(e.body, dict) else {}
        assert "message" in body and "type" in body, body
        print(f"{what}: {e.status_code} {body.get('code')}: {body.get('message')}")

other = openai.OpenAI(base_url=f"{base}/v1", api_key=TOKEN, organization="someone-else", max_retries=0)
try:
    other.embeddings.create(model=MODEL, input="x")
    raise AssertionError("another tenant reached the model")
except (openai.NotFoundError, openai.AuthenticationError, openai.PermissionDeniedError) as e:
    print(f"other tenant: {e.status_code}")
bad = openai.OpenAI(base_url=f"{base}/v1", api_key="hfk_000000000000_" + "A" * 43, max_retries=0)
try:
    bad.embeddings.create(model=MODEL, input="x")
    raise AssertionError("an unknown key was accepted")
except openai.AuthenticationError as e:
    print(f"unknown key: {e.status_code} {e.body.get('code') if isinstance(e.body, dict) else ''}")

# The guest's WordPiece tokenizer equals the reference implementation.
tricky = texts + [
    "UNAFFABLE unaffable", "x" * 150, "tab\tnew\nline\r\n", "zero\u200bwidth\u00adsoft", "emoji 🙂 ok",
    "ﬁ ligature", "Ⅻ roman", "مرحبا بالعالم", "Γειά σου Κόσμε", "ä ö ü ß ÅÆØ", "###hash##tags", "[CLS] [SEP] [UNK]",
    "", "   ", "a.b,c;d:e!f?g", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\x00nul\x07bell", "e\u0301 composed",
]
req = urllib.request.Request(
    f"{base}/invoke/{tenant}/embed-minilm",
    data=json.dumps({"tokenize": tricky}).encode(),
    headers=AUTH,
)
got = json.load(urllib.request.urlopen(req))["ids"]
bad = [(t, g, tok.encode(t).ids) for t, g in zip(tricky, got) if g != tok.encode(t).ids]
for t, g, want in bad:
    print("MISMATCH", repr(t), g, want)
assert not bad, f"{len(bad)} tokenizer mismatches"
print(f"tokenizer: {len(tricky)} strings, ids identical to HF tokenizers")
print("OK")
