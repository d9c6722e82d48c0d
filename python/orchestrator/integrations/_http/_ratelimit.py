"""Rate-limit headers of a provider's response, as :class:`ReportedLimits`.

Read: OpenAI's (and Groq's, Azure's, most OpenAI-compatible servers')
``x-ratelimit-remaining-requests``/``-tokens`` with ``x-ratelimit-reset-requests``/
``-tokens`` (durations such as ``1s``, ``6m0s``, ``20ms``, or plain seconds), and
Anthropic's ``anthropic-ratelimit-requests-remaining``/``-reset`` and
``anthropic-ratelimit-{tokens,input-tokens,output-tokens}-remaining``/``-reset``
(RFC 3339 times). Anthropic's separate input/output allowances are folded into
one conservatively: the smallest remaining count, the latest reset. A value that
cannot be read is ignored (the call still counts); counts are clamped to
:data:`MAX_REMAINING`; resets are non-negative and finite (the core caps them at
its window, so a hostile header cannot park a model). ``Retry-After`` is read
by :mod:`._retries`."""

from __future__ import annotations

import datetime
import math
import re
import time
from collections.abc import Iterable
from typing import Optional

import httpx

from orchestrator.core.rate_limits import ReportedLimits

#: The largest remaining count passed on (a larger header value is clamped).
MAX_REMAINING = 2**63 - 1

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ms|h|m|s))")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_count(value: Optional[str]) -> Optional[int]:
    """A non-negative integer header value, clamped; ``None`` if absent or unreadable."""
    if value is None or not value.strip().isdigit():
        return None
    return min(int(value.strip()), MAX_REMAINING)


def parse_reset(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds until a reset: a duration (``1m30s``, ``250ms``, ``2``) or an
    RFC 3339 time; ``None`` if absent or unreadable; never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    seconds: Optional[float]
    try:
        seconds = float(text)
    except ValueError:
        seconds = _duration(text)
        if seconds is None:
            seconds = _until(text, time.time() if now is None else now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _duration(text: str) -> Optional[float]:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _until(text: str, now: float) -> Optional[float]:
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() - now


def _tightest(
    headers: httpx.Headers, names: Iterable[tuple[str, str]], now: Optional[float]
) -> tuple[Optional[int], Optional[float]]:
    """The smallest remaining count of ``(remaining, reset)`` header pairs, and the latest reset."""
    remaining: Optional[int] = None
    reset: Optional[float] = None
    for count_name, reset_name in names:
        count = parse_count(headers.get(count_name))
        if count is None:
            continue
        remaining = count if remaining is None else min(remaining, count)
        seconds = parse_reset(headers.get(reset_name), now)
        if seconds is not None:
            reset = seconds if reset is None else max(reset, seconds)
    return remaining, reset


def names_rate_limits(raw_headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether any header is named ``*ratelimit*``, as every header that
    :func:`rate_limits_of` reads is: most responses of most providers have
    none, which one pass over the raw names tells."""
    return b"ratelimit" in b"\n".join([name for name, _ in raw_headers]).lower()


def rate_limits_of(headers: httpx.Headers, now: Optional[float] = None) -> ReportedLimits:
    """What a response's headers say of the provider's limits (empty when nothing)."""
    if not names_rate_limits(headers.raw):
        return ReportedLimits(None, None, None, None)
    requests, requests_reset = _tightest(
        headers,
        [
            ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
            ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
        ],
        now,
    )
    tokens, tokens_reset = _tightest(
        headers,
        [
            ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
            ("anthropic-ratelimit-tokens-remaining", "anthropic-ratelimit-tokens-reset"),
            (
                "anthropic-ratelimit-input-tokens-remaining",
                "anthropic-ratelimit-input-tokens-reset",
            ),
            (
                "anthropic-ratelimit-output-tokens-remaining",
                "anthropic-ratelimit-output-tokens-reset",
            ),
        ],
        now,
    )
    return ReportedLimits(requests, requests_reset, tokens, tokens_reset)
