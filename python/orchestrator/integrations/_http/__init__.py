"""The HTTP layer every provider adapter shares, one module per concept
(after httpx's ``_exceptions``/``_config``/``_transports``):

* :mod:`._urls`: a base URL split from its credentials (:class:`Endpoint`);
* :mod:`._pool`: pooled keep-alive clients (:class:`ClientPool`);
* :mod:`._retries`: :class:`RetryPolicy` and the capped ``Retry-After``;
* :mod:`._errors`: statuses, error bodies and transport failures mapped into
  :mod:`orchestrator.errors`, redacted;
* :mod:`._streams`: SSE and NDJSON parsing;
* :mod:`._transport`: :class:`Transport`, requests with retries;
* :mod:`._base`: :class:`HTTPModel`, the base adapter.

Secrets live in :mod:`orchestrator._secrets`; nothing here knows a provider."""

from orchestrator._secrets import Secret, redact
from orchestrator.integrations._http._base import (
    CHAT_CAPABILITIES,
    HTTPModel,
    HTTPOptions,
    ShapeGuard,
    chat_messages,
    push_capabilities,
    same_model,
)
from orchestrator.integrations._http._errors import (
    ErrorDetail,
    error_detail,
    error_for_payload,
    transport_error,
)
from orchestrator.integrations._http._pool import (
    DEFAULT_POOL,
    ClientPool,
    aclose_clients,
    set_pool_limits,
)
from orchestrator.integrations._http._ratelimit import rate_limits_of
from orchestrator.integrations._http._retries import (
    MAX_RETRY_AFTER,
    RetryAfterCap,
    RetryPolicy,
    parse_retry_after,
    retry_after_of,
)
from orchestrator.integrations._http._streams import (
    SSEEvent,
    drain,
    iter_ndjson,
    iter_sse,
    iter_sse_json,
)
from orchestrator.integrations._http._transport import Transport
from orchestrator.integrations._http._urls import Endpoint

__all__ = [
    "CHAT_CAPABILITIES",
    "DEFAULT_POOL",
    "MAX_RETRY_AFTER",
    "ClientPool",
    "Endpoint",
    "ErrorDetail",
    "HTTPModel",
    "HTTPOptions",
    "RetryAfterCap",
    "RetryPolicy",
    "SSEEvent",
    "Secret",
    "ShapeGuard",
    "Transport",
    "aclose_clients",
    "chat_messages",
    "drain",
    "error_detail",
    "error_for_payload",
    "iter_ndjson",
    "iter_sse",
    "iter_sse_json",
    "parse_retry_after",
    "push_capabilities",
    "rate_limits_of",
    "redact",
    "retry_after_of",
    "same_model",
    "set_pool_limits",
    "transport_error",
]
