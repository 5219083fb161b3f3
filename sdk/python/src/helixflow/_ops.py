"""The API's routes as prepared requests (:class:`Op`), one builder per call.

The sync and async resources (``_resources.py``, ``_async_resources.py``) share these
builders, so both send exactly the same requests; every argument is checked here,
before anything is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import json as _json
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote

import httpx

from ._errors import InvalidArgumentError
from ._transport import Op, ProgressCallback, Upload

JSON = Dict[str, Any]
#: A time for usage queries: a datetime (naive = UTC), Unix seconds, or RFC 3339 text.
Time = Union[_dt.datetime, int, float, str]
#: A component or model: its bytes, or a path to the file.
Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]

API = "/api/v1"


@dataclass
class Invocation:
    """The answer of a synchronous invocation."""

    #: The function's output, as it returned it.
    body: bytes
    content_type: Optional[str]
    #: The version that ran (``x-helixflow-version``).
    version: Optional[int]
    request_id: Optional[str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _json.loads(self.body)


@dataclass
class QueuedEvent:
    """An accepted asynchronous (Event) invocation: stored durably, run at least once."""

    #: The event's id (see ``client.events.get`` / ``replay``).
    id: str
    #: The version that will run.
    version: Optional[int]


def need(value: Any, what: str) -> None:
    """Refuses a missing argument before any request."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InvalidArgumentError(f"{what} is required")


def seg(s: Any) -> str:
    """A path segment: names go as given (the node validates them), anything else escaped.

    An empty, ``.`` or ``..`` segment is refused: HTTP clients resolve dot segments
    before sending, so ``aliases.delete("f", "..")`` would otherwise become a request
    for the function itself."""
    text = str(s)
    if text in ("", ".", ".."):
        raise InvalidArgumentError(f"{text!r} is not a valid name or id")
    return quote(text, safe="-_.")


def csv(v: Union[None, str, Sequence[str]], what: str) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    items = list(v)
    if not all(isinstance(x, str) and x for x in items):
        raise InvalidArgumentError(f"{what}: a list of names")
    return ",".join(items)


def time_param(v: Optional[Time], what: str) -> Optional[str]:
    if v is None:
        return None
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return str(int(v.timestamp()))
    if isinstance(v, bool):
        raise InvalidArgumentError(f"{what}: a datetime, Unix seconds or RFC 3339 text")
    if isinstance(v, (int, float)):
        return str(int(v))
    if isinstance(v, str) and v.strip():
        return v
    raise InvalidArgumentError(f"{what}: a datetime, Unix seconds or RFC 3339 text")


def params(**kv: Optional[str]) -> Optional[Dict[str, str]]:
    out = {k: v for k, v in kv.items() if v is not None}
    return out or None


def payload_bytes(payload: Any) -> bytes:
    """bytes / str go as given; anything else as JSON; ``None`` is an empty body."""
    if payload is None:
        return b""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return _json.dumps(payload).encode()


def _field(key: str) -> Callable[[httpx.Response], Any]:
    return lambda r: r.json()[key]


def _int_header(resp: httpx.Response, name: str) -> Optional[int]:
    v = resp.headers.get(name)
    return int(v) if v is not None and v.isdigit() else None


#: Where a tenant-scoped path names its tenant until the client has learnt it (GET
#: /api/v1/whoami); never a real segment (``seg`` escapes ``{`` and ``}``).
_TENANT_SLOT = re.compile(r"\{tenant:([^}]*)\}")


class Scope:
    """The tenant of tenant-scoped calls, shared by a client's resources.

    Named (``tenant=``, ``$HELIXFLOW_TENANT``, ``with_tenant``), it is used as given.
    Otherwise the first tenant-scoped call asks the node once (``GET /api/v1/whoami``)
    and the answer is kept for the client's life; the platform admin key has no tenant,
    so its tenant-scoped calls raise before anything tenant-scoped is sent.
    """

    def __init__(self, tenant: Optional[str]) -> None:
        self.tenant_name = tenant
        self._whoami: Optional[JSON] = None
        self._lock = threading.Lock()
        self._alock: Optional[asyncio.Lock] = None

    def tenant(self, call: str) -> str:
        """The tenant's path segment, or a slot :meth:`bind` fills in before sending."""
        if self.tenant_name:
            return seg(self.tenant_name)
        return "{tenant:" + call + "}"

    @staticmethod
    def _whoami_op() -> Op[JSON]:
        return Op("GET", f"{API}/whoami")

    def whoami(self, transport: Any) -> JSON:
        """The node's ``GET /api/v1/whoami`` answer for this client's key, asked once."""
        with self._lock:
            if self._whoami is None:
                self._whoami = transport.run(self._whoami_op())
            return self._whoami

    async def awhoami(self, transport: Any) -> JSON:
        if self._alock is None:
            self._alock = asyncio.Lock()
        async with self._alock:
            if self._whoami is None:
                self._whoami = await transport.run(self._whoami_op())
            return self._whoami

    def bind(self, op: Op[Any], transport: Any) -> Op[Any]:
        """``op`` with its tenant filled in (learnt with :meth:`whoami` if need be)."""
        m = _TENANT_SLOT.search(op.path)
        return op if m is None else self._fill(op, m.group(1), self.whoami(transport))

    async def abind(self, op: Op[Any], transport: Any) -> Op[Any]:
        m = _TENANT_SLOT.search(op.path)
        return op if m is None else self._fill(op, m.group(1), await self.awhoami(transport))

    @staticmethod
    def _fill(op: Op[Any], call: str, me: JSON) -> Op[Any]:
        tenant = me.get("tenant")
        if not tenant:
            raise InvalidArgumentError(
                f"{call} is scoped to a tenant and the platform admin key has none of its "
                "own: pass tenant=... to the client (or set HELIXFLOW_TENANT), or use "
                "client.with_tenant(name)."
            )
        return dataclasses.replace(op, path=_TENANT_SLOT.sub(seg(tenant), op.path))


# --- functions -------------------------------------------------------------------


class FunctionsOps:
    _scope: Scope

    def _base(self, call: str) -> str:
        return f"{API}/tenants/{self._scope.tenant(call)}/functions"

    def _fn(self, call: str, name: str) -> str:
        need(name, f"{call}: name")
        return f"{self._base(call)}/{seg(name)}"

    def _deploy(
        self,
        name: str,
        component: Source,
        alias: Optional[str],
        config: Optional[Mapping[str, Any]],
        description: Optional[str],
        progress: Optional[ProgressCallback],
    ) -> Op[JSON]:
        path = self._fn("functions.deploy", name) + "/versions"
        need(component, "functions.deploy: component (the .wasm bytes or its path)")
        headers = {"content-type": "application/wasm"}
        if config is not None:
            headers["x-helixflow-config"] = _json.dumps(dict(config))
        return Op(
            "POST",
            path,
            params=params(alias=alias, description=description or None),
            body=Upload(component, progress, "functions.deploy: component"),
            headers=headers,
        )

    def _list(self) -> Op[List[JSON]]:
        return Op("GET", self._base("functions.list"), parse=_field("functions"))

    def _get(self, name: str) -> Op[JSON]:
        return Op("GET", self._fn("functions.get", name))

    def _delete(self, name: str) -> Op[JSON]:
        return Op("DELETE", self._fn("functions.delete", name))

    def _versions(self, name: str) -> Op[List[JSON]]:
        return Op("GET", self._fn("functions.versions", name) + "/versions", parse=_field("versions"))

    def _version(self, method: str, call: str, name: str, version: int) -> Op[JSON]:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidArgumentError(f"{call}: version must be a positive int")
        return Op(method, f"{self._fn(call, name)}/versions/{version}")

    def _get_config(self, name: str) -> Op[JSON]:
        return Op("GET", self._fn("functions.get_config", name) + "/config")

    def _set_config(self, name: str, config: Mapping[str, Any]) -> Op[JSON]:
        path = self._fn("functions.set_config", name) + "/config"
        need(config, "functions.set_config: config")
        return Op("PUT", path, json=dict(config))

    def _logs(self, name: str, limit: Optional[int]) -> Op[List[JSON]]:
        path = self._fn("functions.logs", name) + "/logs"
        return Op("GET", path, params=params(limit=None if limit is None else str(limit)), parse=_field("logs"))

    def _invoke(self, name: str, payload: Any, qualifier: Optional[str], retry: bool) -> Op[Invocation]:
        need(name, "functions.invoke: name")
        t = self._scope.tenant("functions.invoke")
        target = seg(name) + (f"@{seg(qualifier)}" if qualifier else "")

        def parse(r: httpx.Response) -> Invocation:
            return Invocation(
                body=r.content,
                content_type=r.headers.get("content-type"),
                version=_int_header(r, "x-helixflow-version"),
                request_id=r.headers.get("x-helixflow-request-id"),
            )

        return Op(
            "POST",
            f"/invoke/{t}/{target}",
            body=payload_bytes(payload),
            headers={"content-type": "application/octet-stream"},
            idempotent=retry,
            parse=parse,
        )

    def _invoke_event(self, name: str, payload: Any, qualifier: Optional[str], retry: bool) -> Op[QueuedEvent]:
        need(name, "functions.invoke_event: name")
        t = self._scope.tenant("functions.invoke_event")
        target = f"{t}:function:{seg(name)}" + (f":{seg(qualifier)}" if qualifier else "")

        def parse(r: httpx.Response) -> QueuedEvent:
            return QueuedEvent(
                id=r.headers.get("x-amzn-requestid", ""),
                version=_int_header(r, "x-amz-executed-version"),
            )

        return Op(
            "POST",
            f"/2015-03-31/functions/{target}/invocations",
            body=payload_bytes(payload),
            headers={"content-type": "application/json", "x-amz-invocation-type": "Event"},
            idempotent=retry,
            parse=parse,
        )


# --- aliases ---------------------------------------------------------------------


class AliasesOps:
    _scope: Scope

    def _path(self, call: str, function: str, alias: Optional[str] = None) -> str:
        need(function, f"{call}: function")
        p = f"{API}/tenants/{self._scope.tenant(call)}/functions/{seg(function)}/aliases"
        if alias is not None or call != "aliases.list":
            need(alias, f"{call}: alias")
            p += f"/{seg(alias)}"
        return p

    def _list(self, function: str) -> Op[List[JSON]]:
        return Op("GET", self._path("aliases.list", function), parse=_field("aliases"))

    def _get(self, function: str, alias: str) -> Op[JSON]:
        return Op("GET", self._path("aliases.get", function, alias))

    def _set(self, function: str, alias: str, version: int) -> Op[JSON]:
        path = self._path("aliases.set", function, alias)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidArgumentError("aliases.set: version must be a positive int")
        return Op("PUT", path, json={"version": version})

    def _delete(self, function: str, alias: str) -> Op[JSON]:
        return Op("DELETE", self._path("aliases.delete", function, alias))

    def _rollback(self, function: str, alias: str) -> Op[JSON]:
        return Op("POST", self._path("aliases.rollback", function, alias) + "/rollback")


# --- models ----------------------------------------------------------------------


class ModelsOps:
    _scope: Scope

    def _path(self, call: str, name: Optional[str] = None) -> str:
        p = f"{API}/tenants/{self._scope.tenant(call)}/models"
        if call != "models.list":
            need(name, f"{call}: name")
            p += f"/{seg(name)}"
        return p

    def _push(
        self,
        name: str,
        model: Source,
        config: Optional[Mapping[str, Any]],
        description: Optional[str],
        progress: Optional[ProgressCallback],
    ) -> Op[JSON]:
        path = self._path("models.push", name) + "/versions"
        need(model, "models.push: model (the ONNX bytes or its path)")
        headers = {}
        if config is not None:
            headers["x-helixflow-model-config"] = _json.dumps(dict(config))
        return Op(
            "POST",
            path,
            params=params(description=description or None),
            body=Upload(model, progress, "models.push: model"),
            headers=headers,
        )

    def _list(self) -> Op[List[JSON]]:
        return Op("GET", self._path("models.list"), parse=_field("models"))

    def _get(self, name: str) -> Op[JSON]:
        return Op("GET", self._path("models.get", name))

    def _get_version(self, name: str, version: int) -> Op[JSON]:
        path = self._path("models.get_version", name)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidArgumentError("models.get_version: version must be a positive int")
        return Op("GET", f"{path}/versions/{version}")

    def _config(self, name: str, config: Mapping[str, Any]) -> Op[JSON]:
        path = self._path("models.config", name) + "/config"
        need(config, "models.config: config")
        return Op("PUT", path, json=dict(config), parse=_field("model"))

    def _delete(self, name: str) -> Op[JSON]:
        return Op("DELETE", self._path("models.delete", name))

    def _preload(self, name: str) -> Op[JSON]:
        return Op("POST", self._path("models.preload", name) + "/preload", idempotent=True)


# --- keys and access keys --------------------------------------------------------


def _key_body(call: str, name: str, role: Optional[str], expires_in_secs: Optional[int]) -> JSON:
    need(name, f"{call}: name")
    body: JSON = {"name": name}
    if role is not None:
        body["role"] = role
    if expires_in_secs is not None:
        body["expires_in_secs"] = expires_in_secs
    return body


class KeysOps:
    _scope: Scope

    def _path(self, call: str) -> str:
        return f"{API}/tenants/{self._scope.tenant(call)}/keys"

    def _create(self, name: str, role: str, expires_in_secs: Optional[int]) -> Op[JSON]:
        path = self._path("keys.create")
        need(role, "keys.create: role (admin, developer, invoker or viewer)")
        return Op("POST", path, json=_key_body("keys.create", name, role, expires_in_secs))

    def _list(self) -> Op[List[JSON]]:
        return Op("GET", self._path("keys.list"), parse=_field("keys"))

    def _revoke(self, prefix: str) -> Op[JSON]:
        path = self._path("keys.revoke")
        need(prefix, "keys.revoke: prefix")
        return Op("DELETE", f"{path}/{seg(prefix)}")


class AccessKeysOps:
    _scope: Scope

    def _path(self, call: str) -> str:
        return f"{API}/tenants/{self._scope.tenant(call)}/access-keys"

    def _create(self, name: str, role: Optional[str], expires_in_secs: Optional[int]) -> Op[JSON]:
        path = self._path("access_keys.create")
        return Op("POST", path, json=_key_body("access_keys.create", name, role, expires_in_secs))

    def _list(self) -> Op[List[JSON]]:
        return Op("GET", self._path("access_keys.list"), parse=_field("access_keys"))

    def _revoke(self, access_key_id: str) -> Op[JSON]:
        path = self._path("access_keys.revoke")
        need(access_key_id, "access_keys.revoke: access_key_id")
        return Op("DELETE", f"{path}/{seg(access_key_id)}")


# --- events ----------------------------------------------------------------------


class EventsOps:
    _scope: Scope

    def _path(self, call: str) -> str:
        return f"{API}/tenants/{self._scope.tenant(call)}/events"

    def _list(self, status: Optional[str], function: Optional[str], limit: Optional[int]) -> Op[List[JSON]]:
        path = self._path("events.list")
        if status not in (None, "pending", "failed"):
            raise InvalidArgumentError("events.list: status is 'pending' or 'failed'")
        q = params(status=status, function=function, limit=None if limit is None else str(limit))
        return Op("GET", path, params=q, parse=_field("events"))

    def _get(self, id: str) -> Op[JSON]:
        path = self._path("events.get")
        need(id, "events.get: id")
        return Op("GET", f"{path}/{seg(id)}")

    def _replay(self, id: str) -> Op[JSON]:
        path = self._path("events.replay")
        need(id, "events.replay: id")
        return Op("POST", f"{path}/{seg(id)}/replay")


# --- tenants ---------------------------------------------------------------------


class TenantsOps:
    def _create(self, name: str, limits: Optional[Mapping[str, Any]]) -> Op[JSON]:
        need(name, "tenants.create: name")
        body: JSON = {"name": name}
        if limits is not None:
            body["limits"] = dict(limits)
        return Op("POST", f"{API}/tenants", json=body)

    def _list(self) -> Op[List[JSON]]:
        return Op("GET", f"{API}/tenants", parse=_field("tenants"))

    def _get(self, name: str) -> Op[JSON]:
        need(name, "tenants.get: name")
        return Op("GET", f"{API}/tenants/{seg(name)}")


# --- usage, budgets, analytics ---------------------------------------------------


def _usage_params(
    call: str,
    start: Optional[Time],
    end: Optional[Time],
    step: Optional[str],
    group_by: Union[None, str, Sequence[str]] = None,
    metrics: Union[None, str, Sequence[str]] = None,
) -> Optional[Dict[str, str]]:
    return params(
        **{
            "from": time_param(start, f"{call}: start"),
            "to": time_param(end, f"{call}: end"),
            "step": step,
            "group_by": csv(group_by, f"{call}: group_by"),
            "metrics": csv(metrics, f"{call}: metrics"),
        }
    )


class UsageOps:
    _scope: Scope

    def _query(
        self,
        start: Optional[Time],
        end: Optional[Time],
        step: Optional[str],
        group_by: Union[None, str, Sequence[str]],
        metrics: Union[None, str, Sequence[str]],
    ) -> Op[JSON]:
        t = self._scope.tenant("usage.query")
        q = _usage_params("usage.query", start, end, step, group_by, metrics)
        return Op("GET", f"{API}/tenants/{t}/usage", params=q)

    def _prices(self) -> Op[JSON]:
        return Op("GET", f"{API}/tenants/{self._scope.tenant('usage.prices')}/prices")


class BudgetOps:
    _scope: Scope

    def _path(self, call: str) -> str:
        return f"{API}/tenants/{self._scope.tenant(call)}/budget"

    def _get(self) -> Op[JSON]:
        return Op("GET", self._path("budget.get"))

    def _set(self, budget: Mapping[str, Any]) -> Op[JSON]:
        path = self._path("budget.set")
        need(budget, "budget.set: budget")
        return Op("PUT", path, json=dict(budget))

    def _delete(self) -> Op[JSON]:
        return Op("DELETE", self._path("budget.delete"))


class AnalyticsOps:
    _scope: Scope

    def _path(self, call: str, id: Optional[str] = None) -> str:
        p = f"{API}/tenants/{self._scope.tenant(call)}/dashboards"
        if id is not None or call not in ("analytics.create_dashboard", "analytics.list_dashboards"):
            need(id, f"{call}: id")
            p += f"/{seg(id)}"
        return p

    def _create_dashboard(
        self,
        name: str,
        metrics: Sequence[str],
        dimensions: Optional[Sequence[str]],
        alerts: Optional[Sequence[str]],
    ) -> Op[JSON]:
        path = self._path("analytics.create_dashboard")
        need(name, "analytics.create_dashboard: name")
        if isinstance(metrics, str) or not metrics:
            raise InvalidArgumentError("analytics.create_dashboard: metrics is a non-empty list")
        body: JSON = {"name": name, "metrics": list(metrics)}
        if dimensions is not None:
            body["dimensions"] = list(dimensions)
        if alerts is not None:
            body["alerts"] = list(alerts)
        return Op("POST", path, json=body)

    def _list_dashboards(self) -> Op[List[JSON]]:
        return Op("GET", self._path("analytics.list_dashboards"), parse=_field("dashboards"))

    def _get_dashboard(self, id: str) -> Op[JSON]:
        return Op("GET", self._path("analytics.get_dashboard", id))

    def _dashboard_data(self, id: str, start: Optional[Time], end: Optional[Time], step: Optional[str]) -> Op[JSON]:
        path = self._path("analytics.dashboard_data", id) + "/data"
        return Op("GET", path, params=_usage_params("analytics.dashboard_data", start, end, step))

    def _delete_dashboard(self, id: str) -> Op[JSON]:
        return Op("DELETE", self._path("analytics.delete_dashboard", id))


__all__ = ["Invocation", "QueuedEvent", "JSON", "Time", "Source"]
