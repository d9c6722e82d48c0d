"""What a provider said about its own rate limits with one response: the
requests and tokens it still allows and when each allowance resets. The HTTP
layer reads it from the response headers; the model's call record carries it
into the outcome, and the core tightens the model's window from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ReportedLimits:
    """Remaining requests/tokens and seconds until each resets (``None``: not said)."""

    remaining_requests: Optional[int] = None
    requests_reset: Optional[float] = None
    remaining_tokens: Optional[int] = None
    tokens_reset: Optional[float] = None

    def __bool__(self) -> bool:
        return self.remaining_requests is not None or self.remaining_tokens is not None
