"""Chat benchmark: time to first token and tokens/s per stream at 1, 4 and 16 concurrent
streams through /v1/chat/completions (the official `openai` client, streaming), with
continuous batching on and off, against Python onnxruntime running the same model and
greedy loop; plus the cost of keeping the KV cache in the guest (plain wasi:nn) versus
in the host (helixflow:llm), measured in one guest.

    python chat_bench.py URL TENANT LLM_DIR

The tenant serves MODEL (batched) and MODEL-solo (max_batch 1: one sequence per run)
through the `chat` function, and has the `llm-loop` guest deployed. Prints figures.
"""

import json
import os
import statistics
import sys
import threading
import time
import urllib.request

import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models"))
from smollm2_ref import Generator, chat_ids  # noqa: E402

URL, TENANT, LLM = sys.argv[1], sys.argv[2], sys.argv[3]
MODEL = os.environ.get("BENCH_MODEL", "smollm2-135m-instruct-int8")
ONNX = os.environ.get("BENCH_ONNX", "smollm2-135m-instruct-int8.onnx")
MAX_TOKENS = int(os.environ.get("BENCH_MAX_TOKENS", "64"))
LEVELS = [int(x) for x in os.environ.get("BENCH_CONCURRENCY", "1,4,16").split(",")]
TOKEN = os.environ["HELIXFLOW_TOKEN"]
client = openai.OpenAI(base_url=URL + "/v1", api_key=TOKEN, organization=TENANT, max_retries=0, timeout=600)
TOPICS = ["a lighthouse keeper", "a robot learning to paint", "the first city on Mars", "a dragon who hates gold",
          "a detective cat", "a library that never closes", "a time-travelling baker", "the last tree on Earth",
          "a shy volcano", "a submarine crew", "a chess tournament", "an old violin", "a desert caravan",
          "a clockmaker's apprentice", "a ghost in a train station", "a garden on the moon"]
PROMPTS = [[{"role": "user", "content": f"Write a long story about {t}."}] for t in TOPICS]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def one_stream(model, msgs, out, api=None):
    t0 = time.perf_counter()
    first = last = None
    n = 0
    usage = None
    for ch in (api or client).chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=MAX_TOKENS,
                                                      stream=True, stream_options={"include_usage": True}):
        if ch.usage is not None:
            usage = ch.usage
        if ch.choices and ch.choices[0].delta.content:
            now = time.perf_counter()
            if first is None:
                first = now
            last = now
            n += 1
    tokens = usage.completion_tokens if usage else n
    out.append({"ttft": first - t0, "tokens": tokens, "tps": (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0,
                "end": last - t0})


def run_level(model, c, api=None):
    out = []
    threads = [threading.Thread(target=one_stream, args=(model, PROMPTS[i % len(PROMPTS)], out, api)) for i in range(c)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return out, wall


def report(label, c, out, wall):
    ttft = [o["ttft"] * 1e3 for o in out]
    tps = [o["tps"] for o in out]
    total = sum(o["tokens"] for o in out)
    print(f"{label:<34} c={c:<3} TTFT p50 {pct(ttft, 50):7.1f} ms  p90 {pct(ttft, 90):7.1f} ms | per stream {statistics.mean(tps):6.1f} tok/s"
          f" (min {min(tps):5.1f}) | aggregate {total / wall:6.1f} tok/s ({total} tokens in {wall:.2f} s)", flush=True)
    RESULTS[(label, c)] = {"ttft": pct(ttft, 50), "tps": statistics.mean(tps), "agg": total / wall}


RESULTS = {}


def inference_stats():
    req = urllib.request.Request(URL + "/api/v1/admin/inference", headers={"Authorization": f"Bearer {TOKEN}"})
    return json.loads(urllib.request.urlopen(req).read())


def lm_stats(model):
    for s in inference_stats()["sessions"]:
        if s["model"].startswith(f"{TENANT}/{model}@") and s.get("lm"):
            return s["lm"]
    return {}


print(f"model {MODEL}, greedy, max_tokens {MAX_TOKENS}, prompts ~40 tokens; {os.cpu_count()} CPUs", flush=True)

# 1. The guest boundary: the same greedy loop with the cache in the guest vs the host.
ref = Generator(os.path.join(LLM, ONNX), os.path.join(LLM, "smollm2-tokenizer.json"))
ids = chat_ids(ref.tok, [{"role": "user", "content": "Count from 1 to 1000, one number per line."}])
for n in (64, 256):
    res = {}
    for mode in ("sequence", "wasi-nn", "sequence", "wasi-nn"):
        body = json.dumps({"model": MODEL, "prompt": ids, "max_tokens": n, "mode": mode}).encode()
        req = urllib.request.Request(URL + f"/invoke/{TENANT}/llm-loop", data=body, headers={"Authorization": f"Bearer {TOKEN}"})
        r = json.loads(urllib.request.urlopen(req).read())
        res[mode] = r
    assert res["sequence"]["tokens"] == res["wasi-nn"]["tokens"], "both paths decode the same tokens"
    k = len(res["sequence"]["tokens"])
    seq_ms = res["sequence"]["decode_ms"] / max(1, k - 1)
    nn_ms = res["wasi-nn"]["decode_ms"] / max(1, k - 1)
    print(f"KV cache across the guest boundary, {k} tokens after a {len(ids)}-token prompt: helixflow:llm {seq_ms:.2f} ms/token, "
          f"plain wasi:nn (cache in the guest) {nn_ms:.2f} ms/token ({nn_ms / seq_ms:.2f}x); same tokens", flush=True)

# 2. Streams through the API, batching on and off.
HF = "HelixFlow, continuous batching"
for model, label in ((MODEL, HF), (MODEL + "-solo", "HelixFlow, one sequence per run")):
    run_level(model, 1)  # warm: load the session, compile the function
    for c in LEVELS:
        before = lm_stats(model)
        out, wall = run_level(model, c)
        report(label, c, out, wall)
        after = lm_stats(model)
        if after and before:
            runs = after["runs"] - before["runs"]
            rows = after["decode_rows"] - before["decode_rows"]
            print(f"{'':<34}       decode rows per run {rows / max(1, runs):.2f} (largest batch so far {after['max_rows']})", flush=True)

# 3. Python onnxruntime, the same model and loop, c threads on one session.
def py_stream(msgs, out):
    t = {}
    prompt = chat_ids(ref.tok, msgs)
    t0 = time.perf_counter()
    toks, _ = ref.greedy(prompt, MAX_TOKENS, t)
    k = len(toks)
    out.append({"ttft": t["ttft"], "tokens": k, "tps": (k - 1) / (t["total"] - t["ttft"]) if k > 1 else 0.0, "end": time.perf_counter() - t0})


py_stream(PROMPTS[0], [])
for c in LEVELS:
    out = []
    threads = [threading.Thread(target=py_stream, args=(PROMPTS[i % len(PROMPTS)], out)) for i in range(c)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report("Python onnxruntime (same loop)", c, out, time.perf_counter() - t0)

# 4. llama.cpp (llama-cpp-python's OpenAI server, same GGUF the q4 model is built from),
# head to head: HelixFlow and llama.cpp alternate at each level, ROUNDS times, so a
# machine that slows down or speeds up mid-run (a shared VM does) hits both alike; the
# ratios are per round, their median printed.
PEER_URL = os.environ.get("BENCH_PEER_URL")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
if PEER_URL:
    PEER = "llama.cpp (llama-cpp-python server)"
    peer = openai.OpenAI(base_url=PEER_URL + "/v1", api_key="none", max_retries=0, timeout=600)
    run_level("smollm2", 1, peer)  # warm
    print()
    print(f"== head to head: HelixFlow ({MODEL}, node defaults) vs {PEER}, alternating, {ROUNDS} rounds ==", flush=True)
    summary = []
    for c in LEVELS:
        ratios = []
        for r in range(ROUNDS):
            for label, model, api in ((HF, MODEL, None), (PEER, "smollm2", peer)):
                out, wall = run_level(model, c, api)
                report(f"{label[:25]} #{r + 1}", c, out, wall)
                RESULTS[(label, c)] = RESULTS.pop((f"{label[:25]} #{r + 1}", c))
            h, p = RESULTS[(HF, c)], RESULTS[(PEER, c)]
            ratios.append((h["tps"] / p["tps"], h["agg"] / p["agg"], h["ttft"], p["ttft"]))
        med = lambda k: statistics.median(x[k] for x in ratios)  # noqa: E731
        summary.append(f"c={c:<3} per stream {med(0):.2f}x | aggregate {med(1):.2f}x | TTFT p50 {med(2):6.1f} vs {med(3):6.1f} ms "
                       f"(per round: {', '.join(f'{x[0]:.2f}x/{x[1]:.2f}x' for x in ratios)})")
    print()
    print(f"== HelixFlow / llama.cpp, median of {ROUNDS} alternating rounds (tok/s per stream | aggregate tok/s | TTFT p50) ==")
    for line in summary:
        print(line, flush=True)
