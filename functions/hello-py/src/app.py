"""``hello-py``: the Python example function, with both triggers.

HTTP: ``GET /{tenant}/hello-py/anything?name=Ada`` -> ``Hello, Ada! (GET /anything)``
(the ``GREETING`` environment variable, when the function's config sets one, replaces
"Hello").

Event: ``{"name": "Ada"}`` -> ``{"greeting": "Hello, Ada!", "request_id": ..., ...}``;
the event ``fail`` returns a handled error (``RequestedFailure``).
"""

import json
import os
import sys

from helixflow import event, http
from helixflow.event import FunctionError


def greeting() -> str:
    return os.environ.get("GREETING", "Hello")


class IncomingHandler(http.IncomingHandler):
    def on_request(self, req: http.Request) -> http.Response:
        name = req.query_params().get("name") or "world"
        return http.Response.text(200, f"{greeting()}, {name}! ({req.method} {req.path})\n").with_header(
            "x-helixflow-example", "hello-py"
        )


class EventHandler(event.EventHandler):
    def on_event(self, raw: bytes, ctx: event.Context) -> dict:
        if raw.strip() == b"fail":
            raise FunctionError("RequestedFailure", "the event asked to fail")
        try:
            req = json.loads(raw or b"{}")
        except ValueError as e:
            raise FunctionError("InvalidEvent", f"event is not JSON: {e}")
        name = req.get("name", "world") if isinstance(req, dict) else "world"
        print(f"hello-py: event for {name}, request {ctx.request_id}", file=sys.stderr)
        return {
            "greeting": f"{greeting()}, {name}!",
            "request_id": ctx.request_id,
            "function": ctx.function_name,
            "version": ctx.function_version,
            "memory_limit_mb": ctx.memory_limit_mb,
        }
