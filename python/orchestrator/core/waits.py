"""Who waits out a provider's ``Retry-After``: the HTTP layer or its caller.

Called on its own, a model's HTTP layer sleeps for a ``Retry-After`` and tries
the same provider again. Called by failover (``registry.generate`` and
``stream``) with a deadline, it must not: another eligible model may answer
at once, and failover already waits for the soonest slot itself, within the
deadline and ``max_wait``, knowing the ``Retry-After`` through the core.
(Without a deadline failover never waits, so the HTTP layer keeps its retry.) A
sleep in the HTTP layer as well made one request wait twice per attempt (a
gateway request held 58 s by a ``Retry-After: 7``). A context variable, as a
deadline is carried: each task sees its own request's.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_CALLER_WAITS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "orchestrator_caller_waits", default=False
)


def caller_waits() -> bool:
    """Whether the current call's caller waits out a ``Retry-After`` itself."""
    return _CALLER_WAITS.get()


@contextlib.contextmanager
def waited_by_caller() -> Iterator[None]:
    """Model calls made inside give a ``Retry-After`` back to the caller at
    once instead of sleeping on it and retrying."""
    token = _CALLER_WAITS.set(True)
    try:
        yield
    finally:
        _CALLER_WAITS.reset(token)
