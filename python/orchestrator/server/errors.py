"""Errors the gateway answers with, in OpenAI's format
(``{"error": {"message", "type", "param", "code"}}``), and the mapping from
what the registry raised to an HTTP status.

Mapping (documented in the README):

* ``NoEligibleModelsError`` → 400 ``no_eligible_model`` (the request's
  constraints exclude every model), naming each model's reason; when every
  model is excluded for its health or its rate limit, 429 (a full ``rpm``/
  ``tpm`` window, a spent provider allowance, or inside a provider's
  Retry-After window) or 503 (circuits open), with ``Retry-After`` = the
  core's ``retry_in``.
* every attempt failed with a rate limit → 429 with ``Retry-After`` (the
  providers' largest, at least 1 s).
* every tried model's circuit is open (cooling down) → 503 with
  ``Retry-After`` (the soonest model's cool-down).
* the request's deadline passed, or every attempt timed out → 504.
* any other exhausted failover → 502; the attempts are listed in the message
  and in ``error.attempts``.
* a non-retryable provider rejection of the request (context length, content
  filter, invalid request) → 400 with the error class as ``code``.

Provider messages are never copied into a client's error: only model names
and error classes are, so a provider key or endpoint echoed in an upstream
error cannot reach the client.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from orchestrator.errors import ModelError, RateLimitError
from orchestrator.models.failover import Attempt, FailoverError, FailoverTimeoutError
from orchestrator.models.health_monitor import ModelHealthMonitor
from orchestrator.models.model_registry import ModelRegistry, NoEligibleModelsError


@dataclass
class GatewayError(Exception):
    """An answer in OpenAI's error format."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: Optional[str] = None
    param: Optional[str] = None
    retry_after: Optional[float] = None
    attempts: Sequence[Attempt] = field(default_factory=tuple)
    #: Ask the server to close the connection (the request was not read whole).
    close_connection: bool = False

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        if self.attempts:
            error["attempts"] = [
                {"model": a.model, "outcome": a.outcome, "seconds": round(a.latency, 6)}
                for a in self.attempts
            ]
        return {"error": error}

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = []
        if self.retry_after is not None:
            # Whole seconds, rounded up; clock arithmetic's last-digit noise
            # (30.000000000000004) must not add a second.
            seconds = max(1, math.ceil(round(self.retry_after, 6)))
            headers.append((b"retry-after", str(seconds).encode()))
        if self.close_connection:
            headers.append((b"connection", b"close"))
        return headers


def bad_request(param: str, message: str) -> GatewayError:
    """A 400 naming the offending field."""
    return GatewayError(400, message, param=param, code="invalid_value")


def _tried(attempts: Sequence[Attempt]) -> str:
    return ", ".join(f"{a.model} ({a.outcome})" for a in attempts) or "nothing"


def _soonest_recovery(
    monitor: ModelHealthMonitor, registry: ModelRegistry, names: set[str]
) -> Optional[float]:
    """Seconds until the first of ``names`` leaves its cool-down, if all are open."""
    waits = []
    for name in names:
        status = monitor.status(registry.get_model(name))
        if status.state != "open":
            return None
        waits.append(status.retry_in)
    return min(waits) if waits else None


def from_registry_error(exc: BaseException, registry: ModelRegistry) -> GatewayError:
    """The client's answer for what ``registry.generate``/``stream`` raised."""
    if isinstance(exc, NoEligibleModelsError):
        reasons = "; ".join(f"{name}: {why}" for name, why in exc.reasons.items())
        candidates = exc.explanation.candidates
        waiting = ("health", "rate_limit")
        if exc.retry_in is not None and all(c.constraint in waiting for c in candidates):
            limited = any(
                c.constraint == "rate_limit" or "rate limit" in (c.reason or "") for c in candidates
            )
            return GatewayError(
                429 if limited else 503,
                f"every model is {'rate limited' if limited else 'cooling down'} ({reasons})",
                "rate_limit_exceeded" if limited else "server_error",
                "rate_limit_exceeded" if limited else "models_cooling_down",
                retry_after=max(exc.retry_in, 1.0),
            )
        return GatewayError(
            400,
            f"no registered model satisfies the request ({reasons or 'no models are registered'})",
            code="no_eligible_model",
        )
    attempts: Sequence[Attempt] = getattr(exc, "attempts", None) or ()
    tried = _tried(attempts)
    if isinstance(exc, FailoverTimeoutError) or (
        attempts and all(a.outcome == "timeout" for a in attempts)
    ):
        return GatewayError(
            504,
            f"no model answered in time; tried {tried}",
            "timeout",
            "timeout",
            attempts=attempts,
        )
    if isinstance(exc, FailoverError):
        if attempts and all(a.outcome == "rate_limit" for a in attempts):
            last = exc.last_error
            wait = last.retry_after if isinstance(last, RateLimitError) else None
            return GatewayError(
                429,
                f"every eligible model is rate limited; tried {tried}",
                "rate_limit_exceeded",
                "rate_limit_exceeded",
                retry_after=wait or 1.0,
                attempts=attempts,
            )
        names = {a.model for a in attempts}
        cooling = _soonest_recovery(registry.health_monitor, registry, names)
        if cooling is not None:
            return GatewayError(
                503,
                f"every eligible model is cooling down after failures; tried {tried}",
                "server_error",
                "models_cooling_down",
                retry_after=cooling,
                attempts=attempts,
            )
        return GatewayError(
            502,
            f"every provider failed; tried {tried}",
            "server_error",
            "upstream_failed",
            attempts=attempts,
        )
    if isinstance(exc, ModelError):
        return GatewayError(
            400 if exc.error_class in ("context_length", "content_filter", "other") else 502,
            f"the provider refused the request ({exc.error_class}); tried {tried}",
            "invalid_request_error" if exc.error_class != "authentication" else "server_error",
            exc.error_class,
            attempts=attempts,
        )
    return GatewayError(500, "internal gateway error", "server_error", "internal_error")
