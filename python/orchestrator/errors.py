"""One documented hierarchy for everything a model call can raise.

Every provider adapter maps its wire errors into these classes. Each class
carries ``error_class``, the name the selection core records for the outcome,
and ``retryable``, whether the same request can succeed if tried again.
"""

from __future__ import annotations

from typing import ClassVar, Optional


class OrchestratorError(Exception):
    """Base class of every error this library raises on purpose."""


class ModelError(OrchestratorError):
    """A model call failed. ``model`` names the model when known."""

    error_class: ClassVar[str] = "other"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        model: Optional[str] = None,
        status_code: Optional[int] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = super().__str__()
        if self.model:
            text = f"[{self.model}] {text}"
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        return text


class AuthenticationError(ModelError):
    """The provider refused the credentials (401/403). Opens the breaker at once."""

    error_class = "authentication"


class RateLimitError(ModelError):
    """The provider is rate limiting (429); ``retry_after`` is its ``Retry-After``."""

    error_class = "rate_limit"
    retryable = True


class ContextLengthExceededError(ModelError):
    """The request does not fit the model's context window."""

    error_class = "context_length"


class ContentFilteredError(ModelError):
    """The provider refused or cut the answer for its content policy."""

    error_class = "content_filter"


class ServerError(ModelError):
    """The provider failed (5xx)."""

    error_class = "server_error"
    retryable = True


class ProviderTimeoutError(ModelError):
    """No answer within the deadline."""

    error_class = "timeout"
    retryable = True


class MalformedResponseError(ModelError):
    """The answer could not be parsed, was empty, or was for another model."""

    error_class = "malformed_response"
    retryable = True


class StreamCutError(ModelError):
    """A stream stopped before its end event."""

    error_class = "stream_cut"
    retryable = True


class ProviderConnectionError(ModelError):
    """The provider could not be reached (refused, reset, DNS)."""

    error_class = "connection"
    retryable = True


class NotFoundError(ModelError):
    """The provider does not know the model or endpoint (404)."""

    error_class = "other"


class InvalidRequestError(ModelError):
    """The provider rejected the request as malformed (400/422)."""

    error_class = "other"


class UnsupportedOperationError(ModelError):
    """The model does not offer this operation (for example embeddings)."""

    error_class = "other"


def error_class_of(exc: BaseException) -> str:
    """The core's error-class name for an exception raised by a model call."""
    if isinstance(exc, ModelError):
        return exc.error_class
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "connection"
    return "other"


def is_retryable(exc: BaseException) -> bool:
    """Whether the same request may succeed on another try (or another model)."""
    if isinstance(exc, ModelError):
        return exc.retryable
    return isinstance(exc, (TimeoutError, ConnectionError))
