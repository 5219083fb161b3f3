"""What a real node should not be made to do: retries after 429/503 with Retry-After,
network failures, and bad arguments caught before any request. A scripted loopback
server (conftest.Scripted) answers and counts the requests."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from pathlib import Path

import pytest

import helixflow
from conftest import Scripted

SDK = Path(__file__).resolve().parent.parent


def client(s: Scripted, **kw: object) -> helixflow.Client:
    kw.setdefault("tenant", "acme")
    return helixflow.Client(api_key="hfk_test_secret", base_url=s.url, **kw)  # type: ignore[arg-type]


def gaps(s: Scripted) -> list:
    times = [r[0] for r in s.requests]
    return [b - a for a, b in zip(times, times[1:])]


def test_503_and_429_with_retry_after_are_retried_after_the_wait(scripted: Scripted) -> None:
    busy = {"error": {"code": "capacity_exhausted", "message": "busy"}}
    limited = {"error": {"code": "rate_limited", "message": "slow down"}}
    scripted.replies = [
        (503, {"retry-after": "1"}, busy),
        (429, {"retry-after": "1"}, limited),
        (200, {}, {"functions": [{"name": "f"}]}),
    ]
    c = client(scripted, max_retries=3)
    assert c.functions.list() == [{"name": "f"}]
    assert [r[1:3] for r in scripted.requests] == [("GET", "/api/v1/tenants/acme/functions")] * 3
    assert all(g >= 0.95 for g in gaps(scripted)), f"waited Retry-After: {gaps(scripted)}"


def test_retries_back_off_exponentially_with_jitter_and_give_up(scripted: Scripted) -> None:
    busy = {"error": {"code": "store_unavailable", "message": "store down"}}
    scripted.replies = [(503, {"x-helixflow-request-id": f"r{i}"}, busy) for i in range(3)]
    with pytest.raises(helixflow.ServiceUnavailableError) as e:
        client(scripted, max_retries=2).keys.revoke("abc")  # DELETE: idempotent
    assert len(scripted.requests) == 3
    assert (e.value.status, e.value.code, e.value.request_id) == (503, "store_unavailable", "r2")
    g = gaps(scripted)
    # Backoff 0.5 s then 1 s, each jittered into [half, full] (upper bounds loose: a
    # loaded machine may add scheduling delay, never remove any).
    assert 0.24 <= g[0] <= 1.5 and 0.49 <= g[1] <= 2.5, g


def test_a_retry_after_beyond_max_retry_wait_raises_at_once(scripted: Scripted) -> None:
    scripted.replies = [(429, {"retry-after": "3600"}, {"error": {"code": "budget_exceeded", "message": "cap"}})]
    with pytest.raises(helixflow.RateLimitError) as e:
        client(scripted).usage.query()
    assert len(scripted.requests) == 1
    assert (e.value.code, e.value.retry_after) == ("budget_exceeded", 3600.0)


def test_non_idempotent_calls_are_not_retried(scripted: Scripted) -> None:
    scripted.replies = [(503, {"retry-after": "0"}, {"error": {"code": "capacity_exhausted", "message": "x"}})] * 2
    c = client(scripted)
    with pytest.raises(helixflow.ServiceUnavailableError):
        c.keys.create("ci", "invoker")  # POST
    assert len(scripted.requests) == 1
    with pytest.raises(helixflow.ServiceUnavailableError):
        c.functions.invoke("f", {"x": 1})  # an invocation, unless the caller opts in
    assert len(scripted.requests) == 2


def test_invocations_are_retried_when_the_caller_opts_in(scripted: Scripted) -> None:
    scripted.replies = [
        (429, {"retry-after": "0"}, {"error": {"code": "concurrency_limited", "message": "x"}}),
        (200, {"x-helixflow-version": "3"}, {"echo": "hi"}),
    ]
    r = client(scripted).functions.invoke("f", "hi", qualifier="live", retry=True)
    assert (r.json(), r.version) == ({"echo": "hi"}, 3)
    assert [x[2] for x in scripted.requests] == ["/invoke/acme/f@live"] * 2
    assert [x[3] for x in scripted.requests] == [b"hi", b"hi"]


def test_network_failures_are_retried_only_when_idempotent(scripted: Scripted) -> None:
    scripted.replies = [None, (200, {}, {"name": "acme"})]
    assert client(scripted).tenants.get("acme") == {"name": "acme"}
    assert len(scripted.requests) == 2
    scripted.requests.clear()
    scripted.replies = [None]
    with pytest.raises(helixflow.APIConnectionError) as e:
        client(scripted).events.replay("ev-1")  # POST
    assert len(scripted.requests) == 1 and e.value.status is None


def test_timeouts_raise_and_are_retried_only_when_idempotent(scripted: Scripted) -> None:
    scripted.replies = [4.0, (200, {}, {"keys": [{"prefix": "p"}]})]
    c = client(scripted, timeout=2.0, max_retries=1)
    assert c.keys.list() == [{"prefix": "p"}]
    assert len(scripted.requests) == 2
    scripted.replies = [4.0]
    with pytest.raises(helixflow.APITimeoutError) as e:
        c.functions.invoke("f", b"x")
    assert isinstance(e.value, helixflow.APIConnectionError) and e.value.code == "timeout"
    assert len(scripted.requests) == 3


def test_nothing_listening_is_a_connection_error() -> None:
    # A port that was free a moment ago (bound, then closed).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = helixflow.Client(api_key="k", base_url=f"http://127.0.0.1:{port}", tenant="t", max_retries=0)
    with pytest.raises(helixflow.APIConnectionError):
        c.functions.list()


def test_async_client_retries_the_same_way(scripted: Scripted) -> None:
    scripted.replies = [
        (503, {"retry-after": "0"}, {"error": {"code": "capacity_exhausted", "message": "x"}}),
        (200, {}, {"keys": []}),
        (503, {"retry-after": "0"}, {"error": {"code": "capacity_exhausted", "message": "x"}}),
    ]

    async def main() -> None:
        async with helixflow.AsyncClient(api_key="k", base_url=scripted.url, tenant="acme") as c:
            assert await c.keys.list() == []
            with pytest.raises(helixflow.ServiceUnavailableError):
                await c.keys.create("x", "viewer")

    asyncio.run(main())
    assert [r[1] for r in scripted.requests] == ["GET", "GET", "POST"]


def test_errors_carry_status_code_message_and_request_id(scripted: Scripted) -> None:
    cases = [
        (400, "invalid_config", helixflow.BadRequestError),
        (401, "unauthenticated", helixflow.AuthenticationError),
        (403, "forbidden", helixflow.PermissionDeniedError),
        (404, "not_found", helixflow.NotFoundError),
        (409, "conflict", helixflow.ConflictError),
        (413, "payload_too_large", helixflow.PayloadTooLargeError),
        (500, "function_trap", helixflow.InternalServerError),
    ]
    scripted.replies = [
        (st, {"x-helixflow-request-id": f"id{st}"}, {"error": {"code": code, "message": f"m{st}"}})
        for st, code, _ in cases
    ]
    c = client(scripted)
    for status, code, cls in cases:
        with pytest.raises(cls) as e:
            c.functions.get("f")
        assert isinstance(e.value, helixflow.APIError)
        assert (e.value.status, e.value.code, e.value.message, e.value.request_id) == (
            status, code, f"m{status}", f"id{status}")
        assert str(e.value) == f"{status} {code}: m{status} (request id{status})"


def test_missing_arguments_fail_before_any_request(scripted: Scripted) -> None:
    c = client(scripted)
    bad = [
        (lambda: c.functions.deploy("", b"\0asm"), "functions.deploy: name is required"),
        (lambda: c.functions.deploy("f", b""), "functions.deploy: component"),
        (lambda: c.functions.deploy("f", "/no/such/file.wasm"), "no such file"),
        (lambda: c.functions.invoke(None, {}), "functions.invoke: name is required"),  # type: ignore[arg-type]
        (lambda: c.functions.get_version("f", 0), "positive int"),
        (lambda: c.aliases.set("f", "live", "3"), "positive int"),  # type: ignore[arg-type]
        (lambda: c.keys.create("ci", ""), "keys.create: role"),
        (lambda: c.events.list(status="done"), "pending' or 'failed"),
        (lambda: c.models.push("m", None), "models.push: model"),  # type: ignore[arg-type]
        (lambda: c.analytics.create_dashboard("d", []), "metrics is a non-empty list"),
        (lambda: c.usage.query(start=True), "usage.query: start"),  # type: ignore[arg-type]
        # Dot segments would be resolved away by the HTTP client: ".." would turn an
        # alias delete into a delete of the function.
        (lambda: c.aliases.delete("f", ".."), "not a valid name or id"),
        (lambda: c.functions.get("."), "not a valid name or id"),
    ]
    for call, message in bad:
        with pytest.raises(helixflow.InvalidArgumentError, match=message):
            call()
    with pytest.raises(TypeError):
        c.functions.deploy("f")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="model"):
        c.chat.completions.create(messages=[{"role": "user", "content": "hi"}])  # type: ignore[call-arg]
    assert scripted.requests == [], "no request was sent"


def test_the_client_needs_a_key_and_an_http_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELIXFLOW_API_KEY", raising=False)
    with pytest.raises(helixflow.InvalidArgumentError, match="HELIXFLOW_API_KEY"):
        helixflow.Client()
    with pytest.raises(helixflow.InvalidArgumentError, match="base_url"):
        helixflow.Client(api_key="k", base_url="127.0.0.1:8080")
    monkeypatch.setenv("HELIXFLOW_API_KEY", "from-env")
    monkeypatch.setenv("HELIXFLOW_BASE_URL", "http://127.0.0.1:1234/")
    monkeypatch.setenv("HELIXFLOW_TENANT", "acme")
    c = helixflow.Client()
    assert (c.api_key, c.base_url, c.tenant) == ("from-env", "http://127.0.0.1:1234", "acme")
    assert str(c.openai.base_url).rstrip("/") == "http://127.0.0.1:1234/v1"


def test_upload_progress_and_length(scripted: Scripted, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: several chunks
    p = tmp_path / "f.wasm"
    p.write_bytes(data)
    seen: list = []
    scripted.replies = [(201, {}, {"version": {"version": 1}, "alias": None})] * 2
    c = client(scripted)
    c.functions.deploy("f", p, alias="live", config={"memory_mb": 64}, progress=lambda s, t: seen.append((s, t)))
    c.functions.deploy("f", data)
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data)) and len(seen) > 2
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    (_, _, path1, body1), (_, _, _, body2) = scripted.requests
    assert path1 == "/api/v1/tenants/acme/functions/f/versions?alias=live"
    assert body1 == data and body2 == data


def test_async_resources_are_generated_from_the_sync_ones() -> None:
    spec = importlib.util.spec_from_file_location("gen_async", SDK / "scripts" / "gen_async.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    src = SDK / "src" / "helixflow"
    assert (src / "_async_resources.py").read_text() == gen.transform((src / "_resources.py").read_text()), \
        "run python sdk/python/scripts/gen_async.py"
    assert (src / "py.typed").exists()


WHOAMI = "/api/v1/whoami"


def test_a_tenant_keys_tenant_is_asked_once_and_kept(scripted: Scripted) -> None:
    me = {"tenant": "acme", "role": "developer", "subject": "hfk_1234", "via": "api_key"}
    scripted.replies = [(200, {}, me), (200, {}, {"functions": []}), (200, {}, {"usage": []}),
                        (200, {}, {"name": "acme"})]
    c = client(scripted, tenant=None)
    assert c.functions.list() == []
    c.usage.query()
    c.tenants.get("acme")  # not tenant-scoped
    assert c.whoami() == me
    assert [r[1:3] for r in scripted.requests] == [
        ("GET", WHOAMI), ("GET", "/api/v1/tenants/acme/functions"), ("GET", "/api/v1/tenants/acme/usage"),
        ("GET", "/api/v1/tenants/acme")]


def test_a_named_tenant_sends_no_whoami(scripted: Scripted) -> None:
    scripted.replies = [(200, {}, {"functions": []})]
    assert client(scripted, tenant="named").functions.list() == []
    assert [r[1:3] for r in scripted.requests] == [("GET", "/api/v1/tenants/named/functions")]


def test_the_platform_admin_must_name_a_tenant(scripted: Scripted) -> None:
    scripted.replies = [(200, {}, {"tenant": None, "role": "admin", "subject": "platform-admin",
                                   "via": "admin_key"})]
    c = client(scripted, tenant=None)
    with pytest.raises(helixflow.InvalidArgumentError, match="functions.list is scoped to a tenant"):
        c.functions.list()
    with pytest.raises(helixflow.InvalidArgumentError, match="usage.query is scoped to a tenant"):
        c.usage.query()
    assert c.whoami()["tenant"] is None
    assert [r[1:3] for r in scripted.requests] == [("GET", WHOAMI)], "nothing tenant-scoped was sent"


def test_a_failed_whoami_is_raised_and_asked_again(scripted: Scripted) -> None:
    scripted.replies = [(401, {}, {"error": {"code": "unauthorized", "message": "bad key"}}),
                        (200, {}, {"tenant": "acme", "role": "viewer", "subject": "s", "via": "jwt"}),
                        (200, {}, {"functions": []})]
    c = client(scripted, tenant=None)
    with pytest.raises(helixflow.AuthenticationError):
        c.functions.list()
    assert c.functions.list() == []
    assert [r[2] for r in scripted.requests] == [WHOAMI, WHOAMI, "/api/v1/tenants/acme/functions"]


def test_concurrent_async_calls_ask_whoami_once(scripted: Scripted) -> None:
    me = {"tenant": "acme", "role": "admin", "subject": "s", "via": "api_key"}
    scripted.replies = [(200, {}, me)] + [(200, {}, {"functions": []})] * 5

    async def main() -> None:
        async with helixflow.AsyncClient(api_key="k", base_url=scripted.url) as c:
            got = await asyncio.gather(*(c.functions.list() for _ in range(5)))
            assert got == [[]] * 5
            assert (await c.whoami())["role"] == "admin"

    asyncio.run(main())
    paths = [r[2] for r in scripted.requests]
    assert paths == [WHOAMI] + ["/api/v1/tenants/acme/functions"] * 5, paths
