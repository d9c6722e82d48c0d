"""Every public exception of the library, in one module.

Model-call errors: every provider adapter maps its wire errors into the
:class:`ModelError` classes. Each carries ``error_class``, the name the
selection core records for the outcome, and ``retryable``, whether the same
request can succeed if tried again.

Registry errors: the Rust core raises :class:`StaleTicketError`,
:class:`UnknownSlotError`, :class:`DuplicateModelError` and
:class:`UnknownRequestError` itself (it imports
them from here), so callers catch by type and never parse a message.
Invalid arguments are ``ValueError``/``TypeError`` naming the field and value.

The errors of the configuration, the shared state, the cache's stores, the
CLI, the gateway and the evaluation are defined here too (and re-exported by
the modules that raise them, so their old import paths keep working). This
module imports nothing else of the package, so any module may import it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional, Union

if TYPE_CHECKING:
    from orchestrator.models.explanation import SelectionExplanation
    from orchestrator.models.failover import Attempt


def did_you_mean(value: str, options: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``value``, or ``""``:
    the hint of every error about an unknown enumerated value."""
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    if not close:  # "cost_based" -> "cost": one is the start of the other
        close = [o for o in options if o and (value.startswith(o) or o.startswith(value))][:1]
    return f" (did you mean {close[0]!r}?)" if close and value else ""


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


# ----- registry and selection --------------------------------------------------


class ModelNotFoundError(OrchestratorError, KeyError):
    """No model of that name is registered; the message suggests close names."""

    def __init__(self, name: str, known: Sequence[str] = ()) -> None:
        self.name = name
        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        if not known:
            hint = "; the registry is empty"
        super().__init__(f"no model named {name!r} is registered{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class AmbiguousModelError(OrchestratorError, LookupError):
    """A logical model's name was given where one model is meant, and it has
    several deployments: name one of ``deployments`` (``"<model>@<deployment>"``)."""

    def __init__(self, name: str, deployments: Sequence[str]) -> None:
        self.name = name
        self.deployments = list(deployments)
        super().__init__(
            f"{name!r} has {len(self.deployments)} deployments; name one of "
            + ", ".join(repr(d) for d in self.deployments)
        )


class DuplicateModelError(OrchestratorError, ValueError):
    """A model of that name is already registered, or the name is a routing
    alias (models and aliases share one namespace)."""


class StaleTicketError(OrchestratorError, ValueError):
    """A selection's ticket was already reported or released, has expired, or
    belongs to another model or registry: the outcome was not counted."""


class UnknownRequestError(OrchestratorError, ValueError):
    """Quality feedback names a request id no contextual decision is waiting
    under: never issued, already reported, dropped to make room for newer
    decisions (``ContextualSelector.max_pending``) or older than
    ``feedback_ttl_s``. Nothing was learned."""


class UnknownSlotError(OrchestratorError, LookupError):
    """No model is registered in that core slot any more (it was unregistered)."""


class NoEligibleModelsError(OrchestratorError):
    """No registered model satisfies the request. ``reasons`` maps each
    model's name to the constraint that excluded it; ``explanation`` is the
    full :class:`~orchestrator.models.explanation.SelectionExplanation`,
    taken in the same snapshot as the failed selection. ``retry_in`` is the
    seconds until the first model excluded for its health (an open circuit,
    or a provider's ``Retry-After`` window, inside which no model is probed)
    may be tried again; ``None`` when no model was excluded for its health."""

    def __init__(self, explanation: SelectionExplanation) -> None:
        self.explanation = explanation
        self.retry_in = explanation.retry_in
        self.reasons = {c.name: f"{c.constraint}: {c.reason}" for c in explanation.candidates}
        if not explanation.candidates:
            message = "no models are registered"
        else:
            lines = "; ".join(f"{name} ({why})" for name, why in self.reasons.items())
            message = f"no registered model satisfies the request: {lines}"
        super().__init__(message)


# ----- failover -------------------------------------------------------------------


class FailoverError(OrchestratorError):
    """A failover call gave up; ``attempts`` says what was tried and
    ``last_error`` (also the ``__cause__``) why the last try failed."""

    def __init__(
        self, message: str, attempts: list[Attempt], last_error: Optional[BaseException]
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


class FailoverExhaustedError(FailoverError):
    """Every allowed attempt failed with a retryable error, or no eligible
    model was left to try."""


class FailoverTimeoutError(FailoverError, TimeoutError):
    """The request's total ``deadline`` passed."""


# ----- configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One problem: where (file, line, dotted key) and what, in our words."""

    message: str
    path: Optional[str] = None
    line: Optional[int] = None
    key: Optional[str] = None

    def __str__(self) -> str:
        """``file:line: key: problem`` (the parts that are known)."""
        where = self.path or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.message) if part)


class ConfigError(OrchestratorError):
    """A configuration file is missing, unreadable, malformed or invalid.

    ``problems`` holds every problem found, each a line ``file:line: key:
    problem``; ``str(error)`` is those lines joined by newlines (one line when
    there is one problem). ``path``, ``line``, ``key`` and ``problem`` describe
    the first problem.
    """

    def __init__(
        self,
        problem: Union[str, list[ConfigProblem]],
        *,
        path: Optional[Union[str, os.PathLike[str]]] = None,
        key: Optional[str] = None,
        line: Optional[int] = None,
    ) -> None:
        if isinstance(problem, str):
            shown = None if path is None else str(path)
            items = [ConfigProblem(problem, shown, line, key)]
        else:
            items = list(problem)
        if not items:
            raise ValueError("a ConfigError needs at least one problem")
        self.items = items
        self.problems = [str(item) for item in items]
        first = items[0]
        self.path, self.line, self.key, self.problem = (
            first.path,
            first.line,
            first.key,
            first.message,
        )
        super().__init__("\n".join(self.problems))


# ----- shared state and the cache's stores -----------------------------------------


class SharedStateError(OrchestratorError):
    """The shared state cannot be used as configured (bad URL, namespace,
    credentials, or a namespace written with another format or discount)."""


class StateVersionError(SharedStateError):
    """The namespace in Redis was written by another format version."""


class BackendUnavailable(Exception):
    """A cache store is known to be down; the call was not attempted (a
    store's signal to the cache, which then goes on without it)."""


class CorruptEntry(Exception):
    """A stored cache entry could not be read back; it must be treated as a miss."""


class CountIncomplete(Exception):
    """Counting a cache store's entries was stopped at its time bound; the
    message says how far it got."""


# ----- command line, gateway, evaluation -------------------------------------------


class CLIError(OrchestratorError):
    """An error a command reports as one line, with its exit ``code``."""

    #: The exit code when none is given: the request failed.
    FAILED: ClassVar[int] = 1

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


class ServeError(OrchestratorError):
    """The gateway cannot start as asked (the message says why and what to do)."""


class KeyConfigurationError(OrchestratorError, ValueError):
    """A configured gateway key cannot be used (its variable is unset or empty)."""


class EvalError(OrchestratorError, ValueError):
    """A bad evaluation table, cost or protocol setting; the message names it."""


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
