"""Error-typed fallbacks and fallback chains of failover calls
(:meth:`ModelRegistry.generate` and :meth:`ModelRegistry.stream`).

Which errors move a request on to another model (:func:`moves_on`): every
retryable one (a 5xx, a timeout, a refused or cut connection, a rate limit, a
malformed answer), plus two typed ones that the same model would only repeat:

* :class:`~orchestrator.errors.ContextLengthExceededError`: the next model
  must have a *known* context window larger than the failed model's (and at
  least the request's estimated size): a smaller or unknown window is not
  tried.
* :class:`~orchestrator.errors.ContentFilteredError`: the next model must be
  of another provider (one provider's models share its content filter).

Any other error (authentication, an invalid request, a missing model) is the
same on every model and is raised at once. These restrictions accumulate:
after a context-length error and then a content-filter error, the next model
needs both the larger window and a third provider.

A fallback chain is an ordered list of model names (or routing alias names,
resolved when the call needs them). It comes from the request
(``fallbacks=[...]``), else from the registry's chain for the model that
failed first (:meth:`ModelRegistry.set_fallbacks`, ``[fallbacks]`` in the
configuration). Without a chain, a failure moves on to the next-best eligible
model of the whole registry. With one, the next attempts are taken from the
chain only: from its first entry that has an eligible model not tried yet
(within an entry that names several models, the selector picks, and failures
move on among them before the chain does), in order, until the chain is
spent (:class:`~orchestrator.errors.FailoverExhaustedError`). Every attempt
still obeys the request's constraints, the restrictions above, the retry
budget and the deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from orchestrator.errors import (
    ContentFilteredError,
    ContextLengthExceededError,
    RateLimitError,
    error_class_of,
    is_retryable,
)

if TYPE_CHECKING:
    from orchestrator.core.model import Model

__all__ = ["MAX_CHAIN", "Narrowing", "check_chain", "check_name", "moves_on"]

#: The most entries a fallback chain may have.
MAX_CHAIN = 64
#: The longest model or alias name, in UTF-8 bytes.
MAX_NAME_BYTES = 256


def moves_on(exc: BaseException) -> bool:
    """Whether another model may succeed where this error failed (see the module)."""
    return is_retryable(exc) or isinstance(exc, (ContextLengthExceededError, ContentFilteredError))


def check_name(value: object, field_name: str) -> str:
    """A model or alias name: a str (not a subclass), non-empty, at most
    :data:`MAX_NAME_BYTES` bytes of UTF-8, no control characters."""
    if type(value) is not str:
        raise TypeError(
            f"invalid {field_name}: expected a model or alias name (str), "
            f"got {type(value).__name__} {value!r}"
        )
    if not value.strip():
        raise ValueError(f"invalid {field_name}: {value!r} (an empty name)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"invalid {field_name}: {value!r} is not valid Unicode text") from None
    if size > MAX_NAME_BYTES:
        raise ValueError(
            f"invalid {field_name}: {value[:40]!r}... is {size} bytes (at most {MAX_NAME_BYTES})"
        )
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise ValueError(f"invalid {field_name}: {value!r} contains a control character")
    return value


def check_chain(value: object, field_name: str = "fallbacks") -> tuple[str, ...]:
    """A fallback chain: a list or tuple of distinct names (at most
    :data:`MAX_CHAIN`); a string is refused rather than read as its letters."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"invalid {field_name}: expected a list of model or alias names, "
            f"got {type(value).__name__} {value!r}"
        )
    if len(value) > MAX_CHAIN:
        raise ValueError(f"invalid {field_name}: {len(value)} entries (at most {MAX_CHAIN})")
    names = tuple(check_name(v, f"{field_name}[{i}]") for i, v in enumerate(value))
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValueError(f"invalid {field_name}[{i}]: {name!r} is listed twice")
        seen.add(name)
    return names


@dataclass
class Narrowing:
    """What a request's failures so far rule out for its next attempts."""

    #: Tokens the request needs (its estimated input plus the output it asked for).
    needed_tokens: int
    #: The context window every next model must have, once a context-length error happened.
    min_window: Optional[int] = None
    #: Providers whose content filter refused the request.
    filtered_providers: list[str] = field(default_factory=list)

    def after(self, model: Model, exc: BaseException) -> str:
        """Take in a failure that moves on; returns why the next attempt is made."""
        what = f"{error_class_of(exc)} on {model.name}"
        if isinstance(exc, ContextLengthExceededError):
            window = model.capabilities.context_length
            floor = max(self.needed_tokens, window + 1 if window else 1, self.min_window or 1)
            self.min_window = floor
            return f"{what}: a known context window of at least {floor} tokens"
        if isinstance(exc, ContentFilteredError):
            if model.provider not in self.filtered_providers:
                self.filtered_providers.append(model.provider)
            return f"{what}: a provider other than {', '.join(self.filtered_providers)}"
        return what

    def rules_out_nothing(self) -> bool:
        """Whether no failure narrowed the next selections yet."""
        return self.min_window is None and not self.filtered_providers

    def context_length(self, asked: Optional[int]) -> Optional[int]:
        """The ``context_length`` constraint of the next selection."""
        if self.min_window is None:
            return asked
        return max(asked or 0, self.min_window)

    def excluded(self, models: Sequence[Model]) -> list[str]:
        """The registered models a filtering provider rules out."""
        if not self.filtered_providers:
            return []
        return [m.name for m in models if m.provider in self.filtered_providers]


def stays_candidate(exc: BaseException) -> bool:
    """A rate limit that said when it ends keeps its model a candidate: the
    core holds it ineligible until then (see :mod:`orchestrator.models.failover`)."""
    return isinstance(exc, RateLimitError) and bool(exc.retry_after)
