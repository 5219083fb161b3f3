"""Fixtures. The live tests (test_live.py, test_readme.py) talk to a real `helixflow
serve` that tests/e2e/sdk_python.rs starts and describes in environment variables:

* ``HELIXFLOW_BASE_URL``: the node.
* ``HELIXFLOW_TEST_ADMIN_KEY``: the platform admin key.
* ``HELIXFLOW_TEST_TENANT``: a tenant with the chat function and SmolLM2 deployed.
* ``HELIXFLOW_TEST_TENANT_ADMIN_KEY`` / ``HELIXFLOW_TEST_DEV_KEY``: its admin and
  developer keys.
* ``HELIXFLOW_GUEST_DIR`` / ``HELIXFLOW_MODELS_DIR``: built guests, small ONNX models.

A missing variable fails the test with a message; nothing is skipped.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple, Union

import pytest

import helixflow


def env(name: str) -> str:
    v = os.environ.get(name)
    if not v:
        pytest.fail(f"{name} is not set: run the live tests through tests/e2e/sdk_python.rs "
                    "(cargo nextest run -p helixflow-e2e -E 'test(/sdk_python_/)')")
    return v


@pytest.fixture(scope="session")
def base_url() -> str:
    return env("HELIXFLOW_BASE_URL")


@pytest.fixture(scope="session")
def tenant() -> str:
    return env("HELIXFLOW_TEST_TENANT")


@pytest.fixture(scope="session")
def admin(base_url: str) -> Iterator[helixflow.Client]:
    """The platform admin (no tenant)."""
    with helixflow.Client(api_key=env("HELIXFLOW_TEST_ADMIN_KEY"), base_url=base_url) as c:
        yield c


@pytest.fixture(scope="session")
def owner(base_url: str, tenant: str) -> Iterator[helixflow.Client]:
    """The tenant's admin role (keys, access keys)."""
    with helixflow.Client(api_key=env("HELIXFLOW_TEST_TENANT_ADMIN_KEY"), base_url=base_url, tenant=tenant) as c:
        yield c


@pytest.fixture(scope="session")
def dev(base_url: str, tenant: str) -> Iterator[helixflow.Client]:
    """A developer of the tenant (deploy, invoke, read)."""
    with helixflow.Client(api_key=env("HELIXFLOW_TEST_DEV_KEY"), base_url=base_url, tenant=tenant) as c:
        yield c


@pytest.fixture(scope="session")
def guests() -> Path:
    return Path(env("HELIXFLOW_GUEST_DIR"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return Path(env("HELIXFLOW_MODELS_DIR"))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Polls ``check`` until it returns something truthy; fails with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --- a scripted local HTTP server, for what a real node should not be made to do ------

#: (status, headers, body) answered in order; ``None`` drops the connection unanswered;
#: a float waits that many seconds, then answers 200.
Reply = Union[None, float, Tuple[int, Dict[str, str], Any]]


class Scripted:
    """A loopback HTTP server answering from a script and recording every request."""

    def __init__(self) -> None:
        self.replies: List[Reply] = []
        self.requests: List[Tuple[float, str, str, bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                outer.requests.append((time.monotonic(), self.command, self.path, body))
                reply = outer.replies.pop(0) if outer.replies else (200, {}, {"ok": True})
                if reply is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(reply, float):
                    time.sleep(reply)
                    reply = (200, {}, {"slow": True})
                status, headers, payload = reply
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.close()
