"""The control-plane and data-plane resources of :class:`helixflow.Client`.

``_async_resources.py`` is this file with every call awaited (tests check that the two
stay the same); the requests themselves are built in ``_ops.py``.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, TypeVar, Union

from ._ops import (
    JSON,
    AccessKeysOps,
    AliasesOps,
    AnalyticsOps,
    BudgetOps,
    EventsOps,
    FunctionsOps,
    Invocation,
    KeysOps,
    ModelsOps,
    QueuedEvent,
    Scope,
    Source,
    TenantsOps,
    Time,
    UsageOps,
)
from ._transport import Op, ProgressCallback, SyncTransport

T = TypeVar("T")


class _Resource:
    def __init__(self, transport: SyncTransport, scope: Scope) -> None:
        self._transport = transport
        self._scope = scope

    def _run(self, op: Op[T]) -> T:
        return self._transport.run(self._scope.bind(op, self._transport))


class Functions(FunctionsOps, _Resource):
    """Functions of the client's tenant: deploy, inspect, configure, invoke."""

    def deploy(
        self,
        name: str,
        component: Source,
        *,
        alias: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        description: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> JSON:
        """Uploads a new version of function ``name`` from a ``.wasm`` path or its bytes.

        ``alias`` points that alias at the new version; ``config`` (``memory_mb``,
        ``timeout_ms``, ``env``, ...) becomes the function's config; ``progress(sent,
        total)`` is called as the bytes go out. Returns ``{"version": {...}, "alias": ...}``.
        """
        return self._run(self._deploy(name, component, alias, config, description, progress))

    def list(self) -> List[JSON]:
        """Every function of the tenant."""
        return self._run(self._list())

    def get(self, name: str) -> JSON:
        """``{"function", "versions", "aliases"}`` of one function."""
        return self._run(self._get(name))

    def delete(self, name: str) -> JSON:
        """Deletes the function with all its versions and aliases."""
        return self._run(self._delete(name))

    def versions(self, name: str) -> List[JSON]:
        """The function's versions (immutable, addressed by SHA-256)."""
        return self._run(self._versions(name))

    def get_version(self, name: str, version: int) -> JSON:
        """One version."""
        return self._run(self._version("GET", "functions.get_version", name, version))

    def delete_version(self, name: str, version: int) -> JSON:
        """Deletes one version (not one an alias points at)."""
        return self._run(self._version("DELETE", "functions.delete_version", name, version))

    def get_config(self, name: str) -> JSON:
        """The function's config (environment values only for callers that may see them)."""
        return self._run(self._get_config(name))

    def set_config(self, name: str, config: Mapping[str, Any]) -> JSON:
        """Replaces the function's config; returns the function."""
        return self._run(self._set_config(name, config))

    def logs(self, name: str, *, limit: Optional[int] = None) -> List[JSON]:
        """Recent invocations with their captured stdout/stderr."""
        return self._run(self._logs(name, limit))

    def invoke(
        self,
        name: str,
        payload: Any = None,
        *,
        qualifier: Optional[str] = None,
        retry: bool = False,
    ) -> Invocation:
        """Runs the function's event handler on ``payload`` and returns its output.

        ``payload``: bytes or str as given, anything else as JSON. ``qualifier``: a
        version number or alias. An invocation is not assumed idempotent: it is retried
        on 429/503 or a network failure only with ``retry=True``. A handled error of the
        function raises :class:`helixflow.FunctionError`.
        """
        return self._run(self._invoke(name, payload, qualifier, retry))

    def invoke_event(
        self,
        name: str,
        payload: Any = None,
        *,
        qualifier: Optional[str] = None,
        retry: bool = False,
    ) -> QueuedEvent:
        """Queues an asynchronous (Event) invocation; returns its id at once.

        ``payload`` must be JSON (bytes or str as given, anything else encoded). Failed
        events are listed by ``client.events.list(status="failed")``.
        """
        return self._run(self._invoke_event(name, payload, qualifier, retry))


class Aliases(AliasesOps, _Resource):
    """Named pointers to a function's versions (``live``, ``canary``, ...)."""

    def list(self, function: str) -> List[JSON]:
        return self._run(self._list(function))

    def get(self, function: str, alias: str) -> JSON:
        return self._run(self._get(function, alias))

    def set(self, function: str, alias: str, version: int) -> JSON:
        """Points ``alias`` at ``version`` (creating the alias if needed)."""
        return self._run(self._set(function, alias, version))

    def delete(self, function: str, alias: str) -> JSON:
        return self._run(self._delete(function, alias))

    def rollback(self, function: str, alias: str) -> JSON:
        """Moves ``alias`` back to the version it pointed at before."""
        return self._run(self._rollback(function, alias))


class Models(ModelsOps, _Resource):
    """The tenant's model registry (``client.with_tenant("public").models``: every tenant's)."""

    def push(
        self,
        name: str,
        model: Source,
        *,
        config: Optional[Mapping[str, Any]] = None,
        description: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> JSON:
        """Uploads a new version of model ``name`` from an ONNX path or its bytes.

        ``config``: ``providers``, ``fallback``, ``max_batch``, ``max_delay_us``,
        ``trt_fp16``, ``serve`` (``{"kind": "embeddings"|"chat", "function": ...}``).
        """
        return self._run(self._push(name, model, config, description, progress))

    def list(self) -> List[JSON]:
        return self._run(self._list())

    def get(self, name: str) -> JSON:
        """``{"model", "versions", "sessions"}`` (this node's sessions of its latest version)."""
        return self._run(self._get(name))

    def get_version(self, name: str, version: int) -> JSON:
        return self._run(self._get_version(name, version))

    def config(self, name: str, config: Mapping[str, Any]) -> JSON:
        """Replaces the model's config; returns the model."""
        return self._run(self._config(name, config))

    def delete(self, name: str) -> JSON:
        return self._run(self._delete(name))

    def preload(self, name: str) -> JSON:
        """Loads the model's session on this node now."""
        return self._run(self._preload(name))


class Keys(KeysOps, _Resource):
    """The tenant's API keys (the secret is in :meth:`create`'s answer only)."""

    def create(self, name: str, role: str, *, expires_in_secs: Optional[int] = None) -> JSON:
        """A new key with ``role`` (admin, developer, invoker, viewer); ``["key"]`` is the secret."""
        return self._run(self._create(name, role, expires_in_secs))

    def list(self) -> List[JSON]:
        return self._run(self._list())

    def revoke(self, prefix: str) -> JSON:
        return self._run(self._revoke(prefix))


class AccessKeys(AccessKeysOps, _Resource):
    """SigV4 access key pairs for the Lambda-compatible Invoke API."""

    def create(
        self, name: str, *, role: Optional[str] = None, expires_in_secs: Optional[int] = None
    ) -> JSON:
        """A new pair (``invoker`` by default); ``["secret_access_key"]`` is shown only here."""
        return self._run(self._create(name, role, expires_in_secs))

    def list(self) -> List[JSON]:
        return self._run(self._list())

    def revoke(self, access_key_id: str) -> JSON:
        return self._run(self._revoke(access_key_id))


class Events(EventsOps, _Resource):
    """Asynchronous (Event) invocations: pending and failed ones, replay."""

    def list(
        self,
        *,
        status: Optional[str] = None,
        function: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[JSON]:
        """Pending and/or failed events (``status="pending"|"failed"``)."""
        return self._run(self._list(status, function, limit))

    def get(self, id: str) -> JSON:
        return self._run(self._get(id))

    def replay(self, id: str) -> JSON:
        """Runs a failed event again; returns ``{"id": new id, "replay_of": id}``."""
        return self._run(self._replay(id))


class Tenants(TenantsOps, _Resource):
    """Tenants (creating and listing them is the platform admin's)."""

    def create(self, name: str, *, limits: Optional[Mapping[str, Any]] = None) -> JSON:
        return self._run(self._create(name, limits))

    def list(self) -> List[JSON]:
        return self._run(self._list())

    def get(self, name: str) -> JSON:
        return self._run(self._get(name))


class Usage(UsageOps, _Resource):
    """Metered usage of the tenant."""

    def query(
        self,
        *,
        start: Optional[Time] = None,
        end: Optional[Time] = None,
        step: Optional[str] = None,
        group_by: Union[None, str, Sequence[str]] = None,
        metrics: Union[None, str, Sequence[str]] = None,
    ) -> JSON:
        """Usage from ``start`` to ``end`` (default: the last hour) per ``step`` (1m, 1h, 1d).

        Returns ``{"from", "to", "step", "group_by", "metrics", "series": [{"group",
        "points", "total"}]}``.
        """
        return self._run(self._query(start, end, step, group_by, metrics))

    def prices(self) -> JSON:
        """The price table that applies to the tenant."""
        return self._run(self._prices())


class Budget(BudgetOps, _Resource):
    """The tenant's monthly spend caps and rate limits."""

    def get(self) -> JSON:
        """``{"budget", "month", "resets_at", "spend"}``."""
        return self._run(self._get())

    def set(self, budget: Mapping[str, Any]) -> JSON:
        """Sets ``{"tenant": {...}, "callers": {...}}`` (tenant admins)."""
        return self._run(self._set(budget))

    def delete(self) -> JSON:
        return self._run(self._delete())


class Analytics(AnalyticsOps, _Resource):
    """Stored dashboards over the usage data."""

    def create_dashboard(
        self,
        name: str,
        metrics: Sequence[str],
        *,
        dimensions: Optional[Sequence[str]] = None,
        alerts: Optional[Sequence[str]] = None,
    ) -> JSON:
        """A dashboard, e.g. ``metrics=["cost_per_token", "model_usage"],
        dimensions=["time", "geography"]``; returns it with its ``id``."""
        return self._run(self._create_dashboard(name, metrics, dimensions, alerts))

    def list_dashboards(self) -> List[JSON]:
        return self._run(self._list_dashboards())

    def get_dashboard(self, id: str) -> JSON:
        return self._run(self._get_dashboard(id))

    def dashboard_data(
        self,
        id: str,
        *,
        start: Optional[Time] = None,
        end: Optional[Time] = None,
        step: Optional[str] = None,
    ) -> JSON:
        """Each panel's series."""
        return self._run(self._dashboard_data(id, start, end, step))

    def delete_dashboard(self, id: str) -> JSON:
        return self._run(self._delete_dashboard(id))
