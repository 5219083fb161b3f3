"""The SDK against a real node (started by tests/e2e/sdk_python.rs; see conftest.py)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import List, Tuple

import httpx
import openai
import pytest

import helixflow
from conftest import env, wait_for

CHAT_MODEL = "smollm2-135m-instruct"


def test_the_sdk_under_test_is_this_checkout() -> None:
    sdk = os.environ.get("HELIXFLOW_SDK_DIR")
    if sdk:
        assert Path(helixflow.__file__).resolve().is_relative_to(Path(sdk).resolve()), helixflow.__file__


def test_deploy_from_a_path_and_from_bytes_with_progress(dev: helixflow.Client, guests: Path) -> None:
    path = guests / "echo_event.wasm"
    seen: List[Tuple[int, int]] = []
    r = dev.functions.deploy("sdk-echo", path, alias="live", description="from the SDK",
                             progress=lambda sent, total: seen.append((sent, total)))
    size = path.stat().st_size
    assert r["version"]["version"] == 1 and r["version"]["size"] == size, r
    assert r["version"]["exports"] == {"http": False, "event": True}, r
    assert r["alias"]["name"] == "live" and r["alias"]["version"] == 1, r
    assert seen[0] == (0, size) and seen[-1] == (size, size), seen
    r2 = dev.functions.deploy("sdk-echo", path.read_bytes())
    assert r2["version"]["version"] == 2 and r2["alias"] is None
    dev.functions.deploy("sdk-hello", (guests / "hello.wasm").read_bytes(), config={"public": True})

    names = {f["name"] for f in dev.functions.list()}
    assert {"sdk-echo", "sdk-hello"} <= names, names
    got = dev.functions.get("sdk-echo")
    assert [v["version"] for v in got["versions"]] == [1, 2]
    assert [(a["name"], a["version"]) for a in got["aliases"]] == [("live", 1)]
    assert [v["version"] for v in dev.functions.versions("sdk-echo")] == [1, 2]
    assert dev.functions.get_version("sdk-echo", 2)["sha256"] == got["versions"][1]["sha256"]
    assert dev.functions.get_config("sdk-hello")["public"] is True
    updated = dev.functions.set_config("sdk-hello", {"public": True, "memory_mb": 32})
    assert updated["config"]["memory_mb"] == 32, updated

    dev.functions.deploy("sdk-temp", path)
    dev.functions.deploy("sdk-temp", path)
    dev.functions.delete_version("sdk-temp", 1)
    assert [v["version"] for v in dev.functions.versions("sdk-temp")] == [2]
    assert dev.functions.delete("sdk-temp")["deleted"] is True
    with pytest.raises(helixflow.NotFoundError):
        dev.functions.get("sdk-temp")


def test_invoke_sync_and_event(dev: helixflow.Client) -> None:
    r = dev.functions.invoke("sdk-echo", {"hello": "sdk"})
    assert r.json()["echo"] == '{"hello": "sdk"}' and r.version == 1, r  # `live` -> 1
    assert r.request_id and r.json()["request_id"] == r.request_id
    assert dev.functions.invoke("sdk-echo", "plain text", qualifier="2").json()["echo"] == "plain text"
    with pytest.raises(helixflow.FunctionError) as e:
        dev.functions.invoke("sdk-echo", "fail")
    assert (e.value.status, e.value.code, e.value.error_type) == (422, "function_error", "RequestedFailure")

    ev = dev.functions.invoke_event("sdk-echo", {"later": True})
    assert ev.id and ev.version == 1, ev
    # It ran: its log carries the event's id, and it is neither pending nor failed.
    wait_for("the event's run in the logs",
             lambda: any(l["request_id"] == ev.id for l in dev.functions.logs("sdk-echo", limit=50)))
    wait_for("the event to leave the queue", lambda: gone(dev, ev.id))


def gone(c: helixflow.Client, event_id: str) -> bool:
    try:
        c.events.get(event_id)
        return False
    except helixflow.NotFoundError:
        return True


def test_async_client_deploys_invokes_and_streams(base_url: str, tenant: str, guests: Path) -> None:
    async def main() -> None:
        async with helixflow.AsyncClient(api_key=env("HELIXFLOW_TEST_DEV_KEY"), base_url=base_url,
                                         tenant=tenant) as c:
            d = await c.functions.deploy("sdk-async", guests / "echo_event.wasm", alias="live")
            assert d["version"]["version"] == 1
            outs = await asyncio.gather(*(c.functions.invoke("sdk-async", {"n": i}) for i in range(4)))
            assert [o.json()["echo"] for o in outs] == [f'{{"n": {i}}}' for i in range(4)]
            ev = await c.functions.invoke_event("sdk-async", {"n": "event"})
            assert ev.id
            stream = await c.chat.completions.create(
                model=CHAT_MODEL, stream=True, temperature=0, max_tokens=12,
                messages=[{"role": "user", "content": "What is the capital of France?"}])
            text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
            assert "Paris" in text, text
            with pytest.raises(helixflow.NotFoundError):
                await c.functions.get("no-such-function")

    asyncio.run(main())


def test_aliases(dev: helixflow.Client) -> None:
    assert dev.aliases.set("sdk-echo", "canary", 2)["version"] == 2
    assert dev.aliases.set("sdk-echo", "canary", 1)["version"] == 1
    assert dev.aliases.rollback("sdk-echo", "canary")["version"] == 2
    assert dev.aliases.get("sdk-echo", "canary")["version"] == 2
    assert {a["name"] for a in dev.aliases.list("sdk-echo")} == {"live", "canary"}
    assert dev.functions.invoke("sdk-echo", "x", qualifier="canary").version == 2
    dev.aliases.delete("sdk-echo", "canary")
    with pytest.raises(helixflow.NotFoundError):
        dev.aliases.get("sdk-echo", "canary")


def test_push_models_and_embeddings(dev: helixflow.Client, models_dir: Path, guests: Path) -> None:
    seen: List[int] = []
    p = models_dir / "identity_fp32.onnx"
    r = dev.models.push("sdk-identity", p, description="tiny", progress=lambda s, t: seen.append(s))
    assert r["version"]["version"] == 1 and seen[-1] == p.stat().st_size, r
    assert "sdk-identity" in {m["name"] for m in dev.models.list()}
    got = dev.models.get("sdk-identity")
    assert got["model"]["latest_version"] == 1 and len(got["versions"]) == 1, got
    assert dev.models.config("sdk-identity", {"max_batch": 4})["config"]["max_batch"] == 4
    assert dev.models.get_version("sdk-identity", 1)["version"]["sha256"] == got["versions"][0]["sha256"]
    with pytest.raises(helixflow.BadRequestError) as e:
        dev.models.push("sdk-bad", models_dir / "not_onnx.bin")
    assert e.value.code and e.value.message, e.value
    dev.models.delete("sdk-identity")
    with pytest.raises(helixflow.NotFoundError):
        dev.models.get("sdk-identity")

    # An embeddings model pushed with the SDK, then called through the openai package.
    dev.functions.deploy("embed-minilm", guests / "embed_minilm.wasm")
    dev.models.push("all-minilm-l6-v2", models_dir / "minilm-int8.onnx",
                    config={"serve": {"kind": "embeddings", "function": "embed-minilm"}})
    out = dev.embeddings.create(model="all-minilm-l6-v2", input=["edge inference", "in a sandbox"])
    assert isinstance(out, openai.types.CreateEmbeddingResponse)
    assert [len(d.embedding) for d in out.data] == [384, 384]
    with pytest.raises(openai.NotFoundError):
        dev.embeddings.create(model="no-such-model", input="x")


def test_stream_a_chat_completion(dev: helixflow.Client) -> None:
    stream = dev.chat.completions.create(
        model=CHAT_MODEL, stream=True, temperature=0,
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    chunks = [c for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "The capital of France is Paris.", text
    assert len(chunks) > 3, "streamed token by token"
    full = dev.chat.completions.create(model=CHAT_MODEL, temperature=0, max_tokens=4,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert isinstance(full, openai.types.chat.ChatCompletion) and full.usage.completion_tokens <= 4


def test_create_use_and_revoke_a_key(owner: helixflow.Client, base_url: str, tenant: str) -> None:
    k = owner.keys.create("sdk-invoker", "invoker", expires_in_secs=3600)
    assert k["key"].startswith("hfk_") and k["role"] == "invoker" and k["expires_at"], k
    listed = {x["prefix"]: x for x in owner.keys.list()}
    assert k["prefix"] in listed and "key" not in listed[k["prefix"]]
    invoker = helixflow.Client(api_key=k["key"], base_url=base_url, tenant=tenant)
    assert invoker.functions.invoke("sdk-echo", "hi").json()["echo"] == "hi"
    with pytest.raises(helixflow.PermissionDeniedError) as e:
        invoker.functions.deploy("sdk-nope", b"\0asm\x0d\0\x01\0")
    assert e.value.status == 403 and e.value.code, e.value
    assert owner.keys.revoke(k["prefix"])["revoked"] is True
    with pytest.raises(helixflow.AuthenticationError) as e2:
        invoker.functions.invoke("sdk-echo", "hi")
    assert e2.value.status == 401 and e2.value.request_id, e2.value


def test_access_keys(owner: helixflow.Client) -> None:
    ak = owner.access_keys.create("sdk-ci")
    assert ak["access_key_id"].startswith("HFAK") and len(ak["secret_access_key"]) == 40, ak
    listed = [a for a in owner.access_keys.list() if a["access_key_id"] == ak["access_key_id"]]
    assert listed and listed[0]["role"] == "invoker" and "secret_access_key" not in listed[0]
    assert owner.access_keys.revoke(ak["access_key_id"])["revoked"] is True


def test_replay_a_failed_event(dev: helixflow.Client, guests: Path) -> None:
    dev.functions.deploy("sdk-chaos", guests / "chaos.wasm")
    dev.functions.set_config("sdk-chaos", {"async_invoke": {"max_retries": 0}})
    ev = dev.functions.invoke_event("sdk-chaos", b'"error"')

    def failed() -> object:
        return [e for e in dev.events.list(status="failed", function="sdk-chaos") if e["id"] == ev.id]

    (listed,) = wait_for("the event to fail", failed)
    assert listed["condition"] == "RetriesExhausted" and listed["attempts"] == 1, listed
    assert dev.events.get(ev.id)["last_error"]["error_type"] == "ChaosError"
    again = dev.events.replay(ev.id)
    assert again["replay_of"] == ev.id and again["id"] != ev.id, again
    with pytest.raises(helixflow.ConflictError) as e:
        dev.events.replay(ev.id)
    assert e.value.code == "already_replayed", e.value
    replayed = wait_for("the replay to fail too",
                        lambda: [x for x in dev.events.list(status="failed") if x["id"] == again["id"]])
    assert replayed[0]["source"] == f"replay:{ev.id}", replayed


def test_read_usage_and_dashboards(dev: helixflow.Client) -> None:
    for i in range(3):
        dev.functions.invoke("sdk-echo", {"usage": i})

    def echo_requests() -> int:
        u = dev.usage.query(group_by=["function"], metrics=["requests", "errors", "latency_p95"],
                            start=int(time.time()) - 3600)
        rows = [s for s in u["series"] if s["group"] == {"function": "sdk-echo"}]
        return rows[0]["total"]["requests"] if rows and rows[0]["total"]["requests"] >= 3 else 0

    # Nodes flush usage every [usage] flush_interval_ms (the test node: 1 s).
    assert wait_for("sdk-echo's usage", echo_requests, timeout=30) >= 3
    with pytest.raises(helixflow.BadRequestError) as e:
        dev.usage.query(metrics="no_such_metric")
    assert e.value.code == "invalid_metric"
    assert "prices" in dev.usage.prices()

    d = dev.analytics.create_dashboard("sdk-ops", ["model_usage", "error_rate"], dimensions=["time"])
    assert d["id"] and d["name"] == "sdk-ops", d
    assert d["id"] in {x["id"] for x in dev.analytics.list_dashboards()}
    assert dev.analytics.get_dashboard(d["id"])["name"] == "sdk-ops"
    data = dev.analytics.dashboard_data(d["id"], step="1h")
    assert data, data
    dev.analytics.delete_dashboard(d["id"])
    with pytest.raises(helixflow.NotFoundError):
        dev.analytics.get_dashboard(d["id"])


def test_budget(owner: helixflow.Client, dev: helixflow.Client, tenant: str) -> None:
    set_ = owner.budget.set({"tenant": {"monthly_spend": 1000, "rpm": 6000}})
    assert set_["budget"]["tenant"]["monthly_spend"] == 1000, set_
    got = dev.budget.get()
    assert got["budget"] == set_["budget"] and "spend" in got and got["month"], got
    with pytest.raises(helixflow.PermissionDeniedError):
        dev.budget.set({"tenant": {"monthly_spend": 1}})  # a tenant admin's call
    assert owner.budget.delete()["budget"] is None


def test_tenants_as_the_platform_admin(admin: helixflow.Client, dev: helixflow.Client, tenant: str) -> None:
    assert tenant in {t["name"] for t in admin.tenants.list()}
    assert admin.tenants.get(tenant)["name"] == tenant
    made = admin.tenants.create("sdk-made", limits={"max_memory_mb": 64, "max_timeout_ms": 1000})
    assert made["limits"]["max_memory_mb"] == 64, made
    with pytest.raises(helixflow.ConflictError):
        admin.tenants.create("sdk-made")
    assert admin.with_tenant("sdk-made").functions.list() == []
    with pytest.raises(helixflow.PermissionDeniedError):
        dev.tenants.list()


def test_typed_errors_from_the_node(dev: helixflow.Client, base_url: str, tenant: str) -> None:
    with pytest.raises(helixflow.NotFoundError) as e:
        dev.functions.get("no-such-function")
    err = e.value
    assert (err.status, err.code) == (404, "not_found") and "no-such-function" in err.message, err
    assert err.request_id and len(err.request_id) == 32, err.request_id
    bad = helixflow.Client(api_key="hfk_deadbeef0000_notarealsecret", base_url=base_url, tenant=tenant)
    with pytest.raises(helixflow.AuthenticationError) as e2:
        bad.functions.list()
    assert e2.value.status == 401
    with pytest.raises(helixflow.PermissionDeniedError) as e3:
        dev.with_tenant("someone-else").functions.list()
    assert e3.value.status == 403
    with pytest.raises(helixflow.BadRequestError) as e4:
        dev.functions.deploy("sdk-junk", b"not a component")
    assert e4.value.code == "not_a_component", e4.value
    with pytest.raises(helixflow.InvalidArgumentError):
        dev.functions.invoke("", {})


def test_a_tenant_key_without_a_tenant_learns_it_once(base_url: str, tenant: str, guests: Path) -> None:
    sent: List[str] = []
    http = httpx.Client(event_hooks={"request": [lambda req: sent.append(req.url.path)]})
    with helixflow.Client(api_key=env("HELIXFLOW_TEST_DEV_KEY"), base_url=base_url, http_client=http) as c:
        assert c.tenant is None
        c.functions.deploy("sdk-found", guests / "hello.wasm")
        assert "sdk-found" in {f["name"] for f in c.functions.list()}
        assert c.functions.get("sdk-found")["function"]["name"] == "sdk-found"
        me = c.whoami()
        assert (me["tenant"], me["role"], me["via"]) == (tenant, "developer", "api_key"), me
        assert me["subject"] and me["subject"] != "platform-admin", me
    # The caller's own httpx client is not changed: no key on it, no base URL.
    assert "authorization" not in http.headers and str(http.base_url) == "", http.headers
    http.close()
    assert sent.count("/api/v1/whoami") == 1, sent
    assert f"/api/v1/tenants/{tenant}/functions/sdk-found/versions" in sent, sent

    async def main() -> None:
        async with helixflow.AsyncClient(api_key=env("HELIXFLOW_TEST_TENANT_ADMIN_KEY"), base_url=base_url) as a:
            got = await asyncio.gather(a.functions.list(), a.keys.list(), a.whoami())
            assert "sdk-found" in {f["name"] for f in got[0]}
            assert (got[2]["tenant"], got[2]["role"]) == (tenant, "admin"), got[2]

    asyncio.run(main())


def test_the_platform_admin_without_a_tenant_is_told_to_name_one(base_url: str) -> None:
    sent: List[str] = []
    http = httpx.Client(event_hooks={"request": [lambda req: sent.append(req.url.path)]})
    with helixflow.Client(api_key=env("HELIXFLOW_TEST_ADMIN_KEY"), base_url=base_url, http_client=http) as c:
        with pytest.raises(helixflow.InvalidArgumentError, match="functions.list is scoped to a tenant"):
            c.functions.list()
        assert c.whoami() == {"tenant": None, "role": "admin", "subject": "platform-admin", "via": "admin_key"}
    http.close()
    assert sent == ["/api/v1/whoami"], "nothing tenant-scoped was sent"
