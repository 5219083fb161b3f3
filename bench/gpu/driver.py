"""GPU check driver (stdlib only: the device has no network and maybe no openai package).
usage: driver.py CUDA_URL CPU_URL"""
import concurrent.futures
import json
import os
import sys
import time
import urllib.request

import numpy as np

cuda, cpu = sys.argv[1], sys.argv[2]


def embed(base, texts):
    req = urllib.request.Request(
        f"{base}/v1/embeddings",
        data=json.dumps({"model": "minilm", "input": texts, "encoding_format": "float"}).encode(),
        headers={"OpenAI-Organization": "gpu", "content-type": "application/json", "Authorization": "Bearer " + os.environ["HELIXFLOW_ADMIN_KEY"]},
    )
    r = json.load(urllib.request.urlopen(req, timeout=300))
    return np.array([d["embedding"] for d in r["data"]], dtype=np.float32)


words = "edge inference runs tenant functions in sandboxes next to the model on the gpu".split()
# 32 texts of ~126 word pieces each (+ [CLS]/[SEP] = seq 128).
texts = [" ".join(words[(i + j) % len(words)] for j in range(126)) for i in range(32)]
a, b = embed(cuda, texts), embed(cpu, texts)
rel = float(np.abs(a - b).max() / np.abs(b).max())
print(f"CUDA vs CPU, 32 x seq 128: max |diff| / max |cpu| = {rel:.2e} (limit 1e-3): {'OK' if rel <= 1e-3 else 'FAIL'}")
for name, base in (("cuda", cuda), ("cpu", cpu)):
    embed(base, texts)
    n, conc = (64, 8) if name == "cuda" else (8, 2)
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(conc) as ex:
        list(ex.map(lambda _: embed(base, texts), range(n)))
    dt = time.perf_counter() - t
    print(f"{name}: {n} requests of batch 32 x seq 128 in {dt:.2f} s: {n * 32 / dt:.0f} sequences/s")
sys.exit(0 if rel <= 1e-3 else 1)
