"""``{{name}}``: an event function for HelixFlow (Lambda-style: bytes in, bytes out), in Python.

Invoke it with ``helixflow invoke -t TENANT -f {{name}} -d '{"name":"Ada"}'``: it
answers ``{"message":"Hello, Ada!","request_id":...}``. An event that is not JSON is a
handled error (``InvalidEvent``). What it prints goes to the function's logs.
"""

import json
import sys

from helixflow import event
from helixflow.event import FunctionError


def reply(ev: dict) -> dict:
    """The answer to one event: edit it and ``helixflow dev`` rebuilds and redeploys."""
    name = ev.get("name", "world") if isinstance(ev, dict) else "world"
    return {"message": f"Hello, {name}!"}


class EventHandler(event.EventHandler):
    def on_event(self, raw: bytes, ctx: event.Context) -> dict:
        try:
            ev = json.loads(raw)
        except ValueError as e:
            raise FunctionError("InvalidEvent", f"the event is not JSON: {e}")
        print(f"{ctx.function_name} v{ctx.function_version}: request {ctx.request_id}", file=sys.stderr)
        out = reply(ev)
        out["request_id"] = ctx.request_id
        return out
