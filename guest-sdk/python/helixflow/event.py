"""Lambda-style event handlers: bytes in + invocation context -> bytes out or a typed error.

In the app module (the one ``componentize-py`` componentizes)::

    from helixflow.event import EventHandler, FunctionError

    class EventHandler(EventHandler):
        def on_event(self, event: bytes, ctx):
            if not event:
                raise FunctionError("ValidationError", "empty event")
            return event

or, with a plain function, ``EventHandler = event_handler(handle)``.
``componentize-py`` looks the export up by its name: the app module must have a
class called ``EventHandler``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import _wit


class FunctionError(Exception):
    """A handled error: the function ran and decided to fail.

    The caller gets it as a function error (``errorType`` / ``errorMessage``), not as
    a host failure.
    """

    def __init__(self, error_type: str, message: str):
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass
class Context:
    """What the host tells a function about the invocation it runs in."""

    request_id: str
    tenant: str
    function_name: str
    function_version: int
    deadline_unix_ms: int
    memory_limit_mb: int
    client_context: Optional[str] = None

    @classmethod
    def from_wit(cls, c: Any) -> "Context":
        return cls(
            request_id=c.request_id,
            tenant=c.tenant,
            function_name=c.function_name,
            function_version=c.function_version,
            deadline_unix_ms=c.deadline_unix_ms,
            memory_limit_mb=c.memory_limit_mb,
            client_context=c.client_context,
        )

    def remaining_ms(self) -> int:
        """Milliseconds left before the deadline (0 when past it)."""
        return max(0, self.deadline_unix_ms - int(time.time() * 1000))


def run_handler(fn: Callable[[bytes, Context], Any], event: bytes, ctx: Context) -> bytes:
    """Call ``fn`` and turn its result into the event's answer (pure Python: testable
    anywhere). ``bytes``/``bytearray``/``memoryview`` pass through, ``str`` is UTF-8
    encoded, anything else is serialised as JSON. A ``FunctionError`` propagates; any
    other exception becomes ``FunctionError(type(e).__name__, str(e))``."""
    try:
        out = fn(event, ctx)
    except FunctionError:
        raise
    except Exception as e:  # the handler failed: a typed error, not a trap
        raise FunctionError(type(e).__name__, str(e)) from e
    if isinstance(out, (bytes, bytearray, memoryview)):
        return bytes(out)
    if isinstance(out, str):
        return out.encode()
    return json.dumps(out, separators=(",", ":")).encode()


class EventHandler:
    """Base class of an event function's export. Override ``on_event``."""

    def on_event(self, event: bytes, ctx: Context) -> Any:
        raise FunctionError("NotImplemented", "on_event is not implemented")

    # The WIT export: helixflow:function/event-handler.handle.
    def handle(self, event: bytes, context: Any) -> bytes:
        _wit.require()
        try:
            return run_handler(self.on_event, event, Context.from_wit(context))
        except FunctionError as e:
            raise _wit.Err(_wit.function_types.FunctionError(error_type=e.error_type, message=e.message))


def event_handler(fn: Callable[[bytes, Context], Any]) -> type:
    """An ``EventHandler`` class that calls ``fn(event, ctx)``."""

    class _Handler(EventHandler):
        def on_event(self, event: bytes, ctx: Context) -> Any:
            return fn(event, ctx)

    _Handler.__name__ = "EventHandler"
    return _Handler
