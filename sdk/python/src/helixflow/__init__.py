"""HelixFlow's Python client.

    import helixflow
    client = helixflow.Client(api_key="your-key")
    response = client.chat.completions.create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hello!"}])

See ``Client`` for the resources and ``helixflow._errors`` for the exceptions.
"""

from ._client import DEFAULT_BASE_URL, AsyncClient, Client, __version__
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FunctionError,
    HelixFlowError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from ._ops import Invocation, QueuedEvent

__all__ = [
    "__version__",
    "DEFAULT_BASE_URL",
    "Client",
    "AsyncClient",
    "Invocation",
    "QueuedEvent",
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
