"""classify-image over HTTP against a Python reference (PIL preprocessing + onnxruntime on
the same ONNX file), on real photos from PyPI wheels.

Usage: classify_images.py BASE_URL TENANT MODELS_DIR LABELS
"""
import json
import os
import sys
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
from PIL import Image

base, tenant, models, labels_path = sys.argv[1:5]
labels = open(labels_path).read().splitlines()
sess = ort.InferenceSession(f"{models}/efficientnet-lite0.onnx")


def reference(path):
    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BILINEAR)
    w, h = im.size
    l, t = (w - 224) // 2, (h - 224) // 2
    x = (np.asarray(im.crop((l, t, l + 224, t + 224)), np.float32) - 127.0) / 128.0
    y = sess.run(None, {"images": x.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
    p = np.exp(y - y.max())
    p /= p.sum()
    return [(labels[i], float(p[i])) for i in np.argsort(-p)[:5]]


def classify(data):
    req = urllib.request.Request(f"{base}/{tenant}/classify-image/", data=data, method="POST", headers={"Authorization": f"Bearer {os.environ['HELIXFLOW_TOKEN']}"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


expect = {"coffee.png": {"espresso"}, "chelsea.png": {"tiger cat", "Egyptian cat", "tabby"}, "grace_hopper.jpg": {"military uniform", "academic gown", "mortarboard"}}
for name, plausible in expect.items():
    status, got = classify(open(f"{models}/{name}", "rb").read())
    assert status == 200, (name, status, got)
    top = [(t["label"], t["probability"]) for t in got["top5"]]
    ref = reference(f"{models}/{name}")
    print(f"{name}: helixflow {[(l, round(p, 3)) for l, p in top[:3]]} | reference {[(l, round(p, 3)) for l, p in ref[:3]]}")
    assert top[0][0] in plausible, (name, top)
    assert top[0][0] == ref[0][0], (name, top, ref)
    assert len({l for l, _ in top} & {l for l, _ in ref}) >= 4, (name, top, ref)
    assert abs(top[0][1] - ref[0][1]) < 0.05, (name, top[0], ref[0])
    assert abs(sum(p for _, p in top) - sum(p for _, p in ref)) < 0.05
status, got = classify(open(f"{models}/coffee.png", "rb").read())
assert got["top5"][0]["probability"] > 0.9, got
for what, data, code in [("not an image", b"hello, I am text", 400), ("truncated PNG", open(f"{models}/coffee.png", "rb").read()[:2000], 400), ("empty body", b"", 400)]:
    status, got = classify(data)
    print(f"{what}: {status} {got.get('error', {}).get('code')}: {got.get('error', {}).get('message')}")
    assert status == code and got["error"]["code"] == "invalid_image", (what, status, got)
print("OK")
