"""HTTP plumbing shared by :class:`helixflow.Client` and :class:`helixflow.AsyncClient`:
a prepared request (:class:`Op`), streamed uploads with progress, retries with
exponential backoff and jitter (honouring ``Retry-After``), and error mapping."""

from __future__ import annotations

import asyncio
import json as _json
import os
import random
import time
from dataclasses import dataclass, field
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Generic,
    Iterator,
    Optional,
    TypeVar,
    Union,
)

import httpx

from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidArgumentError,
    error_from_response,
)

#: ``progress(sent_bytes, total_bytes)``, called as an upload's body goes out.
ProgressCallback = Callable[[int, int], None]

#: Statuses worth retrying (rate or concurrency limited, capacity / store unavailable).
RETRY_STATUSES = frozenset({429, 503})
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
CHUNK = 256 * 1024

T = TypeVar("T")


class Upload:
    """A request body from bytes or a file path, streamed in chunks with progress."""

    def __init__(
        self,
        source: Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"],
        progress: Optional[ProgressCallback] = None,
        what: str = "body",
    ) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data: Optional[bytes] = bytes(source)
            self._path: Optional[str] = None
            self.total = len(self._data)
        elif isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise InvalidArgumentError(f"{what}: no such file {path!r}")
            self._data = None
            self._path = path
            self.total = os.path.getsize(path)
        else:
            raise InvalidArgumentError(
                f"{what}: pass the bytes or a file path, not {type(source).__name__}"
            )
        if self.total == 0:
            raise InvalidArgumentError(f"{what} is empty")
        self.progress = progress

    def _chunks(self) -> Iterator[bytes]:
        if self._data is not None:
            for i in range(0, self.total, CHUNK):
                yield self._data[i : i + CHUNK]
        else:
            assert self._path is not None
            with open(self._path, "rb") as f:
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        return
                    yield chunk

    def iter(self) -> Iterator[bytes]:
        sent = 0
        if self.progress:
            self.progress(0, self.total)
        for chunk in self._chunks():
            yield chunk
            sent += len(chunk)
            if self.progress:
                self.progress(sent, self.total)

    async def aiter(self) -> AsyncIterator[bytes]:
        for chunk in self.iter():
            yield chunk


def _parse_json(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    return resp.json()


@dataclass
class Op(Generic[T]):
    """One API call, prepared: what to send and how to read the answer."""

    method: str
    path: str
    params: Optional[Dict[str, str]] = None
    json: Any = None
    body: Union[None, bytes, Upload] = None
    headers: Dict[str, str] = field(default_factory=dict)
    #: Whether a retry is safe; ``None``: GET, PUT and DELETE are, POST is not.
    idempotent: Optional[bool] = None
    parse: Callable[[httpx.Response], T] = _parse_json

    def retryable(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        return self.method in ("GET", "HEAD", "PUT", "DELETE")


class _Base:
    def __init__(self, max_retries: int, max_retry_wait: float, base_url: str, headers: Dict[str, str]) -> None:
        if max_retries < 0:
            raise InvalidArgumentError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        # The node and the credentials go on each request, never onto the httpx client:
        # a client the caller passed in keeps its own settings (and never carries the
        # key to other hosts).
        self.base_url = base_url
        self.headers = headers

    def _request_args(self, op: "Op[Any]") -> Dict[str, Any]:
        headers = {**self.headers, **op.headers}
        content: Any = None
        if op.json is not None:
            content = _json.dumps(op.json).encode()
            headers.setdefault("content-type", "application/json")
        elif isinstance(op.body, Upload):
            # An explicit length: the node reads a sized body, and httpx then does not chunk.
            headers["content-length"] = str(op.body.total)
            headers.setdefault("content-type", "application/octet-stream")
        elif op.body is not None:
            content = op.body
        url = self.base_url + op.path
        return {"method": op.method, "url": url, "params": op.params, "headers": headers, "content": content}

    def retry_delay(self, op: "Op[Any]", err: APIError, attempt: int) -> Optional[float]:
        """Seconds to wait before retrying ``op`` after ``err``, or ``None`` to give up."""
        if attempt >= self.max_retries or not op.retryable():
            return None
        if isinstance(err, APIConnectionError):
            pass
        elif err.status in RETRY_STATUSES:
            if err.retry_after is not None:
                # A wait longer than we are willing to block (e.g. a monthly budget) is
                # the caller's decision: give up and let them see `retry_after`.
                return err.retry_after if err.retry_after <= self.max_retry_wait else None
        else:
            return None
        backoff = min(MAX_BACKOFF, INITIAL_BACKOFF * 2.0**attempt)
        return backoff / 2 + random.uniform(0, backoff / 2)


def _transport_error(e: httpx.TransportError, op: "Op[Any]") -> APIError:
    what = f"{op.method} {op.path}"
    if isinstance(e, httpx.TimeoutException):
        return APITimeoutError(f"{what}: timed out ({type(e).__name__})")
    return APIConnectionError(f"{what}: {e or type(e).__name__}")


class SyncTransport(_Base):
    def __init__(
        self, http: httpx.Client, max_retries: int, max_retry_wait: float, base_url: str, headers: Dict[str, str]
    ) -> None:
        super().__init__(max_retries, max_retry_wait, base_url, headers)
        self.http = http

    def run(self, op: Op[T]) -> T:
        attempt = 0
        while True:
            args = self._request_args(op)
            if isinstance(op.body, Upload):
                args["content"] = op.body.iter()
            try:
                resp = self.http.request(**args)
            except httpx.TransportError as e:
                err: APIError = _transport_error(e, op)
            else:
                if resp.status_code < 300:
                    return op.parse(resp)
                err = error_from_response(resp)
            delay = self.retry_delay(op, err, attempt)
            if delay is None:
                raise err
            time.sleep(delay)
            attempt += 1


class AsyncTransport(_Base):
    def __init__(
        self, http: httpx.AsyncClient, max_retries: int, max_retry_wait: float, base_url: str, headers: Dict[str, str]
    ) -> None:
        super().__init__(max_retries, max_retry_wait, base_url, headers)
        self.http = http

    async def run(self, op: Op[T]) -> T:
        attempt = 0
        while True:
            args = self._request_args(op)
            if isinstance(op.body, Upload):
                args["content"] = op.body.aiter()
            try:
                resp = await self.http.request(**args)
            except httpx.TransportError as e:
                err: APIError = _transport_error(e, op)
            else:
                if resp.status_code < 300:
                    return op.parse(resp)
                err = error_from_response(resp)
            delay = self.retry_delay(op, err, attempt)
            if delay is None:
                raise err
            await asyncio.sleep(delay)
            attempt += 1
