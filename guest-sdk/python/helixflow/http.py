"""HTTP handlers over ``wasi:http/incoming-handler``, with buffered request/response types.

In the app module::

    from helixflow.http import IncomingHandler, Request, Response

    class IncomingHandler(IncomingHandler):
        def on_request(self, req: Request) -> Response:
            return Response.text(200, f"hello from {req.path}")

or ``IncomingHandler = http_handler(fn)``. The app module must have a class called
``IncomingHandler`` (componentize-py finds the export by that name). The host strips
``/{tenant}/{function}`` from the path.
"""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple, Union
from urllib.parse import parse_qsl

from . import _wit

#: Largest request body the buffered API reads (bigger bodies get a 413).
MAX_BUFFERED_BODY = 16 * 1024 * 1024

Headers = List[Tuple[str, bytes]]


@dataclass
class Request:
    """A buffered HTTP request."""

    method: str
    path_with_query: str
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path without the query."""
        return self.path_with_query.split("?", 1)[0]

    @property
    def query(self) -> Optional[str]:
        """The raw query string, if any."""
        parts = self.path_with_query.split("?", 1)
        return parts[1] if len(parts) == 2 else None

    def query_params(self) -> dict:
        """The query as a dict (last value wins)."""
        return dict(parse_qsl(self.query or "", keep_blank_values=True))

    def header(self, name: str) -> Optional[str]:
        """First value of a header (case-insensitive), if it is valid UTF-8."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                try:
                    return v.decode()
                except UnicodeDecodeError:
                    return None
        return None

    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    """A buffered HTTP response."""

    status: int = 200
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, body: str) -> "Response":
        """A ``text/plain; charset=utf-8`` response."""
        return cls(status, [("content-type", b"text/plain; charset=utf-8")], body.encode())

    @classmethod
    def json(cls, status: int, value: Any) -> "Response":
        """An ``application/json`` response (``value`` is serialised)."""
        return cls(status, [("content-type", b"application/json")], json.dumps(value).encode())

    def with_header(self, name: str, value: Union[str, bytes]) -> "Response":
        self.headers.append((name, value.encode() if isinstance(value, str) else bytes(value)))
        return self


def _method(m: Any) -> str:
    name = type(m).__name__  # Method_Get, ..., Method_Other
    if name == "Method_Other":
        return m.value
    return name.removeprefix("Method_").upper()


def _read_request(req: Any) -> Union[Request, Response]:
    Err, streams = _wit.Err, _wit.streams
    method = _method(req.method())
    path = req.path_with_query() or "/"
    headers = req.headers().entries()
    body = bytearray()
    incoming = req.consume()
    stream = incoming.stream()
    try:
        while True:
            try:
                chunk = stream.blocking_read(64 * 1024)
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                return Response.text(400, f"reading the request body: {e.value}")
            if len(body) + len(chunk) > MAX_BUFFERED_BODY:
                return Response.text(413, "request body too large")
            body += chunk
    finally:
        stream.__exit__(None, None, None)
        incoming.__exit__(None, None, None)
    return Request(method, path, headers, bytes(body))


def _write_response(resp: Response, out: Any) -> None:
    Ok, t = _wit.Ok, _wit.http_types
    fields = t.Fields()
    for k, v in resp.headers:
        try:
            fields.append(k, v)
        except Exception:  # invalid or forbidden headers are dropped
            pass
    outgoing = t.OutgoingResponse(fields)
    outgoing.set_status_code(resp.status)
    body = outgoing.body()
    t.ResponseOutparam.set(out, Ok(outgoing))
    stream = body.write()
    data = memoryview(resp.body)
    try:
        for i in range(0, len(data), 4096):  # blocking-write-and-flush takes <= 4096 bytes
            stream.blocking_write_and_flush(bytes(data[i : i + 4096]))
    finally:
        stream.__exit__(None, None, None)
    t.OutgoingBody.finish(body, None)


class IncomingHandler:
    """Base class of an HTTP function's export. Override ``on_request``.

    An exception from ``on_request`` becomes a 500 whose body names it (the
    traceback goes to stderr, i.e. the function's log)."""

    def on_request(self, req: Request) -> Response:
        return Response.text(501, "on_request is not implemented")

    # The WIT export: wasi:http/incoming-handler.handle.
    def handle(self, request: Any, response_out: Any) -> None:
        _wit.require()
        req = _read_request(request)
        if isinstance(req, Response):
            resp = req
        else:
            resp = call_handler(self.on_request, req)
        _write_response(resp, response_out)


def call_handler(fn: Callable[[Request], Response], req: Request) -> Response:
    """Call ``fn``; an exception becomes a 500 (pure Python: testable anywhere)."""
    try:
        resp = fn(req)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        return Response.text(500, f"{type(e).__name__}: {e}")
    if not isinstance(resp, Response):
        return Response.text(500, f"the handler returned {type(resp).__name__}, not a Response")
    return resp


def http_handler(fn: Callable[[Request], Response]) -> type:
    """An ``IncomingHandler`` class that calls ``fn(request)``."""

    class _Handler(IncomingHandler):
        def on_request(self, req: Request) -> Response:
            return fn(req)

    _Handler.__name__ = "IncomingHandler"
    return _Handler
