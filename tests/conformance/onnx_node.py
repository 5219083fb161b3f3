"""ONNX backend node tests (onnx==1.22.0 ships 1765 on disk) through HelixFlow's whole
wasi:nn path, next to Python onnxruntime on the same cases.

For each case: the model and its inputs go to the `nn-probe` guest (guest-supplied
model bytes: the node runs with allow_guest_load), which loads the model through
wasi:nn, computes and returns the outputs; they are compared with the expected outputs
at rtol 1e-3 / atol 1e-5 (the ONNX backend test tolerances). The same case also runs in
Python onnxruntime. Every case where the two differ is classified; a difference with no
known reason is "unexplained".

Usage: onnx_node.py BASE_URL TENANT REPORT.json [FILTER]
"""
import base64
import concurrent.futures
import glob
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np
import onnx
import onnxruntime as ort

ort.set_default_logger_severity(3)
from onnx import numpy_helper

base, tenant, report_path = sys.argv[1], sys.argv[2], sys.argv[3]
flt = sys.argv[4] if len(sys.argv) > 4 else ""
root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
cases = sorted(d for d in glob.glob(os.path.join(root, "test_*")) if flt in os.path.basename(d))

P = onnx.TensorProto
WIT = {
    P.FLOAT16: "FP16", P.FLOAT: "FP32", P.DOUBLE: "FP64", P.BFLOAT16: "BF16",
    P.UINT8: "U8", P.INT32: "I32", P.INT64: "I64", P.BOOL: "U8",
}
NP = {"FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "U8": np.uint8, "I32": np.int32, "I64": np.int64}


def pbs(data_set, kind):
    """`input_N.pb` / `output_N.pb` files of a test data set, in N order."""
    return sorted(glob.glob(os.path.join(data_set, f"{kind}_*.pb")), key=lambda p: int(p.rsplit("_", 1)[1][:-3]))


def load_pb(path, type_proto=None):
    """A TensorProto, or None when the graph declares a sequence/optional/map there."""
    if type_proto is not None and type_proto.WhichOneof("value") != "tensor_type":
        return None
    t = onnx.TensorProto()
    t.ParseFromString(open(path, "rb").read())
    return t


def load_value(path, type_proto):
    """Any ONNX value as numpy / list / None (for Python onnxruntime)."""
    kind = type_proto.WhichOneof("value") if type_proto is not None else "tensor_type"
    data = open(path, "rb").read()
    if kind == "sequence_type":
        sp = onnx.SequenceProto()
        sp.ParseFromString(data)
        return numpy_helper.to_list(sp)
    if kind == "optional_type":
        op = onnx.OptionalProto()
        op.ParseFromString(data)
        return numpy_helper.to_optional(op)
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)


def raw_bytes(t):
    """Row-major little-endian bytes of a TensorProto as wasi:nn carries it."""
    if t.data_type == P.BFLOAT16:
        if t.raw_data:
            return t.raw_data
        return np.array(t.int32_data, dtype=np.uint16).tobytes()
    arr = numpy_helper.to_array(t)
    if t.data_type == P.BOOL:
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def close(expected_t, got_bytes, got_type, got_dims):
    if list(got_dims) != list(expected_t.dims):
        return f"shape {got_dims} != {list(expected_t.dims)}"
    if WIT.get(expected_t.data_type) != got_type:
        return f"type {got_type} != {WIT.get(expected_t.data_type)}"
    if expected_t.data_type == P.BFLOAT16:
        exp = np.frombuffer(raw_bytes(expected_t), dtype="<u2").astype(np.uint32) << 16
        got = np.frombuffer(got_bytes, dtype="<u2").astype(np.uint32) << 16
        exp, got = exp.view(np.float32), got.view(np.float32)
    else:
        exp = numpy_helper.to_array(expected_t)
        if expected_t.data_type == P.BOOL:
            exp = exp.astype(np.uint8)
        got = np.frombuffer(got_bytes, dtype=np.dtype(NP[got_type]).newbyteorder("<")).reshape(exp.shape)
    try:
        if exp.dtype.kind in "fc":
            np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64), rtol=1e-3, atol=1e-5, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, exp)
    except AssertionError as e:
        return "values differ: " + str(e).strip().splitlines()[-1][:120]
    return None


def ort_close(exp, got):
    if isinstance(exp, list) or isinstance(got, list) or exp is None or got is None:
        if isinstance(exp, list) and isinstance(got, list) and len(exp) == len(got):
            for a, b in zip(exp, got):
                why = ort_close(np.asarray(a), np.asarray(b))
                if why:
                    return why
            return None
        return None if (exp is None and got is None) else "sequence/optional differs"
    got = np.asarray(got)
    if got.shape != exp.shape:
        return f"shape {got.shape} != {exp.shape}"
    try:
        if exp.dtype.kind in "fc":
            np.testing.assert_allclose(got.astype(np.float64), exp.astype(np.float64), rtol=1e-3, atol=1e-5, equal_nan=True)
        elif exp.dtype == object:
            if not np.array_equal(got.astype(str), exp.astype(str)):
                return "values differ"
        else:
            np.testing.assert_array_equal(got, exp)
    except AssertionError as e:
        return "values differ: " + str(e).strip().splitlines()[-1][:120]
    return None


def run_case(d):
    name = os.path.basename(d)
    model_bytes = open(os.path.join(d, "model.onnx"), "rb").read()
    model = onnx.load_from_string(model_bytes)
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = [i.name for i in model.graph.input if i.name not in inits]
    in_types = [i.type for i in model.graph.input if i.name not in inits]
    out_names = [o.name for o in model.graph.output]
    out_types = [o.type for o in model.graph.output]

    def ty(types, k):
        return types[k] if k < len(types) else None
    sets = sorted(glob.glob(os.path.join(d, "test_data_set_*")))
    res = {"case": name, "ort": True, "ort_why": None, "hf": True, "hf_why": None, "kind": None}
    # --- Python onnxruntime ---
    try:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
        sess_inputs = [i.name for i in s.get_inputs()]
        for ds in sets:
            ins = {}
            for k, p in enumerate(pbs(ds, "input")):
                ins[graph_inputs[k]] = load_value(p, ty(in_types, k))
            outs = s.run(None, {k: v for k, v in ins.items() if k in sess_inputs})
            for k, p in enumerate(pbs(ds, "output")):
                why = ort_close(load_value(p, ty(out_types, k)), outs[k])
                if why:
                    raise RuntimeError(why)
    except Exception as e:
        res["ort"], res["ort_why"] = False, str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    # --- HelixFlow: wasi:nn through the guest ---
    try:
        for ds in sets:
            inputs, types_ok = [], True
            for k, p in enumerate(pbs(ds, "input")):
                t = load_pb(p, ty(in_types, k))
                if t is None:
                    res["kind"] = "non-tensor input (sequence/optional/map): not expressible in wasi:nn"
                    raise RuntimeError(res["kind"])
                if t.data_type not in WIT:
                    res["kind"] = f"input type {P.DataType.Name(t.data_type)} is not a wasi:nn tensor type"
                    raise RuntimeError(res["kind"])
                inputs.append({"name": graph_inputs[k], "type": WIT[t.data_type], "dims": list(t.dims), "data_b64": base64.b64encode(raw_bytes(t)).decode()})
            expected = []
            for k, p in enumerate(pbs(ds, "output")):
                t = load_pb(p, ty(out_types, k))
                if t is None:
                    res["kind"] = "non-tensor output (sequence/optional/map): not expressible in wasi:nn"
                    raise RuntimeError(res["kind"])
                if t.data_type not in WIT:
                    res["kind"] = f"output type {P.DataType.Name(t.data_type)} is not a wasi:nn tensor type"
                    raise RuntimeError(res["kind"])
                expected.append((out_names[k], t))
            body = json.dumps({"model_b64": base64.b64encode(model_bytes).decode(), "inputs": inputs}).encode()
            req = urllib.request.Request(f"{base}/invoke/{tenant}/nn-probe", data=body, headers={"Authorization": f"Bearer {os.environ['HELIXFLOW_TOKEN']}"})
            try:
                r = json.load(urllib.request.urlopen(req, timeout=120))
            except urllib.error.HTTPError as e:
                err = json.loads(e.read() or b"{}").get("error", {})
                raise RuntimeError(f"{err.get('error_type') or err.get('code')}: {err.get('message', '')[:200]}")
            got = {o["name"]: o for o in r["outputs"]}
            for nm, t in expected:
                if t.data_type not in WIT:
                    res["kind"] = f"output type {P.DataType.Name(t.data_type)} is not a wasi:nn tensor type"
                    raise RuntimeError(res["kind"])
                o = got.get(nm)
                if o is None:
                    raise RuntimeError(f"missing output {nm}")
                why = close(t, base64.b64decode(o["data_b64"]), o["type"], o["dims"])
                if why:
                    raise RuntimeError(why)
    except Exception as e:
        res["hf"], res["hf_why"] = False, str(e).splitlines()[0][:240] if str(e) else type(e).__name__
    return res


with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
    results = list(ex.map(run_case, cases))

ort_pass = {r["case"] for r in results if r["ort"]}
hf_pass = {r["case"] for r in results if r["hf"]}
only_ort = [r for r in results if r["ort"] and not r["hf"]]
only_hf = [r for r in results if r["hf"] and not r["ort"]]
for r in only_hf:
    why = r["ort_why"] or ""
    if "Numpy_type 256" in why or "bfloat16" in why:
        r["kind"] = "Python onnxruntime's numpy binding cannot pass bfloat16; wasi:nn carries BF16 bytes"
    elif "Numpy_type" in why or "No corresponding Numpy type" in why:
        r["kind"] = "Python onnxruntime's numpy binding cannot pass this type"
unexplained = [r for r in only_ort + only_hf if not r["kind"]]
summary = {
    "cases": len(results),
    "python_onnxruntime_pass": len(ort_pass),
    "helixflow_wasi_nn_pass": len(hf_pass),
    "both_pass": len(ort_pass & hf_pass),
    "only_onnxruntime": len(only_ort),
    "only_helixflow": len(only_hf),
    "unexplained": len(unexplained),
}
by_kind = {}
for r in only_ort + only_hf:
    by_kind[r["kind"] or "UNEXPLAINED"] = by_kind.get(r["kind"] or "UNEXPLAINED", 0) + 1
summary["differences_by_reason"] = by_kind
json.dump({"summary": summary, "results": results}, open(report_path, "w"), indent=1)
print(json.dumps(summary, indent=1))
for r in unexplained:
    print("UNEXPLAINED", r["case"], "| ort:", r["ort_why"], "| helixflow:", r["hf_why"])
