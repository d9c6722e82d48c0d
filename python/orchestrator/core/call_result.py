"""What a finished model call produced and used.

Its own module so that the model layer and the cache can both build one
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CallResult"]


@dataclass(frozen=True)
class CallResult:
    """A finished call: the text and what it used. Caches store these; an
    answer served from a cache is ``cached``, cost nothing and carries the
    token counts of the call that produced it."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    latency: float
    cached: bool = False
