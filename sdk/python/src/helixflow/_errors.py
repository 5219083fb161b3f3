"""Typed exceptions.

Every failed HelixFlow call raises an :class:`APIError` subclass chosen by the HTTP
status, carrying the status, HelixFlow's stable error ``code``, its ``message`` and the
``request_id`` the node assigned (``x-helixflow-request-id``). Bad arguments are caught
before any request and raise :class:`InvalidArgumentError` (a ``ValueError``).

``client.chat`` and ``client.embeddings`` are the official ``openai`` package's
resources and raise its exceptions (``openai.NotFoundError`` and so on), unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

import httpx

__all__ = [
    "HelixFlowError",
    "InvalidArgumentError",
    "APIError",
    "APIConnectionError",
    "APITimeoutError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "PayloadTooLargeError",
    "UnprocessableEntityError",
    "FunctionError",
    "RateLimitError",
    "InternalServerError",
    "ServiceUnavailableError",
]


class HelixFlowError(Exception):
    """Base class of every exception this package raises."""


class InvalidArgumentError(HelixFlowError, ValueError):
    """A call's arguments are missing or invalid; raised before any request is sent."""


class APIError(HelixFlowError):
    """A request failed. ``status`` is the HTTP status (``None`` when no response came)."""

    status: Optional[int]
    code: str
    message: str
    request_id: Optional[str]
    body: Any
    retry_after: Optional[float]

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: str = "error",
        request_id: Optional[str] = None,
        body: Any = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        head = f"{self.status} {self.code}" if self.status is not None else self.code
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{rid}"


class APIConnectionError(APIError):
    """The node could not be reached, or the connection broke before an answer."""

    def __init__(self, message: str, *, code: str = "connection_error") -> None:
        super().__init__(message, code=code)


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")


class BadRequestError(APIError):
    """400: the request is invalid (``invalid_request``, ``invalid_json``, ...)."""


class AuthenticationError(APIError):
    """401: missing, malformed, expired or revoked credentials."""


class PermissionDeniedError(APIError):
    """403: the credential may not do this (role, or another tenant's resource)."""


class NotFoundError(APIError):
    """404: no such tenant, function, version, alias, model, key or event."""


class ConflictError(APIError):
    """409: the resource exists already, or the change conflicts with its state."""


class PayloadTooLargeError(APIError):
    """413: the body is over the node's limit."""


class UnprocessableEntityError(APIError):
    """422."""


class FunctionError(UnprocessableEntityError):
    """422 ``function_error``: the function ran and returned a handled error.

    ``error_type`` is the type the function gave its error.
    """

    error_type: Optional[str]

    def __init__(self, message: str, *, error_type: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.error_type = error_type


class RateLimitError(APIError):
    """429: a rate, concurrency or budget limit; ``retry_after`` says when to retry."""


class InternalServerError(APIError):
    """5xx."""


class ServiceUnavailableError(InternalServerError):
    """503: capacity exhausted or the store unavailable; worth retrying."""


_BY_STATUS: Dict[int, Type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils
        import time

        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def error_from_response(resp: httpx.Response) -> APIError:
    """The typed exception for an error response.

    Understands HelixFlow's ``{"error": {"code", "message"}}`` and the Invoke API's AWS
    shape (``x-amzn-ErrorType`` + ``{"Type", "message"}``).
    """
    status = resp.status_code
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    code: Optional[str] = None
    message: Optional[str] = None
    error_type: Optional[str] = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code") if isinstance(err.get("code"), str) else None
            message = err.get("message") if isinstance(err.get("message"), str) else None
            et = err.get("error_type")
            error_type = et if isinstance(et, str) else None
        else:
            code = resp.headers.get("x-amzn-errortype") or body.get("Type") or body.get("__type")
            message = body.get("message") or body.get("Message")
    if not message:
        message = resp.text[:500] if body is None and resp.text else resp.reason_phrase
    request_id = resp.headers.get("x-helixflow-request-id") or resp.headers.get("x-amzn-requestid")
    kw: Dict[str, Any] = dict(
        status=status,
        code=code or f"http_{status}",
        request_id=request_id,
        body=body,
        retry_after=parse_retry_after(resp.headers.get("retry-after")),
    )
    if code == "function_error":
        return FunctionError(message or "", error_type=error_type, **kw)
    cls = _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIError)
    return cls(message or "", **kw)
