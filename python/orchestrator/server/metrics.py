"""Prometheus metrics of the gateway (``GET /metrics``, text format).

Counters and histograms are updated per request; breaker states, model
statistics and cache counters are read from the registry at scrape time by a
collector, so the request path pays for none of them.

With ``--workers N`` the counters and histograms are prometheus_client's
multiprocess kind: ``orchestrator serve`` gives the workers one
``PROMETHEUS_MULTIPROC_DIR`` (:func:`multiprocess_directory`), each worker
writes its values to its own files there, and whichever worker answers a
scrape sums every worker's (the stopped ones' too), so ``/metrics`` is the
whole gateway's. The collector's breaker states and learned outcomes come
from the shared state, the same in every worker; its ``orchestrator_cache_*``
counters are the answering worker's cache's (``orchestrator_gateway_cache``
counts every worker's hits and misses).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from orchestrator.errors import ServeError
from orchestrator.models.model_registry import ModelRegistry

#: Seconds: from 50 µs (gateway overhead) to a minute (slow models).
_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
#: Feedback scores, in [0, 1].
_QUALITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_BREAKER_STATE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
#: The variable that puts prometheus_client in multiprocess mode (read when it is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """A directory for the workers' metric files, set as ``$PROMETHEUS_MULTIPROC_DIR``
    for the processes started inside the block. An operator's own
    ``$PROMETHEUS_MULTIPROC_DIR`` is used if set (its files from an earlier
    run are deleted first, as prometheus_client requires); else a new
    temporary one, removed at the end."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for stale in directory.glob("*.db"):
                stale.unlink()
        except OSError as exc:
            raise ServeError(
                f"${MULTIPROC_ENV}={given!r} cannot hold the workers' metric files: {exc}"
            ) from None
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="orchestrator-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)


class _RegistryCollector(Collector):
    """Per-model breaker state and learned statistics, and cache counters."""

    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        registry = self._registry
        breaker = GaugeMetricFamily(
            "orchestrator_model_breaker_state",
            "Circuit breaker per model: 0 closed, 1 half-open, 2 open",
            labels=["model"],
        )
        for model in registry:
            state = registry.health_monitor.status(model).state
            breaker.add_metric([model.name], _BREAKER_STATE.get(state, 2.0))
        yield breaker
        stats = registry.statistics()
        outcomes = CounterMetricFamily(
            "orchestrator_model_outcomes",
            "Outcomes the registry learned from, per model",
            labels=["model"],
        )
        for name, count in zip(stats["name"], stats.get("requests", [])):
            outcomes.add_metric([name], float(count))
        yield outcomes
        cache = registry.cache
        if cache is not None:
            statistics = cache.get_statistics()
            yield CounterMetricFamily(
                "orchestrator_cache_hits", "Cache hits (all tenants)", value=statistics.hits
            )
            yield CounterMetricFamily(
                "orchestrator_cache_misses", "Cache misses (all tenants)", value=statistics.misses
            )
            yield CounterMetricFamily(
                "orchestrator_cache_saved_usd",
                "USD saved by cache hits",
                value=statistics.cost_saved,
            )


class GatewayMetrics:
    """The gateway's metric families, in a registry of their own."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "orchestrator_gateway_requests",
            "Requests answered",
            ["route", "model", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "orchestrator_gateway_errors",
            "Requests answered with an error, by class",
            ["route", "error_class"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "orchestrator_gateway_request_seconds",
            "Time from request to last byte",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.overhead = Histogram(
            "orchestrator_gateway_overhead_seconds",
            "Time spent in the gateway itself: total minus the model calls",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "orchestrator_gateway_tokens",
            "Tokens, per model and direction",
            ["model", "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "orchestrator_gateway_cost_usd",
            "USD spent, per model",
            ["model"],
            registry=self.registry,
        )
        self.cache = Counter(
            "orchestrator_gateway_cache",
            "Chat requests by cache result",
            ["result"],
            registry=self.registry,
        )
        self.feedback = Histogram(
            "orchestrator_gateway_feedback_quality",
            "Quality scores posted to /v1/feedback, per model that answered",
            ["model"],
            buckets=_QUALITY_BUCKETS,
            registry=self.registry,
        )
        self._collector = _RegistryCollector(registry)
        self.registry.register(self._collector)
        #: Set when this process writes its values for the others to sum.
        self.multiprocess_directory = os.environ.get(MULTIPROC_ENV) or None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Union[Counter, Histogram], *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: prometheus_client's lookup
        takes longer than the increment itself, on every request."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        """The Prometheus text exposition: this process's, or in multiprocess
        mode every worker's values summed (read from their files, per scrape)."""
        if self.multiprocess_directory is None:
            return generate_latest(self.registry)
        fleet = CollectorRegistry()
        MultiProcessCollector(fleet, self.multiprocess_directory)  # type: ignore[no-untyped-call]
        fleet.register(self._collector)
        return generate_latest(fleet)
