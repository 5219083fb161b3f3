"""Unit tests of the SDK's pure-Python parts, on any CPython (no component needed):
``python -m unittest discover -s guest-sdk/python/tests``."""

import array
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from helixflow import _wit  # noqa: E402
from helixflow.event import Context, EventHandler, FunctionError, event_handler, run_handler  # noqa: E402
from helixflow.http import Request, Response, call_handler, http_handler  # noqa: E402
from helixflow.nn import Graph, NnError, Tensor, TensorType  # noqa: E402

CTX = Context("r1", "acme", "f", 3, 0, 128, None)


class HttpTest(unittest.TestCase):
    def test_request_parts(self):
        r = Request("GET", "/a/b?name=Ada&x=1", [("X-Thing", b"v")], b'{"k": 1}')
        self.assertEqual(r.path, "/a/b")
        self.assertEqual(r.query, "name=Ada&x=1")
        self.assertEqual(r.query_params(), {"name": "Ada", "x": "1"})
        self.assertEqual(r.header("x-thing"), "v")
        self.assertIsNone(r.header("missing"))
        self.assertEqual(r.json(), {"k": 1})
        self.assertIsNone(Request("GET", "/").query)

    def test_responses(self):
        t = Response.text(201, "hé")
        self.assertEqual((t.status, t.body), (201, "hé".encode()))
        self.assertIn(("content-type", b"text/plain; charset=utf-8"), t.headers)
        j = Response.json(200, {"a": [1]}).with_header("x-a", "b")
        self.assertEqual(json.loads(j.body), {"a": [1]})
        self.assertIn(("x-a", b"b"), j.headers)

    def test_handler_errors_become_500(self):
        def boom(req):
            raise ValueError("nope")

        r = call_handler(boom, Request("GET", "/"))
        self.assertEqual(r.status, 500)
        self.assertIn(b"ValueError: nope", r.body)
        self.assertEqual(call_handler(lambda req: "x", Request("GET", "/")).status, 500)
        self.assertEqual(http_handler(lambda req: Response()).__name__, "IncomingHandler")


class EventTest(unittest.TestCase):
    def test_results(self):
        self.assertEqual(run_handler(lambda e, c: e, b"raw", CTX), b"raw")
        self.assertEqual(run_handler(lambda e, c: "é", b"", CTX), "é".encode())
        self.assertEqual(json.loads(run_handler(lambda e, c: {"t": c.tenant}, b"", CTX)), {"t": "acme"})

    def test_typed_errors(self):
        def fail(e, c):
            raise FunctionError("ValidationError", "bad")

        with self.assertRaises(FunctionError) as e:
            run_handler(fail, b"", CTX)
        self.assertEqual((e.exception.error_type, e.exception.message), ("ValidationError", "bad"))
        with self.assertRaises(FunctionError) as e:
            run_handler(lambda e, c: 1 / 0, b"", CTX)
        self.assertEqual(e.exception.error_type, "ZeroDivisionError")

    def test_handler_classes(self):
        cls = event_handler(lambda e, c: e[::-1])
        self.assertTrue(issubclass(cls, EventHandler))
        self.assertEqual(cls().on_event(b"ab", CTX), b"ba")
        self.assertEqual(CTX.remaining_ms(), 0)

    def test_outside_a_component(self):
        self.assertFalse(_wit.AVAILABLE)
        with self.assertRaises(RuntimeError):
            Graph.load_by_name("x")


class TensorTest(unittest.TestCase):
    def test_round_trips(self):
        t = Tensor.from_f32([2, 2], [1.0, -2.5, 3.25, 0.0])
        self.assertEqual(t.ty, TensorType.FP32)
        self.assertEqual(len(t.data), 16)
        self.assertEqual(t.to_f32(), [1.0, -2.5, 3.25, 0.0])
        self.assertEqual(list(t.view()), [1.0, -2.5, 3.25, 0.0])
        self.assertEqual(Tensor.from_i64([3], [1, -2, 1 << 40]).to_i64(), [1, -2, 1 << 40])
        self.assertEqual(Tensor.from_i32([2], array.array("i", [7, 8])).to_i32(), [7, 8])
        self.assertEqual(Tensor.from_u8([3], b"\x01\x02\xff").to_u8(), [1, 2, 255])
        self.assertEqual(Tensor.from_f64([1], [0.1]).to_f64(), [0.1])
        self.assertEqual(Tensor.from_f16([2], [0.5, 2.0]).to_list(), [0.5, 2.0])
        self.assertEqual(Tensor.from_f32([2], memoryview(array.array("f", [1, 2]))).array().tolist(), [1.0, 2.0])
        bf16 = Tensor.from_bytes(TensorType.BF16, [1], b"\x80\x3f")  # 1.0
        self.assertEqual(bf16.to_list(), [1.0])

    def test_little_endian_bytes(self):
        self.assertEqual(Tensor.from_i32([1], [1]).data, b"\x01\x00\x00\x00")

    def test_errors(self):
        with self.assertRaises(NnError) as e:
            Tensor.from_f32([2, 2], [1.0])
        self.assertEqual(e.exception.code, "invalid-argument")
        with self.assertRaises(NnError):
            Tensor.from_i64([1], [1]).to_f32()


if __name__ == "__main__":
    unittest.main()
