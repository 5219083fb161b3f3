"""The official `openai` package against HelixFlow's /v1/chat/completions (SmolLM2 through
the `chat` function and helixflow:llm sequences), checked against Python onnxruntime
running the same ONNX models with the same greedy loop (tests/models/smollm2_ref.py).

    python openai_chat.py URL TENANT LLM_DIR

HELIXFLOW_TOKEN: a key that may invoke in TENANT. The tenant serves
`smollm2-135m-instruct` (fp32), `smollm2-135m-instruct-int8` and `-q4`.
Prints what it checks; exits non-zero on the first mismatch.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from smollm2_ref import Generator, chat_ids  # noqa: E402

URL, TENANT, LLM = sys.argv[1], sys.argv[2], sys.argv[3]
TOKEN = os.environ["HELIXFLOW_TOKEN"]
client = openai.OpenAI(base_url=URL + "/v1", api_key=TOKEN, organization=TENANT, max_retries=0, timeout=300)
TOK = os.path.join(LLM, "smollm2-tokenizer.json")
FP32, INT8, Q4 = "smollm2-135m-instruct", "smollm2-135m-instruct-int8", "smollm2-135m-instruct-q4"
refs = {
    INT8: Generator(os.path.join(LLM, "smollm2-135m-instruct-int8.onnx"), TOK),
    FP32: Generator(os.path.join(LLM, "smollm2-135m-instruct.onnx"), TOK),
    Q4: Generator(os.path.join(LLM, "smollm2-135m-instruct-q4.onnx"), TOK),
}


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


# GPT-2 byte-level mapping, to turn reference token strings into bytes.
def _byte_decoder():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


BYTE_OF = _byte_decoder()


def token_bytes(tok, i):
    return [BYTE_OF[c] for c in tok.id_to_token(i)]


# 1. Greedy decoding equals the reference, token for token (logprobs carry each token's bytes).
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Name three primary colors."}],
    [{"role": "system", "content": "You answer in one short sentence."}, {"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "Count from 1 to 12: 1, 2, 3,"}],
]
N = 40
# fp32 and q4 have a prefix cache (int8 does not: it quantises activations per tensor), so
# their second prompt starts from the first one's system prompt: still token for token.
for model, prompts in ((INT8, PROMPTS), (FP32, PROMPTS[:2]), (Q4, PROMPTS[:3])):
    ref = refs[model]
    for msgs in prompts:
        ids = chat_ids(ref.tok, msgs)
        want_ids, want_text = ref.greedy(ids, N)
        r = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=N, logprobs=True)
        c = r.choices[0]
        got_bytes = [t.bytes for t in c.logprobs.content]
        want_bytes = [token_bytes(ref.tok, i) for i in want_ids]
        check(r.usage.prompt_tokens == len(ids), f"{model}: prompt_tokens {r.usage.prompt_tokens} == reference {len(ids)} for {msgs[-1]['content']!r}")
        check(got_bytes == want_bytes, f"{model}: greedy tokens equal the onnxruntime reference ({len(want_ids)} tokens) for {msgs[-1]['content']!r}")
        check(c.message.content == want_text, f"{model}: text {c.message.content!r} == reference")
        check(r.usage.completion_tokens == len(want_ids), f"{model}: completion_tokens {r.usage.completion_tokens}")
        want_finish = "length" if len(want_ids) == N else "stop"
        check(c.finish_reason == want_finish, f"{model}: finish_reason {c.finish_reason} == {want_finish}")
        check(c.message.role == "assistant" and r.object == "chat.completion" and r.model == model, "response shape")
        check(all(lp.logprob <= 0 for lp in c.logprobs.content), "logprobs are log-probabilities")

# 1b. A conversation's next turn starts from the cached first turn and still equals the reference.
for model in (FP32, Q4):
    ref = refs[model]
    _, first_answer = ref.greedy(chat_ids(ref.tok, PROMPTS[0]), N)
    msgs = PROMPTS[0] + [{"role": "assistant", "content": first_answer}, {"role": "user", "content": "And the capital of Italy?"}]
    want_ids, want_text = ref.greedy(chat_ids(ref.tok, msgs), N)
    r = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=N, logprobs=True)
    got_bytes = [t.bytes for t in r.choices[0].logprobs.content]
    check(got_bytes == [token_bytes(ref.tok, i) for i in want_ids], f"{model}: second turn {r.choices[0].message.content!r} == reference {want_text!r}")

# 1c. A long shared system prompt (past the 128-token prompt chunk): the second prompt reuses
# it and runs the rest of its chunk; still token for token.
LONG_SYSTEM = "You are a careful assistant who answers briefly and never makes things up. " * 12
for model in (FP32, Q4):
    ref = refs[model]
    for q in ("Name three primary colors.", "What is the capital of France?"):
        msgs = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": q}]
        ids = chat_ids(ref.tok, msgs)
        want_ids, want_text = ref.greedy(ids, 24)
        r = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=24, logprobs=True)
        got_bytes = [t.bytes for t in r.choices[0].logprobs.content]
        check(len(ids) > 150 and got_bytes == [token_bytes(ref.tok, i) for i in want_ids],
              f"{model}: {len(ids)}-token prompt with a long shared system prompt: {r.choices[0].message.content!r} == reference {want_text!r}")

# 2. Streaming: same tokens, chunk by chunk, usage in the final chunk, first token early.
msgs = PROMPTS[1]
want_ids, want_text = refs[INT8].greedy(chat_ids(refs[INT8].tok, msgs), 48)
t0 = time.perf_counter()
stream = client.chat.completions.create(
    model=INT8, messages=msgs, temperature=0, max_tokens=48, stream=True, stream_options={"include_usage": True}
)
chunks, first_content_at, text, finish, usage, roles = [], None, "", None, None, []
for ch in stream:
    chunks.append(ch)
    if ch.usage is not None:
        usage = ch.usage
    for choice in ch.choices:
        if choice.delta.role:
            roles.append(choice.delta.role)
        if choice.delta.content:
            if first_content_at is None:
                first_content_at = time.perf_counter() - t0
            text += choice.delta.content
        if choice.finish_reason:
            finish = choice.finish_reason
total = time.perf_counter() - t0
check(text == want_text, f"streamed text equals the reference: {text!r}")
check(roles == ["assistant"], "one role chunk")
check(finish == ("length" if len(want_ids) == 48 else "stop"), f"finish_reason {finish}")
check(usage is not None and usage.completion_tokens == len(want_ids) and usage.prompt_tokens > 0, f"usage in the final chunk: {usage}")
content_chunks = sum(1 for ch in chunks for c in ch.choices if c.delta.content)
check(content_chunks >= len(want_ids) - 2, f"one chunk per token ({content_chunks} content chunks for {len(want_ids)} tokens)")
check(first_content_at is not None and first_content_at < total * 0.5, f"first token after {first_content_at:.3f}s of {total:.3f}s (streamed, not buffered)")
check(chunks[0].object == "chat.completion.chunk" and all(ch.id == chunks[0].id for ch in chunks), "chunk ids and object")
# Without include_usage there is no usage chunk.
s2 = list(client.chat.completions.create(model=INT8, messages=msgs, temperature=0, max_tokens=4, stream=True))
check(all(ch.usage is None for ch in s2) and s2[-1].choices[0].finish_reason == "length", "no usage chunk unless asked")

# 3. Sampling: a seed makes it reproducible; temperature and top_p are honoured.
q = [{"role": "user", "content": "Tell me a short story about a robot."}]
a = client.chat.completions.create(model=INT8, messages=q, temperature=1.0, top_p=0.95, seed=7, max_tokens=24)
b = client.chat.completions.create(model=INT8, messages=q, temperature=1.0, top_p=0.95, seed=7, max_tokens=24)
check(a.choices[0].message.content == b.choices[0].message.content, "same seed, same completion")
others = {client.chat.completions.create(model=INT8, messages=q, temperature=1.2, seed=s, max_tokens=24).choices[0].message.content for s in (1, 2, 3)}
check(len(others) >= 2, f"different seeds sample different completions ({len(others)} distinct of 3)")
g = client.chat.completions.create(model=INT8, messages=q, temperature=0.0, top_p=0.1, max_tokens=24)
g_ids, g_text = refs[INT8].greedy(chat_ids(refs[INT8].tok, q), 24)
check(g.choices[0].message.content == g_text, "temperature 0 is greedy whatever top_p says")

# 4. Stop sequences and max_tokens.
msgs = PROMPTS[0]
_, full = refs[INT8].greedy(chat_ids(refs[INT8].tok, msgs), N)
r = client.chat.completions.create(model=INT8, messages=msgs, temperature=0, max_tokens=N, stop=["Paris"])
check("Paris" in full, f"the reference answer names Paris: {full!r}")
check(r.choices[0].message.content == full[: full.index("Paris")] and r.choices[0].finish_reason == "stop", f"stop sequence cuts before it: {r.choices[0].message.content!r}")
rs = "".join(
    c.choices[0].delta.content or ""
    for c in client.chat.completions.create(model=INT8, messages=msgs, temperature=0, max_tokens=N, stop=["Paris"], stream=True)
    if c.choices
)
check(rs == full[: full.index("Paris")], f"streamed stop sequence: {rs!r}")
r = client.chat.completions.create(model=INT8, messages=msgs, temperature=0, max_tokens=3)
check(r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length", "max_tokens=3 -> 3 tokens, finish_reason length")

# 5. Bad input: OpenAI-shaped 4xx errors.
def expect_error(exc_type, status, code, **kw):
    try:
        client.chat.completions.create(**kw)
    except exc_type as e:
        body = e.body if isinstance(e.body, dict) else {}
        got = body.get("code") or (body.get("error") or {}).get("code")
        check(e.status_code == status and got == code, f"{status} {code}: {str(e)[:140]}")
        return
    check(False, f"expected {status} {code}")


expect_error(openai.NotFoundError, 404, "model_not_found", model="no-such-model", messages=[{"role": "user", "content": "hi"}])
expect_error(openai.BadRequestError, 400, "empty_messages", model=INT8, messages=[])
expect_error(openai.BadRequestError, 400, "unsupported_role", model=INT8, messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}])
expect_error(openai.BadRequestError, 400, "context_length_exceeded", model=INT8, messages=[{"role": "user", "content": "hi"}], max_tokens=9000)
expect_error(openai.BadRequestError, 400, "context_length_exceeded", model=INT8, messages=[{"role": "user", "content": "word " * 9000}])
expect_error(openai.BadRequestError, 400, "invalid_value", model=INT8, messages=[{"role": "user", "content": "hi"}], temperature=3)
expect_error(openai.BadRequestError, 400, "unsupported_value", model=INT8, messages=[{"role": "user", "content": "hi"}], n=2)
expect_error(openai.BadRequestError, 400, "wrong_model_kind", model="all-minilm-l6-v2", messages=[{"role": "user", "content": "hi"}])
req = urllib.request.Request(
    URL + "/v1/chat/completions",
    data=b'{"model": "smollm2-135m-instruct-int8", "messages": [',
    headers={"Authorization": f"Bearer {TOKEN}", "OpenAI-Organization": TENANT, "Content-Type": "application/json"},
)
try:
    urllib.request.urlopen(req)
    check(False, "invalid JSON must fail")
except urllib.error.HTTPError as e:
    body = json.loads(e.read())
    check(e.code == 400 and body["error"]["code"] == "invalid_json" and body["error"]["type"] == "invalid_request_error", f"invalid JSON -> 400 {body['error']['code']}")
models = {m.id for m in client.models.list()}
check({FP32, INT8, Q4} <= models, f"/v1/models lists the chat models: {sorted(models)}")
print("all chat checks passed")
print("OK")
