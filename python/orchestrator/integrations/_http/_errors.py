"""HTTP statuses, provider error bodies and transport failures mapped into
:mod:`orchestrator.errors`. Every message is redacted as it is built (error
bodies echo keys: "Incorrect API key provided: sk-..."), and any
``Retry-After`` is capped (see :mod:`._retries`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

import httpx

from orchestrator._secrets import redact
from orchestrator.errors import (
    AuthenticationError,
    ContentFilteredError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamCutError,
)
from orchestrator.integrations._http._retries import MAX_RETRY_AFTER, RetryAfterCap

#: Caps ``Retry-After`` of errors built outside a transport (error events inside streams).
STREAM_RETRY_CAP = RetryAfterCap()


@dataclass
class ErrorDetail:
    """What an error body says, in the common shapes ``{"error": {...}}``,
    ``{"error": "..."}`` and ``{"message": ...}``."""

    message: str = ""
    type: str = ""
    code: str = ""
    retry_after: Optional[float] = None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def error_detail(body: Any) -> ErrorDetail:
    """Extract message, type and code from a decoded error body of any common shape."""
    detail = ErrorDetail()
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return detail
    err: Any = body.get("error", body)
    if isinstance(err, str):
        detail.message = err
        detail.type = str(body.get("error_type") or body.get("type") or "")
        return detail
    if not isinstance(err, dict):
        return detail
    detail.message = str(err.get("message") or body.get("message") or "")
    detail.type = str(err.get("type") or err.get("status") or "")
    code = err.get("code")
    detail.code = "" if code is None else str(code)
    details = err.get("details")
    if isinstance(details, list):  # google.rpc.RetryInfo
        for item in details:
            if isinstance(item, dict) and isinstance(item.get("retryDelay"), str):
                m = _DURATION.match(item["retryDelay"])
                if m:
                    detail.retry_after = float(m.group(1))
    return detail


_CONTEXT_WORDS = re.compile(
    r"context[ _-]?length|context[ _-]?window|maximum context|prompt is too long|"
    r"too many (?:input )?tokens|input token count .* exceeds|exceeds the maximum number of tokens|"
    r"input is too long|reduce the length of the messages|tokens \+ `?max_new_tokens`? must be",
    re.I,
)
_FILTER_WORDS = re.compile(r"content[ _-]?(?:policy|filter|management)|safety|blocked", re.I)


def error_for_payload(
    detail: ErrorDetail,
    *,
    status: Optional[int],
    model: Optional[str],
    retry_after: Optional[float] = None,
    cap: RetryAfterCap = STREAM_RETRY_CAP,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> ModelError:
    """The documented exception for an error status and/or an error body
    (also used for error events inside a stream, where ``status`` is None).
    ``retry_after`` (else the body's) is cut to ``max_retry_after`` by ``cap``."""
    text = " ".join(p for p in (detail.message, detail.type, detail.code) if p)
    message = detail.message or detail.type or (f"HTTP {status}" if status else "provider error")
    retry_after = retry_after if retry_after is not None else detail.retry_after
    kind = f"{detail.type} {detail.code}".lower()
    cls: type[ModelError]
    if _CONTEXT_WORDS.search(text):
        cls = ContextLengthExceededError
    elif status in (401, 403) or "authentication" in kind or "permission" in kind:
        cls = AuthenticationError
    elif status == 429 or "rate_limit" in kind or "resource_exhausted" in kind:
        cls = RateLimitError
    elif status == 404 or "not_found" in kind:
        cls = NotFoundError
    elif status == 408 or "timeout" in kind or "deadline" in kind:
        cls = ProviderTimeoutError
    elif (status is not None and status >= 500) or any(
        w in kind for w in ("overloaded", "api_error", "server", "internal", "unavailable")
    ):
        cls = ServerError
    elif _FILTER_WORDS.search(text):
        cls = ContentFilteredError
    elif status is not None and 400 <= status < 500:
        cls = InvalidRequestError
    else:
        cls = ServerError  # an error event with nothing to tell it apart
    exc = cls(
        redact(message),
        model=model,
        status_code=status,
        retry_after=cap.apply(retry_after, model, max_retry_after),
    )
    if "insufficient_quota" in kind:
        exc.__dict__["retryable"] = False  # a spent quota does not come back in seconds
    return exc


def transport_error(exc: httpx.HTTPError, model: Optional[str], streaming: bool) -> ModelError:
    """The documented exception for a failure below HTTP (connect, read, timeout)."""
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(f"timed out: {type(exc).__name__}", model=model)
    if streaming:
        return StreamCutError(redact(f"stream cut off: {type(exc).__name__}: {exc}"), model=model)
    return ProviderConnectionError(redact(f"{type(exc).__name__}: {exc}"), model=model)
