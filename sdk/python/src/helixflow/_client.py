"""``Client`` and ``AsyncClient``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import httpx

from . import _async_resources as ar
from . import _resources as r
from ._errors import InvalidArgumentError
from ._ops import Scope
from ._transport import AsyncTransport, SyncTransport

if TYPE_CHECKING:  # pragma: no cover
    from openai import AsyncOpenAI, OpenAI
    from openai.resources.chat import AsyncChat, Chat
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings

__version__ = "0.1.0"

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2
#: The longest ``Retry-After`` a retry waits for; longer waits raise at once.
DEFAULT_MAX_RETRY_WAIT = 60.0


def _settings(
    api_key: Optional[str], base_url: Optional[str], tenant: Optional[str], timeout: float, max_retries: int
) -> Tuple[str, str, Optional[str]]:
    """The checked settings: explicit arguments, else the environment, else defaults."""
    api_key = api_key if api_key is not None else os.environ.get("HELIXFLOW_API_KEY")
    if not api_key or not api_key.strip():
        raise InvalidArgumentError(
            "api_key is required: pass api_key=... or set HELIXFLOW_API_KEY "
            "(a HelixFlow API key hfk_..., a JWT, or the platform admin key)"
        )
    base_url = base_url or os.environ.get("HELIXFLOW_BASE_URL") or DEFAULT_BASE_URL
    if not base_url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
    tenant = tenant if tenant is not None else (os.environ.get("HELIXFLOW_TENANT") or None)
    if timeout is not None and timeout <= 0:
        raise InvalidArgumentError("timeout must be > 0 seconds")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidArgumentError("max_retries must be an int >= 0")
    return api_key.strip(), base_url.rstrip("/"), tenant


def _headers(api_key: str) -> Dict[str, str]:
    return {"authorization": f"Bearer {api_key}", "user-agent": f"helixflow-python/{__version__}"}


class Client:
    """A HelixFlow client.

    ``client.chat.completions.create(...)`` and ``client.embeddings.create(...)`` are the
    official ``openai`` package pointed at ``{base_url}/v1`` (same arguments, same
    return types, same exceptions). Everything else is HelixFlow's own API:
    ``functions``, ``aliases``, ``models``, ``keys``, ``access_keys``, ``events``,
    ``tenants``, ``usage``, ``budget`` and ``analytics``.

    :param api_key: an API key (``hfk_...``), a JWT or the platform admin key; default
        ``$HELIXFLOW_API_KEY``.
    :param base_url: the node; default ``$HELIXFLOW_BASE_URL`` or http://127.0.0.1:8080.
    :param tenant: the tenant of tenant-scoped calls; default ``$HELIXFLOW_TENANT``.
        Without one, a tenant key's (or JWT's) tenant is learnt from the node on the
        first tenant-scoped call (``GET /api/v1/whoami``, once per client). The
        platform admin key has no tenant: name one (or use :meth:`with_tenant`) for
        its tenant-scoped calls; with it, it is also sent as the OpenAI organization.
    :param timeout: seconds to wait for a connection, a write or a read.
    :param max_retries: retries of an idempotent call (GET, PUT, DELETE; invocations
        with ``retry=True``) after a 429, a 503 or a network failure, with exponential
        backoff and jitter, or exactly the ``Retry-After`` the node sent (up to
        ``max_retry_wait`` seconds; longer waits raise at once).
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        tenant: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        http_client: Optional[httpx.Client] = None,
    ) -> None:
        self.api_key, self.base_url, self.tenant = _settings(api_key, base_url, tenant, timeout, max_retries)
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._openai: Optional["OpenAI"] = None
        t = SyncTransport(self._http, max_retries, max_retry_wait, self.base_url, _headers(self.api_key))
        s = Scope(self.tenant)
        self._transport, self._scope = t, s
        self.functions = r.Functions(t, s)
        self.aliases = r.Aliases(t, s)
        self.models = r.Models(t, s)
        self.keys = r.Keys(t, s)
        self.access_keys = r.AccessKeys(t, s)
        self.events = r.Events(t, s)
        self.tenants = r.Tenants(t, s)
        self.usage = r.Usage(t, s)
        self.budget = r.Budget(t, s)
        self.analytics = r.Analytics(t, s)

    def whoami(self) -> Dict[str, Any]:
        """Who the client's key is: ``{"tenant": "acme" or None, "role": ..., "subject":
        ..., "via": "api_key" | "jwt" | "admin_key"}`` (``GET /api/v1/whoami``, asked once
        per client and kept; ``tenant`` is ``None`` for the platform admin)."""
        return dict(self._scope.whoami(self._transport))

    def with_tenant(self, tenant: str) -> "Client":
        """The same client (connection pool shared) scoped to ``tenant``."""
        if not tenant or not tenant.strip():
            raise InvalidArgumentError("with_tenant: tenant is required")
        return Client(
            self.api_key,
            base_url=self.base_url,
            tenant=tenant,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_retry_wait=self.max_retry_wait,
            http_client=self._http,
        )

    @property
    def openai(self) -> "OpenAI":
        """The official OpenAI client pointed at ``{base_url}/v1``."""
        if self._openai is None:
            import openai

            self._openai = openai.OpenAI(
                api_key=self.api_key,
                base_url=f"{self.base_url}/v1",
                organization=self.tenant,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._openai

    @property
    def chat(self) -> "Chat":
        """``openai.OpenAI().chat``: ``client.chat.completions.create(...)``."""
        return self.openai.chat

    @property
    def embeddings(self) -> "Embeddings":
        """``openai.OpenAI().embeddings``: ``client.embeddings.create(...)``."""
        return self.openai.embeddings

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._openai is not None:
            self._openai.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient:
    """:class:`Client` for asyncio: the same resources and arguments, every call awaited
    (``await client.functions.invoke(...)``); chat and embeddings are ``openai.AsyncOpenAI``'s."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        tenant: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
        http_client: Optional[httpx.AsyncClient] = None,
    ) -> None:
        self.api_key, self.base_url, self.tenant = _settings(api_key, base_url, tenant, timeout, max_retries)
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._openai: Optional["AsyncOpenAI"] = None
        t = AsyncTransport(self._http, max_retries, max_retry_wait, self.base_url, _headers(self.api_key))
        s = Scope(self.tenant)
        self._transport, self._scope = t, s
        self.functions = ar.AsyncFunctions(t, s)
        self.aliases = ar.AsyncAliases(t, s)
        self.models = ar.AsyncModels(t, s)
        self.keys = ar.AsyncKeys(t, s)
        self.access_keys = ar.AsyncAccessKeys(t, s)
        self.events = ar.AsyncEvents(t, s)
        self.tenants = ar.AsyncTenants(t, s)
        self.usage = ar.AsyncUsage(t, s)
        self.budget = ar.AsyncBudget(t, s)
        self.analytics = ar.AsyncAnalytics(t, s)

    async def whoami(self) -> Dict[str, Any]:
        """:meth:`Client.whoami`, awaited."""
        return dict(await self._scope.awhoami(self._transport))

    def with_tenant(self, tenant: str) -> "AsyncClient":
        """The same client (connection pool shared) scoped to ``tenant``."""
        if not tenant or not tenant.strip():
            raise InvalidArgumentError("with_tenant: tenant is required")
        return AsyncClient(
            self.api_key,
            base_url=self.base_url,
            tenant=tenant,
            timeout=self.timeout,
            max_retries=self.max_retries,
            max_retry_wait=self.max_retry_wait,
            http_client=self._http,
        )

    @property
    def openai(self) -> "AsyncOpenAI":
        """The official async OpenAI client pointed at ``{base_url}/v1``."""
        if self._openai is None:
            import openai

            self._openai = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=f"{self.base_url}/v1",
                organization=self.tenant,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._openai

    @property
    def chat(self) -> "AsyncChat":
        """``openai.AsyncOpenAI().chat``: ``await client.chat.completions.create(...)``."""
        return self.openai.chat

    @property
    def embeddings(self) -> "AsyncEmbeddings":
        """``openai.AsyncOpenAI().embeddings``: ``await client.embeddings.create(...)``."""
        return self.openai.embeddings

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()
        if self._openai is not None:
            await self._openai.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
