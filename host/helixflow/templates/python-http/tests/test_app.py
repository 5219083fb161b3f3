"""Unit tests of the pure-Python logic, on the host: ``python -m unittest``."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), "{{pysdk}}"]

import app  # noqa: E402
from helixflow.http import Request, call_handler  # noqa: E402


class AppTest(unittest.TestCase):
    def test_greets_by_name(self):
        resp = call_handler(app.handle, Request("GET", "/x?name=Ada"))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, b"Hello, Ada!\n")

    def test_defaults_to_world(self):
        self.assertEqual(app.name_of(Request("GET", "/")), "world")


if __name__ == "__main__":
    unittest.main()
