"""How often and how long to try, and how long a provider may make us wait.

``Retry-After`` (delta-seconds or an HTTP-date, or ``retry-after-ms``) is
honoured up to a cap: :data:`MAX_RETRY_AFTER` (600 s, the health monitor's
default ``max_cooldown``) or a lower ``RetryPolicy.max_retry_after``. A larger
value (``99999999``, a date in year 9999) is cut to the cap, logged once per
:class:`RetryAfterCap` at WARNING and then at DEBUG."""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Optional

import httpx

logger = logging.getLogger(__name__)

#: The longest wait a provider's ``Retry-After`` can impose, in seconds.
MAX_RETRY_AFTER = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try: ``max_retries`` retries after the first
    attempt, delays ``base_delay * 2**n`` (capped, with jitter), every attempt
    and wait inside ``deadline`` seconds; ``timeout`` bounds one attempt's
    connect/read/write; ``max_retry_after`` caps a provider's ``Retry-After``."""

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0
    timeout: float = 60.0
    connect_timeout: float = 10.0
    deadline: float = 120.0
    max_retry_after: float = MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        value: object = self.max_retry_after
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value <= MAX_RETRY_AFTER
        ):
            raise ValueError(
                f"invalid max_retry_after: {self.max_retry_after!r} "
                f"(seconds, > 0 and <= {MAX_RETRY_AFTER:g})"
            )

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt`` (0-based): exponential, full jitter in its upper half."""
        delay = min(self.max_delay, self.base_delay * (2**attempt))
        return float(delay * random.uniform(0.5, 1.0))


class RetryAfterCap:
    """Cuts ``Retry-After`` values to a maximum, logging the first cut it makes."""

    def __init__(self) -> None:
        self._logged = False
        self._lock = threading.Lock()

    def apply(
        self, seconds: Optional[float], model: Optional[str], maximum: float = MAX_RETRY_AFTER
    ) -> Optional[float]:
        """``seconds`` cut to ``maximum`` (``None`` stays ``None``)."""
        if seconds is None or seconds <= maximum:
            return seconds
        with self._lock:
            first, self._logged = not self._logged, True
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "Retry-After of %s for %s capped at %gs (the most a provider may impose)",
            "an unbounded time" if math.isinf(seconds) else f"{seconds:.0f}s",
            model or "a model",
            maximum,
        )
        return maximum


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an
    HTTP-date, uncapped (``inf`` for an overflowing number); ``None`` if absent
    or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def retry_after_of(headers: httpx.Headers) -> Optional[float]:
    """``retry-after-ms`` or ``Retry-After`` of a response, in seconds, uncapped."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            seconds = float(ms) / 1000.0
        except ValueError:
            seconds = math.nan
        if not math.isnan(seconds):
            return max(0.0, seconds)
    return parse_retry_after(headers.get("retry-after"))
