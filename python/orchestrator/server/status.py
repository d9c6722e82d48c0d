"""What the status page (``GET /``) shows, as JSON (``GET /v1/status``):
traffic share, health, cost and money saved, cache hit rate, and the recent
decisions with their explanations.

Explaining a selection costs far more than making it, so the gateway
explains at most one decision every ``explain_interval`` seconds (the
explanation is computed just before that request is routed, from the same
constraints); the others are listed without one.
"""

from __future__ import annotations

import collections
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

from orchestrator.models.failover import Attempt
from orchestrator.models.model_registry import ModelRegistry
from orchestrator.server.routing import Route


@dataclass
class Decision:
    """One routed request, as the status page lists it."""

    at: float
    request_id: str
    requested: str
    tenant: Optional[str]
    model: Optional[str] = None
    cache: Optional[str] = None
    cost_usd: Optional[float] = None
    attempts: Optional[list[str]] = None
    explanation: Optional[str] = None


class DecisionLog:
    """The last ``size`` decisions of each tenant (a tenant sees only its
    own: they carry request ids, the keys of ``/v1/feedback``); every
    ``explain_interval`` s one is explained. Tenants are the configured
    keys' (or ``None`` without keys), so their number is bounded."""

    def __init__(self, size: int = 50, explain_interval: float = 0.5) -> None:
        self._size = size
        self._recent: dict[Optional[str], collections.deque[Decision]] = {}
        self._explain_interval = explain_interval
        self._explained_at = -math.inf

    def consider(
        self, registry: ModelRegistry, route: Route, request_id: str, tenant: Optional[str]
    ) -> Decision:
        """A request about to be routed; fill in its outcome with :meth:`record`."""
        now = time.monotonic()
        decision = Decision(time.time(), request_id, route.requested, tenant)
        if now - self._explained_at >= self._explain_interval:
            self._explained_at = now
            decision.explanation = str(registry.explain_selection(**_explain_kwargs(route)))
        recent = self._recent.get(tenant)
        if recent is None:
            recent = self._recent[tenant] = collections.deque(maxlen=self._size)
        recent.append(decision)
        return decision

    @staticmethod
    def record(
        decision: Decision, model: str, cache: str, cost: float, attempts: list[Attempt]
    ) -> None:
        """A routed request's outcome."""
        decision.model, decision.cache, decision.cost_usd = model, cache, cost
        decision.attempts = [f"{a.model}: {a.outcome}" for a in attempts]

    def recent(self, tenant: Optional[str]) -> list[dict[str, Any]]:
        """``tenant``'s decisions, newest first."""
        return [asdict(d) for d in reversed(self._recent.get(tenant, ()))]


def _explain_kwargs(route: Route) -> dict[str, Any]:
    c = route.constraints
    return {
        "capabilities": c.capabilities,
        "max_cost": c.max_cost,
        "min_speed": c.min_speed,
        "context_length": c.context_length,
        "exclude_models": c.exclude_models,
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
    }


def _number(value: float) -> Optional[float]:
    return None if math.isnan(value) else float(value)


def status_snapshot(
    registry: ModelRegistry, decisions: DecisionLog, tenant: Optional[str]
) -> dict[str, Any]:
    """Everything the page shows to ``tenant``."""
    stats = registry.statistics()
    total = float(sum(stats["trials"])) or 1.0
    models = []
    for i, name in enumerate(stats["name"]):
        model = registry.get_model(name)
        health = registry.health_monitor.status(model)
        models.append(
            {
                "name": name,
                "provider": model.provider,
                "requests": int(stats["trials"][i]),
                "traffic_share": float(stats["trials"][i]) / total,
                "successes": int(stats["successes"][i]),
                "failures": int(stats["failures"][i]),
                "cost_usd": _number(stats["total_cost_usd"][i]),
                "latency_s": _number(stats["latency_ewma_s"][i]),
                "health": health.state,
                "issues": health.issues,
            }
        )
    cache = registry.cache
    cache_info = None
    if cache is not None:
        statistics = cache.get_statistics()
        cache_info = {
            "hit_rate": statistics.hit_rate,
            "hits": statistics.hits,
            "misses": statistics.misses,
            "saved_usd": statistics.cost_saved,
        }
    return {
        "worker_pid": os.getpid(),
        "strategy": registry.strategy,
        "models": models,
        "cost_usd": sum(m["cost_usd"] or 0.0 for m in models),
        "cache": cache_info,
        "decisions": decisions.recent(tenant),
    }
