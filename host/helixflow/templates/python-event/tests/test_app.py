"""Unit tests of the pure-Python logic, on the host: ``python -m unittest``."""

import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), "{{pysdk}}"]

import app  # noqa: E402
from helixflow.event import Context, FunctionError, run_handler  # noqa: E402

CTX = Context("req-1", "t", "{{name}}", 1, 0, 128)


class AppTest(unittest.TestCase):
    def test_replies_by_name(self):
        out = run_handler(app.EventHandler().on_event, b'{"name": "Ada"}', CTX)
        self.assertEqual(json.loads(out), {"message": "Hello, Ada!", "request_id": "req-1"})

    def test_not_json_is_a_typed_error(self):
        with self.assertRaises(FunctionError) as e:
            run_handler(app.EventHandler().on_event, b"not json", CTX)
        self.assertEqual(e.exception.error_type, "InvalidEvent")


if __name__ == "__main__":
    unittest.main()
